//! [`BytesMap`]: a hash map from byte strings to byte strings of any length in a segment,
//! generic over the pointer strategy `R`, shared read/write by several processes (an LMDB
//! database's `put`/`get`, or a Boost.Interprocess `map<string, string>`).
//!
//! Each entry is one heap block: a node (`next` link, hash, lengths, an array link) with
//! its key and value bytes right after it, so a lookup that hits follows one link to one
//! block. Buckets are a power-of-two array of head links behind the table; lock stripes
//! as in [`Map`](crate::map::Map): a readers-writer lock over the whole map, taken shared
//! by every operation and exclusively to resize or clear, and one per stripe of buckets.
//!
//! **Updates never change a published node.** Inserting over a key publishes a new node
//! in the old one's place (one link store) and then frees the old one; removing unlinks
//! (one store) and frees. Nodes and tables are owned heap blocks naming their stripe (or
//! the map): a writer killed at any point leaves the old or the new chain, and the next
//! locker frees every block of the stripe that no bucket reaches (see `repair`). Resizing
//! copies every node into a new table, publishes it with one store and frees the old one,
//! so a resizer killed halfway leaves the old table whole.
//!
//! **Lock-free reads, copy out and validate.** [`get`](BytesMap::get) and
//! [`get_into`](BytesMap::get_into) take no lock: they note the map's and the stripe's
//! seqlock words, walk the chain and copy the value out with atomic loads, and keep the
//! copy only if neither word moved. A writer frees an old node only inside its write
//! section, so a reader that copied from a node being freed (or reused) always sees the
//! word move and retries: it never returns freed bytes as a value. Why not epochs or
//! hazard pointers: both need per-reader state in the segment that a killed reader leaves
//! behind (and that writers must then scan and reclaim), where copy-out needs none and a
//! reader's death costs nothing. The price is the copy, which a value read has to make
//! anyway to outlive the call; [`read`](BytesMap::read) lends values in place (`&[u8]`,
//! like an LMDB read transaction) with the locks held shared.
//!
//! ```
//! use relshm_collections::arena::Arena;
//! use relshm_collections::bytes_map::BytesMap;
//! use relshm_ptr::Offset;
//! use relshm_segment::{CreateOptions, Placement, Segment};
//!
//! let seg = Segment::create_unnamed(&CreateOptions::new(1 << 20))?;
//! let m = BytesMap::<Offset>::create(&Arena::new(&seg)?)?;
//! m.insert(b"greeting", b"hello, world")?;
//! m.insert(b"empty", b"")?;
//!
//! let other = seg.reopen(Placement::Anywhere)?; // another address, same bytes
//! let m2 = BytesMap::<Offset>::open(&Arena::new(&other)?, m.offset())?;
//! assert_eq!(m2.get(b"greeting")?.as_deref(), Some(&b"hello, world"[..]));
//! assert_eq!(m2.read()?.get(b"empty")?, Some(&b""[..]));
//! assert_eq!(m2.verify()?, 2);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod layout;
mod ops;
mod read;
mod repair;
mod translate;

pub use layout::{
    BYTES_MAP_MAGIC, BytesMapHeader, BytesNode, BytesTable, LAYOUT_VERSION, MAX_LEN, MAX_LOG2,
    MIN_LOG2,
};
pub use read::BytesMapReadGuard;
pub(crate) use repair::walk;

use crate::arena::{Arena, Result, check_header, corrupt};
use crate::map::STRIPES;
use crate::record::CollectionRecord;
use crate::root::Root;
use crate::seqlock::WriteSection;
use core::hash::BuildHasher;
use core::ptr::NonNull;
use core::sync::atomic::Ordering::{Acquire, Relaxed, Release};
use relshm_ptr::{BaseRel, Link, Repr};
use relshm_sync::Held;

/// What a byte map is called in errors.
const WHAT: &str = "relshm BytesMap";

/// The hash of `key` as every byte map computes it (FxHash, top bit set: never 0).
#[inline]
pub fn hash_bytes(key: &[u8]) -> u64 {
    rustc_hash::FxBuildHasher.hash_one(key) | 1 << 63
}

type Node<R> = BytesNode<R>;
type Head<R> = Link<Node<R>, R>;
/// A bucket table, its log2 and its head links.
pub(crate) type TableView<'a, R> = (&'a BytesTable<R>, u64, &'a [Head<R>]);

/// A handle to a byte-string map in a segment (see the module docs), generic over the
/// pointer strategy `R` ([`BaseRel`] unless named). Owns what it needs: keep it in a
/// struct, clone it, send it to another thread.
pub struct BytesMap<R: Repr = BaseRel> {
    root: Root<BytesMapHeader<R>, R>,
}

impl<R: Repr> Clone for BytesMap<R> {
    fn clone(&self) -> Self {
        Self {
            root: self.root.clone(),
        }
    }
}

impl<R: Repr> core::fmt::Debug for BytesMap<R> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("BytesMap")
            .field("offset", &self.root.offset())
            .field("strategy", &R::NAME)
            .finish()
    }
}

/// The map as one operation sees it.
pub(crate) struct View<'a, R: Repr> {
    pub(crate) arena: &'a Arena<R>,
    pub(crate) hdr: &'a BytesMapHeader<R>,
    pub(crate) off: u64,
}

impl<R: Repr> Clone for View<'_, R> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<R: Repr> Copy for View<'_, R> {}

/// The whole map held exclusively inside an epoch write section (which ends first).
pub(crate) struct GlobalWrite<'a> {
    _section: WriteSection<'a>,
    _held: Held<'a>,
}

impl<'a, R: Repr> View<'a, R> {
    pub(crate) fn ctx(&self) -> &'a R::Ctx {
        self.arena.ctx()
    }

    /// The most nodes the arena could hold: bounds every chain walk.
    pub(crate) fn max_nodes(&self) -> u64 {
        self.arena.max_objects::<Node<R>>()
    }

    /// The live table, its log2 and its head links, checked.
    pub(crate) fn table(&self) -> Result<TableView<'a, R>> {
        let t = self
            .hdr
            .table
            .get(self.ctx())?
            .ok_or_else(|| corrupt("the byte map has no bucket table"))?;
        self.table_parts(t)
    }

    /// A table's log2 (checked) and head links.
    pub(crate) fn table_parts(&self, t: &'a BytesTable<R>) -> Result<TableView<'a, R>> {
        let log2 = t.log2.load(Relaxed);
        if !(MIN_LOG2..=MAX_LOG2).contains(&log2) {
            return Err(corrupt(format!("bucket table size 2^{log2} out of range")));
        }
        let heads = t
            .heads
            .get_slice(self.ctx(), 1 << log2)?
            .ok_or_else(|| corrupt("the bucket table has no head array"))?;
        Ok((t, log2, heads))
    }

    /// The stripe of bucket `b`, and its offset (its nodes' owner ident).
    pub(crate) fn stripe(&self, b: u64) -> (usize, u64) {
        let s = b as usize % STRIPES;
        let at = NonNull::from(&self.hdr.stripes[s]);
        (s, self.arena.offset_of(at))
    }

    /// The key and value of a node, checked; read under a lock (no writer changes them).
    pub(crate) fn kv(&self, n: &'a Node<R>) -> Result<(&'a [u8], &'a [u8])> {
        let klen = n.key_len.load(Relaxed) as usize;
        let data = n
            .bytes
            .get_slice(self.ctx(), n.data_len())?
            .ok_or_else(|| corrupt("a byte map node's bytes are missing"))?;
        Ok(data.split_at(klen))
    }

    /// Read access to the whole map (the resize lock shared).
    pub(crate) fn global_shared(&self) -> Result<Held<'a>> {
        let m = *self;
        Held::shared(&self.hdr.resize, None, move || m.repaired(m.repair_all()))
    }

    /// Exclusive access to the whole map (resize, clear, verify): unlocked readers retry
    /// or wait while it lives.
    pub(crate) fn global_write(&self) -> Result<GlobalWrite<'a>> {
        let m = *self;
        let held = Held::exclusive(&self.hdr.resize, None, move || m.repaired(m.repair_all()))?;
        Ok(GlobalWrite {
            _section: WriteSection::begin(&self.hdr.epoch),
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
}

impl<R: Repr> BytesMap<R> {
    #[inline]
    pub(crate) fn view(&self) -> View<'_, R> {
        View {
            arena: self.root.arena(),
            hdr: self.root.hdr(),
            off: self.root.offset(),
        }
    }

    /// Runs `op` on a view, again if the segment grew under it.
    #[inline]
    fn run<'m, X>(&'m self, mut op: impl FnMut(View<'m, R>) -> Result<X>) -> Result<X> {
        self.root.arena().retry_grown(|| op(self.view()))
    }

    /// Creates an empty map in the arena's segment.
    pub fn create(arena: &Arena<R>) -> Result<Self> {
        let p = arena.alloc::<BytesMapHeader<R>>()?;
        // SAFETY: a fresh allocation, in bounds and aligned (checked by alloc), reachable by
        // no one yet; all-zero bytes are a valid header (unlocked locks, null links).
        unsafe { p.as_ptr().write_bytes(0, 1) };
        let map = Self {
            root: Root::new(arena, p, arena.offset_of(p)),
        };
        let v = map.view();
        v.hdr.layout.store(layout::layout::<R>(), Relaxed);
        let t = v.new_table(MIN_LOG2)?;
        v.hdr.table.set(v.ctx(), Some(t))?;
        v.hdr.magic.store(BYTES_MAP_MAGIC, Release);
        Ok(map)
    }

    /// Opens the map whose header is at `offset`, checking it is a byte map of this
    /// strategy.
    pub fn open(arena: &Arena<R>, offset: u64) -> Result<Self> {
        // In bounds and aligned (checked by `header_at`); any bits are a valid header.
        let p = arena.header_at::<BytesMapHeader<R>>(offset, WHAT)?;
        let map = Self {
            root: Root::new(arena, p, offset),
        };
        let hdr = map.view().hdr;
        check_header(
            WHAT,
            offset,
            (hdr.magic.load(Acquire), BYTES_MAP_MAGIC),
            (hdr.layout.load(Acquire), layout::layout::<R>()),
            "its pointer strategy or layout version differs: open it with the strategy it \
             was created with",
        )?;
        Ok(map)
    }

    /// Creates an empty map and records it under `name` in the segment directory.
    pub fn create_named(arena: &Arena<R>, name: &str) -> Result<Self> {
        let map = Self::create(arena)?;
        arena.record_named(name, CollectionRecord::bytes_map::<R>().at(map.offset()))?;
        Ok(map)
    }

    /// Opens the map recorded under `name` by [`create_named`](Self::create_named).
    pub fn open_named(arena: &Arena<R>, name: &str) -> Result<Self> {
        Self::open(
            arena,
            arena.named_offset(name, CollectionRecord::bytes_map::<R>())?,
        )
    }

    /// Offset of the map's header in the segment (the same in every process).
    pub fn offset(&self) -> u64 {
        self.root.offset()
    }

    /// The arena the map lives in.
    pub fn arena(&self) -> &Arena<R> {
        self.root.arena()
    }

    /// Stores `value` under `key` (replacing the value there). Returns whether it
    /// replaced one. Keys and values may be empty, and up to [`MAX_LEN`] bytes each.
    pub fn insert(&self, key: &[u8], value: &[u8]) -> Result<bool> {
        self.run(|m| m.insert(key, value))
    }

    /// Removes `key`; returns whether it was there.
    pub fn remove(&self, key: &[u8]) -> Result<bool> {
        self.run(|m| m.remove(key))
    }

    /// The value under `key`, copied out. Takes no lock when no writer is in the key's
    /// stripe (see the module docs); waits on the stripe lock otherwise.
    pub fn get(&self, key: &[u8]) -> Result<Option<std::vec::Vec<u8>>> {
        let mut out = std::vec::Vec::new();
        Ok(self.get_into(key, &mut out)?.then_some(out))
    }

    /// Copies the value under `key` into `out` (replacing its contents, reusing its
    /// allocation); returns whether the key is there. Lock-free as [`get`](Self::get).
    pub fn get_into(&self, key: &[u8], out: &mut std::vec::Vec<u8>) -> Result<bool> {
        self.run(|m| m.get_into(key, out))
    }

    /// Whether `key` is present (as [`get`](Self::get), copying nothing).
    pub fn contains_key(&self, key: &[u8]) -> Result<bool> {
        self.run(|m| m.contains_key(key))
    }

    /// Shared read access to the whole map: values lent in place (see
    /// [`BytesMapReadGuard`]).
    pub fn read(&self) -> Result<BytesMapReadGuard<'_, R>> {
        self.run(|m| m.read())
    }

    /// Number of entries (exact when no writer is active).
    pub fn len(&self) -> Result<u64> {
        self.run(|m| {
            let _g = m.global_shared()?;
            Ok(crate::map::entries(&m.hdr.stripes))
        })
    }

    /// Whether the map is empty.
    pub fn is_empty(&self) -> Result<bool> {
        Ok(self.len()? == 0)
    }

    /// Every entry (in bucket order), copied out under [`read`](Self::read).
    pub fn entries(&self) -> Result<std::vec::Vec<(std::vec::Vec<u8>, std::vec::Vec<u8>)>> {
        let mut v = std::vec::Vec::new();
        self.read()?
            .for_each(|k, x| v.push((k.to_vec(), x.to_vec())))?;
        Ok(v)
    }

    /// Removes every entry, freeing every node. Takes the map exclusively.
    pub fn clear(&self) -> Result<()> {
        self.run(|m| m.clear())
    }

    /// Doubles the bucket table if the map holds more entries than buckets. Takes the map
    /// exclusively.
    pub fn grow(&self) -> Result<()> {
        self.run(|m| m.grow())
    }

    /// Walks the whole map (every lock held shared) and checks: every link resolves, no cycle,
    /// every node sits in the bucket its hash names and its hash is its key's, each
    /// stripe's count matches its nodes, and the heap blocks the map owns are exactly the
    /// nodes and the table it reaches (nothing leaked). Returns the number of entries.
    pub fn verify(&self) -> Result<u64> {
        self.run(|m| {
            // Every lock shared (repairing a dead holder's work first): no writer inside.
            let _r = m.read()?;
            repair::walk(m.arena, m.off)
        })
    }

    /// How many times a lock holder died and the map was repaired.
    pub fn repairs(&self) -> u64 {
        self.view().hdr.repairs.load(Acquire)
    }
}
