//! Large messages: written once into a heap allocation; only its offset travels through
//! the ring, and the receiver owns (and on drop frees) the allocation.
//!
//! Each allocation is an *owned* heap block ([`Heap::alloc_owned`]): its first word, the
//! owner record the allocator publishes together with the block, says who may free it,
//! so no process death at any instant leaves a block nobody can find:
//!
//! | owner word | owner | freed by |
//! |---|---|---|
//! | process (sender) | the sending process, from the allocation on | the sender (send failed), or any reclaim once it is dead |
//! | `QUEUED(pos)` | the ring slot of position `pos` (stored while the slot is still claimed for writing) | the receiver that takes it; [`Queue::reclaim`](super::Queue::reclaim) once no slot refers to it (its sender died before publishing, its receiver died before taking it) |
//! | process (receiver) | the receiving process, from the take on ([`Message`](super::Message)) | the receiver on drop, or any reclaim once it is dead |
//!
//! A take is a compare-and-swap of the owner word; reclamation frees only through
//! [`Heap::free_owned`], which compares the record under the heap lock, so it never frees
//! a block that a live process took over, or that was freed and reused meanwhile.
//!
//! [`Heap::alloc_owned`]: relshm_segment::heap::Heap::alloc_owned
//! [`Heap::free_owned`]: relshm_segment::heap::Heap::free_owned

use relshm_segment::heap::OWNER_KIND_SHIFT;
use relshm_sync::facade::AtomicU64;

/// `"RSHMQMSG"`: the header's magic word.
pub const LARGE_MAGIC: u64 = u64::from_le_bytes(*b"RSHMQMSG");
/// Bytes before the payload.
pub const LARGE_HEADER: u64 = 64;

/// Owner kind of a message queued in a ring slot (the position is in bits 0..62).
const KIND_QUEUED: u64 = 2;
const POS_MASK: u64 = (1 << OWNER_KIND_SHIFT) - 1;
/// High bits of a large message's `ident`: "a large message of the queue at" the low bits.
const IDENT_TAG: u64 = u64::from_le_bytes(*b"\0\0\0\0\0\0QM");

/// The header of a large message allocation.
///
/// | offset | field | meaning |
/// |---|---|---|
/// | 0 | `owner` | the heap owner word (see the module docs) |
/// | 8 | `ident` | `"QM"` in the top 16 bits \| the owning queue's offset |
/// | 16 | `magic` | [`LARGE_MAGIC`] |
/// | 24 | `len` | payload bytes |
/// | 32..64 | reserved | zero |
#[repr(C)]
pub struct LargeHeader {
    pub(crate) owner: AtomicU64,
    pub(crate) ident: AtomicU64,
    pub(crate) magic: AtomicU64,
    pub(crate) len: AtomicU64,
    pub(crate) reserved: [u64; 4],
}

#[cfg(not(loom))]
const _: () = assert!(core::mem::size_of::<LargeHeader>() == LARGE_HEADER as usize);

/// The owner word of a message queued at position `pos`.
#[inline]
pub(crate) const fn queued(pos: u64) -> u64 {
    (KIND_QUEUED << OWNER_KIND_SHIFT) | (pos & POS_MASK)
}

/// The position of a `queued` owner word; `None` for other owners.
#[inline]
pub(crate) const fn queued_pos(owner: u64) -> Option<u64> {
    if owner >> OWNER_KIND_SHIFT == KIND_QUEUED {
        Some(owner & POS_MASK)
    } else {
        None
    }
}

/// The `ident` of the large messages of the queue at `queue`.
#[inline]
pub(crate) const fn ident(queue: u64) -> u64 {
    IDENT_TAG | (queue & 0xffff_ffff_ffff)
}
