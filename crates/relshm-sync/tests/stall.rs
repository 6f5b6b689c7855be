//! The lost-wake-up test of issue 12 for the sync primitives: two processes use one
//! in-segment lock with microsecond critical sections while other processes waiting on the
//! same lock are SIGKILLed at random moments (CPU hogs make "woken, then killed before
//! retaking the word" likely). No user may stall for more than 100 ms. See
//! `relshm_testkit::stall` for the harness and its knobs (`RELSHM_STALL_KILLS=3000` for a
//! soak, `RELSHM_STALL_CONTROL=1` for the control run).
#![cfg(not(loom))]

use relshm_sync::{Mutex, MutexError, MutexGuard, RwLock, RwLockWriteGuard};
use relshm_testkit::Shm;
use relshm_testkit::stall::{self, Config, Role, spin_us};

/// Kills per test in CI (4 stall tests, >= 300 kills in all).
const KILLS: usize = 80;
/// Critical section length (microseconds).
const CS_US: u64 = 2;
/// Work between two critical sections (microseconds): without it one user would take the
/// lock back on its fast path before a woken sleeper ever runs, and starve the other
/// (barging: unfair, but not a lost wake-up).
const OUTSIDE_US: u64 = 3;

/// The guard of a lock result; after an owner death (nothing to repair here) made
/// consistent with `consistent`.
fn repaired<G>(r: Result<G, MutexError<G>>, consistent: fn(&mut G)) -> G {
    match r {
        Ok(g) => g,
        Err(MutexError::OwnerDied(mut g)) => {
            consistent(&mut g);
            g
        }
        Err(e) => panic!("lock: {e}"),
    }
}

/// A memfd for the lock, published to the children by path.
fn shared_page() -> (Shm, String) {
    let shm = Shm::new(4096);
    let path = shm.path();
    (shm, path)
}

#[test]
fn stall_mutex_waiters_killed() {
    let cfg = Config {
        wake_owed: Some(|arg| {
            let map = Shm::open(arg).map();
            map.at::<Mutex<u64>>(0).raw().has_waiters()
        }),
        ..Config::new("mutex", "stall_mutex_waiters_killed", KILLS)
    };
    stall::run(&cfg, shared_page, |w| {
        let shm = Shm::open(w.arg());
        let map = shm.map();
        let m: &Mutex<u64> = map.at(0);
        w.rounds(OUTSIDE_US, || {
            let mut g = repaired(w.waiting(|| m.lock()), MutexGuard::make_consistent);
            *g += 1;
            spin_us(CS_US);
        });
    });
}

#[test]
fn stall_rwlock_waiters_killed() {
    let cfg = Config {
        // Writers and readers queue on the writer mutex (a writer also waits for a
        // reader's slot, whose word the probe does not look at: conservative).
        wake_owed: Some(|arg| {
            let map = Shm::open(arg).map();
            map.at::<RwLock<u64>>(0).raw().writer().has_waiters()
        }),
        ..Config::new("rwlock", "stall_rwlock_waiters_killed", KILLS)
    };
    stall::run(&cfg, shared_page, |w| {
        let shm = Shm::open(w.arg());
        let map = shm.map();
        let l: &RwLock<u64> = map.at(0);
        let write = || {
            let mut g = repaired(w.waiting(|| l.write()), RwLockWriteGuard::make_consistent);
            *g += 1;
            spin_us(CS_US);
        };
        match w.role() {
            // Users write; odd victims read (they wait on the writers), even ones write.
            Role::User(_) => w.rounds(OUTSIDE_US, write),
            Role::Victim(v) if v % 2 == 0 => w.rounds(OUTSIDE_US, write),
            Role::Victim(_) => w.rounds(OUTSIDE_US, || match w.waiting(|| l.read()) {
                Ok(g) => {
                    std::hint::black_box(*g);
                    spin_us(CS_US);
                }
                Err(MutexError::OwnerDied(mut g)) => g.make_consistent(),
                Err(e) => panic!("read: {e}"),
            }),
        }
    });
}
