//! Model-based property tests: random operation sequences on a `List` agree with
//! `std::collections::VecDeque`, for every pointer strategy.

use proptest::prelude::*;
use relshm_collections::arena::{Arena, CollectionError};
use relshm_collections::list::List;
use relshm_ptr::{BaseRel, Offset, Raw, Repr, SegRel, Swizzle};
use relshm_segment::{CreateOptions, Placement, Segment};
use std::collections::VecDeque;

#[derive(Debug, Clone)]
enum Op {
    PushBack(u64),
    PushFront(u64),
    PopFront,
    PopBack,
    /// Cursor at position `.0 % (len + 1)` (len = the ghost), then an action.
    Cursor(usize, Action),
    Clear,
}

#[derive(Debug, Clone)]
enum Action {
    InsertAfter(u64),
    InsertBefore(u64),
    Remove,
    Prev,
}

fn op() -> impl Strategy<Value = Op> {
    let action = prop_oneof![
        any::<u64>().prop_map(Action::InsertAfter),
        any::<u64>().prop_map(Action::InsertBefore),
        Just(Action::Remove),
        Just(Action::Prev),
    ];
    prop_oneof![
        4 => any::<u64>().prop_map(Op::PushBack),
        3 => any::<u64>().prop_map(Op::PushFront),
        2 => Just(Op::PopFront),
        2 => Just(Op::PopBack),
        4 => (any::<usize>(), action).prop_map(|(i, a)| Op::Cursor(i, a)),
        1 => Just(Op::Clear),
    ]
}

fn ok<T>(r: Result<T, CollectionError>) -> Result<T, TestCaseError> {
    r.map_err(|e| TestCaseError::fail(e.to_string()))
}

/// Runs `ops` on a fresh list and the model; returns the list's offset.
fn model<R: Repr>(arena: &Arena<R>, ops: &[Op]) -> Result<(u64, Vec<u64>), TestCaseError> {
    let list = ok(List::<u64, R>::create(arena))?;
    let mut m = VecDeque::new();
    for op in ops {
        match *op {
            Op::PushBack(v) => {
                ok(list.push_back(v))?;
                m.push_back(v);
            }
            Op::PushFront(v) => {
                ok(list.push_front(v))?;
                m.push_front(v);
            }
            Op::PopFront => prop_assert_eq!(ok(list.pop_front())?, m.pop_front()),
            Op::PopBack => prop_assert_eq!(ok(list.pop_back())?, m.pop_back()),
            Op::Clear => {
                ok(list.clear())?;
                m.clear();
            }
            Op::Cursor(i, ref a) => {
                let k = i % (m.len() + 1);
                let mut g = ok(list.lock())?;
                let mut c = ok(g.cursor_front())?;
                for _ in 0..k {
                    ok(c.move_next())?;
                }
                prop_assert_eq!(c.current(), m.get(k).copied());
                match *a {
                    Action::InsertAfter(v) => {
                        ok(c.insert_after(v))?;
                        if k == m.len() {
                            m.push_front(v);
                        } else {
                            m.insert(k + 1, v);
                        }
                    }
                    Action::InsertBefore(v) => {
                        ok(c.insert_before(v))?;
                        if k == m.len() {
                            m.push_back(v);
                        } else {
                            m.insert(k, v);
                        }
                    }
                    Action::Remove => {
                        let got = ok(c.remove_current())?;
                        prop_assert_eq!(got, m.remove(k));
                        prop_assert_eq!(c.current(), m.get(k).copied());
                    }
                    Action::Prev => {
                        ok(c.move_prev())?;
                        // Before the first element is the ghost; before the ghost, the last.
                        let want = match k {
                            0 => None,
                            k if k == m.len() => m.back(),
                            k => m.get(k - 1),
                        };
                        prop_assert_eq!(c.current(), want.copied());
                    }
                }
            }
        }
        prop_assert_eq!(ok(list.len())?, m.len() as u64);
    }
    let all: Vec<u64> = m.iter().copied().collect();
    prop_assert_eq!(ok(list.to_vec())?, all.clone());
    prop_assert_eq!(ok(list.verify())?, m.len() as u64);
    Ok((list.offset(), all))
}

fn segment() -> Segment {
    Segment::create_unnamed(&CreateOptions::new(8 << 20)).unwrap()
}

/// A strategy shared in place: after the model ran through `make`'s arena, the same bytes
/// through a second mapping at another address hold what the model holds.
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
    let list = ok(List::<u64, R>::open(&arena2, off))?;
    prop_assert_eq!(ok(list.to_vec())?, want);
    Ok(())
}

fn ops() -> impl Strategy<Value = Vec<Op>> {
    prop::collection::vec(op(), 0..120)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn offset_agrees_with_vecdeque(ops in ops()) {
        in_place(&ops, Arena::<Offset>::new)?;
    }

    #[test]
    fn baserel_agrees_with_vecdeque(ops in ops()) {
        in_place(&ops, Arena::<BaseRel>::new)?;
    }

    #[test]
    fn segrel_agrees_with_vecdeque(ops in ops()) {
        in_place(&ops, Arena::<SegRel>::new)?;
    }

    #[test]
    fn raw_local_agrees_with_vecdeque(ops in ops()) {
        let seg = segment();
        let arena = ok(Arena::<Raw>::local(&seg))?;
        model(&arena, &ops)?;
    }

    #[test]
    fn swizzle_agrees_with_vecdeque_and_publishes(ops in ops()) {
        let seg = segment();
        let (off, want) = {
            let arena = ok(Arena::<Swizzle>::private(&seg))?;
            let r = model(&arena, &ops)?;
            ok(arena.publish(&seg))?;
            r
        };
        // A fresh private view of the published bytes, at another address.
        let other = seg.reopen(Placement::Anywhere).unwrap();
        let arena2 = ok(Arena::<Swizzle>::private(&other))?;
        let list = ok(List::<u64, Swizzle>::open(&arena2, off))?;
        prop_assert_eq!(ok(list.to_vec())?, want.clone());
        prop_assert_eq!(ok(list.verify())?, want.len() as u64);
    }
}

/// Fixed-address Raw: the creator and a second mapping at the same address (after the
/// first is gone) share absolute links.
#[test]
fn raw_fixed_address_shares_in_place() {
    let addr = 0x5a5a_0000_0000usize;
    let seg = Segment::create_unnamed(&CreateOptions::new(4 << 20).fixed_address(addr)).unwrap();
    assert_eq!(seg.base().as_ptr() as usize, addr);
    let arena = Arena::<Raw>::fixed(&seg).unwrap();
    let list = List::<u64, Raw>::create(&arena).unwrap();
    for i in 0..100 {
        list.push_back(i).unwrap();
    }
    assert_eq!(list.verify().unwrap(), 100);
    // A second mapping cannot land elsewhere: the segment records its fixed base.
    assert!(seg.reopen(Placement::Anywhere).is_err());
    // An ordinary segment has no fixed base: a Raw arena shared in place is refused.
    let plain = segment();
    assert!(Arena::<Raw>::fixed(&plain).is_err());
}
