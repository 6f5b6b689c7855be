//! What can go wrong with a queue.

#[cfg(not(loom))]
use relshm_segment::{RegionError, heap::HeapError};
use relshm_sync::LockError;

/// Errors of queue operations.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum QueueError {
    /// `try_send`: every slot holds a message.
    #[error("the queue is full: receive some messages or use a blocking send")]
    Full,
    /// `try_recv`: no message is ready.
    #[error("the queue is empty: send a message or use a blocking receive")]
    Empty,
    /// A blocking call's timeout elapsed.
    #[error("timed out waiting for the queue")]
    Timeout,
    /// Every endpoint on the other side is gone (dropped, exited, or killed), or the queue
    /// was closed, and for receivers no message is left.
    #[error(
        "the queue is disconnected: every {peer} has gone (dropped, exited or killed) or the \
         queue was closed"
    )]
    Disconnected {
        /// "sender" or "receiver".
        peer: &'static str,
    },
    /// All endpoint registrations are taken.
    #[error(
        "all {max} endpoint registrations of the queue are taken: drop unused senders or \
         receivers (registrations of dead processes are reclaimed automatically)"
    )]
    TooManyEndpoints {
        /// The limit.
        max: usize,
    },
    /// A message does not fit.
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
    /// The message received has another length than the type expects.
    #[error(
        "received {got} bytes where a {expected}-byte value was expected: sender and receiver disagree on the message type"
    )]
    WrongSize {
        /// The length received.
        got: u64,
        /// The length expected.
        expected: u64,
    },
    /// Nothing at the offset given to [`Queue::attach`](super::Queue::attach) starts with a
    /// queue's magic: a caller mistake (a wrong offset, or another object) far more often
    /// than damage.
    #[error(
        "no queue at offset {offset:#x} (bad magic): wrong offset or not a queue; pass the \
         offset Queue::offset() returned"
    )]
    NotAQueue {
        /// The offset that was given.
        offset: u64,
    },
    /// The queue's bytes are not a valid queue.
    #[error("the queue is corrupted: {what}; recreate it (its segment may be damaged)")]
    Corrupted {
        /// What is wrong.
        what: String,
    },
    /// The configuration asked for is not possible.
    #[error("invalid queue configuration: {what}")]
    BadConfig {
        /// What is wrong.
        what: &'static str,
    },
    /// The in-segment heap failed (large messages, creation).
    #[cfg(not(loom))]
    #[error("queue heap: {0}")]
    Heap(#[from] HeapError),
    /// An offset did not resolve in the mapping.
    #[cfg(not(loom))]
    #[error(transparent)]
    Region(#[from] RegionError),
    /// The queue's reclamation lock failed.
    #[error("queue reclamation lock: {0}")]
    Lock(#[from] LockError),
}

impl QueueError {
    pub(crate) fn corrupted(what: impl Into<String>) -> Self {
        QueueError::Corrupted { what: what.into() }
    }
}
