//! Shared set-up for the queue tests: a segment with a heap, re-mapped by forked children
//! at another address.
#![allow(dead_code)]

use relshm_collections::queue::{Queue, QueueConfig};
use relshm_segment::{CreateOptions, Placement, Segment};

/// A fresh unnamed segment of `size` bytes (its heap and directory formatted).
pub fn segment(size: u64) -> Segment {
    Segment::create_unnamed(&CreateOptions::new(size)).expect("create segment")
}

/// A queue in `seg`.
pub fn queue(seg: &Segment, config: QueueConfig) -> Queue {
    Queue::create(&seg.heap().expect("heap"), config).expect("create queue")
}

/// In a forked child: maps `seg` again (at another address, asserted), attaches the queue
/// at `offset`, and returns both (the mapping must outlive the queue).
pub fn remap(seg: &Segment, offset: u64) -> (Segment, Queue) {
    let mine = seg.reopen(Placement::Anywhere).expect("reopen segment");
    assert_ne!(
        mine.base(),
        seg.base(),
        "the child must map at another address"
    );
    let q = Queue::attach(&mine.heap().expect("heap"), offset).expect("attach queue");
    (mine, q)
}
