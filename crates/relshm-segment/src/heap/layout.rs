//! The bytes the allocator keeps in the segment: the control block, block headers and the
//! bin geometry. Everything here is fixed-width and `#[repr(C)]`; see the module docs of
//! [`crate::heap`] for the picture.

use core::sync::atomic::AtomicU64;

/// `"RSHMHEAP"` in little-endian: the first word of a [`HeapControl`].
pub const HEAP_MAGIC: u64 = u64::from_le_bytes(*b"RSHMHEAP");
/// Layout version of the control block and block headers; bump on any change.
pub const HEAP_VERSION: u64 = 3;

/// Bytes of a block header (size word + previous block's size). Payloads start right after
/// it, so every payload is 16-aligned.
pub const HEADER: u64 = 16;
/// Block sizes (header included) are multiples of this.
pub const GRAIN: u64 = 16;
/// Smallest block: a header plus the two free-list links a free block stores.
pub const MIN_BLOCK: u64 = 32;
/// Blocks smaller than this live in exact-size bins (one size per bin).
pub const SMALL_LIMIT: u64 = 1024;
/// Number of exact-size bins (index = size / 16; indices 0 and 1 stay empty).
pub const SMALL_BINS: usize = 64;
/// Sub-bins per power of two in the large bins.
pub const SUB_BINS: usize = 8;
const SUB_SHIFT: u32 = 3;
/// Number of large bins (first level = floor(log2(size)) in 10..=47, second level 0..8).
pub const LARGE_BINS: usize = 64 * SUB_BINS;
/// Block sizes are kept below 2^48: the top 16 bits of a size word hold its check tag.
pub const MAX_BLOCK: u64 = 1 << 48;
/// Largest alignment `alloc` accepts.
pub const MAX_ALIGN: u64 = 4096;

/// Flag in a size word: the block is allocated.
const USED: u64 = 1;
/// Flag in a size word (with [`USED`]): the first 16 payload bytes are the block's owner
/// record (see [`crate::heap`], "Owned allocations"). `free` drops it in its publishing
/// store, so a freed or reused block never carries a stale owner.
const OWNED: u64 = 2;
/// Flag in a size word (with [`USED`]): the block belongs to a per-process cache (see
/// [`crate::heap`], "Per-process caches"), not to a caller; the payload's second word
/// names the owning process. Only the cache flips it, in a single store.
const CACHED: u64 = 4;
const SIZE_MASK: u64 = (1 << 48) - 1;

/// The allocator's control block, placed in the segment at the heap offset (64-aligned).
///
/// Layout (little-endian words, offsets in bytes):
///
/// | offset | field | meaning |
/// |---|---|---|
/// | 0 | `magic` | [`HEAP_MAGIC`] |
/// | 8 | `layout` | `HEAP_VERSION << 32 \| size_of::<HeapControl>()` |
/// | 16 | `arena_start` | offset of the first block |
/// | 24 | `arena_end` | end of the arena (the end sentinel is the 16 bytes before it) |
/// | 32..64 | `used_bytes`, `used_blocks`, `free_bytes`, `free_blocks` | counters (derived) |
/// | 64 | `repairs` | how often a dead holder's work was repaired |
/// | 72 | `small_map` | bit i set iff small bin i is non-empty (derived) |
/// | 80 | `large_map` | bit f set iff some large bin of first level f is non-empty (derived) |
/// | 88 | `directory` | offset of the named-object directory's table, 0 = none yet |
/// | 96 | `needs_repair` | 1 from a dead holder's detection until a rebuild succeeds |
/// | 104 | `caches` | offset of the per-process cache table (see [`crate::heap`], "Per-process caches"), 0 = none yet |
/// | 112..128 | reserved | zero |
/// | 128..192 | `lock` | the robust [`relshm_sync::RawMutex`], padded to 64 bytes |
/// | 192 | `large_sub_maps[64]` | per first level, bit s set iff large bin (f, s) is non-empty |
/// | 704 | `small_heads[64]` | first free block of each small bin, 0 = empty |
/// | 1216 | `large_heads[512]` | first free block of each large bin, 0 = empty |
///
/// Only `magic`, `layout`, `arena_start`, `directory`, `needs_repair`, `caches`, the lock and the block chain in the arena are
/// authoritative; everything marked derived is rebuilt from the chain after a holder died.
/// Every field is an atomic, so any bit pattern is a valid `HeapControl`.
#[repr(C, align(64))]
pub struct HeapControl {
    pub(crate) magic: AtomicU64,
    pub(crate) layout: AtomicU64,
    pub(crate) arena_start: AtomicU64,
    pub(crate) arena_end: AtomicU64,
    pub(crate) used_bytes: AtomicU64,
    pub(crate) used_blocks: AtomicU64,
    pub(crate) free_bytes: AtomicU64,
    pub(crate) free_blocks: AtomicU64,
    pub(crate) repairs: AtomicU64,
    pub(crate) small_map: AtomicU64,
    pub(crate) large_map: AtomicU64,
    pub(crate) directory: AtomicU64,
    pub(crate) needs_repair: AtomicU64,
    pub(crate) caches: AtomicU64,
    pub(crate) reserved: [AtomicU64; 2],
    pub(crate) lock: relshm_sync::RawMutex,
    lock_pad: [u8; 64 - size_of::<relshm_sync::RawMutex>()],
    pub(crate) large_sub_maps: [AtomicU64; 64],
    pub(crate) small_heads: [AtomicU64; SMALL_BINS],
    pub(crate) large_heads: [AtomicU64; LARGE_BINS],
}

/// Bytes a [`HeapControl`] takes in the segment (the arena must not overlap them).
pub const HEAP_CONTROL_SIZE: u64 = size_of::<HeapControl>() as u64;

const _: () = {
    assert!(HEAP_CONTROL_SIZE == 192 + 512 + 512 + 4096);
    assert!(core::mem::offset_of!(HeapControl, lock) == 128);
    assert!(align_of::<relshm_sync::RawMutex>() <= 64);
};

/// The layout word a valid control block carries.
pub const fn layout_word() -> u64 {
    (HEAP_VERSION << 32) | HEAP_CONTROL_SIZE
}

/// A 16-bit check tag over a block's offset and size word: a header copied elsewhere,
/// overwritten by a stray write or pointed at by a bad offset fails the check.
#[inline]
fn tag(offset: u64, size_word: u64) -> u64 {
    (offset ^ size_word.rotate_left(23) ^ 0x5bd1_e995_c2b2_ae35).wrapping_mul(0x9e37_79b9_7f4a_7c15)
        >> 48
}

/// Encodes a block's size word: `size | used`, tagged in the top 16 bits.
pub fn encode(offset: u64, size: u64, used: bool) -> u64 {
    encode_flags(offset, size, if used { USED } else { 0 })
}

/// Encodes the size word of an allocated block that carries an owner record.
pub fn encode_owned(offset: u64, size: u64) -> u64 {
    encode_flags(offset, size, USED | OWNED)
}

/// Encodes the size word of an allocated block held by a per-process cache.
pub fn encode_cached(offset: u64, size: u64) -> u64 {
    encode_flags(offset, size, USED | CACHED)
}

/// What a size word says a block is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// On the free lists.
    Free,
    /// Handed to a caller (or the end sentinel, size 0).
    Used,
    /// Handed to a caller, with an owner record.
    Owned,
    /// Held by a per-process cache (or cache bookkeeping).
    Cached,
}

/// Decodes a size word read at `offset` into `(size, kind)`, or `None` if the tag or
/// flags are wrong.
pub fn decode_kind(offset: u64, head: u64) -> Option<(u64, Kind)> {
    let word = head & SIZE_MASK;
    if head >> 48 != tag(offset, word) {
        return None;
    }
    let flags = word % GRAIN;
    let size = word - flags;
    match flags {
        0 => Some((size, Kind::Free)),
        USED => Some((size, Kind::Used)),
        f if f == USED | OWNED && size != 0 => Some((size, Kind::Owned)),
        f if f == USED | CACHED && size != 0 => Some((size, Kind::Cached)),
        _ => None,
    }
}

fn encode_flags(offset: u64, size: u64, flags: u64) -> u64 {
    debug_assert!(size.is_multiple_of(GRAIN) && size < MAX_BLOCK);
    let word = size | flags;
    word | (tag(offset, word) << 48)
}

/// Decodes a size word read at `offset`: `(size, used)`, or `None` if the tag or flags are
/// wrong. Size 0 with `used` marks the end sentinel.
pub fn decode(offset: u64, head: u64) -> Option<(u64, bool)> {
    decode_owned(offset, head).map(|(size, used, _)| (size, used))
}

/// Like [`decode`], and whether the block carries an owner record (only an allocated,
/// non-sentinel block can).
pub fn decode_owned(offset: u64, head: u64) -> Option<(u64, bool, bool)> {
    decode_kind(offset, head).map(|(size, kind)| (size, kind != Kind::Free, kind == Kind::Owned))
}

/// Where a free block of `size` bytes is binned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bin {
    /// Exact-size bin `size / 16`.
    Small(usize),
    /// Large bin: first level `floor(log2(size))`, second level the next three bits.
    Large(usize, usize),
}

impl Bin {
    /// The bin a block of `size` bytes (a multiple of 16, at least [`MIN_BLOCK`]) lives in.
    pub fn of(size: u64) -> Bin {
        if size < SMALL_LIMIT {
            Bin::Small((size / GRAIN) as usize)
        } else {
            let fl = 63 - size.leading_zeros();
            let sl = (size >> (fl - SUB_SHIFT)) as usize & (SUB_BINS - 1);
            Bin::Large(fl as usize, sl)
        }
    }

    /// Index into `large_heads` of a large bin.
    pub fn large_index(fl: usize, sl: usize) -> usize {
        fl * SUB_BINS + sl
    }
}

/// Rounds a request up to the block size that serves it, or `None` if it cannot exist.
pub fn block_size_for(size: u64) -> Option<u64> {
    let total = size.checked_add(HEADER + GRAIN - 1)? & !(GRAIN - 1);
    let total = total.max(MIN_BLOCK);
    (total < MAX_BLOCK).then_some(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encode_roundtrip_and_tag_catches_moves() {
        for (off, size, used) in [(64, 32, true), (4096, 1 << 40, false), (16, 48, false)] {
            let h = encode(off, size, used);
            assert_eq!(decode(off, h), Some((size, used)));
            assert_eq!(decode(off + 16, h), None);
            assert_eq!(decode(off, h ^ 0x10), None);
        }
        let h = encode_owned(64, 48);
        assert_eq!(decode_owned(64, h), Some((48, true, true)));
        assert_eq!(decode(64, h), Some((48, true)));
        assert_eq!(
            decode_owned(64, encode(64, 48, true)),
            Some((48, true, false))
        );
        // A free block or the end marker never carries an owner.
        assert_eq!(decode(64, encode_flags(64, 48, OWNED)), None);
        assert_eq!(decode(64, encode_owned(64, 0)), None);
        // A cached block counts as allocated, never as owned; only an allocated,
        // non-sentinel block can be cached, and never owned at once.
        assert_eq!(
            decode_kind(64, encode_cached(64, 48)),
            Some((48, Kind::Cached))
        );
        assert_eq!(
            decode_owned(64, encode_cached(64, 48)),
            Some((48, true, false))
        );
        assert_eq!(decode(64, encode_flags(64, 48, CACHED)), None);
        assert_eq!(decode(64, encode_cached(64, 0)), None);
        assert_eq!(
            decode(64, encode_flags(64, 48, USED | OWNED | CACHED)),
            None
        );
    }

    #[test]
    fn bins_are_ordered_by_size() {
        let mut last = Bin::of(MIN_BLOCK);
        let key = |b: Bin| match b {
            Bin::Small(i) => i,
            Bin::Large(f, s) => 1000 + Bin::large_index(f, s),
        };
        for size in (MIN_BLOCK..1 << 20).step_by(16) {
            let b = Bin::of(size);
            assert!(key(b) >= key(last));
            last = b;
        }
        assert_eq!(Bin::of(1008), Bin::Small(63));
        assert_eq!(Bin::of(1024), Bin::Large(10, 0));
        assert_eq!(Bin::of(1152), Bin::Large(10, 1));
        assert_eq!(Bin::of(MAX_BLOCK - 16), Bin::Large(47, 7));
    }

    #[test]
    fn request_rounding() {
        assert_eq!(block_size_for(0), Some(32));
        assert_eq!(block_size_for(16), Some(32));
        assert_eq!(block_size_for(17), Some(48));
        assert_eq!(block_size_for(u64::MAX), None);
    }
}
