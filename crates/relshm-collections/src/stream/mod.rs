//! A single-producer single-consumer byte stream in a segment (the seeds' pipes):
//! [`StreamWriter`] implements [`std::io::Write`], [`StreamReader`] implements
//! [`std::io::Read`]. Reads block until some bytes are there and return what is available
//! (like a pipe); writes block while the ring is full. The reader sees end-of-stream
//! (`Ok(0)`) once the writer closed (dropped) or died and every byte written is read; the
//! writer gets `BrokenPipe` once the reader is gone.
//!
//! # Layout
//!
//! One heap allocation, 64-aligned:
//!
//! | offset | field | meaning |
//! |---|---|---|
//! | 0 | `magic` | `"RSHMSTR1"` |
//! | 8 | `capacity` | ring bytes, a power of two from 64 to 2^30 |
//! | 16..64 | reserved | zero |
//! | 64 | `written` | bytes written so far (only the writer stores it) |
//! | 128 | `read` | bytes read so far (only the reader stores it) |
//! | 192 | `data`, `data_waiters` | futex word bumped after a write; sleeping readers |
//! | 200 | `space`, `space_waiters` | futex word bumped after a read; sleeping writers |
//! | 208 | `writer_state`, `reader_state` | 0 never opened, 1 open, 2 closed |
//! | 216 | `sleeping` | scratch flags of the wait protocol |
//! | 224 | `writer` | writer (pid u64, start time u64) |
//! | 240 | `reader` | reader (pid u64, start time u64) |
//! | 256 | ring | `capacity` bytes |
//!
//! The positions only grow (2^64 bytes); `written - read` is at most `capacity`, which the
//! reader checks (a larger gap is corruption, reported as an error, not a wild read).
//!
//! ```
//! use relshm_collections::Arena;
//! use relshm_collections::stream::Stream;
//! use relshm_segment::{CreateOptions, Segment};
//! use std::io::{Read, Write};
//!
//! let seg = Segment::create_unnamed(&CreateOptions::new(1 << 20))?;
//! let arena: Arena = Arena::new(&seg)?;
//! let stream = Stream::create_named(&arena, "log", 4096)?;
//! let mut w = stream.writer()?;
//! let mut r = Stream::open_named(&arena, "log")?.reader()?;
//! w.write_all(b"through shared memory")?;
//! drop(w); // end of stream
//! let mut s = String::new();
//! r.read_to_string(&mut s)?;
//! assert_eq!(s, "through shared memory");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use core::cell::Cell;
use core::ptr::NonNull;
use std::io;
use std::time::Duration;

use relshm_ptr::Repr;
use relshm_segment::Segment;
use relshm_segment::procstat;
use relshm_sync::facade::{AtomicU32, AtomicU64, Ordering::*};

use crate::arena::Arena;
use crate::error::CollectionError;
use crate::queue::wait::{Event, SPIN_ROUNDS};
use crate::record::CollectionRecord;

/// `"RSHMSTR1"` in little-endian.
pub const STREAM_MAGIC: u64 = u64::from_le_bytes(*b"RSHMSTR1");
/// The stream's layout version (recorded in its directory record).
pub const LAYOUT_VERSION: u64 = 1;
/// Bytes before the ring.
pub const STREAM_HEADER: u64 = 256;
/// Largest ring.
pub const MAX_STREAM_CAPACITY: u64 = 1 << 30;

const NEVER: u32 = 0;
const OPEN: u32 = 1;
const CLOSED: u32 = 2;

/// The control block of a stream (see the module docs for the layout).
#[repr(C)]
pub struct StreamControl {
    magic: AtomicU64,
    capacity: AtomicU64,
    reserved0: [u64; 6],
    written: AtomicU64,
    pad_w: [u64; 7],
    read: AtomicU64,
    pad_r: [u64; 7],
    data: AtomicU32,
    data_waiters: AtomicU32,
    space: AtomicU32,
    space_waiters: AtomicU32,
    writer_state: AtomicU32,
    reader_state: AtomicU32,
    sleeping: [AtomicU32; 2],
    writer: [AtomicU64; 2],
    reader: [AtomicU64; 2],
}

const _: () = {
    assert!(core::mem::offset_of!(StreamControl, written) == 64);
    assert!(core::mem::offset_of!(StreamControl, read) == 128);
    assert!(core::mem::offset_of!(StreamControl, data) == 192);
    assert!(core::mem::offset_of!(StreamControl, writer_state) == 208);
    assert!(core::mem::offset_of!(StreamControl, writer) == 224);
    assert!(core::mem::size_of::<StreamControl>() as u64 == STREAM_HEADER);
};

/// A byte stream in a segment: an owning handle (it keeps the segment mapped, cloning is
/// cheap) from which the one [`writer`](Self::writer) and the one
/// [`reader`](Self::reader) are taken, in any processes.
///
/// Made with [`create`](Self::create) or [`create_named`](Self::create_named) on an
/// [`Arena`] of any strategy (a stream links nothing), found with [`open`](Self::open)
/// (its [`offset`](Self::offset)) or [`open_named`](Self::open_named).
#[derive(Clone)]
pub struct Stream {
    seg: Segment,
    offset: u64,
    capacity: u64,
}

impl core::fmt::Debug for Stream {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Stream")
            .field("offset", &self.offset)
            .field("capacity", &self.capacity)
            .finish()
    }
}

impl Stream {
    /// Allocates a stream with a ring of `capacity` bytes (a power of two, 64 to 2^30) in
    /// `arena`'s segment, growing the segment if its heap is full and it may grow.
    pub fn create<R: Repr>(arena: &Arena<R>, capacity: u64) -> Result<Stream, CollectionError> {
        if !capacity.is_power_of_two() || !(64..=MAX_STREAM_CAPACITY).contains(&capacity) {
            return Err(CollectionError::BadConfig {
                what: "stream capacity must be a power of two from 64 to 2^30",
            });
        }
        let seg = arena.shared_segment()?;
        let off = seg.alloc(STREAM_HEADER + capacity, 64)?;
        let p = match seg.region().resolve(off, STREAM_HEADER, 64) {
            Ok(p) => p,
            Err(e) => {
                let _ = seg.free(off);
                return Err(e.into());
            }
        };
        // SAFETY: a fresh allocation nobody else knows; zero bytes are a valid control
        // block (all atomics).
        unsafe { p.as_ptr().write_bytes(0, STREAM_HEADER as usize) };
        // SAFETY: resolved, aligned, initialised just above.
        let ctl = unsafe { p.cast::<StreamControl>().as_ref() };
        ctl.capacity.store(capacity, Relaxed);
        ctl.magic.store(STREAM_MAGIC, Release);
        Ok(Stream {
            seg: seg.clone(),
            offset: off,
            capacity,
        })
    }

    /// Opens the stream at `offset` (from [`offset`](Self::offset), the same in every
    /// process), checking its control block.
    pub fn open<R: Repr>(arena: &Arena<R>, offset: u64) -> Result<Stream, CollectionError> {
        let seg = arena.shared_segment()?;
        // A caller's offset that cannot hold a control block is the caller's mistake.
        arena.block_at(offset, STREAM_HEADER, 64, "relshm Stream")?;
        let capacity = End::check(seg, offset)?.1;
        Ok(Stream {
            seg: seg.clone(),
            offset,
            capacity,
        })
    }

    /// Like [`create`](Self::create), and records the stream under `name` in the
    /// segment's directory (kind stream).
    pub fn create_named<R: Repr>(
        arena: &Arena<R>,
        name: &str,
        capacity: u64,
    ) -> Result<Stream, CollectionError> {
        let s = Self::create(arena, capacity)?;
        let dir = s.seg.directory()?;
        crate::record::write(&dir, name, CollectionRecord::stream().at(s.offset)).inspect_err(
            |_| {
                let _ = s.seg.free(s.offset);
            },
        )?;
        Ok(s)
    }

    /// Opens the stream recorded under `name` (`Err(RecordMismatch)` if the name is
    /// another kind of collection).
    pub fn open_named<R: Repr>(arena: &Arena<R>, name: &str) -> Result<Stream, CollectionError> {
        let dir = arena.shared_segment()?.directory()?;
        let offset = crate::record::read(&dir, name, &CollectionRecord::stream())?;
        Self::open(arena, offset)
    }

    /// The stream's offset in the segment (the same in every process).
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// Ring bytes.
    pub fn capacity(&self) -> u64 {
        self.capacity
    }

    /// Takes the writing end (one writer per stream, ever: `Err(TooManyEndpoints)` after).
    pub fn writer(&self) -> Result<StreamWriter, CollectionError> {
        Ok(StreamWriter {
            end: End::open(&self.seg, self.offset, true)?,
            timeout: None,
        })
    }

    /// Takes the reading end (one reader per stream, ever: `Err(TooManyEndpoints)` after).
    pub fn reader(&self) -> Result<StreamReader, CollectionError> {
        Ok(StreamReader {
            end: End::open(&self.seg, self.offset, false)?,
            timeout: None,
        })
    }
}

/// An attached stream end (shared by reader and writer).
struct End {
    /// Keeps the mapping (so `ctl` and `ring`) alive.
    _seg: Segment,
    ctl: NonNull<StreamControl>,
    ring: NonNull<u8>,
    capacity: u64,
    pid: u32,
    writer: bool,
}

// SAFETY: shared memory accessed through atomics and the SPSC protocol; one end per role.
unsafe impl Send for End {}

impl End {
    /// The control block at `off` and its ring capacity, checked.
    fn check(seg: &Segment, off: u64) -> Result<(NonNull<StreamControl>, u64), CollectionError> {
        let p = seg.region().resolve_as::<StreamControl>(off)?;
        if !off.is_multiple_of(64) {
            return Err(crate::error::corrupt("stream control block not 64-aligned"));
        }
        // SAFETY: resolved in bounds and aligned; all fields are atomics.
        let ctl = unsafe { p.as_ref() };
        if ctl.magic.load(Acquire) != STREAM_MAGIC {
            return Err(CollectionError::BadHeader {
                expected: "relshm Stream",
                offset: off,
                why: crate::error::WRONG_MAGIC,
            });
        }
        let capacity = ctl.capacity.load(Relaxed);
        if !capacity.is_power_of_two() || !(64..=MAX_STREAM_CAPACITY).contains(&capacity) {
            return Err(crate::error::corrupt("stream capacity out of range"));
        }
        Ok((p, capacity))
    }

    fn open(seg: &Segment, off: u64, writer: bool) -> Result<End, CollectionError> {
        let (p, capacity) = Self::check(seg, off)?;
        // SAFETY: resolved in bounds and aligned (check); all fields are atomics.
        let ctl = unsafe { p.as_ref() };
        let ring = seg.region().resolve(off + STREAM_HEADER, capacity, 64)?;
        let state = if writer {
            &ctl.writer_state
        } else {
            &ctl.reader_state
        };
        if state
            .compare_exchange(NEVER, OPEN, AcqRel, Acquire)
            .is_err()
        {
            return Err(CollectionError::TooManyEndpoints { max: 1 });
        }
        let who = if writer { &ctl.writer } else { &ctl.reader };
        who[0].store(u64::from(std::process::id()), Relaxed);
        who[1].store(procstat::own_start_time(), Release);
        Ok(End {
            _seg: seg.clone(),
            ctl: p,
            ring,
            capacity,
            pid: std::process::id(),
            writer,
        })
    }

    fn ctl(&self) -> &StreamControl {
        // SAFETY: resolved and validated at open; the end's segment clone keeps it mapped.
        unsafe { self.ctl.as_ref() }
    }

    fn data(&self) -> Event<'_> {
        Event {
            word: &self.ctl().data,
            waiters: &self.ctl().data_waiters,
        }
    }

    fn space(&self) -> Event<'_> {
        Event {
            word: &self.ctl().space,
            waiters: &self.ctl().space_waiters,
        }
    }

    /// Whether the other end's process died without closing (reads `/proc`: only on
    /// the idle path, every [`LIVENESS_INTERVAL`](crate::queue::LIVENESS_INTERVAL)).
    fn peer_died(&self) -> bool {
        let ctl = self.ctl();
        let (state, who) = if self.writer {
            (&ctl.reader_state, &ctl.reader)
        } else {
            (&ctl.writer_state, &ctl.writer)
        };
        if state.load(Acquire) != OPEN {
            return false;
        }
        let start = who[1].load(Acquire);
        let pid = u32::try_from(who[0].load(Acquire)).unwrap_or(0);
        start != 0 && pid != self.pid && procstat::is_gone(pid, |t| t == start)
    }

    fn closed_peer(&self) -> bool {
        let ctl = self.ctl();
        let state = if self.writer {
            &ctl.reader_state
        } else {
            &ctl.writer_state
        };
        state.load(Acquire) == CLOSED
    }

    fn copy(&self, pos: u64, buf: *mut u8, len: usize, into_ring: bool) {
        let at = (pos & (self.capacity - 1)) as usize;
        let first = len.min(self.capacity as usize - at);
        // SAFETY: `at + first <= capacity` and the rest wraps to the ring start; the ring
        // was resolved at open; the SPSC protocol gives this end exclusive use of these
        // bytes (free space for the writer, published bytes for the reader); `buf` is the
        // caller's slice of `len` bytes.
        unsafe {
            let ring = self.ring.as_ptr();
            if into_ring {
                core::ptr::copy_nonoverlapping(buf, ring.add(at), first);
                core::ptr::copy_nonoverlapping(buf.add(first), ring, len - first);
            } else {
                core::ptr::copy_nonoverlapping(ring.add(at), buf, first);
                core::ptr::copy_nonoverlapping(ring, buf.add(first), len - first);
            }
        }
    }
}

impl Drop for End {
    fn drop(&mut self) {
        if std::process::id() != self.pid {
            return;
        }
        let ctl = self.ctl();
        let state = if self.writer {
            &ctl.writer_state
        } else {
            &ctl.reader_state
        };
        state.store(CLOSED, SeqCst);
        self.data().wake_all();
        self.space().wake_all();
    }
}

/// For the writer's and reader's Debug.
impl core::fmt::Debug for End {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("StreamEnd")
            .field("capacity", &self.capacity)
            .field("writer", &self.writer)
            .field("ring", &self.ring)
            .finish()
    }
}

fn to_io(e: CollectionError) -> io::Error {
    match e {
        CollectionError::Disconnected { .. } => io::Error::new(io::ErrorKind::BrokenPipe, e),
        CollectionError::Timeout => io::Error::new(io::ErrorKind::TimedOut, e),
        other => io::Error::other(other),
    }
}

/// The writing end of a stream; closing it (drop) ends the stream for the reader.
#[derive(Debug)]
pub struct StreamWriter {
    end: End,
    timeout: Option<Duration>,
}

impl StreamWriter {
    /// Bounds how long one `write` waits for space (`None`: forever); `TimedOut` after.
    pub fn set_timeout(&mut self, timeout: Option<Duration>) {
        self.timeout = timeout;
    }

    fn attempt(&self, buf: &[u8], peer_dead: bool) -> Result<Option<usize>, CollectionError> {
        let ctl = self.end.ctl();
        let w = ctl.written.load(Relaxed);
        let r = ctl.read.load(Acquire);
        let free = self.end.capacity.saturating_sub(w.wrapping_sub(r));
        if self.end.closed_peer() || peer_dead {
            return Err(CollectionError::Disconnected { peer: "reader" });
        }
        if free == 0 {
            return Ok(None);
        }
        let n = buf.len().min(free as usize);
        self.end.copy(w, buf.as_ptr().cast_mut(), n, true);
        ctl.written.store(w.wrapping_add(n as u64), Release);
        self.end.data().notify(false);
        Ok(Some(n))
    }
}

impl io::Write for StreamWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        let sleeping = &self.end.ctl().sleeping[0];
        let dead = Cell::new(false);
        self.end
            .space()
            .block_on(
                sleeping,
                self.timeout,
                SPIN_ROUNDS,
                || self.attempt(buf, dead.get()),
                || dead.set(self.end.peer_died()),
            )
            .map_err(to_io)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The reading end of a stream.
#[derive(Debug)]
pub struct StreamReader {
    end: End,
    timeout: Option<Duration>,
}

impl StreamReader {
    /// Bounds how long one `read` waits for data (`None`: forever); `TimedOut` after.
    pub fn set_timeout(&mut self, timeout: Option<Duration>) {
        self.timeout = timeout;
    }

    fn attempt(&self, buf: &mut [u8], peer_dead: bool) -> Result<Option<usize>, CollectionError> {
        let ctl = self.end.ctl();
        let r = ctl.read.load(Relaxed);
        let w = ctl.written.load(Acquire);
        let avail = w.wrapping_sub(r);
        if avail > self.end.capacity {
            return Err(crate::error::corrupt(format!(
                "stream positions {r} (read) and {w} (written) are more than the capacity apart"
            )));
        }
        if avail == 0 {
            // Writer gone: re-read `written` (it may have written just before leaving).
            if (peer_dead || self.end.closed_peer()) && ctl.written.load(Acquire) == r {
                return Ok(Some(0));
            }
            return Ok(None);
        }
        let n = buf.len().min(avail as usize);
        self.end.copy(r, buf.as_mut_ptr(), n, false);
        ctl.read.store(r.wrapping_add(n as u64), Release);
        self.end.space().notify(false);
        Ok(Some(n))
    }
}

impl io::Read for StreamReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        let sleeping = &self.end.ctl().sleeping[1];
        let this = &*self;
        let dead = Cell::new(false);
        this.end
            .data()
            .block_on(
                sleeping,
                self.timeout,
                SPIN_ROUNDS,
                || this.attempt(buf, dead.get()),
                || dead.set(this.end.peer_died()),
            )
            .map_err(to_io)
    }
}
