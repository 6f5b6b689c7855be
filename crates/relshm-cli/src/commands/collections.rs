//! What the named objects of a segment are and which locks they hold, for `inspect`.
//!
//! One dispatch table, [`OBJECT_KINDS`], by the directory entry's recorded type name
//! (mutexes, readers-writer locks, port records, and `AtomicU64` entries, which is how
//! `create_named` records the offset of a list, map, queue or stream); the collection such
//! an entry records is recognised by the library
//! ([`CollectionKind::recorded`](relshm_collections::verify::CollectionKind::recorded)).
//! Verifying is the library's: see `relshm_collections::verify`.
//!
//! Lock offsets inside collection headers come from `relshm_collections::verify::offsets`.

use core::sync::atomic::AtomicU64;
use core::sync::atomic::Ordering::Acquire;

use relshm::segment::Segment;
use relshm::segment::directory::{EntryInfo, SegmentObject};
use relshm::segment::heap::Heap;
use relshm_collections::map::STRIPES;
use relshm_collections::port::PortRecord;
use relshm_collections::queue::Queue;
use relshm_collections::verify::CollectionKind;
use relshm_collections::verify::offsets::{
    LIST_LEN, LIST_LOCK, MAP_RESIZE_LOCK, MAP_STRIPES, PORT_CONNECT_QUEUE, QUEUE_REAP_LOCK,
    STREAM_CAPACITY, STRIPE_LEN, STRIPE_SIZE,
};

use super::locks::{self, LockState};

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

/// Handlers for one directory type name.
pub struct ObjectKind {
    /// The recorded type name (`SegmentObject::TYPE_NAME`).
    pub type_name: &'static str,
    /// Describes the object and lists its locks.
    pub describe: fn(&Ctx, &EntryInfo) -> Described,
}

/// Known directory types. Anything else is plain data: listed, never interpreted.
pub const OBJECT_KINDS: &[ObjectKind] = &[
    ObjectKind {
        type_name: <relshm::sync::Mutex<u64> as SegmentObject>::TYPE_NAME,
        describe: describe_mutex,
    },
    ObjectKind {
        type_name: <relshm::sync::RwLock<u64> as SegmentObject>::TYPE_NAME,
        describe: describe_rwlock,
    },
    ObjectKind {
        type_name: <AtomicU64 as SegmentObject>::TYPE_NAME,
        describe: describe_holder,
    },
    ObjectKind {
        type_name: <PortRecord as SegmentObject>::TYPE_NAME,
        describe: describe_port,
    },
];

/// Describes the collection of `kind` at `off` (label for its locks given).
fn describe_collection(ctx: &Ctx, kind: CollectionKind, name: &str, off: u64) -> Described {
    match kind {
        CollectionKind::List => describe_list(ctx, name, off),
        CollectionKind::Map => describe_map(ctx, name, off),
        CollectionKind::Queue => describe_queue(ctx, name, off),
        CollectionKind::Stream => describe_stream(ctx, name, off),
    }
}

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

fn describe_holder(ctx: &Ctx, e: &EntryInfo) -> Described {
    match CollectionKind::recorded(ctx.seg, e) {
        Some((kind, off)) => describe_collection(ctx, kind, &entry_name(e), off),
        None => Described {
            holds: format!("u64 value {}", ctx.load(e.offset).unwrap_or(0)),
            locks: Vec::new(),
        },
    }
}

fn describe_port(ctx: &Ctx, e: &EntryInfo) -> Described {
    let name = entry_name(e);
    match ctx.load(e.offset + PORT_CONNECT_QUEUE) {
        Some(q) if CollectionKind::at(ctx.seg, q) == Some(CollectionKind::Queue) => {
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
