//! The in-segment allocator against the system allocator: one alloc/free pair, and batches
//! of 1000 random-size allocations freed in random order, for small (16..256 B) and large
//! (4..64 KiB) blocks. Run: `cargo bench -p relshm-segment --bench heap`.

use std::alloc::{Layout, alloc, dealloc};
use std::hint::black_box;
use std::ptr::NonNull;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng, rngs::StdRng};
use relshm_segment::Region;
use relshm_segment::heap::{HEAP_CONTROL_SIZE, Heap};
use relshm_sync::LockError;

const ARENA: usize = 256 << 20;

struct Workload {
    sizes: Vec<u64>,
    order: Vec<usize>,
}

fn workload(range: std::ops::Range<u64>) -> Workload {
    let mut rng = StdRng::seed_from_u64(7);
    let sizes: Vec<u64> = (0..1000).map(|_| rng.gen_range(range.clone())).collect();
    let mut order: Vec<usize> = (0..sizes.len()).collect();
    order.shuffle(&mut rng);
    Workload { sizes, order }
}

fn bench(c: &mut Criterion) {
    let layout = Layout::from_size_align(ARENA, 4096).unwrap();
    // SAFETY: a fresh allocation, used only through the heap, freed at the end.
    let base = unsafe { alloc(layout) };
    // SAFETY: page-aligned, writable, outlives the heap.
    let region = unsafe { Region::new(NonNull::new(base).unwrap(), ARENA as u64) };
    // SAFETY: nobody else uses the memory.
    let heap = unsafe { Heap::init(region, 0, HEAP_CONTROL_SIZE, ARENA as u64) }.unwrap();

    let mut g = c.benchmark_group("pair");
    // The floor under every heap operation: one robust lock/unlock.
    let lock = relshm_sync::RawMutex::new();
    g.bench_function("lock-unlock", |b| {
        b.iter(|| {
            let held = relshm_sync::Held::mutex(&lock, None, || Ok::<(), LockError>(()));
            drop(black_box(held.unwrap()));
        })
    });
    for size in [64u64, 32 << 10] {
        g.bench_function(format!("relshm/{size}"), |b| {
            b.iter(|| heap.free(heap.alloc(black_box(size), 16).unwrap()).unwrap())
        });
        let l = Layout::from_size_align(size as usize, 16).unwrap();
        g.bench_function(format!("system/{size}"), |b| {
            // SAFETY: l has non-zero size; the pointer is freed with the same layout.
            b.iter(|| unsafe { dealloc(black_box(alloc(l)), l) })
        });
    }
    // The same pair through a per-process cache (what a Segment's heap handle uses).
    let cached = heap.clone().with_cache(0).unwrap();
    assert!(cached.has_cache());
    g.bench_function("relshm-cached/64", |b| {
        b.iter(|| {
            cached
                .free(cached.alloc(black_box(64), 16).unwrap())
                .unwrap()
        })
    });
    // And through a Segment, the path every collection takes (its mapping's handle).
    let seg =
        relshm_segment::Segment::create_unnamed(&relshm_segment::CreateOptions::new(16 << 20))
            .unwrap();
    g.bench_function("segment/64", |b| {
        b.iter(|| seg.free(seg.alloc(black_box(64), 16).unwrap()).unwrap())
    });
    g.finish();
    cached.flush_cache().unwrap();

    let mut g = c.benchmark_group("batch1000");
    for (name, range) in [("small", 16..256), ("large", 4096..65_536)] {
        let w = workload(range);
        let mut offs = vec![0u64; w.sizes.len()];
        g.bench_function(format!("relshm/{name}"), |b| {
            b.iter(|| {
                for (o, &s) in offs.iter_mut().zip(&w.sizes) {
                    *o = heap.alloc(s, 16).unwrap();
                }
                for &i in &w.order {
                    heap.free(offs[i]).unwrap();
                }
            })
        });
        let mut ptrs = vec![core::ptr::null_mut(); w.sizes.len()];
        g.bench_function(format!("system/{name}"), |b| {
            b.iter(|| {
                for (p, &s) in ptrs.iter_mut().zip(&w.sizes) {
                    // SAFETY: non-zero size; freed below with the same layout.
                    *p = unsafe { alloc(Layout::from_size_align(s as usize, 16).unwrap()) };
                }
                for &i in &w.order {
                    let l = Layout::from_size_align(w.sizes[i] as usize, 16).unwrap();
                    // SAFETY: allocated above with this layout.
                    unsafe { dealloc(ptrs[i], l) };
                }
            })
        });
    }
    g.finish();
    heap.verify().unwrap();
    // SAFETY: allocated above with this layout; the heap handle is not used any more.
    unsafe { dealloc(base, layout) };
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(1))
        .sample_size(20);
    targets = bench
}
criterion_main!(benches);
