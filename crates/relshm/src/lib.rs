//! relshm: share pointer-rich data structures between processes through shared memory.
//!
//! This facade re-exports the layers:
//! - [`sync`]: in-segment futex locks that survive their owner dying;
//! - [`segment`]: segments, views, the in-segment allocator and named objects.

pub use relshm_segment as segment;
pub use relshm_sync as sync;
