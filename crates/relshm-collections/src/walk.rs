//! The link walks behind `List::verify`, `Map::verify`, `Vec::verify` and the whole-segment check, driven
//! by the shapes of the element (key, value) types instead of the types themselves: node
//! fields are found with [`crate::shape`], links are resolved with the strategy's own
//! [`Repr::load`]. So a collection of types this build never saw is checked exactly like
//! one opened with its types. Callers hold the collection's locks (or know it is idle).
//!
//! Every message names the offset of what is wrong (the node, and the link word in it).

use core::mem::offset_of;
use core::sync::atomic::AtomicU64;
use core::sync::atomic::Ordering::Relaxed;

use relshm_ptr::{PtrError, Repr};

use crate::arena::{Arena, Result, corrupt};
use crate::list::ListHeader;
use crate::map::{CHUNK, INLINE, MAX_LOG2, MIN_LOG2, MapHeader, STRIPES};
use crate::shape::{ListNodeLayout, MapLayout, Shape};
use crate::vec::VecHeader;

/// The object of type `T` at `off` of the arena, checked to lie inside it and be aligned.
fn object<'a, T, R: Repr>(arena: &Arena<R>, off: u64) -> Result<&'a T, PtrError> {
    let s = Shape::of::<T>();
    let addr = relshm_ptr::check_offset(arena.base(), arena.len(), off, s.size, s.align)?;
    // SAFETY: in bounds and aligned (check_offset); the arena keeps its region mapped for
    // 'a; callers read only atomics, link words and the collections' headers, all valid
    // for any bits.
    Ok(unsafe { &*(addr as *const T) })
}

/// The target offset of the link word at `at`, for a `target`-shaped object.
fn link<R: Repr>(arena: &Arena<R>, at: u64, target: Shape) -> Result<Option<u64>, PtrError> {
    let word = object::<R::Word, R>(arena, at)?;
    Ok(R::load(arena.ctx(), word, target.size, target.align)?
        .map(|p| (p.as_ptr() as u64).wrapping_sub(arena.base())))
}

/// The u64 at `at`.
fn word<R: Repr>(arena: &Arena<R>, at: u64) -> Result<u64, PtrError> {
    Ok(object::<AtomicU64, R>(arena, at)?.load(Relaxed))
}

/// The most `node`s the arena could hold: a bound for walks, so a cycle ends them.
fn max_nodes<R: Repr>(arena: &Arena<R>, node: Shape) -> u64 {
    arena.len() / node.size.max(1) + 1
}

/// Checks the list whose header is at `off` and whose elements have shape `elem`: the
/// header's layout word matches the shape, forward and backward links agree, the tail is
/// the last node, no cycle, the count matches `len`, no operation is half done. Returns
/// the length.
pub(crate) fn list<R: Repr>(arena: &Arena<R>, off: u64, elem: Shape) -> Result<u64> {
    type H<R> = ListHeader<u8, R>;
    let hdr = object::<H<R>, R>(arena, off)?;
    if hdr.layout.load(Relaxed) != crate::list::fingerprint::<R>(elem) {
        return Err(corrupt(format!(
            "the header's layout word does not describe {}-byte elements (align {}) with {} links",
            elem.size,
            elem.align,
            R::NAME
        )));
    }
    let node = ListNodeLayout::of::<R>(elem);
    let max = max_nodes(arena, node.node);
    let head_at = off + offset_of!(H<R>, head) as u64;
    let mut cur = link(arena, head_at, node.node)
        .map_err(|e| corrupt(format!("head link at {head_at:#x}: {e}")))?;
    let mut prev: Option<u64> = None;
    let mut count = 0u64;
    while let Some(n) = cur {
        count += 1;
        if count > max {
            return Err(corrupt(format!(
                "cycle: more than {max} nodes reachable from the head"
            )));
        }
        let at = n + node.prev;
        let back = link(arena, at, node.node)
            .map_err(|e| corrupt(format!("node {count} at {n:#x}: prev link at {at:#x}: {e}")))?;
        if back != prev {
            return Err(corrupt(format!(
                "node {count} at {n:#x}: its prev link at {at:#x} does not point at node {}",
                count - 1
            )));
        }
        prev = Some(n);
        let at = n + node.next;
        cur = link(arena, at, node.node)
            .map_err(|e| corrupt(format!("node {count} at {n:#x}: next link at {at:#x}: {e}")))?;
    }
    let tail_at = off + offset_of!(H<R>, tail) as u64;
    let tail = link(arena, tail_at, node.node)
        .map_err(|e| corrupt(format!("tail link at {tail_at:#x}: {e}")))?;
    if tail != prev {
        return Err(corrupt(format!(
            "the tail link at {tail_at:#x} does not point at the last node"
        )));
    }
    let len = hdr.len.load(Relaxed);
    if len != count {
        return Err(corrupt(format!(
            "length mismatch: header says {len}, {count} nodes are linked"
        )));
    }
    if hdr.intent.load(Relaxed) != crate::list::OP_NONE {
        return Err(corrupt(
            "an operation is half done although the lock is consistent",
        ));
    }
    Ok(count)
}

/// Checks the map whose header is at `off`, of `key`-shaped keys to `value`-shaped
/// values: the header's layout word matches the shapes, every link resolves, no cycle,
/// every entry (inline or node) sits in the bucket its stored hash names, each stripe's
/// count matches its entries, no operation or resize is half done. Returns the number of
/// entries.
pub(crate) fn map<R: Repr>(arena: &Arena<R>, off: u64, key: Shape, value: Shape) -> Result<u64> {
    type H<R> = MapHeader<u8, u8, R>;
    let hdr = object::<H<R>, R>(arena, off)?;
    if hdr.layout.load(Relaxed) != crate::map::fingerprint::<R>(key, value) {
        return Err(corrupt(format!(
            "the header's layout word does not describe {}-byte keys (align {}) to {}-byte \
             values (align {}) with {} links",
            key.size,
            key.align,
            value.size,
            value.align,
            R::NAME
        )));
    }
    let l = MapLayout::of::<R>(key, value);
    let table = hdr
        .table
        .get(arena.ctx())
        .map_err(|e| corrupt(format!("table link: {e}")))?
        .ok_or_else(|| corrupt("table: the map has no bucket table"))?;
    let log2 = table.log2.load(Relaxed);
    if !(MIN_LOG2..=MAX_LOG2).contains(&log2) {
        return Err(corrupt(format!(
            "table: bucket table size 2^{log2} out of range"
        )));
    }
    let mask = (1u64 << log2) - 1;
    let chunk = Shape {
        size: l.slot.size * CHUNK as u64,
        align: l.slot.align,
    };
    let max = max_nodes(arena, l.node);
    let mut counts = [0u64; STRIPES];
    let mut total = 0u64;
    let mut chunk_at = 0;
    for b in 0..=mask {
        let i = (b >> crate::map::CHUNK_LOG2) as usize;
        if b % CHUNK as u64 == 0 {
            let word = table.chunks[i].word();
            chunk_at = R::load(arena.ctx(), word, chunk.size, chunk.align)
                .map_err(|e| corrupt(format!("bucket {b}: chunk link {i}: {e}")))?
                .map(|p| (p.as_ptr() as u64).wrapping_sub(arena.base()))
                .ok_or_else(|| corrupt(format!("bucket {b}: bucket chunk {i} is missing")))?;
        }
        let slot = chunk_at + (b % CHUNK as u64) * l.slot.size;
        for e in 0..INLINE as u64 {
            let h = word(arena, slot + l.slot_hash + 8 * e)
                .map_err(|e| corrupt(format!("bucket {b}: {e}")))?;
            if h == 0 {
                continue;
            }
            if h & mask != b {
                return Err(corrupt(format!(
                    "the inline entry of bucket {b} (at {slot:#x}) hashes to bucket {}",
                    h & mask
                )));
            }
            total += 1;
            counts[b as usize % STRIPES] += 1;
        }
        let mut at = slot + l.slot_next;
        let mut cur = link(arena, at, l.node)
            .map_err(|e| corrupt(format!("bucket {b}: head link at {at:#x}: {e}")))?;
        while let Some(n) = cur {
            total += 1;
            if total > max {
                return Err(corrupt(format!(
                    "cycle: more than {max} nodes reachable (bucket {b})"
                )));
            }
            let h = word(arena, n + l.node_hash)
                .map_err(|e| corrupt(format!("bucket {b}: node at {n:#x}: {e}")))?;
            if h & mask != b {
                return Err(corrupt(format!(
                    "a node in bucket {b} (at {n:#x}, linked from {at:#x}) hashes to bucket {}",
                    h & mask
                )));
            }
            counts[b as usize % STRIPES] += 1;
            at = n + l.node_next;
            cur = link(arena, at, l.node).map_err(|e| {
                corrupt(format!(
                    "bucket {b}: node at {n:#x}: next link at {at:#x}: {e}"
                ))
            })?;
        }
    }
    for (s, st) in hdr.stripes.iter().enumerate() {
        let len = st.len.load(Relaxed);
        if len != counts[s] {
            return Err(corrupt(format!(
                "stripe {s}: count mismatch: header says {len}, {} nodes are linked",
                counts[s]
            )));
        }
        if st.intent.load(Relaxed) != crate::map::OP_NONE {
            return Err(corrupt(format!("stripe {s}: an operation is half done")));
        }
    }
    if !hdr.new_table.is_null() || hdr.moving.load(Relaxed) != 0 {
        return Err(corrupt("a resize is half done"));
    }
    Ok(total)
}

/// Checks the vector whose header is at `off`, of `elem`-shaped elements: the header's
/// layout word matches the shape, `len <= cap`, the buffer link resolves for `cap`
/// elements (null exactly when `cap` is 0), the buffer's own capacity word agrees, and
/// (where the arena has a heap) the buffer is the one owned block that names the vector.
/// Returns the length.
pub(crate) fn vec<R: Repr>(arena: &Arena<R>, off: u64, elem: Shape) -> Result<u64> {
    type H<R> = VecHeader<u8, R>;
    let hdr = object::<H<R>, R>(arena, off)?;
    if hdr.layout.load(Relaxed) != crate::vec::fingerprint::<R>(elem) {
        return Err(corrupt(format!(
            "the header's layout word does not describe {}-byte elements (align {}) with {} links",
            elem.size,
            elem.align,
            R::NAME
        )));
    }
    let (len, cap) = (hdr.len.load(Relaxed), hdr.cap.load(Relaxed));
    if len > cap {
        return Err(corrupt(format!("length {len} exceeds capacity {cap}")));
    }
    let bytes = cap
        .checked_mul(elem.size)
        .ok_or_else(|| corrupt(format!("capacity {cap} overflows")))?;
    let at = off + offset_of!(H<R>, buf) as u64;
    let buf = link(
        arena,
        at,
        Shape {
            size: bytes,
            align: elem.align,
        },
    )
    .map_err(|e| corrupt(format!("buffer link at {at:#x} ({cap} elements): {e}")))?;
    if buf.is_none() != (cap == 0) {
        return Err(corrupt(format!(
            "buffer link at {at:#x} and capacity {cap} disagree"
        )));
    }
    if let Some(first) = buf {
        let recorded = word(arena, first.wrapping_sub(crate::vec::CAP_BACK))
            .map_err(|e| corrupt(format!("buffer at {first:#x}: {e}")))?;
        if recorded != cap {
            return Err(corrupt(format!(
                "the header says capacity {cap}, the buffer at {first:#x} {recorded}"
            )));
        }
    }
    if arena.segment().is_some() {
        let payload = buf.map(|first| first.wrapping_sub(crate::vec::BUF_HEADER));
        let owned = arena.owned_by(crate::vec::ident(off))?;
        if owned.as_slice() != payload.as_slice() {
            return Err(corrupt(format!(
                "the buffer's block ({payload:#x?}) is not the one block owned by the vector \
                 ({owned:#x?}): a writer's leftovers are not repaired"
            )));
        }
    }
    Ok(len)
}
