//! [`ListGuard`]: the list's lock held, with every operation and iteration.

use super::layout::{ListNode, OP_INSERT, OP_NONE, OP_REMOVE};
use super::{Cursor, List};
use crate::arena::{CollectionError, Result, corrupt};
use bytemuck::Pod;
use core::ptr::NonNull;
use core::sync::atomic::Ordering::{Relaxed, Release};
use core::sync::atomic::fence;
use relshm_ptr::{Link, PtrError, Repr};
use relshm_sync::Held;

pub(crate) type Node<T, R> = ListNode<T, R>;

/// The list's lock, held. Unlocks on drop. Not `Send`: the lock belongs to the thread
/// that took it.
pub struct ListGuard<'a, T: Pod, R: Repr> {
    pub(crate) list: &'a List<T, R>,
    _held: Held<'a>,
}

impl<'a, T: Pod, R: Repr> ListGuard<'a, T, R> {
    pub(crate) fn new(list: &'a List<T, R>, held: Held<'a>) -> Self {
        Self { list, _held: held }
    }

    pub(crate) fn ctx(&self) -> &'a R::Ctx {
        self.list.arena().ctx()
    }

    /// Resolves a link of this list, checked.
    pub(crate) fn get(&self, link: &Link<Node<T, R>, R>) -> Result<Option<&'a Node<T, R>>> {
        Ok(link.get(self.ctx())?)
    }

    /// Number of elements.
    pub fn len(&self) -> u64 {
        self.list.hdr().len.load(Relaxed)
    }

    /// Whether the list is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The first element.
    pub fn front(&self) -> Result<Option<T>> {
        Ok(self.get(&self.list.hdr().head)?.map(|n| n.value))
    }

    /// The last element.
    pub fn back(&self) -> Result<Option<T>> {
        Ok(self.get(&self.list.hdr().tail)?.map(|n| n.value))
    }

    /// Appends `value`.
    pub fn push_back(&mut self, value: T) -> Result<()> {
        let tail = self.get(&self.list.hdr().tail)?;
        self.link_between(tail, None, value).map(drop)
    }

    /// Prepends `value`.
    pub fn push_front(&mut self, value: T) -> Result<()> {
        let head = self.get(&self.list.hdr().head)?;
        self.link_between(None, head, value).map(drop)
    }

    /// Removes and returns the first element.
    pub fn pop_front(&mut self) -> Result<Option<T>> {
        match self.get(&self.list.hdr().head)? {
            Some(n) => self.unlink(n).map(Some),
            None => Ok(None),
        }
    }

    /// Removes and returns the last element.
    pub fn pop_back(&mut self) -> Result<Option<T>> {
        match self.get(&self.list.hdr().tail)? {
            Some(n) => self.unlink(n).map(Some),
            None => Ok(None),
        }
    }

    /// Removes every element (one at a time, so a kill leaves a valid list).
    pub fn clear(&mut self) -> Result<()> {
        while self.pop_front()?.is_some() {}
        Ok(())
    }

    /// The elements, front to back.
    pub fn to_vec(&self) -> Result<Vec<T>> {
        self.iter().collect()
    }

    /// Iterates front to back. A broken link or a cycle ends the iteration with an error.
    pub fn iter(&self) -> Iter<'_, 'a, T, R> {
        let (next, failed) = match self.list.hdr().head.get(self.ctx()) {
            Ok(n) => (n, None),
            Err(e) => (None, Some(e)),
        };
        Iter {
            guard: self,
            next,
            failed,
            left: self.list.arena().max_objects::<Node<T, R>>(),
        }
    }

    /// A cursor at the first element (or at the "ghost" position if the list is empty).
    pub fn cursor_front(&mut self) -> Result<Cursor<'_, 'a, T, R>> {
        let cur = self.get(&self.list.hdr().head)?;
        Ok(Cursor::new(self, cur))
    }

    /// A cursor at the last element (or at the ghost position if the list is empty).
    pub fn cursor_back(&mut self) -> Result<Cursor<'_, 'a, T, R>> {
        let cur = self.get(&self.list.hdr().tail)?;
        Ok(Cursor::new(self, cur))
    }

    /// Links a new node holding `value` between `prev` and `next` (adjacent, or the list
    /// ends when `None`). Kill-safe order: intent, forward link (the publishing store),
    /// backward link, length, intent cleared.
    pub(crate) fn link_between(
        &mut self,
        prev: Option<&'a Node<T, R>>,
        next: Option<&'a Node<T, R>>,
        value: T,
    ) -> Result<&'a Node<T, R>> {
        let (arena, hdr, ctx) = (self.list.arena(), self.list.hdr(), self.ctx());
        let p = arena.alloc::<Node<T, R>>()?;
        // SAFETY: a fresh allocation (in bounds and aligned, checked by alloc) that nothing
        // links to yet; null links may be written by value.
        unsafe {
            p.as_ptr().write(ListNode {
                next: Link::null(),
                prev: Link::null(),
                value,
            })
        };
        // SAFETY: initialised just above; mapped while the arena lives.
        let n: &'a Node<T, R> = unsafe { p.as_ref() };
        if let Err(e) = n.next.set(ctx, next).and_then(|()| n.prev.set(ctx, prev)) {
            let _ = arena.free(p);
            return Err(e.into());
        }
        hdr.intent_node.store(arena.offset_of(p), Relaxed);
        hdr.intent.store(OP_INSERT, Release);
        fence(Release);
        match prev {
            Some(p) => p.next.set(ctx, Some(n))?,
            None => hdr.head.set(ctx, Some(n))?,
        }
        fence(Release);
        match next {
            Some(x) => x.prev.set(ctx, Some(n))?,
            None => hdr.tail.set(ctx, Some(n))?,
        }
        hdr.len.store(hdr.len.load(Relaxed) + 1, Release);
        hdr.intent.store(OP_NONE, Release);
        Ok(n)
    }

    /// Unlinks `n` and frees it, returning its value. Kill-safe order: intent, forward
    /// unlink, backward unlink, length, intent cleared, free (a kill after clearing the
    /// intent leaks the node, never frees a reachable one).
    pub(crate) fn unlink(&mut self, n: &'a Node<T, R>) -> Result<T> {
        let (arena, hdr, ctx) = (self.list.arena(), self.list.hdr(), self.ctx());
        let next = self.get(&n.next)?;
        let prev = self.get(&n.prev)?;
        let points_at_n = |l: Option<&Node<T, R>>| l.is_some_and(|l| core::ptr::eq(l, n));
        let fwd = match prev {
            Some(p) => self.get(&p.next)?,
            None => self.get(&hdr.head)?,
        };
        let back = match next {
            Some(x) => self.get(&x.prev)?,
            None => self.get(&hdr.tail)?,
        };
        if !points_at_n(fwd) || !points_at_n(back) {
            return Err(corrupt(
                "a node's neighbours do not link back to it (run verify())",
            ));
        }
        let node = NonNull::from(n);
        hdr.intent_node.store(arena.offset_of(node), Relaxed);
        hdr.intent.store(OP_REMOVE, Release);
        fence(Release);
        match prev {
            Some(p) => p.next.set(ctx, next)?,
            None => hdr.head.set(ctx, next)?,
        }
        fence(Release);
        match next {
            Some(x) => x.prev.set(ctx, prev)?,
            None => hdr.tail.set(ctx, prev)?,
        }
        hdr.len
            .store(hdr.len.load(Relaxed).saturating_sub(1), Release);
        let value = n.value;
        hdr.intent.store(OP_NONE, Release);
        fence(Release);
        arena.free(node)?;
        Ok(value)
    }
}

/// Iterator over a locked list's elements, front to back.
///
/// A link that does not resolve ends the walk with its error: the elements before it, then
/// the error, then `None`.
pub struct Iter<'g, 'a, T: Pod, R: Repr> {
    guard: &'g ListGuard<'a, T, R>,
    // The next node alone, not a `Result`: the error type is several words, and moving it
    // through this field on every step put a store and a reload on the walk's critical
    // path (about three times the time per element).
    next: Option<&'a Node<T, R>>,
    // A `PtrError` (plain data) rather than the collection error (which owns a `String`):
    // with no drop glue, the iterator's fields can live in registers.
    failed: Option<PtrError>,
    left: u64,
}

#[cold]
fn cycle() -> CollectionError {
    corrupt("cycle: more nodes than the segment can hold")
}

impl<T: Pod, R: Repr> Iterator for Iter<'_, '_, T, R> {
    type Item = Result<T>;

    // Inlined into the caller's loop, so the walk's state stays in registers; the rare
    // cases are out of line.
    #[inline(always)]
    fn next(&mut self) -> Option<Result<T>> {
        let Some(n) = self.next else {
            return self.failed.take().map(|e| Err(e.into()));
        };
        if self.left == 0 {
            self.next = None;
            return Some(Err(cycle()));
        }
        self.left -= 1;
        match n.next.get(self.guard.ctx()) {
            Ok(next) => self.next = next,
            Err(e) => {
                // Inline, not a call taking `&mut self`: that would keep the iterator in
                // memory.
                self.next = None;
                self.failed = Some(e);
            }
        }
        Some(Ok(n.value))
    }
}
