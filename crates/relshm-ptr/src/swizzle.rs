//! [`Swizzle`]: a tagged word, swizzled lazily into a raw pointer in a process-private
//! copy-on-write view, and unswizzled on export.

use crate::map::{Mapping, Sharing};
use crate::repr::{fits, misfit, resolve_in};
use crate::{PtrError, Relocate, Repr};
use core::ptr::NonNull;
use core::sync::atomic::{AtomicU64, Ordering::Relaxed};
use relshm_segment::Region;
use rustix::fd::BorrowedFd;
use std::collections::BTreeMap;
use std::sync::Mutex;

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

/// A process-private copy-on-write view of a segment: the context of [`Swizzle`] links.
///
/// It keeps a log of the words it swizzled or set, with their shared encoding, so that
/// [`export`](Self::export) rewrites exactly the words this process changed: that covers
/// words no walk would reach any more and needs no type information. The log costs one
/// ordered insert per first touch, next to the copy-on-write fault that first touch
/// already pays. Memory that stops holding links (an object freed back to the segment
/// heap, whose bytes the heap may reuse for anything) must be [`forget`](Self::forget)
/// -ten, or export would write stale link encodings over whatever lives there now.
#[derive(Debug)]
pub struct SwizzleView {
    map: Mapping,
    base: u64,
    len: u64,
    /// `len` while the epoch lives, 0 once it ended: the range swizzled words must fit.
    live: u64,
    /// Word offset -> shared encoding of its current value. Boxed so the view itself has
    /// no interior mutability: `&SwizzleView` is then read-only to the optimiser, which
    /// keeps `base` and `live` in registers across a chase.
    log: Box<Mutex<BTreeMap<u64, u64>>>,
}

impl SwizzleView {
    /// Maps `len` bytes of the segment behind `fd` privately (copy-on-write).
    pub fn open(fd: BorrowedFd<'_>, len: u64) -> Result<Self, PtrError> {
        let map = Mapping::new(fd, len, Sharing::Private)?;
        let mut v = Self {
            map,
            base: 0,
            len,
            live: len,
            log: Box::new(Mutex::new(BTreeMap::new())),
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
        self.map.move_elsewhere()?;
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

    /// Number of log entries (words swizzled or set so far).
    pub fn swizzled_words(&self) -> usize {
        self.log.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    fn log(&self, word_off: u64, shared: u64) {
        self.log
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(word_off, shared);
    }

    /// Forgets every word this view swizzled or set in `[offset, offset + len)`: those
    /// bytes no longer hold links (their object was freed), so export must take them as
    /// they are in the view, not rewrite them as links.
    pub fn forget(&self, offset: u64, len: u64) {
        let end = offset.saturating_add(len);
        let mut log = self.log.lock().unwrap_or_else(|e| e.into_inner());
        // Called on every free: no list of the doomed words, just take them one by one.
        while let Some(k) = log.range(offset..end).next().map(|(&k, _)| k) {
            log.remove(&k);
        }
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
        for (&off, &w) in self.log.lock().unwrap_or_else(|e| e.into_inner()).iter() {
            let o = off as usize;
            dest[o..o + 8].copy_from_slice(&w.to_ne_bytes());
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
            self.log(word_off, w);
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
            ctx.log(word_off, 0);
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
        ctx.log(word_off, shared);
        Ok(())
    }

    #[inline]
    fn forget(ctx: &SwizzleView, offset: u64, len: u64) {
        ctx.forget(offset, len);
    }
}
