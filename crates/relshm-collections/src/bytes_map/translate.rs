//! Copy-time translation of a whole [`BytesMap`] of [`Raw`] links for another process.

use super::BytesMap;
use super::layout::BytesMapHeader;
use crate::arena::Result;
use crate::map::fresh_locks;
use relshm_ptr::Raw;
use relshm_ptr::translate::{Space, Translated};

impl BytesMap<Raw> {
    /// Copies the map (header, table, every node and its bytes) into `dst` from offset
    /// `start`, with every link rewritten for a process that maps `dst` at
    /// `dst.written_base()`. The receiver opens it with
    /// [`Arena::translated`](crate::arena::Arena::translated) and [`BytesMap::open`] at
    /// `root_offset`; the copy is read-only. Every lock is held shared while copying.
    pub fn translate_to(&self, dst: &Space, start: u64) -> Result<Translated> {
        let _guard = self.read()?;
        self.arena()
            .translate_root(self.offset(), dst, start, |h: &mut BytesMapHeader<Raw>| {
                fresh_locks(&mut h.resize, &mut h.stripes)
            })
    }
}
