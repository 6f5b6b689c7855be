//! The small facade every lock algorithm in this crate is written against.
//!
//! It offers atomics, `futex_wait`/`futex_wake` on a shared (never `FUTEX_PRIVATE_FLAG`)
//! futex, a spin hint, `yield_now`, the calling thread's id and the robust-list hooks.
//! Under `--cfg loom` every item switches to a loom model (see `model.rs`), so the same
//! algorithm code is model-checked.

#[cfg(not(loom))]
mod real;
#[cfg(not(loom))]
pub(crate) use real::*;
#[cfg(not(loom))]
pub use real::{
    doorbell_arm, doorbell_disarm, fork_generation, futex_wait, futex_wake, process_id, spin_hint,
};

#[cfg(loom)]
mod model;
#[cfg(loom)]
pub(crate) use model::*;
#[cfg(loom)]
pub use model::{
    Instant, KillAt, KillStage, doorbell_arm, doorbell_disarm, fork_generation, futex_wait,
    futex_wake, killable, process_id, simulate_owner_death, spin_hint,
};

/// The step by which a *doorbell* word moves: a futex word that ownerless waiters sleep on
/// and notifiers bump, whose low 30 bits (the robust-futex owner part) are always zero.
/// Moving only the top two bits keeps it a word the kernel treats as "locked by nobody",
/// so a sleeper that announced it with `doorbell_arm` and dies has its wake-up handed on
/// by the kernel (see [`docs`](crate::docs), "Waiters that die"). Four values repeat: a
/// sleeper that missed exactly a multiple of four bumps between its look and its sleep
/// sleeps until the next bump or its own timeout, which callers bound.
pub const DOORBELL_STEP: u32 = 1 << 30;

/// What a wait on a futex ended with. Every caller re-checks its word afterwards, so
/// spurious returns are harmless.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wake {
    /// Woken, the word differed already, or interrupted.
    Woken,
    /// The timeout elapsed.
    TimedOut,
}

/// The robust-list fields of one lock: its futex word and its `{prev, next}` node pair
/// (process-local pointers, meaningful only to the owning thread and the kernel).
#[cfg_attr(loom, allow(dead_code))]
pub(crate) struct Links<'a> {
    pub(crate) word: &'a AtomicU32,
    pub(crate) prev: &'a core::sync::atomic::AtomicU64,
    pub(crate) next: &'a core::sync::atomic::AtomicU64,
}
