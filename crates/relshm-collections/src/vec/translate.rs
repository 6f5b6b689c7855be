//! Copy-time translation of a whole [`Vec`] of [`Raw`] links for another process.

use super::Vec;
use super::layout::VecHeader;
use crate::arena::Result;
use bytemuck::Pod;
use relshm_ptr::Raw;
use relshm_ptr::translate::{Space, Translated};
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
        self.arena()
            .translate_root(self.offset(), dst, start, |h: &mut VecHeader<T, Raw>| {
                h.lock = RawRwLock::new()
            })
    }
}
