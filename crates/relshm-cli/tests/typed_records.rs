//! `relshm verify` and `relshm inspect` on collections of types the tool has never seen: a
//! `Map<[u8; 24], [u8; 40]>` and a `List` of this test's own 48-byte struct, made with
//! `create_named`. The tool learns everything from their typed directory records: clean,
//! they verify (exit 0) and are reported with their kinds, sizes and counts; with one list
//! link broken, verify exits 1 and names the broken link's offset.

mod inspect_common;

use std::sync::atomic::{AtomicU64, Ordering};

use inspect_common::*;
use relshm::collections::arena::Arena;
use relshm::collections::list::List;
use relshm::collections::map::Map;
use relshm::collections::shape::{ListNodeLayout, MapLayout, Shape};
use relshm::ptr::{BaseRel, Offset};
use relshm::segment::{CreateOptions, Segment};

/// A user's own element type: 48 bytes, 8-aligned. No table in the tool knows it.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
struct Job {
    id: u64,
    deadline: u64,
    owner: [u32; 4],
    tag: [u8; 16],
}

const _: () = assert!(size_of::<Job>() == 48);

const ENTRIES: u64 = 50;
const JOBS: u64 = 5;

fn object<'a>(report: &'a serde_json::Value, name: &str) -> &'a str {
    report["objects"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["name"] == name)
        .unwrap_or_else(|| panic!("no object {name} in {report:#}"))["holds"]
        .as_str()
        .unwrap()
}

/// A `Map<[u8; 24], [u8; 40]>` named "index" holding `entries` keys.
fn index_map(seg: &Segment, entries: u64) -> Map<[u8; 24], [u8; 40], BaseRel> {
    let based = Arena::<BaseRel>::new(seg).unwrap();
    let map = Map::create_named(&based, "index").unwrap();
    for k in 0..entries {
        let mut key = [0u8; 24];
        key[..8].copy_from_slice(&k.to_le_bytes());
        map.insert(key, [k as u8; 40]).unwrap();
    }
    map
}

#[test]
fn verify_and_inspect_work_from_the_records_for_any_types() {
    let name = unique_name("records");
    let _cleanup = Cleanup(name.clone());
    let seg = Segment::create_named(&name, &CreateOptions::new(4 << 20)).unwrap();
    let heap = seg.heap().unwrap();

    let _map = index_map(&seg, ENTRIES);

    let arena = Arena::<Offset>::new(&seg).unwrap();
    let jobs = List::<Job, Offset>::create_named(&arena, "jobs").unwrap();
    // Each push allocates one node: the heap's new allocation is where it lies.
    let mut nodes = Vec::new();
    for id in 0..JOBS {
        let before = heap.allocations().unwrap();
        let job = Job {
            id,
            deadline: 1000 + id,
            owner: [id as u32; 4],
            tag: [b'j'; 16],
        };
        jobs.push_back(job).unwrap();
        let after = heap.allocations().unwrap();
        let new: Vec<u64> = after.into_iter().filter(|a| !before.contains(a)).collect();
        assert_eq!(new.len(), 1, "one node per push");
        nodes.push(new[0]);
    }
    assert_eq!(jobs.verify().unwrap(), JOBS);

    // Clean: every object verified, exit 0.
    let v = json(&["verify", &name], 0);
    assert_eq!(v["clean"], true, "{v:#}");
    let o = relshm(&["verify", &name]);
    assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));
    let out = stdout(&o);
    assert!(
        out.contains(&format!("{ENTRIES} entr(y/ies), links consistent")),
        "{out}"
    );
    assert!(
        out.contains(&format!("{JOBS} element(s), links consistent")),
        "{out}"
    );

    // inspect: kinds, sizes and counts, from the records.
    let report = json(&["inspect", &name], 0);
    let index = object(&report, "index");
    assert!(
        index.starts_with(&format!("map of {ENTRIES} entr")),
        "{index}"
    );
    assert!(
        index.contains("24-byte keys (align 1) to 40-byte values (align 1), baserel links"),
        "{index}"
    );
    let listed = object(&report, "jobs");
    assert!(
        listed.starts_with(&format!("list of {JOBS} element(s)")),
        "{listed}"
    );
    assert!(
        listed.contains("48-byte elements (align 8), offset links"),
        "{listed}"
    );

    // ls: the collections each segment registers, from the same records.
    let rows = json(&["ls"], 0);
    let row = rows
        .as_array()
        .and_then(|rows| rows.iter().find(|r| r["name"] == name.as_str()))
        .unwrap_or_else(|| panic!("{name} not in `relshm ls --json`: {rows}"));
    let listed: Vec<&str> = row["collections"]
        .as_array()
        .expect("a collections array")
        .iter()
        .filter_map(|c| c.as_str())
        .collect();
    assert!(
        listed
            .iter()
            .any(|c| c.starts_with("index: map of 24-byte keys")),
        "{listed:?}"
    );
    assert!(
        listed
            .iter()
            .any(|c| c.starts_with("jobs: list of 48-byte elements")),
        "{listed:?}"
    );

    // Break the third node's next link (found through the library's layout offsets):
    // point it far outside the segment.
    let layout = ListNodeLayout::of::<Offset>(Shape::of::<Job>());
    let link = nodes[2] + layout.next;
    let p = seg.region().resolve_as::<u64>(link).unwrap();
    // SAFETY: in bounds and aligned (resolve_as); shared words are accessed atomically.
    unsafe { AtomicU64::from_ptr(p.as_ptr()) }.store(1 << 44, Ordering::Release);
    assert!(jobs.verify().is_err(), "the library finds the damage");

    let o = relshm(&["verify", &name]);
    let (out, err) = (stdout(&o), stderr(&o));
    assert_eq!(o.status.code(), Some(1), "{out}\n{err}");
    let at = format!("next link at {link:#x}");
    assert!(
        out.contains(&at) || err.contains(&at),
        "{at} not named:\n{out}\n{err}"
    );
    let v = json(&["verify", &name], 1);
    assert_eq!(
        (v["damaged"].clone(), v["unchecked"].clone()),
        (1.into(), 0.into()),
        "{v:#}"
    );
}

#[test]
fn a_broken_map_chain_link_is_named_too() {
    let name = unique_name("records-map");
    let _cleanup = Cleanup(name.clone());
    let seg = Segment::create_named(&name, &CreateOptions::new(8 << 20)).unwrap();
    let heap = seg.heap().unwrap();
    let before = heap.allocations().unwrap();
    let map = index_map(&seg, 4000);
    assert_eq!(json(&["verify", &name], 0)["clean"], true);

    // The chain nodes: the map's new allocations of one node's size.
    let layout = MapLayout::of::<BaseRel>(Shape::of::<[u8; 24]>(), Shape::of::<[u8; 40]>());
    let nodes: Vec<u64> = heap
        .allocations()
        .unwrap()
        .into_iter()
        .filter(|a| !before.contains(a))
        .filter(|&a| heap.usable_size(a).unwrap() < 2 * layout.node.size)
        .collect();
    assert!(!nodes.is_empty(), "no bucket overflowed into a chain");
    let link = nodes[nodes.len() / 2] + layout.node_next;
    let p = seg.region().resolve_as::<u64>(link).unwrap();
    // SAFETY: in bounds and aligned (resolve_as); shared words are accessed atomically.
    unsafe { AtomicU64::from_ptr(p.as_ptr()) }.store(3, Ordering::Release);
    assert!(map.verify().is_err(), "the library finds the damage");

    let o = relshm(&["verify", &name]);
    let (out, err) = (stdout(&o), stderr(&o));
    assert_eq!(o.status.code(), Some(1), "{out}\n{err}");
    let at = format!("next link at {link:#x}");
    assert!(
        out.contains(&at) || err.contains(&at),
        "{at} not named:\n{out}\n{err}"
    );
}
