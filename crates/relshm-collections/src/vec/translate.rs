//! Copy-time translation of a whole [`Vec`] of [`Raw`] links for another process.

use super::Vec;
use super::layout::VecHeader;
use crate::arena::Result;
use bytemuck::Pod;
use relshm_ptr::Raw;
use relshm_ptr::translate::{Space, Translated, translate};
use relshm_sync::RawRwLock;

impl<T: Pod> Vec<T, Raw> {
    /// Copies the vector (header and buffer) into `dst` from offset `start`, with its link
    /// rewritten for a process that maps `dst` at `dst.written_base()`: a copy of the
    /// buffer in one piece and one rewritten word. The receiver opens it with
    /// [`Arena::translated`](crate::arena::Arena::translated) and [`Vec::open`] at
    /// `root_offset`. The copy is read-only (it has no allocator). The lock is held shared
    /// while copying.
    pub fn translate_to(&self, dst: &Space, start: u64) -> Result<Translated> {
        let _guard = self.read()?;
        let arena = self.arena();
        // SAFETY: the arena's region stays mapped while it lives.
        let src = unsafe { Space::new(arena.region(), arena.base()) };
        let t = translate::<VecHeader<T, Raw>>(&src, arena.base() + self.offset(), dst, start)?;
        let hdr = dst
            .region()
            .resolve_as::<VecHeader<T, Raw>>(t.root_offset)
            .map_err(relshm_segment::heap::HeapError::from)?;
        // SAFETY: the header was just copied there by `translate`; the destination is ours
        // alone until handed over (Space::new's contract). The copy was taken while this
        // thread held the lock shared: give the copy a free lock of its own.
        unsafe { core::ptr::addr_of_mut!((*hdr.as_ptr()).lock).write(RawRwLock::new()) };
        Ok(t)
    }
}
