//! Copy-time translation: a List and a Map built with Raw links in one process are copied,
//! with every link rewritten, for a process that maps the destination at another address;
//! that process reads them with plain absolute pointers.

use relshm_collections::arena::{Arena, CollectionError};
use relshm_collections::list::List;
use relshm_collections::map::Map;
use relshm_ptr::Raw;
use relshm_ptr::translate::Space;
use relshm_segment::{CreateOptions, Placement, Segment};
use relshm_testkit::{Scratch, fork_child};
use std::sync::atomic::Ordering;
use std::time::Duration;

const LIMIT: Duration = Duration::from_secs(60);
const BASE: usize = 0;
const LIST_ROOT: usize = 1;
const MAP_ROOT: usize = 2;
const DONE: usize = 3;
const BLOCK: u64 = 8 << 20;

#[test]
fn list_and_map_handed_to_another_process_by_translated_copy() {
    let src = Segment::create_unnamed(&CreateOptions::new(32 << 20)).unwrap();
    let dst = Segment::create_unnamed(&CreateOptions::new(32 << 20)).unwrap();
    let block = dst.alloc(BLOCK, 64).unwrap();
    let scratch = Scratch::new();
    let child = fork_child(|| {
        let mine = dst.reopen(Placement::Hint(0x6300_0000_0000)).unwrap();
        if mine.base() == dst.base() {
            return 2;
        }
        scratch
            .slot(BASE)
            .store(mine.base().as_ptr() as u64, Ordering::Release);
        scratch.wait_for(DONE, 1, LIMIT);
        // SAFETY: `mine` stays mapped until the child exits.
        let arena = unsafe { Arena::<Raw>::translated(mine.region(), mine.base().as_ptr() as u64) }
            .unwrap();
        let root = scratch.slot(LIST_ROOT).load(Ordering::Acquire);
        let list = List::<u64, Raw>::open(&arena, root).unwrap();
        let want: Vec<u64> = (0..1000).map(|i| i * 7).collect();
        let list_ok = list.to_vec().unwrap() == want && list.verify().unwrap() == 1000;
        // The copy has no allocator: mutations are refused, not corrupting.
        let read_only = matches!(list.push_back(1), Err(CollectionError::ReadOnly));
        let root = scratch.slot(MAP_ROOT).load(Ordering::Acquire);
        let map = Map::<u64, u64, Raw>::open(&arena, root).unwrap();
        let map_ok = map.verify().unwrap() == 5000
            && (0..5000u64).all(|k| map.get(&k).unwrap() == Some(k * k))
            && map.get(&5000).unwrap().is_none();
        (!(list_ok && read_only && map_ok)) as i32
    });
    // Build with raw pointers valid only here.
    let arena = Arena::<Raw>::local(&src).unwrap();
    let list = List::<u64, Raw>::create(&arena).unwrap();
    for i in 0..1000 {
        list.push_back(i * 7).unwrap();
    }
    let map = Map::<u64, u64, Raw>::create(&arena).unwrap();
    for k in 0..5000 {
        map.insert(k, k * k).unwrap();
    }
    scratch.wait_for(BASE, 1, LIMIT);
    let receiver = scratch.slot(BASE).load(Ordering::Acquire);
    assert_ne!(receiver, dst.base().as_ptr() as u64);
    // SAFETY: dst stays mapped here; the block was allocated for the copies and nobody
    // else touches it until DONE.
    let space = unsafe { Space::new(dst.region(), receiver) };
    let l = list.translate_to(&space, block).unwrap();
    let m = map
        .translate_to(&space, l.used.next_multiple_of(64))
        .unwrap();
    assert!(m.used <= block + BLOCK, "the copies fit the block");
    // The map: header, table, 8 chunks (most entries inline in them), chain nodes.
    assert!(l.objects == 1001 && m.objects >= 10);
    scratch
        .slot(LIST_ROOT)
        .store(l.root_offset, Ordering::Release);
    scratch
        .slot(MAP_ROOT)
        .store(m.root_offset, Ordering::Release);
    scratch.slot(DONE).store(1, Ordering::Release);
    assert!(child.wait_timeout(LIMIT).success());
    // The original is untouched and still usable.
    assert_eq!(list.verify().unwrap(), 1000);
    assert_eq!(map.verify().unwrap(), 5000);
}
