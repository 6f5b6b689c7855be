//! [`ByteKey`]: a byte string of bounded length, usable as a plain-data map key.

use crate::arena::{CollectionError, Result};
use core::fmt;

/// A byte string of at most `N` bytes, stored inline (`#[repr(C)]`: a 4-byte little-endian
/// length, then `N` bytes, zero past the length). Equal strings have equal bytes, so
/// equality and hashing are plain byte comparisons.
///
/// ```
/// use relshm_collections::map::ByteKey;
/// let k = ByteKey::<16>::new(b"hello")?;
/// assert_eq!(k.as_bytes(), b"hello");
/// assert!(ByteKey::<4>::new(b"too long").is_err());
/// # Ok::<(), relshm_collections::arena::CollectionError>(())
/// ```
#[repr(C)]
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct ByteKey<const N: usize> {
    len: [u8; 4],
    bytes: [u8; N],
}

// SAFETY: only byte arrays: alignment 1, no padding, every bit pattern valid.
unsafe impl<const N: usize> bytemuck::Zeroable for ByteKey<N> {}
// SAFETY: as above; Copy and 'static.
unsafe impl<const N: usize> bytemuck::Pod for ByteKey<N> {}

impl<const N: usize> ByteKey<N> {
    /// The key holding `bytes`; fails if they are longer than `N`.
    pub fn new(bytes: &[u8]) -> Result<Self> {
        if bytes.len() > N || bytes.len() > u32::MAX as usize {
            return Err(CollectionError::KeyTooLong {
                len: bytes.len(),
                max: N,
            });
        }
        let mut k = Self {
            len: (bytes.len() as u32).to_le_bytes(),
            bytes: [0; N],
        };
        k.bytes[..bytes.len()].copy_from_slice(bytes);
        Ok(k)
    }

    /// The string (a corrupted length is clamped to `N`).
    pub fn as_bytes(&self) -> &[u8] {
        let len = (u32::from_le_bytes(self.len) as usize).min(N);
        &self.bytes[..len]
    }
}

impl<const N: usize> fmt::Debug for ByteKey<N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ByteKey({:?})", String::from_utf8_lossy(self.as_bytes()))
    }
}
