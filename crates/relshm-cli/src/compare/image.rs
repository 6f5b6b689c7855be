//! Position-independent images of a segment's structures, and the arenas of the strategies
//! that share a structure in place.

use std::sync::atomic::{AtomicU64, Ordering};

use relshm::segment::Segment;
use relshm_collections::arena::Arena;
use relshm_ptr::{BaseRel, Offset, Raw, Repr, SegRel};

/// A strategy whose structures every process uses in place, through an arena made
/// straight from the segment.
pub trait SharedArena: Repr {
    /// This process's arena over `seg`.
    fn arena(seg: &Segment) -> anyhow::Result<Arena<'_, Self>>;
}

impl SharedArena for Raw {
    fn arena(seg: &Segment) -> anyhow::Result<Arena<'_, Self>> {
        Ok(Arena::<Raw>::fixed(seg)?)
    }
}

impl SharedArena for Offset {
    fn arena(seg: &Segment) -> anyhow::Result<Arena<'_, Self>> {
        Ok(Arena::<Offset>::new(seg)?)
    }
}

impl SharedArena for BaseRel {
    fn arena(seg: &Segment) -> anyhow::Result<Arena<'_, Self>> {
        Ok(Arena::<BaseRel>::new(seg)?)
    }
}

impl SharedArena for SegRel {
    fn arena(seg: &Segment) -> anyhow::Result<Arena<'_, Self>> {
        Ok(Arena::<SegRel>::new(seg)?)
    }
}

/// The words `[start, end)` of the segment that an image covers: from the heap on (the
/// header and attach table belong to the mapping, not to the data), whole words only.
fn span(seg: &Segment, len: usize) -> (usize, usize) {
    let start = seg.heap_offset() as usize & !7;
    let end = (len.min(seg.region().len() as usize) & !7).max(start);
    (start, end)
}

/// Copies the segment's data (from the heap on) into an image as long as the segment;
/// the bytes before the heap are left zero. Offsets need no rewriting: the copy is the
/// position-independent image.
pub fn export(seg: &Segment) -> anyhow::Result<Vec<u8>> {
    let region = seg.region();
    let mut image = vec![0u8; region.len() as usize];
    let (start, end) = span(seg, image.len());
    for (i, chunk) in image[start..end].chunks_exact_mut(8).enumerate() {
        let p = region.base().as_ptr().wrapping_add(start + i * 8) as *mut u64;
        // SAFETY: `span` keeps the word inside the segment's mapping, which lives as long
        // as `seg`; the heap offset is 8-aligned, so the word is aligned. Shared words are
        // only ever accessed atomically.
        let w = unsafe { AtomicU64::from_ptr(p) };
        chunk.copy_from_slice(&w.load(Ordering::Relaxed).to_ne_bytes());
    }
    Ok(image)
}

/// Writes an image (from [`export`] or a swizzle view's export) into `seg` from the heap
/// on, replacing its data. Meaningful only while no other process uses the segment.
pub fn import(seg: &Segment, image: &[u8]) -> anyhow::Result<()> {
    let region = seg.region();
    let (start, end) = span(seg, image.len());
    for (i, chunk) in image[start..end].chunks_exact(8).enumerate() {
        let p = region.base().as_ptr().wrapping_add(start + i * 8) as *mut u64;
        // SAFETY: as in `export`: in bounds, aligned, accessed atomically.
        let w = unsafe { AtomicU64::from_ptr(p) };
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        w.store(u64::from_ne_bytes(word), Ordering::Relaxed);
    }
    Ok(())
}
