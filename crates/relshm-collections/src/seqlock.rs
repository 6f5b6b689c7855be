//! The seqlock every collection with lock-free readers uses (maps, byte maps, vectors): a
//! word a writer makes odd once it holds the lock exclusively and even again before it
//! lets go. A reader notes the word, reads without locks (atomic loads only, see
//! `racy`), and keeps what it read only if the word did not move. A writer killed inside
//! leaves the word odd: readers then take the locked path, whose acquisition learns of the
//! death and repairs, and the repair makes the word even again ([`settle`]).

use core::sync::atomic::Ordering::{Relaxed, Release};
use core::sync::atomic::{AtomicU64, fence};

/// A seqlock write section: the word is odd from [`begin`](Self::begin) until drop.
pub(crate) struct WriteSection<'a>(&'a AtomicU64);

impl<'a> WriteSection<'a> {
    /// Marks `seq` odd (it may already be odd if the previous writer died inside). Call
    /// with the lock that `seq` belongs to held exclusively.
    pub(crate) fn begin(seq: &'a AtomicU64) -> Self {
        seq.store(seq.load(Relaxed) | 1, Relaxed);
        // Orders the odd mark before every write of the section (seqlock writer side).
        fence(Release);
        Self(seq)
    }
}

impl Drop for WriteSection<'_> {
    fn drop(&mut self) {
        settle(self.0);
    }
}

/// Makes `seq` even (after a section, or in a repair after its writer died inside).
pub(crate) fn settle(seq: &AtomicU64) {
    let s = seq.load(Relaxed);
    if s & 1 == 1 {
        seq.store(s.wrapping_add(1), Release);
    }
}

/// How one optimistic attempt ended (small, so it stays in registers).
pub(crate) enum Attempt<V> {
    /// The words were stable and the key was there.
    Hit(V),
    /// The words were stable and the key was not there.
    Miss,
    /// A writer changed something meanwhile: try again.
    Retry,
    /// A writer is inside (or died inside), or a link did not resolve: take the lock (the
    /// locked path repairs, or reports the corruption with its precise error).
    Locked,
}
