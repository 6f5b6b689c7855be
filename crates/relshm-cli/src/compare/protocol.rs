//! The parent/child protocol of `relshm compare`.
//!
//! The parent makes a named segment, builds the structure, and stores its header offset in
//! a block of slots (`[AtomicU64; SLOTS]` named [`SLOTS_NAME`] in the segment directory).
//! It then starts this binary again as `relshm compare-child`, which maps the segment at
//! another address (the same one for the fixed-address baseline), publishes that address
//! in [`CHILD_BASE`], waits for [`GO`] (the copy-time strategy translates its copy for
//! that address first and stores the copy's offset in [`COPY_ROOT`]), opens the structure,
//! runs the read passes, meets the parent at the [`READY`] barrier for the contended
//! mutations, and prints one [`ChildReport`] as a JSON line on stdout.

use std::sync::atomic::{AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::bail;
use serde::{Deserialize, Serialize};

/// Directory name of the slot block.
pub const SLOTS_NAME: &str = "compare-slots";
/// Number of slots.
pub const SLOTS: usize = 8;
/// Slot: where the child maps the segment.
pub const CHILD_BASE: usize = 0;
/// Slot: offset of the structure's header (in place strategies).
pub const ROOT: usize = 1;
/// Slot: offset of the translated copy's header (copy-time translation).
pub const COPY_ROOT: usize = 2;
/// Slot: nonzero once the child may open the structure.
pub const GO: usize = 3;
/// Slot: the mutation barrier. Before round `r` the child raises it to `2r + 1`, the
/// parent (seeing that) to `2r + 2`, and both go.
pub const READY: usize = 4;

/// Rounds of contended mutations; the median round is reported.
pub const MUTATE_ROUNDS: u64 = 3;

/// How long either side waits for the other before giving up with an error.
pub const PATIENCE: Duration = Duration::from_secs(60);

/// Where the child asks the kernel to map the segment: far from where Linux puts the
/// parent's mappings, so the two addresses differ (the parent checks that they do).
pub const CHILD_HINT: usize = 0x5a5a_0000_0000;

/// What the child measured, printed as one JSON line.
#[derive(Debug, Serialize, Deserialize)]
pub struct ChildReport {
    /// Address the child mapped the segment at.
    pub base: u64,
    /// Nanoseconds from GO to an open structure (arena and header checks included).
    pub open_ns: u64,
    /// Nanoseconds of the first read pass.
    pub first_ns: u64,
    /// Median nanoseconds of the repeated read passes.
    pub steady_ns: u64,
    /// Number of repeated read passes.
    pub reps: u32,
    /// Nanoseconds of the child's share of each round of contended mutations, if it made
    /// any.
    pub mutate_ns: Option<Vec<u64>>,
    /// Swizzle only: links the child's private view swizzled.
    pub swizzled: Option<u64>,
    /// Swizzle only: nanoseconds of the first touch of each page the structure occupies in
    /// a fresh private view, a write where the cold pass swizzled (the cold pass's
    /// page-fault limit); the pages, and how many of them were written.
    pub first_touch: Option<(u64, u64, u64)>,
}

/// How a wait passes the time between looks at its slot.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Pace {
    /// Yield, and past the first looks sleep 200 us between them: the other side is busy
    /// for a while (building, translating, starting up, reading), and this one should not
    /// compete with it for the 2 cores.
    Patient,
    /// Yield only: a barrier right before timed work, where a late look would start this
    /// side's work up to a sleep after the other's.
    Prompt,
}

/// Waits until `slot` holds a value `>= want`; `alive` is asked now and then whether the
/// other side still runs (an error from it ends the wait).
pub fn wait_for(
    slot: &AtomicU64,
    want: u64,
    what: &str,
    pace: Pace,
    mut alive: impl FnMut() -> anyhow::Result<()>,
) -> anyhow::Result<u64> {
    let start = Instant::now();
    let mut spins = 0u32;
    loop {
        let v = slot.load(Ordering::Acquire);
        if v >= want {
            return Ok(v);
        }
        spins += 1;
        if spins.is_multiple_of(64) {
            alive()?;
            if start.elapsed() > PATIENCE {
                bail!("gave up waiting for {what} after {PATIENCE:?}");
            }
            if pace == Pace::Patient {
                thread::sleep(Duration::from_micros(200));
            }
        } else {
            thread::yield_now();
        }
    }
}
