//! Copy-time translation of a whole [`List`] of [`Raw`] links for another process.

use super::List;
use super::layout::ListHeader;
use crate::arena::Result;
use bytemuck::Pod;
use relshm_ptr::Raw;
use relshm_ptr::translate::{Space, Translated, translate};
use relshm_sync::RawMutex;

impl<T: Pod> List<T, Raw> {
    /// Copies the list (header and nodes) into `dst` from offset `start`, with every link
    /// rewritten for a process that maps `dst` at `dst.written_base()`. The receiver opens
    /// it with [`Arena::translated`](crate::arena::Arena::translated) and
    /// [`List::open`] at `root_offset`, and reads it with plain absolute pointers. The copy
    /// is read-only (it has no allocator). The list's lock is held while copying.
    pub fn translate_to(&self, dst: &Space, start: u64) -> Result<Translated> {
        let _guard = self.lock()?;
        let arena = self.arena();
        // SAFETY: the arena's region stays mapped while it lives (it borrows the segment).
        let src = unsafe { Space::new(arena.region(), arena.base()) };
        let t = translate::<ListHeader<T, Raw>>(&src, arena.base() + self.offset(), dst, start)?;
        let hdr = dst
            .region()
            .resolve_as::<ListHeader<T, Raw>>(t.root_offset)
            .map_err(relshm_segment::heap::HeapError::from)?;
        // SAFETY: the header was just copied there by `translate`; the destination is ours
        // alone until handed over (Space::new's contract). The copy was taken while this
        // thread held the lock: give the copy a free lock of its own.
        unsafe { core::ptr::addr_of_mut!((*hdr.as_ptr()).lock).write(RawMutex::new()) };
        Ok(t)
    }
}
