//! `scale`: throughput of relshm's writing workloads at 1, 2, 4 ... processes.
//!
//! Each point is a fresh named segment holding the workload's object and a control block
//! (module `control`); the harness starts this program again once per worker (real exec'ed
//! processes, each mapping the segment wherever the kernel puts it), releases them together,
//! lets them run for `--secs`, stops them and sums their operation counts. The references
//! run in the same invocation: a robust process-shared `pthread_mutex_t` and a plain
//! ticket lock beside relshm's `Mutex`, each process's `malloc` beside the segment heap
//! (through a heap handle, and through `Segment::alloc` as collections allocate), and a
//! crossbeam channel (threads) beside the queue.
//!
//! Efficiency is `throughput(N) / (N x throughput(first point))` for the per-process
//! workloads; the pair workloads (queue, channel) are reported against their first pair
//! (1+1).

mod control;
mod workload;

use std::process::{Child, Command, Stdio};
use std::sync::atomic::Ordering;
use std::time::Instant;

use anyhow::{Context, bail};
use relshm::prelude::*;

pub use workload::Workload;

/// Command line of `scale`.
#[derive(clap::Parser, Debug)]
#[command(about = "Throughput of relshm's writing workloads at 1, 2, 4 ... processes")]
pub struct Args {
    /// Worker counts to measure (default: 1, 2, 4 ... up to the usable cores, and the
    /// core count itself).
    #[arg(long, value_delimiter = ',')]
    pub procs: Vec<u32>,
    /// Seconds each point runs.
    #[arg(long, default_value_t = 2.0)]
    pub secs: f64,
    /// Workloads to run (default: all).
    #[arg(long, value_delimiter = ',', value_enum)]
    pub workloads: Vec<Workload>,
    /// Keys in the map workload's map.
    #[arg(long, default_value_t = 100_000)]
    pub keys: u64,
    /// Internal: run as a worker of the named segment.
    #[arg(long, hide = true)]
    pub worker: Option<String>,
    /// Internal: the worker's index.
    #[arg(long, hide = true, default_value_t = 0)]
    pub role: u32,
    /// Internal: the number of workers in the point.
    #[arg(long, hide = true, default_value_t = 1)]
    pub workers: u32,
}

/// One measured point.
#[derive(Debug, Clone, Copy)]
pub struct Point {
    /// The workload.
    pub workload: Workload,
    /// Worker processes (or threads, for the thread references).
    pub workers: u32,
    /// Completed operations per second, all workers together.
    pub ops_per_sec: f64,
}

/// Runs `scale` with `args`: the whole sweep, or one worker.
pub fn main(args: &Args) -> anyhow::Result<()> {
    if let Some(segment) = &args.worker {
        let workload = *args
            .workloads
            .first()
            .context("a worker needs its --workloads")?;
        return worker(segment, workload, args);
    }
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get() as u32);
    let procs = if args.procs.is_empty() {
        default_procs(cores)
    } else {
        args.procs.clone()
    };
    if let Some(&n) = procs
        .iter()
        .find(|&&n| n == 0 || n as usize > control::MAX_WORKERS)
    {
        bail!(
            "--procs {n}: each point needs 1 to {} workers",
            control::MAX_WORKERS
        );
    }
    let workloads = if args.workloads.is_empty() {
        Workload::ALL.to_vec()
    } else {
        args.workloads.clone()
    };
    let exe = std::env::current_exe().context("finding this program to start the workers")?;
    println!(
        "relshm scale: {cores} usable cores, {} s per point, map of {} keys",
        args.secs, args.keys
    );
    println!(
        "{:<9} {:>5} {:>12} {:>9} {:>10}",
        "workload", "procs", "Mops/s", "vs first", "efficiency"
    );
    let mut points = Vec::new();
    for workload in workloads {
        let mut first: Option<Point> = None;
        for &n in &procs {
            if workload.pairs() && (n < 2 || n % 2 != 0) {
                continue;
            }
            let ops_per_sec = if workload.threads() {
                workload::channel_reference(n, args.secs)
            } else {
                run_point(&exe, workload, n, args)?
            };
            let point = Point {
                workload,
                workers: n,
                ops_per_sec,
            };
            let base = *first.get_or_insert(point);
            let ratio = point.ops_per_sec / base.ops_per_sec;
            let efficiency = ratio * f64::from(base.workers) / f64::from(n);
            println!(
                "{:<9} {:>5} {:>12.2} {:>8.2}x {:>9.0}%",
                workload.name(),
                label(workload, n),
                ops_per_sec / 1e6,
                ratio,
                efficiency * 100.0
            );
            points.push(point);
        }
    }
    print_references(&points);
    Ok(())
}

/// 1, 2, 4 ... below `cores`, then `cores`.
fn default_procs(cores: u32) -> Vec<u32> {
    let mut v: Vec<u32> = std::iter::successors(Some(1u32), |n| Some(n * 2))
        .take_while(|&n| n < cores)
        .collect();
    v.push(cores);
    v
}

/// `8` for per-process workloads, `4+4` for pairs.
fn label(workload: Workload, n: u32) -> String {
    if workload.pairs() {
        format!("{}+{}", n / 2, n / 2)
    } else {
        n.to_string()
    }
}

/// relshm's workloads against their references at every worker count both ran.
fn print_references(points: &[Point]) {
    let pairs = [
        (Workload::Mutex, Workload::Pthread),
        (Workload::Mutex, Workload::Ticket),
        (Workload::Alloc, Workload::Malloc),
        (Workload::SegAlloc, Workload::Malloc),
        (Workload::Queue, Workload::Channel),
    ];
    for (ours, reference) in pairs {
        for p in points.iter().filter(|p| p.workload == ours) {
            if let Some(r) = points
                .iter()
                .find(|r| r.workload == reference && r.workers == p.workers)
            {
                println!(
                    "{} / {} at {}: {:.2}x",
                    ours.name(),
                    reference.name(),
                    label(ours, p.workers),
                    p.ops_per_sec / r.ops_per_sec
                );
            }
        }
    }
}

/// Removes a named segment when dropped (the workers keep their mappings).
struct Unlink(String);

impl Drop for Unlink {
    fn drop(&mut self) {
        let _ = Segment::remove_named(&self.0);
    }
}

/// Kills workers that are still running when dropped (a failed point leaves no strays).
struct Workers(Vec<Child>);

impl Drop for Workers {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// One point: `n` worker processes on a fresh segment; returns operations per second.
fn run_point(
    exe: &std::path::Path,
    workload: Workload,
    n: u32,
    args: &Args,
) -> anyhow::Result<f64> {
    let name = format!(
        "relshm-scale-{}-{}-{n}",
        std::process::id(),
        workload.name()
    );
    let opts = CreateOptions::new(workload.segment_size(args.keys)).max_size(1 << 30);
    let seg = Segment::create_named(&name, &opts).with_context(|| format!("creating {name}"))?;
    let _unlink = Unlink(name.clone());
    let dir = seg.directory()?;
    let block = dir.find_or_construct(control::NAME, control::new_block)?;
    let block = block.get();
    workload.setup(&seg, block, args.keys)?;

    let mut workers = Workers(Vec::new());
    for role in 0..n {
        let child = Command::new(exe)
            .args(["--worker", &name, "--workloads", workload.name()])
            .args(["--role", &role.to_string(), "--workers", &n.to_string()])
            .args(["--keys", &args.keys.to_string()])
            .stdin(Stdio::null())
            .spawn()
            .context("starting a worker process")?;
        workers.0.push(child);
    }
    let start = Instant::now();
    while block[control::READY].load(Ordering::Acquire) < u64::from(n) {
        for c in &mut workers.0 {
            if let Some(status) = c.try_wait()? {
                bail!(
                    "a {} worker exited before the start: {status}",
                    workload.name()
                );
            }
        }
        if start.elapsed() > control::PATIENCE {
            bail!("the {} workers did not get ready", workload.name());
        }
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    let go = Instant::now();
    block[control::GO].store(1, Ordering::Release);
    std::thread::sleep(std::time::Duration::from_secs_f64(args.secs));
    block[control::STOP].store(1, Ordering::Release);
    let elapsed = go.elapsed();
    for c in &mut workers.0 {
        let status = c.wait()?;
        if !status.success() {
            bail!("a {} worker failed: {status}", workload.name());
        }
    }
    workers.0.clear();
    let total: u64 = (0..n)
        .map(|role| control::ops(block, role).load(Ordering::Acquire))
        .sum();
    if total == 0 {
        bail!("the {} workers completed no operation", workload.name());
    }
    Ok(total as f64 / elapsed.as_secs_f64())
}

/// A worker process: open the segment, run the workload, store the count.
fn worker(segment: &str, workload: Workload, args: &Args) -> anyhow::Result<()> {
    let seg = Segment::open_named(segment, &OpenOptions::new())
        .with_context(|| format!("opening {segment}"))?;
    let dir = seg.directory()?;
    let block = dir.find::<control::Block>(control::NAME)?;
    let block = block.get();
    let done = workload.work(&seg, block, args.role, args.workers, args.keys)?;
    control::ops(block, args.role).store(done, Ordering::Release);
    Ok(())
}
