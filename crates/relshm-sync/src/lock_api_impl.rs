//! `lock_api` implementations for in-process users.
//!
//! `lock_api`'s guards cannot report owner death: its `lock()` returns a guard, not a
//! `Result`. So these impls **panic** when the lock is found inconsistent (`OwnerDied`) or
//! not recoverable, with the error's message, after leaving the lock as they found it (an
//! inconsistent lock keeps its owner-died mark for the next locker, so the panic does not
//! turn it not recoverable); `try_lock` returns `false` in those cases. Within one process
//! owner death means a thread ended while holding a lock (its guard was forgotten), which
//! is a bug; code that shares locks between processes that can die should use
//! [`Mutex`](crate::Mutex) / [`RwLock`](crate::RwLock), which return the typed errors.

use crate::raw_mutex::{Acquired, RawMutex};
use crate::rwlock::{RawRwLock, ReadAcquired};

fn die(what: &str, e: &dyn core::fmt::Display) -> ! {
    panic!("relshm_sync {what} through lock_api: {e}")
}

const OWNER_DIED_MSG: &str = "the previous owner died holding the lock; use relshm_sync::Mutex \
                              (or RwLock) to repair the data and make it consistent";

impl RawMutex {
    /// Gives an inconsistent lock back (still marked owner-died), then panics.
    fn refuse_owner_died(&self) -> ! {
        // SAFETY: called right after this thread acquired the lock with OwnerDied.
        unsafe { self.unlock_still_owner_died() };
        die("lock", &OWNER_DIED_MSG)
    }
}

// SAFETY: the lock provides mutual exclusion between every thread of every process
// (guards are !Send via GuardNoSend, matching the robust list's per-thread ownership).
unsafe impl lock_api::RawMutex for RawMutex {
    #[allow(clippy::declare_interior_mutable_const)]
    const INIT: Self = RawMutex::new();
    type GuardMarker = lock_api::GuardNoSend;

    fn lock(&self) {
        match RawMutex::lock(self) {
            Ok(Acquired::Clean) => {}
            Ok(Acquired::OwnerDied) => self.refuse_owner_died(),
            Err(e) => die("lock", &e),
        }
    }

    fn try_lock(&self) -> bool {
        match RawMutex::try_lock(self) {
            Ok(Acquired::Clean) => true,
            Ok(Acquired::OwnerDied) => {
                // SAFETY: just acquired on this thread.
                unsafe { self.unlock_still_owner_died() };
                false
            }
            Err(_) => false,
        }
    }

    unsafe fn unlock(&self) {
        // SAFETY: lock_api guarantees the caller holds the lock on this thread.
        unsafe { RawMutex::unlock(self) }
    }

    fn is_locked(&self) -> bool {
        RawMutex::is_locked(self)
    }
}

impl RawRwLock {
    fn refuse_write_owner_died(&self) -> ! {
        // SAFETY: this thread just got exclusive access with the writer marked owner-died.
        unsafe { self.give_back_owner_died() };
        die("rwlock", &OWNER_DIED_MSG)
    }
}

// SAFETY: readers share, writers exclude everyone, across threads and processes.
unsafe impl lock_api::RawRwLock for RawRwLock {
    #[allow(clippy::declare_interior_mutable_const)]
    const INIT: Self = RawRwLock::new();
    type GuardMarker = lock_api::GuardNoSend;

    fn lock_shared(&self) {
        match RawRwLock::lock_shared(self) {
            Ok(ReadAcquired::Read(_)) => {}
            Ok(ReadAcquired::WriteOwnerDied) => self.refuse_write_owner_died(),
            Err(e) => die("read lock", &e),
        }
    }

    fn try_lock_shared(&self) -> bool {
        match RawRwLock::try_lock_shared(self) {
            Ok(ReadAcquired::Read(_)) => true,
            Ok(ReadAcquired::WriteOwnerDied) => {
                // SAFETY: as in refuse_write_owner_died.
                unsafe { self.give_back_owner_died() };
                false
            }
            Err(_) => false,
        }
    }

    unsafe fn unlock_shared(&self) {
        // SAFETY: lock_api guarantees this thread holds read access.
        unsafe { self.unlock_shared_any() };
    }

    fn lock_exclusive(&self) {
        match RawRwLock::lock_exclusive(self) {
            Ok(Acquired::Clean) => {}
            Ok(Acquired::OwnerDied) => self.refuse_write_owner_died(),
            Err(e) => die("write lock", &e),
        }
    }

    fn try_lock_exclusive(&self) -> bool {
        match RawRwLock::try_lock_exclusive(self) {
            Ok(Acquired::Clean) => true,
            Ok(Acquired::OwnerDied) => {
                // SAFETY: as in refuse_write_owner_died.
                unsafe { self.give_back_owner_died() };
                false
            }
            Err(_) => false,
        }
    }

    unsafe fn unlock_exclusive(&self) {
        // SAFETY: lock_api guarantees this thread holds exclusive access.
        unsafe { RawRwLock::unlock_exclusive(self) }
    }
}
