//! The linked (unbounded) queue per pointer strategy, against the bounded ring queue:
//! batches of 64 pushes then 64 pops of a 16-byte value in one process (the cost of the
//! links and the locks, not of waiting).
//!
//! Run: `cargo bench -p relshm-collections --bench queue_linked`.

use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use relshm_collections::arena::Arena;
use relshm_collections::queue::linked::LinkedQueue;
use relshm_collections::queue::{Queue, QueueConfig};
use relshm_ptr::{Offset, Raw, Repr, SegRel};
use relshm_segment::{CreateOptions, Segment};

const BATCH: u64 = 64;

fn linked<R: Repr>(c: &mut Criterion, arena: &Arena<R>) {
    let q = LinkedQueue::<[u64; 2], R>::create(arena).unwrap();
    let mut g = c.benchmark_group("queue-push-pop");
    g.throughput(Throughput::Elements(BATCH));
    g.bench_function(format!("linked-{}", R::NAME), |b| {
        b.iter(|| {
            for i in 0..BATCH {
                q.push(&[i, i]).unwrap();
            }
            for _ in 0..BATCH {
                std::hint::black_box(q.pop().unwrap());
            }
        })
    });
    g.finish();
}

fn all(c: &mut Criterion) {
    let seg = Segment::create_unnamed(&CreateOptions::new(16 << 20)).unwrap();
    linked(c, &Arena::<Offset>::new(&seg).unwrap());
    linked(c, &Arena::<SegRel>::new(&seg).unwrap());
    linked(c, &Arena::<Raw>::local(&seg).unwrap());
    let ring = Queue::<[u64; 2]>::create(
        &Arena::<Offset>::new(&seg).unwrap(),
        QueueConfig::with_capacity(128),
    )
    .unwrap();
    let (tx, rx) = (ring.sender().unwrap(), ring.receiver().unwrap());
    let mut g = c.benchmark_group("queue-push-pop");
    g.throughput(Throughput::Elements(BATCH));
    g.bench_function("ring", |b| {
        b.iter(|| {
            for i in 0..BATCH {
                tx.try_send(&[i, i]).unwrap();
            }
            for _ in 0..BATCH {
                std::hint::black_box(rx.try_recv().unwrap());
            }
        })
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(1));
    targets = all
}
criterion_main!(benches);
