//! Copy-time translation of a whole [`Map`] of [`Raw`] links for another process.

use super::layout::STRIPES;
use super::{MapHeader, MapKey, MapView};
use crate::arena::Result;
use bytemuck::Pod;
use relshm_ptr::Raw;
use relshm_ptr::translate::{Space, Translated, translate};
use relshm_segment::heap::HeapError;
use relshm_sync::RawRwLock;

impl<K: MapKey, V: Pod> MapView<'_, K, V, Raw> {
    /// Copies the map (header, table, chunks, nodes) into `dst` from offset `start`, with
    /// every link rewritten for a process that maps `dst` at `dst.written_base()`. The
    /// receiver opens it with [`Arena::translated`](crate::arena::Arena::translated) and
    /// [`Map::open`] at `root_offset`. The copy is read-only (no allocator). The map is held
    /// exclusively while copying.
    pub fn translate_to(&self, dst: &Space, start: u64) -> Result<Translated> {
        let _g = self.global_exclusive()?;
        let arena = self.arena;
        // SAFETY: the arena's region stays mapped while it lives (it keeps the segment).
        let src = unsafe { Space::new(arena.region(), arena.base()) };
        let root = arena.base() + self.off;
        let t = translate::<MapHeader<K, V, Raw>>(&src, root, dst, start)?;
        let hdr = dst
            .region()
            .resolve_as::<MapHeader<K, V, Raw>>(t.root_offset)
            .map_err(HeapError::from)?
            .as_ptr();
        // SAFETY: the header was just copied there; the destination is ours alone until
        // handed over (Space::new's contract). The copy was taken with the map held: give
        // it free locks of its own.
        unsafe {
            core::ptr::addr_of_mut!((*hdr).resize).write(RawRwLock::new());
            for s in 0..STRIPES {
                core::ptr::addr_of_mut!((*hdr).stripes[s].lock).write(RawRwLock::new());
            }
        }
        Ok(t)
    }
}
