//! [`Map`]: the owning handle an application keeps; every operation borrows it as a
//! [`MapView`] for its duration.

use super::{MapHeader, MapKey, MapReadGuard, MapReader, MapView, WHAT};
use crate::arena::{Arena, Result};
use crate::record::CollectionRecord;
use crate::root::Root;
use bytemuck::Pod;
use relshm_ptr::translate::{Space, Translated};
use relshm_ptr::{BaseRel, Raw, Repr};

/// A handle to a hash map from `K` to `V` in a segment, generic over the pointer strategy
/// `R` ([`BaseRel`] unless named).
///
/// The handle owns what it needs (a clone of its [`Arena`], which keeps the segment
/// mapped): keep it in a struct, clone it, send it to another thread. Every method takes
/// the locks it needs for one operation; [`read`](Self::read) holds read access across
/// many lookups, and [`reader`](Self::reader) looks up batches without locks.
pub struct Map<K, V, R: Repr = BaseRel> {
    root: Root<MapHeader<K, V, R>, R>,
}

impl<K, V, R: Repr> Clone for Map<K, V, R> {
    fn clone(&self) -> Self {
        Self {
            root: self.root.clone(),
        }
    }
}

impl<K, V, R: Repr> core::fmt::Debug for Map<K, V, R> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Map")
            .field("offset", &self.root.offset())
            .field("strategy", &R::NAME)
            .finish()
    }
}

impl<K: MapKey, V: Pod, R: Repr> Map<K, V, R> {
    /// The map as this borrow sees it.
    #[inline(always)]
    pub(crate) fn view(&self) -> MapView<'_, K, V, R> {
        MapView {
            arena: self.root.arena(),
            hdr: self.root.hdr(),
            off: self.root.offset(),
        }
    }

    /// Runs `op` on a view of the map, again if the segment grew under it (see
    /// [`Arena::retry_grown`]).
    #[inline(always)]
    fn run<'m, X>(&'m self, mut op: impl FnMut(MapView<'m, K, V, R>) -> Result<X>) -> Result<X> {
        self.root.arena().retry_grown(|| op(self.view()))
    }

    /// Creates an empty map (with [`CHUNK`](super::CHUNK) buckets) in the arena's segment.
    pub fn create(arena: &Arena<R>) -> Result<Self> {
        let p = arena.alloc::<MapHeader<K, V, R>>()?;
        // SAFETY: a fresh allocation, in bounds and aligned (checked by alloc), reachable by
        // no one yet; all-zero bytes are a valid header (unlocked locks, null links).
        unsafe { p.as_ptr().write_bytes(0, 1) };
        let map = Self {
            root: Root::new(arena, p, arena.offset_of(p)),
        };
        map.view().init()?;
        Ok(map)
    }

    /// Opens the map whose header is at `offset`, checking it is a map of these key,
    /// value and strategy types.
    pub fn open(arena: &Arena<R>, offset: u64) -> Result<Self> {
        // In bounds and aligned (checked by `header_at`); every bit pattern is a valid
        // header (atomics, robust locks, links).
        let p = arena.header_at::<MapHeader<K, V, R>>(offset, WHAT)?;
        let map = Self {
            root: Root::new(arena, p, offset),
        };
        map.view().check(offset)?;
        Ok(map)
    }

    /// Creates an empty map and records it under `name` in the segment directory.
    pub fn create_named(arena: &Arena<R>, name: &str) -> Result<Self> {
        let map = Self::create(arena)?;
        arena.record_named(name, CollectionRecord::map::<K, V, R>().at(map.offset()))?;
        Ok(map)
    }

    /// Opens the map recorded under `name` by [`create_named`](Self::create_named).
    pub fn open_named(arena: &Arena<R>, name: &str) -> Result<Self> {
        Self::open(
            arena,
            arena.named_offset(name, CollectionRecord::map::<K, V, R>())?,
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

    /// The value for `key`. Takes no lock when no writer is in `key`'s stripe (see the
    /// module docs); waits on the stripe lock otherwise.
    #[inline(always)]
    pub fn get(&self, key: &K) -> Result<Option<V>> {
        self.run(|m| m.get(key))
    }

    /// Whether `key` is present (as [`get`](Self::get)).
    pub fn contains_key(&self, key: &K) -> Result<bool> {
        self.run(|m| m.contains_key(key))
    }

    /// Inserts `value` under `key`, or replaces the value there. Returns the old value.
    pub fn insert(&self, key: K, value: V) -> Result<Option<V>> {
        self.run(|m| m.insert(key, value))
    }

    /// Removes `key`, returning its value.
    pub fn remove(&self, key: &K) -> Result<Option<V>> {
        self.run(|m| m.remove(key))
    }

    /// Applies `f` to the value under `key` (a copy, written back atomically by replacing
    /// the entry). Returns whether the key was present.
    ///
    /// `f` may be called more than once (as `AtomicU64::fetch_update`'s function may): an
    /// attempt that found the segment grown under it is retried, and only the last call's
    /// result is stored.
    pub fn update(&self, key: &K, mut f: impl FnMut(&mut V)) -> Result<bool> {
        self.run(|m| m.update(key, &mut f))
    }

    /// Applies `f` to the value under `key`, inserting `f(init)` if the key is absent, as
    /// one atomic step (no other process sees the key missing in between). Returns the
    /// value stored.
    ///
    /// `f` may be called more than once, as for [`update`](Self::update).
    pub fn upsert(&self, key: K, init: V, mut f: impl FnMut(&mut V)) -> Result<V> {
        self.run(|m| m.upsert(key, init, &mut f))
    }

    /// Shared read access to the whole map for many lookups (see [`MapReadGuard`]).
    pub fn read(&self) -> Result<MapReadGuard<'_, K, V, R>> {
        self.run(|m| m.read())
    }

    /// A lock-free reader for batches of lookups (see [`MapReader`]).
    pub fn reader(&self) -> Result<MapReader<'_, K, V, R>> {
        self.run(|m| m.reader())
    }

    /// Number of entries (exact when no writer is active).
    pub fn len(&self) -> Result<u64> {
        self.run(|m| m.len())
    }

    /// Whether the map is empty.
    pub fn is_empty(&self) -> Result<bool> {
        self.run(|m| m.is_empty())
    }

    /// Number of buckets now.
    pub fn buckets(&self) -> Result<u64> {
        self.run(|m| m.buckets())
    }

    /// All entries (in bucket order), read under [`read`](Self::read).
    pub fn entries(&self) -> Result<Vec<(K, V)>> {
        self.run(|m| m.entries())
    }

    /// Doubles the bucket table if the map holds more entries than buckets. Takes the map
    /// exclusively (waits for every operation in flight).
    pub fn grow(&self) -> Result<()> {
        self.run(|m| m.grow())
    }

    /// Removes every entry. Takes the map exclusively.
    pub fn clear(&self) -> Result<()> {
        self.run(|m| m.clear())
    }

    /// Walks every bucket and checks: every link resolves, no cycle, every entry (inline or
    /// node) sits in the bucket its hash names, each stripe's count matches its nodes, no
    /// operation or resize is half done. Returns the number of entries.
    pub fn verify(&self) -> Result<u64> {
        self.run(|m| m.verify())
    }

    /// How many times a holder of one of the map's locks died and the map was repaired.
    pub fn repairs(&self) -> u64 {
        self.view().repairs()
    }

    /// Whether a resize is half done (its resizer died; the next user finishes it). A
    /// lock-free diagnostic read, for tools and tests.
    pub fn resize_pending(&self) -> bool {
        self.view().resize_pending()
    }
}

impl<K: MapKey, V: Pod> Map<K, V, Raw> {
    /// Copies the map (header, table, chunks, nodes) into `dst` from offset `start`, with
    /// every link rewritten for a process that maps `dst` at `dst.written_base()`. The
    /// receiver opens it with [`Arena::translated`] and [`Map::open`] at `root_offset`.
    /// The copy is read-only (no allocator). The map is held exclusively while copying.
    pub fn translate_to(&self, dst: &Space, start: u64) -> Result<Translated> {
        self.run(|m| m.translate_to(dst, start))
    }
}
