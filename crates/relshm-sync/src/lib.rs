//! In-segment futex locks for shared memory that survive their owner dying.
//!
//! Every lock here is `#[repr(C)]` with a documented fixed layout, is valid when all its
//! bytes are zero, keeps no per-process state in the segment, and works between processes
//! that map it at different addresses (shared futexes):
//!
//! - [`Mutex`] / [`RawMutex`]: robust mutex; `Err(OwnerDied(guard))` after an owner died
//!   holding it, `make_consistent()` to repair, else permanently `NotRecoverable`; or
//!   [`Mutex::lock_or_repair`], which runs your repair and makes it consistent for you.
//! - [`Held`]: a raw lock held, with the same lock-then-repair step, for data structures
//!   built on the raw locks.
//! - [`RwLock`] / [`RawRwLock`]: writer-preferring readers-writer lock; reader death is
//!   recovered transparently, writer death is reported with write access.
//! - [`Condvar`] for [`Mutex`]; counting [`Semaphore`]; [`ManualResetEvent`] and
//!   [`AutoResetEvent`].
//! - `lock_api` impls for in-process users.
//!
//! ```
//! use relshm_sync::{Condvar, Mutex};
//! #[repr(C)]
//! struct Shared { ready: Mutex<u32>, cv: Condvar } // place this in a segment
//! let s = Shared { ready: Mutex::new(0), cv: Condvar::new() };
//! *s.ready.lock().unwrap() = 1;
//! s.cv.notify_all();
//! let g = s.ready.lock().unwrap();
//! let (g, timed_out) = s.cv.wait_while_timeout(g, std::time::Duration::from_secs(1), |r| *r == 0);
//! assert!(!timed_out && *g.unwrap() == 1);
//! ```
//!
//! The design and how each trap of robust locks is handled (glibc's robust list, PID
//! reuse, PID namespaces, unmapping, fork) are in [`docs`].
#![cfg_attr(not(target_os = "linux"), allow(unused))]

mod condvar;
pub mod docs;
mod error;
mod held;
#[cfg(not(loom))]
mod lock_api_impl;
mod mutex;
mod raw_mutex;
#[cfg(not(loom))]
mod robust;
mod rwlock;
mod semaphore;
mod sync;

/// The atomics and shared-futex facade the locks here are written against, for lock-free
/// algorithms in other crates (queues, streams) that loom must model too: under
/// `--cfg loom` every item is loom's (the futex and clock modelled), otherwise the real
/// atomics, `std::time::Instant` and Linux shared futexes (never `FUTEX_PRIVATE_FLAG`).
pub mod facade {
    #[cfg(loom)]
    pub use crate::sync::Instant;
    pub use crate::sync::{
        DOORBELL_STEP, Wake, doorbell_arm, doorbell_disarm, futex_wait, futex_wake, spin_hint,
    };
    #[cfg(not(loom))]
    pub use core::sync::atomic::{AtomicU32, AtomicU64, Ordering, fence};
    #[cfg(loom)]
    pub use loom::sync::atomic::{AtomicU32, AtomicU64, Ordering, fence};
    #[cfg(not(loom))]
    pub use std::time::Instant;
}

/// The calling process's identity, cached: its id and how many forks made it (both reset
/// by a `pthread_atfork` child handler registered when the library loads). Code that
/// records which process it runs in, on a fast path, asks here instead of `getpid`.
pub mod process {
    pub use crate::sync::{fork_generation, process_id};
}

pub use condvar::{Condvar, WaitResult};
pub use error::{LockError, MutexError};
pub use held::Held;
pub use mutex::{Mutex, MutexGuard};
pub use raw_mutex::{Acquired, NOT_RECOVERABLE, OWNER_DIED, RawMutex, TID_MASK, WAITERS};
#[cfg(not(loom))]
pub use robust::robust_supported;
pub use rwlock::{
    READER_SLOTS, RawRwLock, ReadAcquired, ReadResult, RwLock, RwLockReadGuard, RwLockWriteGuard,
    WriteResult,
};
pub use semaphore::{AutoResetEvent, Event, ManualResetEvent, Semaphore, SemaphoreOverflow};
#[cfg(loom)]
pub use sync::{KillAt, KillStage, killable, simulate_owner_death};

/// Whether owner death is detected for locks taken by the calling thread (always in the
/// loom model).
#[cfg(loom)]
pub fn robust_supported() -> bool {
    true
}
