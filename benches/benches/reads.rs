//! Reads of relshm's collections against std and LMDB, in one run, ending with a table of
//! time ratios (relshm / std, relshm / LMDB) taken from the same samples criterion reports.
//!
//! - `vec_sum`: the sum of a `Vec<u64>` of 1e3, 1e5 and 1e6 elements, relshm's
//!   `read()` guard (shared lock, borrowed elements) and lock-free `to_vec()` (a copy of
//!   every element) against iterating a `std::vec::Vec`;
//! - `bytes_map_get`: random lookups of present keys (10 000 keys of 12-20 bytes) with
//!   16 B, 256 B and 4 KiB values: relshm's `BytesMap` lock-free `get_into` (copies the
//!   value into a reused buffer) and `read()` guard `get` (shared lock held across the
//!   lookups, borrows the value), against `std::collections::HashMap::get` and LMDB
//!   (through heed: `get` in one read transaction, borrows the value). The borrowing
//!   paths do not touch the value's bytes; `get_into` copies them.
//!
//! ```sh
//! cargo bench -p relshm-benches --bench reads             # about a minute on 2 cores
//! cargo bench -p relshm-benches --bench reads -- vec_sum  # one group (the table shows what ran)
//! ```
//!
//! Absolute times move by tens of percent between runs on a shared machine; compare the
//! ratios of one run.

use criterion::{BenchmarkId, Criterion, Throughput};
use relshm_benches::reads::{
    Lmdb, MAP_GET_INTO, MAP_KEYS, MAP_LMDB, MAP_LMDB_COPY, MAP_READ, MAP_STD, Pairs, Samples,
    VALUE_SIZES, VEC_COPY, VEC_READ, VEC_SIZES, VEC_STD, VecPair, map_id, ratio_table, shm_map,
    std_map, sum, sum_copied, sum_read, vec_id,
};
use std::time::Duration;

/// Criterion's samples per bench, and so the calls `Samples` keeps as samples (a
/// `--sample-size` on the command line changes the first only: leave it out).
const SAMPLE_SIZE: usize = 20;

fn vec_sum(c: &mut Criterion, s: &Samples) {
    let mut g = c.benchmark_group("vec_sum");
    for n in VEC_SIZES {
        let v = VecPair::new(n).expect("build the vectors");
        let expect: u64 = v.std.iter().sum();
        assert_eq!(sum_read(&v.shm).unwrap(), expect);
        assert_eq!(sum_copied(&v.shm).unwrap(), expect);
        g.throughput(Throughput::Elements(n as u64));
        g.bench_function(BenchmarkId::new(VEC_STD, n), |b| {
            b.iter_custom(|iters| s.time(&vec_id(VEC_STD, n), iters, || sum(&v.std)))
        });
        g.bench_function(BenchmarkId::new(VEC_READ, n), |b| {
            b.iter_custom(|iters| s.time(&vec_id(VEC_READ, n), iters, || sum_read(&v.shm).unwrap()))
        });
        g.bench_function(BenchmarkId::new(VEC_COPY, n), |b| {
            b.iter_custom(|iters| {
                s.time(&vec_id(VEC_COPY, n), iters, || sum_copied(&v.shm).unwrap())
            })
        });
    }
    g.finish();
}

fn bytes_map_get(c: &mut Criterion, s: &Samples) {
    let mut g = c.benchmark_group("bytes_map_get");
    for len in VALUE_SIZES {
        let pairs = Pairs::new(MAP_KEYS, len);
        // Each store in turn, so that only one holds the data at a time. Every lookup
        // finds its key (`expect`): a miss would be a cheaper, wrong measurement.
        {
            let std = std_map(&pairs);
            g.bench_function(BenchmarkId::new(MAP_STD, len), |b| {
                let mut i = 0;
                b.iter_custom(|iters| {
                    s.time(&map_id(MAP_STD, len), iters, || {
                        i += 1;
                        std.get(pairs.key(i)).expect("present").len()
                    })
                })
            });
        }
        {
            let lmdb = Lmdb::load(&pairs).expect("load LMDB");
            let db = lmdb.db().expect("open LMDB's database");
            let txn = lmdb.env.read_txn().expect("LMDB read transaction");
            g.bench_function(BenchmarkId::new(MAP_LMDB, len), |b| {
                let mut i = 0;
                b.iter_custom(|iters| {
                    s.time(&map_id(MAP_LMDB, len), iters, || {
                        i += 1;
                        db.get(&txn, pairs.key(i)).unwrap().expect("present").len()
                    })
                })
            });
            // The copy a reader makes to keep a value past its transaction: what relshm's
            // lock-free get_into does, so the pair compares the same work.
            g.bench_function(BenchmarkId::new(MAP_LMDB_COPY, len), |b| {
                let (mut i, mut out) = (0, Vec::new());
                b.iter_custom(|iters| {
                    s.time(&map_id(MAP_LMDB_COPY, len), iters, || {
                        i += 1;
                        out.clear();
                        out.extend_from_slice(
                            db.get(&txn, pairs.key(i)).unwrap().expect("present"),
                        );
                        out.len()
                    })
                })
            });
        }
        let shm = shm_map(&pairs).expect("build the relshm map");
        g.bench_function(BenchmarkId::new(MAP_GET_INTO, len), |b| {
            let (mut i, mut out) = (0, Vec::new());
            b.iter_custom(|iters| {
                s.time(&map_id(MAP_GET_INTO, len), iters, || {
                    i += 1;
                    assert!(shm.get_into(pairs.key(i), &mut out).unwrap(), "present");
                    out.len()
                })
            })
        });
        let guard = shm.read().expect("read the relshm map");
        g.bench_function(BenchmarkId::new(MAP_READ, len), |b| {
            let mut i = 0;
            b.iter_custom(|iters| {
                s.time(&map_id(MAP_READ, len), iters, || {
                    i += 1;
                    guard.get(pairs.key(i)).unwrap().expect("present").len()
                })
            })
        });
    }
    g.finish();
}

fn main() {
    let mut c = Criterion::default()
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(1))
        .sample_size(SAMPLE_SIZE)
        .configure_from_args();
    let s = Samples::new(SAMPLE_SIZE);
    vec_sum(&mut c, &s);
    bytes_map_get(&mut c, &s);
    c.final_summary();
    print!("{}", ratio_table(&s));
}
