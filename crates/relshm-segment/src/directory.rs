//! Named objects: a directory in the segment that maps names to heap allocations, so
//! unrelated processes find the same object by name.
//!
//! Each entry records a type fingerprint (size, alignment, and the name, version and hash a
//! type declares through [`SegmentObject`]); looking an object up with another type is a
//! [`DirectoryError::TypeMismatch`], never a reinterpretation.
//!
//! # Layout
//!
//! The table is one heap allocation; its offset is published in the heap's control block
//! (written once, by compare-and-swap, after the table is initialised):
//!
//! | offset | field | meaning |
//! |---|---|---|
//! | 0 | `magic` | `"RSHMDIR1"` |
//! | 8 | `capacity` | number of entries, a power of two up to 2^16 |
//! | 16..56 | `lock` | the robust [`relshm_sync::RawMutex`] guarding the entries |
//! | 56..64 | reserved | zero |
//! | 64 + 168 i | entry i | see [`Entry`] |
//!
//! Entries form an open-addressing hash table (FNV-1a of the name, linear probing,
//! tombstones). An entry becomes visible with one store of its `state` word, after every
//! other field and the object itself are written; `remove` retires the entry first and
//! frees the object after. A process killed in between leaks at most one object, so a dead
//! lock holder needs no repair beyond marking the lock consistent.

use core::marker::PhantomData;
use core::ptr::NonNull;
use core::sync::atomic::AtomicU64;
use core::sync::atomic::Ordering::{AcqRel, Acquire, Relaxed, Release};

use relshm_sync::{Held, LockError, RawMutex};

use crate::heap::{Heap, HeapError, MAX_ALIGN};

/// Longest name, in bytes.
pub const MAX_NAME_LEN: usize = 64;
/// Longest type name kept for error messages (longer ones are cut).
pub const MAX_TYPE_NAME_LEN: usize = 40;
/// Largest directory capacity.
pub const MAX_CAPACITY: u64 = 1 << 16;
/// `"RSHMDIR1"` in little-endian.
pub const DIRECTORY_MAGIC: u64 = u64::from_le_bytes(*b"RSHMDIR1");

const EMPTY: u64 = 0;
const LIVE: u64 = 1;
const TOMBSTONE: u64 = 2;

/// A type that may be stored in a segment and found by name.
///
/// # Safety
/// Implementors promise that the type is plain data with a fixed layout (`#[repr(C)]`,
/// `#[repr(transparent)]` or a primitive): every bit pattern of its size is a valid value,
/// it holds no pointers or references, it has no drop glue, and shared references to it
/// may be used while other processes access the same bytes (so any mutation through `&T`
/// goes through atomics or other interior mutability built for shared memory).
/// `TYPE_NAME` and `TYPE_VERSION` must change whenever the layout does.
pub unsafe trait SegmentObject: Sized + Sync {
    /// A stable name for the type, e.g. `"myapp::Counters"`.
    const TYPE_NAME: &'static str;
    /// Bumped whenever the type's layout or meaning changes.
    const TYPE_VERSION: u32;
    /// The fingerprint hash; the default hashes the name and version.
    const TYPE_HASH: u64 = fnv1a(Self::TYPE_NAME.as_bytes(), Self::TYPE_VERSION as u64);
}

/// FNV-1a over `bytes`, folded with `seed` (usable in constants).
pub const fn fnv1a(bytes: &[u8], seed: u64) -> u64 {
    let mut h = 0xcbf2_9ce4_8422_2325 ^ seed.wrapping_mul(0x100_0000_01b3);
    let mut i = 0;
    while i < bytes.len() {
        h ^= bytes[i] as u64;
        h = h.wrapping_mul(0x100_0000_01b3);
        i += 1;
    }
    h
}

macro_rules! segment_objects {
    ($($t:ty),* $(,)?) => {$(
        // SAFETY: primitives and atomics of fixed width: every bit pattern is valid, no
        // pointers, no drop glue, and atomics are built for shared mutation.
        unsafe impl SegmentObject for $t {
            const TYPE_NAME: &'static str = stringify!($t);
            const TYPE_VERSION: u32 = 1;
        }
    )*};
}

segment_objects!(
    u8,
    u16,
    u32,
    u64,
    i8,
    i16,
    i32,
    i64,
    f32,
    f64,
    core::sync::atomic::AtomicU8,
    core::sync::atomic::AtomicU16,
    core::sync::atomic::AtomicU32,
    core::sync::atomic::AtomicU64,
    core::sync::atomic::AtomicI8,
    core::sync::atomic::AtomicI16,
    core::sync::atomic::AtomicI32,
    core::sync::atomic::AtomicI64,
);

// SAFETY: a robust in-segment mutex treats every bit pattern of its lock word as a state
// (its list links are written by the owning thread before the kernel reads them), is
// `#[repr(C)]` with a fixed layout, and guards data that is itself a segment object.
unsafe impl<T: SegmentObject + Send> SegmentObject for relshm_sync::Mutex<T> {
    const TYPE_NAME: &'static str = "relshm_sync::Mutex";
    const TYPE_VERSION: u32 = 1;
    const TYPE_HASH: u64 = fnv1a(b"relshm_sync::Mutex", T::TYPE_HASH);
}

// SAFETY: as for Mutex: the robust readers-writer lock is `#[repr(C)]` robust mutexes and
// atomics (every bit pattern a state), guarding data that is itself a segment object.
unsafe impl<T: SegmentObject + Send> SegmentObject for relshm_sync::RwLock<T> {
    const TYPE_NAME: &'static str = "relshm_sync::RwLock";
    const TYPE_VERSION: u32 = 1;
    const TYPE_HASH: u64 = fnv1a(b"relshm_sync::RwLock", T::TYPE_HASH);
}

// SAFETY: an array of plain-data elements is plain data with the element's guarantees.
unsafe impl<T: SegmentObject, const N: usize> SegmentObject for [T; N] {
    const TYPE_NAME: &'static str = T::TYPE_NAME;
    const TYPE_VERSION: u32 = T::TYPE_VERSION;
    // Distinguishes `[u32; 4]` from `u32` and from `[u32; 5]`.
    const TYPE_HASH: u64 = fnv1a(b"array", T::TYPE_HASH ^ (N as u64).rotate_left(32));
}

/// The type a directory entry was created with, as recorded in the segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TypeInfo {
    /// The declared type name (cut to [`MAX_TYPE_NAME_LEN`] bytes).
    pub name: String,
    /// The declared version.
    pub version: u32,
    /// The fingerprint hash.
    pub hash: u64,
    /// `size_of` the type.
    pub size: u64,
    /// `align_of` the type.
    pub align: u64,
}

impl TypeInfo {
    /// The fingerprint of `T`.
    pub fn of<T: SegmentObject>() -> Self {
        let name = T::TYPE_NAME.as_bytes();
        let cut = &name[..name.len().min(MAX_TYPE_NAME_LEN)];
        TypeInfo {
            name: String::from_utf8_lossy(cut).into_owned(),
            version: T::TYPE_VERSION,
            hash: T::TYPE_HASH,
            size: size_of::<T>() as u64,
            align: align_of::<T>() as u64,
        }
    }

    fn matches(&self, other: &TypeInfo) -> bool {
        (self.version, self.hash, self.size, self.align)
            == (other.version, other.hash, other.size, other.align)
    }
}

impl core::fmt::Display for TypeInfo {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(
            f,
            "`{}` v{} ({} bytes, align {}, hash {:#018x})",
            self.name, self.version, self.size, self.align, self.hash
        )
    }
}

/// What went wrong in the directory.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DirectoryError {
    /// Names are 1 to [`MAX_NAME_LEN`] bytes.
    #[error("object names must be 1 to {MAX_NAME_LEN} bytes, got {len}")]
    BadName {
        /// The name's length.
        len: usize,
    },
    /// No object has this name.
    #[error("no object named {name:?}; construct it first (or use find_or_construct)")]
    NotFound {
        /// The name looked up.
        name: String,
    },
    /// An object with this name exists already.
    #[error("an object named {name:?} exists already; use find, or remove it first")]
    AlreadyExists {
        /// The name.
        name: String,
    },
    /// The object exists with another type.
    #[error(
        "object {name:?} was created as {stored}, not {requested}: look it up with its own type"
    )]
    TypeMismatch {
        /// The name.
        name: String,
        /// The type it was created with.
        stored: Box<TypeInfo>,
        /// The type asked for.
        requested: Box<TypeInfo>,
    },
    /// Every entry is in use.
    #[error("the directory is full ({capacity} entries); remove objects or create a larger one")]
    Full {
        /// Number of entries.
        capacity: u64,
    },
    /// The type is too strictly aligned for the heap.
    #[error("type alignment {align} exceeds the heap's maximum of {MAX_ALIGN}")]
    Unsupported {
        /// The type's alignment.
        align: u64,
    },
    /// The directory's bytes are inconsistent.
    #[error(
        "directory is corrupted at offset {offset:#x}: {what}; run verify() and restore the \
         segment from a copy"
    )]
    Corrupted {
        /// Where.
        offset: u64,
        /// What.
        what: &'static str,
    },
    /// The heap under the directory failed.
    #[error(transparent)]
    Heap(#[from] HeapError),
    /// The directory lock could not be taken.
    #[error("directory lock: {0}")]
    Lock(#[from] LockError),
}

fn corrupt(offset: u64, what: &'static str) -> DirectoryError {
    DirectoryError::Corrupted { offset, what }
}

/// The directory's header, at the start of its table.
#[repr(C)]
struct DirHeader {
    magic: AtomicU64,
    capacity: AtomicU64,
    lock: RawMutex,
    reserved: AtomicU64,
}

/// Bytes of the directory table's header.
pub const HEADER_SIZE: u64 = size_of::<DirHeader>() as u64;
const _: () = assert!(HEADER_SIZE == 64);

/// One directory entry (168 bytes, all little-endian words).
///
/// | offset | field | meaning |
/// |---|---|---|
/// | 0 | `state` | 0 empty, 1 live, 2 removed (tombstone) |
/// | 8 | `lens` | name length (bits 0..32) \| type name length (bits 32..64) |
/// | 16 | `name[8]` | the name's bytes, zero-padded |
/// | 80 | `type_hash` | [`SegmentObject::TYPE_HASH`] |
/// | 88 | `version` | [`SegmentObject::TYPE_VERSION`] |
/// | 96 | `size` | `size_of` the type |
/// | 104 | `align` | `align_of` the type |
/// | 112 | `object` | offset of the object's heap allocation |
/// | 120 | `type_name[5]` | the type name's first 40 bytes, zero-padded |
#[repr(C)]
pub struct Entry {
    state: AtomicU64,
    lens: AtomicU64,
    name: [AtomicU64; 8],
    type_hash: AtomicU64,
    version: AtomicU64,
    size: AtomicU64,
    align: AtomicU64,
    object: AtomicU64,
    type_name: [AtomicU64; 5],
}

/// Bytes of one directory entry.
pub const ENTRY_SIZE: u64 = size_of::<Entry>() as u64;
const _: () = assert!(ENTRY_SIZE == 160);

fn store_bytes(words: &[AtomicU64], bytes: &[u8]) {
    for (i, w) in words.iter().enumerate() {
        let mut buf = [0u8; 8];
        let chunk = bytes.get(i * 8..).unwrap_or(&[]);
        let n = chunk.len().min(8);
        buf[..n].copy_from_slice(&chunk[..n]);
        w.store(u64::from_le_bytes(buf), Relaxed);
    }
}

fn load_bytes(words: &[AtomicU64], len: usize) -> Vec<u8> {
    let mut out: Vec<u8> = words
        .iter()
        .flat_map(|w| w.load(Relaxed).to_le_bytes())
        .collect();
    out.truncate(len);
    out
}

impl Entry {
    fn name_len(&self) -> Result<usize, ()> {
        let n = (self.lens.load(Relaxed) & 0xffff_ffff) as usize;
        if (1..=MAX_NAME_LEN).contains(&n) {
            Ok(n)
        } else {
            Err(())
        }
    }

    fn has_name(&self, name: &[u8]) -> bool {
        self.name_len() == Ok(name.len()) && load_bytes(&self.name, name.len()) == name
    }

    fn type_info(&self) -> TypeInfo {
        let n = ((self.lens.load(Relaxed) >> 32) as usize).min(MAX_TYPE_NAME_LEN);
        TypeInfo {
            name: String::from_utf8_lossy(&load_bytes(&self.type_name, n)).into_owned(),
            version: self.version.load(Relaxed) as u32,
            hash: self.type_hash.load(Relaxed),
            size: self.size.load(Relaxed),
            align: self.align.load(Relaxed),
        }
    }
}

/// One live entry, as listed by [`Directory::entries`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntryInfo {
    /// The name.
    pub name: Vec<u8>,
    /// The recorded type.
    pub type_info: TypeInfo,
    /// Offset of the object in the segment.
    pub offset: u64,
}

/// A reference to a named object in the segment, valid while its [`Directory`] handle is
/// borrowed (and until some process removes the object).
pub struct Named<'d, T> {
    ptr: NonNull<T>,
    offset: u64,
    _dir: PhantomData<&'d T>,
}

impl<T: SegmentObject> Named<'_, T> {
    /// The object's offset from the segment start (the same in every process).
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// The object's address in this process.
    pub fn as_ptr(&self) -> NonNull<T> {
        self.ptr
    }

    /// The object.
    pub fn get(&self) -> &T {
        // SAFETY: the pointer was resolved inside the mapping, aligned for T, to a live
        // allocation of at least size_of::<T>() bytes recorded with T's fingerprint; the
        // SegmentObject contract makes any bytes a valid T that may be shared across
        // processes; the mapping outlives 'd.
        unsafe { self.ptr.as_ref() }
    }
}

impl<T: SegmentObject> core::ops::Deref for Named<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        self.get()
    }
}

/// A handle on the named-object directory of a heap.
///
/// ```
/// # use relshm_segment::{Region, heap::{Heap, HEAP_CONTROL_SIZE}, directory::{Directory, DirectoryError}};
/// # use core::{ptr::NonNull, sync::atomic::{AtomicU64, Ordering}};
/// # let layout = std::alloc::Layout::from_size_align(1 << 16, 4096).unwrap();
/// # let base = unsafe { std::alloc::alloc_zeroed(layout) };
/// # let region = unsafe { Region::new(NonNull::new(base).unwrap(), 1 << 16) };
/// # let heap = unsafe { Heap::init(region, 0, HEAP_CONTROL_SIZE, 1 << 16) }.unwrap();
/// let dir = Directory::open_or_create(&heap, 64).unwrap();
/// let hits = dir.construct("hits", AtomicU64::new(0)).unwrap();
/// hits.fetch_add(1, Ordering::Relaxed);
/// let again = dir.find::<AtomicU64>("hits").unwrap();
/// assert_eq!(again.load(Ordering::Relaxed), 1);
/// assert!(matches!(dir.find::<u32>("hits"), Err(DirectoryError::TypeMismatch { .. })));
/// # drop((hits, again));
/// # drop((dir, heap));
/// # unsafe { std::alloc::dealloc(base, layout) };
/// ```
pub struct Directory {
    heap: Heap,
    offset: u64,
    capacity: u64,
    hdr: NonNull<DirHeader>,
}

// SAFETY: Directory names shared memory accessed only through atomics under the in-segment
// lock; it holds no thread-affine state.
unsafe impl Send for Directory {}
// SAFETY: as for Send.
unsafe impl Sync for Directory {}

fn check_name(name: &[u8]) -> Result<(), DirectoryError> {
    if (1..=MAX_NAME_LEN).contains(&name.len()) {
        Ok(())
    } else {
        Err(DirectoryError::BadName { len: name.len() })
    }
}

fn show(name: &[u8]) -> String {
    String::from_utf8_lossy(name).into_owned()
}

impl Directory {
    /// Opens the heap's directory, creating it with room for `capacity` names (rounded up
    /// to a power of two, at most [`MAX_CAPACITY`]) if the heap has none yet. Safe to race
    /// from several processes: exactly one table gets published.
    pub fn open_or_create(heap: &Heap, capacity: u64) -> Result<Directory, DirectoryError> {
        if heap.directory_slot().load(Acquire) == 0 {
            let capacity = capacity.clamp(1, MAX_CAPACITY).next_power_of_two();
            let bytes = HEADER_SIZE + capacity * ENTRY_SIZE;
            let table = heap.alloc(bytes, 64)?;
            let p = heap
                .region()
                .resolve(table, bytes, 64)
                .map_err(HeapError::from)?;
            // SAFETY: a fresh allocation of `bytes` bytes that nobody else can know yet;
            // all-zero is an unlocked lock and empty entries.
            unsafe { p.as_ptr().write_bytes(0, bytes as usize) };
            let words = p.cast::<AtomicU64>();
            // SAFETY: as above; the header's first two words are magic and capacity.
            unsafe {
                words.as_ref().store(DIRECTORY_MAGIC, Relaxed);
                words.add(1).as_ref().store(capacity, Relaxed);
            }
            if heap
                .directory_slot()
                .compare_exchange(0, table, AcqRel, Acquire)
                .is_err()
            {
                heap.free(table)?;
            }
        }
        Self::open(heap)
    }

    /// Opens the heap's existing directory, validating its header.
    pub fn open(heap: &Heap) -> Result<Directory, DirectoryError> {
        let offset = heap.directory_slot().load(Acquire);
        if offset == 0 {
            return Err(corrupt(
                0,
                "the heap has no directory; create it with open_or_create",
            ));
        }
        let hdr = heap
            .region()
            .resolve_as::<DirHeader>(offset)
            .map_err(|_| corrupt(offset, "directory offset lies outside the segment"))?;
        let dir_hdr_words = hdr.cast::<AtomicU64>();
        // SAFETY: resolved in bounds and aligned; the header is all atomics (RawMutex treats
        // any word as a state), valid for any bytes.
        let (magic, capacity) = unsafe {
            (
                dir_hdr_words.as_ref().load(Acquire),
                dir_hdr_words.add(1).as_ref().load(Acquire),
            )
        };
        if magic != DIRECTORY_MAGIC {
            return Err(corrupt(offset, "wrong directory magic"));
        }
        if !capacity.is_power_of_two() || capacity > MAX_CAPACITY {
            return Err(corrupt(
                offset,
                "directory capacity is not a power of two up to 2^16",
            ));
        }
        let table = HEADER_SIZE + capacity * ENTRY_SIZE;
        heap.region()
            .resolve(offset, table, 64)
            .map_err(|_| corrupt(offset, "directory table runs past the segment"))?;
        Ok(Directory {
            heap: heap.clone(),
            offset,
            capacity,
            hdr,
        })
    }

    /// The offset of the directory table in the segment.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// Number of entries the table holds.
    pub fn capacity(&self) -> u64 {
        self.capacity
    }

    /// The directory's robust lock, for inspection tools that report its state without
    /// taking it.
    pub fn raw_lock(&self) -> &RawMutex {
        &self.header().lock
    }

    fn header(&self) -> &DirHeader {
        // SAFETY: resolved and validated in open; the mapping outlives the handle; every
        // bit pattern is a valid DirHeader.
        unsafe { self.hdr.as_ref() }
    }

    fn entry(&self, i: u64) -> &Entry {
        // SAFETY: i < capacity and open() checked that the whole table is inside the
        // mapping; entries are 8-aligned atomics, valid for any bytes.
        unsafe {
            &*self
                .hdr
                .as_ptr()
                .cast::<u8>()
                .add((HEADER_SIZE + i * ENTRY_SIZE) as usize)
                .cast::<Entry>()
        }
    }

    fn lock(&self) -> Result<Held<'_>, DirectoryError> {
        // Entries are published and retired with single stores: nothing to repair after a
        // holder's death.
        Held::mutex(&self.header().lock, self.heap.lock_timeout(), || {
            Ok::<(), DirectoryError>(())
        })
    }

    /// Probes for `name`: `Ok(Ok(index))` if live, `Ok(Err(slot))` with the first reusable
    /// slot if absent (`None` if the table is full).
    fn probe(&self, name: &[u8]) -> Result<Result<u64, Option<u64>>, DirectoryError> {
        let mask = self.capacity - 1;
        let mut slot = None;
        let start = fnv1a(name, 0);
        for k in 0..self.capacity {
            let i = start.wrapping_add(k) & mask;
            let e = self.entry(i);
            match e.state.load(Acquire) {
                EMPTY => return Ok(Err(slot.or(Some(i)))),
                TOMBSTONE => slot = slot.or(Some(i)),
                LIVE => {
                    if e.has_name(name) {
                        return Ok(Ok(i));
                    }
                }
                _ => return Err(corrupt(self.entry_offset(i), "entry state is invalid")),
            }
        }
        Ok(Err(slot))
    }

    fn entry_offset(&self, i: u64) -> u64 {
        self.offset + HEADER_SIZE + i * ENTRY_SIZE
    }

    /// Checks a live entry against `T` and resolves its object.
    fn resolve<T: SegmentObject>(
        &self,
        i: u64,
        name: &[u8],
    ) -> Result<Named<'_, T>, DirectoryError> {
        let e = self.entry(i);
        let stored = e.type_info();
        let requested = TypeInfo::of::<T>();
        if !stored.matches(&requested) {
            return Err(DirectoryError::TypeMismatch {
                name: show(name),
                stored: Box::new(stored),
                requested: Box::new(requested),
            });
        }
        let offset = e.object.load(Relaxed);
        let usable = self.heap.usable_size(offset).map_err(|err| match err {
            HeapError::NotAllocated { .. } => corrupt(
                self.entry_offset(i),
                "entry points to memory that is not allocated",
            ),
            other => other.into(),
        })?;
        if usable < size_of::<T>() as u64 {
            return Err(corrupt(
                self.entry_offset(i),
                "entry's object is smaller than its type",
            ));
        }
        let ptr = self
            .heap
            .region()
            .resolve_as::<T>(offset)
            .map_err(|_| corrupt(self.entry_offset(i), "entry's object is misaligned"))?;
        Ok(Named {
            ptr,
            offset,
            _dir: PhantomData,
        })
    }

    fn insert<T: SegmentObject>(
        &self,
        slot: Option<u64>,
        name: &[u8],
        value: T,
    ) -> Result<Named<'_, T>, DirectoryError> {
        const {
            assert!(
                !core::mem::needs_drop::<T>(),
                "segment objects have no drop glue"
            )
        };
        let i = slot.ok_or(DirectoryError::Full {
            capacity: self.capacity,
        })?;
        let info = TypeInfo::of::<T>();
        if info.align > MAX_ALIGN {
            return Err(DirectoryError::Unsupported { align: info.align });
        }
        let offset = self.heap.alloc(info.size, info.align)?;
        let ptr = self
            .heap
            .region()
            .resolve_as::<T>(offset)
            .map_err(HeapError::from)?;
        // SAFETY: a fresh allocation of at least size_of::<T>() bytes, aligned for T,
        // not yet visible to anyone else.
        unsafe { ptr.as_ptr().write(value) };
        let e = self.entry(i);
        e.lens
            .store(name.len() as u64 | (info.name.len() as u64) << 32, Relaxed);
        store_bytes(&e.name, name);
        store_bytes(&e.type_name, info.name.as_bytes());
        e.type_hash.store(info.hash, Relaxed);
        e.version.store(info.version.into(), Relaxed);
        e.size.store(info.size, Relaxed);
        e.align.store(info.align, Relaxed);
        e.object.store(offset, Relaxed);
        // Publish: one store makes the complete entry visible.
        e.state.store(LIVE, Release);
        Ok(Named {
            ptr,
            offset,
            _dir: PhantomData,
        })
    }

    /// Creates the object `name` holding `value`; fails if the name is taken.
    pub fn construct<T: SegmentObject>(
        &self,
        name: impl AsRef<[u8]>,
        value: T,
    ) -> Result<Named<'_, T>, DirectoryError> {
        let name = name.as_ref();
        check_name(name)?;
        let _g = self.lock()?;
        match self.probe(name)? {
            Ok(_) => Err(DirectoryError::AlreadyExists { name: show(name) }),
            Err(slot) => self.insert(slot, name, value),
        }
    }

    /// Finds the object `name`, which must have been created as a `T`.
    pub fn find<T: SegmentObject>(
        &self,
        name: impl AsRef<[u8]>,
    ) -> Result<Named<'_, T>, DirectoryError> {
        let name = name.as_ref();
        check_name(name)?;
        let _g = self.lock()?;
        match self.probe(name)? {
            Ok(i) => self.resolve(i, name),
            Err(_) => Err(DirectoryError::NotFound { name: show(name) }),
        }
    }

    /// Finds the object `name`, or creates it from `make()` if there is none (atomically:
    /// of several processes racing, one constructs and the others find).
    pub fn find_or_construct<T: SegmentObject>(
        &self,
        name: impl AsRef<[u8]>,
        make: impl FnOnce() -> T,
    ) -> Result<Named<'_, T>, DirectoryError> {
        let name = name.as_ref();
        check_name(name)?;
        let _g = self.lock()?;
        match self.probe(name)? {
            Ok(i) => self.resolve(i, name),
            Err(slot) => self.insert(slot, name, make()),
        }
    }

    /// Removes the object `name` and frees its memory.
    ///
    /// # Safety
    /// No process may use the object (through a [`Named`] or its offset) afterwards: its
    /// memory is handed to later allocations.
    pub unsafe fn remove(&self, name: impl AsRef<[u8]>) -> Result<(), DirectoryError> {
        let name = name.as_ref();
        check_name(name)?;
        let _g = self.lock()?;
        let i = match self.probe(name)? {
            Ok(i) => i,
            Err(_) => return Err(DirectoryError::NotFound { name: show(name) }),
        };
        let e = self.entry(i);
        // Retire first: a process dying before the free leaks the object, never leaves an
        // entry pointing to freed memory.
        e.state.store(TOMBSTONE, Release);
        self.heap.free(e.object.load(Relaxed))?;
        Ok(())
    }

    /// The live entries (for inspection tools).
    pub fn entries(&self) -> Result<Vec<EntryInfo>, DirectoryError> {
        let _g = self.lock()?;
        let mut out = Vec::new();
        for i in 0..self.capacity {
            let e = self.entry(i);
            if e.state.load(Acquire) == LIVE {
                let len = e
                    .name_len()
                    .map_err(|()| corrupt(self.entry_offset(i), "entry name length is invalid"))?;
                out.push(EntryInfo {
                    name: load_bytes(&e.name, len),
                    type_info: e.type_info(),
                    offset: e.object.load(Relaxed),
                });
            }
        }
        Ok(out)
    }

    /// Checks every entry (states, names, unique names, type records, that each object is
    /// a live allocation big and aligned enough) and returns the number of live entries.
    pub fn verify(&self) -> Result<u64, DirectoryError> {
        let _g = self.lock()?;
        let mut names = std::collections::HashSet::new();
        for i in 0..self.capacity {
            let e = self.entry(i);
            let at = self.entry_offset(i);
            match e.state.load(Acquire) {
                EMPTY | TOMBSTONE => continue,
                LIVE => {}
                _ => return Err(corrupt(at, "entry state is invalid")),
            }
            let len = e
                .name_len()
                .map_err(|()| corrupt(at, "entry name length is invalid"))?;
            let name = load_bytes(&e.name, len);
            if (e.lens.load(Relaxed) >> 32) as usize > MAX_TYPE_NAME_LEN {
                return Err(corrupt(at, "entry type name length is invalid"));
            }
            let info = e.type_info();
            if !info.align.is_power_of_two()
                || info.align > MAX_ALIGN
                || info.version as u64 != e.version.load(Relaxed)
            {
                return Err(corrupt(at, "entry type record is invalid"));
            }
            let object = e.object.load(Relaxed);
            if !object.is_multiple_of(info.align) {
                return Err(corrupt(at, "entry's object is misaligned"));
            }
            match self.heap.usable_size(object) {
                Ok(usable) if usable >= info.size => {}
                Ok(_) => return Err(corrupt(at, "entry's object is smaller than its type")),
                Err(HeapError::NotAllocated { .. }) => {
                    return Err(corrupt(at, "entry points to memory that is not allocated"));
                }
                Err(other) => return Err(other.into()),
            }
            // The probe from the name's hash must reach this entry, or find() misses it.
            if self.probe(&name)? != Ok(i) {
                return Err(corrupt(
                    at,
                    "entry is unreachable or its name is duplicated",
                ));
            }
            if !names.insert(name) {
                return Err(corrupt(at, "two entries share a name"));
            }
        }
        Ok(names.len() as u64)
    }
}
