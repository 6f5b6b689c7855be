//! In-segment layout of a [`Vec`](super::Vec): its header and its buffer.

use crate::arena::OwnedIdent;
use crate::shape::Shape;
use bytemuck::Pod;
use core::sync::atomic::AtomicU64;
use relshm_ptr::{Link, LinkVisitor, Relocate, Repr};
use relshm_sync::RawRwLock;

/// `"RSHMVEC1"` in little-endian: the first word of every vector header.
pub const VEC_MAGIC: u64 = u64::from_le_bytes(*b"RSHMVEC1");
/// Bumped when the meaning of a vector's bytes changes. Recorded in its directory record.
pub const LAYOUT_VERSION: u64 = 1;
/// Bytes of a buffer before its first element: the heap's owner record (16), the
/// buffer's capacity (8), reserved (8).
pub const BUF_HEADER: u64 = 32;
/// Where the capacity word sits, counted back from the first element.
pub(crate) const CAP_BACK: u64 = 16;
/// Largest element alignment a buffer provides (its payload is 16-aligned, and so is
/// `BUF_HEADER`).
pub const MAX_ELEM_ALIGN: usize = 16;

/// One element as the walks see it: plain data, no links (`#[repr(transparent)]`, so a
/// buffer of `Elem<T>` is a buffer of `T`).
#[repr(transparent)]
pub struct Elem<T>(pub(crate) T);

// SAFETY: transparent over a Pod value: valid for any bits, holds no link.
unsafe impl<T: Pod, R: Repr> Relocate<R> for Elem<T> {
    #[inline(always)]
    fn visit_links<V: LinkVisitor<R>>(&self, _: &mut V) {}
}

/// The vector's root object.
///
/// # Layout (`#[repr(C)]`, 8-aligned)
///
/// | offset | field | meaning |
/// |---|---|---|
/// | 0 | `magic` | [`VEC_MAGIC`] |
/// | 8 | `layout` | fingerprint of the element type and pointer strategy |
/// | 16 | `len` | elements in use |
/// | 24 | `cap` | elements the buffer holds (a copy of the buffer's own capacity word) |
/// | 32 | `seq` | seqlock word: odd while a writer holds the vector |
/// | 40 | `repairs` | how many times a dead writer's work was repaired |
/// | 48 | `pending_buf` | offset of the first element of a buffer being published, 0 = none |
/// | 56 | `pending_len` | the length that buffer holds |
/// | 64 | `lock` | robust [`RawRwLock`] (1088 bytes): shared by readers, exclusive by writers |
/// | 1152 | `buf` | link to the first element of the buffer, null when the capacity is 0 |
///
/// The buffer is an owned heap block (its heap owner record says tag `"VB"` and the
/// header's offset) laid out as `[owner record (16)][capacity (8)][reserved (8)][elements]`.
/// Publishing a new buffer is the one store of `buf`; `cap` and `len` follow (an insert or
/// remove in the middle changes both buffer and length). A writer killed in between is
/// finished by the repair: the capacity from the buffer's own capacity word, the length
/// from `pending_len` when the linked buffer is `pending_buf`.
#[repr(C)]
pub struct VecHeader<T, R: Repr> {
    pub(crate) magic: AtomicU64,
    pub(crate) layout: AtomicU64,
    pub(crate) len: AtomicU64,
    pub(crate) cap: AtomicU64,
    pub(crate) seq: AtomicU64,
    pub(crate) repairs: AtomicU64,
    pub(crate) pending_buf: AtomicU64,
    pub(crate) pending_len: AtomicU64,
    pub(crate) lock: RawRwLock,
    pub(crate) buf: Link<Elem<T>, R>,
}

// SAFETY: #[repr(C)] of atomics, a robust lock (every bit pattern a state) and a link:
// valid for any bits; `buf` is the only link, an array of `cap` elements, `len` in use.
unsafe impl<T: Pod, R: Repr> Relocate<R> for VecHeader<T, R> {
    fn visit_links<V: LinkVisitor<R>>(&self, v: &mut V) {
        use core::sync::atomic::Ordering::Relaxed;
        v.array(&self.buf, self.len.load(Relaxed), self.cap.load(Relaxed));
    }
}

const _: () = assert!(core::mem::offset_of!(VecHeader<u64, relshm_ptr::Offset>, buf) == 1152);

/// The ident of the buffers of the vector whose header is at `header`.
pub(crate) const fn ident(header: u64) -> OwnedIdent {
    OwnedIdent::new(*b"VB", header)
}

/// Fingerprint of a vector of `T` with strategy `R`.
pub(crate) fn layout<T, R: Repr>() -> u64 {
    fingerprint::<R>(Shape::of::<T>())
}

/// [`layout`] of a vector of `elem`-shaped elements (what a walk from a record checks).
pub(crate) fn fingerprint<R: Repr>(elem: Shape) -> u64 {
    let mut bytes = std::vec::Vec::with_capacity(40);
    for x in [elem.size, elem.align, BUF_HEADER, LAYOUT_VERSION] {
        bytes.extend_from_slice(&x.to_le_bytes());
    }
    bytes.extend_from_slice(R::NAME.as_bytes());
    relshm_segment::directory::fnv1a(&bytes, 6)
}
