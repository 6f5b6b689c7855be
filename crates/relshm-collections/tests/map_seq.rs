//! Unlocked reads under fire: a child process (mapped at another address) does lock-free
//! `get`s (and `MapReader` gets, one at a time and in batches) while the parent replaces values, removes and re-inserts keys (so freed nodes
//! are reused under the reader) and grows the table. Every value read must be whole
//! (never torn) and belong to its key; keys never removed must always be found. Then a
//! writer is SIGKILLed inside a stripe write section and a reader still gets answers.

use relshm_collections::arena::Arena;
use relshm_collections::map::Map;
use relshm_ptr::{Offset, Repr, SegRel};
use relshm_segment::{CreateOptions, Placement, Segment};
use relshm_testkit::{Scratch, fork_child};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

const STABLE: u64 = 512;
const CHURN: u64 = 512;
const LIMIT: Duration = Duration::from_secs(120);

/// A value whose four words all carry the key and a version: a torn read breaks it.
fn value(k: u64, version: u64) -> [u64; 4] {
    let w = (k << 32) | (version & 0xffff_ffff);
    [w, w ^ 1, w ^ 2, w ^ 3]
}

fn whole(k: u64, v: &[u64; 4]) -> bool {
    v[0] >> 32 == k && v[1] == v[0] ^ 1 && v[2] == v[0] ^ 2 && v[3] == v[0] ^ 3
}

fn run<R: Repr>(make: for<'s> fn(&'s Segment) -> Arena<R>) {
    let seg = Segment::create_unnamed(&CreateOptions::new(32 << 20)).unwrap();
    let arena = make(&seg);
    let map = Map::<u64, [u64; 4], R>::create(&arena).unwrap();
    for k in 0..STABLE {
        map.insert(k, value(k, 0)).unwrap();
    }
    let off = map.offset();
    let scratch = Scratch::new();
    let reader = {
        let (seg, scratch) = (&seg, &scratch);
        fork_child(move || {
            let mine = seg.reopen(Placement::Anywhere).unwrap();
            if mine.region().base() == seg.region().base() {
                return 2;
            }
            let arena = make(&mine);
            let map = Map::<u64, [u64; 4], R>::open(&arena, off).unwrap();
            scratch.slot(0).store(1, Ordering::Release);
            let mut reads = 0u64;
            let mut sweep = 0u64;
            while scratch.slot(1).load(Ordering::Acquire) == 0 {
                // Sweeps take turns: `Map::get`, then a batch reader's `get`, then its
                // `get_many` in batches (the reader is made before the sweep, so the
                // parent's resizes happen under it).
                let mode = sweep % 3;
                let reader = (mode != 0).then(|| map.reader().unwrap());
                sweep += 1;
                let keys: Vec<u64> = (0..STABLE + CHURN).collect();
                for batch in keys.chunks(32) {
                    let got: Vec<_> = match &reader {
                        Some(r) if mode == 2 => {
                            let mut out = vec![None; batch.len()];
                            match r.get_many(batch, &mut out) {
                                Ok(()) => out.into_iter().map(Ok).collect(),
                                Err(e) => vec![Err(e)],
                            }
                        }
                        Some(r) => batch.iter().map(|k| r.get(k)).collect(),
                        None => batch.iter().map(|k| map.get(k)).collect(),
                    };
                    for (&k, got) in batch.iter().zip(got) {
                        match got {
                            Ok(Some(v)) if whole(k, &v) => {}
                            Ok(None) if k >= STABLE => {}
                            other => {
                                eprintln!("key {k} (sweep mode {mode}): {other:?}");
                                return 3;
                            }
                        }
                        reads += 1;
                    }
                }
            }
            scratch.slot(2).store(reads, Ordering::Release);
            0
        })
    };
    scratch.wait_for(0, 1, LIMIT);
    let start = Instant::now();
    let mut version = 1;
    // Until the reader has had a fair share of the machine, or at most a few seconds.
    while version < 200 || start.elapsed() < Duration::from_millis(500) {
        for k in 0..STABLE {
            map.insert(k, value(k, version)).unwrap();
        }
        for k in STABLE..STABLE + CHURN {
            if version % 2 == 1 {
                map.insert(k, value(k, version)).unwrap();
            } else {
                map.remove(&k).unwrap();
            }
        }
        // Grow now and then: more keys than buckets, then drop them again.
        if version % 50 == 0 {
            for k in 10_000..12_000 {
                map.insert(k, value(k, 0)).unwrap();
            }
            for k in 10_000..12_000 {
                map.remove(&k).unwrap();
            }
        }
        version += 1;
        if start.elapsed() > Duration::from_secs(5) {
            break;
        }
    }
    scratch.slot(1).store(1, Ordering::Release);
    assert!(
        reader.wait_timeout(LIMIT).success(),
        "reader saw a bad value"
    );
    assert!(scratch.slot(2).load(Ordering::Acquire) > 0);
    assert!(map.buckets().unwrap() > 1024, "the table never grew");
    assert_eq!(
        map.verify().unwrap(),
        STABLE + CHURN * (version % 2 == 0) as u64
    );
}

#[test]
fn unlocked_reads_never_see_torn_values_offset() {
    run::<Offset>(|s| Arena::<Offset>::new(s).unwrap());
}

#[test]
fn unlocked_reads_never_see_torn_values_segrel() {
    run::<SegRel>(|s| Arena::<SegRel>::new(s).unwrap());
}

/// A writer killed inside its write section leaves the stripe's word odd; a reader then
/// takes the lock, which repairs the stripe, and later reads are unlocked again.
#[test]
fn reader_after_a_writer_killed_inside_a_section() {
    let seg = Segment::create_unnamed(&CreateOptions::new(8 << 20)).unwrap();
    let arena = Arena::<Offset>::new(&seg).unwrap();
    let map = Map::<u64, u64, Offset>::create(&arena).unwrap();
    for k in 0..100 {
        map.insert(k, k).unwrap();
    }
    let off = map.offset();
    let scratch = Scratch::new();
    let writer = {
        let (seg, scratch) = (&seg, &scratch);
        fork_child(move || {
            let mine = seg.reopen(Placement::Anywhere).unwrap();
            let arena = Arena::<Offset>::new(&mine).unwrap();
            let map = Map::<u64, u64, Offset>::open(&arena, off).unwrap();
            // Blocks inside update's closure: lock held, section open.
            map.update(&7, |v| {
                *v = 700;
                scratch.slot(0).store(1, Ordering::Release);
                loop {
                    std::thread::park();
                }
            })
            .unwrap();
            0
        })
    };
    scratch.wait_for(0, 1, LIMIT);
    writer.kill_and_wait();
    for k in 0..100 {
        assert_eq!(map.get(&k).unwrap(), Some(k), "key {k}");
    }
    assert!(map.repairs() >= 1, "the dead writer was never noticed");
    assert_eq!(map.verify().unwrap(), 100);
}
