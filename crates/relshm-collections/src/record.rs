//! [`CollectionRecord`]: what `create_named` registers in the segment's directory, so any
//! process or tool knows what a named collection is without knowing its Rust types: its
//! [kind](CollectionKind), pointer strategy ([`Repr::ID`]), element (key, value) sizes and
//! alignments, layout version, and the offset of its header. `open_named` checks the
//! record against the types it is asked for ([`CollectionError::RecordMismatch`]);
//! `verify` and the `relshm` tool walk the collection from it.
//!
//! # Layout (`#[repr(C)]`, 80 bytes, little-endian words, written once before the
//! directory entry is published, never changed after)
//!
//! | offset | field | meaning |
//! |---|---|---|
//! | 0 | `magic` | [`RECORD_MAGIC`] (`"RSHMCOL1"`) |
//! | 8 | `format` | [`RECORD_FORMAT`]: the version of this record layout |
//! | 16 | `kind` | [`CollectionKind::code`]: 1 list, 2 map, 3 queue, 4 stream, 5 linked queue, 6 vec, 7 bytes map |
//! | 24 | `strategy` | [`Repr::ID`] of the links: 1 raw, 2 offset, 3 baserel, 4 segrel, 5 swizzle (queues and streams: baserel, their segment offsets) |
//! | 32 | `layout` | the collection's own layout version (its node and header format) |
//! | 40 | `header` | offset of the collection's header in the segment |
//! | 48 | `key_size` | `size_of` the element (list) or key (map) |
//! | 56 | `key_align` | `align_of` the same |
//! | 64 | `value_size` | `size_of` the value (map; 0 for a list) |
//! | 72 | `value_align` | `align_of` the value (map; 1 for a list) |

use core::fmt;
use core::sync::atomic::{AtomicU64, Ordering::Acquire};

use relshm_ptr::{BaseRel, Offset, Raw, Repr, SegRel, Swizzle};
use relshm_segment::Segment;
use relshm_segment::SegmentError;
use relshm_segment::directory::{Directory, DirectoryError, EntryInfo, SegmentObject};

use crate::arena::{CollectionError, Result};
use crate::shape::Shape;

/// `"RSHMCOL1"` in little-endian: the first word of every collection record.
pub const RECORD_MAGIC: u64 = u64::from_le_bytes(*b"RSHMCOL1");
/// The version of the record layout this build writes and reads.
pub const RECORD_FORMAT: u64 = 1;

/// What kind of collection a header or record is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CollectionKind {
    /// A [`List`](crate::list::List).
    List,
    /// A [`Map`](crate::map::Map).
    Map,
    /// A [`Queue`](crate::queue::Queue).
    Queue,
    /// A byte [`stream`](crate::stream).
    Stream,
    /// A [`LinkedQueue`](crate::queue::linked::LinkedQueue).
    LinkedQueue,
    /// A [`Vec`](crate::vec::Vec).
    Vec,
    /// A [`BytesMap`](crate::bytes_map::BytesMap).
    BytesMap,
}

impl CollectionKind {
    /// The number a record stores for this kind.
    pub const fn code(self) -> u64 {
        match self {
            Self::List => 1,
            Self::Map => 2,
            Self::Queue => 3,
            Self::Stream => 4,
            Self::LinkedQueue => 5,
            Self::Vec => 6,
            Self::BytesMap => 7,
        }
    }

    /// The kind a record's number stands for.
    pub fn of_code(code: u64) -> Option<Self> {
        [
            Self::List,
            Self::Map,
            Self::Queue,
            Self::Stream,
            Self::LinkedQueue,
            Self::Vec,
            Self::BytesMap,
        ]
        .into_iter()
        .find(|k| k.code() == code)
    }

    /// The collection whose header starts with `magic`.
    pub fn of_magic(magic: u64) -> Option<Self> {
        match magic {
            crate::list::LIST_MAGIC => Some(Self::List),
            crate::map::MAP_MAGIC => Some(Self::Map),
            crate::queue::layout::QUEUE_MAGIC => Some(Self::Queue),
            crate::stream::STREAM_MAGIC => Some(Self::Stream),
            crate::queue::linked::LINKED_MAGIC => Some(Self::LinkedQueue),
            crate::vec::VEC_MAGIC => Some(Self::Vec),
            crate::bytes_map::BYTES_MAP_MAGIC => Some(Self::BytesMap),
            _ => None,
        }
    }

    /// The collection whose header is at `offset` of `seg`, if any.
    pub fn at(seg: &Segment, offset: u64) -> Option<Self> {
        Self::of_magic(load(seg, offset)?)
    }

    /// The collection a bare `AtomicU64` directory entry (how segments made before typed
    /// records named collections, queues and streams included) points to, with the offset
    /// it holds.
    pub fn recorded(seg: &Segment, entry: &EntryInfo) -> Option<(Self, u64)> {
        let off = load(seg, entry.offset)?;
        Some((Self::at(seg, off)?, off))
    }

    /// Lower-case name for messages.
    pub fn name(self) -> &'static str {
        match self {
            Self::List => "list",
            Self::Map => "map",
            Self::Queue => "queue",
            Self::Stream => "stream",
            Self::LinkedQueue => "linked queue",
            Self::Vec => "vec",
            Self::BytesMap => "bytes map",
        }
    }
}

/// The u64 at `offset` of `seg`, if it lies inside the mapping and is 8-aligned.
pub(crate) fn load(seg: &Segment, offset: u64) -> Option<u64> {
    let p = seg.region().resolve_as::<AtomicU64>(offset).ok()?;
    // SAFETY: in bounds and aligned (resolve_as); shared words are accessed atomically;
    // the mapping outlives this call.
    Some(unsafe { p.as_ref() }.load(Acquire))
}

/// The name of the strategy a record's number stands for.
pub fn strategy_name(id: u64) -> Option<&'static str> {
    fn named<R: Repr>(id: u64) -> Option<&'static str> {
        (u64::from(R::ID) == id).then_some(R::NAME)
    }
    named::<Raw>(id)
        .or_else(|| named::<Offset>(id))
        .or_else(|| named::<BaseRel>(id))
        .or_else(|| named::<SegRel>(id))
        .or_else(|| named::<Swizzle>(id))
}

/// Why a record read from a segment is unusable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordFault {
    /// The bytes cannot be a record (wrong magic, impossible shapes): damage.
    #[error("damaged: {0}")]
    Damaged(String),
    /// A record this build cannot interpret (a newer format, an unknown kind or strategy).
    #[error("{0}")]
    Unknown(String),
}

/// A named collection's self-description in the directory (see the module docs).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CollectionRecord {
    magic: u64,
    format: u64,
    kind: u64,
    strategy: u64,
    layout: u64,
    header: u64,
    key_size: u64,
    key_align: u64,
    value_size: u64,
    value_align: u64,
}

const _: () = assert!(size_of::<CollectionRecord>() == 80);

// SAFETY: #[repr(C)] of u64s: plain data, every bit pattern valid, no pointers, no drop
// glue; written once before its directory entry is published and never changed after, so
// shared references see no concurrent mutation.
unsafe impl SegmentObject for CollectionRecord {
    const TYPE_NAME: &'static str = "relshm::CollectionRecord";
    const TYPE_VERSION: u32 = 1;
}

impl CollectionRecord {
    fn new<R: Repr>(kind: CollectionKind, layout: u64, key: Shape, value: Shape) -> Self {
        CollectionRecord {
            magic: RECORD_MAGIC,
            format: RECORD_FORMAT,
            kind: kind.code(),
            strategy: R::ID.into(),
            layout,
            header: 0,
            key_size: key.size,
            key_align: key.align,
            value_size: value.size,
            value_align: value.align,
        }
    }

    /// The record of a `List<T, R>` (header offset 0 until [`at`](Self::at)).
    pub fn list<T, R: Repr>() -> Self {
        let none = Shape { size: 0, align: 1 };
        Self::new::<R>(
            CollectionKind::List,
            crate::list::LAYOUT_VERSION,
            Shape::of::<T>(),
            none,
        )
    }

    /// The record of a `Map<K, V, R>` (header offset 0 until [`at`](Self::at)).
    pub fn map<K, V, R: Repr>() -> Self {
        Self::new::<R>(
            CollectionKind::Map,
            crate::map::LAYOUT_VERSION,
            Shape::of::<K>(),
            Shape::of::<V>(),
        )
    }

    /// The record of a [`Vec<T, R>`](crate::vec::Vec) (header offset 0 until
    /// [`at`](Self::at)).
    pub fn vec<T, R: Repr>() -> Self {
        let none = Shape { size: 0, align: 1 };
        Self::new::<R>(
            CollectionKind::Vec,
            crate::vec::LAYOUT_VERSION,
            Shape::of::<T>(),
            none,
        )
    }

    /// The record of a [`BytesMap<R>`](crate::bytes_map::BytesMap) (header offset 0 until
    /// [`at`](Self::at)): keys and values are byte strings (recorded as 1-byte elements).
    pub fn bytes_map<R: Repr>() -> Self {
        Self::new::<R>(
            CollectionKind::BytesMap,
            crate::bytes_map::LAYOUT_VERSION,
            Shape::of::<u8>(),
            Shape::of::<u8>(),
        )
    }

    /// The record of a `LinkedQueue<T, R>` (header offset 0 until [`at`](Self::at)).
    pub fn linked_queue<T, R: Repr>() -> Self {
        let none = Shape { size: 0, align: 1 };
        Self::new::<R>(
            CollectionKind::LinkedQueue,
            crate::queue::linked::LAYOUT_VERSION,
            Shape::of::<T>(),
            none,
        )
    }

    /// The record of a [`Queue<T>`](crate::queue::Queue) (header offset 0 until
    /// [`at`](Self::at)). Queues hold segment offsets, recorded as the
    /// [`BaseRel`] strategy (offsets from the segment's base).
    pub fn queue<T>() -> Self {
        let none = Shape { size: 0, align: 1 };
        Self::new::<BaseRel>(
            CollectionKind::Queue,
            u64::from(crate::queue::layout::QUEUE_VERSION),
            Shape::of::<T>(),
            none,
        )
    }

    /// The record of a byte [`Stream`](crate::stream::Stream) (header offset 0 until
    /// [`at`](Self::at)); its elements are bytes, its links segment offsets
    /// ([`BaseRel`]).
    pub fn stream() -> Self {
        let none = Shape { size: 0, align: 1 };
        Self::new::<BaseRel>(
            CollectionKind::Stream,
            crate::stream::LAYOUT_VERSION,
            Shape::of::<u8>(),
            none,
        )
    }

    /// The same record for the header at `header`.
    pub fn at(self, header: u64) -> Self {
        Self { header, ..self }
    }

    /// The collection's kind (`None`: a number this build does not know).
    pub fn kind(&self) -> Option<CollectionKind> {
        CollectionKind::of_code(self.kind)
    }

    /// The strategy's [`Repr::ID`].
    pub fn strategy(&self) -> u64 {
        self.strategy
    }

    /// The collection's layout version.
    pub fn layout_version(&self) -> u64 {
        self.layout
    }

    /// Offset of the collection's header in the segment.
    pub fn header(&self) -> u64 {
        self.header
    }

    /// The element's (list) or key's (map) size and alignment.
    pub fn key(&self) -> Shape {
        Shape {
            size: self.key_size,
            align: self.key_align,
        }
    }

    /// The value's size and alignment (maps).
    pub fn value(&self) -> Shape {
        Shape {
            size: self.value_size,
            align: self.value_align,
        }
    }

    /// Checks the bytes read from a segment: magic, format, a known kind and strategy,
    /// and shapes a type can have.
    pub fn validate(&self) -> Result<(), RecordFault> {
        use RecordFault::{Damaged, Unknown};
        if self.magic != RECORD_MAGIC {
            return Err(Damaged("wrong magic number".into()));
        }
        if self.format != RECORD_FORMAT {
            return Err(Unknown(format!(
                "record format {} (this build reads {RECORD_FORMAT}): use the relshm that made it",
                self.format
            )));
        }
        if self.kind().is_none() {
            return Err(Unknown(format!("unknown collection kind {}", self.kind)));
        }
        if strategy_name(self.strategy).is_none() {
            return Err(Unknown(format!(
                "unknown pointer strategy {} (a representation without a Repr::ID)",
                self.strategy
            )));
        }
        if !self.key().is_valid() || !self.value().is_valid() {
            return Err(Damaged(format!(
                "impossible type shapes ({} / {} bytes, align {} / {})",
                self.key_size, self.value_size, self.key_align, self.value_align
            )));
        }
        Ok(())
    }

    /// Whether this record describes the same kind, types and strategy as `other`
    /// (wherever its header is).
    pub fn same_type(&self, other: &Self) -> bool {
        self.at(0) == other.at(0)
    }

    /// The record `entry` holds, if it is a collection record (`None` for any other
    /// entry); `Some(Err)` says why the record's bytes are unusable.
    pub fn in_entry(seg: &Segment, entry: &EntryInfo) -> Option<Result<Self, RecordFault>> {
        if entry.type_info.name != Self::TYPE_NAME {
            return None;
        }
        let read = seg
            .region()
            .resolve_as::<CollectionRecord>(entry.offset)
            .map_err(|e| RecordFault::Damaged(format!("record unreadable: {e}")))
            // SAFETY: in bounds and aligned (resolve_as); every bit pattern is a valid
            // record (u64s); records are never written after publication.
            .map(|p| unsafe { p.as_ptr().read() });
        Some(read.and_then(|r| r.validate().map(|()| r)))
    }
}

impl fmt::Display for CollectionRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (k, v) = (self.key(), self.value());
        match self.kind() {
            Some(CollectionKind::List) => {
                write!(f, "list of {}-byte elements (align {})", k.size, k.align)?
            }
            Some(CollectionKind::Map) => write!(
                f,
                "map of {}-byte keys (align {}) to {}-byte values (align {})",
                k.size, k.align, v.size, v.align
            )?,
            Some(CollectionKind::Queue) => {
                write!(f, "queue of {}-byte elements (align {})", k.size, k.align)?
            }
            Some(other) => write!(f, "{}", other.name())?,
            None => write!(f, "collection of unknown kind {}", self.kind)?,
        }
        match strategy_name(self.strategy) {
            Some(s) => write!(f, ", {s} links")?,
            None => write!(f, ", unknown links {}", self.strategy)?,
        }
        write!(f, ", layout v{}", self.layout)
    }
}

/// Registers `record` under `name` in `dir` (the directory publishes it in one store).
pub(crate) fn write(dir: &Directory, name: &str, record: CollectionRecord) -> Result<()> {
    dir.construct(name, record).map_err(SegmentError::from)?;
    Ok(())
}

/// The header offset of the collection `name`, checked against `wanted` (kind, types,
/// strategy, layout). A bare offset recorded by a relshm without typed records is
/// returned as is: opening the header then checks its layout fingerprint.
pub(crate) fn read(dir: &Directory, name: &str, wanted: &CollectionRecord) -> Result<u64> {
    let recorded = match dir.find::<CollectionRecord>(name) {
        Ok(r) => *r.get(),
        Err(DirectoryError::TypeMismatch { stored, .. })
            if stored.name == <AtomicU64 as SegmentObject>::TYPE_NAME =>
        {
            let off = dir.find::<AtomicU64>(name).map_err(SegmentError::from)?;
            return Ok(off.load(Acquire));
        }
        Err(e) => return Err(SegmentError::from(e).into()),
    };
    if let Err(why) = recorded.validate() {
        return Err(CollectionError::BadRecord {
            name: name.into(),
            why: why.to_string(),
        });
    }
    if !recorded.same_type(wanted) {
        return Err(CollectionError::RecordMismatch {
            name: name.into(),
            recorded: Box::new(recorded),
            requested: Box::new(*wanted),
        });
    }
    Ok(recorded.header)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::arena::Arena;
    use crate::list::List;
    use crate::map::Map;
    use relshm_segment::CreateOptions;

    fn round_trip<R: Repr>(arena: &Arena<R>) {
        let seg_dir = arena.directory().unwrap();
        let list = format!("list-{}", R::NAME);
        let map = format!("map-{}", R::NAME);
        let l = List::<[u8; 3], R>::create_named(arena, &list).unwrap();
        l.push_back([1, 2, 3]).unwrap();
        let m = Map::<u32, [u16; 5], R>::create_named(arena, &map).unwrap();
        m.insert(4, [5; 5]).unwrap();

        let rec = *seg_dir.find::<CollectionRecord>(&list).unwrap().get();
        assert_eq!(rec.validate(), Ok(()));
        assert_eq!(rec.kind(), Some(CollectionKind::List));
        assert_eq!(rec.strategy(), u64::from(R::ID));
        assert_eq!(strategy_name(rec.strategy()), Some(R::NAME));
        assert_eq!(rec.key(), Shape { size: 3, align: 1 });
        assert_eq!(rec.header(), l.offset());
        assert_eq!(rec, CollectionRecord::list::<[u8; 3], R>().at(l.offset()));

        let rec = *seg_dir.find::<CollectionRecord>(&map).unwrap().get();
        assert_eq!(rec.kind(), Some(CollectionKind::Map));
        assert_eq!(rec.key(), Shape { size: 4, align: 4 });
        assert_eq!(rec.value(), Shape { size: 10, align: 2 });
        assert_eq!(rec.header(), m.offset());
        assert_eq!(rec.layout_version(), crate::map::LAYOUT_VERSION);

        assert_eq!(
            List::<[u8; 3], R>::open_named(arena, &list)
                .unwrap()
                .to_vec()
                .unwrap(),
            vec![[1, 2, 3]]
        );
        assert_eq!(
            Map::<u32, [u16; 5], R>::open_named(arena, &map)
                .unwrap()
                .get(&4)
                .unwrap(),
            Some([5; 5])
        );
        // Another element type, another kind: refused by the record, saying both.
        let e = List::<[u8; 4], R>::open_named(arena, &list).err().unwrap();
        assert!(
            matches!(&e, CollectionError::RecordMismatch { recorded, .. } if recorded.key().size == 3),
            "{e}"
        );
        assert!(e.to_string().contains("list of 3-byte elements"), "{e}");
        assert!(e.to_string().contains("list of 4-byte elements"), "{e}");
        let e = Map::<[u8; 3], u8, R>::open_named(arena, &list)
            .err()
            .unwrap();
        assert!(e.to_string().contains("not a map of 3-byte keys"), "{e}");
        let e = Map::<u32, [u16; 6], R>::open_named(arena, &map)
            .err()
            .unwrap();
        assert!(matches!(e, CollectionError::RecordMismatch { .. }), "{e}");
    }

    #[test]
    fn every_strategy_records_and_checks_its_collections() {
        let seg = Segment::create_unnamed(&CreateOptions::new(8 << 20)).unwrap();
        round_trip(&Arena::<Offset>::new(&seg).unwrap());
        round_trip(&Arena::<BaseRel>::new(&seg).unwrap());
        round_trip(&Arena::<SegRel>::new(&seg).unwrap());
        round_trip(&Arena::<Raw>::local(&seg).unwrap());
        let private = Arena::<Swizzle>::private(&seg).unwrap();
        round_trip(&private);

        // A record of another strategy is refused too.
        let based = Arena::<BaseRel>::new(&seg).unwrap();
        let e = List::<[u8; 3], BaseRel>::open_named(&based, "list-offset")
            .err()
            .unwrap();
        assert!(e.to_string().contains("offset links"), "{e}");
    }

    #[test]
    fn a_bare_offset_from_older_segments_still_opens() {
        let seg = Segment::create_unnamed(&CreateOptions::new(4 << 20)).unwrap();
        let arena = Arena::<Offset>::new(&seg).unwrap();
        let l = List::<u64, Offset>::create(&arena).unwrap();
        l.push_back(9).unwrap();
        seg.directory()
            .unwrap()
            .construct("old", AtomicU64::new(l.offset()))
            .unwrap();
        let again = List::<u64, Offset>::open_named(&arena, "old").unwrap();
        assert_eq!(again.to_vec().unwrap(), vec![9]);
        // The header's fingerprint still refuses other types.
        assert!(List::<u32, Offset>::open_named(&arena, "old").is_err());
    }

    #[test]
    fn damaged_records_are_named() {
        let mut r = CollectionRecord::list::<u64, Offset>();
        assert_eq!(r.validate(), Ok(()));
        r.key_align = 3;
        assert!(matches!(r.validate(), Err(RecordFault::Damaged(w)) if w.contains("impossible")));
        let mut r = CollectionRecord::map::<u64, u64, Offset>();
        r.strategy = 77;
        assert!(matches!(r.validate(), Err(RecordFault::Unknown(w)) if w.contains("strategy 77")));
        r.magic = 0;
        assert!(matches!(r.validate(), Err(RecordFault::Damaged(w)) if w.contains("magic")));
    }

    #[test]
    fn queues_and_streams_are_recorded_with_their_element_shapes() {
        let seg = Segment::create_unnamed(&CreateOptions::new(1 << 20)).unwrap();
        let arena = Arena::<Offset>::new(&seg).unwrap();
        let q = crate::queue::Queue::<[u32; 3]>::create_named(
            &arena,
            "q",
            crate::queue::QueueConfig::with_capacity(4),
        )
        .unwrap();
        let s = crate::stream::Stream::create_named(&arena, "s", 64).unwrap();
        let dir = arena.directory().unwrap();
        let rq = *dir.find::<CollectionRecord>("q").unwrap().get();
        assert_eq!(rq.kind(), Some(CollectionKind::Queue));
        assert_eq!(rq.header(), q.offset());
        assert_eq!((rq.key().size, rq.key().align), (12, 4));
        assert_eq!(rq.validate(), Ok(()));
        assert_eq!(
            rq.to_string(),
            "queue of 12-byte elements (align 4), baserel links, layout v1"
        );
        let rs = *dir.find::<CollectionRecord>("s").unwrap().get();
        assert_eq!(rs.kind(), Some(CollectionKind::Stream));
        assert_eq!(rs.header(), s.offset());
        // A stream is not a queue of bytes, nor the other way round.
        assert!(matches!(
            crate::queue::Queue::<u8>::open_named(&arena, "s"),
            Err(CollectionError::RecordMismatch { .. })
        ));
        assert!(matches!(
            crate::stream::Stream::open_named(&arena, "q"),
            Err(CollectionError::RecordMismatch { .. })
        ));
    }
}
