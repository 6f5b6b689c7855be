//! One send or receive attempt, shared by the process handles and the loom model: the
//! disconnection check, the ring claim, the payload copy, publication or release, and the
//! notification of sleepers on the other side.

use relshm_sync::facade::{AtomicU64, Ordering::*};

use super::layout::{Control, EP_RECEIVER, EP_SENDER};
use super::ring::{Claim, Ring, Slots};
use super::wait::Event;
use crate::error::CollectionError;

impl Control {
    pub(crate) fn mask(&self, kind: u64) -> &AtomicU64 {
        if kind == EP_SENDER {
            &self.sender_mask
        } else {
            &self.receiver_mask
        }
    }

    pub(crate) fn recv_event(&self) -> Event<'_> {
        Event {
            word: &self.not_empty,
            waiters: &self.recv_waiters,
        }
    }

    pub(crate) fn send_event(&self) -> Event<'_> {
        Event {
            word: &self.not_full,
            waiters: &self.send_waiters,
        }
    }

    /// Whether every endpoint of `kind` is gone (after at least one existed), or the
    /// queue was closed.
    pub(crate) fn peers_gone(&self, kind: u64) -> bool {
        let seen = if kind == EP_SENDER {
            &self.senders_seen
        } else {
            &self.receivers_seen
        };
        self.closed.load(Acquire) != 0
            || (seen.load(Acquire) != 0 && self.mask(kind).load(SeqCst) == 0)
    }
}

/// One send attempt by endpoint `ep`: `Some` if sent, `None` if the ring is full.
/// `write(pos)` fills the claimed slot (it must not fail: the claim is published after).
pub(crate) fn send_once<S: Slots>(
    ring: &Ring<'_, S>,
    ep: u64,
    write: impl FnOnce(u64),
) -> Result<Option<()>, CollectionError> {
    if ring.ctl.peers_gone(EP_RECEIVER) {
        return Err(CollectionError::Disconnected { peer: "receiver" });
    }
    let Claim::Got(pos) = ring.claim_write(ep)? else {
        return Ok(None);
    };
    write(pos);
    ring.publish(pos);
    ring.ctl.recv_event().notify(false);
    Ok(Some(()))
}

/// One receive attempt by endpoint `ep`: `Some(read(pos))` if a message was claimed,
/// `None` if none is ready, `Disconnected` if none is and every sender is gone. The slot is
/// freed after `read`, whatever it returned.
pub(crate) fn recv_once<S: Slots, R>(
    ring: &Ring<'_, S>,
    ep: u64,
    read: impl FnOnce(u64) -> Result<R, CollectionError>,
) -> Result<Option<R>, CollectionError> {
    let mut got = ring.claim_read(ep)?;
    if got == Claim::None && ring.ctl.peers_gone(EP_SENDER) {
        // The last sender may have published just before leaving: look once more.
        got = ring.claim_read(ep)?;
        if got == Claim::None {
            return Err(CollectionError::Disconnected { peer: "sender" });
        }
    }
    let Claim::Got(pos) = got else {
        return Ok(None);
    };
    let r = read(pos);
    ring.release(pos);
    ring.ctl.send_event().notify(false);
    r.map(Some)
}
