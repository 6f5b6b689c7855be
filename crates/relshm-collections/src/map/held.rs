//! Holding an in-segment readers-writer lock, with repair when a writer died holding it.

use crate::arena::Result;
use relshm_sync::{Acquired, RawRwLock, ReadAcquired};

/// A held [`RawRwLock`]; released on drop.
pub(crate) enum Held<'l> {
    Shared(&'l RawRwLock, u32),
    Exclusive(&'l RawRwLock),
}

impl Drop for Held<'_> {
    fn drop(&mut self) {
        match *self {
            // SAFETY: a Held exists only while this thread holds the lock as recorded
            // (made right after acquiring it, below).
            Held::Shared(l, slot) => unsafe { l.unlock_shared(slot) },
            // SAFETY: as above. If `repair` failed the lock was never made consistent,
            // and this release makes it not recoverable, which every later user reports.
            Held::Exclusive(l) => unsafe { l.unlock_exclusive() },
        }
    }
}

/// Read access (or exclusive access after a dead writer, once `repair` has run).
pub(crate) fn shared<'l>(
    lock: &'l RawRwLock,
    repair: impl FnOnce() -> Result<()>,
) -> Result<Held<'l>> {
    match lock.lock_shared()? {
        ReadAcquired::Read(slot) => Ok(Held::Shared(lock, slot)),
        ReadAcquired::WriteOwnerDied => died(lock, repair),
    }
}

/// Exclusive access, repairing first if the previous writer died holding it.
pub(crate) fn exclusive<'l>(
    lock: &'l RawRwLock,
    repair: impl FnOnce() -> Result<()>,
) -> Result<Held<'l>> {
    match lock.lock_exclusive()? {
        Acquired::Clean => Ok(Held::Exclusive(lock)),
        Acquired::OwnerDied => died(lock, repair),
    }
}

fn died<'l>(lock: &'l RawRwLock, repair: impl FnOnce() -> Result<()>) -> Result<Held<'l>> {
    let held = Held::Exclusive(lock);
    repair()?;
    // SAFETY: this thread holds the lock exclusively (held) and the data is repaired.
    unsafe { lock.make_consistent() };
    Ok(held)
}
