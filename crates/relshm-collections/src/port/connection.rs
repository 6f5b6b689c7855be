//! A connection's record in the segment, and freeing a connection once both sides have
//! left.
//!
//! Each side leaves in its own time: the client when dropped (or killed), the server when
//! it sees the client gone. Whichever leaves last frees the two queues and the record, and
//! the first must not touch them after it has left: the heap reuses the bytes at once,
//! often for the next client's queues. So leaving is one atomic step on a word that only
//! the last side's step finds complete: each side sets its bit in `left`; the side whose
//! bit completes the pair frees. A side that was killed never sets its bit, so the other
//! sets it for it once that process is dead (by pid and start time, recorded at
//! connect). A side that is killed after the other has left leaves the connection
//! allocated (nobody is left to notice).

use core::ptr::NonNull;

use relshm_segment::heap::Heap;
use relshm_segment::procstat;
use relshm_sync::facade::{AtomicU32, AtomicU64, Ordering::*};

use crate::queue::{Queue, QueueError};

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

/// A connection's shared state: one 64-byte heap allocation made by the client.
///
/// | offset | field | meaning |
/// |---|---|---|
/// | 0 | `magic` | [`CONNECTION_MAGIC`] |
/// | 8 | `left` | bit 0: the client has left; bit 1: the server has left |
/// | 16 | `requests` | offset of the client-to-server queue |
/// | 24 | `replies` | offset of the server-to-client queue |
/// | 32 | `pids` | the client's and the server's process ids |
/// | 48 | `starts` | their start times (`/proc/<pid>/stat` field 22; 0 = unknown) |
#[repr(C)]
pub struct ConnectionRecord {
    magic: AtomicU64,
    left: AtomicU32,
    reserved: AtomicU32,
    requests: AtomicU64,
    replies: AtomicU64,
    pids: [AtomicU64; 2],
    starts: [AtomicU64; 2],
}

const _: () = assert!(core::mem::size_of::<ConnectionRecord>() == 64);

impl ConnectionRecord {
    /// Whether `side`'s process is known to be dead (not merely gone from the queues).
    fn dead(&self, side: Side) -> bool {
        let i = side.index();
        let (pid, start) = (self.pids[i].load(Acquire), self.starts[i].load(Acquire));
        if pid == 0 || start == 0 {
            return false; // unknown: never declare it dead
        }
        let pid = u32::try_from(pid).unwrap_or(0);
        pid != std::process::id() && procstat::start_time(pid) != Some(start)
    }
}

/// One side's share of a connection: frees the queues and the record when dropped by the
/// side that leaves last. Declared after that side's endpoints, so they are gone by then.
pub(crate) struct Leave {
    heap: Heap,
    record: u64,
    rec: NonNull<ConnectionRecord>,
    queues: [Queue; 2],
    side: Side,
    /// False while the other side cannot know of the connection (a client that has not
    /// posted it yet): then this side is the only one, and frees it on drop.
    shared: bool,
}

// SAFETY: the record pointer names shared memory used only through atomics; the other
// fields are Send.
unsafe impl Send for Leave {}

impl Leave {
    /// For a connecting client: allocates the record for the queues `requests` and
    /// `replies` (already created), naming this process and the server
    /// (`server` = pid and start time from the port). Not yet shared.
    pub(crate) fn create(
        heap: &Heap,
        requests: &Queue,
        replies: &Queue,
        server: (u64, u64),
    ) -> Result<Leave, QueueError> {
        let record = heap.alloc(size_of::<ConnectionRecord>() as u64, 8)?;
        let rec = heap.region().resolve_as::<ConnectionRecord>(record)?;
        // SAFETY: a fresh allocation of the record's size, resolved in bounds and aligned;
        // atomics only.
        let r = unsafe { rec.as_ref() };
        r.left.store(0, Relaxed);
        r.reserved.store(0, Relaxed);
        r.requests.store(requests.offset(), Relaxed);
        r.replies.store(replies.offset(), Relaxed);
        r.pids[0].store(u64::from(std::process::id()), Relaxed);
        r.starts[0].store(procstat::own_start_time(), Relaxed);
        r.pids[1].store(server.0, Relaxed);
        r.starts[1].store(server.1, Relaxed);
        r.magic.store(CONNECTION_MAGIC, Release);
        Ok(Leave {
            heap: heap.clone(),
            record,
            rec,
            queues: [requests.clone(), replies.clone()],
            side: Side::Client,
            shared: false,
        })
    }

    /// For the client, once the server may know of the connection (it was posted).
    pub(crate) fn share(&mut self) {
        self.shared = true;
    }

    /// For the server: the connection whose record is at `record`, checked; its two
    /// queues are attached.
    pub(crate) fn accept(heap: &Heap, record: u64) -> Result<Leave, QueueError> {
        let rec = heap.region().resolve_as::<ConnectionRecord>(record)?;
        // SAFETY: resolved in bounds and aligned; atomics only, any bits valid.
        let r = unsafe { rec.as_ref() };
        if r.magic.load(Acquire) != CONNECTION_MAGIC {
            return Err(QueueError::corrupted(format!(
                "no connection record at offset {record:#x} (wrong magic)"
            )));
        }
        let queues = [
            Queue::attach(heap, r.requests.load(Relaxed))?,
            Queue::attach(heap, r.replies.load(Relaxed))?,
        ];
        Ok(Leave {
            heap: heap.clone(),
            record,
            rec,
            queues,
            side: Side::Server,
            shared: true,
        })
    }

    /// The client-to-server queue.
    pub(crate) fn requests(&self) -> &Queue {
        &self.queues[0]
    }

    /// The server-to-client queue.
    pub(crate) fn replies(&self) -> &Queue {
        &self.queues[1]
    }

    /// The record's offset (what the client posts).
    pub(crate) fn record(&self) -> u64 {
        self.record
    }

    /// Whether this side's leaving is the last: sets its bit, and the other's if that
    /// process is dead.
    fn last_to_leave(&self) -> bool {
        if !self.shared {
            return true;
        }
        // SAFETY: resolved at creation or accept; the record is freed only by the last
        // side to leave, which is not before this side's bit is set below.
        let r = unsafe { self.rec.as_ref() };
        let (me, other) = (self.side.bit(), self.side.other().bit());
        if r.left.fetch_or(me, AcqRel) & other != 0 {
            return true;
        }
        // The other is still in, or died in: in the second case it never sets its bit,
        // so set it for it. If it set it meanwhile (it had not died), it saw ours: it frees.
        r.dead(self.side.other()) && r.left.fetch_or(other, AcqRel) & other == 0
    }
}

impl Drop for Leave {
    fn drop(&mut self) {
        if !self.last_to_leave() {
            return;
        }
        for q in &self.queues {
            // Nobody else is registered now (both sides left; a dead one's registrations
            // are reaped by destroy). Refused anyway, the queue is leaked, not broken.
            let _ = q.destroy();
        }
        // SAFETY: as in last_to_leave; this is the last side, so nobody reads it after.
        unsafe { self.rec.as_ref() }.magic.store(0, Release);
        let _ = self.heap.free(self.record);
    }
}
