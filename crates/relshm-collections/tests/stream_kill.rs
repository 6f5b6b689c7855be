//! A stream writer SIGKILLed mid-write: the reader gets every byte that was written up to
//! the death and then end-of-stream, and the heap holds exactly what it held before the
//! writer opened (a writer allocates nothing; the stream's own allocation stays its
//! creator's).

mod queue_support;

use std::io::{Read, Write};
use std::sync::atomic::Ordering;
use std::time::Duration;

use queue_support::{arena, reader, segment, writer};
use relshm_collections::stream::Stream;

use relshm_segment::Placement;
use relshm_testkit::{Exit, Scratch, fork_child};

#[test]
fn a_writer_killed_mid_write_leaks_nothing_and_ends_the_stream() {
    for round in 0..10u64 {
        let seg = segment(4 << 20);
        let heap = seg.heap().unwrap();
        let off = Stream::create(&arena(&seg), 4096).unwrap().offset();
        let before = heap.stats().unwrap().used_bytes;
        let scratch = Scratch::new();
        let writer = fork_child(|| {
            let mine = seg.reopen(Placement::Anywhere).unwrap();
            assert_ne!(mine.base(), seg.base());
            let mut w = writer(&mine, off).unwrap();
            let chunk = vec![0x5a; 100_000];
            loop {
                // Mostly blocked in write (ring full) or copying when the kill lands.
                w.write_all(&chunk).unwrap();
                scratch.slot(0).fetch_add(1, Ordering::AcqRel);
            }
        });
        let mut r = reader(&seg, off).unwrap();
        r.set_timeout(Some(Duration::from_secs(60)));
        let mut buf = vec![0u8; 10_000];
        let mut got = 0u64;
        while got < 50_000 + round * 30_000 {
            let n = r.read(&mut buf).unwrap();
            assert!(buf[..n].iter().all(|&b| b == 0x5a));
            got += n as u64;
        }
        assert_eq!(writer.kill_and_wait(), Exit::Signal(libc::SIGKILL));
        // The rest, then end-of-stream once the reader notices the writer died.
        loop {
            let n = r.read(&mut buf).unwrap();
            if n == 0 {
                break;
            }
            got += n as u64;
        }
        assert!(got >= 100_000 * scratch.slot(0).load(Ordering::Acquire));
        drop(r);
        assert_eq!(heap.stats().unwrap().used_bytes, before, "round {round}");
    }
}
