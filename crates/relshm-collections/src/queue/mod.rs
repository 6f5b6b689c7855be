//! A bounded multi-producer multi-consumer message queue in a segment, used by processes
//! that map the segment at different addresses.
//!
//! # Design
//!
//! - **Ring**: Vyukov's bounded queue of slots with per-slot sequence numbers, except that
//!   a position is claimed by a compare-and-swap on the slot's own sequence word, which then
//!   names the claiming endpoint (see `ring.rs`). A process SIGKILLed halfway through a send
//!   or receive leaves a claim that names it; reclaiming the dead endpoint resolves it (a
//!   half-written message is skipped, a half-read one is dropped with its dead reader), so
//!   the queue never wedges.
//! - **Blocking**: spin a little, then sleep on an in-segment shared futex word with a
//!   waiter count, so senders and receivers make no system call while nobody sleeps and
//!   no wake-up is lost (see `wait.rs`; loom-checked in `tests/loom_queue.rs`).
//! - **Disconnection**: every [`Sender`]/[`Receiver`] holds an endpoint registration with
//!   its process's (pid, start time). Dropping an endpoint unregisters it at once; a killed
//!   process's registration is found dead by sleepers, who re-check liveness every
//!   [`LIVENESS_INTERVAL`] (so a SIGKILL is reported within about that long), or by
//!   [`Queue::reap_dead`]. Measured: a receiver blocked when its only sender is SIGKILLed
//!   gets `Disconnected` 16–20 ms later (interval 20 ms; `tests/queue_mp.rs` prints it).
//!   Why not a robust "endpoint lock" held for the endpoint's life: the kernel releases a
//!   robust futex when the owning *thread* exits, and an endpoint may be used from, or
//!   outlive, any thread of its process; (pid, start time) names the process itself, and
//!   checking it costs nothing until someone would otherwise sleep forever.
//! - **Unbounded variant**: [`linked::LinkedQueue`] links heap nodes with any pointer
//!   representation (offset, segment-relative, fixed-address raw) for per-strategy
//!   comparison; it is a two-lock Michael–Scott queue with robust locks.
//! - **Large messages**: longer than the slot size, a message is written once into a heap
//!   allocation (the segment grows for it when it was created with room to grow) and only
//!   its offset travels; the receiver reads it in place ([`Message`]) and frees it on
//!   drop. [`Queue::reclaim`] frees what dead processes leaked.
//! - **Handles**: [`Queue<T>`] is typed and owning (it keeps the segment mapped), made on
//!   an [`Arena`](crate::Arena) like a list or map, and recorded by name with a typed
//!   directory record ([`CollectionRecord::queue`](crate::record::CollectionRecord::queue));
//!   its [`Sender`]s and [`Receiver`]s own what they need too. Every error is a
//!   [`CollectionError`](crate::CollectionError).
//!
//! # Layout
//!
//! One heap allocation, 64-aligned: the [`layout::Control`] block (2368 bytes: geometry,
//! `tail` and `head` hints on their own cache lines, futex words, the reap lock and 64
//! [`layout::EndpointSlot`]s), then `capacity` slots of `stride` bytes, each a
//! [`layout::SlotHeader`] (32 bytes) and the inline payload.
//!
//! # Example
//!
//! ```
//! use relshm_collections::Arena;
//! use relshm_collections::queue::{Queue, QueueConfig};
//! use relshm_segment::{CreateOptions, Segment};
//! use std::time::Duration;
//!
//! let seg = Segment::create_unnamed(&CreateOptions::new(1 << 20).max_size(16 << 20))?;
//! let arena: Arena = Arena::new(&seg)?;
//! let q = Queue::<u8>::create(&arena, QueueConfig::default())?;
//! let tx = q.sender()?;
//! let rx = q.receiver()?;
//! tx.send_bytes(b"hello", None)?;
//! tx.send_bytes(&vec![7u8; 4 << 20], None)?; // large: through the heap, which grows
//! assert_eq!(&*rx.recv_bytes(None)?, b"hello");
//! assert_eq!(rx.recv_bytes(Some(Duration::from_secs(1)))?.len(), 4 << 20);
//! assert!(seg.size() > 4 << 20);
//! drop(tx);
//! assert!(rx.recv_bytes(None).is_err()); // disconnected: the only sender is gone
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod layout;
pub(crate) mod ops;
pub(crate) mod ring;
pub(crate) mod wait;

#[cfg(not(loom))]
mod endpoint;
#[cfg(not(loom))]
mod handle;
#[cfg(not(loom))]
pub mod large;
#[cfg(not(loom))]
pub mod linked;

#[cfg(not(loom))]
pub(crate) use handle::RawQueue;
#[cfg(not(loom))]
pub use handle::{Message, Queue, QueueConfig, Receiver, Sender};
pub use wait::LIVENESS_INTERVAL;

#[cfg(loom)]
#[doc(hidden)]
pub mod model;
