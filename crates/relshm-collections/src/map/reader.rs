//! [`MapReader`]: many lock-free lookups with the bucket chunks resolved once.

use super::layout::{CHUNK, CHUNK_LOG2, STRIPES};
use super::seq::Attempt;
use super::{Chunk, Map, MapKey, hash_key};
use crate::arena::{Result, corrupt};
use bytemuck::Pod;
use core::sync::atomic::Ordering::{Acquire, Relaxed};
use core::sync::atomic::fence;
use relshm_ptr::Repr;

/// A table's chunks, resolved.
type Chunks<'a, K, V, R> = Vec<&'a Chunk<K, V, R>>;

/// Lock-free lookups in a [`Map`], for many gets in a row: like [`Map::get`] (no lock, no
/// shared write, writers never wait for it) with the table's chunks resolved once, so a
/// lookup costs a hash, two seqlock loads, one bucket link and the chain. Each get is
/// atomic on its own; unlike [`MapReadGuard`](super::MapReadGuard) there is no snapshot
/// across gets. After a resize it answers through [`Map::get`] until re-made.
pub struct MapReader<'a, K, V, R: Repr> {
    map: Map<'a, K, V, R>,
    epoch: u64,
    chunks: Chunks<'a, K, V, R>,
    mask: u64,
}

impl<'a, K: MapKey, V: Pod, R: Repr> Map<'a, K, V, R> {
    /// A lock-free batch reader (see [`MapReader`]).
    pub fn reader(&self) -> Result<MapReader<'a, K, V, R>> {
        loop {
            let epoch = self.hdr.epoch.load(Acquire);
            if epoch & 1 == 1 {
                // A resize or clear is running (or died): wait for it (or repair) under the
                // lock. Holding the lock shared, no epoch section runs, so an odd word
                // left now is a stale mark: clear it, then look again.
                let _g = self.global_shared()?;
                super::seq::settle(&self.hdr.epoch);
                continue;
            }
            let r = self.resolve_chunks();
            fence(Acquire);
            if self.hdr.epoch.load(Relaxed) == epoch {
                let (chunks, mask) = r?;
                return Ok(MapReader {
                    map: *self,
                    epoch,
                    chunks,
                    mask,
                });
            }
        }
    }

    /// The live table's chunks (checked) and bucket mask.
    pub(crate) fn resolve_chunks(&self) -> Result<(Chunks<'a, K, V, R>, u64)> {
        let (t, log2) = self.table()?;
        let n = ((1usize << log2) / CHUNK).max(1);
        let mut chunks = Vec::with_capacity(n);
        for (i, link) in t.chunks[..n].iter().enumerate() {
            chunks.push(
                link.get(self.ctx())?
                    .ok_or_else(|| corrupt(format!("bucket chunk {i} is missing")))?,
            );
        }
        Ok((chunks, (1u64 << log2) - 1))
    }
}

impl<K: MapKey, V: Pod, R: Repr> MapReader<'_, K, V, R> {
    /// The value for `key`.
    #[inline]
    pub fn get(&self, key: &K) -> Result<Option<V>> {
        let hdr = self.map.hdr;
        let hash = hash_key(key);
        let b = hash & self.mask;
        let seq = &hdr.stripes[b as usize % STRIPES].seq;
        let s1 = seq.load(Acquire);
        // The chunks are this reader's epoch's: after a resize they may be freed (still
        // mapped arena memory, read only atomically and checked, but meaningless). The
        // epoch check below throws such a read away, so none is needed before it.
        let slot = &self.chunks[(b >> CHUNK_LOG2) as usize].slots[b as usize & (CHUNK - 1)];
        let found = self.map.walk(slot, hash, key);
        // Orders the walk's loads before the re-reads (seqlock reader side).
        fence(Acquire);
        // One test: a writer was inside at the start (odd), or wrote meanwhile, or the
        // table changed.
        let moved = (s1 & 1) | (seq.load(Relaxed) ^ s1) | (hdr.epoch.load(Relaxed) ^ self.epoch);
        if moved != 0 {
            return self.map.get(key);
        }
        match found {
            Attempt::Hit(v) => Ok(Some(v)),
            Attempt::Miss => Ok(None),
            Attempt::Retry | Attempt::Locked => self.map.get(key),
        }
    }

    /// Whether `key` is present.
    pub fn contains_key(&self, key: &K) -> Result<bool> {
        Ok(self.get(key)?.is_some())
    }
}
