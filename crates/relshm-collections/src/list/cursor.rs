//! [`Cursor`]: a position in a locked list, for inserting and removing in the middle.

use super::ListGuard;
use super::guard::Node;
use crate::arena::Result;
use bytemuck::Pod;
use relshm_ptr::Repr;

/// A position in a locked list: at an element, or at the "ghost" position between the
/// last and the first element (where a cursor on an empty list, or one moved past either
/// end, stands), as `std`'s `CursorMut`.
pub struct Cursor<'g, 'a, T: Pod, R: Repr> {
    guard: &'g mut ListGuard<'a, T, R>,
    cur: Option<&'a Node<T, R>>,
}

impl<'g, 'a, T: Pod, R: Repr> Cursor<'g, 'a, T, R> {
    pub(crate) fn new(guard: &'g mut ListGuard<'a, T, R>, cur: Option<&'a Node<T, R>>) -> Self {
        Self { guard, cur }
    }

    /// The element at the cursor (`None` at the ghost position).
    pub fn current(&self) -> Option<T> {
        self.cur.map(|n| n.value)
    }

    /// Moves to the next element (from the ghost: to the first).
    pub fn move_next(&mut self) -> Result<()> {
        self.cur = match self.cur {
            Some(n) => self.guard.get(&n.next)?,
            None => self.guard.get(&self.guard.list.hdr().head)?,
        };
        Ok(())
    }

    /// Moves to the previous element (from the ghost: to the last).
    pub fn move_prev(&mut self) -> Result<()> {
        self.cur = match self.cur {
            Some(n) => self.guard.get(&n.prev)?,
            None => self.guard.get(&self.guard.list.hdr().tail)?,
        };
        Ok(())
    }

    /// Inserts `value` after the cursor (at the ghost: at the front). The cursor stays.
    pub fn insert_after(&mut self, value: T) -> Result<()> {
        match self.cur {
            Some(n) => {
                let next = self.guard.get(&n.next)?;
                self.guard.link_between(Some(n), next, value).map(drop)
            }
            None => self.guard.push_front(value),
        }
    }

    /// Inserts `value` before the cursor (at the ghost: at the back). The cursor stays.
    pub fn insert_before(&mut self, value: T) -> Result<()> {
        match self.cur {
            Some(n) => {
                let prev = self.guard.get(&n.prev)?;
                self.guard.link_between(prev, Some(n), value).map(drop)
            }
            None => self.guard.push_back(value),
        }
    }

    /// Removes the element at the cursor and moves to the next one; `None` at the ghost.
    pub fn remove_current(&mut self) -> Result<Option<T>> {
        let Some(n) = self.cur else { return Ok(None) };
        let next = self.guard.get(&n.next)?;
        let v = self.guard.unlink(n)?;
        self.cur = next;
        Ok(Some(v))
    }
}
