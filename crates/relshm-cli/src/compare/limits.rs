//! The physical limits each strategy is printed against, measured in the same run: what a
//! strategy's work would cost if only the unavoidable part of it were done.
//!
//! - `memcpy` of the bytes copy-time translation copies (its handover and export: a
//!   translation is that copy plus rewriting the links);
//! - `memcpy` of an exported image into a fresh segment (the import of the in-place
//!   strategies and of swizzling: an import is that copy plus opening the structure);
//! - the first touch of every page the structure occupies in a fresh private view, a write
//!   where a cold swizzle pass swizzled a link (a copy-on-write fault), a read elsewhere (a
//!   cold swizzle pass is that plus its own reads, which are the warm pass beside it).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use relshm::ptr::SwizzleView;
use relshm::segment::{CreateOptions, Segment};

/// `memcpy` of the bytes a translation copied, measured in the same run: what the
/// translation would cost if rewriting the links were free.
#[derive(Debug, Clone, Copy)]
pub struct Limit {
    /// Bytes copied (the span the structure occupies in its source segment).
    pub bytes: u64,
    /// Into a fresh block of a fresh segment (first-touch page faults included), as the
    /// handover's translation writes (median of 3).
    pub fresh: Duration,
    /// The same copy again into the same, now resident, block, as the export's translation
    /// writes (median of 5).
    pub resident: Duration,
}

/// Rounds of each limit, of which the median is kept: on a loaded machine one copy can take
/// twice as long.
const ROUNDS: usize = 3;

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// Times `memcpy` of `from` into a fresh block of a fresh segment (first-touch page faults
/// included; the median of [`ROUNDS`] fresh segments), and `resident_copies` times again into the
/// same block (their median; zero when 0): see [`Limit`].
fn copy_limit(from: &[u8], resident_copies: usize) -> anyhow::Result<Limit> {
    let bytes = from.len() as u64;
    let mut fresh = Vec::new();
    let mut resident = Vec::new();
    for round in 0..ROUNDS {
        let to = Segment::create_unnamed(&CreateOptions::new(bytes + (512 << 10)))
            .context("creating a copy limit's segment")?;
        let at = to.alloc(bytes.max(1), 64)?;
        let block = to.region().resolve(at, bytes, 64)?;
        let copy = || {
            let t = Instant::now();
            // SAFETY: `block` is `bytes` long inside the fresh segment (resolved above),
            // which lives to the end of this iteration; it is this function's alone, and
            // a segment does not overlap the source slice.
            unsafe {
                std::ptr::copy_nonoverlapping(
                    std::hint::black_box(from.as_ptr()),
                    block.as_ptr(),
                    from.len(),
                )
            };
            t.elapsed()
        };
        fresh.push(copy());
        if round == ROUNDS - 1 {
            resident.extend((0..resident_copies).map(|_| copy()));
        }
    }
    Ok(Limit {
        bytes,
        fresh: median(fresh),
        resident: if resident.is_empty() {
            Duration::ZERO
        } else {
            median(resident)
        },
    })
}

/// The limit of a translation that copied `bytes` from the start of `src`: see [`Limit`].
pub fn memcpy(src: &Segment, bytes: u64) -> anyhow::Result<Limit> {
    let from = src.region().resolve(0, bytes, 1)?;
    // SAFETY: `[0, bytes)` of the source segment was resolved inside its mapping, which
    // `src` keeps mapped while the slice lives; nobody writes the source meanwhile (its
    // structure is private to this process).
    copy_limit(
        unsafe { std::slice::from_raw_parts(from.as_ptr(), bytes as usize) },
        5,
    )
}

/// The limit of an import: `memcpy` of the exported image's bytes (from the heap on, what
/// an import writes) into pages nobody has touched yet; the `fresh` copy is the figure.
pub fn image_copy(seg: &Segment, image: &[u8]) -> anyhow::Result<Duration> {
    let start = (seg.heap_offset() as usize).min(image.len());
    Ok(copy_limit(&image[start..], 0)?.fresh)
}

/// Pages a first-touch limit touched.
#[derive(Debug, Clone, Copy)]
pub struct Touched {
    /// Pages from the heap's start to the end of its last allocation.
    pub pages: u64,
    /// Of those, the pages written (the others were read).
    pub written: u64,
}

/// What first touching the structure's pages costs in a fresh private view of `seg`: every
/// page from the heap's start to the end of its last allocation is read, and those in
/// `written` (sorted page offsets: the pages a cold swizzle pass made private) are written
/// instead, each taking a copy-on-write fault. The median of [`ROUNDS`] views.
pub fn first_touch(seg: &Segment, written: &[u64]) -> anyhow::Result<(Duration, Touched)> {
    let heap = seg.heap()?;
    let end = match heap.allocations()?.last() {
        Some(&last) => last + heap.usable_size(last)?,
        None => seg.heap_offset(),
    };
    let page = relshm::segment::page_size();
    let first = seg.heap_offset() & !(page - 1);
    let mut times = Vec::new();
    let mut touched = Touched {
        pages: 0,
        written: 0,
    };
    for _ in 0..ROUNDS {
        let view = SwizzleView::open(seg.fd(), seg.region().len())?;
        let base = view.region().base().as_ptr();
        ensure!(end <= view.region().len(), "the heap ends past the view");
        let mut next = written.iter().copied().peekable();
        touched = Touched {
            pages: 0,
            written: 0,
        };
        let t = Instant::now();
        for off in (first..end).step_by(page as usize) {
            // SAFETY: `off` is page-aligned and below `end`, inside the view, which is this
            // process's private memory for as long as `view` lives.
            let w = unsafe { AtomicU64::from_ptr(base.add(off as usize).cast()) };
            let v = std::hint::black_box(w.load(Ordering::Relaxed));
            while next.next_if(|&p| p < off).is_some() {}
            if next.next_if_eq(&off).is_some() {
                w.store(v, Ordering::Relaxed);
                touched.written += 1;
            }
            touched.pages += 1;
        }
        times.push(t.elapsed());
    }
    Ok((median(times), touched))
}
