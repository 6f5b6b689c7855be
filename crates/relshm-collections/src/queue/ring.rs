//! The lock-free ring: Vyukov's bounded MPMC queue with the claim made on the slot itself.
//!
//! In Vyukov's queue a producer claims a position by a compare-and-swap on `tail` and only
//! later marks the slot published; a producer killed in between leaves a position nobody
//! can ever complete or identify. Here the claim is a compare-and-swap of the *slot's*
//! sequence word from "free for position p" to "being written by endpoint e", so a stuck
//! slot always names its claimant; `tail` and `head` are hints that anyone advances
//! ("helping") once the slot at the hint is claimed. A reaper that finds the claimant dead
//! turns a half-written slot into a skipped one and a half-read slot back into a free one
//! (see [`Ring::release_claims_of`]). Consumers likewise claim by compare-and-swap on the
//! slot, read, then free it for the next lap.

use relshm_sync::facade::{AtomicU64, Ordering::*};

use super::layout::{
    Control, PLAIN, POS_MASK, READING, SKIPPED, SlotHeader, WRITING, seq_word, split_seq,
};
use crate::error::CollectionError;

/// How the ring reaches its slots: in a segment (real) or in a loom model.
pub(crate) trait Slots {
    /// The header of slot `i` (`i < capacity`).
    fn header(&self, i: u64) -> &SlotHeader;
    /// Copies `src` into the payload of slot `i`.
    ///
    /// # Safety
    /// The caller holds the slot's write claim; `src.len()` is at most the slot size.
    unsafe fn write(&self, i: u64, src: &[u8]);
    /// Copies the payload of slot `i` into `dst`.
    ///
    /// # Safety
    /// The caller holds the slot's read claim; `dst.len()` is at most the slot size.
    unsafe fn read(&self, i: u64, dst: &mut [u8]);
}

/// What one claim attempt found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Claim {
    /// Claimed position `pos`.
    Got(u64),
    /// Nothing to claim (ring full for producers, empty for consumers).
    None,
}

/// Upper bound on retries of one claim: only a corrupted ring (or a livelock far beyond
/// anything real contention produces) gets here.
const MAX_RETRIES: u32 = 1 << 20;

/// A view of one ring: its control block and slots.
pub(crate) struct Ring<'a, S: Slots> {
    pub(crate) ctl: &'a Control,
    pub(crate) slots: &'a S,
    pub(crate) capacity: u64,
}

impl<S: Slots> Ring<'_, S> {
    #[inline]
    fn slot(&self, pos: u64) -> &SlotHeader {
        self.slots.header(pos & (self.capacity - 1))
    }

    /// Reads a position hint; one past [`POS_MASK`] is corruption (positions count
    /// messages and never get there), refused before it can overflow any arithmetic.
    #[inline]
    fn hint(word: &AtomicU64) -> Result<u64, CollectionError> {
        let pos = word.load(Acquire);
        if pos > POS_MASK {
            return Err(crate::error::corrupt(format!(
                "position hint {pos:#x} is out of range"
            )));
        }
        Ok(pos)
    }

    #[inline]
    fn help(word: &AtomicU64, pos: u64) {
        let _ = word.compare_exchange(pos, pos + 1, AcqRel, Relaxed);
    }

    /// Claims the next free position for endpoint `ep` (the slot is then `WRITING`).
    pub(crate) fn claim_write(&self, ep: u64) -> Result<Claim, CollectionError> {
        for _ in 0..MAX_RETRIES {
            let pos = Self::hint(&self.ctl.tail)?;
            let slot = self.slot(pos);
            let s = slot.seq.load(Acquire);
            let (state, _, base) = split_seq(s);
            if base == pos && state == PLAIN {
                if slot
                    .seq
                    .compare_exchange(s, seq_word(WRITING, ep, pos), AcqRel, Relaxed)
                    .is_ok()
                {
                    Self::help(&self.ctl.tail, pos);
                    return Ok(Claim::Got(pos));
                }
            } else if base >= pos {
                // Position `pos` is taken (being written, published, consumed): move on.
                Self::help(&self.ctl.tail, pos);
            } else if self.ctl.tail.load(Acquire) == pos {
                // The slot still holds the previous lap: full.
                return Ok(Claim::None);
            }
        }
        Err(crate::error::corrupt("the ring's positions never settle"))
    }

    /// Publishes the message written at `pos`.
    pub(crate) fn publish(&self, pos: u64) {
        self.slot(pos)
            .seq
            .store(seq_word(PLAIN, 0, pos + 1), Release);
    }

    /// Claims the next published message for endpoint `ep` (the slot is then `READING`).
    /// `Claim::None` also when the next position is still being written.
    pub(crate) fn claim_read(&self, ep: u64) -> Result<Claim, CollectionError> {
        for _ in 0..MAX_RETRIES {
            let pos = Self::hint(&self.ctl.head)?;
            let slot = self.slot(pos);
            let s = slot.seq.load(Acquire);
            let (state, _, base) = split_seq(s);
            if base == pos + 1 {
                match state {
                    PLAIN => {
                        if slot
                            .seq
                            .compare_exchange(s, seq_word(READING, ep, pos + 1), AcqRel, Relaxed)
                            .is_ok()
                        {
                            Self::help(&self.ctl.head, pos);
                            return Ok(Claim::Got(pos));
                        }
                    }
                    SKIPPED => {
                        // A dead producer's position: free it for the next lap, move on.
                        let _ = slot.seq.compare_exchange(
                            s,
                            seq_word(PLAIN, 0, pos + self.capacity),
                            AcqRel,
                            Relaxed,
                        );
                        Self::help(&self.ctl.head, pos);
                        self.ctl
                            .not_full
                            .fetch_add(relshm_sync::facade::DOORBELL_STEP, SeqCst);
                    }
                    READING => Self::help(&self.ctl.head, pos),
                    _ => {
                        return Err(crate::error::corrupt(
                            "a slot is being written one lap ahead",
                        ));
                    }
                }
            } else if base > pos + 1 {
                // Consumed already (free or in use for a later lap): the hint is stale.
                Self::help(&self.ctl.head, pos);
            } else if self.ctl.head.load(Acquire) == pos {
                // Not published yet (free, being written, or still read one lap behind).
                return Ok(Claim::None);
            }
        }
        Err(crate::error::corrupt("the ring's positions never settle"))
    }

    /// Frees the slot of a message read at `pos` for the next lap.
    pub(crate) fn release(&self, pos: u64) {
        self.slot(pos)
            .seq
            .store(seq_word(PLAIN, 0, pos + self.capacity), Release);
    }

    /// Resolves every claim endpoint `ep` holds after its owner died: a half-written slot
    /// becomes skipped (the message was never sent), a half-read one is freed (the message
    /// died with its reader). Returns how many slots were fixed.
    ///
    /// Callers must make sure `ep` cannot make new claims meanwhile (its owner is dead and
    /// its registration not yet reused).
    pub(crate) fn release_claims_of(&self, ep: u64) -> u64 {
        let mut fixed = 0;
        for i in 0..self.capacity {
            let slot = self.slots.header(i);
            let s = slot.seq.load(Acquire);
            let (state, owner, base) = split_seq(s);
            if owner != ep {
                continue;
            }
            let new = match state {
                WRITING => seq_word(SKIPPED, 0, base + 1),
                // A reading claim stores position + 1, never 0 (else: corrupted, leave it).
                READING if base > 0 => seq_word(PLAIN, 0, base - 1 + self.capacity),
                _ => continue,
            };
            if slot.seq.compare_exchange(s, new, AcqRel, Relaxed).is_ok() {
                fixed += 1;
            }
        }
        fixed
    }

    /// The number of published, unclaimed messages right now (a snapshot).
    pub(crate) fn len(&self) -> u64 {
        let tail = self.ctl.tail.load(Acquire);
        let head = self.ctl.head.load(Acquire);
        tail.saturating_sub(head).min(self.capacity)
    }
}
