//! What every model-based test of a collection does for each pointer strategy: run one
//! operation sequence against the collection and its `std` model, then read the result
//! back as another process would see it (the same bytes through a second mapping at
//! another address; for Swizzle, a fresh private view of the published bytes).
//!
//! A test implements [`Model`] and declares its five proptests with [`every_strategy!`].

use proptest::test_runner::TestCaseError;
use relshm_collections::arena::{Arena, CollectionError};
use relshm_ptr::{Raw, Repr, Swizzle};
use relshm_segment::{CreateOptions, Placement, Segment};

/// A collection under test and its model.
pub trait Model {
    /// One operation.
    type Op;
    /// What the collection holds at the end, as the model says it should be.
    type Seen: PartialEq + core::fmt::Debug;
    /// Bytes of the segments the test runs in.
    const SEGMENT: u64;
    /// Runs `ops` on a fresh collection in `arena` and on the model, checking every step;
    /// returns the collection's offset and the model's final contents.
    fn run<R: Repr>(arena: &Arena<R>, ops: &[Self::Op])
    -> Result<(u64, Self::Seen), TestCaseError>;
    /// The contents of the collection at `off`, read through `arena` (and verified).
    fn reopen<R: Repr>(arena: &Arena<R>, off: u64) -> Result<Self::Seen, TestCaseError>;
}

/// A collection error as a test failure.
pub fn ok<T>(r: Result<T, CollectionError>) -> Result<T, TestCaseError> {
    r.map_err(|e| TestCaseError::fail(e.to_string()))
}

fn segment<M: Model>() -> Segment {
    Segment::create_unnamed(&CreateOptions::new(M::SEGMENT)).unwrap()
}

fn same<M: Model>(got: M::Seen, want: &M::Seen) -> Result<(), TestCaseError> {
    if got != *want {
        return Err(TestCaseError::fail(format!(
            "read back {got:?}, the model holds {want:?}"
        )));
    }
    Ok(())
}

/// A strategy shared in place: the model runs through `make`'s arena, then the same bytes
/// through a second mapping at another address must hold what the model holds.
pub fn in_place<M: Model, R: Repr>(
    ops: &[M::Op],
    make: for<'s> fn(&'s Segment) -> Result<Arena<R>, CollectionError>,
) -> Result<(), TestCaseError> {
    let seg = segment::<M>();
    let (off, want) = M::run(&ok(make(&seg))?, ops)?;
    let other = seg.reopen(Placement::Anywhere).unwrap();
    if other.base() == seg.base() {
        return Err(TestCaseError::fail(
            "the second mapping is at the same address",
        ));
    }
    same::<M>(M::reopen(&ok(make(&other))?, off)?, &want)
}

/// Raw links valid in this process only: the model alone.
pub fn raw_local<M: Model>(ops: &[M::Op]) -> Result<(), TestCaseError> {
    let seg = segment::<M>();
    M::run(&ok(Arena::<Raw>::local(&seg))?, ops).map(drop)
}

/// Swizzle: the model runs in a private view, which is published; a fresh private view of
/// the published bytes, at another address, must hold what the model holds.
pub fn swizzle<M: Model>(ops: &[M::Op]) -> Result<(), TestCaseError> {
    let seg = segment::<M>();
    let (off, want) = {
        let arena = ok(Arena::<Swizzle>::private(&seg))?;
        let r = M::run(&arena, ops)?;
        ok(arena.publish(&seg))?;
        r
    };
    let other = seg.reopen(Placement::Anywhere).unwrap();
    same::<M>(
        M::reopen(&ok(Arena::<Swizzle>::private(&other))?, off)?,
        &want,
    )
}

/// Declares the five proptests of a [`Model`]: `every_strategy!(ModelType, ops(), cases;
/// offset_test, baserel_test, segrel_test, raw_local_test, swizzle_test)`.
#[macro_export]
macro_rules! every_strategy {
    ($model:ty, $ops:expr, $cases:expr;
     $offset:ident, $baserel:ident, $segrel:ident, $raw:ident, $swizzle:ident) => {
        proptest::proptest! {
            #![proptest_config(proptest::prelude::ProptestConfig::with_cases($cases))]

            #[test]
            fn $offset(ops in $ops) {
                model_support::in_place::<$model, relshm_ptr::Offset>(
                    &ops,
                    relshm_collections::arena::Arena::new,
                )?;
            }

            #[test]
            fn $baserel(ops in $ops) {
                model_support::in_place::<$model, relshm_ptr::BaseRel>(
                    &ops,
                    relshm_collections::arena::Arena::new,
                )?;
            }

            #[test]
            fn $segrel(ops in $ops) {
                model_support::in_place::<$model, relshm_ptr::SegRel>(
                    &ops,
                    relshm_collections::arena::Arena::new,
                )?;
            }

            #[test]
            fn $raw(ops in $ops) {
                model_support::raw_local::<$model>(&ops)?;
            }

            #[test]
            fn $swizzle(ops in $ops) {
                model_support::swizzle::<$model>(&ops)?;
            }
        }
    };
}
