//! Model-based property tests: random operation sequences on a `Vec` agree with
//! `std::vec::Vec`, for every pointer strategy, and the heap gets every buffer back.

mod model_support;

use model_support::{Model, ok};
use proptest::prelude::*;
use relshm_collections::arena::{Arena, CollectionError};
use relshm_collections::vec::Vec as SegVec;
use relshm_ptr::{BaseRel, Raw, Repr};
use relshm_segment::{CreateOptions, Placement, Segment};

#[derive(Debug, Clone)]
enum Op {
    Push(u64),
    Pop,
    Extend(Vec<u64>),
    Set(u64, u64),
    Insert(u64, u64),
    Remove(u64),
    Truncate(u64),
    Reserve(u64),
    Shrink,
    Get(u64),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => any::<u64>().prop_map(Op::Push),
        2 => Just(Op::Pop),
        2 => prop::collection::vec(any::<u64>(), 0..40).prop_map(Op::Extend),
        2 => (0u64..80, any::<u64>()).prop_map(|(i, v)| Op::Set(i, v)),
        2 => (0u64..80, any::<u64>()).prop_map(|(i, v)| Op::Insert(i, v)),
        2 => (0u64..80).prop_map(Op::Remove),
        1 => (0u64..80).prop_map(Op::Truncate),
        1 => (0u64..100).prop_map(Op::Reserve),
        1 => Just(Op::Shrink),
        3 => (0u64..80).prop_map(Op::Get),
    ]
}

/// Runs `ops` on a fresh vector and on `std::vec::Vec`; returns the vector's offset and
/// its final elements.
fn model<R: Repr>(arena: &Arena<R>, ops: &[Op]) -> Result<(u64, Vec<u64>), TestCaseError> {
    let v = ok(SegVec::<u64, R>::create(arena))?;
    let mut m: Vec<u64> = Vec::new();
    for op in ops {
        match op {
            Op::Push(x) => {
                ok(v.push(*x))?;
                m.push(*x);
            }
            Op::Pop => prop_assert_eq!(ok(v.pop())?, m.pop()),
            Op::Extend(xs) => {
                ok(v.extend_from_slice(xs))?;
                m.extend_from_slice(xs);
            }
            Op::Set(i, x) => match m.get_mut(*i as usize) {
                Some(slot) => prop_assert_eq!(ok(v.set(*i, *x))?, core::mem::replace(slot, *x)),
                None => {
                    let out_of_range =
                        matches!(v.set(*i, *x), Err(CollectionError::IndexOutOfRange { .. }));
                    prop_assert!(out_of_range);
                }
            },
            Op::Insert(i, x) => {
                if *i as usize <= m.len() {
                    ok(v.insert(*i, *x))?;
                    m.insert(*i as usize, *x);
                } else {
                    prop_assert!(v.insert(*i, *x).is_err());
                }
            }
            Op::Remove(i) => {
                if (*i as usize) < m.len() {
                    prop_assert_eq!(ok(v.remove(*i))?, m.remove(*i as usize));
                } else {
                    prop_assert!(v.remove(*i).is_err());
                }
            }
            Op::Truncate(n) => {
                ok(v.truncate(*n))?;
                m.truncate(*n as usize);
            }
            Op::Reserve(n) => {
                ok(v.reserve(*n))?;
                prop_assert!(v.capacity() >= m.len() as u64 + n);
            }
            Op::Shrink => {
                ok(v.shrink_to_fit())?;
                prop_assert_eq!(v.capacity(), m.len() as u64);
            }
            Op::Get(i) => {
                prop_assert_eq!(ok(v.get(*i))?, m.get(*i as usize).copied());
                prop_assert_eq!(ok(v.read())?.get(*i), m.get(*i as usize).copied());
            }
        }
        prop_assert_eq!(v.len(), m.len() as u64);
    }
    prop_assert_eq!(ok(v.to_vec())?, m.clone());
    let r = ok(v.read())?;
    prop_assert_eq!(r.as_slice(), m.as_slice());
    drop(r);
    prop_assert_eq!(ok(v.verify())?, m.len() as u64);
    Ok((v.offset(), m))
}

fn segment() -> Segment {
    Segment::create_unnamed(&CreateOptions::new(16 << 20)).unwrap()
}

fn ops() -> impl Strategy<Value = Vec<Op>> {
    prop::collection::vec(op(), 0..120)
}

/// The collection and its model, for [`every_strategy!`].
struct VecModel;

impl Model for VecModel {
    type Op = Op;
    type Seen = Vec<u64>;
    const SEGMENT: u64 = 16 << 20;

    fn run<R: Repr>(arena: &Arena<R>, ops: &[Op]) -> Result<(u64, Self::Seen), TestCaseError> {
        model(arena, ops)
    }

    fn reopen<R: Repr>(arena: &Arena<R>, off: u64) -> Result<Self::Seen, TestCaseError> {
        let v = ok(SegVec::<u64, R>::open(arena, off))?;
        let got = ok(v.to_vec())?;
        prop_assert_eq!(ok(v.verify())?, got.len() as u64);
        Ok(got)
    }
}

every_strategy!(VecModel, ops(), 32;
    offset_agrees_with_std_vec,
    baserel_agrees_with_std_vec,
    segrel_agrees_with_std_vec,
    raw_local_agrees_with_std_vec,
    swizzle_agrees_with_std_vec_and_publishes
);

/// Odd-sized elements (12 bytes, align 4): the racy word copies keep neighbours intact.
#[test]
fn odd_sized_elements_keep_their_neighbours() {
    let seg = segment();
    let arena = Arena::<BaseRel>::new(&seg).unwrap();
    let v = SegVec::<[u32; 3], BaseRel>::create(&arena).unwrap();
    let mut m = Vec::new();
    for i in 0..1000u32 {
        let x = [i, i ^ 0xdead_beef, i.wrapping_mul(7)];
        v.push(x).unwrap();
        m.push(x);
        if i % 7 == 0 {
            let j = i as u64 / 2;
            v.set(j, [1, 2, 3]).unwrap();
            m[j as usize] = [1, 2, 3];
        }
        if i % 11 == 0 {
            v.insert(i as u64 / 3, [9, 9, 9]).unwrap();
            m.insert(i as usize / 3, [9, 9, 9]);
        }
    }
    assert_eq!(v.to_vec().unwrap(), m);
    assert_eq!(v.verify().unwrap(), m.len() as u64);
}

/// Nothing leaks: a vector grown, shrunk and emptied gives the heap back every byte.
#[test]
fn every_buffer_goes_back_to_the_heap() {
    let seg = segment();
    let arena = Arena::<BaseRel>::new(&seg).unwrap();
    let v = SegVec::<u64, BaseRel>::create(&arena).unwrap();
    let heap = seg.heap().unwrap();
    heap.flush_cache().unwrap();
    let before = heap.stats().unwrap().used_bytes;
    for i in 0..10_000 {
        v.push(i).unwrap();
        if i % 100 == 0 {
            v.insert(i / 2, i).unwrap();
            v.remove(i / 3).unwrap();
        }
    }
    v.clear().unwrap();
    v.shrink_to_fit().unwrap();
    assert_eq!(v.capacity(), 0);
    heap.flush_cache().unwrap();
    assert_eq!(heap.stats().unwrap().used_bytes, before);
    assert_eq!(v.verify().unwrap(), 0);
}

/// Copy-time translation: a Raw vector copied for a mapping at another address is one
/// copied buffer and one rewritten link; the copy reads back whole and verifies.
#[test]
fn a_raw_vector_is_translated_for_another_mapping() {
    use relshm_ptr::translate::Space;
    let src = segment();
    let arena = Arena::<Raw>::local(&src).unwrap();
    let v = SegVec::<u64, Raw>::create(&arena).unwrap();
    let want: Vec<u64> = (0..5000).map(|i| i * 3).collect();
    v.extend_from_slice(&want).unwrap();
    let dst = segment();
    let block = dst.alloc(1 << 20, 64).unwrap();
    let other = dst.reopen(Placement::Anywhere).unwrap();
    assert_ne!(other.base(), dst.base());
    // SAFETY: `dst` stays mapped for the test; nothing else writes the block.
    let space = unsafe { Space::new(dst.region(), other.base().as_ptr() as u64) };
    let t = v.translate_to(&space, block).unwrap();
    assert_eq!(t.objects, 2, "the header and the buffer");
    // SAFETY: `other` stays mapped for the test.
    let arena2 =
        unsafe { Arena::<Raw>::translated(other.region(), other.base().as_ptr() as u64) }.unwrap();
    let copy = SegVec::<u64, Raw>::open(&arena2, t.root_offset).unwrap();
    assert_eq!(copy.to_vec().unwrap(), want);
    assert_eq!(copy.verify().unwrap(), 5000);
    assert!(matches!(copy.push(1), Err(CollectionError::ReadOnly)));
}
