//! The named-object directory: construct/find/find_or_construct/remove, type fingerprints
//! refused on mismatch (in this process and in a child mapping the segment elsewhere), and
//! racing creators that end up sharing one object.

mod heap_common;

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use heap_common::Mem;
use relshm_segment::directory::{Directory, DirectoryError, MAX_NAME_LEN, SegmentObject};
use relshm_segment::heap::{HEAP_CONTROL_SIZE, Heap};
use relshm_testkit::{Exit, fork_child};

const START: u64 = HEAP_CONTROL_SIZE.next_multiple_of(64);

fn fresh(mem: &Mem) -> Heap {
    // SAFETY: fresh memory used only through heap handles.
    unsafe { Heap::init(mem.region(), 0, START, mem.region().len()) }.unwrap()
}

#[repr(C)]
struct Point {
    x: AtomicU64,
    y: AtomicU64,
}

// SAFETY: repr(C), two atomics: any bytes are valid and shared mutation is atomic.
unsafe impl SegmentObject for Point {
    const TYPE_NAME: &'static str = "test::Point";
    const TYPE_VERSION: u32 = 2;
}

#[repr(C)]
struct PointV1 {
    x: AtomicU64,
    y: AtomicU64,
}

// SAFETY: as for Point.
unsafe impl SegmentObject for PointV1 {
    const TYPE_NAME: &'static str = "test::Point";
    const TYPE_VERSION: u32 = 1;
}

#[test]
fn construct_find_remove() {
    let mem = Mem::private(1 << 18);
    let heap = fresh(&mem);
    let dir = Directory::open_or_create(&heap, 8).unwrap();
    let p = dir
        .construct(
            "origin",
            Point {
                x: 3.into(),
                y: 4.into(),
            },
        )
        .unwrap();
    p.x.store(30, Relaxed);
    let q = dir.find::<Point>("origin").unwrap();
    assert_eq!(
        (q.offset(), q.x.load(Relaxed), q.y.load(Relaxed)),
        (p.offset(), 30, 4)
    );
    assert!(matches!(
        dir.construct("origin", 1u8),
        Err(DirectoryError::AlreadyExists { .. })
    ));
    let arr = dir.find_or_construct("arr", || [7u32; 4]).unwrap();
    assert_eq!(*arr, [7; 4]);
    let again = dir.find_or_construct("arr", || [0u32; 4]).unwrap();
    assert_eq!((again.offset(), *again), (arr.offset(), [7; 4]));
    assert_eq!(dir.verify().unwrap(), 2);
    let names: Vec<Vec<u8>> = dir.entries().unwrap().into_iter().map(|e| e.name).collect();
    assert!(names.contains(&b"origin".to_vec()) && names.contains(&b"arr".to_vec()));

    let used = heap.stats().unwrap().used_blocks;
    // SAFETY: nothing uses "arr" after this.
    unsafe { dir.remove("arr") }.unwrap();
    assert_eq!(heap.stats().unwrap().used_blocks, used - 1);
    assert!(matches!(
        dir.find::<[u32; 4]>("arr"),
        Err(DirectoryError::NotFound { .. })
    ));
    // SAFETY: as above.
    let again = unsafe { dir.remove("arr") };
    assert!(matches!(again, Err(DirectoryError::NotFound { .. })));
    // The tombstone is reused and "origin" is still found past it.
    dir.construct("arr", 5u16).unwrap();
    assert_eq!(*dir.find::<u16>("arr").unwrap(), 5);
    assert_eq!(dir.find::<Point>("origin").unwrap().offset(), p.offset());
    assert_eq!(dir.verify().unwrap(), 2);
    heap.verify().unwrap();
}

#[test]
fn wrong_types_are_refused() {
    let mem = Mem::private(1 << 18);
    let heap = fresh(&mem);
    let dir = Directory::open_or_create(&heap, 8).unwrap();
    dir.construct("n", 1u64).unwrap();
    dir.construct(
        "p",
        Point {
            x: 0.into(),
            y: 0.into(),
        },
    )
    .unwrap();
    dir.construct("a", [1u32; 4]).unwrap();
    let mismatch = |r: Result<_, DirectoryError>| match r {
        Err(DirectoryError::TypeMismatch {
            stored, requested, ..
        }) => {
            assert_ne!(stored, requested);
            true
        }
        _ => false,
    };
    assert!(
        mismatch(dir.find::<i64>("n").map(|_| ())),
        "same size, other type"
    );
    assert!(mismatch(dir.find::<AtomicU64>("n").map(|_| ())));
    assert!(
        mismatch(dir.find::<PointV1>("p").map(|_| ())),
        "other version"
    );
    assert!(mismatch(dir.find::<[u64; 2]>("p").map(|_| ())));
    assert!(
        mismatch(dir.find::<[u32; 5]>("a").map(|_| ())),
        "other length"
    );
    assert!(
        mismatch(dir.find::<[i32; 4]>("a").map(|_| ())),
        "other element"
    );
    assert!(mismatch(dir.find::<u32>("a").map(|_| ())));
    assert!(mismatch(dir.find_or_construct("n", || 0u32).map(|_| ())));
    let err = dir.find::<i64>("n").err().unwrap().to_string();
    assert!(
        err.contains("`u64` v1") && err.contains("`i64` v1"),
        "{err}"
    );
}

#[test]
fn names_are_bounded_and_the_table_fills_up() {
    let mem = Mem::private(1 << 18);
    let heap = fresh(&mem);
    let dir = Directory::open_or_create(&heap, 4).unwrap();
    assert_eq!(dir.capacity(), 4);
    let long = vec![b'x'; MAX_NAME_LEN + 1];
    assert!(matches!(
        dir.construct(&long, 1u8),
        Err(DirectoryError::BadName { .. })
    ));
    assert!(matches!(
        dir.find::<u8>(""),
        Err(DirectoryError::BadName { .. })
    ));
    dir.construct(&long[..MAX_NAME_LEN], 1u8).unwrap();
    for i in 0..3 {
        dir.construct(format!("n{i}"), i as u32).unwrap();
    }
    assert!(matches!(
        dir.construct("more", 0u8),
        Err(DirectoryError::Full { capacity: 4 })
    ));
    assert_eq!(*dir.find::<u8>(&long[..MAX_NAME_LEN]).unwrap(), 1);
    // A second open sees the same table.
    let other = Directory::open_or_create(&heap, 1000).unwrap();
    assert_eq!(other.capacity(), 4);
    assert_eq!(*other.find::<u32>("n2").unwrap(), 2);
}

#[test]
fn a_child_at_another_address_is_refused_the_wrong_type() {
    let mem = Mem::shared(1 << 18);
    let heap = fresh(&mem);
    let dir = Directory::open_or_create(&heap, 16).unwrap();
    let counter = dir.construct("counter", AtomicU64::new(5)).unwrap();
    dir.construct("table", [1u32, 2, 3, 4]).unwrap();
    let child = fork_child(|| {
        let mine = mem.remap();
        if mine.base() == mem.base() {
            return 2;
        }
        // SAFETY: the memfd is used only through heap handles.
        let heap = unsafe { Heap::attach(mine.region(), 0) }.unwrap();
        let dir = Directory::open(&heap).unwrap();
        if !matches!(
            dir.find::<u64>("counter"),
            Err(DirectoryError::TypeMismatch { .. })
        ) {
            return 3;
        }
        if !matches!(
            dir.find::<[u32; 3]>("table"),
            Err(DirectoryError::TypeMismatch { .. })
        ) {
            return 4;
        }
        if *dir.find::<[u32; 4]>("table").unwrap() != [1, 2, 3, 4] {
            return 5;
        }
        dir.find::<AtomicU64>("counter")
            .unwrap()
            .fetch_add(1, Relaxed);
        dir.construct("from-child", 42u64).unwrap();
        0
    });
    assert_eq!(child.wait_timeout(Duration::from_secs(60)), Exit::Code(0));
    assert_eq!(counter.load(Relaxed), 6);
    assert_eq!(*dir.find::<u64>("from-child").unwrap(), 42);
    assert!(matches!(
        dir.find::<i64>("from-child"),
        Err(DirectoryError::TypeMismatch { .. })
    ));
}

#[test]
fn racing_children_share_one_object() {
    let mem = Mem::shared(1 << 18);
    let heap = fresh(&mem);
    let children: Vec<_> = (0..4)
        .map(|_| {
            fork_child(|| {
                let mine = mem.remap();
                // SAFETY: the memfd is used only through heap handles.
                let heap = unsafe { Heap::attach(mine.region(), 0) }.unwrap();
                let dir = Directory::open_or_create(&heap, 32).unwrap();
                for _ in 0..500 {
                    let c = dir.find_or_construct("hits", || AtomicU64::new(0)).unwrap();
                    c.fetch_add(1, Relaxed);
                }
                0
            })
        })
        .collect();
    for c in children {
        assert_eq!(c.wait_timeout(Duration::from_secs(60)), Exit::Code(0));
    }
    let dir = Directory::open(&heap).unwrap();
    assert_eq!(dir.find::<AtomicU64>("hits").unwrap().load(Relaxed), 2000);
    assert_eq!(dir.entries().unwrap().len(), 1);
    // Losing creators freed their tables: only the directory and one object remain.
    assert_eq!(heap.verify().unwrap().used_blocks, 2);
}
