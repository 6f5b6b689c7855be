//! The in-segment allocator: serves `alloc(size, align)` / `free(offset)` inside a
//! segment, to any process at any mapping address, storing only offsets.
//!
//! # Layout
//!
//! A [`HeapControl`] (5312 bytes, 64-aligned, documented field by field) sits at the heap
//! offset; the arena `[arena_start, arena_end)` is a chain of blocks. Every block starts
//! with a 16-byte header, so payloads are 16-aligned:
//!
//! | offset in block | word | meaning |
//! |---|---|---|
//! | 0 | size word | bits 0..4 flags (bit 0 = allocated, bit 1 = owned: the payload starts with an owner record, bit 2 = cached: held by a per-process cache; see below), bits 4..48 the block size (a multiple of 16, header included), bits 48..64 a check tag over the block's offset and the rest of the word |
//! | 8 | previous size | the size of the block before it (0 for the first): the boundary tag used to coalesce backwards |
//! | 16, 24 | next, prev | free blocks only: offsets of the neighbours in their bin's list (0 = none) |
//!
//! The last 16 bytes of the arena are the end sentinel: an allocated block of size 0.
//!
//! # Bins
//!
//! Free blocks below 1 KiB live in 62 exact-size bins (one size each, so the first block of
//! the lowest non-empty bin that is big enough is the best fit). Larger blocks live in
//! segregated bins, eight per power of two (TLSF geometry), found through two levels of
//! bitmaps; the allocator scans the request's own bin for the smallest block that fits,
//! else takes the smallest block of the next non-empty bin. Splits leave the tail free;
//! `free` coalesces with both neighbours through the boundary tags.
//!
//! # Kill safety: the update order
//!
//! Only the *block chain* (the size words, walked from `arena_start` to the sentinel) is
//! authoritative. The boundary tags, free lists, bitmaps, counters and `arena_end` are
//! derived: after a process dies holding the heap lock ([`relshm_sync::Acquired::OwnerDied`])
//! the next locker sets `needs_repair` in the control block, marks the lock consistent, and
//! rebuilds them from the chain (merging adjacent free blocks); every locker retries the
//! rebuild while `needs_repair` is set, so a process that cannot repair (its mapping is
//! too small, or the chain is corrupted) reports an error without bricking the lock. Every change to the chain is one aligned 8-byte store, made
//! after everything it publishes is written:
//!
//! 1. **split** (alloc): write the tail's header inside the block's payload (invisible to
//!    a walk), then shrink the block and mark it allocated in one store;
//! 2. **leading gap** (over-aligned alloc): write the aligned block's header inside the
//!    payload, then shrink the original block to the gap in one store;
//! 3. **free**: mark the block free and swallow a free successor in one store, then let a
//!    free predecessor swallow it in one store;
//! 4. **extend**: write the new end sentinel past the old one, then turn the old sentinel
//!    into a free block reaching it in one store, then update `arena_end`.
//!
//! A process killed between any two stores leaves a walkable chain; the worst outcome is a
//! block that its dead allocator never received (a leak, visible in [`Heap::allocations`]),
//! never a block that is both free and handed out.
//!
//! # Owned allocations: no leak when the allocating process dies
//!
//! A plain [`Heap::alloc`] hands its offset to the caller's process memory; a process
//! killed before it stores that offset anywhere in the segment leaks the block for good.
//! [`Heap::alloc_owned`] closes that window in the allocator itself: the block's first 16
//! payload bytes are an **owner record** `[owner, ident]`, written into the block while it
//! is still free on the chain, and published together with the block by the same single
//! store that marks it allocated (size-word flag bit 1, "owned"). There is no instant at
//! which the block is allocated without its record. `free` drops the flag in its own
//! publishing store, so a freed or reused block never carries a stale record.
//!
//! - `owner` says who may free the block and changes as ownership moves. Bits 62..64 are
//!   its kind: 0 = no automatic owner (the application keeps the offset somewhere),
//!   [`OWNER_PROCESS`] = the process `(pid, start time)` packed by [`process_owner`]; kinds
//!   2 and 3 belong to the layer above (a queue uses one for "queued at position p").
//!   Whoever owns the block may rewrite `owner` with plain atomics to hand it on.
//! - `ident` never changes while the block lives: what the block is (a queue's large
//!   message, a port connection...), so a reclaimer knows what it looks at.
//! - [`Heap::reclaim_dead_owners`] frees every block owned by a process that no longer
//!   exists; [`Heap::free_owned`] and [`Heap::transfer`] compare the record under the heap
//!   lock, so a reclaimer never frees or takes over a block that was freed and reused
//!   since it looked (the heap lock orders it against every free and alloc).
//!
//! Why a record in the block rather than an intent word in the caller's record: the block
//! is then self-describing (a reclaim pass needs no knowledge of where callers keep
//! offsets), the record dies with the block, and the fast path costs two stores, made
//! under the lock the allocation takes anyway, in place of the caller's own header
//! stores. This is LMDB's reader-table idea (a slot names its `(pid, start)` owner and a
//! stale-reader check frees what dead owners held) applied per block, and iceoryx2's
//! "dead node cleanup" without a separate registry.
//!
//! # Per-process caches
//!
//! A handle made with [`Heap::with_cache`] (every [`crate::Segment::heap`] handle, with
//! the mapping's attach slot) serves requests of up to 256 bytes aligned to at most 16
//! from its slot's cache, without the heap lock: one stack of blocks per size class, in
//! the segment, behind a slot lock that only the owning process's threads take (so its
//! death never leaves it held for anyone else). Frees of small blocks go to the freeing
//! process's cache (so a block allocated by another process is freed like any other); a
//! stack beyond its bound (about 2 KiB) drains half of it to the heap, an empty one
//! refills with a batch under one heap lock.
//!
//! Cached blocks stay allocated on the block chain, marked "cached" (size-word flag bit
//! 2), with the owning process's word in the payload's second 8 bytes, written before the
//! store that marks the block cached. They are not live allocations
//! ([`Heap::allocations`] skips them; [`Heap::cached`] lists them), [`HeapStats`] counts
//! them as `cached_bytes`, and [`Heap::verify`] accounts for every one. When a process
//! dies, whatever its cache held names it; [`Heap::reclaim_dead_owners`], the repair
//! after a dead lock holder, and the next process to claim its slot free those blocks.
//! The protocol is in `cache.rs`; `tests/loom_cache.rs` models it.

mod cache;
mod layout;
mod ops;

use core::ptr::NonNull;
use core::sync::atomic::AtomicU64;
use core::sync::atomic::Ordering::{AcqRel, Acquire, Relaxed, Release};
use core::time::Duration;

use relshm_sync::{Held, LockError};

pub use cache::{MIN_ARENA as CACHE_MIN_ARENA, SLOTS as CACHE_SLOTS};
/// Bytes of a block header (and of the arena's end sentinel).
pub(crate) use layout::HEADER as BLOCK_HEADER;
use layout::{HEADER, encode, layout_word};
pub use layout::{HEAP_CONTROL_SIZE, HEAP_MAGIC, HEAP_VERSION, HeapControl, MAX_ALIGN};
/// Test hook (debug builds): the process `_exit(77)`s before the allocator's `n`-th store
/// (kill points of the layers above, [`kill_point`], count as stores).
#[cfg(debug_assertions)]
#[doc(hidden)]
pub use ops::fault::exit_before_store;
/// Test hook: a point where a test may make the process die (see `exit_before_store`);
/// the layers above mark their kill points with it. A no-op in release builds.
#[doc(hidden)]
pub use ops::fault::point as kill_point;
use ops::{Core, Record, check_arena};

use crate::{Region, RegionError};

/// Bytes of an owned allocation's owner record `[owner, ident]` (the payload's start).
pub const OWNER_RECORD: u64 = 16;
/// Bits 62..64 of an owner word: its kind.
pub const OWNER_KIND_SHIFT: u32 = 62;
/// Owner kind: the process `(pid, start time)` packed by [`process_owner`].
pub const OWNER_PROCESS: u64 = 1;
/// Bits of the start time kept in a process owner word (2^40 clock ticks: 348 years at
/// 100 Hz).
const START_BITS: u32 = 40;
const PID_BITS: u32 = 22;

/// The owner word naming the process `pid` started at `start` (`/proc/<pid>/stat` field
/// 22): pid in bits 0..22 (Linux pids stay below 2^22), the start time's low 40 bits in
/// 22..62, kind [`OWNER_PROCESS`].
pub fn process_owner(pid: u32, start: u64) -> u64 {
    (OWNER_PROCESS << OWNER_KIND_SHIFT)
        | ((start & ((1 << START_BITS) - 1)) << PID_BITS)
        | (u64::from(pid) & ((1 << PID_BITS) - 1))
}

/// The owner word naming the calling process.
pub fn own_process_owner() -> u64 {
    process_owner(
        relshm_sync::process::process_id(),
        crate::procstat::own_start_time(),
    )
}

/// The `(pid, start time low bits)` of a process owner word; `None` for other kinds.
pub fn owner_process(word: u64) -> Option<(u32, u64)> {
    (word >> OWNER_KIND_SHIFT == OWNER_PROCESS).then_some((
        (word & ((1 << PID_BITS) - 1)) as u32,
        (word >> PID_BITS) & ((1 << START_BITS) - 1),
    ))
}

/// Whether the process `(pid, start time low bits)` of a process owner word (see
/// [`owner_process`]) may still run: `false` only when `/proc` proves it gone (see
/// [`procstat::is_gone`](crate::procstat::is_gone)); the caller's own always runs.
pub fn process_alive(pid: u32, start: u64) -> bool {
    if pid == relshm_sync::process::process_id() {
        return true;
    }
    !crate::procstat::is_gone(pid, |t| t & ((1 << START_BITS) - 1) == start)
}

/// What went wrong in the allocator.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HeapError {
    /// No free block is large enough.
    #[error(
        "out of memory: {size} bytes aligned to {align} need a free block with {needed} bytes \
         of payload (the slack to align it included), and the largest free block has \
         {largest_free}; free something, or give the segment room to grow \
         (CreateOptions::max_size: allocations then grow it)"
    )]
    OutOfMemory {
        /// Requested size.
        size: u64,
        /// Requested alignment.
        align: u64,
        /// The payload a free block must have to serve the request: the size rounded up
        /// to the allocator's grain, plus the slack an alignment above 16 may cost.
        needed: u64,
        /// Largest payload that could be allocated (with alignment up to 16).
        largest_free: u64,
    },
    /// The request itself is invalid.
    #[error(
        "invalid request of {size} bytes aligned to {align}: the alignment must be a power of \
         two up to 4096 and the size below 2^48"
    )]
    BadRequest {
        /// Requested size.
        size: u64,
        /// Requested alignment.
        align: u64,
    },
    /// `free` (or a lookup) got an offset that is not the start of a live allocation.
    #[error(
        "offset {offset:#x} is not a live allocation of this heap (double free, or an offset \
         from elsewhere)"
    )]
    NotAllocated {
        /// The offending offset.
        offset: u64,
    },
    /// The control block does not describe a heap this code can use.
    #[error("heap control block is invalid: {what}; the segment is corrupted or not a relshm heap")]
    BadControl {
        /// What is wrong.
        what: &'static str,
    },
    /// Heap metadata in the arena is inconsistent.
    #[error(
        "heap is corrupted at offset {offset:#x}: {what}; run verify() to see the extent, \
         restore the segment from a copy"
    )]
    Corrupted {
        /// Where the inconsistency was found.
        offset: u64,
        /// What is inconsistent.
        what: &'static str,
    },
    /// The arena reaches past this process's mapping.
    #[error(
        "the heap reaches offset {end:#x} but only {mapped} bytes are mapped here: the \
         segment grew, re-attach the heap through a refreshed mapping"
    )]
    Unmapped {
        /// Arena end.
        end: u64,
        /// Bytes mapped in this process.
        mapped: u64,
    },
    /// `extend` was given an unusable end.
    #[error("cannot extend the heap from {end:#x} to {new_end:#x}: {what}")]
    BadExtend {
        /// Requested new end.
        new_end: u64,
        /// Current end.
        end: u64,
        /// Why not.
        what: &'static str,
    },
    /// The heap lock could not be taken.
    #[error("heap lock: {0}")]
    Lock(#[from] LockError),
    /// An offset did not resolve inside the mapping.
    #[error(transparent)]
    Region(#[from] RegionError),
}

/// A snapshot of the allocator's counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct HeapStats {
    /// Bytes in the arena (headers and the end sentinel included).
    pub arena_bytes: u64,
    /// Bytes in allocated blocks, headers included (blocks held by per-process caches
    /// are not counted here but in `cached_bytes`).
    pub used_bytes: u64,
    /// Number of live allocations.
    pub used_blocks: u64,
    /// Bytes in blocks held by per-process caches, and their bookkeeping, headers
    /// included (see the module docs, "Per-process caches").
    pub cached_bytes: u64,
    /// Number of blocks held by per-process caches (bookkeeping included).
    pub cached_blocks: u64,
    /// Bytes in free blocks, headers included.
    pub free_bytes: u64,
    /// Number of free blocks.
    pub free_blocks: u64,
    /// Largest payload one `alloc` with alignment up to 16 can get right now.
    pub largest_free: u64,
    /// How many times a dead lock holder's half-done work was repaired.
    pub repairs: u64,
}

/// A handle on an allocator that lives in a segment.
///
/// `Heap` is a view: it holds the [`Region`] and the control block's offset, and each
/// operation takes the in-segment robust lock, so any number of handles in any number of
/// processes can use one heap at once.
///
/// ```
/// # use relshm_segment::{Region, heap::{Heap, HEAP_CONTROL_SIZE}};
/// # use core::ptr::NonNull;
/// let layout = std::alloc::Layout::from_size_align(1 << 16, 4096).unwrap();
/// // SAFETY: a fresh allocation, freed at the end and used only through the region.
/// let base = unsafe { std::alloc::alloc_zeroed(layout) };
/// // SAFETY: the allocation is 64 KiB, page-aligned, writable and outlives the heap.
/// let region = unsafe { Region::new(NonNull::new(base).unwrap(), 1 << 16) };
/// // SAFETY: nobody else uses these bytes.
/// let heap = unsafe { Heap::init(region, 0, HEAP_CONTROL_SIZE, 1 << 16) }.unwrap();
/// let a = heap.alloc(100, 8).unwrap();
/// let b = heap.alloc(5000, 64).unwrap();
/// assert_eq!(b % 64, 0);
/// assert_eq!(heap.verify().unwrap().used_blocks, 2);
/// heap.free(a).unwrap();
/// heap.free(b).unwrap();
/// assert_eq!(heap.verify().unwrap().free_blocks, 1);
/// # drop(heap);
/// # unsafe { std::alloc::dealloc(base, layout) };
/// ```
#[derive(Debug, Clone)]
pub struct Heap {
    region: Region,
    offset: u64,
    ctl: NonNull<HeapControl>,
    lock_timeout: Option<Duration>,
    /// The cache slot this handle uses, once claimed.
    cache: std::sync::OnceLock<cache::Slot>,
    /// A slot to claim on the first small allocation (a segment's handles: claiming takes
    /// the heap lock, which `Segment::heap` must not, so inspection sees locks as they are).
    pending: Option<u32>,
}

// SAFETY: Heap only names shared memory, which every thread may access; all access to the
// control block and the arena goes through atomics under the in-segment lock.
unsafe impl Send for Heap {}
// SAFETY: as for Send.
unsafe impl Sync for Heap {}

impl Heap {
    /// Formats a new, empty heap: the control block at `heap_offset` (64-aligned), the
    /// arena `[arena_start, arena_end)` (16-aligned, not overlapping the control block).
    ///
    /// # Safety
    /// `region` must be writable, and no other process or thread may use the bytes of the
    /// control block or the arena until `init` returns.
    pub unsafe fn init(
        region: Region,
        heap_offset: u64,
        arena_start: u64,
        arena_end: u64,
    ) -> Result<Heap, HeapError> {
        let ctl_ptr = region.resolve_as::<HeapControl>(heap_offset)?;
        check_arena(&region, heap_offset, arena_start, arena_end)?;
        // SAFETY: resolve_as checked bounds and alignment; the caller guarantees exclusive
        // access, and the all-zero HeapControl is an unlocked lock and empty bins.
        unsafe { ctl_ptr.as_ptr().write_bytes(0, 1) };
        let heap = Heap {
            region,
            offset: heap_offset,
            ctl: ctl_ptr,
            lock_timeout: None,
            cache: std::sync::OnceLock::new(),
            pending: None,
        };
        let ctl = heap.control();
        let first = arena_start;
        let sentinel = arena_end - HEADER;
        let size = sentinel - first;
        for (off, word) in [
            (first, encode(first, size, false)),
            (first + 8, 0),
            (sentinel, encode(sentinel, 0, true)),
            (sentinel + 8, size),
        ] {
            let p = region.resolve(off, 8, 8)?;
            // SAFETY: resolved inside the arena, 8-aligned; exclusive access per the contract.
            unsafe { p.as_ptr().cast::<u64>().write(word) };
        }
        ctl.arena_start.store(arena_start, Relaxed);
        ctl.arena_end.store(arena_end, Relaxed);
        ctl.layout.store(layout_word(), Relaxed);
        // Bins and counters are derived: let the repair walk compute them.
        Core::rebuild(&heap.region, ctl, heap_offset)?;
        ctl.repairs.store(0, Relaxed);
        ctl.magic.store(HEAP_MAGIC, Release);
        Ok(heap)
    }

    /// Attaches to the heap whose control block is at `heap_offset`, validating it.
    ///
    /// # Safety
    /// `region` must be writable (the allocator writes on every operation), and the heap's
    /// bytes must be accessed only through `Heap` handles and the payloads it hands out.
    pub unsafe fn attach(region: Region, heap_offset: u64) -> Result<Heap, HeapError> {
        let ctl_ptr = region.resolve_as::<HeapControl>(heap_offset)?;
        let heap = Heap {
            region,
            offset: heap_offset,
            ctl: ctl_ptr,
            lock_timeout: None,
            cache: std::sync::OnceLock::new(),
            pending: None,
        };
        let ctl = heap.control();
        if ctl.magic.load(Relaxed) != HEAP_MAGIC {
            return Err(HeapError::BadControl {
                what: "wrong magic number",
            });
        }
        if ctl.layout.load(Relaxed) != layout_word() {
            return Err(HeapError::BadControl {
                what: "unsupported heap layout version",
            });
        }
        Core::new(&heap.region, ctl, heap_offset)?;
        Ok(heap)
    }

    /// Bounds how long operations wait for the heap lock (`None`, the default, waits
    /// forever). Use a bound on segments you do not trust: a corrupted lock word looks
    /// like a lock held forever.
    pub fn with_lock_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.lock_timeout = timeout;
        self
    }

    /// The region this handle resolves offsets in.
    pub fn region(&self) -> Region {
        self.region
    }

    /// Whether the arena lies inside this handle's region: a handle made before another
    /// process grew the segment and extended the heap does not cover the new blocks.
    #[inline]
    pub(crate) fn covers_arena(&self) -> bool {
        self.control().arena_end.load(Relaxed) <= self.region.len()
    }

    /// The offset of the control block.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// The control block's directory slot (see [`crate::directory`]).
    pub(crate) fn directory_slot(&self) -> &core::sync::atomic::AtomicU64 {
        &self.control().directory
    }

    /// How long operations wait for in-segment locks (`None` = forever).
    pub fn lock_timeout(&self) -> Option<Duration> {
        self.lock_timeout
    }

    /// The heap's robust lock, for inspection tools that report its state (owner,
    /// owner died, not recoverable) without taking it. Locking it directly bypasses the
    /// heap's repair step: use it only to read the state.
    pub fn raw_lock(&self) -> &relshm_sync::RawMutex {
        &self.control().lock
    }

    fn control(&self) -> &HeapControl {
        // SAFETY: resolved and checked in init/attach; the region stays mapped for the
        // handle's life (the constructors' contract) and every bit pattern is a valid
        // HeapControl (all atomics, and RawMutex treats any word as a state).
        unsafe { self.ctl.as_ref() }
    }

    /// Takes the lock, repairing the heap first if its previous holder died.
    fn lock(&self) -> Result<(Held<'_>, Core<'_>), HeapError> {
        let ctl = self.control();
        let guard = Held::mutex(&ctl.lock, self.lock_timeout, || {
            // The repair after a holder's death only records the debt in the segment, so
            // that the lock is made usable again at once: a process that cannot repair
            // (say, its mapping predates a growth) must not leave the lock permanently
            // unrecoverable for one that can. The rebuild below pays the debt.
            ctl.needs_repair.store(1, Relaxed);
            Ok::<(), HeapError>(())
        })?;
        if ctl.needs_repair.load(Relaxed) != 0 {
            Core::rebuild(&self.region, ctl, self.offset)?;
            ctl.needs_repair.store(0, Relaxed);
        }
        let core = Core::new(&self.region, ctl, self.offset)?;
        Ok((guard, core))
    }

    /// Allocates `size` bytes aligned to `align` (a power of two up to [`MAX_ALIGN`]) and
    /// returns the payload's offset from the segment start.
    pub fn alloc(&self, size: u64, align: u64) -> Result<u64, HeapError> {
        if let Some(&slot) = self.cache.get().filter(|s| s.usable()) {
            if let Some(need) = cache::cacheable(size, align) {
                match cache::alloc(self, &slot, need) {
                    Some(Err(HeapError::OutOfMemory { .. })) | None => {}
                    Some(r) => return r,
                }
            }
            return match self.alloc_global(size, align) {
                Err(HeapError::OutOfMemory { .. }) => {
                    // What this process's cache holds may be what the request needs.
                    cache::drain(self, &slot, None)?;
                    self.alloc_global(size, align)
                }
                r => r,
            };
        }
        if let Some(slot) = self.pending
            && cache::cacheable(size, align).is_some()
        {
            // Claim the slot under the lock this allocation takes anyway.
            let (owner, fork) = (own_process_owner(), cache::fork_gen());
            let (_g, core) = self.lock()?;
            if cache::claim(&core, slot as usize, owner)?.is_some()
                && let Some(s) = cache::check(self, slot as usize, owner, fork)
            {
                let _ = self.cache.set(s);
            }
            return core.alloc(size, align, Record::Plain);
        }
        self.alloc_global(size, align)
    }

    /// This handle with cache slot `slot`, claimed on its first small allocation (or
    /// found already claimed by this process, without a lock).
    pub(crate) fn with_lazy_cache(mut self, slot: u32) -> Self {
        let (owner, fork) = (own_process_owner(), cache::fork_gen());
        if let Some(s) = cache::check(&self, slot as usize, owner, fork) {
            self.cache = s.into();
        } else if self.arena_len() >= CACHE_MIN_ARENA {
            self.pending = Some(slot);
        }
        self
    }

    /// This handle with the cache slot `prev` (a handle of the same mapping, made before
    /// it grew) claimed, or with `slot` to claim lazily if it claimed none.
    pub(crate) fn with_cache_of(mut self, prev: &Heap, slot: u32) -> Self {
        match prev.cache.get().filter(|s| s.usable()) {
            Some(&s) => {
                self.cache = s.into();
                self
            }
            None => self.with_lazy_cache(slot),
        }
    }

    fn arena_len(&self) -> u64 {
        let ctl = self.control();
        ctl.arena_end
            .load(Relaxed)
            .wrapping_sub(ctl.arena_start.load(Relaxed))
    }

    fn alloc_global(&self, size: u64, align: u64) -> Result<u64, HeapError> {
        let (_g, core) = self.lock()?;
        core.alloc(size, align, Record::Plain)
    }

    /// This handle with a per-process cache in cache slot `slot` (below [`CACHE_SLOTS`];
    /// a segment's handles use their mapping's attach slot): small requests are then
    /// served without the heap lock (see the module docs, "Per-process caches"). Takes
    /// the heap lock the first time a process claims the slot. The handle stays without a
    /// cache when the slot is in use by another live process, the arena is smaller than
    /// [`CACHE_MIN_ARENA`], or there is no room for the cache's bookkeeping.
    ///
    /// Every handle with a cache must be dropped before its region is unmapped, and a
    /// process that stops using a slot while it lives calls
    /// [`release_cache`](Self::release_cache).
    pub fn with_cache(mut self, slot: u32) -> Result<Self, HeapError> {
        let (owner, fork) = (own_process_owner(), cache::fork_gen());
        let slot = slot as usize;
        self.pending = None;
        self.cache = std::sync::OnceLock::new();
        let mut found = cache::check(&self, slot, owner, fork);
        // Without the lock when there is nothing to claim: a small heap has no caches.
        if found.is_none() && self.arena_len() >= CACHE_MIN_ARENA {
            let claimed = {
                let (_g, core) = self.lock()?;
                cache::claim(&core, slot, owner)?.is_some()
            };
            if claimed {
                found = cache::check(&self, slot, owner, fork);
            }
        }
        if let Some(s) = found {
            self.cache = s.into();
        }
        Ok(self)
    }

    /// Whether this handle serves small requests from a per-process cache.
    pub fn has_cache(&self) -> bool {
        self.cache.get().is_some_and(|s| s.usable())
    }

    /// Returns everything this handle's cache holds to the heap and gives up its slot
    /// (for the next process that maps the segment at that slot); the handle goes on
    /// without a cache. A [`crate::Segment`] does this when its last clone is dropped.
    pub fn release_cache(&mut self) -> Result<(), HeapError> {
        self.pending = None;
        if let Some(slot) = self.cache.take().filter(cache::Slot::usable) {
            cache::release(self, &slot)?;
        }
        Ok(())
    }

    /// Releases cache slot `slot` if the calling process holds it (see
    /// [`release_cache`](Self::release_cache)).
    pub(crate) fn release_slot(&self, slot: u32) -> Result<(), HeapError> {
        let (owner, fork) = (own_process_owner(), cache::fork_gen());
        match cache::check(self, slot as usize, owner, fork) {
            Some(s) => cache::release(self, &s),
            None => Ok(()),
        }
    }

    /// Returns everything this handle's cache holds to the heap, keeping the slot.
    pub fn flush_cache(&self) -> Result<(), HeapError> {
        if let Some(&slot) = self.cache.get().filter(|s| s.usable()) {
            cache::drain(self, &slot, None)?;
        }
        Ok(())
    }

    /// Every block held by a per-process cache, or by the caches' bookkeeping:
    /// `(offset, owner)` in address order, `owner` the holding process's word (see
    /// [`owner_process`]; 0 for bookkeeping).
    pub fn cached(&self) -> Result<Vec<(u64, u64)>, HeapError> {
        let (_g, core) = self.lock()?;
        Ok(core
            .cached_blocks()?
            .into_iter()
            .map(|(p, _, who)| (p, who))
            .collect())
    }

    /// Takes back what the caches of processes that no longer run held (see the module
    /// docs, "Per-process caches"); returns how many blocks.
    pub fn reclaim_dead_caches(&self) -> Result<u64, HeapError> {
        let (_g, core) = self.lock()?;
        cache::reclaim_dead(&core)
    }

    /// Allocates like [`alloc`](Self::alloc) a block whose first 16 payload bytes are the
    /// owner record `[owner, ident]` (see the module docs), published with the block: a
    /// process killed at any instant of the call either has no block or has one that
    /// carries the record. `size` counts the record (at least 16 bytes are allocated).
    pub fn alloc_owned(&self, size: u64, align: u64, owner: [u64; 2]) -> Result<u64, HeapError> {
        let (_g, core) = self.lock()?;
        core.alloc(size.max(OWNER_RECORD), align, Record::Owned(owner))
    }

    /// The owner word of the live owned allocation at `offset`, for its owner to read and
    /// update with atomics (to hand the block on). `None` if `offset` is not a live
    /// allocation with an owner record.
    ///
    /// The reference stays valid only while the caller owns the block (or otherwise knows
    /// it stays allocated): once freed, the bytes belong to the heap again.
    pub fn owner_word(&self, offset: u64) -> Result<Option<&AtomicU64>, HeapError> {
        let (_g, core) = self.lock()?;
        Ok(core.owner_words(offset)?.map(|[w, _]| w))
    }

    /// Every live owned allocation: `(offset, [owner, ident])` as they were at the call, in
    /// address order.
    pub fn owned_allocations(&self) -> Result<Vec<(u64, [u64; 2])>, HeapError> {
        let (_g, core) = self.lock()?;
        core.owned()
    }

    /// Frees the owned allocation at `offset` if its record still reads `expected`
    /// (`[owner, ident]`), checked and freed under the heap lock; `Ok(false)` if it does
    /// not (someone took it over or freed it meanwhile, or it is not an owned block).
    pub fn free_owned(&self, offset: u64, expected: [u64; 2]) -> Result<bool, HeapError> {
        let (_g, core) = self.lock()?;
        if !Self::swap_owner(&core, offset, expected, 0)? {
            return Ok(false);
        }
        core.free(offset)?;
        Ok(true)
    }

    /// Hands the owned allocation at `offset` to `owner` if its record still reads
    /// `expected`, under the heap lock (so a block freed and reused since the caller looked
    /// is never taken); `Ok(false)` if it does not.
    pub fn transfer(&self, offset: u64, expected: [u64; 2], owner: u64) -> Result<bool, HeapError> {
        let (_g, core) = self.lock()?;
        Self::swap_owner(&core, offset, expected, owner)
    }

    fn swap_owner(
        core: &Core<'_>,
        offset: u64,
        expected: [u64; 2],
        owner: u64,
    ) -> Result<bool, HeapError> {
        let Some([who, ident]) = core.owner_words(offset)? else {
            return Ok(false);
        };
        Ok(ident.load(Acquire) == expected[1]
            && who
                .compare_exchange(expected[0], owner, AcqRel, Acquire)
                .is_ok())
    }

    /// Frees every owned allocation whose owner is a process that no longer runs (killed
    /// after allocating, or while holding the block); returns how many. Safe at any time:
    /// each block is re-checked and freed under the heap lock.
    ///
    /// It also takes back what dead processes' caches held (not counted in the result).
    pub fn reclaim_dead_owners(&self) -> Result<u64, HeapError> {
        self.reclaim_dead_caches()?;
        let mut freed = 0;
        for (off, words) in self.owned_allocations()? {
            if let Some((pid, start)) = owner_process(words[0])
                && !process_alive(pid, start)
                && self.free_owned(off, words)?
            {
                freed += 1;
            }
        }
        Ok(freed)
    }

    /// Frees the allocation at `offset` (as returned by [`alloc`](Self::alloc)). Offsets
    /// that are not live allocations are refused with [`HeapError::NotAllocated`].
    pub fn free(&self, offset: u64) -> Result<(), HeapError> {
        if let Some(&slot) = self.cache.get().filter(|s| s.usable())
            && let Some(r) = cache::free(self, &slot, offset)
        {
            return r;
        }
        let (_g, core) = self.lock()?;
        core.free(offset)
    }

    /// The usable bytes of the live allocation at `offset` (at least what was requested).
    pub fn usable_size(&self, offset: u64) -> Result<u64, HeapError> {
        let (_g, core) = self.lock()?;
        core.allocated(offset).map(|(_, size)| size - HEADER)
    }

    /// Adds `[arena_end, new_end)` to the arena, after the segment grew and this
    /// handle's region maps `new_end`.
    pub fn extend(&self, new_end: u64) -> Result<(), HeapError> {
        let (_g, core) = self.lock()?;
        core.extend(new_end)
    }

    /// The counters (used, free, largest free block, block counts).
    pub fn stats(&self) -> Result<HeapStats, HeapError> {
        let (_g, core) = self.lock()?;
        core.stats()
    }

    /// Checks every invariant of the heap and returns its counters.
    pub fn verify(&self) -> Result<HeapStats, HeapError> {
        let (_g, core) = self.lock()?;
        core.verify()
    }

    /// Rebuilds all derived metadata from the block chain, as after an owner's death
    /// (useful after a [`HeapError::Corrupted`] in the bins).
    pub fn repair(&self) -> Result<HeapStats, HeapError> {
        let (_g, _) = self.lock()?;
        let ctl = self.control();
        Core::rebuild(&self.region, ctl, self.offset)?;
        ctl.needs_repair.store(0, Relaxed);
        Core::new(&self.region, ctl, self.offset)?.verify()
    }

    /// Payload offsets of every live allocation, in address order (for inspection, and
    /// to reclaim what dead processes leaked).
    pub fn allocations(&self) -> Result<Vec<u64>, HeapError> {
        let (_g, core) = self.lock()?;
        core.allocations()
    }
}
