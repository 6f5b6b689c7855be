//! The `relshm` command line.

mod demo;

use clap::{Parser, Subcommand};

/// relshm: pointer-rich data structures shared between processes through shared memory.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Create a segment, share it with a child process that maps it at another address,
    /// and print what both saw.
    Demo(demo::DemoArgs),
    /// The child half of `demo` (run by `demo` itself).
    #[command(hide = true)]
    DemoChild(demo::ChildArgs),
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Demo(args) => demo::run(&args),
        Command::DemoChild(args) => demo::child(&args),
    }
}
