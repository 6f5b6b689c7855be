//! Copy-time translation: copy a structure of [`Raw`] links into a destination that
//! another process maps at a known base, rewriting every link for that process, so the
//! receiver reads it with plain absolute pointers at no per-access cost.

use crate::repr::{fits, misfit};
use crate::{Link, LinkVisitor, PtrError, Raw, Relocate};
use core::sync::atomic::Ordering::Relaxed;
use relshm_segment::Region;
use std::collections::HashMap;
use std::collections::VecDeque;

/// Where a structure of [`Raw`] links lives: the bytes mapped here, and the base address
/// the links were written for (the same, unless this is another process's copy).
#[derive(Debug, Clone, Copy)]
pub struct Space {
    region: Region,
    written_base: u64,
}

impl Space {
    /// Links in `region` were written for a mapping based at `written_base`.
    ///
    /// # Safety
    /// `region` must stay mapped (and, for a destination, writable and not otherwise
    /// accessed) while the space is used.
    pub unsafe fn new(region: Region, written_base: u64) -> Self {
        Self {
            region,
            written_base,
        }
    }

    /// The bytes mapped in this process.
    pub fn region(&self) -> Region {
        self.region
    }

    /// The base address links are (or will be) written for.
    pub fn written_base(&self) -> u64 {
        self.written_base
    }

    fn local(&self) -> u64 {
        self.region.base().as_ptr() as u64
    }
}

/// The result of a [`translate`](translate()) call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Translated {
    /// The root's offset in the destination region.
    pub root_offset: u64,
    /// The root's address as the receiver sees it (`written_base + root_offset`).
    pub root: u64,
    /// Bytes of the destination used, from its start (a bump allocation).
    pub used: u64,
    /// Objects copied.
    pub objects: u64,
}

struct Job {
    src: u64,
    dst_off: u64,
    copy: fn(&mut Translator<'_>, u64, u64),
}

struct Translator<'a> {
    src: &'a Space,
    dst: &'a Space,
    cursor: u64,
    /// Source address (local) -> (destination offset, size).
    done: HashMap<u64, (u64, u64)>,
    queue: VecDeque<Job>,
    err: Option<PtrError>,
}

fn copy<T: Relocate<Raw>>(t: &mut Translator<'_>, src: u64, dst_off: u64) {
    let dst = t.dst.local() + dst_off;
    // SAFETY: src was checked to be an aligned T-sized range of the source region and
    // dst_off an aligned T-sized range of the destination; the regions do not overlap
    // (checked by `translate`).
    unsafe { core::ptr::copy_nonoverlapping(src as *const u8, dst as *mut u8, size_of::<T>()) };
    // SAFETY: dst is an aligned, mapped T-sized range just filled with a T's bytes, and any
    // bits are a valid T (Relocate).
    let obj = unsafe { &*(dst as *const T) };
    obj.visit_links(t);
}

impl Translator<'_> {
    /// Destination offset for the source object at `src` (local address), copying it on
    /// first sight.
    fn place<T: Relocate<Raw>>(&mut self, src: u64) -> Result<u64, PtrError> {
        let size = size_of::<T>() as u64;
        if let Some(&(off, s)) = self.done.get(&src) {
            if s != size {
                return Err(PtrError::Overlap { a: src, b: src });
            }
            return Ok(off);
        }
        let align = align_of::<T>() as u64;
        let off = self.cursor.next_multiple_of(align);
        let len = self.dst.region.len();
        if off.checked_add(size).is_none_or(|end| end > len) {
            return Err(PtrError::DestinationFull {
                needed: off.saturating_add(size),
                available: len,
            });
        }
        self.cursor = off + size;
        self.done.insert(src, (off, size));
        self.queue.push_back(Job {
            src,
            dst_off: off,
            copy: copy::<T>,
        });
        Ok(off)
    }

    /// Local source address of a written source link target, checked.
    fn source<T>(&self, written: u64) -> Result<u64, PtrError> {
        let (base, len) = (self.src.local(), self.src.region.len());
        let local = written
            .wrapping_sub(self.src.written_base)
            .wrapping_add(base);
        let (size, align) = (size_of::<T>() as u64, align_of::<T>() as u64);
        if fits(local.wrapping_sub(base), len, size, align) {
            Ok(local)
        } else {
            Err(misfit(local, base, len, size, align))
        }
    }
}

impl LinkVisitor<Raw> for Translator<'_> {
    fn link<T: Relocate<Raw>>(&mut self, link: &Link<T, Raw>) {
        if self.err.is_some() {
            return;
        }
        let w = link.word().load(Relaxed);
        if w == 0 {
            return;
        }
        match self.source::<T>(w).and_then(|src| self.place::<T>(src)) {
            // The word is in the destination copy: rewrite it for the receiver.
            Ok(off) => link.word().store(self.dst.written_base + off, Relaxed),
            Err(e) => self.err = Some(e),
        }
    }
}

/// Copies the structure reachable from `root` (an address as written in `src`) into `dst`
/// starting at offset `start`, breadth first, rewriting every link for a receiver that
/// maps the destination at `dst.written_base()`. Shared targets are copied once (the
/// structure's sharing and cycles are kept). `O(objects)`; the receiver pays nothing per
/// access.
pub fn translate<T: Relocate<Raw>>(
    src: &Space,
    root: u64,
    dst: &Space,
    start: u64,
) -> Result<Translated, PtrError> {
    let (s0, s1) = (src.local(), src.local() + src.region.len());
    let (d0, d1) = (dst.local(), dst.local() + dst.region.len());
    if s0 < d1 && d0 < s1 {
        return Err(PtrError::Overlap { a: s0, b: d0 });
    }
    if dst.written_base.checked_add(dst.region.len()).is_none() {
        return Err(PtrError::BadLayout {
            what: "the receiver's base plus the destination's length overflows: pass the \
                   address the receiver really maps the destination at",
        });
    }
    let mut t = Translator {
        src,
        dst,
        cursor: start,
        done: HashMap::new(),
        queue: VecDeque::new(),
        err: None,
    };
    let root_src = t.source::<T>(root)?;
    let root_offset = t.place::<T>(root_src)?;
    while let Some(job) = t.queue.pop_front() {
        (job.copy)(&mut t, job.src, job.dst_off);
        if let Some(e) = t.err.take() {
            return Err(e);
        }
    }
    Ok(Translated {
        root_offset,
        root: dst.written_base + root_offset,
        used: t.cursor,
        objects: t.done.len() as u64,
    })
}
