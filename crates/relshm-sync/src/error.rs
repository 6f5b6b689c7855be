//! Error types of the locks.

use core::fmt;

/// Why a raw lock operation did not acquire the lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LockError {
    /// A previous owner died holding the lock and the next holder released it without
    /// calling `make_consistent`: the lock is permanently unusable.
    #[error(
        "lock is not recoverable: an owner died holding it and the next holder released it \
         without make_consistent(); re-create the lock and the data it protects"
    )]
    NotRecoverable,
    /// The lock is held (only from `try_*`).
    #[error("lock is held by another thread; retry later or block with lock()")]
    WouldBlock,
    /// The timeout elapsed before the lock became free.
    #[error(
        "timed out waiting for the lock; its holder may be slow or stuck (see owner() for \
         its thread id)"
    )]
    TimedOut,
    /// A previous owner died holding the lock and the data it protects was not repaired.
    /// Made from a [`MutexError::OwnerDied`] (whose guard is then released unrepaired, so
    /// the lock is no longer recoverable).
    #[error(
        "the previous owner died holding the lock; use lock_or_repair to repair the data it \
         protects and make the lock consistent (this guard was released unrepaired, so the \
         lock is now not recoverable)"
    )]
    OwnerDied,
}

/// Why a `lock` on a [`Mutex`](crate::Mutex) (or similar) did not simply succeed.
///
/// `G` is the guard: with [`OwnerDied`](MutexError::OwnerDied) you *hold* the lock.
#[non_exhaustive]
pub enum MutexError<G> {
    /// You hold the lock, but its previous owner died holding it: the protected data may be
    /// half-updated. Repair it, then call `make_consistent()` on the guard; dropping the
    /// guard without that makes the lock permanently [`NotRecoverable`](Self::NotRecoverable).
    OwnerDied(G),
    /// See [`LockError::NotRecoverable`].
    NotRecoverable,
    /// See [`LockError::WouldBlock`].
    WouldBlock,
    /// See [`LockError::TimedOut`].
    TimedOut,
}

impl<G> MutexError<G> {
    /// The guard, if this is [`OwnerDied`](Self::OwnerDied).
    pub fn into_guard(self) -> Option<G> {
        match self {
            MutexError::OwnerDied(g) => Some(g),
            _ => None,
        }
    }

    /// Replaces the guard by `f(guard)`, keeping the variant.
    pub fn map<H>(self, f: impl FnOnce(G) -> H) -> MutexError<H> {
        match self {
            MutexError::OwnerDied(g) => MutexError::OwnerDied(f(g)),
            MutexError::NotRecoverable => MutexError::NotRecoverable,
            MutexError::WouldBlock => MutexError::WouldBlock,
            MutexError::TimedOut => MutexError::TimedOut,
        }
    }
}

impl<G> From<LockError> for MutexError<G> {
    fn from(e: LockError) -> Self {
        match e {
            LockError::NotRecoverable => MutexError::NotRecoverable,
            LockError::WouldBlock => MutexError::WouldBlock,
            LockError::TimedOut => MutexError::TimedOut,
            // Only made from a `MutexError::OwnerDied` whose guard was released unrepaired:
            // the lock is not recoverable now.
            LockError::OwnerDied => MutexError::NotRecoverable,
        }
    }
}

/// For `?` in functions returning [`LockError`] (or a type made from it with `From`).
/// [`OwnerDied`](MutexError::OwnerDied) drops its guard *without* `make_consistent`, so
/// the lock becomes not recoverable; use `lock_or_repair` to repair instead.
impl<G> From<MutexError<G>> for LockError {
    fn from(e: MutexError<G>) -> Self {
        match e {
            MutexError::OwnerDied(guard) => {
                drop(guard);
                LockError::OwnerDied
            }
            MutexError::NotRecoverable => LockError::NotRecoverable,
            MutexError::WouldBlock => LockError::WouldBlock,
            MutexError::TimedOut => LockError::TimedOut,
        }
    }
}

impl<G> fmt::Debug for MutexError<G> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MutexError::OwnerDied(_) => f.write_str("OwnerDied(..)"),
            MutexError::NotRecoverable => f.write_str("NotRecoverable"),
            MutexError::WouldBlock => f.write_str("WouldBlock"),
            MutexError::TimedOut => f.write_str("TimedOut"),
        }
    }
}

impl<G> fmt::Display for MutexError<G> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MutexError::OwnerDied(_) => f.write_str(
                "the previous owner died holding the lock (you hold it now): repair the \
                 protected data, then call make_consistent() on the guard; dropping the guard \
                 without it makes the lock permanently unusable",
            ),
            MutexError::NotRecoverable => fmt::Display::fmt(&LockError::NotRecoverable, f),
            MutexError::WouldBlock => fmt::Display::fmt(&LockError::WouldBlock, f),
            MutexError::TimedOut => fmt::Display::fmt(&LockError::TimedOut, f),
        }
    }
}

impl<G> std::error::Error for MutexError<G> {}
