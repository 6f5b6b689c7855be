//! Options for creating and opening segments.

use std::time::Duration;

use crate::mapping::Placement;

/// How to create a segment (also used by the open-or-create calls).
///
/// ```
/// # use relshm_segment::{CreateOptions, Placement};
/// let opts = CreateOptions::new(1 << 20).max_size(64 << 20).mode(0o640);
/// assert_eq!(opts.size, 1 << 20);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreateOptions {
    /// Initial size in bytes (rounded up to whole pages, at least one page).
    pub size: u64,
    /// Size the segment may grow to online; `None` means it cannot grow. Every process
    /// that maps the segment reserves this much address space (but no memory).
    pub max_size: Option<u64>,
    /// Permission bits of the shared-memory object or file (default `0o600`; applied
    /// exactly, not filtered by the umask).
    pub mode: u32,
    /// Where the creator maps it.
    pub placement: Placement,
    /// Fixed-address (uniform addressing) mode: every process maps the segment at this
    /// page-aligned address, or fails with [`crate::SegmentError::AddressTaken`]. The base
    /// is recorded in the header, so openers need not be told.
    pub fixed_address: Option<usize>,
    /// Also accept an existing segment (in the open-or-create calls) owned by this uid. By default opening a named or
    /// file-backed segment by name or path fails with
    /// [`crate::SegmentError::ForeignOwner`] unless the object belongs to this process's
    /// effective uid, so that another user cannot squat a name and share (read, write,
    /// corrupt) memory with its creator; root is no exception. Set this to the uid of the
    /// user you expect to have created it (a service account, say).
    pub allow_owner: Option<u32>,
}

impl CreateOptions {
    /// A segment of `size` bytes, mode 0600, placed anywhere, not growable.
    pub fn new(size: u64) -> Self {
        Self {
            size,
            max_size: None,
            mode: 0o600,
            placement: Placement::Anywhere,
            fixed_address: None,
            allow_owner: None,
        }
    }

    /// Sets the maximum size for online growth.
    pub fn max_size(mut self, max_size: u64) -> Self {
        self.max_size = Some(max_size);
        self
    }

    /// Sets the permission bits.
    pub fn mode(mut self, mode: u32) -> Self {
        self.mode = mode;
        self
    }

    /// Sets where the creator maps the segment.
    pub fn placement(mut self, placement: Placement) -> Self {
        self.placement = placement;
        self
    }

    /// Turns on fixed-address mode at `addr`.
    pub fn fixed_address(mut self, addr: usize) -> Self {
        self.fixed_address = Some(addr);
        self
    }

    /// Accepts an existing segment owned by `uid` in the open-or-create calls (see
    /// [`CreateOptions::allow_owner`](#structfield.allow_owner)).
    pub fn allow_owner(mut self, uid: u32) -> Self {
        self.allow_owner = Some(uid);
        self
    }

    pub(crate) fn as_open(&self) -> OpenOptions {
        OpenOptions {
            placement: self.fixed_address.map_or(self.placement, Placement::At),
            expect_mode: Some(self.mode),
            min_size: Some(self.size),
            init_timeout: OpenOptions::DEFAULT_INIT_TIMEOUT,
            allow_owner: self.allow_owner,
        }
    }
}

/// How to open an existing segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenOptions {
    /// Where to map it (ignored, apart from a consistency check, for segments in
    /// fixed-address mode, which always map at their recorded base).
    pub placement: Placement,
    /// If set, opening fails with [`crate::SegmentError::ModeMismatch`] unless the object
    /// has exactly these permission bits.
    pub expect_mode: Option<u32>,
    /// If set, opening fails with [`crate::SegmentError::SizeMismatch`] if the segment is
    /// smaller.
    pub min_size: Option<u64>,
    /// How long to wait for a creator that has made the object but not yet written its
    /// header, before failing with [`crate::SegmentError::Uninitialised`].
    pub init_timeout: Duration,
    /// Also accept an existing segment owned by this uid. By default opening a named or
    /// file-backed segment by name or path fails with
    /// [`crate::SegmentError::ForeignOwner`] unless the object belongs to this process's
    /// effective uid, so that another user cannot squat a name and share (read, write,
    /// corrupt) memory with its creator; root is no exception. Set this to the uid of the
    /// user you expect to have created it (a service account, say).
    pub allow_owner: Option<u32>,
}

impl OpenOptions {
    /// The default for [`OpenOptions::init_timeout`].
    pub const DEFAULT_INIT_TIMEOUT: Duration = Duration::from_secs(2);

    /// Map anywhere, check nothing beyond the header.
    pub fn new() -> Self {
        Self {
            placement: Placement::Anywhere,
            expect_mode: None,
            min_size: None,
            init_timeout: Self::DEFAULT_INIT_TIMEOUT,
            allow_owner: None,
        }
    }

    /// Sets where to map the segment.
    pub fn placement(mut self, placement: Placement) -> Self {
        self.placement = placement;
        self
    }

    /// Requires these permission bits.
    pub fn expect_mode(mut self, mode: u32) -> Self {
        self.expect_mode = Some(mode);
        self
    }

    /// Requires at least this size.
    pub fn min_size(mut self, size: u64) -> Self {
        self.min_size = Some(size);
        self
    }

    /// Accepts a segment owned by `uid` as well as one owned by this process's effective
    /// uid (see [`OpenOptions::allow_owner`](#structfield.allow_owner)).
    ///
    /// ```
    /// # use relshm_segment::OpenOptions;
    /// let opts = OpenOptions::new().allow_owner(65534);
    /// assert_eq!(opts.allow_owner, Some(65534));
    /// ```
    pub fn allow_owner(mut self, uid: u32) -> Self {
        self.allow_owner = Some(uid);
        self
    }

    /// Sets how long to wait for an unfinished creator.
    pub fn init_timeout(mut self, timeout: Duration) -> Self {
        self.init_timeout = timeout;
        self
    }
}

impl Default for OpenOptions {
    fn default() -> Self {
        Self::new()
    }
}
