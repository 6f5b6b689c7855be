//! Copy-time translation of a whole [`Map`] of [`Raw`] links for another process.

use super::{MapHeader, MapKey, MapView, fresh_locks};
use crate::arena::Result;
use bytemuck::Pod;
use relshm_ptr::Raw;
use relshm_ptr::translate::{Space, Translated};

impl<K: MapKey, V: Pod> MapView<'_, K, V, Raw> {
    /// Copies the map (header, table, chunks, nodes) into `dst` from offset `start`, with
    /// every link rewritten for a process that maps `dst` at `dst.written_base()`. The
    /// receiver opens it with [`Arena::translated`](crate::arena::Arena::translated) and
    /// [`Map::open`] at `root_offset`. The copy is read-only (no allocator). The map is held
    /// exclusively while copying.
    pub fn translate_to(&self, dst: &Space, start: u64) -> Result<Translated> {
        let _g = self.global_exclusive()?;
        self.arena
            .translate_root(self.off, dst, start, |h: &mut MapHeader<K, V, Raw>| {
                fresh_locks(&mut h.resize, &mut h.stripes)
            })
    }
}
