//! `Held` and the `*_or_repair` locks: the lock-then-repair step after a real owner's
//! death (a forked child killed while holding the lock), repair failure, and timeouts.
#![cfg(not(loom))]

use relshm_sync::{Held, LockError, Mutex, MutexError, RawMutex, RawRwLock, RwLock};
use relshm_testkit::{Exit, Scratch, Shm, fork_child};
use std::cell::Cell;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

const LIMIT: Duration = Duration::from_secs(60);

/// A forked child maps `shm`, takes a lock with `take` (and never releases it), and is
/// killed by SIGKILL while holding it.
fn die_holding(shm: &Shm, take: impl FnOnce(&relshm_testkit::Mapping)) {
    let scratch = Scratch::new();
    let child = fork_child(|| {
        let map = shm.map();
        take(&map);
        scratch.slot(0).store(1, Ordering::Release);
        loop {
            std::thread::park();
        }
    });
    scratch.wait_for(0, 1, LIMIT);
    assert_eq!(child.kill_and_wait(), Exit::Signal(libc::SIGKILL));
}

/// A repair that never runs.
fn no_repair() -> Result<(), LockError> {
    panic!("repair must run only after an owner died")
}

#[derive(Debug, PartialEq, Eq)]
enum TestError {
    Lock(LockError),
    Broken,
}

impl From<LockError> for TestError {
    fn from(e: LockError) -> Self {
        TestError::Lock(e)
    }
}

#[test]
fn mutex_repairs_once_after_owner_death() {
    let shm = Shm::new(4096);
    let map = shm.map();
    let m: &RawMutex = map.at(0);
    die_holding(&shm, |map| {
        let m: &RawMutex = map.at(0);
        let _ = m.lock().expect("lock");
    });
    assert!(m.is_owner_died());
    let repairs = Cell::new(0);
    {
        let _held = Held::mutex(m, None, || {
            repairs.set(repairs.get() + 1);
            Ok::<(), LockError>(())
        })
        .expect("repaired");
        assert!(m.is_locked_by_current_thread());
        assert!(!m.is_owner_died(), "made consistent after the repair");
    }
    assert_eq!(repairs.get(), 1);
    assert!(!m.is_locked() && !m.is_not_recoverable());
    // Consistent again: the next locker repairs nothing.
    drop(Held::mutex(m, None, no_repair).expect("clean"));
}

#[test]
fn failed_repair_returns_its_error_and_makes_the_lock_not_recoverable() {
    let shm = Shm::new(4096);
    let map = shm.map();
    let m: &RawMutex = map.at(0);
    die_holding(&shm, |map| {
        let m: &RawMutex = map.at(0);
        let _ = m.lock().expect("lock");
    });
    let r = Held::mutex(m, None, || Err(TestError::Broken));
    assert_eq!(r.err(), Some(TestError::Broken));
    assert!(!m.is_locked(), "released by the failed attempt");
    assert!(m.is_not_recoverable());
    let r = Held::mutex(m, None, no_repair);
    assert_eq!(r.err(), Some(LockError::NotRecoverable));
}

#[test]
fn timeout_gives_timed_out_without_repair() {
    let shm = Shm::new(8192);
    let map = shm.map();
    let m: &RawMutex = map.at(0);
    let l: &RawRwLock = map.at(4096);
    let scratch = Scratch::new();
    let child = fork_child(|| {
        let map = shm.map();
        let m: &RawMutex = map.at(0);
        let l: &RawRwLock = map.at(4096);
        let _m = Held::mutex(m, None, no_repair).expect("mutex");
        let _l = Held::exclusive(l, None, no_repair).expect("exclusive");
        scratch.slot(0).store(1, Ordering::Release);
        scratch.wait_for(1, 1, LIMIT);
        0
    });
    scratch.wait_for(0, 1, LIMIT);
    let wait = Duration::from_millis(50);
    let t = Instant::now();
    assert_eq!(
        Held::mutex(m, Some(wait), no_repair).err(),
        Some(LockError::TimedOut)
    );
    assert_eq!(
        Held::exclusive(l, Some(wait), no_repair).err(),
        Some(LockError::TimedOut)
    );
    assert_eq!(
        Held::shared(l, Some(wait), no_repair).err(),
        Some(LockError::TimedOut)
    );
    assert!(t.elapsed() >= 3 * wait);
    scratch.slot(1).store(1, Ordering::Release);
    assert_eq!(child.wait_timeout(LIMIT), Exit::Code(0));
    // Released cleanly by the child's guards.
    drop(Held::mutex(m, Some(wait), no_repair).expect("free"));
    drop(Held::shared(l, Some(wait), no_repair).expect("free"));
}

#[test]
fn shared_after_a_dead_writer_is_exclusive_and_repairs() {
    let shm = Shm::new(4096);
    let map = shm.map();
    let l: &RawRwLock = map.at(0);
    die_holding(&shm, |map| {
        let l: &RawRwLock = map.at(0);
        let _ = l.lock_exclusive().expect("write");
    });
    let repairs = Cell::new(0);
    {
        let held = Held::shared(l, None, || {
            repairs.set(repairs.get() + 1);
            Ok::<(), LockError>(())
        })
        .expect("repaired");
        assert!(
            !held.is_shared(),
            "a dead writer's lock is taken exclusively"
        );
        assert_eq!(l.readers(), 0);
        assert!(l.writer().is_locked_by_current_thread());
    }
    assert_eq!(repairs.get(), 1);
    assert!(!l.writer().is_locked() && !l.is_not_recoverable());
    let held = Held::shared(l, None, no_repair).expect("clean read");
    assert!(held.is_shared());
    assert_eq!(l.readers(), 1);
    drop(held);
    assert_eq!(l.readers(), 0);
}

#[test]
fn exclusive_failed_repair_is_not_recoverable_for_readers_too() {
    let shm = Shm::new(4096);
    let map = shm.map();
    let l: &RawRwLock = map.at(0);
    die_holding(&shm, |map| {
        let l: &RawRwLock = map.at(0);
        let _ = l.lock_exclusive().expect("write");
    });
    let r = Held::exclusive(l, None, || Err(TestError::Broken));
    assert_eq!(r.err(), Some(TestError::Broken));
    assert!(l.is_not_recoverable());
    assert_eq!(
        Held::shared(l, None, no_repair).err(),
        Some(LockError::NotRecoverable)
    );
    assert_eq!(
        Held::exclusive(l, None, no_repair).err(),
        Some(LockError::NotRecoverable)
    );
}

#[test]
fn if_consistent_reports_a_dead_owner_and_leaves_the_repair_to_the_next_user() {
    let shm = Shm::new(8192);
    let map = shm.map();
    let m: &RawMutex = map.at(0);
    let l: &RawRwLock = map.at(4096);
    die_holding(&shm, |map| {
        let m: &RawMutex = map.at(0);
        let l: &RawRwLock = map.at(4096);
        let _ = m.lock().expect("lock");
        let _ = l.lock_exclusive().expect("write");
    });
    let wait = Some(Duration::from_secs(10));
    assert!(Held::mutex_if_consistent(m, wait).expect("taken").is_none());
    assert!(
        Held::exclusive_if_consistent(l, wait)
            .expect("taken")
            .is_none()
    );
    // Given back still marked, and usable: not made not recoverable.
    assert!(!m.is_locked() && m.is_owner_died() && !m.is_not_recoverable());
    assert!(l.writer().is_owner_died() && !l.is_not_recoverable());
    let repairs = Cell::new(0);
    let repair = || {
        repairs.set(repairs.get() + 1);
        Ok::<(), LockError>(())
    };
    drop(Held::mutex(m, wait, repair).expect("repaired"));
    drop(Held::exclusive(l, wait, repair).expect("repaired"));
    assert_eq!(repairs.get(), 2);
    assert!(Held::mutex_if_consistent(m, wait).expect("taken").is_some());
    assert!(
        Held::exclusive_if_consistent(l, wait)
            .expect("taken")
            .is_some()
    );
}

#[test]
fn mutex_lock_or_repair_repairs_the_data_and_propagates_with_question_mark() {
    let shm = Shm::new(4096);
    let map = shm.map();
    let m: &Mutex<u64> = map.at(0);
    die_holding(&shm, |map| {
        let m: &Mutex<u64> = map.at(0);
        let mut g = m.lock().expect("lock");
        *g = 99; // half-way through an update
        std::mem::forget(g);
    });
    fn bump(m: &Mutex<u64>) -> Result<u64, Box<dyn std::error::Error>> {
        let mut g = m.lock_or_repair(|n| {
            assert_eq!(*n, 99, "the repair sees the dead owner's data");
            *n = 0;
            Ok::<(), LockError>(())
        })?;
        *g += 1;
        Ok(*g)
    }
    assert_eq!(bump(m).expect("repaired and bumped"), 1);
    assert!(!m.raw().is_owner_died());
    assert_eq!(*m.lock().expect("clean"), 1);
    let g = m
        .lock_or_repair_timeout(Duration::from_secs(10), |_| -> Result<(), LockError> {
            panic!("nothing to repair")
        })
        .expect("clean");
    assert_eq!(*g, 1);
    // Held by this thread: another lock_or_repair_timeout of another process times out.
    let child = fork_child(|| {
        let map = shm.map();
        let m: &Mutex<u64> = map.at(0);
        match m.lock_or_repair_timeout(Duration::from_millis(50), |_| Ok::<(), LockError>(())) {
            Err(LockError::TimedOut) => 0,
            _ => 1,
        }
    });
    assert_eq!(child.wait_timeout(LIMIT), Exit::Code(0));
    drop(g);
}

#[test]
fn owner_died_error_converts_with_question_mark() {
    let shm = Shm::new(4096);
    let map = shm.map();
    let m: &Mutex<u64> = map.at(0);
    die_holding(&shm, |map| {
        let m: &Mutex<u64> = map.at(0);
        std::mem::forget(m.lock().expect("lock"));
    });
    fn read(m: &Mutex<u64>) -> Result<u64, LockError> {
        Ok(*m.lock()?)
    }
    let e = read(m).unwrap_err();
    assert_eq!(e, LockError::OwnerDied);
    assert!(e.to_string().contains("lock_or_repair"), "{e}");
    // The guard went with the conversion, unrepaired.
    assert!(m.raw().is_not_recoverable());
    assert_eq!(read(m), Err(LockError::NotRecoverable));
    assert!(matches!(m.lock(), Err(MutexError::NotRecoverable)));
    let r = m.lock_or_repair(|_| -> Result<(), LockError> { panic!("never") });
    assert_eq!(r.err(), Some(LockError::NotRecoverable));
}

#[test]
fn rwlock_read_and_write_or_repair() {
    let shm = Shm::new(4096);
    let map = shm.map();
    let l: &RwLock<u64> = map.at(0);
    die_holding(&shm, |map| {
        let l: &RwLock<u64> = map.at(0);
        let mut g = l.write().expect("write");
        *g = 7;
        std::mem::forget(g);
    });
    let g = l
        .read_or_repair(|v| {
            *v = 1;
            Ok::<(), LockError>(())
        })
        .expect("repaired");
    assert_eq!(*g, 1);
    assert!(
        l.raw().writer().is_locked_by_current_thread(),
        "exclusive after a death"
    );
    drop(g);
    assert!(!l.raw().writer().is_locked());
    let g = l.read_or_repair(|_| -> Result<(), LockError> { panic!("never") });
    assert_eq!(*g.expect("clean"), 1);
    die_holding(&shm, |map| {
        let l: &RwLock<u64> = map.at(0);
        std::mem::forget(l.write().expect("write"));
    });
    let r = l.write_or_repair(|_| Err(TestError::Broken));
    assert_eq!(r.err(), Some(TestError::Broken));
    assert!(l.raw().is_not_recoverable());
    let r = l.write_or_repair_timeout(Duration::from_secs(1), |_| -> Result<(), LockError> {
        panic!("never")
    });
    assert_eq!(r.err(), Some(LockError::NotRecoverable));
}
