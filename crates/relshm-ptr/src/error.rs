//! The one error type of this crate: every way a link word, a view or a walk can go wrong.

/// Why a link could not be resolved, stored, walked or translated.
///
/// Link words come from shared memory and are untrusted: every variant here is a normal
/// outcome of reading corrupted (or hostile) bytes, never a reason to panic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PtrError {
    /// The link's target `[target, target + size)` (or an object at an offset given to open
    /// it) is not inside the memory the context resolves into.
    #[error(
        "target {target:#x} (+{size} bytes) is outside the {len}-byte region at {base:#x}: the \
         offset given is wrong, the segment is corrupted, or a Raw link is read in a process \
         that maps the segment at another address"
    )]
    OutOfBounds {
        /// Target address (in this process) the word decoded to.
        target: u64,
        /// Size of the target object.
        size: u64,
        /// Base of the region in this process.
        base: u64,
        /// Length of the region.
        len: u64,
    },
    /// The link's target (or an offset given to open an object) is not aligned for the
    /// type stored there.
    #[error(
        "target {target:#x} is misaligned: not a multiple of {align} bytes, so no such object \
         starts there (the offset given is wrong, or the segment is corrupted)"
    )]
    Misaligned {
        /// Target address the word decoded to.
        target: u64,
        /// Alignment the target type needs.
        align: u64,
    },
    /// Raw links were written for another base address than this process maps the region at.
    #[error(
        "raw links were written for base {written:#x} but this process maps the region at \
         {mapped:#x}: map the segment in fixed-address mode (at the same address everywhere), \
         or use an Offset, SegRel or Swizzle representation, or translate the data"
    )]
    NotFixedAddress {
        /// Base address the links were written for.
        written: u64,
        /// Base address of this process's mapping.
        mapped: u64,
    },
    /// A segment-relative link names a segment this process has not attached.
    #[error(
        "link names segment {id}, which is not in this process's segment table: attach that \
         segment first (or the link is corrupted)"
    )]
    UnknownSegment {
        /// The segment id stored in the link.
        id: u64,
    },
    /// A segment id of 0, or an id registered twice in a segment table.
    #[error("segment id {id} is reserved or already in the table: ids are unique and non-zero")]
    BadSegmentId {
        /// The offending id.
        id: u64,
    },
    /// A swizzled word whose view epoch ended, or that points outside the live view.
    #[error(
        "swizzled link {word:#x} belongs to an ended view epoch or to a previous placement of \
         the view: re-open the private view from the segment to swizzle again"
    )]
    Stale {
        /// The stale word.
        word: u64,
    },
    /// The word (or the target) to be written is not where this representation may write.
    #[error("address {addr:#x} is outside the region this context may write: {why}")]
    NotWritable {
        /// The address of the word or target.
        addr: u64,
        /// Which rule was broken.
        why: &'static str,
    },
    /// The target cannot be encoded in this representation.
    #[error("target {target:#x} cannot be encoded for the word at {word:#x} ({why})")]
    Unrepresentable {
        /// The target address.
        target: u64,
        /// The word address.
        word: u64,
        /// Why not.
        why: &'static str,
    },
    /// A validate walk found a cycle in a structure declared acyclic.
    #[error(
        "cycle through the object at {at:#x}: the structure must be acyclic (a corrupted or \
         hostile link makes it loop)"
    )]
    Cycle {
        /// An address on the cycle.
        at: u64,
    },
    /// Two objects reached by a walk overlap without being the same object.
    #[error(
        "objects at {a:#x} and {b:#x} overlap: two links give different views of the same \
         bytes, so the segment is corrupted"
    )]
    Overlap {
        /// Start of the first object.
        a: u64,
        /// Start of the second object.
        b: u64,
    },
    /// A walk reached more objects than its limit.
    #[error(
        "the walk reached more than {limit} objects: raise the limit if the structure is \
         really that large, otherwise the segment is corrupted"
    )]
    TooManyObjects {
        /// The limit that was hit.
        limit: u64,
    },
    /// The destination of a copy (translate, export) is too small.
    #[error("destination holds {available} bytes but {needed} are needed: give it more room")]
    DestinationFull {
        /// Bytes needed.
        needed: u64,
        /// Bytes available.
        available: u64,
    },
    /// The view or image does not fit the representation's address rules.
    #[error("{what}")]
    BadLayout {
        /// What is wrong, and what to do.
        what: &'static str,
    },
    /// A system call (mmap, memfd_create, mremap) failed.
    #[error("{call} failed: {errno}")]
    Os {
        /// The failing call.
        call: &'static str,
        /// The kernel's error.
        errno: rustix::io::Errno,
    },
}
