//! Pointer representations for data shared between processes that map a segment at
//! different addresses, behind one trait so the same collection code runs on each:
//!
//! | representation | stored word | per-hop cost | shared in place? |
//! |---|---|---|---|
//! | [`Raw`] | absolute address | range check | only in fixed-address mode, or after [`translate()`] |
//! | [`Offset`] | `target - &word` (0 null, 1 self-link) | one add + range check | yes |
//! | [`BaseRel`] | `target - base` of the segment | range check (the add folds into the next load) | yes, within one segment |
//! | [`SegRel`] | `(segment id, offset)` | table lookup (cached) + add + check | yes, across segments |
//! | [`Swizzle`] | `offset << 1 \| 1`, or the raw address once swizzled | range check (warm) | yes, swizzled in a private view |
//!
//! All loads are *checked*: a word from a segment is untrusted, so [`Link::get`] returns a
//! reference only to an aligned target that lies wholly in memory the context keeps mapped;
//! anything else is a [`PtrError`]. [`validate()`] walks a whole structure (cycles,
//! overlaps, a size limit), [`translate()`] copies one for a receiver, and
//! [`SwizzleView::export`] unswizzles. User types become relocatable with
//! [`relocatable!`].
//!
//! ```
//! use relshm_ptr::map::{memfd, Mapping, Sharing};
//! use relshm_ptr::{relocatable, Link, Offset, OffsetCtx};
//! use rustix::fd::AsFd;
//!
//! relocatable! {
//!     /// A list node.
//!     pub struct Node<R> { pub next: Link<Node<R>, R>, pub value: u64 }
//! }
//!
//! let fd = memfd("doc", 4096)?;
//! let a = Mapping::new(fd.as_fd(), 4096, Sharing::Shared)?;
//! let b = Mapping::new(fd.as_fd(), 4096, Sharing::Shared)?; // same bytes, other address
//! // SAFETY: the mappings outlive the contexts.
//! let (ca, cb) = unsafe { (OffsetCtx::new(a.region()), OffsetCtx::new(b.region())) };
//! let first: &Node<Offset> = ca.object(64)?;
//! let second: &Node<Offset> = ca.object(128)?;
//! first.next.set(&ca, Some(second))?;
//! // Through the other mapping the same bytes lead to the same object.
//! let via_b: &Node<Offset> = cb.object(64)?;
//! let target = via_b.next.get(&cb)?.unwrap();
//! assert_eq!(target as *const _ as usize - b.as_ptr() as usize, 128);
//! # Ok::<(), relshm_ptr::PtrError>(())
//! ```

mod baserel;
mod error;
mod link;
pub mod map;
mod offset;
mod raw;
mod relocate;
mod repr;
mod segrel;
mod swizzle;
pub mod translate;
pub mod validate;

pub use baserel::BaseRel;
pub use error::PtrError;
pub use link::Link;
pub use offset::{Offset, OffsetCtx};
pub use raw::{Raw, RawCtx};
pub use relocate::{LinkVisitor, Relocate, array_bytes};
pub use repr::Repr;
pub use segrel::{SegRel, SegRelWord, SegTable};
pub use swizzle::{Swizzle, SwizzleView, unswizzled};
pub use translate::{Layout, Space, Translated, translate, translate_slab};
pub use validate::{Limits, Report, validate};

use crate::repr::{fits, misfit};

/// The address `base + off` of a `size`-byte object that must lie wholly inside the `len`
/// bytes at `base` and start at a multiple of `align` (a power of two; `base` is
/// page-aligned). Fails with [`PtrError::OutOfBounds`] if it does not lie inside, and with
/// [`PtrError::Misaligned`] if it does but `off` is misaligned, so each mistake is named
/// for what it is.
///
/// ```
/// use relshm_ptr::{PtrError, check_offset};
/// assert_eq!(check_offset(0x1000, 256, 64, 16, 8), Ok(0x1040));
/// assert!(matches!(check_offset(0x1000, 256, 68, 16, 8), Err(PtrError::Misaligned { .. })));
/// assert!(matches!(check_offset(0x1000, 256, 248, 16, 8), Err(PtrError::OutOfBounds { .. })));
/// ```
pub fn check_offset(base: u64, len: u64, off: u64, size: u64, align: u64) -> Result<u64, PtrError> {
    debug_assert!(align.is_power_of_two());
    let target = base.wrapping_add(off);
    if fits(off, len, size, align) {
        Ok(target)
    } else {
        Err(misfit(target, base, len, size, align))
    }
}

/// The object of type `T` at offset `off` of the mapped range `[base, base + len)`.
fn object_in<'a, T>(base: u64, len: u64, off: u64) -> Result<&'a T, PtrError> {
    let addr = check_offset(
        base,
        len,
        off,
        size_of::<T>() as u64,
        align_of::<T>() as u64,
    )?;
    // SAFETY: callers pass a range their context keeps mapped for 'a; the object lies
    // wholly inside it and is aligned; callers require T: Relocate (any bits valid).
    Ok(unsafe { &*(addr as *const T) })
}

impl RawCtx {
    /// The object of type `T` at offset `off` of the region, checked.
    pub fn object<T: Relocate<Raw>>(&self, off: u64) -> Result<&T, PtrError> {
        object_in(self.base(), self.len(), off)
    }
}

impl OffsetCtx {
    /// The object of type `T` at offset `off` of the region, checked (for [`Offset`] and
    /// [`BaseRel`] links, which both resolve through this context).
    pub fn object<T: Relocate<R>, R: Repr<Ctx = OffsetCtx>>(
        &self,
        off: u64,
    ) -> Result<&T, PtrError> {
        object_in(self.base(), self.len(), off)
    }
}

impl SegTable {
    /// The object of type `T` at offset `off` of segment `id`, checked.
    pub fn object<T: Relocate<SegRel>>(&self, id: u64, off: u64) -> Result<&T, PtrError> {
        let (base, len) = self.lookup_region(id)?;
        object_in(base, len, off)
    }
}
