//! Large messages: written once into a heap allocation; only its offset travels through
//! the ring, and the receiver owns (and on drop frees) the allocation.
//!
//! Each allocation starts with a [`LargeHeader`] whose `state` word says who owns it, so
//! [`Queue::reclaim`](super::Queue::reclaim) can free what dead processes leaked:
//!
//! | state | owner | reclaimed when |
//! |---|---|---|
//! | `SENDER` | the sending process (`pid`, `start_time`) | that process is dead |
//! | `QUEUED(pos)` | the ring slot of position `pos` | no ring slot refers to it any more |
//! | `RECEIVER` | the receiving process (`pid`, `start_time`) | that process is dead |
//!
//! Every transition is a compare-and-swap of `state`, and reclamation frees only after its
//! own compare-and-swap to `FREEING` succeeded, so it never frees what a live process
//! still takes over concurrently.

use relshm_sync::facade::{AtomicU64, Ordering::*};

/// `"RSHMQMSG"`: the first word of a large message allocation.
pub const LARGE_MAGIC: u64 = u64::from_le_bytes(*b"RSHMQMSG");
/// Bytes before the payload.
pub const LARGE_HEADER: u64 = 64;

pub(crate) const ST_SENDER: u64 = 1;
pub(crate) const ST_QUEUED: u64 = 2;
pub(crate) const ST_RECEIVER: u64 = 3;
pub(crate) const ST_FREEING: u64 = 0;
const POS_MASK: u64 = (1 << 62) - 1;

/// The header of a large message allocation.
///
/// | offset | field | meaning |
/// |---|---|---|
/// | 0 | `magic` | [`LARGE_MAGIC`] |
/// | 8 | `queue` | offset of the owning queue's control block |
/// | 16 | `state` | state (bits 62..64: 1 sender, 2 queued, 3 receiver, 0 being freed) \| position (0..62) |
/// | 24 | `pid` | owning process (sender, then receiver) |
/// | 32 | `start_time` | owning process's start time |
/// | 40 | `len` | payload bytes |
/// | 48..64 | reserved | zero |
#[repr(C)]
pub struct LargeHeader {
    pub(crate) magic: AtomicU64,
    pub(crate) queue: AtomicU64,
    pub(crate) state: AtomicU64,
    pub(crate) pid: AtomicU64,
    pub(crate) start_time: AtomicU64,
    pub(crate) len: AtomicU64,
    pub(crate) reserved: [u64; 2],
}

#[cfg(not(loom))]
const _: () = assert!(core::mem::size_of::<LargeHeader>() == LARGE_HEADER as usize);

#[inline]
pub(crate) const fn state_word(state: u64, pos: u64) -> u64 {
    (state << 62) | (pos & POS_MASK)
}

#[inline]
pub(crate) const fn split_state(w: u64) -> (u64, u64) {
    (w >> 62, w & POS_MASK)
}

impl LargeHeader {
    /// Hands ownership to the calling process in state `state`; `false` if the state was
    /// not `expected` (someone else owns it now).
    pub(crate) fn take(&self, expected: u64, state: u64) -> bool {
        self.pid.store(u64::from(std::process::id()), Relaxed);
        self.start_time
            .store(relshm_segment::procstat::own_start_time(), Relaxed);
        self.state
            .compare_exchange(expected, state_word(state, 0), AcqRel, Relaxed)
            .is_ok()
    }
}
