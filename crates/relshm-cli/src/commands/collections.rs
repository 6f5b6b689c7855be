//! What the named objects of a segment are, which locks they hold, and how to verify them.
//!
//! Two dispatch tables, each easy to extend:
//! - [`OBJECT_KINDS`] by the directory entry's recorded type name (mutexes, readers-writer
//!   locks, port records, and `AtomicU64` entries, which is how `create_named` records the
//!   offset of a list, map, queue or stream);
//! - [`COLLECTIONS`] by the magic word at the offset such an entry holds.
//!
//! Lists and maps are generic over the element types and the pointer strategy, and their
//! header records only a fingerprint of both; [`verify_list`]/[`verify_map`] try the
//! instantiations in [`list_in`]/[`map_in`] until one opens. A collection of another
//! element layout is reported as unchecked, never as damaged.
//!
//! Lock offsets inside collection headers come from the layout tables documented in
//! `relshm-collections` (`ListHeader`, `MapHeader`, `queue::layout::Control`).

use core::sync::atomic::AtomicU64;
use core::sync::atomic::Ordering::Acquire;
use std::time::{Duration, Instant};

use relshm::segment::Segment;
use relshm::segment::directory::{EntryInfo, SegmentObject};
use relshm::segment::heap::Heap;
use relshm::sync::RawRwLock;
use relshm_collections::arena::{Arena, CollectionError};
use relshm_collections::list::{LIST_MAGIC, List};
use relshm_collections::map::{ByteKey, MAP_MAGIC, Map, STRIPES, Stripe};
use relshm_collections::port::PortRecord;
use relshm_collections::queue::Queue;
use relshm_collections::queue::layout::QUEUE_MAGIC;
use relshm_collections::stream::{MAX_STREAM_CAPACITY, STREAM_HEADER, STREAM_MAGIC};
use relshm_ptr::{BaseRel, Offset, Raw, Repr, SegRel, Swizzle};

use super::locks::{self, LockState};

/// `ListHeader`: `len` at 16, the robust mutex at 64.
const LIST_LEN: u64 = 16;
const LIST_LOCK: u64 = 64;
/// `MapHeader`: the resize lock at 64, then [`STRIPES`] stripes from 1152.
const MAP_RESIZE_LOCK: u64 = 64;
const MAP_STRIPES: u64 = 1152;
const STRIPE_SIZE: u64 = size_of::<Stripe>() as u64;
/// `Stripe`: the readers-writer lock, then `len`.
const STRIPE_LEN: u64 = size_of::<RawRwLock>() as u64;
/// `queue::layout::Control`: the reap lock at 256.
const QUEUE_REAP_LOCK: u64 = 256;
/// `PortRecord`: the connection queue's offset at 8.
const PORT_CONNECT_QUEUE: u64 = 8;
/// Stream control block: `capacity` at 8.
const STREAM_CAPACITY: u64 = 8;

const _: () = assert!(STRIPE_SIZE == 1152 && STRIPE_LEN == 1088);

/// How long `verify` waits for a collection lock held by a live thread before skipping.
const BUSY_WAIT: Duration = Duration::from_secs(5);

/// The segment being looked at.
pub struct Ctx<'s> {
    /// The read-write mapping.
    pub seg: &'s Segment,
    /// Its heap, with a lock timeout.
    pub heap: Heap,
}

impl Ctx<'_> {
    /// The u64 at `offset`, if it lies inside the mapping and is 8-aligned.
    pub fn load(&self, offset: u64) -> Option<u64> {
        let p = self.seg.region().resolve_as::<u64>(offset).ok()?;
        // SAFETY: in bounds and aligned (resolve_as); shared words are accessed atomically;
        // the mapping outlives this call.
        Some(unsafe { AtomicU64::from_ptr(p.as_ptr()) }.load(Acquire))
    }
}

/// What a named object is, for `inspect`.
pub struct Described {
    /// One line: "list of 3 elements at 0x1000", "mutex", ...
    pub holds: String,
    /// The locks it holds (or the collection it names holds).
    pub locks: Vec<LockState>,
}

/// What `verify` found for one object.
pub enum Outcome {
    /// Checked and consistent (with a short summary).
    Clean(String),
    /// Damaged: the message says what.
    Damaged(String),
    /// Not checked, and why (no failure).
    Unchecked(String),
    /// Nothing to check beyond the directory entry.
    Plain,
}

/// Handlers for one directory type name.
pub struct ObjectKind {
    /// The recorded type name (`SegmentObject::TYPE_NAME`).
    pub type_name: &'static str,
    /// Describes the object and lists its locks.
    pub describe: fn(&Ctx, &EntryInfo) -> Described,
    /// Verifies it.
    pub verify: fn(&Ctx, &EntryInfo) -> Outcome,
}

/// Known directory types. Anything else is plain data: listed, never interpreted.
pub const OBJECT_KINDS: &[ObjectKind] = &[
    ObjectKind {
        type_name: <relshm::sync::Mutex<u64> as SegmentObject>::TYPE_NAME,
        describe: describe_mutex,
        verify: |_, _| Outcome::Plain,
    },
    ObjectKind {
        type_name: <relshm::sync::RwLock<u64> as SegmentObject>::TYPE_NAME,
        describe: describe_rwlock,
        verify: |_, _| Outcome::Plain,
    },
    ObjectKind {
        type_name: <AtomicU64 as SegmentObject>::TYPE_NAME,
        describe: describe_holder,
        verify: verify_holder,
    },
    ObjectKind {
        type_name: <PortRecord as SegmentObject>::TYPE_NAME,
        describe: describe_port,
        verify: verify_port,
    },
];

/// Handlers for one collection, found by the magic word at the start of its header.
pub struct CollectionKind {
    /// The header's first word.
    pub magic: u64,
    /// Describes the collection at an offset (label for its locks given).
    pub describe: fn(&Ctx, &str, u64) -> Described,
    /// Verifies the collection at an offset.
    pub verify: fn(&Ctx, u64) -> Outcome,
}

/// Known collections.
pub const COLLECTIONS: &[CollectionKind] = &[
    CollectionKind {
        magic: LIST_MAGIC,
        describe: describe_list,
        verify: verify_list,
    },
    CollectionKind {
        magic: MAP_MAGIC,
        describe: describe_map,
        verify: verify_map,
    },
    CollectionKind {
        magic: QUEUE_MAGIC,
        describe: describe_queue,
        verify: verify_queue,
    },
    CollectionKind {
        magic: STREAM_MAGIC,
        describe: describe_stream,
        verify: verify_stream,
    },
];

fn object_kind(e: &EntryInfo) -> Option<&'static ObjectKind> {
    OBJECT_KINDS
        .iter()
        .find(|k| k.type_name == e.type_info.name)
}

/// The entry's name for messages.
pub fn entry_name(e: &EntryInfo) -> String {
    String::from_utf8_lossy(&e.name).into_owned()
}

/// Describes a directory entry.
pub fn describe(ctx: &Ctx, e: &EntryInfo) -> Described {
    match object_kind(e) {
        Some(k) => (k.describe)(ctx, e),
        None => Described {
            holds: "plain data".into(),
            locks: Vec::new(),
        },
    }
}

/// Verifies a directory entry's object.
pub fn verify(ctx: &Ctx, e: &EntryInfo) -> Outcome {
    object_kind(e).map_or(Outcome::Plain, |k| (k.verify)(ctx, e))
}

fn describe_mutex(ctx: &Ctx, e: &EntryInfo) -> Described {
    let label = format!("object {}", entry_name(e));
    Described {
        holds: "robust mutex".into(),
        locks: locks::mutex_at(ctx.seg.region(), label, e.offset)
            .into_iter()
            .collect(),
    }
}

fn describe_rwlock(ctx: &Ctx, e: &EntryInfo) -> Described {
    let label = format!("object {}", entry_name(e));
    Described {
        holds: "robust readers-writer lock".into(),
        locks: locks::rwlock_at(ctx.seg.region(), label, e.offset)
            .into_iter()
            .collect(),
    }
}

/// The collection an `AtomicU64` entry points to, if its value is the offset of a header
/// with a known magic.
fn held_collection(ctx: &Ctx, e: &EntryInfo) -> Option<(u64, &'static CollectionKind)> {
    let off = ctx.load(e.offset)?;
    let magic = ctx.load(off)?;
    COLLECTIONS
        .iter()
        .find(|k| k.magic == magic)
        .map(|k| (off, k))
}

fn describe_holder(ctx: &Ctx, e: &EntryInfo) -> Described {
    match held_collection(ctx, e) {
        Some((off, k)) => (k.describe)(ctx, &entry_name(e), off),
        None => Described {
            holds: format!("u64 value {}", ctx.load(e.offset).unwrap_or(0)),
            locks: Vec::new(),
        },
    }
}

fn verify_holder(ctx: &Ctx, e: &EntryInfo) -> Outcome {
    match held_collection(ctx, e) {
        Some((off, k)) => (k.verify)(ctx, off),
        None => Outcome::Plain,
    }
}

fn describe_port(ctx: &Ctx, e: &EntryInfo) -> Described {
    let name = entry_name(e);
    match ctx.load(e.offset + PORT_CONNECT_QUEUE) {
        Some(q) if ctx.load(q) == Some(QUEUE_MAGIC) => {
            let mut d = describe_queue(ctx, &format!("{name} connection"), q);
            d.holds = format!("port; connection {}", d.holds);
            d
        }
        _ => Described {
            holds: "port (connection queue unreadable)".into(),
            locks: Vec::new(),
        },
    }
}

fn verify_port(ctx: &Ctx, e: &EntryInfo) -> Outcome {
    if ctx.load(e.offset) != Some(relshm_collections::port::PORT_MAGIC) {
        return Outcome::Damaged("port record has the wrong magic number".into());
    }
    match ctx.load(e.offset + PORT_CONNECT_QUEUE) {
        Some(q) => match verify_queue(ctx, q) {
            Outcome::Damaged(m) => Outcome::Damaged(format!("connection queue: {m}")),
            other => other,
        },
        None => Outcome::Damaged("port record is unreadable".into()),
    }
}

fn describe_list(ctx: &Ctx, name: &str, off: u64) -> Described {
    let len = ctx.load(off + LIST_LEN).unwrap_or(0);
    Described {
        holds: format!("list of {len} element(s) at {off:#x}"),
        locks: locks::mutex_at(ctx.seg.region(), format!("list {name}"), off + LIST_LOCK)
            .into_iter()
            .collect(),
    }
}

fn describe_map(ctx: &Ctx, name: &str, off: u64) -> Described {
    let region = ctx.seg.region();
    let stripe = |i: u64| off + MAP_STRIPES + i * STRIPE_SIZE;
    let len: u64 = (0..STRIPES as u64)
        .map(|i| ctx.load(stripe(i) + STRIPE_LEN).unwrap_or(0))
        .sum();
    let mut locks: Vec<LockState> =
        locks::rwlock_at(region, format!("map {name} resize"), off + MAP_RESIZE_LOCK)
            .into_iter()
            .collect();
    // Free stripes are the normal case: list only the ones someone holds.
    locks.extend(
        (0..STRIPES as u64)
            .filter_map(|i| locks::rwlock_at(region, format!("map {name} stripe {i}"), stripe(i)))
            .filter(|l| l.state != "free" || l.readers.unwrap_or(0) > 0),
    );
    Described {
        holds: format!("map of {len} entr(y/ies) at {off:#x}"),
        locks,
    }
}

fn describe_queue(ctx: &Ctx, name: &str, off: u64) -> Described {
    let holds = match Queue::attach(&ctx.heap, off) {
        Ok(q) => format!(
            "queue of {}/{} message(s) of up to {} bytes at {off:#x}",
            q.len(),
            q.capacity(),
            q.slot_size()
        ),
        Err(e) => format!("queue at {off:#x} (unreadable: {e})"),
    };
    Described {
        holds,
        locks: locks::mutex_at(
            ctx.seg.region(),
            format!("queue {name} reap"),
            off + QUEUE_REAP_LOCK,
        )
        .into_iter()
        .collect(),
    }
}

fn describe_stream(ctx: &Ctx, _name: &str, off: u64) -> Described {
    let cap = ctx.load(off + STREAM_CAPACITY).unwrap_or(0);
    Described {
        holds: format!("byte stream with a {cap}-byte ring at {off:#x}"),
        locks: Vec::new(),
    }
}

fn verify_queue(ctx: &Ctx, off: u64) -> Outcome {
    match Queue::attach(&ctx.heap, off) {
        Ok(q) => Outcome::Clean(format!(
            "queue: control block valid, {}/{} message(s)",
            q.len(),
            q.capacity()
        )),
        Err(e) => Outcome::Damaged(format!("queue at {off:#x}: {e}")),
    }
}

fn verify_stream(ctx: &Ctx, off: u64) -> Outcome {
    let cap = ctx.load(off + STREAM_CAPACITY).unwrap_or(0);
    if off % 64 != 0 {
        return Outcome::Damaged(format!("stream at {off:#x}: control block not 64-aligned"));
    }
    if !cap.is_power_of_two() || !(64..=MAX_STREAM_CAPACITY).contains(&cap) {
        return Outcome::Damaged(format!(
            "stream at {off:#x}: ring capacity {cap} out of range"
        ));
    }
    if ctx
        .seg
        .region()
        .resolve(off, STREAM_HEADER + cap, 64)
        .is_err()
    {
        return Outcome::Damaged(format!("stream at {off:#x}: ring runs past the segment"));
    }
    Outcome::Clean(format!("stream: {cap}-byte ring in bounds"))
}

/// Waits until none of `locks` is held by a live thread (up to [`BUSY_WAIT`]); `Err`
/// with the outcome to report when one is stuck or stays busy. Taking such a lock to
/// verify would hang (a dead thread's id never goes away) or wait unboundedly.
fn wait_unlocked(ctx: &Ctx, what: &str, lock_offsets: &[u64], rw: bool) -> Result<(), Outcome> {
    let deadline = Instant::now() + BUSY_WAIT;
    loop {
        let region = ctx.seg.region();
        let states: Vec<LockState> = lock_offsets
            .iter()
            .filter_map(|&o| {
                if rw {
                    locks::rwlock_at(region, String::new(), o)
                } else {
                    locks::mutex_at(region, String::new(), o)
                }
            })
            .collect();
        if let Some(s) = states.iter().find(|s| s.state == "dead-owner") {
            return Err(Outcome::Damaged(format!(
                "{what}: lock at {:#x} is held by thread {} which no longer exists (the kernel \
                 did not release it); every locker would hang: rebuild this collection",
                s.offset,
                s.owner_tid.unwrap_or(0)
            )));
        }
        if let Some(s) = states.iter().find(|s| s.state == "not-recoverable") {
            return Err(Outcome::Damaged(format!(
                "{what}: lock at {:#x} is not recoverable (an earlier repair failed)",
                s.offset
            )));
        }
        if !states.iter().any(|s| s.state == "held") {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(Outcome::Unchecked(format!(
                "{what}: its lock stayed held for {BUSY_WAIT:?}; try again later"
            )));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn collection_outcome(
    what: &str,
    strategy: &str,
    r: Result<u64, CollectionError>,
    unit: &str,
) -> Outcome {
    match r {
        Ok(n) => Outcome::Clean(format!(
            "{what} ({strategy} pointers): {n} {unit}, links consistent"
        )),
        Err(e) => Outcome::Damaged(format!("{what} ({strategy} pointers): {e}")),
    }
}

/// Tries each strategy's arena in turn; `f` returns `None` when the collection's layout
/// does not match any instantiation for that strategy.
fn by_strategy(
    seg: &Segment,
    mut f: impl FnMut(Strategy<'_>) -> Option<(Result<u64, CollectionError>, &'static str)>,
) -> Option<(Result<u64, CollectionError>, &'static str, &'static str)> {
    if let Ok(a) = Arena::<Offset>::new(seg) {
        if let Some((r, u)) = f(Strategy::Offset(&a)) {
            return Some((r, "offset", u));
        }
    }
    if let Ok(a) = Arena::<BaseRel>::new(seg) {
        if let Some((r, u)) = f(Strategy::BaseRel(&a)) {
            return Some((r, "baserel", u));
        }
    }
    if let Ok(a) = Arena::<SegRel>::new(seg) {
        if let Some((r, u)) = f(Strategy::SegRel(&a)) {
            return Some((r, "segrel", u));
        }
    }
    if let Ok(a) = Arena::<Swizzle>::private(seg) {
        if let Some((r, u)) = f(Strategy::Swizzle(&a)) {
            return Some((r, "swizzle", u));
        }
    }
    if seg.fixed_base().is_some() {
        if let Ok(a) = Arena::<Raw>::fixed(seg) {
            if let Some((r, u)) = f(Strategy::Raw(&a)) {
                return Some((r, "raw", u));
            }
        }
    }
    None
}

/// One arena per pointer strategy.
enum Strategy<'x> {
    Offset(&'x Arena<'x, Offset>),
    BaseRel(&'x Arena<'x, BaseRel>),
    SegRel(&'x Arena<'x, SegRel>),
    Swizzle(&'x Arena<'x, Swizzle>),
    Raw(&'x Arena<'x, Raw>),
}

/// Opens the list at `off` as each known element type; verifies the first that opens.
fn list_in<'a, R: Repr>(arena: &'a Arena<'a, R>, off: u64) -> Option<Result<u64, CollectionError>> {
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

/// Opens the map at `off` as each known key/value type pair; verifies the first that opens.
fn map_in<'a, R: Repr>(arena: &'a Arena<'a, R>, off: u64) -> Option<Result<u64, CollectionError>> {
    macro_rules! try_values {
        ($k:ty; $($v:ty),*) => {$(
            if let Ok(m) = Map::<$k, $v, R>::open(arena, off) {
                return Some(m.verify());
            }
        )*};
    }
    macro_rules! try_keys {
        ($($k:ty),*) => {$( try_values!($k; u64, u32, [u64; 2], [u64; 4]); )*};
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

fn verify_list(ctx: &Ctx, off: u64) -> Outcome {
    let what = format!("list at {off:#x}");
    if let Err(o) = wait_unlocked(ctx, &what, &[off + LIST_LOCK], false) {
        return o;
    }
    let found = by_strategy(ctx.seg, |s| {
        let r = match s {
            Strategy::Offset(a) => list_in(a, off),
            Strategy::BaseRel(a) => list_in(a, off),
            Strategy::SegRel(a) => list_in(a, off),
            Strategy::Swizzle(a) => list_in(a, off),
            Strategy::Raw(a) => list_in(a, off),
        };
        r.map(|r| (r, "element(s)"))
    });
    match found {
        Some((r, strategy, unit)) => collection_outcome(&what, strategy, r, unit),
        None => Outcome::Unchecked(format!(
            "{what}: its element type or pointer strategy is not one this build knows \
             (raw-pointer lists are only checkable at their fixed address); header magic valid"
        )),
    }
}

fn verify_map(ctx: &Ctx, off: u64) -> Outcome {
    let what = format!("map at {off:#x}");
    let mut lock_offsets = vec![off + MAP_RESIZE_LOCK];
    lock_offsets.extend((0..STRIPES as u64).map(|i| off + MAP_STRIPES + i * STRIPE_SIZE));
    if let Err(o) = wait_unlocked(ctx, &what, &lock_offsets, true) {
        return o;
    }
    let found = by_strategy(ctx.seg, |s| {
        let r = match s {
            Strategy::Offset(a) => map_in(a, off),
            Strategy::BaseRel(a) => map_in(a, off),
            Strategy::SegRel(a) => map_in(a, off),
            Strategy::Swizzle(a) => map_in(a, off),
            Strategy::Raw(a) => map_in(a, off),
        };
        r.map(|r| (r, "entr(y/ies)"))
    });
    match found {
        Some((r, strategy, unit)) => collection_outcome(&what, strategy, r, unit),
        None => Outcome::Unchecked(format!(
            "{what}: its key/value types or pointer strategy are not ones this build knows \
             (raw-pointer maps are only checkable at their fixed address); header magic valid"
        )),
    }
}
