//! Read-only attach: reads work, writes are impossible through the API and fault if
//! forced through a raw pointer.

mod segment_support;

use std::sync::atomic::Ordering;

use relshm_segment::{CreateOptions, OpenOptions, Placement, ReadOnlySegment, Segment};
use relshm_testkit::{Exit, fork_child};
use segment_support::{DATA, LIMIT, ShmName, word};

#[test]
fn reads_work_and_writes_fault() {
    let name = ShmName::new("ro");
    let seg =
        Segment::create_named(&name.0, &CreateOptions::new(16 << 10).max_size(1 << 20)).unwrap();
    word(seg.region(), DATA).store(0x1234_5678, Ordering::Release);
    let ro = ReadOnlySegment::open_named(&name.0, &OpenOptions::new()).unwrap();
    assert_ne!(ro.as_ptr(), seg.base().as_ptr().cast_const());
    assert_eq!(ro.segment_id(), seg.segment_id());
    assert_eq!(ro.load_u64(DATA).unwrap(), 0x1234_5678);
    let mut buf = [0u8; 4];
    ro.read(DATA, &mut buf).unwrap();
    assert_eq!(u32::from_ne_bytes(buf), 0x1234_5678);
    assert!(ro.read(16 << 10, &mut buf).is_err());
    assert!(ro.load_u64(DATA + 1).is_err());
    // Growth is picked up read-only too.
    seg.grow(64 << 10).unwrap();
    word(seg.region(), 60 << 10).store(5, Ordering::Release);
    assert_eq!(ro.load_u64(60 << 10).unwrap(), 5);
    assert_eq!(ro.len(), 64 << 10);
    // The read-only attacher is not in the attach table; the writer is.
    assert_eq!(ro.attached().len(), 1);

    // Forcing a write through the address faults in the child.
    let addr = ro.as_ptr() as usize + DATA as usize;
    let child = fork_child(move || {
        // SAFETY: deliberately invalid: the page is PROT_READ, so this store must raise
        // SIGSEGV; the child exists only to observe that.
        unsafe { core::ptr::write_volatile(addr as *mut u64, 1) };
        0
    });
    assert_eq!(child.wait_timeout(LIMIT), Exit::Signal(libc::SIGSEGV));
    assert_eq!(ro.load_u64(DATA).unwrap(), 0x1234_5678);
}

#[test]
fn read_only_descriptor_cannot_be_made_writable() {
    let seg = Segment::create_unnamed(&CreateOptions::new(16 << 10)).unwrap();
    let ro = seg.read_only(Placement::Anywhere).unwrap();
    word(seg.region(), DATA).store(8, Ordering::Release);
    assert_eq!(ro.load_u64(DATA).unwrap(), 8);
    let page = ro.as_ptr() as usize & !4095;
    // SAFETY: mprotect on our own mapping; it must fail (the fd is O_RDONLY and the
    // mapping MAP_SHARED), so nothing changes.
    let r = unsafe {
        rustix::mm::mprotect(
            page as *mut _,
            4096,
            rustix::mm::MprotectFlags::READ | rustix::mm::MprotectFlags::WRITE,
        )
    };
    assert_eq!(r, Err(rustix::io::Errno::ACCESS));
}
