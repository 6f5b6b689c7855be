//! [`Map`]: a hash map in a segment, generic over the pointer strategy `R`, shared
//! read/write by several processes with lock striping.
//!
//! Separate chaining with the first entries inline: a bucket table of chunked [`Slot`]s,
//! each holding [`INLINE`] entries in place and the link to a chain of further nodes from
//! the segment heap. A lookup that hits an inline entry touches one bucket of the table (a
//! plain chained map pays a head link, then a node elsewhere: two dependent misses at DRAM
//! sizes); with two entries per bucket few buckets overflow into the chain.
//! Locks: one readers-writer lock over the whole map (`resize`), taken *shared* by every
//! operation and exclusively only to resize or clear, and [`STRIPES`] readers-writer locks
//! each over the buckets `b ≡ s (mod STRIPES)`: readers in different processes take
//! different reader slots and do not serialise; writers serialise per stripe only.
//!
//! Owner death: a published node is immutable except its `next` link, so every chain
//! change (insert, update by replacement, remove) is one publishing link store, preceded by
//! an intent record in the stripe. An inline entry is published or removed by one store of
//! its hash in the slot; its value is rewritten in place only after a redo record (a node with
//! the new value) is named by the stripe's intent. A writer killed at any point leaves the
//! old or the new state, or a rewrite the repair finishes; the next locker learns of the
//! death from the lock, frees the node of an unfinished operation (or the replaced one),
//! and recounts the stripe. A resize copies inline entries idempotently, records the node
//! it is moving, and is finished by the next exclusive locker.
//!
//! Reads: [`Map::get`] and [`MapReader`] take no lock (seqlocks, see `seq`), so readers in
//! different processes never write a shared line; [`MapReadGuard`] holds every lock
//! shared for a consistent view across many reads. For many lookups in a row, the
//! guard's [`get`](MapReadGuard::get) and the reader's
//! [`get_many`](MapReader::get_many) are the fast ones: both resolve the table once; the
//! guard then checks nothing per lookup (it holds the locks), `get_many` validates once per
//! call.
//!
//! ```
//! use relshm_collections::arena::Arena;
//! use relshm_collections::map::Map;
//! use relshm_ptr::Offset;
//! use relshm_segment::{CreateOptions, Placement, Segment};
//!
//! let seg = Segment::create_unnamed(&CreateOptions::new(4 << 20))?;
//! let arena = Arena::<Offset>::new(&seg)?;
//! let map = Map::<u64, u64, Offset>::create(&arena)?;
//! map.insert(7, 49)?;
//! map.update(&7, |v| *v += 1)?;
//!
//! let other = seg.reopen(Placement::Anywhere)?; // another address, same bytes
//! let arena2 = Arena::<Offset>::new(&other)?;
//! let map2 = Map::<u64, u64, Offset>::open(&arena2, map.offset())?;
//! assert_eq!(map2.get(&7)?, Some(50));
//! assert_eq!(map2.verify()?, 1);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod buckets;
mod handle;
mod key;
mod layout;
mod ops;
mod read;
mod reader;
mod repair;
mod resize;
mod seq;
mod slot;
mod translate;

pub use handle::Map;
pub use key::ByteKey;
pub use layout::{
    CHUNK, Chunk, DIR, Entry, INLINE, LAYOUT_VERSION, MAP_MAGIC, MAX_LOG2, MIN_LOG2, MapHeader,
    MapNode, STRIPES, Slot, Stripe, Table,
};
pub(crate) use layout::{
    CHUNK_LOG2, OP_NONE, entries, fingerprint, fresh_locks, hold_stripes_shared,
};
pub use read::MapReadGuard;
pub use reader::MapReader;

use crate::arena::{Arena, Result, check_header, corrupt};

/// What a map is called in errors.
const WHAT: &str = "relshm Map";
use bytemuck::Pod;
use core::hash::{BuildHasher, Hash};
use core::sync::atomic::Ordering::{Acquire, Relaxed, Release};
use relshm_ptr::{Link, Repr};
use relshm_sync::Held;

/// The hasher every map uses (deterministic, so every process agrees): FxHash. Compare
/// with `std::collections::HashMap<K, V, MapHasher>` to measure the map, not the hash.
pub type MapHasher = rustc_hash::FxBuildHasher;

/// The hash of `key` as every map computes it: FxHash with the top bit set, so a stored
/// hash is never 0 (which marks an empty inline slot). Buckets use the low bits.
#[inline]
pub fn hash_key<K: Hash>(key: &K) -> u64 {
    MapHasher::default().hash_one(key) | 1 << 63
}

/// Whether a node holding `n_key` (whose hash is `n_hash`) is `key` (hashing to `hash`). A
/// key of at most one word is compared directly (as cheap as the hash, one branch less);
/// larger keys compare the stored hash first.
#[inline(always)]
pub(crate) fn matches<K: MapKey>(n_hash: u64, n_key: &K, hash: u64, key: &K) -> bool {
    if size_of::<K>() <= 8 {
        n_key == key
    } else {
        n_hash == hash && n_key == key
    }
}

/// What a map key must be: plain data, compared and hashed by value.
pub trait MapKey: Pod + Eq + Hash {}
impl<K: Pod + Eq + Hash> MapKey for K {}

/// The map as one borrow of its handle sees it: every operation is written against this
/// view (two references, `Copy`), which ties what it resolves to the borrowed [`Map`].
pub(crate) struct MapView<'a, K, V, R: Repr> {
    pub(crate) arena: &'a Arena<R>,
    pub(crate) hdr: &'a MapHeader<K, V, R>,
    off: u64,
}

impl<K, V, R: Repr> Clone for MapView<'_, K, V, R> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<K, V, R: Repr> Copy for MapView<'_, K, V, R> {}

type Node<K, V, R> = MapNode<K, V, R>;

/// The whole map held exclusively inside an epoch write section (which ends first: fields
/// drop in order).
pub(crate) struct GlobalWrite<'a> {
    _section: crate::seqlock::WriteSection<'a>,
    _held: Held<'a>,
}

impl<'a, K: MapKey, V: Pod, R: Repr> MapView<'a, K, V, R> {
    /// Creates an empty map (with [`CHUNK`] buckets) in the arena's segment.
    /// Initialises the fresh header of a new map.
    fn init(self) -> Result<()> {
        self.hdr.layout.store(layout::layout::<K, V, R>(), Relaxed);
        let table = self.new_table(MIN_LOG2)?;
        self.hdr.table.set(self.arena.ctx(), Some(table))?;
        self.hdr.magic.store(MAP_MAGIC, Release);
        Ok(())
    }

    /// Checks that the header at `offset` is a map of these key, value and strategy types.
    fn check(self, offset: u64) -> Result<()> {
        let hdr = self.hdr;
        check_header(
            WHAT,
            offset,
            (hdr.magic.load(Acquire), MAP_MAGIC),
            (hdr.layout.load(Acquire), layout::layout::<K, V, R>()),
            "its key type, value type or pointer strategy differs: open it with the types \
             it was created with",
        )
    }

    pub(crate) fn ctx(&self) -> &'a R::Ctx {
        self.arena.ctx()
    }

    /// The most nodes the arena could hold: bounds every chain walk.
    pub(crate) fn max_nodes(&self) -> u64 {
        self.arena.max_objects::<Node<K, V, R>>()
    }

    /// The live table and its log2 size, checked.
    pub(crate) fn table(&self) -> Result<(&'a Table<K, V, R>, u64)> {
        self.table_at(&self.hdr.table)
    }

    pub(crate) fn table_at(
        &self,
        link: &Link<Table<K, V, R>, R>,
    ) -> Result<(&'a Table<K, V, R>, u64)> {
        let t = link
            .get(self.ctx())?
            .ok_or_else(|| corrupt("the map has no bucket table"))?;
        let log2 = t.log2.load(Relaxed);
        if !(MIN_LOG2..=MAX_LOG2).contains(&log2) {
            return Err(corrupt(format!("bucket table size 2^{log2} out of range")));
        }
        Ok((t, log2))
    }

    /// Bucket `b` (`b` < the table's bucket count).
    pub(crate) fn slot(&self, t: &'a Table<K, V, R>, b: u64) -> Result<&'a Slot<K, V, R>> {
        let i = (b >> layout::CHUNK_LOG2) as usize;
        let chunk = t
            .chunks
            .get(i)
            .ok_or_else(|| corrupt("bucket index beyond the table"))?
            .get(self.ctx())?
            .ok_or_else(|| corrupt(format!("bucket chunk {i} is missing")))?;
        Ok(&chunk.slots[b as usize & (CHUNK - 1)])
    }

    /// The link to bucket `b`'s chain (the entries after the inline one).
    pub(crate) fn head(&self, t: &'a Table<K, V, R>, b: u64) -> Result<&'a Link<Node<K, V, R>, R>> {
        Ok(&self.slot(t, b)?.next)
    }

    /// Read access to the whole map (the resize lock shared).
    pub(crate) fn global_shared(&self) -> Result<Held<'a>> {
        let m = *self;
        Held::shared(&self.hdr.resize, None, move || m.repaired(m.repair_all()))
    }

    /// Exclusive access to the whole map, changing nothing (a translated copy).
    pub(crate) fn global_exclusive(&self) -> Result<Held<'a>> {
        let m = *self;
        Held::exclusive(&self.hdr.resize, None, move || m.repaired(m.repair_all()))
    }

    /// Exclusive access to change the whole map (resize, clear): unlocked readers retry
    /// until it ends (the epoch is odd meanwhile).
    pub(crate) fn global_write(&self) -> Result<GlobalWrite<'a>> {
        let held = self.global_exclusive()?;
        Ok(GlobalWrite {
            _section: crate::seqlock::WriteSection::begin(&self.hdr.epoch),
            _held: held,
        })
    }

    /// Counts a repair after a lock holder died (if it succeeded).
    pub(crate) fn repaired(&self, r: Result<()>) -> Result<()> {
        if r.is_ok() {
            self.hdr.repairs.fetch_add(1, Relaxed);
        }
        r
    }

    /// How many times a holder of one of the map's locks died and the map was repaired.
    pub fn repairs(&self) -> u64 {
        self.hdr.repairs.load(Acquire)
    }

    /// Whether a resize is half done (its resizer died; the next user finishes it). A
    /// lock-free diagnostic read, for tools and tests.
    pub fn resize_pending(&self) -> bool {
        !self.hdr.new_table.is_null()
    }

    /// Number of entries (exact when no writer is active).
    pub fn len(&self) -> Result<u64> {
        let _g = self.global_shared()?;
        Ok(entries(&self.hdr.stripes))
    }

    /// Whether the map is empty.
    pub fn is_empty(&self) -> Result<bool> {
        Ok(self.len()? == 0)
    }

    /// Number of buckets now.
    pub fn buckets(&self) -> Result<u64> {
        let _g = self.global_shared()?;
        Ok(1 << self.table()?.1)
    }

    /// All entries (in bucket order), read under [`read`](Self::read).
    pub fn entries(&self) -> Result<Vec<(K, V)>> {
        let mut v = Vec::new();
        self.read()?.for_each(|k, x| v.push((*k, *x)))?;
        Ok(v)
    }
}
