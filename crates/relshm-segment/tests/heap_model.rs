//! The allocator against a model: random alloc/free/extend sequences must never hand out
//! overlapping or misaligned memory, must keep the counters equal to the model's, and must
//! get every byte back once everything is freed. Plus best-fit and misuse checks.

mod heap_common;

use std::collections::BTreeMap;

use heap_common::Mem;
use proptest::prelude::*;
use relshm_segment::heap::{HEAP_CONTROL_SIZE, Heap, HeapError};

const ARENA_START: u64 = 8192;
/// Block size serving a request with alignment up to 16 (header included).
fn block_for(size: u64) -> u64 {
    (size + 16).next_multiple_of(16).max(32)
}

#[derive(Debug, Clone)]
enum Op {
    Alloc { size: u64, align_log2: u32 },
    Free { pick: usize },
    Extend { by: u64 },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0u64..256, 0u32..5).prop_map(|(size, align_log2)| Op::Alloc { size, align_log2 }),
        2 => (256u64..20_000, 0u32..10).prop_map(|(size, align_log2)| Op::Alloc { size, align_log2 }),
        5 => any::<usize>().prop_map(|pick| Op::Free { pick }),
        1 => (2u64..64).prop_map(|k| Op::Extend { by: k * 256 }),
    ]
}

struct Live {
    size: u64,
    fill: u8,
}

fn write_fill(mem: &Mem, off: u64, len: u64, byte: u8) {
    let p = mem.region().resolve(off, len, 1).unwrap();
    // SAFETY: a live allocation of at least len bytes, used only by this test thread.
    unsafe { p.as_ptr().write_bytes(byte, len as usize) };
}

fn intact(mem: &Mem, off: u64, len: u64, byte: u8) -> bool {
    let p = mem.region().resolve(off, len, 1).unwrap();
    // SAFETY: as in fill; the slice is dropped before the allocation is freed.
    let bytes = unsafe { core::slice::from_raw_parts(p.as_ptr(), len as usize) };
    bytes.iter().all(|&b| b == byte)
}

fn check_stats(heap: &Heap, model: &BTreeMap<u64, Live>, arena: u64) {
    let stats = heap.verify().expect("heap verifies");
    assert_eq!(stats.used_blocks, model.len() as u64);
    let min: u64 = model.values().map(|l| block_for(l.size)).sum();
    // A split leaves no remainder below 32 bytes, so a block is at most 16 bytes larger
    // than its request's block size.
    assert!(
        (min..=min + 16 * model.len() as u64).contains(&stats.used_bytes),
        "used {} outside [{min}, {}]",
        stats.used_bytes,
        min + 16 * model.len() as u64
    );
    assert_eq!(stats.arena_bytes, arena);
    assert_eq!(stats.used_bytes + stats.free_bytes + 16, arena);
    assert!(stats.largest_free + 16 <= stats.free_bytes.max(16));
}

fn run(ops: Vec<Op>) {
    let mem = Mem::private(1 << 20);
    let mut end = ARENA_START + (64 << 10);
    // SAFETY: fresh private memory used only through this heap.
    let heap = unsafe { Heap::init(mem.region(), 0, ARENA_START, end) }.unwrap();
    let mut model: BTreeMap<u64, Live> = BTreeMap::new();
    for (step, op) in ops.into_iter().enumerate() {
        match op {
            Op::Alloc { size, align_log2 } => {
                let align = 1u64 << align_log2;
                match heap.alloc(size, align) {
                    Ok(off) => {
                        assert_eq!(off % align, 0, "misaligned");
                        assert!(off >= ARENA_START + 16 && off + size <= end - 16);
                        if let Some((&p, l)) = model.range(..off).next_back() {
                            assert!(p + l.size.max(1) <= off, "overlaps the block before");
                        }
                        if let Some((&n, _)) = model.range(off..).next() {
                            assert!(off + size.max(1) <= n, "overlaps the block after");
                        }
                        assert!(heap.usable_size(off).unwrap() >= size);
                        let fill = step as u8 | 1;
                        write_fill(&mem, off, size, fill);
                        model.insert(off, Live { size, fill });
                    }
                    Err(HeapError::OutOfMemory {
                        largest_free,
                        needed,
                        ..
                    }) => {
                        let need = block_for(size) + if align > 16 { align + 16 } else { 0 };
                        assert!(largest_free + 16 < need, "refused though a block fits");
                        // The error's own numbers say why: what it needs exceeds what it has.
                        assert_eq!(needed + 16, need, "alloc({size}, {align})");
                        assert!(needed > largest_free, "{needed} <= {largest_free}");
                    }
                    Err(e) => panic!("alloc({size}, {align}): {e}"),
                }
            }
            Op::Free { pick } => {
                if model.is_empty() {
                    continue;
                }
                let off = *model.keys().nth(pick % model.len()).unwrap();
                let live = model.remove(&off).unwrap();
                assert!(
                    intact(&mem, off, live.size, live.fill),
                    "payload at {off:#x} was overwritten"
                );
                heap.free(off).unwrap();
                assert!(matches!(
                    heap.free(off),
                    Err(HeapError::NotAllocated { .. })
                ));
            }
            Op::Extend { by } => {
                if end + by <= mem.region().len() {
                    heap.extend(end + by).unwrap();
                    end += by;
                }
            }
        }
        check_stats(&heap, &model, end - ARENA_START);
    }
    for (off, live) in std::mem::take(&mut model) {
        assert!(intact(&mem, off, live.size, live.fill));
        heap.free(off).unwrap();
    }
    let stats = heap.verify().unwrap();
    assert_eq!(
        (stats.used_blocks, stats.used_bytes, stats.free_blocks),
        (0, 0, 1)
    );
    assert_eq!(stats.largest_free, end - ARENA_START - 32, "space was lost");
    // The whole arena can be handed out again in one piece.
    let all = heap.alloc(stats.largest_free, 16).unwrap();
    heap.free(all).unwrap();
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]
    #[test]
    fn random_sequences_match_the_model(ops in proptest::collection::vec(op(), 1..160)) {
        run(ops);
    }
}

fn fresh(mem: &Mem, len: u64) -> Heap {
    // SAFETY: fresh memory used only through this heap.
    unsafe { Heap::init(mem.region(), 0, HEAP_CONTROL_SIZE.next_multiple_of(64), len) }.unwrap()
}

#[test]
fn small_and_large_requests_take_the_best_fit() {
    let mem = Mem::private(1 << 20);
    let heap = fresh(&mem, 1 << 20);
    let mut keep = Vec::new();
    let mut hole = |size| {
        let h = heap.alloc(size, 16).unwrap();
        keep.push(heap.alloc(16, 16).unwrap());
        h
    };
    let (s1, s2, s3) = (hole(400), hole(208), hole(300));
    let (l1, l2, l3) = (hole(9000), hole(5000), hole(7000));
    for h in [s1, s2, s3, l1, l2, l3] {
        heap.free(h).unwrap();
    }
    assert_eq!(heap.alloc(200, 16).unwrap(), s2);
    assert_eq!(heap.alloc(290, 8).unwrap(), s3);
    assert_eq!(heap.alloc(6000, 16).unwrap(), l3);
    assert_eq!(heap.alloc(4000, 16).unwrap(), l2);
    heap.verify().unwrap();
}

#[test]
fn free_coalesces_both_neighbours() {
    let mem = Mem::private(1 << 16);
    let heap = fresh(&mem, 1 << 16);
    let blocks: Vec<u64> = (0..5).map(|_| heap.alloc(100, 16).unwrap()).collect();
    for &i in &[1, 3, 2] {
        heap.free(blocks[i]).unwrap();
    }
    let stats = heap.verify().unwrap();
    // blocks 1..=3 merged into one; the tail after block 4 is the other free block.
    assert_eq!(stats.free_blocks, 2);
    assert_eq!(heap.alloc(3 * 128 - 16, 16).unwrap(), blocks[1]);
}

#[test]
fn misuse_is_refused() {
    let mem = Mem::private(1 << 16);
    let heap = fresh(&mem, 1 << 16);
    let a = heap.alloc(64, 16).unwrap();
    for bad in [0, a + 16, a - 8, a + 3, 1 << 40] {
        assert!(
            matches!(heap.free(bad), Err(HeapError::NotAllocated { .. })),
            "{bad:#x}"
        );
    }
    assert!(matches!(
        heap.alloc(8, 3),
        Err(HeapError::BadRequest { .. })
    ));
    assert!(matches!(
        heap.alloc(8, 8192),
        Err(HeapError::BadRequest { .. })
    ));
    assert!(matches!(
        heap.alloc(u64::MAX - 4, 8),
        Err(HeapError::BadRequest { .. })
    ));
    assert!(matches!(
        heap.alloc(1 << 17, 8),
        Err(HeapError::OutOfMemory { .. })
    ));
    assert!(matches!(
        heap.extend(1 << 17),
        Err(HeapError::BadExtend { .. })
    ));
    heap.free(a).unwrap();
    assert!(matches!(heap.free(a), Err(HeapError::NotAllocated { .. })));
    assert_eq!(heap.verify().unwrap().free_blocks, 1);
}

#[test]
fn attach_sees_the_same_heap_and_rejects_garbage() {
    let mem = Mem::shared(1 << 16);
    let heap = fresh(&mem, 1 << 16);
    let a = heap.alloc(1000, 64).unwrap();
    let other = mem.remap();
    assert_ne!(other.base(), mem.base());
    // SAFETY: the same memory, used only through heap handles.
    let again = unsafe { Heap::attach(other.region(), 0) }.unwrap();
    assert_eq!(again.allocations().unwrap(), vec![a]);
    again.free(a).unwrap();
    assert_eq!(heap.stats().unwrap().used_blocks, 0);
    // SAFETY: as above; offset 64 holds no heap.
    let bad = unsafe { Heap::attach(mem.region(), 64) };
    assert!(matches!(bad, Err(HeapError::BadControl { .. })), "{bad:?}");
}
