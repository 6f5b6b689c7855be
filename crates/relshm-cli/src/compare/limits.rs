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

/// Times one copy of `len` bytes from `from` to `to`.
///
/// # Safety
/// `[from, from + len)` and `[to, to + len)` are mapped, readable and writable
/// respectively, do not overlap, and nothing else accesses the destination meanwhile.
unsafe fn timed_copy(from: *const u8, to: *mut u8, len: usize) -> Duration {
    let t = Instant::now();
    // SAFETY: the caller's contract.
    unsafe { std::ptr::copy_nonoverlapping(std::hint::black_box(from), to, len) };
    t.elapsed()
}

/// Times `memcpy` of `bytes` from the start of `src` into a fresh block of a fresh segment
/// (the median of [`ROUNDS`] fresh segments), and again into the same block (the median of
/// 5): see [`Limit`].
pub fn memcpy(src: &Segment, bytes: u64) -> anyhow::Result<Limit> {
    let from = src.region();
    ensure!(
        bytes <= from.len(),
        "the memcpy limit's {bytes} bytes do not fit the source"
    );
    let mut fresh = Vec::new();
    let mut resident = Vec::new();
    for round in 0..ROUNDS {
        let to = Segment::create_unnamed(&CreateOptions::new(bytes + (512 << 10)))
            .context("creating the memcpy limit's segment")?;
        let at = to.alloc(bytes.max(1), 64)?;
        let dst = to.region();
        ensure!(
            at + bytes <= dst.len(),
            "the memcpy limit's {bytes} bytes do not fit its segment"
        );
        // SAFETY: `[0, bytes)` of the source segment and the block `[at, at + bytes)` of
        // the fresh one are mapped (checked above) while both segments live, and distinct
        // segments do not overlap; the block is this function's alone.
        let copy = || unsafe {
            timed_copy(
                from.base().as_ptr(),
                dst.base().as_ptr().add(at as usize),
                bytes as usize,
            )
        };
        fresh.push(copy());
        if round == ROUNDS - 1 {
            resident.extend((0..5).map(|_| copy()));
        }
    }
    Ok(Limit {
        bytes,
        fresh: median(fresh),
        resident: median(resident),
    })
}

/// Times `memcpy` of an exported image (the bytes an import writes: from the heap on) into
/// a fresh segment of the same size, the median of [`ROUNDS`] segments: the copy into
/// pages nobody has touched yet (each is allocated on its first write), which is what an
/// import into a new segment has to do at least.
pub fn image_copy(seg: &Segment, image: &[u8]) -> anyhow::Result<Duration> {
    let start = seg.heap_offset() as usize;
    let end = image.len();
    ensure!(start <= end, "the image ends before the heap starts");
    let mut times = Vec::new();
    for _ in 0..ROUNDS {
        let target = Segment::create_unnamed(&CreateOptions::new(seg.region().len()))
            .context("creating the import limit's segment")?;
        let to = target.region();
        ensure!(
            end as u64 <= to.len(),
            "the image is longer than the segment"
        );
        // SAFETY: `image[start..end]` is a live slice; `[start, end)` lies inside the fresh
        // segment (checked above), which is this function's alone and lives until the end of
        // this iteration; a Vec and a mapping do not overlap.
        times.push(unsafe {
            timed_copy(
                image.as_ptr().add(start),
                to.base().as_ptr().add(start),
                end - start,
            )
        });
    }
    Ok(median(times))
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
