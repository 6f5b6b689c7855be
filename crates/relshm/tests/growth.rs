//! Growth without ceremony: one process inserts far more than the segment was created
//! with while an exec'ed reader keeps reading; nobody re-makes a handle.

use relshm::prelude::*;
use relshm_testkit::exec;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

const KEYS: u64 = 1_000_000;
const START: u64 = 1 << 20;
const MAX: u64 = 256 << 20;

fn value(k: u64) -> u64 {
    k.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ 0x5555
}

/// The reader: checks keys below the inserted watermark until the writer is done.
fn reader(name: &str) -> Result<(), Box<dyn std::error::Error>> {
    let seg = Segment::open_named(name, &OpenOptions::new())?;
    let counts = seg.open_map::<u64, u64>("counts")?;
    let dir = seg.directory()?;
    let progress = dir.find::<AtomicU64>("progress")?;
    let first_size = seg.size();
    let (mut reads, mut k) = (0u64, 0u64);
    loop {
        let done = progress.get().load(Ordering::Acquire);
        if done > 0 {
            k = (k + 7919) % done;
            assert_eq!(counts.get(&k)?, Some(value(k)), "key {k} of {done}");
            reads += 1;
        }
        if done == KEYS {
            break;
        }
    }
    assert_eq!(counts.len()?, KEYS);
    assert!(
        reads > 1000,
        "the reader read {reads} times while the map grew"
    );
    assert!(seg.size() > first_size, "the reader saw the segment grow");
    Ok(())
}

#[test]
fn a_map_grows_its_segment_while_another_process_reads() {
    if let Some(role) = exec::role() {
        assert_eq!(role, "reader");
        reader(&exec::arg()).unwrap();
        return;
    }
    let name = format!("relshm-growth-{}", std::process::id());
    let seg = Segment::create_named(&name, &CreateOptions::new(START).max_size(MAX)).unwrap();
    let counts = seg.create_map::<u64, u64>("counts").unwrap();
    let dir = seg.directory().unwrap();
    let progress = dir.construct("progress", AtomicU64::new(0)).unwrap();
    let child = exec::spawn(
        "a_map_grows_its_segment_while_another_process_reads",
        "reader",
        &name,
    );
    for k in 0..KEYS {
        counts.insert(k, value(k)).unwrap();
        if (k + 1) % 10_000 == 0 {
            progress.get().store(k + 1, Ordering::Release);
        }
    }
    let ok = exec::wait(child, Duration::from_secs(600));
    Segment::remove_named(&name).unwrap();
    assert!(ok, "the reader failed (its panic is above)");
    assert_eq!(counts.len().unwrap(), KEYS);
    assert!(seg.size() > 64 * START, "{} bytes", seg.size());
    assert_eq!(counts.verify().unwrap(), KEYS);
}
