//! In-segment layout of a [`BytesMap`](super::BytesMap): header, table, nodes.

use crate::arena::OwnedIdent;
use crate::map::{STRIPES, Stripe};
use core::sync::atomic::Ordering::Relaxed;
use core::sync::atomic::{AtomicU32, AtomicU64};
use relshm_ptr::{Link, LinkVisitor, Relocate, Repr};
use relshm_sync::RawRwLock;

/// `"RSHMBMP1"` in little-endian: the first word of every byte-map header.
pub const BYTES_MAP_MAGIC: u64 = u64::from_le_bytes(*b"RSHMBMP1");
/// Bumped when the meaning of the bytes changes. Recorded in the directory record.
pub const LAYOUT_VERSION: u64 = 1;
/// log2 of the fewest buckets (at least [`STRIPES`], so a stripe owns whole buckets).
pub const MIN_LOG2: u64 = 6;
/// log2 of the most buckets; beyond it chains grow longer.
pub const MAX_LOG2: u64 = 30;
const _: () = assert!(1 << MIN_LOG2 >= STRIPES);
/// Longest key or value (a length field is 32 bits).
pub const MAX_LEN: usize = u32::MAX as usize;

/// One entry: a node and, right after it in the same heap block, its key bytes then its
/// value bytes. Layout (`#[repr(C)]`): `next` link, `hash` (u64), `key_len` and
/// `value_len` (u32 each), `bytes` (an array link to the `key_len + value_len` bytes; null
/// when both are empty). A published node is never written again except its `next` link:
/// an update publishes a new node in its place.
#[repr(C)]
pub struct BytesNode<R: Repr> {
    pub(crate) next: Link<BytesNode<R>, R>,
    pub(crate) hash: AtomicU64,
    pub(crate) key_len: AtomicU32,
    pub(crate) value_len: AtomicU32,
    pub(crate) bytes: Link<u8, R>,
}

impl<R: Repr> BytesNode<R> {
    /// Bytes behind the node (key and value), as its length fields say.
    pub(crate) fn data_len(&self) -> u64 {
        u64::from(self.key_len.load(Relaxed)) + u64::from(self.value_len.load(Relaxed))
    }
}

// SAFETY: #[repr(C)] of links and atomics, valid for any bits; `next` and the byte array
// are the links, visited in field order.
unsafe impl<R: Repr> Relocate<R> for BytesNode<R> {
    fn visit_links<V: LinkVisitor<R>>(&self, v: &mut V) {
        v.link(&self.next);
        let n = self.data_len();
        v.array(&self.bytes, n, n);
    }
}

/// The bucket table: `2^log2` head links in an array right after it (same heap block).
#[repr(C)]
pub struct BytesTable<R: Repr> {
    pub(crate) log2: AtomicU64,
    pub(crate) reserved: AtomicU64,
    pub(crate) heads: Link<Link<BytesNode<R>, R>, R>,
}

impl<R: Repr> BytesTable<R> {
    /// The number of buckets its `log2` claims (saturating: a corrupt value makes the
    /// array's size overflow, which every resolution reports).
    pub(crate) fn claimed_buckets(&self) -> u64 {
        1u64.checked_shl(self.log2.load(Relaxed) as u32)
            .filter(|_| self.log2.load(Relaxed) < 64)
            .unwrap_or(u64::MAX)
    }
}

// SAFETY: atomics and a link, valid for any bits; the head array is the only link.
unsafe impl<R: Repr> Relocate<R> for BytesTable<R> {
    fn visit_links<V: LinkVisitor<R>>(&self, v: &mut V) {
        let n = self.claimed_buckets();
        v.array(&self.heads, n, n);
    }
}

/// The map's root object.
///
/// # Layout (`#[repr(C)]`, 8-aligned)
///
/// | offset | field | meaning |
/// |---|---|---|
/// | 0 | `magic` | [`BYTES_MAP_MAGIC`] |
/// | 8 | `layout` | fingerprint of the layout version and pointer strategy |
/// | 16 | `repairs` | how many times a dead holder's work was repaired |
/// | 24 | `epoch` | seqlock word over the whole map: odd while a resize or clear runs |
/// | 32..64 | reserved | zero |
/// | 64 | `resize` | [`RawRwLock`]: shared by every operation, exclusive for resize and clear |
/// | 1152 | `stripes` | [`STRIPES`] × [`Stripe`] (its lock, `len` and `seq` are used) |
/// | 19584 | `table` | link to the live [`BytesTable`] |
///
/// Heap blocks: nodes are owned blocks tagged `"BN"` with their stripe's offset, tables
/// owned blocks tagged `"BT"` with the header's offset (a two-letter tag and the holder's offset in the heap's owner record). A repair
/// after a writer died frees every block of a stripe that no bucket reaches, and every
/// table but the live one: what a dead writer allocated and did not publish, or
/// unpublished and did not free yet.
#[repr(C)]
pub struct BytesMapHeader<R: Repr> {
    pub(crate) magic: AtomicU64,
    pub(crate) layout: AtomicU64,
    pub(crate) repairs: AtomicU64,
    pub(crate) epoch: AtomicU64,
    pub(crate) reserved: [AtomicU64; 4],
    pub(crate) resize: RawRwLock,
    pub(crate) stripes: [Stripe; STRIPES],
    pub(crate) table: Link<BytesTable<R>, R>,
}

// SAFETY: atomics, robust locks and a link, valid for any bits; `table` is the only link.
unsafe impl<R: Repr> Relocate<R> for BytesMapHeader<R> {
    fn visit_links<V: LinkVisitor<R>>(&self, v: &mut V) {
        v.link(&self.table);
    }
}

const _: () = {
    type H = BytesMapHeader<relshm_ptr::Offset>;
    assert!(core::mem::offset_of!(H, resize) == 64);
    assert!(core::mem::offset_of!(H, stripes) == 1152);
    assert!(core::mem::offset_of!(H, table) == 19584);
};

/// The ident of the nodes of the stripe at `stripe`.
pub(crate) const fn node_ident(stripe: u64) -> OwnedIdent {
    OwnedIdent::new(*b"BN", stripe)
}

/// The ident of the tables of the map whose header is at `header`.
pub(crate) const fn table_ident(header: u64) -> OwnedIdent {
    OwnedIdent::new(*b"BT", header)
}

/// Fingerprint of a byte map with strategy `R`.
pub(crate) fn layout<R: Repr>() -> u64 {
    let mut bytes = std::vec::Vec::with_capacity(32);
    for x in [
        LAYOUT_VERSION,
        STRIPES as u64,
        size_of::<BytesNode<R>>() as u64,
    ] {
        bytes.extend_from_slice(&x.to_le_bytes());
    }
    bytes.extend_from_slice(R::NAME.as_bytes());
    relshm_segment::directory::fnv1a(&bytes, 7)
}
