//! A swizzled Map that resized (freeing its old bucket tables to the segment heap, which
//! reuses the bytes for nodes) publishes an image another view reads back whole: export
//! must not write the view's stale links over memory that was freed and reused.

use relshm_collections::arena::Arena;
use relshm_collections::map::Map;
use relshm_ptr::Swizzle;
use relshm_segment::{CreateOptions, Segment};

/// splitmix64: well-spread distinct keys, so buckets overflow into chain nodes.
fn key(i: u64) -> u64 {
    let mut z = i.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[test]
fn published_swizzled_map_survives_resizes() {
    for n in [1_500u64, 3_000, 10_000] {
        // A tight segment, so the heap must reuse the freed bucket tables for new nodes.
        let size = n * 224 + (512 << 10);
        let seg = Segment::create_unnamed(&CreateOptions::new(size)).unwrap();
        let here = Arena::<Swizzle>::private(&seg).unwrap();
        let map = Map::<u64, u64, Swizzle>::create(&here).unwrap();
        let initial = map.buckets().unwrap();
        for i in 0..n {
            map.insert(key(i), i).unwrap();
        }
        assert!(
            map.buckets().unwrap() > initial,
            "n={n}: the map never resized"
        );
        let off = map.offset();
        here.publish(&seg).unwrap();

        let there = Arena::<Swizzle>::private(&seg).unwrap();
        let copy = Map::<u64, u64, Swizzle>::open(&there, off).unwrap();
        assert_eq!(copy.verify().unwrap(), n, "n={n}");
        for i in 0..n {
            assert_eq!(copy.get(&key(i)).unwrap(), Some(i), "n={n} key {i}");
        }
    }
}
