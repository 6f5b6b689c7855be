//! Deterministic kill safety: a forked child runs a fixed script of allocator operations
//! and dies (`_exit`, holding the lock) right before its n-th store, for every n until the
//! script completes. Another child then dies part-way through the repair. The parent must
//! find the heap repairable every time, with no space lost once the leaks are freed.
#![cfg(debug_assertions)]

mod heap_common;

use std::time::Duration;

use heap_common::Mem;
use relshm_segment::Region;
use relshm_segment::heap::{Heap, HeapError, exit_before_store};
use relshm_testkit::{Exit, fork_child};

const START: u64 = 8192;
const END: u64 = 64 << 10;
const MAPPED: usize = 128 << 10;

/// Splits (small, large, over-aligned), frees that merge forwards, backwards and both
/// ways, and growth with a free and with a used last block.
fn script(heap: &Heap) {
    let a = heap.alloc(100, 16).unwrap();
    let b = heap.alloc(2000, 16).unwrap();
    let c = heap.alloc(300, 256).unwrap();
    let d = heap.alloc(50, 8).unwrap();
    heap.free(b).unwrap();
    heap.free(a).unwrap();
    let e = heap.alloc(5000, 64).unwrap();
    heap.free(d).unwrap();
    heap.extend(END + 4096).unwrap();
    let rest = heap.stats().unwrap().largest_free;
    let f = heap.alloc(rest, 16).unwrap();
    heap.extend(END + 8192).unwrap();
    heap.free(c).unwrap();
    heap.free(e).unwrap();
    heap.free(f).unwrap();
}

fn run_child(mem: &Mem, f: impl FnOnce(&Heap)) -> Exit {
    fork_child(|| {
        let mine = mem.remap();
        assert_ne!(mine.base(), mem.base());
        // SAFETY: the memfd is used only through heap handles.
        let heap = unsafe { Heap::attach(mine.region(), 0) }.unwrap();
        f(&heap);
        0
    })
    .wait_timeout(Duration::from_secs(60))
}

#[test]
fn death_before_any_store_is_repaired() {
    let mem = Mem::shared(MAPPED);
    let mut n = 1;
    loop {
        // SAFETY: no child is alive; the memory is used only through heap handles.
        let heap = unsafe { Heap::init(mem.region(), 0, START, END) }.unwrap();
        let exit = run_child(&mem, |heap| {
            exit_before_store(n);
            script(heap);
        });
        if exit == Exit::Code(0) {
            break;
        }
        assert_eq!(exit, Exit::Code(77), "script child at store {n}");
        // A second holder dies during the repair itself.
        let k = n % 7 + 1;
        let exit = run_child(&mem, |heap| {
            exit_before_store(k);
            heap.verify().unwrap();
        });
        assert!(matches!(exit, Exit::Code(0 | 77)), "repair child: {exit:?}");

        let stats = heap
            .verify()
            .unwrap_or_else(|e| panic!("death before store {n}: {e}"));
        assert!(stats.repairs >= 1, "death before store {n} went unnoticed");
        for off in heap.allocations().unwrap() {
            heap.free(off).unwrap();
        }
        let after = heap.verify().unwrap();
        assert_eq!((after.used_blocks, after.free_blocks), (0, 1), "store {n}");
        assert_eq!(after.free_bytes + 16, after.arena_bytes, "store {n}");
        assert!(
            [END, END + 4096, END + 8192].contains(&(START + after.arena_bytes)),
            "store {n}: arena end {}",
            START + after.arena_bytes
        );
        n += 1;
    }
    eprintln!(
        "the script makes {} stores; death before each one was repaired",
        n - 1
    );
    assert!(n > 50, "the script made only {} stores", n - 1);
}

#[test]
fn a_process_that_cannot_repair_does_not_brick_the_lock() {
    let mem = Mem::shared(MAPPED);
    // SAFETY: fresh memory, used only through heap handles.
    let full = unsafe { Heap::init(mem.region(), 0, START, END) }.unwrap();
    // A handle whose mapping predates the growth below.
    // SAFETY: a prefix of `mem`'s mapping, which outlives it.
    let stale_region = unsafe { Region::new(mem.region().base(), END) };
    // SAFETY: as above.
    let stale = unsafe { Heap::attach(stale_region, 0) }.unwrap();
    let exit = run_child(&mem, |heap| {
        heap.extend(END + (32 << 10)).unwrap();
        exit_before_store(3);
        heap.alloc(100, 16).unwrap();
    });
    assert_eq!(exit, Exit::Code(77));
    let err = stale.alloc(100, 16).unwrap_err();
    assert!(matches!(err, HeapError::Unmapped { .. }), "{err}");
    // The process that maps everything repairs and carries on.
    let a = full.alloc(100, 16).unwrap();
    let stats = full.verify().unwrap();
    assert_eq!((stats.repairs, stats.used_blocks), (1, 1));
    full.free(a).unwrap();
    assert!(matches!(stale.alloc(8, 8), Err(HeapError::Unmapped { .. })));
}

#[test]
fn an_owned_allocation_is_never_lost_by_a_dying_allocator() {
    use relshm_segment::heap::{own_process_owner, owner_process};
    let mem = Mem::shared(MAPPED);
    let mut n = 1;
    loop {
        // SAFETY: no child is alive; the memory is used only through heap handles.
        let heap = unsafe { Heap::init(mem.region(), 0, START, END) }.unwrap();
        let keep = heap.alloc(64, 16).unwrap();
        let exit = run_child(&mem, |heap| {
            exit_before_store(n);
            let a = heap
                .alloc_owned(3000, 64, [own_process_owner(), 7])
                .unwrap();
            let b = heap.alloc_owned(100, 16, [own_process_owner(), 8]).unwrap();
            heap.free(a).unwrap();
            // Hand b to "the application" (owner kind 0): it must survive the reclaim.
            heap.transfer(b, [own_process_owner(), 8], 0).unwrap();
            exit_before_store(0);
        });
        // Every block the child holds names it as its owner, so the reclaim frees them all.
        let owned = heap.owned_allocations().unwrap();
        for (_, [owner, _]) in &owned {
            assert!(*owner == 0 || owner_process(*owner).is_some(), "store {n}");
        }
        heap.reclaim_dead_owners().unwrap();
        let left = heap.owned_allocations().unwrap();
        let mut all = heap.allocations().unwrap();
        all.retain(|&a| a != keep);
        assert_eq!(
            all.len(),
            left.len(),
            "store {n}: a block without an owner record"
        );
        if exit == Exit::Code(0) {
            assert_eq!(left.len(), 1, "the handed-on block survives");
            assert_eq!(left[0].1, [0, 8]);
            break;
        }
        assert_eq!(exit, Exit::Code(77), "child at store {n}");
        assert!(left.iter().all(|(_, r)| r[0] == 0), "store {n}: {left:?}");
        heap.verify().unwrap();
        n += 1;
    }
    assert!(n > 20, "only {n} stores");
}
