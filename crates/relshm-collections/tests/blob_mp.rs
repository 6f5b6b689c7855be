//! Multi-process stress of variable-size data: 3 exec'ed processes (each mapping the
//! segment by name, at an address of its own) update one `BytesMap` (values of 0..4 KiB)
//! and one `Vec<u64>` while 2 forked processes read both without locks. The final map
//! equals the merge of the writers' logs (each writes its own keys), every pushed element
//! is in the vector or in the log of popped ones exactly once, every value a reader saw
//! was one a writer wrote (never a torn or freed one), `verify` is clean, and once every
//! value is removed the heap's used bytes are what they were before the run.

use rand::{Rng, SeedableRng, rngs::StdRng};
use relshm_collections::arena::{Arena, CollectionError};
use relshm_collections::bytes_map::BytesMap;
use relshm_collections::vec::Vec as SegVec;
use relshm_segment::{CreateOptions, OpenOptions, Segment};
use relshm_testkit::{Scratch, exec, fork_child};
use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::time::Duration;

const TEST: &str = "a_bytes_map_and_a_vec_shared_by_three_writers_and_two_lock_free_readers";
const WRITERS: u64 = 3;
const READERS: u64 = 2;
const OPS: u64 = 3000;
const KEYS: u64 = 300;
const LIMIT: Duration = Duration::from_secs(120);
/// Scratch slots (readers): writers done, reads made by each reader.
const DONE: usize = 0;
const READS: usize = 1;

type Arn = Arena<relshm_ptr::BaseRel>;

fn key(k: u64) -> [u8; 8] {
    k.to_le_bytes()
}

/// Value version `ver` of key `k`: 16 bytes naming both, then 0..4 KiB of a pattern of
/// them; any torn or stale-block copy fails [`valid`].
fn value(k: u64, ver: u64) -> Vec<u8> {
    let len = 16 + ((k * 7919 + ver * 104_729) % 4081) as usize;
    let mut v = Vec::with_capacity(len);
    v.extend_from_slice(&k.to_le_bytes());
    v.extend_from_slice(&ver.to_le_bytes());
    v.extend((16..len).map(|i| (i as u64 ^ k ^ ver.rotate_left(9)) as u8));
    v
}

fn valid(k: u64, v: &[u8]) -> bool {
    v.len() >= 16
        && v[..8] == k.to_le_bytes()
        && *v == value(k, u64::from_le_bytes(v[8..16].try_into().unwrap()))
}

/// Writer `p`'s operations: a deterministic sequence on keys `k ≡ p (mod WRITERS)`:
/// `(op, key, version)`.
fn log(p: u64) -> Vec<(u8, u64, u64)> {
    let mut rng = StdRng::seed_from_u64(0xb10b + p);
    (0..OPS)
        .map(|i| {
            let k = rng.gen_range(0..KEYS) * WRITERS + p;
            (rng.gen_range(0..10u8), k, i)
        })
        .collect()
}

/// The merged result of every writer's log.
fn expected() -> HashMap<u64, u64> {
    let mut m = HashMap::new();
    for p in 0..WRITERS {
        for (op, k, ver) in log(p) {
            match op {
                0..=5 => {
                    m.insert(k, ver);
                }
                6 | 7 => {
                    m.remove(&k);
                }
                _ => {}
            }
        }
    }
    m
}

fn tag(p: u64, i: u64) -> u64 {
    p << 32 | i
}

fn open(arena: &Arn) -> (BytesMap, SegVec<u64>, SegVec<u64>) {
    (
        BytesMap::open_named(arena, "blobs").unwrap(),
        SegVec::open_named(arena, "vec").unwrap(),
        SegVec::open_named(arena, "popped").unwrap(),
    )
}

/// An exec'ed writer: replays its log, checking its own keys read back exactly.
fn writer(arg: &str) -> Result<(), CollectionError> {
    let mut parts = arg.split(',');
    let (name, parent_base, p) = (
        parts.next().unwrap(),
        parts.next().unwrap().parse::<usize>().unwrap(),
        parts.next().unwrap().parse::<u64>().unwrap(),
    );
    let seg = Segment::open_named(name, &OpenOptions::new()).unwrap();
    assert_ne!(
        seg.base().as_ptr() as usize,
        parent_base,
        "mapped elsewhere than the parent"
    );
    let (map, v, popped) = open(&Arena::new(&seg)?);
    let mut own = HashMap::new();
    let mut buf = Vec::new();
    for (i, (op, k, ver)) in log(p).into_iter().enumerate() {
        match op {
            0..=5 => {
                let replaced = map.insert(&key(k), &value(k, ver))?;
                assert_eq!(replaced, own.insert(k, ver).is_some(), "insert {k}");
            }
            6 | 7 => assert_eq!(map.remove(&key(k))?, own.remove(&k).is_some(), "remove {k}"),
            8 => {
                let hit = map.get_into(&key(k), &mut buf)?;
                assert_eq!(hit, own.contains_key(&k));
                if let Some(&ver) = own.get(&k) {
                    assert_eq!(buf, value(k, ver), "get {k}");
                }
            }
            _ => {
                v.push(tag(p, i as u64))?;
                if i % 3 == 0 {
                    v.insert(v.len() / 2, tag(p, i as u64 + OPS))?;
                }
                if i % 2 == 0
                    && let Some(x) = v.pop()?
                {
                    popped.push(x)?;
                }
            }
        }
    }
    Ok(())
}

/// A forked reader: lock-free gets of random keys and vector elements until the writers
/// are done; every value seen must be whole and one a writer wrote.
fn reader(arena: &Arn, r: u64, scratch: &Scratch) -> i32 {
    let (map, v, _) = open(arena);
    let mut rng = StdRng::seed_from_u64(r);
    let mut buf = Vec::new();
    let mut reads = 0u64;
    while scratch.slot(DONE).load(Ordering::Acquire) == 0 || reads < 100 {
        let k = rng.gen_range(0..KEYS * WRITERS);
        if map.get_into(&key(k), &mut buf).unwrap() && !valid(k, &buf) {
            eprintln!(
                "reader {r}: key {k}: a value no writer wrote ({} bytes)",
                buf.len()
            );
            return 1;
        }
        let i = rng.gen_range(0..v.len().max(1));
        if let Some(x) = v.get(i).unwrap()
            && (x >> 32 >= WRITERS || x & 0xffff_ffff >= 2 * OPS)
        {
            eprintln!("reader {r}: element {i} = {x:#x} was never pushed");
            return 1;
        }
        reads += 1;
    }
    scratch
        .slot(READS + r as usize)
        .store(reads, Ordering::Release);
    0
}

#[test]
fn a_bytes_map_and_a_vec_shared_by_three_writers_and_two_lock_free_readers() {
    if let Some(role) = exec::role() {
        assert_eq!(role, "writer");
        writer(&exec::arg()).unwrap();
        return;
    }
    let name = format!("relshm-blob-mp-{}", std::process::id());
    let seg =
        Segment::create_named(&name, &CreateOptions::new(4 << 20).max_size(256 << 20)).unwrap();
    let arena = Arena::new(&seg).unwrap();
    let map = BytesMap::create_named(&arena, "blobs").unwrap();
    SegVec::<u64>::create_named(&arena, "vec").unwrap();
    SegVec::<u64>::create_named(&arena, "popped").unwrap();
    // Size the table for every key first, so the heap's baseline is the empty map at the
    // table size the run ends with.
    for k in 0..KEYS * WRITERS {
        map.insert(&key(k), b"").unwrap();
    }
    for k in 0..KEYS * WRITERS {
        assert!(map.remove(&key(k)).unwrap());
    }
    let heap = seg.heap().unwrap();
    heap.flush_cache().unwrap();
    let base = heap.stats().unwrap().used_bytes;

    let scratch = Scratch::new();
    let readers: Vec<_> = (0..READERS)
        .map(|r| {
            let (arena, scratch) = (&arena, &scratch);
            fork_child(move || reader(arena, r, scratch))
        })
        .collect();
    let writers: Vec<_> = (0..WRITERS)
        .map(|p| {
            let base = seg.base().as_ptr() as usize;
            exec::spawn(TEST, "writer", &format!("{name},{base},{p}"))
        })
        .collect();
    let ok: Vec<bool> = writers.into_iter().map(|c| exec::wait(c, LIMIT)).collect();
    scratch.slot(DONE).store(1, Ordering::Release);
    let readers_ok: Vec<bool> = readers
        .into_iter()
        .map(|c| c.wait_timeout(LIMIT).success())
        .collect();
    Segment::remove_named(&name).unwrap();
    assert!(
        ok.iter().all(|&ok| ok),
        "a writer failed (its panic is above): {ok:?}"
    );
    assert!(
        readers_ok.iter().all(|&ok| ok),
        "a reader failed: {readers_ok:?}"
    );
    for r in 0..READERS as usize {
        assert!(scratch.slot(READS + r).load(Ordering::Acquire) >= 100);
    }

    let (map, v, popped) = open(&arena);
    let want = expected();
    assert_eq!(map.verify().unwrap(), want.len() as u64);
    let mut got: Vec<(u64, Vec<u8>)> = map
        .entries()
        .unwrap()
        .into_iter()
        .map(|(k, x)| (u64::from_le_bytes(k.try_into().unwrap()), x))
        .collect();
    got.sort_unstable();
    let mut want: Vec<(u64, Vec<u8>)> = want
        .into_iter()
        .map(|(k, ver)| (k, value(k, ver)))
        .collect();
    want.sort_unstable();
    assert!(got == want, "the map is not the merge of the writers' logs");

    v.verify().unwrap();
    popped.verify().unwrap();
    let mut all = v.to_vec().unwrap();
    all.extend(popped.to_vec().unwrap());
    all.sort_unstable();
    let mut pushed: Vec<u64> = (0..WRITERS)
        .flat_map(|p| {
            log(p)
                .into_iter()
                .enumerate()
                .flat_map(move |(i, (op, _, _))| {
                    let i = i as u64;
                    let mid = (op >= 9 && i.is_multiple_of(3)).then_some(tag(p, i + OPS));
                    (op >= 9).then_some(tag(p, i)).into_iter().chain(mid)
                })
        })
        .collect();
    pushed.sort_unstable();
    assert_eq!(all, pushed, "every push is in the vector or popped, once");

    // Everything removed: the heap is back at its baseline.
    for (k, _) in map.entries().unwrap() {
        assert!(map.remove(&k).unwrap());
    }
    for x in [&v, &popped] {
        x.clear().unwrap();
        x.shrink_to_fit().unwrap();
    }
    heap.flush_cache().unwrap();
    assert_eq!(heap.stats().unwrap().used_bytes, base, "bytes leaked");
    assert_eq!(map.verify().unwrap(), 0);
}
