//! [`Offset`]: a self-relative link (Boost's `offset_ptr`, rkyv's `RelPtr`).

use crate::repr::{misfit, resolve_in};
use crate::{PtrError, Repr};
use core::ptr::NonNull;
use core::sync::atomic::{AtomicU64, Ordering::Relaxed};
use relshm_segment::Region;

/// Self-relative representation: the word holds `target - &word` (two's complement).
///
/// # Null encoding
/// All-zero bytes are null, so zero-filled segment memory is full of null links (Boost
/// uses 1 as null instead, which makes zeroed memory a web of self-links). That takes
/// difference 0 (a link to the object that starts at the link itself, which a one-node
/// circular list needs), so a self-link is stored as 1: a difference that can only name
/// the link's own second byte, which no object starts at; [`Repr::store`] refuses it.
///
/// Why not a bias (`stored = diff + 1`, the other way to make zero mean null): the bias is
/// an extra add on the pointer-chase critical path (load, add, *sub*, load), which measured
/// 1.25x Raw per hop for L1-resident lists. With this encoding the hot path is load, add,
/// load; the null test (`stored > 1`) and the range check are predicted branches off the
/// critical path, and self-links take the out-of-line path.
///
/// The word's meaning depends on its own address: see [`Link`](crate::Link) for why safe
/// code cannot move a non-null one, and [`Repr::store`] refuses to write a word that lies
/// outside the context's region.
#[derive(Debug, Clone, Copy)]
pub struct Offset;

/// Per-process context for [`Offset`] and [`BaseRel`](crate::BaseRel) links: the region
/// targets must lie in.
///
/// The region can [`extend`](Self::extend_to) in place while the context is in use (a
/// segment that grew: its mapping never moves), so the length is an atomic; reading it
/// costs what reading a plain field does.
#[derive(Debug)]
pub struct OffsetCtx {
    base: NonNull<u8>,
    len: AtomicU64,
}

impl Clone for OffsetCtx {
    fn clone(&self) -> Self {
        Self {
            base: self.base,
            len: AtomicU64::new(self.len()),
        }
    }
}

// SAFETY: the context is an address range and its length, read-only after construction;
// what may be done through the range is governed by the representations' own contracts,
// exactly as when the base was kept as an integer.
unsafe impl Send for OffsetCtx {}
// SAFETY: as above.
unsafe impl Sync for OffsetCtx {}

impl OffsetCtx {
    /// A context resolving into `region`, wherever this process mapped it.
    ///
    /// # Safety
    /// `region` must stay mapped for as long as the context (or anything resolved through
    /// it) is used.
    pub unsafe fn new(region: Region) -> Self {
        Self {
            base: region.base(),
            len: AtomicU64::new(region.len()),
        }
    }

    /// Extends the region the context resolves into to `len` bytes (never shrinks it).
    ///
    /// # Safety
    /// The first `len` bytes from the context's base must be mapped, and stay mapped for as
    /// long as the context (or anything resolved through it) is used.
    pub unsafe fn extend_to(&self, len: u64) {
        self.len.fetch_max(len, Relaxed);
    }

    /// Base address of the region.
    pub fn base(&self) -> u64 {
        self.base.as_ptr() as u64
    }

    /// Base address of the region, as a pointer (never null).
    #[inline(always)]
    pub(crate) fn base_ptr(&self) -> NonNull<u8> {
        self.base
    }

    /// Length of the region.
    #[inline(always)]
    pub fn len(&self) -> u64 {
        self.len.load(Relaxed)
    }

    /// Whether the region is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Stored value of a link to the object starting at the link itself.
const SELF: u64 = 1;

/// Null, self-links and errors: everything the one-add fast path does not take.
#[cold]
#[inline(never)]
fn load_slow(
    ctx: &OffsetCtx,
    at: u64,
    s: u64,
    size: u64,
    align: u64,
) -> Result<Option<NonNull<u8>>, PtrError> {
    let target = match s {
        0 => return Ok(None),
        SELF => at,
        _ => at.wrapping_add(s),
    };
    // SAFETY: the context's region is a live mapping (OffsetCtx::new's contract).
    if let Some(p) = unsafe { resolve_in(target, ctx.base(), ctx.len(), size, align) } {
        return Ok(Some(p));
    }
    Err(misfit(target, ctx.base(), ctx.len(), size, align))
}

// SAFETY: Word is one AtomicU64 (any bits valid, zero = null); load returns a pointer only
// after `fits` checked the whole target lies in the region, aligned, and the region stays
// mapped while the context lives (OffsetCtx::new's contract).
unsafe impl Repr for Offset {
    type Word = AtomicU64;
    type Ctx = OffsetCtx;
    const NAME: &'static str = "offset";
    const ID: u32 = 2;

    unsafe fn extend(ctx: &OffsetCtx, len: u64) -> bool {
        // SAFETY: forwarded: the caller guarantees the first `len` bytes stay mapped.
        unsafe { ctx.extend_to(len) };
        true
    }

    fn null() -> AtomicU64 {
        AtomicU64::new(0)
    }

    #[inline(always)]
    fn is_null(word: &AtomicU64) -> bool {
        word.load(Relaxed) == 0
    }

    #[inline(always)]
    fn load(
        ctx: &OffsetCtx,
        word: &AtomicU64,
        size: u64,
        align: u64,
    ) -> Result<Option<NonNull<u8>>, PtrError> {
        let s = word.load(Relaxed);
        let at = word.as_ptr() as u64;
        let target = at.wrapping_add(s);
        if s > 1 {
            // SAFETY: the context's region is a live mapping (OffsetCtx::new's contract).
            if let Some(p) = unsafe { resolve_in(target, ctx.base(), ctx.len(), size, align) } {
                return Ok(Some(p));
            }
        }
        load_slow(ctx, at, s, size, align)
    }

    fn store(
        ctx: &OffsetCtx,
        word: &AtomicU64,
        target: Option<NonNull<u8>>,
    ) -> Result<(), PtrError> {
        let at = word.as_ptr() as u64;
        if at.wrapping_sub(ctx.base()) >= ctx.len() {
            return Err(PtrError::NotWritable {
                addr: at,
                why: "an Offset word outside the region could be moved, changing its meaning",
            });
        }
        let Some(t) = target else {
            word.store(0, Relaxed);
            return Ok(());
        };
        let t = t.as_ptr() as u64;
        if t.wrapping_sub(ctx.base()) >= ctx.len() {
            return Err(PtrError::NotWritable {
                addr: t,
                why: "an Offset link's target must lie in the context's region",
            });
        }
        let stored = match t.wrapping_sub(at) {
            0 => SELF,
            SELF => {
                return Err(PtrError::Unrepresentable {
                    target: t,
                    word: at,
                    why: "the link's own second byte: 1 encodes a self-link",
                });
            }
            d => d,
        };
        word.store(stored, Relaxed);
        Ok(())
    }
}
