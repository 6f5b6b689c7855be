//! The lost-wake-up test of issue 12 for the collections: processes that use a `List`
//! (its internal lock, the one `push_back`/`pop_front` take) or block in a queue's `recv`
//! while other processes waiting beside them are SIGKILLed at random moments; no user may
//! stall for more than 100 ms. See `relshm_testkit::stall` for the harness and its knobs
//! (`RELSHM_STALL_KILLS=3000` for a soak, `RELSHM_STALL_CONTROL=1` for the control run).
#![cfg(not(loom))]

use relshm_collections::CollectionError;
use relshm_collections::arena::Arena;
use relshm_collections::list::List;
use relshm_collections::queue::{Queue, QueueConfig};
use relshm_collections::verify::offsets;
use relshm_ptr::Offset;
use relshm_segment::{CreateOptions, OpenOptions, Segment};
use relshm_sync::RawMutex;
use relshm_testkit::stall::{self, Config, Role};
use relshm_testkit::{fd_path, open_fd_path};

/// Kills per test in CI (4 stall tests, >= 300 kills in all).
const KILLS: usize = 80;
/// Work between two rounds (microseconds).
const OUTSIDE_US: u64 = 3;
/// How long the queue client waits for an acknowledgement before it looks whether its
/// request was taken (and lost with a killed receiver).
const ACK_WAIT: std::time::Duration = std::time::Duration::from_millis(40);

/// A fresh segment, and the argument that tells the children where it and the objects at
/// `offsets(seg)` are: `"<fd path> <offset>..."`.
fn shared_segment(offsets: impl FnOnce(&Segment) -> Vec<u64>) -> (Segment, String) {
    let seg = Segment::create_unnamed(&CreateOptions::new(4 << 20)).expect("create segment");
    let mut arg = fd_path(seg.fd());
    for off in offsets(&seg) {
        arg += &format!(" {off}");
    }
    (seg, arg)
}

/// In a child: maps the segment named by `arg` (at its own address) and returns it with
/// the objects' offsets.
fn open_segment(arg: &str) -> (Segment, Vec<u64>) {
    let mut words = arg.split(' ');
    let path = words.next().expect("\"<fd path> <offset>...\"");
    let seg = Segment::open_fd(open_fd_path(path), &OpenOptions::new()).expect("open segment");
    (seg, words.map(|o| o.parse().expect("an offset")).collect())
}

#[test]
fn stall_list_waiters_killed() {
    let cfg = Config {
        wake_owed: Some(|arg| {
            let (seg, offs) = open_segment(arg);
            let lock = seg
                .region()
                .resolve_as::<RawMutex>(offs[0] + offsets::LIST_LOCK)
                .expect("the list's lock");
            // SAFETY: the list's header holds a RawMutex at LIST_LOCK, inside the mapping
            // `seg` keeps alive for this borrow; only its word is read.
            unsafe { lock.as_ref() }.has_waiters()
        }),
        ..Config::new("list", "stall_list_waiters_killed", KILLS)
    };
    let setup = || {
        shared_segment(|seg| {
            let arena = Arena::<Offset>::new(seg).expect("arena");
            vec![List::<u64, Offset>::create(&arena).expect("list").offset()]
        })
    };
    stall::run(&cfg, setup, |w| {
        let (seg, offs) = open_segment(w.arg());
        let arena = Arena::<Offset>::new(&seg).expect("arena");
        let list = List::<u64, Offset>::open(&arena, offs[0]).expect("open list");
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

/// Request/acknowledge over two queues: the client (the only user) sends one request on
/// `requests` and sleeps in `recv` on `acks` until a receiver acknowledges it; the
/// receivers (the victims) sleep in `recv` on `requests`. A receiver woken for the request
/// and killed before taking it swallows that wake-up: the request then waits in the queue
/// while everyone sleeps, and the client stalls. (A receiver killed after taking it loses
/// the request itself: the client sees its request gone without an acknowledgement and
/// sends it again.) Every receiver shares the request queue's event word, so a user that
/// only received would compete with the victims for requests; the flow is measured at the
/// client, one heartbeat per acknowledged request.
///
/// Before the fix of issue 12 this test already passed: a queue sleeper re-checks the
/// queue at least every `LIVENESS_INTERVAL` (20 ms), so a swallowed wake-up cost the client
/// about 20 ms (longest gap 22-45 ms over 80 kills). It guards that property.
#[test]
fn stall_queue_receivers_killed() {
    let cfg = Config {
        users: 1,
        ..Config::new("queue", "stall_queue_receivers_killed", KILLS)
    };
    let setup = || {
        shared_segment(|seg| {
            let arena = Arena::<Offset>::new(seg).expect("arena");
            let requests =
                Queue::<u64>::create(&arena, QueueConfig::with_capacity(4)).expect("queue");
            let acks = Queue::<u64>::create(&arena, QueueConfig::with_capacity(64)).expect("queue");
            vec![requests.offset(), acks.offset()]
        })
    };
    stall::run(&cfg, setup, |w| {
        let (seg, offs) = open_segment(w.arg());
        let arena = Arena::<Offset>::new(&seg).expect("arena");
        let requests = Queue::<u64>::open(&arena, offs[0]).expect("open requests");
        let acks = Queue::<u64>::open(&arena, offs[1]).expect("open acks");
        // Registrations of killed victims are reaped here (and by blocked calls).
        requests.reap_dead().expect("reap");
        acks.reap_dead().expect("reap");
        match w.role() {
            Role::User(_) => {
                let (tx, rx) = (
                    requests.sender().expect("sender"),
                    acks.receiver().expect("receiver"),
                );
                let mut n = 0u64;
                w.rounds(OUTSIDE_US, || {
                    n += 1;
                    tx.send(&n).expect("send request");
                    loop {
                        match w.waiting(|| rx.recv_timeout(ACK_WAIT)) {
                            Ok(k) if k == n => break,
                            Ok(_) => {} // a late acknowledgement of a request sent twice
                            // Taken, but its receiver died before acknowledging: again.
                            Err(CollectionError::Timeout) if requests.is_empty() => {
                                tx.send(&n).expect("send request again");
                            }
                            // Still queued: wait on (a lost wake-up, if it lasts).
                            Err(CollectionError::Timeout) => {}
                            Err(e) => panic!("recv ack: {e}"),
                        }
                    }
                });
            }
            Role::Victim(_) => {
                let (rx, tx) = (
                    requests.receiver().expect("receiver"),
                    acks.sender().expect("sender"),
                );
                while w.beat() {
                    match w.waiting(|| rx.recv()) {
                        Ok(n) => tx.send(&n).expect("send ack"),
                        // The client is gone: the harness is tearing the test down.
                        Err(CollectionError::Disconnected { .. }) => return,
                        Err(e) => panic!("recv request: {e}"),
                    }
                }
            }
        }
    });
}
