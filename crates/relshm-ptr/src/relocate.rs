//! Making user types relocatable: [`Relocate`] lists a type's links for the walks
//! (validate, translate, swizzle), and [`relocatable!`](crate::relocatable) implements it.

use crate::{Link, Repr};
use core::sync::atomic::{
    AtomicI8, AtomicI16, AtomicI32, AtomicI64, AtomicU8, AtomicU16, AtomicU32, AtomicU64,
};

/// Receives every link of an object, with its static target type, during a walk.
pub trait LinkVisitor<R: Repr> {
    /// Called once per link field (null or not) that leads to one `T`.
    fn link<T: Relocate<R>>(&mut self, link: &Link<T, R>);

    /// Called once per link field (null or not) that leads to an array: `cap` contiguous
    /// `T`s (the object's extent), of which the first `len` hold values and are visited.
    /// Both numbers are read from the object holding the link, so they are untrusted:
    /// walks check `len <= cap` and that `cap * size_of::<T>()` bytes fit where the link
    /// leads (see [`Link::get_array_ptr`]).
    fn array<T: Relocate<R>>(&mut self, link: &Link<T, R>, len: u64, cap: u64);
}

/// The byte size of an array of `cap` `T`s holding `len` values, checked: `len <= cap` and
/// the size does not overflow. What every walk checks before resolving an array link.
pub fn array_bytes<T>(len: u64, cap: u64) -> Result<u64, crate::PtrError> {
    if len > cap {
        return Err(crate::PtrError::BadLayout {
            what: "an array's length exceeds its capacity: the segment is corrupted",
        });
    }
    cap.checked_mul(size_of::<T>() as u64)
        .ok_or(crate::PtrError::BadLayout {
            what: "an array's capacity times its element size overflows: the segment is \
                   corrupted",
        })
}

/// [`array_bytes`], and that the link is null exactly when the array has no capacity (an
/// array never owns an empty allocation): what walks check of an array link.
pub(crate) fn array_shape<T>(null: bool, len: u64, cap: u64) -> Result<u64, crate::PtrError> {
    let size = array_bytes::<T>(len, cap)?;
    if null != (size == 0) {
        return Err(crate::PtrError::BadLayout {
            what: "an array link is null with a capacity, or not null without one: the \
                   segment is corrupted",
        });
    }
    Ok(size)
}

/// A type that may live in a segment whose links use representation `R`.
///
/// Implement it with [`relocatable!`](crate::relocatable), which checks the field types.
///
/// # Safety
/// The type is `#[repr(C)]` (or a primitive), fixed width (no `usize`, `bool`, enums or
/// references), every bit pattern is a valid value (bytes in a segment are untrusted), and
/// [`visit_links`](Relocate::visit_links) reports *every* link the value contains, exactly
/// once, in field order. Walks trust that list to rewrite or check links.
pub unsafe trait Relocate<R: Repr>: Sized {
    /// Calls `v.link` for each link in `self`.
    fn visit_links<V: LinkVisitor<R>>(&self, v: &mut V);
}

macro_rules! leaf {
    ($($t:ty),*) => {$(
        // SAFETY: a fixed-width integer (or atomic integer) is valid for every bit pattern
        // and holds no link.
        unsafe impl<R: Repr> Relocate<R> for $t {
            #[inline(always)]
            fn visit_links<V: LinkVisitor<R>>(&self, _: &mut V) {}
        }
    )*};
}

leaf!(u8, u16, u32, u64, i8, i16, i32, i64);
leaf!(
    AtomicU8, AtomicU16, AtomicU32, AtomicU64, AtomicI8, AtomicI16, AtomicI32, AtomicI64
);

// SAFETY: an array of valid-for-any-bits elements is valid for any bits; its links are the
// elements' links, visited in order.
unsafe impl<R: Repr, T: Relocate<R>, const N: usize> Relocate<R> for [T; N] {
    #[inline]
    fn visit_links<V: LinkVisitor<R>>(&self, v: &mut V) {
        for x in self {
            x.visit_links(v);
        }
    }
}

// SAFETY: a Link is its word, which the Repr contract makes valid for any bits; it is one
// link and reports itself.
unsafe impl<R: Repr, T: Relocate<R>> Relocate<R> for Link<T, R> {
    #[inline(always)]
    fn visit_links<V: LinkVisitor<R>>(&self, v: &mut V) {
        v.link(self);
    }
}

/// Declares a `#[repr(C)]` struct whose fields are all [`Relocate`] and implements
/// [`Relocate`] for it, visiting every field in order.
///
/// Two forms: generic over the representation (the struct's only type parameter, spelt
/// `<R>`), or for one fixed representation (`struct Name in ReprType`).
///
/// ```
/// use relshm_ptr::{relocatable, Link, Offset, Relocate, Repr};
///
/// relocatable! {
///     /// A list node that works with every representation.
///     pub struct Node<R> {
///         /// Next node, or null.
///         pub next: Link<Node<R>, R>,
///         /// Payload.
///         pub value: u64,
///     }
/// }
///
/// relocatable! {
///     /// A pair of offset links.
///     pub struct Pair in Offset {
///         /// Left.
///         pub left: Link<Node<Offset>, Offset>,
///         /// Right.
///         pub right: Link<Node<Offset>, Offset>,
///     }
/// }
/// # fn links<R: Repr, T: Relocate<R>>(_: &T) {}
/// # links::<Offset, _>(&Pair { left: Link::null(), right: Link::null() });
/// ```
///
/// A field type that is not [`Relocate`] (`usize`, `bool`, a reference, an enum) is a
/// compile error:
///
/// ```compile_fail
/// relshm_ptr::relocatable! {
///     pub struct Bad<R> { pub len: usize, pub next: relshm_ptr::Link<Bad<R>, R> }
/// }
/// ```
#[macro_export]
macro_rules! relocatable {
    (
        $(#[$meta:meta])*
        $vis:vis struct $name:ident <R> {
            $( $(#[$fmeta:meta])* $fvis:vis $field:ident : $ty:ty ),* $(,)?
        }
    ) => {
        $(#[$meta])*
        #[repr(C)]
        $vis struct $name<R: $crate::Repr> {
            $( $(#[$fmeta])* $fvis $field: $ty, )*
        }

        // SAFETY: #[repr(C)] and every field is Relocate<R> (checked by the calls below),
        // so every bit pattern is valid; every field is visited once, in order.
        unsafe impl<R: $crate::Repr> $crate::Relocate<R> for $name<R> {
            #[inline]
            fn visit_links<V: $crate::LinkVisitor<R>>(&self, v: &mut V) {
                $( <$ty as $crate::Relocate<R>>::visit_links(&self.$field, v); )*
            }
        }
    };
    (
        $(#[$meta:meta])*
        $vis:vis struct $name:ident in $repr:ty {
            $( $(#[$fmeta:meta])* $fvis:vis $field:ident : $ty:ty ),* $(,)?
        }
    ) => {
        $(#[$meta])*
        #[repr(C)]
        $vis struct $name {
            $( $(#[$fmeta])* $fvis $field: $ty, )*
        }

        // SAFETY: #[repr(C)] and every field is Relocate (checked by the calls below), so
        // every bit pattern is valid; every field is visited once, in order.
        unsafe impl $crate::Relocate<$repr> for $name {
            #[inline]
            fn visit_links<V: $crate::LinkVisitor<$repr>>(&self, v: &mut V) {
                $( <$ty as $crate::Relocate<$repr>>::visit_links(&self.$field, v); )*
            }
        }
    };
}
