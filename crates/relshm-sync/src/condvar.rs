//! A process-shared condition variable for [`Mutex`].

use crate::sync::Instant;
use core::time::Duration;

use crate::error::MutexError;
use crate::mutex::{Mutex, MutexGuard};
use crate::semaphore::wake_waiters;
use crate::sync::{self, AtomicU32, Ordering, Wake, fence};

/// A condition variable usable in place in shared memory with any [`Mutex`].
///
/// # Layout (8 bytes, `#[repr(C)]`; all-zero bytes = no waiters)
///
/// | offset | type | field |
/// |---|---|---|
/// | 0 | `u32` | sequence: bumped by every notify; waiters sleep on it (shared futex) |
/// | 4 | `u32` | waiters: how many threads are between announcing and finishing a wait |
///
/// A waiter killed while waiting leaves `waiters` one too high, which only costs notifiers
/// a futile wake syscall. Any bit pattern is a valid state. Wake-ups may be spurious, as
/// with every condition variable: wait in a loop that re-checks the condition.
///
/// [`notify_one`](Self::notify_one) wakes every sleeper, not one: a wake-up given to one
/// waiter alone would die with it if that waiter were killed before it relocked the mutex,
/// and the waiters still asleep would never learn of the change (see [`docs`](crate::docs),
/// "Waiters that die"). The others see a spurious wake-up and wait again.
#[repr(C)]
#[derive(Default)]
pub struct Condvar {
    seq: AtomicU32,
    waiters: AtomicU32,
}

impl core::fmt::Debug for Condvar {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Condvar")
            .field("waiters", &self.waiters.load(Ordering::Relaxed))
            .finish()
    }
}

/// Result of a wait on a [`Condvar`]: the reacquired guard or the lock's error.
pub type WaitResult<'a, T> = Result<MutexGuard<'a, T>, MutexError<MutexGuard<'a, T>>>;

impl Condvar {
    /// A condition variable without waiters.
    #[cfg(not(loom))]
    pub const fn new() -> Self {
        Self {
            seq: AtomicU32::new(0),
            waiters: AtomicU32::new(0),
        }
    }

    /// A condition variable without waiters.
    #[cfg(loom)]
    pub fn new() -> Self {
        Self {
            seq: AtomicU32::new(0),
            waiters: AtomicU32::new(0),
        }
    }

    /// Atomically releases `guard`'s mutex and sleeps until notified (or spuriously), then
    /// relocks. The relock may report `OwnerDied` like [`Mutex::lock`].
    pub fn wait<'a, T>(&self, guard: MutexGuard<'a, T>) -> WaitResult<'a, T> {
        self.wait_inner(guard, None).0
    }

    /// Like [`wait`](Self::wait), at most about `d`; the `bool` is `true` when the wait
    /// timed out (the mutex is relocked in both cases).
    pub fn wait_timeout<'a, T>(
        &self,
        guard: MutexGuard<'a, T>,
        d: Duration,
    ) -> (WaitResult<'a, T>, bool) {
        self.wait_inner(guard, Some(d))
    }

    /// Waits while `cond` holds, returning when it is false; with a timeout `d` for the
    /// whole wait. The `bool` is `true` on timeout (the condition may still hold).
    pub fn wait_while_timeout<'a, T>(
        &self,
        mut guard: MutexGuard<'a, T>,
        d: Duration,
        mut cond: impl FnMut(&mut T) -> bool,
    ) -> (WaitResult<'a, T>, bool) {
        let deadline = Instant::now().checked_add(d);
        while cond(&mut guard) {
            let left = match deadline {
                None => Duration::MAX,
                Some(dl) => match dl.checked_duration_since(Instant::now()) {
                    Some(l) if !l.is_zero() => l,
                    _ => return (Ok(guard), true),
                },
            };
            match self.wait_inner(guard, Some(left)) {
                (Ok(g), _) => guard = g,
                other => return other,
            }
        }
        (Ok(guard), false)
    }

    fn wait_inner<'a, T>(
        &self,
        guard: MutexGuard<'a, T>,
        d: Option<Duration>,
    ) -> (WaitResult<'a, T>, bool) {
        // Announce ourselves, SeqCst fence, then sample the sequence. A notifier bumps the
        // sequence, SeqCst fence, reads `waiters`: either it sees us, or we see its bump
        // (then our futex wait returns at once).
        self.waiters.fetch_add(1, Ordering::Relaxed);
        fence(Ordering::SeqCst);
        let seq = self.seq.load(Ordering::Relaxed);
        let mutex: &'a Mutex<T> = guard.unlock_into_mutex();
        let woke = sync::futex_wait(&self.seq, seq, d);
        self.waiters.fetch_sub(1, Ordering::Relaxed);
        let timed_out = woke == Wake::TimedOut;
        (MutexGuard::relock(mutex, mutex.raw().lock()), timed_out)
    }

    /// Wakes at least one waiter (in any process): every sleeper, so that no notification
    /// dies with a killed waiter (see the type's docs).
    pub fn notify_one(&self) {
        self.notify_all();
    }

    /// Wakes every waiter (in any process).
    pub fn notify_all(&self) {
        self.seq.fetch_add(1, Ordering::Release);
        wake_waiters(&self.seq, &self.waiters, i32::MAX as u32);
    }
}
