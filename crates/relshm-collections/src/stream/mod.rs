//! Byte streams.
