//! [`Link<T, R>`]: a typed link field stored with representation `R`.

use crate::{PtrError, Relocate, Repr};
use core::fmt;
use core::marker::{PhantomData, PhantomPinned};
use core::ptr::NonNull;

/// A link to a `T`, stored as `R::Word` inside a `#[repr(C)]` object in a segment.
///
/// # Why a self-relative link cannot be moved by accident
/// An [`Offset`](crate::Offset) word means "target minus my own address": copying its bytes
/// elsewhere silently changes its target. Rust moves values by copying bytes, so the API
/// never lets a *non-null* link exist as a movable value:
/// - the only owned link is [`Link::null`], whose word is all zero and means the same
///   everywhere (null is position independent in every representation);
/// - a link becomes non-null only through [`Link::set`], which takes `&self` and writes the
///   word in place (the word is an atomic); representations whose meaning depends on the
///   word's address refuse to write a word outside the region they resolve into, so a
///   link in a local variable (which could then be moved) can never be made non-null;
/// - `Link` is neither `Clone` nor `Copy`, and segment memory is only ever reached through
///   shared references (`&T` from [`Link::get`]), so safe code cannot `mem::swap`,
///   `mem::replace` or assign over a placed link;
/// - it is `!Unpin` (`PhantomPinned`), so pinned projections keep it in place too.
///
/// Moving a placed object therefore needs `unsafe` (a raw `ptr::copy`), which is where the
/// duty to re-link it belongs.
#[repr(transparent)]
pub struct Link<T, R: Repr> {
    word: R::Word,
    _target: PhantomData<*const T>,
    _pinned: PhantomPinned,
}

// SAFETY: a Link is its word (atomics, Sync by the Repr contract); the PhantomData only
// records the target type, and sharing a link across threads shares nothing else.
unsafe impl<T, R: Repr> Sync for Link<T, R> {}
// SAFETY: as for Sync: sending a link sends only its word.
unsafe impl<T, R: Repr> Send for Link<T, R> where R::Word: Send {}

impl<T, R: Repr> Link<T, R> {
    /// A null link: the only link value that can be created and moved freely.
    pub fn null() -> Self {
        Self {
            word: R::null(),
            _target: PhantomData,
            _pinned: PhantomPinned,
        }
    }

    /// Whether the link is null.
    #[inline(always)]
    pub fn is_null(&self) -> bool {
        R::is_null(&self.word)
    }

    /// The stored word (for walks and tools that inspect the encoding).
    pub fn word(&self) -> &R::Word {
        &self.word
    }

    /// Resolves the link to the address of its target, checked (bounds, alignment, fit).
    #[inline(always)]
    pub fn get_ptr(&self, ctx: &R::Ctx) -> Result<Option<NonNull<T>>, PtrError> {
        Ok(R::load(
            ctx,
            &self.word,
            size_of::<T>() as u64,
            align_of::<T>() as u64,
        )?
        .map(NonNull::cast))
    }

    /// Writes `target` (or null) into the link, in place.
    #[inline]
    pub fn set(&self, ctx: &R::Ctx, target: Option<&T>) -> Result<(), PtrError> {
        R::store(ctx, &self.word, target.map(|t| NonNull::from(t).cast()))
    }

    /// Writes the target at `target` (or null) into the link, in place. Unlike
    /// [`set`](Self::set) the target needs no reference: its bytes may not be initialised
    /// yet (the representation checks only where it lies).
    #[inline]
    pub fn set_ptr(&self, ctx: &R::Ctx, target: Option<NonNull<T>>) -> Result<(), PtrError> {
        R::store(ctx, &self.word, target.map(NonNull::cast))
    }
}

impl<T, R: Repr> Link<T, R> {
    /// Resolves the link as the first of `count` contiguous `T`s, checked as one target of
    /// `count * size_of::<T>()` bytes (bounds, alignment, fit; an overflowing size is
    /// [`PtrError::BadLayout`]). `count` is usually read from a segment: it bounds nothing
    /// this process allocates.
    #[inline]
    pub fn get_array_ptr(&self, ctx: &R::Ctx, count: u64) -> Result<Option<NonNull<T>>, PtrError> {
        let size = crate::relocate::array_bytes::<T>(count, count)?;
        Ok(R::load(ctx, &self.word, size, align_of::<T>() as u64)?.map(NonNull::cast))
    }
}

impl<T: Relocate<R>, R: Repr> Link<T, R> {
    /// Resolves the link to a slice of `len` `T`s (see
    /// [`get_array_ptr`](Self::get_array_ptr)); a null link is an empty slice when `len`
    /// is 0 and `None` otherwise. As with [`get`](Self::get), every bit pattern is a valid
    /// `T` ([`Relocate`]); elements that other processes may write meanwhile are read under
    /// the lock that guards them, or copied out word by word and validated (the
    /// collections' seqlock readers).
    #[inline]
    pub fn get_slice<'a>(&self, ctx: &'a R::Ctx, len: u64) -> Result<Option<&'a [T]>, PtrError> {
        match self.get_array_ptr(ctx, len)? {
            // SAFETY: get_array_ptr checked an aligned, in-bounds range of `len` Ts that
            // stays mapped while `ctx` lives ('a); any bits are a valid T (Relocate).
            Some(p) => Ok(Some(unsafe {
                core::slice::from_raw_parts(p.as_ptr(), len as usize)
            })),
            None if len == 0 => Ok(Some(&[])),
            None => Ok(None),
        }
    }
}

impl<T: Relocate<R>, R: Repr> Link<T, R> {
    /// Resolves the link to a reference to its target.
    ///
    /// The target lies wholly inside memory the context keeps mapped, is aligned, and (by
    /// the [`Relocate`] contract) every bit pattern is a valid `T`, so no bytes in a segment
    /// can make this unsound.
    #[inline(always)]
    pub fn get<'a>(&self, ctx: &'a R::Ctx) -> Result<Option<&'a T>, PtrError> {
        // SAFETY: `load` guarantees an aligned, in-bounds `T`-sized range that stays mapped
        // while `ctx` lives ('a); `T: Relocate` makes every bit pattern a valid T.
        Ok(self.get_ptr(ctx)?.map(|p| unsafe { p.as_ref() }))
    }
}

impl<T, R: Repr> Default for Link<T, R> {
    fn default() -> Self {
        Self::null()
    }
}

impl<T, R: Repr> fmt::Debug for Link<T, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Link<{}>({:?})", R::NAME, self.word)
    }
}
