//! Collections that live in a relshm segment and are used by several processes at once,
//! each mapping the segment at its own address: everything in the segment refers to
//! everything else by offset, and every offset read back is checked.
//!
//! - [`queue`]: a bounded multi-producer multi-consumer message queue with blocking and
//!   non-blocking send/receive, disconnection when a peer exits or is killed, and large
//!   messages passed by offset.
//! - [`port`]: named ports (mailboxes): a server publishes a port in the segment's
//!   directory, clients connect and get a private pair of queues; request/reply in one call.
//! - [`stream`]: a single-producer single-consumer byte ring implementing
//!   [`std::io::Read`]/[`std::io::Write`], blocking like a pipe.
//! - [`list`] and [`map`]: a doubly linked list and a lock-striped hash map, generic over
//!   the pointer strategy of `relshm-ptr` (one type parameter: `Offset`, `BaseRel`,
//!   `SegRel`, `Raw`, `Swizzle`), kill-safe and verifiable, over an [`arena`] that says
//!   where the objects live in this process.
//! - [`bytes_map`]: a map from byte strings to byte strings of any length, read without
//!   locks (copy out and validate) or in place under shared locks.
//! - [`vec`](mod@vec): a growable contiguous vector, generic over the pointer strategy like list
//!   and map, read without locks, reallocated kill-safely.
//! - [`verify`]: a whole-segment check that walks every collection it can and reports,
//!   for each named object, verified, corrupt, or unchecked and why.

// The loom build keeps only the queue algorithm; helpers of the real queue go unused.
#![cfg_attr(loom, allow(dead_code))]

#[cfg(not(loom))]
pub mod arena;
#[cfg(not(loom))]
pub mod bytes_map;
pub mod error;
#[cfg(not(loom))]
pub mod list;
#[cfg(not(loom))]
pub mod map;
#[cfg(not(loom))]
pub mod port;
pub mod queue;
#[cfg(not(loom))]
mod racy;
#[cfg(not(loom))]
pub mod record;
#[cfg(not(loom))]
mod root;
#[cfg(not(loom))]
mod segment_ext;
#[cfg(not(loom))]
mod seqlock;
#[cfg(not(loom))]
pub mod shape;
#[cfg(not(loom))]
pub mod stream;
#[cfg(not(loom))]
pub mod vec;
#[cfg(not(loom))]
pub mod verify;
#[cfg(not(loom))]
mod walk;

#[cfg(not(loom))]
pub use arena::{Arena, InPlace};
pub use error::{CollectionError, Result};
#[cfg(not(loom))]
pub use segment_ext::SegmentExt;
