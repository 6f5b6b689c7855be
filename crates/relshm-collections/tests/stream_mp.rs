//! Byte streams between two real processes mapping the segment at different addresses.

mod queue_support;

use std::io::{ErrorKind, Read, Write};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use queue_support::{arena, reader, segment, writer};
use relshm_collections::stream::Stream;

use relshm_segment::Placement;
use relshm_testkit::{Exit, Scratch, fork_child};

const LIMIT: Duration = Duration::from_secs(300);

/// Bytes streamed by the big test: 1 GiB in release builds; 64 MiB in debug builds, where
/// copying runs unoptimised (`cargo test --release` for the full size).
const TOTAL: u64 = if cfg!(debug_assertions) {
    64 << 20
} else {
    1 << 30
};

/// The pseudo-random word at word index `i` of the stream.
fn word(i: u64) -> u64 {
    let mut x = i.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// Order-sensitive checksum of a byte run (FNV-1a over 8-byte words, then the tail).
#[derive(Default)]
struct Checksum {
    h: u64,
    pending: Vec<u8>,
    len: u64,
}

impl Checksum {
    fn update(&mut self, mut bytes: &[u8]) {
        self.len += bytes.len() as u64;
        if !self.pending.is_empty() {
            let need = 8 - self.pending.len();
            let take = need.min(bytes.len());
            self.pending.extend_from_slice(&bytes[..take]);
            bytes = &bytes[take..];
            if self.pending.len() == 8 {
                let w = u64::from_le_bytes(self.pending[..].try_into().unwrap());
                self.mix(w);
                self.pending.clear();
            }
        }
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            self.mix(u64::from_le_bytes(c.try_into().unwrap()));
        }
        self.pending.extend_from_slice(chunks.remainder());
    }

    fn mix(&mut self, w: u64) {
        self.h = (self.h ^ w).wrapping_mul(0x100_0000_01b3).rotate_left(17);
    }

    fn finish(mut self) -> (u64, u64) {
        let tail = std::mem::take(&mut self.pending);
        for b in tail {
            self.mix(u64::from(b));
        }
        (self.h, self.len)
    }
}

/// In a forked child: `seg` mapped again, at another address (asserted).
fn remap(seg: &relshm_segment::Segment) -> relshm_segment::Segment {
    let mine = seg.reopen(Placement::Anywhere).unwrap();
    assert_ne!(mine.base(), seg.base());
    mine
}

#[test]
fn a_large_stream_arrives_intact_between_processes() {
    let seg = segment(8 << 20);
    let off = Stream::create(&arena(&seg), 1 << 20).unwrap().offset();
    let scratch = Scratch::new();
    let writer = fork_child(|| {
        let mine = remap(&seg);
        let mut w = writer(&mine, off).unwrap();
        let mut sum = Checksum::default();
        // Odd-sized chunks so that writes straddle the ring's wrap point.
        let mut buf = vec![0u8; 65_536 + 24];
        let mut i = 0u64;
        let mut sent = 0u64;
        while sent < TOTAL {
            let n = (buf.len() as u64).min(TOTAL - sent) as usize;
            for c in buf[..n].chunks_mut(8) {
                c.copy_from_slice(&word(i).to_le_bytes()[..c.len()]);
                i += 1;
            }
            w.write_all(&buf[..n]).unwrap();
            sum.update(&buf[..n]);
            sent += n as u64;
        }
        let (h, len) = sum.finish();
        scratch.slot(0).store(h, Ordering::Release);
        scratch.slot(1).store(len, Ordering::Release);
        0 // the writer closes here: end of stream
    });
    let mut r = reader(&seg, off).unwrap();
    let mut sum = Checksum::default();
    let mut buf = vec![0u8; 100_003];
    let start = Instant::now();
    loop {
        let n = r.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        sum.update(&buf[..n]);
    }
    let took = start.elapsed();
    assert!(writer.wait_timeout(LIMIT).success());
    let (h, len) = sum.finish();
    assert_eq!(len, TOTAL, "end of stream came early or late");
    assert_eq!(len, scratch.slot(1).load(Ordering::Acquire));
    assert_eq!(
        h,
        scratch.slot(0).load(Ordering::Acquire),
        "checksum mismatch"
    );
    println!(
        "{} MiB in {took:?} ({:.0} MiB/s)",
        TOTAL >> 20,
        TOTAL as f64 / 1048576.0 / took.as_secs_f64()
    );
}

#[test]
fn the_reader_sees_end_of_stream_when_the_writer_is_killed() {
    let seg = segment(4 << 20);
    let off = Stream::create(&arena(&seg), 4096).unwrap().offset();
    let scratch = Scratch::new();
    let writer = fork_child(|| {
        let mine = remap(&seg);
        let mut w = writer(&mine, off).unwrap();
        w.write_all(b"last words").unwrap();
        scratch.slot(0).store(1, Ordering::Release);
        loop {
            std::thread::sleep(Duration::from_secs(1));
        }
    });
    scratch.wait_for(0, 1, LIMIT);
    let mut r = reader(&seg, off).unwrap();
    let mut buf = [0u8; 10];
    r.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"last words");
    assert_eq!(writer.kill_and_wait(), Exit::Signal(libc::SIGKILL));
    let start = Instant::now();
    assert_eq!(
        r.read(&mut buf).unwrap(),
        0,
        "end of stream after the writer died"
    );
    println!("writer death seen after {:?}", start.elapsed());
}

#[test]
fn the_writer_gets_broken_pipe_when_the_reader_is_killed() {
    let seg = segment(4 << 20);
    let off = Stream::create(&arena(&seg), 64).unwrap().offset();
    let scratch = Scratch::new();
    let reader = fork_child(|| {
        let mine = remap(&seg);
        let _r = reader(&mine, off).unwrap();
        scratch.slot(0).store(1, Ordering::Release);
        loop {
            std::thread::sleep(Duration::from_secs(1));
        }
    });
    scratch.wait_for(0, 1, LIMIT);
    let mut w = writer(&seg, off).unwrap();
    w.write_all(&[1u8; 64]).unwrap();
    assert_eq!(reader.kill_and_wait(), Exit::Signal(libc::SIGKILL));
    let e = w.write_all(&[2u8; 10]).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::BrokenPipe);
}

#[test]
fn closing_ends_the_stream_and_timeouts_fire() {
    let seg = segment(4 << 20);
    let off = Stream::create(&arena(&seg), 128).unwrap().offset();
    let mut w = writer(&seg, off).unwrap();
    let mut r = reader(&seg, off).unwrap();
    assert!(writer(&seg, off).is_err(), "one writer per stream");
    r.set_timeout(Some(Duration::from_millis(50)));
    let start = Instant::now();
    assert_eq!(
        r.read(&mut [0u8; 4]).unwrap_err().kind(),
        ErrorKind::TimedOut
    );
    assert!(start.elapsed() >= Duration::from_millis(50));
    w.write_all(&[9u8; 128]).unwrap();
    w.set_timeout(Some(Duration::from_millis(50)));
    assert_eq!(w.write(&[1]).unwrap_err().kind(), ErrorKind::TimedOut);
    drop(w);
    let mut all = Vec::new();
    r.read_to_end(&mut all).unwrap();
    assert_eq!(all, vec![9u8; 128]);
    assert_eq!(r.read(&mut [0u8; 4]).unwrap(), 0);
}
