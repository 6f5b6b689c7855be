//! The linked (unbounded) queue over each pointer representation, within one process and
//! between processes mapping the segment at different addresses, with a killed producer.

mod queue_support;

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use queue_support::segment;
use relshm_collections::arena::Arena;
use relshm_collections::queue::linked::LinkedQueue;
use relshm_ptr::{Offset, Repr, SegRel};
use relshm_segment::{Placement, Segment};
use relshm_testkit::{Exit, Scratch, fork_child};

const LIMIT: Duration = Duration::from_secs(60);

fn fifo<R: Repr>(arena: &Arena<R>) {
    let q = LinkedQueue::<[u64; 2], R>::create(arena).unwrap();
    assert_eq!(q.pop().unwrap(), None);
    for round in 0..3u64 {
        for i in 0..1000 {
            q.push(&[round, i]).unwrap();
        }
        assert_eq!(q.verify().unwrap(), 1000);
        for i in 0..1000 {
            assert_eq!(q.pop().unwrap(), Some([round, i]));
        }
        assert_eq!(q.pop().unwrap(), None);
        assert_eq!(q.verify().unwrap(), 0);
    }
}

#[test]
fn fifo_over_every_in_place_strategy() {
    let seg = segment(8 << 20);
    fifo(&Arena::<Offset>::new(&seg).unwrap());
    fifo(&Arena::<SegRel>::new(&seg).unwrap());
    fifo(&Arena::<relshm_ptr::Raw>::local(&seg).unwrap());
}

fn two_processes<R: Repr>(make: for<'s> fn(&'s Segment) -> Arena<R>) {
    const N: u64 = 20_000;
    let seg = segment(16 << 20);
    let arena = make(&seg);
    let q = LinkedQueue::<u64, R>::create(&arena).unwrap();
    let off = q.offset();
    let producer = fork_child(|| {
        let mine = seg.reopen(Placement::Anywhere).unwrap();
        assert_ne!(mine.base(), seg.base());
        let arena = make(&mine);
        let q = LinkedQueue::<u64, R>::open(&arena, off).unwrap();
        for i in 0..N {
            q.push(&i).unwrap();
        }
        0
    });
    let mut next = 0;
    let deadline = Instant::now() + LIMIT;
    while next < N {
        match q.pop().unwrap() {
            Some(v) => {
                assert_eq!(v, next, "FIFO across processes");
                next += 1;
            }
            None => {
                assert!(Instant::now() < deadline);
                std::thread::yield_now();
            }
        }
    }
    assert!(producer.wait_timeout(LIMIT).success());
    assert_eq!(q.verify().unwrap(), 0);
}

#[test]
fn producer_and_consumer_in_two_processes_offset() {
    two_processes::<Offset>(|s| Arena::<Offset>::new(s).unwrap());
}

#[test]
fn producer_and_consumer_in_two_processes_segrel() {
    two_processes::<SegRel>(|s| Arena::<SegRel>::new(s).unwrap());
}

#[test]
fn a_producer_killed_mid_push_leaves_a_usable_queue() {
    let seg = segment(16 << 20);
    let arena = Arena::<Offset>::new(&seg).unwrap();
    let q = LinkedQueue::<u64, Offset>::create(&arena).unwrap();
    let off = q.offset();
    let scratch = Scratch::new();
    for round in 0..20u64 {
        let victim = fork_child(|| {
            let mine = seg.reopen(Placement::Anywhere).unwrap();
            let arena = Arena::<Offset>::new(&mine).unwrap();
            let q = LinkedQueue::<u64, Offset>::open(&arena, off).unwrap();
            let mut i = 0u64;
            loop {
                q.push(&(round << 32 | i)).unwrap();
                i += 1;
                scratch.slot(0).store(i, Ordering::Release);
            }
        });
        scratch.wait_for(0, 1 + round * 7 % 50, LIMIT);
        std::thread::sleep(Duration::from_micros(200 + round * 97));
        assert_eq!(victim.kill_and_wait(), Exit::Signal(libc::SIGKILL));
        let confirmed = scratch.slot(0).swap(0, Ordering::AcqRel);
        // The queue still works: our own push goes after everything the victim published.
        q.push(&u64::MAX).unwrap();
        let mut got = 0u64;
        loop {
            let v = q.pop().unwrap().expect("our own value is in the queue");
            if v == u64::MAX {
                break;
            }
            assert_eq!(v, round << 32 | got, "FIFO of the victim's values");
            got += 1;
        }
        // Everything push() confirmed arrived (and at most the one in flight besides).
        assert!(
            got == confirmed || got == confirmed + 1,
            "{got} vs {confirmed}"
        );
        assert_eq!(q.verify().unwrap(), 0);
    }
}
