//! Reading the state of in-segment locks without taking them: who holds each one, and
//! whether its owner died.
//!
//! A robust lock word holds the owner's thread id. When the owner dies the kernel clears
//! the id and sets `OWNER_DIED` (the state stays until the next locker repairs the data);
//! if the kernel never saw the lock in the owner's robust list, the id of a thread that no
//! longer exists stays in the word. Both are reported as a dead owner.

use relshm::segment::Region;
use relshm::segment::verify::{LockHealth, lock_health, tid_alive};
use relshm::sync::{RawMutex, RawRwLock};
use serde::Serialize;

/// The state of one lock, as seen at one instant (locks move on while we look).
#[derive(Debug, Clone, Serialize)]
pub struct LockState {
    /// Which lock: `heap`, `directory`, `object NAME`, `list NAME`, ...
    pub lock: String,
    /// Offset of the lock word in the segment.
    pub offset: u64,
    /// `free`, `held`, `owner-died` (released by the kernel when its owner died, not yet
    /// repaired), `dead-owner` (held by a thread that no longer exists) or
    /// `not-recoverable`.
    pub state: &'static str,
    /// Thread id of the holder, if the word names one.
    pub owner_tid: Option<u32>,
    /// Whether that thread still exists.
    pub owner_alive: Option<bool>,
    /// Whether the owner died (`owner-died` or `dead-owner`).
    pub dead_owner: bool,
    /// Whether some thread sleeps on the lock.
    pub waiters: bool,
    /// Reader slots held (readers-writer locks only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub readers: Option<usize>,
}

impl LockState {
    /// One cell for the human table: `held by tid 42`, `OWNER DIED`, ...
    pub fn describe(&self) -> String {
        let who = |t: Option<u32>| t.map_or(String::new(), |t| format!(" by tid {t}"));
        let mut s = match self.state {
            "held" => format!("held{}", who(self.owner_tid)),
            "owner-died" => "OWNER DIED (released by the kernel; next locker repairs)".into(),
            "dead-owner" => format!(
                "DEAD OWNER: held{} which no longer exists",
                who(self.owner_tid)
            ),
            "not-recoverable" => "NOT RECOVERABLE (a repair failed; rebuild the data)".into(),
            other => other.to_owned(),
        };
        if let Some(r) = self.readers.filter(|&r| r > 0) {
            s.push_str(&format!(", {r} reader slot(s) held"));
        }
        if self.waiters {
            s.push_str(", waiters");
        }
        s
    }
}

/// The state of `m`, found at `offset`.
pub fn mutex_state(lock: String, offset: u64, m: &RawMutex) -> LockState {
    let (state, owner_tid, owner_alive) = match lock_health(m) {
        LockHealth::NotRecoverable => ("not-recoverable", m.owner(), None),
        LockHealth::DeadOwner { tid } => ("dead-owner", Some(tid), Some(false)),
        LockHealth::Held { tid } => ("held", Some(tid), Some(true)),
        LockHealth::OwnerDied => ("owner-died", None, None),
        LockHealth::Free => ("free", None, None),
    };
    LockState {
        lock,
        offset,
        state,
        owner_tid,
        owner_alive: owner_alive.or_else(|| owner_tid.map(tid_alive)),
        dead_owner: matches!(state, "owner-died" | "dead-owner"),
        waiters: m.has_waiters(),
        readers: None,
    }
}

/// The state of a readers-writer lock (its writer mutex plus the reader count).
pub fn rwlock_state(lock: String, offset: u64, l: &RawRwLock) -> LockState {
    let mut s = mutex_state(lock, offset, l.writer());
    s.readers = Some(l.readers());
    s
}

/// Resolves the lock of type `L` at `offset` in `region` and hands it to `f`.
fn with_lock<L, R>(region: Region, offset: u64, f: impl FnOnce(&L) -> R) -> Option<R> {
    let p = region.resolve_as::<L>(offset).ok()?;
    // SAFETY: resolve_as checked that `offset` is in bounds and aligned for L; the region
    // stays mapped while the caller's segment lives (this call); RawMutex and RawRwLock
    // are atomics only, for which every bit pattern is a valid state.
    Some(f(unsafe { p.as_ref() }))
}

/// The state of the [`RawMutex`] at `offset` (`None` if it is not inside the mapping).
pub fn mutex_at(region: Region, lock: String, offset: u64) -> Option<LockState> {
    with_lock::<RawMutex, _>(region, offset, |m| mutex_state(lock, offset, m))
}

/// The state of the [`RawRwLock`] at `offset` (`None` if it is not inside the mapping).
pub fn rwlock_at(region: Region, lock: String, offset: u64) -> Option<LockState> {
    with_lock::<RawRwLock, _>(region, offset, |l| rwlock_state(lock, offset, l))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn free_and_held() {
        let m = RawMutex::new();
        let s = mutex_state("m".into(), 0, &m);
        assert_eq!((s.state, s.dead_owner), ("free", false));
        let held = relshm::sync::Held::mutex_if_consistent(&m, None).unwrap();
        assert!(held.is_some());
        let s = mutex_state("m".into(), 0, &m);
        assert_eq!(s.state, "held");
        assert_eq!(s.owner_alive, Some(true));
        assert!(s.describe().starts_with("held by tid"));
        drop(held);
        let s = mutex_state("m".into(), 0, &m);
        assert_eq!(s.state, "free");
    }
}
