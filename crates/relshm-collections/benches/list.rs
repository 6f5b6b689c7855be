//! List traversal per pointer strategy against `std::collections::LinkedList` and
//! `VecDeque`, from L1-sized to DRAM-sized lists. Short run: few sizes, short measurement.

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use relshm_collections::arena::Arena;
use relshm_collections::list::List;
use relshm_ptr::{BaseRel, Offset, Raw, Repr, SegRel, Swizzle};
use relshm_segment::{CreateOptions, Segment};
use std::collections::{LinkedList, VecDeque};
use std::hint::black_box;
use std::time::Duration;

const SIZES: [u64; 3] = [1_000, 100_000, 1_000_000];

fn segment(n: u64) -> Segment {
    // 24-byte nodes (32 for SegRel) plus the heap's 16-byte block header.
    Segment::create_unnamed(&CreateOptions::new(n * 64 + (1 << 20))).unwrap()
}

fn traverse<R: Repr>(c: &mut Criterion, make: for<'s> fn(&'s Segment) -> Arena<R>) {
    let mut g = c.benchmark_group("list_traverse");
    for n in SIZES {
        let seg = segment(n);
        let arena = make(&seg);
        let list = List::<u64, R>::create(&arena).unwrap();
        {
            let mut guard = list.lock().unwrap();
            for i in 0..n {
                guard.push_back(i).unwrap();
            }
        }
        g.throughput(Throughput::Elements(n));
        g.bench_with_input(BenchmarkId::new(R::NAME, n), &n, |b, _| {
            let guard = list.lock().unwrap();
            b.iter(|| {
                let mut sum = 0u64;
                for v in guard.iter() {
                    sum = sum.wrapping_add(v.unwrap());
                }
                black_box(sum)
            })
        });
    }
    g.finish();
}

fn peers(c: &mut Criterion) {
    let mut g = c.benchmark_group("list_traverse");
    for n in SIZES {
        let ll: LinkedList<u64> = (0..n).collect();
        let vd: VecDeque<u64> = (0..n).collect();
        g.throughput(Throughput::Elements(n));
        g.bench_with_input(BenchmarkId::new("std_linkedlist", n), &n, |b, _| {
            b.iter(|| black_box(ll.iter().fold(0u64, |s, v| s.wrapping_add(*v))))
        });
        g.bench_with_input(BenchmarkId::new("std_vecdeque", n), &n, |b, _| {
            b.iter(|| black_box(vd.iter().fold(0u64, |s, v| s.wrapping_add(*v))))
        });
    }
    g.finish();
}

fn benches(c: &mut Criterion) {
    peers(c);
    traverse::<Raw>(c, |s| Arena::<Raw>::local(s).unwrap());
    traverse::<Offset>(c, |s| Arena::<Offset>::new(s).unwrap());
    traverse::<BaseRel>(c, |s| Arena::<BaseRel>::new(s).unwrap());
    traverse::<SegRel>(c, |s| Arena::<SegRel>::new(s).unwrap());
    traverse::<Swizzle>(c, |s| Arena::<Swizzle>::private(s).unwrap());
}

criterion_group! {
    name = list;
    config = Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(1));
    targets = benches
}
criterion_main!(list);
