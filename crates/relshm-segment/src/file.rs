//! Persistent file-backed segments: a regular file mapped shared, so the data outlives
//! every process and a fresh process that opens the file again sees it.
//!
//! The main mapping goes through the same reservation engine as the other kinds
//! (`mapped.rs`) rather than `memmap2`, because `memmap2` cannot place a mapping inside a
//! reserved range with `MAP_FIXED`, which in-place growth and fixed-address mode need.
//! `memmap2` maps the [views](crate::View) of a segment, where placement does not matter.

use std::path::Path;

use rustix::fs::{Mode, OFlags};
use rustix::io::Errno;

use crate::error::{Result, SegmentError};
use crate::mapped::Mapped;
use crate::options::{CreateOptions, OpenOptions};
use crate::readonly::ReadOnlySegment;
use crate::segment::{Segment, SegmentKind};

fn open_path(path: &Path, flags: OFlags, mode: u32) -> Result<std::os::fd::OwnedFd> {
    let name = || path.display().to_string();
    rustix::fs::open(path, flags | OFlags::CLOEXEC, Mode::from_raw_mode(mode)).map_err(
        |e| match e {
            Errno::NOENT => SegmentError::NotFound { name: name() },
            Errno::EXIST => SegmentError::AlreadyExists { name: name() },
            source => SegmentError::Sys {
                op: "opening segment file (open)",
                source,
            },
        },
    )
}

impl Segment {
    /// Creates a file-backed segment at `path`; fails with
    /// [`SegmentError::AlreadyExists`] if the file exists.
    pub fn create_file(path: impl AsRef<Path>, opts: &CreateOptions) -> Result<Self> {
        let path = path.as_ref();
        let fd = open_path(
            path,
            OFlags::CREATE | OFlags::EXCL | OFlags::RDWR,
            opts.mode,
        )?;
        Self::create_in(fd, opts, SegmentKind::File(path.to_owned())).inspect_err(|_| {
            // A half-written file would make every later open fail: take it away.
            let _ = std::fs::remove_file(path);
        })
    }

    /// Opens an existing file-backed segment read-write. The file's owner is checked as by
    /// [`Segment::open_named`].
    pub fn open_file(path: impl AsRef<Path>, opts: &OpenOptions) -> Result<Self> {
        let path = path.as_ref();
        let fd = open_path(path, OFlags::RDWR, 0)?;
        let mapped = Mapped::open(fd, Some(&path.display().to_string()), true, opts)?;
        Self::from_mapped(mapped, SegmentKind::File(path.to_owned()))
    }

    /// Opens the file-backed segment, creating it if the file does not exist (see
    /// [`Segment::open_or_create_named`] for what is checked on an existing one).
    pub fn open_or_create_file(path: impl AsRef<Path>, opts: &CreateOptions) -> Result<Self> {
        let path = path.as_ref();
        match Self::create_file(path, opts) {
            Err(SegmentError::AlreadyExists { .. }) => Self::open_file(path, &opts.as_open()),
            other => other,
        }
    }

    /// Writes the mapped bytes and the file's size to stable storage (`msync(MS_SYNC)`
    /// then `fsync`): after `flush` returns, a crash or power loss keeps the data. Shared-memory
    /// kinds have no storage behind them, and for them this returns at once.
    pub fn flush(&self) -> Result<()> {
        let len = self.mapped_len() as usize;
        // SAFETY: [base, base + len) is mapped by this segment; msync reads page state only.
        unsafe {
            rustix::mm::msync(
                self.base().as_ptr().cast(),
                len,
                rustix::mm::MsyncFlags::SYNC,
            )
        }
        .map_err(SegmentError::sys("flushing segment (msync)"))?;
        rustix::fs::fsync(self.fd()).map_err(SegmentError::sys("flushing segment file (fsync)"))
    }
}

impl ReadOnlySegment {
    /// Opens an existing file-backed segment read-only (the file is opened `O_RDONLY`); its
    /// owner is checked as by [`Segment::open_named`].
    pub fn open_file(path: impl AsRef<Path>, opts: &OpenOptions) -> Result<Self> {
        let path = path.as_ref();
        let fd = open_path(path, OFlags::RDONLY, 0)?;
        let name = path.display().to_string();
        Ok(Self::from_mapped(Mapped::open(
            fd,
            Some(&name),
            false,
            opts,
        )?))
    }
}
