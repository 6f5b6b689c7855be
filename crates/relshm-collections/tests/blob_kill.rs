//! The kill test of variable-size data: 100 rounds of a writer killed at a random point
//! while it inserts, replaces and removes values of 0..4 KiB in one `BytesMap` and pushes
//! to, and inserts and removes in the middle of (each a reallocation), one `Vec<u64>`.
//! Half the rounds SIGKILL the writer after a random amount of work, half make it exit at
//! a random store (every allocator store and every kill point of the collections counts),
//! which lands kills inside reallocations and node replacements precisely.
//!
//! After each kill the next user repairs through the locks' owner-death report: `verify`
//! is clean (which for both collections includes: the heap blocks they own are exactly
//! those they link, so nothing a dead writer allocated or unlinked is leaked), and every
//! operation that returned before the kill is there. At the end, everything removed, the
//! heap holds what it held before the rounds.

use rand::{Rng, SeedableRng, rngs::StdRng};
use relshm_collections::arena::Arena;
use relshm_collections::bytes_map::BytesMap;
use relshm_collections::vec::Vec as SegVec;
use relshm_ptr::{BaseRel, Offset, Repr};
use relshm_segment::{CreateOptions, Placement, Segment};
use relshm_testkit::{Exit, Scratch, fork_child};
use std::sync::atomic::Ordering;
use std::time::Duration;

const ROUNDS: u64 = 100;
const LIMIT: Duration = Duration::from_secs(60);
/// Scratch slots: map inserts returned, removes returned, vector pushes returned.
const INSERTED: usize = 0;
const REMOVED: usize = 1;
const PUSHED: usize = 2;
/// Marks a vector element inserted at the front only to be removed again.
const TEMP: u64 = 1 << 63;

fn key(round: u64, j: u64) -> [u8; 16] {
    let mut k = [0u8; 16];
    k[..8].copy_from_slice(&round.to_le_bytes());
    k[8..].copy_from_slice(&j.to_le_bytes());
    k
}

/// Value `gen` of key `j`: 0..4 KiB of a byte pattern naming both.
fn value(j: u64, generation: u64) -> Vec<u8> {
    let len = ((j * 613 + generation * 97) % 4097) as usize;
    (0..len)
        .map(|i| (i as u64 ^ j ^ (generation << 7)) as u8)
        .collect()
}

fn elem(round: u64, j: u64) -> u64 {
    round << 32 | j
}

/// The writer: op j inserts key j; every 3rd op replaces key j - 1's value, every 4th
/// removes key j - 3; then pushes j to the vector, and every 5th op inserts a temporary
/// element at the front and removes it again (two reallocations).
fn writer<R: Repr>(
    make: for<'s> fn(&'s Segment) -> Arena<R>,
    seg: &Segment,
    round: u64,
    die_at: Option<u64>,
    scratch: &Scratch,
) -> i32 {
    let mine = seg.reopen(Placement::Anywhere).unwrap();
    if mine.base() == seg.base() {
        return 2;
    }
    let arena = make(&mine);
    let map = BytesMap::<R>::open_named(&arena, "blobs").unwrap();
    let v = SegVec::<u64, R>::open_named(&arena, "vec").unwrap();
    #[cfg(debug_assertions)]
    if let Some(n) = die_at {
        relshm_segment::heap::exit_before_store(n);
    }
    #[cfg(not(debug_assertions))]
    let _ = die_at;
    for j in 0.. {
        assert!(!map.insert(&key(round, j), &value(j, 0)).unwrap());
        scratch.slot(INSERTED).store(j + 1, Ordering::Release);
        if j % 3 == 2 {
            assert!(map.insert(&key(round, j - 1), &value(j - 1, 1)).unwrap());
        }
        if j % 4 == 3 {
            assert!(map.remove(&key(round, j - 3)).unwrap());
            scratch.slot(REMOVED).store(j + 1, Ordering::Release);
        }
        v.push(elem(round, j)).unwrap();
        scratch.slot(PUSHED).store(j + 1, Ordering::Release);
        if j % 5 == 4 {
            v.insert(0, TEMP | elem(round, j)).unwrap();
            assert_eq!(v.remove(0).unwrap(), TEMP | elem(round, j));
        }
    }
    0
}

/// What survived round `round`, given the writer's progress counters.
fn check_map<R: Repr>(map: &BytesMap<R>, round: u64, inserted: u64, removed: u64) {
    for j in 0..=inserted {
        let got = map.get(&key(round, j)).unwrap();
        let removal_op = j + 3;
        let removed_for_sure = j % 4 == 0 && removal_op < removed;
        let removal_maybe = j % 4 == 0 && removal_op <= inserted;
        let ok_value = |v: &Vec<u8>| *v == value(j, 0) || *v == value(j, 1);
        if j == inserted {
            // The insert in flight: either way, whole.
            assert!(
                got.as_ref().is_none_or(ok_value),
                "round {round}: key {j} torn"
            );
        } else if removed_for_sure {
            assert_eq!(got, None, "round {round}: removed key {j} came back");
        } else if removal_maybe && got.is_none() {
        } else {
            let v = got.unwrap_or_else(|| {
                panic!("round {round}: key {j} lost (inserted {inserted}, removed {removed})")
            });
            assert!(
                ok_value(&v),
                "round {round}: key {j} holds a value it never had"
            );
        }
    }
}

fn check_vec<R: Repr>(v: &SegVec<u64, R>, round: u64, pushed: u64) {
    let mine: Vec<u64> = v
        .to_vec()
        .unwrap()
        .into_iter()
        .filter(|x| (x & !TEMP) >> 32 == round)
        .collect();
    let temps = mine.iter().filter(|x| *x & TEMP != 0).count();
    assert!(
        temps <= 1,
        "round {round}: at most the in-flight temporary survives"
    );
    let kept: Vec<u64> = mine.into_iter().filter(|x| x & TEMP == 0).collect();
    let want: Vec<u64> = (0..pushed).map(|j| elem(round, j)).collect();
    assert!(
        kept == want || (kept.len() == want.len() + 1 && kept[..want.len()] == want[..]),
        "round {round}: the vector holds {} of {pushed} returned pushes",
        kept.len()
    );
}

fn kill_rounds<R: Repr>(make: for<'s> fn(&'s Segment) -> Arena<R>) {
    let seg = Segment::create_unnamed(&CreateOptions::new(256 << 20)).unwrap();
    let heap = seg.heap().unwrap();
    heap.flush_cache().unwrap();
    let arena = make(&seg);
    let map = BytesMap::<R>::create_named(&arena, "blobs").unwrap();
    let v = SegVec::<u64, R>::create_named(&arena, "vec").unwrap();
    heap.flush_cache().unwrap();
    let mut rng = StdRng::seed_from_u64(0xb10b);
    let mut exits = [0u64; 2];
    for round in 0..ROUNDS {
        let scratch = Scratch::new();
        let die_at = (cfg!(debug_assertions) && round % 2 == 1).then(|| rng.gen_range(1..3000));
        let mut child = fork_child(|| writer(make, &seg, round, die_at, &scratch));
        if die_at.is_some() {
            let exit = child.wait_timeout(LIMIT);
            assert!(
                matches!(exit, Exit::Code(77)),
                "round {round}: the writer did not die at its store: {exit:?}"
            );
            exits[1] += 1;
        } else {
            let ops = rng.gen_range(1..120);
            child.wait_until(&format!("round {round}"), LIMIT, || {
                scratch.slot(INSERTED).load(Ordering::Acquire) >= ops
            });
            std::thread::sleep(Duration::from_micros(rng.gen_range(0..300)));
            assert_eq!(child.kill_and_wait(), Exit::Signal(libc::SIGKILL));
            exits[0] += 1;
        }
        let inserted = scratch.slot(INSERTED).load(Ordering::Acquire);
        let removed = scratch.slot(REMOVED).load(Ordering::Acquire);
        let pushed = scratch.slot(PUSHED).load(Ordering::Acquire);
        map.verify()
            .unwrap_or_else(|e| panic!("round {round}: {e}"));
        check_map(&map, round, inserted, removed);
        v.verify().unwrap_or_else(|e| panic!("round {round}: {e}"));
        check_vec(&v, round, pushed);
    }
    let repairs = map.repairs() + v.repairs();
    println!("{repairs} repairs after {ROUNDS} deaths ({exits:?} killed / exited at a store)");
    assert!(
        repairs >= ROUNDS / 10,
        "only {repairs} deaths hit a held lock"
    );
    // Nothing leaked: emptied, the heap holds what it held before the rounds, but for the
    // map's grown table.
    let keys: Vec<Vec<u8>> = map.entries().unwrap().into_iter().map(|(k, _)| k).collect();
    for k in &keys {
        assert!(map.remove(k).unwrap());
    }
    v.clear().unwrap();
    v.shrink_to_fit().unwrap();
    heap.reclaim_dead_owners().unwrap();
    heap.flush_cache().unwrap();
    assert_eq!(map.verify().unwrap(), 0);
    assert_eq!(v.verify().unwrap(), 0);
    let theirs: Vec<u64> = heap
        .owned_allocations()
        .unwrap()
        .iter()
        .map(|(o, _)| *o)
        .collect();
    assert_eq!(
        theirs.len(),
        1,
        "only the map's table is left owned: {theirs:?}"
    );
    heap.verify().unwrap();
}

#[test]
fn killed_writers_leave_a_repairable_offset_bytes_map_and_vec() {
    kill_rounds::<Offset>(|s| Arena::<Offset>::new(s).unwrap());
}

#[test]
fn killed_writers_leave_a_repairable_baserel_bytes_map_and_vec() {
    kill_rounds::<BaseRel>(|s| Arena::<BaseRel>::new(s).unwrap());
}
