//! Loom models of every primitive, against the modelled futex and robust list.
//!
//! Run: `RUSTFLAGS="--cfg loom" LOOM_MAX_PREEMPTIONS=2 cargo test -p relshm-sync --release --test loom`
#![cfg(loom)]

use loom::sync::Arc;
use loom::sync::atomic::{AtomicUsize, Ordering};
use loom::thread;
use relshm_sync::{
    Acquired, AutoResetEvent, Condvar, LockError, ManualResetEvent, Mutex, MutexError, RawMutex,
    RwLock, Semaphore, simulate_owner_death,
};

/// A non-atomic increment (load, then store): loses updates unless excluded.
fn racy_inc(a: &AtomicUsize) {
    let v = a.load(Ordering::Relaxed);
    a.store(v + 1, Ordering::Relaxed);
}

#[test]
fn mutex_mutual_exclusion_and_no_lost_wakeup() {
    loom::model(|| {
        let m = Arc::new(Mutex::new(AtomicUsize::new(0)));
        let hs: Vec<_> = (0..2)
            .map(|_| {
                let m = m.clone();
                thread::spawn(move || {
                    let g = m.lock().unwrap();
                    racy_inc(&g);
                })
            })
            .collect();
        // A third locker on the main thread makes someone sleep in the futex model; a
        // lost wake-up is reported by loom as a deadlock.
        {
            let g = m.lock().unwrap();
            racy_inc(&g);
        }
        for h in hs {
            h.join().unwrap();
        }
        assert_eq!(m.lock().unwrap().load(Ordering::Relaxed), 3);
    });
}

#[test]
fn mutex_try_lock_and_timeout() {
    loom::model(|| {
        let m = Arc::new(RawMutex::new());
        let m2 = m.clone();
        let h = thread::spawn(move || {
            if m2.try_lock() == Ok(Acquired::Clean) {
                // SAFETY: this thread holds it.
                unsafe { m2.unlock() };
            }
        });
        match m.lock_timeout(core::time::Duration::from_millis(1)) {
            // SAFETY: this thread holds it.
            Ok(Acquired::Clean) => unsafe { m.unlock() },
            Err(LockError::TimedOut) => {}
            other => panic!("{other:?}"),
        }
        h.join().unwrap();
        assert!(!m.is_locked());
    });
}

#[test]
fn condvar_wait_notify() {
    loom::model(|| {
        let pair = Arc::new((Mutex::new(false), Condvar::new()));
        let p2 = pair.clone();
        let h = thread::spawn(move || {
            let (m, cv) = &*p2;
            *m.lock().unwrap() = true;
            cv.notify_one();
        });
        let (m, cv) = &*pair;
        let mut g = m.lock().unwrap();
        while !*g {
            g = cv.wait(g).unwrap();
        }
        drop(g);
        h.join().unwrap();
    });
}

#[test]
fn rwlock_exclusion() {
    loom::model(|| {
        let l = Arc::new(RwLock::new((AtomicUsize::new(0), AtomicUsize::new(0))));
        let l2 = l.clone();
        let w = thread::spawn(move || {
            let g = l2.write().unwrap();
            racy_inc(&g.0);
            racy_inc(&g.1);
        });
        {
            let g = l.read().unwrap();
            assert_eq!(g.0.load(Ordering::Relaxed), g.1.load(Ordering::Relaxed));
        }
        w.join().unwrap();
        let g = l.read().unwrap();
        assert_eq!(g.0.load(Ordering::Relaxed), 1);
    });
}

#[test]
fn rwlock_two_writers() {
    loom::model(|| {
        let l = Arc::new(RwLock::new(AtomicUsize::new(0)));
        let l2 = l.clone();
        let w = thread::spawn(move || racy_inc(&l2.write().unwrap()));
        racy_inc(&l.write().unwrap());
        w.join().unwrap();
        assert_eq!(l.read().unwrap().load(Ordering::Relaxed), 2);
    });
}

#[test]
fn semaphore_handoff() {
    loom::model(|| {
        let s = Arc::new(Semaphore::new(0));
        let s2 = s.clone();
        let h = thread::spawn(move || {
            s2.post().unwrap();
            s2.post().unwrap();
        });
        s.wait();
        s.wait();
        h.join().unwrap();
        assert_eq!(s.try_wait(), Err(LockError::WouldBlock));
    });
}

/// A timed wait either takes the permit or times out leaving it: never both (a permit
/// taken by the last check after a timed-out sleep must be returned as success).
#[test]
fn semaphore_timed_wait_never_loses_a_permit() {
    loom::model(|| {
        let s = Arc::new(Semaphore::new(0));
        let s2 = s.clone();
        let h = thread::spawn(move || s2.post().unwrap());
        let got = s.wait_timeout(core::time::Duration::from_millis(1));
        h.join().unwrap();
        let left = s.try_wait();
        match got {
            Ok(()) => assert_eq!(left, Err(LockError::WouldBlock)),
            Err(e) => {
                assert_eq!(e, LockError::TimedOut);
                assert_eq!(left, Ok(()), "timed out and the permit is gone");
            }
        }
    });
}

#[test]
fn events_release_waiters() {
    loom::model(|| {
        let ev = Arc::new((ManualResetEvent::new(), AutoResetEvent::new()));
        let e2 = ev.clone();
        let h = thread::spawn(move || {
            e2.0.wait();
            e2.1.set();
        });
        ev.0.set();
        ev.1.wait();
        h.join().unwrap();
        assert!(ev.0.is_set());
        assert!(!ev.1.is_set());
    });
}

/// A holder dies (the modelled kernel marks its lock); exactly one later locker sees
/// OwnerDied, repairs and makes it consistent.
#[test]
fn owner_death_is_reported_once_and_repaired() {
    loom::model(|| {
        let m = Arc::new(Mutex::new(AtomicUsize::new(0)));
        let m2 = m.clone();
        let dier = thread::spawn(move || {
            let g = m2.lock().unwrap();
            g.store(1, Ordering::Relaxed); // dirty
            core::mem::forget(g);
            simulate_owner_death();
        });
        let m3 = m.clone();
        let repairer = thread::spawn(move || match m3.lock() {
            Ok(_) => false,
            Err(MutexError::OwnerDied(mut g)) => {
                assert_eq!(g.load(Ordering::Relaxed), 1);
                g.store(0, Ordering::Relaxed);
                g.make_consistent();
                true
            }
            Err(e) => panic!("{e}"),
        });
        dier.join().unwrap();
        let b_saw = repairer.join().unwrap();
        let main_saw = match m.lock() {
            Ok(g) => {
                assert_eq!(g.load(Ordering::Relaxed), 0);
                false
            }
            Err(MutexError::OwnerDied(mut g)) => {
                g.make_consistent();
                true
            }
            Err(e) => panic!("{e}"),
        };
        assert!(b_saw ^ main_saw);
    });
}

/// Released without repair, the lock is not recoverable for everyone, sleepers included.
#[test]
fn unrepaired_owner_death_is_not_recoverable() {
    loom::model(|| {
        let m = Arc::new(RawMutex::new());
        assert_eq!(m.lock(), Ok(Acquired::Clean));
        let lockers: Vec<_> = (0..2)
            .map(|_| {
                let m = m.clone();
                thread::spawn(move || {
                    let r = m.lock();
                    if r == Ok(Acquired::OwnerDied) {
                        // SAFETY: this thread holds it; released without repair.
                        unsafe { m.unlock() };
                    }
                    r
                })
            })
            .collect();
        simulate_owner_death();
        let mut rs: Vec<_> = lockers.into_iter().map(|h| h.join().unwrap()).collect();
        rs.sort_by_key(|r| r.is_err());
        assert_eq!(
            rs,
            [Ok(Acquired::OwnerDied), Err(LockError::NotRecoverable)]
        );
        assert_eq!(m.try_lock(), Err(LockError::NotRecoverable));
    });
}

/// A writer dies mid-update; a reader either ran before it or gets write access to repair.
#[test]
fn rwlock_writer_death_is_repaired_by_a_reader() {
    loom::model(|| {
        let l = Arc::new(RwLock::new((AtomicUsize::new(0), AtomicUsize::new(0))));
        let l2 = l.clone();
        let dier = thread::spawn(move || {
            let g = l2.write().unwrap();
            g.0.store(1, Ordering::Relaxed); // half-done
            core::mem::forget(g);
            simulate_owner_death();
        });
        match l.read() {
            Ok(g) => assert_eq!(g.0.load(Ordering::Relaxed), g.1.load(Ordering::Relaxed)),
            Err(MutexError::OwnerDied(mut g)) => {
                g.1.store(g.0.load(Ordering::Relaxed), Ordering::Relaxed);
                g.make_consistent();
            }
            Err(e) => panic!("{e}"),
        }
        dier.join().unwrap();
    });
}
