//! [`CollectionError`]: why an operation on any collection (list, map, queue, port,
//! stream) failed, and what to do about it.
//!
//! The loom build compiles only the queue's lock-free core, so the variants that carry
//! errors of the segment and pointer layers exist only outside loom.

#[cfg(not(loom))]
use relshm_ptr::PtrError;
#[cfg(not(loom))]
use relshm_segment::heap::HeapError;
#[cfg(not(loom))]
use relshm_segment::{RegionError, SegmentError};
use relshm_sync::LockError;

/// Why a collection operation failed. Bytes in a segment are untrusted: every corruption a
/// walk can detect ends up here, never in a panic or undefined behaviour.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CollectionError {
    /// `try_send`: every slot of the queue holds a message.
    #[error("the queue is full: receive some messages or use a blocking send")]
    Full,
    /// `try_recv`: no message is ready.
    #[error("the queue is empty: send a message or use a blocking receive")]
    Empty,
    /// A blocking call's timeout elapsed.
    #[error("timed out waiting for the queue: retry, or give the call a longer timeout")]
    Timeout,
    /// Every endpoint on the other side is gone (dropped, exited, or killed), or the queue
    /// was closed, and for receivers no message is left.
    #[error(
        "the queue is disconnected: every {peer} has gone (dropped, exited or killed) or the \
         queue was closed"
    )]
    Disconnected {
        /// "sender", "receiver", "writer" or "reader".
        peer: &'static str,
    },
    /// All endpoint registrations of a queue are taken.
    #[error(
        "all {max} endpoint registrations of the queue are taken: drop unused senders or \
         receivers (registrations of dead processes are reclaimed automatically)"
    )]
    TooManyEndpoints {
        /// The limit.
        max: usize,
    },
    /// A message (or the queue's element type) does not fit a slot.
    #[error(
        "message of {len} bytes does not fit: the slot holds {slot_size} bytes inline and \
         {why}"
    )]
    TooLarge {
        /// The message length.
        len: u64,
        /// Inline bytes per slot.
        slot_size: u32,
        /// Why the large-message path does not apply.
        why: &'static str,
    },
    /// The message received has another length than the queue's element type.
    #[error(
        "received {got} bytes where a {expected}-byte value was expected: sender and receiver \
         disagree on the message type (open the queue with the type it was created with)"
    )]
    WrongSize {
        /// The length received.
        got: u64,
        /// The length expected.
        expected: u64,
    },
    /// The configuration asked for (queue, stream or port) is not possible.
    #[error("invalid configuration: {what}")]
    BadConfig {
        /// What is wrong.
        what: &'static str,
    },
    /// A port client named by a server is not connected.
    #[error("client {0} is not connected (it disconnected, or the id is wrong)")]
    NoSuchClient(u64),
    /// An offset did not resolve in this process's mapping.
    #[cfg(not(loom))]
    #[error(
        "offset does not resolve in the mapping: {0}; run verify() and re-create the \
         collection if it fails"
    )]
    Region(#[from] RegionError),
    /// A link read from the segment does not resolve (out of bounds, misaligned, stale).
    #[error(
        "invalid link in the segment: {0}; run verify() and re-create the collection if it fails"
    )]
    #[cfg(not(loom))]
    Link(#[from] PtrError),
    /// The segment (mapping, heap or directory) failed.
    #[error("segment: {0}")]
    #[cfg(not(loom))]
    Segment(#[from] SegmentError),
    /// The in-segment allocator failed.
    #[error("segment heap: {0}")]
    #[cfg(not(loom))]
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
    #[cfg(not(loom))]
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
    #[cfg(not(loom))]
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
    /// An index past the end of a vector.
    #[error("index {index} is out of range for a vector of {len} elements")]
    IndexOutOfRange {
        /// The index given.
        index: u64,
        /// The vector's length then.
        len: u64,
    },
    /// A length that cannot be represented (the byte size overflows, or exceeds what a
    /// segment can hold).
    #[error("{count} elements of {size} bytes are more than a segment can hold: ask for fewer")]
    CapacityOverflow {
        /// Elements asked for.
        count: u64,
        /// Bytes per element.
        size: u64,
    },
}

#[cfg(not(loom))]
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
#[cfg(not(loom))]
pub(crate) const WRONG_MAGIC: &str = "wrong magic number: the offset is wrong (pass the one offset() returned), or something \
     else lives there";

/// Checks the words every collection's `open` checks in the header it is pointed at: the
/// magic number (`(found, wanted)`), whose absence means a wrong offset, then the layout
/// word (`(found, wanted)`), whose mismatch means other types or another strategy
/// (`why_layout` says which).
#[cfg(not(loom))]
pub(crate) fn check_header(
    expected: &'static str,
    offset: u64,
    magic: (u64, u64),
    layout: (u64, u64),
    why_layout: &'static str,
) -> Result<()> {
    let why = if magic.0 != magic.1 {
        WRONG_MAGIC
    } else if layout.0 != layout.1 {
        why_layout
    } else {
        return Ok(());
    };
    Err(CollectionError::BadHeader {
        expected,
        offset,
        why,
    })
}

/// Result of collection operations.
pub type Result<T, E = CollectionError> = core::result::Result<T, E>;

pub(crate) fn corrupt(what: impl Into<String>) -> CollectionError {
    CollectionError::Corrupt(what.into())
}
