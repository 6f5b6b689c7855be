//! The wake-up protocol: spin briefly, then sleep on an in-segment futex word.
//!
//! Each direction has an event word (`not_empty`, `not_full`) and a waiter count. A
//! waiter announces itself (count + 1), reads the event word, re-checks the queue, and only
//! then sleeps on the word's value; a notifier changes the queue, then (after a full fence)
//! reads the count and, only if someone may sleep, bumps the word and wakes. Either the
//! waiter's re-check sees the change, or the notifier sees the waiter and the bumped word
//! makes the waiter's sleep return at once: no lost wake-up, and no system call at all
//! while nobody sleeps.
//!
//! The event word is a doorbell ([`DOORBELL_STEP`]): it moves in steps that leave its
//! robust-futex owner part zero, and a blocked caller names it in its robust list's pending
//! slot for its whole blocking phase. A waiter killed after a wake-up took it off the futex
//! queue, before it could take the message, then has its wake-up handed on by the kernel
//! to another sleeper (relshm-sync's docs, "Waiters that die"); the liveness interval
//! bounds whatever is left (a doorbell that came round to the value a sleeper saw).

use core::time::Duration;

use relshm_sync::facade::{
    AtomicU32, DOORBELL_STEP, Instant, Ordering::SeqCst, Wake, doorbell_arm, doorbell_disarm,
    fence, futex_wait, futex_wake,
};

use crate::error::CollectionError;

/// Busy rounds (each one attempt) before sleeping.
#[cfg(not(loom))]
pub(crate) const SPIN_ROUNDS: u32 = 200;
#[cfg(loom)]
pub(crate) const SPIN_ROUNDS: u32 = 1;

/// Spin rounds between two reads of the clock (for the deadline) in [`Event::block_on`].
pub(crate) const CLOCK_EVERY: u32 = 64;

/// How long a sleeper sleeps at most before it checks whether its peers are still alive
/// (a killed process cannot say goodbye): the upper bound of disconnection latency after
/// a SIGKILL. `None` in the loom model, where only wake-ups may end a sleep.
#[cfg(not(loom))]
pub const LIVENESS_INTERVAL: Option<Duration> = Some(Duration::from_millis(20));
/// See the non-loom definition.
#[cfg(loom)]
pub const LIVENESS_INTERVAL: Option<Duration> = None;

/// One direction's event word and waiter count.
#[derive(Clone, Copy)]
pub(crate) struct Event<'a> {
    pub(crate) word: &'a AtomicU32,
    pub(crate) waiters: &'a AtomicU32,
}

impl Event<'_> {
    /// Tells sleepers that the state they wait on changed; wakes one, or all.
    #[inline]
    pub(crate) fn notify(&self, all: bool) {
        fence(SeqCst);
        if self.waiters.load(SeqCst) != 0 {
            self.word.fetch_add(DOORBELL_STEP, SeqCst);
            futex_wake(self.word, if all { i32::MAX as u32 } else { 1 });
        }
    }

    /// Bumps the word and wakes everyone, whether or not a waiter is counted (used after
    /// reclaiming a dead endpoint, whose count may be off).
    pub(crate) fn wake_all(&self) {
        self.word.fetch_add(DOORBELL_STEP, SeqCst);
        futex_wake(self.word, i32::MAX as u32);
    }

    /// Retries `attempt` until it returns `Some` or an error: first `spin` rounds (at
    /// least one attempt is always made before registering as a waiter), then
    /// sleeping on the word, for at most `timeout` (`None`: forever). `sleeping` is the
    /// caller's flag (set while counted as a waiter, so a reaper can uncount a dead
    /// sleeper). After each sleep that ran out its [`LIVENESS_INTERVAL`], `idle` runs (the
    /// dead-peer check). Never returns `Timeout` without a last attempt after its last
    /// sleep, so a wake-up aimed at a leaving waiter still gets its message taken or seen.
    ///
    /// The clock is first read after a failed attempt: an attempt that succeeds at once
    /// (the common case of a polling round trip) costs no clock read, which in a virtual
    /// machine costs as much as the attempt itself. The timeout therefore counts from the
    /// end of the first attempt. While spinning, the clock is read every
    /// [`CLOCK_EVERY`] rounds, so a long spin still ends at the deadline.
    pub(crate) fn block_on<T>(
        &self,
        sleeping: &AtomicU32,
        timeout: Option<Duration>,
        spin: u32,
        mut attempt: impl FnMut() -> Result<Option<T>, CollectionError>,
        idle: impl FnMut(),
    ) -> Result<T, CollectionError> {
        // Even with `spin` 0: registering as a waiter writes lines the other side reads,
        // and would make it pay a futex wake for a wait that never sleeps.
        if let Some(v) = attempt()? {
            return Ok(v);
        }
        let deadline = timeout.and_then(|t| Instant::now().checked_add(t));
        for round in 1..spin {
            relshm_sync::facade::spin_hint();
            if round % CLOCK_EVERY == 0 && deadline.is_some_and(|d| Instant::now() >= d) {
                break;
            }
            if let Some(v) = attempt()? {
                return Ok(v);
            }
        }
        let r = self.sleep_until(sleeping, deadline, attempt, idle);
        doorbell_disarm();
        r
    }

    /// `block_on`'s sleeping phase.
    fn sleep_until<T>(
        &self,
        sleeping: &AtomicU32,
        deadline: Option<Instant>,
        mut attempt: impl FnMut() -> Result<Option<T>, CollectionError>,
        mut idle: impl FnMut(),
    ) -> Result<T, CollectionError> {
        loop {
            // Until this call has looked at the queue after its last wake-up, a death
            // hands the wake-up on (see the module docs). Re-armed every round: a lock
            // taken by `attempt` or `idle` uses the same slot.
            doorbell_arm(self.word);
            self.waiters.fetch_add(1, SeqCst);
            sleeping.store(1, SeqCst);
            let seen = self.word.load(SeqCst);
            fence(SeqCst);
            let r = attempt();
            let slice = match r {
                Ok(None) => match deadline {
                    None => Some(LIVENESS_INTERVAL),
                    Some(d) => {
                        let left = d.checked_duration_since(Instant::now());
                        left.filter(|l| !l.is_zero())
                            .map(|l| Some(LIVENESS_INTERVAL.map_or(l, |iv| iv.min(l))))
                    }
                },
                _ => None,
            };
            let woke = slice.map(|s| futex_wait(self.word, seen, s));
            sleeping.store(0, SeqCst);
            self.leave();
            match (r, woke) {
                (Ok(Some(v)), _) => return Ok(v),
                (Err(e), _) => return Err(e),
                (Ok(None), None) => return Err(CollectionError::Timeout),
                (Ok(None), Some(Wake::TimedOut)) => idle(),
                (Ok(None), Some(Wake::Woken)) => {}
            }
        }
    }

    /// Uncounts one waiter (saturating: a reaper may have uncounted a dead one already).
    fn leave(&self) {
        let _ = self
            .waiters
            .fetch_update(SeqCst, SeqCst, |w| Some(w.saturating_sub(1)));
    }

    /// Uncounts a dead waiter (called by the reaper for an endpoint found sleeping).
    pub(crate) fn uncount_dead(&self) {
        self.leave();
    }
}
