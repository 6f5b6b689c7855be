//! What every read-write segment holds after its header: the in-segment allocator
//! ([`Heap`]) and the named-object [`Directory`], laid out at creation and reached through
//! [`Segment::heap`], [`Segment::alloc`] and [`Segment::directory`].
//!
//! Layout: `[0, Header::END)` header and attach table; the heap control block at
//! `heap_offset` (the first 64-aligned offset after the header); the arena from the next
//! 64-aligned offset to the end of the segment. The directory table is the arena's first
//! allocation. When the segment grows, the arena is extended in place to the new end.

use crate::directory::{self, Directory, DirectoryError};
use crate::error::{Result, SegmentError};
use crate::header::Header;
use crate::heap::{HEAP_CONTROL_SIZE, Heap, HeapError};
use crate::region::Region;
use crate::segment::Segment;

/// Names a segment's directory holds at most. Small segments get a smaller directory: at
/// most a quarter of the arena, and at least [`MIN_DIRECTORY_CAPACITY`] names.
pub const DIRECTORY_CAPACITY: u64 = 256;
/// The fewest names any segment's directory holds.
pub const MIN_DIRECTORY_CAPACITY: u64 = 4;

/// The directory capacity for a segment of `size` bytes.
fn directory_capacity(size: u64) -> u64 {
    let budget = size.saturating_sub(ARENA_START) / 4;
    let fits = budget.saturating_sub(directory::HEADER_SIZE) / directory::ENTRY_SIZE;
    let pow2 = if fits == 0 { 0 } else { 1 << fits.ilog2() };
    pow2.clamp(MIN_DIRECTORY_CAPACITY, DIRECTORY_CAPACITY)
}

const fn align_up(x: u64, align: u64) -> u64 {
    (x + align - 1) & !(align - 1)
}

/// Where the heap control block starts.
pub(crate) const HEAP_OFFSET: u64 = align_up(Header::END as u64, 64);
/// Where the arena starts.
pub(crate) const ARENA_START: u64 = align_up(HEAP_OFFSET + HEAP_CONTROL_SIZE, 64);

/// The fewest bytes a segment can have: its header and attach table, the heap control
/// block, and an arena that holds the smallest directory table (with the heap's block
/// header, its end sentinel and up to 64 bytes to align the table). Creating a smaller
/// segment fails with [`SegmentError::TooSmall`]; sizes are rounded up to whole pages
/// before they are compared with this.
pub const MIN_SEGMENT_SIZE: u64 = ARENA_START
    + 64
    + directory::HEADER_SIZE
    + MIN_DIRECTORY_CAPACITY * directory::ENTRY_SIZE
    + 2 * crate::heap::BLOCK_HEADER;

/// Formats the heap and directory of a segment being created, and records their offsets
/// in the (not yet published) header.
pub(crate) fn init(region: Region, header: &mut Header) -> Result<()> {
    let size = region.len();
    // SAFETY: the segment is being created: nobody else can map it before its header is
    // published, and `region` is the creator's writable mapping of all `size` bytes.
    let heap = unsafe { Heap::init(region, HEAP_OFFSET, ARENA_START, size & !15) }
        .map_err(SegmentError::from)?;
    let dir = Directory::open_or_create(&heap, directory_capacity(size))?;
    header.heap_offset = HEAP_OFFSET;
    header.directory_offset = dir.offset();
    Ok(())
}

impl Segment {
    /// The segment's allocator, over the bytes mapped now (a segment another process grew
    /// is picked up first): a handle of its own (see [`heap_ref`](Self::heap_ref)).
    pub fn heap(&self) -> Result<Heap> {
        self.heap_for_mapping().cloned()
    }

    /// The segment's allocator, borrowed: the mapping keeps one handle per length it was
    /// mapped at, so the calls that allocate and free need no attach (validating the heap
    /// and finding this process's cache slot cost more than a cached allocation). The
    /// handle covers at least the heap's whole arena (a segment another process grew and
    /// extended the heap of is picked up first); [`heap`](Self::heap) covers the whole
    /// mapping.
    pub fn heap_ref(&self) -> Result<&Heap> {
        // The newest handle serves while it covers the heap's arena (what every heap
        // operation touches), without looking at the mapping first.
        if let Some(h) = self.heap_handles().newest()
            && h.covers_arena()
        {
            return Ok(h);
        }
        self.heap_for_mapping()
    }

    /// A handle over the whole mapping as it is now (growth picked up first).
    fn heap_for_mapping(&self) -> Result<&Heap> {
        let region = self.region();
        match self.heap_handles().get(region.len()) {
            Some(h) => Ok(h),
            None => self.new_heap_handle(region),
        }
    }

    #[cold]
    fn new_heap_handle(&self, region: crate::region::Region) -> Result<&Heap> {
        let off = self.header().heap_offset;
        if off == 0 {
            return Err(HeapError::BadControl {
                what: "the segment has no heap",
            }
            .into());
        }
        // SAFETY: `region` is this writable mapping as it is now; the handle is kept by the
        // mapping's `HeapHandles` and lent out only for borrows of this `Segment` (clones
        // from `heap` are bound by the same lifetime rule), so it is not used after the
        // unmap; the heap is only ever touched through `Heap` handles.
        let mut heap = unsafe { Heap::attach(region, off) }?;
        // A handle with this mapping's cache slot; a forked child that inherited the
        // mapping has no slot of its own and goes to the heap directly.
        // The slot is claimed on the first small allocation, not here: claiming takes the
        // heap lock, and inspection reads lock states through this handle first. A handle
        // for a grown mapping carries the slot its predecessor claimed.
        if self.owns_attach_slot() {
            heap = match self.heap_handles().newest() {
                Some(prev) => heap.with_cache_of(prev, self.attach_slot()),
                None => heap.with_lazy_cache(self.attach_slot()),
            };
        }
        Ok(self.heap_handles().add(heap))
    }

    /// Allocates `size` bytes aligned to `align` in the segment and returns their offset.
    ///
    /// When the heap is full and the segment may grow (its `max_size` is larger than its
    /// size), the segment grows in place (at least doubling, up to `max_size`) and the
    /// allocation is retried; otherwise `Err(Heap(OutOfMemory))`.
    ///
    /// ```
    /// use relshm_segment::{CreateOptions, Segment};
    /// let seg = Segment::create_unnamed(&CreateOptions::new(64 << 10).max_size(16 << 20))?;
    /// let big = seg.alloc(1 << 20, 64)?; // larger than the segment: it grows
    /// assert!(seg.size() > 1 << 20);
    /// seg.free(big)?;
    /// # Ok::<(), relshm_segment::SegmentError>(())
    /// ```
    pub fn alloc(&self, size: u64, align: u64) -> Result<u64> {
        self.alloc_growing(size, align, |heap| heap.alloc(size, align))
    }

    /// Allocates like [`Heap::alloc_owned`] (a block that carries the owner record
    /// `owner` from the instant it exists), growing the segment when the heap is full as
    /// [`alloc`](Self::alloc) does.
    pub fn alloc_owned(&self, size: u64, align: u64, owner: [u64; 2]) -> Result<u64> {
        self.alloc_growing(size, align, |heap| heap.alloc_owned(size, align, owner))
    }

    /// Runs `alloc` on the heap; while it reports the heap full and the segment may grow,
    /// grows the segment (at least doubling, up to `max_size`) and runs it again.
    fn alloc_growing(
        &self,
        size: u64,
        align: u64,
        alloc: impl Fn(&Heap) -> core::result::Result<u64, HeapError>,
    ) -> Result<u64> {
        loop {
            match alloc(self.heap_ref()?) {
                Err(HeapError::OutOfMemory { .. }) if self.size() < self.max_size() => {
                    let want = size.saturating_add(align).saturating_add(64 << 10);
                    let target = self
                        .size()
                        .saturating_mul(2)
                        .max(self.size().saturating_add(want))
                        .min(self.max_size());
                    self.grow(target)?;
                    self.extend_heap()?;
                }
                r => return r.map_err(SegmentError::from),
            }
        }
    }

    /// Frees an allocation made by [`alloc`](Self::alloc) (in any process).
    pub fn free(&self, offset: u64) -> Result<()> {
        self.heap_ref()?.free(offset).map_err(SegmentError::from)
    }

    /// Extends the heap's arena to the segment's current size, if another process (or
    /// this one) grew the segment. Idempotent.
    pub fn extend_heap(&self) -> Result<()> {
        let heap = self.heap_for_mapping()?;
        let end = self.region().len() & !15;
        match heap.extend(end) {
            Ok(()) => Ok(()),
            // Someone else extended it already (or there is less than one block to add).
            Err(HeapError::BadExtend { end: cur, .. }) if cur + 32 > end => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// The segment's named-object directory.
    ///
    /// ```
    /// use relshm_segment::{CreateOptions, Segment};
    /// use std::sync::atomic::{AtomicU64, Ordering};
    /// let seg = Segment::create_unnamed(&CreateOptions::new(1 << 20))?;
    /// let dir = seg.directory()?;
    /// let hits = dir.find_or_construct("hits", || AtomicU64::new(0))?;
    /// hits.get().fetch_add(1, Ordering::Relaxed);
    /// assert_eq!(dir.find::<AtomicU64>("hits")?.get().load(Ordering::Relaxed), 1);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn directory(&self) -> Result<Directory> {
        Ok(Directory::open(self.heap_ref()?)?)
    }
}

impl From<HeapError> for SegmentError {
    fn from(e: HeapError) -> Self {
        SegmentError::Heap(e)
    }
}

impl From<DirectoryError> for SegmentError {
    fn from(e: DirectoryError) -> Self {
        SegmentError::Directory(e)
    }
}
