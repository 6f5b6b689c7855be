//! [`VecGuard`] (the lock held exclusively: every change) and [`VecReadGuard`] (held
//! shared: a borrowed view of the elements).

use super::Vec;
use super::layout::{BUF_HEADER, CAP_BACK, Elem, ident};
use crate::arena::{CollectionError, Result, corrupt};
use crate::racy;
use crate::seqlock::WriteSection;
use bytemuck::Pod;
use core::ptr::NonNull;
use core::sync::atomic::AtomicU64;
use core::sync::atomic::Ordering::{Relaxed, Release};
use core::sync::atomic::fence;
use relshm_ptr::Repr;
use relshm_segment::heap::kill_point;
use relshm_sync::Held;

/// Largest buffer a vector asks the heap for (the heap's own block limit is 2^48).
const MAX_BUF_BYTES: u64 = 1 << 46;

/// The buffer as a lock holder sees it: its first element and capacity.
#[derive(Clone, Copy)]
pub(crate) struct Buf<T> {
    pub(crate) first: Option<NonNull<T>>,
    pub(crate) cap: u64,
}

impl<T> Buf<T> {
    /// The payload offset of the buffer's heap block, given its first element's offset.
    pub(crate) fn payload(first_off: u64) -> u64 {
        first_off.wrapping_sub(BUF_HEADER)
    }
}

/// Bytes of a buffer block holding `cap` elements of `T` (header included, rounded up to
/// whole words so that racy word copies stay inside it).
pub(crate) fn buf_bytes<T>(cap: u64) -> Result<u64> {
    let size = size_of::<T>() as u64;
    cap.checked_mul(size)
        .and_then(|b| b.checked_add(BUF_HEADER + 7))
        .map(|b| b & !7)
        .filter(|&b| b <= MAX_BUF_BYTES)
        .ok_or(CollectionError::CapacityOverflow { count: cap, size })
}

impl<T: Pod, R: Repr> Vec<T, R> {
    /// The buffer in use, checked (in bounds for the header's capacity). Caller holds the
    /// lock (shared or exclusive) and the vector is repaired.
    pub(crate) fn buf(&self) -> Result<Buf<T>> {
        let hdr = self.hdr();
        let cap = hdr.cap.load(Relaxed);
        let first = hdr.buf.get_array_ptr(self.arena().ctx(), cap)?;
        if first.is_none() != (cap == 0) {
            return Err(corrupt(
                "a vector's buffer link and capacity disagree (null with a capacity, or a \
                 buffer without one)",
            ));
        }
        Ok(Buf {
            first: first.map(NonNull::cast),
            cap,
        })
    }

    /// Checks what a writer is about to copy from and write into (the lock held
    /// exclusively, the vector repaired): the length within the capacity, and the buffer
    /// link leading to a buffer of this vector (its own capacity word agrees, its owner
    /// record names this vector). Segment bytes are untrusted: without this, a corrupted
    /// length would make a reallocation copy past the buffer, and a corrupted link would
    /// make a push write into whatever it leads to.
    pub(crate) fn check_for_write(&self) -> Result<()> {
        let buf = self.buf()?;
        let len = self.hdr().len.load(Relaxed);
        if len > buf.cap {
            return Err(corrupt(format!(
                "a vector's length {len} exceeds its capacity {}",
                buf.cap
            )));
        }
        // A translated copy has no heap (its buffer's owner record stayed behind).
        if let Some(first) = buf.first.filter(|_| self.arena().segment().is_some()) {
            let first_off = self.arena().offset_of(first);
            let ident_word = self
                .arena()
                .at::<AtomicU64>(Buf::<T>::payload(first_off).wrapping_add(8))?;
            // SAFETY: resolved and checked by the arena, mapped while it lives; any bits
            // are a valid AtomicU64.
            let ident_word = unsafe { ident_word.as_ref() }.load(Relaxed);
            if self.cap_word(first_off)?.load(Relaxed) != buf.cap
                || ident_word != ident(self.offset()).0
            {
                return Err(corrupt(
                    "a vector's buffer link does not lead to a buffer of this vector",
                ));
            }
        }
        Ok(())
    }

    /// The capacity word of the buffer whose first element is at offset `first_off`.
    pub(crate) fn cap_word(&self, first_off: u64) -> Result<&AtomicU64> {
        let p = self
            .arena()
            .at::<AtomicU64>(first_off.wrapping_sub(CAP_BACK))?;
        // SAFETY: resolved and checked (in bounds, aligned) by the arena, which keeps the
        // mapping alive as long as `self`; any bits are a valid AtomicU64.
        Ok(unsafe { p.as_ref() })
    }
}

/// The vector's lock held exclusively, inside a seqlock write section (lock-free readers
/// retry or wait while it lives). Unlocks on drop. Not `Send`.
pub struct VecGuard<'a, T: Pod, R: Repr> {
    v: &'a Vec<T, R>,
    // Dropped in this order: the section ends (word even), then the lock is released.
    _section: WriteSection<'a>,
    _held: Held<'a>,
}

impl<'a, T: Pod, R: Repr> VecGuard<'a, T, R> {
    pub(crate) fn new(v: &'a Vec<T, R>, held: Held<'a>, section: WriteSection<'a>) -> Self {
        Self {
            v,
            _section: section,
            _held: held,
        }
    }

    /// Number of elements.
    pub fn len(&self) -> u64 {
        self.v.hdr().len.load(Relaxed)
    }

    /// Whether the vector is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Elements the buffer holds.
    pub fn capacity(&self) -> u64 {
        self.v.hdr().cap.load(Relaxed)
    }

    /// The elements (no one else writes them while the guard lives).
    pub fn as_slice(&self) -> Result<&[T]> {
        let buf = self.v.buf()?;
        Ok(slice(buf, self.len().min(buf.cap)))
    }

    /// Element `i`.
    pub fn get(&self, i: u64) -> Result<Option<T>> {
        Ok(self.as_slice()?.get(i as usize).copied())
    }

    /// Appends `value`.
    pub fn push(&mut self, value: T) -> Result<()> {
        self.extend_from_slice(core::slice::from_ref(&value))
    }

    /// Appends every element of `values`: written past the end, then published by one
    /// store of the length.
    pub fn extend_from_slice(&mut self, values: &[T]) -> Result<()> {
        let len = self.len();
        let new_len =
            len.checked_add(values.len() as u64)
                .ok_or(CollectionError::CapacityOverflow {
                    count: u64::MAX,
                    size: size_of::<T>() as u64,
                })?;
        let mut buf = self.v.buf()?;
        if new_len > buf.cap {
            let want = new_len.max(buf.cap.saturating_mul(2)).max(4);
            buf = self.reallocate(want, len, |old, new| {
                copy_into(new, 0, slice(old, len));
                Ok(())
            })?;
        }
        if let Some(first) = buf.first {
            // SAFETY: elements [len, new_len) lie in the buffer (new_len <= cap), which
            // only this lock holder writes.
            unsafe { write_elems(first, len, values) };
        }
        fence(Release);
        kill_point();
        self.v.hdr().len.store(new_len, Release);
        Ok(())
    }

    /// Removes and returns the last element.
    pub fn pop(&mut self) -> Result<Option<T>> {
        let len = self.len();
        let Some(last) = len.checked_sub(1) else {
            return Ok(None);
        };
        let value = self.as_slice()?.get(last as usize).copied();
        self.v.hdr().len.store(last, Release);
        Ok(value)
    }

    /// Replaces element `i`, returning the old one. An element of up to 8 bytes is one
    /// store; a wider one is torn if the writer is killed inside (see the module docs).
    pub fn set(&mut self, i: u64, value: T) -> Result<T> {
        let len = self.len();
        let old = self
            .as_slice()?
            .get(i as usize)
            .copied()
            .ok_or(CollectionError::IndexOutOfRange { index: i, len })?;
        if let Some(first) = self.v.buf()?.first {
            // SAFETY: i < len <= cap; this lock holder is the only writer.
            unsafe { write_elems(first, i, core::slice::from_ref(&value)) };
        }
        Ok(old)
    }

    /// Inserts `value` at `i` (`i <= len`): the elements are copied into a new buffer with
    /// the gap, which one store publishes.
    pub fn insert(&mut self, i: u64, value: T) -> Result<()> {
        let len = self.len();
        if i > len {
            return Err(CollectionError::IndexOutOfRange { index: i, len });
        }
        let cap = self.v.buf()?.cap;
        let want = if len < cap {
            cap
        } else {
            cap.saturating_mul(2).max(4)
        };
        self.reallocate(want, len + 1, |old, new| {
            let old = slice(old, len);
            copy_into(new, 0, &old[..i as usize]);
            copy_into(new, i, core::slice::from_ref(&value));
            copy_into(new, i + 1, &old[i as usize..]);
            Ok(())
        })?;
        Ok(())
    }

    /// Removes and returns element `i`: the rest is copied into a new buffer, which one
    /// store publishes.
    pub fn remove(&mut self, i: u64) -> Result<T> {
        let len = self.len();
        let value = self
            .as_slice()?
            .get(i as usize)
            .copied()
            .ok_or(CollectionError::IndexOutOfRange { index: i, len })?;
        let cap = self.v.buf()?.cap;
        if i + 1 == len {
            self.v.hdr().len.store(i, Release);
            return Ok(value);
        }
        self.reallocate(cap, len - 1, |old, new| {
            let old = slice(old, len);
            copy_into(new, 0, &old[..i as usize]);
            copy_into(new, i, &old[i as usize + 1..]);
            Ok(())
        })?;
        Ok(value)
    }

    /// Shortens the vector to `len` elements (nothing if it is not longer).
    pub fn truncate(&mut self, len: u64) -> Result<()> {
        if len < self.len() {
            self.v.hdr().len.store(len, Release);
        }
        Ok(())
    }

    /// Removes every element (the buffer stays).
    pub fn clear(&mut self) -> Result<()> {
        self.truncate(0)
    }

    /// Makes room for at least `additional` more elements.
    pub fn reserve(&mut self, additional: u64) -> Result<()> {
        let len = self.len();
        let need = len
            .checked_add(additional)
            .ok_or(CollectionError::CapacityOverflow {
                count: u64::MAX,
                size: size_of::<T>() as u64,
            })?;
        if need > self.v.buf()?.cap {
            self.reallocate(need, len, |old, new| {
                copy_into(new, 0, slice(old, len));
                Ok(())
            })?;
        }
        Ok(())
    }

    /// Shrinks the buffer to the length (frees it when the vector is empty).
    pub fn shrink_to_fit(&mut self) -> Result<()> {
        let len = self.len();
        if self.v.buf()?.cap > len {
            self.reallocate(len, len, |old, new| {
                copy_into(new, 0, slice(old, len));
                Ok(())
            })?;
        }
        Ok(())
    }

    /// Replaces the buffer with one of `cap` elements, `len` of them filled by
    /// `fill(old, new)`: the new buffer is an owned block naming this vector (a writer
    /// killed before publishing it leaves a block the repair frees), named with `len` in
    /// the header's pending words, published by one store of the link; then the header's
    /// capacity and length follow and the old buffer is freed (a writer killed in between
    /// is finished by the repair, which also frees the old buffer). `cap` 0 publishes the
    /// null link.
    fn reallocate(
        &mut self,
        cap: u64,
        len: u64,
        fill: impl FnOnce(Buf<T>, Buf<T>) -> Result<()>,
    ) -> Result<Buf<T>> {
        let (v, hdr) = (self.v, self.v.hdr());
        let arena = v.arena();
        let old = v.buf()?;
        let id = ident(v.offset());
        let new = if cap == 0 {
            Buf {
                first: None,
                cap: 0,
            }
        } else {
            let bytes = buf_bytes::<T>(cap)?;
            let payload = arena.alloc_owned(bytes, id)?;
            kill_point();
            let first = payload + BUF_HEADER;
            v.cap_word(first)?.store(cap, Relaxed);
            let new = Buf {
                first: Some(arena.at::<T>(first)?),
                cap,
            };
            if let Err(e) = fill(old, new) {
                arena.free_owned(payload, Some(bytes), id)?;
                return Err(e);
            }
            new
        };
        let first_off = new.first.map_or(0, |p| arena.offset_of(p));
        hdr.pending_len.store(len, Relaxed);
        hdr.pending_buf.store(first_off, Relaxed);
        fence(Release);
        kill_point();
        hdr.buf
            .set_ptr(arena.ctx(), new.first.map(NonNull::cast::<Elem<T>>))?;
        kill_point();
        hdr.cap.store(cap, Release);
        hdr.len.store(len, Release);
        kill_point();
        hdr.pending_buf.store(0, Release);
        if let Some(first) = old.first {
            kill_point();
            let payload = Buf::<T>::payload(arena.offset_of(first));
            arena.free_owned(payload, Some(buf_bytes::<T>(old.cap)?), id)?;
        }
        Ok(new)
    }
}

/// The first `len` elements of `buf` (`len <= buf.cap`), for a lock holder.
fn slice<'a, T>(buf: Buf<T>, len: u64) -> &'a [T] {
    match buf.first {
        // SAFETY: the buffer was resolved for `cap >= len` elements (in bounds, aligned),
        // stays mapped while the lock holder's arena lives, and T is Pod; under the lock
        // no one writes these elements.
        Some(p) => unsafe { core::slice::from_raw_parts(p.as_ptr(), len as usize) },
        None => &[],
    }
}

/// Writes `values` into `buf` from element `at` (which the caller checked fits).
fn copy_into<T: Pod>(buf: Buf<T>, at: u64, values: &[T]) {
    if let Some(first) = buf.first {
        // SAFETY: the caller sized the new buffer for every element written; it is a fresh
        // block only this lock holder writes.
        unsafe { write_elems(first, at, values) };
    }
}

/// Stores `values` at elements `at..` of the buffer starting at `first`, with atomic word
/// stores (a lock-free reader may be reading these bytes).
///
/// # Safety
/// Elements `[at, at + values.len())` lie inside a buffer (8-aligned, byte capacity whole
/// words) that no one else writes meanwhile.
unsafe fn write_elems<T: Pod>(first: NonNull<T>, at: u64, values: &[T]) {
    let dst = first
        .as_ptr()
        .cast::<u8>()
        .wrapping_add(at as usize * size_of::<T>());
    // SAFETY: forwarded: the covering words lie in the buffer, written by us alone.
    unsafe { racy::write_bytes(dst, bytemuck::cast_slice(values)) };
}

/// The vector's lock held shared: a consistent view of the elements (no writer changes
/// them while it lives). Unlocks on drop. Not `Send`.
pub struct VecReadGuard<'a, T: Pod, R: Repr> {
    pub(crate) v: &'a Vec<T, R>,
    elems: &'a [T],
    _held: Held<'a>,
}

impl<'a, T: Pod, R: Repr> VecReadGuard<'a, T, R> {
    pub(crate) fn new(v: &'a Vec<T, R>, held: Held<'a>) -> Result<Self> {
        let buf = v.buf()?;
        let len = v.hdr().len.load(Relaxed);
        if len > buf.cap {
            return Err(corrupt(format!(
                "a vector's length {len} exceeds its capacity {}",
                buf.cap
            )));
        }
        Ok(Self {
            v,
            elems: slice(buf, len),
            _held: held,
        })
    }

    /// The elements.
    pub fn as_slice(&self) -> &[T] {
        self.elems
    }

    /// Iterates over the elements.
    pub fn iter(&self) -> core::slice::Iter<'_, T> {
        self.elems.iter()
    }

    /// Number of elements.
    pub fn len(&self) -> u64 {
        self.elems.len() as u64
    }

    /// Whether the vector is empty.
    pub fn is_empty(&self) -> bool {
        self.elems.is_empty()
    }

    /// Element `i`.
    pub fn get(&self, i: u64) -> Option<T> {
        self.elems.get(i as usize).copied()
    }
}

impl<T: Pod, R: Repr> core::ops::Deref for VecReadGuard<'_, T, R> {
    type Target = [T];
    fn deref(&self) -> &[T] {
        self.elems
    }
}
