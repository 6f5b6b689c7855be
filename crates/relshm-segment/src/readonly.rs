//! Read-only attach: [`ReadOnlySegment`] maps a segment `PROT_READ` from a descriptor
//! opened `O_RDONLY`, and its API has no way to write: no `&mut`, no `*mut`, no
//! [`Region`] (whose pointers are writable in type). Reads copy out or load atomically.
//!
//! A read-only mapping cannot write the attach table, so read-only attachers are not
//! listed in it.
//!
//! ```compile_fail
//! # fn f(ro: &relshm_segment::ReadOnlySegment) {
//! let r = ro.region(); // no such method: a Region would hand out writable pointers
//! # }
//! ```
//! ```compile_fail
//! # fn f(ro: &relshm_segment::ReadOnlySegment) {
//! ro.write(0, &[1]); // no such method
//! # }
//! ```

use core::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::os::fd::AsRawFd;

use crate::attach::{self, AttachInfo};
use crate::error::{Result, SegmentError};
use crate::header::Header;
use crate::mapped::Mapped;
use crate::mapping::Placement;
use crate::options::OpenOptions;
use crate::region::{Region, RegionError};
use crate::segment::Segment;

/// Copies `buf.len()` bytes at `offset` out of the mapped range `region`.
pub(crate) fn read_bytes(region: Region, offset: u64, buf: &mut [u8]) -> Result<(), RegionError> {
    let src = region.resolve(offset, buf.len() as u64, 1)?;
    for (i, b) in buf.iter_mut().enumerate() {
        // SAFETY: [src, src + len) is mapped (checked by resolve); other processes may
        // write these bytes concurrently, so they are read as atomics, never as plain
        // memory. An atomic load never writes, so PROT_READ memory is fine.
        *b = unsafe { AtomicU8::from_ptr(src.as_ptr().add(i)) }.load(Ordering::Relaxed);
    }
    Ok(())
}

/// Loads the 8-aligned u64 at `offset` of `region` with acquire ordering.
pub(crate) fn load_u64(region: Region, offset: u64) -> Result<u64, RegionError> {
    let p = region.resolve_as::<u64>(offset)?;
    // SAFETY: p is mapped, in bounds and 8-aligned (checked by resolve_as); atomic loads
    // do not write.
    Ok(unsafe { AtomicU64::from_ptr(p.as_ptr()) }.load(Ordering::Acquire))
}

/// A segment mapped read-only in this process.
#[derive(Debug)]
pub struct ReadOnlySegment {
    pub(crate) map: Mapped,
}

// SAFETY: the mapping is read-only shared memory; the only in-process mutable state (the
// mapped length) is an atomic updated under a mutex.
unsafe impl Send for ReadOnlySegment {}
// SAFETY: as above.
unsafe impl Sync for ReadOnlySegment {}

impl ReadOnlySegment {
    pub(crate) fn from_mapped(map: Mapped) -> Self {
        Self { map }
    }

    /// Where the segment starts in this process (for address comparisons and
    /// inspection; the memory behind it is not writable).
    pub fn as_ptr(&self) -> *const u8 {
        self.map.base().as_ptr()
    }

    /// Bytes mapped now, after picking up any growth.
    pub fn len(&self) -> u64 {
        self.map.region().len()
    }

    /// Whether nothing is mapped (never: a segment holds at least its header).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Maps whatever the segment grew by; returns the mapped length.
    pub fn refresh(&self) -> Result<u64> {
        self.map.refresh()
    }

    /// The segment's current size from its header.
    pub fn size(&self) -> u64 {
        self.map.size()
    }

    /// The segment's random identity.
    pub fn segment_id(&self) -> u64 {
        self.map.info.segment_id
    }

    /// The validated header as read when this mapping was made.
    pub fn header(&self) -> &Header {
        &self.map.info
    }

    /// Copies `buf.len()` bytes at `offset` into `buf`.
    pub fn read(&self, offset: u64, buf: &mut [u8]) -> Result<(), RegionError> {
        read_bytes(self.map.region(), offset, buf)
    }

    /// Loads the u64 at the 8-aligned `offset` (acquire).
    pub fn load_u64(&self, offset: u64) -> Result<u64, RegionError> {
        load_u64(self.map.region(), offset)
    }

    /// The live read-write mappings listed in the attach table (dead entries are skipped,
    /// not reclaimed: that would need a write).
    pub fn attached(&self) -> Vec<AttachInfo> {
        attach::list(self.map.header, false)
    }
}

impl Segment {
    /// Maps this segment again, read-only, through a new read-only descriptor of the same
    /// object (`/proc/self/fd/N` reopened `O_RDONLY`).
    pub fn read_only(&self, placement: Placement) -> Result<ReadOnlySegment> {
        let path = format!("/proc/self/fd/{}", self.mapped().fd.as_raw_fd());
        let fd = rustix::fs::open(
            path.as_str(),
            rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::CLOEXEC,
            rustix::fs::Mode::empty(),
        )
        .map_err(SegmentError::sys(
            "reopening segment read-only (/proc/self/fd)",
        ))?;
        let opts = OpenOptions::new().placement(placement);
        Ok(ReadOnlySegment::from_mapped(Mapped::open(
            fd, None, false, &opts,
        )?))
    }
}
