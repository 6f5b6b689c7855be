//! The queue's algorithm over loom-modelled memory (only under `--cfg loom`): the same
//! ring, attempt and wake-up code as the segment queue, with the control block and slots
//! built from loom atomics and the payload a loom cell (so unsynchronised payload access
//! is reported as a data race).

use core::time::Duration;

use loom::cell::UnsafeCell;
use relshm_sync::RawMutex;
use relshm_sync::facade::{AtomicU32, AtomicU64, Ordering::*};

use super::layout::{Control, EP_RECEIVER, EP_SENDER, EndpointSlot, MAX_ENDPOINTS, SlotHeader};
use super::ops::{recv_once, send_once};
use super::ring::{Claim, Ring, Slots};
use crate::error::CollectionError;

/// Modelled slots: headers and one `u64` payload each.
pub struct ModelSlots {
    headers: Vec<SlotHeader>,
    data: Vec<UnsafeCell<u64>>,
}

impl Slots for ModelSlots {
    fn header(&self, i: u64) -> &SlotHeader {
        &self.headers[i as usize]
    }

    unsafe fn write(&self, i: u64, src: &[u8]) {
        let mut b = [0u8; 8];
        b.copy_from_slice(&src[..8]);
        // SAFETY: the caller holds the slot's write claim (loom checks it).
        self.data[i as usize].with_mut(|p| unsafe { *p = u64::from_ne_bytes(b) });
    }

    unsafe fn read(&self, i: u64, dst: &mut [u8]) {
        // SAFETY: the caller holds the slot's read claim (loom checks it).
        let v = self.data[i as usize].with(|p| unsafe { *p });
        dst[..8].copy_from_slice(&v.to_ne_bytes());
    }
}

/// A queue of `u64` messages in modelled memory. Endpoints are indices `0..4` registered
/// with [`register`](Self::register).
pub struct ModelQueue {
    ctl: Box<Control>,
    slots: ModelSlots,
    capacity: u64,
}

fn a64() -> AtomicU64 {
    AtomicU64::new(0)
}

fn a32() -> AtomicU32 {
    AtomicU32::new(0)
}

impl ModelQueue {
    /// A queue of `capacity` (a power of two) slots.
    pub fn new(capacity: u64) -> Self {
        let ctl = Box::new(Control {
            magic: a64(),
            version: a32(),
            slot_size: a32(),
            capacity: a64(),
            stride: a64(),
            heap_offset: a64(),
            total_size: a64(),
            sender_mask: a64(),
            receiver_mask: a64(),
            tail: a64(),
            pad_tail: [0; 7],
            head: a64(),
            pad_head: [0; 7],
            not_empty: a32(),
            recv_waiters: a32(),
            not_full: a32(),
            send_waiters: a32(),
            senders_seen: a32(),
            receivers_seen: a32(),
            closed: a32(),
            reserved1: [0; 9],
            reap_lock: RawMutex::new(),
            pad_lock: [0; 3],
            endpoints: core::array::from_fn(|_| EndpointSlot {
                owner: a64(),
                start_time: a64(),
                sleeping: a32(),
                reserved: [0; 3],
            }),
        });
        let headers = (0..capacity)
            .map(|i| SlotHeader {
                seq: AtomicU64::new(i),
                meta: a64(),
                heap: a64(),
                reserved: a64(),
            })
            .collect();
        let data = (0..capacity).map(|_| UnsafeCell::new(0)).collect();
        Self {
            ctl,
            slots: ModelSlots { headers, data },
            capacity,
        }
    }

    fn ring(&self) -> Ring<'_, ModelSlots> {
        Ring {
            ctl: &self.ctl,
            slots: &self.slots,
            capacity: self.capacity,
        }
    }

    /// Registers endpoint `ep` (< 4) as a sender (`true`) or receiver.
    pub fn register(&self, ep: usize, sender: bool) {
        assert!(ep < MAX_ENDPOINTS);
        let kind = if sender { EP_SENDER } else { EP_RECEIVER };
        self.ctl.mask(kind).fetch_or(1 << ep, SeqCst);
        let seen = if sender {
            &self.ctl.senders_seen
        } else {
            &self.ctl.receivers_seen
        };
        seen.store(1, Release);
    }

    /// Unregisters endpoint `ep` as a graceful drop does, waking everyone.
    pub fn unregister(&self, ep: usize, sender: bool) {
        let kind = if sender { EP_SENDER } else { EP_RECEIVER };
        self.ctl.mask(kind).fetch_and(!(1 << ep), SeqCst);
        self.ctl.recv_event().wake_all();
        self.ctl.send_event().wake_all();
    }

    /// Closes the queue.
    pub fn close(&self) {
        self.ctl.closed.store(1, SeqCst);
        self.ctl.recv_event().wake_all();
        self.ctl.send_event().wake_all();
    }

    fn send_attempt(&self, ep: usize, v: u64) -> Result<Option<()>, CollectionError> {
        send_once(&self.ring(), ep as u64, |pos| {
            // SAFETY: send_once calls this with the write claim of `pos` held.
            unsafe {
                self.slots
                    .write(pos & (self.capacity - 1), &v.to_ne_bytes())
            }
        })
    }

    fn recv_attempt(&self, ep: usize) -> Result<Option<u64>, CollectionError> {
        recv_once(&self.ring(), ep as u64, |pos| {
            let mut b = [0u8; 8];
            // SAFETY: recv_once calls this with the read claim of `pos` held.
            unsafe { self.slots.read(pos & (self.capacity - 1), &mut b) };
            Ok(u64::from_ne_bytes(b))
        })
    }

    /// Non-blocking send.
    pub fn try_send(&self, ep: usize, v: u64) -> Result<(), CollectionError> {
        self.send_attempt(ep, v)?.ok_or(CollectionError::Full)
    }

    /// Non-blocking receive.
    pub fn try_recv(&self, ep: usize) -> Result<u64, CollectionError> {
        self.recv_attempt(ep)?.ok_or(CollectionError::Empty)
    }

    /// Blocking send (timeout `None` = forever).
    pub fn send(
        &self,
        ep: usize,
        v: u64,
        timeout: Option<Duration>,
    ) -> Result<(), CollectionError> {
        self.ctl.send_event().block_on(
            &self.ctl.endpoints[ep].sleeping,
            timeout,
            super::wait::SPIN_ROUNDS,
            || self.send_attempt(ep, v),
            || {},
        )
    }

    /// Blocking receive (timeout `None` = forever).
    pub fn recv(&self, ep: usize, timeout: Option<Duration>) -> Result<u64, CollectionError> {
        self.ctl.recv_event().block_on(
            &self.ctl.endpoints[ep].sleeping,
            timeout,
            super::wait::SPIN_ROUNDS,
            || self.recv_attempt(ep),
            || {},
        )
    }

    /// What a producer killed mid-send leaves behind: a claimed, never published slot.
    pub fn claim_and_die(&self, ep: usize) -> bool {
        matches!(self.ring().claim_write(ep as u64), Ok(Claim::Got(_)))
    }

    /// What a consumer killed mid-receive leaves behind: a claimed, never freed slot.
    pub fn claim_read_and_die(&self, ep: usize) -> bool {
        matches!(self.ring().claim_read(ep as u64), Ok(Claim::Got(_)))
    }

    /// The reaper's part for a dead endpoint: resolve its claims, unregister it, wake all.
    pub fn reap(&self, ep: usize, sender: bool) -> u64 {
        let n = self.ring().release_claims_of(ep as u64);
        self.unregister(ep, sender);
        n
    }
}
