//! Model-based property tests: random operation sequences on a `Map` agree with
//! `std::collections::HashMap`, for every pointer strategy; growth and byte-string keys.

use proptest::prelude::*;
use relshm_collections::arena::{Arena, CollectionError};
use relshm_collections::map::{ByteKey, Map};
use relshm_ptr::{BaseRel, Offset, Raw, Repr, SegRel, Swizzle};
use relshm_segment::{CreateOptions, Placement, Segment};
use std::collections::HashMap;

#[derive(Debug, Clone)]
enum Op {
    Insert(u64, u64),
    Remove(u64),
    Get(u64),
    Update(u64, u64),
    Upsert(u64, u64),
    Clear,
    Grow,
}

/// Keys from a small range so that removes and updates hit, plus a few anywhere.
fn key() -> impl Strategy<Value = u64> {
    prop_oneof![4 => 0u64..64, 1 => any::<u64>()]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (key(), any::<u64>()).prop_map(|(k, v)| Op::Insert(k, v)),
        3 => key().prop_map(Op::Remove),
        3 => key().prop_map(Op::Get),
        2 => (key(), any::<u64>()).prop_map(|(k, v)| Op::Update(k, v)),
        2 => (key(), any::<u64>()).prop_map(|(k, v)| Op::Upsert(k, v)),
        1 => Just(Op::Clear),
        1 => Just(Op::Grow),
    ]
}

fn ok<T>(r: Result<T, CollectionError>) -> Result<T, TestCaseError> {
    r.map_err(|e| TestCaseError::fail(e.to_string()))
}

fn sorted(mut v: Vec<(u64, u64)>) -> Vec<(u64, u64)> {
    v.sort_unstable();
    v
}

/// Runs `ops` on a fresh map and the model; returns the map's offset and final entries.
fn model<R: Repr>(arena: &Arena<R>, ops: &[Op]) -> Result<(u64, Vec<(u64, u64)>), TestCaseError> {
    let map = ok(Map::<u64, u64, R>::create(arena))?;
    let mut m = HashMap::new();
    for op in ops {
        match *op {
            Op::Insert(k, v) => prop_assert_eq!(ok(map.insert(k, v))?, m.insert(k, v)),
            Op::Remove(k) => prop_assert_eq!(ok(map.remove(&k))?, m.remove(&k)),
            Op::Get(k) => {
                prop_assert_eq!(ok(map.get(&k))?, m.get(&k).copied());
                prop_assert_eq!(ok(map.contains_key(&k))?, m.contains_key(&k));
                prop_assert_eq!(ok(ok(map.read())?.get(&k))?, m.get(&k).copied());
                prop_assert_eq!(ok(ok(map.reader())?.get(&k))?, m.get(&k).copied());
            }
            Op::Update(k, d) => {
                let hit = ok(map.update(&k, |v| *v = v.wrapping_add(d)))?;
                prop_assert_eq!(hit, m.contains_key(&k));
                if let Some(v) = m.get_mut(&k) {
                    *v = v.wrapping_add(d);
                }
            }
            Op::Upsert(k, d) => {
                let got = ok(map.upsert(k, d, |v| *v = v.wrapping_mul(3)))?;
                let e = m.entry(k).or_insert(d);
                *e = e.wrapping_mul(3);
                prop_assert_eq!(got, *e);
            }
            Op::Clear => {
                ok(map.clear())?;
                m.clear();
            }
            Op::Grow => ok(map.grow())?,
        }
        prop_assert_eq!(ok(map.len())?, m.len() as u64);
    }
    // Every key in range and every key held, in one batch.
    let probe: Vec<u64> = (0..64).chain(m.keys().copied()).collect();
    let mut got = vec![None; probe.len()];
    ok(ok(map.reader())?.get_many(&probe, &mut got))?;
    let expected: Vec<_> = probe.iter().map(|k| m.get(k).copied()).collect();
    prop_assert_eq!(got, expected);
    let want = sorted(m.into_iter().collect());
    prop_assert_eq!(sorted(ok(map.entries())?), want.clone());
    prop_assert_eq!(ok(map.verify())?, want.len() as u64);
    Ok((map.offset(), want))
}

fn segment() -> Segment {
    Segment::create_unnamed(&CreateOptions::new(16 << 20)).unwrap()
}

/// A strategy shared in place: after the model ran through `make`'s arena, the same bytes
/// opened through a second mapping at another address hold what the model holds.
fn in_place<R: Repr>(
    ops: &[Op],
    make: for<'s> fn(&'s Segment) -> Result<Arena<R>, CollectionError>,
) -> Result<(), TestCaseError> {
    let seg = segment();
    let arena = ok(make(&seg))?;
    let (off, want) = model(&arena, ops)?;
    let other = seg.reopen(Placement::Anywhere).unwrap();
    prop_assert_ne!(other.base(), seg.base());
    let arena2 = ok(make(&other))?;
    let map = ok(Map::<u64, u64, R>::open(&arena2, off))?;
    prop_assert_eq!(sorted(ok(map.entries())?), want);
    Ok(())
}

fn ops() -> impl Strategy<Value = Vec<Op>> {
    prop::collection::vec(op(), 0..150)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    #[test]
    fn offset_agrees_with_hashmap(ops in ops()) {
        in_place(&ops, Arena::<Offset>::new)?;
    }

    #[test]
    fn baserel_agrees_with_hashmap(ops in ops()) {
        in_place(&ops, Arena::<BaseRel>::new)?;
    }

    #[test]
    fn segrel_agrees_with_hashmap(ops in ops()) {
        in_place(&ops, Arena::<SegRel>::new)?;
    }

    #[test]
    fn raw_local_agrees_with_hashmap(ops in ops()) {
        let seg = segment();
        let arena = ok(Arena::<Raw>::local(&seg))?;
        model(&arena, &ops)?;
    }

    #[test]
    fn swizzle_agrees_with_hashmap_and_publishes(ops in ops()) {
        let seg = segment();
        let (off, want) = {
            let arena = ok(Arena::<Swizzle>::private(&seg))?;
            let r = model(&arena, &ops)?;
            ok(arena.publish(&seg))?;
            r
        };
        let other = seg.reopen(Placement::Anywhere).unwrap();
        let arena2 = ok(Arena::<Swizzle>::private(&other))?;
        let map = ok(Map::<u64, u64, Swizzle>::open(&arena2, off))?;
        prop_assert_eq!(sorted(ok(map.entries())?), want.clone());
        prop_assert_eq!(ok(map.verify())?, want.len() as u64);
    }
}

/// Enough entries to double the table several times; every entry survives each rehash.
fn grows<R: Repr>(arena: &Arena<R>) {
    let map = Map::<u64, u64, R>::create(arena).unwrap();
    let start = map.buckets().unwrap();
    for k in 0..20_000u64 {
        assert_eq!(map.insert(k, k * 3).unwrap(), None);
    }
    assert!(map.buckets().unwrap() >= 16 * start, "the table grew");
    assert_eq!(map.verify().unwrap(), 20_000);
    for k in (0..20_000u64).step_by(2) {
        assert_eq!(map.remove(&k).unwrap(), Some(k * 3));
    }
    let r = map.read().unwrap();
    for k in 0..20_000u64 {
        assert_eq!(r.get(&k).unwrap(), (k % 2 == 1).then_some(k * 3));
    }
    drop(r);
    assert_eq!(map.verify().unwrap(), 10_000);
}

#[test]
fn grows_by_rehashing_in_the_segment_on_every_strategy() {
    let seg = Segment::create_unnamed(&CreateOptions::new(64 << 20)).unwrap();
    grows(&Arena::<Offset>::new(&seg).unwrap());
    grows(&Arena::<BaseRel>::new(&seg).unwrap());
    grows(&Arena::<SegRel>::new(&seg).unwrap());
    grows(&Arena::<Raw>::local(&seg).unwrap());
    grows(&Arena::<Swizzle>::private(&seg).unwrap());
}

#[test]
fn byte_string_keys() {
    let seg = segment();
    let arena = Arena::<Offset>::new(&seg).unwrap();
    let map = Map::<ByteKey<24>, u32, Offset>::create(&arena).unwrap();
    let words = ["alpha", "beta", "gamma", "", "a-much-longer-key-24byte"];
    for (i, w) in words.iter().enumerate() {
        map.insert(ByteKey::new(w.as_bytes()).unwrap(), i as u32)
            .unwrap();
    }
    for (i, w) in words.iter().enumerate() {
        let k = ByteKey::<24>::new(w.as_bytes()).unwrap();
        assert_eq!(map.get(&k).unwrap(), Some(i as u32));
        assert_eq!(k.as_bytes(), w.as_bytes());
    }
    assert_eq!(map.get(&ByteKey::new(b"alph").unwrap()).unwrap(), None);
    assert!(matches!(
        ByteKey::<24>::new(&[b'x'; 25]),
        Err(CollectionError::KeyTooLong { len: 25, max: 24 })
    ));
    assert_eq!(map.verify().unwrap(), words.len() as u64);
}

#[test]
fn open_checks_the_types() {
    let seg = segment();
    let arena = Arena::<Offset>::new(&seg).unwrap();
    let map = Map::<u64, u64, Offset>::create_named(&arena, "m").unwrap();
    let again = Map::<u64, u64, Offset>::open_named(&arena, "m").unwrap();
    assert_eq!(again.offset(), map.offset());
    assert!(matches!(
        Map::<u64, u32, Offset>::open(&arena, map.offset()),
        Err(CollectionError::BadHeader { .. })
    ));
    assert!(matches!(
        Map::<u64, u64, Offset>::open(&arena, map.offset() + 8),
        Err(CollectionError::BadHeader { .. })
    ));
}
