//! Repairing a stripe after its writer died, and verifying the whole map.

use super::layout::{OP_INSERT, OP_NONE, OP_REMOVE, OP_REPLACE, OP_REWRITE, STRIPES};
use super::{MapKey, MapView, Node};
use crate::arena::{CollectionError, Result, corrupt};
use crate::shape::Shape;
use bytemuck::Pod;
use core::ptr::NonNull;
use core::sync::atomic::Ordering::{Acquire, Relaxed, Release};
use relshm_ptr::Repr;
use relshm_segment::heap::HeapError;

impl<'a, K: MapKey, V: Pod, R: Repr> MapView<'a, K, V, R> {
    /// Frees a node that the intent record says is unreachable and not yet freed; a node
    /// the heap already considers free is left alone.
    fn free_pending(&self, n: &Node<K, V, R>) -> Result<()> {
        match self.arena.free(NonNull::from(n)) {
            Ok(()) | Err(CollectionError::Heap(HeapError::NotAllocated { .. })) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Whether `n` is linked in its bucket of the live table.
    fn reachable(&self, n: &Node<K, V, R>) -> Result<bool> {
        let (t, log2) = self.table()?;
        self.chain_has(self.head(t, n.hash & ((1 << log2) - 1))?, n)
    }

    /// With stripe `s` held exclusively (or the whole map): completes or rolls back the
    /// operation a dead writer left half done, then recounts the stripe. Idempotent.
    pub(crate) fn fix_stripe(&self, s: usize) -> Result<()> {
        let st = &self.hdr.stripes[s];
        match st.intent.load(Acquire) {
            OP_NONE => {}
            OP_INSERT | OP_REMOVE => {
                // Not in its chain: an insert that never became visible, or a remove that
                // did; either way nothing links to it any more.
                let n = self.node_at(st.node.load(Relaxed))?;
                if !self.reachable(n)? {
                    self.free_pending(n)?;
                }
            }
            OP_REPLACE => {
                let n = self.node_at(st.node.load(Relaxed))?;
                if self.reachable(n)? {
                    let old = self.node_at(st.old.load(Relaxed))?;
                    if !self.reachable(old)? {
                        self.free_pending(old)?;
                    }
                } else {
                    self.free_pending(n)?;
                }
            }
            OP_REWRITE => {
                // Finish the in-place rewrite from the redo record (idempotent), wherever
                // a resize since put the inline entry.
                let log = self.node_at(st.node.load(Relaxed))?;
                let (t, log2) = self.table()?;
                let slot = self.slot(t, log.hash & ((1 << log2) - 1))?;
                let Some(i) = slot.holds(log.hash, &log.key) else {
                    return Err(corrupt(format!(
                        "stripe {s}: the entry being rewritten is not in its slot"
                    )));
                };
                slot.set_value(i, log.value);
                self.free_pending(log)?;
            }
            op => return Err(corrupt(format!("stripe {s}: unknown operation {op}"))),
        }
        st.intent.store(OP_NONE, Release);
        let (t, log2) = self.table()?;
        let mut count = 0u64;
        for b in (s as u64..1 << log2).step_by(STRIPES) {
            let slot = self.slot(t, b)?;
            count += slot.used() + self.chain_len(&slot.next)?;
        }
        st.len.store(count, Release);
        // A writer that died inside its write section left the word odd.
        crate::seqlock::settle(&st.seq);
        Ok(())
    }

    fn chain_len(&self, head: &'a relshm_ptr::Link<Node<K, V, R>, R>) -> Result<u64> {
        let max = self.max_nodes();
        let mut cur = head.get(self.ctx())?;
        let mut count = 0;
        while let Some(n) = cur {
            count += 1;
            if count > max {
                return Err(corrupt("cycle in a bucket chain"));
            }
            cur = n.next.get(self.ctx())?;
        }
        Ok(count)
    }

    /// Walks every bucket and checks: every link resolves, no cycle, every entry (inline or
    /// node) sits in the bucket its hash names, each stripe's count matches its nodes, no
    /// operation or resize is half done. Returns the number of entries.
    pub fn verify(&self) -> Result<u64> {
        let _read = self.read()?;
        crate::walk::map(self.arena, self.off, Shape::of::<K>(), Shape::of::<V>())
    }
}

#[cfg(test)]
mod tests {
    use super::super::layout::OP_REWRITE;
    use super::super::ops::Hit;
    use crate::arena::Arena;
    use crate::map::Map;
    use core::ptr::NonNull;
    use core::sync::atomic::Ordering::{Acquire, Release};
    use relshm_ptr::Offset;
    use relshm_segment::{CreateOptions, Placement, Segment};
    use relshm_testkit::{Scratch, fork_child};
    use std::time::Duration;

    /// A writer killed in the middle of rewriting an inline value (redo record named, the
    /// value half written) is finished by the next user from the record, in another process
    /// at another address.
    #[test]
    fn a_rewrite_killed_midway_is_finished_from_its_record() {
        let seg = Segment::create_unnamed(&CreateOptions::new(4 << 20)).unwrap();
        let arena = Arena::<Offset>::new(&seg).unwrap();
        let map = Map::<u64, [u64; 4], Offset>::create(&arena).unwrap();
        map.insert(7, [1; 4]).unwrap();
        map.insert(8, [2; 4]).unwrap();
        let off = map.offset();
        let scratch = Scratch::new();
        let writer = {
            let (seg, scratch) = (&seg, &scratch);
            fork_child(move || {
                let mine = seg.reopen(Placement::Anywhere).unwrap();
                if mine.region().base() == seg.region().base() {
                    return 2;
                }
                let arena = Arena::<Offset>::new(&mine).unwrap();
                let map = Map::<u64, [u64; 4], Offset>::open(&arena, off).unwrap();
                let _ = map.view().with_stripe(&7, true, |spot, found| {
                    let Some(Hit::Inline(slot, i)) = found else {
                        return Ok(());
                    };
                    // What replace() does, stopped half way through the rewrite.
                    let log = map.view().new_node(None, spot.hash, 7, [9; 4])?;
                    let at = arena.offset_of(NonNull::from(log));
                    spot.stripe.node.store(at, Release);
                    spot.stripe.intent.store(OP_REWRITE, Release);
                    slot.set_value(i, [9, 9, 1, 1]);
                    scratch.slot(0).store(1, Release);
                    loop {
                        std::thread::park();
                    }
                });
                3
            })
        };
        scratch.wait_for(0, 1, Duration::from_secs(60));
        assert_eq!(scratch.slot(0).load(Acquire), 1);
        writer.kill_and_wait();
        assert_eq!(
            map.get(&7).unwrap(),
            Some([9; 4]),
            "the rewrite was not finished"
        );
        assert_eq!(map.get(&8).unwrap(), Some([2; 4]));
        assert!(map.repairs() >= 1);
        assert_eq!(map.verify().unwrap(), 2);
        // The map stays usable after the repair: inserts and growth.
        for k in 100..2100 {
            map.insert(k, [k; 4]).unwrap();
        }
        assert_eq!(map.verify().unwrap(), 2002);
    }
}
