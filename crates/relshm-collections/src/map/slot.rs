//! Reading and writing a bucket's inline entry ([`Slot`]).
//!
//! Writers hold the slot's stripe exclusively; readers hold it shared, or hold no lock and
//! validate afterwards (`map::seq`). So plain reads are fine under a lock, but every write
//! (and every lock-free read) is done word by word with atomic operations: a lock-free
//! reader may look at the slot while it is rewritten.

use super::Slot;
use super::layout::Entry;
use super::seq::racy_read;
use bytemuck::Pod;
use core::ptr::addr_of_mut;
use core::sync::atomic::AtomicU64;
use core::sync::atomic::Ordering::{Relaxed, Release};
use relshm_ptr::Repr;

impl<K: Pod + Eq, V: Pod, R: Repr> Slot<K, V, R> {
    /// The inline entry's hash, 0 if the slot holds none.
    #[inline(always)]
    pub(crate) fn hash(&self) -> u64 {
        self.hash.load(Relaxed)
    }

    /// The inline entry (meaningful when [`hash`](Self::hash) is not 0). Caller holds the
    /// slot's stripe lock (so no writer is inside).
    #[inline(always)]
    pub(crate) fn entry(&self) -> Entry<K, V> {
        // SAFETY: in-bounds, aligned memory of the slot; under the stripe lock no write
        // races this read (writers hold the lock exclusively).
        unsafe { self.entry.get().read() }
    }

    /// The inline entry read with atomic loads only (may be torn: validate before use).
    #[inline(always)]
    pub(crate) fn racy_key(&self) -> K {
        // SAFETY: the key lies inside the slot, an 8-aligned object of whole words.
        unsafe { racy_read(addr_of_mut!((*self.entry.get()).key)) }
    }

    /// As [`racy_key`](Self::racy_key), for the value.
    #[inline(always)]
    pub(crate) fn racy_value(&self) -> V {
        // SAFETY: as in racy_key.
        unsafe { racy_read(addr_of_mut!((*self.entry.get()).value)) }
    }

    /// Whether the slot holds `key` (hashing to `hash`). Caller holds the stripe lock.
    #[inline(always)]
    pub(crate) fn holds(&self, hash: u64, key: &K) -> bool {
        self.hash() == hash && self.entry().key == *key
    }

    /// Writes `key` and `value` into an empty slot, then publishes them under `hash` (one
    /// store: a writer killed before it leaves the slot empty). Caller holds the stripe
    /// exclusively.
    pub(crate) fn fill(&self, hash: u64, key: K, value: V) {
        let e = self.entry.get();
        // SAFETY: fields of the slot, written under the exclusive stripe lock.
        unsafe {
            racy_write(addr_of_mut!((*e).key), key);
            racy_write(addr_of_mut!((*e).value), value);
        }
        self.hash.store(hash, Release);
    }

    /// Rewrites the inline value in place (several word stores: callers keep a redo
    /// record, see `OP_REWRITE`). Caller holds the stripe exclusively.
    pub(crate) fn set_value(&self, value: V) {
        // SAFETY: a field of the slot, written under the exclusive stripe lock.
        unsafe { racy_write(addr_of_mut!((*self.entry.get()).value), value) };
    }

    /// Empties the slot (one store). Caller holds the stripe exclusively.
    pub(crate) fn empty(&self) {
        self.hash.store(0, Release);
    }
}

/// Writes `val` at `dst` with atomic word stores (read-modify-write for words it shares
/// with neighbouring bytes, which only a lock holder writes).
///
/// # Safety
/// `dst` is writable through this pointer, and the 8-byte words covering it lie in the
/// same 8-aligned object of whole words (a slot), written by no one else meanwhile.
unsafe fn racy_write<T: Pod>(dst: *mut T, val: T) {
    let src = bytemuck::bytes_of(&val);
    let (a, size) = (dst as usize, size_of::<T>());
    let mut w = a & !7;
    while w < a + size {
        // SAFETY: a covering word of `dst` (the caller's contract); its provenance is
        // dst's (the slot's UnsafeCell).
        let word =
            unsafe { AtomicU64::from_ptr(dst.cast::<u8>().wrapping_add(w.wrapping_sub(a)).cast()) };
        let mut bytes = if w >= a && w + 8 <= a + size {
            [0; 8]
        } else {
            word.load(Relaxed).to_ne_bytes()
        };
        for (i, b) in bytes.iter_mut().enumerate() {
            if (a..a + size).contains(&(w + i)) {
                *b = src[w + i - a];
            }
        }
        word.store(u64::from_ne_bytes(bytes), Relaxed);
        w += 8;
    }
}
