//! Shared memory for the multi-process tests: one memfd, mapped separately by every process
//! so the same lock lives at different addresses.
#![allow(dead_code)]

use rustix::fd::OwnedFd;
use rustix::mm::{MapFlags, ProtFlags};

/// A memfd of `len` bytes (zero-filled).
pub struct Shm {
    fd: OwnedFd,
    len: usize,
}

impl Shm {
    pub fn new(len: usize) -> Self {
        let fd = rustix::fs::memfd_create("relshm-sync-test", rustix::fs::MemfdFlags::CLOEXEC)
            .expect("memfd_create");
        rustix::fs::ftruncate(&fd, len as u64).expect("ftruncate");
        Self { fd, len }
    }

    /// A fresh shared mapping of the whole memfd.
    pub fn map(&self) -> Mapping {
        // SAFETY: a new shared mapping of our own memfd at an address the kernel picks.
        let ptr = unsafe {
            rustix::mm::mmap(
                core::ptr::null_mut(),
                self.len,
                ProtFlags::READ | ProtFlags::WRITE,
                MapFlags::SHARED,
                &self.fd,
                0,
            )
        }
        .expect("mmap");
        Mapping {
            ptr: ptr.cast(),
            len: self.len,
        }
    }
}

/// One mapping; unmapped on drop.
pub struct Mapping {
    ptr: *mut u8,
    len: usize,
}

// SAFETY: the mapping is plain shared memory; what is placed in it decides thread-safety,
// and `at` only hands out references to Sync types.
unsafe impl Sync for Mapping {}
// SAFETY: as above.
unsafe impl Send for Mapping {}

impl Mapping {
    pub fn addr(&self) -> usize {
        self.ptr as usize
    }

    /// The `T` at byte offset `off`. All-zero bytes must be a valid `T` (true for every
    /// lock of this crate and for integers).
    pub fn at<T: Sync>(&self, off: usize) -> &T {
        assert!(off + core::mem::size_of::<T>() <= self.len);
        assert_eq!((self.ptr as usize + off) % core::mem::align_of::<T>(), 0);
        // SAFETY: in bounds, aligned, the memory is shared and zero-initialised or written
        // only through T's own (interior-mutable, process-shared) API.
        unsafe { &*(self.ptr.add(off) as *const T) }
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: ptr/len came from mmap; references from `at` borrow self.
        let _ = unsafe { rustix::mm::munmap(self.ptr.cast(), self.len) };
    }
}
