//! Endpoint registrations and the reclamation of endpoints whose process died.
//!
//! A sender or receiver claims one [`EndpointSlot`] (by compare-and-swap of its owner word
//! from free to `pid | kind | generation`), records its process start time, and sets its
//! bit in the queue's sender or receiver mask, which is what disconnection checks read
//! (one load). A graceful drop undoes this. A SIGKILLed process cannot, so sleepers check
//! every [`LIVENESS_INTERVAL`](super::wait::LIVENESS_INTERVAL) whether the registered
//! processes still exist with the same start time (`/proc/<pid>/stat`), and reclaim the
//! registrations of dead ones under the queue's robust reap lock: the dead endpoint's ring
//! claims are resolved first, then its registration is freed.

use core::time::Duration;

use relshm_segment::procstat;
use relshm_sync::facade::Ordering::*;
use relshm_sync::{Held, LockError};

use super::layout::{
    Control, EP_RECEIVER, EP_SENDER, EndpointSlot, MAX_ENDPOINTS, RETIRED, owner_word, split_owner,
};
use super::ring::{Ring, Slots};
use crate::error::CollectionError;

/// How long a reaper waits for another reaper before giving up this round.
const REAP_LOCK_WAIT: Duration = Duration::from_millis(200);

impl Control {
    /// Registers the calling process as an endpoint of `kind`; returns (index, owner word).
    pub(crate) fn register(&self, kind: u64) -> Result<(usize, u64), CollectionError> {
        let pid = std::process::id();
        let start = procstat::own_start_time();
        for (i, ep) in self.endpoints.iter().enumerate() {
            let w = ep.owner.load(Acquire);
            let (p, _, generation) = split_owner(w);
            if p != 0 {
                continue;
            }
            let mine = owner_word(pid, kind, generation + 1);
            if ep.owner.compare_exchange(w, mine, SeqCst, Relaxed).is_err() {
                continue;
            }
            // Pairs with `Queue::destroy`, which retires and then looks for registrations.
            if self.closed.load(SeqCst) == RETIRED {
                let _ = ep.owner.compare_exchange(
                    mine,
                    owner_word(0, 0, generation + 1),
                    AcqRel,
                    Relaxed,
                );
                let peer = if kind == EP_SENDER {
                    "receiver"
                } else {
                    "sender"
                };
                return Err(CollectionError::Disconnected { peer });
            }
            ep.start_time.store(start, Release);
            ep.sleeping.store(0, Relaxed);
            self.mask(kind).fetch_or(1 << i, SeqCst);
            if kind == EP_SENDER {
                self.senders_seen.store(1, Release);
            } else {
                self.receivers_seen.store(1, Release);
            }
            return Ok((i, mine));
        }
        Err(CollectionError::TooManyEndpoints { max: MAX_ENDPOINTS })
    }

    /// Whether any endpoint is registered (by any process, dead or alive).
    pub(crate) fn registered(&self) -> bool {
        self.endpoints
            .iter()
            .any(|ep| split_owner(ep.owner.load(SeqCst)).0 != 0)
    }

    /// Undoes a registration (graceful drop) and wakes everyone, who may now be
    /// disconnected.
    pub(crate) fn unregister(&self, index: usize, owner: u64) {
        let ep = &self.endpoints[index];
        let (_, kind, generation) = split_owner(owner);
        self.mask(kind).fetch_and(!(1 << index), SeqCst);
        ep.start_time.store(0, Relaxed);
        let _ = ep
            .owner
            .compare_exchange(owner, owner_word(0, 0, generation), AcqRel, Relaxed);
        self.recv_event().wake_all();
        self.send_event().wake_all();
    }

    /// Reclaims the registrations of dead processes; returns how many. Skips the round if
    /// another process is reaping (or its lock is unusable).
    pub(crate) fn reap<S: Slots>(&self, ring: &Ring<'_, S>) -> Result<u32, CollectionError> {
        // After a reaper died midway there is nothing to repair: every step below is
        // idempotent, so this round redoes it.
        let held = match Held::mutex(&self.reap_lock, Some(REAP_LOCK_WAIT), || Ok(())) {
            Ok(h) => h,
            Err(LockError::TimedOut) => return Ok(0),
            Err(e) => return Err(e.into()),
        };
        let mut reaped = 0;
        let me = std::process::id();
        for (i, ep) in self.endpoints.iter().enumerate() {
            let w = ep.owner.load(Acquire);
            let (pid, kind, generation) = split_owner(w);
            if pid == 0 || pid == me || alive(ep, pid) {
                continue;
            }
            ring.release_claims_of(i as u64);
            if ep.sleeping.swap(0, SeqCst) != 0 {
                if kind == EP_RECEIVER {
                    self.recv_event().uncount_dead();
                } else {
                    self.send_event().uncount_dead();
                }
            }
            if kind == EP_SENDER || kind == EP_RECEIVER {
                self.mask(kind).fetch_and(!(1 << i), SeqCst);
            }
            ep.start_time.store(0, Relaxed);
            if ep
                .owner
                .compare_exchange(w, owner_word(0, 0, generation), AcqRel, Relaxed)
                .is_ok()
            {
                reaped += 1;
            }
        }
        drop(held);
        if reaped > 0 {
            self.recv_event().wake_all();
            self.send_event().wake_all();
        }
        Ok(reaped)
    }
}

/// Whether the process registered in `ep` may still run (`false` only when `/proc`
/// proves it gone).
fn alive(ep: &EndpointSlot, pid: u32) -> bool {
    let recorded = ep.start_time.load(Acquire);
    // 0: registration in progress (the start time is written right after the claim).
    !procstat::is_gone(pid, |t| recorded == 0 || t == recorded)
}
