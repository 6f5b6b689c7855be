//! [`Held`]: a raw lock held, released on drop, the one place where "lock, and repair the
//! data first if the previous owner died holding it" is written.
//!
//! Every in-segment data structure built on [`RawMutex`] or [`RawRwLock`] (the allocator,
//! the directory, lists, maps, queues, and [`Mutex`](crate::Mutex) /
//! [`RwLock`](crate::RwLock) themselves) takes its lock through a `Held` constructor:
//!
//! - clean acquisition: the guard is returned;
//! - the previous owner died holding the lock: the caller's `repair` runs while the lock
//!   is held; on `Ok` the lock is made consistent and the guard returned; on `Err` (or a
//!   panic) the guard is dropped *without* `make_consistent`, which makes the lock
//!   permanently [`NotRecoverable`](LockError::NotRecoverable) for everyone, and `repair`'s
//!   error is returned;
//! - a timeout that elapses gives [`LockError::TimedOut`].
//!
//! Checkers that must not repair use the `*_if_consistent` constructors: a lock found
//! owner-died is given back still marked, for the next user to repair.

use core::marker::PhantomData;
use core::time::Duration;

use crate::error::LockError;
use crate::raw_mutex::{Acquired, RawMutex};
use crate::rwlock::{RawRwLock, ReadAcquired};

/// Which lock a [`Held`] releases, and how.
#[derive(Debug, Clone, Copy)]
enum Lock<'l> {
    Mutex(&'l RawMutex),
    Exclusive(&'l RawRwLock),
    Shared(&'l RawRwLock, u32),
}

/// A held [`RawMutex`], or a [`RawRwLock`] held exclusively or shared; released on drop.
///
/// Not `Send`: the raw locks belong to the thread that took them (its id is the futex
/// owner and the lock is linked into that thread's kernel robust list), and a release from
/// another thread would do nothing.
///
/// ```
/// use relshm_sync::{Held, LockError, RawMutex};
/// let lock = RawMutex::new();
/// let mut repaired = false;
/// {
///     let _held = Held::mutex(&lock, None, || {
///         repaired = true; // runs only if the previous owner died holding the lock
///         Ok::<(), LockError>(())
///     })?;
///     assert!(lock.is_locked_by_current_thread());
/// }
/// assert!(!lock.is_locked() && !repaired);
/// # Ok::<(), LockError>(())
/// ```
#[must_use = "dropping a Held releases the lock at once"]
#[derive(Debug)]
pub struct Held<'l> {
    lock: Lock<'l>,
    _not_send: PhantomData<*const ()>,
}

// SAFETY: a `&Held` gives access to nothing but which kind of lock is held; only the owner
// (by value, on its thread: `Held` is not `Send`) can release it.
unsafe impl Sync for Held<'_> {}

impl<'l> Held<'l> {
    fn new(lock: Lock<'l>) -> Self {
        Self {
            lock,
            _not_send: PhantomData,
        }
    }

    /// Takes `lock`, waiting at most `timeout` (`None`: forever). If its previous owner
    /// died holding it, runs `repair` while holding it, then makes it consistent; if
    /// `repair` fails the lock is released unrepaired (and becomes not recoverable) and
    /// `repair`'s error is returned.
    pub fn mutex<E: From<LockError>>(
        lock: &'l RawMutex,
        timeout: Option<Duration>,
        repair: impl FnOnce() -> Result<(), E>,
    ) -> Result<Self, E> {
        let acquired = match timeout {
            None => lock.lock(),
            Some(d) => lock.lock_timeout(d),
        }?;
        Self::new(Lock::Mutex(lock)).repaired(acquired == Acquired::OwnerDied, repair)
    }

    /// Exclusive access to `lock`, waiting at most `timeout` (`None`: forever), repairing
    /// first if a writer died holding it (as for [`mutex`](Self::mutex)).
    pub fn exclusive<E: From<LockError>>(
        lock: &'l RawRwLock,
        timeout: Option<Duration>,
        repair: impl FnOnce() -> Result<(), E>,
    ) -> Result<Self, E> {
        let acquired = match timeout {
            None => lock.lock_exclusive(),
            Some(d) => lock.lock_exclusive_timeout(d),
        }?;
        Self::new(Lock::Exclusive(lock)).repaired(acquired == Acquired::OwnerDied, repair)
    }

    /// Read access to `lock`, waiting at most `timeout` (`None`: forever). If a writer
    /// died holding it, the acquisition ends *exclusive* instead: `repair` runs, the lock
    /// is made consistent, and the returned guard holds it exclusively (see
    /// [`is_shared`](Self::is_shared)); a failed repair is reported as for
    /// [`mutex`](Self::mutex). Dead readers are recovered without `repair`.
    pub fn shared<E: From<LockError>>(
        lock: &'l RawRwLock,
        timeout: Option<Duration>,
        repair: impl FnOnce() -> Result<(), E>,
    ) -> Result<Self, E> {
        let acquired = match timeout {
            None => lock.lock_shared(),
            Some(d) => lock.lock_shared_timeout(d),
        }?;
        match acquired {
            ReadAcquired::Read(slot) => Ok(Self::new(Lock::Shared(lock, slot))),
            ReadAcquired::WriteOwnerDied => Self::new(Lock::Exclusive(lock)).repaired(true, repair),
        }
    }

    /// Takes `lock` (waiting at most `timeout`) only if nobody needs to repair it:
    /// `Ok(None)` when its previous owner died holding it, after giving it back still
    /// marked owner-died, so that the next user that can repair does. For checkers that
    /// must report, not repair.
    pub fn mutex_if_consistent(
        lock: &'l RawMutex,
        timeout: Option<Duration>,
    ) -> Result<Option<Self>, LockError> {
        let acquired = match timeout {
            None => lock.lock(),
            Some(d) => lock.lock_timeout(d),
        }?;
        if acquired == Acquired::OwnerDied {
            // SAFETY: this thread has just acquired the lock and holds it.
            unsafe { lock.unlock_still_owner_died() };
            return Ok(None);
        }
        Ok(Some(Self::new(Lock::Mutex(lock))))
    }

    /// Exclusive access to `lock` only if no writer died holding it, as for
    /// [`mutex_if_consistent`](Self::mutex_if_consistent).
    pub fn exclusive_if_consistent(
        lock: &'l RawRwLock,
        timeout: Option<Duration>,
    ) -> Result<Option<Self>, LockError> {
        let acquired = match timeout {
            None => lock.lock_exclusive(),
            Some(d) => lock.lock_exclusive_timeout(d),
        }?;
        if acquired == Acquired::OwnerDied {
            // SAFETY: this thread has just acquired exclusive access and holds it.
            unsafe { lock.give_back_owner_died() };
            return Ok(None);
        }
        Ok(Some(Self::new(Lock::Exclusive(lock))))
    }

    /// Whether this holds read access (`false`: exclusive, or a mutex).
    pub fn is_shared(&self) -> bool {
        matches!(self.lock, Lock::Shared(..))
    }

    /// Wraps a mutex this thread holds (after the owner-died handling, if any).
    ///
    /// # Safety
    /// The calling thread holds `lock` and nothing else will release it.
    pub(crate) unsafe fn adopt_mutex(lock: &'l RawMutex) -> Self {
        Self::new(Lock::Mutex(lock))
    }

    /// Wraps exclusive access this thread holds.
    ///
    /// # Safety
    /// As for [`adopt_mutex`](Self::adopt_mutex), with exclusive access to `lock`.
    pub(crate) unsafe fn adopt_exclusive(lock: &'l RawRwLock) -> Self {
        Self::new(Lock::Exclusive(lock))
    }

    /// Wraps read access this thread holds through reader slot `slot`.
    ///
    /// # Safety
    /// As for [`adopt_mutex`](Self::adopt_mutex), with read access through `slot`.
    pub(crate) unsafe fn adopt_shared(lock: &'l RawRwLock, slot: u32) -> Self {
        Self::new(Lock::Shared(lock, slot))
    }

    /// Marks the data repaired after an owner's death (a no-op otherwise).
    pub(crate) fn make_consistent(&mut self) {
        match self.lock {
            // SAFETY: a Held exists only while this thread holds its lock as recorded.
            Lock::Mutex(m) => unsafe { m.make_consistent() },
            // SAFETY: as above, exclusively.
            Lock::Exclusive(l) => unsafe { l.make_consistent() },
            // Read access is never handed out after a writer's death.
            Lock::Shared(..) => {}
        }
    }

    /// If `died`, runs `repair` while holding, then makes the lock consistent. On failure
    /// `self` drops unrepaired: the release makes the lock not recoverable.
    fn repaired<E>(
        mut self,
        died: bool,
        repair: impl FnOnce() -> Result<(), E>,
    ) -> Result<Self, E> {
        if died {
            repair()?;
            self.make_consistent();
        }
        Ok(self)
    }
}

impl Drop for Held<'_> {
    fn drop(&mut self) {
        match self.lock {
            // SAFETY: a Held is made only right after this thread acquired the lock as
            // recorded (or adopted one it holds), it is not Send, and it releases once.
            // Still owner-died (repair failed), this release makes it not recoverable.
            Lock::Mutex(m) => unsafe { m.unlock() },
            // SAFETY: as above, exclusive access.
            Lock::Exclusive(l) => unsafe { l.unlock_exclusive() },
            // SAFETY: as above, read access through `slot`.
            Lock::Shared(l, slot) => unsafe { l.unlock_shared(slot) },
        }
    }
}
