//! Memory for the heap and directory tests: a memfd mapped shared (so forked children can
//! map the same bytes again, at another address) or a private anonymous mapping.
#![allow(dead_code)]

use core::ptr::NonNull;
use std::os::fd::OwnedFd;

use relshm_segment::Region;
use rustix::mm::{MapFlags, ProtFlags};

/// A mapping of `len` bytes; unmapped on drop.
pub struct Mem {
    base: NonNull<u8>,
    len: usize,
    fd: Option<OwnedFd>,
}

// SAFETY: the mapping is plain shared memory; tests synchronise through the heap's locks.
unsafe impl Send for Mem {}
// SAFETY: as above.
unsafe impl Sync for Mem {}

impl Mem {
    /// A zeroed memfd of `len` bytes, mapped shared.
    pub fn shared(len: usize) -> Mem {
        let fd = rustix::fs::memfd_create("relshm-heap-test", rustix::fs::MemfdFlags::CLOEXEC)
            .expect("memfd_create");
        rustix::fs::ftruncate(&fd, len as u64).expect("ftruncate");
        let base = map_fd(&fd, len);
        Mem {
            base,
            len,
            fd: Some(fd),
        }
    }

    /// Zeroed private anonymous memory of `len` bytes.
    pub fn private(len: usize) -> Mem {
        // SAFETY: a fresh anonymous mapping with no address hint.
        let p = unsafe {
            rustix::mm::mmap_anonymous(
                core::ptr::null_mut(),
                len,
                ProtFlags::READ | ProtFlags::WRITE,
                MapFlags::PRIVATE,
            )
        }
        .expect("mmap");
        Mem {
            base: NonNull::new(p.cast()).unwrap(),
            len,
            fd: None,
        }
    }

    /// Maps the same memfd again (lands at another address while this one is mapped).
    pub fn remap(&self) -> Mem {
        let fd = self
            .fd
            .as_ref()
            .expect("only memfd mappings can be remapped");
        let fd = fd.try_clone().expect("dup");
        let base = map_fd(&fd, self.len);
        Mem {
            base,
            len: self.len,
            fd: Some(fd),
        }
    }

    pub fn region(&self) -> Region {
        // SAFETY: the mapping is page-aligned, writable and lives as long as `self`; tests
        // drop every heap handle before the Mem.
        unsafe { Region::new(self.base, self.len as u64) }
    }

    pub fn base(&self) -> usize {
        self.base.as_ptr() as usize
    }

    pub fn bytes(&mut self) -> &mut [u8] {
        // SAFETY: the mapping is len bytes, writable, and exclusively borrowed here.
        unsafe { core::slice::from_raw_parts_mut(self.base.as_ptr(), self.len) }
    }
}

fn map_fd(fd: &OwnedFd, len: usize) -> NonNull<u8> {
    // SAFETY: mapping a file we own with no address hint cannot clobber other mappings.
    let p = unsafe {
        rustix::mm::mmap(
            core::ptr::null_mut(),
            len,
            ProtFlags::READ | ProtFlags::WRITE,
            MapFlags::SHARED,
            fd,
            0,
        )
    }
    .expect("mmap");
    NonNull::new(p.cast()).unwrap()
}

impl Drop for Mem {
    fn drop(&mut self) {
        // SAFETY: we mapped exactly this range; nothing borrowed from it outlives self.
        unsafe { rustix::mm::munmap(self.base.as_ptr().cast(), self.len) }.expect("munmap");
    }
}
