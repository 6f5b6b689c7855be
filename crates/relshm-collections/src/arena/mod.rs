//! [`Arena`]: where a collection's objects live in this process, how its links resolve
//! (the pointer strategy's context), and the in-segment allocator its nodes come from.
//!
//! An arena is a cheap handle (cloning shares it) that keeps its segment mapped: every
//! collection handle made from it holds a clone, so handles are `'static` and an
//! application keeps them in its own structs. The strategy is the type parameter `R`
//! ([`BaseRel`] when not named); the constructors say how each one shares memory:
//!
//! | strategy | constructor | shared how | follows growth |
//! |---|---|---|---|
//! | [`BaseRel`] | [`Arena::new`] | in place, any address | yes |
//! | [`Offset`] | [`Arena::<Offset>::new`](Arena::new) | in place, any address | yes |
//! | [`SegRel`] | [`Arena::<SegRel>::new`](Arena::new) | in place, any address | no |
//! | [`Raw`] | [`Arena::fixed`] / [`Arena::local`] | in place at one fixed address, or private then [`translate`](crate::list::List::translate_to) | no |
//! | [`Swizzle`] | [`Arena::private`] | a private copy-on-write view, [`publish`](Arena::publish)ed back | no |
//!
//! **Growth.** An arena that follows growth allocates through [`Segment::alloc`]: when the
//! heap is full and the segment was created with room to grow
//! ([`CreateOptions::max_size`](relshm_segment::CreateOptions::max_size)), the segment grows
//! in place and the allocation succeeds. Every arena on the segment, in every process,
//! picks the new bytes up at its next operation (its mapping never moves, so nothing
//! handed out is invalidated). Arenas that do not follow growth see the bytes mapped when
//! they were made: a full heap is `Err(Heap(OutOfMemory))` there.

pub use crate::error::{CollectionError, Result};
pub(crate) use crate::error::{check_header, corrupt};

use crate::record::CollectionRecord;
use core::ptr::NonNull;
use core::sync::atomic::{AtomicU64, Ordering::Relaxed};
use relshm_ptr::translate::{Space, Translated, translate};
use relshm_ptr::{
    BaseRel, Offset, OffsetCtx, PtrError, Raw, RawCtx, Relocate, Repr, SegRel, SegTable, Swizzle,
    SwizzleView,
};
use relshm_segment::directory::Directory;
use relshm_segment::heap::Heap;
use relshm_segment::{Region, Segment};
use std::sync::Arc;

/// The memory a collection lives in, as this process sees it, for pointer strategy `R`.
///
/// Cloning is cheap (shared ownership); the segment stays mapped while any clone, or any
/// handle made from one, lives.
pub struct Arena<R: Repr = BaseRel>(Arc<Inner<R>>);

impl<R: Repr> core::fmt::Debug for Arena<R> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Arena")
            .field("strategy", &R::NAME)
            .field("base", &format_args!("{:#x}", self.base()))
            .field("len", &self.len())
            .field("memory", &self.0.memory)
            .finish()
    }
}

impl<R: Repr> Clone for Arena<R> {
    fn clone(&self) -> Self {
        Self(Arc::clone(&self.0))
    }
}

struct Inner<R: Repr> {
    ctx: R::Ctx,
    base: u64,
    /// Bytes the context covers now (grows with the segment when `R` follows growth).
    len: AtomicU64,
    memory: Memory,
}

/// Where an arena's allocations come from, and what keeps its bytes mapped.
#[derive(Debug)]
enum Memory {
    /// The segment itself, which allocations may grow when `grows`.
    Segment { seg: Segment, grows: bool },
    /// A private view of `seg` with the heap inside the view (a swizzled arena).
    Private { heap: Heap, _seg: Segment },
    /// A translated copy: no allocator, and the caller keeps the bytes mapped.
    ReadOnly,
}

/// The `ident` word of an owned heap block held by a collection: a two-letter tag for
/// what the block is in the top 16 bits, the holder's offset (a header, a stripe) in the
/// low 48. The owner word of such blocks is 0 (no automatic owner): the holder frees
/// them, and its repair frees those it does not link to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct OwnedIdent(pub(crate) u64);

impl OwnedIdent {
    /// Blocks tagged `tag` held by the object at `holder`.
    pub(crate) const fn new(tag: [u8; 2], holder: u64) -> Self {
        Self((u16::from_le_bytes(tag) as u64) << 48 | (holder & ((1 << 48) - 1)))
    }
}

/// The strategies whose links every process shares in place, whatever its address:
/// [`BaseRel`], [`Offset`] and [`SegRel`]. [`Arena::new`] makes an arena of any of them.
pub trait InPlace: Repr {
    /// This process's context for links into `seg`, and the region it covers.
    #[doc(hidden)]
    fn context(seg: &Segment) -> Result<(Self::Ctx, Region)>;
}

/// An [`OffsetCtx`] over `seg` as mapped now ([`Offset`], [`BaseRel`]).
fn offset_context(seg: &Segment) -> Result<(OffsetCtx, Region)> {
    let region = seg.region();
    // SAFETY: the arena keeps a clone of the segment, which keeps `region` mapped (and
    // mapped at the same address as it grows) while the arena lives.
    Ok((unsafe { OffsetCtx::new(region) }, region))
}

impl InPlace for BaseRel {
    fn context(seg: &Segment) -> Result<(OffsetCtx, Region)> {
        offset_context(seg)
    }
}

impl InPlace for Offset {
    fn context(seg: &Segment) -> Result<(OffsetCtx, Region)> {
        offset_context(seg)
    }
}

impl InPlace for SegRel {
    fn context(seg: &Segment) -> Result<(SegTable, Region)> {
        let region = seg.region();
        let mut table = SegTable::new();
        // SAFETY: as for Offset: the arena's clone of the segment keeps the region mapped.
        unsafe { table.add(seg.segment_id(), region)? };
        Ok((table, region))
    }
}

impl<R: InPlace> Arena<R> {
    /// An arena over `seg` whose links every process shares in place, whatever its
    /// address. The strategy is the type parameter: `Arena::<BaseRel>::new(&seg)`, or
    /// inferred from the collection it is passed to.
    pub fn new(seg: &Segment) -> Result<Self> {
        let (ctx, region) = R::context(seg)?;
        Self::shared(ctx, region, seg)
    }
}

impl Arena<Raw> {
    /// Absolute links into a fixed-address segment: every process maps it at the same
    /// address, so links need no translation. Fails if `seg` is not a fixed-address segment
    /// mapped at its fixed address.
    pub fn fixed(seg: &Segment) -> Result<Self> {
        let region = seg.region();
        let want = seg.fixed_base().ok_or(PtrError::NotFixedAddress {
            written: 0,
            mapped: region.base().as_ptr() as u64,
        })?;
        // SAFETY: the arena's clone of the segment keeps the region mapped.
        let ctx = unsafe { RawCtx::new(region, want)? };
        Self::shared(ctx, region, seg)
    }

    /// Absolute links valid in this process only: build a collection here, then hand it to
    /// another process with a translated copy (`translate_to`).
    pub fn local(seg: &Segment) -> Result<Self> {
        let region = seg.region();
        // SAFETY: the arena's clone of the segment keeps the region mapped.
        let ctx = unsafe { RawCtx::local(region) };
        Self::shared(ctx, region, seg)
    }

    /// A read-only arena over a translated copy in `region`, whose links were written for
    /// `written_base` (which must be where `region` is mapped here).
    ///
    /// # Safety
    /// `region` must stay mapped and writable (the copy's locks are taken) for as long as
    /// the arena, any clone of it, or any handle made from it lives.
    pub unsafe fn translated(region: Region, written_base: u64) -> Result<Self> {
        // SAFETY: forwarded to the caller.
        let ctx = unsafe { RawCtx::new(region, written_base)? };
        Ok(Self::build(ctx, region, Memory::ReadOnly))
    }
}

impl Arena<Raw> {
    /// Copies the structure whose root `H` (a collection's header) is at `offset` into
    /// `dst` from offset `start`, with every link rewritten for a process that maps `dst`
    /// at `dst.written_base()` (see [`relshm_ptr::translate()`]), then lets `fresh_locks`
    /// reset the copy's locks: the source was copied while its caller held them, and the
    /// receiver needs them free. The receiver opens the copy with [`Arena::translated`]
    /// and the collection's `open` at `root_offset`.
    pub(crate) fn translate_root<H: Relocate<Raw>>(
        &self,
        offset: u64,
        dst: &Space,
        start: u64,
        fresh_locks: impl FnOnce(&mut H),
    ) -> Result<Translated> {
        // SAFETY: the arena's region stays mapped while it lives (it keeps the segment).
        let src = unsafe { Space::new(self.region(), self.base()) };
        let t = translate::<H>(&src, self.base() + offset, dst, start)?;
        let mut hdr = dst
            .region()
            .resolve_as::<H>(t.root_offset)
            .map_err(relshm_segment::heap::HeapError::from)?;
        // SAFETY: the header was just copied there by `translate` (in bounds, aligned, any
        // bits valid for a Relocate type); the destination is the caller's alone until it
        // hands it over (Space::new's contract), so nothing else references it.
        fresh_locks(unsafe { hdr.as_mut() });
        Ok(t)
    }
}

impl Arena<Swizzle> {
    /// A process-private copy-on-write view of `seg` whose links are swizzled into raw
    /// pointers on first use. Changes stay private until [`publish`](Self::publish).
    pub fn private(seg: &Segment) -> Result<Self> {
        let view = SwizzleView::open(seg.fd(), seg.region().len())?;
        let region = view.region();
        // SAFETY: the view is private memory owned by the arena (it lives as long as the
        // heap handle); nobody else sees its bytes.
        let heap = unsafe { Heap::attach(region, seg.heap_offset())? };
        let memory = Memory::Private {
            heap,
            _seg: seg.clone(),
        };
        Ok(Self::build(view, region, memory))
    }

    /// The view's bytes with every swizzled link back in shared (offset) form.
    pub fn export(&self) -> Result<Vec<u8>> {
        let mut image = vec![0u8; self.len() as usize];
        self.ctx().export(&mut image)?;
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
        self.ctx().swizzled_words()
    }

    /// Offsets of the pages holding a link this view swizzled or wrote: the pages it made
    /// private (see [`SwizzleView::written_pages`]).
    pub fn written_pages(&self) -> Vec<u64> {
        self.ctx().written_pages(relshm_segment::page_size())
    }
}

impl<R: Repr> Arena<R> {
    /// An arena on `seg` itself; it follows growth when `R`'s context does.
    fn shared(ctx: R::Ctx, region: Region, seg: &Segment) -> Result<Self> {
        seg.heap()?; // a segment without a heap cannot hold collections: say so now
        // SAFETY: the region is mapped now, and the arena keeps the segment (so the mapping)
        // alive; probing with the current length changes nothing.
        let grows = unsafe { R::extend(&ctx, region.len()) };
        let memory = Memory::Segment {
            seg: seg.clone(),
            grows,
        };
        Ok(Self::build(ctx, region, memory))
    }

    fn build(ctx: R::Ctx, region: Region, memory: Memory) -> Self {
        Self(Arc::new(Inner {
            ctx,
            base: region.base().as_ptr() as u64,
            len: AtomicU64::new(region.len()),
            memory,
        }))
    }

    /// The strategy's per-process context (what links resolve through).
    #[inline]
    pub fn ctx(&self) -> &R::Ctx {
        &self.0.ctx
    }

    /// The mapped bytes the arena covers now, in this process.
    pub fn region(&self) -> Region {
        // SAFETY: the first `len` bytes from `base` are mapped while the arena lives (the
        // constructors' guarantee, kept by `catch_up`).
        unsafe { Region::new(NonNull::new_unchecked(self.0.base as *mut u8), self.len()) }
    }

    /// Address of offset 0 in this process.
    #[inline]
    pub fn base(&self) -> u64 {
        self.0.base
    }

    /// Bytes this arena covers now.
    #[inline]
    pub fn len(&self) -> u64 {
        self.0.len.load(Relaxed)
    }

    /// Whether the arena covers no bytes.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The segment this arena allocates from (`None` for a translated copy).
    pub fn segment(&self) -> Option<&Segment> {
        match &self.0.memory {
            Memory::Segment { seg, .. } => Some(seg),
            Memory::Private { _seg, .. } => Some(_seg),
            Memory::ReadOnly => None,
        }
    }

    /// The segment, for collections that live in it in place and link by segment offsets
    /// (queues, streams, ports) whatever the arena's strategy; `Err(ReadOnly)` for a
    /// translated copy, which has no segment.
    pub(crate) fn shared_segment(&self) -> Result<&Segment> {
        self.segment().ok_or(CollectionError::ReadOnly)
    }

    /// Picks up bytes the segment grew by (in this process or another) since the arena
    /// last looked: one load of the segment's size when nothing changed. Every collection
    /// operation calls it before resolving links.
    #[inline]
    pub fn sync(&self) {
        if let Memory::Segment { seg, grows: true } = &self.0.memory
            && seg.size() > self.len()
        {
            self.catch_up(seg);
        }
    }

    /// Runs `op` and, if it failed on a link beyond this arena's view because the segment
    /// grew meanwhile (another process grew it and linked new memory after this operation
    /// last looked), runs it again over the grown view. An operation that failed that way
    /// changed nothing it must undo: links are resolved before anything is written.
    #[inline]
    pub(crate) fn retry_grown<X>(&self, mut op: impl FnMut() -> Result<X>) -> Result<X> {
        loop {
            let seen = self.len();
            match op() {
                Err(CollectionError::Link(PtrError::OutOfBounds { .. })) if self.grew(seen) => {}
                r => return r,
            }
        }
    }

    /// Whether the arena covers more than `seen` bytes once it caught up with the segment.
    #[cold]
    fn grew(&self, seen: u64) -> bool {
        self.sync();
        self.len() > seen
    }

    #[cold]
    fn catch_up(&self, seg: &Segment) {
        // An error here (a corrupt size) leaves the arena as it was: links beyond it stay
        // out of bounds, which the operations report.
        if let Ok(mapped) = seg.refresh() {
            // SAFETY: `refresh` mapped `mapped` bytes from the segment's base (the arena's
            // base), and the arena's clone of the segment keeps them mapped.
            if unsafe { R::extend(&self.0.ctx, mapped) } {
                self.0.len.fetch_max(mapped, Relaxed);
            }
        }
    }

    /// The heap allocations come from (`Err(ReadOnly)` for a translated copy).
    fn heap(&self) -> Result<&Heap> {
        match &self.0.memory {
            Memory::Segment { seg, .. } => Ok(seg.heap_ref()?),
            Memory::Private { heap, .. } => Ok(heap),
            Memory::ReadOnly => Err(CollectionError::ReadOnly),
        }
    }

    /// The segment's named-object directory (through this arena's view).
    pub fn directory(&self) -> Result<Directory> {
        let heap = self.heap()?;
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
        let (size, align) = (size_of::<T>() as u64, align_of::<T>().max(16) as u64);
        self.at::<T>(self.alloc_block(size, align, None)?)
    }

    /// `size` bytes aligned to `align` from the segment heap, carrying the owner record
    /// `record` if given; the segment grows when the heap is full and the arena follows
    /// growth. Returns the payload's offset, checked to lie in the arena's view.
    fn alloc_block(&self, size: u64, align: u64, record: Option<[u64; 2]>) -> Result<u64> {
        let off = match &self.0.memory {
            Memory::Segment { seg, grows: true } => {
                let off = match record {
                    Some(r) => seg.alloc_owned(size, align, r)?,
                    None => seg.alloc(size, align)?,
                };
                self.sync();
                off
            }
            _ => {
                let heap = self.heap()?;
                match record {
                    Some(r) => heap.alloc_owned(size, align, r)?,
                    None => heap.alloc(size, align)?,
                }
            }
        };
        if self.checked_range(off, size, align).is_err() {
            let _ = self.heap().map(|h| match record {
                Some(r) => h.free_owned(off, r).map(drop),
                None => h.free(off),
            });
            return Err(CollectionError::BeyondView {
                offset: off,
                len: self.len(),
            });
        }
        Ok(off)
    }

    /// A heap block of `size` bytes (16-aligned) whose owner record says `ident` (what
    /// the block is and which object holds it: see [`OwnedIdent`]), published by the heap
    /// together with the block. Returns the payload's offset; the record takes its first
    /// [`OWNER_RECORD`](relshm_segment::heap::OWNER_RECORD) bytes (counted in `size`). An object that finds a block of its
    /// ident it does not link to after a writer died frees it ([`owned_by`](Self::owned_by)):
    /// a writer killed between allocating and publishing leaks nothing.
    pub(crate) fn alloc_owned(&self, size: u64, ident: OwnedIdent) -> Result<u64> {
        self.alloc_block(size, 16, Some([0, ident.0]))
    }

    /// Frees the owned block at payload offset `off` (of `size` bytes, or as many as the
    /// heap says) if its record still says `ident` (checked under the heap lock, so a
    /// block freed and reused meanwhile is never freed again); whether it did.
    pub(crate) fn free_owned(
        &self,
        off: u64,
        size: Option<u64>,
        ident: OwnedIdent,
    ) -> Result<bool> {
        let heap = self.heap()?;
        let size = match size {
            Some(s) => s,
            None => heap.usable_size(off)?,
        };
        R::forget(&self.0.ctx, off, size);
        Ok(heap.free_owned(off, [0, ident.0])?)
    }

    /// Payload offsets of every live block whose owner record says `ident`.
    pub(crate) fn owned_by(&self, ident: OwnedIdent) -> Result<Vec<u64>> {
        Ok(self
            .heap()?
            .owned_allocations()?
            .into_iter()
            .filter(|(_, rec)| rec[1] == ident.0)
            .map(|(off, _)| off)
            .collect())
    }

    /// Returns `p` (from [`alloc`](Self::alloc), in any process) to the heap. An object that
    /// is not a live allocation is refused by the heap with an error.
    pub(crate) fn free<T>(&self, p: NonNull<T>) -> Result<()> {
        let heap = self.heap()?;
        let off = self.offset_of(p);
        // Before the heap may hand the bytes to someone else: a swizzled view must not
        // export its old links over whatever lives there next.
        R::forget(&self.0.ctx, off, size_of::<T>() as u64);
        heap.free(off)?;
        Ok(())
    }

    /// Offset of an address of this arena.
    pub(crate) fn offset_of<T>(&self, p: NonNull<T>) -> u64 {
        (p.as_ptr() as u64).wrapping_sub(self.0.base)
    }

    /// The `T`-sized, `T`-aligned bytes at `off`, checked to lie in the arena.
    pub(crate) fn at<T>(&self, off: u64) -> Result<NonNull<T>> {
        Ok(self.checked_at(off)?)
    }

    /// The header of the `expected` collection a caller opens at `off`: like
    /// [`at`](Self::at), but an offset that cannot hold one is the caller's
    /// [`CollectionError::BadOffset`], not a broken link.
    pub(crate) fn header_at<T>(&self, off: u64, expected: &'static str) -> Result<NonNull<T>> {
        let (size, align) = (size_of::<T>() as u64, align_of::<T>() as u64);
        Ok(self.block_at(off, size, align, expected)?.cast())
    }

    /// Like [`header_at`](Self::header_at) for a header of `size` bytes that must start
    /// `align`-aligned (queues and streams start on cache lines).
    pub(crate) fn block_at(
        &self,
        off: u64,
        size: u64,
        align: u64,
        expected: &'static str,
    ) -> Result<NonNull<u8>> {
        self.checked_range(off, size, align)
            .map_err(|source| CollectionError::BadOffset {
                expected,
                offset: off,
                source,
            })
    }

    fn checked_at<T>(&self, off: u64) -> Result<NonNull<T>, PtrError> {
        let (size, align) = (size_of::<T>() as u64, align_of::<T>() as u64);
        Ok(self.checked_range(off, size, align)?.cast())
    }

    fn checked_range(&self, off: u64, size: u64, align: u64) -> Result<NonNull<u8>, PtrError> {
        let addr = match relshm_ptr::check_offset(self.base(), self.len(), off, size, align) {
            Ok(addr) => addr,
            Err(e) => {
                self.sync(); // perhaps the segment grew since
                relshm_ptr::check_offset(self.base(), self.len(), off, size, align)
                    .map_err(|_| e)?
            }
        };
        // SAFETY: addr lies inside the mapping, which starts above address 0.
        Ok(unsafe { NonNull::new_unchecked(addr as *mut u8) })
    }

    /// The most `T`s the arena could hold: a bound for walks, so a cycle ends them.
    pub(crate) fn max_objects<T>(&self) -> u64 {
        self.len() / size_of::<T>().max(1) as u64 + 1
    }
}
