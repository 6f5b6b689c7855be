//! Online growth while other processes are attached and working.

mod segment_support;

use std::sync::atomic::Ordering;

use relshm_segment::{CreateOptions, Header, OpenOptions, Segment, SegmentError};
use relshm_testkit::{Exit, Scratch, fork_child};
use segment_support::{DATA, LIMIT, ShmName, word};

const KIB: u64 = 1024;
const MIB: u64 = 1 << 20;

#[test]
fn child_keeps_working_across_growth() {
    let name = ShmName::new("grow");
    let seg =
        Segment::create_named(&name.0, &CreateOptions::new(64 * KIB).max_size(64 * MIB)).unwrap();
    let parent_base = seg.base();
    let scratch = Scratch::new();
    // Slots: 0 child base at start, 1 child base at end, 2 parent's step, 3 child's step.
    let child = fork_child(|| {
        let s = Segment::open_named(&name.0, &OpenOptions::new()).unwrap();
        scratch
            .slot(0)
            .store(s.base().as_ptr() as u64, Ordering::Release);
        let mut seen = 0;
        let mut bad = 0;
        while seen < STEPS {
            // Keep writing through the old part the whole time.
            word(s.region(), DATA).fetch_add(1, Ordering::AcqRel);
            let step = scratch.slot(2).load(Ordering::Acquire);
            if step > seen {
                let r = s.region();
                let size = (64 * KIB) << step;
                if r.len() < size {
                    bad += 1;
                }
                // The parent wrote the step number at the start of the new part; answer
                // in the last word of it.
                if word(r, size / 2).load(Ordering::Acquire) != step {
                    bad += 1;
                }
                word(r, size - 8).store(step, Ordering::Release);
                seen = step;
                scratch.slot(3).store(seen, Ordering::Release);
            }
            std::thread::yield_now();
        }
        scratch
            .slot(1)
            .store(s.base().as_ptr() as u64, Ordering::Release);
        if bad == 0 { 0 } else { 1 }
    });
    scratch.wait_for(0, 1, LIMIT);
    assert_ne!(
        scratch.slot(0).load(Ordering::Acquire),
        parent_base.as_ptr() as u64
    );
    for step in 1..=STEPS {
        let size = (64 * KIB) << step;
        assert_eq!(seg.grow(size).unwrap(), size);
        assert_eq!(seg.generation(), step);
        word(seg.region(), size / 2).store(step, Ordering::Release);
        scratch.slot(2).store(step, Ordering::Release);
        scratch.wait_for(3, step, LIMIT);
        assert_eq!(word(seg.region(), size - 8).load(Ordering::Acquire), step);
    }
    assert_eq!(child.wait_timeout(LIMIT), Exit::Code(0));
    // No mapping moved.
    assert_eq!(seg.base(), parent_base);
    assert_eq!(
        scratch.slot(0).load(Ordering::Acquire),
        scratch.slot(1).load(Ordering::Acquire)
    );
    assert!(word(seg.region(), DATA).load(Ordering::Acquire) >= STEPS);
    assert_eq!(seg.size(), (64 * KIB) << STEPS);
}

const STEPS: u64 = 8; // 64 KiB -> 16 MiB

#[test]
fn concurrent_growers_agree() {
    let name = ShmName::new("grow-race");
    let seg =
        Segment::create_named(&name.0, &CreateOptions::new(64 * KIB).max_size(32 * MIB)).unwrap();
    let scratch = Scratch::new();
    let children: Vec<_> = (0..3u64)
        .map(|c| {
            let name = &name.0;
            let scratch = &scratch;
            fork_child(move || {
                let s = Segment::open_named(name, &OpenOptions::new()).unwrap();
                scratch.wait_for(0, 1, LIMIT);
                for i in 1..=40u64 {
                    let want = (i * 3 + c) * 64 * KIB;
                    let got = s.grow(want).unwrap();
                    if got < want {
                        return 1;
                    }
                    // Bytes just below the size this process asked for are usable.
                    word(s.region(), want - 8).fetch_add(1, Ordering::AcqRel);
                }
                0
            })
        })
        .collect();
    scratch.slot(0).store(1, Ordering::Release);
    for c in children {
        assert_eq!(c.wait_timeout(LIMIT), Exit::Code(0));
    }
    let final_size = (40 * 3 + 2) * 64 * KIB;
    assert_eq!(seg.size(), final_size);
    assert_eq!(seg.refresh().unwrap(), final_size);
    assert!(
        seg.generation() >= 40 && seg.generation() <= 120,
        "{}",
        seg.generation()
    );
    let touched: u64 = (1..=40u64)
        .flat_map(|i| (0..3).map(move |c| (i * 3 + c) * 64 * KIB - 8))
        .map(|off| word(seg.region(), off).load(Ordering::Acquire))
        .sum();
    assert_eq!(touched, 120);
}

#[test]
fn growth_limits_and_stale_lock() {
    let seg = Segment::create_unnamed(&CreateOptions::new(64 * KIB).max_size(MIB)).unwrap();
    assert_eq!(
        seg.grow(2 * MIB).unwrap_err(),
        SegmentError::GrowBeyondMax {
            requested: 2 * MIB,
            max: MIB
        }
    );
    assert_eq!(seg.grow(KIB).unwrap(), 64 * KIB, "shrinking is a no-op");
    assert_eq!(
        seg.grow(100 * KIB + 1).unwrap(),
        104 * KIB,
        "rounded up to pages"
    );
    let fixed = Segment::create_unnamed(&CreateOptions::new(64 * KIB)).unwrap();
    assert!(matches!(
        fixed.grow(128 * KIB),
        Err(SegmentError::GrowBeyondMax { .. })
    ));

    // A grower that died holding the lock does not block growth.
    let dead = fork_child(|| 0);
    let pid = dead.pid() as u64;
    assert_eq!(dead.wait_timeout(LIMIT), Exit::Code(0));
    let lock = word(
        seg.region(),
        core::mem::offset_of!(Header, grow_lock) as u64,
    );
    lock.store(pid << 32 | 12345, Ordering::Release);
    assert_eq!(seg.grow(MIB).unwrap(), MIB);
    assert_eq!(lock.load(Ordering::Acquire), 0);
}
