//! In-segment layout of a [`List`](super::List): its header and nodes.

use bytemuck::Pod;
use core::sync::atomic::AtomicU64;
use relshm_ptr::{Link, LinkVisitor, Relocate, Repr};
use relshm_sync::RawMutex;

use crate::shape::{ListNodeLayout, Shape};

/// `"RSHMLST1"` in little-endian: the first word of every list header.
pub const LIST_MAGIC: u64 = u64::from_le_bytes(*b"RSHMLST1");

/// Bumped when the meaning of a list's bytes changes. Recorded in its directory record.
pub const LAYOUT_VERSION: u64 = 1;

/// No operation in flight.
pub(crate) const OP_NONE: u64 = 0;
/// A node is being linked in: if the dead writer did not publish it, repair frees it.
pub(crate) const OP_INSERT: u64 = 1;
/// A node is being unlinked: once it is out of the chain, repair frees it.
pub(crate) const OP_REMOVE: u64 = 2;

/// One list element. Layout (`#[repr(C)]`): `next` link, `prev` link (one word each, two
/// for [`SegRel`](relshm_ptr::SegRel)), then the value.
#[repr(C)]
pub struct ListNode<T, R: Repr> {
    pub(crate) next: Link<ListNode<T, R>, R>,
    pub(crate) prev: Link<ListNode<T, R>, R>,
    pub(crate) value: T,
}

// SAFETY: #[repr(C)] of two links (valid for any bits by the Repr contract) and a Pod value
// (valid for any bits, holds no links); both links are visited, in field order.
unsafe impl<T: Pod, R: Repr> Relocate<R> for ListNode<T, R> {
    fn visit_links<V: LinkVisitor<R>>(&self, v: &mut V) {
        v.link(&self.next);
        v.link(&self.prev);
    }
}

/// The list's root object in the segment.
///
/// # Layout (`#[repr(C)]`, 8-aligned)
///
/// | offset | field | meaning |
/// |---|---|---|
/// | 0 | `magic` | [`LIST_MAGIC`] |
/// | 8 | `layout` | fingerprint of the element type and pointer strategy |
/// | 16 | `len` | number of elements |
/// | 24 | `intent` | operation in flight: 0 none, 1 insert, 2 remove |
/// | 32 | `intent_node` | offset of the node that operation links or unlinks |
/// | 40 | `repairs` | how many times a dead holder's half-done work was repaired |
/// | 48..64 | reserved | zero |
/// | 64 | `lock` | robust [`RawMutex`] (40 bytes) guarding everything below and the nodes |
/// | 104..128 | padding | zero |
/// | 128 | `head` | first node, or null |
/// | 128 + w | `tail` | last node, or null (`w` = link width: 8, 16 for SegRel) |
#[repr(C)]
pub struct ListHeader<T, R: Repr> {
    pub(crate) magic: AtomicU64,
    pub(crate) layout: AtomicU64,
    pub(crate) len: AtomicU64,
    pub(crate) intent: AtomicU64,
    pub(crate) intent_node: AtomicU64,
    pub(crate) repairs: AtomicU64,
    pub(crate) reserved: [AtomicU64; 2],
    pub(crate) lock: RawMutex,
    pub(crate) pad: [AtomicU64; 3],
    pub(crate) head: Link<ListNode<T, R>, R>,
    pub(crate) tail: Link<ListNode<T, R>, R>,
}

// SAFETY: #[repr(C)]; atomics and the RawMutex (all atomics, every lock word a state) are
// valid for any bits, as are links; head and tail are the only links, visited in order.
unsafe impl<T: Pod, R: Repr> Relocate<R> for ListHeader<T, R> {
    fn visit_links<V: LinkVisitor<R>>(&self, v: &mut V) {
        v.link(&self.head);
        v.link(&self.tail);
    }
}

const _: () = assert!(core::mem::offset_of!(ListHeader<u64, relshm_ptr::Offset>, head) == 128);

impl<T: Pod, R: Repr> ListHeader<T, R> {
    /// An empty list header.
    pub(crate) fn empty() -> Self {
        Self {
            magic: AtomicU64::new(0),
            layout: AtomicU64::new(layout::<T, R>()),
            len: AtomicU64::new(0),
            intent: AtomicU64::new(OP_NONE),
            intent_node: AtomicU64::new(0),
            repairs: AtomicU64::new(0),
            reserved: Default::default(),
            lock: RawMutex::new(),
            pad: Default::default(),
            head: Link::null(),
            tail: Link::null(),
        }
    }
}

/// Fingerprint of a list of `T` with strategy `R`: sizes, alignment and the strategy name.
pub(crate) fn layout<T, R: Repr>() -> u64 {
    fingerprint::<R>(Shape::of::<T>())
}

/// [`layout`] of a list of `elem`-shaped elements (what a walk from a record checks).
pub(crate) fn fingerprint<R: Repr>(elem: Shape) -> u64 {
    let shape = [
        elem.size,
        elem.align,
        ListNodeLayout::of::<R>(elem).node.size,
    ];
    let mut bytes = Vec::with_capacity(32);
    for x in shape {
        bytes.extend_from_slice(&x.to_le_bytes());
    }
    bytes.extend_from_slice(R::NAME.as_bytes());
    relshm_segment::directory::fnv1a(&bytes, 1)
}
