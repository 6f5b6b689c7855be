//! The mapping engine shared by every segment kind: validate the header through the file
//! descriptor, reserve `max_size` of address space, map the current size into it, and
//! extend the mapping in place when the segment grows.
//!
//! # Growth protocol
//!
//! 1. The grower takes the grow lock in the header (`grow_lock`: CAS from 0 to its
//!    `pid << 32 | start time` word; a word naming a dead process may be taken over, so a
//!    grower killed mid-way does not block growth forever).
//! 2. It `ftruncate`s the object to the new size (the object only ever gets longer than
//!    `size`, never shorter, because `size` only changes under the lock).
//! 3. It release-stores the new `size`, bumps `generation`, and releases the lock.
//! 4. Every process (the grower included) maps `[mapped, size)` of the object at
//!    `base + mapped` inside its own reservation with `MAP_FIXED` the next time it calls
//!    `refresh()` or `region()`. The mapping never moves.
//!
//! A process that reads `size` before checking the object's length (`fstat`) never maps
//! past its end, so a lying `size` gives an error, not a `SIGBUS`.

use core::ptr::NonNull;
use core::sync::atomic::AtomicU64;
use core::sync::atomic::Ordering::{AcqRel, Acquire, Relaxed, Release};
use std::os::fd::{AsFd, OwnedFd};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use rustix::io::Errno;
use zerocopy::IntoBytes;

use crate::attach;
use crate::error::{Result, SegmentError};
use crate::header::{Header, HeaderRef, MAGIC};
use crate::mapping::{Placement, Reservation, page_size, round_up_to_page};
use crate::options::{CreateOptions, OpenOptions};
use crate::region::Region;

/// How long a grower waits for another live grower before giving up.
const GROW_LOCK_TIMEOUT: Duration = Duration::from_secs(10);

/// A validated segment mapped in this process (read-write or read-only).
#[derive(Debug)]
pub(crate) struct Mapped {
    pub(crate) fd: OwnedFd,
    res: Reservation,
    mapped: AtomicU64,
    extend: Mutex<()>,
    writable: bool,
    pub(crate) header: HeaderRef,
    /// The validated header as read at open; its immutable fields are trusted from here
    /// on and never re-read from shared memory.
    pub(crate) info: Header,
}

pub(crate) fn backing_len(fd: impl AsFd) -> Result<u64> {
    let st = rustix::fs::fstat(fd).map_err(SegmentError::sys("reading segment size (fstat)"))?;
    Ok(st.st_size.max(0) as u64)
}

/// Checks the opened object (one `fstat` of the descriptor, so the object checked is the
/// object mapped, whatever happens to the name meanwhile): its owner, when it was opened
/// by `name` (an object opened by name must belong to this process's effective uid or to
/// `opts.allow_owner`), and its permission bits against `opts.expect_mode`.
fn check_object(fd: &OwnedFd, name: Option<&str>, opts: &OpenOptions) -> Result<()> {
    let st = rustix::fs::fstat(fd).map_err(SegmentError::sys("reading segment owner (fstat)"))?;
    if let Some(name) = name {
        let (owner, euid) = (st.st_uid, rustix::process::geteuid().as_raw());
        if owner != euid && opts.allow_owner != Some(owner) {
            return Err(SegmentError::ForeignOwner {
                name: name.to_owned(),
                owner,
                euid,
                allowed: opts.allow_owner,
            });
        }
    }
    if let Some(expected) = opts.expect_mode {
        let found = st.st_mode & 0o7777;
        if found != expected & 0o7777 {
            return Err(SegmentError::ModeMismatch { expected, found });
        }
    }
    Ok(())
}

/// Reads the header bytes once the creator has published them.
fn read_header_bytes(fd: &OwnedFd, timeout: Duration) -> Result<(Vec<u8>, u64)> {
    let deadline = Instant::now() + timeout;
    loop {
        let mut buf = vec![0u8; Header::END];
        let mut filled = 0;
        while filled < buf.len() {
            match rustix::io::pread(fd, &mut buf[filled..], filled as u64) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(Errno::INTR) => continue,
                Err(e) => {
                    return Err(SegmentError::Sys {
                        op: "reading segment header (pread)",
                        source: e,
                    });
                }
            }
        }
        buf.truncate(filled);
        // The length is read after the header: growers extend the object before they
        // publish a larger `size`, so this order never sees a size past the end.
        let len = backing_len(fd)?;
        // A creator has sized the object but not yet stored the magic (which it writes
        // last): length 0, or a zero magic word. Anything else is judged at once.
        let unpublished = buf.is_empty() || (buf.len() >= 8 && buf[..8] == [0; 8]);
        if !unpublished {
            return Ok((buf, len));
        }
        if Instant::now() >= deadline {
            return Err(SegmentError::Uninitialised);
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Reads the header through `fd` once published and validates it against the object's
/// length (what opening checks, and what `verify` checks again later).
pub(crate) fn read_header(fd: &OwnedFd, timeout: Duration) -> Result<Header> {
    let (bytes, len) = read_header_bytes(fd, timeout)?;
    Header::validate(&bytes, len, page_size())
}

fn random_id() -> u64 {
    loop {
        let mut id = 0u64;
        // SAFETY: the buffer is 8 writable bytes owned by this frame.
        let n = unsafe { libc::getrandom((&raw mut id).cast(), 8, 0) };
        if n == 8 && id != 0 {
            return id;
        }
    }
}

impl Mapped {
    /// Maps an existing segment from its descriptor. `name` is the name or path it was
    /// opened by, if it was: such an object must have an owner the caller accepts (see
    /// [`OpenOptions::allow_owner`]). A descriptor handed over (or duplicated) as such is
    /// trusted as it is.
    pub(crate) fn open(
        fd: OwnedFd,
        name: Option<&str>,
        writable: bool,
        opts: &OpenOptions,
    ) -> Result<Self> {
        check_object(&fd, name, opts)?;
        let info = read_header(&fd, opts.init_timeout)?;
        if let Some(min) = opts.min_size
            && info.size < min
        {
            return Err(SegmentError::SizeMismatch {
                expected: min,
                found: info.size,
            });
        }
        let placement = if info.is_fixed_address() {
            match opts.placement {
                Placement::At(a) if a as u64 != info.fixed_base => {
                    return Err(SegmentError::FixedBaseMismatch {
                        expected: a as u64,
                        found: info.fixed_base,
                    });
                }
                _ => Placement::At(info.fixed_base as usize),
            }
        } else {
            opts.placement
        };
        let res = Reservation::new(info.max_size, placement)?;
        // SAFETY: [0, size) lies inside the fresh reservation (size <= max_size, checked by
        // validate) and nothing refers into it yet; the object is at least `size` long.
        unsafe { res.map_fd(fd.as_fd(), 0, info.size, writable)? };
        // SAFETY: the reservation starts page-aligned and maps at least Header::END bytes
        // (size >= END) for as long as `res`, which the Mapped owns.
        let header = unsafe { HeaderRef::new(res.base()) };
        let m = Self {
            fd,
            res,
            mapped: AtomicU64::new(info.size),
            extend: Mutex::new(()),
            writable,
            header,
            info,
        };
        m.refresh()?;
        Ok(m)
    }

    /// Sizes a fresh (empty, exclusively created) object, maps it and publishes a header.
    pub(crate) fn create(fd: OwnedFd, opts: &CreateOptions) -> Result<Self> {
        let too_big = |size| SegmentError::InvalidSize {
            size,
            why: "too large to round up to whole pages",
        };
        let size = round_up_to_page(opts.size).ok_or(too_big(opts.size))?;
        if size < crate::contents::MIN_SEGMENT_SIZE {
            return Err(SegmentError::TooSmall {
                requested: opts.size,
                min: crate::contents::MIN_SEGMENT_SIZE,
            });
        }
        let max = match opts.max_size {
            Some(m) => round_up_to_page(m).ok_or(too_big(m))?,
            None => size,
        };
        if max < size {
            return Err(SegmentError::InvalidSize {
                size: max,
                why: "max_size is smaller than size",
            });
        }
        if max > crate::header::MAX_USER_ADDRESS {
            return Err(SegmentError::InvalidSize {
                size: max,
                why: "max_size is larger than any address space",
            });
        }
        let placement = opts.fixed_address.map_or(opts.placement, Placement::At);
        rustix::fs::fchmod(&fd, rustix::fs::Mode::from_raw_mode(opts.mode & 0o7777))
            .map_err(SegmentError::sys("setting segment mode (fchmod)"))?;
        rustix::fs::ftruncate(&fd, size)
            .map_err(SegmentError::sys("sizing segment (ftruncate)"))?;
        let res = Reservation::new(max, placement)?;
        // SAFETY: [0, size) is inside the fresh reservation and nothing refers into it.
        unsafe { res.map_fd(fd.as_fd(), 0, size, true)? };
        let fixed = opts.fixed_address.map(|a| a as u64);
        let mut info = Header::new(size, max, fixed, random_id());
        // SAFETY: the mapping is page-aligned, at least END bytes, owned by `res`.
        let region = unsafe { Region::new(res.base(), size) };
        init_contents(region, &mut info)?;
        info.seal();
        let bytes = info.as_bytes();
        // SAFETY: the mapping holds `size >= END` writable bytes; no other process reads
        // past the magic word until it is published below, so these plain writes race
        // with nothing.
        unsafe {
            core::ptr::copy_nonoverlapping(
                bytes[8..].as_ptr(),
                res.base().as_ptr().add(8),
                bytes.len() - 8,
            );
        }
        // SAFETY: as in `open`.
        let header = unsafe { HeaderRef::new(res.base()) };
        header.magic().store(MAGIC, Release);
        Ok(Self {
            fd,
            res,
            mapped: AtomicU64::new(size),
            extend: Mutex::new(()),
            writable: true,
            header,
            info,
        })
    }

    pub(crate) fn base(&self) -> NonNull<u8> {
        self.res.base()
    }

    pub(crate) fn mapped_len(&self) -> u64 {
        self.mapped.load(Acquire)
    }

    /// The segment's current size as its header says.
    pub(crate) fn size(&self) -> u64 {
        self.header.size().load(Acquire)
    }

    /// The mapped bytes, extended first if the segment has grown.
    pub(crate) fn region(&self) -> Region {
        // A failed extension leaves the old, still valid mapping; `refresh` reports why.
        let _ = self.refresh();
        // SAFETY: [base, base + mapped) is mapped for as long as self (the reservation is
        // only unmapped on drop) and base is page-aligned.
        unsafe { Region::new(self.base(), self.mapped_len()) }
    }

    /// Maps whatever the segment grew by since this process last looked; returns the
    /// mapped length.
    pub(crate) fn refresh(&self) -> Result<u64> {
        let target = self.size();
        if target <= self.mapped_len() {
            return Ok(self.mapped_len());
        }
        let _guard = self.extend.lock().unwrap_or_else(|p| p.into_inner());
        let cur = self.mapped_len();
        if target <= cur {
            return Ok(cur);
        }
        if !target.is_multiple_of(page_size()) || target > self.info.max_size {
            return Err(SegmentError::BadField {
                field: "size",
                value: target,
                why: "grew to a non-page multiple or past max_size",
            });
        }
        let len = backing_len(&self.fd)?;
        if len < target {
            return Err(SegmentError::Truncated {
                file_len: len,
                needed: target,
            });
        }
        // SAFETY: [cur, target) is inside the reservation (target <= max_size, the
        // reservation's length) and still PROT_NONE: nothing refers into it.
        unsafe {
            self.res
                .map_fd(self.fd.as_fd(), cur, target - cur, self.writable)?
        };
        self.mapped.store(target, Release);
        Ok(target)
    }

    /// Grows the segment to at least `new_size` bytes (see the module docs).
    pub(crate) fn grow(&self, new_size: u64) -> Result<u64> {
        debug_assert!(self.writable);
        let max = self.info.max_size;
        let new = round_up_to_page(new_size).filter(|&n| n <= max).ok_or(
            SegmentError::GrowBeyondMax {
                requested: new_size,
                max,
            },
        )?;
        {
            let _lock = GrowLock::acquire(self.header)?;
            if new > self.size() {
                rustix::fs::ftruncate(&self.fd, new)
                    .map_err(SegmentError::sys("growing segment (ftruncate)"))?;
                self.header.size().store(new, Release);
                self.header.generation().fetch_add(1, AcqRel);
            }
        }
        self.refresh()
    }

    /// Claims an attach-table entry for this mapping.
    pub(crate) fn attach(&self) -> Result<usize> {
        attach::claim(self.header, self.base().as_ptr() as u64)
    }
}

/// The cross-process grow lock (see the module docs).
struct GrowLock(HeaderRef, u64);

impl GrowLock {
    fn acquire(h: HeaderRef) -> Result<Self> {
        let me = attach::my_owner_word();
        let deadline = Instant::now() + GROW_LOCK_TIMEOUT;
        loop {
            let cur = h.grow_lock().load(Acquire);
            if (cur == 0 || !attach::owner_alive(cur))
                && h.grow_lock()
                    .compare_exchange(cur, me, AcqRel, Relaxed)
                    .is_ok()
            {
                return Ok(Self(h, me));
            }
            if Instant::now() >= deadline {
                return Err(SegmentError::GrowLockTimeout {
                    pid: (cur >> 32) as u32,
                });
            }
            std::thread::sleep(Duration::from_micros(100));
        }
    }
}

impl Drop for GrowLock {
    fn drop(&mut self) {
        let _ = self
            .0
            .grow_lock()
            .compare_exchange(self.1, 0, AcqRel, Relaxed);
    }
}

/// Fills the segment's contents at creation, before the header is published: the heap
/// control block and the directory, whose offsets go into the header.
fn init_contents(region: Region, header: &mut Header) -> Result<()> {
    crate::contents::init(region, header)
}
