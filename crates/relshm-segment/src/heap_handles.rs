//! The heap handles one mapping made, kept for its lifetime so that every allocation,
//! free and collection operation borrows a ready handle instead of attaching anew.
//!
//! Attaching validates the control block and, for a mapping with a cache slot, looks the
//! slot up: measured 60-70 ns per operation on the 2-vCPU VM, more than the cached
//! allocation itself. A handle covers the bytes mapped when it was made, so the mapping
//! makes another when it grows; handles of a forked child (which must not use its parent's
//! cache slot) are made anew too. Handles are only ever added (a lock-free push), and all
//! are freed with the mapping, so a borrowed one stays valid while its `Segment` lives.

use core::ptr;
use core::sync::atomic::{AtomicPtr, Ordering::Acquire, Ordering::Release};

use crate::heap::Heap;

struct Node {
    heap: Heap,
    /// [`relshm_sync::process::fork_generation`] when the handle was made.
    fork: u64,
    next: *mut Node,
}

/// A mapping's heap handles, newest first.
#[derive(Debug)]
pub(crate) struct HeapHandles {
    newest: AtomicPtr<Node>,
}

impl HeapHandles {
    pub(crate) fn new() -> Self {
        Self {
            newest: AtomicPtr::new(ptr::null_mut()),
        }
    }

    /// The newest handle, if it covers `mapped` bytes and was made in this process.
    #[inline]
    pub(crate) fn get(&self, mapped: u64) -> Option<&Heap> {
        self.newest().filter(|h| h.region().len() == mapped)
    }

    /// The newest handle made in this process, whatever it covers.
    #[inline]
    pub(crate) fn newest(&self) -> Option<&Heap> {
        // SAFETY: `newest` is null or a node pushed by `add`, which stays allocated until
        // `self` drops, and is never written after it was published (Release/Acquire).
        let node = unsafe { self.newest.load(Acquire).as_ref() }?;
        (node.fork == relshm_sync::process::fork_generation()).then_some(&node.heap)
    }

    /// Keeps `heap` for the mapping's lifetime and makes it the newest; returns it.
    pub(crate) fn add(&self, heap: Heap) -> &Heap {
        let node = Box::into_raw(Box::new(Node {
            heap,
            fork: relshm_sync::process::fork_generation(),
            next: ptr::null_mut(),
        }));
        let mut head = self.newest.load(Acquire);
        loop {
            // SAFETY: `node` is ours until the exchange below publishes it.
            unsafe { (*node).next = head };
            match self
                .newest
                .compare_exchange_weak(head, node, Release, Acquire)
            {
                Ok(_) => break,
                Err(h) => head = h,
            }
        }
        // SAFETY: published nodes live until `self` drops, and `&self` borrows it.
        unsafe { &(*node).heap }
    }
}

impl Drop for HeapHandles {
    fn drop(&mut self) {
        let mut p = *self.newest.get_mut();
        while !p.is_null() {
            // SAFETY: every node was made by `Box::into_raw` in `add` and is freed once,
            // here, when nothing can borrow it any more (`&mut self`).
            let node = unsafe { Box::from_raw(p) };
            p = node.next;
        }
    }
}
