//! The bytes a queue keeps in the segment. Everything is `#[repr(C)]`, fixed-width and
//! validated when attached; see the module docs of [`crate::queue`] for the picture.

use relshm_sync::RawMutex;
use relshm_sync::facade::{AtomicU32, AtomicU64};

/// `"RSHMQUE1"` in little-endian: the first word of a queue's [`Control`].
pub const QUEUE_MAGIC: u64 = u64::from_le_bytes(*b"RSHMQUE1");
/// Layout version of [`Control`], [`EndpointSlot`] and [`SlotHeader`]; bump on any change.
pub const QUEUE_VERSION: u32 = 1;
/// Endpoint registrations (senders and receivers together) a queue holds (fewer in the
/// loom model, where every atomic is a modelled object).
pub const MAX_ENDPOINTS: usize = if cfg!(loom) { 4 } else { 64 };
/// Largest ring (slots).
pub const MAX_CAPACITY: u64 = 1 << 20;
/// Largest inline payload per slot.
pub const MAX_SLOT_SIZE: u32 = 1 << 16;
/// Bytes of a [`SlotHeader`]; the inline payload follows it.
pub const SLOT_HEADER: u64 = 32;

/// Bits of a slot sequence word holding the position (2^56 messages per queue).
pub(crate) const POS_BITS: u32 = 56;
pub(crate) const POS_MASK: u64 = (1 << POS_BITS) - 1;
/// Bits 56..62: the endpoint index that claimed the slot (with `WRITING`/`READING`).
pub(crate) const EP_SHIFT: u32 = 56;
pub(crate) const EP_MASK: u64 = 0x3f;
/// Bits 62..64: the slot state.
pub(crate) const STATE_SHIFT: u32 = 62;
/// Free (position `p`: a producer may claim it) or full (`p + 1`: a consumer may claim it).
pub(crate) const PLAIN: u64 = 0;
/// A producer claimed position `p` and is writing the payload.
pub(crate) const WRITING: u64 = 1;
/// A consumer claimed the message of position `p` (stored as `p + 1`) and is reading it.
pub(crate) const READING: u64 = 2;
/// The producer of position `p` (stored as `p + 1`) died while writing: consumers skip it.
pub(crate) const SKIPPED: u64 = 3;

/// `Control::closed` while the queue is being freed ([`crate::queue::Queue::destroy`]).
pub const RETIRED: u32 = 2;

/// Slot payload kinds (`SlotHeader::meta` high half).
pub(crate) const KIND_INLINE: u64 = 0;
/// The payload lives in a heap allocation whose offset is in `SlotHeader::heap`.
pub(crate) const KIND_HEAP: u64 = 1;

/// `EndpointSlot::owner` kinds (bits 32..34).
pub(crate) const EP_SENDER: u64 = 1;
pub(crate) const EP_RECEIVER: u64 = 2;

/// The control block at the start of a queue's allocation.
///
/// | offset | field | meaning |
/// |---|---|---|
/// | 0 | `magic` | [`QUEUE_MAGIC`] |
/// | 8 | `version`, `slot_size` | [`QUEUE_VERSION`]; inline payload bytes per slot |
/// | 16 | `capacity` | slots, a power of two up to [`MAX_CAPACITY`] |
/// | 24 | `stride` | bytes per slot (header + payload, rounded up to 64) |
/// | 32 | `heap_offset` | the heap large messages are allocated in (0 = none) |
/// | 40 | `total_size` | bytes of the whole queue allocation |
/// | 48 | `sender_mask` | bit i set while endpoint i is a registered sender |
/// | 56 | `receiver_mask` | bit i set while endpoint i is a registered receiver |
/// | 64 | `tail` | next position to produce (a hint producers help along) |
/// | 128 | `head` | next position to consume (a hint consumers help along) |
/// | 192 | `not_empty`, `recv_waiters` | futex word bumped when a message is published; sleeping receivers |
/// | 200 | `not_full`, `send_waiters` | futex word bumped when a slot is freed; sleeping senders |
/// | 208 | `senders_seen`, `receivers_seen` | 1 once any sender / receiver registered |
/// | 216 | `closed` | 1 after [`crate::queue::Queue::close`]; [`RETIRED`] while [`crate::queue::Queue::destroy`] frees it |
/// | 220..256 | reserved | zero |
/// | 256 | `reap_lock` | robust mutex serialising the reclamation of dead endpoints (40 bytes, padded to 64) |
/// | 320 | `endpoints` | [`MAX_ENDPOINTS`] × [`EndpointSlot`] (32 bytes each) |
/// | 2368 | ring | `capacity` × `stride` bytes: [`SlotHeader`] then the inline payload |
#[repr(C)]
pub struct Control {
    pub(crate) magic: AtomicU64,
    pub(crate) version: AtomicU32,
    pub(crate) slot_size: AtomicU32,
    pub(crate) capacity: AtomicU64,
    pub(crate) stride: AtomicU64,
    pub(crate) heap_offset: AtomicU64,
    pub(crate) total_size: AtomicU64,
    pub(crate) sender_mask: AtomicU64,
    pub(crate) receiver_mask: AtomicU64,
    pub(crate) tail: AtomicU64,
    pub(crate) pad_tail: [u64; 7],
    pub(crate) head: AtomicU64,
    pub(crate) pad_head: [u64; 7],
    pub(crate) not_empty: AtomicU32,
    pub(crate) recv_waiters: AtomicU32,
    pub(crate) not_full: AtomicU32,
    pub(crate) send_waiters: AtomicU32,
    pub(crate) senders_seen: AtomicU32,
    pub(crate) receivers_seen: AtomicU32,
    pub(crate) closed: AtomicU32,
    pub(crate) reserved1: [u32; 9],
    pub(crate) reap_lock: RawMutex,
    pub(crate) pad_lock: [u64; 3],
    pub(crate) endpoints: [EndpointSlot; MAX_ENDPOINTS],
}

/// One endpoint registration (a [`crate::queue::Sender`] or [`crate::queue::Receiver`]).
///
/// | offset | field | meaning |
/// |---|---|---|
/// | 0 | `owner` | `pid` (bits 0..32) \| kind (32..34: 1 sender, 2 receiver) \| generation (40..64); pid 0 = free |
/// | 8 | `start_time` | the owner's start time (`/proc/<pid>/stat` field 22); 0 while registering |
/// | 16 | `sleeping` | 1 while the endpoint is counted in a waiter count |
/// | 20..32 | reserved | zero |
///
/// The pair (pid, start time) names a process uniquely even after its pid is reused.
#[repr(C)]
pub struct EndpointSlot {
    pub(crate) owner: AtomicU64,
    pub(crate) start_time: AtomicU64,
    pub(crate) sleeping: AtomicU32,
    pub(crate) reserved: [u32; 3],
}

/// The header of one ring slot; `slot_size` payload bytes follow it.
///
/// | offset | field | meaning |
/// |---|---|---|
/// | 0 | `seq` | position (bits 0..56) \| claiming endpoint (56..62) \| state (62..64: plain, writing, reading, skipped) |
/// | 8 | `meta` | payload length (bits 0..32) \| kind (32..64: 0 inline, 1 heap) |
/// | 16 | `heap` | offset of the heap payload (kind 1) |
/// | 24 | reserved | zero |
///
/// A free slot for position `p` holds `seq = p`; a published one `p + 1`; after it is
/// consumed, `p + capacity` (free for the next lap).
#[repr(C)]
pub struct SlotHeader {
    pub(crate) seq: AtomicU64,
    pub(crate) meta: AtomicU64,
    pub(crate) heap: AtomicU64,
    pub(crate) reserved: AtomicU64,
}

#[cfg(not(loom))]
const _: () = {
    use core::mem::{align_of, offset_of, size_of};
    assert!(offset_of!(Control, tail) == 64);
    assert!(offset_of!(Control, head) == 128);
    assert!(offset_of!(Control, not_empty) == 192);
    assert!(offset_of!(Control, not_full) == 200);
    assert!(offset_of!(Control, senders_seen) == 208);
    assert!(offset_of!(Control, closed) == 216);
    assert!(offset_of!(Control, reap_lock) == 256);
    assert!(offset_of!(Control, endpoints) == 320);
    assert!(size_of::<Control>() == 2368);
    assert!(align_of::<Control>() == 8);
    assert!(size_of::<EndpointSlot>() == 32);
    assert!(size_of::<SlotHeader>() == SLOT_HEADER as usize);
};

/// Bytes per slot for an inline payload of `slot_size` bytes.
pub(crate) const fn stride_for(slot_size: u32) -> u64 {
    (SLOT_HEADER + slot_size as u64).div_ceil(64) * 64
}

/// Offset of the ring from the start of the queue allocation.
pub(crate) const RING_OFFSET: u64 = 2368;

/// Packs a sequence word.
#[inline]
pub(crate) const fn seq_word(state: u64, ep: u64, pos: u64) -> u64 {
    (state << STATE_SHIFT) | ((ep & EP_MASK) << EP_SHIFT) | (pos & POS_MASK)
}

/// Unpacks a sequence word into (state, endpoint, position).
#[inline]
pub(crate) const fn split_seq(s: u64) -> (u64, u64, u64) {
    (s >> STATE_SHIFT, (s >> EP_SHIFT) & EP_MASK, s & POS_MASK)
}

/// Packs an endpoint owner word.
#[inline]
pub(crate) const fn owner_word(pid: u32, kind: u64, generation: u64) -> u64 {
    pid as u64 | (kind << 32) | ((generation & 0xff_ffff) << 40)
}

/// Unpacks an endpoint owner word into (pid, kind, generation).
#[inline]
pub(crate) const fn split_owner(w: u64) -> (u32, u64, u64) {
    (w as u32, (w >> 32) & 3, w >> 40)
}
