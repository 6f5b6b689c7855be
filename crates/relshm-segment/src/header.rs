//! The segment header at offset 0: identity, format, sizes, placement and the attach
//! table.
//!
//! # Layout (format version 1, all little-endian native, `#[repr(C)]`)
//!
//! | offset | field | kind |
//! |---|---|---|
//! | 0 | `magic: u64` = [`MAGIC`] | written last at creation (release store) |
//! | 8 | `format_version: u32` = [`FORMAT_VERSION`] | immutable |
//! | 12 | `header_size: u32` = [`Header::END`] | immutable |
//! | 16 | `layout_fingerprint: u64` = [`LAYOUT_FINGERPRINT`] | immutable |
//! | 24 | `max_size: u64` (address space every opener reserves) | immutable |
//! | 32 | `segment_id: u64` (random, non-zero) | immutable |
//! | 40 | `flags: u64` (bit 0: [`FLAG_FIXED_ADDRESS`]) | immutable |
//! | 48 | `fixed_base: u64` (0 unless fixed-address mode) | immutable |
//! | 56 | `heap_offset: u64` (0 = no heap) | immutable |
//! | 64 | `directory_offset: u64` (0 = no directory) | immutable |
//! | 72 | `attach_capacity: u32` = [`ATTACH_CAPACITY`], `reserved0: u32` = 0 | immutable |
//! | 80 | `checksum: u64`: FNV-1a over bytes 0..80 | immutable |
//! | 88 | `size: u64`: bytes usable now (grows) | atomic |
//! | 96 | `generation: u64`: bumped by every growth | atomic |
//! | 104 | `grow_lock: u64`: 0 or the grower's (pid << 32 \| start time low 32 bits) | atomic |
//! | 112 | `reserved: [u64; 2]` = 0 | |
//! | 128 | `attach: [AttachEntry; 64]`, 32 bytes each | atomic |
//! | 2176 | [`Header::END`]: first byte after the header (64-byte aligned) | |
//!
//! The immutable fields are covered by a checksum, so a bit flip anywhere in them is
//! refused on open; the atomic fields are range-checked where a value can be wrong.

use core::mem::{offset_of, size_of};
use core::ptr::NonNull;
use core::sync::atomic::AtomicU64;

use zerocopy::{FromBytes, FromZeros, Immutable, IntoBytes, KnownLayout};

use crate::error::{Result, SegmentError};

/// "RELSHMSG" as a little-endian u64.
pub const MAGIC: u64 = u64::from_le_bytes(*b"RELSHMSG");
/// The on-segment format this build reads and writes.
pub const FORMAT_VERSION: u32 = 1;
/// Number of entries in the attach table.
pub const ATTACH_CAPACITY: u32 = 64;
/// `flags` bit: every process maps the segment at `fixed_base` (uniform addressing).
pub const FLAG_FIXED_ADDRESS: u64 = 1;
const KNOWN_FLAGS: u64 = FLAG_FIXED_ADDRESS;
/// Highest user-space address on the 4-level-paging x86-64/aarch64 layouts we accept for a
/// recorded fixed base (128 TiB).
pub const MAX_USER_ADDRESS: u64 = 1 << 47;

/// One attach-table entry: who maps the segment, and where.
///
/// `owner` is claimed with a compare-and-swap from 0 to `pid << 32 | (start_time as u32)`,
/// so the claim names the process exactly (pids are reused, start times are not); the
/// full `start_time` and `base` are filled in after the claim (a lister that sees
/// `base == 0` is looking at an entry being filled).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable)]
pub struct AttachEntry {
    /// 0 if free, else `pid << 32 | (start_time & 0xffff_ffff)`.
    pub owner: u64,
    /// The attached process's start time (clock ticks after boot).
    pub start_time: u64,
    /// The address this mapping starts at in the attached process.
    pub base: u64,
    /// Zero.
    pub reserved: u64,
}

/// The segment header (see the module docs for the layout and which fields are atomic).
///
/// This type is the plain-bytes image used for validation and creation; running code
/// reaches the atomic fields through the crate-private `HeaderRef`.
#[repr(C)]
#[derive(Debug, Clone, Copy, FromBytes, IntoBytes, KnownLayout, Immutable)]
pub struct Header {
    /// [`MAGIC`].
    pub magic: u64,
    /// [`FORMAT_VERSION`].
    pub format_version: u32,
    /// [`Header::END`].
    pub header_size: u32,
    /// [`LAYOUT_FINGERPRINT`].
    pub layout_fingerprint: u64,
    /// Maximum size the segment may grow to (page multiple).
    pub max_size: u64,
    /// Random non-zero identity, for segment-relative pointers.
    pub segment_id: u64,
    /// [`FLAG_FIXED_ADDRESS`] or 0.
    pub flags: u64,
    /// The address every process maps at in fixed-address mode, else 0.
    pub fixed_base: u64,
    /// Offset of the heap control block, 0 if none.
    pub heap_offset: u64,
    /// Offset of the named-object directory, 0 if none.
    pub directory_offset: u64,
    /// [`ATTACH_CAPACITY`].
    pub attach_capacity: u32,
    /// Zero.
    pub reserved0: u32,
    /// FNV-1a over the bytes before this field.
    pub checksum: u64,
    /// Bytes in use now (page multiple, `END <= size <= max_size`).
    pub size: u64,
    /// Number of growths so far.
    pub generation: u64,
    /// Grow lock owner or 0.
    pub grow_lock: u64,
    /// Zero.
    pub reserved: [u64; 2],
    /// The attach table.
    pub attach: [AttachEntry; ATTACH_CAPACITY as usize],
}

const CHECKSUM_OFFSET: usize = offset_of!(Header, checksum);

const _: () = assert!(Header::END.is_multiple_of(64));
const _: () = assert!(Header::END <= 4096);
const _: () = assert!(offset_of!(Header, size) % 8 == 0);
const _: () = assert!(offset_of!(Header, attach) % 64 == 0);

const fn fnv1a_step(mut h: u64, bytes: &[u8]) -> u64 {
    let mut i = 0;
    while i < bytes.len() {
        h ^= bytes[i] as u64;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
        i += 1;
    }
    h
}

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;

/// A hash over the header's layout (every field's offset and size) and the format
/// version: two builds that disagree on the layout disagree on this value.
pub const LAYOUT_FINGERPRINT: u64 = {
    let words: [u64; 24] = [
        FORMAT_VERSION as u64,
        size_of::<Header>() as u64,
        align_of::<Header>() as u64,
        offset_of!(Header, magic) as u64,
        offset_of!(Header, format_version) as u64,
        offset_of!(Header, header_size) as u64,
        offset_of!(Header, layout_fingerprint) as u64,
        offset_of!(Header, max_size) as u64,
        offset_of!(Header, segment_id) as u64,
        offset_of!(Header, flags) as u64,
        offset_of!(Header, fixed_base) as u64,
        offset_of!(Header, heap_offset) as u64,
        offset_of!(Header, directory_offset) as u64,
        offset_of!(Header, attach_capacity) as u64,
        offset_of!(Header, checksum) as u64,
        offset_of!(Header, size) as u64,
        offset_of!(Header, generation) as u64,
        offset_of!(Header, grow_lock) as u64,
        offset_of!(Header, attach) as u64,
        size_of::<AttachEntry>() as u64,
        offset_of!(AttachEntry, owner) as u64,
        offset_of!(AttachEntry, start_time) as u64,
        offset_of!(AttachEntry, base) as u64,
        ATTACH_CAPACITY as u64,
    ];
    let mut h = FNV_OFFSET;
    let mut i = 0;
    while i < words.len() {
        h = fnv1a_step(h, &words[i].to_le_bytes());
        i += 1;
    }
    h
};

impl Header {
    /// First byte after the header and attach table (64-byte aligned): the heap and the
    /// directory live at or after this offset.
    pub const END: usize = size_of::<Header>();

    /// A fresh header for a segment of `size` bytes that may grow to `max_size`.
    pub(crate) fn new(size: u64, max_size: u64, fixed_base: Option<u64>, segment_id: u64) -> Self {
        let mut h = Header::new_zeroed();
        h.magic = MAGIC;
        h.format_version = FORMAT_VERSION;
        h.header_size = Self::END as u32;
        h.layout_fingerprint = LAYOUT_FINGERPRINT;
        h.max_size = max_size;
        h.segment_id = segment_id;
        if let Some(base) = fixed_base {
            h.flags = FLAG_FIXED_ADDRESS;
            h.fixed_base = base;
        }
        h.attach_capacity = ATTACH_CAPACITY;
        h.size = size;
        h.seal();
        h
    }

    /// Recomputes the checksum after the immutable fields changed (creation does this;
    /// tests and fuzzers use it to build consistent but hostile headers).
    pub fn seal(&mut self) {
        self.checksum = self.compute_checksum();
    }

    fn compute_checksum(&self) -> u64 {
        fnv1a_step(FNV_OFFSET, &self.as_bytes()[..CHECKSUM_OFFSET])
    }

    /// Whether the segment is in fixed-address mode.
    pub fn is_fixed_address(&self) -> bool {
        self.flags & FLAG_FIXED_ADDRESS != 0
    }

    /// Reads and validates a header from the first bytes of a segment whose backing
    /// object is `backing_len` bytes long, with pages of `page` bytes.
    ///
    /// Checks magic, version, layout, checksum, flags, sizes against each other and the
    /// backing length, the fixed base, and that the heap/directory offsets lie inside the
    /// segment. Any mismatch is a typed error; no input makes this panic.
    pub fn validate(bytes: &[u8], backing_len: u64, page: u64) -> Result<Header> {
        let Ok((h, _)) = Header::read_from_prefix(bytes) else {
            return Err(SegmentError::Truncated {
                file_len: bytes.len() as u64,
                needed: Self::END as u64,
            });
        };
        if backing_len < Self::END as u64 {
            return Err(SegmentError::Truncated {
                file_len: backing_len,
                needed: Self::END as u64,
            });
        }
        if h.magic != MAGIC {
            return Err(SegmentError::BadMagic { found: h.magic });
        }
        if h.format_version != FORMAT_VERSION {
            return Err(SegmentError::UnsupportedVersion {
                found: h.format_version,
                expected: FORMAT_VERSION,
            });
        }
        if h.layout_fingerprint != LAYOUT_FINGERPRINT {
            return Err(SegmentError::LayoutMismatch {
                found: h.layout_fingerprint,
                expected: LAYOUT_FINGERPRINT,
            });
        }
        let expected = h.compute_checksum();
        if h.checksum != expected {
            return Err(SegmentError::ChecksumMismatch {
                found: h.checksum,
                expected,
            });
        }
        let bad = |field, value, why| Err(SegmentError::BadField { field, value, why });
        if h.header_size as usize != Self::END {
            return bad(
                "header_size",
                h.header_size.into(),
                "differs from the layout",
            );
        }
        if h.attach_capacity != ATTACH_CAPACITY {
            return bad(
                "attach_capacity",
                h.attach_capacity.into(),
                "differs from the layout",
            );
        }
        if h.reserved0 != 0 || h.reserved != [0, 0] {
            return bad(
                "reserved",
                h.reserved0.into(),
                "reserved fields must be zero",
            );
        }
        if h.flags & !KNOWN_FLAGS != 0 {
            return bad("flags", h.flags, "unknown flag bits");
        }
        if h.segment_id == 0 {
            return bad("segment_id", 0, "must be non-zero");
        }
        if h.max_size % page != 0 || h.max_size < Self::END as u64 {
            return bad(
                "max_size",
                h.max_size,
                "not a page multiple holding the header",
            );
        }
        if h.max_size > MAX_USER_ADDRESS {
            return bad("max_size", h.max_size, "larger than any address space");
        }
        if h.size % page != 0 || h.size < Self::END as u64 || h.size > h.max_size {
            return bad(
                "size",
                h.size,
                "not a page multiple between the header end and max_size",
            );
        }
        if backing_len < h.size {
            return Err(SegmentError::Truncated {
                file_len: backing_len,
                needed: h.size,
            });
        }
        if h.is_fixed_address() {
            let end = h.fixed_base.checked_add(h.max_size);
            if h.fixed_base == 0
                || h.fixed_base % page != 0
                || end.is_none_or(|e| e > MAX_USER_ADDRESS)
            {
                return bad(
                    "fixed_base",
                    h.fixed_base,
                    "not a page-aligned user-space range",
                );
            }
        } else if h.fixed_base != 0 {
            return bad(
                "fixed_base",
                h.fixed_base,
                "set without the fixed-address flag",
            );
        }
        for (field, off) in [
            ("heap_offset", h.heap_offset),
            ("directory_offset", h.directory_offset),
        ] {
            if off != 0 && (off < Self::END as u64 || off >= h.max_size || off % 8 != 0) {
                return bad(
                    field,
                    off,
                    "must be 0 or an 8-aligned offset after the header",
                );
            }
        }
        Ok(h)
    }
}

/// The header of a mapped segment, for atomic access to its mutable fields.
///
/// Only the crate creates these, from the base of a mapping at least [`Header::END`]
/// bytes long that stays mapped while the `HeaderRef` is used.
#[derive(Debug, Clone, Copy)]
pub(crate) struct HeaderRef(NonNull<Header>);

macro_rules! atomic_field {
    ($name:ident) => {
        pub(crate) fn $name(&self) -> &AtomicU64 {
            // SAFETY: the header is mapped (HeaderRef invariant), the field is 8-aligned
            // (offsets asserted above, base page-aligned) and only ever accessed atomically.
            unsafe { AtomicU64::from_ptr(&raw mut (*self.0.as_ptr()).$name) }
        }
    };
}

impl HeaderRef {
    /// # Safety
    /// `base` is the page-aligned start of a mapping of at least [`Header::END`] bytes that
    /// outlives every use of the returned value.
    pub(crate) unsafe fn new(base: NonNull<u8>) -> Self {
        Self(base.cast())
    }

    atomic_field!(magic);
    atomic_field!(size);
    atomic_field!(generation);
    atomic_field!(grow_lock);

    /// The three atomic words of attach entry `i` (`i < ATTACH_CAPACITY`): owner,
    /// start time, base.
    pub(crate) fn entry(&self, i: usize) -> [&AtomicU64; 3] {
        assert!(i < ATTACH_CAPACITY as usize);
        // SAFETY: i is in bounds; the entry is inside the mapped header, 8-aligned, and its
        // words are only accessed atomically.
        unsafe {
            let e = &raw mut (*self.0.as_ptr()).attach[i];
            [
                AtomicU64::from_ptr(&raw mut (*e).owner),
                AtomicU64::from_ptr(&raw mut (*e).start_time),
                AtomicU64::from_ptr(&raw mut (*e).base),
            ]
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PAGE: u64 = 4096;

    #[test]
    fn layout_is_stable() {
        assert_eq!(Header::END, 2176);
        assert_eq!(offset_of!(Header, checksum), 80);
        assert_eq!(offset_of!(Header, size), 88);
        assert_eq!(offset_of!(Header, attach), 128);
    }

    #[test]
    fn fresh_header_validates() {
        let h = Header::new(8 * PAGE, 64 * PAGE, None, 7);
        let v = Header::validate(h.as_bytes(), 8 * PAGE, PAGE).unwrap();
        assert_eq!(v.size, 8 * PAGE);
        assert_eq!(v.max_size, 64 * PAGE);
    }

    #[test]
    fn each_check_fires() {
        let good = Header::new(8 * PAGE, 64 * PAGE, Some(0x7000_0000_0000), 7);
        let check = |f: &dyn Fn(&mut Header), reseal: bool| {
            let mut h = good;
            f(&mut h);
            if reseal {
                h.seal();
            }
            Header::validate(h.as_bytes(), 8 * PAGE, PAGE).unwrap_err()
        };
        assert!(matches!(
            check(&|h| h.magic = 1, false),
            SegmentError::BadMagic { .. }
        ));
        assert!(matches!(
            check(&|h| h.format_version = 2, false),
            SegmentError::UnsupportedVersion { .. }
        ));
        assert!(matches!(
            check(&|h| h.layout_fingerprint ^= 1, false),
            SegmentError::LayoutMismatch { .. }
        ));
        assert!(matches!(
            check(&|h| h.max_size += PAGE, false),
            SegmentError::ChecksumMismatch { .. }
        ));
        assert!(matches!(
            check(&|h| h.flags = 2, true),
            SegmentError::BadField { field: "flags", .. }
        ));
        assert!(matches!(
            check(&|h| h.segment_id = 0, true),
            SegmentError::BadField { .. }
        ));
        assert!(matches!(
            check(&|h| h.size = 3, false),
            SegmentError::BadField { field: "size", .. }
        ));
        assert!(matches!(
            check(&|h| h.size = 128 * PAGE, false),
            SegmentError::BadField { field: "size", .. }
        ));
        assert!(matches!(
            check(&|h| h.size = 16 * PAGE, false),
            SegmentError::Truncated { .. }
        ));
        assert!(matches!(
            check(&|h| h.fixed_base = 12, true),
            SegmentError::BadField { .. }
        ));
        assert!(matches!(
            check(&|h| h.heap_offset = 8, true),
            SegmentError::BadField { .. }
        ));
        assert!(Header::validate(&good.as_bytes()[..100], 8 * PAGE, PAGE).is_err());
    }
}
