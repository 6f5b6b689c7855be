//! In-segment layout of a [`Map`](super::Map): header, stripes, bucket table, nodes.

use bytemuck::Pod;
use core::cell::UnsafeCell;
use core::sync::atomic::AtomicU64;
use core::sync::atomic::Ordering::Acquire;
use relshm_ptr::{Link, LinkVisitor, Relocate, Repr};
use relshm_sync::RawRwLock;

use crate::shape::{MapLayout, Shape};

/// `"RSHMMAP1"` in little-endian: the first word of every map header.
pub const MAP_MAGIC: u64 = u64::from_le_bytes(*b"RSHMMAP1");
/// Number of lock stripes; bucket `b` belongs to stripe `b % STRIPES`.
pub const STRIPES: usize = 16;
// A bucket's stripe is then `hash % STRIPES` at every table size (a table holds whole
// chunks, so the bucket mask keeps those low bits).
const _: () = assert!(CHUNK.is_multiple_of(STRIPES));
/// log2 of the buckets per chunk.
pub const CHUNK_LOG2: u32 = 10;
/// Buckets per chunk.
pub const CHUNK: usize = 1 << CHUNK_LOG2;
/// Chunk links in a table: at most `DIR * CHUNK` buckets.
pub const DIR: usize = 2048;
/// log2 of the fewest buckets (one chunk).
pub const MIN_LOG2: u64 = CHUNK_LOG2 as u64;
/// log2 of the most buckets (a full table); beyond it chains just grow longer.
pub const MAX_LOG2: u64 = CHUNK_LOG2 as u64 + DIR.trailing_zeros() as u64;

pub(crate) const OP_NONE: u64 = 0;
/// `node` is being linked in as a new entry.
pub(crate) const OP_INSERT: u64 = 1;
/// `node` replaces `old` in place (update / insert over an existing key).
pub(crate) const OP_REPLACE: u64 = 2;
/// `node` is being unlinked.
pub(crate) const OP_REMOVE: u64 = 3;
/// The inline entry whose key `node` holds is being rewritten with `node`'s value (`node`
/// is a redo record, never linked).
pub(crate) const OP_REWRITE: u64 = 4;
/// Bumped when the meaning of the bytes changes (3: two entries inline in each bucket; 4:
/// buckets aligned to 64 bytes). Recorded in the map's directory record.
pub const LAYOUT_VERSION: u64 = 4;

/// One entry. Layout (`#[repr(C)]`): `next` link, `hash` (u64), key, value. A published
/// node is never written again except its `next` link: updates replace the node.
#[repr(C)]
pub struct MapNode<K, V, R: Repr> {
    pub(crate) next: Link<MapNode<K, V, R>, R>,
    pub(crate) hash: u64,
    pub(crate) key: K,
    pub(crate) value: V,
}

// SAFETY: #[repr(C)] of a link, a u64 and Pod key and value: valid for any bits; `next` is
// the only link.
unsafe impl<K: Pod, V: Pod, R: Repr> Relocate<R> for MapNode<K, V, R> {
    fn visit_links<Vis: LinkVisitor<R>>(&self, v: &mut Vis) {
        v.link(&self.next);
    }
}

/// Entries stored inline in each bucket.
pub const INLINE: usize = 2;
const _: () = assert!(INLINE == 2, "Slot::candidate picks between two entries");

/// One bucket. Layout (`#[repr(C)]`): `next` (the link to the bucket's chain of
/// [`MapNode`]s), [`INLINE`] hashes (of the entries stored inline; 0 = none: stored hashes
/// have their top bit set), then the [`INLINE`] entries (key, value). A bucket's first
/// entries live here, so most lookups touch one bucket of the table (one cache line for
/// `u64` keys and values) instead of a head link and a node elsewhere. Unlike a node, a
/// slot is rewritten in place (by writers holding its stripe, with word-sized atomic
/// stores: see `map::slot`).
///
/// Aligned to a cache line (64 bytes): a lookup then touches exactly one line of the table
/// for `u64` keys and values. Packed at 56 bytes, three slots in four straddled two lines,
/// and a lookup that missed in cache paid two misses, one waiting on the other.
#[repr(C, align(64))]
pub struct Slot<K, V, R: Repr> {
    pub(crate) next: Link<MapNode<K, V, R>, R>,
    pub(crate) hash: [AtomicU64; INLINE],
    pub(crate) entry: [UnsafeCell<Entry<K, V>>; INLINE],
}

/// A key and its value, as stored inline in a [`Slot`]. 8-aligned, so it fills the slot to
/// its end: every word a writer stores lies inside it.
#[repr(C, align(8))]
#[derive(Clone, Copy)]
pub struct Entry<K, V> {
    pub(crate) key: K,
    pub(crate) value: V,
}

// SAFETY: the link and hash are atomics; the entry is read and written only by holders of
// the slot's stripe lock (writers exclusively), or read with atomic word loads by
// lock-free readers that validate what they read (map::slot, map::seq).
unsafe impl<K: Pod, V: Pod, R: Repr> Sync for Slot<K, V, R> {}

/// [`CHUNK`] buckets (one heap allocation).
#[repr(C)]
pub struct Chunk<K, V, R: Repr> {
    pub(crate) slots: [Slot<K, V, R>; CHUNK],
}

// SAFETY: slots of a link, an atomic and Pod key and value: valid for any bits; each
// slot's `next` is its only link, visited in order.
unsafe impl<K: Pod, V: Pod, R: Repr> Relocate<R> for Chunk<K, V, R> {
    fn visit_links<Vis: LinkVisitor<R>>(&self, v: &mut Vis) {
        for slot in &self.slots {
            v.link(&slot.next);
        }
    }
}

/// The bucket table: `2^log2` buckets in `2^log2 / CHUNK` chunks. Layout: `log2` (u64),
/// reserved (u64), then [`DIR`] chunk links (null past the last chunk).
#[repr(C)]
pub struct Table<K, V, R: Repr> {
    pub(crate) log2: AtomicU64,
    pub(crate) reserved: AtomicU64,
    pub(crate) chunks: [Link<Chunk<K, V, R>, R>; DIR],
}

// SAFETY: atomics and links, valid for any bits; the chunk links are visited in order.
unsafe impl<K: Pod, V: Pod, R: Repr> Relocate<R> for Table<K, V, R> {
    fn visit_links<Vis: LinkVisitor<R>>(&self, v: &mut Vis) {
        self.chunks.visit_links(v);
    }
}

/// One lock stripe. Layout (1152 bytes): the robust [`RawRwLock`] (1088 bytes) over the
/// stripe's buckets, `len` (entries in them), the operation in flight (`intent`, `node`,
/// `old`: node offsets), `seq` (the stripe's seqlock word: odd while a writer is inside,
/// see `map::seq`) and three reserved words.
#[repr(C)]
pub struct Stripe {
    pub(crate) lock: RawRwLock,
    pub(crate) len: AtomicU64,
    pub(crate) intent: AtomicU64,
    pub(crate) node: AtomicU64,
    pub(crate) old: AtomicU64,
    pub(crate) seq: AtomicU64,
    pub(crate) reserved: [AtomicU64; 3],
}

/// Entries in all `stripes` (exact when no writer is active).
pub(crate) fn entries(stripes: &[Stripe; STRIPES]) -> u64 {
    stripes.iter().map(|s| s.len.load(Acquire)).sum()
}

/// Every stripe's lock held shared, a stripe whose writer died repaired first by `fix(s)`:
/// the read access of a whole map (no writer inside, readers in other processes welcome).
pub(crate) fn hold_stripes_shared<E: From<relshm_sync::LockError>>(
    stripes: &[Stripe; STRIPES],
    fix: impl Fn(usize) -> Result<(), E>,
) -> Result<Vec<relshm_sync::Held<'_>>, E> {
    let fix = &fix;
    (0..STRIPES)
        .map(|s| relshm_sync::Held::shared(&stripes[s].lock, None, move || fix(s)))
        .collect()
}

/// Makes a copied header's locks free (the resize lock and every stripe's): a translated
/// copy was taken with them held. Shared by the maps whose headers hold [`Stripe`]s.
pub(crate) fn fresh_locks(resize: &mut RawRwLock, stripes: &mut [Stripe; STRIPES]) {
    *resize = RawRwLock::new();
    for s in stripes {
        s.lock = RawRwLock::new();
    }
}

/// The map's root object.
///
/// # Layout (`#[repr(C)]`, 8-aligned)
///
/// | offset | field | meaning |
/// |---|---|---|
/// | 0 | `magic` | [`MAP_MAGIC`] |
/// | 8 | `layout` | fingerprint of key, value and pointer strategy |
/// | 16 | `moving` | offset of the node a resize is moving (0 = none) |
/// | 24 | `repairs` | how many times a dead holder's half-done work was repaired |
/// | 32 | `epoch` | seqlock word over the whole map: odd while a resize or clear runs |
/// | 40..64 | reserved | zero |
/// | 64 | `resize` | [`RawRwLock`]: shared by every operation, exclusive for resize and clear |
/// | 1152 | `stripes` | [`STRIPES`] × [`Stripe`] |
/// | 19584 | `table` | link to the live [`Table`] |
/// | 19584 + w | `new_table` | link to the table a resize is filling (null otherwise) |
#[repr(C)]
pub struct MapHeader<K, V, R: Repr> {
    pub(crate) magic: AtomicU64,
    pub(crate) layout: AtomicU64,
    pub(crate) moving: AtomicU64,
    pub(crate) repairs: AtomicU64,
    pub(crate) epoch: AtomicU64,
    pub(crate) reserved: [AtomicU64; 3],
    pub(crate) resize: RawRwLock,
    pub(crate) stripes: [Stripe; STRIPES],
    pub(crate) table: Link<Table<K, V, R>, R>,
    pub(crate) new_table: Link<Table<K, V, R>, R>,
}

// SAFETY: atomics, robust locks (every bit pattern a state) and links: valid for any bits;
// `table` and `new_table` are the only links, visited in order.
unsafe impl<K: Pod, V: Pod, R: Repr> Relocate<R> for MapHeader<K, V, R> {
    fn visit_links<Vis: LinkVisitor<R>>(&self, v: &mut Vis) {
        v.link(&self.table);
        v.link(&self.new_table);
    }
}

const _: () = {
    type H = MapHeader<u64, u64, relshm_ptr::Offset>;
    assert!(size_of::<Stripe>() == 1152);
    assert!(core::mem::offset_of!(H, resize) == 64);
    assert!(core::mem::offset_of!(H, stripes) == 1152);
    assert!(core::mem::offset_of!(H, table) == 19584);
};

/// Fingerprint of a map of `K` to `V` with strategy `R`.
pub(crate) fn layout<K, V, R: Repr>() -> u64 {
    fingerprint::<R>(Shape::of::<K>(), Shape::of::<V>())
}

/// [`layout`] of a map of `key`-shaped keys to `value`-shaped values (what a walk from a
/// record checks).
pub(crate) fn fingerprint<R: Repr>(key: Shape, value: Shape) -> u64 {
    let shape = [
        key.size,
        key.align,
        value.size,
        value.align,
        MapLayout::of::<R>(key, value).node.size,
        CHUNK as u64,
        DIR as u64,
        STRIPES as u64,
        LAYOUT_VERSION,
    ];
    let mut bytes = Vec::with_capacity(88);
    for x in shape {
        bytes.extend_from_slice(&x.to_le_bytes());
    }
    bytes.extend_from_slice(R::NAME.as_bytes());
    relshm_segment::directory::fnv1a(&bytes, 2)
}
