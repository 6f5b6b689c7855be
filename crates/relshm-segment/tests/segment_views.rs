//! Views: windows of a large segment, in one process and across processes.

mod segment_support;

use std::sync::atomic::Ordering;

use relshm_segment::{CreateOptions, OpenOptions, ReadOnlySegment, Segment, SegmentError};
use relshm_testkit::{Exit, Scratch, fork_child};
use segment_support::{LIMIT, ShmName, word};

const MIB: u64 = 1 << 20;

#[test]
fn views_see_the_same_bytes() {
    let name = ShmName::new("views");
    let seg = Segment::create_named(&name.0, &CreateOptions::new(8 * MIB)).unwrap();
    let v1 = seg.view(4 * MIB, MIB).unwrap();
    let v2 = seg.view(4 * MIB + 64 * 1024, 64 * 1024).unwrap();
    assert_eq!(v1.len(), MIB);
    assert_eq!(v1.offset(), 4 * MIB);
    // A write through the whole segment shows in both views at their own offsets.
    word(seg.region(), 4 * MIB + 64 * 1024 + 8).store(123, Ordering::Release);
    assert_eq!(
        word(v1.region(), 64 * 1024 + 8).load(Ordering::Acquire),
        123
    );
    assert_eq!(word(v2.region(), 8).load(Ordering::Acquire), 123);
    // And a write through a view shows in the segment.
    word(v2.region(), 16).store(456, Ordering::Release);
    assert_eq!(
        word(seg.region(), 4 * MIB + 64 * 1024 + 16).load(Ordering::Acquire),
        456
    );
    let ro = seg.view_read_only(4 * MIB, 4096).unwrap();
    assert_eq!(
        ro.load_u64(64 * 1024 + 8).ok(),
        None,
        "outside the 4 KiB view"
    );
    word(v1.region(), 0).store(7, Ordering::Release);
    assert_eq!(ro.load_u64(0).unwrap(), 7);

    // A view in another process, of a segment it opened itself.
    let scratch = Scratch::new();
    let child = fork_child(|| {
        let s = ReadOnlySegment::open_named(&name.0, &OpenOptions::new()).unwrap();
        let v = s.view(4 * MIB, MIB).unwrap();
        scratch.slot(0).store(v.as_ptr() as u64, Ordering::Release);
        let mut buf = [0u8; 8];
        v.read(64 * 1024 + 16, &mut buf).unwrap();
        if u64::from_ne_bytes(buf) == 456 { 0 } else { 1 }
    });
    assert_eq!(child.wait_timeout(LIMIT), Exit::Code(0));
    assert_ne!(
        scratch.slot(0).load(Ordering::Acquire),
        v1.region().base().as_ptr() as u64
    );
}

#[test]
fn bad_windows_are_refused() {
    let seg = Segment::create_unnamed(&CreateOptions::new(MIB)).unwrap();
    assert!(matches!(
        seg.view(100, 4096),
        Err(SegmentError::Unaligned {
            what: "view offset",
            value: 100,
            ..
        })
    ));
    assert!(matches!(
        seg.view(0, 2 * MIB),
        Err(SegmentError::ViewOutOfRange { .. })
    ));
    assert!(matches!(
        seg.view(MIB, 4096),
        Err(SegmentError::ViewOutOfRange { .. })
    ));
    assert!(matches!(
        seg.view(0, 0),
        Err(SegmentError::ViewOutOfRange { .. })
    ));
    assert!(matches!(
        seg.view(u64::MAX - 4095, 4096),
        Err(SegmentError::ViewOutOfRange { .. })
    ));
    // A view outlives the segment handle it came from.
    let v = seg.view(0, 8192).unwrap();
    word(seg.region(), 4096).store(11, Ordering::Release);
    drop(seg);
    assert_eq!(word(v.region(), 4096).load(Ordering::Acquire), 11);
}
