//! Corrupted heap and directory bytes: 10,000 mutated and truncated images of a heap with
//! a directory must give `Err`, never a panic, a hang or a wild access. Single changes to a
//! word the heap's `verify` covers must be reported.

mod heap_common;

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use heap_common::Mem;
use rand::{Rng, SeedableRng, rngs::StdRng};
use relshm_segment::Region;
use relshm_segment::directory::Directory;
use relshm_segment::heap::{HEAP_CONTROL_SIZE, Heap};

const LEN: usize = 64 << 10;
const START: u64 = HEAP_CONTROL_SIZE.next_multiple_of(64);
const IMAGES: u64 = 10_000;

/// Builds the pristine image; returns the offsets of the words the heap's verify covers.
fn build(mem: &Mem) -> Vec<u64> {
    // SAFETY: fresh memory used only through heap handles.
    let heap = unsafe { Heap::init(mem.region(), 0, START, LEN as u64) }.unwrap();
    let dir = Directory::open_or_create(&heap, 16).unwrap();
    let mut keep = Vec::new();
    for (i, size) in [40u64, 900, 3000, 70, 12_000, 260, 5000, 33]
        .into_iter()
        .enumerate()
    {
        let a = heap.alloc(size, 16 << (i % 3)).unwrap();
        let b = heap.alloc(size / 2, 16).unwrap();
        keep.push(a);
        heap.free(b).unwrap();
        dir.construct(format!("obj{i}"), [i as u64; 3]).unwrap();
    }
    dir.construct("counter", AtomicU64::new(7)).unwrap();
    heap.free(keep[2]).unwrap();
    heap.free(keep[5]).unwrap();
    heap.verify().unwrap();
    dir.verify().unwrap();

    // Control words: magic, layout, arena bounds, counters, maps, bin heads (not the
    // repair count, the directory slot, the reserved words or the lock).
    let mut covered: Vec<u64> = [0, 1, 2, 3, 4, 5, 6, 7, 9, 10]
        .iter()
        .map(|w| w * 8)
        .collect();
    covered.extend((192..HEAP_CONTROL_SIZE).step_by(8));
    // Block headers, and the links of free blocks.
    let mut b = START;
    let words = |off: u64| {
        let p = mem.region().resolve(off, 8, 8).unwrap();
        // SAFETY: in bounds, aligned; the heap is idle.
        unsafe { p.cast::<u64>().read() }
    };
    while b < LEN as u64 - 16 {
        let size = words(b) & ((1 << 48) - 16);
        covered.extend([b, b + 8]);
        if words(b) & 1 == 0 {
            covered.extend([b + 16, b + 24]);
        }
        b += size;
    }
    covered.extend([b, b + 8]);
    covered
}

fn exercise(region: Region) -> (bool, bool) {
    // SAFETY: the image is a private copy used only through these handles.
    let heap = match unsafe { Heap::attach(region, 0) } {
        Ok(h) => h.with_lock_timeout(Some(Duration::from_millis(1))),
        Err(_) => return (true, true),
    };
    let heap_err = heap.verify().is_err();
    let _ = heap.stats();
    let dir_err = match Directory::open(&heap) {
        Err(_) => true,
        Ok(dir) => {
            let err = dir.verify().is_err();
            let _ = dir.entries();
            if let Ok(c) = dir.find::<AtomicU64>("counter") {
                c.fetch_add(1, Relaxed);
            }
            for i in 0..9 {
                let _ = dir.find::<[u64; 3]>(format!("obj{i}"));
            }
            let _ = dir.find_or_construct("late", || [0u8; 100]);
            err
        }
    };
    if let Ok(live) = heap.allocations() {
        for off in live.into_iter().step_by(3) {
            let _ = heap.usable_size(off);
            let _ = heap.free(off);
        }
    }
    for (size, align) in [(24, 8), (700, 16), (4000, 256), (20_000, 16)] {
        if let Ok(off) = heap.alloc(size, align) {
            assert_eq!(off % align, 0);
            assert!(off + size <= region.len());
        }
    }
    let _ = heap.free(START + 4096);
    let _ = heap.repair();
    let _ = heap.verify();
    (heap_err, dir_err)
}

#[test]
fn mutated_images_give_errors_never_crashes() {
    let mut pristine = Mem::private(LEN);
    let covered = build(&pristine);
    let image = pristine.bytes().to_vec();
    // The directory's table: its offset is the heap control block's word at 88.
    let dir_table = u64::from_le_bytes(image[88..96].try_into().unwrap());
    let mut work = Mem::private(LEN);
    let mut rng = StdRng::seed_from_u64(0xbad_b17e5);
    let (mut single_hits, mut heap_errs, mut dir_errs, mut truncated) = (0, 0, 0, 0);
    for i in 0..IMAGES {
        work.bytes().copy_from_slice(&image);
        let region = work.region();
        let mut must_fail = false;
        let len = if rng.gen_ratio(1, 20) {
            truncated += 1;
            must_fail = true;
            rng.gen_range(0..LEN as u64)
        } else {
            let n = if rng.gen_bool(0.5) {
                1
            } else {
                rng.gen_range(2..8)
            };
            for _ in 0..n {
                let at = if rng.gen_bool(0.25) {
                    dir_table + rng.gen_range(0..64 + 16 * 160)
                } else if rng.gen_bool(0.6) {
                    covered[rng.gen_range(0..covered.len())] + rng.gen_range(0..8)
                } else {
                    rng.gen_range(0..LEN as u64)
                };
                let byte = &mut work.bytes()[at as usize];
                let old = *byte;
                *byte = if rng.gen_bool(0.5) {
                    old ^ 1 << rng.gen_range(0..8)
                } else {
                    rng.r#gen()
                };
                if n == 1 && *byte != old && covered.contains(&(at & !7)) {
                    must_fail = true;
                    single_hits += 1;
                }
            }
            LEN as u64
        };
        // SAFETY: `work` outlives the region; len is at most its size.
        let region = unsafe { Region::new(region.base(), len) };
        let (heap_err, dir_err) = exercise(region);
        assert!(
            !must_fail || heap_err,
            "image {i}: a corrupted heap verified clean"
        );
        heap_errs += heap_err as u64;
        dir_errs += dir_err as u64;
    }
    eprintln!(
        "{IMAGES} images ({truncated} truncated, {single_hits} single changes to covered words): \
         heap verify refused {heap_errs}, directory refused {dir_errs}"
    );
    assert!(single_hits > 1000 && dir_errs > 100);
}
