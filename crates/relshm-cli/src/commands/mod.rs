//! The inspection commands (`ls`, `inspect`, `verify`, `rm`) and the Boost peer benchmark.
//!
//! Each command returns the process exit code, or a [`CliError`] that `main` prints as one
//! line: 0 success, 1 damage found (`verify`) or an operation failed, 2 usage errors
//! (no such segment, not a relshm segment, bad name), 3 (`verify` only) nothing found
//! damaged but some part could not be checked.

pub mod collections;
pub mod inspect;
pub mod locks;
pub mod ls;
pub mod output;
pub mod peer_bench;
pub mod rm;
pub mod target;
pub mod verify;

pub use output::CliError;
