//! The kill test: 100 rounds of a writer SIGKILLed at a random point while it inserts,
//! updates and removes on one Map and pushes and pops on one List (the map grows through
//! several rehashes over the rounds). After each kill the next user repairs through the
//! locks' owner-death report: verify() is clean and no insert that returned before the
//! kill is lost, no remove that returned is undone.

use rand::{Rng, SeedableRng, rngs::StdRng};
use relshm_collections::arena::Arena;
use relshm_collections::list::List;
use relshm_collections::map::Map;
use relshm_ptr::{Offset, Repr, SegRel};
use relshm_segment::{CreateOptions, Placement, Segment};
use relshm_testkit::{Exit, Scratch, fork_child};
use std::sync::atomic::Ordering;
use std::time::Duration;

const ROUNDS: u64 = 100;
const LIMIT: Duration = Duration::from_secs(60);
/// Scratch slots: inserts returned, removes returned, list pushes returned, writer ready.
const INSERTED: usize = 0;
const REMOVED: usize = 1;
const PUSHED: usize = 2;
const READY: usize = 3;
/// Marks a list element pushed only to be popped again.
const TEMP: u64 = 1 << 63;

fn key(round: u64, j: u64) -> u64 {
    round << 32 | j
}

/// The writer: op j inserts key j; every 4th op removes key j - 3, every 4th + 1 updates
/// key j - 1; pushes j to the list, and every 4th pushes and pops a temporary element.
fn writer<R: Repr>(
    make: for<'s> fn(&'s Segment) -> Arena<R>,
    seg: &Segment,
    round: u64,
    scratch: &Scratch,
) -> i32 {
    let mine = seg
        .reopen(Placement::Hint(
            0x6200_0000_0000 + (round as usize % 7) * (1 << 36),
        ))
        .unwrap();
    if mine.base() == seg.base() {
        return 2;
    }
    let arena = make(&mine);
    let map = Map::<u64, u64, R>::open_named(&arena, "map").unwrap();
    let list = List::<u64, R>::open_named(&arena, "list").unwrap();
    scratch.slot(READY).store(1, Ordering::Release);
    for j in 0.. {
        map.insert(key(round, j), j).unwrap();
        scratch.slot(INSERTED).store(j + 1, Ordering::Release);
        if j % 4 == 3 {
            assert_eq!(map.remove(&key(round, j - 3)).unwrap(), Some(j - 3 + 1000));
            scratch.slot(REMOVED).store(j + 1, Ordering::Release);
        }
        if j % 4 == 1 {
            assert!(map.update(&key(round, j - 1), |v| *v += 1000).unwrap());
        }
        list.push_back(key(round, j)).unwrap();
        scratch.slot(PUSHED).store(j + 1, Ordering::Release);
        if j % 4 == 2 {
            list.push_back(TEMP | key(round, j)).unwrap();
            assert_eq!(list.pop_back().unwrap(), Some(TEMP | key(round, j)));
        }
    }
    0
}

/// Checks what survived round `round` given the writer's progress counters.
fn check<R: Repr>(map: &Map<u64, u64, R>, round: u64, inserted: u64, removed: u64) {
    for j in 0..inserted + 1 {
        let got = map.get(&key(round, j)).unwrap();
        // The remove of key j is op j + 3's; done for sure if that op reported it.
        let removal_op = j + 3;
        let removed_for_sure = j % 4 == 0 && removal_op < removed;
        let removal_maybe = j % 4 == 0 && removal_op < inserted;
        if j == inserted {
            // The insert in flight: either way, but only with its own value.
            assert!(got.is_none() || got == Some(j) || got == Some(j + 1000));
        } else if removed_for_sure {
            assert_eq!(got, None, "round {round}: removed key {j} came back");
        } else if removal_maybe && got.is_none() {
        } else {
            let v = got.unwrap_or_else(|| {
                panic!("round {round}: key {j} lost (inserted {inserted}, removed {removed})")
            });
            assert!(v == j || v == j + 1000, "round {round}: key {j} holds {v}");
        }
    }
}

fn kill_rounds<R: Repr>(make: for<'s> fn(&'s Segment) -> Arena<R>) {
    let seg = Segment::create_unnamed(&CreateOptions::new(256 << 20)).unwrap();
    let arena = make(&seg);
    let map = Map::<u64, u64, R>::create_named(&arena, "map").unwrap();
    let list = List::<u64, R>::create_named(&arena, "list").unwrap();
    let mut rng = StdRng::seed_from_u64(0xdead);
    let mut survivors = 0u64;
    for round in 0..ROUNDS {
        let scratch = Scratch::new();
        let mut child = fork_child(|| writer(make, &seg, round, &scratch));
        // A random amount of work, then SIGKILL wherever the writer is.
        let ops = rng.gen_range(1..300);
        child.wait_until(&format!("round {round}"), LIMIT, || {
            scratch.slot(INSERTED).load(Ordering::Acquire) >= ops
        });
        std::thread::sleep(Duration::from_micros(rng.gen_range(0..200)));
        assert_eq!(child.kill_and_wait(), Exit::Signal(libc::SIGKILL));

        let inserted = scratch.slot(INSERTED).load(Ordering::Acquire);
        let removed = scratch.slot(REMOVED).load(Ordering::Acquire);
        let pushed = scratch.slot(PUSHED).load(Ordering::Acquire);
        // The first users after the kill repair through the locks; then all is clean.
        let len = map
            .verify()
            .unwrap_or_else(|e| panic!("round {round}: {e}"));
        check(&map, round, inserted, removed);
        list.verify()
            .unwrap_or_else(|e| panic!("round {round}: {e}"));
        let items = list.to_vec().unwrap();
        let mine: Vec<u64> = items
            .iter()
            .copied()
            .filter(|x| (x & !TEMP) >> 32 == round)
            .collect();
        let temps = mine.iter().filter(|x| *x & TEMP != 0).count();
        assert!(
            temps <= 1,
            "round {round}: at most the in-flight temporary survives"
        );
        let kept: Vec<u64> = mine.iter().copied().filter(|x| x & TEMP == 0).collect();
        let want: Vec<u64> = (0..pushed).map(|j| key(round, j)).collect();
        assert!(
            kept == want || (kept.len() == want.len() + 1 && kept[..want.len()] == want[..]),
            "round {round}: list holds {} of {pushed} returned pushes",
            kept.len()
        );
        survivors = len;
    }
    assert!(
        map.buckets().unwrap() > 1024,
        "rounds went through rehashes"
    );
    assert!(survivors > 0);
    // Most kills land inside a locked section (that is where the writer spends its time).
    let repairs = map.repairs() + list.repairs();
    println!("{repairs} repairs after {ROUNDS} kills");
    assert!(
        repairs >= ROUNDS / 10,
        "only {repairs} kills hit a held lock"
    );
    seg.heap().unwrap().verify().unwrap();
}

#[test]
fn killed_writers_leave_a_repairable_offset_map_and_list() {
    kill_rounds::<Offset>(|s| Arena::<Offset>::new(s).unwrap());
}

#[test]
fn killed_writers_leave_a_repairable_segrel_map_and_list() {
    kill_rounds::<SegRel>(|s| Arena::<SegRel>::new(s).unwrap());
}
