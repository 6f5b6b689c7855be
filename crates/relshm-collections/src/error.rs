//! [`CollectionError`]: why a List or Map operation failed.

use relshm_ptr::PtrError;
use relshm_segment::SegmentError;
use relshm_segment::heap::HeapError;
use relshm_sync::LockError;

/// Why a collection operation failed. Bytes in a segment are untrusted: every corruption a
/// walk can detect ends up here, never in a panic or undefined behaviour.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CollectionError {
    /// A link read from the segment does not resolve (out of bounds, misaligned, stale).
    #[error(
        "invalid link in the segment: {0}; run verify() and re-create the collection if it fails"
    )]
    Link(#[from] PtrError),
    /// The segment (mapping, heap or directory) failed.
    #[error("segment: {0}")]
    Segment(#[from] SegmentError),
    /// The in-segment allocator failed.
    #[error("segment heap: {0}")]
    Heap(#[from] HeapError),
    /// An in-segment lock could not be taken (not recoverable, timed out).
    #[error("collection lock: {0}")]
    Lock(#[from] LockError),
    /// The bytes at the given offset are not a collection of this type.
    #[error("no {expected} at offset {offset:#x}: {why}")]
    BadHeader {
        /// What was expected there (for instance `"relshm List"`).
        expected: &'static str,
        /// The offset that was opened.
        offset: u64,
        /// What did not match.
        why: &'static str,
    },
    /// The offset given to open a collection cannot be where one starts: it is misaligned
    /// for the collection's header, or the header would not fit in the segment.
    #[error(
        "no {expected} can start at offset {offset:#x}: {}; pass the offset the \
         collection's offset() returned, or open it by name",
        offset_fault(.source)
    )]
    BadOffset {
        /// What was to be opened (for instance `"relshm List"`).
        expected: &'static str,
        /// The offset that was given.
        offset: u64,
        /// How it fails to resolve ([`PtrError::Misaligned`] or [`PtrError::OutOfBounds`]).
        source: PtrError,
    },
    /// A walk found the structure inconsistent (broken link, cycle, count mismatch).
    #[error("collection is corrupted: {0}; it cannot be repaired in place, re-create it")]
    Corrupt(String),
    /// The handle has no allocator (a translated, read-only copy).
    #[error("this handle is read-only (a translated copy has no allocator): mutate the original")]
    ReadOnly,
    /// The allocator returned memory this process has not mapped yet.
    #[error(
        "allocation at {offset:#x} lies beyond this handle's {len}-byte view: the segment grew \
         since the arena was made; make a new arena (and handle) to see the new bytes"
    )]
    BeyondView {
        /// Offset of the allocation.
        offset: u64,
        /// Bytes this arena covers.
        len: u64,
    },
    /// The collection recorded under a name is of another kind, other types or another
    /// strategy than the ones it was opened with.
    #[error(
        "{name:?} was created as a {recorded}, not a {requested}: open it with the kind, types \
         and strategy it was created with"
    )]
    RecordMismatch {
        /// The name opened.
        name: String,
        /// What the directory records.
        recorded: Box<crate::record::CollectionRecord>,
        /// What was asked for.
        requested: Box<crate::record::CollectionRecord>,
    },
    /// The directory record of a named collection is damaged or from an unknown format.
    #[error("the directory record of {name:?} is unusable: {why}; re-create the collection")]
    BadRecord {
        /// The name opened.
        name: String,
        /// What is wrong with it.
        why: String,
    },
    /// A byte-string key is longer than its type allows.
    #[error("key of {len} bytes does not fit a ByteKey of at most {max} bytes: use a larger N")]
    KeyTooLong {
        /// Length of the key given.
        len: usize,
        /// The most the key type holds.
        max: usize,
    },
}

/// Why a caller's offset cannot hold a collection header, in the caller's terms.
fn offset_fault(source: &PtrError) -> String {
    match *source {
        PtrError::Misaligned { align, .. } => {
            format!("it is misaligned (the header needs a multiple of {align} bytes)")
        }
        PtrError::OutOfBounds { size, len, .. } => {
            format!("a {size}-byte header there would not lie inside the {len}-byte segment")
        }
        other => other.to_string(),
    }
}

/// The [`CollectionError::BadHeader`] reason for bytes without the collection's magic:
/// a caller mistake far more often than damage.
pub(crate) const WRONG_MAGIC: &str = "wrong magic number: the offset is wrong (pass the one offset() returned), or something \
     else lives there";

/// Result of collection operations.
pub type Result<T, E = CollectionError> = core::result::Result<T, E>;

pub(crate) fn corrupt(what: impl Into<String>) -> CollectionError {
    CollectionError::Corrupt(what.into())
}
