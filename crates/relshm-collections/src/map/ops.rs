//! Lookups and kill-safe updates of one bucket (inline slot and chain) under its stripe
//! lock.

use super::layout::{OP_INSERT, OP_NONE, OP_REMOVE, OP_REPLACE, OP_REWRITE, STRIPES};
use super::seq::write_node;
use super::{Chunk, MapKey, MapView, Node, Slot, Stripe, Table, hash_key};
use crate::arena::{Result, corrupt};
use crate::seqlock::WriteSection;
use bytemuck::Pod;
use core::ptr::NonNull;
use core::sync::atomic::Ordering::{Relaxed, Release};
use core::sync::atomic::fence;
use relshm_ptr::{Link, Repr};
use relshm_sync::Held;

/// Where a key lives: its stripe and bucket, with the stripe locked.
pub(crate) struct Spot<'a, K, V, R: Repr> {
    pub(crate) log2: u64,
    pub(crate) hash: u64,
    pub(crate) stripe: &'a Stripe,
    pub(crate) slot: &'a Slot<K, V, R>,
}

/// Where a found entry is.
pub(crate) enum Hit<'a, K, V, R: Repr> {
    /// Inline in the bucket's slot, at this index.
    Inline(&'a Slot<K, V, R>, usize),
    /// A chain node, and the link that points at it (the slot's `next` or the previous
    /// node's).
    Chain(&'a Link<Node<K, V, R>, R>, &'a Node<K, V, R>),
}

impl<K: MapKey, V: Pod, R: Repr> Hit<'_, K, V, R> {
    /// The entry's value (read under the stripe lock).
    pub(crate) fn value(&self) -> V {
        match self {
            Hit::Inline(s, i) => s.entry(*i).value,
            Hit::Chain(_, n) => n.value,
        }
    }
}

/// A found entry, if any.
pub(crate) type Found<'a, K, V, R> = Option<Hit<'a, K, V, R>>;

impl<'a, K: MapKey, V: Pod, R: Repr> MapView<'a, K, V, R> {
    /// Runs `f` on `key`'s bucket with the map shared and the key's stripe locked (shared,
    /// or exclusively for writers).
    pub(crate) fn with_stripe<X>(
        &self,
        key: &K,
        exclusive: bool,
        f: impl FnOnce(&Spot<'a, K, V, R>, Found<'a, K, V, R>) -> Result<X>,
    ) -> Result<X> {
        let hash = hash_key(key);
        let _global = self.global_shared()?;
        let (t, log2) = self.table()?;
        let b = hash & ((1u64 << log2) - 1);
        let s = b as usize % STRIPES;
        let stripe = &self.hdr.stripes[s];
        let m = *self;
        let repair = move || m.repaired(m.fix_stripe(s));
        let _stripe = if exclusive {
            Held::exclusive(&stripe.lock, None, repair)?
        } else {
            Held::shared(&stripe.lock, None, repair)?
        };
        // Declared after the lock, so it ends (the word even again) before the release.
        let _section = exclusive.then(|| WriteSection::begin(&stripe.seq));
        let slot = self.slot(t, b)?;
        let found = self.find(slot, hash, key)?;
        f(
            &Spot {
                log2,
                hash,
                stripe,
                slot,
            },
            found,
        )
    }

    /// Looks for `key` in the bucket `slot`: inline, then along the chain. Caller holds the
    /// stripe.
    pub(crate) fn find(
        &self,
        slot: &'a Slot<K, V, R>,
        hash: u64,
        key: &K,
    ) -> Result<Found<'a, K, V, R>> {
        if let Some(i) = slot.holds(hash, key) {
            return Ok(Some(Hit::Inline(slot, i)));
        }
        self.find_in_chain(slot, hash, key)
    }

    /// Looks for `key` along `slot`'s chain (bounded: a cycle is an error). Caller holds
    /// the stripe.
    pub(crate) fn find_in_chain(
        &self,
        slot: &'a Slot<K, V, R>,
        hash: u64,
        key: &K,
    ) -> Result<Found<'a, K, V, R>> {
        let ctx = self.ctx();
        let mut pred = &slot.next;
        let mut left = self.max_nodes();
        while let Some(n) = pred.get(ctx)? {
            if super::matches(n.hash, &n.key, hash, key) {
                return Ok(Some(Hit::Chain(pred, n)));
            }
            left -= 1;
            if left == 0 {
                return Err(corrupt("cycle in a bucket chain"));
            }
            pred = &n.next;
        }
        Ok(None)
    }

    /// Inserts `value` under `key`, or replaces the value there. Returns the old value.
    pub fn insert(&self, key: K, value: V) -> Result<Option<V>> {
        let (old, grow) = self.with_stripe(&key, true, |spot, found| match found {
            Some(hit) => Ok((Some(self.replace(spot, hit, value)?), false)),
            None => {
                self.link_new(spot, key, value)?;
                let share = (1u64 << spot.log2) / STRIPES as u64;
                let full = spot.stripe.len.load(Relaxed) > share;
                Ok((None, full && spot.log2 < super::MAX_LOG2))
            }
        })?;
        if grow {
            self.grow()?;
        }
        Ok(old)
    }

    /// Removes `key`, returning its value.
    pub fn remove(&self, key: &K) -> Result<Option<V>> {
        self.with_stripe(key, true, |spot, found| match found {
            Some(hit) => self.unlink(spot, hit).map(Some),
            None => Ok(None),
        })
    }

    /// Applies `f` to the value under `key` (a copy, written back atomically by replacing
    /// the entry). Returns whether the key was present.
    pub fn update(&self, key: &K, f: impl FnOnce(&mut V)) -> Result<bool> {
        self.with_stripe(key, true, |spot, found| match found {
            Some(hit) => {
                let mut v = hit.value();
                f(&mut v);
                self.replace(spot, hit, v)?;
                Ok(true)
            }
            None => Ok(false),
        })
    }

    /// Applies `f` to the value under `key`, inserting `f(init)` if the key is absent, as
    /// one atomic step (no other process sees the key missing in between). Returns the
    /// value stored.
    pub fn upsert(&self, key: K, init: V, f: impl FnOnce(&mut V)) -> Result<V> {
        let (v, grow) = self.with_stripe(&key, true, |spot, found| match found {
            Some(hit) => {
                let mut v = hit.value();
                f(&mut v);
                self.replace(spot, hit, v)?;
                Ok((v, false))
            }
            None => {
                let mut v = init;
                f(&mut v);
                self.link_new(spot, key, v)?;
                let share = (1u64 << spot.log2) / STRIPES as u64;
                let full = spot.stripe.len.load(Relaxed) > share;
                Ok((v, full && spot.log2 < super::MAX_LOG2))
            }
        })?;
        if grow {
            self.grow()?;
        }
        Ok(v)
    }

    /// A new, unpublished node.
    pub(crate) fn new_node(
        &self,
        next: Option<&'a Node<K, V, R>>,
        hash: u64,
        key: K,
        value: V,
    ) -> Result<&'a Node<K, V, R>> {
        let p = self.arena.alloc::<Node<K, V, R>>()?;
        // SAFETY: a fresh allocation (in bounds and aligned, checked by alloc) nothing links
        // to (an unlocked reader may still read it, hence atomic stores).
        unsafe { write_node(p.as_ptr(), hash, key, value) };
        // SAFETY: initialised just above; mapped while the arena lives.
        let n = unsafe { p.as_ref() };
        if let Err(e) = n.next.set(self.ctx(), next) {
            let _ = self.arena.free(p);
            return Err(e.into());
        }
        Ok(n)
    }

    fn off(&self, n: &Node<K, V, R>) -> u64 {
        self.arena.offset_of(NonNull::from(n))
    }

    /// Publishes a new entry: into a free inline entry (written, then published by one
    /// hash store: no intent needed), or at the head of the chain (intent, one link
    /// store, count).
    fn link_new(&self, spot: &Spot<'a, K, V, R>, key: K, value: V) -> Result<()> {
        let st = spot.stripe;
        if let Some(i) = spot.slot.vacant() {
            spot.slot.fill(i, spot.hash, key, value);
            fence(Release);
            st.len.store(st.len.load(Relaxed) + 1, Release);
            return Ok(());
        }
        let ctx = self.ctx();
        let head = &spot.slot.next;
        let n = self.new_node(head.get(ctx)?, spot.hash, key, value)?;
        st.node.store(self.off(n), Relaxed);
        st.intent.store(OP_INSERT, Release);
        fence(Release);
        head.set(ctx, Some(n))?;
        fence(Release);
        st.len.store(st.len.load(Relaxed) + 1, Release);
        st.intent.store(OP_NONE, Release);
        Ok(())
    }

    /// Gives the found entry `value`. Returns the old value.
    ///
    /// A chain node is replaced by a copy: intent, one link store, intent cleared, then
    /// the old node freed (a kill there leaks it). An inline entry is rewritten in place
    /// after a redo record (a node holding key and new value) is named by the intent: a
    /// writer killed mid-rewrite is finished by the repair.
    fn replace(&self, spot: &Spot<'a, K, V, R>, hit: Hit<'a, K, V, R>, value: V) -> Result<V> {
        let ctx = self.ctx();
        let st = spot.stripe;
        match hit {
            Hit::Inline(slot, i) if Slot::<K, V, R>::VALUE_IN_ONE_WORD => {
                // One word store: a writer killed around it leaves the old value or the
                // new one, both whole, so no redo record (and no heap allocation, whose
                // lock two updating processes would pass back and forth).
                let e = slot.entry(i);
                slot.set_value(i, value);
                Ok(e.value)
            }
            Hit::Inline(slot, i) => {
                let e = slot.entry(i);
                let log = self.new_node(None, spot.hash, e.key, value)?;
                st.node.store(self.off(log), Relaxed);
                st.intent.store(OP_REWRITE, Release);
                fence(Release);
                slot.set_value(i, value);
                fence(Release);
                st.intent.store(OP_NONE, Release);
                fence(Release);
                self.arena.free(NonNull::from(log))?;
                Ok(e.value)
            }
            Hit::Chain(pred, old) => {
                let n = self.new_node(old.next.get(ctx)?, old.hash, old.key, value)?;
                st.node.store(self.off(n), Relaxed);
                st.old.store(self.off(old), Relaxed);
                st.intent.store(OP_REPLACE, Release);
                fence(Release);
                pred.set(ctx, Some(n))?;
                fence(Release);
                let prev = old.value;
                st.intent.store(OP_NONE, Release);
                fence(Release);
                self.arena.free(NonNull::from(old))?;
                Ok(prev)
            }
        }
    }

    /// Removes the found entry: an inline one by emptying its slot (one store), a chain
    /// node by unlinking (intent, one link store) and freeing it.
    fn unlink(&self, spot: &Spot<'a, K, V, R>, hit: Hit<'a, K, V, R>) -> Result<V> {
        let ctx = self.ctx();
        let st = spot.stripe;
        let (pred, n) = match hit {
            Hit::Inline(slot, i) => {
                let v = slot.entry(i).value;
                slot.empty(i);
                fence(Release);
                st.len
                    .store(st.len.load(Relaxed).saturating_sub(1), Release);
                return Ok(v);
            }
            Hit::Chain(pred, n) => (pred, n),
        };
        st.node.store(self.off(n), Relaxed);
        st.intent.store(OP_REMOVE, Release);
        fence(Release);
        pred.set(ctx, n.next.get(ctx)?)?;
        fence(Release);
        st.len
            .store(st.len.load(Relaxed).saturating_sub(1), Release);
        let v = n.value;
        st.intent.store(OP_NONE, Release);
        fence(Release);
        self.arena.free(NonNull::from(n))?;
        Ok(v)
    }

    /// A zeroed table of `2^log2` buckets, not yet published.
    pub(crate) fn new_table(&self, log2: u64) -> Result<&'a Table<K, V, R>> {
        let p = self.arena.alloc::<Table<K, V, R>>()?;
        // SAFETY: a fresh allocation nothing links to; all-zero bytes are a valid, empty
        // table (null links).
        unsafe { p.as_ptr().write_bytes(0, 1) };
        // SAFETY: initialised just above; mapped while the arena lives.
        let t = unsafe { p.as_ref() };
        t.log2.store(log2, Relaxed);
        let chunks = ((1u64 << log2) as usize).div_ceil(super::CHUNK);
        for i in 0..chunks {
            let made = self.arena.alloc::<Chunk<K, V, R>>().and_then(|c| {
                // SAFETY: a fresh allocation; all-zero bytes are null links.
                unsafe { c.as_ptr().write_bytes(0, 1) };
                // SAFETY: initialised just above.
                Ok(t.chunks[i].set(self.ctx(), Some(unsafe { c.as_ref() }))?)
            });
            if let Err(e) = made {
                let _ = self.free_table(t);
                return Err(e);
            }
        }
        Ok(t)
    }

    /// Frees a table and its chunks (not the nodes).
    pub(crate) fn free_table(&self, t: &'a Table<K, V, R>) -> Result<()> {
        for link in &t.chunks {
            if let Some(c) = link.get(self.ctx())? {
                self.arena.free(NonNull::from(c))?;
            }
        }
        self.arena.free(NonNull::from(t))
    }
}
