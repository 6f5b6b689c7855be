//! What the named objects of a segment are and which locks they hold, for `inspect`.
//!
//! Collections (lists and maps with their typed directory records, ports, queues and
//! streams) are described by the library from the segment's bytes
//! ([`relshm::collections::verify::describe`]), with the offsets of their locks: this
//! module knows no collection layout. What is left here is the segment's own objects
//! (mutexes, readers-writer locks, plain `u64`s) by their recorded type name,
//! [`OBJECT_KINDS`]. Verifying is the library's too: see `relshm::collections::verify`.

use core::sync::atomic::AtomicU64;
use core::sync::atomic::Ordering::Acquire;

use relshm::collections::verify::{self, LockKind, LockSite};
use relshm::segment::Segment;
use relshm::segment::directory::{EntryInfo, SegmentObject};

use super::locks::{self, LockState};

/// The segment being looked at.
pub struct Ctx<'s> {
    /// The read-write mapping.
    pub seg: &'s Segment,
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
    /// One line: "list of 3 elements at 0x1000 (...)", "mutex", ...
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

/// The segment's own object types. Anything else that is not a collection is plain data:
/// listed, never interpreted.
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
        describe: describe_u64,
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
    if let Some(d) = verify::describe(ctx.seg, e) {
        return Described {
            holds: d.holds,
            locks: d.locks.iter().filter_map(|s| lock_state(ctx, s)).collect(),
        };
    }
    match object_kind(e) {
        Some(k) => (k.describe)(ctx, e),
        None => Described {
            holds: "plain data".into(),
            locks: Vec::new(),
        },
    }
}

/// The state of a collection's lock; `None` when unreadable, or free and worth reporting
/// only when held (free stripes are the normal case).
fn lock_state(ctx: &Ctx, s: &LockSite) -> Option<LockState> {
    let region = ctx.seg.region();
    let state = match s.kind {
        LockKind::Mutex => locks::mutex_at(region, s.label.clone(), s.offset),
        LockKind::RwLock => locks::rwlock_at(region, s.label.clone(), s.offset),
    }?;
    let idle = state.state == "free" && state.readers.unwrap_or(0) == 0;
    (!(s.only_if_held && idle)).then_some(state)
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

fn describe_u64(ctx: &Ctx, e: &EntryInfo) -> Described {
    Described {
        holds: format!("u64 value {}", ctx.load(e.offset).unwrap_or(0)),
        locks: Vec::new(),
    }
}
