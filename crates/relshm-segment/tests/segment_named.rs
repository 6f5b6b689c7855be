//! Named (POSIX shm) segments across real processes.

mod segment_support;

use std::sync::atomic::Ordering;

use relshm_segment::{CreateOptions, OpenOptions, Placement, Segment, SegmentError};
use relshm_testkit::{Exit, Scratch, fork_child};
use segment_support::{DATA, LIMIT, ShmName, word};

#[test]
fn child_opens_by_name_at_another_address() {
    let name = ShmName::new("named");
    let seg = Segment::create_named(&name.0, &CreateOptions::new(64 << 10)).unwrap();
    word(seg.region(), DATA).store(0xfeed, Ordering::Release);
    let scratch = Scratch::new();
    let child = fork_child(|| {
        let s = Segment::open_named(&name.0, &OpenOptions::new()).unwrap();
        scratch
            .slot(0)
            .store(s.base().as_ptr() as u64, Ordering::Release);
        let ok = word(s.region(), DATA).load(Ordering::Acquire) == 0xfeed;
        word(s.region(), DATA + 8).store(0xbeef, Ordering::Release);
        // Stay attached until the parent has looked at the attach table.
        scratch.slot(1).store(1, Ordering::Release);
        scratch.wait_for(2, 1, LIMIT);
        if ok { 0 } else { 1 }
    });
    scratch.wait_for(1, 1, LIMIT);
    let child_base = scratch.slot(0).load(Ordering::Acquire);
    assert_ne!(
        child_base,
        seg.base().as_ptr() as u64,
        "child must map at another address"
    );
    assert_eq!(word(seg.region(), DATA + 8).load(Ordering::Acquire), 0xbeef);
    // The attach table tells where the child mapped it.
    assert_eq!(seg.base_of(child.pid() as u32), Some(child_base));
    assert_eq!(
        seg.base_of(std::process::id()),
        Some(seg.base().as_ptr() as u64)
    );
    scratch.slot(2).store(1, Ordering::Release);
    assert_eq!(child.wait_timeout(LIMIT), Exit::Code(0));
    // The child dropped nothing (it _exits), so its entry is stale: it is reclaimed.
    let attached = seg.attached();
    assert_eq!(attached.len(), 1, "{attached:?}");
    assert_eq!(attached[0].pid, std::process::id());
}

#[test]
fn killed_process_entry_is_reclaimed() {
    let name = ShmName::new("reclaim");
    let seg = Segment::create_named(&name.0, &CreateOptions::new(16 << 10)).unwrap();
    let scratch = Scratch::new();
    let child = fork_child(|| {
        let s = Segment::open_named(&name.0, &OpenOptions::new()).unwrap();
        scratch
            .slot(0)
            .store(u64::from(s.attach_slot()) + 1, Ordering::Release);
        loop {
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
    });
    scratch.wait_for(0, 1, LIMIT);
    let pid = child.pid() as u32;
    assert!(seg.attached().iter().any(|a| a.pid == pid));
    assert_eq!(child.kill_and_wait(), Exit::Signal(libc::SIGKILL));
    assert!(seg.attached().iter().all(|a| a.pid != pid));
    // The freed entry is claimed again.
    let again = Segment::open_named(&name.0, &OpenOptions::new()).unwrap();
    assert_eq!(
        u64::from(again.attach_slot()) + 1,
        scratch.slot(0).load(Ordering::Acquire)
    );
}

#[test]
fn create_open_or_create_remove() {
    let name = ShmName::new("lifecycle");
    assert!(matches!(
        Segment::open_named(&name.0, &OpenOptions::new()),
        Err(SegmentError::NotFound { .. })
    ));
    let opts = CreateOptions::new(32 << 10).mode(0o640);
    let a = Segment::open_or_create_named(&name.0, &opts).unwrap();
    word(a.region(), DATA).store(5, Ordering::Release);
    let b = Segment::open_or_create_named(&name.0, &opts).unwrap();
    assert_eq!(b.segment_id(), a.segment_id());
    assert_eq!(word(b.region(), DATA).load(Ordering::Acquire), 5);
    assert!(matches!(
        Segment::create_named(&name.0, &opts),
        Err(SegmentError::AlreadyExists { .. })
    ));
    // Exact mode, not filtered by the umask.
    let st = rustix::fs::fstat(a.fd()).unwrap();
    assert_eq!(st.st_mode & 0o777, 0o640);
    Segment::remove_named(&name.0).unwrap();
    assert!(matches!(
        Segment::remove_named(&name.0),
        Err(SegmentError::NotFound { .. })
    ));
    // Mappings outlive the name.
    assert_eq!(word(a.region(), DATA).load(Ordering::Acquire), 5);
}

#[test]
fn wrong_mode_size_and_format_are_typed_errors() {
    let name = ShmName::new("mismatch");
    let _seg = Segment::create_named(&name.0, &CreateOptions::new(16 << 10)).unwrap();
    let err = Segment::open_named(&name.0, &OpenOptions::new().expect_mode(0o644)).unwrap_err();
    assert_eq!(
        err,
        SegmentError::ModeMismatch {
            expected: 0o644,
            found: 0o600
        }
    );
    assert!(err.to_string().contains("0o600"));
    let err = Segment::open_or_create_named(&name.0, &CreateOptions::new(1 << 20)).unwrap_err();
    assert!(
        matches!(err, SegmentError::SizeMismatch { expected, found: 16384 } if expected == 1 << 20)
    );

    // An object that is not a segment.
    let other = ShmName::new("foreign");
    let fd = rustix::shm::open(
        format!("/{}", other.0).as_str(),
        rustix::shm::OFlags::CREATE | rustix::shm::OFlags::RDWR,
        rustix::fs::Mode::from_raw_mode(0o600),
    )
    .unwrap();
    rustix::fs::ftruncate(&fd, 8192).unwrap();
    rustix::io::pwrite(&fd, b"not a relshm segment", 0).unwrap();
    assert!(matches!(
        Segment::open_named(&other.0, &OpenOptions::new()),
        Err(SegmentError::BadMagic { .. })
    ));
    // An object whose creator never finished: refused after the init timeout.
    rustix::io::pwrite(&fd, &[0; 32], 0).unwrap();
    let opts = OpenOptions::new().init_timeout(std::time::Duration::from_millis(20));
    assert_eq!(
        Segment::open_named(&other.0, &opts).unwrap_err(),
        SegmentError::Uninitialised
    );
    assert!(matches!(
        Segment::open_named("a/b", &opts),
        Err(SegmentError::InvalidName { .. })
    ));
}

#[test]
fn hint_and_exact_placement() {
    let name = ShmName::new("placement");
    let seg = Segment::create_named(&name.0, &CreateOptions::new(16 << 10)).unwrap();
    let want = 0x5100_0000_0000usize;
    let at =
        Segment::open_named(&name.0, &OpenOptions::new().placement(Placement::At(want))).unwrap();
    assert_eq!(at.base().as_ptr() as usize, want);
    // The address is now taken: exact placement fails, a hint lands elsewhere.
    let err = Segment::open_named(&name.0, &OpenOptions::new().placement(Placement::At(want)))
        .unwrap_err();
    assert!(matches!(err, SegmentError::AddressTaken { addr, .. } if addr == want));
    let hinted = Segment::open_named(
        &name.0,
        &OpenOptions::new().placement(Placement::Hint(want)),
    )
    .unwrap();
    assert_ne!(hinted.base().as_ptr() as usize, want);
    assert!(matches!(
        Segment::open_named(
            &name.0,
            &OpenOptions::new().placement(Placement::At(want + 1))
        ),
        Err(SegmentError::Unaligned { .. })
    ));
    // Three mappings of one segment in one process: same bytes, three addresses.
    word(seg.region(), DATA).store(77, Ordering::Release);
    assert_eq!(word(at.region(), DATA).load(Ordering::Acquire), 77);
    assert_eq!(word(hinted.region(), DATA).load(Ordering::Acquire), 77);
    assert_eq!(seg.attached().len(), 3);
}
