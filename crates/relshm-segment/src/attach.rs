//! The attach table: which processes map a segment, and at which address.
//!
//! Each entry's `owner` word is `pid << 32 | start_time & 0x7fff_ffff`, plus bit 31
//! ([`BUSY`]) while the entry is being filled. The protocol is lock-free so that a process
//! dying anywhere in it leaves nothing that blocks the others:
//!
//! - **claim**: CAS `owner` from 0 (or from the word of a dead process) to `me | BUSY`,
//!   store `start_time` and `base`, then release-store `me`.
//! - **detach**: CAS `owner` from `me` to 0.
//! - **reclaim**: an entry whose (pid, start time) names no live process (exited, zombie,
//!   or pid reused by a later process) is dead; it is CASed back to 0 by whoever notices
//!   (claimers and listers), so a SIGKILLed process's entry is never leaked for good.
//! - **list**: read `owner`, `start_time`, `base`, `owner` again; report the entry only if
//!   `owner` did not change and is neither free nor busy.
//!
//! Why per-entry CAS rather than one `relshm_sync::Mutex` over the table: a claim or a
//! detach is one word, so no process ever waits for another, and a process killed at any
//! instruction leaves at most its own entry behind, which the liveness check reclaims;
//! a table-wide lock would add a repair step after owner death and buy nothing.

use crate::error::{Result, SegmentError};
use crate::header::{ATTACH_CAPACITY, HeaderRef};
use crate::procstat;
use core::sync::atomic::Ordering::{AcqRel, Acquire, Relaxed, Release};

/// Bit 31 of an owner word: the entry is being filled.
pub const BUSY: u64 = 1 << 31;
const START_MASK: u64 = 0x7fff_ffff;

/// One attached mapping, as listed by [`crate::Segment::attached`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AttachInfo {
    /// The attach-table entry index.
    pub slot: u32,
    /// The attached process.
    pub pid: u32,
    /// Its start time (clock ticks after boot), which tells it from later users of the pid.
    pub start_time: u64,
    /// The address the segment starts at in that process.
    pub base: u64,
}

/// The owner word for a process.
pub(crate) fn owner_word(pid: u32, start_time: u64) -> u64 {
    (u64::from(pid) << 32) | (start_time & START_MASK)
}

/// This process's owner word.
pub(crate) fn my_owner_word() -> u64 {
    owner_word(
        relshm_sync::process::process_id(),
        procstat::own_start_time(),
    )
}

/// Whether the process named by an owner word (busy bit ignored) may still run (`false`
/// only when `/proc` proves it gone).
pub(crate) fn owner_alive(word: u64) -> bool {
    let pid = (word >> 32) as u32;
    !procstat::is_gone(pid, |t| t & START_MASK == word & START_MASK)
}

/// Claims an entry for a mapping at `base`; returns its index.
pub(crate) fn claim(h: HeaderRef, base: u64) -> Result<usize> {
    let me = my_owner_word();
    for i in 0..ATTACH_CAPACITY as usize {
        let [owner, start, b] = h.entry(i);
        let cur = owner.load(Acquire);
        if cur != 0 && owner_alive(cur) {
            continue;
        }
        if owner
            .compare_exchange(cur, me | BUSY, AcqRel, Relaxed)
            .is_ok()
        {
            start.store(procstat::own_start_time(), Relaxed);
            b.store(base, Relaxed);
            owner.store(me, Release);
            return Ok(i);
        }
    }
    Err(SegmentError::AttachTableFull {
        capacity: ATTACH_CAPACITY,
    })
}

/// Frees entry `i` if this process still owns it.
pub(crate) fn detach(h: HeaderRef, i: usize) {
    let [owner, _, _] = h.entry(i);
    let _ = owner.compare_exchange(my_owner_word(), 0, AcqRel, Relaxed);
}

/// Lists the live entries; with `reclaim`, frees the entries of dead processes on the way.
pub(crate) fn list(h: HeaderRef, reclaim: bool) -> Vec<AttachInfo> {
    let mut out = Vec::new();
    for i in 0..ATTACH_CAPACITY as usize {
        let [owner, start, base] = h.entry(i);
        let o1 = owner.load(Acquire);
        if o1 == 0 {
            continue;
        }
        if !owner_alive(o1) {
            if reclaim {
                let _ = owner.compare_exchange(o1, 0, AcqRel, Relaxed);
            }
            continue;
        }
        if o1 & BUSY != 0 {
            continue;
        }
        // Acquire keeps the second owner load after these two (a seqlock-style re-check).
        let (s, b) = (start.load(Acquire), base.load(Acquire));
        if owner.load(Acquire) == o1 {
            out.push(AttachInfo {
                slot: i as u32,
                pid: (o1 >> 32) as u32,
                start_time: s,
                base: b,
            });
        }
    }
    out
}
