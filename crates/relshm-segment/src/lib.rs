//! Shared-memory segments for relshm: named (POSIX shm), unnamed (fork-inherited),
//! file-backed persistent; views; read-only attach; placement at a chosen or fixed
//! address; a validated header with an attach table; online growth inside a reserved
//! address range; an in-segment allocator ([`heap`]) and a named-object [`directory`];
//! a whole-segment check that gives every part a verdict ([`verify`]).
//!
//! Everything that lives in a segment is `#[repr(C)]`, fixed-width and validated when
//! read: a segment's bytes are untrusted input.

pub mod directory;
pub mod heap;
pub mod region;

mod attach;
mod contents;
mod error;
mod file;
pub mod header;
mod heap_handles;
mod image;
mod mapped;
mod mapping;
mod named;
mod options;
pub mod procstat;
mod readonly;
mod segment;
mod unnamed;
pub mod verify;
mod view;

pub use region::{Region, RegionError};

pub use attach::AttachInfo;
pub use contents::{DIRECTORY_CAPACITY, MIN_DIRECTORY_CAPACITY, MIN_SEGMENT_SIZE};
pub use error::{Result, SegmentError};
pub use header::Header;
pub use mapping::{Placement, page_size};
pub use options::{CreateOptions, OpenOptions};
pub use readonly::ReadOnlySegment;
pub use segment::{Segment, SegmentKind};
pub use view::{ReadOnlyView, View};
