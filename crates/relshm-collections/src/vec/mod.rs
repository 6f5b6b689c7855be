//! [`Vec`]: a growable contiguous vector in a segment, generic over the pointer strategy
//! `R`, shared by processes at different addresses.
//!
//! The elements live in one heap buffer behind one link, so iterating is a walk over
//! contiguous memory (what `std::vec::Vec` costs, plus one resolved link), and a copy-time
//! translation or export copies the buffer in one piece.
//!
//! **Locks.** A robust readers-writer lock in the header: writers hold it exclusively
//! ([`lock`](Vec::lock) gives a [`VecGuard`]), readers may hold it shared for a consistent
//! borrowed view ([`read`](Vec::read) gives a [`VecReadGuard`] with `&[T]`), or take no
//! lock at all ([`get`](Vec::get), [`to_vec`](Vec::to_vec)): a seqlock word that every
//! writer makes odd while it holds the lock lets them copy elements out with atomic loads
//! and keep the copy only if no writer came by (readers in other processes then never
//! write a shared line). Elements are written with atomic word stores for the same reason.
//!
//! **Owner death.** Every change is published by one store: `len` (push, pop, truncate,
//! extend), or `buf` (a new buffer: reserve, shrink, and insert/remove in the middle, which
//! copy into a new buffer rather than shift in place, so that a writer killed halfway
//! leaves the old elements or the new ones, never a mix). Buffers are owned heap blocks
//! whose record names this vector; the next locker after a death restores the capacity
//! from the buffer in use and frees every other buffer that names the vector (one that
//! was being filled, or one that was replaced and not freed yet), so nothing leaks.
//! [`set`](VecGuard::set) of an element wider than 8 bytes is several stores: a writer
//! killed inside it leaves that one element torn (every other element, and the length,
//! stay as they were).
//!
//! ```
//! use relshm_collections::arena::Arena;
//! use relshm_collections::vec::Vec;
//! use relshm_ptr::Offset;
//! use relshm_segment::{CreateOptions, Placement, Segment};
//!
//! let seg = Segment::create_unnamed(&CreateOptions::new(1 << 20))?;
//! let arena = Arena::<Offset>::new(&seg)?;
//! let v = Vec::<u64, Offset>::create(&arena)?;
//! v.extend_from_slice(&[1, 2, 3])?;
//! v.push(4)?;
//!
//! let other = seg.reopen(Placement::Anywhere)?; // another address, same bytes
//! let v2 = Vec::<u64, Offset>::open(&Arena::new(&other)?, v.offset())?;
//! assert_eq!(v2.get(3)?, Some(4));
//! assert_eq!(v2.read()?.iter().sum::<u64>(), 10);
//! assert_eq!(v2.verify()?, 4);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod guard;
mod layout;
mod read;
mod repair;
mod translate;

pub use guard::{VecGuard, VecReadGuard};
pub use layout::{BUF_HEADER, Elem, LAYOUT_VERSION, MAX_ELEM_ALIGN, VEC_MAGIC, VecHeader};
pub(crate) use layout::{CAP_BACK, fingerprint, ident};

use crate::arena::{Arena, Result, check_header};
use crate::record::CollectionRecord;
use crate::root::Root;
use crate::seqlock::WriteSection;
use bytemuck::Pod;
use core::sync::atomic::Ordering::{Acquire, Release};
use relshm_ptr::{BaseRel, Repr};
use relshm_sync::Held;

/// What a vector is called in errors.
const WHAT: &str = "relshm Vec";

/// A handle to a growable vector of `T` in a segment, generic over the pointer strategy
/// `R` ([`BaseRel`] unless named).
///
/// The handle owns what it needs (a clone of its [`Arena`]): keep it in a struct, clone
/// it, send it to another thread. Each convenience method takes the lock for one
/// operation; [`lock`](Self::lock) holds it across several. (Not in the prelude: its name
/// would shadow `std::vec::Vec`; import it as `relshm::collections::vec::Vec`, or
/// renamed.)
pub struct Vec<T, R: Repr = BaseRel> {
    root: Root<VecHeader<T, R>, R>,
}

impl<T, R: Repr> Clone for Vec<T, R> {
    fn clone(&self) -> Self {
        Self {
            root: self.root.clone(),
        }
    }
}

impl<T, R: Repr> core::fmt::Debug for Vec<T, R> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Vec")
            .field("offset", &self.root.offset())
            .field("strategy", &R::NAME)
            .finish()
    }
}

impl<T: Pod, R: Repr> Vec<T, R> {
    const ALIGN_OK: () = assert!(
        align_of::<T>() <= MAX_ELEM_ALIGN,
        "a relshm Vec's elements may be aligned to at most 16 bytes"
    );

    #[inline]
    pub(crate) fn hdr(&self) -> &VecHeader<T, R> {
        self.root.hdr()
    }

    /// Creates an empty vector (no buffer until the first element) in the arena's segment.
    pub fn create(arena: &Arena<R>) -> Result<Self> {
        let () = Self::ALIGN_OK;
        let p = arena.alloc::<VecHeader<T, R>>()?;
        // SAFETY: a fresh allocation, in bounds and aligned (checked by alloc), reachable by
        // no one yet; all-zero bytes are a valid empty header (unlocked lock, null link).
        unsafe { p.as_ptr().write_bytes(0, 1) };
        let v = Self {
            root: Root::new(arena, p, arena.offset_of(p)),
        };
        let hdr = v.hdr();
        hdr.layout.store(layout::layout::<T, R>(), Release);
        hdr.magic.store(VEC_MAGIC, Release);
        Ok(v)
    }

    /// Opens the vector whose header is at `offset`, checking that it is a vector of this
    /// element type and strategy.
    pub fn open(arena: &Arena<R>, offset: u64) -> Result<Self> {
        let () = Self::ALIGN_OK;
        // In bounds and aligned (checked by `header_at`); any bits are a valid header.
        let p = arena.header_at::<VecHeader<T, R>>(offset, WHAT)?;
        let v = Self {
            root: Root::new(arena, p, offset),
        };
        let hdr = v.hdr();
        check_header(
            WHAT,
            offset,
            (hdr.magic.load(Acquire), VEC_MAGIC),
            (hdr.layout.load(Acquire), layout::layout::<T, R>()),
            "its element type or pointer strategy differs: open it with the types it was \
             created with",
        )?;
        Ok(v)
    }

    /// Creates an empty vector and records it under `name` in the segment's directory.
    pub fn create_named(arena: &Arena<R>, name: &str) -> Result<Self> {
        let v = Self::create(arena)?;
        arena.record_named(name, CollectionRecord::vec::<T, R>().at(v.offset()))?;
        Ok(v)
    }

    /// Opens the vector recorded under `name` by [`create_named`](Self::create_named).
    pub fn open_named(arena: &Arena<R>, name: &str) -> Result<Self> {
        Self::open(
            arena,
            arena.named_offset(name, CollectionRecord::vec::<T, R>())?,
        )
    }

    /// Offset of the vector's header in the segment (the same in every process).
    pub fn offset(&self) -> u64 {
        self.root.offset()
    }

    /// The arena the vector lives in.
    pub fn arena(&self) -> &Arena<R> {
        self.root.arena()
    }

    /// Runs `op`, again if the segment grew under it (see [`Arena::retry_grown`]).
    fn run<X>(&self, op: impl FnMut() -> Result<X>) -> Result<X> {
        self.root.arena().retry_grown(op)
    }

    /// Takes the lock exclusively for changes. If the previous writer died, repairs the
    /// vector first (see the module docs).
    pub fn lock(&self) -> Result<VecGuard<'_, T, R>> {
        let hdr = self.hdr();
        let held = Held::exclusive(&hdr.lock, None, || self.repair())?;
        // Declared after the lock: the section ends (the word even) before the release.
        let section = WriteSection::begin(&hdr.seq);
        let guard = VecGuard::new(self, held, section);
        // A writer copies and writes through what it finds: make sure it is this vector's.
        self.check_for_write()?;
        Ok(guard)
    }

    /// Takes the lock shared: a consistent view of every element (writers wait).
    pub fn read(&self) -> Result<VecReadGuard<'_, T, R>> {
        let held = Held::shared(&self.hdr().lock, None, || self.repair())?;
        VecReadGuard::new(self, held)
    }

    /// Appends `value`.
    pub fn push(&self, value: T) -> Result<()> {
        self.run(|| self.lock()?.push(value))
    }

    /// Removes and returns the last element.
    pub fn pop(&self) -> Result<Option<T>> {
        self.run(|| self.lock()?.pop())
    }

    /// Appends every element of `values` (published by one store: a writer killed
    /// meanwhile appended none of them).
    pub fn extend_from_slice(&self, values: &[T]) -> Result<()> {
        self.run(|| self.lock()?.extend_from_slice(values))
    }

    /// Replaces element `i`, returning the old one; `Err(IndexOutOfRange)` past the end.
    pub fn set(&self, i: u64, value: T) -> Result<T> {
        self.run(|| self.lock()?.set(i, value))
    }

    /// Inserts `value` at `i` (`i <= len`), shifting the rest up (into a new buffer).
    pub fn insert(&self, i: u64, value: T) -> Result<()> {
        self.run(|| self.lock()?.insert(i, value))
    }

    /// Removes and returns element `i`, shifting the rest down (into a new buffer).
    pub fn remove(&self, i: u64) -> Result<T> {
        self.run(|| self.lock()?.remove(i))
    }

    /// Shortens the vector to `len` elements (nothing if it is not longer).
    pub fn truncate(&self, len: u64) -> Result<()> {
        self.run(|| self.lock()?.truncate(len))
    }

    /// Removes every element (the buffer stays: see [`shrink_to_fit`](Self::shrink_to_fit)).
    pub fn clear(&self) -> Result<()> {
        self.truncate(0)
    }

    /// Makes room for at least `additional` more elements.
    pub fn reserve(&self, additional: u64) -> Result<()> {
        self.run(|| self.lock()?.reserve(additional))
    }

    /// Shrinks the buffer to the length (frees it when empty).
    pub fn shrink_to_fit(&self) -> Result<()> {
        self.run(|| self.lock()?.shrink_to_fit())
    }

    /// Number of elements (one load: exact when no writer is active).
    pub fn len(&self) -> u64 {
        self.hdr().len.load(Acquire)
    }

    /// Whether the vector is empty (as [`len`](Self::len)).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Elements the buffer holds (as [`len`](Self::len)).
    pub fn capacity(&self) -> u64 {
        self.hdr().cap.load(Acquire)
    }

    /// How many times a writer died holding the lock and the vector was repaired.
    pub fn repairs(&self) -> u64 {
        self.hdr().repairs.load(Acquire)
    }

    /// Checks the header, the buffer (in bounds, the capacity word, an owned block of this
    /// vector) and that no other buffer names the vector. Returns the length.
    pub fn verify(&self) -> Result<u64> {
        self.run(|| self.read()?.verify())
    }
}
