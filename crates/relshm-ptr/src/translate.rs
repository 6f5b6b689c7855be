//! Copy-time translation: copy a structure of [`Raw`] links into a destination that
//! another process maps at a known base, rewriting every link for that process, so the
//! receiver reads it with plain absolute pointers at no per-access cost.
//!
//! Translation is a relocation pass, not an object-by-object copy:
//!
//! 1. **Scan** the source from the root (depth first), checking every link (in the
//!    source region, aligned, the whole target fits), marking each object in a dense
//!    bitmap indexed by its offset (no hashing, no allocation per object), and recording
//!    the offset of every non-null link word.
//! 2. **Copy** the span the structure occupies, `[lowest object, end of highest)`, with one
//!    `memcpy`, to a destination offset congruent to the source's (same offset modulo the
//!    largest alignment seen), so every object keeps its place relative to the others.
//! 3. **Rebase** every recorded link word of the copy with one constant delta: a pass over
//!    the recorded offsets, whose loads and stores are independent (the CPU overlaps their
//!    misses), not a second walk of the structure, whose every hop waits for the last.
//!    The structure is traversed once, which for a linked structure is the floor: no
//!    translation can rewrite a link it has not found. The copy is private to this
//!    process, so what is rewritten is what was checked there: a word that is not the start
//!    of an object the scan found (the source changed under the copy) is an error.
//!
//! Where the structure is sparse in its region (the span is much larger than its objects)
//! or the congruent span does not fit the destination, [`translate()`] falls back to a
//! compacting copy, object by object, with a dense offset table (or, for a span far larger
//! than its objects, an ordered map) from source to destination offsets. [`Translated::layout`]
//! says which was used. [`translate_slab`] relocates a dense array of one type with no
//! walk at all: one `memcpy` and one linear pass.

use crate::repr::{fits, misfit};
use crate::{Link, LinkVisitor, PtrError, Raw, Relocate};
use core::sync::atomic::AtomicU64;
use core::sync::atomic::Ordering::Relaxed;
use relshm_segment::Region;
use std::collections::{BTreeMap, BTreeSet};

/// Where a structure of [`Raw`] links lives: the bytes mapped here, and the base address
/// the links were written for (the same, unless this is another process's copy).
#[derive(Debug, Clone, Copy)]
pub struct Space {
    region: Region,
    written_base: u64,
}

impl Space {
    /// Links in `region` were written for a mapping based at `written_base`.
    ///
    /// # Safety
    /// `region` must stay mapped (and, for a destination, writable and not otherwise
    /// accessed) while the space is used.
    pub unsafe fn new(region: Region, written_base: u64) -> Self {
        Self {
            region,
            written_base,
        }
    }

    /// The bytes mapped in this process.
    pub fn region(&self) -> Region {
        self.region
    }

    /// The base address links are (or will be) written for.
    pub fn written_base(&self) -> u64 {
        self.written_base
    }

    fn local(&self) -> u64 {
        self.region.base().as_ptr() as u64
    }

    fn len(&self) -> u64 {
        self.region.len()
    }
}

/// How a [`translate`](translate()) call laid the copy out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// The source span was copied whole (one `memcpy`) and every link moved by one
    /// constant delta: objects keep their relative places, and the bytes between them in
    /// the span (allocator headers, padding, free blocks) are copied too.
    Congruent,
    /// Objects were copied one by one, packed in breadth-first order from the start
    /// offset (the structure was sparse in its region, or its span did not fit).
    Compact,
}

/// The result of a [`translate`](translate()) or [`translate_slab`] call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Translated {
    /// The root's offset in the destination region.
    pub root_offset: u64,
    /// The root's address as the receiver sees it (`written_base + root_offset`).
    pub root: u64,
    /// Bytes of the destination used, from its start: the copy ends here.
    pub used: u64,
    /// Objects copied.
    pub objects: u64,
    /// Bytes copied from the source: the span for [`Layout::Congruent`], the objects'
    /// sizes for [`Layout::Compact`]. A `memcpy` of this many bytes is the pass's limit.
    pub copied: u64,
    /// How the copy was laid out.
    pub layout: Layout,
}

/// Offsets are marked in the bitmap at this granularity; objects that start elsewhere
/// (types aligned to less than 8 bytes) are kept in an ordered set instead.
const GRAIN: u64 = 8;
/// Bitmap words per chunk of a chunked bitmap: a chunk covers `64 * 64 * 8` = 32 KiB.
const CHUNK_WORDS: usize = 64;
const CHUNK_SPAN_LOG2: u32 = 15;
/// Regions up to this long get one flat bitmap (at most 256 MiB of address space, zeroed
/// lazily by the kernel: only the pages the structure touches cost memory); longer ones a
/// chunked bitmap.
const FLAT_MAX_LEN: u64 = 16 << 30;

/// Which source offsets hold an object already found: one bit per 8 bytes of the region.
/// Memory is at most 1/64 of the source region, and in practice about 1/64 of the span
/// the structure touches.
struct Marks {
    bits: Bits,
    /// Objects at offsets that are not multiples of [`GRAIN`].
    odd: BTreeSet<u64>,
}

enum Bits {
    /// One bit per 8 bytes of the whole region: one load per probe.
    Flat(Vec<u64>),
    /// For very long regions: 512-byte chunks for the 32 KiB windows touched.
    Chunked {
        /// Per 32 KiB window: 1 + index of its chunk, or 0.
        windows: Vec<u32>,
        chunks: Vec<[u64; CHUNK_WORDS]>,
    },
}

impl Marks {
    fn new(len: u64) -> Self {
        let bits = if len <= FLAT_MAX_LEN {
            Bits::Flat(vec![0; (len / GRAIN / 64) as usize + 1])
        } else {
            Bits::Chunked {
                windows: vec![0; (len >> CHUNK_SPAN_LOG2) as usize + 1],
                chunks: Vec::new(),
            }
        };
        Self {
            bits,
            odd: BTreeSet::new(),
        }
    }

    /// The bitmap word holding `off`'s bit, and the bit, allocating a chunk if needed
    /// (`off` inside the region, a multiple of [`GRAIN`]).
    #[inline(always)]
    fn word_mut(&mut self, off: u64) -> Option<(&mut u64, u64)> {
        let bit = off / GRAIN;
        let mask = 1u64 << (bit % 64);
        match &mut self.bits {
            Bits::Flat(v) => v.get_mut((bit / 64) as usize).map(|w| (w, mask)),
            Bits::Chunked { windows, chunks } => {
                let w = windows.get_mut((off >> CHUNK_SPAN_LOG2) as usize)?;
                if *w == 0 {
                    chunks.push([0; CHUNK_WORDS]);
                    *w = chunks.len() as u32;
                }
                let i = (bit / 64) as usize % CHUNK_WORDS;
                Some((&mut chunks[*w as usize - 1][i], mask))
            }
        }
    }

    /// Marks `off` (inside the region); whether it was unmarked before.
    #[inline(always)]
    fn insert(&mut self, off: u64) -> bool {
        if !off.is_multiple_of(GRAIN) {
            return self.odd.insert(off);
        }
        match self.word_mut(off) {
            Some((word, mask)) => {
                let fresh = *word & mask == 0;
                *word |= mask;
                fresh
            }
            // Outside the region: never the case for a checked offset.
            None => false,
        }
    }

    /// Whether `off` is marked.
    #[inline(always)]
    fn contains(&self, off: u64) -> bool {
        if !off.is_multiple_of(GRAIN) {
            return self.odd.contains(&off);
        }
        let bit = off / GRAIN;
        let mask = 1u64 << (bit % 64);
        let word = match &self.bits {
            Bits::Flat(v) => v.get((bit / 64) as usize),
            Bits::Chunked { windows, chunks } => {
                match windows.get((off >> CHUNK_SPAN_LOG2) as usize) {
                    Some(&w) if w != 0 => {
                        Some(&chunks[w as usize - 1][(bit / 64) as usize % CHUNK_WORDS])
                    }
                    _ => None,
                }
            }
        };
        word.is_some_and(|w| w & mask != 0)
    }
}

/// An object found by the scan, and how to walk its links (monomorphised for its type).
#[derive(Clone, Copy)]
struct Obj {
    off: u64,
    /// Elements to visit: 1, or an array's length.
    count: u64,
    visit: fn(&mut Walk<'_>, u64, u64),
}

/// The scan of the congruent relocation: one walk of the source from the root, checking
/// every link, marking every object, and recording where every non-null link word is, so
/// that the rebase after the bulk copy is a pass over those positions (independent loads
/// and stores the CPU overlaps) rather than a second walk of the structure (a chain of
/// dependent loads, one cache miss per hop on a DRAM-sized list).
struct Walk<'a> {
    src: &'a Space,
    /// Objects the scan found.
    marks: Marks,
    /// Objects found and not yet visited (depth first: the frontier, not the structure).
    stack: Vec<Obj>,
    /// Source offsets of the non-null link words seen, in walk order.
    links: Vec<u64>,
    objects: u64,
    /// Span of the objects found: `[lo, hi)` source offsets.
    lo: u64,
    hi: u64,
    max_align: u64,
    bytes: u64,
    err: Option<PtrError>,
}

fn visit<T: Relocate<Raw>>(w: &mut Walk<'_>, off: u64, count: u64) {
    // SAFETY: `off` was checked to hold `count` aligned, whole Ts in the source region,
    // which stays mapped for the call (Space's contract); any bits are a valid T
    // (Relocate). The objects' words are atomics, so reading one another process writes
    // is not a data race.
    let objs =
        unsafe { core::slice::from_raw_parts((w.src.local() + off) as *const T, count as usize) };
    for obj in objs {
        obj.visit_links(w);
    }
}

impl Walk<'_> {
    /// Visits objects until none is left, or a link is bad.
    fn drain(&mut self) -> Result<(), PtrError> {
        while let Some(Obj { off, count, visit }) = self.stack.pop() {
            visit(self, off, count);
            if let Some(e) = self.err.take() {
                return Err(e);
            }
        }
        Ok(())
    }

    /// Checks and marks the target of `word`: `size` bytes holding `count` Ts.
    #[inline(always)]
    fn scan<T: Relocate<Raw>>(&mut self, word: u64, size: u64, count: u64) -> Result<(), PtrError> {
        let (len, align) = (self.src.len(), align_of::<T>() as u64);
        let off = word.wrapping_sub(self.src.written_base);
        if !fits(off, len, size, align) {
            return Err(misfit(
                off.wrapping_add(self.src.local()),
                self.src.local(),
                len,
                size,
                align,
            ));
        }
        if self.marks.insert(off) {
            self.lo = self.lo.min(off);
            self.hi = self.hi.max(off + size);
            self.max_align = self.max_align.max(align);
            self.bytes += size;
            self.objects += 1;
            self.stack.push(Obj {
                off,
                count,
                visit: visit::<T>,
            });
        }
        Ok(())
    }

    /// Rewrites, in the copy of the span at destination offset `at`, every link word the
    /// scan recorded for a receiver that maps the destination at `dst.written_base()`. The
    /// copy is private to this process, so what is rewritten is what was checked: a word
    /// that is not the start of an object the scan found (the source changed while it was
    /// copied) is an error.
    fn rebase(&self, dst: &Space, at: u64) -> Result<(), PtrError> {
        let (lo, hi) = (self.lo, self.hi);
        let new_lo = dst.written_base + at;
        let copy = (dst.local() + at).wrapping_sub(lo);
        for &pos in &self.links {
            // SAFETY: `pos` is the source offset of a link word inside an object of the
            // span `[lo, hi)`, copied whole to `copy + lo..`: an aligned word of the
            // destination, which is ours alone (Space's contract).
            let word = unsafe { AtomicU64::from_ptr((copy + pos) as *mut u64) };
            let off = word.load(Relaxed).wrapping_sub(self.src.written_base);
            if !(lo..hi).contains(&off) || !self.marks.contains(off) {
                return Err(PtrError::BadLayout {
                    what: "a link in the copy leads outside the objects the scan found: the \
                           source changed while it was being translated (hold its lock)",
                });
            }
            word.store(new_lo + (off - lo), Relaxed);
        }
        Ok(())
    }
}

impl Relocator for Walk<'_> {
    /// Scans one link to `size` bytes holding `count` Ts, recording where its word is.
    #[inline(always)]
    fn relocate<T: Relocate<Raw>>(&mut self, link: &Link<T, Raw>, size: u64, count: u64) {
        let w = link.word().load(Relaxed);
        if w == 0 || self.err.is_some() {
            return;
        }
        match self.scan::<T>(w, size, count) {
            Ok(()) => self
                .links
                .push((link.word() as *const _ as u64).wrapping_sub(self.src.local())),
            Err(e) => self.err = Some(e),
        }
    }

    fn err(&mut self) -> &mut Option<PtrError> {
        &mut self.err
    }
}

/// What the three relocating passes (congruent scan, compacting copy, slab rebase) do with
/// one link: relocate its target of `size` bytes holding `count` `T`s. The visitor is
/// written once for all of them (below); single links and arrays differ only in those
/// numbers.
trait Relocator {
    fn relocate<T: Relocate<Raw>>(&mut self, link: &Link<T, Raw>, size: u64, count: u64);
    /// The first error of the pass.
    fn err(&mut self) -> &mut Option<PtrError>;
}

impl<V: Relocator> LinkVisitor<Raw> for V {
    #[inline(always)]
    fn link<T: Relocate<Raw>>(&mut self, link: &Link<T, Raw>) {
        self.relocate(link, size_of::<T>() as u64, 1);
    }

    fn array<T: Relocate<Raw>>(&mut self, link: &Link<T, Raw>, len: u64, cap: u64) {
        match array_target::<T>(link, len, cap) {
            Ok(Some(size)) => self.relocate(link, size, len),
            Ok(None) => {}
            Err(e) => {
                let first = self.err();
                *first = first.or(Some(e));
            }
        }
    }
}

/// The bytes an array link's target occupies, checked ([`array_shape`]); `None` for the
/// null link of an empty array.
fn array_target<T>(link: &Link<T, Raw>, len: u64, cap: u64) -> Result<Option<u64>, PtrError> {
    let size = crate::relocate::array_shape::<T>(link.word().load(Relaxed) == 0, len, cap)?;
    Ok((size != 0).then_some(size))
}

/// Checks shared by both entry points: the regions do not overlap, and the receiver's
/// addresses do not overflow.
fn check_spaces(src: &Space, dst: &Space) -> Result<(), PtrError> {
    let (s0, s1) = (src.local(), src.local() + src.len());
    let (d0, d1) = (dst.local(), dst.local() + dst.len());
    if s0 < d1 && d0 < s1 {
        return Err(PtrError::Overlap { a: s0, b: d0 });
    }
    if dst.written_base.checked_add(dst.len()).is_none() {
        return Err(PtrError::BadLayout {
            what: "the receiver's base plus the destination's length overflows: pass the \
                   address the receiver really maps the destination at",
        });
    }
    Ok(())
}

/// Source offset of the `size`-byte object of type `T` (or array of `T`) at written
/// address `addr`, checked.
fn source_offset<T>(src: &Space, addr: u64, size: u64) -> Result<u64, PtrError> {
    let align = align_of::<T>() as u64;
    let off = addr.wrapping_sub(src.written_base);
    if fits(off, src.len(), size, align) {
        Ok(off)
    } else {
        Err(misfit(
            off.wrapping_add(src.local()),
            src.local(),
            src.len(),
            size,
            align,
        ))
    }
}

/// Where a congruent copy of `[lo, lo + span)` (largest alignment `align`) starts in the
/// destination, at or after `start`, or `None` if it does not fit.
fn congruent_start(lo: u64, span: u64, align: u64, start: u64, len: u64) -> Option<u64> {
    let at = start
        .checked_next_multiple_of(align)?
        .checked_add(lo % align)?;
    (at.checked_add(span)? <= len).then_some(at)
}

/// Copies `span` bytes from source offset `lo` to destination offset `at`.
fn bulk_copy(src: &Space, lo: u64, span: u64, dst: &Space, at: u64) {
    // SAFETY: `[lo, lo + span)` lies in the source region (every object in it was checked
    // to) and `[at, at + span)` in the destination (congruent_start / the caller checked);
    // the regions do not overlap (check_spaces) and both stay mapped (Space's contract).
    unsafe {
        core::ptr::copy_nonoverlapping(
            (src.local() + lo) as *const u8,
            (dst.local() + at) as *mut u8,
            span as usize,
        )
    };
}

/// Copies the structure reachable from `root` (an address as written in `src`) into `dst`
/// at or after offset `start`, rewriting every link for a receiver that maps the
/// destination at `dst.written_base()`. Shared targets are copied once (the structure's
/// sharing and cycles are kept). `O(objects)` plus one `memcpy` of the span the structure
/// occupies; the receiver pays nothing per access.
///
/// The copy is [`Layout::Congruent`] (the span copied whole, links moved by one delta)
/// when the span fits the destination and is at most four times the objects' bytes plus
/// 4 KiB; otherwise [`Layout::Compact`]. A congruent copy carries the bytes between the
/// objects of the span too: translate only for a receiver that may read the source's span.
///
/// Every link is checked (inside the source region, aligned, the whole target fits); a
/// bad one is an error, never a wild read or write. Memory used: two bitmaps of 1/64 of
/// the source region each (address space; the pages of the span the structure touches are
/// what costs memory), and 16 bytes per object of the walk's frontier (a
/// depth-first stack: a list needs one); the compacting fallback needs 16 bytes per object
/// more and its offset table.
pub fn translate<T: Relocate<Raw>>(
    src: &Space,
    root: u64,
    dst: &Space,
    start: u64,
) -> Result<Translated, PtrError> {
    check_spaces(src, dst)?;
    let root_off = source_offset::<T>(src, root, size_of::<T>() as u64)?;
    let mut w = Walk {
        src,
        marks: Marks::new(src.len()),
        stack: Vec::new(),
        links: Vec::new(),
        objects: 0,
        lo: u64::MAX,
        hi: 0,
        max_align: 1,
        bytes: 0,
        err: None,
    };
    w.scan::<T>(root, size_of::<T>() as u64, 1)?;
    w.drain()?;
    let (lo, span) = (w.lo, w.hi - w.lo);
    let dense = span <= 4 * w.bytes + 4096;
    let at = congruent_start(lo, span, w.max_align, start, dst.len());
    let Some(at) = at.filter(|_| dense) else {
        return compact::<T>(src, root_off, dst, start, &w);
    };
    bulk_copy(src, lo, span, dst, at);
    w.rebase(dst, at)?;
    let root_offset = at + (root_off - lo);
    Ok(Translated {
        root_offset,
        root: dst.written_base + root_offset,
        used: at + span,
        objects: w.objects,
        copied: span,
        layout: Layout::Congruent,
    })
}

/// Source offset -> (destination offset, size) for the compacting copy: a dense table over
/// the scanned span (one entry per 8 bytes) where the span is not much larger than the
/// structure, an ordered map otherwise (and for offsets outside the span or not multiples
/// of 8).
struct Places {
    lo: u64,
    dense: Vec<u32>,
    sparse: BTreeMap<u64, u32>,
    placed: Vec<(u64, u64)>,
}

impl Places {
    fn get(&self, off: u64) -> Option<(u64, u64)> {
        let i = match self.slot(off) {
            Some(s) => self.dense[s],
            None => *self.sparse.get(&off)?,
        };
        (i != 0).then(|| self.placed[i as usize - 1])
    }

    fn insert(&mut self, off: u64, place: (u64, u64)) -> Result<(), PtrError> {
        self.placed.push(place);
        let i = u32::try_from(self.placed.len()).map_err(|_| PtrError::TooManyObjects {
            limit: u32::MAX as u64,
        })?;
        match self.slot(off) {
            Some(s) => self.dense[s] = i,
            None => {
                self.sparse.insert(off, i);
            }
        }
        Ok(())
    }

    fn slot(&self, off: u64) -> Option<usize> {
        let rel = off.checked_sub(self.lo)?;
        (rel % GRAIN == 0)
            .then_some((rel / GRAIN) as usize)
            .filter(|&s| s < self.dense.len())
    }
}

#[derive(Clone, Copy)]
struct Job {
    src: u64,
    dst_off: u64,
    /// Bytes to copy, and elements to visit in the copy.
    size: u64,
    count: u64,
    copy: fn(&mut Compact<'_>, &Job),
}

/// The compacting copy: objects one by one in breadth-first order.
struct Compact<'a> {
    src: &'a Space,
    dst: &'a Space,
    cursor: u64,
    places: Places,
    queue: Vec<Job>,
    err: Option<PtrError>,
}

fn copy<T: Relocate<Raw>>(t: &mut Compact<'_>, job: &Job) {
    let (src, dst) = (t.src.local() + job.src, t.dst.local() + job.dst_off);
    // SAFETY: job.src was checked to be an aligned range of `size` bytes in the source
    // region and job.dst_off one in the destination; the regions do not overlap.
    unsafe { core::ptr::copy_nonoverlapping(src as *const u8, dst as *mut u8, job.size as usize) };
    // SAFETY: dst is an aligned, mapped range just filled with `size` >= `count` Ts' bytes,
    // and any bits are a valid T (Relocate).
    let objs = unsafe { core::slice::from_raw_parts(dst as *const T, job.count as usize) };
    for obj in objs {
        obj.visit_links(t);
    }
}

impl Compact<'_> {
    /// Destination offset for the source object at offset `off` (`size` bytes holding
    /// `count` Ts), queueing its copy on first sight.
    fn place<T: Relocate<Raw>>(
        &mut self,
        off: u64,
        size: u64,
        count: u64,
    ) -> Result<u64, PtrError> {
        if let Some((at, s)) = self.places.get(off) {
            if s != size {
                let a = self.src.local() + off;
                return Err(PtrError::Overlap { a, b: a });
            }
            return Ok(at);
        }
        let at = self.cursor.next_multiple_of(align_of::<T>() as u64);
        let len = self.dst.len();
        if at.checked_add(size).is_none_or(|end| end > len) {
            return Err(PtrError::DestinationFull {
                needed: at.saturating_add(size),
                available: len,
            });
        }
        self.cursor = at + size;
        self.places.insert(off, (at, size))?;
        self.queue.push(Job {
            src: off,
            dst_off: at,
            size,
            count,
            copy: copy::<T>,
        });
        Ok(at)
    }
}

impl Relocator for Compact<'_> {
    /// Places the target of one link (`size` bytes holding `count` Ts) and rewrites it.
    fn relocate<T: Relocate<Raw>>(&mut self, link: &Link<T, Raw>, size: u64, count: u64) {
        if self.err.is_some() {
            return;
        }
        let w = link.word().load(Relaxed);
        if w == 0 {
            return;
        }
        let placed =
            source_offset::<T>(self.src, w, size).and_then(|off| self.place::<T>(off, size, count));
        match placed {
            // The word is in the destination copy: rewrite it for the receiver.
            Ok(at) => link.word().store(self.dst.written_base + at, Relaxed),
            Err(e) => self.err = Some(e),
        }
    }

    fn err(&mut self) -> &mut Option<PtrError> {
        &mut self.err
    }
}

fn compact<T: Relocate<Raw>>(
    src: &Space,
    root_off: u64,
    dst: &Space,
    start: u64,
    scan: &Walk<'_>,
) -> Result<Translated, PtrError> {
    let objects = scan.objects;
    let entries = (scan.hi - scan.lo) / GRAIN + 1;
    // A dense table only where it is not much larger than the structure itself.
    let dense = if entries <= 8 * objects + 4096 {
        vec![0; entries as usize]
    } else {
        Vec::new()
    };
    let mut t = Compact {
        src,
        dst,
        cursor: start,
        places: Places {
            lo: scan.lo,
            dense,
            sparse: BTreeMap::new(),
            placed: Vec::with_capacity(objects as usize),
        },
        queue: Vec::with_capacity(objects as usize),
        err: None,
    };
    let root_offset = t.place::<T>(root_off, size_of::<T>() as u64, 1)?;
    let mut next = 0;
    while let Some(&job) = t.queue.get(next) {
        (job.copy)(&mut t, &job);
        if let Some(e) = t.err.take() {
            return Err(e);
        }
        next += 1;
    }
    Ok(Translated {
        root_offset,
        root: dst.written_base + root_offset,
        used: t.cursor,
        objects: t.places.placed.len() as u64,
        copied: t.places.placed.iter().map(|p| p.1).sum(),
        layout: Layout::Compact,
    })
}

/// Rewrites the links of a copy of a slab of `S`: every non-null link must lead to an
/// aligned, whole target inside the copied slab.
struct SlabRebase<S> {
    /// The slab in source written addresses: `[old_lo, old_lo + span)`.
    old_lo: u64,
    /// The slab's offset in the source region, and in the destination.
    lo: u64,
    at: u64,
    span: u64,
    new_lo: u64,
    err: Option<PtrError>,
    _slab: core::marker::PhantomData<S>,
}

impl<S> SlabRebase<S> {
    /// Records the first bad link (cold path).
    #[cold]
    #[inline(never)]
    fn bad(&mut self, w: u64, rel: u64, size: u64, align: u64) {
        if self.err.is_some() {
            return;
        }
        self.err = Some(if fits(rel, self.span, size, 1) {
            PtrError::Misaligned { target: w, align }
        } else {
            PtrError::OutOfBounds {
                target: w,
                size,
                base: self.old_lo,
                len: self.span,
            }
        });
    }
}

impl<S> Relocator for SlabRebase<S> {
    /// Rewrites one link to a `size`-byte target inside the slab (nothing is walked, so
    /// `count` does not matter).
    #[inline(always)]
    fn relocate<T: Relocate<Raw>>(&mut self, link: &Link<T, Raw>, size: u64, _count: u64) {
        let w = link.word().load(Relaxed);
        if w == 0 {
            return;
        }
        let rel = w.wrapping_sub(self.old_lo);
        let align = align_of::<T>() as u64;
        // Aligned as an offset in the source region and in the destination. Both slab
        // starts are multiples of S's alignment: for a target aligned no more than S (the
        // usual case, decided at compile time) `rel` alone tells; a target aligned more
        // must be aligned in both.
        let ok = if align <= align_of::<S>() as u64 {
            fits(rel, self.span, size, align)
        } else {
            fits(rel, self.span, size, 1)
                && ((self.lo + rel) | (self.at + rel)).is_multiple_of(align)
        };
        if ok {
            // The word is in the destination copy: rewrite it for the receiver.
            link.word().store(self.new_lo + rel, Relaxed);
        } else {
            self.bad(w, rel, size, align);
        }
    }

    fn err(&mut self) -> &mut Option<PtrError> {
        &mut self.err
    }
}

/// Copies a slab of `count` objects of type `T` (an array, as a pool allocates them)
/// starting at `first` (an address as written in `src`) into `dst` at the first offset at
/// or after `start` aligned for `T`, rewriting every link for a receiver that maps the
/// destination at `dst.written_base()`: one `memcpy` and one linear pass over the copy,
/// with no walk. Every element is relocated, reachable or not.
///
/// Every non-null link must lead inside the slab (aligned for its target, the whole
/// target inside); one that does not is an error ([`PtrError::OutOfBounds`], with the
/// slab's written range as base and length, or [`PtrError::Misaligned`]). The root of the result is the first element.
pub fn translate_slab<T: Relocate<Raw>>(
    src: &Space,
    first: u64,
    count: u64,
    dst: &Space,
    start: u64,
) -> Result<Translated, PtrError> {
    check_spaces(src, dst)?;
    let lo = source_offset::<T>(src, first, size_of::<T>() as u64)?;
    let size = size_of::<T>() as u64;
    let span = count
        .checked_mul(size)
        .filter(|&s| lo.checked_add(s).is_some_and(|end| end <= src.len()))
        .ok_or(PtrError::OutOfBounds {
            target: first,
            size: count.saturating_mul(size),
            base: src.written_base,
            len: src.len(),
        })?;
    let align = align_of::<T>() as u64;
    let at =
        congruent_start(lo, span, align, start, dst.len()).ok_or(PtrError::DestinationFull {
            needed: start.next_multiple_of(align).saturating_add(span),
            available: dst.len(),
        })?;
    bulk_copy(src, lo, span, dst, at);
    let mut v = SlabRebase::<T> {
        old_lo: first,
        lo,
        at,
        span,
        new_lo: dst.written_base + at,
        err: None,
        _slab: core::marker::PhantomData,
    };
    let base = (dst.local() + at) as *const T;
    for i in 0..count as usize {
        // SAFETY: element i lies in the copied span `[at, at + span)` of the destination
        // (aligned: `at` is a multiple of T's alignment and T's size is too); the
        // destination stays mapped and is ours alone (Space's contract); any bits are a
        // valid T (Relocate).
        let obj = unsafe { &*base.add(i) };
        obj.visit_links(&mut v);
    }
    if let Some(e) = v.err {
        return Err(e);
    }
    Ok(Translated {
        root_offset: at,
        root: dst.written_base + at,
        used: at + span,
        objects: count,
        copied: span,
        layout: Layout::Congruent,
    })
}

#[cfg(test)]
mod tests {
    use super::{BTreeSet, Bits, CHUNK_SPAN_LOG2, Marks};

    #[test]
    fn flat_and_chunked_marks_match_a_set() {
        let len = 1u64 << 20;
        let mut flat = Marks::new(len);
        assert!(matches!(flat.bits, Bits::Flat(_)));
        let mut chunked = Marks {
            bits: Bits::Chunked {
                windows: vec![0; (len >> CHUNK_SPAN_LOG2) as usize + 1],
                chunks: Vec::new(),
            },
            odd: BTreeSet::new(),
        };
        let mut truth = BTreeSet::new();
        let mut rng = fastrand::Rng::with_seed(1);
        for _ in 0..20_000 {
            // Multiples of 4: half of them are not multiples of 8 (the ordered set's part).
            let off = rng.u64(0..len) & !3;
            let fresh = truth.insert(off);
            assert_eq!(flat.insert(off), fresh);
            assert_eq!(chunked.insert(off), fresh);
            let q = rng.u64(0..len) & !3;
            assert_eq!(flat.contains(q), truth.contains(&q));
            assert_eq!(chunked.contains(q), truth.contains(&q));
        }
        // Outside the region: never marked.
        assert!(!flat.contains(len << 1) && !chunked.contains(len << 1));
    }
}
