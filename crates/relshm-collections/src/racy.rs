//! Byte copies in and out of memory that another process may read or write at the same
//! time, with atomic 8-byte word accesses only: a lock-free reader that races a writer
//! reads a torn copy (which it discards after validating, see `seqlock`), never performs
//! a data race.
//!
//! Both functions touch the whole aligned words covering their range: callers keep
//! buffers 8-aligned with their byte capacity rounded up to whole words, so those words
//! lie inside the same allocation.

use bytemuck::Pod;
use core::sync::atomic::AtomicU64;
use core::sync::atomic::Ordering::Relaxed;

/// Copies `dst.len()` bytes starting at `src` into `dst`.
///
/// # Safety
/// The 8-byte aligned words covering `[src, src + dst.len())` are mapped for reading for
/// the call.
pub(crate) unsafe fn read_bytes(src: *const u8, dst: &mut [u8]) {
    let a = src as usize;
    // The partial word before the first aligned one, the whole words, the partial tail.
    let head = (a.next_multiple_of(8) - a).min(dst.len());
    let (first, rest) = dst.split_at_mut(head);
    // SAFETY: the covering words of `first` (forwarded contract).
    unsafe { read_partial(src, first) };
    let body = src.wrapping_add(head);
    let whole = rest.len() & !7;
    let (middle, tail) = rest.split_at_mut(whole);
    for (i, chunk) in middle.chunks_exact_mut(8).enumerate() {
        // SAFETY: an aligned word of the range (forwarded contract); `src`'s provenance
        // covers it.
        let w = unsafe { AtomicU64::from_ptr(body.wrapping_add(8 * i).cast_mut().cast()) };
        chunk.copy_from_slice(&w.load(Relaxed).to_ne_bytes());
    }
    let at = body.wrapping_add(whole);
    // SAFETY: the covering word of the tail (forwarded contract).
    unsafe { read_partial(at, tail) };
}

/// [`read_bytes`] of at most one word's worth of bytes within one aligned word.
///
/// # Safety
/// As for [`read_bytes`].
unsafe fn read_partial(src: *const u8, dst: &mut [u8]) {
    if dst.is_empty() {
        return;
    }
    let a = src as usize;
    let w = a & !7;
    // SAFETY: the covering word (the caller's contract); `src`'s provenance covers it.
    let word = unsafe { AtomicU64::from_ptr(src.wrapping_sub(a - w).cast_mut().cast()) };
    let bytes = word.load(Relaxed).to_ne_bytes();
    dst.copy_from_slice(&bytes[a - w..a - w + dst.len()]);
}

/// Writes `src` at `dst`; bytes of the covering words outside the range keep their value
/// (read, merged and stored back: only one writer may write these words at a time).
///
/// # Safety
/// The 8-byte aligned words covering `[dst, dst + src.len())` are mapped for writing,
/// and no one else writes them during the call (the caller holds the lock that guards
/// them, or the memory is a fresh allocation).
pub(crate) unsafe fn write_bytes(dst: *mut u8, src: &[u8]) {
    let a = dst as usize;
    let head = (a.next_multiple_of(8) - a).min(src.len());
    let (first, rest) = src.split_at(head);
    // SAFETY: the covering words of `first` (forwarded contract).
    unsafe { write_partial(dst, first) };
    let body = dst.wrapping_add(head);
    let mut words = rest.chunks_exact(8);
    for (i, chunk) in words.by_ref().enumerate() {
        // SAFETY: an aligned word of the range (forwarded contract).
        let w = unsafe { AtomicU64::from_ptr(body.wrapping_add(8 * i).cast()) };
        w.store(
            u64::from_ne_bytes(chunk.try_into().unwrap_or_default()),
            Relaxed,
        );
    }
    let tail = words.remainder();
    // SAFETY: the covering word of the tail (forwarded contract).
    unsafe { write_partial(body.wrapping_add(rest.len() - tail.len()), tail) };
}

/// [`write_bytes`] of bytes within one aligned word (read, merged, stored back).
///
/// # Safety
/// As for [`write_bytes`].
unsafe fn write_partial(dst: *mut u8, src: &[u8]) {
    if src.is_empty() {
        return;
    }
    let a = dst as usize;
    let w = a & !7;
    // SAFETY: the covering word (the caller's contract).
    let word = unsafe { AtomicU64::from_ptr(dst.wrapping_sub(a - w).cast()) };
    let mut bytes = word.load(Relaxed).to_ne_bytes();
    bytes[a - w..a - w + src.len()].copy_from_slice(src);
    word.store(u64::from_ne_bytes(bytes), Relaxed);
}

/// Copies a `T` out of shared memory with atomic word loads only (the copy may be torn if
/// someone writes meanwhile; callers validate before trusting it).
///
/// # Safety
/// The 8-byte words covering `[src, src + size_of::<T>())` must be mapped for reading
/// (true for any field of an 8-aligned object made of whole words).
#[inline(always)]
pub(crate) unsafe fn read<T: Pod>(src: *const T) -> T {
    let mut out = T::zeroed();
    if align_of::<T>() >= 8 {
        // Whole aligned words (a size is a multiple of its alignment): the lookup path of
        // maps, kept to plain word loads.
        let dst: &mut [u64] = bytemuck::cast_slice_mut(core::slice::from_mut(&mut out));
        for (i, w) in dst.iter_mut().enumerate() {
            // SAFETY: src is 8-aligned and word i lies inside it (the caller's contract).
            *w = unsafe { AtomicU64::from_ptr(src.cast::<u64>().add(i).cast_mut()) }.load(Relaxed);
        }
    } else {
        // SAFETY: forwarded.
        unsafe { read_bytes(src.cast(), bytemuck::bytes_of_mut(&mut out)) };
    }
    out
}

/// Writes `val` at `dst` with atomic word stores (see [`write_bytes`]).
///
/// # Safety
/// As for [`write_bytes`], for the `size_of::<T>()` bytes at `dst`.
#[inline]
pub(crate) unsafe fn write<T: Pod>(dst: *mut T, val: T) {
    // SAFETY: forwarded.
    unsafe { write_bytes(dst.cast(), bytemuck::bytes_of(&val)) };
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
