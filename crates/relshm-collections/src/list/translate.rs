//! Copy-time translation of a whole [`List`] of [`Raw`] links for another process.

use super::List;
use super::layout::ListHeader;
use crate::arena::Result;
use bytemuck::Pod;
use relshm_ptr::Raw;
use relshm_ptr::translate::{Space, Translated};
use relshm_sync::RawMutex;

impl<T: Pod> List<T, Raw> {
    /// Copies the list (header and nodes) into `dst` from offset `start`, with every link
    /// rewritten for a process that maps `dst` at `dst.written_base()`. The receiver opens
    /// it with [`Arena::translated`](crate::arena::Arena::translated) and
    /// [`List::open`] at `root_offset`, and reads it with plain absolute pointers. The copy
    /// is read-only (it has no allocator). The list's lock is held while copying.
    pub fn translate_to(&self, dst: &Space, start: u64) -> Result<Translated> {
        let _guard = self.lock()?;
        self.arena()
            .translate_root(self.offset(), dst, start, |h: &mut ListHeader<T, Raw>| {
                h.lock = RawMutex::new()
            })
    }
}
