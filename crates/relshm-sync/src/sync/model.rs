//! The loom model of the facade.
//!
//! - A futex is modelled by a wait queue (one loom `Mutex` for all words) and one loom
//!   `Condvar`: `futex_wait` checks the word under the mutex, queues itself and parks until
//!   a `futex_wake` takes it off the queue; `futex_wake(word, n)` dequeues at most `n`
//!   waiters of that word, oldest first, as the kernel does. Waking exactly `n` (not
//!   everyone) is what lets the model see a wake-up lost with a waiter that dies. A wait
//!   with a timeout returns at once as timed out (loom has no clock), which exercises every
//!   timeout path.
//! - The kernel robust list is modelled by a per-thread record of held lock words and of
//!   the pending operation (`list_op_pending`); [`simulate_owner_death`] runs what the
//!   kernel runs when a thread dies.
//! - A thread can be killed inside a futex wait: [`killable`] runs a closure under a
//!   [`KillAt`] plan; when the plan's wait is reached the thread dies there (asleep, or just
//!   after a wake-up took it off the queue and before it could act on it), the modelled
//!   kernel runs its exit, and the closure is abandoned by unwinding.

use super::Wake;
use core::time::Duration;
use loom::sync::{Condvar, Mutex};
use std::cell::{Cell, RefCell};
use std::collections::VecDeque;

use super::Links;
use crate::raw_mutex::{OWNER_DIED, TID_MASK, WAITERS};
pub(crate) use loom::sync::atomic::{AtomicU32, Ordering, fence};

/// The modelled kernel futex queue: `(word address, waiter ticket)`, oldest first, and
/// the tickets that a wake took off the queue but whose waiter has not noticed yet.
#[derive(Default)]
struct Queue {
    sleeping: VecDeque<(usize, u64)>,
    woken: Vec<u64>,
    next_ticket: u64,
}

loom::lazy_static! {
    /// The model's clock (nanoseconds): it only moves when a timed wait "sleeps".
    static ref CLOCK: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    static ref FUTEX: (Mutex<Queue>, Condvar) = (Mutex::new(Queue::default()), Condvar::new());
    static ref NEXT_TID: AtomicU32 = AtomicU32::new(1);
}

loom::thread_local! {
    static TID: Cell<u32> = Cell::new(0);
    static HELD: RefCell<Vec<usize>> = RefCell::new(Vec::new());
    static PENDING: Cell<usize> = Cell::new(0);
    /// The kill plan of this thread and how many untimed waits it has entered.
    static PLAN: Cell<Option<KillAt>> = Cell::new(None);
    static WAITS: Cell<u32> = Cell::new(0);
}

/// Where a [`killable`] thread dies: in its `wait`-th untimed futex wait (counting from 0),
/// at `stage`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KillAt {
    /// Which untimed futex wait of the thread (0 = its first).
    pub wait: u32,
    /// When in that wait.
    pub stage: KillStage,
}

/// A point inside one futex wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KillStage {
    /// Asleep (killed before a wake-up reached it: the kernel drops it from the queue).
    Asleep,
    /// Taken off the queue by a wake-up, before it retakes the word or acts on the wake-up
    /// in any way: the wake-up dies with it.
    Woken,
}

/// The unwinding payload of a killed model thread.
struct Killed;

/// Runs `f` on this model thread under the kill plan `at`; returns `true` if `f` ran to the
/// end, `false` if the thread was killed (the modelled kernel has then run its exit: the
/// locks it held are marked owner-died and its pending operation handled). Nothing of `f`
/// runs after the kill point; values `f` owned are dropped by the unwinding, so keep no
/// guard whose drop releases shared state alive across a wait in `f`.
pub fn killable(at: KillAt, f: impl FnOnce()) -> bool {
    silence_kills();
    PLAN.with(|p| p.set(Some(at)));
    WAITS.with(|w| w.set(0));
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
    PLAN.with(|p| p.set(None));
    match r {
        Ok(()) => true,
        Err(e) if e.is::<Killed>() => false,
        Err(e) => std::panic::resume_unwind(e),
    }
}

/// Keeps the default panic message for real panics only.
fn silence_kills() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let prev = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !info.payload().is::<Killed>() {
                prev(info);
            }
        }));
    });
}

/// Whether the plan kills this thread at `stage` of the wait numbered `n`.
fn dies_at(n: u32, stage: KillStage) -> bool {
    PLAN.with(Cell::get) == Some(KillAt { wait: n, stage })
}

/// The thread dies here: the kernel's exit runs, then the thread's code is abandoned.
fn die() -> ! {
    simulate_owner_death();
    std::panic::panic_any(Killed);
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
    let n = WAITS.with(|w| {
        let n = w.get();
        w.set(n + 1);
        n
    });
    let addr = word as *const AtomicU32 as usize;
    let mut q = FUTEX.0.lock().unwrap();
    if word.load(Ordering::SeqCst) != expected {
        return Wake::Woken;
    }
    if dies_at(n, KillStage::Asleep) {
        // Killed while queued: the kernel takes it off the queue; no wake-up is lost.
        drop(q);
        die();
    }
    let ticket = q.next_ticket;
    q.next_ticket += 1;
    q.sleeping.push_back((addr, ticket));
    loop {
        q = FUTEX.1.wait(q).unwrap();
        if let Some(i) = q.woken.iter().position(|&t| t == ticket) {
            q.woken.swap_remove(i);
            break;
        }
    }
    drop(q);
    if dies_at(n, KillStage::Woken) {
        die();
    }
    Wake::Woken
}

/// Modelled `FUTEX_WAKE`: takes at most `n` waiters of `word` off the queue, oldest first,
/// and returns how many.
pub fn futex_wake(word: &AtomicU32, n: u32) -> u32 {
    let addr = word as *const AtomicU32 as usize;
    let mut q = FUTEX.0.lock().unwrap();
    let mut woken = 0;
    while woken < n {
        let Some(i) = q.sleeping.iter().position(|&(a, _)| a == addr) else {
            break;
        };
        let (_, t) = q.sleeping.remove(i).expect("index from position");
        q.woken.push(t);
        woken += 1;
    }
    if woken != 0 {
        FUTEX.1.notify_all();
    }
    woken
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

pub(crate) fn op_begin(l: &Links<'_>) -> usize {
    PENDING.with(|p| p.set(l.word as *const AtomicU32 as usize));
    1
}

/// Modelled `doorbell_arm`: the doorbell becomes the thread's pending operation.
pub fn doorbell_arm(word: &AtomicU32) {
    PENDING.with(|p| p.set(word as *const AtomicU32 as usize));
}

/// Modelled `doorbell_disarm`.
pub fn doorbell_disarm() {
    PENDING.with(|p| p.set(0));
}

pub(crate) fn op_end(_h: usize) {
    PENDING.with(|p| p.set(0));
}

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

/// What the kernel does when the calling model thread dies (`exit_robust_list`): every
/// lock word it still holds (tid in the word) gets `OWNER_DIED`, its tid cleared, `WAITERS`
/// kept, and a waiter is woken if `WAITERS` was set. Then the pending operation: a word it
/// owns is handled the same way; a word nobody owns gets one waiter woken, so that a
/// wake-up the thread was given is not lost with it (Linux 5.10+, `handle_futex_death`'s
/// `pending_op` case). Call it instead of releasing the locks, then return from the thread.
pub fn simulate_owner_death() {
    let tid = current_tid();
    let held: Vec<usize> = HELD.with(|h| h.borrow_mut().drain(..).collect());
    let pending = PENDING.with(|p| p.replace(0));
    for &addr in &held {
        // SAFETY: the address was recorded from a live lock the model thread held; the
        // model's locks outlive its threads (they are in an Arc or a static).
        handle_death(unsafe { &*(addr as *const AtomicU32) }, tid, false);
    }
    if pending != 0 && !held.contains(&pending) {
        // SAFETY: as above, recorded by op_begin from a live lock.
        handle_death(unsafe { &*(pending as *const AtomicU32) }, tid, true);
    }
}

fn handle_death(word: &AtomicU32, tid: u32, pending_op: bool) {
    let mut w = word.load(Ordering::SeqCst);
    loop {
        if pending_op && w & TID_MASK == 0 {
            futex_wake(word, 1);
            return;
        }
        if w & TID_MASK != tid {
            return;
        }
        let new = (w & WAITERS) | OWNER_DIED;
        match word.compare_exchange(w, new, Ordering::SeqCst, Ordering::Relaxed) {
            Ok(_) => {
                if w & WAITERS != 0 {
                    futex_wake(word, 1);
                }
                return;
            }
            Err(x) => w = x,
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

/// The calling process's id (not cached under loom: models do not fork).
pub fn process_id() -> u32 {
    std::process::id()
}

/// Forks since the library was loaded: none under loom.
pub fn fork_generation() -> u64 {
    0
}
