//! Copy-time translation of a whole [`BytesMap`] of [`Raw`] links for another process.

use super::BytesMap;
use super::layout::BytesMapHeader;
use crate::arena::Result;
use relshm_ptr::Raw;
use relshm_ptr::translate::{Space, Translated, translate};
use relshm_sync::RawRwLock;

impl BytesMap<Raw> {
    /// Copies the map (header, table, every node and its bytes) into `dst` from offset
    /// `start`, with every link rewritten for a process that maps `dst` at
    /// `dst.written_base()`. The receiver opens it with
    /// [`Arena::translated`](crate::arena::Arena::translated) and [`BytesMap::open`] at
    /// `root_offset`; the copy is read-only. Every lock is held shared while copying.
    pub fn translate_to(&self, dst: &Space, start: u64) -> Result<Translated> {
        let _guard = self.read()?;
        let arena = self.arena();
        // SAFETY: the arena's region stays mapped while it lives.
        let src = unsafe { Space::new(arena.region(), arena.base()) };
        let t = translate::<BytesMapHeader<Raw>>(&src, arena.base() + self.offset(), dst, start)?;
        let hdr = dst
            .region()
            .resolve_as::<BytesMapHeader<Raw>>(t.root_offset)
            .map_err(relshm_segment::heap::HeapError::from)?;
        // SAFETY: the header was just copied there by `translate`; the destination is ours
        // alone until handed over (Space::new's contract). The copy was taken with every
        // lock held shared by this thread: give the copy free locks of its own.
        unsafe {
            let h = hdr.as_ptr();
            core::ptr::addr_of_mut!((*h).resize).write(RawRwLock::new());
            for s in 0..crate::map::STRIPES {
                core::ptr::addr_of_mut!((*h).stripes[s].lock).write(RawRwLock::new());
            }
        }
        Ok(t)
    }
}
