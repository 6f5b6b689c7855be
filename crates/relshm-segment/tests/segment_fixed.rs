//! Fixed-address (uniform addressing) mode: every process maps at the recorded base, and a
//! taken address is a clear error.

mod segment_support;

use std::sync::atomic::Ordering;

use relshm_segment::{CreateOptions, OpenOptions, Placement, Segment, SegmentError};
use relshm_testkit::{Exit, Scratch, fork_child};
use segment_support::{DATA, LIMIT, ShmName, word};

const BASE: usize = 0x5300_0000_0000;
const MAX: u64 = 4 << 20;

#[test]
fn every_process_maps_at_the_recorded_base() {
    let name = ShmName::new("fixed");
    let seg = Segment::create_named(
        &name.0,
        &CreateOptions::new(64 << 10)
            .max_size(MAX)
            .fixed_address(BASE),
    )
    .unwrap();
    assert_eq!(seg.base().as_ptr() as usize, BASE);
    assert_eq!(seg.fixed_base(), Some(BASE as u64));
    // An absolute pointer stored in the segment is valid in every process.
    let target = BASE as u64 + DATA + 64;
    word(seg.region(), DATA).store(target, Ordering::Release);
    word(seg.region(), DATA + 64).store(0x600d, Ordering::Release);

    let scratch = Scratch::new();
    let child = fork_child(|| {
        // The inherited mapping occupies the base: opening must fail with a clear error.
        let err = Segment::open_named(&name.0, &OpenOptions::new()).unwrap_err();
        let taken = matches!(err, SegmentError::AddressTaken { addr: BASE, .. })
            && err.to_string().contains("already mapped");
        // Drop the inherited mapping (this child never uses it), then open for real.
        // SAFETY: the range is the parent's reservation inherited by fork; nothing in the
        // child touches it again (the child _exits without running destructors).
        unsafe { rustix::mm::munmap(BASE as *mut _, MAX as usize).unwrap() };
        let s = Segment::open_named(&name.0, &OpenOptions::new()).unwrap();
        scratch
            .slot(0)
            .store(s.base().as_ptr() as u64, Ordering::Release);
        let ptr = word(s.region(), DATA).load(Ordering::Acquire) as *const u64;
        // SAFETY: the pointer was written by the parent for this same base, which the
        // child now maps; it points at an initialised u64 inside the segment.
        let value = unsafe { ptr.read_volatile() };
        if taken && value == 0x600d { 0 } else { 1 }
    });
    assert_eq!(child.wait_timeout(LIMIT), Exit::Code(0));
    assert_eq!(scratch.slot(0).load(Ordering::Acquire), BASE as u64);
}

#[test]
fn fixed_mode_errors() {
    let name = ShmName::new("fixed-err");
    let base = BASE + (64 << 20);
    let _seg =
        Segment::create_named(&name.0, &CreateOptions::new(16 << 10).fixed_address(base)).unwrap();
    // Asking for another address for a fixed segment is refused.
    let err = Segment::open_named(
        &name.0,
        &OpenOptions::new().placement(Placement::At(base + 4096)),
    )
    .unwrap_err();
    assert!(matches!(err, SegmentError::FixedBaseMismatch { .. }));
    // Mapping it a second time in this process cannot work: its address is taken.
    assert!(matches!(
        Segment::open_named(&name.0, &OpenOptions::new()),
        Err(SegmentError::AddressTaken { addr, .. }) if addr == base
    ));
    // Creating another fixed segment over a taken range fails, and leaves no object behind.
    let other = ShmName::new("fixed-err2");
    assert!(matches!(
        Segment::create_named(&other.0, &CreateOptions::new(16 << 10).fixed_address(base)),
        Err(SegmentError::AddressTaken { .. })
    ));
    assert!(matches!(
        Segment::open_named(&other.0, &OpenOptions::new()),
        Err(SegmentError::NotFound { .. })
    ));
}
