//! Address-space reservations and in-place mapping of segment bytes into them.
//!
//! A segment reserves `max_size` bytes of address space (`PROT_NONE`, `MAP_NORESERVE`, so
//! it costs neither memory nor commit charge) and maps the segment's current size over the
//! start of it with `MAP_FIXED`. Growth maps the next part over the reservation in the same
//! way, so the mapping never moves and pointers handed out stay valid.

use core::ffi::c_void;
use core::ptr::NonNull;
use std::os::fd::BorrowedFd;
use std::sync::OnceLock;

use rustix::io::Errno;
use rustix::mm::{MapFlags, ProtFlags};

use crate::error::{Result, SegmentError};

/// Where a segment's mapping goes in this process.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Placement {
    /// Wherever the kernel chooses.
    #[default]
    Anywhere,
    /// Preferably at this (page-aligned) address; the kernel picks another if it is taken.
    Hint(usize),
    /// Exactly at this (page-aligned) address, or [`SegmentError::AddressTaken`]
    /// (`MAP_FIXED_NOREPLACE`: nothing that is already mapped is ever replaced).
    At(usize),
}

/// The system page size.
pub fn page_size() -> u64 {
    static PAGE: OnceLock<u64> = OnceLock::new();
    *PAGE.get_or_init(|| {
        // SAFETY: sysconf has no preconditions.
        let p = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
        if p > 0 { p as u64 } else { 4096 }
    })
}

/// Rounds `n` up to a page multiple (None on overflow).
pub(crate) fn round_up_to_page(n: u64) -> Option<u64> {
    let p = page_size();
    Some(n.checked_add(p - 1)? / p * p)
}

/// An owned range of reserved address space; unmapped (with whatever was mapped into it)
/// on drop.
#[derive(Debug)]
pub(crate) struct Reservation {
    base: NonNull<u8>,
    len: usize,
}

// SAFETY: the reservation is an address range owned by this value; unmapping it from any
// thread is fine.
unsafe impl Send for Reservation {}
// SAFETY: shared references only read base/len.
unsafe impl Sync for Reservation {}

impl Reservation {
    /// Reserves `len` bytes (a page multiple) of inaccessible address space.
    pub(crate) fn new(len: u64, placement: Placement) -> Result<Self> {
        let len_usize = usize::try_from(len).map_err(|_| SegmentError::InvalidSize {
            size: len,
            why: "does not fit in this process's address space",
        })?;
        let flags = MapFlags::PRIVATE | MapFlags::NORESERVE;
        let (addr, flags) = match placement {
            Placement::Anywhere => (0, flags),
            Placement::Hint(a) => (check_aligned(a)?, flags),
            Placement::At(a) => (check_aligned(a)?, flags | MapFlags::FIXED_NOREPLACE),
        };
        // SAFETY: without MAP_FIXED the kernel never replaces an existing mapping, and
        // MAP_FIXED_NOREPLACE fails instead of replacing; the new range is ours alone.
        let ptr = unsafe {
            rustix::mm::mmap_anonymous(addr as *mut c_void, len_usize, ProtFlags::empty(), flags)
        };
        let ptr = match ptr {
            Ok(p) => p,
            Err(Errno::EXIST) => {
                return Err(SegmentError::AddressTaken {
                    addr,
                    len: len_usize,
                });
            }
            Err(e) => {
                return Err(SegmentError::Sys {
                    op: "reserving address space (mmap)",
                    source: e,
                });
            }
        };
        let base = NonNull::new(ptr.cast::<u8>()).ok_or(SegmentError::Sys {
            op: "reserving address space (mmap returned null)",
            source: Errno::NOMEM,
        })?;
        let res = Self {
            base,
            len: len_usize,
        };
        if matches!(placement, Placement::At(a) if a != ptr as usize) {
            // Kernels before 4.17 treat MAP_FIXED_NOREPLACE as a hint.
            return Err(SegmentError::AddressTaken {
                addr,
                len: len_usize,
            });
        }
        Ok(res)
    }

    pub(crate) fn base(&self) -> NonNull<u8> {
        self.base
    }

    /// Maps `[offset, offset + len)` of `fd` shared at the same offset of the reservation.
    ///
    /// # Safety
    /// The range must lie inside the reservation and nothing in this process may hold
    /// references into it that assume its previous contents (it is either still
    /// `PROT_NONE` or already maps the same bytes of the same object).
    pub(crate) unsafe fn map_fd(
        &self,
        fd: BorrowedFd<'_>,
        offset: u64,
        len: u64,
        writable: bool,
    ) -> Result<()> {
        assert!(
            offset
                .checked_add(len)
                .is_some_and(|e| e <= self.len as u64)
        );
        let prot = if writable {
            ProtFlags::READ | ProtFlags::WRITE
        } else {
            ProtFlags::READ
        };
        // SAFETY: the range is inside our reservation (asserted) and the caller promises
        // nothing relies on what it mapped before; MAP_FIXED replaces only our own pages.
        unsafe {
            rustix::mm::mmap(
                self.base.as_ptr().add(offset as usize).cast(),
                len as usize,
                prot,
                MapFlags::SHARED | MapFlags::FIXED,
                fd,
                offset,
            )
        }
        .map_err(SegmentError::sys("mapping segment bytes (mmap)"))?;
        Ok(())
    }
}

fn check_aligned(addr: usize) -> Result<usize> {
    let page = page_size();
    if addr == 0 || !(addr as u64).is_multiple_of(page) {
        return Err(SegmentError::Unaligned {
            what: "address",
            value: addr as u64,
            page,
        });
    }
    Ok(addr)
}

impl Drop for Reservation {
    fn drop(&mut self) {
        // SAFETY: we own [base, base+len); everything resolved through it is tied to the
        // owning segment's lifetime, which is ending.
        let _ = unsafe { rustix::mm::munmap(self.base.as_ptr().cast(), self.len) };
    }
}
