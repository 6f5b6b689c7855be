//! A segment's heap and directory, used by real processes that map the segment at
//! different addresses: named objects found by name, a type mismatch refused, and the heap
//! growing the segment while another process is attached.

mod segment_support;

use std::sync::atomic::{AtomicU64, Ordering};

use relshm_segment::directory::DirectoryError;
use relshm_segment::heap::HeapError;
use relshm_segment::{CreateOptions, OpenOptions, Segment, SegmentError};
use relshm_sync::Mutex;
use relshm_testkit::{Scratch, fork_child};
use segment_support::{LIMIT, ShmName};

#[test]
fn directory_objects_are_shared_across_processes_at_different_addresses() {
    let name = ShmName::new("contents");
    let seg = Segment::create_named(&name.0, &CreateOptions::new(1 << 20)).unwrap();
    let dir = seg.directory().unwrap();
    let counter = dir.construct("counter", Mutex::new(0u64)).unwrap();
    let parent_base = seg.base().as_ptr() as u64;
    let scratch = Scratch::new();

    let children: Vec<_> = (0..3)
        .map(|_| {
            let (name, scratch) = (&name.0, &scratch);
            fork_child(move || {
                let seg = Segment::open_named(name, &OpenOptions::new()).unwrap();
                // The inherited mapping still occupies the parent's address.
                assert_ne!(seg.base().as_ptr() as u64, parent_base);
                let dir = seg.directory().unwrap();
                match dir.find::<Mutex<u32>>("counter") {
                    Err(DirectoryError::TypeMismatch { .. }) => {}
                    other => panic!("found a Mutex<u64> as Mutex<u32>: {:?}", other.err()),
                }
                let counter = dir.find::<Mutex<u64>>("counter").unwrap();
                for _ in 0..1000 {
                    *counter.get().lock().unwrap() += 1;
                }
                scratch.slot(0).fetch_add(1, Ordering::AcqRel);
                0
            })
        })
        .collect();
    for child in children {
        assert!(child.wait_timeout(LIMIT).success());
    }
    assert_eq!(scratch.slot(0).load(Ordering::Acquire), 3);
    assert_eq!(*counter.get().lock().unwrap(), 3000);
}

#[test]
fn allocation_grows_the_segment_while_another_process_is_attached() {
    let name = ShmName::new("grow-alloc");
    let seg =
        Segment::create_named(&name.0, &CreateOptions::new(64 << 10).max_size(64 << 20)).unwrap();
    let dir = seg.directory().unwrap();
    let where_ = dir.construct("big", AtomicU64::new(0)).unwrap();
    let scratch = Scratch::new();

    let child = {
        let (name, scratch) = (&name.0, &scratch);
        fork_child(move || {
            let seg = Segment::open_named(name, &OpenOptions::new()).unwrap();
            let base = seg.base();
            // A heap handle made before the growth: it must not serve blocks beyond it.
            let early = seg.alloc(64, 16).unwrap();
            seg.free(early).unwrap();
            scratch.slot(0).store(1, Ordering::Release); // attached
            scratch.wait_for(1, 1, LIMIT); // parent allocated past the old end
            let dir = seg.directory().unwrap();
            let off = dir
                .find::<AtomicU64>("big")
                .unwrap()
                .get()
                .load(Ordering::Acquire);
            let region = seg.region(); // picks up the growth, in place
            assert_eq!(seg.base(), base);
            let bytes = region.resolve(off, 8 << 20, 64).unwrap();
            // SAFETY: resolved inside the mapping; the parent wrote these bytes before
            // publishing the offset and does not touch them again.
            let last = unsafe { bytes.as_ptr().add((8 << 20) - 1).read_volatile() };
            assert_eq!(last, 0xAB);
            // Allocate from the grown heap too, and free the parent's block beyond the old
            // end through the handle this process uses.
            let mine = seg.alloc(1 << 20, 64).unwrap();
            assert!(seg.heap_ref().unwrap().region().len() >= off + (8 << 20));
            seg.free(mine).unwrap();
            0
        })
    };
    scratch.wait_for(0, 1, LIMIT);
    let off = seg.alloc(8 << 20, 64).unwrap();
    assert!(
        seg.size() >= 8 << 20,
        "the segment grew to hold the allocation"
    );
    let bytes = seg.region().resolve(off, 8 << 20, 64).unwrap();
    // SAFETY: a fresh allocation of 8 MiB, resolved inside the mapping.
    unsafe { bytes.as_ptr().write_bytes(0xAB, 8 << 20) };
    where_.get().store(off, Ordering::Release);
    scratch.slot(1).store(1, Ordering::Release);
    assert!(child.wait_timeout(LIMIT).success());
    let stats = seg.heap().unwrap().verify().unwrap();
    // The directory table, its one object, and the 8 MiB block are live; the arena
    // reaches (nearly) the grown end of the segment.
    assert_eq!(stats.used_blocks, 3);
    assert!(stats.arena_bytes > seg.size() - (16 << 10), "{stats:?}");
}

#[test]
fn out_of_memory_without_room_to_grow_is_a_typed_error() {
    let seg = Segment::create_unnamed(&CreateOptions::new(64 << 10)).unwrap();
    match seg.alloc(1 << 20, 16) {
        Err(SegmentError::Heap(HeapError::OutOfMemory { size, .. })) => assert_eq!(size, 1 << 20),
        other => panic!("expected an out-of-memory error, got {other:?}"),
    }
}
