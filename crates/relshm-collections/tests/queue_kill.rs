//! The kill test: producers and consumers SIGKILLed at random points, 100 rounds. No
//! message that `send` reported as sent is duplicated, none is lost except the at most two
//! a killed consumer can take with it (one it was reading, one it received but had not
//! recorded yet), FIFO per producer holds for every consumer, and nothing hangs.

mod queue_support;

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use queue_support::{queue, remap, segment};
use rand::{Rng, SeedableRng, rngs::StdRng};
use relshm_collections::CollectionError;
use relshm_collections::queue::QueueConfig;
use relshm_testkit::{Child, Exit, Scratch, fork_child};

const LIMIT: Duration = Duration::from_secs(60);
const PRODUCERS: usize = 2;
const CONSUMERS: usize = 2;
const PER: u64 = 3000;
/// Scratch slots: `[0, PRODUCERS)` how many messages producer p's `send` confirmed;
/// `ERRORS`: duplicates or reordering seen; `READY`: children registered.
const ERRORS: usize = 100;
const READY: usize = 101;
/// Scratch slot: producers whose sender is registered.
const SENDERS: usize = 102;

fn bitmap(seg: &relshm_segment::Segment, off: u64) -> &[AtomicU64] {
    let words = (PRODUCERS as u64 * PER).div_ceil(64);
    let p = seg.region().resolve(off, words * 8, 8).unwrap();
    // SAFETY: resolved in bounds and aligned; zeroed before use; atomics only.
    unsafe { std::slice::from_raw_parts(p.as_ptr().cast(), words as usize) }
}

fn mark(map: &[AtomicU64], msg: [u64; 2], scratch: &Scratch) {
    let bit = msg[0] * PER + msg[1];
    let old = map[(bit / 64) as usize].fetch_or(1 << (bit % 64), Ordering::AcqRel);
    if old & (1 << (bit % 64)) != 0 {
        scratch.slot(ERRORS).fetch_add(1, Ordering::AcqRel);
    }
}

fn round(rng: &mut StdRng) {
    let seg = segment(4 << 20);
    let q = queue::<[u64; 2]>(&seg, QueueConfig::with_capacity(32));
    let map_off = seg.alloc(PRODUCERS as u64 * PER / 8 + 8, 8).unwrap();
    bitmap(&seg, map_off)
        .iter()
        .for_each(|w| w.store(0, Ordering::Relaxed));
    let scratch = Scratch::new();
    let qoff = q.offset();
    let mut consumers: Vec<Child> = (0..CONSUMERS)
        .map(|_| {
            fork_child(|| {
                let (mine, q) = remap::<[u64; 2]>(&seg, qoff);
                let rx = q.receiver().unwrap();
                scratch.slot(READY).fetch_add(1, Ordering::AcqRel);
                let map = bitmap(&mine, map_off);
                let mut last = [-1i64; PRODUCERS];
                loop {
                    match rx.recv_timeout(LIMIT) {
                        Ok(m) => {
                            if m[1] as i64 <= last[m[0] as usize] {
                                scratch.slot(ERRORS).fetch_add(1, Ordering::AcqRel);
                            }
                            last[m[0] as usize] = m[1] as i64;
                            mark(map, m, &scratch);
                        }
                        Err(CollectionError::Disconnected { .. }) => return 0,
                        Err(e) => panic!("recv: {e}"),
                    }
                }
            })
        })
        .collect();
    scratch.wait_for(READY, CONSUMERS as u64, LIMIT);
    let mut producers: Vec<Child> = (0..PRODUCERS)
        .map(|p| {
            let (seg, scratch) = (&seg, &scratch);
            fork_child(move || {
                let (_mine, q) = remap::<[u64; 2]>(seg, qoff);
                let tx = q.sender().unwrap();
                scratch.slot(SENDERS).fetch_add(1, Ordering::AcqRel);
                for seq in 0..PER {
                    match tx.send_timeout(&[p as u64, seq], LIMIT) {
                        Ok(()) => scratch.slot(p).store(seq + 1, Ordering::Release),
                        Err(CollectionError::Disconnected { .. }) => return 0,
                        Err(e) => panic!("send: {e}"),
                    }
                }
                0
            })
        })
        .collect();

    // Kill only once every sender is registered: a receiver of a queue that never had a
    // sender waits for one (it is not disconnected), so killing every producer before it
    // registered would leave the surviving consumers waiting by design.
    scratch.wait_for(SENDERS, PRODUCERS as u64, LIMIT);
    // Kill a random non-empty subset at random moments.
    let mut killed_p = [false; PRODUCERS];
    let mut killed_c = [false; CONSUMERS];
    while !killed_p.iter().chain(&killed_c).any(|&k| k) {
        for k in killed_p.iter_mut().chain(killed_c.iter_mut()) {
            *k = rng.gen_bool(0.4);
        }
    }
    let mut victims: Vec<(bool, usize)> = (0..PRODUCERS)
        .filter(|&i| killed_p[i])
        .map(|i| (true, i))
        .chain((0..CONSUMERS).filter(|&i| killed_c[i]).map(|i| (false, i)))
        .collect();
    victims.sort_by_key(|_| rng.r#gen::<u32>());
    let mut dead = Vec::new();
    for (is_p, i) in victims {
        std::thread::sleep(Duration::from_micros(rng.gen_range(0..3000)));
        let child = if is_p {
            std::mem::replace(&mut producers[i], fork_child(|| 0))
        } else {
            std::mem::replace(&mut consumers[i], fork_child(|| 0))
        };
        // A child may have finished already; either way it is gone now.
        let exit = child.kill_and_wait();
        assert!(
            matches!(exit, Exit::Signal(libc::SIGKILL) | Exit::Code(0)),
            "{exit:?}"
        );
        dead.push(exit);
    }
    for c in producers.into_iter().chain(consumers) {
        assert_eq!(
            c.wait_timeout(LIMIT),
            Exit::Code(0),
            "a survivor failed or hung"
        );
    }

    // Drain what is left (the reaper resolves claims the dead left behind).
    q.reap_dead().unwrap();
    let rx = q.receiver().unwrap();
    let map = bitmap(&seg, map_off);
    loop {
        match rx.try_recv() {
            Ok(m) => mark(map, m, &scratch),
            Err(CollectionError::Empty | CollectionError::Disconnected { .. }) => break,
            Err(e) => panic!("drain: {e}"),
        }
    }
    assert_eq!(
        scratch.slot(ERRORS).load(Ordering::Acquire),
        0,
        "duplicate or reordered"
    );
    let killed_consumers = killed_c.iter().filter(|&&k| k).count() as u64;
    let mut missing = 0;
    for (p, &producer_killed) in killed_p.iter().enumerate() {
        let sent = scratch.slot(p).load(Ordering::Acquire);
        for seq in 0..PER {
            let bit = p as u64 * PER + seq;
            let got = map[(bit / 64) as usize].load(Ordering::Acquire) & (1 << (bit % 64)) != 0;
            if seq < sent && !got {
                missing += 1;
            }
            // Past what send confirmed, at most the one a killed producer published.
            if got && seq > sent {
                panic!("producer {p} confirmed {sent} but message {seq} arrived");
            }
            if got && seq == sent && !producer_killed {
                panic!("producer {p} confirmed {sent} and was not killed, yet {seq} arrived");
            }
        }
    }
    let sent: Vec<u64> = (0..PRODUCERS)
        .map(|p| scratch.slot(p).load(Ordering::Acquire))
        .collect();
    println!("confirmed {sent:?} of {PER} each, killed {killed_p:?} {killed_c:?}, lost {missing}");
    assert!(
        missing <= 2 * killed_consumers,
        "{missing} confirmed messages lost with {killed_consumers} consumers killed"
    );
}

#[test]
fn hundred_rounds_of_random_sigkills() {
    let seed = std::env::var("RELSHM_KILL_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| rand::thread_rng().r#gen::<u64>());
    println!("seed {seed} (set RELSHM_KILL_SEED to replay)");
    let mut rng = StdRng::seed_from_u64(seed);
    for r in 0..100 {
        print!("round {r}: ");
        round(&mut rng);
    }
}
