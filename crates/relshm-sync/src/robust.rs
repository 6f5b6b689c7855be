//! Linking lock nodes into the calling thread's kernel robust-futex list.
//!
//! The kernel (Documentation/locking/robust-futex-ABI.rst) walks a per-thread, user-space,
//! singly linked list when the thread exits for any reason, SIGKILL included. For every
//! entry whose futex word (at `entry + futex_offset`) still holds the dying thread's id it
//! sets `FUTEX_OWNER_DIED`, clears the id and wakes one waiter (shared futex). It also
//! handles `list_op_pending`, the entry the thread was locking or unlocking when it died.
//!
//! There is only one list per thread and glibc registers it at thread start for its own
//! robust `pthread_mutex_t`s, so we link our nodes into *glibc's* list with glibc's node
//! shape (x86_64 and every 64-bit glibc target): a node is the `next` field of a
//! `{prev, next}` pair whose lock word sits at `next - 32` (glibc's
//! `futex_offset = offsetof(__lock) - offsetof(__list.__next)`), `prev` and `next` point to
//! the neighbours' `next` fields, the list is circular through the head, and the word just
//! before the head (glibc's `robust_prev`) acts as the head's `prev`. We read the
//! registered head and its `futex_offset` with `get_robust_list(0)` and use it only when
//! the offset is the one our layout has. If no list is registered (not glibc) we register
//! our own head of the same shape. If a different offset is registered, owner death is
//! not detected (see [`robust_supported`]); locking still works.

use core::sync::atomic::{AtomicU64, AtomicUsize, Ordering, compiler_fence};
use std::cell::Cell;

use crate::sync::Links;

/// Offset of the lock word relative to the node (`next` field) in our and glibc's layout.
pub(crate) const FUTEX_OFFSET: isize = -32;

/// Same shape as glibc's `struct pthread { ...; void *robust_prev; struct robust_list_head
/// robust_head; }`; used only when nobody registered a list for this thread.
#[repr(C)]
struct OwnHead {
    robust_prev: AtomicUsize,
    list: AtomicUsize,
    futex_offset: isize,
    list_op_pending: AtomicUsize,
}

const UNKNOWN: usize = 0;
const UNSUPPORTED: usize = 1;

thread_local! {
    /// Address of this thread's `robust_list_head` (its `list` field), or a marker.
    static HEAD: Cell<usize> = const { Cell::new(UNKNOWN) };
}

/// Called in the child after `fork`: glibc resets and re-registers the list there.
pub(crate) fn forget_head_after_fork() {
    HEAD.with(|h| h.set(UNKNOWN));
}

/// Whether owner death is detected for locks taken by the calling thread, i.e. whether a
/// kernel robust list with a layout compatible with ours is registered (or could be).
pub fn robust_supported() -> bool {
    head() != 0
}

#[inline]
fn head() -> usize {
    let h = HEAD.with(Cell::get);
    if h > UNSUPPORTED {
        return h;
    }
    if h == UNSUPPORTED {
        return 0;
    }
    let h = find_or_register_head();
    HEAD.with(|c| c.set(if h == 0 { UNSUPPORTED } else { h }));
    h
}

#[cold]
fn find_or_register_head() -> usize {
    let mut ptr: usize = 0;
    let mut len: usize = 0;
    // SAFETY: get_robust_list(0, ..) writes the calling thread's head pointer and its size
    // into the two valid out-pointers; it has no other effect.
    let r = unsafe {
        libc::syscall(
            libc::SYS_get_robust_list,
            0 as libc::c_long,
            &mut ptr as *mut usize,
            &mut len as *mut usize,
        )
    };
    if r != 0 {
        return 0;
    }
    if ptr != 0 {
        if len != 3 * core::mem::size_of::<usize>() {
            return 0;
        }
        // SAFETY: the kernel returned the head this thread registered; glibc keeps it in
        // the thread descriptor, alive as long as the thread. futex_offset is the second
        // word and is only written at registration.
        let off = unsafe { *((ptr + core::mem::size_of::<usize>()) as *const isize) };
        return if off == FUTEX_OFFSET { ptr } else { 0 };
    }
    // Nobody registered a list: register our own (leaked: the kernel may walk it until the
    // thread is gone, after thread-local destructors have run).
    let own: &'static mut OwnHead = Box::leak(Box::new(OwnHead {
        robust_prev: AtomicUsize::new(0),
        list: AtomicUsize::new(0),
        futex_offset: FUTEX_OFFSET,
        list_op_pending: AtomicUsize::new(0),
    }));
    let list_addr = &own.list as *const AtomicUsize as usize;
    own.list.store(list_addr, Ordering::Relaxed);
    own.robust_prev.store(list_addr, Ordering::Relaxed);
    // SAFETY: the head lives forever and has the ABI's shape {list, futex_offset, pending}.
    let r = unsafe {
        libc::syscall(
            libc::SYS_set_robust_list,
            list_addr as *const usize,
            3 * core::mem::size_of::<usize>(),
        )
    };
    if r == 0 { list_addr } else { 0 }
}

/// Returns the atomic at `addr`.
///
/// # Safety
/// `addr` must be a live, aligned word of this thread's robust list (a head field, the
/// word before the head, or a `prev`/`next` field of a node this thread holds).
#[inline]
unsafe fn word_at<'a>(addr: usize) -> &'a AtomicUsize {
    // SAFETY: guaranteed by the caller.
    unsafe { AtomicUsize::from_ptr(addr as *mut usize) }
}

impl Links<'_> {
    /// The node's address: its `next` field, 32 bytes after the lock word.
    #[inline]
    fn node(&self) -> usize {
        let n = self.next as *const AtomicU64 as usize;
        debug_assert_eq!(n as isize + FUTEX_OFFSET, self.word as *const _ as isize);
        n
    }
}

/// Announces (in `list_op_pending`) that this thread is about to take or release `l`, so
/// that a death in between is still seen by the kernel. Returns the head for later calls.
#[inline]
pub(crate) fn op_begin(l: &Links<'_>) -> usize {
    set_pending(l.node())
}

/// Stores `node` in this thread's `list_op_pending` (if a list is registered); returns
/// the head.
#[inline]
fn set_pending(node: usize) -> usize {
    let h = head();
    if h != 0 {
        // SAFETY: h is this thread's registered head; list_op_pending is its third word.
        unsafe { word_at(h + 2 * core::mem::size_of::<usize>()) }.store(node, Ordering::Relaxed);
        compiler_fence(Ordering::SeqCst);
    }
    h
}

/// Names the doorbell `word` in `list_op_pending` (as the node 32 bytes after it), so that
/// if this thread dies before [`op_end`] the kernel finds a pending operation on a word
/// whose owner part is zero and wakes one of its sleepers in this thread's place. A lock
/// operation of this thread in between takes the slot over (and clears it at its end).
#[inline]
pub(crate) fn arm_doorbell(word: &core::sync::atomic::AtomicU32) {
    set_pending((word as *const _ as usize).wrapping_add_signed(-FUTEX_OFFSET));
}

/// Ends [`arm_doorbell`]'s announcement.
#[inline]
pub(crate) fn disarm_doorbell() {
    op_end(head());
}

/// Clears `list_op_pending`.
#[inline]
pub(crate) fn op_end(h: usize) {
    if h != 0 {
        compiler_fence(Ordering::SeqCst);
        // SAFETY: as in op_begin.
        unsafe { word_at(h + 2 * core::mem::size_of::<usize>()) }.store(0, Ordering::Relaxed);
    }
}

/// Links a lock this thread has just acquired at the front of its robust list.
#[inline]
pub(crate) fn enqueue(h: usize, l: &Links<'_>) {
    if h == 0 {
        return;
    }
    let node = l.node();
    // SAFETY: h is this thread's head; its `list` word is the first.
    let list = unsafe { word_at(h) };
    let first = list.load(Ordering::Relaxed);
    // `first & !1` is the first node's `next` field (or the head itself when the list is
    // empty); the word before it is that node's `prev` (or glibc's robust_prev).
    // SAFETY: every entry of the list is a node held by this thread, still mapped
    // (guards borrow their mapping), or the head.
    unsafe { word_at((first & !1) - 8) }.store(node, Ordering::Relaxed);
    l.next.store(first as u64, Ordering::Relaxed);
    l.prev.store(h as u64, Ordering::Relaxed);
    compiler_fence(Ordering::SeqCst);
    list.store(node, Ordering::Relaxed);
}

/// Unlinks a lock this thread is releasing. Link words that are not plausible (null or
/// misaligned: another process scribbled over a held lock) are left alone rather than
/// written through.
#[inline]
pub(crate) fn dequeue(h: usize, l: &Links<'_>) {
    if h == 0 {
        return;
    }
    let next = l.next.load(Ordering::Relaxed) as usize;
    let prev = l.prev.load(Ordering::Relaxed) as usize;
    if (next & !1) < 8 || next & 6 != 0 || prev == 0 || prev & 7 != 0 {
        return;
    }
    // SAFETY: next is the following node's `next` field (or the head); its prev is the
    // word before it. prev is the preceding node's `next` field (or the head's `list`).
    // Both are nodes this thread holds or the head, as in enqueue.
    unsafe {
        word_at((next & !1) - 8).store(prev, Ordering::Relaxed);
        word_at(prev).store(next, Ordering::Relaxed);
    }
    compiler_fence(Ordering::SeqCst);
    l.prev.store(0, Ordering::Relaxed);
    l.next.store(0, Ordering::Relaxed);
}
