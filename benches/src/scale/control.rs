//! The control block that the parent and its worker processes share: a start barrier, a
//! stop flag, where the workload's objects are, and one operation count per worker.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::bail;

/// Directory name of the control block.
pub const NAME: &str = "scale-control";
/// Most worker processes one point may have.
pub const MAX_WORKERS: usize = 64;
/// Slots in the block.
pub const SLOTS: usize = 8 + MAX_WORKERS;

/// Slot: workers that finished setting up.
pub const READY: usize = 0;
/// Slot: nonzero once the workers may start.
pub const GO: usize = 1;
/// Slot: nonzero once the workers must stop.
pub const STOP: usize = 2;
/// Slot: offset of the workload's shared object, when it is not found by name.
pub const OBJECT: usize = 3;
/// First slot of the per-worker operation counts.
const OPS: usize = 8;

/// How long either side waits for the other before giving up.
pub const PATIENCE: Duration = Duration::from_secs(60);

/// The block as it lives in the segment.
pub type Block = [AtomicU64; SLOTS];

/// A fresh block (all zero).
pub fn new_block() -> Block {
    std::array::from_fn(|_| AtomicU64::new(0))
}

/// Where worker `role` stores its operation count.
pub fn ops(block: &Block, role: u32) -> &AtomicU64 {
    &block[OPS + role as usize]
}

/// Worker side of the start barrier: reports ready, then waits for the go.
pub fn ready_then_wait(block: &Block) -> anyhow::Result<()> {
    block[READY].fetch_add(1, Ordering::AcqRel);
    let start = Instant::now();
    while block[GO].load(Ordering::Acquire) == 0 {
        if start.elapsed() > PATIENCE {
            bail!("the parent never gave the go");
        }
        std::thread::yield_now();
    }
    Ok(())
}

/// Whether the parent raised [`STOP`].
pub fn stopped(block: &Block) -> bool {
    block[STOP].load(Ordering::Relaxed) != 0
}

/// Runs `op` in batches until the parent raises [`STOP`]; returns how many operations ran.
/// `op` returns how many operations it completed (0 or 1 for most workloads).
#[inline]
pub fn run_until_stopped(
    block: &Block,
    mut op: impl FnMut() -> anyhow::Result<u64>,
) -> anyhow::Result<u64> {
    let mut done = 0u64;
    while !stopped(block) {
        for _ in 0..64 {
            done += op()?;
        }
    }
    Ok(done)
}
