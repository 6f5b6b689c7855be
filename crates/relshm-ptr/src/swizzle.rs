//! [`Swizzle`]: a tagged word, swizzled lazily into a raw pointer in a process-private
//! copy-on-write view, and unswizzled on export.

use crate::map::{Mapping, Sharing};
use crate::repr::{fits, misfit, resolve_in};
use crate::{PtrError, Relocate, Repr};
use core::ptr::NonNull;
use core::sync::atomic::{AtomicU64, Ordering::Relaxed};
use relshm_segment::Region;
use rustix::fd::BorrowedFd;

/// Swizzling representation. The word is one of:
///
/// | word                 | meaning                                                    |
/// |----------------------|------------------------------------------------------------|
/// | `0`                  | null                                                       |
/// | `offset << 1 \| 1`   | unswizzled: target offset in the segment (the shared form) |
/// | even, non-zero       | swizzled: the target's address in this process's private view |
///
/// Only unswizzled words (and null) ever live in shared memory. A [`SwizzleView`] maps the
/// segment `MAP_PRIVATE`: the first [`Link::get`](crate::Link::get) of an unswizzled word
/// resolves it and writes the raw address back in place (a copy-on-write page of this
/// process, never the shared pages); later gets cost what a checked [`Raw`](crate::Raw)
/// get costs: the word *is* the address (load, load on the critical path), and one
/// subtract, rotate and predicted compare check that it lies in the live view.
///
/// Stale words: a swizzled address outside the live view (the view was moved by
/// [`SwizzleView::move_elsewhere`], as growth does) or any swizzled word after
/// [`SwizzleView::invalidate`] ended the view's epoch (the live range becomes empty) fails
/// that check and reports `Err(Stale)`, never a read through a dangling address. A view
/// that is dropped takes its swizzled words with it: a new view is a fresh copy of the
/// shared (unswizzled) bytes.
///
/// The first-touch path needs no tag test on the fast path either: the view is placed
/// above `2 * len + 1` (checked when it is opened), so an unswizzled word, which is at most
/// that, always falls below the live range. An address tag in the top bits (epoch
/// counters) was tried and dropped: untagging is one more ALU op between the two loads
/// of a hop, which measured 1.6x Raw for L1-resident lists.
///
/// [`SwizzleView::export`] writes the position-independent image back (unswizzle).
#[derive(Debug, Clone, Copy)]
pub struct Swizzle;

/// The shared (unswizzled) encoding of a link to segment offset `off` (`None` = null).
///
/// Offsets must be below 2^62. Writers of a swizzle-format segment use this; readers
/// never need it.
pub fn unswizzled(off: Option<u64>) -> Result<u64, PtrError> {
    match off {
        None => Ok(0),
        Some(o) if o < 1 << 62 => Ok(o << 1 | 1),
        Some(_) => Err(PtrError::BadLayout {
            what: "swizzle offsets must be below 2^62",
        }),
    }
}

/// `n` zero words, allocated zeroed (calloc: untouched pages stay the kernel's zero page,
/// so a bitmap over a large view costs memory only where bits are set).
fn zeroed_bits(n: usize) -> Box<[AtomicU64]> {
    let words = vec![0u64; n].into_boxed_slice();
    // SAFETY: AtomicU64 has the same size, alignment and bit validity as u64 (documented),
    // so the allocation is a valid [AtomicU64] of the same length, freed with the same
    // layout.
    unsafe { Box::from_raw(Box::into_raw(words) as *mut [AtomicU64]) }
}

/// A process-private copy-on-write view of a segment: the context of [`Swizzle`] links.
///
/// It marks the words it swizzled or set in a bitmap (one bit per 8 bytes of the view), so
/// that [`export`](Self::export) rewrites exactly the words this process changed: that
/// covers words no walk would reach any more and needs no type information. A marked
/// word's shared encoding is derived from its value at export (an address in this view,
/// or in an earlier placement of it, is unswizzled; null and shared words stay), so a
/// first touch costs one bit set (an ordered log of `(word, encoding)` pairs cost an
/// insert each, which measured 5-8x the rest of a cold hop). Memory that stops holding
/// links (an object freed back to the segment heap, whose bytes the heap may reuse for
/// anything) must be [`forget`](Self::forget)-ten, or export would rewrite whatever lives
/// there now as if it were a link.
#[derive(Debug)]
pub struct SwizzleView {
    map: Mapping,
    base: u64,
    len: u64,
    /// `len` while the epoch lives, 0 once it ended: the range swizzled words must fit.
    live: u64,
    /// Bit `i` set: the word at offset `8 i` holds a link this view swizzled or set.
    /// Allocated zeroed (the kernel's zero pages until a bit is set), boxed so the view
    /// itself has no interior mutability: `&SwizzleView` is then read-only to the
    /// optimiser, which keeps `base` and `live` in registers across a chase.
    marks: Box<[AtomicU64]>,
    /// Bases of earlier placements of the view ([`move_elsewhere`](Self::move_elsewhere)):
    /// words swizzled for them still export to their offsets.
    moved_from: Vec<u64>,
}

impl SwizzleView {
    /// Maps `len` bytes of the segment behind `fd` privately (copy-on-write).
    pub fn open(fd: BorrowedFd<'_>, len: u64) -> Result<Self, PtrError> {
        let map = Mapping::new(fd, len, Sharing::Private)?;
        let bits = len.div_ceil(8).div_ceil(64) as usize;
        let mut v = Self {
            map,
            base: 0,
            len,
            live: len,
            marks: zeroed_bits(bits),
            moved_from: Vec::new(),
        };
        v.place()?;
        Ok(v)
    }

    fn place(&mut self) -> Result<(), PtrError> {
        let base = self.map.as_ptr() as u64;
        if base <= self.len.saturating_mul(2).saturating_add(1) {
            return Err(PtrError::BadLayout {
                what: "the private view lies so low that unswizzled words could look like \
                       addresses in it: open it again (the kernel placed it below twice its \
                       length)",
            });
        }
        self.base = base;
        Ok(())
    }

    /// Ends the view's epoch: every word swizzled so far reports `Err(Stale)` from now on,
    /// and nothing more is swizzled (unswizzled words still resolve). Export still works
    /// (the log holds the shared encodings); open a new view to swizzle again.
    pub fn invalidate(&mut self) {
        self.live = 0;
    }

    /// Moves the view to another address (`mremap`), as growth does when it cannot extend in
    /// place. Swizzled words keep pointing at the old range and report `Err(Stale)`.
    pub fn move_elsewhere(&mut self) -> Result<(), PtrError> {
        let old = self.base;
        self.map.move_elsewhere()?;
        self.moved_from.push(old);
        self.place()
    }

    /// The view's bytes as a region (valid while `self` lives).
    pub fn region(&self) -> Region {
        self.map.region()
    }

    /// The object of type `T` at segment offset `off`, checked.
    pub fn object<T: Relocate<Swizzle>>(&self, off: u64) -> Result<&T, PtrError> {
        crate::object_in(self.base, self.len, off)
    }

    /// Number of words this view swizzled or set so far (and has not forgotten).
    pub fn swizzled_words(&self) -> usize {
        self.marks
            .iter()
            .map(|w| w.load(Relaxed).count_ones() as usize)
            .sum()
    }

    /// Offsets of the `page`-byte pages (`page` a power of two, at least 512) holding a
    /// word this view swizzled or set, in order: the pages it made private by writing to
    /// them (each took one copy-on-write fault).
    pub fn written_pages(&self, page: u64) -> Vec<u64> {
        let per_page = (page / 512).max(1) as usize;
        self.marks
            .chunks(per_page)
            .enumerate()
            .filter(|(_, words)| words.iter().any(|w| w.load(Relaxed) != 0))
            .map(|(i, _)| i as u64 * per_page as u64 * 512)
            .collect()
    }

    /// Marks the word at offset `word_off` (8-aligned, inside the view) as one this view
    /// wrote a link into.
    #[inline(always)]
    fn mark(&self, word_off: u64) {
        let (i, bit) = ((word_off / 512) as usize, 1u64 << (word_off / 8 % 64));
        if let Some(w) = self.marks.get(i)
            && w.load(Relaxed) & bit == 0
        {
            w.fetch_or(bit, Relaxed);
        }
    }

    /// Forgets every word this view swizzled or set in `[offset, offset + len)`: those
    /// bytes no longer hold links (their object was freed), so export must take them as
    /// they are in the view, not rewrite them as links.
    pub fn forget(&self, offset: u64, len: u64) {
        let end = offset.saturating_add(len).min(self.len);
        // Words wholly inside the range (link words are 8-aligned).
        let (mut w, last) = (offset.div_ceil(8), end / 8);
        while w < last {
            let (i, b) = ((w / 64) as usize, w % 64);
            let n = (64 - b).min(last - w);
            let mask = if n == 64 {
                u64::MAX
            } else {
                ((1u64 << n) - 1) << b
            };
            if let Some(word) = self.marks.get(i) {
                word.fetch_and(!mask, Relaxed);
            }
            w += n;
        }
    }

    /// The shared encoding of `w`, the value of a word this view wrote a link into: an
    /// address in this view (or an earlier placement of it) is unswizzled; null and shared
    /// (odd) words are already in shared form.
    fn shared_form(&self, w: u64) -> u64 {
        if w == 0 || w & 1 == 1 {
            return w;
        }
        let placements = core::iter::once(self.base).chain(self.moved_from.iter().copied());
        for base in placements {
            let off = w.wrapping_sub(base);
            if off < self.len {
                return off << 1 | 1;
            }
        }
        // Only this view writes its words, and only addresses of its placements: a word
        // that is neither was overwritten by the application without a link (leave it).
        w
    }

    /// Writes the position-independent image (the view's bytes with every word this process
    /// swizzled or set back in shared form) into `dest`, which must hold the whole view.
    pub fn export(&self, dest: &mut [u8]) -> Result<(), PtrError> {
        let n = self.len as usize;
        if dest.len() < n {
            return Err(PtrError::DestinationFull {
                needed: self.len,
                available: dest.len() as u64,
            });
        }
        // Copy word by word with atomic loads: other threads may be swizzling links of
        // this view right now (atomic stores), and a plain memcpy would race with them.
        // The view is page-aligned, so every 8-byte chunk is an aligned word; link words
        // never lie in the tail (`word_offset` needs 8 bytes), so plain reads suffice there.
        let words = n / 8;
        for (i, chunk) in dest[..words * 8].chunks_exact_mut(8).enumerate() {
            // SAFETY: base + 8i is 8-aligned and inside the view, which self keeps mapped;
            // AtomicU64 is valid for any bits.
            let w = unsafe { (*(self.base as *const AtomicU64).add(i)).load(Relaxed) };
            chunk.copy_from_slice(&w.to_ne_bytes());
        }
        for (i, b) in dest[words * 8..n].iter_mut().enumerate() {
            // SAFETY: inside the view; no link word (hence no concurrent swizzle) is here.
            *b = unsafe { ((self.base as *const u8).add(words * 8 + i)).read() };
        }
        for (i, m) in self.marks.iter().enumerate() {
            let mut bits = m.load(Relaxed);
            while bits != 0 {
                let o = (i * 64 + bits.trailing_zeros() as usize) * 8;
                bits &= bits - 1;
                if let Some(chunk) = dest.get_mut(o..o + 8) {
                    let w = u64::from_ne_bytes(chunk.try_into().unwrap_or_default());
                    chunk.copy_from_slice(&self.shared_form(w).to_ne_bytes());
                }
            }
        }
        Ok(())
    }

    /// Writes the exported image to `out` (a file, a socket).
    pub fn write_image<W: std::io::Write>(&self, out: &mut W) -> std::io::Result<()> {
        let mut buf = vec![0u8; self.len as usize];
        self.export(&mut buf).map_err(std::io::Error::other)?;
        out.write_all(&buf)
    }

    /// The word offset of `word`, if it lies inside the view (where swizzling may write).
    #[inline]
    fn word_offset(&self, word: &AtomicU64) -> Option<u64> {
        let o = (word.as_ptr() as u64).wrapping_sub(self.base);
        (o < self.len && self.len - o >= 8).then_some(o)
    }

    #[cold]
    #[inline(never)]
    fn load_slow(
        &self,
        word: &AtomicU64,
        w: u64,
        size: u64,
        align: u64,
    ) -> Result<Option<NonNull<u8>>, PtrError> {
        if w == 0 {
            return Ok(None);
        }
        if w & 1 == 0 {
            // Even and not in the live range: swizzled for an ended epoch or an earlier
            // placement of the view (or forged).
            return Err(PtrError::Stale { word: w });
        }
        let off = w >> 1;
        if !fits(off, self.len, size, align) {
            return Err(misfit(
                self.base.wrapping_add(off),
                self.base,
                self.len,
                size,
                align,
            ));
        }
        let target = self.base + off;
        // Swizzle only words inside the live private view (writing there dirties a
        // copy-on-write page of this process, never the shared pages), and only even
        // addresses (an odd one would read back as an unswizzled word).
        if self.live != 0
            && target & 1 == 0
            && let Some(word_off) = self.word_offset(word)
        {
            word.store(target, Relaxed);
            self.mark(word_off);
        }
        Ok(NonNull::new(target as *mut u8))
    }
}

// SAFETY: Word is one AtomicU64 (any bits valid, zero = null); load returns a pointer only
// after `fits` checked the target offset lies in the view, aligned, and the view's mapping
// lives as long as the SwizzleView (the context) it belongs to.
unsafe impl Repr for Swizzle {
    type Word = AtomicU64;
    type Ctx = SwizzleView;
    const NAME: &'static str = "swizzle";
    const ID: u32 = 5;

    fn null() -> AtomicU64 {
        AtomicU64::new(0)
    }

    #[inline(always)]
    fn is_null(word: &AtomicU64) -> bool {
        word.load(Relaxed) == 0
    }

    #[inline(always)]
    fn load(
        ctx: &SwizzleView,
        word: &AtomicU64,
        size: u64,
        align: u64,
    ) -> Result<Option<NonNull<u8>>, PtrError> {
        let w = word.load(Relaxed);
        // SAFETY: `[base, base + live)` is the view's own mapping (or empty once its
        // epoch ended), which lives as long as the view.
        if let Some(p) = unsafe { resolve_in(w, ctx.base, ctx.live, size, align) } {
            return Ok(Some(p));
        }
        ctx.load_slow(word, w, size, align)
    }

    fn store(
        ctx: &SwizzleView,
        word: &AtomicU64,
        target: Option<NonNull<u8>>,
    ) -> Result<(), PtrError> {
        let word_off = ctx.word_offset(word).ok_or(PtrError::NotWritable {
            addr: word.as_ptr() as u64,
            why: "Swizzle links are set only inside the private view; export writes them out",
        })?;
        let Some(t) = target else {
            word.store(0, Relaxed);
            ctx.mark(word_off);
            return Ok(());
        };
        let off = (t.as_ptr() as u64).wrapping_sub(ctx.base);
        if off >= ctx.len {
            return Err(PtrError::NotWritable {
                addr: t.as_ptr() as u64,
                why: "a Swizzle link's target must lie in the private view",
            });
        }
        let shared = unswizzled(Some(off))?;
        let t = t.as_ptr() as u64;
        // A dead view, or an odd address, keeps the shared form (see load_slow).
        word.store(
            if ctx.live != 0 && t & 1 == 0 {
                t
            } else {
                shared
            },
            Relaxed,
        );
        ctx.mark(word_off);
        Ok(())
    }

    #[inline]
    fn forget(ctx: &SwizzleView, offset: u64, len: u64) {
        ctx.forget(offset, len);
    }
}
