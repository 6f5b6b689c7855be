//! [`Root`]: what every collection handle holds: its arena (which keeps the segment mapped)
//! and its header in the segment.

use crate::arena::Arena;
use core::ptr::NonNull;
use relshm_ptr::Repr;

/// A collection's header `H` in an arena's segment, owned: the arena clone keeps the
/// mapping (and so `hdr`) alive, so the handle is `'static`.
pub(crate) struct Root<H, R: Repr> {
    arena: Arena<R>,
    hdr: NonNull<H>,
    off: u64,
}

impl<H, R: Repr> Clone for Root<H, R> {
    fn clone(&self) -> Self {
        Self {
            arena: self.arena.clone(),
            hdr: self.hdr,
            off: self.off,
        }
    }
}

// SAFETY: the header is shared memory that every thread (and process) may access through
// `&H`, which collection headers allow (atomics and in-segment locks only: `H: Sync`); the
// arena is what decides whether the strategy's context may cross threads.
unsafe impl<H: Sync, R: Repr> Send for Root<H, R> where Arena<R>: Send {}
// SAFETY: as above.
unsafe impl<H: Sync, R: Repr> Sync for Root<H, R> where Arena<R>: Sync {}

impl<H, R: Repr> Root<H, R> {
    /// The header at `hdr` (offset `off`), which must have been resolved (bounds and
    /// alignment checked) through `arena`, and be a valid `H` for any bits the segment holds.
    pub(crate) fn new(arena: &Arena<R>, hdr: NonNull<H>, off: u64) -> Self {
        Self {
            arena: arena.clone(),
            hdr,
            off,
        }
    }

    /// The header, after picking up any growth of the segment (so that links written by
    /// whoever held a lock this thread now holds resolve).
    #[inline]
    pub(crate) fn hdr(&self) -> &H {
        self.arena.sync();
        // SAFETY: resolved through the arena (checked) when the root was made; the arena
        // keeps the mapping alive while `self` lives; headers are valid for any bits.
        unsafe { self.hdr.as_ref() }
    }

    /// The arena the collection lives in.
    #[inline]
    pub(crate) fn arena(&self) -> &Arena<R> {
        &self.arena
    }

    /// The header's offset in the segment.
    pub(crate) fn offset(&self) -> u64 {
        self.off
    }
}
