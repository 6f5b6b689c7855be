//! Lock-free reads: [`Map::get`] and [`Map::contains_key`] take no lock and write no shared
//! memory, so readers in different processes never contend for a cache line.
//!
//! A seqlock per stripe (`Stripe::seq`) and one over the whole map (`MapHeader::epoch`):
//! a writer makes the word odd once it holds the lock exclusively and even again before it
//! lets go (stripe writers bump their stripe's word; resize and clear bump the epoch). A
//! reader notes both words, walks the chain without locks, and keeps the answer only if
//! neither word changed. A writer killed inside leaves its word odd: readers then take the
//! locked path, whose acquisition learns of the death and repairs, and the repair makes
//! the word even again.
//!
//! What an unlocked reader may see: nodes being written, freed and reused. It reads them
//! only with atomic loads (so no torn read is undefined behaviour), resolves every link with
//! the usual checks (a stale link still lands inside the arena, aligned, or is an error),
//! bounds its walk, and discards everything it read when validation fails. Anything odd
//! (a link that does not resolve, a walk too long) sends it to the locked path, which
//! reports real corruption with a precise error.

use super::layout::{CHUNK, CHUNK_LOG2, STRIPES};
use super::{MapKey, MapNode, MapView, Node, Slot, hash_key};
use crate::arena::Result;
use crate::racy::read as racy_read;
use crate::seqlock::Attempt;
use bytemuck::Pod;
use core::mem::MaybeUninit;
use core::ptr::addr_of;
use core::sync::atomic::Ordering::{Acquire, Relaxed};
use core::sync::atomic::{AtomicU64, fence};
use relshm_ptr::Repr;

/// Optimistic attempts before a reader falls back to the stripe lock.
const TRIES: u32 = 4;

/// Writes a fresh node's words (null `next`) with atomic stores only, so an unlocked reader
/// still looking at this memory (freed and reused meanwhile) never races a plain write.
///
/// # Safety
/// `dst` is an allocation for one node: in bounds, aligned, not yet linked anywhere.
pub(crate) unsafe fn write_node<K: Pod, V: Pod, R: Repr>(
    dst: *mut Node<K, V, R>,
    hash: u64,
    key: K,
    value: V,
) {
    const { assert!(align_of::<Node<K, V, R>>() >= 8) };
    let mut img = MaybeUninit::<Node<K, V, R>>::zeroed();
    let p = img.as_mut_ptr();
    // SAFETY: field writes into our own zeroed local (all-zero bytes are a null link, the
    // Repr contract); padding stays zero, so every word of the image is initialised.
    unsafe {
        core::ptr::addr_of_mut!((*p).hash).write(hash);
        core::ptr::addr_of_mut!((*p).key).write(key);
        core::ptr::addr_of_mut!((*p).value).write(value);
    }
    let words = size_of::<Node<K, V, R>>() / 8;
    for i in 0..words {
        // SAFETY: node size is a multiple of its alignment (>= 8): `words` whole words in
        // both the local image and the destination allocation (the caller's contract).
        unsafe {
            let w = p.cast::<u64>().add(i).read();
            AtomicU64::from_ptr(dst.cast::<u64>().add(i)).store(w, Relaxed);
        }
    }
}

impl<'a, K: MapKey, V: Pod, R: Repr> MapView<'a, K, V, R> {
    /// The value for `key`. Takes no lock when no writer is in `key`'s stripe (see the
    /// module docs); waits on the stripe lock otherwise.
    ///
    /// The first attempt is inlined into the caller, the retries and the locked path are
    /// out of line (see `MapReadGuard::get` for why).
    #[inline(always)]
    pub fn get(&self, key: &K) -> Result<Option<V>> {
        let hash = hash_key(key);
        match self.optimistic(key, hash) {
            Attempt::Hit(v) => Ok(Some(v)),
            Attempt::Miss => Ok(None),
            first => self.get_contended(key, hash, first),
        }
    }

    /// [`get`](Self::get) after a first attempt that raced a writer (`Retry`) or must lock.
    #[inline(never)]
    fn get_contended(&self, key: &K, hash: u64, first: Attempt<V>) -> Result<Option<V>> {
        let mut attempt = first;
        for _ in 1..TRIES {
            if !matches!(attempt, Attempt::Retry) {
                break;
            }
            attempt = self.optimistic(key, hash);
        }
        match attempt {
            Attempt::Hit(v) => Ok(Some(v)),
            Attempt::Miss => Ok(None),
            Attempt::Retry | Attempt::Locked => {
                self.with_stripe(key, false, |_, found| Ok(found.map(|h| h.value())))
            }
        }
    }

    /// Whether `key` is present (as [`get`](Self::get)).
    pub fn contains_key(&self, key: &K) -> Result<bool> {
        Ok(self.get(key)?.is_some())
    }

    /// One attempt, resolving the table as it stands (the epoch checked around it).
    #[inline(always)]
    fn optimistic(&self, key: &K, hash: u64) -> Attempt<V> {
        let hdr = self.hdr;
        let e1 = hdr.epoch.load(Acquire);
        if e1 & 1 == 1 {
            return Attempt::Locked;
        }
        let ctx = self.ctx();
        let Ok(Some(t)) = hdr.table.get(ctx) else {
            return Attempt::Locked;
        };
        let log2 = t.log2.load(Relaxed);
        if !(super::MIN_LOG2..=super::MAX_LOG2).contains(&log2) {
            return Attempt::Locked;
        }
        let b = hash & ((1u64 << log2) - 1);
        // In range: b < 2^log2 <= DIR * CHUNK.
        match t.chunks[(b >> CHUNK_LOG2) as usize].get(ctx) {
            Ok(Some(c)) => self.validated(&c.slots[b as usize & (CHUNK - 1)], hash, key, e1),
            _ => Attempt::Locked,
        }
    }

    /// One unlocked lookup of `key` in `slot` (its bucket in the table of epoch `epoch`),
    /// validated: the bucket's stripe word before and after the walk, and the epoch. The
    /// seqlock reader side of [`Map::get`] and [`MapReader::get`](super::MapReader::get).
    #[inline(always)]
    pub(crate) fn validated(
        &self,
        slot: &Slot<K, V, R>,
        hash: u64,
        key: &K,
        epoch: u64,
    ) -> Attempt<V> {
        let hdr = self.hdr;
        // The bucket's stripe (see the assertion by `STRIPES`).
        let seq = &hdr.stripes[hash as usize % STRIPES].seq;
        let s1 = seq.load(Acquire);
        let found = self.walk(slot, hash, key);
        // Orders the walk's loads before the re-reads (seqlock reader side).
        fence(Acquire);
        if s1 & 1 == 1 {
            // A writer is inside (or died inside): the locked path waits (or repairs).
            return Attempt::Locked;
        }
        if seq.load(Relaxed) != s1 || hdr.epoch.load(Relaxed) != epoch {
            return Attempt::Retry;
        }
        found
    }

    /// The bucket walk of an unlocked reader (inline entries, then chain): atomic loads
    /// only, bounded. The inline entries are checked in the caller's code, the chain out of
    /// line (see `MapReadGuard::get` for why).
    #[inline(always)]
    pub(crate) fn walk(&self, slot: &Slot<K, V, R>, hash: u64, key: &K) -> Attempt<V> {
        match slot.holds(hash, key) {
            Some(i) => Attempt::Hit(slot.racy_value(i)),
            None => self.walk_chain(slot, hash, key),
        }
    }

    /// [`walk`](Self::walk) along the chain.
    #[inline(never)]
    fn walk_chain(&self, slot: &Slot<K, V, R>, hash: u64, key: &K) -> Attempt<V> {
        let ctx = self.ctx();
        let Ok(mut cur) = slot.next.get_ptr(ctx) else {
            return Attempt::Locked;
        };
        let mut left = self.max_nodes();
        while let Some(p) = cur {
            let n: *const MapNode<K, V, R> = p.as_ptr();
            // SAFETY: get_ptr checked that the node lies wholly in the mapped arena,
            // aligned; its fields are read with atomic loads only (racy_read's contract:
            // nodes are 8-aligned whole words).
            unsafe {
                let hit = if size_of::<K>() <= 8 {
                    racy_read(addr_of!((*n).key)) == *key
                } else {
                    racy_read(addr_of!((*n).hash)) == hash && racy_read(addr_of!((*n).key)) == *key
                };
                if hit {
                    return Attempt::Hit(racy_read(addr_of!((*n).value)));
                }
            }
            left -= 1;
            if left == 0 {
                // A cycle (or a chain rebuilt under us): the locked path tells which.
                return Attempt::Locked;
            }
            // SAFETY: as above; the link is an atomic word, so a shared reference is fine.
            let Ok(next) = unsafe { &*addr_of!((*n).next) }.get_ptr(ctx) else {
                return Attempt::Locked;
            };
            cur = next;
        }
        Attempt::Miss
    }
}
