//! Corrupted queue and stream bytes give typed errors, never a panic, UB or a hang.

mod queue_support;

use std::time::{Duration, Instant};

use queue_support::{arena, queue, segment};
use rand::{Rng, SeedableRng, rngs::StdRng};
use relshm_collections::CollectionError;
use relshm_collections::queue::{Queue, QueueConfig};
use relshm_collections::stream::Stream;

/// Writes `v` at `off` (plain bytes: the test plays a buggy or hostile process).
fn poke(seg: &relshm_segment::Segment, off: u64, v: u64) {
    let p = seg.region().resolve(off, 8, 8).unwrap();
    // SAFETY: in bounds and aligned; nobody else uses the queue during the test.
    unsafe { p.as_ptr().cast::<u64>().write_volatile(v) };
}

#[test]
fn attach_rejects_bad_control_blocks() {
    let seg = segment(4 << 20);
    let q = queue::<u64>(&seg, QueueConfig::with_capacity(8));
    let off = q.offset();
    // An offset that cannot hold a control block is the caller's BadOffset.
    let bad_offset = |r: Result<Queue<u64>, CollectionError>| {
        matches!(r, Err(CollectionError::BadOffset { .. }))
    };
    assert!(
        bad_offset(Queue::<u64>::open(&arena(&seg), off + 8)),
        "misaligned"
    );
    assert!(
        bad_offset(Queue::<u64>::open(&arena(&seg), u64::MAX - 7)),
        "out of bounds"
    );
    // A wrong magic is "not a queue" (tests/wrong_offset.rs); the other fields are damage.
    for (field, bad) in [(8, 99), (16, 3), (16, 1 << 40), (24, 17), (40, 5)] {
        let before = {
            let p = seg.region().resolve(off + field, 8, 8).unwrap();
            // SAFETY: in bounds and aligned.
            unsafe { p.as_ptr().cast::<u64>().read_volatile() }
        };
        poke(&seg, off + field, bad);
        let e = Queue::<u64>::open(&arena(&seg), off).unwrap_err();
        assert!(
            matches!(e, CollectionError::Corrupt(_)),
            "field {field}: {e:?}"
        );
        assert!(!e.to_string().is_empty());
        poke(&seg, off + field, before);
    }
    assert!(Queue::<u64>::open(&arena(&seg), off).is_ok());
}

#[test]
fn garbage_in_slots_and_hints_never_hangs_or_panics() {
    let seg = segment(4 << 20);
    let mut rng = StdRng::seed_from_u64(7);
    for round in 0..40 {
        let q = queue(&seg, QueueConfig::with_capacity(8));
        let tx = q.sender().unwrap();
        let rx = q.receiver().unwrap();
        for i in 0..5 {
            tx.try_send(&i).unwrap();
        }
        // Scribble over a few words of the ring and the hints.
        let ring = q.offset() + 2368;
        for _ in 0..3 {
            let target = match rng.gen_range(0..4) {
                0 => q.offset() + 64,  // tail
                1 => q.offset() + 128, // head
                _ => ring + rng.gen_range(0..8) * 320 + rng.gen_range(0..3) * 8,
            };
            poke(&seg, target, rng.r#gen());
        }
        let start = Instant::now();
        for _ in 0..20 {
            match rx.try_recv() {
                Ok(_)
                | Err(CollectionError::Empty | CollectionError::Corrupt(_))
                | Err(
                    CollectionError::WrongSize { .. }
                    | CollectionError::Heap(_)
                    | CollectionError::Region(_),
                ) => {}
                Err(e) => panic!("round {round}: unexpected {e:?}"),
            }
            let _ = tx.try_send(&1);
        }
        // Blocking calls with a timeout end too.
        let _ = rx.recv_timeout(Duration::from_millis(5));
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "round {round} took too long"
        );
    }
}

#[test]
fn a_stream_with_impossible_positions_reports_corruption() {
    use std::io::Read;
    let seg = segment(4 << 20);
    let stream = Stream::create(&arena(&seg), 256).unwrap();
    let off = stream.offset();
    let mut r = stream.reader().unwrap();
    poke(&seg, off + 64, 1 << 40); // written far beyond read + capacity
    let e = r.read(&mut [0u8; 16]).unwrap_err();
    assert!(e.to_string().contains("corrupted"), "{e}");
    poke(&seg, off, 0);
    assert!(Stream::open(&arena(&seg), off).is_err());
}
