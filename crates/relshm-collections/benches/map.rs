//! Map get and insert/remove per pointer strategy against `std::collections::HashMap` with
//! the same hasher (FxHash), sizes 1e3..1e6, plus 1- vs 2-process read-mostly throughput
//! on one shared map. Short run: few sizes, short measurement. `MAP_MIN=1` runs an
//! interleaved fastest-of-N comparison instead (for loaded machines, see `min_of_n`).

use criterion::{Bencher, BenchmarkId, Criterion, Throughput, criterion_group};
use rand::{Rng, SeedableRng, rngs::StdRng};
use relshm_collections::arena::Arena;
use relshm_collections::map::{Map, MapHasher};
use relshm_ptr::{Offset, Raw, Repr, SegRel, Swizzle};
use relshm_segment::{CreateOptions, Placement, Segment};
use relshm_testkit::{Scratch, fork_child};
use std::collections::HashMap;
use std::hint::black_box;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

const SIZES: [u64; 3] = [1_000, 100_000, 1_000_000];
const LOOKUPS: usize = 1 << 16;
/// Keys per `MapReader::get_many` call.
const MANY: usize = 64;
/// `MAP_MIN=1`: untimed passes per variant and round before the timed one.
const WARM: usize = 3;

fn segment(n: u64) -> Segment {
    Segment::create_unnamed(&CreateOptions::new(n * 96 + (8 << 20))).unwrap()
}

/// Keys spread over u64 (so the hash, not the key order, decides the bucket).
fn key(i: u64) -> u64 {
    i.wrapping_mul(0x9e37_79b9_7f4a_7c15)
}

/// What a get loop hands to `black_box`: one word for every map. A 16-byte `Option<u64>`
/// stored as two words and reloaded as one by `black_box` fails store-to-load forwarding
/// (a stall per iteration that std's 8-byte `Option<&u64>` would not pay): measure the
/// lookup, not that.
#[inline(always)]
fn found(v: Option<u64>) -> u64 {
    v.unwrap_or(u64::MAX)
}

fn lookups(n: u64) -> Vec<u64> {
    let mut rng = StdRng::seed_from_u64(n);
    (0..LOOKUPS).map(|_| key(rng.gen_range(0..n))).collect()
}

/// One lookup per iteration, through the keys in turn.
fn gets(b: &mut Bencher<'_>, keys: &[u64], get: impl Fn(&u64) -> Option<u64>) {
    let mut i = 0;
    b.iter(|| {
        i = (i + 1) & (LOOKUPS - 1);
        black_box(found(get(&keys[i])))
    })
}

/// One insert of a new key and its removal per iteration (`insert_remove(k)` does both).
fn inserts(b: &mut Bencher<'_>, n: u64, mut insert_remove: impl FnMut(u64) -> Option<u64>) {
    let mut i = n;
    b.iter(|| {
        i += 1;
        black_box(insert_remove(i))
    })
}

fn strategy<R: Repr>(c: &mut Criterion, make: for<'s> fn(&'s Segment) -> Arena<R>) {
    for n in SIZES {
        let seg = segment(n);
        let arena = make(&seg);
        let map = Map::<u64, u64, R>::create(&arena).unwrap();
        for i in 0..n {
            map.insert(key(i), i).unwrap();
        }
        let keys = lookups(n);
        let mut g = c.benchmark_group("map_get");
        g.throughput(Throughput::Elements(1));
        g.bench_with_input(
            BenchmarkId::new(format!("{}_guard", R::NAME), n),
            &n,
            |b, _| {
                let r = map.read().unwrap();
                gets(b, &keys, |k| r.get(k).unwrap())
            },
        );
        g.bench_with_input(
            BenchmarkId::new(format!("{}_reader", R::NAME), n),
            &n,
            |b, _| {
                let r = map.reader().unwrap();
                gets(b, &keys, |k| r.get(k).unwrap())
            },
        );
        // Per element: batches of MANY keys through one call.
        g.throughput(Throughput::Elements(MANY as u64));
        g.bench_with_input(
            BenchmarkId::new(format!("{}_reader_many", R::NAME), n),
            &n,
            |b, _| {
                let r = map.reader().unwrap();
                let mut out = [None; MANY];
                let mut i = 0;
                b.iter(|| {
                    i = (i + MANY) & (LOOKUPS - 1);
                    r.get_many(&keys[i..i + MANY], &mut out).unwrap();
                    black_box(&out);
                })
            },
        );
        g.throughput(Throughput::Elements(1));
        if R::NAME == "offset" {
            g.bench_with_input(BenchmarkId::new("offset_get", n), &n, |b, _| {
                gets(b, &keys, |k| map.get(k).unwrap())
            });
        }
        g.finish();
        let mut g = c.benchmark_group("map_insert_remove");
        g.bench_with_input(BenchmarkId::new(R::NAME, n), &n, |b, _| {
            inserts(b, n, |i| {
                map.insert(key(i), i).unwrap();
                map.remove(&key(i)).unwrap()
            })
        });
        g.finish();
    }
}

fn std_peer(c: &mut Criterion) {
    for n in SIZES {
        let mut map: HashMap<u64, u64, MapHasher> = HashMap::default();
        for i in 0..n {
            map.insert(key(i), i);
        }
        let keys = lookups(n);
        let mut g = c.benchmark_group("map_get");
        g.throughput(Throughput::Elements(1));
        g.bench_with_input(BenchmarkId::new("std_hashmap", n), &n, |b, _| {
            gets(b, &keys, |k| map.get(k).copied())
        });
        g.finish();
        let mut g = c.benchmark_group("map_insert_remove");
        g.bench_with_input(BenchmarkId::new("std_hashmap", n), &n, |b, _| {
            inserts(b, n, |i| {
                map.insert(key(i), i);
                map.remove(&key(i))
            })
        });
        g.finish();
    }
}

/// CPU time this process has used, in nanoseconds.
fn cpu_ns() -> u64 {
    let mut t = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec through a valid pointer.
    unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut t) };
    t.tv_sec as u64 * 1_000_000_000 + t.tv_nsec as u64
}

/// How the reading processes look keys up.
#[derive(Clone, Copy)]
enum Mode {
    /// `Map::get` each time (lock-free).
    Get,
    /// Batches of 99 through one `Map::reader` (lock-free).
    Reader,
    /// Batches of 99 in one `MapReader::get_many` call (lock-free).
    ReaderMany,
    /// Batches of 99 under one `Map::read` guard (every lock held shared).
    Guard,
}

/// What a shared run reports: the wall time until the last process is done, or the CPU
/// time each process spent (on average): equal CPU per operation with 1 and 2 processes
/// means they do not slow each other down, whatever else the machine is running.
#[derive(Clone, Copy)]
enum Clock {
    Wall,
    CpuPerProcess,
}

/// `procs` processes, each with its own mapping of one shared map, each doing `iters`
/// operations: 99 gets to 1 update, the gets each unlocked (`Map::get`), or 99 at a time
/// through one lock-free `MapReader` (one by one, or in one `get_many`), or under one read
/// guard (which holds every stripe shared). Returns the wall time until the last one is done.
fn shared_run(
    seg: &Segment,
    off: u64,
    n: u64,
    procs: usize,
    iters: u64,
    mode: Mode,
    clock: Clock,
) -> Duration {
    let scratch = Scratch::new();
    let kids: Vec<_> = (0..procs)
        .map(|p| {
            let scratch = &scratch;
            fork_child(move || {
                let mine = seg
                    .reopen(Placement::Hint(0x6400_0000_0000 + p * (1 << 36)))
                    .unwrap();
                let arena = Arena::<Offset>::new(&mine).unwrap();
                let map = Map::<u64, u64, Offset>::open(&arena, off).unwrap();
                let keys = lookups(n + p as u64);
                scratch.slot(0).fetch_add(1, Ordering::AcqRel);
                scratch.wait_for(1, 1, Duration::from_secs(60));
                let (mut batch_keys, mut out) = (Vec::with_capacity(99), [None; 99]);
                let cpu0 = cpu_ns();
                let mut i = 0usize;
                while i < iters as usize {
                    let batch = (iters as usize - i).min(100);
                    let todo = i..i + batch.min(99);
                    match mode {
                        Mode::Get => {
                            for j in todo {
                                black_box(map.get(&keys[j & (LOOKUPS - 1)]).unwrap());
                            }
                        }
                        Mode::Reader => {
                            let r = map.reader().unwrap();
                            for j in todo {
                                black_box(r.get(&keys[j & (LOOKUPS - 1)]).unwrap());
                            }
                        }
                        Mode::ReaderMany => {
                            let r = map.reader().unwrap();
                            batch_keys.clear();
                            batch_keys.extend(todo.map(|j| keys[j & (LOOKUPS - 1)]));
                            let out = &mut out[..batch_keys.len()];
                            r.get_many(&batch_keys, out).unwrap();
                            black_box(out);
                        }
                        Mode::Guard => {
                            let r = map.read().unwrap();
                            for j in todo {
                                black_box(r.get(&keys[j & (LOOKUPS - 1)]).unwrap());
                            }
                        }
                    }
                    if batch == 100 {
                        map.update(&keys[(i + 99) & (LOOKUPS - 1)], |v| *v += 1)
                            .unwrap();
                    }
                    i += batch;
                }
                scratch
                    .slot(10)
                    .fetch_add(cpu_ns() - cpu0, Ordering::AcqRel);
                0
            })
        })
        .collect();
    scratch.wait_for(0, procs as u64, Duration::from_secs(60));
    let start = Instant::now();
    scratch.slot(1).store(1, Ordering::Release);
    for k in kids {
        assert!(k.wait_timeout(Duration::from_secs(120)).success());
    }
    match clock {
        Clock::Wall => start.elapsed(),
        Clock::CpuPerProcess => {
            Duration::from_nanos(scratch.slot(10).load(Ordering::Acquire) / procs as u64)
        }
    }
}

fn two_process(c: &mut Criterion) {
    let n = 100_000;
    let seg = segment(n);
    let off = {
        let arena = Arena::<Offset>::new(&seg).unwrap();
        let map = Map::<u64, u64, Offset>::create(&arena).unwrap();
        for i in 0..n {
            map.insert(key(i), i).unwrap();
        }
        map.offset()
    };
    let mut g = c.benchmark_group("map_read_mostly_processes");
    let runs = [
        ("offset_get_wall", Mode::Get, Clock::Wall),
        ("offset_reader_batch_wall", Mode::Reader, Clock::Wall),
        ("offset_reader_many_wall", Mode::ReaderMany, Clock::Wall),
        ("offset_guard_batch_wall", Mode::Guard, Clock::Wall),
        ("offset_get_cpu", Mode::Get, Clock::CpuPerProcess),
        (
            "offset_reader_batch_cpu",
            Mode::Reader,
            Clock::CpuPerProcess,
        ),
        (
            "offset_reader_many_cpu",
            Mode::ReaderMany,
            Clock::CpuPerProcess,
        ),
        ("offset_guard_batch_cpu", Mode::Guard, Clock::CpuPerProcess),
    ];
    for (name, mode, clock) in runs {
        for procs in [1usize, 2] {
            // Throughput = procs operations per iteration: each process does `iters`.
            g.throughput(Throughput::Elements(procs as u64));
            g.bench_with_input(BenchmarkId::new(name, procs), &procs, |b, &p| {
                b.iter_custom(|iters| shared_run(&seg, off, n, p, iters, mode, clock))
            });
        }
    }
    g.finish();
}

fn benches(c: &mut Criterion) {
    std_peer(c);
    strategy::<Raw>(c, |s| Arena::<Raw>::local(s).unwrap());
    strategy::<Offset>(c, |s| Arena::<Offset>::new(s).unwrap());
    strategy::<SegRel>(c, |s| Arena::<SegRel>::new(s).unwrap());
    strategy::<Swizzle>(c, |s| Arena::<Swizzle>::private(s).unwrap());
    two_process(c);
}

/// `MAP_MIN=1`: instead of criterion, interleave the variants round-robin and keep each
/// one's fastest round. Preemption and cache pollution by other processes only ever add
/// time, so the minimum is a stable estimate on a loaded machine where criterion's mean
/// is not. Prints ns per get and the ratio to std's `HashMap` per size, then the 1- vs
/// 2-process read-mostly run (fastest CPU time per op per process, and wall time).
fn min_of_n() {
    // `MAP_MIN=procs`: only the 1- vs 2-process run; `MAP_SIZES=1000,100000`: these sizes.
    let sizes: Vec<u64> = if std::env::var("MAP_MIN").is_ok_and(|v| v == "procs") {
        vec![]
    } else if let Ok(list) = std::env::var("MAP_SIZES") {
        list.split(',').map(|x| x.trim().parse().unwrap()).collect()
    } else {
        SIZES.to_vec()
    };
    for n in sizes {
        let keys = lookups(n);
        let mut std_map: HashMap<u64, u64, MapHasher> = HashMap::default();
        for i in 0..n {
            std_map.insert(key(i), i);
        }
        let segs: Vec<Segment> = (0..4).map(|_| segment(n)).collect();
        let (raw, off) = (
            Arena::<Raw>::local(&segs[0]).unwrap(),
            Arena::<Offset>::new(&segs[1]).unwrap(),
        );
        let (seg, swz) = (
            Arena::<SegRel>::new(&segs[2]).unwrap(),
            Arena::<Swizzle>::private(&segs[3]).unwrap(),
        );
        let mut variants: Vec<Variant<'_>> = vec![(
            "std".into(),
            Box::new(|keys| each(keys, |k| std_map.get(k).copied())),
        )];
        add_variants(&mut variants, &raw, n);
        add_variants(&mut variants, &off, n);
        add_variants(&mut variants, &seg, n);
        add_variants(&mut variants, &swz, n);
        let rounds = if n >= 1_000_000 { 15 } else { 40 };
        let mut best = vec![f64::MAX; variants.len()];
        for _ in 0..rounds {
            for (b, (_, pass)) in best.iter_mut().zip(&variants) {
                // Untimed passes first, so each variant is timed on its own data in cache
                // (steady state, as in criterion's loop) rather than on what the previous
                // variants left there: after them, its map is largely evicted from this
                // VM's share of the L3, and one pass does not bring all of it back.
                for _ in 0..WARM {
                    black_box(pass(&keys));
                }
                let t = Instant::now();
                black_box(pass(&keys));
                *b = b.min(t.elapsed().as_secs_f64() * 1e9 / keys.len() as f64);
            }
        }
        let cells: Vec<String> = variants
            .iter()
            .zip(&best)
            .map(|((name, _), ns)| format!("{name} {ns:.1} ({:.2}x)", ns / best[0]))
            .collect();
        println!("get N={n} (ns, x std): {}", cells.join(", "));
    }
    two_process_min();
}

/// A named lookup under test.
/// One pass of it looks up every key and returns a sum of what it found (so that nothing
/// is optimised away); the per-key lookup is inlined into the pass, as in a user's loop.
type Variant<'a> = (String, Box<dyn Fn(&[u64]) -> u64 + 'a>);

/// Looks up each key with `get`; a sum of what it found.
#[inline(always)]
fn each(keys: &[u64], get: impl Fn(&u64) -> Option<u64>) -> u64 {
    keys.iter()
        .fold(0, |sum, k| sum.wrapping_add(found(black_box(get(k)))))
}

/// A strategy's guard and unlocked gets on a map of `n` entries in `arena`.
fn add_variants<'a, R: Repr>(v: &mut Vec<Variant<'a>>, arena: &'a Arena<R>, n: u64) {
    // The variants borrow the map for as long as the bench runs.
    let map: &'a Map<u64, u64, R> = Box::leak(Box::new(Map::create(arena).unwrap()));
    for i in 0..n {
        map.insert(key(i), i).unwrap();
    }
    let guard = map.read().unwrap();
    v.push((
        format!("{}_guard", R::NAME),
        Box::new(move |keys| each(keys, |k| guard.get(k).unwrap())),
    ));
    let reader = map.reader().unwrap();
    v.push((
        format!("{}_reader", R::NAME),
        Box::new(move |keys| each(keys, |k| reader.get(k).unwrap())),
    ));
    let many = map.reader().unwrap();
    v.push((
        format!("{}_many", R::NAME),
        Box::new(move |keys| {
            let mut out = [None; MANY];
            let mut sum = 0u64;
            for batch in keys.chunks(MANY) {
                let out = &mut out[..batch.len()];
                many.get_many(batch, out).unwrap();
                sum = out.iter().fold(sum, |s, &v| s.wrapping_add(found(v)));
            }
            sum
        }),
    ));
    v.push((
        format!("{}_get", R::NAME),
        Box::new(move |keys| each(keys, |k| map.get(k).unwrap())),
    ));
}

/// 1 vs 2 processes, 99 unlocked gets to 1 update, alternated for a few rounds; the
/// fastest round of each counts.
fn two_process_min() {
    let n = 100_000;
    let seg = segment(n);
    let off = {
        let arena = Arena::<Offset>::new(&seg).unwrap();
        let map = Map::<u64, u64, Offset>::create(&arena).unwrap();
        for i in 0..n {
            map.insert(key(i), i).unwrap();
        }
        map.offset()
    };
    let iters = 2_000_000;
    let modes = [
        (Mode::Get, "unlocked get"),
        (Mode::Reader, "reader batches of 99"),
        (Mode::ReaderMany, "reader get_many of 99"),
        (Mode::Guard, "guard batches of 99"),
    ];
    for (mode, what) in modes {
        let (mut cpu, mut wall) = ([f64::MAX; 2], [f64::MAX; 2]);
        for _ in 0..7 {
            for procs in [1usize, 2] {
                let c = shared_run(&seg, off, n, procs, iters, mode, Clock::CpuPerProcess);
                let w = shared_run(&seg, off, n, procs, iters, mode, Clock::Wall);
                cpu[procs - 1] = cpu[procs - 1].min(c.as_secs_f64() * 1e9 / iters as f64);
                wall[procs - 1] = wall[procs - 1].min(w.as_secs_f64() * 1e9 / iters as f64);
            }
        }
        println!(
            "read-mostly {}: CPU ns/op per process 1p {:.1}, 2p {:.1} (2-process throughput {:.2}x of 1 if each has a core); wall ns/op-per-process 1p {:.1}, 2p {:.1} ({:.2}x)",
            what,
            cpu[0],
            cpu[1],
            2.0 * cpu[0] / cpu[1],
            wall[0],
            wall[1],
            2.0 * wall[0] / wall[1],
        );
    }
}

criterion_group! {
    name = map;
    config = Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(1));
    targets = benches
}

fn main() {
    if std::env::var_os("MAP_MIN").is_some() {
        min_of_n();
    } else {
        map();
        Criterion::default().configure_from_args().final_summary();
    }
}
