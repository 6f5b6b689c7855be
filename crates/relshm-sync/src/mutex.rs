//! `Mutex<T>`: a [`RawMutex`] next to the data it protects.

use core::cell::UnsafeCell;
use core::ops::{Deref, DerefMut};
use core::time::Duration;

use crate::error::{LockError, MutexError};
use crate::held::Held;
use crate::raw_mutex::{Acquired, RawMutex};

/// A robust, process-shared mutex protecting a `T`, usable in place in shared memory.
///
/// Layout: `#[repr(C)]`, the 40-byte [`RawMutex`] at offset 0, then `T` at its alignment.
/// For use in a segment `T` must itself be `#[repr(C)]` with fixed-width fields.
///
/// ```
/// use relshm_sync::{Mutex, MutexError};
/// static M: Mutex<u64> = Mutex::new(0);
/// match M.lock() {
///     Ok(mut g) => *g += 1,
///     Err(MutexError::OwnerDied(mut g)) => {
///         *g = 0; // repair
///         g.make_consistent();
///     }
///     Err(e) => panic!("{e}"),
/// }
/// assert_eq!(*M.lock().unwrap(), 1);
/// ```
///
/// Or let the mutex run the repair and make it consistent, so that errors go up with `?`:
///
/// ```
/// use relshm_sync::{LockError, Mutex};
/// let m = Mutex::new(0u64);
/// *m.lock_or_repair(|n| {
///     *n = 0; // only after a holder died: put the data back in a consistent state
///     Ok::<(), LockError>(())
/// })? += 1;
/// assert_eq!(*m.lock_or_repair(|_| Ok::<(), LockError>(()))?, 1);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[repr(C)]
pub struct Mutex<T> {
    raw: RawMutex,
    data: UnsafeCell<T>,
}

// SAFETY: the mutex hands out access to T to one thread at a time, so sharing the mutex
// lets T move between threads: T: Send is what is needed (as for std's Mutex).
unsafe impl<T: Send> Sync for Mutex<T> {}
// SAFETY: moving the mutex moves the T (the raw lock holds no thread-bound state when not
// locked, and it cannot be moved while a guard borrows it).
unsafe impl<T: Send> Send for Mutex<T> {}

impl<T: Default> Default for Mutex<T> {
    fn default() -> Self {
        Self::new(T::default())
    }
}

impl<T> core::fmt::Debug for Mutex<T> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Mutex")
            .field("raw", &self.raw)
            .finish_non_exhaustive()
    }
}

/// The guard of a locked [`Mutex`]; unlocks on drop. Not `Send`: the kernel robust list
/// that tracks the lock belongs to the locking thread.
#[must_use = "dropping the guard unlocks the mutex at once"]
pub struct MutexGuard<'a, T> {
    mutex: &'a Mutex<T>,
    held: Held<'a>,
}

// SAFETY: a &MutexGuard only gives &T, so sharing it needs T: Sync.
unsafe impl<T: Sync> Sync for MutexGuard<'_, T> {}

type LockResult<'a, T> = Result<MutexGuard<'a, T>, MutexError<MutexGuard<'a, T>>>;

impl<T> Mutex<T> {
    /// An unlocked, consistent mutex holding `value`.
    #[cfg(not(loom))]
    pub const fn new(value: T) -> Self {
        Self {
            raw: RawMutex::new(),
            data: UnsafeCell::new(value),
        }
    }

    /// An unlocked, consistent mutex holding `value`.
    #[cfg(loom)]
    pub fn new(value: T) -> Self {
        Self {
            raw: RawMutex::new(),
            data: UnsafeCell::new(value),
        }
    }

    fn guard(&self, r: Result<Acquired, LockError>) -> LockResult<'_, T> {
        let g = || MutexGuard {
            mutex: self,
            // SAFETY: called only with an `Ok` result of locking `self.raw` on this thread.
            held: unsafe { Held::adopt_mutex(&self.raw) },
        };
        match r {
            Ok(Acquired::Clean) => Ok(g()),
            Ok(Acquired::OwnerDied) => Err(MutexError::OwnerDied(g())),
            Err(e) => Err(e.into()),
        }
    }

    /// Blocks until locked. `Err(OwnerDied(guard))`: you hold it, repair then
    /// `guard.make_consistent()`.
    #[inline]
    pub fn lock(&self) -> LockResult<'_, T> {
        self.guard(self.raw.lock())
    }

    /// Locks if free, else `Err(WouldBlock)`.
    #[inline]
    pub fn try_lock(&self) -> LockResult<'_, T> {
        self.guard(self.raw.try_lock())
    }

    /// Like [`lock`](Self::lock) but gives up with `Err(TimedOut)` after `d`.
    pub fn lock_timeout(&self, d: Duration) -> LockResult<'_, T> {
        self.guard(self.raw.lock_timeout(d))
    }

    /// Blocks until locked. If the previous owner died holding the lock, runs `repair` on
    /// the data while holding it, then makes the lock consistent. If `repair` fails, the
    /// lock is released unrepaired (and becomes permanently not recoverable) and its error
    /// is returned. Lock errors come as `E::from(LockError)`, so `?` works.
    pub fn lock_or_repair<E: From<LockError>>(
        &self,
        repair: impl FnOnce(&mut T) -> Result<(), E>,
    ) -> Result<MutexGuard<'_, T>, E> {
        self.lock_or_repair_within(None, repair)
    }

    /// Like [`lock_or_repair`](Self::lock_or_repair), giving up with
    /// [`LockError::TimedOut`] after `d`.
    pub fn lock_or_repair_timeout<E: From<LockError>>(
        &self,
        d: Duration,
        repair: impl FnOnce(&mut T) -> Result<(), E>,
    ) -> Result<MutexGuard<'_, T>, E> {
        self.lock_or_repair_within(Some(d), repair)
    }

    fn lock_or_repair_within<E: From<LockError>>(
        &self,
        timeout: Option<Duration>,
        repair: impl FnOnce(&mut T) -> Result<(), E>,
    ) -> Result<MutexGuard<'_, T>, E> {
        let held = Held::mutex(&self.raw, timeout, || {
            // SAFETY: Held::mutex runs this only while this thread holds the lock, so no
            // other reference to the data is live.
            repair(unsafe { &mut *self.data.get() })
        })?;
        Ok(MutexGuard { mutex: self, held })
    }

    /// The raw lock (for inspection tools: owner, not-recoverable state).
    pub fn raw(&self) -> &RawMutex {
        &self.raw
    }

    /// Mutable access without locking (the `&mut` proves nobody else can lock it).
    pub fn get_mut(&mut self) -> &mut T {
        self.data.get_mut()
    }

    /// The protected value.
    pub fn into_inner(self) -> T {
        self.data.into_inner()
    }
}

impl<'a, T> MutexGuard<'a, T> {
    /// Declares the protected data repaired after `OwnerDied`; a no-op otherwise.
    pub fn make_consistent(&mut self) {
        self.held.make_consistent();
    }

    /// The mutex this guard locks.
    pub fn mutex(&self) -> &'a Mutex<T> {
        self.mutex
    }

    /// Releases the lock (its `Held` drops); used by the condition variable. Returns the
    /// mutex.
    pub(crate) fn unlock_into_mutex(self) -> &'a Mutex<T> {
        let m = self.mutex;
        drop(self);
        m
    }

    pub(crate) fn relock(m: &'a Mutex<T>, r: Result<Acquired, LockError>) -> LockResult<'a, T> {
        m.guard(r)
    }
}

impl<T> Deref for MutexGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: the guard proves this thread holds the lock, so no other reference to the
        // data is live.
        unsafe { &*self.mutex.data.get() }
    }
}

impl<T> DerefMut for MutexGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: as in deref, and the &mut self makes this the only access.
        unsafe { &mut *self.mutex.data.get() }
    }
}

impl<T: core::fmt::Debug> core::fmt::Debug for MutexGuard<'_, T> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        core::fmt::Debug::fmt(&**self, f)
    }
}
