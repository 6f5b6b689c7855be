//! Kill safety: 200 children, each mapping the heap's memory again at its own address,
//! hammer alloc/free/extend and are SIGKILLed at random points. After each kill the parent
//! takes the lock (repairing if the child died holding it), checks every invariant, gets
//! back every byte the child leaked, and at the end serves a full round of allocations.

mod heap_common;

use std::sync::atomic::Ordering::{Acquire, Relaxed, Release};
use std::time::Duration;

use heap_common::Mem;
use rand::{Rng, SeedableRng, rngs::StdRng};
use relshm_segment::heap::{Heap, HeapError};
use relshm_testkit::{Exit, Scratch, fork_child};

const START: u64 = 8192;
const INITIAL_END: u64 = 1 << 20;
const MAPPED: usize = 2 << 20;
const CHILDREN: u64 = 200;
const OPS: usize = 0;
const CHILD_BASE: usize = 1;

/// A child's work: random allocations, frees and (rarely) growth, forever.
fn hammer(mem: &Mem, scratch: &Scratch, seed: u64) -> i32 {
    let mine = mem.remap();
    if mine.base() == mem.base() {
        return 3;
    }
    scratch.slot(CHILD_BASE).store(mine.base() as u64, Release);
    // SAFETY: the memfd's bytes are used only through heap handles.
    let heap = unsafe { Heap::attach(mine.region(), 0) }.expect("child attaches");
    let mut rng = StdRng::seed_from_u64(seed);
    let mut held: Vec<u64> = Vec::new();
    loop {
        let roll = rng.gen_range(0..1000);
        if roll < 3 {
            let end = START + heap.stats().expect("stats").arena_bytes;
            if end + 4096 <= MAPPED as u64 {
                heap.extend(end + 4096).expect("extend");
            }
        } else if roll < 550 || held.is_empty() {
            let size = if rng.gen_bool(0.8) {
                rng.gen_range(0..300)
            } else {
                rng.gen_range(300..30_000)
            };
            let align = 1 << rng.gen_range(0..8);
            match heap.alloc(size, align) {
                Ok(off) => held.push(off),
                Err(HeapError::OutOfMemory { .. }) => {
                    for off in held.drain(..) {
                        heap.free(off).expect("free after OOM");
                    }
                }
                Err(e) => panic!("alloc: {e}"),
            }
        } else {
            let off = held.swap_remove(rng.gen_range(0..held.len()));
            heap.free(off).expect("free");
        }
        scratch.slot(OPS).fetch_add(1, Relaxed);
    }
}

#[test]
fn children_killed_mid_operation_leave_a_repairable_heap() {
    let mem = Mem::shared(MAPPED);
    // SAFETY: fresh memory, used only through heap handles.
    let heap = unsafe { Heap::init(mem.region(), 0, START, INITIAL_END) }.unwrap();
    let scratch = Scratch::new();
    let mut rng = StdRng::seed_from_u64(0x5eed);
    for i in 0..CHILDREN {
        let before = scratch.slot(OPS).load(Acquire);
        let child = fork_child(|| hammer(&mem, &scratch, i));
        // Kill after a random number of operations plus a random delay.
        scratch.wait_for(OPS, before + rng.gen_range(1..40), Duration::from_secs(60));
        std::thread::sleep(Duration::from_micros(rng.gen_range(0..400)));
        assert_eq!(
            child.kill_and_wait(),
            Exit::Signal(libc::SIGKILL),
            "child {i} failed"
        );
        let child_base = scratch.slot(CHILD_BASE).load(Acquire);
        assert_ne!(
            child_base,
            mem.base() as u64,
            "child mapped at the parent's address"
        );

        let stats = heap
            .verify()
            .unwrap_or_else(|e| panic!("after child {i}: {e}"));
        for off in heap.allocations().unwrap() {
            heap.free(off).unwrap();
        }
        let after = heap.verify().unwrap();
        assert_eq!(
            (after.used_blocks, after.free_blocks),
            (0, 1),
            "after child {i}"
        );
        assert_eq!(
            after.free_bytes + 16,
            stats.arena_bytes,
            "space lost after child {i}"
        );
    }
    let stats = heap.verify().unwrap();
    eprintln!(
        "{} kills, {} repairs of a dead holder's half-done work, {} ops, arena {} bytes",
        CHILDREN,
        stats.repairs,
        scratch.slot(OPS).load(Acquire),
        stats.arena_bytes
    );
    assert!(
        stats.repairs >= 5,
        "too few kills landed inside the lock: {}",
        stats.repairs
    );

    // A full round: 100-byte requests take 128-byte blocks until the arena is exhausted.
    let mut round = Vec::new();
    loop {
        match heap.alloc(100, 16) {
            Ok(off) => round.push(off),
            Err(HeapError::OutOfMemory { .. }) => break,
            Err(e) => panic!("{e}"),
        }
    }
    assert_eq!(round.len() as u64, (stats.arena_bytes - 16) / 128);
    for off in round {
        heap.free(off).unwrap();
    }
    assert_eq!(heap.verify().unwrap().free_blocks, 1);
}
