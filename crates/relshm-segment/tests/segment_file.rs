//! Persistent file-backed segments: the data survives every process that used it.

mod segment_support;

use std::sync::atomic::Ordering;

use relshm_segment::{CreateOptions, OpenOptions, ReadOnlySegment, Segment, SegmentError};
use relshm_testkit::{Exit, Scratch, fork_child};
use segment_support::{DATA, LIMIT, TempPath, word};

#[test]
fn data_survives_process_restarts() {
    let path = TempPath::new("persist");
    let scratch = Scratch::new();
    // Process 1 creates the file, writes, flushes and exits: nobody has it mapped after.
    let p = path.0.clone();
    let writer = fork_child(|| {
        let s = Segment::create_file(&p, &CreateOptions::new(64 << 10).max_size(1 << 20)).unwrap();
        scratch.slot(1).store(s.segment_id(), Ordering::Release);
        for i in 0..100 {
            word(s.region(), DATA + 8 * i).store(i * i, Ordering::Release);
        }
        s.grow(128 << 10).unwrap();
        word(s.region(), 100 << 10).store(0xabc, Ordering::Release);
        s.flush().unwrap();
        0
    });
    assert_eq!(writer.wait_timeout(LIMIT), Exit::Code(0));
    // Process 2, a fresh one, opens the file again and adds to it.
    let p = path.0.clone();
    let reader = fork_child(|| {
        let s = Segment::open_file(&p, &OpenOptions::new()).unwrap();
        let ok = s.segment_id() == scratch.slot(1).load(Ordering::Acquire)
            && s.size() == 128 << 10
            && (0..100).all(|i| word(s.region(), DATA + 8 * i).load(Ordering::Acquire) == i * i)
            && word(s.region(), 100 << 10).load(Ordering::Acquire) == 0xabc;
        word(s.region(), DATA).store(0x5eed, Ordering::Release);
        s.flush().unwrap();
        if ok { 0 } else { 1 }
    });
    assert_eq!(reader.wait_timeout(LIMIT), Exit::Code(0));
    // The parent (a third process) sees both.
    let s = ReadOnlySegment::open_file(&path.0, &OpenOptions::new()).unwrap();
    assert_eq!(s.load_u64(DATA).unwrap(), 0x5eed);
    assert_eq!(s.load_u64(DATA + 8 * 99).unwrap(), 99 * 99);
    assert_eq!(s.len(), 128 << 10);
    // No stale attach entries survive the writers (they are reclaimed).
    assert!(s.attached().is_empty());
}

#[test]
fn child_maps_file_at_another_address() {
    let path = TempPath::new("file-addr");
    let seg = Segment::create_file(&path.0, &CreateOptions::new(16 << 10)).unwrap();
    word(seg.region(), DATA).store(3, Ordering::Release);
    let scratch = Scratch::new();
    let child = fork_child(|| {
        let s = Segment::open_file(&path.0, &OpenOptions::new()).unwrap();
        scratch
            .slot(0)
            .store(s.base().as_ptr() as u64, Ordering::Release);
        word(s.region(), DATA).fetch_add(1, Ordering::AcqRel);
        0
    });
    assert_eq!(child.wait_timeout(LIMIT), Exit::Code(0));
    assert_ne!(
        scratch.slot(0).load(Ordering::Acquire),
        seg.base().as_ptr() as u64
    );
    assert_eq!(word(seg.region(), DATA).load(Ordering::Acquire), 4);
}

#[test]
fn file_open_or_create_and_errors() {
    let path = TempPath::new("file-ooc");
    let opts = CreateOptions::new(16 << 10).mode(0o604);
    let a = Segment::open_or_create_file(&path.0, &opts).unwrap();
    let b = Segment::open_or_create_file(&path.0, &opts).unwrap();
    assert_eq!(a.segment_id(), b.segment_id());
    let meta = std::fs::metadata(&path.0).unwrap();
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&meta.permissions()) & 0o777,
        0o604
    );
    assert!(matches!(
        Segment::open_or_create_file(&path.0, &CreateOptions::new(16 << 10)),
        Err(SegmentError::ModeMismatch {
            expected: 0o600,
            found: 0o604
        })
    ));
    assert!(matches!(
        Segment::open_file(path.0.with_extension("missing"), &OpenOptions::new()),
        Err(SegmentError::NotFound { .. })
    ));
}
