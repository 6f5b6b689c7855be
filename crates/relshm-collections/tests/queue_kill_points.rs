//! No leak at any kill point of a queue sender or receiver: every heap block a large
//! message uses is owned by a record that reclaim finds, whatever instant its process dies.
//!
//! The sweeps run a fixed script in a forked child (mapping the segment at another
//! address) that `_exit`s before its n-th fault point (every allocator store, plus the
//! kill points the queue marks: after the allocation, after the header, once queued,
//! before a receiver takes a message), for every n until the script completes. After
//! each death the parent drains, reclaims and compares the heap's used bytes with the
//! start. The stress test SIGKILLs senders at random moments of a stream of large sends.
#![cfg(debug_assertions)]

mod queue_support;

use std::time::Duration;

use queue_support::{
    LARGE, LIMIT, kill_point_config, queue, remap, segment, sweep_kill_points, used,
};
use rand::{Rng, SeedableRng, rngs::StdRng};
use relshm_collections::CollectionError;
use relshm_collections::queue::{Queue, QueueConfig};
use relshm_segment::Segment;
use relshm_segment::heap::exit_before_store;
use relshm_testkit::{Exit, Scratch, fork_child};

/// Receives everything queued (dropping it) and reclaims what the dead left.
fn drain_and_reclaim(q: &Queue<u8>) {
    q.reap_dead().unwrap();
    let rx = q.receiver().unwrap();
    loop {
        match rx.try_recv_bytes() {
            Ok(m) => drop(m),
            Err(CollectionError::Empty | CollectionError::Disconnected { .. }) => break,
            Err(e) => panic!("drain: {e}"),
        }
    }
    drop(rx);
    q.reclaim().unwrap();
}

/// One round's set-up; fields drop in order (the parent's endpoint before its mapping).
struct Case {
    keep: Option<relshm_collections::queue::Receiver<u8>>,
    q: Queue<u8>,
    seg: Segment,
    before: u64,
}

/// Runs `script` in a child that dies before its n-th fault point, for n = 1, 2, ...
/// until it completes (see `sweep_kill_points`); after each death the parent drains and
/// reclaims. Returns how many points were swept; panics listing every leak.
fn sweep(name: &str, setup: impl Fn() -> Case, script: impl Fn(&Queue<u8>)) -> u64 {
    sweep_kill_points(name, |n| {
        let Case {
            keep,
            q,
            seg,
            before,
        } = setup();
        let qoff = q.offset();
        let exit = fork_child(|| {
            let (_mine, q) = remap::<u8>(&seg, qoff);
            exit_before_store(n);
            script(&q);
            exit_before_store(0);
            0
        })
        .wait_timeout(LIMIT);
        drop(keep);
        drain_and_reclaim(&q);
        seg.heap().unwrap().verify().unwrap();
        (exit, used(&seg) as i64 - before as i64)
    })
}

#[test]
fn a_sender_dying_at_any_point_of_large_sends_leaks_nothing() {
    // The parent holds a receiver (so sends are not disconnected) and drains afterwards.
    let points = sweep(
        "sender",
        || {
            let seg = segment(1 << 20);
            let q = queue(&seg, kill_point_config());
            let keep = Some(q.receiver().unwrap());
            let before = used(&seg);
            Case {
                keep,
                q,
                seg,
                before,
            }
        },
        |q| {
            let tx = q.sender().unwrap();
            // Stage, allocate, fill, queue, publish; twice, so the second send's points
            // come after the first message is queued.
            tx.send_bytes(&[1; LARGE], Some(LIMIT)).unwrap();
            tx.send_bytes(&[2; LARGE], Some(LIMIT)).unwrap();
            // A send that fails (the queue is full) gives its block back.
            for _ in 0..4 {
                let _ = tx.try_send_bytes(&[3; LARGE]);
            }
        },
    );
    assert!(points > 20, "only {points} kill points");
}

#[test]
fn a_receiver_dying_at_any_point_of_large_receives_leaks_nothing() {
    let points = sweep(
        "receiver",
        || {
            let seg = segment(1 << 20);
            let q = queue(&seg, kill_point_config());
            let before = used(&seg);
            let tx = q.sender().unwrap();
            for i in 0..3 {
                tx.send_bytes(&[i; LARGE], None).unwrap();
            }
            drop(tx);
            Case {
                keep: None,
                q,
                seg,
                before,
            }
        },
        |q| {
            let rx = q.receiver().unwrap();
            // Mid-receive, then holding one message while receiving the next, then drop.
            let a = rx.recv_bytes(Some(LIMIT)).unwrap();
            let b = rx.recv_bytes(Some(LIMIT)).unwrap();
            assert_eq!((a[0], b[0]), (0, 1));
            drop(a);
            rx.recv_with(Some(LIMIT), 0, |m| assert_eq!(m[0], 2))
                .unwrap();
            drop(b);
        },
    );
    assert!(points > 10, "only {points} kill points");
}

/// A child that sends large messages until it is killed.
fn stream_sender(seg: &Segment, qoff: u64, scratch: &Scratch, slot: usize) -> i32 {
    let (_mine, q) = remap::<u8>(seg, qoff);
    let tx = q.sender().unwrap();
    let mut i = 0u64;
    loop {
        // Large enough that filling one takes a while: kills land inside sends.
        let len = 50_000 + (i as usize * 7919) % 400_000;
        match tx.send_bytes(&vec![i as u8; len], Some(LIMIT)) {
            Ok(()) => {
                scratch
                    .slot(slot)
                    .fetch_add(1, std::sync::atomic::Ordering::AcqRel);
            }
            Err(CollectionError::Disconnected { .. }) => return 0,
            Err(e) => panic!("send: {e}"),
        }
        i += 1;
    }
}

#[test]
fn senders_sigkilled_mid_stream_leak_nothing() {
    const KILLS: usize = 40;
    let seed = std::env::var("RELSHM_KILL_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| rand::thread_rng().r#gen::<u64>());
    eprintln!("seed {seed} (set RELSHM_KILL_SEED to replay)");
    let mut rng = StdRng::seed_from_u64(seed);
    let seg = segment(32 << 20);
    let heap = seg.heap().unwrap();
    let q = queue(&seg, QueueConfig::with_capacity(4));
    let before = heap.stats().unwrap().used_bytes;
    let scratch = Scratch::new();
    let qoff = q.offset();
    let mut leaked_by_kill = Vec::new();
    {
        let rx = q.receiver().unwrap();
        for k in 0..KILLS {
            let sent = scratch.slot(0).load(std::sync::atomic::Ordering::Acquire);
            let child = fork_child(|| stream_sender(&seg, qoff, &scratch, 0));
            // Let it send a few, reading meanwhile so it never blocks for long.
            let target = sent + rng.gen_range(1..6);
            while scratch.slot(0).load(std::sync::atomic::Ordering::Acquire) < target {
                let _ = rx.recv_bytes(Some(Duration::from_millis(1)));
            }
            for _ in 0..rng.gen_range(0..3) {
                let _ = rx.try_recv_bytes();
            }
            std::thread::sleep(Duration::from_micros(rng.gen_range(0..2000)));
            let exit = child.kill_and_wait();
            assert!(
                matches!(exit, Exit::Signal(libc::SIGKILL)),
                "kill {k}: {exit:?}"
            );
            // Drain and reclaim after every kill, so each kill's leak is seen on its own.
            while rx.try_recv_bytes().is_ok() {}
            q.reclaim().unwrap();
            while rx.try_recv_bytes().is_ok() {}
            q.reclaim().unwrap();
            let now = heap.stats().unwrap().used_bytes;
            leaked_by_kill.push(now as i64 - before as i64);
        }
    }
    drain_and_reclaim(&q);
    heap.verify().unwrap();
    let after = heap.stats().unwrap().used_bytes;
    let leaky = leaked_by_kill.iter().filter(|&&b| b != 0).count();
    eprintln!(
        "{KILLS} senders SIGKILLed mid-stream ({} messages sent): used bytes {before} before, \
         {after} after; kills after which bytes stayed in use: {leaky}",
        scratch.slot(0).load(std::sync::atomic::Ordering::Acquire)
    );
    assert_eq!(
        after,
        before,
        "bytes leaked: {}",
        after as i64 - before as i64
    );
}
