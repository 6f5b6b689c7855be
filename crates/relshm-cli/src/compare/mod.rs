//! `relshm compare`: the same workloads on the same data set for every pointer strategy
//! (and the serialisation peers), in one run, with ratios to the fixed-address baseline
//! and the crossover points.
//!
//! The files: [`workload`] (data set, timed operations), [`strategy`] (the parent's half
//! of a run), [`protocol`] and [`child`](mod@child) (the second process), [`image`] (export/import),
//! [`peers`] (rkyv, postcard), [`rows`] (ratios, crossovers), [`table`], [`json`], [`plot`].

mod child;
mod image;
mod json;
mod limits;
mod machine;
mod peers;
mod plot;
mod protocol;
mod rows;
mod strategy;
mod table;
mod workload;

use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

pub use child::ChildArgs;
pub use child::run as child;

use peers::Peer;
use strategy::{Budget, Strategy};
use workload::Structure;

/// Options of `relshm compare`.
#[derive(clap::Args)]
pub struct CompareArgs {
    /// A shorter run: sizes 1e3..1e5 and shorter repetitions (a few seconds).
    #[arg(long)]
    quick: bool,
    /// Element counts to measure, e.g. `--sizes 1000,100000` (default 1e3..1e6, or
    /// 1e3..1e5 with --quick).
    #[arg(long, value_delimiter = ',')]
    sizes: Vec<u64>,
    /// The structures to measure (default all: list, vec, map).
    #[arg(long, value_enum, value_delimiter = ',')]
    structures: Vec<Structure>,
    /// Print the report as JSON (schema: docs/compare.schema.json) instead of the table.
    #[arg(long)]
    json: bool,
    /// Also write the report as JSON to this file.
    #[arg(long, value_name = "FILE.json")]
    json_out: Option<PathBuf>,
    /// Draw the crossover plots (total cost against read passes) into this SVG file.
    #[arg(long, value_name = "FILE.svg")]
    plot: Option<PathBuf>,
    /// Leave out the rkyv and postcard peers (they run on vectors and maps, the structures
    /// they have a collection of the same shape for).
    #[arg(long)]
    no_peers: bool,
}

const DEFAULT_SIZES: [u64; 4] = [1_000, 10_000, 100_000, 1_000_000];
const QUICK_SIZES: [u64; 3] = [1_000, 10_000, 100_000];

/// Runs the comparison and prints the table (or the JSON).
pub fn run(args: &CompareArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    let date = machine::utc_now();
    let sizes: Vec<u64> = match (&args.sizes[..], args.quick) {
        ([], false) => DEFAULT_SIZES.to_vec(),
        ([], true) => QUICK_SIZES.to_vec(),
        (s, _) => s.to_vec(),
    };
    ensure!(
        sizes.iter().all(|&n| n >= 1),
        "every size must be at least 1 element"
    );
    let structures = if args.structures.is_empty() {
        Structure::ALL.to_vec()
    } else {
        args.structures.clone()
    };
    let budget = if args.quick {
        Budget {
            read: Duration::from_millis(25),
            max_reps: 200,
            quick: true,
        }
    } else {
        Budget {
            read: Duration::from_millis(60),
            max_reps: 500,
            quick: false,
        }
    };
    let peers: &[Peer] = if args.no_peers { &[] } else { &Peer::ALL };
    // Only beside rows of their own shape: see `peers::native`.
    let peers_of = |s: Structure| {
        if peers::native(s).is_some() {
            peers
        } else {
            &[]
        }
    };
    let exe = std::env::current_exe().context("finding this program to start the children")?;

    let jobs = structures
        .iter()
        .map(|&s| sizes.len() * (Strategy::ALL.len() + peers_of(s).len()))
        .sum::<usize>() as u64;
    let bar = progress(jobs);
    let mut results = Vec::new();
    let mut seq = 0;
    for &s in &structures {
        for &n in &sizes {
            for strategy in Strategy::ALL {
                bar.set_message(format!(
                    "{} {} {}",
                    s.name(),
                    table::size(n),
                    strategy.name()
                ));
                seq += 1;
                // A strategy that fails (a bug it uncovers) is reported in its row and the
                // run goes on: the other strategies' numbers stay useful.
                match strategy::run(&exe, s, strategy, n, budget, seq) {
                    Ok(run) => results.extend(rows::strategy_rows(s, n, strategy, &run)),
                    Err(e) => results.extend(rows::failed_rows(s, n, strategy, &e)),
                }
                bar.inc(1);
            }
            for &peer in peers_of(s) {
                bar.set_message(format!("{} {} {}", s.name(), table::size(n), peer.name()));
                let run = peers::run(s, peer, n, budget)
                    .with_context(|| format!("{} of {n} elements, {}", s.name(), peer.name()))?;
                results.push(rows::peer_row(s, n, peer, &run));
                bar.inc(1);
            }
        }
    }
    bar.finish_and_clear();
    rows::add_ratios(&mut results);
    let crossovers = rows::crossovers(&results);
    let report = json::Report {
        schema: json::SCHEMA.into(),
        date,
        machine: machine::describe(),
        quick: args.quick,
        sizes,
        baseline: json::BASELINE.into(),
        elapsed_s: started.elapsed().as_secs_f64(),
        results,
        crossovers,
    };
    let text = json::to_string(&report)?;
    if let Some(path) = &args.json_out {
        std::fs::write(path, &text).with_context(|| format!("writing {}", path.display()))?;
    }
    if let Some(path) = &args.plot {
        plot::draw(&report, path).with_context(|| format!("drawing {}", path.display()))?;
    }
    if args.json {
        println!("{text}");
    } else {
        print!("{}", table::render(&report));
    }
    Ok(())
}

/// A progress bar on stderr, drawn only when stderr is a terminal.
fn progress(len: u64) -> ProgressBar {
    let target = if std::io::stderr().is_terminal() {
        ProgressDrawTarget::stderr()
    } else {
        ProgressDrawTarget::hidden()
    };
    let bar = ProgressBar::with_draw_target(Some(len), target);
    if let Ok(style) = ProgressStyle::with_template("{bar:30} {pos}/{len} {elapsed} {msg}") {
        bar.set_style(style);
    }
    bar
}
