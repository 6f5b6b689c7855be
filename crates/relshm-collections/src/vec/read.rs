//! Lock-free reads of a [`Vec`]: copy out with atomic loads, keep the copy only if the
//! seqlock word did not move (see `seqlock` for the protocol and why a reader never
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
            let mut one = None;
            match self.optimistic(|len| (i < len).then(|| i..i + 1), &mut one) {
                Some(true) => return Ok(one),
                Some(false) => continue,
                None => break,
            }
        }
        Ok(self.read()?.get(i))
    }

    /// Every element, copied out (lock-free as [`get`](Self::get)).
    pub fn to_vec(&self) -> Result<std::vec::Vec<T>> {
        let mut out = std::vec::Vec::new();
        self.read_into(&mut out)?;
        Ok(out)
    }

    /// Every element, copied into `out` (its contents replaced, its allocation reused:
    /// for repeated snapshots without an allocation each). Lock-free as [`get`](Self::get).
    pub fn read_into(&self, out: &mut std::vec::Vec<T>) -> Result<()> {
        for _ in 0..TRIES {
            match self.optimistic(|len| Some(0..len), out) {
                Some(true) => return Ok(()),
                Some(false) => continue,
                None => break,
            }
        }
        out.clear();
        out.extend_from_slice(self.read()?.as_slice());
        Ok(())
    }

    /// One optimistic read: `range(len)` picks the elements, copied into `sink`. `Some(true)`: a consistent copy was taken (or the range was empty);
    /// `Some(false)`: a writer came by, try again; `None`: a writer is inside (or died
    /// inside), or the buffer did not resolve: take the lock.
    fn optimistic(
        &self,
        range: impl FnOnce(u64) -> Option<core::ops::Range<u64>>,
        sink: &mut impl Sink<T>,
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
                sink.room(0);
                fence(Acquire);
                return Some(hdr.seq.load(Relaxed) == s1);
            }
        };
        // The link and capacity may be torn from different writers: resolved with the
        // capacity read, the range is checked to lie in the mapping whatever they are (so
        // `out` grows to at most what the mapping holds).
        buf_bytes::<T>(cap).ok()?;
        let first = hdr.buf.get_array_ptr(self.arena().ctx(), cap).ok()??;
        let out = sink.room((r.end - r.start) as usize);
        let src = first
            .as_ptr()
            .cast::<u8>()
            .wrapping_add(r.start as usize * size_of::<T>());
        // SAFETY: the elements lie in `[first, first + cap * size)`, which the link
        // resolution checked to be mapped (and the buffer's words cover whole words of it:
        // `first` is 16-aligned in the arena, and buffers end on a word).
        unsafe { racy::read_bytes(src, bytemuck::cast_slice_mut(out)) };
        fence(Acquire);
        Some(hdr.seq.load(Relaxed) == s1)
    }
}

/// Where an optimistic read copies the elements it picked.
trait Sink<T> {
    /// Room for exactly `n` elements (what was there is dropped).
    fn room(&mut self, n: usize) -> &mut [T];
}

impl<T: Pod> Sink<T> for std::vec::Vec<T> {
    fn room(&mut self, n: usize) -> &mut [T] {
        self.clear();
        self.resize(n, T::zeroed());
        self
    }
}

/// One element at most ([`Vec::get`]).
impl<T: Pod> Sink<T> for Option<T> {
    fn room(&mut self, n: usize) -> &mut [T] {
        *self = (n == 1).then(T::zeroed);
        self.as_mut_slice()
    }
}
