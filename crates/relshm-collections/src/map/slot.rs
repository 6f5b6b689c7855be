//! Reading and writing a bucket's inline entries ([`Slot`]).
//!
//! Writers hold the slot's stripe exclusively; readers hold it shared, or hold no lock and
//! validate afterwards (`map::seq`). So plain reads are fine under a lock, but every write
//! (and every lock-free read) is done word by word with atomic operations: a lock-free
//! reader may look at the slot while it is rewritten.

use super::Slot;
use super::layout::{Entry, INLINE};
use crate::racy::{read as racy_read, write as racy_write};
use bytemuck::Pod;
use core::ptr::addr_of_mut;
use core::sync::atomic::Ordering::{Relaxed, Release};
use relshm_ptr::Repr;

impl<K: Pod + Eq, V: Pod, R: Repr> Slot<K, V, R> {
    /// Whether an entry's value lies within one aligned 8-byte word, so that
    /// [`set_value`](Self::set_value) is a single store.
    pub(crate) const VALUE_IN_ONE_WORD: bool = {
        let at = core::mem::offset_of!(Entry<K, V>, value);
        size_of::<V>() > 0 && at % 8 + size_of::<V>() <= 8
    };

    /// Inline entry `i`'s hash, 0 if it holds none (`i` < [`INLINE`]).
    #[inline(always)]
    pub(crate) fn hash(&self, i: usize) -> u64 {
        self.hash[i].load(Relaxed)
    }

    /// Inline entry `i` (meaningful when its hash is not 0). Caller holds the slot's
    /// stripe lock (so no writer is inside).
    #[inline(always)]
    pub(crate) fn entry(&self, i: usize) -> Entry<K, V> {
        // SAFETY: in-bounds, aligned memory of the slot; under the stripe lock no write
        // races this read (writers hold the lock exclusively).
        unsafe { self.entry[i].get().read() }
    }

    /// Inline entry `i`'s key, read with atomic loads only (may be torn: validate).
    #[inline(always)]
    pub(crate) fn racy_key(&self, i: usize) -> K {
        // SAFETY: the key lies inside the slot, an 8-aligned object of whole words.
        unsafe { racy_read(addr_of_mut!((*self.entry[i].get()).key)) }
    }

    /// As [`racy_key`](Self::racy_key), for the value.
    #[inline(always)]
    pub(crate) fn racy_value(&self, i: usize) -> V {
        // SAFETY: as in racy_key.
        unsafe { racy_read(addr_of_mut!((*self.entry[i].get()).value)) }
    }

    /// The inline entry to try first for `hash`: 0 if its hash matches, else 1. Chosen
    /// without a branch: which entry of a full bucket holds a key is a coin toss, and a
    /// mispredicted branch there throws away the lookups the CPU had started after it.
    #[inline(always)]
    pub(crate) fn candidate(&self, hash: u64) -> usize {
        // Arithmetic, not `if`: the compiler keeps it a flag-to-integer move.
        usize::from(self.hash(0) != hash)
    }

    /// Which inline entry is `key` (hashing to `hash`), if any. Atomic loads only, so it
    /// serves lock holders and unlocked readers alike (who validate afterwards). The hash
    /// is compared first: an emptied entry may still hold an old key.
    #[inline(always)]
    pub(crate) fn holds(&self, hash: u64, key: &K) -> Option<usize> {
        let i = self.candidate(hash);
        if self.hash(i) == hash && self.racy_key(i) == *key {
            return Some(i);
        }
        // Both hashes equal (different keys, same 64-bit hash): rare, so a branch.
        (i == 0 && self.hash(1) == hash && self.racy_key(1) == *key).then_some(1)
    }

    /// A free inline entry, if any.
    pub(crate) fn vacant(&self) -> Option<usize> {
        (0..INLINE).find(|&i| self.hash(i) == 0)
    }

    /// How many inline entries are used.
    pub(crate) fn used(&self) -> u64 {
        (0..INLINE).filter(|&i| self.hash(i) != 0).count() as u64
    }

    /// Writes `key` and `value` into free inline entry `i`, then publishes them under
    /// `hash` (one store: a writer killed before it leaves the entry free). Caller holds
    /// the stripe exclusively.
    pub(crate) fn fill(&self, i: usize, hash: u64, key: K, value: V) {
        let e = self.entry[i].get();
        // SAFETY: fields of the slot, written under the exclusive stripe lock.
        unsafe {
            racy_write(addr_of_mut!((*e).key), key);
            racy_write(addr_of_mut!((*e).value), value);
        }
        self.hash[i].store(hash, Release);
    }

    /// Rewrites inline entry `i`'s value in place (several word stores: callers keep a
    /// redo record, see `OP_REWRITE`). Caller holds the stripe exclusively.
    pub(crate) fn set_value(&self, i: usize, value: V) {
        // SAFETY: a field of the slot, written under the exclusive stripe lock.
        unsafe { racy_write(addr_of_mut!((*self.entry[i].get()).value), value) };
    }

    /// Frees inline entry `i` (one store). Caller holds the stripe exclusively.
    pub(crate) fn empty(&self, i: usize) {
        self.hash[i].store(0, Release);
    }
}
