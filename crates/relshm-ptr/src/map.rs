//! Minimal owned mappings of a segment's file descriptor: shared, private copy-on-write,
//! or at a fixed address. The segment crate owns real segments; this is what the
//! representations need from it ("a region" and "an fd to map privately"), and what the
//! tests, fuzzers and benches use to get the same bytes at several addresses.

use crate::PtrError;
use core::ffi::c_void;
use core::ptr::NonNull;
use relshm_segment::Region;
use rustix::fd::{AsFd, BorrowedFd, OwnedFd};
use rustix::mm::{MapFlags, ProtFlags};

/// Creates an anonymous memory file of `len` zero bytes (close-on-exec, inherited by fork).
pub fn memfd(name: &str, len: u64) -> Result<OwnedFd, PtrError> {
    let fd = rustix::fs::memfd_create(name, rustix::fs::MemfdFlags::CLOEXEC).map_err(|errno| {
        PtrError::Os {
            call: "memfd_create",
            errno,
        }
    })?;
    rustix::fs::ftruncate(&fd, len).map_err(|errno| PtrError::Os {
        call: "ftruncate",
        errno,
    })?;
    Ok(fd)
}

/// How a [`Mapping`] sees the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sharing {
    /// `MAP_SHARED`: writes reach the file and every other shared mapping.
    Shared,
    /// `MAP_PRIVATE`: a copy-on-write view; writes stay in this process.
    Private,
}

/// An owned mapping of `len` bytes of a file descriptor, unmapped on drop.
#[derive(Debug)]
pub struct Mapping {
    ptr: NonNull<u8>,
    len: u64,
}

// SAFETY: the mapping is plain memory owned by this value; what is stored in it is
// synchronised by the stored types (atomics).
unsafe impl Send for Mapping {}
// SAFETY: as for Send.
unsafe impl Sync for Mapping {}

impl Mapping {
    /// Maps `len` bytes of `fd` from offset 0 wherever the kernel chooses.
    pub fn new(fd: BorrowedFd<'_>, len: u64, sharing: Sharing) -> Result<Self, PtrError> {
        Self::map(fd, len, sharing, None)
    }

    /// Maps `len` bytes of `fd` exactly at `addr` (`MAP_FIXED_NOREPLACE`): fails with
    /// `EEXIST` instead of replacing whatever is mapped there. This is fixed-address mode.
    pub fn at(
        fd: BorrowedFd<'_>,
        len: u64,
        sharing: Sharing,
        addr: NonNull<u8>,
    ) -> Result<Self, PtrError> {
        Self::map(fd, len, sharing, Some(addr))
    }

    fn map(
        fd: BorrowedFd<'_>,
        len: u64,
        sharing: Sharing,
        addr: Option<NonNull<u8>>,
    ) -> Result<Self, PtrError> {
        let mut flags = match sharing {
            Sharing::Shared => MapFlags::SHARED,
            Sharing::Private => MapFlags::PRIVATE,
        };
        if addr.is_some() {
            flags |= MapFlags::FIXED_NOREPLACE;
        }
        let hint = addr.map_or(core::ptr::null_mut(), |a| a.as_ptr().cast::<c_void>());
        let size = usize::try_from(len).map_err(|_| PtrError::BadLayout {
            what: "mapping length does not fit this address space",
        })?;
        // SAFETY: a new mapping at a kernel-chosen address, or with FIXED_NOREPLACE (which
        // never replaces an existing mapping), cannot invalidate memory anyone else uses.
        let p = unsafe {
            rustix::mm::mmap(
                hint,
                size,
                ProtFlags::READ | ProtFlags::WRITE,
                flags,
                fd.as_fd(),
                0,
            )
        }
        .map_err(|errno| PtrError::Os {
            call: "mmap",
            errno,
        })?;
        let ptr = NonNull::new(p.cast::<u8>()).ok_or(PtrError::BadLayout {
            what: "mmap returned address 0",
        })?;
        let m = Self { ptr, len };
        if addr.is_some_and(|a| a != ptr) {
            // Kernels before 4.17 treat FIXED_NOREPLACE as a hint: refuse a different spot.
            return Err(PtrError::Os {
                call: "mmap(MAP_FIXED_NOREPLACE)",
                errno: rustix::io::Errno::EXIST,
            });
        }
        Ok(m)
    }

    /// The mapped bytes as a [`Region`] (valid while `self` lives).
    pub fn region(&self) -> Region {
        // SAFETY: ptr..ptr+len is mapped until self is dropped, and mappings are
        // page-aligned; callers tie their use of the region to self (documented above).
        unsafe { Region::new(self.ptr, self.len) }
    }

    /// Start of the mapping.
    pub fn as_ptr(&self) -> *mut u8 {
        self.ptr.as_ptr()
    }

    /// Length in bytes.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether the mapping is empty (never: mmap refuses 0 bytes).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The mapped bytes. Another process may change shared bytes at any time: take a
    /// snapshot only while no other process writes.
    pub fn bytes(&self) -> &[u8] {
        // SAFETY: the range is mapped and readable for self's lifetime; u8 has no invalid
        // values.
        unsafe { core::slice::from_raw_parts(self.ptr.as_ptr(), self.len as usize) }
    }

    /// The mapped bytes, writable.
    pub fn bytes_mut(&mut self) -> &mut [u8] {
        // SAFETY: as in `bytes`, and &mut self excludes other references through self.
        unsafe { core::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len as usize) }
    }

    /// Moves the mapping (with its private dirty pages) to a new address with `mremap`,
    /// as growth does when it cannot extend in place. Returns the old base.
    pub fn move_elsewhere(&mut self) -> Result<NonNull<u8>, PtrError> {
        let old = self.ptr;
        let len = self.len as usize;
        // Reserve a fresh range first so MREMAP_FIXED has somewhere that is not the old
        // range; mremap then replaces the reservation atomically.
        // SAFETY: an anonymous reservation at a kernel-chosen address affects no one.
        let dst = unsafe {
            rustix::mm::mmap_anonymous(
                core::ptr::null_mut(),
                len,
                ProtFlags::empty(),
                MapFlags::PRIVATE | MapFlags::NORESERVE,
            )
        }
        .map_err(|errno| PtrError::Os {
            call: "mmap(reserve)",
            errno,
        })?;
        // SAFETY: old..old+len is our own mapping and nothing borrows it (&mut self);
        // dst is the reservation made above, which MREMAP_FIXED replaces.
        let p = unsafe {
            rustix::mm::mremap_fixed(
                old.as_ptr().cast(),
                len,
                len,
                rustix::mm::MremapFlags::MAYMOVE,
                dst,
            )
        }
        .map_err(|errno| PtrError::Os {
            call: "mremap",
            errno,
        })?;
        self.ptr = NonNull::new(p.cast()).ok_or(PtrError::BadLayout {
            what: "mremap returned address 0",
        })?;
        Ok(old)
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: ptr/len is the mapping created by self; nothing borrowed from it outlives
        // self (regions handed out are documented to be used only while self lives).
        let _ = unsafe { rustix::mm::munmap(self.ptr.as_ptr().cast(), self.len as usize) };
    }
}
