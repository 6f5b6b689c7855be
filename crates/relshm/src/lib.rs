//! relshm: share pointer-rich data structures between processes through shared memory.
//!
//! Processes map the same segment at different addresses; relshm's collections stay
//! correct in every one of them, with the pointer strategy picked by one type parameter.
//! This facade re-exports the layers:
//!
//! - [`sync`]: in-segment futex locks (`Mutex`, `RwLock`, `Condvar`, `Semaphore`) that
//!   survive their owner dying;
//! - [`segment`]: segments (named, unnamed, file-backed), views, placement, growth, the
//!   in-segment allocator and the named-object directory;
//! - [`ptr`]: the pointer representations (`Raw`, `Offset`, `BaseRel`, `SegRel`,
//!   `Swizzle`), copy-time translation, and validation walks;
//! - [`collections`]: `List`, `Map`, `Queue`, ports and byte streams built on them.
//!
//! [`prelude`] brings the names most programs use into scope. [`verify_segment`] checks a
//! whole segment (header, heap, directory and every named object it can walk) and says,
//! for each part, verified, corrupt, or unchecked and why.
//!
//! ```
//! use relshm::prelude::*;
//!
//! let seg = Segment::create_unnamed(&CreateOptions::new(1 << 20))?;
//! let dir = seg.directory()?;
//! let hits = dir.find_or_construct("hits", || Mutex::new(0u64))?;
//! // After a process died holding the lock, a counter has nothing to repair.
//! let nothing_to_repair = |_: &mut u64| Ok::<(), LockError>(());
//! *hits.get().lock_or_repair(nothing_to_repair)? += 1;
//!
//! let other = seg.reopen(Placement::Anywhere)?; // the same bytes at another address
//! assert_ne!(seg.base(), other.base());
//! let other_dir = other.directory()?;
//! let seen = other_dir.find::<Mutex<u64>>("hits")?;
//! assert_eq!(*seen.get().lock_or_repair(nothing_to_repair)?, 1);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub use relshm_collections as collections;
pub use relshm_ptr as ptr;
pub use relshm_segment as segment;
pub use relshm_sync as sync;

pub use relshm_collections::verify::verify_segment;
pub use relshm_segment::verify::{SegmentReport, Verdict};

/// Why a collection operation failed: the one error type of every collection.
pub use relshm_collections::CollectionError as Error;

/// The names most relshm programs use.
pub mod prelude {
    pub use relshm_collections::bytes_map::BytesMap;
    pub use relshm_collections::list::List;
    pub use relshm_collections::map::{ByteKey, Map};
    pub use relshm_collections::port::{PortClient, PortServer};
    pub use relshm_collections::queue::linked::LinkedQueue;
    pub use relshm_collections::queue::{Message, Queue, QueueConfig, Receiver, Sender};
    pub use relshm_collections::stream::{Stream, StreamReader, StreamWriter};
    pub use relshm_collections::{Arena, CollectionError, SegmentExt};
    pub use relshm_ptr::{BaseRel, Link, Offset, Raw, Repr, SegRel, Swizzle, relocatable};
    pub use relshm_segment::{CreateOptions, OpenOptions, Placement, Segment, SegmentError};
    pub use relshm_sync::{Condvar, LockError, Mutex, RwLock, Semaphore};
}

/// The user guide, `docs/guide.md`: `cargo test` compiles and runs every snippet in it.
#[cfg(doctest)]
#[doc = include_str!("../../../docs/guide.md")]
pub struct Guide;

/// The README: `cargo test` compiles and runs every Rust snippet in it.
#[cfg(doctest)]
#[doc = include_str!("../../../README.md")]
pub struct Readme;
