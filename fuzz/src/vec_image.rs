//! The `Vec` half of `untrusted_image`: a segment holding a named `Vec<u64>` and a named
//! `Vec<[u32; 3]>` (12-byte elements aligned to 4), built through the collections' API
//! with a pointer strategy the input picks, then corrupted where a vector keeps its state:
//! its header words (length, capacity, buffer link, magic, layout, seqlock, pending
//! buffer and length), its buffer's capacity word, owner record, heap block header and
//! elements, its lock, its directory record, or any word of the heap. Every operation on the corrupted image (open, get,
//! to_vec, read, the changes, verify, the whole-segment check) must return `Ok` or `Err`.
//!
//! Lock words get only states that no live thread holds (free, owner died, not
//! recoverable): a lock word naming a live thread is a held lock, and waiting for it is
//! what an operation must do, a hang by design rather than a fault.

use bytemuck::Pod;
use core::fmt::Debug;
use core::sync::atomic::{AtomicU32, AtomicU64, Ordering::Relaxed};
use relshm_collections::arena::{Arena, CollectionError};
use relshm_collections::record::CollectionRecord;
use relshm_collections::vec::{BUF_HEADER, Vec as SegVec};
use relshm_collections::verify::offsets::{VEC_LEN, VEC_LOCK};
use relshm_collections::verify::verify_segment;
use relshm_ptr::map::{Mapping, Sharing, memfd};
use relshm_ptr::translate::Space;
use relshm_ptr::{BaseRel, Offset, Raw, Repr, SegRel, Swizzle};
use relshm_segment::heap::HEAP_CONTROL_SIZE;
use relshm_segment::{CreateOptions, Segment};
use relshm_sync::{NOT_RECOVERABLE, OWNER_DIED, RawMutex, RawRwLock, WAITERS};
use rustix::fd::AsFd;

use super::Input;

/// Segment size: room for both buffers to grow several times, and small enough that a
/// length the heap accepts never sizes a large allocation in this process.
const SEG: u64 = 256 << 10;

const NAME_U64: &str = "u64";
const NAME_ODD: &str = "odd";

// Where a vector header keeps its words (`VecHeader`'s layout table).
const MAGIC: u64 = 0;
const LAYOUT: u64 = 8;
const LEN: u64 = VEC_LEN;
const CAP: u64 = VEC_LEN + 8;
const SEQ: u64 = VEC_LEN + 16;
/// `repairs`, then the pending words (the buffer being published and its length, which
/// a repair rolls forward).
const REPAIRS: u64 = VEC_LEN + 24;
/// The buffer link follows the lock.
const BUF: u64 = VEC_LOCK + size_of::<RawRwLock>() as u64;
// Inside a `RawRwLock` (its layout table): the writer mutex, the writer flag, then the
// reader slots, one mutex per 64 bytes.
const WRITER_FLAG: u64 = 40;
const SLOTS: u64 = 64;
const READER_SLOTS: u64 = (size_of::<RawRwLock>() as u64 - SLOTS) / 64;
const RECORD_WORDS: u64 = size_of::<CollectionRecord>() as u64 / 8;

/// Lock word states that no live thread holds.
const LOCK_STATES: [u32; 6] = [
    0,
    OWNER_DIED,
    OWNER_DIED | WAITERS,
    WAITERS,
    NOT_RECOVERABLE,
    NOT_RECOVERABLE | OWNER_DIED,
];

fn item_u64(i: u64) -> u64 {
    i.wrapping_mul(0x9e37_79b9_7f4a_7c15)
}

fn item_odd(i: u64) -> [u32; 3] {
    let x = item_u64(i);
    [x as u32, (x >> 32) as u32, i as u32]
}

/// Where one vector's state lies in the built image (segment offsets).
#[derive(Clone, Copy)]
struct Site {
    hdr: u64,
    record: u64,
    /// The first element (`None`: no buffer).
    first: Option<u64>,
    /// The buffer's element bytes.
    bytes: u64,
}

/// The built image: the two vectors, and where corruption of any heap word starts.
struct Image {
    vecs: [Site; 2],
    arena_start: u64,
    dir_lock: u64,
    heap_lock: u64,
}

/// What a word offset is relative to, so that the same word of the other vector can be
/// found (the value of a field copied across vectors is a plausible corruption).
#[derive(Clone, Copy)]
enum Anchor {
    Header,
    Buffer,
    Record,
    Absolute,
}

impl Anchor {
    fn at(self, site: &Site, delta: u64) -> Option<u64> {
        match self {
            Anchor::Header => Some(site.hdr.wrapping_add(delta)),
            Anchor::Buffer => site.first.map(|f| f.wrapping_add(delta)),
            Anchor::Record => Some(site.record.wrapping_add(delta)),
            Anchor::Absolute => Some(delta),
        }
    }
}

fn word(seg: &Segment, off: u64) -> Option<&AtomicU64> {
    let p = seg.region().resolve_as::<u64>(off).ok()?;
    // SAFETY: resolved in bounds and aligned inside the mapping, which lives as long as
    // `seg`; segment words are only accessed atomically.
    Some(unsafe { AtomicU64::from_ptr(p.as_ptr()) })
}

fn lock_word(seg: &Segment, off: u64) -> Option<&AtomicU32> {
    let p = seg.region().resolve_as::<u32>(off).ok()?;
    // SAFETY: as for `word`.
    Some(unsafe { AtomicU32::from_ptr(p.as_ptr()) })
}

/// Builds the two vectors in a fresh segment with the strategy the input picks, corrupts
/// the segment as the rest of the input says, and runs every operation on the result.
pub fn corrupted_vecs(data: &[u8]) {
    let mut inp = Input(data);
    let seg = Segment::create_unnamed(&CreateOptions::new(SEG)).unwrap();
    match inp.byte() % 5 {
        0 => run::<BaseRel>(&seg, &mut inp, Arena::new, |_, _| Ok(()), |_, _| {}),
        1 => run::<Offset>(&seg, &mut inp, Arena::new, |_, _| Ok(()), |_, _| {}),
        2 => run::<SegRel>(&seg, &mut inp, Arena::new, |_, _| Ok(()), |_, _| {}),
        3 => run::<Raw>(&seg, &mut inp, Arena::local, |_, _| Ok(()), translated),
        _ => run::<Swizzle>(&seg, &mut inp, Arena::private, Arena::publish, |_, _| {}),
    }
}

/// `make` gives an arena of the strategy over `seg`, `publish` makes what was built
/// through it the segment's bytes, `extra` runs strategy-specific operations.
fn run<R: Repr>(
    seg: &Segment,
    inp: &mut Input<'_>,
    make: fn(&Segment) -> Result<Arena<R>, CollectionError>,
    publish: fn(&Arena<R>, &Segment) -> Result<(), CollectionError>,
    extra: fn(&Arena<R>, &Image),
) {
    let (img, want_u64, want_odd) = {
        let arena = make(seg).unwrap();
        let vu = SegVec::<u64, R>::create_named(&arena, NAME_U64).unwrap();
        let vo = SegVec::<[u32; 3], R>::create_named(&arena, NAME_ODD).unwrap();
        let want_u64 = fill(&vu, inp, item_u64);
        let want_odd = fill(&vo, inp, item_odd);
        publish(&arena, seg).unwrap();
        let dir = seg.directory().unwrap();
        let record = |name: &str| {
            let e = dir.entries().unwrap();
            e.iter().find(|e| e.name == name.as_bytes()).unwrap().offset
        };
        let base = seg.base().as_ptr() as u64;
        let img = Image {
            vecs: [
                site(&arena, &vu, record(NAME_U64)),
                site(&arena, &vo, record(NAME_ODD)),
            ],
            arena_start: seg.heap_offset() + HEAP_CONTROL_SIZE,
            dir_lock: dir.raw_lock() as *const RawMutex as u64 - base,
            heap_lock: seg.heap().unwrap().raw_lock() as *const RawMutex as u64 - base,
        };
        (img, want_u64, want_odd)
    };
    let corruptions = inp.byte() % 9;
    assert!(!harness::a_lock_is_held(seg, &img));
    for _ in 0..corruptions {
        corrupt(seg, &img, inp);
    }
    let Ok(arena) = make(seg) else {
        let _ = verify_segment(seg);
        return;
    };
    let vu = SegVec::<u64, R>::open_named(&arena, NAME_U64);
    let vo = SegVec::<[u32; 3], R>::open_named(&arena, NAME_ODD);
    if corruptions == 0 {
        // The image as built reads back whole and checks clean: the corruptions start
        // from a consistent image.
        let (vu, vo) = (vu.as_ref().unwrap(), vo.as_ref().unwrap());
        assert_eq!(vu.to_vec().unwrap(), want_u64);
        assert_eq!(vo.to_vec().unwrap(), want_odd);
        assert_eq!(vu.verify().unwrap(), want_u64.len() as u64);
        assert_eq!(vo.verify().unwrap(), want_odd.len() as u64);
        assert_clean(seg);
    }
    let held = || harness::a_lock_is_held(seg, &img);
    // Opening at the header offsets, with the right type and the other one.
    let [su, so] = img.vecs;
    let _ = SegVec::<u64, R>::open(&arena, su.hdr).map(|v| every_op(&v, item_u64, &held));
    let _ = SegVec::<[u32; 3], R>::open(&arena, so.hdr).map(|v| every_op(&v, item_odd, &held));
    for off in [su.hdr, so.hdr] {
        if held() {
            return;
        }
        let _ = SegVec::<[u32; 3], R>::open(&arena, off).map(|v| checked_verify(&v));
        let _ = SegVec::<u64, R>::open(&arena, off).map(|v| checked_verify(&v));
    }
    let _ = verify_segment(seg).to_string();
    for _ in 0..32 {
        if held() {
            return;
        }
        if inp.0.is_empty() {
            break;
        }
        let code = inp.byte();
        match (&vu, &vo) {
            (Ok(v), _) if code & 1 == 0 => op(v, code >> 1, inp, item_u64),
            (_, Ok(v)) if code & 1 == 1 => op(v, code >> 1, inp, item_odd),
            _ => {}
        }
    }
    if held() {
        return;
    }
    extra(&arena, &img);
    if let Ok(v) = &vu {
        checked_verify(v);
    }
    if let Ok(v) = &vo {
        checked_verify(v);
    }
    if corruptions == 0 {
        // Operations on a consistent vector keep it consistent, failed ones included.
        assert!(vu.unwrap().verify().is_ok() && vo.unwrap().verify().is_ok());
        assert_clean(seg);
    }
    let _ = verify_segment(seg).to_string();
}

/// Fills `v` with a length and buffer history the input picks: pushes, then maybe spare
/// capacity, a removal (a fresh buffer, the old one freed) or a shrink. Returns what it
/// holds.
fn fill<T: Pod + PartialEq + Debug, R: Repr>(
    v: &SegVec<T, R>,
    inp: &mut Input<'_>,
    item: fn(u64) -> T,
) -> Vec<T> {
    let n = u64::from(inp.byte() % 40);
    let shape = inp.byte();
    let mut want: Vec<T> = (0..n).map(item).collect();
    let half = want.len() / 2;
    v.extend_from_slice(&want[..half]).unwrap();
    for x in &want[half..] {
        v.push(*x).unwrap();
    }
    if shape & 1 != 0 {
        v.reserve(u64::from(shape >> 4)).unwrap();
    }
    if shape & 2 != 0 && n > 1 {
        assert_eq!(v.remove(0).unwrap(), want.remove(0));
    }
    if shape & 4 != 0 {
        v.shrink_to_fit().unwrap();
    }
    assert_eq!(v.to_vec().unwrap(), want);
    want
}

fn site<T: Pod, R: Repr>(arena: &Arena<R>, v: &SegVec<T, R>, record: u64) -> Site {
    let first = (v.capacity() > 0).then(|| v.read().unwrap().as_ptr() as u64 - arena.base());
    Site {
        hdr: v.offset(),
        record,
        first,
        bytes: v.capacity() * size_of::<T>() as u64,
    }
}

fn assert_clean(seg: &Segment) {
    let report = verify_segment(seg);
    assert!(report.corrupt().next().is_none(), "{report}");
}

/// One corruption: a word the input picks, of one vector (or anywhere in the heap), gets
/// a value the input picks.
fn corrupt(seg: &Segment, img: &Image, inp: &mut Input<'_>) {
    let which = inp.byte();
    let arg = u64::from(inp.byte());
    let (me, other) = match which & 1 {
        0 => (&img.vecs[0], &img.vecs[1]),
        _ => (&img.vecs[1], &img.vecs[0]),
    };
    // Buffer words fall back to the link when there is no buffer.
    let buffer = |delta: u64| match me.first {
        Some(_) => (Anchor::Buffer, delta),
        None => (Anchor::Header, BUF),
    };
    let (anchor, delta) = match (which >> 1) % 16 {
        0 => (Anchor::Header, LEN),
        1 => (Anchor::Header, CAP),
        2 => (Anchor::Header, BUF),
        3 => (Anchor::Header, MAGIC),
        4 => (Anchor::Header, LAYOUT),
        5 => (Anchor::Header, SEQ),
        6 => (Anchor::Header, REPAIRS + 8 * (arg % 3)),
        // The capacity word, then the owner record, then the heap block header.
        7 => buffer(BUF_HEADER.wrapping_neg() + 16),
        8 => buffer(BUF_HEADER.wrapping_neg() + 8 * (arg % 2)),
        9 => buffer(BUF_HEADER.wrapping_neg() - 16 + 8 * (arg % 2)),
        10 => buffer(8 * (arg % (me.bytes / 8).max(1))),
        11 => {
            let lock = me.hdr + VEC_LOCK;
            let at = match arg % (READER_SLOTS + 1) {
                0 => lock,
                i => lock + SLOTS + 64 * (i - 1),
            };
            if let Some(w) = lock_word(seg, at) {
                w.store(
                    LOCK_STATES[usize::from(inp.byte()) % LOCK_STATES.len()],
                    Relaxed,
                );
            }
            return;
        }
        12 => (Anchor::Header, VEC_LOCK + WRITER_FLAG),
        13 => (Anchor::Record, 8 * (arg % RECORD_WORDS)),
        14 => {
            let words = (SEG - img.arena_start) / 8;
            let at = img.arena_start + 8 * ((arg << 8 | u64::from(inp.byte())) % words);
            let locks = img.vecs.iter().map(|s| (s.hdr + VEC_LOCK, s.hdr + BUF));
            let dir = (img.dir_lock, img.dir_lock + size_of::<RawMutex>() as u64);
            if locks.chain([dir]).any(|(lo, hi)| (lo..hi).contains(&at)) {
                return;
            }
            (Anchor::Absolute, at)
        }
        // Length and capacity together: both to one value, or the length past the
        // capacity.
        _ => {
            let (Some(len), Some(cap)) = (word(seg, me.hdr + LEN), word(seg, me.hdr + CAP)) else {
                return;
            };
            let v = value(cap.load(Relaxed), 0, me, other, inp);
            if arg & 1 == 0 {
                len.store(v, Relaxed);
                cap.store(v, Relaxed);
            } else {
                len.store(cap.load(Relaxed).wrapping_add(1 + (arg >> 1)), Relaxed);
            }
            return;
        }
    };
    let Some(w) = anchor.at(me, delta).and_then(|at| word(seg, at)) else {
        return;
    };
    let same = anchor
        .at(other, delta)
        .and_then(|at| word(seg, at))
        .map_or(0, |w| w.load(Relaxed));
    w.store(value(w.load(Relaxed), same, me, other, inp), Relaxed);
}

/// A new value for a word holding `orig`; `same` is that word of the other vector.
fn value(orig: u64, same: u64, me: &Site, other: &Site, inp: &mut Input<'_>) -> u64 {
    let mode = inp.byte();
    let b = inp.byte();
    match mode % 8 {
        0 => 0,
        // Nearby, in steps of a byte, a word, an odd element, a buffer header.
        1 => {
            let step = [1, 8, 12, 16, 32, 4096][usize::from(mode >> 3) % 6];
            orig.wrapping_add((i64::from(b as i8) * step) as u64)
        }
        2 => orig ^ 1 << (b % 64),
        3 => {
            let interesting = [
                1,
                u64::MAX,
                1 << 63,
                i64::MAX as u64,
                u64::from(u32::MAX),
                1 << 32,
                1 << 40,
                1 << 46,
                1 << 47,
                SEG,
                SEG / 8,
                SEG / 12 + 1,
                me.hdr,
                other.hdr,
                me.first.unwrap_or(0),
                other.first.unwrap_or(0),
                me.bytes / 8 + 1,
                other.bytes / 8,
            ];
            interesting[usize::from(b) % interesting.len()]
        }
        4 => u64::from(b),
        5 => orig.wrapping_shl(1 + u32::from(b % 40)),
        6 => u64::from(b) | inp.u64() << 8,
        _ => same,
    }
}

/// An index the input picks: small, near the length or the capacity, or huge.
fn index<T: Pod, R: Repr>(v: &SegVec<T, R>, inp: &mut Input<'_>) -> u64 {
    let b = inp.byte();
    let k = u64::from(b >> 2);
    match b % 4 {
        0 => k,
        1 => v.len().wrapping_sub(k % 3),
        2 => v.capacity().wrapping_add(k % 3),
        _ => u64::MAX.wrapping_shr(u32::from(b >> 2)),
    }
}

/// What the harness must avoid: a lock that names a thread is a designed wait (for a
/// thread that may still run), not a fault, so an image reaching that state stops being
/// exercised (the locks take no timeout).
mod harness {
    use super::*;

    /// Whether a lock of the image names a thread. The image starts with every lock free
    /// and the harness only ever leaves them free, owner-died or not recoverable, so a
    /// named thread got there through a write a vector made through a corrupted buffer
    /// link: the link is only checked to resolve in bounds (`Vec::buf` in
    /// `vec/guard.rs`), so push and set write wherever it leads, another vector's lock
    /// included, and the next `lock` of that vector waits forever for a thread that does
    /// not exist.
    pub fn a_lock_is_held(seg: &Segment, img: &Image) -> bool {
        let region = seg.region();
        let vecs = img.vecs.iter().filter_map(|s| {
            let p = region.resolve_as::<RawRwLock>(s.hdr + VEC_LOCK).ok()?;
            // SAFETY: in bounds and aligned (resolve_as) in the mapping `seg` keeps alive;
            // a lock is atomics only, valid for any bits.
            Some(unsafe { p.as_ref() })
        });
        let mutexes = [img.dir_lock, img.heap_lock].into_iter().filter_map(|off| {
            let p = region.resolve_as::<RawMutex>(off).ok()?;
            // SAFETY: as above.
            Some(unsafe { p.as_ref() })
        });
        vecs.into_iter()
            .any(|l| l.writer().is_locked() || l.readers() > 0)
            || mutexes.into_iter().any(RawMutex::is_locked)
    }
}

/// The operations every image gets, whatever the rest of the input (until a lock is
/// held, see `harness::a_lock_is_held`).
fn every_op<T: Pod + PartialEq + Debug, R: Repr>(
    v: &SegVec<T, R>,
    item: fn(u64) -> T,
    held: &dyn Fn() -> bool,
) {
    if held() {
        return;
    }
    let _ = v.get(0);
    let last = v.len().wrapping_sub(1);
    let _ = v.get(last);
    let _ = v.to_vec();
    if let Ok(r) = v.read() {
        std::hint::black_box(r.as_slice());
    }
    let _ = v.push(item(v.len()));
    if !held() {
        checked_verify(v);
    }
}

/// Verifies `v`; a vector that verifies reads back whole, through the lock and without.
fn checked_verify<T: Pod + PartialEq + Debug, R: Repr>(v: &SegVec<T, R>) {
    let Ok(n) = v.verify() else { return };
    let r = v.read().expect("a verified vector reads");
    assert_eq!(r.len(), n, "verify and read disagree on the length");
    let elems = r.as_slice().to_vec();
    drop(r);
    assert_eq!(v.to_vec().expect("a verified vector copies out"), elems);
}

/// One operation the input picks.
fn op<T: Pod + PartialEq + Debug, R: Repr>(
    v: &SegVec<T, R>,
    code: u8,
    inp: &mut Input<'_>,
    item: fn(u64) -> T,
) {
    let i = index(v, inp);
    match code % 16 {
        0 => {
            let _ = v.get(i);
        }
        1 => {
            let _ = v.to_vec();
        }
        2 => {
            if let Ok(r) = v.read() {
                assert_eq!(r.as_slice().len() as u64, r.len());
                std::hint::black_box((r.iter().count(), r.get(i)));
            }
        }
        3 => {
            let _ = v.push(item(i));
        }
        4 => {
            let _ = v.pop();
        }
        5 => {
            let _ = v.set(i, item(i));
        }
        6 => {
            let _ = v.insert(i, item(i));
        }
        7 => {
            let _ = v.remove(i);
        }
        8 => {
            let _ = v.truncate(i);
        }
        9 => {
            let _ = v.reserve(i);
        }
        10 => {
            let _ = v.shrink_to_fit();
        }
        11 => {
            let items: Vec<T> = (0..i % 40).map(item).collect();
            let _ = v.extend_from_slice(&items);
        }
        12 => checked_verify(v),
        13 => {
            if let Ok(mut g) = v.lock() {
                let _ = std::hint::black_box((g.len(), g.capacity(), g.as_slice().map(<[T]>::len)));
                let _ = g.get(i);
                let _ = g.push(item(i));
                let _ = g.pop();
            }
        }
        14 => {
            let _ = v.clear();
        }
        _ => {
            std::hint::black_box((v.len(), v.capacity(), v.is_empty(), v.repairs()));
        }
    }
}

/// A raw vector's copy-time translation into another mapping: the copy opens, reads and
/// verifies with `Ok` or `Err` too.
fn translated(arena: &Arena<Raw>, img: &Image) {
    let fd = memfd("fuzz-vec-dst", SEG).unwrap();
    let dst = Mapping::new(fd.as_fd(), SEG, Sharing::Shared).unwrap();
    let base = dst.as_ptr() as u64;
    // SAFETY: `dst` outlives the space and the arena made over it below; nothing else
    // writes it.
    let space = unsafe { Space::new(dst.region(), base) };
    for (k, s) in img.vecs.iter().enumerate() {
        let t = match k {
            0 => SegVec::<u64, Raw>::open(arena, s.hdr).and_then(|v| v.translate_to(&space, 0)),
            _ => {
                SegVec::<[u32; 3], Raw>::open(arena, s.hdr).and_then(|v| v.translate_to(&space, 0))
            }
        };
        let Ok(t) = t else { continue };
        // SAFETY: as above: `dst` stays mapped and writable while the arena lives.
        let Ok(copy) = (unsafe { Arena::<Raw>::translated(dst.region(), base) }) else {
            continue;
        };
        let _ = match k {
            0 => SegVec::<u64, Raw>::open(&copy, t.root_offset).map(|v| checked_verify(&v)),
            _ => SegVec::<[u32; 3], Raw>::open(&copy, t.root_offset).map(|v| checked_verify(&v)),
        };
    }
}
