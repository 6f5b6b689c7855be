//! The `relshm` command line.

mod commands;
mod compare;
mod demo;
mod remove_on_drop;

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use commands::{inspect, ls, peer_bench, rm, verify};

/// relshm: pointer-rich data structures shared between processes through shared memory.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the same workloads for every pointer strategy (and the rkyv/postcard peers),
    /// with two processes at different addresses, and print times, ratios to the
    /// fixed-address baseline and the crossover points.
    Compare(compare::CompareArgs),
    /// The second process of `compare` (run by `compare` itself).
    #[command(hide = true)]
    CompareChild(compare::ChildArgs),
    /// Create a segment, share it with a child process that maps it at another address,
    /// and print what both saw.
    Demo(demo::DemoArgs),
    /// The child half of `demo` (run by `demo` itself).
    #[command(hide = true)]
    DemoChild(demo::ChildArgs),
    /// List the segments relshm created: name, size, used, owner, mode, attached processes.
    Ls(ls::LsArgs),
    /// Show a segment's header, attached processes, heap, named objects and lock states.
    Inspect(inspect::InspectArgs),
    /// Check a segment's header, heap, directory and every named object; exit status 0
    /// when all were verified, 1 on damage, 3 when some part could not be checked.
    Verify(verify::VerifyArgs),
    /// Remove a relshm segment's name (refuses objects relshm did not create).
    Rm(rm::RmArgs),
    /// relshm's side of the Boost.Interprocess peer benchmark (benches/boost/run.sh).
    #[command(hide = true)]
    PeerBench(peer_bench::PeerBenchArgs),
}

fn main() -> ExitCode {
    let result = match Cli::parse().command {
        Command::Compare(args) => compare::run(&args).map(|()| 0).map_err(demo_error),
        Command::CompareChild(args) => compare::child(&args).map(|()| 0).map_err(demo_error),
        Command::Demo(args) => demo::run(&args).map(|()| 0).map_err(demo_error),
        Command::DemoChild(args) => demo::child(&args).map(|()| 0).map_err(demo_error),
        Command::Ls(args) => ls::run(&args),
        Command::Inspect(args) => inspect::run(&args),
        Command::Verify(args) => verify::run(&args),
        Command::Rm(args) => rm::run(&args),
        Command::PeerBench(args) => peer_bench::run(&args),
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(e) => e.report(),
    }
}

/// An error of `demo` or `compare`, with its causes, as one line.
fn demo_error(e: anyhow::Error) -> commands::CliError {
    commands::CliError::failed(format!("{e:#}"))
}
