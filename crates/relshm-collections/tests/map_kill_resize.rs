//! Kills landing inside a resize: a writer inserts until just past a doubling point and is
//! SIGKILLed while it rehashes. The next user finishes the resize from the recorded
//! in-flight node; verify() is clean and every insert that returned is there.

use rand::{Rng, SeedableRng, rngs::StdRng};
use relshm_collections::arena::Arena;
use relshm_collections::map::Map;
use relshm_ptr::Offset;
use relshm_segment::{CreateOptions, Placement, Segment};
use relshm_testkit::{Exit, Scratch, fork_child};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

const ROUNDS: u64 = 12;
const LIMIT: Duration = Duration::from_secs(60);

#[test]
fn a_resizer_killed_mid_rehash_is_finished_by_the_next_user() {
    let mut rng = StdRng::seed_from_u64(0x5e12e);
    let mut hit = 0;
    for round in 0..ROUNDS {
        let seg = Segment::create_unnamed(&CreateOptions::new(64 << 20)).unwrap();
        let arena = Arena::<Offset>::new(&seg).unwrap();
        let map = Map::<u64, u64, Offset>::create_named(&arena, "map").unwrap();
        let scratch = Scratch::new();
        let mut child = fork_child(|| {
            let mine = seg.reopen(Placement::Hint(0x6500_0000_0000)).unwrap();
            let arena = Arena::<Offset>::new(&mine).unwrap();
            let map = Map::<u64, u64, Offset>::open_named(&arena, "map").unwrap();
            for k in 0.. {
                map.insert(k, k).unwrap();
                scratch.slot(0).store(k + 1, Ordering::Release);
            }
            0
        });
        // Once past 2^k entries, kill the writer as soon as a resize is under way (its
        // new table published, nodes moving), after a random few microseconds more.
        let at = 1u64 << rng.gen_range(12..16);
        child.wait_until(&format!("round {round}"), LIMIT, || {
            scratch.slot(0).load(Ordering::Acquire) >= at && map.resize_pending()
        });
        let spin = Instant::now() + Duration::from_micros(rng.gen_range(0..300));
        while Instant::now() < spin {
            std::hint::spin_loop();
        }
        assert_eq!(child.kill_and_wait(), Exit::Signal(libc::SIGKILL));
        let done = scratch.slot(0).load(Ordering::Acquire);
        hit += map.resize_pending() as u32;
        let len = map
            .verify()
            .unwrap_or_else(|e| panic!("round {round}: {e}"));
        assert!(!map.resize_pending());
        assert!(
            len == done || len == done + 1,
            "round {round}: {len} of {done}"
        );
        let r = map.read().unwrap();
        for k in 0..done {
            assert_eq!(r.get(&k).unwrap(), Some(k), "round {round}: key {k} lost");
        }
    }
    println!("{hit} of {ROUNDS} kills landed inside a resize");
    // The writer may finish a small resize before the signal lands, but not most of them.
    assert!(
        hit >= ROUNDS as u32 / 2,
        "only {hit} kills landed inside a resize"
    );
}
