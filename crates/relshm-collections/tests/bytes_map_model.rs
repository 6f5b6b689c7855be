//! Model-based property tests: random operation sequences on a `BytesMap` agree with
//! `std::collections::HashMap<Vec<u8>, Vec<u8>>`, for every pointer strategy; values of
//! every size up to 4 KiB; emptied, the map gives the heap back every byte.

mod model_support;

use model_support::{Model, ok};
use proptest::prelude::*;
use relshm_collections::arena::{Arena, CollectionError};
use relshm_collections::bytes_map::BytesMap;
use relshm_ptr::{BaseRel, Raw, Repr};
use relshm_segment::{CreateOptions, Placement, Segment};
use std::collections::HashMap;

#[derive(Debug, Clone)]
enum Op {
    Insert(Vec<u8>, Vec<u8>),
    Remove(Vec<u8>),
    Get(Vec<u8>),
    Clear,
    Grow,
}

/// Keys from a small set (so that updates and removes hit), empty and long ones included.
fn key() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        6 => (0u8..40).prop_map(|i| format!("key-{i}").into_bytes()),
        1 => Just(Vec::new()),
        1 => prop::collection::vec(any::<u8>(), 0..200),
    ]
}

fn value() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        4 => prop::collection::vec(any::<u8>(), 0..24),
        2 => prop::collection::vec(any::<u8>(), 0..300),
        1 => prop::collection::vec(any::<u8>(), 0..4096),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (key(), value()).prop_map(|(k, v)| Op::Insert(k, v)),
        3 => key().prop_map(Op::Remove),
        3 => key().prop_map(Op::Get),
        1 => Just(Op::Clear),
        1 => Just(Op::Grow),
    ]
}

type Entries = Vec<(Vec<u8>, Vec<u8>)>;

fn sorted(mut v: Entries) -> Entries {
    v.sort_unstable();
    v
}

/// Runs `ops` on a fresh map and the model; returns the map's offset and final entries.
fn model<R: Repr>(arena: &Arena<R>, ops: &[Op]) -> Result<(u64, Entries), TestCaseError> {
    let map = ok(BytesMap::<R>::create(arena))?;
    let mut m: HashMap<Vec<u8>, Vec<u8>> = HashMap::new();
    let mut buf = Vec::new();
    for op in ops {
        match op {
            Op::Insert(k, v) => {
                prop_assert_eq!(
                    ok(map.insert(k, v))?,
                    m.insert(k.clone(), v.clone()).is_some()
                )
            }
            Op::Remove(k) => prop_assert_eq!(ok(map.remove(k))?, m.remove(k).is_some()),
            Op::Get(k) => {
                prop_assert_eq!(ok(map.get(k))?, m.get(k).cloned());
                prop_assert_eq!(ok(map.get_into(k, &mut buf))?, m.contains_key(k));
                if let Some(v) = m.get(k) {
                    prop_assert_eq!(&buf, v);
                }
                prop_assert_eq!(ok(map.contains_key(k))?, m.contains_key(k));
                let r = ok(map.read())?;
                prop_assert_eq!(ok(r.get(k))?, m.get(k).map(Vec::as_slice));
            }
            Op::Clear => {
                ok(map.clear())?;
                m.clear();
            }
            Op::Grow => ok(map.grow())?,
        }
        prop_assert_eq!(ok(map.len())?, m.len() as u64);
    }
    let want = sorted(m.into_iter().collect());
    prop_assert_eq!(sorted(ok(map.entries())?), want.clone());
    prop_assert_eq!(ok(map.verify())?, want.len() as u64);
    Ok((map.offset(), want))
}

fn segment() -> Segment {
    Segment::create_unnamed(&CreateOptions::new(32 << 20)).unwrap()
}

fn ops() -> impl Strategy<Value = Vec<Op>> {
    prop::collection::vec(op(), 0..120)
}

/// The collection and its model, for [`every_strategy!`].
struct BytesMapModel;

impl Model for BytesMapModel {
    type Op = Op;
    type Seen = Entries;
    const SEGMENT: u64 = 32 << 20;

    fn run<R: Repr>(arena: &Arena<R>, ops: &[Op]) -> Result<(u64, Self::Seen), TestCaseError> {
        model(arena, ops)
    }

    fn reopen<R: Repr>(arena: &Arena<R>, off: u64) -> Result<Self::Seen, TestCaseError> {
        let map = ok(BytesMap::<R>::open(arena, off))?;
        let got = sorted(ok(map.entries())?);
        prop_assert_eq!(ok(map.verify())?, got.len() as u64);
        Ok(got)
    }
}

every_strategy!(BytesMapModel, ops(), 24;
    offset_agrees_with_hashmap,
    baserel_agrees_with_hashmap,
    segrel_agrees_with_hashmap,
    raw_local_agrees_with_hashmap,
    swizzle_agrees_with_hashmap_and_publishes
);

/// Growing through several table sizes, updating and removing everything: every value
/// survives each resize, and at the end the heap is back where it started.
#[test]
fn grows_updates_and_gives_every_byte_back() {
    let seg = segment();
    let arena = Arena::<BaseRel>::new(&seg).unwrap();
    let heap = seg.heap().unwrap();
    heap.flush_cache().unwrap();
    let before = heap.stats().unwrap().used_bytes;
    let map = BytesMap::<BaseRel>::create(&arena).unwrap();
    let val =
        |i: u32, round: u32| vec![(i ^ round) as u8; (i as usize * 37 + round as usize) % 4097];
    for i in 0..3000u32 {
        assert!(!map.insert(&i.to_le_bytes(), &val(i, 0)).unwrap());
    }
    for i in (0..3000u32).step_by(3) {
        assert!(map.insert(&i.to_le_bytes(), &val(i, 1)).unwrap());
    }
    assert_eq!(map.verify().unwrap(), 3000);
    for i in 0..3000u32 {
        let want = val(i, u32::from(i % 3 == 0));
        assert_eq!(map.get(&i.to_le_bytes()).unwrap(), Some(want));
    }
    for i in 0..3000u32 {
        assert!(map.remove(&i.to_le_bytes()).unwrap());
    }
    assert_eq!(map.verify().unwrap(), 0);
    heap.flush_cache().unwrap();
    let table = heap.stats().unwrap().used_bytes - before;
    // Only the header and the (grown) table are left.
    assert!(table < 64 << 10, "{table} bytes still used");
    map.clear().unwrap();
    assert_eq!(map.len().unwrap(), 0);
}

/// Nesting: a map whose values are relocatable byte arrays is one structure to the walks.
/// `validate` reaches every node and every array; copy-time translation copies them all
/// with every link rewritten, and the copy reads back whole at another address.
#[test]
fn walks_reach_every_value_and_a_raw_map_is_translated() {
    use relshm_ptr::translate::Space;
    use relshm_ptr::{Limits, validate};
    let src = segment();
    let arena = Arena::<Raw>::local(&src).unwrap();
    let map = BytesMap::<Raw>::create(&arena).unwrap();
    let mut want = Vec::new();
    for i in 0..500u32 {
        let (k, v) = (
            format!("k{i}").into_bytes(),
            vec![i as u8; (i as usize * 31) % 3000],
        );
        map.insert(&k, &v).unwrap();
        want.push((k, v));
    }
    want.sort_unstable();
    let hdr: &relshm_collections::bytes_map::BytesMapHeader<Raw> = {
        let p = arena
            .region()
            .base()
            .as_ptr()
            .wrapping_add(map.offset() as usize);
        // SAFETY: the map's header lies at its offset in the arena, which outlives `hdr`.
        unsafe { &*p.cast() }
    };
    let r = validate::<_, Raw>(arena.ctx(), hdr, Limits::default()).unwrap();
    // Header, table, heads array, 500 nodes and their 500 byte arrays (keys never empty).
    assert_eq!(r.objects, 3 + 500 + 500);

    let dst = segment();
    let block = dst.alloc(16 << 20, 64).unwrap();
    let other = dst.reopen(Placement::Anywhere).unwrap();
    // SAFETY: `dst` stays mapped for the test; nothing else writes the block.
    let space = unsafe { Space::new(dst.region(), other.base().as_ptr() as u64) };
    let t = map.translate_to(&space, block).unwrap();
    assert_eq!(t.objects, r.objects);
    // SAFETY: `other` stays mapped for the test.
    let arena2 =
        unsafe { Arena::<Raw>::translated(other.region(), other.base().as_ptr() as u64) }.unwrap();
    let copy = BytesMap::<Raw>::open(&arena2, t.root_offset).unwrap();
    assert_eq!(sorted(copy.entries().unwrap()), want);
    assert_eq!(copy.get(b"k7").unwrap(), Some(vec![7; 217]));
    assert_eq!(copy.verify().unwrap(), 500);
    assert!(matches!(
        copy.insert(b"x", b"y"),
        Err(CollectionError::ReadOnly)
    ));
}
