//! Named segments: POSIX shared-memory objects (`shm_open`), found by name by unrelated
//! processes.
//!
//! # Why not the `shared_memory` crate
//!
//! `shared_memory` (0.12, unix backend) creates objects with the fixed mode
//! `S_IRUSR | S_IWUSR` (0600, then filtered by the umask), maps them with a null address
//! hint and always `PROT_READ | PROT_WRITE`, maps the whole object only, and unlinks it
//! when the creating handle drops. Each of those collides with a requirement here: an
//! exact permission mode, a chosen or fixed address, read-only attach, views, in-place
//! growth inside a reservation, and a name that outlives its creator until
//! [`Segment::remove_named`]. None of it can be added from outside, because the crate owns
//! the `mmap` call. So no kind uses it: named segments open the object with `rustix::shm`
//! and share the mapping engine of the other kinds (`mapped.rs`).

use crate::error::{Result, SegmentError};
use crate::mapped::Mapped;
use crate::options::{CreateOptions, OpenOptions};
use crate::readonly::ReadOnlySegment;
use crate::segment::{Segment, SegmentKind};
use rustix::fs::Mode;
use rustix::io::Errno;
use rustix::shm::OFlags;
use std::os::fd::OwnedFd;

/// Checks a shared-memory name and returns it with a leading `/`.
pub(crate) fn shm_name(name: &str) -> Result<String> {
    let bare = name.strip_prefix('/').unwrap_or(name);
    let why = if bare.is_empty() {
        Some("it is empty")
    } else if bare.contains('/') {
        Some("it contains '/' after the leading one")
    } else if bare.contains('\0') {
        Some("it contains a NUL byte")
    } else if bare.len() > 250 {
        Some("it is longer than 250 bytes")
    } else if bare == "." || bare == ".." {
        Some("it is a directory name")
    } else {
        None
    };
    match why {
        Some(why) => Err(SegmentError::InvalidName {
            name: name.to_owned(),
            why,
        }),
        None => Ok(format!("/{bare}")),
    }
}

fn shm_open(name: &str, flags: OFlags) -> Result<OwnedFd> {
    rustix::shm::open(name, flags, Mode::from_raw_mode(0o600)).map_err(|e| match e {
        Errno::NOENT => SegmentError::NotFound {
            name: name.to_owned(),
        },
        Errno::EXIST => SegmentError::AlreadyExists {
            name: name.to_owned(),
        },
        source => SegmentError::Sys {
            op: "opening shared memory (shm_open)",
            source,
        },
    })
}

impl Segment {
    /// Creates a named segment; fails with [`SegmentError::AlreadyExists`] if the name is
    /// taken. The object keeps existing after every process detaches, until
    /// [`Segment::remove_named`].
    pub fn create_named(name: &str, opts: &CreateOptions) -> Result<Self> {
        let name = shm_name(name)?;
        let fd = shm_open(&name, OFlags::CREATE | OFlags::EXCL | OFlags::RDWR)?;
        Self::create_in(fd, opts, SegmentKind::Named(name.clone())).inspect_err(|_| {
            // A half-made object would make every later open fail: take it away.
            let _ = rustix::shm::unlink(name.as_str());
        })
    }

    /// Opens an existing named segment read-write.
    ///
    /// The object must belong to this process's effective uid, or to the uid named by
    /// [`OpenOptions::allow_owner`]; otherwise this fails with
    /// [`SegmentError::ForeignOwner`] (another user may have created the name first, to
    /// share memory with you).
    pub fn open_named(name: &str, opts: &OpenOptions) -> Result<Self> {
        let name = shm_name(name)?;
        let fd = shm_open(&name, OFlags::RDWR)?;
        let mapped = Mapped::open(fd, Some(&name), true, opts)?;
        Self::from_mapped(mapped, SegmentKind::Named(name))
    }

    /// Opens the named segment, creating it if it does not exist. An existing one must
    /// belong to this process's effective uid (or to `opts.allow_owner`: see
    /// [`Segment::open_named`]), have `opts.mode` and at least `opts.size` bytes, and the
    /// same fixed base if `opts.fixed_address` is set.
    pub fn open_or_create_named(name: &str, opts: &CreateOptions) -> Result<Self> {
        match Self::create_named(name, opts) {
            Err(SegmentError::AlreadyExists { .. }) => Self::open_named(name, &opts.as_open()),
            other => other,
        }
    }

    /// Removes a named segment's name; processes that have it mapped keep their mapping,
    /// and the memory is freed when the last one detaches.
    pub fn remove_named(name: &str) -> Result<()> {
        let name = shm_name(name)?;
        rustix::shm::unlink(name.as_str()).map_err(|e| match e {
            Errno::NOENT => SegmentError::NotFound { name },
            source => SegmentError::Sys {
                op: "removing shared memory (shm_unlink)",
                source,
            },
        })
    }
}

impl ReadOnlySegment {
    /// Opens an existing named segment read-only (the object is opened `O_RDONLY`, so not
    /// even `mprotect` could make the mapping writable). Its owner is checked as by
    /// [`Segment::open_named`].
    pub fn open_named(name: &str, opts: &OpenOptions) -> Result<Self> {
        let name = shm_name(name)?;
        let fd = shm_open(&name, OFlags::RDONLY)?;
        Ok(Self::from_mapped(Mapped::open(
            fd,
            Some(&name),
            false,
            opts,
        )?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(shm_name("a").unwrap(), "/a");
        assert_eq!(shm_name("/a").unwrap(), "/a");
        for bad in ["", "/", "a/b", "//a", ".."] {
            assert!(
                matches!(shm_name(bad), Err(SegmentError::InvalidName { .. })),
                "{bad}"
            );
        }
    }
}
