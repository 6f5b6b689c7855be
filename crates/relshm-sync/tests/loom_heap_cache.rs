//! Loom model of relshm-segment's per-process heap cache hand-off (`heap/cache.rs`): the
//! pop/push of a slot's stack under the slot lock, refill and drain under the heap lock,
//! the compare-exchange of a block's size word that decides racing frees (cache against
//! cache, cache against the heap's own free), and the reclaim of a dead process's cache.
//!
//! It lives here because relshm-sync is the crate built under loom (relshm-segment's
//! segments are real memory); it models the protocol, not the segment code. Blocks are
//! three words (size-word state, stack link, owner), the heap is a mutex over a free
//! list derived from the states (as the real free lists are derived from the block chain
//! and rebuilt after a holder's death). A process "dies" by stopping at its n-th step,
//! for every n, leaving whatever it held.
//!
//! Run with `.ci/loom` (`RUSTFLAGS="--cfg loom" cargo test -p relshm-sync --release
//! --test loom_heap_cache`).
#![cfg(loom)]

use std::cell::Cell;

use loom::sync::atomic::AtomicU64;
use loom::sync::atomic::Ordering::{AcqRel, Acquire, Relaxed, Release};
use loom::sync::{Arc, Mutex};
use loom::thread;

const BLOCKS: usize = 4;
const FREE: u64 = 0;
const USED: u64 = 1;
const CACHED: u64 = 2;
/// Blocks a refill takes (one for the caller); a stack drains above `LIMIT`.
const BATCH: usize = 2;
const LIMIT: u64 = 1;

struct Block {
    state: AtomicU64,
    link: AtomicU64,
    owner: AtomicU64,
}

struct Slot {
    lock: AtomicU64,
    head: AtomicU64,
    count: AtomicU64,
}

struct Heap {
    blocks: Vec<Block>,
    global: Mutex<Vec<usize>>,
    slots: Vec<Slot>,
}

impl Heap {
    fn new() -> Self {
        Heap {
            blocks: (0..BLOCKS)
                .map(|_| Block {
                    state: AtomicU64::new(FREE),
                    link: AtomicU64::new(0),
                    owner: AtomicU64::new(0),
                })
                .collect(),
            global: Mutex::new((0..BLOCKS).collect()),
            slots: (0..2)
                .map(|_| Slot {
                    lock: AtomicU64::new(0),
                    head: AtomicU64::new(0),
                    count: AtomicU64::new(0),
                })
                .collect(),
        }
    }
}

struct Died;
type R<T> = Result<T, Died>;

/// One thread of a process using cache slot `slot`; `fuel` steps until it dies.
struct Proc<'a> {
    heap: &'a Heap,
    slot: usize,
    owner: u64,
    fuel: Cell<u32>,
}

impl Proc<'_> {
    fn step(&self) -> R<()> {
        match self.fuel.get() {
            0 => Err(Died),
            f => {
                self.fuel.set(f - 1);
                Ok(())
            }
        }
    }

    fn s(&self) -> &Slot {
        &self.heap.slots[self.slot]
    }

    /// The slot lock. A death while holding it leaves it held: only the dead process's
    /// own threads ever take it, and the reclaim resets it.
    fn lock(&self) -> R<()> {
        loop {
            self.step()?;
            if self
                .s()
                .lock
                .compare_exchange(0, 1, Acquire, Relaxed)
                .is_ok()
            {
                return Ok(());
            }
            thread::yield_now();
        }
    }

    fn unlock(&self) {
        self.s().lock.store(0, Release);
    }

    /// Pushes `b` (already cached and named ours) under the slot lock.
    fn link_on(&self, b: usize) -> R<()> {
        self.step()?;
        self.heap.blocks[b]
            .link
            .store(self.s().head.load(Relaxed), Relaxed);
        self.step()?;
        self.s().head.store(b as u64 + 1, Relaxed);
        self.s().count.fetch_add(1, Relaxed);
        Ok(())
    }

    fn alloc(&self) -> R<Option<usize>> {
        self.lock()?;
        self.step()?;
        let top = self.s().head.load(Relaxed);
        if top != 0 {
            let b = top as usize - 1;
            self.step()?;
            let next = self.heap.blocks[b].link.load(Relaxed);
            self.step()?;
            self.s().head.store(next, Relaxed);
            self.s().count.fetch_sub(1, Relaxed);
            self.step()?;
            self.heap.blocks[b].state.store(USED, Release);
            self.unlock();
            return Ok(Some(b));
        }
        self.unlock();
        self.refill()
    }

    /// Under the heap lock: one block for the caller, the rest cached and pushed.
    fn refill(&self) -> R<Option<usize>> {
        self.step()?;
        let mut g = self.heap.global.lock().unwrap();
        let mut got = Vec::new();
        for i in 0..BATCH {
            let Some(b) = g.pop() else { break };
            self.step()?;
            if i > 0 {
                self.heap.blocks[b].owner.store(self.owner, Relaxed);
            }
            self.step()?;
            let st = if i == 0 { USED } else { CACHED };
            self.heap.blocks[b].state.store(st, Release);
            got.push(b);
        }
        if got.len() > 1 {
            self.lock()?;
            for &b in &got[1..] {
                self.link_on(b)?;
            }
            self.unlock();
        }
        drop(g);
        Ok(got.first().copied())
    }

    /// Frees `b` into this process's cache; `false` if someone else freed it first.
    fn free(&self, b: usize) -> R<bool> {
        self.step()?;
        self.heap.blocks[b].owner.store(self.owner, Relaxed);
        self.lock()?;
        self.step()?;
        if self.heap.blocks[b]
            .state
            .compare_exchange(USED, CACHED, AcqRel, Relaxed)
            .is_err()
        {
            self.unlock();
            return Ok(false);
        }
        self.link_on(b)?;
        let over = self.s().count.load(Relaxed) > LIMIT;
        self.unlock();
        if over {
            self.drain()?;
        }
        Ok(true)
    }

    /// Under the heap lock, then the slot lock: the stack down to `LIMIT`.
    fn drain(&self) -> R<()> {
        self.step()?;
        let mut g = self.heap.global.lock().unwrap();
        self.lock()?;
        while self.s().count.load(Relaxed) > LIMIT {
            self.step()?;
            let top = self.s().head.load(Relaxed) as usize - 1;
            let next = self.heap.blocks[top].link.load(Relaxed);
            self.step()?;
            self.s().head.store(next, Relaxed);
            self.s().count.fetch_sub(1, Relaxed);
            self.step()?;
            let freed = self.heap.blocks[top]
                .state
                .compare_exchange(CACHED, FREE, AcqRel, Relaxed);
            assert!(freed.is_ok(), "a stacked block is not cached");
            self.step()?;
            g.push(top);
        }
        self.unlock();
        drop(g);
        Ok(())
    }
}

/// The heap's own `free` (another process without a cache): compare-exchange under the
/// heap lock.
fn heap_free(heap: &Heap, b: usize) -> bool {
    let mut g = heap.global.lock().unwrap();
    if heap.blocks[b]
        .state
        .compare_exchange(USED, FREE, AcqRel, Relaxed)
        .is_ok()
    {
        g.push(b);
        true
    } else {
        false
    }
}

/// The reclaim and repair after `dead` died: its record reset, every cached block naming
/// it freed, the free list rebuilt from the states.
fn reclaim(heap: &Heap, dead: u64, slot: usize) {
    let mut g = heap.global.lock().unwrap();
    let s = &heap.slots[slot];
    s.lock.store(0, Relaxed);
    s.head.store(0, Relaxed);
    s.count.store(0, Relaxed);
    for b in &heap.blocks {
        if b.state.load(Relaxed) == CACHED && b.owner.load(Relaxed) == dead {
            b.state.store(FREE, Relaxed);
        }
    }
    *g = (0..BLOCKS)
        .filter(|&b| heap.blocks[b].state.load(Relaxed) == FREE)
        .collect();
}

/// Every block is in exactly one place: free (and listed once), cached in a live slot's
/// stack (once, counted), or used (held by a live caller, or leaked by a dead one, as a
/// plain allocation would be). Returns the blocks leaked.
fn check(heap: &Heap, held: &[usize], live_slots: &[usize]) -> usize {
    let g = heap.global.lock().unwrap();
    let mut place = [0u32; BLOCKS];
    for &b in g.iter() {
        assert_eq!(
            heap.blocks[b].state.load(Relaxed),
            FREE,
            "listed block {b} not free"
        );
        place[b] += 1;
    }
    for &s in live_slots {
        let slot = &heap.slots[s];
        assert_eq!(slot.lock.load(Relaxed), 0, "slot lock left held");
        let (mut cur, mut n) = (slot.head.load(Relaxed), 0);
        while cur != 0 {
            let b = cur as usize - 1;
            assert_eq!(heap.blocks[b].state.load(Relaxed), CACHED, "stacked {b}");
            place[b] += 1;
            n += 1;
            assert!(n <= BLOCKS, "stack cycle");
            cur = heap.blocks[b].link.load(Relaxed);
        }
        assert_eq!(slot.count.load(Relaxed), n as u64, "count");
    }
    for &b in held {
        assert_eq!(
            heap.blocks[b].state.load(Relaxed),
            USED,
            "held {b} not used"
        );
        place[b] += 1;
    }
    let mut leaked = 0;
    for (b, &p) in place.iter().enumerate() {
        let st = heap.blocks[b].state.load(Relaxed);
        if p == 0 {
            assert_ne!(st, CACHED, "block {b} cached but in no live stack");
            assert_eq!(st, USED, "block {b} lost");
            leaked += 1;
        }
        assert!(p <= 1, "block {b} in two places");
    }
    leaked
}

fn model(f: impl Fn() + Sync + Send + 'static) {
    let mut b = loom::model::Builder::new();
    if b.preemption_bound.is_none() {
        b.preemption_bound = Some(2);
    }
    b.check(f);
}

fn proc(heap: &Heap, slot: usize, owner: u64, fuel: u32) -> Proc<'_> {
    Proc {
        heap,
        slot,
        owner,
        fuel: Cell::new(fuel),
    }
}

#[test]
fn two_threads_share_a_slot() {
    model(|| {
        let heap = Arc::new(Heap::new());
        let t = {
            let heap = heap.clone();
            thread::spawn(move || {
                let p = proc(&heap, 0, 1, u32::MAX);
                let a = p.alloc().ok().flatten().unwrap();
                assert!(p.free(a).ok().unwrap());
            })
        };
        let p = proc(&heap, 0, 1, u32::MAX);
        let a = p.alloc().ok().flatten().unwrap();
        let b = p.alloc().ok().flatten();
        assert!(p.free(a).ok().unwrap());
        t.join().unwrap();
        let held: Vec<usize> = b.into_iter().collect();
        assert_eq!(check(&heap, &held, &[0]), 0);
    });
}

#[test]
fn racing_frees_of_one_block_free_it_once() {
    model(|| {
        let heap = Arc::new(Heap::new());
        let a = proc(&heap, 0, 1, u32::MAX).alloc().ok().flatten().unwrap();
        let t = {
            let heap = heap.clone();
            thread::spawn(move || heap_free(&heap, a))
        };
        // A remote free into process 2's cache, racing the heap's own free.
        let mine = proc(&heap, 1, 2, u32::MAX).free(a).ok().unwrap();
        let theirs = t.join().unwrap();
        assert!(mine ^ theirs, "exactly one free wins");
        assert_eq!(check(&heap, &[], &[0, 1]), 0);
    });
}

#[test]
fn a_process_dying_at_any_step_loses_nothing_after_reclaim() {
    for fuel in 0..40 {
        model(move || {
            let heap = Arc::new(Heap::new());
            // Process 1 dies at its `fuel`-th step, alone or while process 2 works.
            let t = {
                let heap = heap.clone();
                thread::spawn(move || {
                    let p = proc(&heap, 0, 1, fuel);
                    let _ = (|| -> R<()> {
                        let a = p.alloc()?.unwrap();
                        let b = p.alloc()?.unwrap();
                        p.free(a)?;
                        p.free(b)?;
                        let c = p.alloc()?.unwrap();
                        p.free(c)?;
                        Ok(())
                    })();
                })
            };
            let q = proc(&heap, 1, 2, u32::MAX);
            let mine = q.alloc().ok().flatten();
            t.join().unwrap();
            reclaim(&heap, 1, 0);
            let held: Vec<usize> = mine.into_iter().collect();
            // A block the dead process held as a caller stays allocated (one at most
            // here), like a plain allocation; nothing it cached is lost.
            assert!(check(&heap, &held, &[1]) <= 2);
        });
    }
}
