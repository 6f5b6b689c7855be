//! The typed errors of segment creation, opening, mapping and growth.

use rustix::io::Errno;

/// Why a segment operation failed.
///
/// Every variant says what went wrong and, where there is one, what to do about it. Bad
/// bytes in a segment's header always end up here, never in a panic or a crash.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SegmentError {
    /// The segment's in-segment allocator failed (out of memory, or corrupted).
    #[error("segment heap: {0}")]
    Heap(crate::heap::HeapError),
    /// The segment's named-object directory failed.
    #[error("segment directory: {0}")]
    Directory(crate::directory::DirectoryError),
    /// A system call failed.
    #[error("{op} failed: {source}")]
    Sys {
        /// What was being done.
        op: &'static str,
        /// The error the kernel returned.
        source: Errno,
    },
    /// No segment exists under this name or path.
    #[error("segment {name:?} does not exist: create it first, or check the name")]
    NotFound {
        /// The name or path that was opened.
        name: String,
    },
    /// Creating failed because a segment (or file) with this name already exists.
    #[error("segment {name:?} already exists: open it, or remove it first")]
    AlreadyExists {
        /// The name or path that was created.
        name: String,
    },
    /// The name is not a valid POSIX shared-memory name.
    #[error("invalid segment name {name:?}: {why}")]
    InvalidName {
        /// The rejected name.
        name: String,
        /// What is wrong with it.
        why: &'static str,
    },
    /// The existing segment's permission bits differ from the ones the caller expects.
    #[error(
        "segment permission mode is {found:#o}, expected {expected:#o}: another program \
         created it, or change the expected mode"
    )]
    ModeMismatch {
        /// The mode the caller asked for.
        expected: u32,
        /// The mode the segment has.
        found: u32,
    },
    /// The existing segment is smaller than the caller needs.
    #[error(
        "segment holds {found} bytes but at least {expected} are needed: grow it, or remove \
         and create it again"
    )]
    SizeMismatch {
        /// The minimum size the caller asked for.
        expected: u64,
        /// The size the segment has.
        found: u64,
    },
    /// The segment asked for is too small to hold its header, heap and directory.
    #[error(
        "a segment of {requested} bytes is too small to hold its header, heap and directory: \
         ask for at least {min} bytes"
    )]
    TooSmall {
        /// The size that was asked for.
        requested: u64,
        /// The fewest bytes a segment can have ([`crate::MIN_SEGMENT_SIZE`]).
        min: u64,
    },
    /// The segment's shared-memory object or file belongs to another user, who can read
    /// and change everything in it (for instance a name squatted before its creator came).
    #[error(
        "segment {name:?} is owned by uid {owner}, not by this process's uid {euid}{}: \
         another user created it and can read or change its contents; remove it if it should \
         not be there, or, if uid {owner} is trusted, open it with allow_owner({owner})",
        allowed_note(*.allowed)
    )]
    ForeignOwner {
        /// The segment's name or path.
        name: String,
        /// The uid that owns the object.
        owner: u32,
        /// This process's effective uid (always accepted).
        euid: u32,
        /// The other owner the caller allowed, if any.
        allowed: Option<u32>,
    },
    /// A requested size is unusable.
    #[error("invalid segment size {size}: {why}")]
    InvalidSize {
        /// The size that was asked for.
        size: u64,
        /// What is wrong with it.
        why: &'static str,
    },
    /// The backing object is shorter than the header says it is.
    #[error(
        "segment backing is {file_len} bytes but {needed} are needed: the file was truncated \
         or is not a relshm segment"
    )]
    Truncated {
        /// The size of the backing file or shared-memory object.
        file_len: u64,
        /// How many bytes the header (or the header's size field) requires.
        needed: u64,
    },
    /// The first bytes are not a relshm segment header.
    #[error("bad magic {found:#018x}: this is not a relshm segment (or it is corrupted)")]
    BadMagic {
        /// The 8 bytes found where the magic should be.
        found: u64,
    },
    /// The segment was written by an incompatible format version.
    #[error(
        "segment format version {found} is not supported (this build reads version \
         {expected}): open it with a matching relshm version"
    )]
    UnsupportedVersion {
        /// The version in the header.
        found: u32,
        /// The version this build writes and reads.
        expected: u32,
    },
    /// The header layout fingerprint differs from this build's.
    #[error(
        "header layout fingerprint {found:#018x} differs from this build's {expected:#018x}: \
         the segment was written by an incompatible build"
    )]
    LayoutMismatch {
        /// The fingerprint in the header.
        found: u64,
        /// This build's fingerprint.
        expected: u64,
    },
    /// The checksum over the header's immutable fields does not match.
    #[error(
        "header checksum {found:#018x} does not match its contents ({expected:#018x}): the \
         header is corrupted"
    )]
    ChecksumMismatch {
        /// The checksum stored in the header.
        found: u64,
        /// The checksum computed over the stored fields.
        expected: u64,
    },
    /// A header field holds a value that cannot be right.
    #[error("header field `{field}` = {value:#x} is invalid: {why}; the header is corrupted")]
    BadField {
        /// The field's name.
        field: &'static str,
        /// The value found.
        value: u64,
        /// Why it is rejected.
        why: &'static str,
    },
    /// The segment exists but its creator has not finished writing the header.
    #[error(
        "segment is not initialised (its creator is still writing it, or died doing so): \
         retry, or remove it"
    )]
    Uninitialised,
    /// The address range asked for is already in use in this process.
    #[error(
        "address range {addr:#x}..+{len:#x} is already mapped in this process: pick another \
         address, or unmap what is there"
    )]
    AddressTaken {
        /// The requested start address.
        addr: usize,
        /// The requested length.
        len: usize,
    },
    /// An address or offset is not page-aligned.
    #[error("{what} {value:#x} is not a multiple of the page size {page}")]
    Unaligned {
        /// What was misaligned ("address", "view offset").
        what: &'static str,
        /// The value.
        value: u64,
        /// The page size.
        page: u64,
    },
    /// The segment is in fixed-address mode at a base other than the one asked for.
    #[error(
        "segment is in fixed-address mode at {found:#x}, not {expected:#x}: open it without \
         asking for an address"
    )]
    FixedBaseMismatch {
        /// The base the caller asked for.
        expected: u64,
        /// The base recorded in the header.
        found: u64,
    },
    /// A view window lies (partly) outside the segment.
    #[error(
        "view [{offset:#x}, +{len:#x}) lies outside the segment's {size} bytes: use a smaller \
         window, or grow the segment first"
    )]
    ViewOutOfRange {
        /// The requested view offset.
        offset: u64,
        /// The requested view length.
        len: u64,
        /// The segment's current size.
        size: u64,
    },
    /// Growth past the reserved maximum size.
    #[error(
        "cannot grow to {requested} bytes: the segment's maximum is {max}; create it with a \
         larger max_size"
    )]
    GrowBeyondMax {
        /// The size asked for.
        requested: u64,
        /// The maximum reserved at creation.
        max: u64,
    },
    /// Another live process held the grow lock for too long.
    #[error("timed out waiting for process {pid} to finish growing the segment")]
    GrowLockTimeout {
        /// The process holding the grow lock.
        pid: u32,
    },
    /// Every attach-table entry belongs to a live process.
    #[error(
        "all {capacity} attach-table entries belong to live mappings: detach some before \
         attaching more"
    )]
    AttachTableFull {
        /// The number of entries.
        capacity: u32,
    },
}

fn allowed_note(allowed: Option<u32>) -> String {
    allowed.map_or_else(String::new, |uid| {
        format!(" nor the allowed owner uid {uid}")
    })
}

impl SegmentError {
    pub(crate) fn sys(op: &'static str) -> impl FnOnce(Errno) -> Self {
        move |source| Self::Sys { op, source }
    }
}

/// Shorthand for results of segment operations.
pub type Result<T, E = SegmentError> = core::result::Result<T, E>;
