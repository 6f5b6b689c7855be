//! Whole-segment verification that walks the collections too: [`Collections`] is the
//! [`ObjectChecker`] that [`verify_segment`] hands to
//! [`Segment::verify_with`](relshm_segment::Segment::verify_with).
//!
//! A list or map made with `create_named` is registered in the directory with a
//! [`CollectionRecord`]: its kind, pointer strategy, element (key, value) sizes and
//! alignments, layout version and header offset. The checker walks it from that record
//! alone (node fields from [`crate::shape`], links through the recorded strategy), so a
//! collection of any user types is checked, with no table of known types. Ports are
//! recorded as a [`PortRecord`]; queues and streams named by a bare `AtomicU64` offset are
//! checked from their control blocks (they are not generic). A list or map named by a
//! bare offset predates typed records: its element types are unknown and it is
//! [`Verdict::Unchecked`], never guessed and never clean.
//!
//! [`describe`] tells tools (`relshm inspect`) what a named collection is and where its
//! locks are, from the same records.
//!
//! ```
//! use relshm_collections::arena::Arena;
//! use relshm_collections::map::Map;
//! use relshm_collections::verify::verify_segment;
//! use relshm_ptr::Offset;
//! use relshm_segment::{CreateOptions, Segment};
//!
//! #[repr(C)]
//! #[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
//! struct Mine { a: [u8; 40], b: u64 }
//!
//! let seg = Segment::create_unnamed(&CreateOptions::new(4 << 20))?;
//! let arena = Arena::<Offset>::new(&seg)?;
//! Map::<u64, Mine, Offset>::create_named(&arena, "mine")?.insert(1, Mine { a: [2; 40], b: 3 })?;
//! let report = verify_segment(&seg);
//! assert!(report.is_clean(), "{report}");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use core::mem::offset_of;
use core::sync::atomic::AtomicU64;
use std::time::Duration;

use relshm_ptr::{BaseRel, Offset, Raw, Repr, SegRel, Swizzle};
use relshm_segment::Segment;
use relshm_segment::directory::EntryInfo;
use relshm_segment::verify::{
    Damage, ObjectChecker, ObjectSite, PlainObjects, SegmentReport, Verdict, VerifyOptions,
    wait_unlocked,
};
use relshm_sync::{Held, LockError, RawRwLock};

use crate::arena::{Arena, CollectionError};
use crate::bytes_map::BytesMapHeader;
use crate::list::ListHeader;
use crate::map::{MapHeader, STRIPES, Stripe};
use crate::port::{PORT_MAGIC, PortRecord};
use crate::queue::RawQueue;
use crate::queue::layout::Control;
pub use crate::record::CollectionKind;
use crate::record::{CollectionRecord, RecordFault, load};
use crate::shape::Shape;
use crate::stream::{MAX_STREAM_CAPACITY, STREAM_HEADER};
use crate::vec::VecHeader;

/// Where the locks and counters of collection headers lie, for tools that read them
/// without opening the collection (taken from the layout types, so they cannot drift).
pub mod offsets {
    use super::*;

    type L = ListHeader<u64, Offset>;
    type M = MapHeader<u64, u64, Offset>;
    type V = VecHeader<u64, Offset>;

    /// `ListHeader::len` (the element count).
    pub const LIST_LEN: u64 = offset_of!(L, len) as u64;
    /// `ListHeader::lock` (a robust mutex).
    pub const LIST_LOCK: u64 = offset_of!(L, lock) as u64;
    /// `VecHeader::len` (the element count).
    pub const VEC_LEN: u64 = offset_of!(V, len) as u64;
    /// `VecHeader::lock` (a readers-writer lock).
    pub const VEC_LOCK: u64 = offset_of!(V, lock) as u64;
    /// `MapHeader::resize` (a readers-writer lock).
    pub const MAP_RESIZE_LOCK: u64 = offset_of!(M, resize) as u64;
    /// `MapHeader::stripes`: [`STRIPES`] stripes of [`STRIPE_SIZE`] bytes, each starting
    /// with its readers-writer lock.
    pub const MAP_STRIPES: u64 = offset_of!(M, stripes) as u64;
    /// Bytes of one [`Stripe`].
    pub const STRIPE_SIZE: u64 = size_of::<Stripe>() as u64;
    /// `Stripe::len` (entries in the stripe's buckets).
    pub const STRIPE_LEN: u64 = offset_of!(Stripe, len) as u64;
    /// `queue::layout::Control::reap_lock` (a robust mutex).
    pub const QUEUE_REAP_LOCK: u64 = offset_of!(Control, reap_lock) as u64;
    /// The [`PortRecord`] word holding its connection queue's offset.
    pub const PORT_CONNECT_QUEUE: u64 = 8;
    /// The stream control block's `capacity` word.
    pub const STREAM_CAPACITY: u64 = 8;

    // Every list and map instantiation puts these fields at the same offsets.
    const _: () = {
        assert!(offset_of!(ListHeader<[u64; 8], SegRel>, lock) as u64 == LIST_LOCK);
        assert!(offset_of!(MapHeader<[u8; 64], u8, SegRel>, stripes) as u64 == MAP_STRIPES);
        // A byte map's locks lie where a map's do (its description and lock wait use them).
        assert!(offset_of!(BytesMapHeader<SegRel>, resize) as u64 == MAP_RESIZE_LOCK);
        assert!(offset_of!(BytesMapHeader<SegRel>, stripes) as u64 == MAP_STRIPES);
        assert!(size_of::<RawRwLock>() as u64 == STRIPE_LEN);
    };
}

use offsets::*;

/// Checks the whole segment with the default [`VerifyOptions`] and the [`Collections`]
/// checker.
pub fn verify_segment(seg: &Segment) -> SegmentReport {
    seg.verify_with(&VerifyOptions::default(), &Collections)
}

/// The [`ObjectChecker`] for everything this crate stores in a segment, falling back to
/// [`PlainObjects`] for other entries.
#[derive(Debug, Clone, Copy, Default)]
pub struct Collections;

impl ObjectChecker for Collections {
    fn check(&self, site: &ObjectSite<'_>) -> Verdict {
        if site.is::<PortRecord>() {
            return verify_port(site);
        }
        match Named::of(site.segment, site.entry) {
            Some(Named::Recorded(rec)) => verify_recorded(site, &rec),
            Some(Named::BadRecord(RecordFault::Unknown(why))) => {
                Verdict::Unchecked(format!("collection record: {why}"))
            }
            Some(Named::BadRecord(fault)) => {
                Verdict::corrupt(Damage::Inconsistent(format!("collection record: {fault}")))
            }
            Some(Named::Bare(CollectionKind::Queue, off)) => verify_queue(site, off),
            Some(Named::Bare(CollectionKind::Stream, off)) => verify_stream(site.segment, off),
            Some(Named::Bare(kind, off)) => {
                Verdict::Unchecked(format!("{} at {off:#x}: {PREDATES}", kind.name()))
            }
            None => PlainObjects.check(site),
        }
    }
}

/// Why a list or map named by a bare offset is not checked.
const PREDATES: &str = "named by a bare offset, so it predates typed collection records and \
     its element types are unknown (nothing is guessed); re-create it with this relshm's \
     create_named to have it checked";

/// Why a collection whose last lock holder died is not checked.
const HOLDER_DIED: &str = "a holder of its lock died mid-operation; its next user repairs it \
     (open it with its types), then verify again";

/// How a directory entry names a collection.
enum Named {
    /// A typed record.
    Recorded(CollectionRecord),
    /// A record whose bytes are unusable.
    BadRecord(RecordFault),
    /// A bare `AtomicU64` holding the offset of a header of this kind.
    Bare(CollectionKind, u64),
}

impl Named {
    fn of(seg: &Segment, entry: &EntryInfo) -> Option<Self> {
        if let Some(rec) = CollectionRecord::in_entry(seg, entry) {
            return Some(rec.map_or_else(Named::BadRecord, Named::Recorded));
        }
        if entry.type_info.name
            != <AtomicU64 as relshm_segment::directory::SegmentObject>::TYPE_NAME
        {
            return None;
        }
        let (kind, off) = CollectionKind::recorded(seg, entry)?;
        Some(Named::Bare(kind, off))
    }
}

/// The verdict on the collection a record describes.
fn verify_recorded(site: &ObjectSite<'_>, rec: &CollectionRecord) -> Verdict {
    let off = rec.header();
    let Some(kind) = rec.kind() else {
        return Verdict::Unchecked(format!("{rec}: unknown kind"));
    };
    if CollectionKind::at(site.segment, off) != Some(kind) {
        return Verdict::corrupt(Damage::Inconsistent(format!(
            "the directory records a {rec} at {off:#x}, but no {} header is there",
            kind.name()
        )));
    }
    let wait = site.options.lock_wait;
    match kind {
        CollectionKind::List => {
            if let Err(v) = wait_unlocked(site.segment, &[off + LIST_LOCK], wait) {
                return v;
            }
            let walk = ListWalk {
                off,
                elem: rec.key(),
                wait,
            };
            by_strategy(site.segment, rec, &walk)
        }
        CollectionKind::Map => {
            if let Err(v) = wait_unlocked(site.segment, &map_locks(off), wait) {
                return v;
            }
            let walk = MapWalk {
                off,
                key: rec.key(),
                value: rec.value(),
                wait,
            };
            by_strategy(site.segment, rec, &walk)
        }
        CollectionKind::Vec => {
            if let Err(v) = wait_unlocked(site.segment, &[off + VEC_LOCK], wait) {
                return v;
            }
            let walk = VecWalk {
                off,
                elem: rec.key(),
                wait,
            };
            by_strategy(site.segment, rec, &walk)
        }
        CollectionKind::BytesMap => {
            if let Err(v) = wait_unlocked(site.segment, &map_locks(off), wait) {
                return v;
            }
            by_strategy(site.segment, rec, &BytesMapWalk { off, wait })
        }
        CollectionKind::Queue => verify_queue(site, off),
        CollectionKind::Stream => verify_stream(site.segment, off),
        CollectionKind::LinkedQueue => Verdict::Unchecked(format!(
            "{rec}: linked queues are walked by LinkedQueue::verify in a program that opens \
             them with their type"
        )),
    }
}

/// The writer mutexes of a map's locks (the resize lock, then each stripe's): those are
/// what can get stuck.
fn map_locks(off: u64) -> Vec<u64> {
    let mut locks = vec![off + MAP_RESIZE_LOCK];
    locks.extend((0..STRIPES as u64).map(|i| off + MAP_STRIPES + i * STRIPE_SIZE));
    locks
}

fn verify_port(site: &ObjectSite<'_>) -> Verdict {
    let at = site.entry.offset;
    if site.load(at) != Some(PORT_MAGIC) {
        return Verdict::corrupt(Damage::Inconsistent(
            "port record has the wrong magic number".into(),
        ));
    }
    match site.load(at + PORT_CONNECT_QUEUE) {
        Some(q) => match verify_queue(site, q) {
            Verdict::Verified(m) => Verdict::Verified(format!("port; connection {m}")),
            Verdict::Corrupt(e) => Verdict::corrupt(Damage::Within {
                what: "connection queue".into(),
                source: e,
            }),
            unchecked => unchecked,
        },
        None => Verdict::corrupt(Damage::Inconsistent("port record is unreadable".into())),
    }
}

fn verify_queue(site: &ObjectSite<'_>, off: u64) -> Verdict {
    match RawQueue::attach(site.segment, off) {
        Ok(q) => Verdict::Verified(format!(
            "queue at {off:#x}: control block valid, {}/{} message(s)",
            q.len(),
            q.capacity()
        )),
        Err(e) => Verdict::corrupt(Damage::within(format!("queue at {off:#x}"), e)),
    }
}

fn verify_stream(seg: &Segment, off: u64) -> Verdict {
    let bad = |what: String| {
        Verdict::corrupt(Damage::Inconsistent(format!("stream at {off:#x}: {what}")))
    };
    let cap = load(seg, off + STREAM_CAPACITY).unwrap_or(0);
    if !off.is_multiple_of(64) {
        return bad("control block not 64-aligned".into());
    }
    if !cap.is_power_of_two() || !(64..=MAX_STREAM_CAPACITY).contains(&cap) {
        return bad(format!("ring capacity {cap} out of range"));
    }
    if seg.region().resolve(off, STREAM_HEADER + cap, 64).is_err() {
        return bad("ring runs past the segment".into());
    }
    Verdict::Verified(format!(
        "stream at {off:#x}: {cap}-byte ring in bounds (positions are not checked)"
    ))
}

fn collection_lock(e: &CollectionError) -> Option<&LockError> {
    match e {
        CollectionError::Lock(l) => Some(l),
        _ => None,
    }
}

/// The verdict on a walk of the list or map at `off` with strategy `R`.
fn walked<R: Repr>(kind: &str, off: u64, r: Result<u64, CollectionError>, unit: &str) -> Verdict {
    let what = format!("{kind} at {off:#x} ({} pointers)", R::NAME);
    match Verdict::of(r, collection_lock, |n| {
        format!("{what}: {n} {unit}, links consistent")
    }) {
        Verdict::Corrupt(source) => Verdict::corrupt(Damage::Within { what, source }),
        other => other,
    }
}

/// A check of a recorded list or map through an arena of its strategy.
trait Walk {
    fn walk<R: Repr>(&self, arena: &Arena<R>) -> Verdict;
}

/// Runs `w` through an arena of the recorded strategy.
fn by_strategy(seg: &Segment, rec: &CollectionRecord, w: &impl Walk) -> Verdict {
    fn with<R: Repr>(arena: Result<Arena<R>, CollectionError>, w: &impl Walk) -> Verdict {
        match arena {
            Ok(a) => w.walk(&a),
            Err(e) => {
                Verdict::Unchecked(format!("cannot make a {} arena to walk it: {e}", R::NAME))
            }
        }
    }
    let id = rec.strategy();
    let is = |r: u32| id == u64::from(r);
    if is(Offset::ID) {
        with(Arena::<Offset>::new(seg), w)
    } else if is(BaseRel::ID) {
        with(Arena::<BaseRel>::new(seg), w)
    } else if is(SegRel::ID) {
        with(Arena::<SegRel>::new(seg), w)
    } else if is(Swizzle::ID) {
        with(Arena::<Swizzle>::private(seg), w)
    } else if is(Raw::ID) && seg.fixed_base().is_some() {
        with(Arena::<Raw>::fixed(seg), w)
    } else if is(Raw::ID) {
        Verdict::Unchecked(format!(
            "{rec}: raw-pointer collections are checkable only in a fixed-address segment"
        ))
    } else {
        Verdict::Unchecked(format!("{rec}: unknown pointer strategy"))
    }
}

/// The header of type `H` at `off` of `arena`, or the verdict that it is unreadable.
fn header<'a, H, R: Repr>(arena: &Arena<R>, off: u64) -> Result<&'a H, Verdict> {
    let p = arena
        .header_at::<H>(off, "collection header")
        .map_err(|e| Verdict::corrupt(Damage::within(format!("header at {off:#x}"), e)))?;
    // SAFETY: in bounds and aligned (header_at), mapped while the arena lives; list and
    // map headers are atomics, robust locks and links, valid for any bits.
    Ok(unsafe { p.as_ref() })
}

struct ListWalk {
    off: u64,
    elem: Shape,
    wait: Duration,
}

impl Walk for ListWalk {
    fn walk<R: Repr>(&self, arena: &Arena<R>) -> Verdict {
        let hdr = match header::<ListHeader<u8, R>, R>(arena, self.off) {
            Ok(h) => h,
            Err(v) => return v,
        };
        let lock = &hdr.lock;
        walk_held::<R>(
            ("list", self.off, "element(s)"),
            lock.is_owner_died(),
            || Held::mutex_if_consistent(lock, Some(self.wait)),
            || crate::walk::list(arena, self.off, self.elem),
        )
    }
}

struct MapWalk {
    off: u64,
    key: Shape,
    value: Shape,
    wait: Duration,
}

impl Walk for MapWalk {
    fn walk<R: Repr>(&self, arena: &Arena<R>) -> Verdict {
        let hdr = match header::<MapHeader<u8, u8, R>, R>(arena, self.off) {
            Ok(h) => h,
            Err(v) => return v,
        };
        // Exclusive over the whole map: every operation holds it shared, so no writer is
        // inside while the walk runs (lock-free lookups go on).
        walk_held::<R>(
            ("map", self.off, "entr(y/ies)"),
            map_holder_died(&hdr.resize, &hdr.stripes),
            || Held::exclusive_if_consistent(&hdr.resize, Some(self.wait)),
            || crate::walk::map(arena, self.off, self.key, self.value),
        )
    }
}

struct BytesMapWalk {
    off: u64,
    wait: Duration,
}

impl Walk for BytesMapWalk {
    fn walk<R: Repr>(&self, arena: &Arena<R>) -> Verdict {
        let hdr = match header::<BytesMapHeader<R>, R>(arena, self.off) {
            Ok(h) => h,
            Err(v) => return v,
        };
        // Exclusive over the whole map, as for a map.
        walk_held::<R>(
            ("bytes map", self.off, "entr(y/ies)"),
            map_holder_died(&hdr.resize, &hdr.stripes),
            || Held::exclusive_if_consistent(&hdr.resize, Some(self.wait)),
            || crate::bytes_map::walk(arena, self.off),
        )
    }
}

struct VecWalk {
    off: u64,
    elem: Shape,
    wait: Duration,
}

impl Walk for VecWalk {
    fn walk<R: Repr>(&self, arena: &Arena<R>) -> Verdict {
        let hdr = match header::<VecHeader<u8, R>, R>(arena, self.off) {
            Ok(h) => h,
            Err(v) => return v,
        };
        walk_held::<R>(
            ("vec", self.off, "element(s)"),
            hdr.lock.writer().is_owner_died(),
            || Held::exclusive_if_consistent(&hdr.lock, Some(self.wait)),
            || crate::walk::vec(arena, self.off, self.elem),
        )
    }
}

/// Whether a writer of a map-like header (its resize lock, or any stripe's) died holding it.
fn map_holder_died(resize: &RawRwLock, stripes: &[Stripe; STRIPES]) -> bool {
    let died = |l: &RawRwLock| l.writer().is_owner_died();
    died(resize) || stripes.iter().any(|s| died(&s.lock))
}

/// The verdict of `walk` (of the collection `(kind, offset, unit counted)`), run while
/// holding what `take` takes. A holder found dead before (`died`) or while taking it
/// leaves the collection unchecked: repairing is its next user's job, not a checker's.
fn walk_held<'l, R: Repr>(
    (kind, off, unit): (&'static str, u64, &'static str),
    died: bool,
    take: impl FnOnce() -> Result<Option<Held<'l>>, relshm_sync::LockError>,
    walk: impl FnOnce() -> Result<u64, CollectionError>,
) -> Verdict {
    if died {
        return Verdict::Unchecked(HOLDER_DIED.into());
    }
    let r = match take() {
        Ok(Some(_held)) => walk(),
        Ok(None) => return Verdict::Unchecked(HOLDER_DIED.into()),
        Err(e) => Err(e.into()),
    };
    walked::<R>(kind, off, r, unit)
}

/// What kind of lock a [`LockSite`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockKind {
    /// A robust mutex ([`relshm_sync::RawMutex`]).
    Mutex,
    /// A robust readers-writer lock ([`RawRwLock`]).
    RwLock,
}

/// A lock inside a named collection, for tools that report lock states.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockSite {
    /// What it guards, for people: "list jobs", "map index stripe 3", ...
    pub label: String,
    /// Offset of the lock in the segment.
    pub offset: u64,
    /// Its kind.
    pub kind: LockKind,
    /// Whether it is worth reporting only when someone holds it (a map's stripes).
    pub only_if_held: bool,
}

/// What a named collection is, for tools.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Description {
    /// One line: "list of 3 element(s) at 0x1000 (list of 48-byte elements ...)", ...
    pub holds: String,
    /// The locks it holds.
    pub locks: Vec<LockSite>,
}

/// Describes the collection a directory entry names (a typed record, a port, or a bare
/// offset of a queue, stream, or older list or map), from the segment's bytes without
/// taking any lock; `None` for entries that name no collection.
pub fn describe(seg: &Segment, entry: &EntryInfo) -> Option<Description> {
    let name = String::from_utf8_lossy(&entry.name);
    if entry.type_info.name == <PortRecord as relshm_segment::directory::SegmentObject>::TYPE_NAME {
        return Some(describe_port(seg, &name, entry.offset));
    }
    Some(match Named::of(seg, entry)? {
        Named::Recorded(rec) => match rec.kind() {
            Some(kind) => {
                let mut d = describe_at(seg, &name, kind, rec.header());
                d.holds = format!("{} ({rec})", d.holds);
                d
            }
            None => plain(format!("{rec}")),
        },
        Named::BadRecord(fault) => plain(format!("unusable collection record: {fault}")),
        Named::Bare(kind, off) => {
            let mut d = describe_at(seg, &name, kind, off);
            if matches!(kind, CollectionKind::List | CollectionKind::Map) {
                d.holds = format!("{} (bare offset: made before typed records)", d.holds);
            }
            d
        }
    })
}

fn plain(holds: String) -> Description {
    Description {
        holds,
        locks: Vec::new(),
    }
}

fn site(label: String, offset: u64, kind: LockKind, only_if_held: bool) -> LockSite {
    LockSite {
        label,
        offset,
        kind,
        only_if_held,
    }
}

/// Describes the collection of `kind` whose header is at `off`.
fn describe_at(seg: &Segment, name: &str, kind: CollectionKind, off: u64) -> Description {
    let word = |at: u64| load(seg, at).unwrap_or(0);
    match kind {
        CollectionKind::List => Description {
            holds: format!("list of {} element(s) at {off:#x}", word(off + LIST_LEN)),
            locks: vec![site(
                format!("list {name}"),
                off + LIST_LOCK,
                LockKind::Mutex,
                false,
            )],
        },
        CollectionKind::Map => {
            let stripe = |i: u64| off + MAP_STRIPES + i * STRIPE_SIZE;
            let len: u64 = (0..STRIPES as u64)
                .map(|i| word(stripe(i) + STRIPE_LEN))
                .sum();
            let mut locks = vec![site(
                format!("map {name} resize"),
                off + MAP_RESIZE_LOCK,
                LockKind::RwLock,
                false,
            )];
            locks.extend((0..STRIPES as u64).map(|i| {
                site(
                    format!("map {name} stripe {i}"),
                    stripe(i),
                    LockKind::RwLock,
                    true,
                )
            }));
            Description {
                holds: format!("map of {len} entr(y/ies) at {off:#x}"),
                locks,
            }
        }
        CollectionKind::Queue => describe_queue(seg, name, off),
        CollectionKind::Stream => plain(format!(
            "byte stream with a {}-byte ring at {off:#x}",
            word(off + STREAM_CAPACITY)
        )),
        CollectionKind::LinkedQueue => plain(format!("linked queue at {off:#x}")),
        CollectionKind::BytesMap => {
            let len: u64 = (0..STRIPES as u64)
                .map(|i| word(off + MAP_STRIPES + i * STRIPE_SIZE + STRIPE_LEN))
                .sum();
            let mut d = describe_at(seg, name, CollectionKind::Map, off);
            d.holds = format!("byte map of {len} entr(y/ies) at {off:#x}");
            d
        }
        CollectionKind::Vec => Description {
            holds: format!("vec of {} element(s) at {off:#x}", word(off + VEC_LEN)),
            locks: vec![site(
                format!("vec {name}"),
                off + VEC_LOCK,
                LockKind::RwLock,
                false,
            )],
        },
    }
}

fn describe_queue(seg: &Segment, name: &str, off: u64) -> Description {
    let holds = match RawQueue::attach(seg, off) {
        Ok(q) => format!(
            "queue of {}/{} message(s) of up to {} bytes at {off:#x}",
            q.len(),
            q.capacity(),
            q.slot_size()
        ),
        Err(e) => format!("queue at {off:#x} (unreadable: {e})"),
    };
    Description {
        holds,
        locks: vec![site(
            format!("queue {name} reap"),
            off + QUEUE_REAP_LOCK,
            LockKind::Mutex,
            false,
        )],
    }
}

fn describe_port(seg: &Segment, name: &str, at: u64) -> Description {
    match load(seg, at + PORT_CONNECT_QUEUE) {
        Some(q) if CollectionKind::at(seg, q) == Some(CollectionKind::Queue) => {
            let mut d = describe_queue(seg, &format!("{name} connection"), q);
            d.holds = format!("port; connection {}", d.holds);
            d
        }
        _ => plain("port (connection queue unreadable)".into()),
    }
}
