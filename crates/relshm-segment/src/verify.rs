//! Whole-segment verification: one report that names every part of a segment (header,
//! heap, directory, each named object) with a verdict that means what it says.
//!
//! [`Segment::verify_with`] checks the segment-level structures itself and hands each live
//! directory entry to an [`ObjectChecker`], the extension point for the layers above: this
//! crate's [`PlainObjects`] knows the segment's own object types; `relshm-collections`
//! supplies a checker that also walks lists, maps, queues, ports and streams. A checker
//! that cannot check an object says so with [`Verdict::Unchecked`]; it never calls such an
//! object clean, and [`SegmentReport::is_clean`] is true only when every part was
//! [`Verified`](Verdict::Verified).
//!
//! ```
//! use relshm_segment::verify::{PlainObjects, VerifyOptions};
//! use relshm_segment::{CreateOptions, Segment};
//! use std::sync::atomic::AtomicU32;
//!
//! let seg = Segment::create_unnamed(&CreateOptions::new(1 << 20))?;
//! seg.directory()?.construct("hits", AtomicU32::new(0))?;
//! let report = seg.verify_with(&VerifyOptions::default(), &PlainObjects);
//! assert!(report.is_clean(), "{report}");
//! assert_eq!(report.objects().count(), 1);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use core::fmt;
use core::sync::atomic::AtomicU64;
use core::sync::atomic::Ordering::Acquire;
use std::time::Duration;

use relshm_sync::{LockError, RawMutex};

use crate::directory::{Directory, DirectoryError, EntryInfo, SegmentObject};
use crate::heap::{Heap, HeapError};
use crate::procstat;
use crate::segment::Segment;

/// An error a verifying walk reports as damage when no layer's own error type says it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Damage {
    /// A lock word names a thread that no longer exists and the kernel did not release
    /// the lock: every locker would wait forever.
    #[error(
        "lock at {offset:#x} is held by thread {tid}, which no longer exists (the kernel did \
         not release it); every locker would hang: rebuild this object"
    )]
    DeadOwner {
        /// Offset of the lock word.
        offset: u64,
        /// The thread id it names.
        tid: u32,
    },
    /// A lock was left not recoverable (an earlier repair failed).
    #[error(
        "lock at {offset:#x} is not recoverable (an earlier repair failed): rebuild this object"
    )]
    NotRecoverable {
        /// Offset of the lock word.
        offset: u64,
    },
    /// A structure is inconsistent in a way described by the message.
    #[error("{0}")]
    Inconsistent(String),
    /// A layer's own error, with where it was found.
    #[error("{what}: {source}")]
    Within {
        /// Where: `map at 0x1000 (offset pointers)`, ...
        what: String,
        /// The error its check returned.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync + 'static>,
    },
}

impl Damage {
    /// `source`, found in `what`.
    pub fn within(
        what: impl Into<String>,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        Self::Within {
            what: what.into(),
            source: Box::new(source),
        }
    }
}

/// The verdict on one part of a segment.
#[derive(Debug)]
pub enum Verdict {
    /// Checked and consistent; the text summarises what was checked.
    Verified(String),
    /// Checked and found damaged: the error says what.
    Corrupt(Box<dyn std::error::Error + Send + Sync + 'static>),
    /// Not checked, and why (a type this build does not know, a lock held too long, a
    /// part that could not be reached): neither clean nor known to be damaged.
    Unchecked(String),
}

impl Verdict {
    /// A [`Corrupt`](Self::Corrupt) verdict from any error.
    pub fn corrupt(e: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self::Corrupt(Box::new(e))
    }

    /// The verdict on a check that returned `r`: an error whose lock error (as
    /// `lock_error` finds it) says the lock could not be taken in time leaves the part
    /// unchecked, any other error is damage, success is summarised by `ok`.
    pub fn of<T, E>(
        r: Result<T, E>,
        lock_error: impl FnOnce(&E) -> Option<&LockError>,
        ok: impl FnOnce(T) -> String,
    ) -> Self
    where
        E: std::error::Error + Send + Sync + 'static,
    {
        match r {
            Ok(t) => Self::Verified(ok(t)),
            Err(e) => match lock_error(&e) {
                Some(LockError::TimedOut | LockError::WouldBlock) => {
                    Self::Unchecked(format!("its lock stayed held: {e}; try again later"))
                }
                _ => Self::corrupt(e),
            },
        }
    }

    /// Whether this is [`Verified`](Self::Verified).
    pub fn is_verified(&self) -> bool {
        matches!(self, Self::Verified(_))
    }

    /// Whether this is [`Corrupt`](Self::Corrupt).
    pub fn is_corrupt(&self) -> bool {
        matches!(self, Self::Corrupt(_))
    }

    /// Whether this is [`Unchecked`](Self::Unchecked).
    pub fn is_unchecked(&self) -> bool {
        matches!(self, Self::Unchecked(_))
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Verified(s) => write!(f, "verified: {s}"),
            Self::Corrupt(e) => write!(f, "CORRUPT: {e}"),
            Self::Unchecked(s) => write!(f, "unchecked: {s}"),
        }
    }
}

/// A part of a segment that gets a verdict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Part {
    /// The header and attach table.
    Header,
    /// The in-segment allocator.
    Heap,
    /// The named-object directory table.
    Directory,
    /// One named object (a live directory entry).
    Object(EntryInfo),
}

impl fmt::Display for Part {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Header => f.write_str("header"),
            Self::Heap => f.write_str("heap"),
            Self::Directory => f.write_str("directory"),
            Self::Object(e) => write!(f, "object {}", String::from_utf8_lossy(&e.name)),
        }
    }
}

/// One part and its verdict.
#[derive(Debug)]
pub struct Check {
    /// What was looked at.
    pub part: Part,
    /// What was found.
    pub verdict: Verdict,
}

/// Everything [`Segment::verify_with`] looked at, in order: header, heap, directory, then
/// every named object.
#[derive(Debug, Default)]
pub struct SegmentReport {
    /// Every check.
    pub checks: Vec<Check>,
}

impl SegmentReport {
    fn push(&mut self, part: Part, verdict: Verdict) {
        self.checks.push(Check { part, verdict });
    }

    /// Whether every part was verified: no damage *and* nothing left unchecked.
    pub fn is_clean(&self) -> bool {
        self.checks.iter().all(|c| c.verdict.is_verified())
    }

    /// The parts found damaged.
    pub fn corrupt(&self) -> impl Iterator<Item = &Check> {
        self.checks.iter().filter(|c| c.verdict.is_corrupt())
    }

    /// The parts that could not be checked.
    pub fn unchecked(&self) -> impl Iterator<Item = &Check> {
        self.checks.iter().filter(|c| c.verdict.is_unchecked())
    }

    /// The checks of named objects.
    pub fn objects(&self) -> impl Iterator<Item = &Check> {
        self.checks
            .iter()
            .filter(|c| matches!(c.part, Part::Object(_)))
    }
}

impl fmt::Display for SegmentReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for c in &self.checks {
            writeln!(f, "{}: {}", c.part, c.verdict)?;
        }
        Ok(())
    }
}

/// How long verification waits for locks.
#[derive(Debug, Clone)]
pub struct VerifyOptions {
    /// Longest wait for a lock held by a live thread (the heap's, the directory's, a
    /// collection's) before the part is reported [`Verdict::Unchecked`].
    pub lock_wait: Duration,
}

impl Default for VerifyOptions {
    /// Waits up to 5 seconds per lock.
    fn default() -> Self {
        Self {
            lock_wait: Duration::from_secs(5),
        }
    }
}

/// What a checker is given for one named object.
pub struct ObjectSite<'a> {
    /// The segment (read-write mapping).
    pub segment: &'a Segment,
    /// Its heap, with [`VerifyOptions::lock_wait`] as lock timeout.
    pub heap: &'a Heap,
    /// The directory entry (validated by the directory check).
    pub entry: &'a EntryInfo,
    /// The options of this run.
    pub options: &'a VerifyOptions,
}

impl ObjectSite<'_> {
    /// The u64 at `offset`, if it lies inside the mapping and is 8-aligned.
    pub fn load(&self, offset: u64) -> Option<u64> {
        let p = self.segment.region().resolve_as::<u64>(offset).ok()?;
        // SAFETY: in bounds and aligned (resolve_as); shared words are accessed atomically;
        // the mapping outlives this call.
        Some(unsafe { AtomicU64::from_ptr(p.as_ptr()) }.load(Acquire))
    }

    /// Whether the entry was recorded with type `T`'s fingerprint.
    pub fn is<T: SegmentObject>(&self) -> bool {
        let t = crate::directory::TypeInfo::of::<T>();
        let s = &self.entry.type_info;
        (s.name.as_str(), s.version, s.hash, s.size, s.align)
            == (t.name.as_str(), t.version, t.hash, t.size, t.align)
    }
}

/// Checks the object of one directory entry: the extension point of [`Segment::verify_with`].
///
/// A checker returns [`Verdict::Unchecked`] for what it cannot check, never
/// [`Verdict::Verified`]. It sees the directory entry as recorded ([`EntryInfo`]); once
/// directory records say what kind of object they hold, checkers dispatch on that record
/// instead of recognising headers and guessing element shapes.
pub trait ObjectChecker {
    /// The verdict on the object of `site.entry`.
    fn check(&self, site: &ObjectSite<'_>) -> Verdict;
}

/// The checker of this layer: every [`SegmentObject`] is plain data by contract (any
/// bytes are a valid value), so once the directory has checked the entry and its
/// allocation nothing is left to check, with one exception: an `AtomicU64` whose value is
/// the start of a live heap allocation is how the collections of the layers above record
/// their offset, so it may name a structure this layer cannot walk: unchecked.
#[derive(Debug, Clone, Copy, Default)]
pub struct PlainObjects;

impl ObjectChecker for PlainObjects {
    fn check(&self, site: &ObjectSite<'_>) -> Verdict {
        let t = &site.entry.type_info;
        if site.is::<AtomicU64>() {
            let value = site.load(site.entry.offset).unwrap_or(0);
            if value != 0 && site.heap.usable_size(value).is_ok() {
                return Verdict::Unchecked(format!(
                    "its value {value:#x} is the offset of a live allocation, so it may record \
                     a collection whose header this build does not recognise (unknown kind, or \
                     a damaged header)"
                ));
            }
            return Verdict::Verified(format!("u64 value {value}"));
        }
        // A robust lock heads these (any data it guards is itself plain): it must not be
        // stuck. It is not taken: a live holder is normal and says nothing about the bytes.
        let lock_types = [
            <relshm_sync::Mutex<u8> as SegmentObject>::TYPE_NAME,
            <relshm_sync::RwLock<u8> as SegmentObject>::TYPE_NAME,
        ];
        if lock_types.contains(&t.name.as_str()) {
            let offset = site.entry.offset;
            let Ok(p) = site.segment.region().resolve_as::<RawMutex>(offset) else {
                return Verdict::corrupt(Damage::Inconsistent(format!(
                    "lock at {offset:#x} lies outside the segment"
                )));
            };
            // SAFETY: in bounds and aligned (resolve_as); a RawMutex is atomics only, valid
            // for any bits; the mapping outlives this call.
            match lock_health(unsafe { p.as_ref() }) {
                LockHealth::DeadOwner { tid } => {
                    return Verdict::corrupt(Damage::DeadOwner { offset, tid });
                }
                LockHealth::NotRecoverable => {
                    return Verdict::corrupt(Damage::NotRecoverable { offset });
                }
                _ => {}
            }
        }
        Verdict::Verified(format!(
            "plain data of type `{}` ({} bytes): any bytes are valid, entry and allocation \
             checked",
            t.name, t.size
        ))
    }
}

/// What the lock word of a robust mutex says about its holder, read without taking it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockHealth {
    /// Nobody holds it.
    Free,
    /// A live thread holds it.
    Held {
        /// The holder's thread id.
        tid: u32,
    },
    /// Its owner died and the kernel released it; the next locker repairs.
    OwnerDied,
    /// Held by a thread that no longer exists (the kernel did not release it).
    DeadOwner {
        /// The thread id in the word.
        tid: u32,
    },
    /// Not recoverable: an earlier repair failed.
    NotRecoverable,
}

/// Whether thread `tid` may exist in our PID namespace: `false` only when `/proc` proves
/// it gone (see [`procstat::is_gone`]), so a holder hidden from us is not called dead.
pub fn tid_alive(tid: u32) -> bool {
    !procstat::is_gone(tid, |_| true)
}

/// The health of `m` at this instant (locks move on while one looks).
pub fn lock_health(m: &RawMutex) -> LockHealth {
    let owner = m.owner();
    if m.is_not_recoverable() {
        LockHealth::NotRecoverable
    } else if let Some(tid) = owner {
        if tid_alive(tid) {
            LockHealth::Held { tid }
        } else {
            LockHealth::DeadOwner { tid }
        }
    } else if m.is_owner_died() {
        LockHealth::OwnerDied
    } else {
        LockHealth::Free
    }
}

/// Waits until none of the mutexes at `offsets` is held by a live thread, for up to
/// `wait`. `Err` with the verdict to report when one can never be taken (its holder no
/// longer exists, or it is not recoverable) or stays held: taking such a lock to verify
/// would hang or wait unboundedly. Offsets outside the mapping are skipped (the
/// structure's own checks report them).
pub fn wait_unlocked(seg: &Segment, offsets: &[u64], wait: Duration) -> Result<(), Verdict> {
    let deadline = std::time::Instant::now() + wait;
    loop {
        let region = seg.region();
        let mut held = false;
        for &offset in offsets {
            let Ok(p) = region.resolve_as::<RawMutex>(offset) else {
                continue;
            };
            // SAFETY: in bounds and aligned (resolve_as); a RawMutex is atomics only, valid
            // for any bits; the mapping outlives this call.
            match lock_health(unsafe { p.as_ref() }) {
                LockHealth::DeadOwner { tid } => {
                    return Err(Verdict::corrupt(Damage::DeadOwner { offset, tid }));
                }
                LockHealth::NotRecoverable => {
                    return Err(Verdict::corrupt(Damage::NotRecoverable { offset }));
                }
                LockHealth::Held { .. } => held = true,
                LockHealth::Free | LockHealth::OwnerDied => {}
            }
        }
        if !held {
            return Ok(());
        }
        if std::time::Instant::now() >= deadline {
            return Err(Verdict::Unchecked(format!(
                "a lock stayed held for {wait:?}; try again later"
            )));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn heap_lock(e: &HeapError) -> Option<&LockError> {
    match e {
        HeapError::Lock(l) => Some(l),
        _ => None,
    }
}

fn dir_lock(e: &DirectoryError) -> Option<&LockError> {
    match e {
        DirectoryError::Lock(l) | DirectoryError::Heap(HeapError::Lock(l)) => Some(l),
        _ => None,
    }
}

impl Segment {
    /// Checks the whole segment: the header (again, as it is now), the heap, the
    /// directory, and every named object through `checker`. Never panics or hangs on bad
    /// bytes; a part that cannot be reached because a part before it is damaged is
    /// reported [`Verdict::Unchecked`].
    ///
    /// Verifying takes each structure's lock, as any user would: a lock whose owner died is
    /// repaired by that (the documented recovery), so the verdict is on the repaired state.
    pub fn verify_with(
        &self,
        options: &VerifyOptions,
        checker: &dyn ObjectChecker,
    ) -> SegmentReport {
        let mut report = SegmentReport::default();
        report.push(Part::Header, self.verify_header());
        let heap = match self.heap() {
            Ok(h) => h.with_lock_timeout(Some(options.lock_wait)),
            Err(e) => {
                report.push(Part::Heap, Verdict::corrupt(e));
                report.push(
                    Part::Directory,
                    Verdict::Unchecked("the heap it lives in is unusable".into()),
                );
                return report;
            }
        };
        report.push(
            Part::Heap,
            Verdict::of(heap.verify(), heap_lock, |s| {
                format!(
                    "{} live allocation(s), {} free block(s), counters consistent",
                    s.used_blocks, s.free_blocks
                )
            }),
        );
        let dir = match Directory::open(&heap) {
            Ok(d) => d,
            Err(e) => {
                report.push(Part::Directory, Verdict::corrupt(e));
                return report;
            }
        };
        report.push(
            Part::Directory,
            Verdict::of(dir.verify(), dir_lock, |n| {
                format!("{n} named object(s), all reachable")
            }),
        );
        // A table whose entries cannot be listed was reported just above.
        let Ok(entries) = dir.entries() else {
            return report;
        };
        for entry in &entries {
            let site = ObjectSite {
                segment: self,
                heap: &heap,
                entry,
                options,
            };
            report.push(Part::Object(entry.clone()), checker.check(&site));
        }
        report
    }

    /// The header as it is in the segment now, validated again (another process may have
    /// written over it since this one opened the segment).
    fn verify_header(&self) -> Verdict {
        match crate::mapped::read_header(&self.mapped().fd, Duration::ZERO) {
            Ok(_) => Verdict::Verified("magic, version, layout, checksum and sizes valid".into()),
            Err(e) => Verdict::corrupt(e),
        }
    }
}
