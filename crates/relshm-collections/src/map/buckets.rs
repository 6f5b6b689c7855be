//! [`Buckets`]: a table's chunks resolved once, for readers that look up many keys.

use super::layout::{CHUNK, CHUNK_LOG2};
use super::{MapKey, MapView, Slot, Table};
use crate::arena::{Result, corrupt};
use bytemuck::Pod;
use core::marker::PhantomData;
use relshm_ptr::Repr;

/// The buckets of one table, resolved: bucket `b` is found with one load, no bounds check
/// and no masking inside the chunk. A lookup that misses in cache is hidden only by the
/// lookups the CPU runs meanwhile, and how many fit in its window depends on the
/// instructions each takes, so these few instructions show at every table size.
pub(crate) struct Buckets<'a, K, V, R: Repr> {
    /// Per chunk `i`, the address its first bucket would have if the table were one array:
    /// the chunk's address minus `i * CHUNK` buckets. Bucket `b` is then at
    /// `base[b >> CHUNK_LOG2] + b` buckets. Addresses only: never dereferenced themselves.
    base: Vec<*const Slot<K, V, R>>,
    /// Buckets minus one (at least `CHUNK - 1`: a table holds whole chunks).
    mask: u64,
    _chunks: PhantomData<&'a Slot<K, V, R>>,
}

// SAFETY: the pointers stand for shared references to slots of the segment (`&'a Slot`),
// which are Send and Sync as the slots are Sync.
unsafe impl<K, V, R: Repr> Send for Buckets<'_, K, V, R> where Slot<K, V, R>: Sync {}
// SAFETY: as above.
unsafe impl<K, V, R: Repr> Sync for Buckets<'_, K, V, R> where Slot<K, V, R>: Sync {}

impl<'a, K: MapKey, V: Pod, R: Repr> MapView<'a, K, V, R> {
    /// The live table's buckets (every chunk link checked).
    pub(crate) fn buckets_of_table(&self) -> Result<Buckets<'a, K, V, R>> {
        let (t, log2) = self.table()?;
        self.resolve(t, log2)
    }

    fn resolve(&self, t: &'a Table<K, V, R>, log2: u64) -> Result<Buckets<'a, K, V, R>> {
        // log2 >= MIN_LOG2 = CHUNK_LOG2 (checked by `table`): whole chunks.
        let n = (1usize << log2) / CHUNK;
        let mut base = Vec::with_capacity(n);
        for (i, link) in t.chunks[..n].iter().enumerate() {
            let chunk = link
                .get(self.ctx())?
                .ok_or_else(|| corrupt(format!("bucket chunk {i} is missing")))?;
            let first: *const Slot<K, V, R> = &chunk.slots[0];
            base.push(first.wrapping_sub(i * CHUNK));
        }
        Ok(Buckets {
            base,
            mask: (1u64 << log2) - 1,
            _chunks: PhantomData,
        })
    }
}

impl<'a, K, V, R: Repr> Buckets<'a, K, V, R> {
    /// The bucket of `hash` (bucket `hash & (buckets - 1)`).
    #[inline(always)]
    pub(crate) fn slot(&self, hash: u64) -> &'a Slot<K, V, R> {
        let b = (hash & self.mask) as usize;
        // SAFETY: b <= mask = CHUNK * base.len() - 1, so b >> CHUNK_LOG2 < base.len();
        // base[i] + b is chunk i's slot b - i * CHUNK < CHUNK (b's offset inside its chunk),
        // a slot of a chunk resolved and checked in `resolve`, borrowed for 'a. The
        // wrapping arithmetic keeps the chunk's provenance.
        unsafe {
            let at = *self.base.get_unchecked(b >> CHUNK_LOG2);
            &*at.wrapping_add(b)
        }
    }

    /// Every bucket, in order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = &'a Slot<K, V, R>> + '_ {
        (0..=self.mask).map(|b| self.slot(b))
    }
}
