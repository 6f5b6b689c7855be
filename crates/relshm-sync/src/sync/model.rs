//! The loom model of the facade.
//!
//! - A futex is modelled by one loom `Mutex<()>` + `Condvar` for all words: `futex_wait`
//!   checks the word under the mutex and parks on the condvar; `futex_wake` takes the mutex
//!   and notifies every parked thread (spurious wake-ups are allowed by futex semantics, and
//!   every caller re-checks its word). A wait with a timeout returns at once as timed out
//!   (loom has no clock), which exercises every timeout path.
//! - The kernel robust list is modelled by a per-thread record of held lock words;
//!   [`simulate_owner_death`] runs what the kernel runs when a thread dies.

use super::Wake;
use core::time::Duration;
use loom::sync::{Condvar, Mutex};
use std::cell::{Cell, RefCell};

use super::Links;
pub(crate) use loom::sync::atomic::{AtomicU32, Ordering, fence};

loom::lazy_static! {
    /// The model's clock (nanoseconds): it only moves when a timed wait "sleeps".
    static ref CLOCK: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    static ref FUTEX: (Mutex<()>, Condvar) = (Mutex::new(()), Condvar::new());
    static ref NEXT_TID: AtomicU32 = AtomicU32::new(1);
}

loom::thread_local! {
    static TID: Cell<u32> = Cell::new(0);
    static HELD: RefCell<Vec<usize>> = RefCell::new(Vec::new());
}

/// Modelled `FUTEX_WAIT`.
pub fn futex_wait(word: &AtomicU32, expected: u32, timeout: Option<Duration>) -> Wake {
    if let Some(d) = timeout {
        // A timed wait sleeps its whole timeout at once: time jumps forward.
        CLOCK.fetch_add(
            d.as_nanos().min(u128::from(u64::MAX / 2)) as u64,
            std::sync::atomic::Ordering::Relaxed,
        );
        return Wake::TimedOut;
    }
    let g = FUTEX.0.lock().unwrap();
    if word.load(Ordering::SeqCst) != expected {
        return Wake::Woken;
    }
    drop(FUTEX.1.wait(g).unwrap());
    Wake::Woken
}

/// Modelled `FUTEX_WAKE` (wakes everyone: a superset of the real behaviour).
pub fn futex_wake(_word: &AtomicU32, _n: u32) {
    let _g = FUTEX.0.lock().unwrap();
    FUTEX.1.notify_all();
}

/// Spin hint: a loom yield, so spin loops terminate in the model.
pub fn spin_hint() {
    loom::thread::yield_now();
}

/// A model thread id (1, 2, ... in order of first use).
pub(crate) fn current_tid() -> u32 {
    TID.with(|t| {
        if t.get() == 0 {
            t.set(NEXT_TID.fetch_add(1, Ordering::Relaxed));
        }
        t.get()
    })
}

pub(crate) fn op_begin(_l: &Links<'_>) -> usize {
    1
}

pub(crate) fn op_end(_h: usize) {}

pub(crate) fn enqueue(_h: usize, l: &Links<'_>) {
    HELD.with(|h| h.borrow_mut().push(l.word as *const AtomicU32 as usize));
}

pub(crate) fn dequeue(_h: usize, l: &Links<'_>) {
    let w = l.word as *const AtomicU32 as usize;
    HELD.with(|h| {
        let mut v = h.borrow_mut();
        if let Some(i) = v.iter().rposition(|&x| x == w) {
            v.remove(i);
        }
    });
}

/// What the kernel does when the calling model thread dies: every lock word it still holds
/// (tid in the word) gets `OWNER_DIED`, its tid cleared, `WAITERS` kept, and a waiter is
/// woken. Call it instead of releasing the locks, then return from the thread.
pub fn simulate_owner_death() {
    let tid = current_tid();
    let held: Vec<usize> = HELD.with(|h| h.borrow_mut().drain(..).collect());
    for addr in held {
        // SAFETY: the address was recorded from a live lock the model thread held; the
        // model's locks outlive its threads (they are in an Arc or a static).
        let word = unsafe { &*(addr as *const AtomicU32) };
        let mut w = word.load(Ordering::Relaxed);
        loop {
            if w & crate::raw_mutex::TID_MASK != tid {
                break;
            }
            let new = (w & crate::raw_mutex::WAITERS) | crate::raw_mutex::OWNER_DIED;
            match word.compare_exchange(w, new, Ordering::SeqCst, Ordering::Relaxed) {
                Ok(_) => {
                    futex_wake(word, 1);
                    break;
                }
                Err(x) => w = x,
            }
        }
    }
}

/// The model's `Instant`: a point on the model clock, which advances only by timed waits,
/// so every timeout path is explored deterministically.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Instant(u64);

impl Instant {
    pub fn now() -> Self {
        Instant(CLOCK.load(std::sync::atomic::Ordering::Relaxed))
    }

    pub fn checked_add(self, d: Duration) -> Option<Self> {
        u64::try_from(d.as_nanos())
            .ok()
            .and_then(|n| self.0.checked_add(n))
            .map(Instant)
    }

    pub fn checked_duration_since(self, earlier: Self) -> Option<Duration> {
        self.0.checked_sub(earlier.0).map(Duration::from_nanos)
    }

    pub fn saturating_duration_since(self, earlier: Self) -> Duration {
        self.checked_duration_since(earlier).unwrap_or_default()
    }
}
