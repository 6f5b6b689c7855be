//! The lost-wake-up test of issue 12 for the collections: processes that use a `List`
//! (its internal lock, the one `push_back`/`pop_front` take) or block in a queue's `recv`
//! while other processes waiting beside them are SIGKILLed at random moments; no user may
//! stall for more than 100 ms. See `relshm_testkit::stall` for the harness and its knobs
//! (`RELSHM_STALL_KILLS=3000` for a soak, `RELSHM_STALL_CONTROL=1` for the control run).
#![cfg(not(loom))]

use relshm_collections::arena::Arena;
use relshm_collections::list::List;
use relshm_collections::queue::{Queue, QueueConfig, QueueError};
use relshm_ptr::Offset;
use relshm_segment::{CreateOptions, OpenOptions, Segment};
use relshm_testkit::stall::{self, Config, Role};
use relshm_testkit::{fd_path, open_fd_path};

/// Kills per test in CI (4 stall tests, >= 300 kills in all).
const KILLS: usize = 80;
/// Work between two rounds (microseconds).
const OUTSIDE_US: u64 = 3;

/// A fresh segment, and the argument that tells the children where it and the object at
/// `offset(seg)` are: `"<fd path> <offset>"`.
fn shared_segment(offset: impl FnOnce(&Segment) -> u64) -> (Segment, String) {
    let seg = Segment::create_unnamed(&CreateOptions::new(4 << 20)).expect("create segment");
    let off = offset(&seg);
    let arg = format!("{} {off}", fd_path(seg.fd()));
    (seg, arg)
}

/// In a child: maps the segment named by `arg` (at its own address) and returns it with
/// the object's offset.
fn open_segment(arg: &str) -> (Segment, u64) {
    let (path, off) = arg.split_once(' ').expect("\"<fd path> <offset>\"");
    let seg = Segment::open_fd(open_fd_path(path), &OpenOptions::new()).expect("open segment");
    (seg, off.parse().expect("an offset"))
}

#[test]
fn stall_list_waiters_killed() {
    let cfg = Config::new("list", "stall_list_waiters_killed", KILLS);
    let setup = || {
        shared_segment(|seg| {
            let arena = Arena::<Offset>::new(seg).expect("arena");
            List::<u64, Offset>::create(&arena).expect("list").offset()
        })
    };
    stall::run(&cfg, setup, |w| {
        let (seg, off) = open_segment(w.arg());
        let arena = Arena::<Offset>::new(&seg).expect("arena");
        let list = List::<u64, Offset>::open(&arena, off).expect("open list");
        let mut n = 0u64;
        w.rounds(OUTSIDE_US, || {
            n += 1;
            // The lock `List::push_back` and `pop_front` take, taken once for both so that
            // the marked call is the wait alone (a holder is then outside it).
            let mut g = w.waiting(|| list.lock()).expect("lock the list");
            g.push_back(n).expect("push_back");
            // The element just pushed, or one a killed victim left behind.
            assert!(g.pop_front().expect("pop_front").is_some());
        });
    });
}

/// A receiver woken for a message and killed before taking it swallows that wake-up; the
/// other receivers must still get the message. (Today a queue sleeper re-checks at least
/// every `LIVENESS_INTERVAL`, 20 ms, so this guards the property rather than reproducing
/// a failure: it found no lost wake-up before the lock fix of issue 12.)
#[test]
fn stall_queue_receivers_killed() {
    let cfg = Config::new("queue", "stall_queue_receivers_killed", KILLS);
    let setup = || {
        shared_segment(|seg| {
            let heap = seg.heap().expect("heap");
            Queue::create(&heap, QueueConfig::with_capacity(16))
                .expect("queue")
                .offset()
        })
    };
    stall::run(&cfg, setup, |w| {
        let (seg, off) = open_segment(w.arg());
        let q = Queue::attach(&seg.heap().expect("heap"), off).expect("attach queue");
        // Registrations of killed victims are reaped here (and by blocked calls).
        q.reap_dead().expect("reap");
        match w.role() {
            // User 0 sends; user 1 and the victims receive from the same queue, so they
            // sleep on the same event word.
            Role::User(0) => {
                let tx = q.sender::<u64>().expect("sender");
                let mut n = 0u64;
                // Not a marked wait: with receivers draining, sending does not block, and
                // the harness must not take a busy sender for a woken waiter.
                w.rounds(OUTSIDE_US, || {
                    n += 1;
                    tx.send(&n).expect("send");
                });
            }
            _ => {
                let rx = q.receiver::<u64>().expect("receiver");
                while w.beat() {
                    match w.waiting(|| rx.recv()) {
                        Ok(_) => {}
                        // The sender is gone: the harness is tearing the test down.
                        Err(QueueError::Disconnected { .. }) => return,
                        Err(e) => panic!("recv: {e}"),
                    }
                }
            }
        }
    });
}
