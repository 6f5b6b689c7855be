//! [`MapReader`]: many lock-free lookups with the bucket chunks resolved once.

use super::buckets::Buckets;
use super::layout::STRIPES;
use super::{MapKey, MapView, hash_key};
use crate::arena::Result;
use crate::seqlock::Attempt;
use bytemuck::Pod;
use core::sync::atomic::Ordering::{Acquire, Relaxed};
use core::sync::atomic::fence;
use relshm_ptr::Repr;

/// Lock-free lookups in a [`Map`](super::Map), for many gets in a row: like [`Map::get`](super::Map::get) (no lock, no
/// shared write, writers never wait for it) with the table's chunks resolved once, so a
/// lookup costs a hash, two seqlock loads, one bucket link and the chain;
/// [`get_many`](Self::get_many) validates a whole batch at once instead. Each get is
/// atomic on its own; unlike [`MapReadGuard`](super::MapReadGuard) there is no snapshot
/// across gets. After a resize it answers through [`Map::get`](super::Map::get) until re-made.
pub struct MapReader<'a, K, V, R: Repr> {
    map: MapView<'a, K, V, R>,
    epoch: u64,
    buckets: Buckets<'a, K, V, R>,
}

impl<'a, K: MapKey, V: Pod, R: Repr> MapView<'a, K, V, R> {
    /// A lock-free batch reader (see [`MapReader`]).
    pub fn reader(&self) -> Result<MapReader<'a, K, V, R>> {
        loop {
            let epoch = self.hdr.epoch.load(Acquire);
            if epoch & 1 == 1 {
                // A resize or clear is running (or died): wait for it (or repair) under the
                // lock. Holding the lock shared, no epoch section runs, so an odd word
                // left now is a stale mark: clear it, then look again.
                let _g = self.global_shared()?;
                crate::seqlock::settle(&self.hdr.epoch);
                continue;
            }
            let r = self.buckets_of_table();
            fence(Acquire);
            if self.hdr.epoch.load(Relaxed) == epoch {
                return Ok(MapReader {
                    map: *self,
                    epoch,
                    buckets: r?,
                });
            }
        }
    }
}

impl<K: MapKey, V: Pod, R: Repr> MapReader<'_, K, V, R> {
    /// The value for `key`. Inlined, with the rare paths out of line (as
    /// `MapReadGuard::get`).
    #[inline(always)]
    pub fn get(&self, key: &K) -> Result<Option<V>> {
        let hash = hash_key(key);
        // The chunks are this reader's epoch's: after a resize they may be freed (still
        // mapped arena memory, read only atomically and checked, but meaningless). The
        // epoch check of the validation throws such a read away, so none is needed before.
        match self
            .map
            .validated(self.buckets.slot(hash), hash, key, self.epoch)
        {
            Attempt::Hit(v) => Ok(Some(v)),
            Attempt::Miss => Ok(None),
            Attempt::Retry | Attempt::Locked => self.slow_get(key),
        }
    }

    /// A lookup that raced a writer or a resize: through [`Map::get`](super::Map::get).
    #[inline(never)]
    fn slow_get(&self, key: &K) -> Result<Option<V>> {
        self.map.get(key)
    }

    /// Whether `key` is present.
    pub fn contains_key(&self, key: &K) -> Result<bool> {
        Ok(self.get(key)?.is_some())
    }

    /// The values for `keys`, in order, into `out` (`out[i]` for `keys[i]`).
    ///
    /// As [`get`](Self::get) for each key, but validated once per call instead of once
    /// per key: the stripes' seqlock words are read before the first lookup and again
    /// after the last, and only the lookups in a stripe a writer entered meanwhile are
    /// redone (one by one, as [`get`](Self::get)). Each answer is still atomic on its own. A lookup
    /// then costs what it costs under [`MapReadGuard`](super::MapReadGuard), without
    /// taking a lock or writing shared memory: for many lookups at a time in maps that
    /// several processes read.
    ///
    /// # Panics
    /// If `keys` and `out` differ in length.
    ///
    /// ```
    /// # use relshm_collections::{arena::Arena, map::Map};
    /// # use relshm_ptr::Offset;
    /// # use relshm_segment::{CreateOptions, Segment};
    /// # let seg = Segment::create_unnamed(&CreateOptions::new(4 << 20))?;
    /// # let arena = Arena::<Offset>::new(&seg)?;
    /// let map = Map::<u64, u64, Offset>::create(&arena)?;
    /// map.insert(1, 10)?;
    /// map.insert(3, 30)?;
    /// let mut out = [None; 3];
    /// map.reader()?.get_many(&[1, 2, 3], &mut out)?;
    /// assert_eq!(out, [Some(10), None, Some(30)]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn get_many(&self, keys: &[K], out: &mut [Option<V>]) -> Result<()> {
        assert_eq!(keys.len(), out.len(), "get_many: one output per key");
        let hdr = self.map.hdr;
        let before: [u64; STRIPES] = core::array::from_fn(|s| hdr.stripes[s].seq.load(Acquire));
        // Stripes whose lookups must be redone: a lookup that raced (or must lock).
        let mut redo = 0u32;
        for (key, o) in keys.iter().zip(out.iter_mut()) {
            let hash = hash_key(key);
            // As in `get`: a stale table is caught by the epoch check below.
            *o = match self.map.walk(self.buckets.slot(hash), hash, key) {
                Attempt::Hit(v) => Some(v),
                Attempt::Miss => None,
                Attempt::Retry | Attempt::Locked => {
                    redo |= 1 << (hash as usize % STRIPES);
                    None
                }
            };
        }
        // Orders the lookups' loads before the re-reads (seqlock reader side).
        fence(Acquire);
        if hdr.epoch.load(Relaxed) != self.epoch {
            redo = u32::MAX;
        }
        for (s, &seq) in before.iter().enumerate() {
            // A writer was inside at the start (odd), or wrote meanwhile.
            if seq & 1 == 1 || hdr.stripes[s].seq.load(Relaxed) != seq {
                redo |= 1 << s;
            }
        }
        if redo != 0 {
            self.redo(keys, out, redo)?;
        }
        Ok(())
    }

    /// Looks up again, one by one, the keys of `keys` in the stripes of `redo`.
    #[inline(never)]
    fn redo(&self, keys: &[K], out: &mut [Option<V>], redo: u32) -> Result<()> {
        for (key, o) in keys.iter().zip(out.iter_mut()) {
            if redo & (1 << (hash_key(key) as usize % STRIPES)) != 0 {
                *o = self.get(key)?;
            }
        }
        Ok(())
    }
}

const _: () = assert!(STRIPES <= 32, "get_many keeps one bit per stripe in a u32");
