//! `relshm peer-bench` (hidden): relshm's side of the Boost.Interprocess peer benchmark
//! (`benches/boost/`). The same workloads as `benches/boost/peer.cpp`, with the
//! Offset-strategy (self-relative, like Boost's `offset_ptr`) List and Map and the robust
//! Mutex, in one segment; prints one JSON line per measurement:
//! `{"impl":"relshm","bench":"list_build","n":1000,"ns_per_op":12.3}`.
//!
//! Each figure is the best of several repetitions (the least disturbed run on a shared
//! machine). List build and traversal run under one lock acquisition, as Boost's list has
//! no lock at all; map inserts take the map's locks per insert (relshm's map is always
//! shared-safe), finds run under one read guard. The allocator rows allocate and free
//! 64-byte blocks through the segment (this process's cache first, as every collection
//! does), in pairs and in batches of 1000.

use std::hint::black_box;
use std::time::Instant;

use relshm::collections::arena::Arena;
use relshm::collections::list::List;
use relshm::collections::map::Map;
use relshm::ptr::Offset;
use relshm::segment::{CreateOptions, Segment};
use relshm::sync::Mutex;
use serde::Serialize;

use super::output::CliError;

/// Options of `relshm peer-bench`.
#[derive(clap::Args)]
pub struct PeerBenchArgs {
    /// Element counts.
    #[arg(long, value_delimiter = ',', default_value = "1000,100000")]
    pub sizes: Vec<u64>,
    /// Repetitions per measurement (the best is reported).
    #[arg(long, default_value_t = 5)]
    pub reps: u32,
    /// Lock/unlock pairs in the mutex measurement.
    #[arg(long, default_value_t = 1_000_000)]
    pub lock_ops: u64,
}

#[derive(Serialize)]
struct Line<'a> {
    #[serde(rename = "impl")]
    implementation: &'a str,
    bench: &'a str,
    n: u64,
    ns_per_op: f64,
}

fn emit(bench: &str, n: u64, ns_per_op: f64) {
    let line = Line {
        implementation: "relshm",
        bench,
        n,
        ns_per_op,
    };
    println!("{}", serde_json::to_string(&line).unwrap_or_default());
}

/// Best of `reps` runs of `f`, which returns the nanoseconds of the timed part.
fn best(reps: u32, mut f: impl FnMut() -> Result<f64, String>) -> Result<f64, String> {
    let mut best = f64::INFINITY;
    for _ in 0..reps.max(1) {
        best = best.min(f()?);
    }
    Ok(best)
}

/// Best of `reps` timed runs of `body` (all of it timed).
fn best_run(reps: u32, mut body: impl FnMut() -> Result<(), String>) -> Result<f64, String> {
    best(reps, || {
        let (r, ns) = timed(&mut body);
        r.map(|()| ns)
    })
}

fn timed<T>(f: impl FnOnce() -> T) -> (T, f64) {
    let t = Instant::now();
    let r = f();
    (r, t.elapsed().as_nanos() as f64)
}

fn bench(args: &PeerBenchArgs) -> Result<(), String> {
    let e = |e: &dyn std::fmt::Display| e.to_string();
    let max_n = args.sizes.iter().copied().max().unwrap_or(0);
    // Room for the largest map plus the largest list with generous slack: every rep makes
    // a new map (tables are not returned by `clear`) and frees nodes in small blocks.
    let size = (max_n * 1024).max(16 << 20).next_multiple_of(1 << 20);
    let opts = CreateOptions::new(size).max_size(size * 4);
    let seg = Segment::create_unnamed(&opts).map_err(|x| e(&x))?;
    let arena = Arena::<Offset>::new(&seg).map_err(|x| e(&x))?;
    for &n in &args.sizes {
        let list = List::<u64, Offset>::create(&arena).map_err(|x| e(&x))?;
        let mut traverse = f64::INFINITY;
        let build = best(args.reps, || {
            let mut g = list.lock().map_err(|x| e(&x))?;
            g.clear().map_err(|x| e(&x))?;
            let (r, ns) = timed(|| (0..n).try_for_each(|i| g.push_back(i)));
            r.map_err(|x| e(&x))?;
            let (sum, t) = timed(|| g.iter().try_fold(0u64, |s, v| v.map(|v| s.wrapping_add(v))));
            let sum = sum.map_err(|x| e(&x))?;
            if sum != n * n.saturating_sub(1) / 2 {
                return Err(format!(
                    "list traversal summed {sum}, expected {}",
                    n * (n - 1) / 2
                ));
            }
            traverse = traverse.min(t);
            Ok(ns)
        })?;
        emit("list_build", n, build / n as f64);
        emit("list_traverse", n, traverse / n as f64);
        list.lock().and_then(|mut g| g.clear()).map_err(|x| e(&x))?;

        let mut find = f64::INFINITY;
        let insert = best(args.reps, || {
            let map = Map::<u64, u64, Offset>::create(&arena).map_err(|x| e(&x))?;
            let (r, ns) = timed(|| (0..n).try_for_each(|i| map.insert(i, i ^ 0x5555).map(drop)));
            r.map_err(|x| e(&x))?;
            let g = map.read().map_err(|x| e(&x))?;
            let (hits, t) = timed(|| {
                (0..n).try_fold(0u64, |h, i| {
                    g.get(black_box(&i)).map(|v| h + u64::from(v.is_some()))
                })
            });
            let hits = hits.map_err(|x| e(&x))?;
            if hits != n {
                return Err(format!("map find hit {hits} of {n} keys"));
            }
            find = find.min(t);
            drop(g);
            map.clear().map_err(|x| e(&x))?;
            Ok(ns)
        })?;
        emit("map_insert", n, insert / n as f64);
        emit("map_find", n, find / n as f64);
    }
    let dir = seg.directory().map_err(|x| e(&x))?;
    let m = dir
        .construct("peer-bench-mutex", Mutex::new(0u64))
        .map_err(|x| e(&x))?;
    let ops = args.lock_ops.max(1);
    let ns = best_run(args.reps, || {
        for _ in 0..ops {
            let mut g = m.lock().map_err(|x| e(&x))?;
            *g += 1;
        }
        Ok(())
    })?;
    emit("mutex_lock_unlock", ops, ns / ops as f64);

    let ns = best_run(args.reps, || {
        for _ in 0..ops {
            let off = seg.alloc(64, 16).map_err(|x| e(&x))?;
            seg.free(black_box(off)).map_err(|x| e(&x))?;
        }
        Ok(())
    })?;
    emit("alloc_free_64", ops, ns / ops as f64);
    const BATCH: usize = 1000;
    let mut held = vec![0u64; BATCH];
    let ns = best_run(args.reps, || {
        for _ in 0..ops.div_ceil(BATCH as u64) {
            for off in held.iter_mut() {
                *off = seg.alloc(64, 16).map_err(|x| e(&x))?;
            }
            for &off in &held {
                seg.free(off).map_err(|x| e(&x))?;
            }
        }
        Ok(())
    })?;
    emit("alloc_free_64_batch", ops, ns / ops as f64);
    Ok(())
}

/// Runs `relshm peer-bench`.
pub fn run(args: &PeerBenchArgs) -> Result<u8, CliError> {
    bench(args).map_err(|m| CliError::failed(format!("peer-bench: {m}")))?;
    Ok(0)
}
