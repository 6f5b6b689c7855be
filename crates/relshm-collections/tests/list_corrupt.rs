//! Corrupted bytes in a segment give typed errors from verify() and from operations, never
//! a crash or a hang: broken links, cycles and count mismatches, in a List and a Map.

use relshm_collections::arena::{Arena, CollectionError};
use relshm_collections::list::List;
use relshm_collections::map::Map;
use relshm_ptr::Offset;
use relshm_segment::{CreateOptions, Segment};
use std::sync::atomic::{AtomicU64, Ordering};

fn word(seg: &Segment, off: u64) -> &AtomicU64 {
    let p = seg.region().resolve_as::<u64>(off).unwrap();
    // SAFETY: resolved in bounds and aligned inside the live mapping; shared words are
    // accessed atomically.
    unsafe { AtomicU64::from_ptr(p.as_ptr()) }
}

fn is_corrupt<T>(r: &Result<T, CollectionError>) -> bool {
    matches!(r, Err(CollectionError::Corrupt(_)))
}

/// A list of 5; returns (segment offset of the header, of the first node).
fn list_of_five(seg: &Segment) -> (u64, u64) {
    let arena = Arena::<Offset>::new(seg).unwrap();
    let list = List::<u64, Offset>::create(&arena).unwrap();
    for i in 0..5 {
        list.push_back(i).unwrap();
    }
    let head = list.offset() + 128;
    // An Offset link stores target - &link.
    let first = head.wrapping_add(word(seg, head).load(Ordering::Relaxed));
    (list.offset(), first)
}

#[test]
fn list_count_mismatch_cycle_and_broken_link_are_reported() {
    let seg = Segment::create_unnamed(&CreateOptions::new(1 << 20)).unwrap();
    let arena = Arena::<Offset>::new(&seg).unwrap();

    let (off, _) = list_of_five(&seg);
    word(&seg, off + 16).store(9, Ordering::Relaxed); // len
    let e = List::<u64, Offset>::open(&arena, off).unwrap().verify();
    assert!(is_corrupt(&e), "{e:?}");
    assert!(e.unwrap_err().to_string().contains("length mismatch"));

    let (off, first) = list_of_five(&seg);
    word(&seg, first).store(1, Ordering::Relaxed); // first.next = itself
    let list = List::<u64, Offset>::open(&arena, off).unwrap();
    assert!(is_corrupt(&list.verify()));
    // Iteration ends with an error instead of looping forever.
    assert!(list.to_vec().is_err());

    let (off, _) = list_of_five(&seg);
    word(&seg, off + 128).store(1 << 40, Ordering::Relaxed); // head: far outside
    let list = List::<u64, Offset>::open(&arena, off).unwrap();
    assert!(is_corrupt(&list.verify()));
    assert!(matches!(list.pop_front(), Err(CollectionError::Link(_))));

    // Not a list at all.
    assert!(matches!(
        List::<u64, Offset>::open(&arena, off + 64),
        Err(CollectionError::BadHeader { .. })
    ));
}

#[test]
fn map_count_mismatch_and_broken_table_are_reported() {
    let seg = Segment::create_unnamed(&CreateOptions::new(4 << 20)).unwrap();
    let arena = Arena::<Offset>::new(&seg).unwrap();
    let map = Map::<u64, u64, Offset>::create(&arena).unwrap();
    for k in 0..100 {
        map.insert(k, k).unwrap();
    }
    assert_eq!(map.verify().unwrap(), 100);
    let stripe0_len = map.offset() + 1152 + 1088;
    let good = word(&seg, stripe0_len).load(Ordering::Relaxed);
    word(&seg, stripe0_len).store(good + 3, Ordering::Relaxed);
    let e = map.verify();
    assert!(is_corrupt(&e) && e.unwrap_err().to_string().contains("count mismatch"));
    word(&seg, stripe0_len).store(good, Ordering::Relaxed);
    assert_eq!(map.verify().unwrap(), 100);

    let table = map.offset() + 19584;
    let saved = word(&seg, table).load(Ordering::Relaxed);
    word(&seg, table).store(12345, Ordering::Relaxed);
    assert!(map.get(&1).is_err());
    assert!(map.verify().is_err());
    word(&seg, table).store(saved, Ordering::Relaxed);
    assert_eq!(map.get(&1).unwrap(), Some(1));
}
