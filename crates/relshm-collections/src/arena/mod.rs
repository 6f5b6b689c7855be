//! [`Arena`]: where a collection's objects live in this process, how its links resolve
//! (the pointer strategy's context), and the in-segment allocator its nodes come from.
//!
//! One arena per process and strategy; a collection handle borrows it. The strategy is the
//! type parameter `R`; the constructors say how each one shares memory:
//!
//! | strategy | constructor | shared how |
//! |---|---|---|
//! | [`Offset`] | [`Arena::<Offset>::new`](Arena::new) | in place, any address |
//! | [`BaseRel`] | [`Arena::<BaseRel>::new`](Arena::new) | in place, any address |
//! | [`SegRel`] | [`Arena::<SegRel>::new`](Arena::new) | in place, any address |
//! | [`Raw`] | [`Arena::fixed`] / [`Arena::local`] | in place at one fixed address, or private then [`translate`](crate::list::List::translate_to) |
//! | [`Swizzle`] | [`Arena::private`] | a private copy-on-write view, [`publish`](Arena::publish)ed back |
//!
//! An arena covers the bytes its segment had mapped when the arena was made, and allocates
//! from the segment's heap without growing it: size the segment for the collections it
//! holds (a full heap is `Err(Heap(OutOfMemory))`). After a [`Segment::grow`], make a new
//! arena (and handles) to use the new bytes; an allocation beyond an old arena's view is
//! refused with [`CollectionError::BeyondView`].

mod error;

pub use error::{CollectionError, Result};
pub(crate) use error::{WRONG_MAGIC, corrupt};

use crate::record::CollectionRecord;
use core::marker::PhantomData;
use core::ptr::NonNull;
use relshm_ptr::{
    BaseRel, Offset, OffsetCtx, PtrError, Raw, RawCtx, Repr, SegRel, SegTable, Swizzle, SwizzleView,
};
use relshm_segment::directory::Directory;
use relshm_segment::heap::Heap;
use relshm_segment::{Region, Segment};

/// The memory a collection lives in, as this process sees it, for pointer strategy `R`.
#[derive(Debug)]
pub struct Arena<'s, R: Repr> {
    ctx: R::Ctx,
    region: Region,
    base: u64,
    len: u64,
    heap: Option<Heap>,
    _seg: PhantomData<&'s Segment>,
}

impl<'s, R: Repr<Ctx = OffsetCtx>> Arena<'s, R> {
    /// An arena whose links resolve through `seg`'s region ([`Offset`], [`BaseRel`]).
    fn in_region(seg: &'s Segment) -> Result<Self> {
        let region = seg.region();
        // SAFETY: the segment keeps `region` mapped while it lives, and the arena borrows it.
        let ctx = unsafe { OffsetCtx::new(region) };
        Ok(Self::build(ctx, region, Some(seg.heap()?)))
    }
}

impl<'s> Arena<'s, Offset> {
    /// Self-relative links into `seg`, shared in place by every process whatever its address.
    pub fn new(seg: &'s Segment) -> Result<Self> {
        Self::in_region(seg)
    }
}

impl<'s> Arena<'s, BaseRel> {
    /// Offsets from the start of `seg`, shared in place by every process whatever its
    /// address (the segment is implied: links cannot point into another one).
    pub fn new(seg: &'s Segment) -> Result<Self> {
        Self::in_region(seg)
    }
}

impl<'s> Arena<'s, SegRel> {
    /// `(segment id, offset)` links into `seg`, shared in place by every process.
    pub fn new(seg: &'s Segment) -> Result<Self> {
        let region = seg.region();
        let mut table = SegTable::new();
        // SAFETY: as for Offset: the borrowed segment keeps the region mapped.
        unsafe { table.add(seg.segment_id(), region)? };
        Ok(Self::build(table, region, Some(seg.heap()?)))
    }
}

impl<'s> Arena<'s, Raw> {
    /// Absolute links into a fixed-address segment: every process maps it at the same
    /// address, so links need no translation. Fails if `seg` is not a fixed-address segment
    /// mapped at its fixed address.
    pub fn fixed(seg: &'s Segment) -> Result<Self> {
        let region = seg.region();
        let want = seg.fixed_base().ok_or(PtrError::NotFixedAddress {
            written: 0,
            mapped: region.base().as_ptr() as u64,
        })?;
        // SAFETY: the borrowed segment keeps the region mapped.
        let ctx = unsafe { RawCtx::new(region, want)? };
        Ok(Self::build(ctx, region, Some(seg.heap()?)))
    }

    /// Absolute links valid in this process only: build a collection here, then hand it to
    /// another process with a translated copy (`translate_to`).
    pub fn local(seg: &'s Segment) -> Result<Self> {
        let region = seg.region();
        // SAFETY: the borrowed segment keeps the region mapped.
        let ctx = unsafe { RawCtx::local(region) };
        Ok(Self::build(ctx, region, Some(seg.heap()?)))
    }

    /// A read-only arena over a translated copy in `region`, whose links were written for
    /// `written_base` (which must be where `region` is mapped here).
    ///
    /// # Safety
    /// `region` must stay mapped and writable (the copy's locks are taken) for `'s`.
    pub unsafe fn translated(region: Region, written_base: u64) -> Result<Self> {
        // SAFETY: forwarded to the caller.
        let ctx = unsafe { RawCtx::new(region, written_base)? };
        Ok(Self::build(ctx, region, None))
    }
}

impl<'s> Arena<'s, Swizzle> {
    /// A process-private copy-on-write view of `seg` whose links are swizzled into raw
    /// pointers on first use. Changes stay private until [`publish`](Self::publish).
    pub fn private(seg: &'s Segment) -> Result<Self> {
        let view = SwizzleView::open(seg.fd(), seg.region().len())?;
        let region = view.region();
        // SAFETY: the view is private memory owned by the arena (it lives as long as the
        // heap handle); nobody else sees its bytes.
        let heap = unsafe { Heap::attach(region, seg.heap_offset())? };
        Ok(Self::build(view, region, Some(heap)))
    }

    /// The view's bytes with every swizzled link back in shared (offset) form.
    pub fn export(&self) -> Result<Vec<u8>> {
        let mut image = vec![0u8; self.len as usize];
        self.ctx.export(&mut image)?;
        Ok(image)
    }

    /// Writes the exported image back into `seg` (the segment this view was made from),
    /// from the heap on: the segment header (and its attach table) is left alone.
    ///
    /// Memory-safe at any time (every word is stored atomically), but meaningful only while
    /// no other process uses the segment's heap or collections: publishing replaces them.
    pub fn publish(&self, seg: &Segment) -> Result<()> {
        seg.write_data_image(&self.export()?);
        Ok(())
    }

    /// Number of links this view swizzled or wrote so far.
    pub fn swizzled_words(&self) -> usize {
        self.ctx.swizzled_words()
    }
}

impl<R: Repr> Arena<'_, R> {
    fn build(ctx: R::Ctx, region: Region, heap: Option<Heap>) -> Self {
        Self {
            ctx,
            region,
            base: region.base().as_ptr() as u64,
            len: region.len(),
            heap,
            _seg: PhantomData,
        }
    }

    /// The strategy's per-process context (what links resolve through).
    pub fn ctx(&self) -> &R::Ctx {
        &self.ctx
    }

    /// The mapped bytes the arena covers, in this process.
    pub fn region(&self) -> Region {
        self.region
    }

    /// Address of offset 0 in this process.
    pub fn base(&self) -> u64 {
        self.base
    }

    /// Bytes this arena covers.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether the arena covers no bytes.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The segment's named-object directory (through this arena's view).
    pub fn directory(&self) -> Result<Directory> {
        let heap = self.heap.as_ref().ok_or(CollectionError::ReadOnly)?;
        Ok(Directory::open(heap).map_err(relshm_segment::SegmentError::from)?)
    }

    /// Registers `record` under `name` in the segment's directory (how a collection made
    /// with `create_named` is found, and described, to other processes and tools).
    pub(crate) fn record_named(&self, name: &str, record: CollectionRecord) -> Result<()> {
        crate::record::write(&self.directory()?, name, record)
    }

    /// The header offset recorded under `name` by [`record_named`](Self::record_named),
    /// after checking that the record describes `wanted` (kind, types, strategy, layout).
    pub(crate) fn named_offset(&self, name: &str, wanted: CollectionRecord) -> Result<u64> {
        crate::record::read(&self.directory()?, name, &wanted)
    }

    /// Uninitialised, checked memory for one `T` from the segment heap.
    pub(crate) fn alloc<T>(&self) -> Result<NonNull<T>> {
        let heap = self.heap.as_ref().ok_or(CollectionError::ReadOnly)?;
        let off = heap.alloc(size_of::<T>() as u64, align_of::<T>().max(16) as u64)?;
        match self.at::<T>(off) {
            Ok(p) => Ok(p),
            Err(_) => {
                let _ = heap.free(off);
                Err(CollectionError::BeyondView {
                    offset: off,
                    len: self.len,
                })
            }
        }
    }

    /// Returns `p` (from [`alloc`](Self::alloc), in any process) to the heap. An object that
    /// is not a live allocation is refused by the heap with an error.
    pub(crate) fn free<T>(&self, p: NonNull<T>) -> Result<()> {
        let heap = self.heap.as_ref().ok_or(CollectionError::ReadOnly)?;
        let off = self.offset_of(p);
        // Before the heap may hand the bytes to someone else: a swizzled view must not
        // export its old links over whatever lives there next.
        R::forget(&self.ctx, off, size_of::<T>() as u64);
        heap.free(off)?;
        Ok(())
    }

    /// Offset of an address of this arena.
    pub(crate) fn offset_of<T>(&self, p: NonNull<T>) -> u64 {
        (p.as_ptr() as u64).wrapping_sub(self.base)
    }

    /// The `T`-sized, `T`-aligned bytes at `off`, checked to lie in the arena.
    pub(crate) fn at<T>(&self, off: u64) -> Result<NonNull<T>> {
        Ok(self.checked_at(off)?)
    }

    /// The header of the `expected` collection a caller opens at `off`: like
    /// [`at`](Self::at), but an offset that cannot hold one is the caller's
    /// [`CollectionError::BadOffset`], not a broken link.
    pub(crate) fn header_at<T>(&self, off: u64, expected: &'static str) -> Result<NonNull<T>> {
        self.checked_at(off)
            .map_err(|source| CollectionError::BadOffset {
                expected,
                offset: off,
                source,
            })
    }

    fn checked_at<T>(&self, off: u64) -> Result<NonNull<T>, PtrError> {
        let (size, align) = (size_of::<T>() as u64, align_of::<T>() as u64);
        let addr = relshm_ptr::check_offset(self.base, self.len, off, size, align)?;
        // SAFETY: addr lies inside the mapping, which starts above address 0.
        Ok(unsafe { NonNull::new_unchecked(addr as *mut T) })
    }

    /// The most `T`s the arena could hold: a bound for walks, so a cycle ends them.
    pub(crate) fn max_objects<T>(&self) -> u64 {
        self.len / size_of::<T>().max(1) as u64 + 1
    }
}
