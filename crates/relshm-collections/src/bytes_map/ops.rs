//! Changes to a [`BytesMap`](super::BytesMap): one bucket under its stripe lock, or the
//! whole table (resize, clear) with the map held exclusively.

use super::layout::{BytesTable, MAX_LEN, MAX_LOG2, node_ident, table_ident};
use super::{Head, Node, View, hash_bytes};
use crate::arena::{CollectionError, Result, corrupt};
use crate::map::STRIPES;
use crate::racy;
use crate::seqlock::WriteSection;
use core::ptr::NonNull;
use core::sync::atomic::Ordering::{Relaxed, Release};
use core::sync::atomic::fence;
use relshm_ptr::Repr;
use relshm_segment::heap::{OWNER_RECORD, kill_point};
use relshm_sync::Held;

/// Where a key lives: its stripe (locked) and bucket.
pub(crate) struct Spot<'a, R: Repr> {
    pub(crate) log2: u64,
    pub(crate) hash: u64,
    pub(crate) stripe: usize,
    pub(crate) stripe_off: u64,
    pub(crate) head: &'a Head<R>,
}

/// A found node and the link that points at it.
pub(crate) type Found<'a, R> = Option<(&'a Head<R>, &'a Node<R>)>;

/// Bytes of a node's heap block holding `data` key and value bytes (owner record and
/// node included, rounded up to whole words for the racy word copies).
fn node_block<R: Repr>(data: u64) -> u64 {
    (OWNER_RECORD + size_of::<Node<R>>() as u64 + data).next_multiple_of(8)
}

/// Bytes of a table's heap block with `2^log2` heads.
fn table_block<R: Repr>(log2: u64) -> u64 {
    OWNER_RECORD + size_of::<BytesTable<R>>() as u64 + ((size_of::<Head<R>>() as u64) << log2)
}

impl<'a, R: Repr> View<'a, R> {
    /// Runs `f` on `key`'s bucket with the map shared and the key's stripe locked (shared,
    /// or exclusively inside the stripe's write section for writers).
    pub(crate) fn with_stripe<X>(
        &self,
        key: &[u8],
        exclusive: bool,
        f: impl FnOnce(&Spot<'a, R>, Found<'a, R>) -> Result<X>,
    ) -> Result<X> {
        let hash = hash_bytes(key);
        let _global = self.global_shared()?;
        let (_, log2, heads) = self.table()?;
        let b = hash & ((1 << log2) - 1);
        let (s, stripe_off) = self.stripe(b);
        let st = &self.hdr.stripes[s];
        let m = *self;
        let repair = move || m.repaired(m.fix_stripe(s));
        let _held = if exclusive {
            Held::exclusive(&st.lock, None, repair)?
        } else {
            Held::shared(&st.lock, None, repair)?
        };
        let _section = exclusive.then(|| WriteSection::begin(&st.seq));
        let head = &heads[b as usize];
        let found = self.find(head, hash, key)?;
        f(
            &Spot {
                log2,
                hash,
                stripe: s,
                stripe_off,
                head,
            },
            found,
        )
    }

    /// Looks for `key` along the chain from `head` (bounded: a cycle is an error). Caller
    /// holds the stripe.
    pub(crate) fn find(&self, head: &'a Head<R>, hash: u64, key: &[u8]) -> Result<Found<'a, R>> {
        let mut pred = head;
        let mut left = self.max_nodes();
        while let Some(n) = pred.get(self.ctx())? {
            if n.hash.load(Relaxed) == hash
                && n.key_len.load(Relaxed) as usize == key.len()
                && self.kv(n)?.0 == key
            {
                return Ok(Some((pred, n)));
            }
            left -= 1;
            if left == 0 {
                return Err(corrupt("cycle in a bucket chain"));
            }
            pred = &n.next;
        }
        Ok(None)
    }

    /// Stores `value` under `key`; whether it replaced a value.
    pub(crate) fn insert(&self, key: &[u8], value: &[u8]) -> Result<bool> {
        for len in [key.len(), value.len()] {
            if len > MAX_LEN {
                return Err(CollectionError::CapacityOverflow {
                    count: len as u64,
                    size: 1,
                });
            }
        }
        let (replaced, grow) = self.with_stripe(key, true, |spot, found| {
            let ctx = self.ctx();
            let st = &self.hdr.stripes[spot.stripe];
            match found {
                Some((pred, old)) => {
                    let next = old.next.get(ctx)?;
                    let n = self.new_node(spot.stripe_off, spot.hash, key, value, next)?;
                    fence(Release);
                    kill_point();
                    pred.set(ctx, Some(n))?;
                    kill_point();
                    self.free_node(old, spot.stripe_off)?;
                    Ok((true, false))
                }
                None => {
                    let n =
                        self.new_node(spot.stripe_off, spot.hash, key, value, spot.head.get(ctx)?)?;
                    fence(Release);
                    kill_point();
                    spot.head.set(ctx, Some(n))?;
                    let len = st.len.load(Relaxed) + 1;
                    st.len.store(len, Release);
                    let share = (1u64 << spot.log2) / STRIPES as u64;
                    Ok((false, len > share && spot.log2 < MAX_LOG2))
                }
            }
        })?;
        if grow {
            self.grow()?;
        }
        Ok(replaced)
    }

    /// Removes `key`; whether it was there.
    pub(crate) fn remove(&self, key: &[u8]) -> Result<bool> {
        self.with_stripe(key, true, |spot, found| {
            let Some((pred, n)) = found else {
                return Ok(false);
            };
            let st = &self.hdr.stripes[spot.stripe];
            pred.set(self.ctx(), n.next.get(self.ctx())?)?;
            st.len
                .store(st.len.load(Relaxed).saturating_sub(1), Release);
            kill_point();
            self.free_node(n, spot.stripe_off)?;
            Ok(true)
        })
    }

    /// A new, unpublished node of the stripe at `stripe_off` holding `key` and `value`,
    /// linking to `next`. Written with atomic stores only: an unlocked reader may still be
    /// looking at this memory (freed and reused).
    pub(crate) fn new_node(
        &self,
        stripe_off: u64,
        hash: u64,
        key: &[u8],
        value: &[u8],
        next: Option<&Node<R>>,
    ) -> Result<&'a Node<R>> {
        let data = (key.len() + value.len()) as u64;
        let block = node_block::<R>(data);
        let ident = node_ident(stripe_off);
        let payload = self.arena.alloc_owned(block, ident)?;
        kill_point();
        let node_off = payload + OWNER_RECORD;
        let made = self.fill_node(node_off, hash, key, value, next);
        match made {
            Ok(n) => Ok(n),
            Err(e) => {
                self.arena.free_owned(payload, Some(block), ident)?;
                Err(e)
            }
        }
    }

    fn fill_node(
        &self,
        node_off: u64,
        hash: u64,
        key: &[u8],
        value: &[u8],
        next: Option<&Node<R>>,
    ) -> Result<&'a Node<R>> {
        let ctx = self.ctx();
        let p = self.arena.at::<Node<R>>(node_off)?;
        // SAFETY: resolved and checked by the arena (in bounds, aligned), mapped while the
        // arena lives; any bits are a valid node (atomics and links), written below with
        // atomic stores only.
        let n = unsafe { p.as_ref() };
        n.hash.store(hash, Relaxed);
        n.key_len.store(key.len() as u32, Relaxed);
        n.value_len.store(value.len() as u32, Relaxed);
        n.next.set(ctx, next)?;
        let data = (key.len() + value.len()) as u64;
        if data == 0 {
            n.bytes.set_ptr(ctx, None)?;
            return Ok(n);
        }
        let at = node_off + size_of::<Node<R>>() as u64;
        let first = self.arena.at::<u8>(at)?;
        n.bytes.set_ptr(ctx, Some(first))?;
        let dst = n
            .bytes
            .get_array_ptr(ctx, data)?
            .ok_or_else(|| corrupt("a fresh node's bytes do not resolve"))?;
        // SAFETY: `data` bytes from `dst` lie in the node's block (sized for them, rounded up
        // to whole words, 8-aligned after the node); the block is fresh and ours alone.
        unsafe {
            racy::write_bytes(dst.as_ptr(), key);
            racy::write_bytes(dst.as_ptr().add(key.len()), value);
        }
        Ok(n)
    }

    /// Frees node `n` of the stripe at `stripe_off` (unlinked: only a stale reader may
    /// still look at it, and its section's end tells it to retry).
    pub(crate) fn free_node(&self, n: &Node<R>, stripe_off: u64) -> Result<()> {
        let payload = self.arena.offset_of(NonNull::from(n)) - OWNER_RECORD;
        let block = node_block::<R>(n.data_len());
        self.arena
            .free_owned(payload, Some(block), node_ident(stripe_off))?;
        Ok(())
    }

    /// A table of `2^log2` empty buckets, not yet published (an owned block naming the
    /// map).
    pub(crate) fn new_table(&self, log2: u64) -> Result<&'a BytesTable<R>> {
        let block = table_block::<R>(log2);
        let payload = self.arena.alloc_owned(block, table_ident(self.off))?;
        let p = self.arena.at::<BytesTable<R>>(payload + OWNER_RECORD)?;
        let heads_off = payload + OWNER_RECORD + size_of::<BytesTable<R>>() as u64;
        let heads = self.arena.at::<Head<R>>(heads_off)?;
        // SAFETY: the table and its heads lie in the fresh block (sized by table_block),
        // in bounds and aligned (checked by the arena); all-zero bytes are null links.
        unsafe {
            p.as_ptr()
                .cast::<u8>()
                .write_bytes(0, (block - OWNER_RECORD) as usize);
        }
        // SAFETY: initialised just above.
        let t = unsafe { p.as_ref() };
        t.log2.store(log2, Relaxed);
        t.heads.set_ptr(self.ctx(), Some(heads.cast()))?;
        Ok(t)
    }

    /// Frees the table `t` (not its nodes).
    fn free_table(&self, t: &BytesTable<R>) -> Result<()> {
        let payload = self.arena.offset_of(NonNull::from(t)) - OWNER_RECORD;
        let block = table_block::<R>(t.log2.load(Relaxed));
        self.arena
            .free_owned(payload, Some(block), table_ident(self.off))?;
        Ok(())
    }

    /// Doubles the table if the map holds more entries than buckets: every node is copied
    /// into a new table, which one store publishes; then the old nodes and table are freed.
    /// A resizer killed before the store leaves the old table whole (the repair frees the
    /// copies), after it the new one (the repair frees the old nodes).
    pub(crate) fn grow(&self) -> Result<()> {
        let _g = self.global_write()?;
        let (old, log2, heads) = self.table()?;
        let total = crate::map::entries(&self.hdr.stripes);
        if total <= 1 << log2 || log2 >= MAX_LOG2 {
            return Ok(());
        }
        let new = self.new_table(log2 + 1)?;
        let (_, _, new_heads) = self.table_parts(new)?;
        let mask = (1u64 << (log2 + 1)) - 1;
        let ctx = self.ctx();
        for head in heads {
            self.for_chain(head, |n| {
                let hash = n.hash.load(Relaxed);
                let b = hash & mask;
                let (k, v) = self.kv(n)?;
                let to = &new_heads[b as usize];
                let copy = self.new_node(self.stripe(b).1, hash, k, v, to.get(ctx)?)?;
                to.set(ctx, Some(copy))?;
                Ok(())
            })?;
        }
        fence(Release);
        kill_point();
        self.hdr.table.set(ctx, Some(new))?;
        kill_point();
        for (b, head) in heads.iter().enumerate() {
            let stripe_off = self.stripe(b as u64).1;
            self.free_chain(head, stripe_off)?;
        }
        self.free_table(old)
    }

    /// Removes every entry: per bucket, the head is cut (one store), then its chain freed.
    pub(crate) fn clear(&self) -> Result<()> {
        let _g = self.global_write()?;
        let (_, _, heads) = self.table()?;
        for (b, head) in heads.iter().enumerate() {
            let first = head.get(self.ctx())?;
            head.set(self.ctx(), None)?;
            kill_point();
            if let Some(n) = first {
                self.free_from(n, self.stripe(b as u64).1)?;
            }
        }
        for st in &self.hdr.stripes {
            st.len.store(0, Release);
        }
        Ok(())
    }

    /// Calls `f` on every node of the chain from `head` (bounded).
    pub(crate) fn for_chain(
        &self,
        head: &'a Head<R>,
        mut f: impl FnMut(&'a Node<R>) -> Result<()>,
    ) -> Result<()> {
        let mut left = self.max_nodes();
        let mut cur = head.get(self.ctx())?;
        while let Some(n) = cur {
            f(n)?;
            left -= 1;
            if left == 0 {
                return Err(corrupt("cycle in a bucket chain"));
            }
            cur = n.next.get(self.ctx())?;
        }
        Ok(())
    }

    /// Frees every node of the chain from `head` (which stays as it is: the caller has
    /// unpublished the chain or the table holding it).
    fn free_chain(&self, head: &'a Head<R>, stripe_off: u64) -> Result<()> {
        match head.get(self.ctx())? {
            Some(n) => self.free_from(n, stripe_off),
            None => Ok(()),
        }
    }

    /// Frees `n` and every node after it (bounded).
    fn free_from(&self, n: &'a Node<R>, stripe_off: u64) -> Result<()> {
        let mut left = self.max_nodes();
        let mut cur = Some(n);
        while let Some(n) = cur {
            let next = n.next.get(self.ctx())?;
            self.free_node(n, stripe_off)?;
            left -= 1;
            if left == 0 {
                return Err(corrupt("cycle in a bucket chain"));
            }
            cur = next;
        }
        Ok(())
    }
}
