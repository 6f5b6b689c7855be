//! The allocator's algorithms, run by a process that holds the heap lock.
//!
//! Every offset read from the segment goes through [`Core::word`] (bounds and alignment)
//! and every block through [`Core::block`] (arena bounds, check tag, size); every list walk
//! is bounded by the number of blocks the arena can hold. Stores that change the block
//! chain are single aligned 8-byte `Release` stores, ordered as described in the module
//! docs of [`crate::heap`].

use core::sync::atomic::AtomicU64;
use core::sync::atomic::Ordering::{self, Acquire, Relaxed, Release};

use super::layout::{
    Bin, GRAIN, HEADER, HeapControl, Kind, LARGE_BINS, MAX_ALIGN, MIN_BLOCK, SMALL_BINS,
    SMALL_LIMIT, SUB_BINS, block_size_for, decode, decode_kind, decode_owned, encode,
    encode_cached, encode_owned,
};
use super::{HeapError, HeapStats};
use crate::Region;

/// Free-list links live in a free block's payload.
const NEXT: u64 = HEADER;
const PREV: u64 = HEADER + 8;
/// The previous block's size lives in the second header word.
const PREV_SIZE: u64 = 8;

/// Adds to a counter. The heap lock serialises all writers, so a plain load and store
/// does (a locked read-modify-write would cost more than the rest of the operation).
fn add(counter: &AtomicU64, n: u64) {
    counter.store(counter.load(Relaxed).wrapping_add(n), Relaxed);
}

/// Subtracts from a counter; see [`add`].
fn sub(counter: &AtomicU64, n: u64) {
    counter.store(counter.load(Relaxed).wrapping_sub(n), Relaxed);
}

fn corrupt(offset: u64, what: &'static str) -> HeapError {
    HeapError::Corrupted { offset, what }
}

/// What an allocation's block carries besides the caller's bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Record {
    /// Nothing: a plain allocation.
    Plain,
    /// The owner record `[owner, ident]` in the first 16 payload bytes (flag "owned").
    Owned([u64; 2]),
    /// A block for a per-process cache: the owning process's word in the payload's
    /// second 8 bytes (0 = cache bookkeeping, owned by no process), flag "cached".
    Cached(u64),
}

/// The heap as seen by the lock holder: the control block and validated arena bounds.
pub(crate) struct Core<'a> {
    region: &'a Region,
    ctl: &'a HeapControl,
    ctl_offset: u64,
    start: u64,
    end: u64,
}

impl<'a> Core<'a> {
    /// Reads and validates the arena bounds.
    pub(crate) fn new(
        region: &'a Region,
        ctl: &'a HeapControl,
        ctl_offset: u64,
    ) -> Result<Self, HeapError> {
        let start = ctl.arena_start.load(Acquire);
        let end = ctl.arena_end.load(Acquire);
        check_arena(region, ctl_offset, start, end)?;
        Ok(Self {
            region,
            ctl,
            ctl_offset,
            start,
            end,
        })
    }

    pub(super) fn word(&self, offset: u64) -> Result<&'a AtomicU64, HeapError> {
        let p = self.region.resolve(offset, 8, 8)?;
        // SAFETY: resolve checked that the 8 bytes are inside the mapping and 8-aligned; the
        // Heap's contract keeps the mapping alive and writable for 'a; AtomicU64 is valid
        // for every bit pattern and other processes only touch these bytes atomically.
        Ok(unsafe { &*p.as_ptr().cast::<AtomicU64>() })
    }

    /// Stores `value` at `offset`: every store the allocator makes to the arena.
    pub(super) fn put(&self, offset: u64, value: u64, order: Ordering) -> Result<(), HeapError> {
        fault::point();
        self.word(offset)?.store(value, order);
        Ok(())
    }

    /// The control block.
    pub(super) fn ctl(&self) -> &'a HeapControl {
        self.ctl
    }

    /// The arena bounds `[start, end)`.
    pub(super) fn arena(&self) -> (u64, u64) {
        (self.start, self.end)
    }

    fn sentinel(&self) -> u64 {
        self.end - HEADER
    }

    fn max_blocks(&self) -> u64 {
        (self.end - self.start) / MIN_BLOCK + 1
    }

    /// Validates the block header at `off`: `(size, used)`; size 0 is the end sentinel.
    fn block(&self, off: u64) -> Result<(u64, bool), HeapError> {
        if off < self.start || off >= self.end || !off.is_multiple_of(GRAIN) {
            return Err(corrupt(
                off,
                "a link points outside the arena or is misaligned",
            ));
        }
        let head = self.word(off)?.load(Acquire);
        let (size, used) = decode(off, head).ok_or(corrupt(off, "block header check failed"))?;
        let sentinel = self.sentinel();
        if size == 0 {
            if off == sentinel && used {
                return Ok((0, true));
            }
            return Err(corrupt(off, "end marker inside the arena"));
        }
        if off == sentinel {
            return Err(corrupt(off, "the arena's end marker was overwritten"));
        }
        if size < MIN_BLOCK || size > sentinel - off {
            return Err(corrupt(off, "block size runs past the arena end"));
        }
        Ok((size, used))
    }

    /// Like [`Self::block`], and requires a free block whose size bins to `bin`.
    fn free_block_in(&self, off: u64, bin: Option<Bin>) -> Result<u64, HeapError> {
        let (size, used) = self.block(off)?;
        if used || size == 0 {
            return Err(corrupt(off, "a free list links to an allocated block"));
        }
        if bin.is_some_and(|b| Bin::of(size) != b) {
            return Err(corrupt(off, "a free block sits in the wrong bin"));
        }
        Ok(size)
    }

    fn head_of(&self, bin: Bin) -> &'a AtomicU64 {
        match bin {
            Bin::Small(i) => &self.ctl.small_heads[i],
            Bin::Large(f, s) => &self.ctl.large_heads[Bin::large_index(f, s)],
        }
    }

    fn set_map(&self, bin: Bin, nonempty: bool) {
        fault::point();
        let (map, bit) = match bin {
            Bin::Small(i) => (&self.ctl.small_map, i),
            Bin::Large(f, s) => {
                let sub = &self.ctl.large_sub_maps[f];
                let v = if nonempty {
                    sub.load(Relaxed) | 1 << s
                } else {
                    sub.load(Relaxed) & !(1 << s)
                };
                sub.store(v, Relaxed);
                if nonempty || v & 0xff == 0 {
                    (&self.ctl.large_map, f)
                } else {
                    return;
                }
            }
        };
        let v = map.load(Relaxed);
        map.store(
            if nonempty {
                v | 1 << bit
            } else {
                v & !(1 << bit)
            },
            Relaxed,
        );
    }

    /// Pushes the free block `off` of `size` bytes onto its bin.
    fn insert(&self, off: u64, size: u64) -> Result<(), HeapError> {
        let bin = Bin::of(size);
        let head = self.head_of(bin);
        let first = head.load(Relaxed);
        if first != 0 {
            self.free_block_in(first, Some(bin))?;
            self.put(first + PREV, off, Relaxed)?;
        }
        self.put(off + NEXT, first, Relaxed)?;
        self.put(off + PREV, 0, Relaxed)?;
        fault::point();
        head.store(off, Relaxed);
        self.set_map(bin, true);
        fault::point();
        add(&self.ctl.free_bytes, size);
        add(&self.ctl.free_blocks, 1);
        Ok(())
    }

    /// Takes the free block `off` of `size` bytes out of its bin.
    fn unlink(&self, off: u64, size: u64) -> Result<(), HeapError> {
        let bin = Bin::of(size);
        let next = self.word(off + NEXT)?.load(Relaxed);
        let prev = self.word(off + PREV)?.load(Relaxed);
        if next != 0 {
            self.free_block_in(next, Some(bin))?;
        }
        let head = self.head_of(bin);
        if prev != 0 {
            self.free_block_in(prev, Some(bin))?;
            if self.word(prev + NEXT)?.load(Relaxed) != off {
                return Err(corrupt(prev, "free list links disagree"));
            }
            self.put(prev + NEXT, next, Relaxed)?;
        } else if head.load(Relaxed) != off {
            return Err(corrupt(off, "free block missing from its bin"));
        } else {
            fault::point();
            head.store(next, Relaxed);
        }
        if next != 0 {
            self.put(next + PREV, prev, Relaxed)?;
        }
        if head.load(Relaxed) == 0 {
            self.set_map(bin, false);
        }
        fault::point();
        sub(&self.ctl.free_bytes, size);
        sub(&self.ctl.free_blocks, 1);
        Ok(())
    }

    /// The smallest block in `bin` of at least `need` bytes (best fit within the bin).
    fn scan_bin(&self, bin: Bin, need: u64) -> Result<Option<(u64, u64)>, HeapError> {
        let mut cur = self.head_of(bin).load(Relaxed);
        let mut best: Option<(u64, u64)> = None;
        let mut steps = 0;
        while cur != 0 {
            steps += 1;
            if steps > self.max_blocks() {
                return Err(corrupt(cur, "free list has a cycle"));
            }
            let size = self.free_block_in(cur, Some(bin))?;
            if size >= need && best.is_none_or(|(_, s)| size < s) {
                best = Some((cur, size));
                if size == need {
                    break;
                }
            }
            cur = self.word(cur + NEXT)?.load(Relaxed);
        }
        Ok(best)
    }

    /// Best fit for a block of `need` bytes: the smallest free block that is big enough.
    fn find_fit(&self, need: u64) -> Result<Option<(u64, u64)>, HeapError> {
        if need < SMALL_LIMIT {
            let map = self.ctl.small_map.load(Relaxed) & (!0u64 << (need / GRAIN));
            if map != 0 {
                let i = map.trailing_zeros() as usize;
                let first = self.head_of(Bin::Small(i)).load(Relaxed);
                if first == 0 {
                    return Err(corrupt(self.ctl_offset, "small bin map marks an empty bin"));
                }
                let size = self.free_block_in(first, Some(Bin::Small(i)))?;
                return Ok(Some((first, size)));
            }
        }
        let Bin::Large(fl0, sl0) = Bin::of(need.max(SMALL_LIMIT)) else {
            unreachable!("sizes of at least SMALL_LIMIT bin as large")
        };
        // The request's own bin also holds smaller blocks: search it for a fit.
        if let Some(hit) = self.scan_bin(Bin::Large(fl0, sl0), need)? {
            return Ok(Some(hit));
        }
        // Every block of a higher bin fits; the first non-empty one holds the best fit.
        let sub = self.ctl.large_sub_maps[fl0].load(Relaxed) & 0xff & (!0u64 << (sl0 + 1));
        let bin = if sub != 0 {
            Bin::Large(fl0, sub.trailing_zeros() as usize)
        } else {
            let fls = self.ctl.large_map.load(Relaxed) & (!0u64 << (fl0 + 1));
            if fls == 0 {
                return Ok(None);
            }
            let fl = fls.trailing_zeros() as usize;
            let sub = self.ctl.large_sub_maps[fl].load(Relaxed) & 0xff;
            if sub == 0 {
                return Err(corrupt(self.ctl_offset, "large bin maps disagree"));
            }
            Bin::Large(fl, sub.trailing_zeros() as usize)
        };
        match self.scan_bin(bin, need)? {
            Some(hit) => Ok(Some(hit)),
            None => Err(corrupt(self.ctl_offset, "bin map marks an empty bin")),
        }
    }

    /// Allocates `size` bytes aligned to `align`; returns the payload offset. With an
    /// owner (or cache) record, the block carries it in its first 16 payload bytes,
    /// written before the store that publishes the block (so no death leaves it allocated
    /// without its record).
    pub(crate) fn alloc(&self, size: u64, align: u64, record: Record) -> Result<u64, HeapError> {
        if !align.is_power_of_two() || align > MAX_ALIGN {
            return Err(HeapError::BadRequest { size, align });
        }
        let need = block_size_for(size).ok_or(HeapError::BadRequest { size, align })?;
        // An over-aligned payload may need a leading gap of up to align + 16 bytes, which
        // is split off as a free block of its own.
        let search = if align > GRAIN {
            need + align + GRAIN
        } else {
            need
        };
        let Some((mut b, mut s)) = self.find_fit(search)? else {
            return Err(HeapError::OutOfMemory {
                size,
                align,
                needed: search - HEADER,
                largest_free: self.largest_free()?,
            });
        };
        self.unlink(b, s)?;
        if align > GRAIN {
            let mut payload = (b + HEADER).next_multiple_of(align);
            if payload - HEADER - b != 0 && payload - HEADER - b < MIN_BLOCK {
                payload += align;
            }
            let gap = payload - HEADER - b;
            if gap != 0 {
                let a = b + gap;
                // 1. the aligned remainder's header, still inside B's payload;
                self.put(a, encode(a, s - gap, false), Relaxed)?;
                self.put(a + PREV_SIZE, gap, Relaxed)?;
                // 2. publish: B shrinks to the gap, the chain now runs B -> A -> next;
                self.put(b, encode(b, gap, false), Release)?;
                // 3. derived data.
                self.put(a + s - gap + PREV_SIZE, s - gap, Relaxed)?;
                self.insert(b, gap)?;
                (b, s) = (a, s - gap);
            }
        }
        // The owner record goes into B's payload while B is still free on the chain
        // (invisible to a walk); the publishing store below makes it the block's record.
        let mark = |size| match record {
            Record::Plain => encode(b, size, true),
            Record::Owned(_) => encode_owned(b, size),
            Record::Cached(_) => encode_cached(b, size),
        };
        match record {
            Record::Plain => {}
            Record::Owned([who, ident]) => {
                self.put(b + HEADER, who, Relaxed)?;
                self.put(b + HEADER + 8, ident, Relaxed)?;
            }
            Record::Cached(who) => {
                self.put(b + HEADER, 0, Relaxed)?;
                self.put(b + HEADER + 8, who, Relaxed)?;
            }
        }
        if s - need >= MIN_BLOCK {
            let t = b + need;
            // 1. the tail's header inside B's payload; 2. publish by shrinking B and
            // marking it used in one store; 3. derived data.
            self.put(t, encode(t, s - need, false), Relaxed)?;
            self.put(t + PREV_SIZE, need, Relaxed)?;
            self.put(b, mark(need), Release)?;
            self.put(t + s - need + PREV_SIZE, s - need, Relaxed)?;
            self.insert(t, s - need)?;
            s = need;
        } else {
            self.put(b, mark(s), Release)?;
        }
        fault::point();
        add(&self.ctl.used_bytes, s);
        add(&self.ctl.used_blocks, 1);
        Ok(b + HEADER)
    }

    /// Allocates `count` adjacent blocks of `block` bytes (headers included) with one
    /// search of the bins, for a cache refill: the first is a plain allocation (the
    /// caller's), the others are cached blocks of `owner`; the last may be up to a grain
    /// larger (what the fit left over). Returns the first payload and the last block's size.
    ///
    /// The run is allocated as one cached block of `owner`; the other blocks' headers are
    /// written inside its payload (invisible to a walk), and one store that shrinks the
    /// first block publishes them all. A death at any instant leaves either one cached
    /// block of `owner` or all `count` of them (the first named by the caller's pending
    /// claim is then a plain block, as with [`alloc`](Self::alloc)).
    pub(crate) fn alloc_run(
        &self,
        block: u64,
        count: u64,
        owner: u64,
    ) -> Result<(u64, u64), HeapError> {
        debug_assert!(block >= MIN_BLOCK && block.is_multiple_of(GRAIN) && count >= 1);
        let total = block.checked_mul(count).ok_or(HeapError::BadRequest {
            size: block,
            align: GRAIN,
        })?;
        let first = self.alloc(total - HEADER, GRAIN, Record::Cached(owner))?;
        let b0 = first - HEADER;
        let (s, _) = self.block(b0)?;
        let last = s - (count - 1) * block;
        for i in 1..count {
            let b = b0 + i * block;
            let size = if i == count - 1 { last } else { block };
            self.put(b + HEADER, 0, Relaxed)?;
            self.put(b + HEADER + 8, owner, Relaxed)?;
            self.put(b + PREV_SIZE, block, Relaxed)?;
            self.put(b, encode_cached(b, size), Relaxed)?;
        }
        // Publish: the first block shrinks to one plain block, the chain runs through the
        // others; then the derived data (the next block's boundary tag, the counters).
        self.put(
            b0,
            encode(b0, if count == 1 { s } else { block }, true),
            Release,
        )?;
        if count > 1 {
            self.put(b0 + s + PREV_SIZE, last, Relaxed)?;
        }
        add(&self.ctl.used_blocks, count - 1);
        Ok((first, last))
    }

    /// The block and size of the live allocation whose payload starts at `payload`
    /// (a block held by a cache is no live allocation of a caller).
    pub(crate) fn allocated(&self, payload: u64) -> Result<(u64, u64), HeapError> {
        let (b, size, head) = self.allocated_any(payload)?;
        if decode_kind(b, head).is_some_and(|(_, k)| k == Kind::Cached) {
            return Err(HeapError::NotAllocated { offset: payload });
        }
        Ok((b, size))
    }

    /// The block and size of the cached block whose payload starts at `payload`, and the
    /// owner word its payload names.
    pub(crate) fn cached(&self, payload: u64) -> Result<(u64, u64, u64), HeapError> {
        let (b, size, head) = self.allocated_any(payload)?;
        if decode_kind(b, head).is_some_and(|(_, k)| k == Kind::Cached) {
            return Ok((b, size, self.word(payload + 8)?.load(Relaxed)));
        }
        Err(HeapError::NotAllocated { offset: payload })
    }

    /// The block, size and size word of the allocated (or cached) block whose payload
    /// starts at `payload`, checked against its neighbours' boundary tags.
    fn allocated_any(&self, payload: u64) -> Result<(u64, u64, u64), HeapError> {
        let not_allocated = || HeapError::NotAllocated { offset: payload };
        if !payload.is_multiple_of(GRAIN) || payload < self.start + HEADER || payload >= self.end {
            return Err(not_allocated());
        }
        let b = payload - HEADER;
        let Ok((size, true)) = self.block(b) else {
            return Err(not_allocated());
        };
        if size == 0 {
            return Err(not_allocated());
        }
        // The neighbours' boundary tags must agree, or `b` is not on the chain.
        self.block(b + size)?;
        if self.word(b + size + PREV_SIZE)?.load(Relaxed) != size {
            return Err(not_allocated());
        }
        let prev_size = self.word(b + PREV_SIZE)?.load(Relaxed);
        if b == self.start {
            if prev_size != 0 {
                return Err(not_allocated());
            }
        } else {
            let p = b
                .checked_sub(prev_size)
                .filter(|&p| p >= self.start && prev_size != 0)
                .ok_or_else(not_allocated)?;
            if self.block(p).map(|(s, _)| s) != Ok(prev_size) {
                return Err(not_allocated());
            }
        }
        Ok((b, size, self.word(b)?.load(Acquire)))
    }

    /// The owner record of the live owned allocation at `payload`: its words, or `None`
    /// if `payload` is not a live allocation with an owner record.
    pub(crate) fn owner_words(
        &self,
        payload: u64,
    ) -> Result<Option<[&'a AtomicU64; 2]>, HeapError> {
        let Ok((b, _)) = self.allocated(payload) else {
            return Ok(None);
        };
        if !self.is_owned(b)? {
            return Ok(None);
        }
        Ok(Some([self.word(payload)?, self.word(payload + 8)?]))
    }

    fn is_owned(&self, b: u64) -> Result<bool, HeapError> {
        let head = self.word(b)?.load(Acquire);
        Ok(decode_owned(b, head).is_some_and(|(_, _, owned)| owned))
    }

    /// Frees the allocation whose payload starts at `payload`, coalescing with free
    /// neighbours.
    pub(crate) fn free(&self, payload: u64) -> Result<(), HeapError> {
        let (b, s, head) = self.allocated_any(payload)?;
        if decode_kind(b, head).is_some_and(|(_, k)| k == Kind::Cached) {
            return Err(HeapError::NotAllocated { offset: payload });
        }
        self.release(payload, b, s, head)
    }

    /// Frees the cached block whose payload starts at `payload` (a cache drains it, or a
    /// reclaimer takes it back from a dead process).
    pub(crate) fn free_cached(&self, payload: u64) -> Result<(), HeapError> {
        let (b, s, head) = self.allocated_any(payload)?;
        if !decode_kind(b, head).is_some_and(|(_, k)| k == Kind::Cached) {
            return Err(HeapError::NotAllocated { offset: payload });
        }
        self.release(payload, b, s, head)
    }

    /// Frees the cached blocks whose payloads `payloads` lists (in any order; sorted on
    /// return), each run of adjacent ones as one block: the run's first block grows over
    /// the others in one store (from then on one cached block, whose interior headers no
    /// walk sees), then is freed. A death in between leaves cached blocks of their owner.
    pub(crate) fn free_cached_all(&self, payloads: &mut [u64]) -> Result<(), HeapError> {
        payloads.sort_unstable();
        let mut i = 0;
        while i < payloads.len() {
            let (b, s, _) = self.cached(payloads[i])?;
            let mut end = b + s;
            let mut j = i + 1;
            while j < payloads.len() && payloads[j] == end + HEADER {
                let Ok((n, s, _)) = self.cached(payloads[j]) else {
                    break;
                };
                end = n + s;
                j += 1;
            }
            if j - i > 1 {
                self.put(b, encode_cached(b, end - b), Release)?;
                // Derived: the next block's boundary tag, the counter.
                self.put(end + PREV_SIZE, end - b, Relaxed)?;
                sub(&self.ctl.used_blocks, (j - i - 1) as u64);
            }
            self.free_cached(b + HEADER)?;
            i = j;
        }
        Ok(())
    }

    /// Frees block `b` of `s` bytes whose size word read `head`.
    fn release(&self, payload: u64, b: u64, s: u64, head: u64) -> Result<(), HeapError> {
        // Publish: B is free, in one store that also checks that its size word still
        // reads `head` (a cache takes blocks with a compare-exchange of this word, outside
        // the heap lock: of two racing frees of one block, exactly one wins).
        fault::point();
        if self
            .word(b)?
            .compare_exchange(head, encode(b, s, false), Release, Relaxed)
            .is_err()
        {
            return Err(HeapError::NotAllocated { offset: payload });
        }
        fault::point();
        sub(&self.ctl.used_bytes, s);
        sub(&self.ctl.used_blocks, 1);
        let n = b + s;
        let (nsize, nused) = self.block(n)?;
        let mut size = s;
        if !nused {
            self.unlink(n, nsize)?;
            size += nsize;
            // Publish: B swallows its free successor, in one store.
            self.put(b, encode(b, size, false), Release)?;
        }
        let mut first = b;
        if b != self.start {
            let p = b - self.word(b + PREV_SIZE)?.load(Relaxed);
            let (psize, pused) = self.block(p)?;
            if !pused {
                self.unlink(p, psize)?;
                // Publish: the free predecessor swallows B, in one store.
                self.put(p, encode(p, psize + size, false), Release)?;
                first = p;
                size += psize;
            }
        }
        self.put(first + size + PREV_SIZE, size, Relaxed)?;
        self.insert(first, size)
    }

    /// Grows the arena to `new_end` (the segment grew and the bytes are mapped).
    pub(crate) fn extend(&self, new_end: u64) -> Result<(), HeapError> {
        let bad = |what| HeapError::BadExtend {
            new_end,
            end: self.end,
            what,
        };
        if !new_end.is_multiple_of(GRAIN) {
            return Err(bad("the new end must be a multiple of 16"));
        }
        if new_end < self.end + MIN_BLOCK {
            return Err(bad("the arena can only grow, by at least 32 bytes"));
        }
        check_arena(self.region, self.ctl_offset, self.start, new_end)
            .map_err(|_| bad("the new end lies outside the mapped region or is too large"))?;
        let old = self.sentinel();
        let new = new_end - HEADER;
        let grown = new - old;
        // 1. the new end sentinel, beyond the chain's end and so invisible to a walk;
        self.put(new, encode(new, 0, true), Relaxed)?;
        self.put(new + PREV_SIZE, grown, Relaxed)?;
        // 2. publish: the old sentinel becomes a free block reaching the new one;
        self.put(old, encode(old, grown, false), Release)?;
        // 3. derived: the arena end (repair recomputes it from the chain), then coalesce.
        fault::point();
        self.ctl.arena_end.store(new_end, Release);
        let core = Core::new(self.region, self.ctl, self.ctl_offset)?;
        let p = old
            .checked_sub(core.word(old + PREV_SIZE)?.load(Relaxed))
            .ok_or(corrupt(old, "end marker's boundary tag is wrong"))?;
        let (psize, pused) = core.block(p)?;
        if p + psize != old {
            return Err(corrupt(old, "end marker's boundary tag is wrong"));
        }
        if pused {
            core.insert(old, grown)
        } else {
            core.unlink(p, psize)?;
            core.put(p, encode(p, psize + grown, false), Release)?;
            core.put(new + PREV_SIZE, psize + grown, Relaxed)?;
            core.insert(p, psize + grown)
        }
    }

    /// The largest payload an `alloc` with alignment up to 16 could return right now.
    pub(crate) fn largest_free(&self) -> Result<u64, HeapError> {
        let fls = self.ctl.large_map.load(Relaxed);
        let block = if fls != 0 {
            let fl = 63 - fls.leading_zeros() as usize;
            let sub = self.ctl.large_sub_maps[fl].load(Relaxed) & 0xff;
            if sub == 0 {
                return Err(corrupt(self.ctl_offset, "large bin maps disagree"));
            }
            let bin = Bin::Large(fl, 63 - sub.leading_zeros() as usize);
            let mut best = 0;
            let mut cur = self.head_of(bin).load(Relaxed);
            let mut steps = 0;
            while cur != 0 {
                steps += 1;
                if steps > self.max_blocks() {
                    return Err(corrupt(cur, "free list has a cycle"));
                }
                best = best.max(self.free_block_in(cur, Some(bin))?);
                cur = self.word(cur + NEXT)?.load(Relaxed);
            }
            best
        } else {
            let map = self.ctl.small_map.load(Relaxed);
            if map == 0 {
                0
            } else {
                (63 - map.leading_zeros() as u64) * GRAIN
            }
        };
        Ok(block.saturating_sub(HEADER))
    }

    /// The counters, with the largest free payload.
    /// The blocks held by caches are counted from the caches' own tallies (a snapshot:
    /// caches change without the heap lock).
    pub(crate) fn stats(&self) -> Result<HeapStats, HeapError> {
        let (cached_bytes, cached_blocks) = super::cache::totals(self)?;
        let used_bytes = self.ctl.used_bytes.load(Relaxed);
        let used_blocks = self.ctl.used_blocks.load(Relaxed);
        Ok(HeapStats {
            arena_bytes: self.end - self.start,
            used_bytes: used_bytes.saturating_sub(cached_bytes),
            used_blocks: used_blocks.saturating_sub(cached_blocks),
            cached_bytes: cached_bytes.min(used_bytes),
            cached_blocks: cached_blocks.min(used_blocks),
            free_bytes: self.ctl.free_bytes.load(Relaxed),
            free_blocks: self.ctl.free_blocks.load(Relaxed),
            largest_free: self.largest_free()?,
            repairs: self.ctl.repairs.load(Relaxed),
        })
    }

    /// Walks the block chain from the arena start to the end sentinel, calling
    /// `f(offset, size, used)` for every block; fails on any bad header or a chain that
    /// does not end exactly at the sentinel.
    fn walk(
        &self,
        mut f: impl FnMut(u64, u64, bool) -> Result<(), HeapError>,
    ) -> Result<(), HeapError> {
        let mut b = self.start;
        for _ in 0..=self.max_blocks() {
            let (size, used) = self.block(b)?;
            if size == 0 {
                return Ok(());
            }
            f(b, size, used)?;
            b += size;
        }
        Err(corrupt(b, "block chain does not reach the end marker"))
    }

    /// Whether the allocated block at `b` is held by a cache.
    fn is_cached(&self, b: u64) -> Result<bool, HeapError> {
        let head = self.word(b)?.load(Acquire);
        Ok(decode_kind(b, head).is_some_and(|(_, k)| k == Kind::Cached))
    }

    /// Payload offsets of every live allocation, in address order (blocks held by
    /// caches are not: see [`Self::cached_blocks`]).
    pub(crate) fn allocations(&self) -> Result<Vec<u64>, HeapError> {
        let mut out = Vec::new();
        self.walk(|b, _, used| {
            if used && !self.is_cached(b)? {
                out.push(b + HEADER);
            }
            Ok(())
        })?;
        Ok(out)
    }

    /// Every block held by a cache (or its bookkeeping): `(payload, size, owner word)`,
    /// in address order.
    pub(crate) fn cached_blocks(&self) -> Result<Vec<(u64, u64, u64)>, HeapError> {
        let mut out = Vec::new();
        self.walk(|b, size, used| {
            if used && self.is_cached(b)? {
                out.push((b + HEADER, size, self.word(b + HEADER + 8)?.load(Relaxed)));
            }
            Ok(())
        })?;
        Ok(out)
    }

    /// Every live allocation with an owner record: `(payload, [owner, ident])`, in
    /// address order.
    pub(crate) fn owned(&self) -> Result<Vec<(u64, [u64; 2])>, HeapError> {
        let mut out = Vec::new();
        self.walk(|b, _, used| {
            if used && self.is_owned(b)? {
                let p = b + HEADER;
                let words = [self.word(p)?.load(Acquire), self.word(p + 8)?.load(Acquire)];
                out.push((p, words));
            }
            Ok(())
        })?;
        Ok(out)
    }

    /// Checks every invariant: the chain, boundary tags, full coalescing, that the bins
    /// hold exactly the free blocks (each once, in the right bin, doubly linked), the bin
    /// maps and the counters.
    pub(crate) fn verify(&self) -> Result<HeapStats, HeapError> {
        let mut free = Vec::new();
        let (mut used_bytes, mut used_blocks, mut free_bytes) = (0, 0, 0);
        let (mut cached_bytes, mut cached_blocks) = (0, 0);
        let (mut prev_size, mut prev_free) = (0, false);
        self.walk(|b, size, used| {
            if self.word(b + PREV_SIZE)?.load(Relaxed) != prev_size {
                return Err(corrupt(b, "boundary tag disagrees with the previous block"));
            }
            if used && self.is_cached(b)? {
                cached_bytes += size;
                cached_blocks += 1;
            } else if used {
                used_bytes += size;
                used_blocks += 1;
            } else {
                if prev_free {
                    return Err(corrupt(b, "two adjacent free blocks were not merged"));
                }
                free_bytes += size;
                free.push(b);
            }
            (prev_size, prev_free) = (size, !used);
            Ok(())
        })?;
        if self.word(self.sentinel() + PREV_SIZE)?.load(Relaxed) != prev_size {
            return Err(corrupt(
                self.sentinel(),
                "end marker's boundary tag is wrong",
            ));
        }
        let mut seen = vec![false; free.len()];
        let mut listed = 0;
        let bins = (0..SMALL_BINS)
            .map(Bin::Small)
            .chain((0..LARGE_BINS).map(|i| Bin::Large(i / SUB_BINS, i % SUB_BINS)));
        for bin in bins {
            let (mut cur, mut prev) = (self.head_of(bin).load(Relaxed), 0);
            let nonempty = cur != 0;
            let mapped = match bin {
                Bin::Small(i) => self.ctl.small_map.load(Relaxed) >> i & 1 == 1,
                Bin::Large(f, s) => {
                    let sub = self.ctl.large_sub_maps[f].load(Relaxed);
                    if (sub & 0xff != 0) != (self.ctl.large_map.load(Relaxed) >> f & 1 == 1)
                        || sub >> 8 != 0
                    {
                        return Err(corrupt(self.ctl_offset, "large bin maps disagree"));
                    }
                    sub >> s & 1 == 1
                }
            };
            if nonempty != mapped {
                return Err(corrupt(self.ctl_offset, "bin map disagrees with the bin"));
            }
            while cur != 0 {
                let i = free
                    .binary_search(&cur)
                    .map_err(|_| corrupt(cur, "a bin links to a block that is not free"))?;
                if std::mem::replace(&mut seen[i], true) {
                    return Err(corrupt(cur, "a free block is listed twice"));
                }
                listed += 1;
                self.free_block_in(cur, Some(bin))?;
                if self.word(cur + PREV)?.load(Relaxed) != prev {
                    return Err(corrupt(cur, "free list back link is wrong"));
                }
                prev = cur;
                cur = self.word(cur + NEXT)?.load(Relaxed);
            }
        }
        if listed != free.len() {
            return Err(corrupt(
                self.ctl_offset,
                "a free block is missing from the bins",
            ));
        }
        let stats = self.stats()?;
        // The counters see cached blocks as used: a cache takes and returns them in bulk.
        if (
            self.ctl.used_bytes.load(Relaxed),
            self.ctl.used_blocks.load(Relaxed),
            stats.free_bytes,
            stats.free_blocks,
        ) != (
            used_bytes + cached_bytes,
            used_blocks + cached_blocks,
            free_bytes,
            free.len() as u64,
        ) {
            return Err(corrupt(
                self.ctl_offset,
                "usage counters disagree with the blocks",
            ));
        }
        // What the walk saw, exactly; caches of other processes may have moved since.
        Ok(HeapStats {
            used_bytes,
            used_blocks,
            cached_bytes,
            cached_blocks,
            ..stats
        })
    }

    /// Rebuilds everything derived from the block chain: boundary tags, merges of adjacent
    /// free blocks, the arena end, the bins and maps and the counters. Run after a holder
    /// of the heap lock died; itself safe to interrupt (it is simply run again).
    pub(crate) fn rebuild(
        region: &'a Region,
        ctl: &'a HeapControl,
        ctl_offset: u64,
    ) -> Result<(), HeapError> {
        let start = ctl.arena_start.load(Acquire);
        // The chain, not the stored arena end, says where the arena ends: a grow may
        // have published a new sentinel before it updated `arena_end`.
        let limit = region.len() & !(GRAIN - 1);
        check_arena(region, ctl_offset, start, limit)?;
        let wide = Core {
            region,
            ctl,
            ctl_offset,
            start,
            end: limit,
        };
        let mut b = start;
        let (mut last, mut last_size, mut last_free) = (0, 0, false);
        let mut end = None;
        for _ in 0..=wide.max_blocks() {
            let head = wide.word(b)?.load(Acquire);
            let (size, used) = decode(b, head).ok_or(corrupt(b, "block header check failed"))?;
            if size == 0 {
                if !used {
                    return Err(corrupt(b, "end marker is not marked used"));
                }
                wide.put(b + PREV_SIZE, last_size, Relaxed)?;
                end = Some(b + HEADER);
                break;
            }
            if size < MIN_BLOCK {
                return Err(corrupt(b, "block is smaller than the minimum"));
            }
            if size > limit - HEADER - b {
                // Either corruption or a growth this mapping does not cover yet.
                return Err(HeapError::Unmapped {
                    end: b.saturating_add(size).saturating_add(HEADER),
                    mapped: region.len(),
                });
            }
            if !used && last_free {
                last_size += size;
                wide.put(last, encode(last, last_size, false), Release)?;
            } else {
                wide.put(b + PREV_SIZE, last_size, Relaxed)?;
                (last, last_size, last_free) = (b, size, !used);
            }
            b += size;
        }
        let end = end.ok_or(corrupt(b, "block chain does not reach an end marker"))?;
        ctl.arena_end.store(end, Release);
        let core = Core::new(region, ctl, ctl_offset)?;
        for w in ctl
            .small_heads
            .iter()
            .chain(&ctl.large_heads)
            .chain(&ctl.large_sub_maps)
        {
            w.store(0, Relaxed);
        }
        for w in [
            &ctl.small_map,
            &ctl.large_map,
            &ctl.used_bytes,
            &ctl.used_blocks,
            &ctl.free_bytes,
            &ctl.free_blocks,
        ] {
            w.store(0, Relaxed);
        }
        core.walk(|b, size, used| {
            if used {
                add(&ctl.used_bytes, size);
                add(&ctl.used_blocks, 1);
                Ok(())
            } else {
                core.insert(b, size)
            }
        })?;
        add(&ctl.repairs, 1);
        // A repair also takes back what dead processes' caches held.
        super::cache::reclaim_dead(&core)?;
        Ok(())
    }
}

/// Checks that an arena `[start, end)` is well-formed, mapped and clear of the control
/// block at `ctl_offset`.
pub(crate) fn check_arena(
    region: &Region,
    ctl_offset: u64,
    start: u64,
    end: u64,
) -> Result<(), HeapError> {
    let bad = |what| HeapError::BadControl { what };
    if !start.is_multiple_of(GRAIN) || !end.is_multiple_of(GRAIN) {
        return Err(bad("arena bounds are not multiples of 16"));
    }
    if end < start || end - start < MIN_BLOCK + HEADER {
        return Err(bad("arena is smaller than one block and the end marker"));
    }
    if end - start >= super::layout::MAX_BLOCK {
        return Err(bad("arena is larger than 2^48 bytes"));
    }
    if end > region.len() {
        return Err(HeapError::Unmapped {
            end,
            mapped: region.len(),
        });
    }
    let ctl_end = ctl_offset + super::layout::HEAP_CONTROL_SIZE;
    if start < ctl_end && ctl_offset < end {
        return Err(bad("arena overlaps the heap control block"));
    }
    Ok(())
}

/// Fault injection for the kill-safety tests (debug builds only): make the process die
/// abruptly, holding the heap lock, at a chosen store.
#[cfg(debug_assertions)]
pub mod fault {
    use core::sync::atomic::AtomicU64;
    use core::sync::atomic::Ordering::Relaxed;

    static COUNTDOWN: AtomicU64 = AtomicU64::new(0);

    /// The calling process `_exit(77)`s right before the `n`-th store the allocator makes
    /// from now on, counting the kill points the layers above mark with [`point`] as
    /// stores too (0 disables). For tests in forked children only.
    pub fn exit_before_store(n: u64) {
        COUNTDOWN.store(n, Relaxed);
    }

    /// A kill point (see [`exit_before_store`]).
    pub fn point() {
        match COUNTDOWN.load(Relaxed) {
            0 => {}
            // SAFETY: _exit has no preconditions; dying here, mid-operation and holding
            // the lock, is the point of the exercise.
            1 => unsafe { libc::_exit(77) },
            n => COUNTDOWN.store(n - 1, Relaxed),
        }
    }
}

#[cfg(not(debug_assertions))]
pub mod fault {
    /// A kill point: nothing in release builds.
    #[inline(always)]
    pub fn point() {}
}
