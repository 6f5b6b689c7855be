//! `scale`: throughput of relshm's writing workloads at 1, 2, 4 ... processes, with the
//! robust pthread mutex, malloc and a crossbeam channel as references in the same run.
//!
//! `cargo run --release -p relshm-benches --bin scale -- --help`

use clap::Parser;

fn main() -> anyhow::Result<()> {
    relshm_benches::scale::main(&relshm_benches::scale::Args::parse())
}
