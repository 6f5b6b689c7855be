//! [`SegRel`]: a `(segment id, offset)` link (PMDK's `PMEMoid`), resolved through a
//! per-process segment table; a link may point into another segment.

use crate::repr::{fits, misfit};
use crate::{PtrError, Repr};
use core::cell::Cell;
use core::ptr::NonNull;
use core::sync::atomic::{AtomicU64, Ordering::Relaxed};
use relshm_segment::Region;

/// Segment-relative representation. Offset 0 is null: it is where a segment's header
/// lives, never an object, so all-zero bytes are null and no bias is needed.
#[derive(Debug, Clone, Copy)]
pub struct SegRel;

/// The stored form of a [`SegRel`] link. Layout (16 bytes, 8-aligned):
///
/// | offset | field     | meaning                                   |
/// |--------|-----------|-------------------------------------------|
/// | 0      | `segment` | id of the target's segment (non-zero)     |
/// | 8      | `offset`  | target offset in that segment; 0 = null   |
///
/// The two halves are separate atomics: a reader racing a writer may see a mixed pair,
/// which resolution still checks (it can name a wrong object, never unmapped memory);
/// links that change concurrently are published under the collection's own protocol.
#[repr(C)]
#[derive(Debug, Default)]
pub struct SegRelWord {
    /// Target segment id.
    pub segment: AtomicU64,
    /// Target offset inside that segment (0 = null).
    pub offset: AtomicU64,
}

/// The default (id 0, length 0) is the empty cache: id 0 is never registered, and a
/// zero-length entry fits no target, so a link naming segment 0 fails its bounds check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
struct Entry {
    id: u64,
    base: u64,
    len: u64,
}

/// Per-process segment table for [`SegRel`] links: id -> (base, length) in this process,
/// with a one-entry cache of the last segment used (most hops stay in one segment).
///
/// The cache is a `Cell`, so a table is used by one thread at a time: clone it per thread.
#[derive(Debug, Clone, Default)]
pub struct SegTable {
    entries: Vec<Entry>,
    last: Cell<Entry>,
}

impl SegTable {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers segment `id` as mapped at `region` in this process.
    ///
    /// # Safety
    /// `region` must stay mapped for as long as the table (or anything resolved through
    /// it) is used.
    pub unsafe fn add(&mut self, id: u64, region: Region) -> Result<(), PtrError> {
        if id == 0 || self.entries.iter().any(|e| e.id == id) {
            return Err(PtrError::BadSegmentId { id });
        }
        self.entries.push(Entry {
            id,
            base: region.base().as_ptr() as u64,
            len: region.len(),
        });
        Ok(())
    }

    #[inline(always)]
    fn lookup(&self, id: u64) -> Result<Entry, PtrError> {
        let last = self.last.get();
        if last.id == id {
            return Ok(last);
        }
        self.lookup_slow(id)
    }

    #[inline(never)]
    fn lookup_slow(&self, id: u64) -> Result<Entry, PtrError> {
        let e = *self
            .entries
            .iter()
            .find(|e| e.id == id && id != 0)
            .ok_or(PtrError::UnknownSegment { id })?;
        self.last.set(e);
        Ok(e)
    }

    /// Base and length of segment `id` in this process.
    pub fn lookup_region(&self, id: u64) -> Result<(u64, u64), PtrError> {
        let e = self.lookup(id)?;
        if e.id == 0 {
            return Err(PtrError::UnknownSegment { id });
        }
        Ok((e.base, e.len))
    }

    /// Another segment than the cached one, or an error.
    #[cold]
    #[inline(never)]
    fn load_slow(
        &self,
        id: u64,
        off: u64,
        size: u64,
        align: u64,
    ) -> Result<Option<NonNull<u8>>, PtrError> {
        let e = self.lookup(id)?;
        if fits(off, e.len, size, align) {
            return Ok(NonNull::new(e.base.wrapping_add(off) as *mut u8));
        }
        Err(misfit(e.base.wrapping_add(off), e.base, e.len, size, align))
    }

    fn containing(&self, addr: u64) -> Option<Entry> {
        let last = self.last.get();
        if last.id != 0 && addr.wrapping_sub(last.base) < last.len {
            return Some(last);
        }
        self.entries
            .iter()
            .copied()
            .find(|e| addr.wrapping_sub(e.base) < e.len)
    }
}

// SAFETY: SegRelWord is repr(C), two AtomicU64 (any bits valid, zeros = null); load returns
// a pointer only after `fits` checked the target lies inside the named segment's region,
// aligned, and regions stay mapped while the table lives (SegTable::add's contract).
unsafe impl Repr for SegRel {
    type Word = SegRelWord;
    type Ctx = SegTable;
    const NAME: &'static str = "segrel";
    const ID: u32 = 4;

    fn null() -> SegRelWord {
        SegRelWord::default()
    }

    #[inline(always)]
    fn is_null(word: &SegRelWord) -> bool {
        word.offset.load(Relaxed) == 0
    }

    #[inline(always)]
    fn load(
        ctx: &SegTable,
        word: &SegRelWord,
        size: u64,
        align: u64,
    ) -> Result<Option<NonNull<u8>>, PtrError> {
        let off = word.offset.load(Relaxed);
        let id = word.segment.load(Relaxed);
        let last = ctx.last.get();
        if off != 0 && last.id == id && fits(off, last.len, size, align) {
            // SAFETY: off fits the cached entry's region, a live mapping (SegTable::add's
            // contract), so the sum stays inside it; checked on the offset so that the
            // compiler folds the sum into the caller's next load.
            return Ok(Some(unsafe {
                NonNull::new_unchecked(last.base as *mut u8).add(off as usize)
            }));
        }
        if off == 0 {
            return Ok(None);
        }
        ctx.load_slow(id, off, size, align)
    }

    fn store(
        ctx: &SegTable,
        word: &SegRelWord,
        target: Option<NonNull<u8>>,
    ) -> Result<(), PtrError> {
        let Some(t) = target else {
            word.offset.store(0, Relaxed);
            word.segment.store(0, Relaxed);
            return Ok(());
        };
        let t = t.as_ptr() as u64;
        let e = ctx.containing(t).ok_or(PtrError::NotWritable {
            addr: t,
            why: "a SegRel link's target must lie in a segment of the table",
        })?;
        let off = t - e.base;
        if off == 0 {
            return Err(PtrError::Unrepresentable {
                target: t,
                word: word as *const SegRelWord as u64,
                why: "offset 0 of a segment is its header and the null encoding",
            });
        }
        word.segment.store(e.id, Relaxed);
        word.offset.store(off, Relaxed);
        Ok(())
    }
}
