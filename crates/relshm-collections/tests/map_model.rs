//! Model-based property tests: random operation sequences on a `Map` agree with
//! `std::collections::HashMap`, for every pointer strategy; growth and byte-string keys.

mod model_support;

use model_support::{Model, ok};
use proptest::prelude::*;
use relshm_collections::arena::{Arena, CollectionError};
use relshm_collections::map::{ByteKey, Map};
use relshm_ptr::{BaseRel, Offset, Raw, Repr, SegRel, Swizzle};
use relshm_segment::{CreateOptions, Segment};
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

fn ops() -> impl Strategy<Value = Vec<Op>> {
    prop::collection::vec(op(), 0..150)
}

/// The collection and its model, for [`every_strategy!`].
struct MapModel;

impl Model for MapModel {
    type Op = Op;
    type Seen = Vec<(u64, u64)>;
    const SEGMENT: u64 = 16 << 20;

    fn run<R: Repr>(arena: &Arena<R>, ops: &[Op]) -> Result<(u64, Self::Seen), TestCaseError> {
        model(arena, ops)
    }

    fn reopen<R: Repr>(arena: &Arena<R>, off: u64) -> Result<Self::Seen, TestCaseError> {
        let map = ok(Map::<u64, u64, R>::open(arena, off))?;
        let got = sorted(ok(map.entries())?);
        prop_assert_eq!(ok(map.verify())?, got.len() as u64);
        Ok(got)
    }
}

every_strategy!(MapModel, ops(), 32;
    offset_agrees_with_hashmap,
    baserel_agrees_with_hashmap,
    segrel_agrees_with_hashmap,
    raw_local_agrees_with_hashmap,
    swizzle_agrees_with_hashmap_and_publishes
);

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
