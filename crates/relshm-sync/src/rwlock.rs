//! A robust, process-shared readers-writer lock with writer preference.
//!
//! # Algorithm
//!
//! - A writer takes the `writer` [`RawMutex`], raises `writer_flag`, then sweeps the reader
//!   slots (each a robust [`RawMutex`]): a slot held by a reader it waits for (takes it and
//!   gives it back at once); a free slot it only reads. It then holds the `writer` mutex
//!   alone while writing.
//! - A reader takes one free slot with `try_lock` (starting at a slot picked from its thread
//!   id), then checks `writer_flag`: if a writer holds or wants the lock, it gives the slot
//!   back and queues on the `writer` mutex instead (writer preference: a stream of readers
//!   cannot starve a writer, because new readers stop entering once the flag is up and the
//!   writer waits only for the readers already inside). A reader that gets the `writer`
//!   mutex takes a slot while holding it and releases it at once.
//! - The flag and the slots form a Dekker pair: the writer stores the flag then reads each
//!   slot, a reader locks its slot then reads the flag, with a sequentially consistent
//!   fence between on both sides, so at least one of them sees the other.
//!
//! Why the sweep only reads free slots: the writer's cost is then one robust acquisition
//! plus 16 loads that the CPU overlaps, where taking all 16 slots was 17 serialised atomic
//! read-modify-writes on 17 cache lines, each one a cross-core transfer when another
//! process wrote last. For a map stripe updated alternately by two processes that was most
//! of the update's cost.
//! - Slots are robust mutexes, so the kernel marks a dead reader's slot `OWNER_DIED` and
//!   wakes the writer waiting for it: reader death is recovered transparently (readers do
//!   not modify the data, so nothing needs repair).
//! - A dead writer leaves the `writer` mutex `OWNER_DIED` (and the flag up). Whoever next
//!   takes the `writer` mutex -- a writer, or a reader queueing behind the flag -- completes
//!   the write acquisition and gets `OwnerDied` with *write* access, to repair the data.
//!   Released without `make_consistent`, the lock becomes permanently not recoverable for
//!   readers and writers.

use crate::sync::Instant;
use core::time::Duration;

use crate::error::LockError;
use crate::raw_mutex::{Acquired, RawMutex};
use crate::sync::{self, AtomicU32, Ordering};

/// Number of reader slots: at most this many readers hold the lock at once (more wait).
#[cfg(not(loom))]
pub const READER_SLOTS: usize = 16;
/// Number of reader slots (small in the loom model to keep it tractable).
#[cfg(loom)]
pub const READER_SLOTS: usize = 2;

/// One reader slot: a robust mutex padded to a cache line.
#[repr(C)]
struct Slot {
    lock: RawMutex,
    _pad: [u64; 3],
}

/// How a shared acquisition ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use = "a read lock must be released with the slot it returned"]
pub enum ReadAcquired {
    /// Read access, holding reader slot `.0` (pass it to `unlock_shared`).
    Read(u32),
    /// A writer died holding the lock: you now hold it *exclusively* and must repair the
    /// data, `make_consistent`, and release it with `unlock_exclusive`.
    WriteOwnerDied,
}

/// A robust readers-writer lock for shared memory.
///
/// # Layout (1088 bytes, 8-aligned, `#[repr(C)]`; all-zero bytes = unlocked, consistent)
///
/// | offset | type | field |
/// |---|---|---|
/// | 0 | [`RawMutex`] (40 bytes) | `writer`: held by the active or next writer |
/// | 40 | `u32` | `writer_flag`: non-zero while a writer holds or wants the lock |
/// | 44 | `[u32; 5]` | reserved, zero |
/// | 64 | `[{RawMutex, [u64; 3]}; 16]` | reader slots, 64 bytes each |
#[repr(C)]
pub struct RawRwLock {
    writer: RawMutex,
    writer_flag: AtomicU32,
    reserved: [u32; 5],
    slots: [Slot; READER_SLOTS],
}

#[cfg(not(loom))]
const _: () = {
    assert!(core::mem::size_of::<RawRwLock>() == 64 + 64 * READER_SLOTS);
    assert!(core::mem::offset_of!(RawRwLock, slots) == 64);
};

impl Default for RawRwLock {
    fn default() -> Self {
        Self::new()
    }
}

impl core::fmt::Debug for RawRwLock {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("RawRwLock")
            .field("writer", &self.writer)
            .field("writer_flag", &self.writer_flag.load(Ordering::Relaxed))
            .field("readers", &self.readers())
            .finish()
    }
}

fn deadline_of(d: Duration) -> Option<Instant> {
    Instant::now().checked_add(d)
}

/// How long to wait: `None` = forever; `Some(Err)` = do not block at all.
#[derive(Clone, Copy)]
enum Wait {
    No,
    Until(Option<Instant>),
}

impl Wait {
    fn acquire(self, m: &RawMutex) -> Result<Acquired, LockError> {
        match self {
            Wait::No => m.try_lock(),
            Wait::Until(None) => m.lock(),
            Wait::Until(Some(d)) => m.lock_timeout(d.saturating_duration_since(Instant::now())),
        }
    }
}

impl RawRwLock {
    /// An unlocked, consistent lock.
    #[cfg(not(loom))]
    pub const fn new() -> Self {
        Self {
            writer: RawMutex::new(),
            writer_flag: AtomicU32::new(0),
            reserved: [0; 5],
            slots: [const {
                Slot {
                    lock: RawMutex::new(),
                    _pad: [0; 3],
                }
            }; READER_SLOTS],
        }
    }

    /// An unlocked, consistent lock.
    #[cfg(loom)]
    pub fn new() -> Self {
        Self {
            writer: RawMutex::new(),
            writer_flag: AtomicU32::new(0),
            reserved: [0; 5],
            slots: core::array::from_fn(|_| Slot {
                lock: RawMutex::new(),
                _pad: [0; 3],
            }),
        }
    }

    /// Number of reader slots held right now (racy).
    pub fn readers(&self) -> usize {
        self.slots.iter().filter(|s| s.lock.is_locked()).count()
    }

    /// The writer mutex (for inspection: owner, owner-died, not-recoverable).
    pub fn writer(&self) -> &RawMutex {
        &self.writer
    }

    /// Whether the lock is permanently unusable.
    pub fn is_not_recoverable(&self) -> bool {
        self.writer.is_not_recoverable()
    }

    // ----- shared -----

    /// Blocks until read access (or, after a writer's death, exclusive access) is granted.
    pub fn lock_shared(&self) -> Result<ReadAcquired, LockError> {
        self.shared(Wait::Until(None))
    }

    /// Read access if no writer holds or wants the lock and a slot is free.
    pub fn try_lock_shared(&self) -> Result<ReadAcquired, LockError> {
        self.shared(Wait::No)
    }

    /// Like [`lock_shared`](Self::lock_shared), giving up with `Err(TimedOut)` after `d`.
    pub fn lock_shared_timeout(&self, d: Duration) -> Result<ReadAcquired, LockError> {
        self.shared(Wait::Until(deadline_of(d)))
    }

    fn first_slot() -> usize {
        sync::current_tid() as usize % READER_SLOTS
    }

    fn shared(&self, wait: Wait) -> Result<ReadAcquired, LockError> {
        if self.writer_flag.load(Ordering::SeqCst) == 0 {
            let start = Self::first_slot();
            for k in 0..READER_SLOTS {
                let i = (start + k) % READER_SLOTS;
                let slot = &self.slots[i].lock;
                match slot.try_lock() {
                    Ok(a) => {
                        if a == Acquired::OwnerDied {
                            // A reader (or a writer, whose flag we check next) died
                            // holding it; slots guard nothing themselves.
                            // SAFETY: we hold the slot.
                            unsafe { slot.make_consistent() };
                        }
                        // Pairs with the fence in `finish_exclusive` (the module docs' Dekker
                        // pair): the slot is locked before the flag is read.
                        sync::fence(Ordering::SeqCst);
                        if self.writer_flag.load(Ordering::SeqCst) == 0 {
                            return Ok(ReadAcquired::Read(i as u32));
                        }
                        // SAFETY: we hold the slot; a writer wants in: let it.
                        unsafe { slot.unlock() };
                        break;
                    }
                    Err(_) => continue,
                }
            }
        }
        // A writer holds or wants the lock, or every slot is busy: queue on the writer.
        match wait.acquire(&self.writer)? {
            Acquired::Clean => {
                let r = self.slot_while_holding_writer(wait);
                // SAFETY: we hold the writer mutex, taken just above on this thread.
                unsafe { self.writer.unlock() };
                r.map(|i| ReadAcquired::Read(i as u32))
            }
            Acquired::OwnerDied => {
                self.finish_exclusive(Acquired::OwnerDied, wait)?;
                Ok(ReadAcquired::WriteOwnerDied)
            }
        }
    }

    /// With the writer mutex held (so no writer holds any slot), takes a free slot, or
    /// waits for the one picked by thread id.
    fn slot_while_holding_writer(&self, wait: Wait) -> Result<usize, LockError> {
        let start = Self::first_slot();
        for k in 0..READER_SLOTS {
            let i = (start + k) % READER_SLOTS;
            if let Ok(a) = self.slots[i].lock.try_lock() {
                if a == Acquired::OwnerDied {
                    // SAFETY: we hold the slot.
                    unsafe { self.slots[i].lock.make_consistent() };
                }
                return Ok(i);
            }
        }
        let slot = &self.slots[start].lock;
        if wait.acquire(slot)? == Acquired::OwnerDied {
            // SAFETY: we hold the slot.
            unsafe { slot.make_consistent() };
        }
        Ok(start)
    }

    /// Releases read access taken through slot `slot`.
    ///
    /// # Safety
    /// The calling thread holds read access through `slot` (from `ReadAcquired::Read`).
    pub unsafe fn unlock_shared(&self, slot: u32) {
        // SAFETY: the caller holds this slot.
        unsafe { self.slots[slot as usize % READER_SLOTS].lock.unlock() }
    }

    /// Releases one read access held by the calling thread, finding its slot (for callers
    /// that cannot keep the slot number, such as `lock_api`). Returns `false` if the thread
    /// holds no slot.
    ///
    /// # Safety
    /// The calling thread holds read access to this lock.
    pub unsafe fn unlock_shared_any(&self) -> bool {
        let start = Self::first_slot();
        for k in 0..READER_SLOTS {
            let s = &self.slots[(start + k) % READER_SLOTS].lock;
            if s.is_locked_by_current_thread() {
                // SAFETY: this thread holds the slot.
                unsafe { s.unlock() };
                return true;
            }
        }
        false
    }

    // ----- exclusive -----

    /// Blocks until exclusive access. `Ok(OwnerDied)`: a writer died holding it; repair,
    /// then [`make_consistent`](Self::make_consistent).
    pub fn lock_exclusive(&self) -> Result<Acquired, LockError> {
        self.exclusive(Wait::Until(None))
    }

    /// Exclusive access if nobody holds the lock.
    pub fn try_lock_exclusive(&self) -> Result<Acquired, LockError> {
        self.exclusive(Wait::No)
    }

    /// Like [`lock_exclusive`](Self::lock_exclusive), with a timeout.
    pub fn lock_exclusive_timeout(&self, d: Duration) -> Result<Acquired, LockError> {
        self.exclusive(Wait::Until(deadline_of(d)))
    }

    fn exclusive(&self, wait: Wait) -> Result<Acquired, LockError> {
        let a = wait.acquire(&self.writer)?;
        self.finish_exclusive(a, wait)?;
        Ok(a)
    }

    /// With the writer mutex held (acquired as `a`), raises the flag and waits until no
    /// reader holds a slot. On failure gives the writer mutex back, leaving a dead writer's
    /// mark in place.
    fn finish_exclusive(&self, a: Acquired, wait: Wait) -> Result<(), LockError> {
        self.writer_flag.store(1, Ordering::SeqCst);
        // Pairs with the reader's fence in `shared`: the flag is up before any slot is read.
        sync::fence(Ordering::SeqCst);
        for slot in &self.slots {
            let slot = &slot.lock;
            // An acquire read: a reader's release of its slot happens before our writes.
            if !slot.is_held_acquire() {
                continue;
            }
            match wait.acquire(slot) {
                Ok(acquired) => {
                    if acquired == Acquired::OwnerDied {
                        // A reader died inside: nothing to repair in a slot.
                        // SAFETY: we hold the slot.
                        unsafe { slot.make_consistent() };
                    }
                    // SAFETY: taken just above on this thread; new readers see the flag.
                    unsafe { slot.unlock() };
                }
                Err(e) => {
                    if a == Acquired::OwnerDied {
                        // SAFETY: we hold the writer mutex; hand the death mark on.
                        unsafe { self.writer.unlock_still_owner_died() };
                    } else {
                        self.writer_flag.store(0, Ordering::SeqCst);
                        // SAFETY: we hold the writer mutex.
                        unsafe { self.writer.unlock() };
                    }
                    return Err(e);
                }
            }
        }
        Ok(())
    }

    /// Releases exclusive access taken with `OwnerDied` without repairing, keeping the
    /// writer's death mark (and the flag) for the next locker (for checkers that cannot
    /// repair what they found).
    ///
    /// # Safety
    /// The calling thread holds exclusive access.
    #[cfg_attr(loom, allow(dead_code))]
    pub unsafe fn give_back_owner_died(&self) {
        // SAFETY: exclusive access holds the writer mutex.
        unsafe { self.writer.unlock_still_owner_died() };
    }

    /// Marks the data repaired after a writer's death.
    ///
    /// # Safety
    /// The calling thread holds exclusive access.
    pub unsafe fn make_consistent(&self) {
        // SAFETY: exclusive access includes the writer mutex.
        unsafe { self.writer.make_consistent() }
    }

    /// Releases exclusive access. If still inconsistent after a writer's death, the lock
    /// becomes permanently not recoverable for readers and writers.
    ///
    /// # Safety
    /// The calling thread holds exclusive access.
    pub unsafe fn unlock_exclusive(&self) {
        if !self.writer.is_owner_died() {
            // Left up when not recoverable, so that readers queue on the writer mutex and
            // learn it.
            self.writer_flag.store(0, Ordering::SeqCst);
        }
        // SAFETY: exclusive access holds the writer mutex.
        unsafe { self.writer.unlock() };
    }
}

/// A robust, process-shared readers-writer lock protecting a `T` (writer preference).
///
/// Layout: `#[repr(C)]`, the 1088-byte [`RawRwLock`] at offset 0, then `T`.
///
/// `read` can return `Err(OwnerDied(write_guard))`: a writer died holding the lock and you
/// now hold it *exclusively*, to repair the data and `make_consistent()`.
///
/// ```
/// use relshm_sync::RwLock;
/// let l = RwLock::new(5u32);
/// {
///     let a = l.read().unwrap();
///     let b = l.read().unwrap();
///     assert_eq!(*a + *b, 10);
/// }
/// *l.write().unwrap() += 1;
/// assert_eq!(*l.read().unwrap(), 6);
/// ```
#[repr(C)]
pub struct RwLock<T> {
    raw: RawRwLock,
    data: UnsafeCell<T>,
}

use crate::error::MutexError;
use crate::held::Held;
use core::cell::UnsafeCell;
use core::ops::{Deref, DerefMut};

// SAFETY: readers share &T across threads (T: Sync) and a writer may be on any thread
// (T: Send), as for std's RwLock.
unsafe impl<T: Send + Sync> Sync for RwLock<T> {}
// SAFETY: moving the lock moves the T; no guard can exist while it moves.
unsafe impl<T: Send> Send for RwLock<T> {}

impl<T> core::fmt::Debug for RwLock<T> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("RwLock")
            .field("raw", &self.raw)
            .finish_non_exhaustive()
    }
}

impl<T: Default> Default for RwLock<T> {
    fn default() -> Self {
        Self::new(T::default())
    }
}

/// Read access to a [`RwLock`]; released on drop. Not `Send` (robust-list ownership).
#[must_use = "dropping the guard releases the lock at once"]
pub struct RwLockReadGuard<'a, T> {
    lock: &'a RwLock<T>,
    // Read access, or exclusive access when made by `read_or_repair` after a writer died.
    _held: Held<'a>,
}

/// Write access to a [`RwLock`]; released on drop. Not `Send` (robust-list ownership).
#[must_use = "dropping the guard releases the lock at once"]
pub struct RwLockWriteGuard<'a, T> {
    lock: &'a RwLock<T>,
    held: Held<'a>,
}

/// Result of a read lock: `OwnerDied` carries a *write* guard.
pub type ReadResult<'a, T> = Result<RwLockReadGuard<'a, T>, MutexError<RwLockWriteGuard<'a, T>>>;
/// Result of a write lock.
pub type WriteResult<'a, T> = Result<RwLockWriteGuard<'a, T>, MutexError<RwLockWriteGuard<'a, T>>>;

impl<T> RwLock<T> {
    /// An unlocked, consistent lock holding `value`.
    #[cfg(not(loom))]
    pub const fn new(value: T) -> Self {
        Self {
            raw: RawRwLock::new(),
            data: UnsafeCell::new(value),
        }
    }

    /// An unlocked, consistent lock holding `value`.
    #[cfg(loom)]
    pub fn new(value: T) -> Self {
        Self {
            raw: RawRwLock::new(),
            data: UnsafeCell::new(value),
        }
    }

    /// The raw lock.
    pub fn raw(&self) -> &RawRwLock {
        &self.raw
    }

    /// # Safety
    /// This thread holds exclusive access to `self.raw`.
    unsafe fn wguard(&self) -> RwLockWriteGuard<'_, T> {
        RwLockWriteGuard {
            lock: self,
            // SAFETY: per this function's contract.
            held: unsafe { Held::adopt_exclusive(&self.raw) },
        }
    }

    fn read_result(&self, r: Result<ReadAcquired, LockError>) -> ReadResult<'_, T> {
        match r {
            Ok(ReadAcquired::Read(slot)) => Ok(RwLockReadGuard {
                lock: self,
                // SAFETY: `r` is the result of a shared acquisition on this thread.
                _held: unsafe { Held::adopt_shared(&self.raw, slot) },
            }),
            Ok(ReadAcquired::WriteOwnerDied) => {
                // SAFETY: a shared acquisition that found a dead writer holds exclusive
                // access.
                Err(MutexError::OwnerDied(unsafe { self.wguard() }))
            }
            Err(e) => Err(e.into()),
        }
    }

    fn write_result(&self, r: Result<Acquired, LockError>) -> WriteResult<'_, T> {
        match r {
            // SAFETY: `r` is the result of an exclusive acquisition on this thread.
            Ok(Acquired::Clean) => Ok(unsafe { self.wguard() }),
            // SAFETY: as above.
            Ok(Acquired::OwnerDied) => Err(MutexError::OwnerDied(unsafe { self.wguard() })),
            Err(e) => Err(e.into()),
        }
    }

    /// Blocks until read access.
    pub fn read(&self) -> ReadResult<'_, T> {
        self.read_result(self.raw.lock_shared())
    }

    /// Read access if available now, else `Err(WouldBlock)`.
    pub fn try_read(&self) -> ReadResult<'_, T> {
        self.read_result(self.raw.try_lock_shared())
    }

    /// Read access within `d`, else `Err(TimedOut)`.
    pub fn read_timeout(&self, d: Duration) -> ReadResult<'_, T> {
        self.read_result(self.raw.lock_shared_timeout(d))
    }

    /// Blocks until write access.
    pub fn write(&self) -> WriteResult<'_, T> {
        self.write_result(self.raw.lock_exclusive())
    }

    /// Write access if nobody holds the lock, else `Err(WouldBlock)`.
    pub fn try_write(&self) -> WriteResult<'_, T> {
        self.write_result(self.raw.try_lock_exclusive())
    }

    /// Write access within `d`, else `Err(TimedOut)`.
    pub fn write_timeout(&self, d: Duration) -> WriteResult<'_, T> {
        self.write_result(self.raw.lock_exclusive_timeout(d))
    }

    /// Blocks until read access. If a writer died holding the lock, this thread gets it
    /// exclusively instead, runs `repair` on the data, makes the lock consistent, and the
    /// returned guard holds the lock exclusively until dropped. If `repair` fails, the lock
    /// is released unrepaired (permanently not recoverable) and its error returned.
    pub fn read_or_repair<E: From<LockError>>(
        &self,
        repair: impl FnOnce(&mut T) -> Result<(), E>,
    ) -> Result<RwLockReadGuard<'_, T>, E> {
        self.read_or_repair_within(None, repair)
    }

    /// Like [`read_or_repair`](Self::read_or_repair), giving up with
    /// [`LockError::TimedOut`] after `d`.
    pub fn read_or_repair_timeout<E: From<LockError>>(
        &self,
        d: Duration,
        repair: impl FnOnce(&mut T) -> Result<(), E>,
    ) -> Result<RwLockReadGuard<'_, T>, E> {
        self.read_or_repair_within(Some(d), repair)
    }

    /// Blocks until write access, repairing first if a writer died holding the lock (as
    /// for [`Mutex::lock_or_repair`](crate::Mutex::lock_or_repair)).
    pub fn write_or_repair<E: From<LockError>>(
        &self,
        repair: impl FnOnce(&mut T) -> Result<(), E>,
    ) -> Result<RwLockWriteGuard<'_, T>, E> {
        self.write_or_repair_within(None, repair)
    }

    /// Like [`write_or_repair`](Self::write_or_repair), giving up with
    /// [`LockError::TimedOut`] after `d`.
    pub fn write_or_repair_timeout<E: From<LockError>>(
        &self,
        d: Duration,
        repair: impl FnOnce(&mut T) -> Result<(), E>,
    ) -> Result<RwLockWriteGuard<'_, T>, E> {
        self.write_or_repair_within(Some(d), repair)
    }

    /// `repair` on the data, for `Held`'s repair step.
    fn repair_with<'s, E>(
        &'s self,
        repair: impl FnOnce(&mut T) -> Result<(), E> + 's,
    ) -> impl FnOnce() -> Result<(), E> + 's {
        move || {
            // SAFETY: Held runs the repair only while this thread holds the lock
            // exclusively, so no other reference to the data is live.
            repair(unsafe { &mut *self.data.get() })
        }
    }

    fn read_or_repair_within<E: From<LockError>>(
        &self,
        timeout: Option<Duration>,
        repair: impl FnOnce(&mut T) -> Result<(), E>,
    ) -> Result<RwLockReadGuard<'_, T>, E> {
        let held = Held::shared(&self.raw, timeout, self.repair_with(repair))?;
        Ok(RwLockReadGuard {
            lock: self,
            _held: held,
        })
    }

    fn write_or_repair_within<E: From<LockError>>(
        &self,
        timeout: Option<Duration>,
        repair: impl FnOnce(&mut T) -> Result<(), E>,
    ) -> Result<RwLockWriteGuard<'_, T>, E> {
        let held = Held::exclusive(&self.raw, timeout, self.repair_with(repair))?;
        Ok(RwLockWriteGuard { lock: self, held })
    }

    /// Mutable access without locking.
    pub fn get_mut(&mut self) -> &mut T {
        self.data.get_mut()
    }
}

impl<T> RwLockWriteGuard<'_, T> {
    /// Declares the data repaired after `OwnerDied`; a no-op otherwise.
    pub fn make_consistent(&mut self) {
        self.held.make_consistent();
    }
}

impl<T> Deref for RwLockReadGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: read access: no writer holds the lock while this guard lives.
        unsafe { &*self.lock.data.get() }
    }
}

impl<T> Deref for RwLockWriteGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: exclusive access.
        unsafe { &*self.lock.data.get() }
    }
}

impl<T> DerefMut for RwLockWriteGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: exclusive access, and &mut self makes this the only reference.
        unsafe { &mut *self.lock.data.get() }
    }
}
