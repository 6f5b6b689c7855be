//! Multi-process stress: 3 processes, each mapping the segment at its own address, do
//! mixed operations on one Map and one List at once. The final map equals the merge of
//! every process's own log (each process writes its own keys, reads everyone's), every
//! pushed list element is in the list or in the log of popped ones exactly once, and
//! verify() is clean. The map grows (rehashes) while the others use it.

use rand::{Rng, SeedableRng, rngs::StdRng};
use relshm_collections::arena::Arena;
use relshm_collections::list::List;
use relshm_collections::map::Map;
use relshm_ptr::{Offset, SegRel};
use relshm_segment::{CreateOptions, Placement, Segment};
use relshm_testkit::{Scratch, fork_child};
use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::time::Duration;

const PROCS: u64 = 3;
const OPS: u64 = 10_000;
const KEYS: u64 = 1500;
const LIMIT: Duration = Duration::from_secs(120);

/// What process `p` does on the map: a deterministic sequence, so the parent can replay
/// it. Process `p` writes keys `k ≡ p (mod PROCS)` only.
fn map_log(p: u64) -> Vec<(u8, u64, u64)> {
    let mut rng = StdRng::seed_from_u64(0x5eed + p);
    (0..OPS)
        .map(|_| {
            let k = rng.gen_range(0..KEYS) * PROCS + p;
            (rng.gen_range(0..10u8), k, rng.r#gen::<u32>() as u64)
        })
        .collect()
}

fn expected() -> HashMap<u64, u64> {
    let mut m = HashMap::new();
    for p in 0..PROCS {
        for (op, k, v) in map_log(p) {
            match op {
                0..=4 => {
                    m.insert(k, v);
                }
                5 | 6 => {
                    m.remove(&k);
                }
                7 => {
                    if let Some(x) = m.get_mut(&k) {
                        *x += 1;
                    }
                }
                _ => {}
            }
        }
    }
    m
}

fn worker<R: relshm_ptr::Repr>(
    arena: &Arena<R>,
    p: u64,
    popped: &List<u64, R>,
) -> Result<(), String> {
    let map = Map::<u64, u64, R>::open_named(arena, "map").map_err(|e| e.to_string())?;
    let list = List::<u64, R>::open_named(arena, "list").map_err(|e| e.to_string())?;
    let e = |e: relshm_collections::arena::CollectionError| e.to_string();
    let mut own = HashMap::new();
    for (i, (op, k, v)) in map_log(p).into_iter().enumerate() {
        match op {
            0..=4 => {
                let old = map.insert(k, v).map_err(e)?;
                if old != own.insert(k, v) {
                    return Err(format!("insert {k}: got old {old:?}"));
                }
            }
            5 | 6 => {
                let old = map.remove(&k).map_err(e)?;
                if old != own.remove(&k) {
                    return Err(format!("remove {k}: got {old:?}"));
                }
            }
            7 => {
                let hit = map.update(&k, |x| *x += 1).map_err(e)?;
                if hit != own.contains_key(&k) {
                    return Err(format!("update {k}: hit {hit}"));
                }
                if let Some(x) = own.get_mut(&k) {
                    *x += 1;
                }
            }
            8 => {
                // Own keys read back exactly; others' keys just must not fail.
                if map.get(&k).map_err(e)? != own.get(&k).copied() {
                    return Err(format!("get {k} disagrees with this process's log"));
                }
                map.get(&(k + 1)).map_err(e)?;
            }
            _ => {
                let tag = p << 32 | i as u64;
                if i % 3 == 0 {
                    list.push_front(tag).map_err(e)?;
                } else {
                    list.push_back(tag).map_err(e)?;
                }
                if i % 2 == 0
                    && let Some(x) = list.pop_front().map_err(e)?
                {
                    popped.push_back(x).map_err(e)?;
                }
            }
        }
    }
    Ok(())
}

fn pushed() -> Vec<u64> {
    let mut all = Vec::new();
    for p in 0..PROCS {
        for (i, (op, _, _)) in map_log(p).into_iter().enumerate() {
            if op == 9 {
                all.push(p << 32 | i as u64);
            }
        }
    }
    all.sort_unstable();
    all
}

fn run<R: relshm_ptr::Repr>(make: for<'s> fn(&'s Segment) -> Arena<R>) {
    let seg = Segment::create_unnamed(&CreateOptions::new(64 << 20)).unwrap();
    {
        let arena = make(&seg);
        Map::<u64, u64, R>::create_named(&arena, "map").unwrap();
        List::<u64, R>::create_named(&arena, "list").unwrap();
        List::<u64, R>::create_named(&arena, "popped").unwrap();
    }
    let scratch = Scratch::new();
    let children: Vec<_> = (0..PROCS)
        .map(|p| {
            let (seg, scratch) = (&seg, &scratch);
            fork_child(move || {
                // Forked siblings would get the same free spot: ask each for its own.
                let hint = 0x6100_0000_0000 + (p as usize) * (1 << 36);
                let mine = seg.reopen(Placement::Hint(hint)).unwrap();
                scratch
                    .slot(p as usize)
                    .store(mine.base().as_ptr() as u64, Ordering::Release);
                let arena = make(&mine);
                let popped = List::<u64, R>::open_named(&arena, "popped").unwrap();
                // Start together, so the processes really overlap.
                scratch.slot(100).fetch_add(1, Ordering::AcqRel);
                scratch.wait_for(100, PROCS, LIMIT);
                match worker(&arena, p, &popped) {
                    Ok(()) => 0,
                    Err(msg) => {
                        eprintln!("process {p}: {msg}");
                        1
                    }
                }
            })
        })
        .collect();
    for c in children {
        assert!(c.wait_timeout(LIMIT).success());
    }
    let mut bases: Vec<u64> = (0..PROCS as usize)
        .map(|p| scratch.slot(p).load(Ordering::Acquire))
        .collect();
    bases.push(seg.base().as_ptr() as u64);
    bases.sort_unstable();
    bases.dedup();
    assert_eq!(
        bases.len(),
        PROCS as usize + 1,
        "every process maps elsewhere"
    );

    let arena = make(&seg);
    let map = Map::<u64, u64, R>::open_named(&arena, "map").unwrap();
    let want = expected();
    assert_eq!(map.verify().unwrap(), want.len() as u64);
    let mut got = map.entries().unwrap();
    got.sort_unstable();
    let mut want: Vec<_> = want.into_iter().collect();
    want.sort_unstable();
    assert_eq!(got, want);
    assert!(map.buckets().unwrap() > 1024, "the map grew while shared");

    let list = List::<u64, R>::open_named(&arena, "list").unwrap();
    let popped = List::<u64, R>::open_named(&arena, "popped").unwrap();
    list.verify().unwrap();
    popped.verify().unwrap();
    let mut all = list.to_vec().unwrap();
    all.extend(popped.to_vec().unwrap());
    all.sort_unstable();
    assert_eq!(all, pushed(), "every push is in the list or popped, once");
}

#[test]
fn offset_map_and_list_shared_by_three_processes() {
    run::<Offset>(|s| Arena::<Offset>::new(s).unwrap());
}

#[test]
fn segrel_map_and_list_shared_by_three_processes() {
    run::<SegRel>(|s| Arena::<SegRel>::new(s).unwrap());
}
