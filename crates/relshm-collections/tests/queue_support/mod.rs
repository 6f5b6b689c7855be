//! Shared set-up for the queue tests: a segment with a heap, re-mapped by forked children
//! at another address.
#![allow(dead_code)]

use bytemuck::Pod;
use relshm_collections::Arena;
use relshm_collections::CollectionError;
use relshm_collections::queue::{Queue, QueueConfig};
use relshm_collections::stream::{Stream, StreamReader, StreamWriter};
use relshm_segment::{CreateOptions, Placement, Segment};

/// How long a kill-point test waits for a child.
pub const LIMIT: std::time::Duration = std::time::Duration::from_secs(60);
/// A message larger than a [`kill_point_config`] slot: it goes through the heap.
pub const LARGE: usize = 3000;

/// The small queue the kill-point sweeps use: 4 slots of 64 bytes, large messages on.
pub fn kill_point_config() -> QueueConfig {
    QueueConfig {
        capacity: 4,
        slot_size: 64,
        large_messages: true,
    }
}

/// The heap's used bytes: what a kill-point test compares with the start.
pub fn used(seg: &Segment) -> u64 {
    seg.heap().unwrap().stats().unwrap().used_bytes
}

/// A fresh unnamed segment of `size` bytes (its heap and directory formatted).
pub fn segment(size: u64) -> Segment {
    Segment::create_unnamed(&CreateOptions::new(size)).expect("create segment")
}

/// The default-strategy arena on `seg` (a queue does not care which).
pub fn arena(seg: &Segment) -> Arena {
    Arena::new(seg).expect("arena")
}

/// A queue of `T`s in `seg`.
pub fn queue<T: Pod>(seg: &Segment, config: QueueConfig) -> Queue<T> {
    Queue::create(&arena(seg), config).expect("create queue")
}

/// In a forked child: maps `seg` again (at another address, asserted), attaches the queue
/// at `offset`, and returns both (the mapping must outlive the queue).
pub fn remap<T: Pod>(seg: &Segment, offset: u64) -> (Segment, Queue<T>) {
    let mine = seg.reopen(Placement::Anywhere).expect("reopen segment");
    assert_ne!(
        mine.base(),
        seg.base(),
        "the child must map at another address"
    );
    let q = Queue::open(&arena(&mine), offset).expect("open queue");
    (mine, q)
}

/// Kill-point sweeps: `round(n)` runs one script in a child that dies before its n-th
/// fault point (`relshm_segment::heap::exit_before_store`), lets the survivor reclaim,
/// and returns how the child ended and the bytes left in use compared with the start.
/// Runs n = 1, 2, ... until the child completes (exit 0); returns how many points were
/// swept; panics listing every leak, or if a child ends any other way than exit 0 or 77.
pub fn sweep_kill_points(
    name: &str,
    mut round: impl FnMut(u64) -> (relshm_testkit::Exit, i64),
) -> u64 {
    use relshm_testkit::Exit;
    let mut leaks = Vec::new();
    let mut n = 1;
    loop {
        let (exit, leaked) = round(n);
        if leaked != 0 {
            leaks.push((n, leaked));
        }
        match exit {
            Exit::Code(0) => break,
            Exit::Code(77) => n += 1,
            other => panic!("{name}: child died before point {n}: {other:?}"),
        }
    }
    eprintln!(
        "{name}: {} kill points swept, leaks (point, bytes): {leaks:?}",
        n - 1
    );
    assert!(
        leaks.is_empty(),
        "{name}: bytes leaked at kill points (point, bytes): {leaks:?}, total {}",
        leaks.iter().map(|l| l.1).sum::<i64>()
    );
    n - 1
}

/// The stream at `off` of `seg`, for writing.
pub fn writer(seg: &Segment, off: u64) -> Result<StreamWriter, CollectionError> {
    Stream::open(&arena(seg), off)?.writer()
}

/// The stream at `off` of `seg`, for reading.
pub fn reader(seg: &Segment, off: u64) -> Result<StreamReader, CollectionError> {
    Stream::open(&arena(seg), off)?.reader()
}
