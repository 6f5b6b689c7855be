//! Whole-segment verification that walks the collections too: [`Collections`] is the
//! [`ObjectChecker`] that [`verify_segment`] hands to
//! [`Segment::verify_with`](relshm_segment::Segment::verify_with).
//!
//! A collection made with `create_named` is recorded in the directory as an `AtomicU64`
//! holding its header's offset; ports are recorded as a [`PortRecord`]. The header's
//! first word says which collection it is ([`CollectionKind`]). Queues and streams are
//! checked from their control blocks. Lists and maps are generic over their element types
//! and pointer strategy, and their header records only a fingerprint of the element
//! sizes and alignments and the strategy; their checks depend on nothing else, so the
//! checker opens them as each shape it knows ([`list_in`], [`map_in`]) under each
//! strategy and verifies the first that matches. A list or map of another shape is
//! [`Verdict::Unchecked`], never clean, and so is a recorded offset whose header this
//! build does not recognise.
//!
//! ```
//! use relshm_collections::arena::Arena;
//! use relshm_collections::map::Map;
//! use relshm_collections::verify::verify_segment;
//! use relshm_ptr::Offset;
//! use relshm_segment::{CreateOptions, Segment};
//!
//! let seg = Segment::create_unnamed(&CreateOptions::new(4 << 20))?;
//! let arena = Arena::<Offset>::new(&seg)?;
//! Map::<u64, u64, Offset>::create_named(&arena, "known")?.insert(1, 2)?;
//! assert!(verify_segment(&seg).is_clean());
//!
//! // A value shape the checker does not know: reported, and the segment is not clean.
//! Map::<u64, [u8; 48], Offset>::create_named(&arena, "unknown")?;
//! let report = verify_segment(&seg);
//! assert!(!report.is_clean());
//! assert_eq!(report.unchecked().count(), 1);
//! assert_eq!(report.corrupt().count(), 0);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use core::mem::offset_of;
use core::sync::atomic::AtomicU64;

use relshm_ptr::{BaseRel, Offset, Raw, Repr, SegRel, Swizzle};
use relshm_segment::Segment;
use relshm_segment::verify::{
    Damage, ObjectChecker, ObjectSite, PlainObjects, SegmentReport, Verdict, VerifyOptions,
    wait_unlocked,
};
use relshm_sync::{LockError, RawRwLock};

use crate::arena::{Arena, CollectionError};
use crate::list::{LIST_MAGIC, List, ListHeader};
use crate::map::{ByteKey, MAP_MAGIC, Map, MapHeader, STRIPES, Stripe};
use crate::port::{PORT_MAGIC, PortRecord};
use crate::queue::Queue;
use crate::queue::layout::{Control, QUEUE_MAGIC};
use crate::stream::{MAX_STREAM_CAPACITY, STREAM_HEADER, STREAM_MAGIC};

/// Where the locks and counters of collection headers lie, for tools that read them
/// without opening the collection (taken from the layout types, so they cannot drift).
pub mod offsets {
    use super::*;

    type L = ListHeader<u64, Offset>;
    type M = MapHeader<u64, u64, Offset>;

    /// `ListHeader::len` (the element count).
    pub const LIST_LEN: u64 = offset_of!(L, len) as u64;
    /// `ListHeader::lock` (a robust mutex).
    pub const LIST_LOCK: u64 = offset_of!(L, lock) as u64;
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
        assert!(offset_of!(MapHeader<ByteKey<64>, u8, SegRel>, stripes) as u64 == MAP_STRIPES);
        assert!(size_of::<RawRwLock>() as u64 == STRIPE_LEN);
    };
}

use offsets::*;

/// A collection recognised by the first word of its header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CollectionKind {
    /// A [`List`].
    List,
    /// A [`Map`].
    Map,
    /// A [`Queue`].
    Queue,
    /// A byte [`stream`](crate::stream).
    Stream,
}

impl CollectionKind {
    /// The collection whose header starts with `magic`.
    pub fn of_magic(magic: u64) -> Option<Self> {
        match magic {
            LIST_MAGIC => Some(Self::List),
            MAP_MAGIC => Some(Self::Map),
            QUEUE_MAGIC => Some(Self::Queue),
            STREAM_MAGIC => Some(Self::Stream),
            _ => None,
        }
    }

    /// The collection whose header is at `offset` of `seg`, if any.
    pub fn at(seg: &Segment, offset: u64) -> Option<Self> {
        Self::of_magic(load(seg, offset)?)
    }

    /// The collection an `AtomicU64` directory entry records (its value is the offset of
    /// a header this build recognises), with that offset.
    pub fn recorded(
        seg: &Segment,
        entry: &relshm_segment::directory::EntryInfo,
    ) -> Option<(Self, u64)> {
        let off = load(seg, entry.offset)?;
        Some((Self::at(seg, off)?, off))
    }
}

/// The u64 at `offset` of `seg`, if it lies inside the mapping and is 8-aligned.
fn load(seg: &Segment, offset: u64) -> Option<u64> {
    let p = seg.region().resolve_as::<AtomicU64>(offset).ok()?;
    // SAFETY: in bounds and aligned (resolve_as); shared words are accessed atomically;
    // the mapping outlives this call.
    Some(unsafe { p.as_ref() }.load(core::sync::atomic::Ordering::Acquire))
}

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
        if site.is::<AtomicU64>()
            && let Some((kind, off)) = CollectionKind::recorded(site.segment, site.entry)
        {
            return verify_collection(site, kind, off);
        }
        PlainObjects.check(site)
    }
}

/// The verdict on the collection of `kind` whose header is at `off`.
pub fn verify_collection(site: &ObjectSite<'_>, kind: CollectionKind, off: u64) -> Verdict {
    match kind {
        CollectionKind::List => verify_list(site, off),
        CollectionKind::Map => verify_map(site, off),
        CollectionKind::Queue => verify_queue(site, off),
        CollectionKind::Stream => verify_stream(site.segment, off),
    }
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
    match Queue::attach(site.heap, off) {
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
    if off % 64 != 0 {
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

/// The verdict on a list or map check under a shape and strategy that opened.
fn walked(what: &str, strategy: &str, r: Result<u64, CollectionError>, unit: &str) -> Verdict {
    match Verdict::of(r, collection_lock, |n| {
        format!("{what} ({strategy} pointers): {n} {unit}, links consistent")
    }) {
        Verdict::Corrupt(source) => Verdict::corrupt(Damage::Within {
            what: format!("{what} ({strategy} pointers)"),
            source,
        }),
        other => other,
    }
}

type Found = (Result<u64, CollectionError>, &'static str);

/// A check of the list or map at an offset under one strategy: `None` when its layout
/// fingerprint matches no shape this build knows for that strategy.
trait Walk {
    fn walk<R: Repr>(&self, arena: &Arena<R>, off: u64) -> Option<Result<u64, CollectionError>>;
}

struct ListWalk;
struct MapWalk;

impl Walk for ListWalk {
    fn walk<R: Repr>(&self, arena: &Arena<R>, off: u64) -> Option<Result<u64, CollectionError>> {
        list_in(arena, off)
    }
}

impl Walk for MapWalk {
    fn walk<R: Repr>(&self, arena: &Arena<R>, off: u64) -> Option<Result<u64, CollectionError>> {
        map_in(arena, off)
    }
}

/// Runs `w` at `off` under each strategy's arena in turn, until one matches.
fn by_strategy(seg: &Segment, w: &impl Walk, off: u64) -> Option<Found> {
    if let Ok(a) = Arena::<Offset>::new(seg)
        && let Some(r) = w.walk(&a, off)
    {
        return Some((r, "offset"));
    }
    if let Ok(a) = Arena::<BaseRel>::new(seg)
        && let Some(r) = w.walk(&a, off)
    {
        return Some((r, "baserel"));
    }
    if let Ok(a) = Arena::<SegRel>::new(seg)
        && let Some(r) = w.walk(&a, off)
    {
        return Some((r, "segrel"));
    }
    if let Ok(a) = Arena::<Swizzle>::private(seg)
        && let Some(r) = w.walk(&a, off)
    {
        return Some((r, "swizzle"));
    }
    if seg.fixed_base().is_some()
        && let Ok(a) = Arena::<Raw>::fixed(seg)
        && let Some(r) = w.walk(&a, off)
    {
        return Some((r, "raw"));
    }
    None
}

/// Opens the list at `off` as each element shape this build knows and verifies the first
/// whose layout fingerprint matches (a list's check depends on nothing but the element's
/// size and alignment).
pub fn list_in<R: Repr>(arena: &Arena<R>, off: u64) -> Option<Result<u64, CollectionError>> {
    macro_rules! try_elements {
        ($($t:ty),* $(,)?) => {$(
            if let Ok(l) = List::<$t, R>::open(arena, off) {
                return Some(l.verify());
            }
        )*};
    }
    try_elements!(
        u64,
        u32,
        u16,
        u8,
        [u64; 2],
        [u64; 3],
        [u64; 4],
        [u64; 8],
        ByteKey<16>,
        ByteKey<32>,
        ByteKey<64>,
    );
    None
}

/// Opens the map at `off` as each key/value shape this build knows and verifies the first
/// whose layout fingerprint matches (a map's check reads the hashes stored with the
/// entries, so it depends on nothing but the key's and value's sizes and alignments).
pub fn map_in<R: Repr>(arena: &Arena<R>, off: u64) -> Option<Result<u64, CollectionError>> {
    macro_rules! try_values {
        ($k:ty; $($v:ty),*) => {$(
            if let Ok(m) = Map::<$k, $v, R>::open(arena, off) {
                return Some(m.verify());
            }
        )*};
    }
    macro_rules! try_keys {
        ($($k:ty),*) => {$(
            try_values!($k; u64, u32, [u64; 2], [u64; 4], [u8; 8], [u8; 16], [u8; 24], [u8; 32]);
        )*};
    }
    try_keys!(
        u64,
        u32,
        [u64; 2],
        ByteKey<16>,
        ByteKey<24>,
        ByteKey<32>,
        ByteKey<64>
    );
    None
}

fn verify_list(site: &ObjectSite<'_>, off: u64) -> Verdict {
    let what = format!("list at {off:#x}");
    if let Err(v) = wait_unlocked(site.segment, &[off + LIST_LOCK], site.options.lock_wait) {
        return v;
    }
    match by_strategy(site.segment, &ListWalk, off) {
        Some((r, strategy)) => walked(&what, strategy, r, "element(s)"),
        None => Verdict::Unchecked(format!(
            "{what}: its element shape or pointer strategy is not one this build knows, or its \
             layout word is damaged (raw-pointer lists are only checkable at their fixed \
             address); header magic valid"
        )),
    }
}

fn verify_map(site: &ObjectSite<'_>, off: u64) -> Verdict {
    let what = format!("map at {off:#x}");
    // A readers-writer lock starts with its writer mutex: those are what can get stuck.
    let mut locks = vec![off + MAP_RESIZE_LOCK];
    locks.extend((0..STRIPES as u64).map(|i| off + MAP_STRIPES + i * STRIPE_SIZE));
    if let Err(v) = wait_unlocked(site.segment, &locks, site.options.lock_wait) {
        return v;
    }
    match by_strategy(site.segment, &MapWalk, off) {
        Some((r, strategy)) => walked(&what, strategy, r, "entr(y/ies)"),
        None => Verdict::Unchecked(format!(
            "{what}: its key/value shapes or pointer strategy are not ones this build knows, or \
             its layout word is damaged (raw-pointer maps are only checkable at their fixed \
             address); header magic valid"
        )),
    }
}
