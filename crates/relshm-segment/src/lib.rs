//! Shared-memory segments for relshm: named (POSIX shm), unnamed (fork-inherited),
//! file-backed persistent; views; read-only attach; placement at a chosen or fixed
//! address; a validated header with an attach table; online growth inside a reserved
//! address range; an in-segment allocator ([`heap`]) and a named-object [`directory`].
//!
//! Everything that lives in a segment is `#[repr(C)]`, fixed-width and validated when
//! read: a segment's bytes are untrusted input.

pub mod region;

pub use region::{Region, RegionError};
