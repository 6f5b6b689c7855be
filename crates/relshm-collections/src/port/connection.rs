//! A connection's block in the segment, who owns it, and freeing a connection once both
//! sides have left.
//!
//! # One owned block per connection
//!
//! A connection is one heap block: the [`ConnectionRecord`] (64 bytes), then the
//! client-to-server queue, then the server-to-client queue, formatted in place. The
//! client allocates it with [`Heap::alloc_owned`], so the allocator publishes the block
//! together with its owner record and no death at any instant leaves a block nobody can
//! find:
//!
//! | owner word | owner | freed by |
//! |---|---|---|
//! | `PENDING(client)` | the client process, from the allocation until the server accepts | the client (connect failed, or it leaves after its server died); [`PortServer::reclaim`](super::PortServer::reclaim) once the client is dead |
//! | 0 | both sides, from the server's [`Heap::transfer`] on accept | the side that leaves last (below) |
//!
//! `PENDING` is owner kind 3 (kinds 2 and 3 are this layer's; queues use 2), so the heap's
//! generic [`Heap::reclaim_dead_owners`] leaves it alone: freeing a connection means
//! retiring its queues first, which frees the large requests queued in them before the
//! accept. The `ident` word names the port (`"PC"` in the top 16 bits, the port record's
//! offset below), so one port's reclaim never takes another port's connections. A
//! request the client posted is accepted only through a `transfer` that compares the
//! owner record under the heap lock: once a reclaim freed the block (or the bytes were
//! reused), the server refuses the stale request.
//!
//! # Leaving
//!
//! Each side leaves in its own time: the client when dropped (or killed), the server when
//! it sees the client gone. Whichever leaves last frees the two queues and the record, and
//! the first must not touch them after it has left: the heap reuses the bytes at once,
//! often for the next client's queues. So leaving is one atomic step on a word that only
//! the last side's step finds complete: each side sets its bit in `left`; the side whose
//! bit completes the pair frees. A side that was killed never sets its bit, so the other
//! sets it for it once that process is dead (by pid and start time, recorded at
//! connect); having declared it dead, it also runs [`Heap::reclaim_dead_owners`], for the
//! large message the dead side had taken or was sending. A side that is killed after the
//! other has left leaves the connection allocated (nobody is left to notice).
//!
//! [`Heap::alloc_owned`]: relshm_segment::heap::Heap::alloc_owned
//! [`Heap::transfer`]: relshm_segment::heap::Heap::transfer
//! [`Heap::reclaim_dead_owners`]: relshm_segment::heap::Heap::reclaim_dead_owners

use core::ptr::NonNull;

use relshm_segment::heap::{
    OWNER_KIND_SHIFT, OWNER_PROCESS, kill_point, own_process_owner, owner_process, process_alive,
};
use relshm_segment::procstat;
use relshm_sync::facade::{AtomicU32, AtomicU64, Ordering::*};

use relshm_segment::Segment;

use crate::error::CollectionError;
use crate::queue::{QueueConfig, RawQueue};

/// `"RSHMCONN"` in little-endian.
pub const CONNECTION_MAGIC: u64 = u64::from_le_bytes(*b"RSHMCONN");

/// One side of a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Side {
    Client,
    Server,
}

impl Side {
    /// Its index in the record's `pids` and `starts`.
    fn index(self) -> usize {
        match self {
            Side::Client => 0,
            Side::Server => 1,
        }
    }

    /// Its bit in the record's `left`.
    fn bit(self) -> u32 {
        1 << self.index()
    }

    fn other(self) -> Side {
        match self {
            Side::Client => Side::Server,
            Side::Server => Side::Client,
        }
    }
}

/// Owner kind of a connection not yet accepted: the client process in the low bits.
const KIND_PENDING: u64 = 3;
const KIND_MASK: u64 = 3 << OWNER_KIND_SHIFT;
/// High bits of a connection's `ident`: "a connection of the port at" the low bits.
const IDENT_TAG: u64 = u64::from_le_bytes(*b"\0\0\0\0\0\0PC");

/// The `ident` of the connections of the port whose record is at `port`.
pub(crate) const fn ident(port: u64) -> u64 {
    IDENT_TAG | (port & 0xffff_ffff_ffff)
}

/// The owner word of a connection pending from the process of the process owner word
/// `process`.
const fn pending(process: u64) -> u64 {
    (process & !KIND_MASK) | (KIND_PENDING << OWNER_KIND_SHIFT)
}

/// Whether `owner` is a pending connection's owner whose client process is dead.
fn pending_and_dead(owner: u64) -> bool {
    owner >> OWNER_KIND_SHIFT == KIND_PENDING
        && owner_process((owner & !KIND_MASK) | (OWNER_PROCESS << OWNER_KIND_SHIFT))
            .is_some_and(|(pid, start)| !process_alive(pid, start))
}

/// A connection's shared state: the first 64 bytes of its block (see the module docs),
/// the two queues follow at 64 and `64 + footprint`.
///
/// | offset | field | meaning |
/// |---|---|---|
/// | 0 | `owner` | the heap owner word (`PENDING(client)`, then 0 once accepted) |
/// | 8 | `ident` | `"PC"` in the top 16 bits \| the port record's offset |
/// | 16 | `magic` | [`CONNECTION_MAGIC`], stored once both queues are formatted |
/// | 24 | `left` | bit 0: the client has left; bit 1: the server has left |
/// | 32 | `pids` | the client's and the server's process ids |
/// | 48 | `starts` | their start times (`/proc/<pid>/stat` field 22; 0 = unknown) |
#[repr(C)]
pub struct ConnectionRecord {
    owner: AtomicU64,
    ident: AtomicU64,
    magic: AtomicU64,
    left: AtomicU32,
    reserved: AtomicU32,
    pids: [AtomicU64; 2],
    starts: [AtomicU64; 2],
}

const _: () = assert!(core::mem::size_of::<ConnectionRecord>() == 64);

/// Bytes before the first queue.
const RECORD: u64 = 64;

impl ConnectionRecord {
    /// Whether `side`'s process is known to be dead (not merely gone from the queues).
    fn dead(&self, side: Side) -> bool {
        let i = side.index();
        let (pid, start) = (self.pids[i].load(Acquire), self.starts[i].load(Acquire));
        if pid == 0 || start == 0 {
            return false; // unknown: never declare it dead
        }
        let pid = u32::try_from(pid).unwrap_or(0);
        pid != std::process::id() && procstat::is_gone(pid, |t| t == start)
    }
}

/// One side's share of a connection: frees the queues and the block when dropped by the
/// side that leaves last. Declared after that side's endpoints, so they are gone by then.
pub(crate) struct Leave {
    seg: Segment,
    record: u64,
    rec: NonNull<ConnectionRecord>,
    queues: [RawQueue; 2],
    side: Side,
    /// False while the other side cannot know of the connection (a client that has not
    /// posted it yet): then this side is the only one, and frees it on drop.
    shared: bool,
}

// SAFETY: the record pointer names shared memory used only through atomics; the other
// fields are Send.
unsafe impl Send for Leave {}

impl Leave {
    /// For a connecting client of the port at `port`: allocates the connection's block
    /// (owned by this process until the server accepts), formats its queues as `config`,
    /// and names this process and the server (`server` = pid and start time from the
    /// port). Not yet shared.
    pub(crate) fn create(
        seg: &Segment,
        port: u64,
        config: QueueConfig,
        server: (u64, u64),
    ) -> Result<Leave, CollectionError> {
        let q = RawQueue::footprint(config)?;
        let owner = [pending(own_process_owner()), ident(port)];
        let record = seg.alloc_owned(RECORD + 2 * q, 64, owner)?;
        kill_point();
        let fail = |e| {
            let _ = seg.free(record);
            e
        };
        let rec = seg
            .region()
            .resolve_as::<ConnectionRecord>(record)
            .map_err(|e| fail(e.into()))?;
        // SAFETY: both ranges lie in the fresh allocation of `RECORD + 2q` bytes (64-aligned
        // block, 64-aligned offsets) that nobody else uses until it is posted.
        let queues = unsafe {
            [
                RawQueue::format_at(seg, record + RECORD, config).map_err(fail)?,
                RawQueue::format_at(seg, record + RECORD + q, config).map_err(fail)?,
            ]
        };
        // SAFETY: resolved in bounds and aligned; atomics only.
        let r = unsafe { rec.as_ref() };
        r.left.store(0, Relaxed);
        r.reserved.store(0, Relaxed);
        r.pids[0].store(u64::from(std::process::id()), Relaxed);
        r.starts[0].store(procstat::own_start_time(), Relaxed);
        r.pids[1].store(server.0, Relaxed);
        r.starts[1].store(server.1, Relaxed);
        r.magic.store(CONNECTION_MAGIC, Release);
        kill_point();
        Ok(Leave {
            seg: seg.clone(),
            record,
            rec,
            queues,
            side: Side::Client,
            shared: false,
        })
    }

    /// For the client, once the server may know of the connection (it was posted).
    pub(crate) fn share(&mut self) {
        self.shared = true;
    }

    /// The owner record the client posts, for the server to [`take`](Self::take).
    pub(crate) fn owner(&self) -> u64 {
        // SAFETY: resolved at creation; the block lives while this side has not left.
        unsafe { self.rec.as_ref() }.owner.load(Acquire)
    }

    /// For the server of the port at `port` (queues laid out as `config`): takes over the
    /// connection at `record` that a client posted with its owner word `owner`, checked
    /// under the heap lock; `Ok(None)` if it is no longer that client's pending connection
    /// (a reclaim freed it once the client died). Its two queues are attached.
    pub(crate) fn take(
        seg: &Segment,
        port: u64,
        config: QueueConfig,
        record: u64,
        owner: u64,
    ) -> Result<Option<Leave>, CollectionError> {
        // The request is consumed and the block still the client's: a server killed here
        // leaves it to the client, which frees it when it leaves (its server is dead).
        kill_point();
        if owner >> OWNER_KIND_SHIFT != KIND_PENDING
            || !seg.heap()?.transfer(record, [owner, ident(port)], 0)?
        {
            return Ok(None);
        }
        kill_point();
        let rec = seg.region().resolve_as::<ConnectionRecord>(record)?;
        // SAFETY: resolved in bounds and aligned; atomics only, any bits valid. The block
        // stays allocated: it is ours (with the client) since the transfer.
        let r = unsafe { rec.as_ref() };
        if r.magic.load(Acquire) != CONNECTION_MAGIC {
            return Err(crate::error::corrupt(format!(
                "no connection record at offset {record:#x} (wrong magic)"
            )));
        }
        let q = RawQueue::footprint(config)?;
        let queues = [
            RawQueue::attach(seg, record + RECORD)?,
            RawQueue::attach(seg, record + RECORD + q)?,
        ];
        Ok(Some(Leave {
            seg: seg.clone(),
            record,
            rec,
            queues,
            side: Side::Server,
            shared: true,
        }))
    }

    /// For the server of the port at `port`: frees every connection of the port whose
    /// client died before the server accepted it (posted or not), and what dead processes
    /// held; returns how many connections were freed.
    pub(crate) fn reclaim(
        seg: &Segment,
        port: u64,
        config: QueueConfig,
    ) -> Result<u64, CollectionError> {
        let mut freed = 0;
        for (off, [owner, id]) in seg.heap()?.owned_allocations()? {
            if id != ident(port) || !pending_and_dead(owner) {
                continue;
            }
            if !seg.heap()?.transfer(off, [owner, id], 0)? {
                continue; // accepted or freed meanwhile
            }
            match Self::formatted(seg, off, owner, config) {
                // Leave as the server (the dead client never will): that retires both
                // queues, freeing what is queued in them, and frees the block.
                Some(leave) => drop(leave),
                // Never posted (it died formatting), so nothing queued: the bytes only.
                None => seg.free(off)?,
            }
            freed += 1;
        }
        seg.heap()?.reclaim_dead_owners()?;
        Ok(freed)
    }

    /// The server's share of the block at `off` (ours since a transfer) if the client
    /// `owner` finished formatting it; `None` if it did not.
    fn formatted(seg: &Segment, off: u64, owner: u64, config: QueueConfig) -> Option<Leave> {
        let rec = seg.region().resolve_as::<ConnectionRecord>(off).ok()?;
        // SAFETY: resolved in bounds and aligned; atomics only, any bits valid.
        let r = unsafe { rec.as_ref() };
        let client = owner_process((owner & !KIND_MASK) | (OWNER_PROCESS << OWNER_KIND_SHIFT))?;
        if r.magic.load(Acquire) != CONNECTION_MAGIC
            || r.pids[0].load(Relaxed) != u64::from(client.0)
        {
            return None;
        }
        let q = RawQueue::footprint(config).ok()?;
        Some(Leave {
            seg: seg.clone(),
            record: off,
            rec,
            queues: [
                RawQueue::attach(seg, off + RECORD).ok()?,
                RawQueue::attach(seg, off + RECORD + q).ok()?,
            ],
            side: Side::Server,
            shared: true,
        })
    }

    /// The client-to-server queue.
    pub(crate) fn requests(&self) -> &RawQueue {
        &self.queues[0]
    }

    /// The server-to-client queue.
    pub(crate) fn replies(&self) -> &RawQueue {
        &self.queues[1]
    }

    /// The record's offset (what the client posts).
    pub(crate) fn record(&self) -> u64 {
        self.record
    }

    /// Whether this side's leaving is the last (`Some`, with whether the other side
    /// died): sets its bit, and the other's if that process is dead.
    fn last_to_leave(&self) -> Option<bool> {
        if !self.shared {
            return Some(false);
        }
        // SAFETY: resolved at creation or accept; the block is freed only by the last
        // side to leave, which is not before this side's bit is set below.
        let r = unsafe { self.rec.as_ref() };
        let (me, other) = (self.side.bit(), self.side.other().bit());
        if r.left.fetch_or(me, AcqRel) & other != 0 {
            return Some(false);
        }
        // The other is still in, or died in: in the second case it never sets its bit,
        // so set it for it. If it set it meanwhile (it had not died), it saw ours: it frees.
        (r.dead(self.side.other()) && r.left.fetch_or(other, AcqRel) & other == 0).then_some(true)
    }
}

impl Drop for Leave {
    fn drop(&mut self) {
        let Some(other_died) = self.last_to_leave() else {
            return;
        };
        // Nobody else is registered now (both sides left; a dead one's registrations are
        // reaped by retire). Refused anyway, the block is leaked, not broken.
        // Both, even when the first is refused (no short circuit).
        let retired = self.queues.each_ref().map(|q| q.retire().unwrap_or(false)) == [true; 2];
        if retired {
            // SAFETY: as in last_to_leave; this is the last side, so nobody reads it after.
            unsafe { self.rec.as_ref() }.magic.store(0, Release);
            let _ = self.seg.free(self.record);
        }
        if other_died {
            // A large message the dead side had taken, or was sending.
            let _ = self.seg.heap().map(|h| h.reclaim_dead_owners());
        }
    }
}
