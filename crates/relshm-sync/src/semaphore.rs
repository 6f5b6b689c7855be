//! A process-shared counting semaphore and events built on the same futex word.

use crate::sync::Instant;
use core::time::Duration;

use crate::error::LockError;
use crate::raw_mutex::{Acquired, RawMutex};
use crate::sync::{self, AtomicU32, Ordering, fence};

/// `post` would push the count past [`Semaphore::MAX`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error(
    "semaphore count would exceed {max}: a poster runs away from its waiters (or the count \
     in the segment is corrupt)",
    max = Semaphore::MAX
)]
pub struct SemaphoreOverflow;

/// Remaining time before `deadline` (`None` = forever), or `Err(TimedOut)`.
fn left(deadline: Option<Instant>) -> Result<Option<Duration>, LockError> {
    match deadline {
        None => Ok(None),
        Some(d) => match d.checked_duration_since(Instant::now()) {
            Some(l) if !l.is_zero() => Ok(Some(l)),
            _ => Err(LockError::TimedOut),
        },
    }
}

/// Blocks until `try_take` succeeds, sleeping on `word` while it is 0.
///
/// The protocol shared by [`Semaphore`] and the events: announce in `waiters`, SeqCst
/// fence, re-check `word`, then sleep. A poster changes `word`, SeqCst fence, reads
/// `waiters`: the fences order the two, so one side sees the other (either the poster
/// wakes us or we do not sleep). Every sleep, timed out or not, is followed by one more
/// attempt before the deadline is checked.
///
/// With a `turnstile`, only the thread holding it sleeps on `word` (the head); the others
/// queue on the turnstile, a robust [`RawMutex`]. A poster's single wake-up therefore
/// always goes to the head, and a head that dies anywhere, asleep or woken and about to
/// take, releases the turnstile through the kernel's robust list, which wakes the next
/// waiter to become head and look at `word` again: no wake-up dies with a waiter (see
/// [`docs`](crate::docs), "Waiters that die"). Without one (manual-reset events, whose
/// `set` wakes every sleeper, or a turnstile whose bytes are beyond recovery) every
/// waiter sleeps on `word` itself.
fn wait_on(
    word: &AtomicU32,
    waiters: &AtomicU32,
    turnstile: Option<&RawMutex>,
    deadline: Option<Instant>,
    try_take: impl Fn() -> Result<(), LockError>,
) -> Result<(), LockError> {
    let Some(t) = turnstile else {
        return sleep_until_taken(word, waiters, deadline, try_take);
    };
    // Taking a permit that is there costs no turnstile.
    if try_take().is_ok() {
        return Ok(());
    }
    match enter_turnstile(t, deadline) {
        Ok(()) => {
            let r = sleep_until_taken(word, waiters, deadline, try_take);
            // SAFETY: this thread took the turnstile in enter_turnstile.
            unsafe { t.unlock() };
            r
        }
        // One last attempt: a permit may have come just as the deadline passed.
        Err(LockError::TimedOut) => try_take().map_err(|_| LockError::TimedOut),
        // A turnstile beyond recovery (garbage bytes): sleep on the word like everyone.
        Err(_) => sleep_until_taken(word, waiters, deadline, try_take),
    }
}

/// Takes the turnstile (it guards no data: a dead head's mark is cleared at once).
fn enter_turnstile(t: &RawMutex, deadline: Option<Instant>) -> Result<(), LockError> {
    let a = match deadline {
        None => t.lock(),
        Some(d) => t.lock_timeout(d.saturating_duration_since(Instant::now())),
    }?;
    if a == Acquired::OwnerDied {
        // SAFETY: this thread holds the turnstile; a dead head left nothing to repair.
        unsafe { t.make_consistent() };
    }
    Ok(())
}

fn sleep_until_taken(
    word: &AtomicU32,
    waiters: &AtomicU32,
    deadline: Option<Instant>,
    try_take: impl Fn() -> Result<(), LockError>,
) -> Result<(), LockError> {
    loop {
        if try_take().is_ok() {
            return Ok(());
        }
        let timeout = left(deadline)?;
        waiters.fetch_add(1, Ordering::Relaxed);
        fence(Ordering::SeqCst);
        if word.load(Ordering::Relaxed) == 0 {
            sync::futex_wait(word, 0, timeout);
        }
        waiters.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The poster's half of [`wait_on`]'s protocol, after it changed `word`: SeqCst fence,
/// then wake up to `n` sleepers on `word` if any announced themselves in `waiters`.
pub(crate) fn wake_waiters(word: &AtomicU32, waiters: &AtomicU32, n: u32) {
    fence(Ordering::SeqCst);
    if waiters.load(Ordering::Relaxed) != 0 {
        sync::futex_wake(word, n);
    }
}

/// A counting semaphore usable in place in shared memory.
///
/// # Layout (48 bytes, 8-aligned, `#[repr(C)]`; all-zero bytes = count 0, no waiters)
///
/// | offset | type | field |
/// |---|---|---|
/// | 0 | `u32` | count (the head waiter sleeps on it while it is 0; shared futex) |
/// | 4 | `u32` | waiters announced (a waiter killed while waiting leaves it one too high, which costs posters a futile wake syscall) |
/// | 8 | [`RawMutex`] | turnstile: held by the one waiter that sleeps on the count; the others queue on it |
///
/// A semaphore has no owner, so a process that dies between `wait` and `post` simply never
/// posts: owner death is not detectable here (use a [`Mutex`](crate::Mutex) for that).
#[repr(C)]
#[derive(Default)]
pub struct Semaphore {
    count: AtomicU32,
    waiters: AtomicU32,
    turnstile: RawMutex,
}

impl core::fmt::Debug for Semaphore {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Semaphore")
            .field("count", &self.count())
            .finish_non_exhaustive()
    }
}

impl Semaphore {
    /// The largest count.
    pub const MAX: u32 = i32::MAX as u32;

    /// A semaphore with `count` permits (clamped to [`MAX`](Self::MAX)).
    #[cfg(not(loom))]
    pub const fn new(count: u32) -> Self {
        let c = if count > Self::MAX { Self::MAX } else { count };
        Self {
            count: AtomicU32::new(c),
            waiters: AtomicU32::new(0),
            turnstile: RawMutex::new(),
        }
    }

    /// A semaphore with `count` permits (clamped to [`MAX`](Self::MAX)).
    #[cfg(loom)]
    pub fn new(count: u32) -> Self {
        Self {
            count: AtomicU32::new(count.min(Self::MAX)),
            waiters: AtomicU32::new(0),
            turnstile: RawMutex::new(),
        }
    }

    /// The current count (racy).
    pub fn count(&self) -> u32 {
        self.count.load(Ordering::Relaxed)
    }

    /// Adds a permit and wakes one waiter.
    pub fn post(&self) -> Result<(), SemaphoreOverflow> {
        let mut c = self.count.load(Ordering::Relaxed);
        loop {
            if c >= Self::MAX {
                return Err(SemaphoreOverflow);
            }
            match self
                .count
                .compare_exchange_weak(c, c + 1, Ordering::Release, Ordering::Relaxed)
            {
                Ok(_) => break,
                Err(x) => c = x,
            }
        }
        wake_waiters(&self.count, &self.waiters, 1);
        Ok(())
    }

    /// Takes a permit if one is available, else `Err(WouldBlock)`.
    pub fn try_wait(&self) -> Result<(), LockError> {
        let mut c = self.count.load(Ordering::Relaxed);
        while c != 0 {
            match self
                .count
                .compare_exchange_weak(c, c - 1, Ordering::Acquire, Ordering::Relaxed)
            {
                Ok(_) => return Ok(()),
                Err(x) => c = x,
            }
        }
        Err(LockError::WouldBlock)
    }

    /// Blocks until a permit is available and takes it.
    pub fn wait(&self) {
        // Without a deadline the only possible error is a timeout, which cannot happen.
        let _ = self.wait_until(None);
    }

    /// Like [`wait`](Self::wait), giving up with `Err(TimedOut)` after `d`.
    pub fn wait_timeout(&self, d: Duration) -> Result<(), LockError> {
        self.wait_until(Instant::now().checked_add(d))
    }

    fn wait_until(&self, deadline: Option<Instant>) -> Result<(), LockError> {
        wait_on(
            &self.count,
            &self.waiters,
            Some(&self.turnstile),
            deadline,
            || self.try_wait(),
        )
    }
}

/// An event: a flag that waiters block on until it is set.
///
/// # Layout (48 bytes, 8-aligned, `#[repr(C)]`; all-zero bytes = not set, no waiters)
///
/// | offset | type | field |
/// |---|---|---|
/// | 0 | `u32` | state: 0 = not set, anything else = set (shared futex) |
/// | 4 | `u32` | waiters announced |
/// | 8 | [`RawMutex`] | turnstile of an auto-reset event, as in [`Semaphore`] (unused by a manual-reset event, whose `set` wakes every sleeper) |
///
/// With `AUTO = false` (a [`ManualResetEvent`]) `set` releases every waiter and the event
/// stays set until [`reset`](Self::reset); with `AUTO = true` (an [`AutoResetEvent`]) `set`
/// releases exactly one waiter, which resets the event as it passes.
#[repr(C)]
#[derive(Default)]
pub struct Event<const AUTO: bool> {
    state: AtomicU32,
    waiters: AtomicU32,
    turnstile: RawMutex,
}

/// An event that stays set until reset; `set` releases every waiter.
pub type ManualResetEvent = Event<false>;
/// An event that one waiter consumes; `set` releases exactly one waiter.
pub type AutoResetEvent = Event<true>;

impl<const AUTO: bool> core::fmt::Debug for Event<AUTO> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Event")
            .field("auto_reset", &AUTO)
            .field("set", &self.is_set())
            .finish_non_exhaustive()
    }
}

impl<const AUTO: bool> Event<AUTO> {
    /// A not-set event.
    #[cfg(not(loom))]
    pub const fn new() -> Self {
        Self {
            state: AtomicU32::new(0),
            waiters: AtomicU32::new(0),
            turnstile: RawMutex::new(),
        }
    }

    /// A not-set event.
    #[cfg(loom)]
    pub fn new() -> Self {
        Self {
            state: AtomicU32::new(0),
            waiters: AtomicU32::new(0),
            turnstile: RawMutex::new(),
        }
    }

    /// Whether the event is set (racy).
    pub fn is_set(&self) -> bool {
        self.state.load(Ordering::Relaxed) != 0
    }

    /// Sets the event and wakes every waiter (manual) or one (auto).
    pub fn set(&self) {
        // An RMW rather than a plain store: it is ordered after any waiter's consuming swap
        // in the word's modification order, which is what the model checker reasons with.
        self.state.swap(1, Ordering::Release);
        wake_waiters(
            &self.state,
            &self.waiters,
            if AUTO { 1 } else { i32::MAX as u32 },
        );
    }

    /// Clears the event.
    pub fn reset(&self) {
        self.state.store(0, Ordering::Release);
    }

    /// Passes if the event is set (auto: and resets it), else `Err(WouldBlock)`.
    pub fn try_wait(&self) -> Result<(), LockError> {
        let passed = if AUTO {
            self.state.swap(0, Ordering::Acquire) != 0
        } else {
            self.state.load(Ordering::Acquire) != 0
        };
        if passed {
            Ok(())
        } else {
            Err(LockError::WouldBlock)
        }
    }

    /// Blocks until the event is set (auto: and resets it).
    pub fn wait(&self) {
        // Without a deadline the only possible error is a timeout, which cannot happen.
        let _ = self.wait_until(None);
    }

    /// Like [`wait`](Self::wait), giving up with `Err(TimedOut)` after `d`.
    pub fn wait_timeout(&self, d: Duration) -> Result<(), LockError> {
        self.wait_until(Instant::now().checked_add(d))
    }

    fn wait_until(&self, deadline: Option<Instant>) -> Result<(), LockError> {
        let turnstile = AUTO.then_some(&self.turnstile);
        wait_on(&self.state, &self.waiters, turnstile, deadline, || {
            self.try_wait()
        })
    }
}
