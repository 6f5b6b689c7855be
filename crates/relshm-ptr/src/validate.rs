//! `validate`: walk a whole structure from a root and check every link (bounds, alignment,
//! fit), that distinct objects do not overlap, optionally that there is no cycle, and that
//! the walk stays under a size limit (so a hostile image cannot make it run forever).

use crate::{Link, LinkVisitor, PtrError, Relocate, Repr};
use std::collections::BTreeMap;
use std::collections::btree_map::Entry;

/// Bounds on a validate walk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Stop with [`PtrError::TooManyObjects`] after this many distinct objects.
    pub max_objects: u64,
    /// Report [`PtrError::Cycle`] if a link leads back to an object on the current path.
    pub acyclic: bool,
}

impl Default for Limits {
    /// A million objects, cycles allowed.
    fn default() -> Self {
        Self {
            max_objects: 1 << 20,
            acyclic: false,
        }
    }
}

/// What a successful validate walk saw.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Report {
    /// Distinct objects reached (the root included).
    pub objects: u64,
    /// Link fields seen, null ones included.
    pub links: u64,
    /// Null link fields seen.
    pub nulls: u64,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Color {
    OnPath,
    Done,
}

struct Item<R: Repr> {
    addr: u64,
    /// Bytes the object occupies (an array's whole capacity).
    size: u64,
    /// Elements to visit (1 for a single object, an array's length).
    count: u64,
    expand: fn(u64, u64, &mut Walker<'_, R>),
}

enum Frame<R: Repr> {
    Enter(Item<R>),
    Exit(u64),
}

struct Walker<'c, R: Repr> {
    ctx: &'c R::Ctx,
    seen: BTreeMap<u64, (u64, Color)>,
    children: Vec<Item<R>>,
    report: Report,
    err: Option<PtrError>,
}

fn expand<T: Relocate<R>, R: Repr>(addr: u64, count: u64, w: &mut Walker<'_, R>) {
    // SAFETY: addr came from R::load with T's alignment and a size of at least `count`
    // Ts (or from the caller's &T root, count 1), so it is an aligned, mapped range of
    // `count` Ts, valid for any bits (Relocate).
    let objs = unsafe { core::slice::from_raw_parts(addr as *const T, count as usize) };
    for obj in objs {
        obj.visit_links(w);
        if w.err.is_some() {
            return;
        }
    }
}

impl<R: Repr> LinkVisitor<R> for Walker<'_, R> {
    fn link<T: Relocate<R>>(&mut self, link: &Link<T, R>) {
        if self.err.is_some() {
            return;
        }
        self.report.links += 1;
        match link.get_ptr(self.ctx) {
            Ok(None) => self.report.nulls += 1,
            Ok(Some(p)) => self.children.push(Item {
                addr: p.as_ptr() as u64,
                size: size_of::<T>() as u64,
                count: 1,
                expand: expand::<T, R>,
            }),
            Err(e) => self.err = Some(e),
        }
    }

    fn array<T: Relocate<R>>(&mut self, link: &Link<T, R>, len: u64, cap: u64) {
        if self.err.is_some() {
            return;
        }
        self.report.links += 1;
        let size = match crate::relocate::array_shape::<T>(link.is_null(), len, cap) {
            Ok(size) => size,
            Err(e) => return self.err = Some(e),
        };
        match link.get_array_ptr(self.ctx, cap) {
            Ok(None) => self.report.nulls += 1,
            Ok(Some(p)) => self.children.push(Item {
                addr: p.as_ptr() as u64,
                size,
                count: len,
                expand: expand::<T, R>,
            }),
            Err(e) => self.err = Some(e),
        }
    }
}

impl<R: Repr> Walker<'_, R> {
    /// Records a newly reached object; `Ok(false)` if it was reached before.
    fn enter(&mut self, item: &Item<R>, limits: Limits) -> Result<bool, PtrError> {
        let end = item.addr + item.size;
        if let Some((&start, &(prev_end, color))) = self.seen.range(..=item.addr).next_back() {
            if start == item.addr && prev_end == end {
                if limits.acyclic && color == Color::OnPath {
                    return Err(PtrError::Cycle { at: item.addr });
                }
                return Ok(false);
            }
            if prev_end > item.addr || start == item.addr {
                return Err(PtrError::Overlap {
                    a: start,
                    b: item.addr,
                });
            }
        }
        if let Some((&start, _)) = self.seen.range(item.addr + 1..).next()
            && start < end
        {
            return Err(PtrError::Overlap {
                a: item.addr,
                b: start,
            });
        }
        if self.report.objects >= limits.max_objects {
            return Err(PtrError::TooManyObjects {
                limit: limits.max_objects,
            });
        }
        self.report.objects += 1;
        if let Entry::Vacant(v) = self.seen.entry(item.addr) {
            v.insert((end, Color::OnPath));
        }
        Ok(true)
    }
}

/// Walks everything reachable from `root` through `ctx`, depth first, checking each link
/// and object. The walk is iterative (no recursion on hostile depth) and bounded by
/// `limits.max_objects`.
///
/// Links that are resolved lazily ([`Swizzle`](crate::Swizzle)) get swizzled along the way,
/// in the private view only.
pub fn validate<T: Relocate<R>, R: Repr>(
    ctx: &R::Ctx,
    root: &T,
    limits: Limits,
) -> Result<Report, PtrError> {
    let mut w = Walker::<R> {
        ctx,
        seen: BTreeMap::new(),
        children: Vec::new(),
        report: Report::default(),
        err: None,
    };
    let mut stack = vec![Frame::Enter(Item {
        addr: root as *const T as u64,
        size: size_of::<T>() as u64,
        count: 1,
        expand: expand::<T, R>,
    })];
    while let Some(frame) = stack.pop() {
        match frame {
            Frame::Exit(addr) => {
                if let Some(e) = w.seen.get_mut(&addr) {
                    e.1 = Color::Done;
                }
            }
            Frame::Enter(item) => {
                if !w.enter(&item, limits)? {
                    continue;
                }
                stack.push(Frame::Exit(item.addr));
                (item.expand)(item.addr, item.count, &mut w);
                if let Some(e) = w.err.take() {
                    return Err(e);
                }
                // Reverse so the first field is walked first.
                stack.extend(w.children.drain(..).rev().map(Frame::Enter));
            }
        }
    }
    Ok(w.report)
}
