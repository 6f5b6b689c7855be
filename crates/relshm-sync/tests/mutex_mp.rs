//! Multi-process tests of the robust Mutex: real processes, different addresses.
#![cfg(not(loom))]

use relshm_sync::{Mutex, MutexError, RawMutex};
use relshm_testkit::Shm;
use relshm_testkit::{Exit, Scratch, fork_child};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

const LIMIT: Duration = Duration::from_secs(60);

#[test]
fn n_processes_m_increments() {
    const N: usize = 4;
    const M: u64 = 20_000;
    let shm = Shm::new(4096);
    let parent = shm.map();
    let children: Vec<_> = (0..N)
        .map(|_| {
            let shm = &shm;
            let parent_addr = parent.addr();
            fork_child(move || {
                let map = shm.map();
                if map.addr() == parent_addr {
                    return 2;
                }
                let m: &Mutex<u64> = map.at(0);
                for _ in 0..M {
                    let mut g = m.lock().expect("lock");
                    // A non-atomic read-modify-write: loses updates without exclusion.
                    let v = *g;
                    std::hint::black_box(&v);
                    *g = v + 1;
                }
                0
            })
        })
        .collect();
    for c in children {
        assert_eq!(c.wait_timeout(LIMIT), Exit::Code(0));
    }
    let m: &Mutex<u64> = parent.at(0);
    assert_eq!(*m.lock().unwrap(), N as u64 * M);
}

#[test]
fn try_lock_and_timeout_across_processes() {
    let shm = Shm::new(4096);
    let parent = shm.map();
    let scratch = Scratch::new();
    let child = fork_child(|| {
        let map = shm.map();
        let m: &Mutex<u64> = map.at(0);
        let _g = m.lock().expect("lock");
        scratch.slot(0).store(1, Ordering::Release);
        scratch.wait_for(1, 1, LIMIT);
        0
    });
    scratch.wait_for(0, 1, LIMIT);
    let m: &Mutex<u64> = parent.at(0);
    assert!(matches!(m.try_lock(), Err(MutexError::WouldBlock)));
    assert_eq!(m.raw().owner().map(|t| t as i32), Some(child.pid()));
    let d = Duration::from_millis(50);
    let t = Instant::now();
    assert!(matches!(m.lock_timeout(d), Err(MutexError::TimedOut)));
    let took = t.elapsed();
    assert!(took >= d, "returned early: {took:?}");
    assert!(took < d + Duration::from_secs(5), "returned late: {took:?}");
    scratch.slot(1).store(1, Ordering::Release);
    assert_eq!(child.wait_timeout(LIMIT), Exit::Code(0));
    let g = m
        .lock_timeout(Duration::from_secs(10))
        .expect("free after child exit");
    drop(g);
}

/// Child locks, dirties the data, is SIGKILLed; the parent, blocked in lock(), gets
/// OwnerDied, repairs, makes consistent and carries on. 100 rounds.
#[test]
fn kill_holder_100_rounds() {
    #[repr(C)]
    struct Data {
        count: u64,
        dirty: u64,
    }
    let shm = Shm::new(4096);
    let parent = shm.map();
    let m: &Mutex<Data> = parent.at(0);
    let mut lat = Vec::new();
    for round in 0..100u64 {
        let scratch = Scratch::new();
        let child = fork_child(|| {
            let map = shm.map();
            let m: &Mutex<Data> = map.at(0);
            let mut g = m.lock().expect("child lock");
            g.dirty = 1;
            scratch.slot(0).store(1, Ordering::Release);
            loop {
                std::thread::park();
            }
        });
        scratch.wait_for(0, 1, LIMIT);
        let killed_at = std::thread::scope(|s| {
            let killer = s.spawn(|| {
                // Kill only once the parent sleeps in lock() (it set WAITERS).
                let deadline = Instant::now() + LIMIT;
                while !m.raw().has_waiters() {
                    assert!(Instant::now() < deadline, "parent never blocked");
                    std::thread::yield_now();
                }
                let t = Instant::now();
                child.kill();
                (t, child)
            });
            let r = m.lock();
            let got = Instant::now();
            let (t, child) = killer.join().unwrap();
            assert_eq!(child.wait_timeout(LIMIT), Exit::Signal(libc::SIGKILL));
            match r {
                Err(MutexError::OwnerDied(mut g)) => {
                    assert_eq!(g.dirty, 1, "round {round}");
                    g.dirty = 0;
                    g.count += 1;
                    g.make_consistent();
                }
                Ok(_) => panic!("round {round}: owner death not reported"),
                Err(e) => panic!("round {round}: {e}"),
            }
            got.saturating_duration_since(t)
        });
        lat.push(killed_at);
        let g = m.try_lock().expect("consistent again");
        assert_eq!(g.count, round + 1);
    }
    lat.sort();
    eprintln!(
        "kill -> OwnerDied latency over {} rounds: median {:?}, max {:?}",
        lat.len(),
        lat[lat.len() / 2],
        lat[lat.len() - 1]
    );
    // The goal is < 10 ms (see the report); this bound only keeps a loaded CI from flaking.
    assert!(lat[lat.len() - 1] < Duration::from_secs(2));
}

#[test]
fn never_made_consistent_is_not_recoverable_for_everyone() {
    let shm = Shm::new(4096);
    let parent = shm.map();
    let scratch = Scratch::new();
    let child = fork_child(|| {
        let map = shm.map();
        let m: &Mutex<u64> = map.at(0);
        std::mem::forget(m.lock().expect("lock"));
        scratch.slot(0).store(1, Ordering::Release);
        loop {
            std::thread::park();
        }
    });
    scratch.wait_for(0, 1, LIMIT);
    assert_eq!(child.kill_and_wait(), Exit::Signal(libc::SIGKILL));
    let m: &Mutex<u64> = parent.at(0);
    match m.lock() {
        Err(MutexError::OwnerDied(g)) => drop(g), // released without make_consistent
        other => panic!("expected OwnerDied, got {:?}", other.map(|_| ())),
    }
    assert!(m.raw().is_not_recoverable());
    assert!(matches!(m.lock(), Err(MutexError::NotRecoverable)));
    assert!(matches!(m.try_lock(), Err(MutexError::NotRecoverable)));
    let child = fork_child(|| {
        let map = shm.map();
        let m: &Mutex<u64> = map.at(0);
        match m.lock_timeout(Duration::from_secs(10)) {
            Err(MutexError::NotRecoverable) => 0,
            _ => 1,
        }
    });
    assert_eq!(child.wait_timeout(LIMIT), Exit::Code(0));
}

/// A holder is killed while three processes wait: exactly one gets OwnerDied; it releases
/// without repairing, and the other two (sleeping or arriving later) get NotRecoverable.
#[test]
fn sleepers_all_learn_not_recoverable() {
    let shm = Shm::new(4096);
    let parent = shm.map();
    let scratch = Scratch::new();
    let holder = fork_child(|| {
        let map = shm.map();
        let m: &RawMutex = map.at(0);
        let _ = m.lock();
        scratch.slot(0).store(1, Ordering::Release);
        loop {
            std::thread::park();
        }
    });
    scratch.wait_for(0, 1, LIMIT);
    let waiters: Vec<_> = (0..3)
        .map(|_| {
            fork_child(|| {
                let map = shm.map();
                let m: &RawMutex = map.at(0);
                scratch.slot(1).fetch_add(1, Ordering::AcqRel);
                match m.lock() {
                    Ok(relshm_sync::Acquired::OwnerDied) => {
                        scratch.slot(2).fetch_add(1, Ordering::AcqRel);
                        // SAFETY: this thread holds the lock; released inconsistent.
                        unsafe { m.unlock() };
                        0
                    }
                    Err(relshm_sync::LockError::NotRecoverable) => {
                        scratch.slot(3).fetch_add(1, Ordering::AcqRel);
                        0
                    }
                    _ => 1,
                }
            })
        })
        .collect();
    scratch.wait_for(1, 3, LIMIT);
    let m: &RawMutex = parent.at(0);
    let deadline = Instant::now() + LIMIT;
    while !m.has_waiters() {
        assert!(Instant::now() < deadline, "nobody blocked");
        std::thread::yield_now();
    }
    assert_eq!(holder.kill_and_wait(), Exit::Signal(libc::SIGKILL));
    for w in waiters {
        assert_eq!(w.wait_timeout(LIMIT), Exit::Code(0));
    }
    assert_eq!(scratch.slot(2).load(Ordering::Acquire), 1);
    assert_eq!(scratch.slot(3).load(Ordering::Acquire), 2);
    assert!(m.is_not_recoverable());
    assert_eq!(m.owner(), None);
}

/// The trap the docs describe: a process that unmaps (here: exits after unmapping) a lock
/// it holds is invisible to the kernel's robust list walk, so the lock stays held; a
/// timed lock still returns instead of hanging.
#[test]
fn lock_unmapped_while_held_times_out_instead_of_hanging() {
    let shm = Shm::new(4096);
    let parent = shm.map();
    let child = fork_child(|| {
        let map = shm.map();
        let m: &RawMutex = map.at(0);
        let _ = m.lock();
        0 // `map` is unmapped here, while the lock is held
    });
    assert_eq!(child.wait_timeout(LIMIT), Exit::Code(0));
    let m: &RawMutex = parent.at(0);
    assert!(m.owner().is_some());
    assert_eq!(
        m.lock_timeout(Duration::from_millis(20)),
        Err(relshm_sync::LockError::TimedOut)
    );
}

#[test]
fn robust_list_is_compatible_with_glibc() {
    assert!(relshm_sync::robust_supported());
    // Our nodes and glibc's own robust pthread mutexes share one list: interleave them.
    let m1 = RawMutex::new();
    let m2 = RawMutex::new();
    // SAFETY: all-zero bytes are valid (uninitialised) pthread objects; initialised below.
    let mut attr: libc::pthread_mutexattr_t = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    let mut pm: libc::pthread_mutex_t = unsafe { std::mem::zeroed() };
    // SAFETY: standard initialisation of a local robust pthread mutex.
    unsafe {
        libc::pthread_mutexattr_init(&mut attr);
        libc::pthread_mutexattr_setrobust(&mut attr, libc::PTHREAD_MUTEX_ROBUST);
        libc::pthread_mutex_init(&mut pm, &attr);
    }
    for _ in 0..3 {
        assert_eq!(m1.lock(), Ok(relshm_sync::Acquired::Clean));
        // SAFETY: pm is initialised and not held.
        assert_eq!(unsafe { libc::pthread_mutex_lock(&mut pm) }, 0);
        assert_eq!(m2.lock(), Ok(relshm_sync::Acquired::Clean));
        // SAFETY: this thread holds all three; released out of order on purpose.
        unsafe {
            m1.unlock();
            assert_eq!(libc::pthread_mutex_unlock(&mut pm), 0);
            m2.unlock();
        }
    }
}

/// fork while holding a lock: the child inherits a copy of the guard state but the lock
/// stays the parent's; an unlock attempt in the child changes nothing, and the child's own
/// robust list (reset by glibc) still reports the child's death on its own locks.
#[test]
fn fork_while_holding_keeps_the_lock_the_parents() {
    let shm = Shm::new(4096);
    let parent = shm.map();
    let m: &RawMutex = parent.at(0);
    let other: &RawMutex = parent.at(64);
    assert_eq!(m.lock(), Ok(relshm_sync::Acquired::Clean));
    let me = m.owner();
    let scratch = Scratch::new();
    let child = fork_child(|| {
        // SAFETY: deliberately violated: the child does not hold it (the parent does);
        // unlock must detect that and do nothing.
        unsafe { m.unlock() };
        if m.owner() != me || m.try_lock() != Err(relshm_sync::LockError::WouldBlock) {
            return 1;
        }
        let _ = other.lock();
        scratch.slot(0).store(1, Ordering::Release);
        loop {
            std::thread::park();
        }
    });
    scratch.wait_for(0, 1, LIMIT);
    assert_eq!(child.kill_and_wait(), Exit::Signal(libc::SIGKILL));
    assert_eq!(m.owner(), me);
    assert_eq!(
        other.lock_timeout(LIMIT),
        Ok(relshm_sync::Acquired::OwnerDied)
    );
    // SAFETY: this thread holds both.
    unsafe {
        other.make_consistent();
        other.unlock();
        m.unlock();
    }
    assert!(!m.is_locked());
}
