//! Multi-process tests of Condvar, Semaphore and events: hand-offs lose no wake-up,
//! timeouts return on time, OwnerDied surfaces through a condvar wait.
#![cfg(not(loom))]

use relshm_sync::{
    AutoResetEvent, Condvar, LockError, ManualResetEvent, Mutex, MutexError, Semaphore,
};
use relshm_testkit::Shm;
use relshm_testkit::{Exit, Scratch, fork_child};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

const LIMIT: Duration = Duration::from_secs(60);
/// Any single wait longer than this means a lost wake-up.
const STUCK: Duration = Duration::from_secs(30);

#[repr(C)]
struct Turn {
    m: Mutex<u64>,
    cv: Condvar,
}

/// Parent and child alternate 2000 turns through one mutex + condvar.
#[test]
fn condvar_ping_pong_loses_no_wakeup() {
    const ROUNDS: u64 = 2000;
    let shm = Shm::new(4096);
    let parent = shm.map();
    let play = |t: &Turn, me: u64| -> Result<(), String> {
        for r in 0..ROUNDS {
            let g = t.m.lock().map_err(|e| e.to_string())?;
            let (g, timed_out) = t.cv.wait_while_timeout(g, STUCK, |turn| *turn % 2 != me);
            let mut g = g.map_err(|e| e.to_string())?;
            if timed_out {
                return Err(format!("lost wake-up in round {r}"));
            }
            *g += 1;
            t.cv.notify_all();
        }
        Ok(())
    };
    let child = fork_child(|| {
        let map = shm.map();
        if map.addr() == parent.addr() {
            return 2;
        }
        match play(map.at(0), 1) {
            Ok(()) => 0,
            Err(e) => {
                // The test harness captures eprintln! in-process; write to fd 2 directly.
                let msg = format!("child: {e}\n");
                // SAFETY: writing an initialised buffer of msg.len() bytes to stderr.
                unsafe { libc::write(2, msg.as_ptr().cast(), msg.len()) };
                1
            }
        }
    });
    if let Err(e) = play(parent.at(0), 0) {
        let mut child = child;
        let t: &Turn = parent.at(0);
        panic!(
            "{e}; child exit: {:?}; mutex: {:?}; turn: {:?}; {:?}",
            child.try_wait(),
            t.m.raw(),
            t.m.try_lock().map(|g| *g),
            t.cv
        );
    }
    assert_eq!(child.wait_timeout(LIMIT), Exit::Code(0));
    let t: &Turn = parent.at(0);
    assert_eq!(*t.m.lock().unwrap(), 2 * ROUNDS);
}

#[test]
fn condvar_wait_timeout_returns_on_time() {
    let shm = Shm::new(4096);
    let map = shm.map();
    let t: &Turn = map.at(0);
    let d = Duration::from_millis(50);
    let start = Instant::now();
    let (g, timed_out) = t.cv.wait_while_timeout(t.m.lock().unwrap(), d, |_| true);
    let took = start.elapsed();
    assert!(g.is_ok() && timed_out);
    assert!(took >= d && took < d + Duration::from_secs(5), "{took:?}");
}

/// The notifier dies holding the mutex: the waiter's relock reports OwnerDied.
#[test]
fn condvar_relock_reports_owner_died() {
    let shm = Shm::new(4096);
    let parent = shm.map();
    let scratch = Scratch::new();
    let t: &Turn = parent.at(0);
    let g = t.m.lock().unwrap();
    let child = fork_child(|| {
        let map = shm.map();
        let t: &Turn = map.at(0);
        let mut g = t.m.lock().expect("child lock");
        *g = 1;
        t.cv.notify_all();
        std::mem::forget(g);
        scratch.slot(0).store(1, Ordering::Release);
        loop {
            std::thread::park();
        }
    });
    std::thread::scope(|s| {
        s.spawn(|| {
            scratch.wait_for(0, 1, LIMIT);
            child.kill();
            child
        });
        let mut g = g;
        loop {
            match t.cv.wait_timeout(g, STUCK) {
                (Ok(x), false) if *x == 0 => g = x,
                (Err(MutexError::OwnerDied(mut x)), _) => {
                    assert_eq!(*x, 1);
                    x.make_consistent();
                    break;
                }
                (r, timed_out) => panic!("unexpected {:?} (timed out: {timed_out})", r.map(|_| ())),
            }
        }
    });
    assert!(t.m.try_lock().is_ok());
}

#[repr(C)]
struct Sems {
    items: Semaphore,
    ping: Semaphore,
    pong: Semaphore,
}

/// A producer posts 20000 times; the consumer takes exactly 20000 permits; then they
/// ping-pong 2000 times. A lost wake-up shows up as a timed-out wait.
#[test]
fn semaphore_handoffs_lose_no_wakeup() {
    const ITEMS: u32 = 20_000;
    const PINGS: u32 = 2000;
    let shm = Shm::new(4096);
    let parent = shm.map();
    let consumer = fork_child(|| {
        let map = shm.map();
        if map.addr() == parent.addr() {
            return 3;
        }
        let s: &Sems = map.at(0);
        for _ in 0..ITEMS {
            if s.items.wait_timeout(STUCK).is_err() {
                return 1;
            }
        }
        for _ in 0..PINGS {
            if s.ping.wait_timeout(STUCK).is_err() || s.pong.post().is_err() {
                return 2;
            }
        }
        0
    });
    let s: &Sems = parent.at(0);
    for _ in 0..ITEMS {
        s.items.post().unwrap();
    }
    for _ in 0..PINGS {
        s.ping.post().unwrap();
        s.pong.wait_timeout(STUCK).expect("lost wake-up");
    }
    assert_eq!(consumer.wait_timeout(LIMIT), Exit::Code(0));
    assert_eq!(s.items.count(), 0);
    assert_eq!(s.items.try_wait(), Err(LockError::WouldBlock));
}

#[test]
fn semaphore_and_event_timeouts_return_on_time() {
    let shm = Shm::new(4096);
    let map = shm.map();
    let s: &Semaphore = map.at(0);
    let e: &ManualResetEvent = map.at(64);
    let a: &AutoResetEvent = map.at(128);
    let d = Duration::from_millis(50);
    for i in 0..3 {
        let t = Instant::now();
        let r = match i {
            0 => s.wait_timeout(d),
            1 => e.wait_timeout(d),
            _ => a.wait_timeout(d),
        };
        let took = t.elapsed();
        assert_eq!(r, Err(LockError::TimedOut));
        assert!(
            took >= d && took < d + Duration::from_secs(5),
            "{i}: {took:?}"
        );
    }
    assert_eq!(
        Semaphore::new(Semaphore::MAX).post(),
        Err(relshm_sync::SemaphoreOverflow)
    );
}

#[repr(C)]
struct Events {
    manual: ManualResetEvent,
    auto: AutoResetEvent,
}

/// A manual event releases every waiting process; an auto event releases exactly one
/// waiter per set.
#[test]
fn events_release_all_or_one() {
    let shm = Shm::new(4096);
    let parent = shm.map();
    let scratch = Scratch::new();
    let kids: Vec<_> = (0..3)
        .map(|_| {
            fork_child(|| {
                let map = shm.map();
                let ev: &Events = map.at(0);
                scratch.slot(0).fetch_add(1, Ordering::AcqRel);
                if ev.manual.wait_timeout(STUCK).is_err() {
                    return 1;
                }
                scratch.slot(1).fetch_add(1, Ordering::AcqRel);
                if ev.auto.wait_timeout(STUCK).is_err() {
                    return 2;
                }
                scratch.slot(2).fetch_add(1, Ordering::AcqRel);
                0
            })
        })
        .collect();
    let ev: &Events = parent.at(0);
    scratch.wait_for(0, 3, LIMIT);
    ev.manual.set();
    scratch.wait_for(1, 3, LIMIT);
    assert!(ev.manual.is_set());
    for n in 1..=3 {
        ev.auto.set();
        scratch.wait_for(2, n, LIMIT);
        // The passing waiter consumed the set; at most n waiters got through.
        assert_eq!(scratch.slot(2).load(Ordering::Acquire), n);
    }
    for k in kids {
        assert_eq!(k.wait_timeout(LIMIT), Exit::Code(0));
    }
    assert!(!ev.auto.is_set());
}
