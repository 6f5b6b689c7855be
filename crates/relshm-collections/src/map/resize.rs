//! Growth by rehashing inside the segment, clearing, and finishing a dead resizer's work.

use super::layout::{INLINE, OP_NONE, STRIPES};
use super::{MapKey, MapView, Node, Table};
use crate::arena::{Result, corrupt};
use bytemuck::Pod;
use core::ptr::NonNull;
use core::sync::atomic::Ordering::{Relaxed, Release};
use core::sync::atomic::fence;
use relshm_ptr::Repr;

impl<'a, K: MapKey, V: Pod, R: Repr> MapView<'a, K, V, R> {
    /// Doubles the bucket table if the map holds more entries than buckets. Takes the map
    /// exclusively (waits for every operation in flight).
    pub fn grow(&self) -> Result<()> {
        let _g = self.global_write()?;
        let (old, log2) = self.table()?;
        let total = super::entries(&self.hdr.stripes);
        if total <= 1 << log2 || log2 >= super::MAX_LOG2 {
            return Ok(());
        }
        let new = self.new_table(log2 + 1)?;
        self.hdr.new_table.set(self.ctx(), Some(new))?;
        fence(Release);
        self.move_all(old, log2, new, log2 + 1)?;
        self.finish_resize(old, new)
    }

    /// Moves every entry of `old` into `new`: inline entries by copy (idempotent), nodes
    /// one at a time by relinking, recording the node in flight.
    fn move_all(
        &self,
        old: &'a Table<K, V, R>,
        old_log2: u64,
        new: &'a Table<K, V, R>,
        new_log2: u64,
    ) -> Result<()> {
        let (ctx, hdr) = (self.ctx(), self.hdr);
        let mask = (1u64 << new_log2) - 1;
        let mut left = self.max_nodes();
        for b in 0..1u64 << old_log2 {
            let from = self.slot(old, b)?;
            for i in 0..INLINE {
                let h = from.hash(i);
                if h == 0 {
                    continue;
                }
                // Inline to inline: a new bucket takes inline entries only from this old
                // bucket, so it has room, or already holds this entry if a killed resizer
                // got that far (then only the old copy is left to drop).
                let e = from.entry(i);
                let to = self.slot(new, h & mask)?;
                if to.holds(h, &e.key).is_none() {
                    let j = to.vacant().ok_or_else(|| {
                        corrupt(format!(
                            "resize: no room for the inline entries of bucket {b}"
                        ))
                    })?;
                    to.fill(j, h, e.key, e.value);
                }
                fence(Release);
                from.empty(i);
                fence(Release);
            }
            let head = &from.next;
            while let Some(n) = head.get(ctx)? {
                left = left
                    .checked_sub(1)
                    .ok_or_else(|| corrupt("cycle in a bucket chain"))?;
                hdr.moving
                    .store(self.arena.offset_of(NonNull::from(n)), Release);
                fence(Release);
                head.set(ctx, n.next.get(ctx)?)?;
                fence(Release);
                let to = self.head(new, n.hash & mask)?;
                n.next.set(ctx, to.get(ctx)?)?;
                fence(Release);
                to.set(ctx, Some(n))?;
                fence(Release);
                hdr.moving.store(0, Release);
            }
        }
        Ok(())
    }

    /// Publishes `new` and frees `old` (a kill before the free leaks the old table).
    fn finish_resize(&self, old: &'a Table<K, V, R>, new: &'a Table<K, V, R>) -> Result<()> {
        self.hdr.table.set(self.ctx(), Some(new))?;
        fence(Release);
        self.hdr.new_table.set(self.ctx(), None)?;
        fence(Release);
        self.free_table(old)
    }

    /// Removes every entry. Takes the map exclusively.
    pub fn clear(&self) -> Result<()> {
        let _g = self.global_write()?;
        let ctx = self.ctx();
        let (t, log2) = self.table()?;
        for b in 0..1u64 << log2 {
            let slot = self.slot(t, b)?;
            for i in 0..INLINE {
                slot.empty(i);
            }
            let head = &slot.next;
            let mut left = self.max_nodes();
            while let Some(n) = head.get(ctx)? {
                left = left
                    .checked_sub(1)
                    .ok_or_else(|| corrupt("cycle in a bucket chain"))?;
                head.set(ctx, n.next.get(ctx)?)?;
                fence(Release);
                self.arena.free(NonNull::from(n))?;
            }
        }
        for s in &self.hdr.stripes {
            s.len.store(0, Release);
            s.intent.store(OP_NONE, Release);
        }
        Ok(())
    }

    /// Whether `n` is in the chain starting at `head` (bounded walk).
    pub(crate) fn chain_has(
        &self,
        head: &'a relshm_ptr::Link<Node<K, V, R>, R>,
        n: &Node<K, V, R>,
    ) -> Result<bool> {
        let mut cur = head.get(self.ctx())?;
        let mut left = self.max_nodes();
        while let Some(x) = cur {
            if core::ptr::eq(x, n) {
                return Ok(true);
            }
            left = left
                .checked_sub(1)
                .ok_or_else(|| corrupt("cycle in a bucket chain"))?;
            cur = x.next.get(self.ctx())?;
        }
        Ok(false)
    }

    /// The node at offset `off`, checked.
    pub(crate) fn node_at(&self, off: u64) -> Result<&'a Node<K, V, R>> {
        let p = self.arena.at::<Node<K, V, R>>(off)?;
        // SAFETY: in bounds and aligned (checked by `at`), mapped while the arena lives;
        // every bit pattern is a valid node (Relocate).
        Ok(unsafe { p.as_ref() })
    }

    /// With the map held exclusively after its holder died: finishes (or drops) a resize
    /// in progress, then repairs every stripe.
    pub(crate) fn repair_all(&self) -> Result<()> {
        let (ctx, hdr) = (self.ctx(), self.hdr);
        if !hdr.new_table.is_null() {
            let (old, old_log2) = self.table()?;
            let (new, new_log2) = self.table_at(&hdr.new_table)?;
            if core::ptr::eq(old, new) {
                hdr.new_table.set(ctx, None)?;
            } else {
                let moving = hdr.moving.load(Relaxed);
                if moving != 0 {
                    let n = self.node_at(moving)?;
                    let to = self.head(new, n.hash & ((1 << new_log2) - 1))?;
                    let from = self.head(old, n.hash & ((1 << old_log2) - 1))?;
                    // Out of the old chain but not yet in the new one: finish its move.
                    if !self.chain_has(to, n)? && !self.chain_has(from, n)? {
                        n.next.set(ctx, to.get(ctx)?)?;
                        fence(Release);
                        to.set(ctx, Some(n))?;
                    }
                    hdr.moving.store(0, Release);
                }
                self.move_all(old, old_log2, new, new_log2)?;
                self.finish_resize(old, new)?;
            }
        }
        for s in 0..STRIPES {
            self.fix_stripe(s)?;
        }
        // A holder that died inside an epoch write section left it odd.
        crate::seqlock::settle(&hdr.epoch);
        Ok(())
    }
}
