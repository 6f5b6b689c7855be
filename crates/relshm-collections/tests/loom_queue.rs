//! Loom models of the queue's algorithm: the slot-claim ring, send/receive/close, the
//! wake-up protocol (an untimed sleep that nobody wakes is reported by loom as a
//! deadlock), timeouts, and the resolution of claims left by a dead endpoint.
//!
//! Run with `.ci/loom-queue` (`RUSTFLAGS="--cfg loom" cargo test -p relshm-collections
//! --release --test loom_queue`).
#![cfg(loom)]

use std::sync::Arc;
use std::time::Duration;

use loom::thread;
use relshm_collections::CollectionError;
use relshm_collections::queue::model::ModelQueue;

fn model(f: impl Fn() + Sync + Send + 'static) {
    let mut b = loom::model::Builder::new();
    if b.preemption_bound.is_none() {
        b.preemption_bound = Some(3);
    }
    b.check(f);
}

#[test]
fn blocking_recv_wakes_for_each_message_in_order() {
    model(|| {
        let q = Arc::new(ModelQueue::new(2));
        q.register(0, true);
        q.register(1, false);
        let tx = {
            let q = q.clone();
            thread::spawn(move || {
                q.send(0, 10, None).unwrap();
                q.send(0, 11, None).unwrap();
            })
        };
        assert_eq!(q.recv(1, None), Ok(10));
        assert_eq!(q.recv(1, None), Ok(11));
        tx.join().unwrap();
    });
}

#[test]
fn blocking_send_wakes_when_a_slot_frees() {
    model(|| {
        let q = Arc::new(ModelQueue::new(2));
        q.register(0, true);
        q.register(1, false);
        q.try_send(0, 1).unwrap();
        q.try_send(0, 2).unwrap();
        let tx = {
            let q = q.clone();
            thread::spawn(move || q.send(0, 3, None))
        };
        assert_eq!(q.recv(1, None), Ok(1));
        assert_eq!(q.recv(1, None), Ok(2));
        assert_eq!(q.recv(1, None), Ok(3));
        assert_eq!(tx.join().unwrap(), Ok(()));
    });
}

#[test]
fn two_producers_one_consumer_each_message_once() {
    model(|| {
        let q = Arc::new(ModelQueue::new(2));
        q.register(0, true);
        q.register(1, true);
        q.register(2, false);
        let ts: Vec<_> = (0..2)
            .map(|p| {
                let q = q.clone();
                thread::spawn(move || q.send(p, 100 + p as u64, None).unwrap())
            })
            .collect();
        let mut got = [q.recv(2, None).unwrap(), q.recv(2, None).unwrap()];
        got.sort();
        assert_eq!(got, [100, 101]);
        for t in ts {
            t.join().unwrap();
        }
    });
}

#[test]
fn two_consumers_split_the_messages() {
    model(|| {
        let q = Arc::new(ModelQueue::new(2));
        q.register(0, true);
        q.register(1, false);
        q.register(2, false);
        let c = {
            let q = q.clone();
            thread::spawn(move || q.recv(2, None).unwrap())
        };
        q.send(0, 7, None).unwrap();
        q.send(0, 8, None).unwrap();
        let mine = q.recv(1, None).unwrap();
        let theirs = c.join().unwrap();
        let mut got = [mine, theirs];
        got.sort();
        assert_eq!(got, [7, 8]);
    });
}

#[test]
fn last_sender_leaving_wakes_a_blocked_receiver_after_its_messages() {
    model(|| {
        let q = Arc::new(ModelQueue::new(2));
        q.register(0, true);
        q.register(1, false);
        let tx = {
            let q = q.clone();
            thread::spawn(move || {
                q.send(0, 5, None).unwrap();
                q.unregister(0, true);
            })
        };
        assert_eq!(q.recv(1, None), Ok(5));
        assert_eq!(
            q.recv(1, None),
            Err(CollectionError::Disconnected { peer: "sender" })
        );
        tx.join().unwrap();
    });
}

#[test]
fn close_wakes_blocked_senders_and_receivers() {
    model(|| {
        let q = Arc::new(ModelQueue::new(2));
        q.register(0, true);
        q.register(1, false);
        let rx = {
            let q = q.clone();
            thread::spawn(move || q.recv(1, None))
        };
        q.close();
        assert!(matches!(
            rx.join().unwrap(),
            Err(CollectionError::Disconnected { .. })
        ));
        assert!(matches!(
            q.send(0, 1, None),
            Err(CollectionError::Disconnected { .. })
        ));
    });
}

#[test]
fn receive_timeout_returns_timeout_or_the_message() {
    model(|| {
        let q = Arc::new(ModelQueue::new(2));
        q.register(0, true);
        q.register(1, false);
        let tx = {
            let q = q.clone();
            thread::spawn(move || q.try_send(0, 9).unwrap())
        };
        match q.recv(1, Some(Duration::from_millis(5))) {
            Ok(v) => assert_eq!(v, 9),
            Err(CollectionError::Timeout) => {
                tx.join().unwrap();
                assert_eq!(q.try_recv(1), Ok(9));
                return;
            }
            Err(e) => panic!("{e}"),
        }
        tx.join().unwrap();
    });
}

#[test]
fn claims_of_a_dead_producer_are_skipped_after_reaping() {
    model(|| {
        let q = Arc::new(ModelQueue::new(2));
        q.register(0, true);
        q.register(1, true);
        q.register(2, false);
        // Endpoint 0 dies holding a write claim on position 0.
        assert!(q.claim_and_die(0));
        let live = {
            let q = q.clone();
            thread::spawn(move || q.send(1, 42, None).unwrap())
        };
        let reaper = {
            let q = q.clone();
            thread::spawn(move || q.reap(0, true))
        };
        assert_eq!(q.recv(2, None), Ok(42));
        live.join().unwrap();
        assert_eq!(reaper.join().unwrap(), 1);
    });
}

#[test]
fn claims_of_a_dead_consumer_free_the_slot_for_producers() {
    model(|| {
        let q = Arc::new(ModelQueue::new(2));
        q.register(0, true);
        q.register(1, false);
        q.register(2, false);
        q.try_send(0, 1).unwrap();
        q.try_send(0, 2).unwrap();
        // Endpoint 1 dies reading position 0; the ring is full until it is reaped.
        assert!(q.claim_read_and_die(1));
        let tx = {
            let q = q.clone();
            thread::spawn(move || q.send(0, 3, None).unwrap())
        };
        let reaper = {
            let q = q.clone();
            thread::spawn(move || q.reap(1, false))
        };
        assert_eq!(q.recv(2, None), Ok(2));
        assert_eq!(q.recv(2, None), Ok(3));
        tx.join().unwrap();
        assert_eq!(reaper.join().unwrap(), 1);
    });
}

/// A blocked receiver killed inside its wait, asleep or just woken (before it could take
/// the message the wake-up was for), loses no wake-up: the other blocked receiver still
/// gets the message. A victim that gets through sends the message on; a second message
/// lets a victim that still waits at the end finish.
#[test]
fn receiver_killed_in_its_wait_loses_no_wakeup() {
    use relshm_sync::{KillAt, KillStage, killable};
    for wait in 0..2 {
        for stage in [KillStage::Asleep, KillStage::Woken] {
            model(move || {
                let q = Arc::new(ModelQueue::new(2));
                q.register(0, true);
                q.register(1, false);
                q.register(2, false);
                q.register(3, true);
                let victim = {
                    let q = q.clone();
                    thread::spawn(move || {
                        killable(KillAt { wait, stage }, || {
                            let v = q.recv(2, None).unwrap();
                            q.send(3, v, None).unwrap();
                        })
                    })
                };
                let survivor = {
                    let q = q.clone();
                    thread::spawn(move || q.recv(1, None).unwrap())
                };
                q.send(0, 7, None).unwrap();
                assert_eq!(survivor.join().unwrap(), 7);
                // Lets a victim that still waits finish.
                q.send(0, 8, None).unwrap();
                victim.join().unwrap();
            });
        }
    }
}
