//! [`Segment`]: a read-write mapping of a segment of any kind, registered in the segment's
//! attach table, growable in place.

use core::ptr::NonNull;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::PathBuf;
use std::sync::Arc;

use crate::attach::{self, AttachInfo};
use crate::error::{Result, SegmentError};
use crate::header::Header;
use crate::heap_handles::HeapHandles;
use crate::mapped::Mapped;
use crate::mapping::Placement;
use crate::options::{CreateOptions, OpenOptions};
use crate::region::Region;

/// What backs a segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SegmentKind {
    /// A POSIX shared-memory object with this name (leading `/` included).
    Named(String),
    /// An anonymous memory file (`memfd`), shared with children through the descriptor.
    Unnamed,
    /// A regular file that outlives every process.
    File(PathBuf),
    /// A descriptor handed to [`Segment::open_fd`].
    Fd,
}

/// A segment mapped read-write in this process.
///
/// A `Segment` is a cheap handle to one mapping: cloning it shares the mapping (an atomic
/// reference count, like `Arc`), so an application keeps it in its own structs, moves it
/// into threads, and every collection handle made from it keeps a clone. The mapping
/// starts at [`Segment::base`] and never moves while any clone lives, even when the
/// segment grows; it is unmapped (and its attach-table entry freed) when the last clone
/// goes. One process may map one segment several times ([`Segment::reopen`]); each mapping
/// has its own address and its own attach-table entry.
///
/// ```
/// use relshm_segment::{CreateOptions, Placement, Segment};
/// use std::sync::atomic::{AtomicU64, Ordering};
///
/// let seg = Segment::create_unnamed(&CreateOptions::new(64 << 10).max_size(1 << 20))?;
/// let second = seg.reopen(Placement::Anywhere)?; // the same bytes at another address
/// assert_ne!(seg.base(), second.base());
///
/// let word = |s: &Segment| {
///     let p = s.region().resolve_as::<u64>(4096).unwrap();
///     // SAFETY: in bounds and aligned (checked by resolve_as); shared words are atomics.
///     unsafe { AtomicU64::from_ptr(p.as_ptr()) }
/// };
/// word(&seg).store(7, Ordering::Release);
/// assert_eq!(word(&second).load(Ordering::Acquire), 7);
///
/// seg.grow(512 << 10)?; // in place: no mapping moves
/// assert_eq!(second.region().len(), 512 << 10);
/// assert_eq!(second.attached().len(), 2);
/// # Ok::<(), relshm_segment::SegmentError>(())
/// ```
#[derive(Debug, Clone)]
pub struct Segment(Arc<Attached>);

/// One attached mapping: what every clone of a [`Segment`] shares.
#[derive(Debug)]
struct Attached {
    map: Mapped,
    kind: SegmentKind,
    slot: usize,
    /// The process that claimed `slot`: a forked child that inherits this value must not
    /// free its parent's entry.
    attach_pid: u32,
    /// The heap handles this mapping made (see [`Segment::heap_ref`]).
    heaps: HeapHandles,
}

// SAFETY: the mapping is shared memory reachable from any thread; the only in-process
// mutable state (the mapped length) is an atomic updated under a mutex.
unsafe impl Send for Attached {}
// SAFETY: as above; every &self method is thread-safe.
unsafe impl Sync for Attached {}

impl Segment {
    pub(crate) fn from_mapped(map: Mapped, kind: SegmentKind) -> Result<Self> {
        let slot = map.attach()?;
        Ok(Self(Arc::new(Attached {
            map,
            kind,
            slot,
            attach_pid: relshm_sync::process::process_id(),
            heaps: HeapHandles::new(),
        })))
    }

    /// The mapping every clone shares.
    pub(crate) fn mapped(&self) -> &Mapped {
        &self.0.map
    }

    /// The heap handles every clone shares.
    pub(crate) fn heap_handles(&self) -> &HeapHandles {
        &self.0.heaps
    }

    /// Whether `self` and `other` are clones of one mapping (not merely the same segment
    /// mapped twice).
    pub fn same_mapping(&self, other: &Segment) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }

    /// Creates a segment in a fresh, empty, exclusively owned descriptor.
    pub(crate) fn create_in(fd: OwnedFd, opts: &CreateOptions, kind: SegmentKind) -> Result<Self> {
        Self::from_mapped(Mapped::create(fd, opts)?, kind)
    }

    /// Maps the segment behind `fd` (for instance one received over a Unix socket).
    /// The descriptor must be open for reading and writing. Its owner is not checked: a
    /// descriptor someone handed over is trusted as it is.
    pub fn open_fd(fd: OwnedFd, opts: &OpenOptions) -> Result<Self> {
        Self::from_mapped(Mapped::open(fd, None, true, opts)?, SegmentKind::Fd)
    }

    /// Maps this segment again, at another address (or where `placement` says), with its
    /// own attach-table entry. This is how a forked child maps a segment it inherited
    /// (unnamed segments have no name to open by), and how one process maps a segment twice.
    pub fn reopen(&self, placement: Placement) -> Result<Self> {
        let fd = rustix::io::fcntl_dupfd_cloexec(&self.0.map.fd, 0)
            .map_err(SegmentError::sys("duplicating segment descriptor (fcntl)"))?;
        let opts = OpenOptions::new().placement(placement);
        Self::from_mapped(Mapped::open(fd, None, true, &opts)?, self.0.kind.clone())
    }

    /// The bytes mapped now, extended first if another process grew the segment.
    ///
    /// The region stays valid (mapped, writable) until this `Segment` is dropped.
    pub fn region(&self) -> Region {
        self.0.map.region()
    }

    /// Extends this process's mapping to the segment's current size; returns the mapped
    /// length. Errors if the header's size is implausible (corruption).
    pub fn refresh(&self) -> Result<u64> {
        self.0.map.refresh()
    }

    /// Grows the segment to at least `new_size` bytes (rounded up to pages) while other
    /// processes stay attached; returns the new mapped length. Other processes map the new
    /// part when they next call [`Segment::region`] or [`Segment::refresh`].
    pub fn grow(&self, new_size: u64) -> Result<u64> {
        self.0.map.grow(new_size)
    }

    /// Where the segment starts in this process.
    pub fn base(&self) -> NonNull<u8> {
        self.0.map.base()
    }

    /// The segment's current size (from the header; may exceed what this process has
    /// mapped until it refreshes).
    pub fn size(&self) -> u64 {
        self.0.map.size()
    }

    /// How many bytes this process has mapped.
    pub fn mapped_len(&self) -> u64 {
        self.0.map.mapped_len()
    }

    /// The size the segment may grow to.
    pub fn max_size(&self) -> u64 {
        self.0.map.info.max_size
    }

    /// The segment's random identity.
    pub fn segment_id(&self) -> u64 {
        self.0.map.info.segment_id
    }

    /// The number of growths so far.
    pub fn generation(&self) -> u64 {
        self.0
            .map
            .header
            .generation()
            .load(core::sync::atomic::Ordering::Acquire)
    }

    /// The recorded base if the segment is in fixed-address mode.
    pub fn fixed_base(&self) -> Option<u64> {
        self.0
            .map
            .info
            .is_fixed_address()
            .then_some(self.0.map.info.fixed_base)
    }

    /// The validated header as read when this mapping was made (immutable fields are
    /// current; `size`, `generation` and the attach table are a snapshot).
    pub fn header(&self) -> &Header {
        &self.0.map.info
    }

    /// Offset of the heap control block (0 if none).
    pub fn heap_offset(&self) -> u64 {
        self.0.map.info.heap_offset
    }

    /// Offset of the named-object directory (0 if none).
    pub fn directory_offset(&self) -> u64 {
        self.0.map.info.directory_offset
    }

    /// What backs this segment.
    pub fn kind(&self) -> &SegmentKind {
        &self.0.kind
    }

    /// The descriptor of the backing object (to pass to another process).
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.0.map.fd.as_fd()
    }

    /// Whether the calling process is the one that claimed this mapping's attach-table
    /// entry (not a child forked since).
    pub(crate) fn owns_attach_slot(&self) -> bool {
        relshm_sync::process::process_id() == self.0.attach_pid
    }

    /// This mapping's attach-table entry.
    pub fn attach_slot(&self) -> u32 {
        self.0.slot as u32
    }

    /// The live mappings in the attach table (this one included); entries of processes
    /// that died are reclaimed on the way.
    pub fn attached(&self) -> Vec<AttachInfo> {
        attach::list(self.0.map.header, true)
    }

    /// Where process `pid` maps the segment (its first mapping, if it has several).
    pub fn base_of(&self, pid: u32) -> Option<u64> {
        self.attached()
            .into_iter()
            .find(|a| a.pid == pid)
            .map(|a| a.base)
    }
}

impl Drop for Attached {
    fn drop(&mut self) {
        if relshm_sync::process::process_id() == self.attach_pid {
            // Return what this mapping's heap cache holds and free its cache slot for the
            // next process at this attach slot (best effort: a heap that cannot be locked
            // within a second keeps the cache, for the reclaim after this process exits).
            let off = self.map.info.heap_offset;
            if off != 0 {
                // SAFETY: a Segment's mapping is writable and still mapped (it is unmapped
                // after this drop); the heap is only touched through Heap handles.
                if let Ok(heap) = unsafe { crate::heap::Heap::attach(self.map.region(), off) } {
                    let heap = heap.with_lock_timeout(Some(std::time::Duration::from_secs(1)));
                    let _ = heap.release_slot(self.slot as u32);
                }
            }
            attach::detach(self.map.header, self.slot);
        }
    }
}
