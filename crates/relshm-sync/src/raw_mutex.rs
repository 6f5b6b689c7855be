//! The robust, process-shared raw mutex.

use crate::sync::Instant;
use core::sync::atomic::AtomicU64;
use core::time::Duration;

use crate::error::LockError;
use crate::sync::{self, AtomicU32, Links, Ordering, Wake};

/// Bits of the lock word holding the owner's thread id (the kernel's `FUTEX_TID_MASK`).
pub const TID_MASK: u32 = 0x3fff_ffff;
/// Set while someone may sleep on the word (the kernel's `FUTEX_WAITERS`).
pub const WAITERS: u32 = 0x8000_0000;
/// Set by the kernel when the owner died; kept until `make_consistent` (`FUTEX_OWNER_DIED`).
pub const OWNER_DIED: u32 = 0x4000_0000;
/// The id part of a not-recoverable lock: all ones, which is never a real thread id
/// (Linux ids are at most 2^22).
pub const NOT_RECOVERABLE: u32 = TID_MASK;

/// Busy-wait rounds (of 1, 2, 4 ... pause hints) before sleeping in the kernel.
const SPIN_ROUNDS: u32 = if cfg!(loom) { 1 } else { 7 };

/// How a lock was acquired.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use = "OwnerDied means the protected data may need repair"]
pub enum Acquired {
    /// Normally.
    Clean,
    /// You hold the lock, but its previous owner died holding it. The lock stays
    /// inconsistent until [`RawMutex::make_consistent`]; unlocking it before that makes it
    /// permanently not recoverable.
    OwnerDied,
}

/// A robust mutex for shared memory: one lock word in the kernel's robust-futex format and
/// a node that links the lock into its owner thread's kernel robust list.
///
/// # Layout (40 bytes, 8-aligned, `#[repr(C)]`; all-zero bytes = unlocked and consistent)
///
/// | offset | type | field |
/// |---|---|---|
/// | 0 | `u32` | lock word: owner tid (bits 0..30) \| [`OWNER_DIED`] \| [`WAITERS`] |
/// | 4 | `[u32; 5]` | reserved, zero |
/// | 24 | `u64` | `prev`: owner-process-local robust-list link |
/// | 32 | `u64` | `next`: owner-process-local robust-list link (the list node) |
///
/// The links are meaningful only to the owning thread and its kernel; other processes
/// never read them. Any bit pattern of the lock word is a state (a garbage tid looks like a
/// lock held by a thread that may never release it: use [`lock_timeout`](Self::lock_timeout)
/// on segments you do not trust).
#[repr(C)]
pub struct RawMutex {
    word: AtomicU32,
    reserved: [u32; 5],
    prev: AtomicU64,
    next: AtomicU64,
}

#[cfg(not(loom))]
const _: () = {
    assert!(core::mem::size_of::<RawMutex>() == 40);
    assert!(core::mem::align_of::<RawMutex>() == 8);
    assert!(core::mem::offset_of!(RawMutex, next) as isize + crate::robust::FUTEX_OFFSET == 0);
};

impl Default for RawMutex {
    fn default() -> Self {
        Self::new()
    }
}

impl core::fmt::Debug for RawMutex {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let w = self.word.load(Ordering::Relaxed);
        f.debug_struct("RawMutex")
            .field("owner", &self.owner())
            .field("owner_died", &(w & OWNER_DIED != 0))
            .field("waiters", &(w & WAITERS != 0))
            .field("not_recoverable", &self.is_not_recoverable())
            .finish()
    }
}

impl RawMutex {
    /// An unlocked, consistent mutex (all-zero bytes).
    #[cfg(not(loom))]
    pub const fn new() -> Self {
        Self {
            word: AtomicU32::new(0),
            reserved: [0; 5],
            prev: AtomicU64::new(0),
            next: AtomicU64::new(0),
        }
    }

    /// An unlocked, consistent mutex (loom atomics are not const-constructible).
    #[cfg(loom)]
    pub fn new() -> Self {
        Self {
            word: AtomicU32::new(0),
            reserved: [0; 5],
            prev: AtomicU64::new(0),
            next: AtomicU64::new(0),
        }
    }

    #[inline]
    fn links(&self) -> Links<'_> {
        Links {
            word: &self.word,
            prev: &self.prev,
            next: &self.next,
        }
    }

    /// Blocks until the lock is acquired.
    ///
    /// `Ok(Acquired::OwnerDied)` means you hold it but must repair the data and call
    /// [`make_consistent`](Self::make_consistent). The lock must be released with
    /// [`unlock`](Self::unlock) on the same thread.
    #[inline]
    pub fn lock(&self) -> Result<Acquired, LockError> {
        self.acquire(None, true)
    }

    /// Acquires the lock if it is free, else `Err(WouldBlock)`.
    #[inline]
    pub fn try_lock(&self) -> Result<Acquired, LockError> {
        self.acquire(None, false)
    }

    /// Like [`lock`](Self::lock), but gives up with `Err(TimedOut)` after `d`.
    pub fn lock_timeout(&self, d: Duration) -> Result<Acquired, LockError> {
        // An unrepresentable deadline means "forever".
        self.acquire(Some(Instant::now().checked_add(d)), true)
    }

    #[inline]
    fn acquire(
        &self,
        deadline: Option<Option<Instant>>,
        block: bool,
    ) -> Result<Acquired, LockError> {
        let tid = sync::current_tid();
        let links = self.links();
        let h = sync::op_begin(&links);
        let r = match self
            .word
            .compare_exchange(0, tid, Ordering::Acquire, Ordering::Relaxed)
        {
            Ok(_) => Ok(Acquired::Clean),
            Err(_) if !block => self.try_acquire(tid, 0),
            Err(_) => self.lock_slow(tid, deadline.flatten()),
        };
        if r.is_ok() {
            sync::enqueue(h, &links);
        }
        sync::op_end(h);
        r
    }

    /// One attempt: takes a free word (keeping `OWNER_DIED` and `WAITERS`, adding `extra`).
    fn try_acquire(&self, tid: u32, extra: u32) -> Result<Acquired, LockError> {
        let mut w = self.word.load(Ordering::Relaxed);
        loop {
            match w & TID_MASK {
                NOT_RECOVERABLE => return Err(LockError::NotRecoverable),
                0 => {}
                _ => return Err(LockError::WouldBlock),
            }
            let new = tid | (w & (OWNER_DIED | WAITERS)) | extra;
            match self
                .word
                .compare_exchange_weak(w, new, Ordering::Acquire, Ordering::Relaxed)
            {
                Ok(_) if w & OWNER_DIED != 0 => return Ok(Acquired::OwnerDied),
                Ok(_) => return Ok(Acquired::Clean),
                Err(x) => w = x,
            }
        }
    }

    #[cold]
    fn lock_slow(&self, tid: u32, deadline: Option<Instant>) -> Result<Acquired, LockError> {
        // Exponential backoff: probe the word after 1, 2, 4 ... pause hints, so a waiter
        // does not keep pulling the lock's cache line away from its holder.
        for round in 0..SPIN_ROUNDS {
            match self.try_acquire(tid, 0) {
                Err(LockError::WouldBlock) => {
                    for _ in 0..1u32 << round {
                        sync::spin_hint();
                    }
                }
                r => return r,
            }
        }
        loop {
            // Once we have slept, others may sleep too: take the lock with WAITERS set so
            // our unlock wakes the next one (never a lost wake-up, at worst one extra wake).
            match self.try_acquire(tid, WAITERS) {
                Err(LockError::WouldBlock) => {}
                r => return r,
            }
            let w = self.word.load(Ordering::Relaxed);
            if w & TID_MASK == 0 || w & TID_MASK == NOT_RECOVERABLE {
                continue;
            }
            if w & WAITERS == 0
                && self
                    .word
                    .compare_exchange(w, w | WAITERS, Ordering::Relaxed, Ordering::Relaxed)
                    .is_err()
            {
                continue;
            }
            let timeout = match deadline {
                None => None,
                Some(d) => match d.checked_duration_since(Instant::now()) {
                    Some(left) if !left.is_zero() => Some(left),
                    _ => return Err(LockError::TimedOut),
                },
            };
            if sync::futex_wait(&self.word, w | WAITERS, timeout) == Wake::TimedOut
                && deadline.is_none_or(|d| Instant::now() >= d)
            {
                // One last look: the lock may have been freed right at the deadline.
                return match self.try_acquire(tid, WAITERS) {
                    Err(LockError::WouldBlock) => Err(LockError::TimedOut),
                    r => r,
                };
            }
        }
    }

    /// Releases the lock. If it is still inconsistent (acquired with `OwnerDied` and not
    /// made consistent) it becomes permanently not recoverable and every waiter is woken
    /// to learn so.
    ///
    /// If the calling thread's id is not the one in the lock word (for example a guard
    /// inherited across `fork`: the lock belongs to the parent's thread), this does nothing.
    ///
    /// # Safety
    /// The calling thread must hold the lock (acquired by `lock`/`try_lock`/`lock_timeout`
    /// on this thread and not yet unlocked), and the lock's memory must be the same mapping
    /// it was locked through or another mapping of the same memory in this process.
    #[inline]
    pub unsafe fn unlock(&self) {
        let w = self.word.load(Ordering::Relaxed);
        if w & TID_MASK != sync::current_tid() {
            // Not ours: typically a guard inherited by a forked child, whose lock belongs
            // to the parent's thread (and to the parent's robust list). Touch nothing.
            return;
        }
        let links = self.links();
        let h = sync::op_begin(&links);
        sync::dequeue(h, &links);
        if w & OWNER_DIED != 0 {
            self.word.swap(NOT_RECOVERABLE, Ordering::Release);
            sync::futex_wake(&self.word, i32::MAX as u32);
        } else if w & WAITERS != 0
            || self
                .word
                .compare_exchange(w, 0, Ordering::Release, Ordering::Relaxed)
                .is_err()
        {
            // Someone announced that they sleep (only WAITERS can be added to a held word).
            self.hand_over();
        }
        sync::op_end(h);
    }

    /// The release half of the no-lost-wake-up protocol (see [`docs`](crate::docs),
    /// "Waiters that die"): frees the word but keeps `WAITERS` in it, and wakes one sleeper.
    ///
    /// With `WAITERS` left in the free word, whoever takes the lock next, the woken sleeper
    /// or a barger, owns the duty to wake the next sleeper at its unlock: the duty is never
    /// dropped with a woken waiter that dies before retaking the word. If that waiter dies
    /// while the word is still free, the kernel wakes another sleeper in its place (its
    /// `list_op_pending` names this lock). The bit is cleared only when a wake finds nobody
    /// asleep: then nobody is, since a sleeper only sleeps on a held word and the word is
    /// free from before the wake.
    #[cold]
    fn hand_over(&self) {
        self.word.swap(WAITERS, Ordering::Release);
        if sync::futex_wake(&self.word, 1) == 0 {
            // Fails harmlessly if someone took the word meanwhile: the bit goes with it.
            let _ = self
                .word
                .compare_exchange(WAITERS, 0, Ordering::Relaxed, Ordering::Relaxed);
        }
    }

    /// Releases a lock acquired with `OwnerDied` without repairing it and without making it
    /// not recoverable: it is left marked owner-died, as the kernel leaves it, so the next
    /// locker gets `OwnerDied` (used when a composite lock gives up half-way, and by
    /// checkers that cannot repair what they found).
    ///
    /// # Safety
    /// As for [`unlock`](Self::unlock).
    pub unsafe fn unlock_still_owner_died(&self) {
        let links = self.links();
        let h = sync::op_begin(&links);
        sync::dequeue(h, &links);
        self.word.swap(OWNER_DIED | WAITERS, Ordering::Release);
        sync::futex_wake(&self.word, 1);
        sync::op_end(h);
    }

    /// Marks the protected state repaired after `Acquired::OwnerDied`.
    ///
    /// # Safety
    /// The calling thread must hold the lock.
    pub unsafe fn make_consistent(&self) {
        self.word.fetch_and(!OWNER_DIED, Ordering::Relaxed);
    }

    /// The owner's thread id (in the owner's PID namespace), for inspection tools; `None`
    /// when free or not recoverable. Racy by nature: the answer may be stale at once.
    pub fn owner(&self) -> Option<u32> {
        owner_of(self.word.load(Ordering::Relaxed))
    }

    /// Whether the lock is permanently unusable.
    pub fn is_not_recoverable(&self) -> bool {
        self.word.load(Ordering::Relaxed) & TID_MASK == NOT_RECOVERABLE
    }

    /// Whether the lock is marked inconsistent (an owner died and nobody repaired it yet).
    pub fn is_owner_died(&self) -> bool {
        self.word.load(Ordering::Relaxed) & OWNER_DIED != 0
    }

    /// Whether the calling thread holds the lock (its tid is in the word).
    pub fn is_locked_by_current_thread(&self) -> bool {
        self.word.load(Ordering::Relaxed) & TID_MASK == sync::current_tid()
    }

    /// Whether some thread announced that it sleeps (or is about to sleep) on the lock.
    pub fn has_waiters(&self) -> bool {
        self.word.load(Ordering::Relaxed) & WAITERS != 0
    }

    /// Whether anyone holds the lock right now (racy).
    pub fn is_locked(&self) -> bool {
        self.owner().is_some()
    }

    /// Like [`is_locked`](Self::is_locked), with an acquire read: seeing the lock free
    /// means seeing everything its last holder did before unlocking.
    pub(crate) fn is_held_acquire(&self) -> bool {
        owner_of(self.word.load(Ordering::Acquire)).is_some()
    }
}

/// The holder named by a lock word, if any.
fn owner_of(word: u32) -> Option<u32> {
    match word & TID_MASK {
        0 | NOT_RECOVERABLE => None,
        t => Some(t),
    }
}
