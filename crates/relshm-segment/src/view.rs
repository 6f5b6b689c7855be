//! Views: a window `[offset, offset + len)` of a segment, mapped on its own (with
//! `memmap2`, since a view needs no placement). Views of one segment, in one process or
//! many, see the same bytes as the segment's main mapping.
//!
//! A view owns its mapping: it stays valid after the segment it came from is dropped.
//! Offsets inside a view are relative to the view's start, not the segment's.

use std::os::fd::{AsRawFd, BorrowedFd};

use memmap2::{MmapOptions, MmapRaw};
use rustix::io::Errno;

use crate::error::{Result, SegmentError};
use crate::mapping::page_size;
use crate::readonly::{ReadOnlySegment, load_u64, read_bytes};
use crate::region::{Region, RegionError};
use crate::segment::Segment;

/// A read-write window of a segment.
#[derive(Debug)]
pub struct View {
    map: MmapRaw,
    offset: u64,
}

/// A read-only window of a segment; like [`ReadOnlySegment`], it offers no way to write.
#[derive(Debug)]
pub struct ReadOnlyView {
    map: MmapRaw,
    offset: u64,
}

fn map_window(
    fd: BorrowedFd<'_>,
    size: u64,
    offset: u64,
    len: u64,
    writable: bool,
) -> Result<MmapRaw> {
    // The header's size is untrusted: never map past the end of the object (SIGBUS).
    let size = size.min(crate::mapped::backing_len(fd)?);
    let page = page_size();
    if !offset.is_multiple_of(page) {
        return Err(SegmentError::Unaligned {
            what: "view offset",
            value: offset,
            page,
        });
    }
    if len == 0 || offset.checked_add(len).is_none_or(|end| end > size) {
        return Err(SegmentError::ViewOutOfRange { offset, len, size });
    }
    let mut opts = MmapOptions::new();
    opts.offset(offset).len(len as usize);
    let map = if writable {
        opts.map_raw(fd.as_raw_fd())
    } else {
        opts.map_raw_read_only(fd.as_raw_fd())
    };
    map.map_err(|e| SegmentError::Sys {
        op: "mapping a view (mmap)",
        source: Errno::from_io_error(&e).unwrap_or(Errno::IO),
    })
}

fn region_of(map: &MmapRaw) -> Region {
    let base = core::ptr::NonNull::new(map.as_mut_ptr()).expect("mmap never returns null");
    // SAFETY: the view's mapping is page-aligned (the offset is) and lives as long as the
    // MmapRaw that the returned region is tied to by the caller's borrow.
    unsafe { Region::new(base, map.len() as u64) }
}

impl View {
    /// The view's bytes; offsets are relative to the view's start. Valid while the view
    /// lives.
    pub fn region(&self) -> Region {
        region_of(&self.map)
    }

    /// Where the view starts in the segment.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// The view's length.
    pub fn len(&self) -> u64 {
        self.map.len() as u64
    }

    /// Whether the view is empty (never: empty views are refused).
    pub fn is_empty(&self) -> bool {
        self.map.len() == 0
    }
}

impl ReadOnlyView {
    /// Where the view starts in this process.
    pub fn as_ptr(&self) -> *const u8 {
        self.map.as_ptr()
    }

    /// Where the view starts in the segment.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// The view's length.
    pub fn len(&self) -> u64 {
        self.map.len() as u64
    }

    /// Whether the view is empty (never: empty views are refused).
    pub fn is_empty(&self) -> bool {
        self.map.len() == 0
    }

    /// Copies bytes at `offset` (relative to the view) into `buf`.
    pub fn read(&self, offset: u64, buf: &mut [u8]) -> Result<(), RegionError> {
        read_bytes(region_of(&self.map), offset, buf)
    }

    /// Loads the u64 at the 8-aligned `offset` (relative to the view).
    pub fn load_u64(&self, offset: u64) -> Result<u64, RegionError> {
        load_u64(region_of(&self.map), offset)
    }
}

impl Segment {
    /// Maps `[offset, offset + len)` of the segment as a separate read-write window.
    /// `offset` must be page-aligned and the window must lie inside the current size.
    pub fn view(&self, offset: u64, len: u64) -> Result<View> {
        let map = map_window(self.fd(), self.size(), offset, len, true)?;
        Ok(View { map, offset })
    }

    /// Maps `[offset, offset + len)` of the segment as a read-only window.
    pub fn view_read_only(&self, offset: u64, len: u64) -> Result<ReadOnlyView> {
        let map = map_window(self.fd(), self.size(), offset, len, false)?;
        Ok(ReadOnlyView { map, offset })
    }
}

impl ReadOnlySegment {
    /// Maps `[offset, offset + len)` of the segment as a read-only window.
    pub fn view(&self, offset: u64, len: u64) -> Result<ReadOnlyView> {
        use std::os::fd::AsFd;
        let map = map_window(self.map.fd.as_fd(), self.size(), offset, len, false)?;
        Ok(ReadOnlyView { map, offset })
    }
}
