//! The whole-segment check (`verify::verify_segment`): every named object gets a verdict,
//! what cannot be checked is `Unchecked` (never clean), damage is `Corrupt`, and a lock
//! whose holder no longer exists is reported without hanging.

use core::sync::atomic::{AtomicU64, Ordering};

use relshm_collections::arena::Arena;
use relshm_collections::list::List;
use relshm_collections::map::Map;
use relshm_collections::port::PortServer;
use relshm_collections::queue::{Queue, QueueConfig};
use relshm_collections::stream;
use relshm_collections::verify::offsets::{LIST_LEN, LIST_LOCK};
use relshm_collections::verify::verify_segment;
use relshm_ptr::{BaseRel, Offset};
use relshm_segment::verify::{Damage, Part, SegmentReport, Verdict};
use relshm_segment::{CreateOptions, Segment};

/// A byte-string key (the shapes the checker knows include `ByteKey<16>`).
type ByteKeyed = relshm_collections::map::ByteKey<16>;

fn word(seg: &Segment, offset: u64) -> &AtomicU64 {
    let p = seg.region().resolve_as::<u64>(offset).unwrap();
    // SAFETY: in bounds and aligned (resolve_as); the segment outlives the reference and
    // shared words are accessed atomically.
    unsafe { AtomicU64::from_ptr(p.as_ptr()) }
}

fn verdict<'r>(report: &'r SegmentReport, name: &str) -> &'r Verdict {
    &report
        .checks
        .iter()
        .find(|c| matches!(&c.part, Part::Object(e) if e.name == name.as_bytes()))
        .unwrap_or_else(|| panic!("no verdict on {name}:\n{report}"))
        .verdict
}

#[test]
fn every_object_gets_a_verdict_and_unchecked_is_not_clean() {
    let seg = Segment::create_unnamed(&CreateOptions::new(8 << 20)).unwrap();
    let heap = seg.heap().unwrap();
    let dir = seg.directory().unwrap();
    let arena = Arena::<Offset>::new(&seg).unwrap();
    let based = Arena::<BaseRel>::new(&seg).unwrap();

    let list = List::<u64, Offset>::create_named(&arena, "list").unwrap();
    list.push_back(1).unwrap();
    let map = Map::<ByteKeyed, [u8; 24], BaseRel>::create_named(&based, "map").unwrap();
    map.insert(ByteKeyed::new(b"k").unwrap(), [7; 24]).unwrap();
    // Queues and streams are recorded with typed records, whatever the arena's strategy.
    Queue::<u64>::create_named(&arena, "queue", QueueConfig::with_capacity(8)).unwrap();
    stream::Stream::create_named(&based, "stream", 4096).unwrap();
    let _port = PortServer::create_named(&based, "port", QueueConfig::with_capacity(4)).unwrap();
    dir.construct("counter", AtomicU64::new(7)).unwrap();
    dir.construct("flags", [0u32; 4]).unwrap();

    let report = verify_segment(&seg);
    assert!(report.is_clean(), "{report}");
    // header, heap, directory, then one check per object.
    assert_eq!(report.checks.len(), 3 + 7, "{report}");
    assert_eq!(report.objects().count(), 7);
    for name in ["list", "map", "queue", "stream", "port", "counter", "flags"] {
        assert!(verdict(&report, name).is_verified(), "{name}: {report}");
    }

    // Any value shape is checked from the map's record.
    Map::<u64, [u8; 48], Offset>::create_named(&arena, "odd")
        .unwrap()
        .insert(3, [4; 48])
        .unwrap();
    assert!(verify_segment(&seg).is_clean());
    // An offset to a live allocation whose header nobody recognises: unchecked.
    let blob = heap.alloc(64, 64).unwrap();
    dir.construct("blob", AtomicU64::new(blob)).unwrap();
    // A list named by a bare offset (as before typed records): unchecked, not guessed.
    let old = List::<u64, Offset>::create(&arena).unwrap();
    dir.construct("old", AtomicU64::new(old.offset())).unwrap();
    let report = verify_segment(&seg);
    assert!(!report.is_clean(), "{report}");
    assert_eq!(report.corrupt().count(), 0, "{report}");
    assert_eq!(report.unchecked().count(), 2, "{report}");
    assert!(verdict(&report, "odd").is_verified());
    assert!(verdict(&report, "blob").is_unchecked());
    match verdict(&report, "old") {
        Verdict::Unchecked(why) => assert!(why.contains("predates typed collection records")),
        other => panic!("the bare-offset list is {other}"),
    }

    // Damage: the list's count disagrees with its nodes.
    word(&seg, list.offset() + LIST_LEN).store(5, Ordering::Release);
    let report = verify_segment(&seg);
    match verdict(&report, "list") {
        Verdict::Corrupt(e) => assert!(
            e.to_string().contains("length mismatch: header says 5"),
            "{e}"
        ),
        other => panic!("the damaged list is {other}"),
    }
    assert!(verdict(&report, "map").is_verified(), "{report}");
}

#[test]
fn a_lock_held_by_a_thread_that_no_longer_exists_is_damage_not_a_hang() {
    let seg = Segment::create_unnamed(&CreateOptions::new(1 << 20)).unwrap();
    let arena = Arena::<Offset>::new(&seg).unwrap();
    let list = List::<u64, Offset>::create_named(&arena, "list").unwrap();
    // A thread id that no process holds (above the kernel's PID_MAX_LIMIT of 2^22).
    let ghost = (1u64 << 22) + 12345;
    let lock_word = word(&seg, list.offset() + LIST_LOCK);
    // The mutex's first word is its futex word: the owner's thread id.
    lock_word.store(ghost, Ordering::Release);
    let report = verify_segment(&seg);
    match verdict(&report, "list") {
        Verdict::Corrupt(e) => match e.downcast_ref::<Damage>() {
            Some(Damage::DeadOwner { tid, .. }) => assert_eq!(u64::from(*tid), ghost),
            _ => panic!("not a dead owner: {e}"),
        },
        other => panic!("the list with a stuck lock is {other}"),
    }
    lock_word.store(0, Ordering::Release);
    assert!(verify_segment(&seg).is_clean());

    // A user's mutex entry: its data is plain, but a stuck lock is reported.
    let m = seg
        .directory()
        .unwrap()
        .construct("m", relshm_sync::Mutex::new(3u64))
        .unwrap()
        .offset();
    word(&seg, m).store(ghost, Ordering::Release);
    let report = verify_segment(&seg);
    assert!(
        verdict(&report, "m").is_corrupt(),
        "a mutex held by no thread: {report}"
    );
    word(&seg, m).store(0, Ordering::Release);
    assert!(verify_segment(&seg).is_clean());
}

/// Vectors and byte maps are walked from their records: clean when whole; a vector whose
/// capacity disagrees with its buffer, or a byte map with a node no bucket reaches (a
/// leak), is corrupt and named.
#[test]
fn vectors_and_byte_maps_are_walked_and_damage_is_named() {
    use relshm_collections::bytes_map::BytesMap;
    use relshm_collections::vec::Vec as SegVec;
    use relshm_collections::verify::offsets::VEC_LEN;
    let seg = Segment::create_unnamed(&CreateOptions::new(8 << 20)).unwrap();
    let arena = Arena::<Offset>::new(&seg).unwrap();
    let v = SegVec::<[u32; 3], Offset>::create_named(&arena, "vec").unwrap();
    v.extend_from_slice(&[[1, 2, 3]; 10]).unwrap();
    let m = BytesMap::<BaseRel>::create_named(&Arena::new(&seg).unwrap(), "blobs").unwrap();
    m.insert(b"k", &[9; 5000]).unwrap();
    let report = verify_segment(&seg);
    assert!(report.is_clean(), "{report}");
    assert!(matches!(verdict(&report, "vec"), Verdict::Verified(s) if s.contains("10 element")));
    assert!(matches!(verdict(&report, "blobs"), Verdict::Verified(s) if s.contains("1 entr")));

    // A length past the capacity.
    word(&seg, v.offset() + VEC_LEN).store(1 << 40, Ordering::Relaxed);
    let report = verify_segment(&seg);
    assert!(
        matches!(verdict(&report, "vec"), Verdict::Corrupt(e) if e.to_string().contains("exceeds capacity")),
        "{report}"
    );
    // An owned node block of a stripe that nothing links: what a dead writer would leave
    // if its repair had not run.
    word(&seg, v.offset() + VEC_LEN).store(10, Ordering::Relaxed);
    let heap = seg.heap().unwrap();
    let (_, rec) = heap
        .owned_allocations()
        .unwrap()
        .into_iter()
        .find(|(_, r)| r[1] >> 48 == u64::from(u16::from_le_bytes(*b"BN")))
        .unwrap();
    heap.alloc_owned(64, 16, rec).unwrap();
    let report = verify_segment(&seg);
    assert!(
        matches!(verdict(&report, "blobs"), Verdict::Corrupt(e) if e.to_string().contains("leftovers")),
        "{report}"
    );
}
