//! Caller mistakes are named as such: opening a collection or attaching a queue at an
//! offset that is misaligned, outside the segment, or simply not where one starts says so,
//! and does not blame damage to the segment (or Raw links).

mod queue_support;

use queue_support::{arena, queue, segment};
use relshm_collections::arena::{Arena, CollectionError};
use relshm_collections::list::List;
use relshm_collections::map::Map;
use relshm_collections::queue::linked::LinkedQueue;
use relshm_collections::queue::{Queue, QueueConfig};
use relshm_collections::stream::Stream;
use relshm_ptr::{Offset, PtrError};

/// Asserts a collection open failed on the offset itself, for the reason `misaligned`
/// (or out of bounds), with a message that says what to do.
fn assert_bad_offset(r: Result<impl Sized, CollectionError>, offset: u64, misaligned: bool) {
    let Err(e) = r else {
        panic!("opening at {offset:#x} succeeded")
    };
    let text = e.to_string();
    match &e {
        CollectionError::BadOffset {
            offset: o, source, ..
        } => {
            assert_eq!(*o, offset);
            if misaligned {
                assert!(matches!(source, PtrError::Misaligned { .. }), "{e:?}");
                assert!(text.contains("misaligned"), "{text}");
                assert!(!text.contains("outside"), "{text}");
            } else {
                assert!(matches!(source, PtrError::OutOfBounds { .. }), "{e:?}");
            }
        }
        other => panic!("expected BadOffset at {offset:#x}, got {other:?}"),
    }
    assert!(!text.contains("Raw link"), "{text}");
    assert!(!text.contains("invalid link"), "{text}");
    assert!(text.contains("offset() returned"), "{text}");
}

/// Asserts a collection open failed because nothing of its kind starts there.
fn assert_no_such(r: Result<impl Sized, CollectionError>, expected: &str) {
    let Err(e) = r else {
        panic!("opening a {expected} on something else succeeded")
    };
    let text = e.to_string();
    assert!(
        matches!(&e, CollectionError::BadHeader { expected: x, .. } if *x == expected),
        "{e:?}"
    );
    assert!(text.contains("the offset is wrong"), "{text}");
    assert!(!text.contains("corrupt"), "{text}");
}

#[test]
fn collections_opened_at_a_wrong_offset_blame_the_offset() {
    let seg = segment(1 << 20);
    let arena = Arena::<Offset>::new(&seg).unwrap();
    let list = List::<u64, Offset>::create(&arena).unwrap();
    let map = Map::<u64, u64, Offset>::create(&arena).unwrap();
    let lq = LinkedQueue::<u64, Offset>::create(&arena).unwrap();
    let far = seg.size() + (1 << 20);

    assert_bad_offset(
        List::<u64, Offset>::open(&arena, list.offset() + 4),
        list.offset() + 4,
        true,
    );
    assert_bad_offset(List::<u64, Offset>::open(&arena, far), far, false);
    assert_bad_offset(
        Map::<u64, u64, Offset>::open(&arena, map.offset() + 4),
        map.offset() + 4,
        true,
    );
    assert_bad_offset(
        LinkedQueue::<u64, Offset>::open(&arena, lq.offset() + 4),
        lq.offset() + 4,
        true,
    );
    assert_bad_offset(LinkedQueue::<u64, Offset>::open(&arena, far), far, false);

    // Aligned, inside, but another kind of object: each names itself as not found there.
    assert_no_such(
        List::<u64, Offset>::open(&arena, map.offset()),
        "relshm List",
    );
    assert_no_such(
        Map::<u64, u64, Offset>::open(&arena, list.offset()),
        "relshm Map",
    );
    assert_no_such(
        LinkedQueue::<u64, Offset>::open(&arena, list.offset()),
        "relshm LinkedQueue",
    );
    // The right offsets still open.
    List::<u64, Offset>::open(&arena, list.offset()).unwrap();
    Map::<u64, u64, Offset>::open(&arena, map.offset()).unwrap();
    LinkedQueue::<u64, Offset>::open(&arena, lq.offset()).unwrap();
}

#[test]
fn queues_and_streams_opened_at_a_wrong_offset_blame_the_offset() {
    let seg = segment(4 << 20);
    let q = queue::<u64>(&seg, QueueConfig::with_capacity(8));
    let other = queue::<u64>(&seg, QueueConfig::with_capacity(8));
    let off = q.offset();
    let arena = arena(&seg);

    // Misaligned (a control block starts 64-aligned) or outside the segment: the offset's
    // fault, said as for lists and maps.
    assert_bad_offset(Queue::<u64>::open(&arena, off + 8), off + 8, true);
    assert_bad_offset(Queue::<u64>::open(&arena, 1 << 40), 1 << 40, false);
    // Aligned but no queue there (the ring of another queue): not a queue, not damage.
    let wrong = other.offset() + 2368;
    assert_no_such(Queue::<u64>::open(&arena, wrong), "relshm Queue");
    let e = Queue::<u64>::open(&arena, wrong).unwrap_err();
    assert!(
        e.to_string().contains(&format!(
            "no relshm Queue at offset {wrong:#x}: wrong magic number"
        )),
        "{e}"
    );
    assert_eq!(Queue::<u64>::open(&arena, off).unwrap().offset(), off);

    // Streams alike.
    let stream = Stream::create(&arena, 256).unwrap();
    let s = stream.offset();
    assert_bad_offset(Stream::open(&arena, s + 8), s + 8, true);
    assert_bad_offset(Stream::open(&arena, 1 << 40), 1 << 40, false);
    assert_no_such(Stream::open(&arena, off), "relshm Stream");
    assert_no_such(Queue::<u64>::open(&arena, s), "relshm Queue");
    assert_eq!(Stream::open(&arena, s).unwrap().capacity(), 256);
}
