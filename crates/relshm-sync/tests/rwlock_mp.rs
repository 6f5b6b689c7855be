//! Multi-process tests of the robust RwLock: real processes, different addresses.
#![cfg(not(loom))]

use relshm_sync::{MutexError, RwLock};
use relshm_testkit::Shm;
use relshm_testkit::{Exit, Scratch, fork_child};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

const LIMIT: Duration = Duration::from_secs(60);
/// Where the tests keep a side counter inside the shared memory (after the lock).
const SIDE: usize = 2048;

#[repr(C)]
#[derive(Default)]
struct Pair {
    a: u64,
    b: u64,
}

#[test]
fn readers_overlap() {
    let shm = Shm::new(4096);
    let parent = shm.map();
    let kids: Vec<_> = (0..2)
        .map(|_| {
            let parent_addr = parent.addr();
            let shm = &shm;
            fork_child(move || {
                let map = shm.map();
                if map.addr() == parent_addr {
                    return 2;
                }
                let l: &RwLock<Pair> = map.at(0);
                let inside: &AtomicU32 = map.at(SIDE);
                let g = l.read().expect("read");
                inside.fetch_add(1, Ordering::AcqRel);
                // Both readers must be inside at once; exclusive readers would time out.
                let deadline = Instant::now() + Duration::from_secs(30);
                while inside.load(Ordering::Acquire) < 2 {
                    if Instant::now() > deadline {
                        return 3;
                    }
                    std::thread::yield_now();
                }
                drop(g);
                0
            })
        })
        .collect();
    for k in kids {
        assert_eq!(k.wait_timeout(LIMIT), Exit::Code(0));
    }
    let l: &RwLock<Pair> = parent.at(0);
    assert_eq!(l.raw().readers(), 0);
}

#[test]
fn writers_exclude_each_other_and_readers() {
    const W: u64 = 2000;
    let shm = Shm::new(4096);
    let parent = shm.map();
    let scratch = Scratch::new();
    let writers: Vec<_> = (0..2)
        .map(|_| {
            fork_child(|| {
                let map = shm.map();
                let l: &RwLock<Pair> = map.at(0);
                // Start together with the readers: on a loaded machine the writers could
                // otherwise be done before a reader ever ran.
                scratch.wait_for(3, 2, LIMIT);
                for _ in 0..W {
                    let mut g = l.write().expect("write");
                    let a = g.a;
                    g.a = std::hint::black_box(a) + 1;
                    std::hint::spin_loop();
                    g.b += 1;
                }
                scratch.slot(0).fetch_add(1, Ordering::AcqRel);
                0
            })
        })
        .collect();
    let readers: Vec<_> = (0..2)
        .map(|_| {
            let scratch = &scratch;
            let shm = &shm;
            fork_child(move || {
                let map = shm.map();
                let l: &RwLock<Pair> = map.at(0);
                scratch.slot(3).fetch_add(1, Ordering::AcqRel);
                loop {
                    let done = scratch.slot(0).load(Ordering::Acquire) == 2;
                    let g = l.read().expect("read");
                    if g.a != g.b {
                        return 4;
                    }
                    if done {
                        // Read after both writers finished: every write is visible.
                        if g.a != 2 * W {
                            return 5;
                        }
                        break;
                    }
                }
                0
            })
        })
        .collect();
    for c in writers.into_iter().chain(readers) {
        assert_eq!(c.wait_timeout(LIMIT), Exit::Code(0));
    }
    let l: &RwLock<Pair> = parent.at(0);
    let g = l.read().unwrap();
    assert_eq!((g.a, g.b), (2 * W, 2 * W));
}

/// Three processes keep the lock read-held back to back; a writer must still get in
/// (with reader preference it would wait until the readers stop, which they never do
/// before the writer is done).
#[test]
fn writer_not_starved_by_readers() {
    let shm = Shm::new(4096);
    let parent = shm.map();
    let scratch = Scratch::new();
    let readers: Vec<_> = (0..3)
        .map(|_| {
            fork_child(|| {
                let map = shm.map();
                let l: &RwLock<Pair> = map.at(0);
                scratch.slot(0).fetch_add(1, Ordering::AcqRel);
                while scratch.slot(1).load(Ordering::Acquire) == 0 {
                    let g = l.read().expect("read");
                    let t = Instant::now();
                    while t.elapsed() < Duration::from_micros(50) {
                        std::hint::spin_loop();
                    }
                    drop(g);
                }
                0
            })
        })
        .collect();
    scratch.wait_for(0, 3, LIMIT);
    let l: &RwLock<Pair> = parent.at(0);
    for _ in 0..50 {
        let mut g = l
            .write_timeout(Duration::from_secs(30))
            .expect("writer starved");
        g.a += 1;
        g.b += 1;
    }
    scratch.slot(1).store(1, Ordering::Release);
    for r in readers {
        assert_eq!(r.wait_timeout(LIMIT), Exit::Code(0));
    }
}

#[test]
fn dead_reader_does_not_block_writers() {
    let shm = Shm::new(4096);
    let parent = shm.map();
    let scratch = Scratch::new();
    let child = fork_child(|| {
        let map = shm.map();
        let l: &RwLock<Pair> = map.at(0);
        std::mem::forget(l.read().expect("read"));
        scratch.slot(0).store(1, Ordering::Release);
        loop {
            std::thread::park();
        }
    });
    scratch.wait_for(0, 1, LIMIT);
    let l: &RwLock<Pair> = parent.at(0);
    assert!(matches!(l.try_write(), Err(MutexError::WouldBlock)));
    assert_eq!(l.raw().readers(), 1);
    std::thread::scope(|s| {
        let w = s.spawn(|| {
            // Blocks on the dead reader's slot until the kernel marks it.
            let mut g = l.write_timeout(LIMIT).expect("reader death recovered");
            g.a = 7;
        });
        assert_eq!(child.kill_and_wait(), Exit::Signal(libc::SIGKILL));
        w.join().unwrap();
    });
    assert_eq!(l.read().unwrap().a, 7);
    assert_eq!(l.raw().readers(), 0);
}

#[test]
fn dead_writer_is_repaired_by_the_next_reader_or_else_not_recoverable() {
    let shm = Shm::new(4096);
    let parent = shm.map();
    let l: &RwLock<Pair> = parent.at(0);
    let kill_writer = || {
        let scratch = Scratch::new();
        let child = fork_child(|| {
            let map = shm.map();
            let l: &RwLock<Pair> = map.at(0);
            let mut g = l.write().expect("write");
            g.a += 1; // half-done: b not updated
            scratch.slot(0).store(1, Ordering::Release);
            loop {
                std::thread::park();
            }
        });
        scratch.wait_for(0, 1, LIMIT);
        assert_eq!(child.kill_and_wait(), Exit::Signal(libc::SIGKILL));
    };

    kill_writer();
    match l.read() {
        Err(MutexError::OwnerDied(mut g)) => {
            assert_eq!((g.a, g.b), (1, 0));
            g.b = g.a;
            g.make_consistent();
        }
        other => panic!("expected OwnerDied, got {:?}", other.map(|_| ())),
    }
    let g = l.read().expect("consistent again");
    assert_eq!((g.a, g.b), (1, 1));
    drop(g);

    kill_writer();
    match l.write() {
        Err(MutexError::OwnerDied(g)) => drop(g), // not repaired
        other => panic!("expected OwnerDied, got {:?}", other.map(|_| ())),
    }
    assert!(l.raw().is_not_recoverable());
    assert!(matches!(l.read(), Err(MutexError::NotRecoverable)));
    assert!(matches!(l.write(), Err(MutexError::NotRecoverable)));
    let child = fork_child(|| {
        let map = shm.map();
        let l: &RwLock<Pair> = map.at(0);
        match l.read_timeout(Duration::from_secs(10)) {
            Err(MutexError::NotRecoverable) => 0,
            _ => 1,
        }
    });
    assert_eq!(child.wait_timeout(LIMIT), Exit::Code(0));
}

#[test]
fn rwlock_timeouts_return_on_time() {
    let shm = Shm::new(4096);
    let parent = shm.map();
    let scratch = Scratch::new();
    let child = fork_child(|| {
        let map = shm.map();
        let l: &RwLock<Pair> = map.at(0);
        let _g = l.write().expect("write");
        scratch.slot(0).store(1, Ordering::Release);
        scratch.wait_for(1, 1, LIMIT);
        0
    });
    scratch.wait_for(0, 1, LIMIT);
    let l: &RwLock<Pair> = parent.at(0);
    let d = Duration::from_millis(50);
    for read in [true, false] {
        let t = Instant::now();
        let timed_out = if read {
            matches!(l.read_timeout(d), Err(MutexError::TimedOut))
        } else {
            matches!(l.write_timeout(d), Err(MutexError::TimedOut))
        };
        let took = t.elapsed();
        assert!(timed_out);
        assert!(took >= d && took < d + Duration::from_secs(5), "{took:?}");
    }
    scratch.slot(1).store(1, Ordering::Release);
    assert_eq!(child.wait_timeout(LIMIT), Exit::Code(0));
    drop(l.write().expect("free again"));
}
