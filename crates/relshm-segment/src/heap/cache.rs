//! Per-process caches of small blocks (see [`crate::heap`], "Per-process caches").
//!
//! # Layout
//!
//! `HeapControl::caches` names the **table** (0 = none yet), allocated from the heap on
//! first use: word 0 the bytes and word 2 the blocks of the caches' bookkeeping (the table
//! and the records), words 8..8+[`SLOTS`] the offset of each slot's **record** (0 = none
//! yet). Word 1 of the table and of every record is 0: as for any cached block, it is the
//! owner word, and bookkeeping belongs to no process. A record (64-aligned, 320 bytes,
//! allocated on the slot's first use) is:
//!
//! | word | meaning |
//! |---|---|
//! | 0 | owner: the process word ([`super::process_owner`]) of the process using the slot, 0 = free |
//! | 1 | 0 (the block's owner word) |
//! | 2 | the slot lock: 0 free, 1 held (only ever taken by the owner's threads) |
//! | 8..24 | the top of each class's stack (class `c` holds blocks of `32 + 16 c` bytes) |
//! | 24..40 | the number of blocks in each class's stack |
//!
//! Cached blocks stay allocated on the block chain with the "cached" flag, their payload's
//! second word names the owning process and the first links the stack. The table and
//! the records are cached blocks of owner 0 (never reclaimed).
//!
//! # Protocol
//!
//! - **pop** (alloc), under the slot lock: take the top, flip its size word from cached to
//!   used in one store, update the tallies.
//! - **push** (free), under the slot lock: compare-exchange the size word from used to
//!   cached (so of two racing frees exactly one wins, against the heap's own `free` too),
//!   link the block on top, update the tallies. The owner word is written before.
//! - **refill** (empty stack) and **drain** (stack over its bound), under the heap lock
//!   and then the slot lock (that order only): blocks are allocated from the heap already
//!   marked cached with their owner, or freed back to it.
//! - **reclaim**, under the heap lock, for owners `/proc` proves dead: their records are
//!   reset and every cached block naming them is freed. A dead process's blocks are only
//!   ever in its own record or in flight in its own hands, and both carry its name.
//!
//! Validation: the fast path checks a freed block's tagged size word (offset, size,
//! flags) and its arena bounds, not its neighbours' boundary tags as the heap's own `free`
//! does under the lock; a wrong offset whose bytes happen to pass (1 in 65536) is accepted
//! here. Everything read from a stack is checked before use.
//!
//! A process killed at any instant therefore leaves every block it cached named as its
//! own; nothing it cached is lost once the reclaim runs (repair, slot take-over,
//! [`Heap::reclaim_dead_owners`]).

use core::sync::atomic::AtomicU64;
use core::sync::atomic::Ordering::{Acquire, Relaxed, Release};
use std::time::{Duration, Instant};

use super::layout::{GRAIN, HEADER, Kind, block_size_for, decode_kind, encode, encode_cached};
use super::ops::{Core, Record};
use super::{Heap, HeapError, owner_process, process_alive};

/// Cache slots (one per attach-table entry).
pub const SLOTS: usize = 64;
/// Size classes: blocks of 32, 48, ... 272 bytes (payloads up to 256 bytes).
const CLASSES: usize = 16;
/// Largest cached block.
const MAX_BLOCK: u64 = 32 + 16 * (CLASSES as u64 - 1);
/// Bytes of the table and of a record.
const TABLE_BYTES: u64 = (8 + SLOTS as u64) * 8;
const RECORD_BYTES: u64 = 40 * 8;
const OWNER: u64 = 0;
const LOCK: u64 = 16;
/// The table's tally of bookkeeping blocks (word 1, the owner word of a cached block,
/// stays 0 in the table and in every record: bookkeeping belongs to no process).
const META_BLOCKS: u64 = 16;
const HEADS: u64 = 64;
const COUNTS: u64 = 192;
/// Caches are used only on arenas this large: a small heap cannot spare the memory.
pub const MIN_ARENA: u64 = 256 << 10;
/// How long a thread waits for its own process's slot lock before it goes to the heap.
const SLOT_WAIT: Duration = Duration::from_millis(100);

/// The stack bound of each class (in blocks): about 2 KiB, at least 4 blocks (a table:
/// the fast path divides nothing).
const LIMITS: [u64; CLASSES] = {
    let mut t = [0; CLASSES];
    let mut c = 0;
    while c < CLASSES {
        let n = 2048 / (32 + 16 * c as u64);
        t[c] = if n < 4 { 4 } else { n };
        c += 1;
    }
    t
};

/// The stack bound of a class, in blocks.
#[inline]
fn limit(class: usize) -> u64 {
    LIMITS[class]
}

/// Blocks a refill takes from the heap: half the bound.
fn batch(class: usize) -> u64 {
    limit(class) / 2
}

#[inline]
fn class_size(class: usize) -> u64 {
    32 + 16 * class as u64
}

#[inline]
fn class_of(block: u64) -> Option<usize> {
    (32..=MAX_BLOCK)
        .contains(&block)
        .then(|| ((block - 32) / GRAIN) as usize)
}

/// The fork generation (see [`relshm_sync::process::fork_generation`]): a handle made
/// before a fork must not use the parent's cache.
#[inline]
pub(crate) fn fork_gen() -> u64 {
    relshm_sync::process::fork_generation()
}

/// A handle's claim on a cache slot.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Slot {
    /// The record's offset.
    record: u64,
    /// The owner word the record holds.
    owner: u64,
    /// [`fork_gen`] when the slot was claimed.
    fork: u64,
}

impl Slot {
    /// Whether this process may use the slot (not a child forked since).
    #[inline]
    pub(crate) fn usable(&self) -> bool {
        fork_gen() == self.fork
    }
}

#[inline]
fn word(heap: &Heap, off: u64) -> Option<&AtomicU64> {
    let p = heap.region.resolve(off, 8, 8).ok()?;
    // SAFETY: resolve checked bounds and alignment; the heap's contract keeps the region
    // mapped while the handle lives; AtomicU64 accepts any bit pattern.
    Some(unsafe { &*p.as_ptr().cast::<AtomicU64>() })
}

/// Holds a slot lock; releases it on drop.
struct SlotLock<'a>(&'a AtomicU64);

impl Drop for SlotLock<'_> {
    fn drop(&mut self) {
        self.0.store(0, Release);
    }
}

/// Takes the slot lock of `record`, or gives up after [`SLOT_WAIT`] (a corrupted word).
#[inline]
fn lock_slot(heap: &Heap, record: u64) -> Option<SlotLock<'_>> {
    let w = word(heap, record + LOCK)?;
    let mut spins = 0u32;
    let mut deadline = None;
    loop {
        if w.compare_exchange_weak(0, 1, Acquire, Relaxed).is_ok() {
            return Some(SlotLock(w));
        }
        spins += 1;
        if spins < 64 {
            core::hint::spin_loop();
        } else {
            let d = *deadline.get_or_insert_with(|| Instant::now() + SLOT_WAIT);
            if Instant::now() > d {
                return None;
            }
            std::thread::yield_now();
        }
    }
}

/// Finds or makes the record of `slot` for the process `owner`, under the heap lock;
/// `None` if the slot is in use by another live process or there is no room.
pub(crate) fn claim(core: &Core<'_>, slot: usize, owner: u64) -> Result<Option<u64>, HeapError> {
    let (start, end) = core.arena();
    if slot >= SLOTS || end - start < MIN_ARENA {
        return Ok(None);
    }
    let ctl = core.ctl();
    let mut table = ctl.caches.load(Acquire);
    if table == 0 {
        let Ok(t) = core.alloc(TABLE_BYTES, 64, Record::Cached(0)) else {
            return Ok(None);
        };
        for i in 0..TABLE_BYTES / 8 {
            core.put(t + 8 * i, 0, Relaxed)?;
        }
        let (_, size, _) = core.cached(t)?;
        core.put(t, size, Relaxed)?;
        core.put(t + META_BLOCKS, 1, Relaxed)?;
        ctl.caches.store(t, Release);
        table = t;
    }
    let entry = core.word(table + 64 + 8 * slot as u64)?;
    let mut record = entry.load(Acquire);
    if record == 0 {
        let Ok(r) = core.alloc(RECORD_BYTES, 64, Record::Cached(0)) else {
            return Ok(None);
        };
        for i in 0..RECORD_BYTES / 8 {
            core.put(r + 8 * i, 0, Relaxed)?;
        }
        let (_, size, _) = core.cached(r)?;
        let meta = core.word(table)?;
        meta.store(meta.load(Relaxed) + size, Relaxed);
        let n = core.word(table + META_BLOCKS)?;
        n.store(n.load(Relaxed) + 1, Relaxed);
        entry.store(r, Release);
        record = r;
    }
    let who = core.word(record + OWNER)?;
    let cur = who.load(Acquire);
    if cur == owner {
        return Ok(Some(record));
    }
    if cur != 0 {
        match owner_process(cur) {
            Some((pid, start)) if !process_alive(pid, start) => {
                reclaim_dead(core)?;
            }
            _ => return Ok(None),
        }
        if who.load(Acquire) != 0 {
            return Ok(None);
        }
    }
    who.store(owner, Release);
    Ok(Some(record))
}

/// A claimed slot for `record` if its owner word still names `owner`: the lock-free check
/// a handle makes before it uses a slot it claimed earlier.
pub(crate) fn check(heap: &Heap, slot: usize, owner: u64, fork: u64) -> Option<Slot> {
    let table = heap.control().caches.load(Acquire);
    if table == 0 || slot >= SLOTS {
        return None;
    }
    let record = word(heap, table + 64 + 8 * slot as u64)?.load(Acquire);
    if record == 0 || word(heap, record + OWNER)?.load(Acquire) != owner {
        return None;
    }
    Some(Slot {
        record,
        owner,
        fork,
    })
}

/// The caches' tallies: `(bytes, blocks)` in every stack plus the bookkeeping.
pub(crate) fn totals(core: &Core<'_>) -> Result<(u64, u64), HeapError> {
    let table = core.ctl().caches.load(Acquire);
    if table == 0 {
        return Ok((0, 0));
    }
    let mut bytes = core.word(table)?.load(Relaxed);
    let mut blocks = core.word(table + META_BLOCKS)?.load(Relaxed);
    for slot in 0..SLOTS as u64 {
        let r = core.word(table + 64 + 8 * slot)?.load(Acquire);
        if r != 0 {
            for c in 0..CLASSES {
                let n = core.word(r + COUNTS + 8 * c as u64)?.load(Relaxed);
                bytes = bytes.wrapping_add(n.wrapping_mul(class_size(c)));
                blocks = blocks.wrapping_add(n);
            }
        }
    }
    Ok((bytes, blocks))
}

/// Under the heap lock: resets the records of processes `/proc` proves dead and frees
/// every cached block that names a dead process. Returns the blocks freed.
pub(crate) fn reclaim_dead(core: &Core<'_>) -> Result<u64, HeapError> {
    let table = core.ctl().caches.load(Acquire);
    if table == 0 {
        return Ok(0);
    }
    let mut verdicts: Vec<(u64, bool)> = Vec::new();
    let mut dead = |w: u64| -> bool {
        if let Some(&(_, d)) = verdicts.iter().find(|(o, _)| *o == w) {
            return d;
        }
        let d = owner_process(w).is_some_and(|(pid, start)| !process_alive(pid, start));
        verdicts.push((w, d));
        d
    };
    for slot in 0..SLOTS as u64 {
        let r = core.word(table + 64 + 8 * slot)?.load(Acquire);
        if r == 0 {
            continue;
        }
        let who = core.word(r + OWNER)?.load(Acquire);
        if who != 0 && dead(who) {
            // Nobody uses a dead process's record: clear its stacks, tallies and lock,
            // then free it for the next claimer.
            for i in 1..RECORD_BYTES / 8 {
                core.put(r + 8 * i, 0, Relaxed)?;
            }
            core.put(r + OWNER, 0, Release)?;
        }
    }
    let mut freed = 0;
    for (payload, _, who) in core.cached_blocks()? {
        if who != 0 && dead(who) {
            core.free_cached(payload)?;
            freed += 1;
        }
    }
    Ok(freed)
}

/// Pops a block of `need` bytes from the slot's stack, or refills it from the heap.
/// `None`: the cache cannot serve (the caller goes to the heap).
#[inline]
pub(crate) fn alloc(heap: &Heap, slot: &Slot, need: u64) -> Option<Result<u64, HeapError>> {
    let class = class_of(need)?;
    if let Some(p) = pop(heap, slot, class) {
        return Some(Ok(p));
    }
    Some(refill(heap, slot, class))
}

/// Takes the top of `class`'s stack, as a used block.
#[inline]
fn pop(heap: &Heap, slot: &Slot, class: usize) -> Option<u64> {
    let r = slot.record;
    let head = word(heap, r + HEADS + 8 * class as u64)?;
    let count = word(heap, r + COUNTS + 8 * class as u64)?;
    let _g = lock_slot(heap, r)?;
    let top = head.load(Relaxed);
    if top == 0 {
        return None;
    }
    let size = class_size(class);
    let b = top.checked_sub(HEADER)?;
    let size_word = word(heap, b)?;
    let h = size_word.load(Acquire);
    if decode_kind(b, h) != Some((size, Kind::Cached)) {
        // A corrupted stack: stop using it (the blocks stay cached until a reclaim).
        head.store(0, Relaxed);
        return None;
    }
    let next = word(heap, top)?.load(Relaxed);
    head.store(next, Relaxed);
    count.store(count.load(Relaxed).wrapping_sub(1), Relaxed);
    super::ops::fault::point();
    // The block is the caller's from this store on.
    size_word.store(encode(b, size, true), Release);
    Some(top)
}

/// Pushes the block at `b` (size word `h`, `size` bytes) under the slot lock already held;
/// `false` if its size word changed (someone else freed it).
#[inline]
fn push_locked(heap: &Heap, slot: &Slot, b: u64, h: u64, size: u64, to_cache: bool) -> bool {
    let Some(class) = class_of(size) else {
        return false;
    };
    let r = slot.record;
    let (Some(head), Some(count), Some(sw), Some(link)) = (
        word(heap, r + HEADS + 8 * class as u64),
        word(heap, r + COUNTS + 8 * class as u64),
        word(heap, b),
        word(heap, b + HEADER),
    ) else {
        return false;
    };
    super::ops::fault::point();
    if to_cache
        && sw
            .compare_exchange(h, encode_cached(b, size), Release, Relaxed)
            .is_err()
    {
        return false;
    }
    link.store(head.load(Relaxed), Relaxed);
    head.store(b + HEADER, Relaxed);
    count.store(count.load(Relaxed) + 1, Relaxed);
    true
}

/// Frees `payload` into the slot's cache. `None`: not a block the cache takes (the caller
/// goes to the heap, which reports what is wrong with it).
#[inline]
pub(crate) fn free(heap: &Heap, slot: &Slot, payload: u64) -> Option<Result<(), HeapError>> {
    if !payload.is_multiple_of(GRAIN) || payload < HEADER {
        return None;
    }
    let b = payload - HEADER;
    let h = word(heap, b)?.load(Acquire);
    let (size, Kind::Used) = decode_kind(b, h)? else {
        return None;
    };
    let class = class_of(size)?;
    let ctl = heap.control();
    let (start, end) = (ctl.arena_start.load(Relaxed), ctl.arena_end.load(Relaxed));
    if b < start || b.checked_add(size)? >= end {
        return None;
    }
    // The owner word goes in first: from the flip on, the block must name its owner.
    word(heap, payload + 8)?.store(slot.owner, Relaxed);
    let over = {
        let _g = lock_slot(heap, slot.record)?;
        if !push_locked(heap, slot, b, h, size, true) {
            return None;
        }
        word(heap, slot.record + COUNTS + 8 * class as u64)?.load(Relaxed) > limit(class)
    };
    if over {
        return Some(drain(heap, slot, Some(class)));
    }
    Some(Ok(()))
}

/// Takes `batch` blocks of `class` from the heap: one for the caller, the rest cached.
fn refill(heap: &Heap, slot: &Slot, class: usize) -> Result<u64, HeapError> {
    let need = class_size(class);
    let (_g, core) = heap.lock()?;
    // One run of adjacent blocks (one search of the bins); near a full heap, one block.
    let (first, last) = match core.alloc_run(need, batch(class), slot.owner) {
        Err(HeapError::OutOfMemory { .. }) => {
            return core.alloc(need - HEADER, GRAIN, Record::Plain);
        }
        r => r?,
    };
    // Pushed highest first, so the stack hands them out in address order after the
    // caller's: a structure built by consecutive allocations lies in memory in the order it
    // was built (a list chase then runs forward through memory, which the prefetchers
    // follow; handed out backwards, a list of 1e6 read 17x slower).
    let rest = (1..batch(class)).rev().map(|i| {
        let b = first - HEADER + i * need;
        (b, if i == batch(class) - 1 { last } else { need })
    });
    let Some(_s) = lock_slot(heap, slot.record) else {
        for (b, _) in rest {
            core.free_cached(b + HEADER)?;
        }
        return Ok(first);
    };
    for (b, size) in rest {
        if !push_locked(heap, slot, b, 0, size, false) {
            core.free_cached(b + HEADER)?;
        }
    }
    Ok(first)
}

/// Under the heap lock, returns blocks of the slot's stacks to the heap: down to half the
/// bound for `class`, or everything when `class` is `None`.
pub(crate) fn drain(heap: &Heap, slot: &Slot, class: Option<usize>) -> Result<(), HeapError> {
    let (_g, core) = heap.lock()?;
    drain_locked(heap, &core, slot, class)
}

fn drain_locked(
    heap: &Heap,
    core: &Core<'_>,
    slot: &Slot,
    class: Option<usize>,
) -> Result<(), HeapError> {
    let Some(_s) = lock_slot(heap, slot.record) else {
        return Ok(());
    };
    let classes = match class {
        Some(c) => c..c + 1,
        None => 0..CLASSES,
    };
    let mut taken = Vec::new();
    for c in classes {
        let keep = if class.is_some() { batch(c) } else { 0 };
        let r = slot.record;
        let head = core.word(r + HEADS + 8 * c as u64)?;
        let count = core.word(r + COUNTS + 8 * c as u64)?;
        while count.load(Relaxed) > keep {
            let top = head.load(Relaxed);
            if top == 0 {
                count.store(0, Relaxed);
                break;
            }
            let next = core.word(top)?.load(Relaxed);
            // Still cached and named ours: a death from here on leaves it to the reclaim.
            head.store(next, Relaxed);
            count.store(count.load(Relaxed) - 1, Relaxed);
            taken.push(top);
        }
    }
    // Adjacent blocks (a refill's run comes back together) go back as one.
    core.free_cached_all(&mut taken)
}

/// Under the heap lock: empties the slot's stacks into the heap and frees the slot.
pub(crate) fn release(heap: &Heap, slot: &Slot) -> Result<(), HeapError> {
    let (_g, core) = heap.lock()?;
    drain_locked(heap, &core, slot, None)?;
    let who = core.word(slot.record + OWNER)?;
    if who.load(Acquire) == slot.owner {
        who.store(0, Release);
    }
    Ok(())
}

/// The block size a request of `size` bytes aligned to `align` takes from a cache.
#[inline]
pub(crate) fn cacheable(size: u64, align: u64) -> Option<u64> {
    if align > GRAIN || !align.is_power_of_two() {
        return None;
    }
    block_size_for(size).filter(|&b| b <= MAX_BLOCK)
}
