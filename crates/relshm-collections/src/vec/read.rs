//! Lock-free reads of a [`Vec`]: copy out with atomic loads, keep the copy only if the
//! seqlock word did not move (see `map::seq` for the protocol and why a reader never
//! performs a data race or trusts a torn copy).

use super::Vec;
use super::guard::buf_bytes;
use crate::arena::Result;
use crate::racy;
use bytemuck::Pod;
use core::sync::atomic::Ordering::{Acquire, Relaxed};
use core::sync::atomic::fence;
use relshm_ptr::Repr;

/// Optimistic attempts before a reader takes the lock shared.
const TRIES: u32 = 4;

impl<T: Pod, R: Repr> Vec<T, R> {
    /// Element `i`, or `None` past the end. Takes no lock when no writer holds the vector;
    /// waits for the lock (shared) otherwise.
    pub fn get(&self, i: u64) -> Result<Option<T>> {
        for _ in 0..TRIES {
            let mut out = None;
            match self.optimistic(
                |len| (i < len).then_some(i..i + 1),
                |v| out = v.first().copied(),
            ) {
                Some(true) => return Ok(out),
                Some(false) => continue,
                None => break,
            }
        }
        Ok(self.read()?.get(i))
    }

    /// Every element, copied out (lock-free as [`get`](Self::get)).
    pub fn to_vec(&self) -> Result<std::vec::Vec<T>> {
        for _ in 0..TRIES {
            let mut out = std::vec::Vec::new();
            match self.optimistic(|len| Some(0..len), |v| out = v.to_vec()) {
                Some(true) => return Ok(out),
                Some(false) => continue,
                None => break,
            }
        }
        Ok(self.read()?.to_vec())
    }

    /// One optimistic read: `range(len)` picks the elements, `take` receives their copy.
    /// `Some(true)`: a consistent copy was taken (or the range was empty); `Some(false)`:
    /// a writer came by, try again; `None`: a writer is inside (or died inside), or the
    /// buffer did not resolve: take the lock.
    fn optimistic(
        &self,
        range: impl FnOnce(u64) -> Option<core::ops::Range<u64>>,
        take: impl FnOnce(&[T]),
    ) -> Option<bool> {
        let hdr = self.hdr();
        let s1 = hdr.seq.load(Acquire);
        if s1 & 1 == 1 {
            return None;
        }
        let (len, cap) = (hdr.len.load(Relaxed), hdr.cap.load(Relaxed));
        let r = match range(len.min(cap)) {
            Some(r) if !r.is_empty() => r,
            _ => {
                fence(Acquire);
                return Some(hdr.seq.load(Relaxed) == s1);
            }
        };
        // The link and capacity may be torn from different writers: resolved with the
        // capacity read, the range is checked to lie in the mapping whatever they are.
        buf_bytes::<T>(cap).ok()?;
        let first = hdr.buf.get_array_ptr(self.arena().ctx(), cap).ok()??;
        let n = (r.end - r.start) as usize;
        let mut copy = std::vec::Vec::<T>::with_capacity(n);
        let src = first
            .as_ptr()
            .cast::<u8>()
            .wrapping_add(r.start as usize * size_of::<T>());
        // SAFETY: the elements lie in `[first, first + cap * size)`, which the link
        // resolution checked to be mapped (and the buffer's words cover whole words of it:
        // `first` is 16-aligned in the arena, and buffers end on a word). `copy` has room
        // for `n` Ts, and every byte is written before `set_len` (T is Pod).
        unsafe {
            let dst =
                core::slice::from_raw_parts_mut(copy.as_mut_ptr().cast::<u8>(), n * size_of::<T>());
            racy::read_bytes(src, dst);
            copy.set_len(n);
        }
        fence(Acquire);
        if hdr.seq.load(Relaxed) != s1 {
            return Some(false);
        }
        take(&copy);
        Some(true)
    }
}
