//! The [`Repr`] trait: how a link between two objects is stored, and resolved per process.

use crate::PtrError;
use core::ptr::NonNull;

/// A pointer representation: the stored word of a link and how this process resolves it.
///
/// Collections are generic over `R: Repr` and use [`Link<T, R>`](crate::Link), so the same
/// code runs on every strategy and a benchmark measures only the strategy. [`Repr::load`]
/// is on the pointer-chase critical path: implementations keep it to a few instructions and
/// `#[inline(always)]`, and push rare cases (null, first-touch swizzling, errors) out of line.
///
/// # Safety
/// Implementations promise that:
/// - `Word` is `#[repr(C)]`, fixed width, valid for every bit pattern, made only of atomics
///   (another process may write it concurrently), and all-zero bytes are the null link;
/// - [`load`](Repr::load) returns `Ok(Some(p))` only if `[p, p + size)` lies inside memory
///   that the context guarantees to be mapped while the context lives, and `p` is a
///   multiple of `align`.
pub unsafe trait Repr: Sized + 'static {
    /// The stored form of a link (lives in the segment).
    type Word: Sync + core::fmt::Debug;
    /// What a process needs to resolve words: its mapping(s) of the segment(s).
    type Ctx;
    /// Short name for benches and messages.
    const NAME: &'static str;
    /// Stable number of the representation, recorded with a collection so tools know how
    /// to read its links: 1 [`Raw`](crate::Raw), 2 [`Offset`](crate::Offset),
    /// 3 [`BaseRel`](crate::BaseRel), 4 [`SegRel`](crate::SegRel),
    /// 5 [`Swizzle`](crate::Swizzle). 0 (the default) is a representation without one
    /// (an experiment): tools report its collections as not checkable.
    const ID: u32 = 0;

    /// A null word (all zero bytes).
    fn null() -> Self::Word;

    /// Whether `word` currently holds the null link.
    fn is_null(word: &Self::Word) -> bool;

    /// Resolves `word` (which lies at its own address, in any memory) to the address of a
    /// `size`-byte target aligned to `align` (a power of two), checking that the whole
    /// target lies in memory `ctx` covers. `Ok(None)` is the null link.
    fn load(
        ctx: &Self::Ctx,
        word: &Self::Word,
        size: u64,
        align: u64,
    ) -> Result<Option<NonNull<u8>>, PtrError>;

    /// Writes `target` (or null) into `word`, in place. Fails if `target` is not memory the
    /// context resolves into, or if this representation may not write at `word`'s address.
    fn store(
        ctx: &Self::Ctx,
        word: &Self::Word,
        target: Option<NonNull<u8>>,
    ) -> Result<(), PtrError>;

    /// The `len` bytes at `offset` (from the context's base) stop holding links: their
    /// object is being freed and the allocator may reuse them for anything. Representations
    /// that remember the words they wrote (Swizzle's export log) drop them; the others have
    /// nothing to do.
    #[inline]
    fn forget(ctx: &Self::Ctx, offset: u64, len: u64) {
        let _ = (ctx, offset, len);
    }

    /// The segment `ctx` resolves into grew in place: let the context cover its first
    /// `len` bytes. Returns whether it does (representations whose context is a fixed view,
    /// such as a private copy, do not follow growth and return `false`).
    ///
    /// # Safety
    /// The first `len` bytes from the context's base must be mapped, and stay mapped for as
    /// long as the context (or anything resolved through it) is used.
    #[inline]
    unsafe fn extend(ctx: &Self::Ctx, len: u64) -> bool {
        let _ = (ctx, len);
        false
    }
}

/// Whether `[off, off + size)` fits in `len` bytes and `off` is a multiple of `align`.
///
/// One rotate and one compare: a misaligned offset has low bits set, which the rotate moves
/// to the top, so it can never compare below `(len - size) >> k`. With constant `size` and
/// `align` (a `Link<T, _>` always knows them) the right-hand side is loop-invariant.
#[inline(always)]
pub(crate) fn fits(off: u64, len: u64, size: u64, align: u64) -> bool {
    let k = align.trailing_zeros();
    len >= size && off.rotate_right(k) <= (len - size) >> k
}

/// `addr` as a pointer if `[addr, addr + size)` lies inside `[base, base + len)` and `addr`
/// is a multiple of `align` ([`fits`]); `None` otherwise. The hot half of every `load`.
///
/// # Safety
/// `[base, base + len)` must be (part of) a mapping of this process: it then starts above
/// address 0 and does not wrap, so an address that fits in it is not null.
#[inline(always)]
pub(crate) unsafe fn resolve_in(
    addr: u64,
    base: u64,
    len: u64,
    size: u64,
    align: u64,
) -> Option<NonNull<u8>> {
    if fits(addr.wrapping_sub(base), len, size, align) {
        // SAFETY: addr = base + off with off <= len - size, inside the caller's mapping,
        // which starts above 0 and does not wrap: addr is not null.
        Some(unsafe { NonNull::new_unchecked(addr as *mut u8) })
    } else {
        None
    }
}

/// Builds the precise error for a target that failed [`fits`] (cold path).
#[cold]
#[inline(never)]
pub(crate) fn misfit(target: u64, base: u64, len: u64, size: u64, align: u64) -> PtrError {
    misfit_inline(target, base, len, size, align)
}

/// [`misfit`], inlined: for a hot path whose error block must not be a call (a call there
/// changes how the compiler lays out the whole loop around it; see `BaseRel::load`).
#[inline(always)]
pub(crate) fn misfit_inline(target: u64, base: u64, len: u64, size: u64, align: u64) -> PtrError {
    let off = target.wrapping_sub(base);
    if off.checked_add(size).is_none_or(|end| end > len) {
        PtrError::OutOfBounds {
            target,
            size,
            base,
            len,
        }
    } else {
        PtrError::Misaligned { target, align }
    }
}

#[cfg(test)]
mod tests {
    use super::fits;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn fits_matches_the_plain_definition(off: u64, len in 0u64..1 << 40, size in 0u64..64, k in 0u32..7) {
            let align = 1u64 << k;
            let plain = off.checked_add(size).is_some_and(|e| e <= len) && off % align == 0;
            prop_assert_eq!(fits(off, len, size, align), plain);
        }
    }
}
