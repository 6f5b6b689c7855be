//! Loom models of every primitive's wait/wake protocol with a waiter that is killed inside
//! its wait: asleep, or after a wake-up took it off the futex queue and before it could
//! act on it. A survivor waiting on the same primitive must still get through: a wake-up
//! lost with the victim leaves the survivor asleep, which loom reports as a deadlock.
//!
//! Run: `RUSTFLAGS="--cfg loom" cargo test -p relshm-sync --release --test loom_kill`
#![cfg(loom)]

use loom::sync::Arc;
use loom::sync::atomic::{AtomicBool, Ordering};
use loom::thread;
use relshm_sync::{
    AutoResetEvent, Condvar, KillAt, KillStage, Mutex, MutexError, RwLock, Semaphore, killable,
};

/// Every kill point of a victim that sleeps at most twice.
fn kill_points() -> impl Iterator<Item = KillAt> {
    (0..2).flat_map(|wait| {
        [KillStage::Asleep, KillStage::Woken]
            .into_iter()
            .map(move |stage| KillAt { wait, stage })
    })
}

/// Runs `model` once per kill point, each as its own loom model.
fn for_each_kill_point(model: impl Fn(KillAt) + Sync + Send + Copy + 'static) {
    for at in kill_points() {
        loom::model(move || model(at));
    }
}

/// Takes a lock result, repairing after an owner death (nothing to repair here).
fn take<G: core::ops::DerefMut>(r: Result<G, MutexError<G>>, consistent: impl FnOnce(&mut G)) -> G {
    match r {
        Ok(g) => g,
        Err(MutexError::OwnerDied(mut g)) => {
            consistent(&mut g);
            g
        }
        Err(e) => panic!("{e}"),
    }
}

/// Holder, victim and survivor on one mutex; the holder relocks on the fast path after
/// its unlock, as a busy user does, so a wake-up given to the victim is not redone by a
/// later unlock unless the protocol hands it on.
#[test]
fn mutex_waiter_killed_anywhere_loses_no_wakeup() {
    for_each_kill_point(|at| {
        let m = Arc::new(Mutex::new(0u32));
        let g = m.lock().unwrap();
        let victim = {
            let m = m.clone();
            thread::spawn(move || {
                killable(at, || {
                    *take(m.lock(), |g| g.make_consistent()) += 1;
                })
            })
        };
        let survivor = {
            let m = m.clone();
            thread::spawn(move || *take(m.lock(), |g| g.make_consistent()) += 1)
        };
        drop(g);
        *take(m.lock(), |g| g.make_consistent()) += 1;
        survivor.join().unwrap();
        victim.join().unwrap();
    });
}

/// Readers queue behind a writer on the writer mutex: the same hand-off, through RwLock.
#[test]
fn rwlock_waiter_killed_anywhere_loses_no_wakeup() {
    for_each_kill_point(|at| {
        let l = Arc::new(RwLock::new(0u32));
        let g = l.write().unwrap();
        let victim = {
            let l = l.clone();
            thread::spawn(move || {
                killable(at, || {
                    *take(l.write(), |g| g.make_consistent()) += 1;
                })
            })
        };
        let survivor = {
            let l = l.clone();
            thread::spawn(move || match l.read() {
                Ok(g) => drop(g),
                Err(MutexError::OwnerDied(mut g)) => g.make_consistent(),
                Err(e) => panic!("{e}"),
            })
        };
        drop(g);
        *take(l.write(), |g| g.make_consistent()) += 1;
        survivor.join().unwrap();
        victim.join().unwrap();
    });
}

/// One permit, two waiters; whoever gets through gives it back, so the survivor must always
/// get it.
#[test]
fn semaphore_waiter_killed_anywhere_loses_no_permit() {
    for_each_kill_point(|at| {
        let s = Arc::new(Semaphore::new(0));
        let victim = {
            let s = s.clone();
            thread::spawn(move || {
                killable(at, || {
                    s.wait();
                    s.post().unwrap();
                })
            })
        };
        let survivor = {
            let s = s.clone();
            thread::spawn(move || {
                s.wait();
                s.post().unwrap();
            })
        };
        s.post().unwrap();
        survivor.join().unwrap();
        victim.join().unwrap();
    });
}

/// One `set` of an auto-reset event releases one waiter; whoever gets through sets it
/// again, so the survivor must always pass.
#[test]
fn auto_event_waiter_killed_anywhere_loses_no_set() {
    for_each_kill_point(|at| {
        let e = Arc::new(AutoResetEvent::new());
        let victim = {
            let e = e.clone();
            thread::spawn(move || {
                killable(at, || {
                    e.wait();
                    e.set();
                })
            })
        };
        let survivor = {
            let e = e.clone();
            thread::spawn(move || {
                e.wait();
                e.set();
            })
        };
        e.set();
        survivor.join().unwrap();
        victim.join().unwrap();
    });
}

/// `notify_one` after the flag is set; whoever gets through passes the notification on, so
/// the survivor must always see the flag.
#[test]
fn condvar_waiter_killed_anywhere_loses_no_notification() {
    for_each_kill_point(|at| {
        let pair = Arc::new((Mutex::new(false), Condvar::new(), AtomicBool::new(false)));
        let wait_for_flag = |p: &(Mutex<bool>, Condvar, AtomicBool)| {
            let mut g = take(p.0.lock(), |g| g.make_consistent());
            while !*g {
                g = take(p.1.wait(g), |g| g.make_consistent());
            }
        };
        let victim = {
            let p = pair.clone();
            thread::spawn(move || {
                killable(at, || {
                    wait_for_flag(&p);
                    p.1.notify_one();
                })
            })
        };
        let survivor = {
            let p = pair.clone();
            thread::spawn(move || {
                wait_for_flag(&p);
                p.2.store(true, Ordering::Relaxed);
                p.1.notify_one();
            })
        };
        *take(pair.0.lock(), |g| g.make_consistent()) = true;
        pair.1.notify_one();
        survivor.join().unwrap();
        victim.join().unwrap();
        assert!(pair.2.load(Ordering::Relaxed));
    });
}
