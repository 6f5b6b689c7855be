//! A `Vec` whose header bytes are corrupted: every operation returns `Ok` or `Err`, never
//! reads or writes past its buffer, panics, or hangs. Regressions found by the
//! `untrusted_image` fuzz target (`fuzz/src/vec_image.rs`).

use relshm_collections::arena::{Arena, CollectionError};
use relshm_collections::vec::Vec as SegVec;
use relshm_collections::verify::offsets::{VEC_LEN, VEC_LOCK};
use relshm_ptr::{BaseRel, Offset, Repr};
use relshm_segment::{CreateOptions, Segment};
use relshm_sync::RawRwLock;
use relshm_testkit::{Exit, fork_child};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

/// Where a header keeps its capacity (after the length) and its buffer link (after the
/// lock), as `VecHeader`'s layout table says.
const VEC_CAP: u64 = VEC_LEN + 8;
const VEC_BUF: u64 = VEC_LOCK + size_of::<RawRwLock>() as u64;

fn segment() -> Segment {
    Segment::create_unnamed(&CreateOptions::new(1 << 20)).unwrap()
}

fn word(seg: &Segment, off: u64) -> &AtomicU64 {
    let p = seg.region().resolve_as::<u64>(off).unwrap();
    // SAFETY: resolved in bounds and aligned inside the live mapping; shared words are
    // accessed atomically.
    unsafe { AtomicU64::from_ptr(p.as_ptr()) }
}

/// A vector holding 1, 2, 3, 4 in a buffer of capacity 4, whose length word then says
/// `len`.
fn four_then_len<R: Repr>(arena: &Arena<R>, len: u64) -> SegVec<u64, R> {
    let v = SegVec::<u64, R>::create(arena).unwrap();
    v.extend_from_slice(&[1, 2, 3, 4]).unwrap();
    assert_eq!(v.capacity(), 4);
    let seg = arena.segment().unwrap();
    word(seg, v.offset() + VEC_LEN).store(len, Relaxed);
    v
}

fn is_corrupt<T>(r: &Result<T, CollectionError>) -> bool {
    matches!(r, Err(CollectionError::Corrupt(_)))
}

/// Found by fuzzing: `Vec::get(u64::MAX)` computes `i + 1` before comparing `i` with the
/// length (`vec/read.rs:30`, `(i < len).then_some(i..i + 1)`: `then_some` evaluates its
/// argument eagerly), which panics with "attempt to add with overflow" wherever overflow
/// checks are on (debug builds, `cargo fuzz`).
#[test]
fn get_past_the_end_is_none_for_every_index() {
    let seg = segment();
    let v = SegVec::<u64, BaseRel>::create(&Arena::new(&seg).unwrap()).unwrap();
    v.extend_from_slice(&[1, 2, 3]).unwrap();
    for i in [3, 1 << 32, 1 << 63, u64::MAX - 1, u64::MAX] {
        assert_eq!(v.get(i).unwrap(), None, "index {i}");
    }
}

/// Found by fuzzing: the changes that copy the elements take the header's length as the
/// number to copy out of the buffer, never checking it against the capacity
/// (`vec/guard.rs`: `slice(old, len)` in `extend_from_slice` (line 139), `insert` (195),
/// `remove` (219), `reserve` (251)), so a length one past the capacity reads an element
/// past the buffer into the new one and reports success; `pop` reports `None` for a
/// vector whose length says 5. `read` already reports this length as corruption.
#[test]
fn a_length_past_the_capacity_is_corruption_for_every_change() {
    let seg = segment();
    let arena = Arena::<BaseRel>::new(&seg).unwrap();
    assert!(is_corrupt(&four_then_len(&arena, 5).read().map(|_| ())));
    type Change = fn(&SegVec<u64, BaseRel>) -> Result<(), CollectionError>;
    let changes: [(&str, Change); 6] = [
        ("push", |v| v.push(9)),
        ("extend_from_slice", |v| v.extend_from_slice(&[9, 9])),
        ("insert", |v| v.insert(0, 9)),
        ("remove", |v| v.remove(0).map(drop)),
        ("reserve", |v| v.reserve(10)),
        ("pop", |v| v.pop().map(drop)),
    ];
    let wrong: Vec<String> = changes
        .iter()
        .filter_map(|(name, change)| {
            let r = change(&four_then_len(&arena, 5));
            (!is_corrupt(&r)).then(|| format!("{name}: {r:?}"))
        })
        .collect();
    assert!(wrong.is_empty(), "not reported as corruption: {wrong:?}");
}

/// Found by fuzzing (`len` 7 with bit 48 flipped, then `insert(59, _)` on a `Swizzle`
/// vector): `insert` sizes its new buffer from the capacity and then copies `len`
/// elements into it (`vec/guard.rs:195-198`), writing past the buffer, past the end of the
/// segment and over whatever is mapped after it until it faults (under ASan:
/// heap-buffer-overflow in `racy::write_bytes`; in a test process it typically ends on a
/// thread's stack guard, "has overflowed its stack"). `remove` does the same
/// (`vec/guard.rs:219-221`); with a length of `u64::MAX`, `insert` panics first, computing
/// `len + 1` (`vec/guard.rs:194`). Run in a child, which must end normally.
#[test]
fn a_huge_length_is_an_error_not_a_write_past_the_segment() {
    let seg = segment();
    let arena = Arena::<BaseRel>::new(&seg).unwrap();
    let (insert, remove, longest) = (
        four_then_len(&arena, (1 << 48) + 4),
        four_then_len(&arena, (1 << 48) + 4),
        four_then_len(&arena, u64::MAX),
    );
    let child = fork_child(|| {
        let r = [
            insert.insert(1, 9),
            remove.remove(1).map(drop),
            longest.insert(1, 9),
        ];
        i32::from(!r.iter().all(is_corrupt))
    });
    assert_eq!(child.wait(), Exit::Code(0));
}

/// Found by fuzzing (a bit flip in an `Offset` buffer link): `Vec::buf` only checks that
/// the link resolves in bounds for `cap` elements (`vec/guard.rs:49-63`), not that it
/// leads to a buffer of this vector (its capacity word, as `verify` checks), so `push`
/// writes wherever it leads. Led into another vector's lock, the write makes a reader slot
/// name a thread that does not exist, and that vector's next `push` waits for it forever.
#[test]
fn a_buffer_link_into_another_vector_does_not_hang_it() {
    let seg = segment();
    let arena = Arena::<Offset>::new(&seg).unwrap();
    let a = four_then_len(&arena, 4);
    let b = SegVec::<u64, Offset>::create(&arena).unwrap();
    // The first reader slot's lock word of `b`; `a`'s element 4 lands on it.
    let slot = b.offset() + VEC_LOCK + 64;
    let first = slot - 4 * 8;
    word(&seg, a.offset() + VEC_CAP).store(8, Relaxed);
    // An `Offset` link holds its target minus its own offset.
    let link = a.offset() + VEC_BUF;
    word(&seg, link).store(first.wrapping_sub(link), Relaxed);
    let child = fork_child(|| {
        let _ = a.push(0x0bad_cafe);
        let _ = b.push(1);
        0
    });
    assert_eq!(child.wait_timeout(Duration::from_secs(10)), Exit::Code(0));
}
