//! Byte copies in and out of memory that another process may read or write at the same
//! time, with atomic 8-byte word accesses only: a lock-free reader that races a writer
//! reads a torn copy (which it discards after validating, see `map::seq`), never performs
//! a data race.
//!
//! Both functions touch the whole aligned words covering their range: callers keep
//! buffers 8-aligned with their byte capacity rounded up to whole words, so those words
//! lie inside the same allocation.

use core::sync::atomic::AtomicU64;
use core::sync::atomic::Ordering::Relaxed;

/// Copies `dst.len()` bytes starting at `src` into `dst`.
///
/// # Safety
/// The 8-byte aligned words covering `[src, src + dst.len())` are mapped for reading for
/// the call.
pub(crate) unsafe fn read_bytes(src: *const u8, dst: &mut [u8]) {
    let (a, n) = (src as usize, dst.len());
    let mut w = a & !7;
    while w < a + n {
        // SAFETY: a covering word of the source (the caller's contract); `src`'s
        // provenance covers it.
        let word = unsafe {
            (*AtomicU64::from_ptr(src.wrapping_add(w.wrapping_sub(a)).cast_mut().cast()))
                .load(Relaxed)
        };
        let bytes = word.to_ne_bytes();
        // The part of this word inside the range.
        let lo = a.max(w);
        let hi = (a + n).min(w + 8);
        dst[lo - a..hi - a].copy_from_slice(&bytes[lo - w..hi - w]);
        w += 8;
    }
}

/// Writes `src` at `dst`; bytes of the covering words outside the range keep their value
/// (read, merged and stored back: only one writer may write these words at a time).
///
/// # Safety
/// The 8-byte aligned words covering `[dst, dst + src.len())` are mapped for writing,
/// and no one else writes them during the call (the caller holds the lock that guards
/// them, or the memory is a fresh allocation).
pub(crate) unsafe fn write_bytes(dst: *mut u8, src: &[u8]) {
    let (a, n) = (dst as usize, src.len());
    let mut w = a & !7;
    while w < a + n {
        // SAFETY: a covering word of the destination (the caller's contract).
        let word = unsafe { AtomicU64::from_ptr(dst.wrapping_add(w.wrapping_sub(a)).cast()) };
        let lo = a.max(w);
        let hi = (a + n).min(w + 8);
        let mut bytes = if hi - lo == 8 {
            [0; 8]
        } else {
            word.load(Relaxed).to_ne_bytes()
        };
        bytes[lo - w..hi - w].copy_from_slice(&src[lo - a..hi - a]);
        word.store(u64::from_ne_bytes(bytes), Relaxed);
        w += 8;
    }
}

#[cfg(test)]
mod tests {
    use super::{read_bytes, write_bytes};

    #[test]
    fn every_unaligned_range_round_trips_and_keeps_its_neighbours() {
        for start in 0..16 {
            for len in 0..40 {
                let mut buf = [u64::from_ne_bytes([0xaa; 8]); 8];
                let base = buf.as_mut_ptr().cast::<u8>();
                let src: Vec<u8> = (0..len as u8).collect();
                // SAFETY: start + len <= 56 < 64 bytes of `buf`, whose words cover it.
                unsafe { write_bytes(base.add(start), &src) };
                let mut back = vec![0; len];
                // SAFETY: as above.
                unsafe { read_bytes(base.add(start), &mut back) };
                assert_eq!(back, src);
                let all: Vec<u8> = buf.iter().flat_map(|w| w.to_ne_bytes()).collect();
                for (i, b) in all.iter().enumerate() {
                    if !(start..start + len).contains(&i) {
                        assert_eq!(*b, 0xaa, "byte {i} outside [{start}, +{len}) changed");
                    }
                }
            }
        }
    }
}
