//! Verifying a list, and repairing it after a writer died holding its lock.

use super::guard::Node;
use super::layout::{OP_INSERT, OP_NONE, OP_REMOVE};
use super::{List, ListGuard};
use crate::arena::{CollectionError, Result, corrupt};
use crate::shape::Shape;
use bytemuck::Pod;
use core::ptr::NonNull;
use core::sync::atomic::Ordering::{Relaxed, Release};
use relshm_ptr::Repr;
use relshm_segment::heap::HeapError;

impl<T: Pod, R: Repr> ListGuard<'_, T, R> {
    /// Checks every link (see [`List::verify`](super::List::verify)); returns the length.
    pub fn verify(&self) -> Result<u64> {
        crate::walk::list(self.list.arena(), self.list.offset(), Shape::of::<T>())
    }
}

impl<T: Pod, R: Repr> List<T, R> {
    /// Makes the list consistent after its lock's owner died: the forward chain is the
    /// truth (every operation publishes there first); backward links, tail and length are
    /// rebuilt from it, and the node of an unfinished operation is freed if it is not in
    /// the chain (an insert that never became visible, or a remove that did). Runs with
    /// the list's lock held (as `List::lock`'s repair step).
    pub(crate) fn repair(&self) -> Result<()> {
        let (arena, hdr) = (self.arena(), self.hdr());
        let ctx = arena.ctx();
        let max = arena.max_objects::<Node<T, R>>();
        let op = hdr.intent.load(Relaxed);
        let pending = hdr.intent_node.load(Relaxed);
        let mut found = false;
        let mut prev: Option<&Node<T, R>> = None;
        let mut count = 0u64;
        let mut cur = hdr.head.get(ctx)?;
        while let Some(n) = cur {
            count += 1;
            if count > max {
                return Err(corrupt(
                    "cycle in the forward chain; the list cannot be repaired",
                ));
            }
            found |= arena.offset_of(NonNull::from(n)) == pending;
            n.prev.set(ctx, prev)?;
            prev = Some(n);
            cur = n.next.get(ctx)?;
        }
        hdr.tail.set(ctx, prev)?;
        hdr.len.store(count, Release);
        if (op == OP_INSERT || op == OP_REMOVE) && !found {
            let node = arena.at::<Node<T, R>>(pending)?;
            match arena.free(node) {
                // Already free: the heap refuses a second free, nothing leaked.
                Ok(()) | Err(CollectionError::Heap(HeapError::NotAllocated { .. })) => {}
                Err(e) => return Err(e),
            }
        }
        hdr.intent.store(OP_NONE, Release);
        hdr.repairs.fetch_add(1, Relaxed);
        Ok(())
    }
}
