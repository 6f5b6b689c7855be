//! Per-process caches: accounting, double frees, remote frees, and kill safety (children
//! SIGKILLed, or made to die at a chosen store, while their caches hold blocks and while
//! they refill or drain them; after the reclaim every byte is back).

mod heap_common;

use std::sync::atomic::Ordering::{Acquire, Relaxed};
use std::time::Duration;

use heap_common::Mem;
use rand::{Rng, SeedableRng, rngs::StdRng};
use relshm_segment::heap::{Heap, HeapError, own_process_owner};
use relshm_testkit::{Exit, Scratch, fork_child};

const START: u64 = 8192;
const MAPPED: usize = 2 << 20;
const OPS: usize = 0;

fn fresh(mem: &Mem) -> Heap {
    // SAFETY: fresh memory, used only through heap handles.
    unsafe { Heap::init(mem.region(), 0, START, MAPPED as u64) }.unwrap()
}

/// Bytes the caches' bookkeeping takes (blocks of owner 0).
fn bookkeeping(heap: &Heap) -> usize {
    heap.cached()
        .unwrap()
        .iter()
        .filter(|(_, o)| *o == 0)
        .count()
}

#[test]
fn cached_blocks_are_accounted_and_not_allocations() {
    let mem = Mem::shared(MAPPED);
    let heap = fresh(&mem).with_cache(3).unwrap();
    assert!(heap.has_cache());
    let base = heap.verify().unwrap();
    let mut held: Vec<u64> = (0..200).map(|i| heap.alloc(i % 257, 16).unwrap()).collect();
    let s = heap.verify().unwrap();
    assert_eq!(s.used_blocks, 200);
    assert_eq!(heap.allocations().unwrap(), {
        let mut h = held.clone();
        h.sort();
        h
    });
    // stats (from the caches' tallies) agree with verify (from the chain) when quiet.
    let quick = heap.stats().unwrap();
    assert_eq!(
        (quick.used_bytes, quick.cached_bytes),
        (s.used_bytes, s.cached_bytes)
    );
    for off in held.drain(..) {
        heap.free(off).unwrap();
    }
    let s = heap.verify().unwrap();
    assert_eq!((s.used_blocks, s.used_bytes), (0, 0));
    assert!(s.cached_blocks > 0, "frees went to the cache");
    assert!(heap.allocations().unwrap().is_empty());
    // Every cached block names this process (or is bookkeeping).
    let me = own_process_owner();
    assert!(
        heap.cached()
            .unwrap()
            .iter()
            .all(|&(_, o)| o == me || o == 0)
    );
    // A flush gives everything but the bookkeeping back.
    heap.flush_cache().unwrap();
    let s = heap.verify().unwrap();
    assert_eq!(s.cached_blocks as usize, bookkeeping(&heap));
    assert_eq!(
        s.free_bytes + s.cached_bytes + 16,
        base.arena_bytes,
        "nothing lost"
    );
}

#[test]
fn double_frees_are_refused_on_both_paths() {
    let mem = Mem::shared(MAPPED);
    let heap = fresh(&mem).with_cache(0).unwrap();
    // SAFETY: the same memory, used only through heap handles.
    let plain = unsafe { Heap::attach(mem.region(), 0) }.unwrap();
    let a = heap.alloc(64, 16).unwrap();
    heap.free(a).unwrap();
    assert_eq!(heap.free(a), Err(HeapError::NotAllocated { offset: a }));
    assert_eq!(plain.free(a), Err(HeapError::NotAllocated { offset: a }));
    assert_eq!(
        plain.usable_size(a),
        Err(HeapError::NotAllocated { offset: a })
    );
    let b = plain.alloc(64, 16).unwrap();
    plain.free(b).unwrap();
    assert!(heap.free(b).is_err());
    heap.verify().unwrap();
}

#[test]
fn remote_frees_and_slot_take_over() {
    let mem = Mem::shared(MAPPED);
    let heap = fresh(&mem).with_cache(0).unwrap();
    let scratch = Scratch::new();
    // The child allocates through its own cache and leaves its blocks for the parent.
    let child = fork_child(|| {
        let mine = mem.remap();
        // SAFETY: the memfd's bytes are used only through heap handles.
        let h = unsafe { Heap::attach(mine.region(), 0) }
            .unwrap()
            .with_cache(1)
            .unwrap();
        if !h.has_cache() {
            return 3;
        }
        for i in 0..100 {
            let off = h.alloc(48, 16).unwrap();
            scratch.slot(1 + i).store(off, Relaxed);
        }
        0
    });
    assert_eq!(child.wait(), Exit::Code(0));
    // Remote frees: blocks the dead child allocated go to the parent's cache.
    for i in 0..100 {
        heap.free(scratch.slot(1 + i).load(Acquire)).unwrap();
    }
    assert_eq!(heap.verify().unwrap().used_blocks, 0);
    // The child's cache still holds the rest of its refills; its slot goes to the next
    // claimer, which reclaims them first.
    let dead = heap
        .cached()
        .unwrap()
        .iter()
        .filter(|&&(_, o)| o != 0 && o != own_process_owner())
        .count();
    assert!(dead > 0);
    // SAFETY: as above.
    let again = unsafe { Heap::attach(mem.region(), 0) }
        .unwrap()
        .with_cache(1)
        .unwrap();
    assert!(again.has_cache());
    assert!(
        heap.cached()
            .unwrap()
            .iter()
            .all(|&(_, o)| o == 0 || o == own_process_owner())
    );
    heap.flush_cache().unwrap();
    let s = heap.verify().unwrap();
    assert_eq!(
        s.free_bytes + s.cached_bytes + 16,
        s.arena_bytes,
        "nothing lost"
    );
}

/// A child's work: small allocations and frees through its cache, in bursts that make it
/// refill and drain all the time, forever (or until its chosen store).
fn hammer(mem: &Mem, scratch: &Scratch, seed: u64, die_at: u64) -> i32 {
    let mine = mem.remap();
    // SAFETY: the memfd's bytes are used only through heap handles.
    let heap = unsafe { Heap::attach(mine.region(), 0) }
        .unwrap()
        .with_cache(1 + (seed % 4) as u32)
        .unwrap();
    if !heap.has_cache() {
        return 3;
    }
    let mut rng = StdRng::seed_from_u64(seed);
    let mut held: Vec<u64> = Vec::new();
    if die_at != 0 {
        #[cfg(debug_assertions)]
        relshm_segment::heap::exit_before_store(die_at);
    }
    loop {
        let burst = rng.gen_range(1..40);
        if rng.gen_bool(0.5) || held.is_empty() {
            for _ in 0..burst {
                let size = [16, 48, 64, 100, 256][rng.gen_range(0..5)];
                match heap.alloc(size, 16) {
                    Ok(off) => held.push(off),
                    Err(e) => panic!("alloc: {e}"),
                }
            }
        } else {
            for _ in 0..burst.min(held.len()) {
                let off = held.swap_remove(rng.gen_range(0..held.len()));
                heap.free(off).expect("free");
            }
        }
        if held.len() > 400 {
            for off in held.drain(..) {
                heap.free(off).expect("free");
            }
        }
        scratch.slot(OPS).fetch_add(1, Relaxed);
    }
}

#[test]
fn children_killed_holding_cached_blocks_lose_nothing() {
    let mem = Mem::shared(MAPPED);
    let heap = fresh(&mem);
    let arena = heap.verify().unwrap().arena_bytes;
    let scratch = Scratch::new();
    let mut rng = StdRng::seed_from_u64(0xcac4e);
    let mut reclaimed = 0;
    for i in 0..60u64 {
        // Half die at a chosen store (inside a pop, push, refill or drain), half are
        // SIGKILLed at a random moment.
        let die_at = if cfg!(debug_assertions) && i % 2 == 0 {
            rng.gen_range(1..3000)
        } else {
            0
        };
        let before = scratch.slot(OPS).load(Acquire);
        let child = fork_child(|| hammer(&mem, &scratch, i, die_at));
        if die_at != 0 {
            assert_eq!(child.wait(), Exit::Code(77), "child {i}");
        } else {
            scratch.wait_for(OPS, before + rng.gen_range(1..30), Duration::from_secs(60));
            std::thread::sleep(Duration::from_micros(rng.gen_range(0..300)));
            assert_eq!(
                child.kill_and_wait(),
                Exit::Signal(libc::SIGKILL),
                "child {i}"
            );
        }
        reclaimed += heap.reclaim_dead_owners().unwrap();
        reclaimed += heap.reclaim_dead_caches().unwrap();
        let s = heap
            .verify()
            .unwrap_or_else(|e| panic!("after child {i}: {e}"));
        // Only bookkeeping stays cached: the dead child's cache is back in the heap.
        assert_eq!(
            s.cached_blocks as usize,
            bookkeeping(&heap),
            "after child {i}"
        );
        // What the child held itself is leaked like any plain allocation; free it.
        for off in heap.allocations().unwrap() {
            heap.free(off).unwrap();
        }
        let s = heap.verify().unwrap();
        assert_eq!((s.used_bytes, s.used_blocks), (0, 0), "after child {i}");
        assert_eq!(
            s.free_bytes + s.cached_bytes + 16,
            arena,
            "space lost after child {i}"
        );
    }
    let _ = reclaimed;
    eprintln!(
        "60 kills, {} repairs, {} ops",
        heap.verify().unwrap().repairs,
        scratch.slot(OPS).load(Acquire)
    );
}

#[test]
fn a_segment_keeps_one_heap_handle_per_mapped_length_and_its_cache_across_growth() {
    use relshm_segment::{CreateOptions, Segment};
    let seg = Segment::create_unnamed(&CreateOptions::new(1 << 20).max_size(64 << 20)).unwrap();
    let small = seg.alloc(64, 16).unwrap(); // claims this mapping's cache slot
    let h = seg.heap_ref().unwrap();
    assert!(h.has_cache());
    assert!(
        std::ptr::eq(h, seg.heap_ref().unwrap()),
        "the same handle every call while the mapping keeps its length"
    );
    assert!(
        std::ptr::eq(h, seg.clone().heap_ref().unwrap()),
        "clones share it"
    );

    // Growing (here by allocating more than the segment holds) makes a new handle over the
    // new length, which keeps the claimed slot: small blocks still come from the cache.
    let big = seg.alloc(4 << 20, 64).unwrap();
    let grown = seg.heap_ref().unwrap();
    assert!(!std::ptr::eq(h, grown));
    assert_eq!(grown.region().len(), seg.region().len());
    assert!(
        grown.has_cache(),
        "the grown mapping's handle lost the cache slot"
    );
    let in_new_part = seg.alloc(64, 16).unwrap();
    // The old handle is still valid (borrowed handles live as long as the mapping).
    assert!(h.has_cache());
    seg.free(in_new_part).unwrap();
    seg.free(big).unwrap();
    seg.free(small).unwrap();
    grown.verify().unwrap();

    // A forked child has no slot of its own: its handle is not the parent's and has no cache.
    let child = fork_child(|| {
        let mine = seg.heap_ref().unwrap();
        let fresh = !std::ptr::eq(mine, grown) && !mine.has_cache();
        let off = seg.alloc(64, 16).unwrap();
        let ok = seg.free(off).is_ok() && !seg.heap_ref().unwrap().has_cache();
        if fresh && ok { 0 } else { 1 }
    });
    assert_eq!(child.wait(), Exit::Code(0));
    assert!(std::ptr::eq(grown, seg.heap_ref().unwrap()));
}

#[test]
fn consecutive_cached_allocations_lie_in_address_order() {
    // A structure built by consecutive allocations should lie in memory in the order it was
    // built: a list chased backwards through memory read 17x slower at 1e6 nodes.
    let mem = Mem::shared(MAPPED);
    let heap = fresh(&mem).with_cache(1).unwrap();
    let offs: Vec<u64> = (0..500).map(|_| heap.alloc(48, 16).unwrap()).collect();
    assert!(
        offs.windows(2).all(|w| w[1] > w[0]),
        "out of address order: {offs:?}"
    );
    for o in offs {
        heap.free(o).unwrap();
    }
    heap.verify().unwrap();
}
