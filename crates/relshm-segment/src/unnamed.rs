//! Unnamed segments: an anonymous memory file (`memfd_create`), shared with child
//! processes through the inherited descriptor.
//!
//! A memfd rather than a `MAP_SHARED | MAP_ANONYMOUS` mapping, because an anonymous
//! mapping can only be shared at the same address (the child inherits the mapping itself),
//! cannot grow, and cannot be mapped a second time; a memfd can, like any other object: a
//! forked child calls [`Segment::reopen`] to map it at an address of its own, and the
//! descriptor can also be sent to unrelated processes over a Unix socket.

use rustix::fs::MemfdFlags;

use crate::error::{Result, SegmentError};
use crate::options::CreateOptions;
use crate::segment::{Segment, SegmentKind};

impl Segment {
    /// Creates an unnamed segment. Children forked afterwards inherit both the mapping
    /// (at the parent's address) and the descriptor (to map it again elsewhere with
    /// [`Segment::reopen`]). The memory is freed when the last mapping and descriptor go.
    ///
    /// `opts.mode` is applied to the memfd too, which matters only if it is reopened
    /// through `/proc/<pid>/fd`.
    pub fn create_unnamed(opts: &CreateOptions) -> Result<Self> {
        let fd = rustix::fs::memfd_create("relshm-segment", MemfdFlags::CLOEXEC)
            .map_err(SegmentError::sys("creating unnamed segment (memfd_create)"))?;
        Self::create_in(fd, opts, SegmentKind::Unnamed)
    }
}
