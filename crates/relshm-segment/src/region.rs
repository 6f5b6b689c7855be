//! Checked resolution of offsets inside a mapped segment.
//!
//! A [`Region`] is the part of a segment this process has mapped: a base address and a
//! length. Everything stored in a segment refers to other parts of it by *offset* from the
//! segment's start, and every offset read from the segment is untrusted: [`Region::resolve`]
//! checks bounds, alignment and that the whole target fits before it hands out a pointer.

use core::ptr::NonNull;

/// Why an offset could not be resolved inside a [`Region`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RegionError {
    /// The target `[offset, offset + size)` does not lie inside the mapped bytes.
    #[error(
        "offset {offset:#x} with size {size} lies outside the {len}-byte mapping: the offset \
         given is wrong, the segment is corrupted, or it grew and this view has not been \
         refreshed"
    )]
    OutOfBounds {
        /// The offset that was resolved.
        offset: u64,
        /// The size of the object at that offset.
        size: u64,
        /// The number of bytes mapped.
        len: u64,
    },
    /// The target address is not aligned for the type read there.
    #[error(
        "offset {offset:#x} is misaligned: not a multiple of {align} bytes, so no such object \
         starts there (the offset given is wrong, or the segment is corrupted)"
    )]
    Misaligned {
        /// The offset that was resolved.
        offset: u64,
        /// The required alignment.
        align: u64,
    },
}

/// The mapped bytes of a segment in this process: `[base, base + len)`.
///
/// `Region` is `Copy` and does not own the mapping: whoever creates one promises that the
/// bytes stay mapped (and writable, unless stated otherwise) for as long as the region or
/// anything resolved through it is used. Segments hand out regions tied to their lifetime.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Region {
    base: NonNull<u8>,
    len: u64,
}

// SAFETY: a Region is an address range; the memory it names is shared memory that every
// thread may access (synchronisation of what is stored there is up to the stored types).
unsafe impl Send for Region {}
// SAFETY: as for Send: Region holds no thread-affine state.
unsafe impl Sync for Region {}

impl Region {
    /// Describes the mapped range `[base, base + len)`.
    ///
    /// # Safety
    /// `base..base + len` must be mapped in this process for as long as this region (or any
    /// reference resolved through it) is used, and `base` must be aligned to at least 4096
    /// bytes (a page), which every mapping is.
    pub unsafe fn new(base: NonNull<u8>, len: u64) -> Self {
        Self { base, len }
    }

    /// The address the region starts at in this process.
    pub fn base(&self) -> NonNull<u8> {
        self.base
    }

    /// The number of bytes mapped.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether no bytes are mapped.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Checks that `size` bytes at `offset` lie inside the region and that `offset` is a
    /// multiple of `align` (a power of two), and returns the address.
    ///
    /// ```
    /// # use relshm_segment::{Region, RegionError};
    /// # use core::ptr::NonNull;
    /// let mut page = vec![0u64; 512];
    /// // SAFETY: the vector outlives the region and is 8-aligned; the example only resolves.
    /// let region = unsafe { Region::new(NonNull::new(page.as_mut_ptr().cast()).unwrap(), 4096) };
    /// assert!(region.resolve(4088, 8, 8).is_ok());
    /// assert!(matches!(region.resolve(4090, 8, 1), Err(RegionError::OutOfBounds { .. })));
    /// assert!(matches!(region.resolve(4, 8, 8), Err(RegionError::Misaligned { .. })));
    /// ```
    pub fn resolve(&self, offset: u64, size: u64, align: u64) -> Result<NonNull<u8>, RegionError> {
        debug_assert!(align.is_power_of_two());
        let end = offset.checked_add(size);
        if end.is_none_or(|end| end > self.len) {
            return Err(RegionError::OutOfBounds {
                offset,
                size,
                len: self.len,
            });
        }
        if offset & (align - 1) != 0 {
            return Err(RegionError::Misaligned { offset, align });
        }
        // SAFETY: offset + size <= len, so offset is within the mapped allocation and fits
        // in usize (the mapping itself fits in the address space).
        Ok(unsafe { self.base.add(offset as usize) })
    }

    /// Resolves `offset` to a `T` that lies wholly inside the region, aligned for `T`.
    ///
    /// Returns a pointer, not a reference: whether the bytes there are a valid `T`, and who
    /// else may be writing them, is for the caller to establish.
    pub fn resolve_as<T>(&self, offset: u64) -> Result<NonNull<T>, RegionError> {
        self.resolve(offset, size_of::<T>() as u64, align_of::<T>() as u64)
            .map(NonNull::cast)
    }

    /// The offset of `ptr` from the region's base, if `ptr` points inside the region.
    pub fn offset_of(&self, ptr: *const u8) -> Option<u64> {
        let off = (ptr as usize).checked_sub(self.base.as_ptr() as usize)? as u64;
        (off < self.len).then_some(off)
    }
}
