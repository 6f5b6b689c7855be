//! Multi-process queue tests: real forked processes, each mapping the segment at its own
//! address.

mod queue_support;

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytemuck::{Pod, Zeroable};
use queue_support::{queue, remap, segment};
use relshm_collections::CollectionError;
use relshm_collections::queue::QueueConfig;
use relshm_testkit::{Exit, Scratch, fork_child};

const LIMIT: Duration = Duration::from_secs(60);

#[derive(Clone, Copy, Pod, Zeroable, Debug, PartialEq, Eq)]
#[repr(C)]
struct Msg {
    producer: u32,
    seq: u32,
    check: u64,
}

fn check_of(producer: u32, seq: u32) -> u64 {
    (u64::from(producer) << 32 | u64::from(seq)).wrapping_mul(0x9e37_79b9_7f4a_7c15)
}

/// A bitmap of received messages in the segment (one bit per (producer, seq)).
fn bitmap(seg: &relshm_segment::Segment, off: u64, bits: u64) -> &[AtomicU64] {
    let p = seg.region().resolve(off, bits.div_ceil(64) * 8, 8).unwrap();
    // SAFETY: resolved in bounds and aligned; zeroed at allocation; atomics only.
    unsafe { std::slice::from_raw_parts(p.as_ptr().cast(), bits.div_ceil(64) as usize) }
}

fn run_p_by_c(producers: u32, consumers: u32, per: u32, capacity: u32) {
    let seg = segment(16 << 20);
    let q = queue::<Msg>(&seg, QueueConfig::with_capacity(capacity));
    let bits = u64::from(producers) * u64::from(per);
    let map_off = seg.alloc(bits.div_ceil(64) * 8, 8).unwrap();
    bitmap(&seg, map_off, bits)
        .iter()
        .for_each(|w| w.store(0, Ordering::Relaxed));
    let scratch = Scratch::new();
    let qoff = q.offset();
    // Slot 0: consumers ready; 1: errors; 2: received total.
    let mut kids = Vec::new();
    for _ in 0..consumers {
        kids.push(fork_child(|| {
            let (mine, q) = remap::<Msg>(&seg, qoff);
            let rx = q.receiver().unwrap();
            scratch.slot(0).fetch_add(1, Ordering::AcqRel);
            let map = bitmap(&mine, map_off, bits);
            let mut last = vec![-1i64; producers as usize];
            loop {
                match rx.recv() {
                    Ok(m) => {
                        let p = m.producer as usize;
                        let bad_fifo = i64::from(m.seq) <= last[p];
                        let bad_check = m.check != check_of(m.producer, m.seq);
                        last[p] = i64::from(m.seq);
                        let bit = u64::from(m.producer) * u64::from(per) + u64::from(m.seq);
                        let old =
                            map[(bit / 64) as usize].fetch_or(1 << (bit % 64), Ordering::AcqRel);
                        let dup = old & (1 << (bit % 64)) != 0;
                        if bad_fifo || bad_check || dup {
                            scratch.slot(1).fetch_add(1, Ordering::AcqRel);
                        }
                        scratch.slot(2).fetch_add(1, Ordering::AcqRel);
                    }
                    Err(CollectionError::Disconnected { .. }) => return 0,
                    Err(e) => panic!("recv: {e}"),
                }
            }
        }));
    }
    scratch.wait_for(0, u64::from(consumers), LIMIT);
    for p in 0..producers {
        let seg = &seg;
        kids.push(fork_child(move || {
            let (_mine, q) = remap::<Msg>(seg, qoff);
            let tx = q.sender().unwrap();
            for seq in 0..per {
                tx.send(&Msg {
                    producer: p,
                    seq,
                    check: check_of(p, seq),
                })
                .unwrap();
            }
            0
        }));
    }
    for k in kids {
        assert_eq!(k.wait_timeout(LIMIT), Exit::Code(0));
    }
    assert_eq!(
        scratch.slot(1).load(Ordering::Acquire),
        0,
        "duplicates, reordering or bad payloads"
    );
    assert_eq!(
        scratch.slot(2).load(Ordering::Acquire),
        bits,
        "every message exactly once"
    );
    let map = bitmap(&seg, map_off, bits);
    let set: u64 = map
        .iter()
        .map(|w| u64::from(w.load(Ordering::Acquire).count_ones()))
        .sum();
    assert_eq!(set, bits);
    assert!(q.is_empty());
}

#[test]
fn four_producers_by_four_consumers_exactly_once_fifo_per_producer() {
    run_p_by_c(4, 4, 20_000, 256);
}

#[test]
fn one_by_one_small_ring_blocks_both_ways() {
    run_p_by_c(1, 1, 20_000, 2);
}

#[test]
fn two_by_three_with_wraparound() {
    run_p_by_c(2, 3, 30_000, 16);
}

#[test]
fn blocking_receiver_wakes_for_every_message() {
    let seg = segment(4 << 20);
    let q = queue::<u64>(&seg, QueueConfig::with_capacity(8));
    let tx = q.sender().unwrap();
    let scratch = Scratch::new();
    let qoff = q.offset();
    const ROUNDS: u64 = 200;
    let child = fork_child(|| {
        let (_mine, q) = remap::<u64>(&seg, qoff);
        let rx = q.receiver().unwrap();
        scratch.slot(0).store(1, Ordering::Release);
        for i in 0..ROUNDS {
            // Spin 0: go to sleep at once, so each message must wake us.
            let m = rx.recv_bytes_spin(Some(LIMIT), 0).unwrap();
            assert_eq!(m.as_ref(), i.to_ne_bytes());
            scratch.slot(1).store(i + 1, Ordering::Release);
        }
        0
    });
    scratch.wait_for(0, 1, LIMIT);
    for i in 0..ROUNDS {
        // The receiver is asleep in the kernel before each message.
        let deadline = Instant::now() + LIMIT;
        while q.waiting_receivers() == 0 {
            assert!(Instant::now() < deadline, "receiver never slept");
            std::thread::sleep(Duration::from_micros(100));
        }
        tx.send(&i).unwrap();
        scratch.wait_for(1, i + 1, LIMIT);
    }
    assert!(child.wait_timeout(LIMIT).success());
}

#[test]
fn blocking_sender_wakes_when_space_frees() {
    let seg = segment(4 << 20);
    let q = queue::<u64>(&seg, QueueConfig::with_capacity(2));
    let rx = q.receiver().unwrap();
    let qoff = q.offset();
    let child = fork_child(|| {
        let (_mine, q) = remap::<u64>(&seg, qoff);
        let tx = q.sender().unwrap();
        for i in 0..500u64 {
            tx.send_bytes_spin(&i.to_ne_bytes(), Some(LIMIT), 0)
                .unwrap();
        }
        0
    });
    for i in 0..500u64 {
        if i % 50 == 0 {
            // Let the sender fill the ring and fall asleep.
            let deadline = Instant::now() + LIMIT;
            while q.waiting_senders() == 0 && q.len() < 2 {
                assert!(Instant::now() < deadline);
                std::thread::sleep(Duration::from_micros(100));
            }
        }
        assert_eq!(rx.recv_timeout(LIMIT).unwrap(), i);
    }
    assert!(child.wait_timeout(LIMIT).success());
}

#[test]
fn timeouts_return_on_time() {
    let seg = segment(4 << 20);
    let q = queue::<u64>(&seg, QueueConfig::with_capacity(2));
    let tx = q.sender().unwrap();
    let rx = q.receiver().unwrap();
    for t in [
        Duration::from_millis(1),
        Duration::from_millis(30),
        Duration::from_millis(150),
    ] {
        let start = Instant::now();
        assert_eq!(rx.recv_timeout(t), Err(CollectionError::Timeout));
        let took = start.elapsed();
        assert!(
            took >= t,
            "recv returned after {took:?}, before its {t:?} timeout"
        );
        assert!(
            took < t + Duration::from_secs(2),
            "recv timeout {t:?} took {took:?}"
        );
    }
    tx.try_send(&1).unwrap();
    tx.try_send(&2).unwrap();
    assert_eq!(tx.try_send(&3), Err(CollectionError::Full));
    let t = Duration::from_millis(80);
    let start = Instant::now();
    assert_eq!(tx.send_timeout(&3, t), Err(CollectionError::Timeout));
    assert!(start.elapsed() >= t && start.elapsed() < t + Duration::from_secs(2));
    // Polling (never sleeping) waits end at their deadline too.
    let start = Instant::now();
    assert_eq!(
        tx.send_bytes_spin(&3u64.to_ne_bytes(), Some(t), u32::MAX),
        Err(CollectionError::Timeout)
    );
    assert!(start.elapsed() >= t && start.elapsed() < t + Duration::from_secs(2));
    assert_eq!(rx.try_recv(), Ok(1));
    assert_eq!(rx.try_recv(), Ok(2));
    assert_eq!(rx.try_recv(), Err(CollectionError::Empty));
    let start = Instant::now();
    assert!(matches!(
        rx.recv_bytes_spin(Some(t), u32::MAX),
        Err(CollectionError::Timeout)
    ));
    assert!(start.elapsed() >= t && start.elapsed() < t + Duration::from_secs(2));
}

#[test]
fn sigkill_of_the_only_sender_disconnects_a_blocked_receiver() {
    let seg = segment(4 << 20);
    let q = queue::<u64>(&seg, QueueConfig::with_capacity(8));
    let rx = q.receiver().unwrap();
    let scratch = Scratch::new();
    let qoff = q.offset();
    let child = fork_child(|| {
        let (_mine, q) = remap::<u64>(&seg, qoff);
        let tx = q.sender().unwrap();
        tx.send(&7).unwrap();
        scratch.slot(0).store(1, Ordering::Release);
        loop {
            std::thread::sleep(Duration::from_secs(1));
        }
    });
    scratch.wait_for(0, 1, LIMIT);
    assert_eq!(rx.recv_timeout(LIMIT), Ok(7));
    assert_eq!(q.endpoints(), (1, 1));
    let waiter = std::thread::spawn({
        let q = q.clone();
        move || {
            let deadline = Instant::now() + LIMIT;
            while q.waiting_receivers() == 0 {
                assert!(Instant::now() < deadline);
                std::thread::sleep(Duration::from_micros(100));
            }
        }
    });
    let killer = std::thread::spawn(move || {
        waiter.join().unwrap();
        let at = Instant::now();
        assert_eq!(child.kill_and_wait(), Exit::Signal(libc::SIGKILL));
        at
    });
    let r = rx.recv_timeout(LIMIT);
    let detected = Instant::now();
    let killed_at = killer.join().unwrap();
    assert_eq!(r, Err(CollectionError::Disconnected { peer: "sender" }));
    println!(
        "SIGKILL detected after {:?}",
        detected.saturating_duration_since(killed_at)
    );
    assert_eq!(q.endpoints(), (0, 1));
}

#[test]
fn sigkill_of_the_only_receiver_disconnects_a_blocked_sender() {
    let seg = segment(4 << 20);
    let q = queue::<u64>(&seg, QueueConfig::with_capacity(2));
    let tx = q.sender().unwrap();
    let scratch = Scratch::new();
    let qoff = q.offset();
    let child = fork_child(|| {
        let (_mine, q) = remap::<u64>(&seg, qoff);
        let _rx = q.receiver().unwrap();
        scratch.slot(0).store(1, Ordering::Release);
        loop {
            std::thread::sleep(Duration::from_secs(1));
        }
    });
    scratch.wait_for(0, 1, LIMIT);
    tx.send(&1).unwrap();
    tx.send(&2).unwrap();
    let killer = std::thread::spawn({
        let q = q.clone();
        move || {
            let deadline = Instant::now() + LIMIT;
            while q.waiting_senders() == 0 {
                assert!(Instant::now() < deadline);
                std::thread::sleep(Duration::from_micros(100));
            }
            child.kill_and_wait()
        }
    });
    assert_eq!(
        tx.send_timeout(&3, LIMIT),
        Err(CollectionError::Disconnected { peer: "receiver" })
    );
    assert_eq!(killer.join().unwrap(), Exit::Signal(libc::SIGKILL));
}

#[test]
fn graceful_drop_and_close_disconnect() {
    let seg = segment(4 << 20);
    let q = queue::<u64>(&seg, QueueConfig::with_capacity(4));
    let rx = q.receiver().unwrap();
    let tx = q.sender().unwrap();
    tx.send(&5).unwrap();
    drop(tx);
    // Messages sent before the last sender left are still delivered.
    assert_eq!(rx.recv(), Ok(5));
    assert_eq!(
        rx.recv(),
        Err(CollectionError::Disconnected { peer: "sender" })
    );
    let tx = q.sender().unwrap();
    tx.send(&6).unwrap();
    assert_eq!(rx.recv(), Ok(6));
    q.close();
    assert!(matches!(
        tx.send(&7),
        Err(CollectionError::Disconnected { .. })
    ));
    assert!(matches!(
        rx.recv(),
        Err(CollectionError::Disconnected { .. })
    ));
}

#[test]
fn large_messages_cross_processes_zero_copy_and_freed() {
    let seg = segment(16 << 20);
    let q = queue::<u8>(&seg, QueueConfig::with_capacity(16));
    let heap = seg.heap().unwrap();
    let before = heap.stats().unwrap();
    let rx = q.receiver().unwrap();
    let qoff = q.offset();
    let child = fork_child(|| {
        let (_mine, q) = remap::<u8>(&seg, qoff);
        let tx = q.sender().unwrap();
        for i in 0..64u32 {
            let len = 300 + (i as usize) * 4099;
            let msg: Vec<u8> = (0..len).map(|j| (j as u32 ^ i) as u8).collect();
            tx.send_bytes(&msg, Some(LIMIT)).unwrap();
        }
        0
    });
    for i in 0..64u32 {
        let m = rx.recv_bytes(Some(LIMIT)).unwrap();
        let len = 300 + (i as usize) * 4099;
        assert_eq!(m.len(), len);
        assert!(
            m.iter()
                .enumerate()
                .all(|(j, &b)| b == (j as u32 ^ i) as u8)
        );
        assert!(matches!(
            m,
            relshm_collections::queue::Message::Large { .. }
        ));
    }
    assert!(child.wait_timeout(LIMIT).success());
    assert_eq!(
        heap.stats().unwrap().used_bytes,
        before.used_bytes,
        "every payload freed"
    );
}

#[test]
fn reclaim_frees_what_a_killed_receiver_held() {
    let seg = segment(16 << 20);
    let q = queue::<u8>(&seg, QueueConfig::with_capacity(16));
    let heap = seg.heap().unwrap();
    let before = heap.stats().unwrap();
    let tx = q.sender().unwrap();
    let scratch = Scratch::new();
    let qoff = q.offset();
    tx.send_bytes(&[1u8; 10_000], None).unwrap();
    tx.send_bytes(&[2u8; 20_000], None).unwrap();
    let child = fork_child(|| {
        let (_mine, q) = remap::<u8>(&seg, qoff);
        let rx = q.receiver().unwrap();
        let held = rx.recv_bytes(Some(LIMIT)).unwrap();
        assert_eq!(held.len(), 10_000);
        scratch.slot(0).store(1, Ordering::Release);
        loop {
            std::thread::sleep(Duration::from_secs(1));
        }
    });
    scratch.wait_for(0, 1, LIMIT);
    assert_eq!(child.kill_and_wait(), Exit::Signal(libc::SIGKILL));
    // The held message leaks until reclaimed; the queued one is still the queue's.
    assert_eq!(q.reclaim().unwrap(), 1);
    let rx = q.receiver().unwrap();
    assert_eq!(rx.try_recv_bytes().unwrap().len(), 20_000);
    assert_eq!(q.reclaim().unwrap(), 0);
    assert_eq!(heap.stats().unwrap().used_bytes, before.used_bytes);
}

#[test]
fn destroy_waits_for_live_endpoints_reaps_dead_ones_and_frees_everything() {
    let seg = segment(4 << 20);
    let heap = seg.heap().unwrap();
    let before = heap.stats().unwrap().used_bytes;
    let q = queue::<u8>(&seg, QueueConfig::with_capacity(8));
    let qoff = q.offset();
    // A child registers a sender, queues a large message and exits without unregistering.
    let child = fork_child(|| {
        let (_mine, q) = remap::<u8>(&seg, qoff);
        let tx = q.sender().unwrap();
        tx.send_bytes(&[9; 3000], Some(LIMIT)).unwrap();
        std::mem::forget(tx);
        0
    });
    assert_eq!(child.wait_timeout(LIMIT), Exit::Code(0));
    let rx = q.receiver().unwrap();
    assert_eq!(q.endpoints(), (1, 1));
    // A live receiver: refused, nothing freed, and the queue is closed for it.
    assert_eq!(q.clone().destroy(), Ok(false));
    assert!(heap.stats().unwrap().used_bytes > before);
    let tx = q.sender().unwrap();
    assert!(matches!(
        tx.try_send_bytes(b"late"),
        Err(CollectionError::Disconnected { .. })
    ));
    drop((tx, rx));
    // The dead child's registration is reaped; its queued message is freed with the queue.
    assert_eq!(q.destroy(), Ok(true));
    assert_eq!(heap.stats().unwrap().used_bytes, before);
    heap.verify().unwrap();
}

/// A message larger than the whole segment: the sender (another process, at another
/// address) grows the segment for it, and the receiver's mapping, made before the growth,
/// picks the new bytes up to read it in place. Named queues check their element type.
#[test]
fn a_large_message_grows_the_segment_for_a_receiver_elsewhere() {
    use relshm_collections::queue::Queue;
    use relshm_segment::{CreateOptions, Segment};
    let seg = Segment::create_unnamed(&CreateOptions::new(1 << 20).max_size(64 << 20)).unwrap();
    let arena = queue_support::arena(&seg);
    let q = Queue::<u8>::create_named(&arena, "bytes", QueueConfig::with_capacity(4)).unwrap();
    let rx = q.receiver().unwrap();
    let big = |i: usize| (i % 251) as u8;
    const LEN: usize = 8 << 20;
    let child = fork_child(|| {
        let (_mine, q) = remap::<u8>(&seg, q.offset());
        let msg: Vec<u8> = (0..LEN).map(big).collect();
        q.sender().unwrap().send_bytes(&msg, Some(LIMIT)).unwrap();
        0
    });
    let m = rx.recv_bytes(Some(LIMIT)).unwrap();
    assert_eq!(child.wait_timeout(LIMIT), Exit::Code(0));
    assert!(matches!(
        m,
        relshm_collections::queue::Message::Large { .. }
    ));
    assert_eq!(m.len(), LEN);
    assert!(m.iter().enumerate().all(|(i, &b)| b == big(i)));
    assert!(
        seg.size() > LEN as u64,
        "the segment grew: {} bytes",
        seg.size()
    );
    drop(m);
    // The record says what the queue holds: another element type is refused.
    assert!(matches!(
        Queue::<u64>::open_named(&arena, "bytes"),
        Err(CollectionError::RecordMismatch { .. })
    ));
    assert_eq!(
        Queue::<u8>::open_named(&arena, "bytes").unwrap().offset(),
        q.offset()
    );
}
