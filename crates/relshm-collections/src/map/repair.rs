//! Repairing a stripe after its writer died, and verifying the whole map.

use super::layout::{OP_INSERT, OP_NONE, OP_REMOVE, OP_REPLACE, STRIPES};
use super::{Map, MapKey, Node};
use crate::arena::{CollectionError, Result, corrupt};
use bytemuck::Pod;
use core::ptr::NonNull;
use core::sync::atomic::Ordering::{Acquire, Relaxed, Release};
use relshm_ptr::Repr;
use relshm_segment::heap::HeapError;

impl<'a, K: MapKey, V: Pod, R: Repr> Map<'a, K, V, R> {
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
            op => return Err(corrupt(format!("stripe {s}: unknown operation {op}"))),
        }
        st.intent.store(OP_NONE, Release);
        let (t, log2) = self.table()?;
        let mut count = 0u64;
        for b in (s as u64..1 << log2).step_by(STRIPES) {
            count += self.chain_len(self.head(t, b)?)?;
        }
        st.len.store(count, Release);
        // A writer that died inside its write section left the word odd.
        super::seq::settle(&st.seq);
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

    /// Walks every bucket and checks: every link resolves, no cycle, every node sits in the
    /// bucket its hash names, each stripe's count matches its nodes, no operation or resize
    /// is half done. Returns the number of entries.
    pub fn verify(&self) -> Result<u64> {
        let _read = self.read()?;
        let ctx = self.ctx();
        let (t, log2) = self.table().map_err(|e| corrupt(format!("table: {e}")))?;
        let mask = (1u64 << log2) - 1;
        let max = self.max_nodes();
        let mut counts = [0u64; STRIPES];
        let mut total = 0u64;
        for b in 0..=mask {
            let head = self
                .head(t, b)
                .map_err(|e| corrupt(format!("bucket {b}: {e}")))?;
            let mut cur = head
                .get(ctx)
                .map_err(|e| corrupt(format!("bucket {b}: head link: {e}")))?;
            while let Some(n) = cur {
                total += 1;
                if total > max {
                    return Err(corrupt(format!(
                        "cycle: more than {max} nodes reachable (bucket {b})"
                    )));
                }
                if n.hash & mask != b {
                    return Err(corrupt(format!(
                        "a node in bucket {b} hashes to bucket {}",
                        n.hash & mask
                    )));
                }
                counts[b as usize % STRIPES] += 1;
                cur = n
                    .next
                    .get(ctx)
                    .map_err(|e| corrupt(format!("bucket {b}: next link: {e}")))?;
            }
        }
        for (s, st) in self.hdr.stripes.iter().enumerate() {
            let len = st.len.load(Acquire);
            if len != counts[s] {
                return Err(corrupt(format!(
                    "stripe {s}: count mismatch: header says {len}, {} nodes are linked",
                    counts[s]
                )));
            }
            if st.intent.load(Acquire) != OP_NONE {
                return Err(corrupt(format!("stripe {s}: an operation is half done")));
            }
        }
        if !self.hdr.new_table.is_null() || self.hdr.moving.load(Acquire) != 0 {
            return Err(corrupt("a resize is half done"));
        }
        Ok(total)
    }
}
