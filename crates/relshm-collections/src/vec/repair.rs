//! Repairing a [`Vec`] after a writer died holding its lock, and verifying one.

use super::guard::{Buf, buf_bytes};
use super::{Vec, VecReadGuard, ident};
use crate::arena::{Result, corrupt};
use crate::seqlock::settle;
use crate::shape::Shape;
use bytemuck::Pod;
use core::sync::atomic::Ordering::{Relaxed, Release};
use relshm_ptr::Repr;

impl<T: Pod, R: Repr> Vec<T, R> {
    /// The buffer the link names, with the capacity its own capacity word records (the
    /// truth after a death: the header's copy may lag one store behind the link).
    fn linked_buf(&self) -> Result<Option<(u64, u64)>> {
        let hdr = self.hdr();
        let arena = self.arena();
        // Resolve for one element first: the capacity is read from the buffer itself.
        let Some(first) = hdr.buf.get_array_ptr(arena.ctx(), 1)? else {
            return Ok(None);
        };
        let first_off = arena.offset_of(first);
        let cap = self.cap_word(first_off)?.load(Relaxed);
        buf_bytes::<T>(cap)?;
        if cap == 0 || hdr.buf.get_array_ptr(arena.ctx(), cap)?.is_none() {
            return Err(corrupt("a vector's buffer records a capacity of 0"));
        }
        Ok(Some((first_off, cap)))
    }

    /// Makes the vector consistent after its writer died (the lock held exclusively, as
    /// the lock's repair step): the capacity comes from the linked buffer, the length from
    /// the pending words if that buffer was being published, every other buffer naming
    /// this vector is freed, and the seqlock word is made even.
    pub(crate) fn repair(&self) -> Result<()> {
        let hdr = self.hdr();
        let linked = self.linked_buf()?;
        let cap = linked.map_or(0, |(_, cap)| cap);
        hdr.cap.store(cap, Release);
        let pending = hdr.pending_buf.load(Relaxed);
        if pending != 0 && linked.map(|(first, _)| first) == Some(pending) {
            // Published, and the length perhaps not stored yet: roll forward.
            hdr.len.store(hdr.pending_len.load(Relaxed), Release);
        }
        hdr.pending_buf.store(0, Release);
        if hdr.len.load(Relaxed) > cap {
            return Err(corrupt(
                "a vector's length exceeds its buffer's capacity after its writer died",
            ));
        }
        let keep = linked.map(|(first, _)| Buf::<T>::payload(first));
        let id = ident(self.offset());
        for off in self.arena().owned_by(id)? {
            if Some(off) != keep {
                self.arena().free_owned(off, None, id)?;
            }
        }
        settle(&hdr.seq);
        hdr.repairs.fetch_add(1, Relaxed);
        Ok(())
    }
}

impl<T: Pod, R: Repr> VecReadGuard<'_, T, R> {
    /// Checks the vector (see [`Vec::verify`]); returns the length.
    pub fn verify(&self) -> Result<u64> {
        crate::walk::vec(self.v.arena(), self.v.offset(), Shape::of::<T>())
    }
}
