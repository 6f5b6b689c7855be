//! Repairing a [`BytesMap`](super::BytesMap) after a lock holder died, and walking one to
//! verify it.
//!
//! Every change is published by one link store, so the chains are always either the old or
//! the new state; what a dead writer can leave behind is heap blocks: a node allocated and
//! not linked, a node unlinked and not freed, a whole table of copies (a resizer killed
//! before publishing), or an old table and its nodes (killed after). They are all owned
//! blocks naming their stripe or the map, so the repair frees exactly those the live table
//! does not reach.

use super::layout::{BYTES_MAP_MAGIC, BytesMapHeader, MAX_LOG2, MIN_LOG2, node_ident, table_ident};
use super::{Node, View, hash_bytes};
use crate::arena::{Arena, Result, corrupt};
use crate::map::STRIPES;
use crate::seqlock::settle;
use core::ptr::NonNull;
use core::sync::atomic::Ordering::{Relaxed, Release};
use relshm_ptr::Repr;
use relshm_segment::heap::OWNER_RECORD;
use std::collections::BTreeSet;

/// The payload offset of the heap block holding the object at `p`.
fn block_of<T, R: Repr>(arena: &Arena<R>, p: &T) -> u64 {
    arena.offset_of(NonNull::from(p)).wrapping_sub(OWNER_RECORD)
}

impl<R: Repr> View<'_, R> {
    /// With stripe `s` held exclusively (or the whole map): recounts the stripe, frees
    /// every node block of the stripe that no bucket reaches, and makes its seqlock word
    /// even. Idempotent.
    pub(crate) fn fix_stripe(&self, s: usize) -> Result<()> {
        let (_, log2, heads) = self.table()?;
        let stripe_off = self.stripe(s as u64).1;
        let mut reached = BTreeSet::new();
        for b in (s as u64..1 << log2).step_by(STRIPES) {
            self.for_chain(&heads[b as usize], |n| {
                reached.insert(block_of(self.arena, n));
                Ok(())
            })?;
        }
        let ident = node_ident(stripe_off);
        for off in self.arena.owned_by(ident)? {
            if !reached.contains(&off) {
                self.arena.free_owned(off, None, ident)?;
            }
        }
        let st = &self.hdr.stripes[s];
        st.len.store(reached.len() as u64, Release);
        settle(&st.seq);
        Ok(())
    }

    /// With the whole map held exclusively after its holder died: frees every table but
    /// the live one, repairs every stripe, and makes the epoch word even.
    pub(crate) fn repair_all(&self) -> Result<()> {
        let (t, _, _) = self.table()?;
        let live = block_of(self.arena, t);
        let ident = table_ident(self.off);
        for off in self.arena.owned_by(ident)? {
            if off != live {
                self.arena.free_owned(off, None, ident)?;
            }
        }
        for s in 0..STRIPES {
            self.fix_stripe(s)?;
        }
        settle(&self.hdr.epoch);
        Ok(())
    }
}

/// Checks the byte map whose header is at `off` (the whole map held exclusively, or
/// idle): see [`BytesMap::verify`](super::BytesMap::verify). Where the arena has a heap,
/// the blocks the map owns are compared with those it reaches. Returns the entry count.
pub(crate) fn walk<R: Repr>(arena: &Arena<R>, off: u64) -> Result<u64> {
    let p = arena.at::<BytesMapHeader<R>>(off)?;
    // SAFETY: in bounds and aligned (checked by the arena), mapped while it lives; any
    // bits are a valid header (atomics, robust locks, a link).
    let hdr = unsafe { p.as_ref() };
    if hdr.magic.load(Relaxed) != BYTES_MAP_MAGIC
        || hdr.layout.load(Relaxed) != super::layout::layout::<R>()
    {
        return Err(corrupt(format!(
            "no byte map with {} links at {off:#x} (magic or layout word)",
            R::NAME
        )));
    }
    let m = View { arena, hdr, off };
    let (t, log2, heads) = m.table()?;
    debug_assert!((MIN_LOG2..=MAX_LOG2).contains(&log2));
    let mask = (1u64 << log2) - 1;
    let owned = arena.segment().is_some();
    let mut counts = [0u64; STRIPES];
    let mut reached: [BTreeSet<u64>; STRIPES] = Default::default();
    for (b, head) in heads.iter().enumerate() {
        let b = b as u64;
        m.for_chain(head, |n: &Node<R>| {
            let at = arena.offset_of(NonNull::from(n));
            let hash = n.hash.load(Relaxed);
            if hash & mask != b {
                return Err(corrupt(format!(
                    "the node at {at:#x} in bucket {b} hashes to bucket {}",
                    hash & mask
                )));
            }
            let (k, _) = m.kv(n)?;
            if hash_bytes(k) != hash {
                return Err(corrupt(format!(
                    "the node at {at:#x} holds a hash that is not its key's"
                )));
            }
            let s = b as usize % STRIPES;
            counts[s] += 1;
            reached[s].insert(block_of(arena, n));
            Ok(())
        })?;
    }
    for (s, st) in hdr.stripes.iter().enumerate() {
        let len = st.len.load(Relaxed);
        if len != counts[s] {
            return Err(corrupt(format!(
                "stripe {s}: count mismatch: it says {len}, {} nodes are linked",
                counts[s]
            )));
        }
        if owned {
            let mine: BTreeSet<u64> = arena
                .owned_by(node_ident(m.stripe(s as u64).1))?
                .into_iter()
                .collect();
            if mine != reached[s] {
                return Err(corrupt(format!(
                    "stripe {s}: it owns {} node block(s), {} are linked: a dead writer's \
                     leftovers are not repaired",
                    mine.len(),
                    reached[s].len()
                )));
            }
        }
    }
    if owned && arena.owned_by(table_ident(off))? != [block_of(arena, t)] {
        return Err(corrupt(
            "the map owns another bucket table than its live one: a dead resizer's \
             leftovers are not repaired",
        ));
    }
    Ok(counts.iter().sum())
}
