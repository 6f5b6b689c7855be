//! `relshm verify` on damaged segments: bytes overwritten through the mapping make it exit
//! with status 1 and one clear line per problem.

mod inspect_common;

use core::sync::atomic::{AtomicU64, Ordering};
use inspect_common::*;
use relshm::collections::arena::Arena;
use relshm::collections::list::List;
use relshm::ptr::Offset;
use relshm::segment::{CreateOptions, Segment};

/// Overwrites the u64 at `offset` of the segment.
fn poke(seg: &Segment, offset: u64, value: u64) {
    let p = seg.region().resolve_as::<u64>(offset).unwrap();
    // SAFETY: in bounds and aligned (resolve_as); shared words are accessed atomically.
    unsafe { AtomicU64::from_ptr(p.as_ptr()) }.store(value, Ordering::Release);
}

fn peek(seg: &Segment, offset: u64) -> u64 {
    let p = seg.region().resolve_as::<u64>(offset).unwrap();
    // SAFETY: as in poke.
    unsafe { AtomicU64::from_ptr(p.as_ptr()) }.load(Ordering::Acquire)
}

/// A segment with a list `jobs` of 3 elements and a counter.
fn populated(name: &str) -> Segment {
    let seg = Segment::create_named(name, &CreateOptions::new(1 << 20)).unwrap();
    seg.directory()
        .unwrap()
        .construct("counter", AtomicU64::new(1))
        .unwrap();
    let arena = Arena::<Offset>::new(&seg).unwrap();
    let list = List::<u64, Offset>::create_named(&arena, "jobs").unwrap();
    for i in 0..3 {
        list.push_back(i).unwrap();
    }
    seg
}

/// Runs verify and checks that it fails with `needle` in both its report and its stderr
/// lines (one per problem, each naming the segment).
fn assert_damaged(name: &str, what: &str, needle: &str) {
    let o = relshm(&["verify", name]);
    let (out, err) = (stdout(&o), stderr(&o));
    assert_eq!(o.status.code(), Some(1), "stdout:\n{out}\nstderr:\n{err}");
    assert!(
        out.lines()
            .any(|l| l.starts_with("DAMAGED") && l.contains(&format!(" {what}: "))),
        "no DAMAGED line for {what}:\n{out}"
    );
    assert!(out.contains(needle), "{needle:?} missing from:\n{out}");
    assert!(
        out.contains(&format!("{name}: 1 problem(s) found")),
        "{out}"
    );
    assert!(!err.is_empty());
    for line in err.lines() {
        assert!(line.starts_with(&format!("relshm: {name}: ")), "{line}");
    }
    assert!(err.contains(needle), "{err}");
    let v = json(&["verify", name], 1);
    assert_eq!(v["clean"], false);
}

#[test]
fn a_damaged_directory_entry_fails_verify() {
    let name = unique_name("dmg-dir");
    let _cleanup = Cleanup(name.clone());
    let seg = populated(&name);
    let dir = seg.directory().unwrap();
    // Entries follow the 64-byte table header, 160 bytes each, state word first.
    let live = (0..dir.capacity())
        .map(|i| dir.offset() + 64 + i * 160)
        .find(|&e| peek(&seg, e) == 1)
        .unwrap();
    poke(&seg, live, 9);
    assert_damaged(&name, "directory", "entry state is invalid");
}

#[test]
fn a_damaged_heap_block_header_fails_verify() {
    let name = unique_name("dmg-heap");
    let _cleanup = Cleanup(name.clone());
    let seg = populated(&name);
    let block = seg.alloc(100, 8).unwrap();
    // The block header is the 16 bytes before the payload; its first word is the size
    // word with a tag that ties it to its offset.
    poke(&seg, block - 16, 0x0bad_0bad_0bad_0bad);
    assert_damaged(&name, "heap", "heap is corrupted");
}

#[test]
fn a_damaged_list_fails_verify_through_the_lists_own_check() {
    let name = unique_name("dmg-list");
    let _cleanup = Cleanup(name.clone());
    let seg = populated(&name);
    let arena = Arena::<Offset>::new(&seg).unwrap();
    let list = List::<u64, Offset>::open_named(&arena, "jobs").unwrap();
    // The header's `len` word (offset 16) no longer matches the linked nodes.
    poke(&seg, list.offset() + 16, 99);
    assert_damaged(
        &name,
        "object jobs",
        "length mismatch: header says 99, 3 nodes are linked",
    );
    // The heap and directory are still fine, and say so.
    let v = json(&["verify", &name], 1);
    let status = |what: &str| check(&v, what)["status"].clone();
    assert_eq!(status("heap"), "ok");
    assert_eq!(status("directory"), "ok");
    assert_eq!(status("object jobs"), "damaged");
}
