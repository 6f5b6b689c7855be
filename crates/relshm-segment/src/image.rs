//! A segment's data as a byte image: read out word by word, and written back.

use core::sync::atomic::{AtomicU64, Ordering::Relaxed};

use crate::segment::Segment;

impl Segment {
    /// The words `[start, end)` an image of `len` bytes covers: from the heap on (the
    /// header and attach table belong to the mapping, not to the data), whole words, inside
    /// what this process maps.
    fn image_span(&self, len: usize) -> (usize, usize) {
        let start = self.heap_offset() as usize & !7;
        let end = (len.min(self.region().len() as usize) & !7).max(start);
        (start, end)
    }

    /// The word at byte `at` of the mapping.
    ///
    /// # Safety
    /// `at` is `start + 8k` with `start + 8k + 8 <= end` for the `(start, end)` of
    /// [`image_span`](Self::image_span).
    unsafe fn image_word(&self, at: usize) -> &AtomicU64 {
        let p = self.region().base().as_ptr().wrapping_add(at).cast::<u64>();
        // SAFETY: by the contract `at..at + 8` lies inside the mapping, which lives as long
        // as `self`; the heap offset is 64-aligned and `at` steps by 8 from it, so the word
        // is aligned. Shared words are only ever accessed atomically.
        unsafe { AtomicU64::from_ptr(p) }
    }

    /// Asks the kernel to map every page of `[start, end)` writable in one call
    /// (`MADV_POPULATE_WRITE`), so that writing a whole image costs the copy and not a
    /// page fault per page of a mapping this process has not touched yet (measured: half
    /// of an import into a fresh mapping). Best effort: older kernels refuse, and the
    /// writes then fault as usual.
    fn populate_for_write(&self, start: usize, end: usize) {
        let page = crate::page_size() as usize;
        let (from, to) = (start & !(page - 1), end.next_multiple_of(page));
        let base = self.region().base().as_ptr();
        let len = to.min(self.region().len() as usize).saturating_sub(from);
        if len == 0 {
            return;
        }
        // SAFETY: `[from, from + len)` is page-aligned and inside this process's mapping,
        // which lives as long as `self`; populating changes no byte of it.
        let _ = unsafe {
            rustix::mm::madvise(
                base.wrapping_add(from).cast(),
                len,
                rustix::mm::Advice::LinuxPopulateWrite,
            )
        };
    }

    /// A copy of the segment's data (from the heap on) as long as the mapping; the bytes
    /// before the heap are left zero. Every word is read atomically, so this is safe while
    /// others write, but a consistent image needs them quiet. The copy is position
    /// independent when the data's links are (offsets, not addresses).
    ///
    /// ```
    /// use relshm_segment::{CreateOptions, Segment};
    /// let a = Segment::create_unnamed(&CreateOptions::new(1 << 20))?;
    /// let off = a.alloc(8, 8)?;
    /// let image = a.data_image();
    /// let b = Segment::create_unnamed(&CreateOptions::new(1 << 20))?;
    /// b.write_data_image(&image);
    /// assert_eq!(b.data_image(), image);
    /// # let _ = off;
    /// # Ok::<(), relshm_segment::SegmentError>(())
    /// ```
    pub fn data_image(&self) -> Vec<u8> {
        let mut image = vec![0u8; self.region().len() as usize];
        let (start, end) = self.image_span(image.len());
        for (i, chunk) in image[start..end].chunks_exact_mut(8).enumerate() {
            // SAFETY: whole words of the span.
            let w = unsafe { self.image_word(start + i * 8) }.load(Relaxed);
            chunk.copy_from_slice(&w.to_ne_bytes());
        }
        image
    }

    /// Writes an image (from [`data_image`](Self::data_image), or any image laid out like
    /// one) into the segment from the heap on, replacing its data; the header and attach
    /// table are left alone. Memory-safe at any time (every word is stored atomically), but
    /// meaningful only while no other process uses the segment's heap and what it holds.
    pub fn write_data_image(&self, image: &[u8]) {
        let (start, end) = self.image_span(image.len());
        self.populate_for_write(start, end);
        for (i, chunk) in image[start..end].chunks_exact(8).enumerate() {
            let mut word = [0u8; 8];
            word.copy_from_slice(chunk);
            // SAFETY: whole words of the span.
            unsafe { self.image_word(start + i * 8) }.store(u64::from_ne_bytes(word), Relaxed);
        }
    }
}
