//! The process-side handles: [`Queue`] (a typed, owning handle on a queue), [`Sender`],
//! [`Receiver`] and received [`Message`]s, over the untyped [`RawQueue`] that ports share.

use core::marker::PhantomData;
use core::ptr::NonNull;
use std::time::Duration;

use bytemuck::Pod;
use relshm_ptr::Repr;
use relshm_segment::Segment;
use relshm_segment::heap::{kill_point, own_process_owner};
use relshm_sync::facade::Ordering::*;

use super::large::{LARGE_HEADER, LARGE_MAGIC, LargeHeader, ident, queued, queued_pos};
use super::layout::{
    Control, EP_RECEIVER, EP_SENDER, KIND_HEAP, KIND_INLINE, MAX_CAPACITY, MAX_SLOT_SIZE,
    QUEUE_MAGIC, QUEUE_VERSION, RETIRED, RING_OFFSET, SLOT_HEADER, SlotHeader, split_seq,
    stride_for,
};
use super::ops::{recv_once, send_once};
use super::ring::{Ring, Slots};
use super::wait::SPIN_ROUNDS;
use crate::arena::Arena;
use crate::error::{CollectionError, WRONG_MAGIC};
use crate::record::CollectionRecord;

/// How a queue is laid out; see [`Queue::create`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueConfig {
    /// Number of slots: a power of two, 2 to 2^20.
    pub capacity: u32,
    /// Inline payload bytes per slot: a multiple of 8, 8 to 65536 (default 256). Longer
    /// messages go through the heap.
    pub slot_size: u32,
    /// Whether messages longer than `slot_size` may be sent (allocated in the segment the
    /// queue was created in, which grows for them when it may).
    pub large_messages: bool,
}

impl Default for QueueConfig {
    fn default() -> Self {
        Self {
            capacity: 1024,
            slot_size: 256,
            large_messages: true,
        }
    }
}

impl QueueConfig {
    /// `capacity` slots of the default 256 bytes, large messages allowed.
    pub fn with_capacity(capacity: u32) -> Self {
        Self {
            capacity,
            ..Self::default()
        }
    }

    fn check(&self) -> Result<(), CollectionError> {
        let bad = |what| Err(CollectionError::BadConfig { what });
        if !self.capacity.is_power_of_two()
            || self.capacity < 2
            || u64::from(self.capacity) > MAX_CAPACITY
        {
            return bad("capacity must be a power of two from 2 to 2^20");
        }
        if self.slot_size < 8 || self.slot_size > MAX_SLOT_SIZE || !self.slot_size.is_multiple_of(8)
        {
            return bad("slot_size must be a multiple of 8 from 8 to 65536");
        }
        Ok(())
    }
}

/// The ring's slots in this process's mapping.
#[derive(Clone, Copy)]
pub(crate) struct SegSlots {
    ring: NonNull<u8>,
    stride: u64,
}

impl SegSlots {
    /// The payload bytes of slot `i`.
    ///
    /// # Safety
    /// The caller holds the slot's read claim for as long as it uses the slice, and
    /// `len` is at most the slot size.
    unsafe fn payload(&self, i: u64, len: usize) -> &[u8] {
        let off = (i * self.stride + SLOT_HEADER) as usize;
        // SAFETY: in the ring (resolved at attach); nobody writes a claimed slot.
        unsafe { core::slice::from_raw_parts(self.ring.as_ptr().add(off), len) }
    }
}

impl Slots for SegSlots {
    #[inline]
    fn header(&self, i: u64) -> &SlotHeader {
        // SAFETY: `i < capacity` (the ring masks positions) and the whole ring was
        // resolved inside the mapping at attach; slots are 64-aligned; every bit pattern
        // of a header is valid (atomics).
        unsafe { &*self.ring.as_ptr().add((i * self.stride) as usize).cast() }
    }

    #[inline]
    unsafe fn write(&self, i: u64, src: &[u8]) {
        let off = (i * self.stride + SLOT_HEADER) as usize;
        // SAFETY: in the ring (see header()); the caller holds the write claim, so no one
        // else touches these bytes, and src fits the slot (caller's contract).
        unsafe {
            core::ptr::copy_nonoverlapping(src.as_ptr(), self.ring.as_ptr().add(off), src.len())
        };
    }

    #[inline]
    unsafe fn read(&self, i: u64, dst: &mut [u8]) {
        let off = (i * self.stride + SLOT_HEADER) as usize;
        // SAFETY: as in write(), with the read claim.
        unsafe {
            core::ptr::copy_nonoverlapping(self.ring.as_ptr().add(off), dst.as_mut_ptr(), dst.len())
        };
    }
}

/// A queue in a segment, attached in this process, untyped: the machinery under
/// [`Queue`] and the port connections. Cheap to clone; keeps the segment mapped.
#[derive(Clone)]
pub(crate) struct RawQueue {
    seg: Segment,
    offset: u64,
    ctl: NonNull<Control>,
    slots: SegSlots,
    capacity: u64,
    slot_size: u32,
    large: bool,
}

// SAFETY: the handle names shared memory; all access to it goes through atomics and the
// claim protocol, which are made for concurrent use from any thread or process.
unsafe impl Send for RawQueue {}
// SAFETY: as for Send.
unsafe impl Sync for RawQueue {}

impl core::fmt::Debug for RawQueue {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Queue")
            .field("offset", &self.offset)
            .field("capacity", &self.capacity)
            .field("slot_size", &self.slot_size)
            .field("len", &self.len())
            .finish()
    }
}

impl RawQueue {
    /// Allocates (growing the segment if it must and may) and formats a queue in `seg`;
    /// returns it attached. Its [`offset`](Self::offset) is how other processes attach.
    pub(crate) fn create(seg: &Segment, config: QueueConfig) -> Result<RawQueue, CollectionError> {
        let offset = seg.alloc(Self::footprint(config)?, 64)?;
        // SAFETY: a fresh allocation of the footprint, 64-aligned, not yet shared.
        unsafe { Self::format_at(seg, offset, config) }.inspect_err(|_| {
            let _ = seg.free(offset);
        })
    }

    /// Bytes a queue laid out as `config` takes (control block and ring).
    pub(crate) fn footprint(config: QueueConfig) -> Result<u64, CollectionError> {
        config.check()?;
        Ok(RING_OFFSET + u64::from(config.capacity) * stride_for(config.slot_size))
    }

    /// Formats a queue laid out as `config` at `offset` (a part of a larger allocation,
    /// such as a port connection's block); freed with the block, after [`retire`].
    ///
    /// # Safety
    ///
    /// `[offset, offset + footprint)` must be segment bytes the caller allocated and that no
    /// other thread or process reads or writes yet (they are overwritten).
    ///
    /// [`retire`]: Self::retire
    pub(crate) unsafe fn format_at(
        seg: &Segment,
        offset: u64,
        config: QueueConfig,
    ) -> Result<RawQueue, CollectionError> {
        let total = Self::footprint(config)?;
        let stride = stride_for(config.slot_size);
        let base = seg.region().resolve(offset, total, 64)?;
        // SAFETY: the caller's bytes that nobody else uses yet (the contract), resolved in
        // bounds; all-zero bytes are a valid Control (unlocked lock, free endpoints, empty masks).
        unsafe { base.as_ptr().write_bytes(0, total as usize) };
        // SAFETY: resolved, aligned, zeroed Control as above.
        let ctl = unsafe { base.cast::<Control>().as_ref() };
        ctl.version.store(QUEUE_VERSION, Relaxed);
        ctl.slot_size.store(config.slot_size, Relaxed);
        ctl.capacity.store(u64::from(config.capacity), Relaxed);
        ctl.stride.store(stride, Relaxed);
        ctl.heap_offset.store(
            if config.large_messages {
                seg.heap_offset()
            } else {
                0
            },
            Relaxed,
        );
        ctl.total_size.store(total, Relaxed);
        let q = Self::view(seg, offset, base.cast(), config.capacity.into(), stride)?;
        for i in 0..q.capacity {
            q.slots.header(i).seq.store(i, Relaxed);
        }
        ctl.magic.store(QUEUE_MAGIC, Release);
        RawQueue::attach(seg, offset)
    }

    fn view(
        seg: &Segment,
        offset: u64,
        ctl: NonNull<Control>,
        capacity: u64,
        stride: u64,
    ) -> Result<RawQueue, CollectionError> {
        let ring = seg
            .region()
            .resolve(offset + RING_OFFSET, capacity * stride, 64)?;
        Ok(RawQueue {
            seg: seg.clone(),
            offset,
            ctl,
            slots: SegSlots { ring, stride },
            capacity,
            slot_size: 0,
            large: false,
        })
    }

    /// Attaches to the queue whose control block is at `offset` in `seg`, validating
    /// every field.
    pub(crate) fn attach(seg: &Segment, offset: u64) -> Result<RawQueue, CollectionError> {
        let region = seg.region();
        // A control block starts 64-aligned: any other offset is named misaligned.
        let ctl_ptr = region
            .resolve(offset, size_of::<Control>() as u64, 64)?
            .cast::<Control>();
        // SAFETY: resolved in bounds and aligned; every bit pattern of Control is valid
        // (atomics and a RawMutex, which accepts any word).
        let ctl = unsafe { ctl_ptr.as_ref() };
        if ctl.magic.load(Acquire) != QUEUE_MAGIC {
            return Err(CollectionError::BadHeader {
                expected: "relshm Queue",
                offset,
                why: WRONG_MAGIC,
            });
        }
        if ctl.version.load(Relaxed) != QUEUE_VERSION {
            return Err(crate::error::corrupt("unsupported queue layout version"));
        }
        let config = QueueConfig {
            capacity: u32::try_from(ctl.capacity.load(Relaxed)).unwrap_or(0),
            slot_size: ctl.slot_size.load(Relaxed),
            large_messages: ctl.heap_offset.load(Relaxed) != 0,
        };
        config
            .check()
            .map_err(|_| crate::error::corrupt("capacity or slot size out of range"))?;
        let stride = stride_for(config.slot_size);
        let total = RING_OFFSET + u64::from(config.capacity) * stride;
        if ctl.stride.load(Relaxed) != stride || ctl.total_size.load(Relaxed) != total {
            return Err(crate::error::corrupt(
                "stride or size disagree with the slot size",
            ));
        }
        if config.large_messages && ctl.heap_offset.load(Relaxed) != seg.heap_offset() {
            return Err(crate::error::corrupt(
                "the queue's heap is not the heap of the segment it was opened in",
            ));
        }
        let mut q = Self::view(seg, offset, ctl_ptr, config.capacity.into(), stride)?;
        q.slot_size = config.slot_size;
        q.large = config.large_messages;
        Ok(q)
    }

    /// The queue's offset in the segment (the same in every process).
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// Number of slots.
    pub fn capacity(&self) -> u64 {
        self.capacity
    }

    /// Inline payload bytes per slot.
    pub fn slot_size(&self) -> u32 {
        self.slot_size
    }

    /// Messages published and not yet claimed (a snapshot).
    pub fn len(&self) -> u64 {
        self.ring().len()
    }

    /// Whether no message is waiting (a snapshot).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Receivers sleeping in a blocking receive right now (a snapshot; a process killed
    /// while asleep stays counted until it is reaped).
    pub fn waiting_receivers(&self) -> u32 {
        self.ctl().recv_waiters.load(Acquire)
    }

    /// Senders sleeping in a blocking send right now (a snapshot).
    pub fn waiting_senders(&self) -> u32 {
        self.ctl().send_waiters.load(Acquire)
    }

    /// Registered senders and receivers (a snapshot: registrations of processes that died
    /// count until they are reaped).
    pub fn endpoints(&self) -> (u32, u32) {
        (
            self.ctl().sender_mask.load(Acquire).count_ones(),
            self.ctl().receiver_mask.load(Acquire).count_ones(),
        )
    }

    pub(crate) fn ctl(&self) -> &Control {
        // SAFETY: resolved and validated at attach; the handle's segment clone keeps the
        // mapping alive; every bit pattern is a valid Control.
        unsafe { self.ctl.as_ref() }
    }

    pub(crate) fn ring(&self) -> Ring<'_, SegSlots> {
        Ring {
            ctl: self.ctl(),
            slots: &self.slots,
            capacity: self.capacity,
        }
    }

    /// A new sender endpoint for messages of type `T` (at most `slot_size` bytes, or any
    /// size with large messages).
    pub(crate) fn sender<T: bytemuck::Pod>(&self) -> Result<Sender<T>, CollectionError> {
        Ok(Sender {
            ep: self.register::<T>(EP_SENDER)?,
            _t: PhantomData,
        })
    }

    /// A new receiver endpoint for messages of type `T`.
    pub(crate) fn receiver<T: bytemuck::Pod>(&self) -> Result<Receiver<T>, CollectionError> {
        Ok(Receiver {
            ep: self.register::<T>(EP_RECEIVER)?,
            _t: PhantomData,
        })
    }

    /// Registers an endpoint of `kind` for messages of type `T`.
    fn register<T>(&self, kind: u64) -> Result<Endpoint, CollectionError> {
        self.check_type::<T>()?;
        let (index, owner) = self.ctl().register(kind)?;
        Ok(Endpoint::new(self.clone(), index, owner))
    }

    fn check_type<T>(&self) -> Result<(), CollectionError> {
        check_fits::<T>(self.slot_size, self.large)
    }

    /// Closes the queue: every blocked or later call on any endpoint, in any process,
    /// returns `Disconnected` (receivers once the queue is drained).
    pub fn close(&self) {
        self.ctl().closed.store(1, SeqCst);
        self.ctl().recv_event().wake_all();
        self.ctl().send_event().wake_all();
    }

    /// Reclaims the endpoint registrations (and resolves the half-done ring claims) of
    /// processes that died; returns how many were reclaimed. Blocked calls do this on
    /// their own every [`LIVENESS_INTERVAL`](super::LIVENESS_INTERVAL).
    pub fn reap_dead(&self) -> Result<u32, CollectionError> {
        self.ctl().reap(&self.ring())
    }

    /// Frees the large-message allocations that dead processes leaked (a sender killed
    /// at any point before its message was queued, a receiver killed holding a
    /// [`Message`], a message whose receiver died mid-receive or whose sender died before
    /// publishing it); returns how many were freed. Reaps dead endpoints first. Safe to
    /// run while the queue is in use.
    ///
    /// Blocks owned by a dead process are freed whatever they are (see
    /// [`Heap::reclaim_dead_owners`](relshm_segment::heap::Heap::reclaim_dead_owners));
    /// queued messages only for this queue.
    pub fn reclaim(&self) -> Result<u64, CollectionError> {
        self.reap_dead()?;
        Ok(self.seg.heap()?.reclaim_dead_owners()? + self.free_large(false)?)
    }

    /// Frees the queue's memory: its control block and slots, and the large messages still
    /// queued in it. For a queue nobody will attach to again, such as the private pair of
    /// a [`crate::port`] connection once both ends are gone: the heap reuses the bytes, so
    /// a process that still remembers the offset must not attach afterwards, nor call
    /// `destroy` (the bytes may be another queue by then). When several parties may free
    /// a queue, agree on the last one first, as ports do.
    ///
    /// Returns `Ok(true)` if this call freed it. `Ok(false)` (nothing freed) while an
    /// endpoint is still registered by a live process (drop every [`Sender`] and
    /// [`Receiver`] first; the queue is left closed, so theirs report `Disconnected`), or
    /// when another call is freeing it. Registrations of dead processes are reaped first.
    /// A message a live process received and still holds stays its own: it frees it on
    /// drop as always.
    pub fn destroy(&self) -> Result<bool, CollectionError> {
        if !self.retire()? {
            return Ok(false);
        }
        self.seg.free(self.offset)?;
        Ok(true)
    }

    /// [`destroy`](Self::destroy) but for freeing the queue's own bytes: for a queue made
    /// with [`format_at`](Self::format_at), whose bytes are freed with the block that
    /// holds them. `Ok(true)` if this call retired it (the caller may free the block).
    pub(crate) fn retire(&self) -> Result<bool, CollectionError> {
        self.reap_dead()?;
        let ctl = self.ctl();
        // One destroyer: the call whose swap retires the queue.
        if ctl.closed.swap(RETIRED, SeqCst) == RETIRED {
            return Ok(false);
        }
        ctl.recv_event().wake_all();
        ctl.send_event().wake_all();
        // Pairs with `Control::register`, which registers and then reads `closed`: either
        // a registration shows here, or the registrar sees RETIRED and withdraws.
        if ctl.registered() {
            ctl.closed.store(1, SeqCst);
            return Ok(false);
        }
        self.free_large(true)?;
        ctl.magic.store(0, SeqCst);
        Ok(true)
    }

    /// Frees this queue's queued large messages that no ring slot refers to any more
    /// (their sender died before publishing, or their receiver before taking them), and,
    /// when `retiring`, every queued one.
    fn free_large(&self, retiring: bool) -> Result<u64, CollectionError> {
        let mut freed = 0;
        let mine = ident(self.offset);
        let heap = self.seg.heap()?;
        for (off, record) in heap.owned_allocations()? {
            let Some(pos) = queued_pos(record[0]).filter(|_| record[1] == mine) else {
                continue;
            };
            // A slot that no longer refers to the message never will again (positions
            // only grow), and free_owned re-checks the record under the heap lock.
            if (retiring || !self.ring_refers_to(off, pos)) && heap.free_owned(off, record)? {
                freed += 1;
            }
        }
        Ok(freed)
    }

    fn ring_refers_to(&self, off: u64, pos: u64) -> bool {
        let s = self.slots.header(pos & (self.capacity - 1));
        let (_, _, base) = split_seq(s.seq.load(Acquire));
        (base == pos || base == pos + 1) && s.heap.load(Acquire) == off
    }
}

/// A bounded multi-producer multi-consumer queue of `T`s in a segment: an owning handle
/// (it keeps the segment mapped), so an application keeps it in its own structs, moves it
/// to other threads, and clones it cheaply. Send and receive through [`Sender`] and
/// [`Receiver`] endpoints, which own what they need too.
///
/// Made with [`create`](Self::create) or [`create_named`](Self::create_named) on an
/// [`Arena`] (of any strategy: a queue links nothing, it uses segment offsets), found by
/// another process with [`open`](Self::open) (the [`offset`](Self::offset)) or
/// [`open_named`](Self::open_named), which checks that the queue was made for `T`.
/// Byte messages of any length ([`Sender::send_bytes`], [`Receiver::recv_bytes`]) work
/// on any queue; use `Queue<u8>` for a queue of byte messages only.
///
/// ```
/// use relshm_collections::{Arena, CollectionError};
/// use relshm_collections::queue::{Queue, QueueConfig};
/// use relshm_segment::{CreateOptions, Placement, Segment};
///
/// let seg = Segment::create_unnamed(&CreateOptions::new(1 << 20))?;
/// let arena: Arena = Arena::new(&seg)?; // the strategy does not matter to a queue
/// let q = Queue::<u64>::create_named(&arena, "jobs", QueueConfig::with_capacity(64))?;
/// let tx = q.sender()?;
/// tx.try_send(&42)?;
///
/// let elsewhere: Arena = Arena::new(&seg.reopen(Placement::Anywhere)?)?; // as another process would
/// let rx = Queue::<u64>::open_named(&elsewhere, "jobs")?.receiver()?;
/// assert_eq!(rx.try_recv()?, 42);
/// assert!(matches!(
///     Queue::<u32>::open_named(&elsewhere, "jobs"),
///     Err(CollectionError::RecordMismatch { .. })
/// ));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Queue<T> {
    raw: RawQueue,
    _t: PhantomData<fn() -> T>,
}

impl<T> Clone for Queue<T> {
    fn clone(&self) -> Self {
        Self {
            raw: self.raw.clone(),
            _t: PhantomData,
        }
    }
}

impl<T> core::fmt::Debug for Queue<T> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        self.raw.fmt(f)
    }
}

/// Whether a `T` fits a slot of `slot_size` bytes, or may go the large-message way.
fn check_fits<T>(slot_size: u32, large: bool) -> Result<(), CollectionError> {
    let len = size_of::<T>() as u64;
    if len > u64::from(slot_size) && !large {
        return Err(CollectionError::TooLarge {
            len,
            slot_size,
            why: "the queue was created without large messages",
        });
    }
    Ok(())
}

impl<T: Pod> Queue<T> {
    /// Allocates and formats a queue laid out as `config` in `arena`'s segment (growing
    /// the segment if its heap is full and it may grow). Its [`offset`](Self::offset) is
    /// how other processes [`open`](Self::open) it.
    ///
    /// `Err(TooLarge)` if a `T` does not fit a slot and `config` forbids large messages.
    pub fn create<R: Repr>(arena: &Arena<R>, config: QueueConfig) -> Result<Self, CollectionError> {
        let seg = arena.shared_segment()?;
        check_fits::<T>(config.slot_size, config.large_messages)?;
        Ok(Self::typed(RawQueue::create(seg, config)?))
    }

    /// Opens the queue whose control block is at `offset` (from [`offset`](Self::offset),
    /// the same in every process), validating every field of it.
    ///
    /// The offset carries no type: nothing checks that the queue was made for `T` beyond
    /// its slots being able to hold one (received messages of another length are
    /// `WrongSize`). Prefer [`open_named`](Self::open_named), which does check.
    pub fn open<R: Repr>(arena: &Arena<R>, offset: u64) -> Result<Self, CollectionError> {
        let seg = arena.shared_segment()?;
        // A caller's offset that cannot hold a control block is the caller's mistake.
        arena.block_at(offset, size_of::<Control>() as u64, 64, "relshm Queue")?;
        let raw = RawQueue::attach(seg, offset)?;
        raw.check_type::<T>()?;
        Ok(Self::typed(raw))
    }

    /// Like [`create`](Self::create), and records the queue under `name` in the segment's
    /// directory (kind queue, element size and alignment of `T`).
    pub fn create_named<R: Repr>(
        arena: &Arena<R>,
        name: &str,
        config: QueueConfig,
    ) -> Result<Self, CollectionError> {
        let q = Self::create(arena, config)?;
        let dir = arena.shared_segment()?.directory()?;
        crate::record::write(&dir, name, Self::record().at(q.offset())).inspect_err(|_| {
            let _ = q.raw.destroy();
        })?;
        Ok(q)
    }

    /// Opens the queue recorded under `name`, checking that it was made for `T`
    /// (`Err(RecordMismatch)` otherwise).
    pub fn open_named<R: Repr>(arena: &Arena<R>, name: &str) -> Result<Self, CollectionError> {
        let dir = arena.shared_segment()?.directory()?;
        let offset = crate::record::read(&dir, name, &Self::record())?;
        Self::open(arena, offset)
    }

    /// The directory record of a queue of `T`s.
    fn record() -> CollectionRecord {
        CollectionRecord::queue::<T>()
    }

    fn typed(raw: RawQueue) -> Self {
        Self {
            raw,
            _t: PhantomData,
        }
    }

    /// A new sender endpoint. It owns what it needs: it outlives this handle if kept.
    pub fn sender(&self) -> Result<Sender<T>, CollectionError> {
        self.raw.sender()
    }

    /// A new receiver endpoint. It owns what it needs: it outlives this handle if kept.
    pub fn receiver(&self) -> Result<Receiver<T>, CollectionError> {
        self.raw.receiver()
    }
}

impl<T> Queue<T> {
    /// The queue's offset in the segment (the same in every process).
    pub fn offset(&self) -> u64 {
        self.raw.offset
    }

    /// Number of slots.
    pub fn capacity(&self) -> u64 {
        self.raw.capacity
    }

    /// Inline payload bytes per slot.
    pub fn slot_size(&self) -> u32 {
        self.raw.slot_size
    }

    /// Messages published and not yet claimed (a snapshot).
    pub fn len(&self) -> u64 {
        self.raw.len()
    }

    /// Whether no message is waiting (a snapshot).
    pub fn is_empty(&self) -> bool {
        self.raw.is_empty()
    }

    /// Receivers sleeping in a blocking receive right now (a snapshot; a process killed
    /// while asleep stays counted until it is reaped).
    pub fn waiting_receivers(&self) -> u32 {
        self.raw.waiting_receivers()
    }

    /// Senders sleeping in a blocking send right now (a snapshot).
    pub fn waiting_senders(&self) -> u32 {
        self.raw.waiting_senders()
    }

    /// Registered senders and receivers (a snapshot: registrations of processes that died
    /// count until they are reaped).
    pub fn endpoints(&self) -> (u32, u32) {
        self.raw.endpoints()
    }

    /// Closes the queue: every blocked or later call on any endpoint, in any process,
    /// returns `Disconnected` (receivers once the queue is drained).
    pub fn close(&self) {
        self.raw.close()
    }

    /// Reclaims the endpoint registrations (and resolves the half-done ring claims) of
    /// processes that died; returns how many were reclaimed. Blocked calls do this on
    /// their own every [`LIVENESS_INTERVAL`](super::LIVENESS_INTERVAL).
    pub fn reap_dead(&self) -> Result<u32, CollectionError> {
        self.raw.reap_dead()
    }

    /// Frees the large-message allocations that dead processes leaked (a sender killed
    /// at any point before its message was queued, a receiver killed holding a
    /// [`Message`], a message whose receiver died mid-receive or whose sender died before
    /// publishing it); returns how many were freed. Reaps dead endpoints first. Safe to
    /// run while the queue is in use. Blocks owned by a dead process are freed whatever
    /// they are; queued messages only for this queue.
    pub fn reclaim(&self) -> Result<u64, CollectionError> {
        self.raw.reclaim()
    }

    /// Frees the queue's memory: its control block and slots, and the large messages still
    /// queued in it. For a queue nobody will open again: the heap reuses the bytes, so
    /// a process that still remembers the offset must not open it afterwards, nor call
    /// `destroy` (the bytes may be another queue by then). When several parties may free
    /// a queue, agree on the last one first, as ports do. A name recorded for it stays
    /// in the directory.
    ///
    /// Returns `Ok(true)` if this call freed it. `Ok(false)` (nothing freed) while an
    /// endpoint is still registered by a live process (drop every [`Sender`] and
    /// [`Receiver`] first; the queue is left closed, so theirs report `Disconnected`), or
    /// when another call is freeing it. Registrations of dead processes are reaped first.
    /// A message a live process received and still holds stays its own: it frees it on
    /// drop as always.
    ///
    /// ```
    /// use relshm_collections::Arena;
    /// use relshm_collections::queue::{Queue, QueueConfig};
    /// use relshm_segment::{CreateOptions, Segment};
    /// let seg = Segment::create_unnamed(&CreateOptions::new(1 << 20))?;
    /// let before = seg.heap()?.stats()?.used_bytes;
    /// let arena: Arena = Arena::new(&seg)?;
    /// let q = Queue::<u8>::create(&arena, QueueConfig::with_capacity(8))?;
    /// let tx = q.sender()?;
    /// tx.send_bytes(&[1; 5000], None)?; // a large message, queued in the heap
    /// assert!(!q.destroy()?); // tx is registered
    /// drop(tx);
    /// assert!(q.destroy()?);
    /// assert_eq!(seg.heap()?.stats()?.used_bytes, before);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn destroy(&self) -> Result<bool, CollectionError> {
        self.raw.destroy()
    }
}

/// One registration; unregisters on drop (in the process that registered).
struct Endpoint {
    q: RawQueue,
    index: usize,
    owner: u64,
    pid: u32,
}

impl Endpoint {
    fn new(q: RawQueue, index: usize, owner: u64) -> Self {
        Self {
            q,
            index,
            owner,
            pid: std::process::id(),
        }
    }

    fn slot(&self) -> &super::layout::EndpointSlot {
        &self.q.ctl().endpoints[self.index]
    }
}

impl Drop for Endpoint {
    fn drop(&mut self) {
        // A forked child holding a copy of its parent's endpoint must not free it.
        if std::process::id() == self.pid {
            self.q.ctl().unregister(self.index, self.owner);
        }
    }
}

/// The sending endpoint of a [`Queue`], for messages of type `T` (use `u8` and
/// [`send_bytes`](Self::send_bytes) for raw byte messages).
pub struct Sender<T> {
    ep: Endpoint,
    _t: PhantomData<fn(T)>,
}

impl<T> core::fmt::Debug for Sender<T> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Sender")
            .field("queue", &self.ep.q.offset)
            .field("endpoint", &self.ep.index)
            .finish()
    }
}

/// A large message written into the heap, not yet queued.
struct Staged {
    off: u64,
    len: u64,
    header: NonNull<LargeHeader>,
}

impl<T: bytemuck::Pod> Sender<T> {
    /// Sends `value` if a slot is free; `Full` otherwise. Never blocks.
    pub fn try_send(&self, value: &T) -> Result<(), CollectionError> {
        self.try_send_bytes(bytemuck::bytes_of(value))
    }

    /// Sends `value`, waiting while the queue is full.
    pub fn send(&self, value: &T) -> Result<(), CollectionError> {
        self.send_bytes_until(bytemuck::bytes_of(value), None, SPIN_ROUNDS)
    }

    /// Sends `value`, waiting at most `timeout` while the queue is full.
    pub fn send_timeout(&self, value: &T, timeout: Duration) -> Result<(), CollectionError> {
        self.send_bytes_until(bytemuck::bytes_of(value), Some(timeout), SPIN_ROUNDS)
    }
}

impl<T> Sender<T> {
    /// The offset of the queue this endpoint sends into.
    pub fn queue_offset(&self) -> u64 {
        self.ep.q.offset
    }

    /// Sends a byte message without blocking. Messages longer than the slot size are
    /// written into a heap allocation whose offset travels instead.
    pub fn try_send_bytes(&self, msg: &[u8]) -> Result<(), CollectionError> {
        let staged = self.stage(msg)?;
        match self.attempt(msg, staged.as_ref()) {
            Ok(Some(())) => Ok(()),
            r => {
                self.unstage(staged);
                r?;
                Err(CollectionError::Full)
            }
        }
    }

    /// Sends a byte message, waiting while the queue is full (at most `timeout`).
    pub fn send_bytes(&self, msg: &[u8], timeout: Option<Duration>) -> Result<(), CollectionError> {
        self.send_bytes_until(msg, timeout, SPIN_ROUNDS)
    }

    /// Like [`send_bytes`](Self::send_bytes) with a choice of how many attempts spin
    /// before sleeping (`u32::MAX`: poll, never sleep until the deadline).
    pub fn send_bytes_spin(
        &self,
        msg: &[u8],
        timeout: Option<Duration>,
        spin: u32,
    ) -> Result<(), CollectionError> {
        self.send_bytes_until(msg, timeout, spin)
    }

    fn send_bytes_until(
        &self,
        msg: &[u8],
        timeout: Option<Duration>,
        spin: u32,
    ) -> Result<(), CollectionError> {
        let staged = self.stage(msg)?;
        let ctl = self.ep.q.ctl();
        let r = ctl.send_event().block_on(
            &self.ep.slot().sleeping,
            timeout,
            spin,
            || self.attempt(msg, staged.as_ref()),
            || {
                let _ = self.ep.q.reap_dead();
            },
        );
        if r.is_err() {
            self.unstage(staged);
        }
        r
    }

    fn stage(&self, msg: &[u8]) -> Result<Option<Staged>, CollectionError> {
        let q = &self.ep.q;
        let len = msg.len() as u64;
        if len <= u64::from(q.slot_size) {
            return Ok(None);
        }
        if !q.large {
            return Err(CollectionError::TooLarge {
                len,
                slot_size: q.slot_size,
                why: "the queue was created without large messages",
            });
        }
        // Owned by this process from the instant it exists: a sender killed from here
        // until the message is queued leaves a block that reclaim frees.
        let off = q.seg.alloc_owned(
            LARGE_HEADER + len,
            64,
            [own_process_owner(), ident(q.offset)],
        )?;
        kill_point();
        let base = q.seg.region().resolve(off, LARGE_HEADER + len, 64)?;
        // SAFETY: a fresh allocation of LARGE_HEADER + len bytes that only this process
        // owns; the owner record (first 16 bytes) is left alone, the rest of the header is
        // atomics (zeroed), the payload plain bytes.
        let h = unsafe {
            base.as_ptr()
                .add(16)
                .write_bytes(0, LARGE_HEADER as usize - 16);
            core::ptr::copy_nonoverlapping(
                msg.as_ptr(),
                base.as_ptr().add(LARGE_HEADER as usize),
                msg.len(),
            );
            base.cast::<LargeHeader>().as_ref()
        };
        h.len.store(len, Relaxed);
        h.magic.store(LARGE_MAGIC, Release);
        kill_point();
        Ok(Some(Staged {
            off,
            len,
            header: base.cast(),
        }))
    }

    fn unstage(&self, staged: Option<Staged>) {
        if let Some(s) = staged {
            // Still ours (never queued): give it back.
            let _ = self.ep.q.seg.free(s.off);
        }
    }

    /// One send attempt: `Some` if sent, `None` if full.
    fn attempt(&self, msg: &[u8], staged: Option<&Staged>) -> Result<Option<()>, CollectionError> {
        let q = &self.ep.q;
        send_once(&q.ring(), self.ep.index as u64, |pos| {
            let i = pos & (q.capacity - 1);
            let slot = q.slots.header(i);
            match staged {
                None => {
                    // SAFETY: we hold the write claim of this slot; msg fits (checked in
                    // stage).
                    unsafe { q.slots.write(i, msg) };
                    slot.meta
                        .store(msg.len() as u64 | (KIND_INLINE << 32), Relaxed);
                }
                Some(s) => {
                    slot.heap.store(s.off, Relaxed);
                    slot.meta.store(s.len | (KIND_HEAP << 32), Relaxed);
                    // SAFETY: our own staged allocation, resolved and aligned in stage().
                    let h = unsafe { s.header.as_ref() };
                    // The slot is still claimed for writing: if we die before publishing,
                    // the reaper skips it and reclaim frees the block (no slot refers to it).
                    h.owner.store(queued(pos), Release);
                    kill_point();
                }
            }
        })
    }
}

/// The receiving endpoint of a [`Queue`], for messages of type `T`.
pub struct Receiver<T> {
    ep: Endpoint,
    _t: PhantomData<fn() -> T>,
}

impl<T> core::fmt::Debug for Receiver<T> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Receiver")
            .field("queue", &self.ep.q.offset)
            .field("endpoint", &self.ep.index)
            .finish()
    }
}

impl<T: bytemuck::Pod> Receiver<T> {
    /// Receives a message if one is ready: `Empty` (or `Disconnected`) otherwise.
    pub fn try_recv(&self) -> Result<T, CollectionError> {
        Self::decode(self.try_recv_bytes()?)
    }

    /// Receives a message, waiting while the queue is empty.
    pub fn recv(&self) -> Result<T, CollectionError> {
        Self::decode(self.recv_bytes_until(None, SPIN_ROUNDS)?)
    }

    /// Receives a message, waiting at most `timeout`.
    pub fn recv_timeout(&self, timeout: Duration) -> Result<T, CollectionError> {
        Self::decode(self.recv_bytes_until(Some(timeout), SPIN_ROUNDS)?)
    }

    fn decode(m: Message) -> Result<T, CollectionError> {
        bytemuck::try_pod_read_unaligned(&m).map_err(|_| CollectionError::WrongSize {
            got: m.len() as u64,
            expected: size_of::<T>() as u64,
        })
    }
}

impl<T> Receiver<T> {
    /// The queue this endpoint receives from.
    pub(crate) fn queue(&self) -> &RawQueue {
        &self.ep.q
    }

    /// The offset of the queue this endpoint receives from.
    pub fn queue_offset(&self) -> u64 {
        self.ep.q.offset
    }

    /// Receives a byte message without blocking.
    pub fn try_recv_bytes(&self) -> Result<Message, CollectionError> {
        match self.attempt()? {
            Some(m) => Ok(m),
            None => Err(CollectionError::Empty),
        }
    }

    /// Receives a byte message, waiting while the queue is empty (at most `timeout`).
    pub fn recv_bytes(&self, timeout: Option<Duration>) -> Result<Message, CollectionError> {
        self.recv_bytes_until(timeout, SPIN_ROUNDS)
    }

    /// Like [`recv_bytes`](Self::recv_bytes) with a choice of how many attempts spin
    /// before sleeping (`u32::MAX`: poll, never sleep until the deadline).
    pub fn recv_bytes_spin(
        &self,
        timeout: Option<Duration>,
        spin: u32,
    ) -> Result<Message, CollectionError> {
        self.recv_bytes_until(timeout, spin)
    }

    fn recv_bytes_until(
        &self,
        timeout: Option<Duration>,
        spin: u32,
    ) -> Result<Message, CollectionError> {
        self.ep.q.ctl().recv_event().block_on(
            &self.ep.slot().sleeping,
            timeout,
            spin,
            || self.attempt(),
            || {
                let _ = self.ep.q.reap_dead();
            },
        )
    }

    /// Receives a message and runs `f` on its bytes in place (no copy for inline
    /// messages: `f` reads the slot while this receiver holds it), waiting at most
    /// `timeout`; `spin` attempts spin before sleeping (`u32::MAX`: poll).
    pub fn recv_with<R>(
        &self,
        timeout: Option<Duration>,
        spin: u32,
        f: impl FnOnce(&[u8]) -> R,
    ) -> Result<R, CollectionError> {
        let mut f = Some(f);
        self.ep.q.ctl().recv_event().block_on(
            &self.ep.slot().sleeping,
            timeout,
            spin,
            || self.attempt_with(&mut f),
            || {
                let _ = self.ep.q.reap_dead();
            },
        )
    }

    fn attempt_with<R, F: FnOnce(&[u8]) -> R>(
        &self,
        f: &mut Option<F>,
    ) -> Result<Option<R>, CollectionError> {
        let q = &self.ep.q;
        recv_once(&q.ring(), self.ep.index as u64, |pos| {
            let i = pos & (q.capacity - 1);
            let slot = q.slots.header(i);
            let meta = slot.meta.load(Relaxed);
            let (len, kind) = (meta & 0xffff_ffff, meta >> 32);
            let f = f
                .take()
                .ok_or_else(|| crate::error::corrupt("receive callback used twice"))?;
            match kind {
                KIND_INLINE if len <= u64::from(q.slot_size) => {
                    // SAFETY: we hold the read claim until recv_once frees the slot after
                    // this closure; len fits the slot (checked).
                    Ok(f(unsafe { q.slots.payload(i, len as usize) }))
                }
                KIND_HEAP => Ok(f(&self.take_large(slot.heap.load(Relaxed), len, pos)?)),
                _ => Err(crate::error::corrupt(format!(
                    "slot {i} has payload kind {kind} and length {len}"
                ))),
            }
        })
    }

    /// One receive attempt: `Some` message, `None` if empty.
    fn attempt(&self) -> Result<Option<Message>, CollectionError> {
        let q = &self.ep.q;
        recv_once(&q.ring(), self.ep.index as u64, |pos| {
            let i = pos & (q.capacity - 1);
            let slot = q.slots.header(i);
            let meta = slot.meta.load(Relaxed);
            let (len, kind) = (meta & 0xffff_ffff, meta >> 32);
            match kind {
                KIND_INLINE if len <= u64::from(q.slot_size) => {
                    let mut buf = vec![0u8; len as usize];
                    // SAFETY: we hold the read claim; len fits the slot (checked).
                    unsafe { q.slots.read(i, &mut buf) };
                    Ok(Message::Inline(buf))
                }
                KIND_HEAP => self.take_large(slot.heap.load(Relaxed), len, pos),
                _ => Err(crate::error::corrupt(format!(
                    "slot {i} has payload kind {kind} and length {len}"
                ))),
            }
        })
    }

    fn take_large(&self, off: u64, len: u64, pos: u64) -> Result<Message, CollectionError> {
        let q = &self.ep.q;
        let bad = |what: &str| crate::error::corrupt(format!("large message at {off:#x}: {what}"));
        let total = LARGE_HEADER
            .checked_add(len)
            .ok_or_else(|| bad("length overflows"))?;
        let p = q.seg.region().resolve(off, total, 64)?;
        // SAFETY: resolved in bounds and aligned; header fields are atomics.
        let h = unsafe { p.cast::<LargeHeader>().as_ref() };
        if h.magic.load(Acquire) != LARGE_MAGIC
            || h.len.load(Relaxed) != len
            || h.ident.load(Relaxed) != ident(q.offset)
        {
            return Err(bad("header does not match the slot"));
        }
        kill_point();
        if h.owner
            .compare_exchange(queued(pos), own_process_owner(), AcqRel, Relaxed)
            .is_err()
        {
            return Err(bad("not queued at this position (reclaimed or corrupted)"));
        }
        Ok(Message::Large {
            seg: q.seg.clone(),
            off,
            // SAFETY: payload resolved above (total bytes from off), owned by us now.
            data: unsafe { NonNull::new_unchecked(p.as_ptr().add(LARGE_HEADER as usize)) },
            len: len as usize,
        })
    }
}

/// A received byte message: a copy of an inline message, or a large message read in
/// place in the segment (zero copy), freed when this is dropped.
pub enum Message {
    /// Copied out of the slot.
    Inline(Vec<u8>),
    /// In the segment's heap; owned by this process until dropped.
    Large {
        /// The segment to free it in (kept mapped while the message lives).
        seg: Segment,
        /// The allocation's offset.
        off: u64,
        /// The payload in this mapping.
        data: NonNull<u8>,
        /// Payload bytes.
        len: usize,
    },
}

// SAFETY: a Large message is owned by this process (state RECEIVER) and its bytes are no
// longer written by anyone; Inline is a Vec.
unsafe impl Send for Message {}
// SAFETY: as above; &Message only reads.
unsafe impl Sync for Message {}

impl core::fmt::Debug for Message {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Message::Inline(v) => write!(f, "Message::Inline({} bytes)", v.len()),
            Message::Large { off, len, .. } => write!(f, "Message::Large({len} bytes at {off:#x})"),
        }
    }
}

impl core::ops::Deref for Message {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            Message::Inline(v) => v,
            // SAFETY: the payload lies in the mapping (resolved when taken) and this
            // process owns it until drop; nobody writes it after it was queued.
            Message::Large { data, len, .. } => unsafe {
                core::slice::from_raw_parts(data.as_ptr(), *len)
            },
        }
    }
}

impl Drop for Message {
    fn drop(&mut self) {
        if let Message::Large { seg, off, .. } = self {
            // Owned by this process: the free drops the owner record with the block, and a
            // death before it leaves a dead owner that reclaim frees.
            let _ = seg.free(*off);
        }
    }
}
