//! Unnamed (memfd) segments shared with forked children that map them again elsewhere.

mod segment_support;

use std::sync::atomic::Ordering;

use relshm_segment::{CreateOptions, Placement, Segment, SegmentKind};
use relshm_testkit::{Exit, Scratch, fork_child};
use segment_support::{DATA, LIMIT, word};

#[test]
fn forked_child_remaps_inherited_fd_at_another_address() {
    let seg = Segment::create_unnamed(&CreateOptions::new(64 << 10)).unwrap();
    assert_eq!(seg.kind(), &SegmentKind::Unnamed);
    word(seg.region(), DATA).store(41, Ordering::Release);
    let scratch = Scratch::new();
    let child = fork_child(|| {
        let own = seg.reopen(Placement::Anywhere).unwrap();
        scratch
            .slot(0)
            .store(own.base().as_ptr() as u64, Ordering::Release);
        // Increment through the child's own mapping.
        word(own.region(), DATA).fetch_add(1, Ordering::AcqRel);
        scratch.slot(1).store(1, Ordering::Release);
        scratch.wait_for(2, 1, LIMIT);
        0
    });
    scratch.wait_for(1, 1, LIMIT);
    let child_base = scratch.slot(0).load(Ordering::Acquire);
    assert_ne!(child_base, seg.base().as_ptr() as u64);
    assert_eq!(word(seg.region(), DATA).load(Ordering::Acquire), 42);
    assert_eq!(seg.base_of(child.pid() as u32), Some(child_base));
    scratch.slot(2).store(1, Ordering::Release);
    assert_eq!(child.wait_timeout(LIMIT), Exit::Code(0));
}

#[test]
fn mapped_twice_in_one_process() {
    let a = Segment::create_unnamed(&CreateOptions::new(16 << 10)).unwrap();
    let b = a.reopen(Placement::Anywhere).unwrap();
    assert_ne!(a.base(), b.base());
    assert_ne!(a.attach_slot(), b.attach_slot());
    word(a.region(), DATA).store(9, Ordering::Release);
    assert_eq!(word(b.region(), DATA).load(Ordering::Acquire), 9);
    let bases: Vec<u64> = a.attached().iter().map(|x| x.base).collect();
    assert!(bases.contains(&(a.base().as_ptr() as u64)));
    assert!(bases.contains(&(b.base().as_ptr() as u64)));
    let slot_b = b.attach_slot();
    drop(b);
    // Detaching on drop frees only that mapping's entry.
    let left = a.attached();
    assert_eq!(left.len(), 1);
    assert_ne!(left[0].slot, slot_b);
    assert_eq!(word(a.region(), DATA).load(Ordering::Acquire), 9);
}
