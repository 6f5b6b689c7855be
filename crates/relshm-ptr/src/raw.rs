//! [`Raw`]: an absolute address. The baseline every other representation is compared with.

use crate::repr::{misfit, resolve_in};
use crate::{PtrError, Repr};
use core::ptr::NonNull;
use core::sync::atomic::{AtomicU64, Ordering::Relaxed};
use relshm_segment::Region;

/// Absolute pointer representation: the word is the target's address (0 = null).
///
/// Meaningful only in the address space the links were written for: the writing process,
/// every process of a fixed-address segment (mapped at the same address everywhere), or
/// the receiver of a [`translate`](crate::translate()) copy. [`RawCtx::new`] refuses a
/// region mapped anywhere else, and every load checks the target lies in the region.
#[derive(Debug, Clone, Copy)]
pub struct Raw;

/// Per-process context for [`Raw`] links: the region they point into.
#[derive(Debug, Clone, Copy)]
pub struct RawCtx {
    base: u64,
    len: u64,
}

impl RawCtx {
    /// A context for links written for a region based at `written_base`, read through
    /// `region` in this process. Fails unless the region is mapped exactly there.
    ///
    /// # Safety
    /// `region` must stay mapped for as long as the context (or anything resolved through
    /// it) is used.
    pub unsafe fn new(region: Region, written_base: u64) -> Result<Self, PtrError> {
        let mapped = region.base().as_ptr() as u64;
        if mapped != written_base {
            return Err(PtrError::NotFixedAddress {
                written: written_base,
                mapped,
            });
        }
        Ok(Self {
            base: mapped,
            len: region.len(),
        })
    }

    /// A context for links this process writes itself into `region`.
    ///
    /// # Safety
    /// As for [`new`](Self::new).
    pub unsafe fn local(region: Region) -> Self {
        Self {
            base: region.base().as_ptr() as u64,
            len: region.len(),
        }
    }

    /// Base address of the region.
    pub fn base(&self) -> u64 {
        self.base
    }

    /// Length of the region.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether the region is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

// SAFETY: Word is one AtomicU64 (repr(C), any bits valid, zero = null); load returns a
// pointer only after `fits` checked the whole target lies in the region, aligned, and the
// region stays mapped while the context lives (RawCtx::new's contract).
unsafe impl Repr for Raw {
    type Word = AtomicU64;
    type Ctx = RawCtx;
    const NAME: &'static str = "raw";
    const ID: u32 = 1;

    fn null() -> AtomicU64 {
        AtomicU64::new(0)
    }

    #[inline(always)]
    fn is_null(word: &AtomicU64) -> bool {
        word.load(Relaxed) == 0
    }

    #[inline(always)]
    fn load(
        ctx: &RawCtx,
        word: &AtomicU64,
        size: u64,
        align: u64,
    ) -> Result<Option<NonNull<u8>>, PtrError> {
        let w = word.load(Relaxed);
        // SAFETY: the context's region is a live mapping (RawCtx's contract).
        if let Some(p) = unsafe { resolve_in(w, ctx.base, ctx.len, size, align) } {
            return Ok(Some(p));
        }
        if w == 0 {
            return Ok(None);
        }
        Err(misfit(w, ctx.base, ctx.len, size, align))
    }

    fn store(ctx: &RawCtx, word: &AtomicU64, target: Option<NonNull<u8>>) -> Result<(), PtrError> {
        let t = target.map_or(0, |p| p.as_ptr() as u64);
        if t != 0 && t.wrapping_sub(ctx.base) >= ctx.len {
            return Err(PtrError::NotWritable {
                addr: t,
                why: "a Raw link's target must lie in the context's region",
            });
        }
        word.store(t, Relaxed);
        Ok(())
    }
}
