//! `relshm demo`: one segment, two processes, two addresses.
//!
//! The parent creates a named segment, puts a robust mutex-guarded counter and a message
//! into its directory, and starts a second process (this binary again) that opens the
//! segment by name. The kernel maps it at another address there; the child finds both
//! objects by name, checks their types, bumps the counter under the in-segment lock and
//! reads the parent's mapping address from the segment's attach table.

use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::remove_on_drop::RemoveOnDrop;
use anyhow::{Context, bail};
use relshm::segment::{CreateOptions, OpenOptions, Segment};
use relshm::sync::Mutex;

/// Options of `relshm demo`.
#[derive(clap::Args)]
pub struct DemoArgs {
    /// Increments the child makes under the in-segment lock.
    #[arg(long, default_value_t = 100_000)]
    increments: u64,
}

/// Options of the hidden child half.
#[derive(clap::Args)]
pub struct ChildArgs {
    /// The segment to open.
    name: String,
    /// Increments to make.
    increments: u64,
}

const MESSAGE: &str = "message";
const COUNTER: &str = "counter";
const CHILD_BASE: &str = "child-base";

/// Runs the parent half.
pub fn run(args: &DemoArgs) -> anyhow::Result<()> {
    let name = format!("relshm-demo-{}", std::process::id());
    let seg = Segment::create_named(&name, &CreateOptions::new(1 << 20))
        .with_context(|| format!("creating segment {name}"))?;
    let _cleanup = RemoveOnDrop(&name);
    let dir = seg.directory()?;
    let mut text = [0u8; 64];
    let hello = b"hello from the parent, stored once in shared memory";
    text[..hello.len()].copy_from_slice(hello);
    dir.construct(MESSAGE, text)?;
    let counter = dir.construct(COUNTER, Mutex::new(0u64))?;
    let child_base = dir.construct(CHILD_BASE, AtomicU64::new(0))?;

    let parent_base = seg.base().as_ptr() as u64;
    println!(
        "segment   /{name}: {} bytes, id {:#018x}",
        seg.size(),
        seg.segment_id()
    );
    println!(
        "parent    pid {:>7} maps it at {parent_base:#014x}",
        std::process::id()
    );

    let exe = std::env::current_exe().context("finding this program to start the child")?;
    let out = Command::new(exe)
        .args(["demo-child", &name, &args.increments.to_string()])
        .output()
        .context("starting the child process")?;
    print!("{}", String::from_utf8_lossy(&out.stdout));
    if !out.status.success() {
        bail!(
            "the child failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }

    let theirs = child_base.get().load(Ordering::Acquire);
    let total = *counter.get().lock().map_err(|e| anyhow::anyhow!("{e}"))?;
    println!(
        "parent    sees the child's base {theirs:#014x} and the counter at {total} \
         (the child added {})",
        args.increments
    );
    if theirs == parent_base {
        println!("          the kernel happened to pick the same address in both processes");
    } else {
        println!(
            "          same bytes, addresses {} bytes apart: only offsets mean the same in both",
            theirs.abs_diff(parent_base)
        );
    }
    if total != args.increments {
        bail!("counter is {total}, expected {}", args.increments);
    }
    let stats = seg.heap()?.stats()?;
    println!(
        "heap      {} live allocations, {} bytes used, {} bytes free",
        stats.used_blocks, stats.used_bytes, stats.free_bytes
    );
    Ok(())
}

/// Runs the child half: open by name, find by name, work under the in-segment lock.
pub fn child(args: &ChildArgs) -> anyhow::Result<()> {
    let seg = Segment::open_named(&args.name, &OpenOptions::new())
        .with_context(|| format!("opening segment {}", args.name))?;
    let base = seg.base().as_ptr() as u64;
    let parent = std::os::unix::process::parent_id();
    let parent_base = seg
        .base_of(parent)
        .context("the parent is not in the attach table")?;
    println!(
        "child     pid {:>7} maps it at {base:#014x}",
        std::process::id()
    );
    println!("child     reads the parent's base {parent_base:#014x} from the attach table");

    let dir = seg.directory()?;
    let text = dir.find::<[u8; 64]>(MESSAGE)?;
    let len = text.get().iter().position(|&b| b == 0).unwrap_or(64);
    println!(
        "child     found {MESSAGE:?}: {:?}",
        String::from_utf8_lossy(&text.get()[..len])
    );
    if dir.find::<Mutex<u32>>(COUNTER).is_err() {
        println!("child     asking for {COUNTER:?} as Mutex<u32> is refused (it is a Mutex<u64>)");
    }
    let counter = dir.find::<Mutex<u64>>(COUNTER)?;
    for _ in 0..args.increments {
        *counter.get().lock().map_err(|e| anyhow::anyhow!("{e}"))? += 1;
    }
    dir.find::<AtomicU64>(CHILD_BASE)?
        .get()
        .store(base, Ordering::Release);
    Ok(())
}
