//! relshm-sync's robust mutex against std, parking_lot and a robust process-shared
//! pthread mutex: uncontended lock+unlock, and contended throughput of two processes.

use criterion::{Criterion, criterion_group, criterion_main};
use relshm_benches::{PthreadRobust, Shm};
use relshm_sync::Mutex;
use relshm_testkit::fork_child;
use std::hint::black_box;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

fn uncontended(c: &mut Criterion) {
    let mut g = c.benchmark_group("uncontended_lock_unlock");
    let region = Shm::new(4096);
    let map = region.map();

    let m: &Mutex<u64> = map.at(0);
    g.bench_function("relshm_sync::Mutex (shm)", |b| {
        b.iter(|| {
            let mut x = black_box(m).lock().unwrap();
            *x += 1;
        })
    });
    let std_m = std::sync::Mutex::new(0u64);
    g.bench_function("std::sync::Mutex", |b| {
        b.iter(|| {
            let mut x = black_box(&std_m).lock().unwrap();
            *x += 1;
        })
    });
    let pl = parking_lot::Mutex::new(0u64);
    g.bench_function("parking_lot::Mutex", |b| {
        b.iter(|| {
            let mut x = black_box(&pl).lock();
            *x += 1;
        })
    });
    // SAFETY: offset 1024 is 8-aligned shared memory that outlives the benches.
    let pm = unsafe { PthreadRobust::init(map.ptr(1024)) };
    let counter: &AtomicU64 = map.at(2048);
    g.bench_function("pthread robust pshared (shm)", |b| {
        b.iter(|| {
            black_box(&pm).lock();
            counter.store(counter.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
            pm.unlock();
        })
    });
    g.finish();
}

/// Runs `iters` lock/increment/unlock rounds in this process and in a forked child at the
/// same time (each on its own mapping of the region); returns the wall time for all
/// `2 * iters` rounds. `op(map)` does one round.
fn two_processes(
    region: &Shm,
    iters: u64,
    op: &(dyn Fn(&relshm_benches::Mapping) + Sync),
) -> Duration {
    let parent = region.map();
    let go: &AtomicU32 = parent.at(3072);
    let ready: &AtomicU32 = parent.at(3076);
    go.store(0, Ordering::SeqCst);
    ready.store(0, Ordering::SeqCst);
    let child = fork_child(|| {
        let map = region.map();
        let go: &AtomicU32 = map.at(3072);
        let ready: &AtomicU32 = map.at(3076);
        ready.store(1, Ordering::SeqCst);
        while go.load(Ordering::Acquire) == 0 {
            std::hint::spin_loop();
        }
        for _ in 0..iters {
            op(&map);
        }
        0
    });
    while ready.load(Ordering::Acquire) == 0 {
        std::thread::yield_now();
    }
    let t = Instant::now();
    go.store(1, Ordering::Release);
    for _ in 0..iters {
        op(&parent);
    }
    assert!(child.wait().success());
    t.elapsed()
}

fn contended(c: &mut Criterion) {
    let mut g = c.benchmark_group("contended_2_processes");
    let region = Shm::new(4096);
    {
        let init = region.map();
        // SAFETY: offset 1024 is 8-aligned shared memory, initialised once here.
        let _ = unsafe { PthreadRobust::init(init.ptr(1024)) };
        std::mem::forget(init); // keep the pages' first mapping for the bench's duration
    }
    g.bench_function("relshm_sync::Mutex", |b| {
        b.iter_custom(|iters| {
            two_processes(&region, iters, &|map| {
                let m: &Mutex<u64> = map.at(0);
                let mut x = m.lock().unwrap();
                *x += 1;
            })
        })
    });
    g.bench_function("pthread robust pshared", |b| {
        b.iter_custom(|iters| {
            two_processes(&region, iters, &|map| {
                // SAFETY: initialised above, mapped through `map`.
                let pm = unsafe { PthreadRobust::attach(map.ptr(1024)) };
                let counter: &AtomicU64 = map.at(2048);
                pm.lock();
                counter.store(counter.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
                pm.unlock();
            })
        })
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(20);
    targets = uncontended, contended
}
criterion_main!(benches);
