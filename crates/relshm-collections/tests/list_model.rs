//! Model-based property tests: random operation sequences on a `List` agree with
//! `std::collections::VecDeque`, for every pointer strategy.

mod model_support;

use model_support::{Model, ok};
use proptest::prelude::*;
use relshm_collections::arena::Arena;
use relshm_collections::list::List;
use relshm_ptr::{Raw, Repr};
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

fn ops() -> impl Strategy<Value = Vec<Op>> {
    prop::collection::vec(op(), 0..120)
}

/// The collection and its model, for [`every_strategy!`].
struct ListModel;

impl Model for ListModel {
    type Op = Op;
    type Seen = Vec<u64>;
    const SEGMENT: u64 = 8 << 20;

    fn run<R: Repr>(arena: &Arena<R>, ops: &[Op]) -> Result<(u64, Self::Seen), TestCaseError> {
        model(arena, ops)
    }

    fn reopen<R: Repr>(arena: &Arena<R>, off: u64) -> Result<Self::Seen, TestCaseError> {
        let list = ok(List::<u64, R>::open(arena, off))?;
        let got = ok(list.to_vec())?;
        prop_assert_eq!(ok(list.verify())?, got.len() as u64);
        Ok(got)
    }
}

every_strategy!(ListModel, ops(), 48;
    offset_agrees_with_vecdeque,
    baserel_agrees_with_vecdeque,
    segrel_agrees_with_vecdeque,
    raw_local_agrees_with_vecdeque,
    swizzle_agrees_with_vecdeque_and_publishes
);

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
