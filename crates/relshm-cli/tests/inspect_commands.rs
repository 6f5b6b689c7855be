//! `relshm ls / inspect / verify / rm` end to end, with the real binary, on segments this
//! test makes: a mutex, a plain counter, a list and a map by name.

mod inspect_common;

use inspect_common::*;
use relshm::collections::arena::Arena;
use relshm::collections::list::List;
use relshm::collections::map::Map;
use relshm::ptr::Offset;
use relshm::segment::{CreateOptions, Segment};
use relshm::sync::{Mutex, RwLock};
use std::os::unix::fs::MetadataExt;
use std::sync::atomic::AtomicU64;

#[test]
fn ls_inspect_verify_rm_on_a_populated_segment() {
    let name = unique_name("cmds");
    let _cleanup = Cleanup(name.clone());
    let seg = Segment::create_named(&name, &CreateOptions::new(1 << 20)).unwrap();
    let dir = seg.directory().unwrap();
    dir.construct("counter", Mutex::new(5u64)).unwrap();
    dir.construct("hits", AtomicU64::new(7)).unwrap();
    let table = dir.construct("table", RwLock::new(0u64)).unwrap();
    let arena = Arena::<Offset>::new(&seg).unwrap();
    let list = List::<u64, Offset>::create_named(&arena, "jobs").unwrap();
    for i in 0..3 {
        list.push_back(i).unwrap();
    }
    let map = Map::<u64, u64, Offset>::create_named(&arena, "index").unwrap();
    map.insert(1, 10).unwrap();
    map.insert(2, 20).unwrap();

    // ls: finds it, with what the heap and the attach table say.
    let ls = json(&["ls"], 0);
    let row = ls
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == name.as_str())
        .unwrap_or_else(|| panic!("ls does not list {name}: {ls:#}"));
    let used = seg.heap().unwrap().stats().unwrap().used_bytes;
    assert_eq!(row["used"], used, "{row:#}");
    assert_eq!(row["size"], 1 << 20);
    assert_eq!(row["mode"], 0o600);
    let uid = std::fs::metadata(format!("/dev/shm/{name}")).unwrap().uid();
    assert_eq!(row["uid"], uid);
    assert_eq!(row["attached"], 1, "this test's mapping: {row:#}");
    assert_eq!(row["live"], 1);
    assert!(stdout(&relshm(&["ls"])).contains(&name));

    // inspect, while this process holds the list's lock: the lock shows our thread.
    let report = {
        let _held = list.lock().unwrap();
        let _reading = table.read().unwrap();
        json(&["inspect", &name], 0)
    };
    // SAFETY: gettid has no preconditions.
    let tid = unsafe { libc::gettid() } as u64;
    let jobs = lock(&report, "list jobs");
    assert_eq!(jobs["state"], "held", "{jobs:#}");
    assert_eq!(jobs["owner_tid"], tid);
    assert_eq!(jobs["owner_alive"], true);
    assert_eq!(jobs["dead_owner"], false);
    for free in ["heap", "directory", "object counter", "map index resize"] {
        assert_eq!(lock(&report, free)["state"], "free", "{free}: {report:#}");
    }
    let rw = lock(&report, "object table");
    assert_eq!(
        (rw["state"].clone(), rw["readers"].clone()),
        ("free".into(), 1.into())
    );
    assert_eq!(object(&report, "table")["type"], "relshm_sync::RwLock");
    assert_eq!(object(&report, "counter")["type"], "relshm_sync::Mutex");
    assert_eq!(object(&report, "counter")["holds"], "robust mutex");
    assert_eq!(object(&report, "hits")["holds"], "u64 value 7");
    let jobs = object(&report, "jobs")["holds"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(jobs.starts_with("list of 3 element(s)"), "{jobs}");
    let index = object(&report, "index")["holds"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(index.starts_with("map of 2 entr"), "{index}");
    let me = report["attached"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["pid"] == std::process::id())
        .unwrap_or_else(|| panic!("this process is not in the attach table: {report:#}"));
    assert_eq!(me["base"], seg.base().as_ptr() as u64);
    assert_eq!(me["alive"], true);
    assert_eq!(report["heap"]["used_bytes"], used);
    assert_eq!(report["header"]["size"], 1 << 20);
    let text = stdout(&relshm(&["inspect", &name]));
    for needle in [
        "named objects (5)",
        "relshm_sync::Mutex v1",
        "list jobs",
        "free",
    ] {
        assert!(text.contains(needle), "{needle:?} missing from:\n{text}");
    }

    // verify: clean, every collection checked through its own verify().
    let v = json(&["verify", &name], 0);
    assert_eq!(v["clean"], true, "{v:#}");
    let check = |what: &str| check(&v, what).clone();
    assert_eq!(check("heap")["status"], "ok");
    assert_eq!(check("directory")["status"], "ok");
    let jobs = check("object jobs");
    assert_eq!(jobs["status"], "ok");
    assert!(
        jobs["message"]
            .as_str()
            .unwrap()
            .contains("offset pointers): 3 element(s)")
    );
    let index = check("object index");
    assert!(
        index["message"].as_str().unwrap().contains("2 entr"),
        "{index:#}"
    );
    // Every named object gets a verdict, the plain ones included.
    for plain in ["counter", "hits", "table"] {
        assert_eq!(check(&format!("object {plain}"))["status"], "ok", "{v:#}");
    }
    assert_eq!(
        (v["damaged"].clone(), v["unchecked"].clone()),
        (0.into(), 0.into())
    );
    let plain = relshm(&["verify", &name]);
    assert_eq!(plain.status.code(), Some(0));
    assert!(
        stdout(&plain).ends_with(&format!("{name}: clean (8 part(s) verified)\n")),
        "{}",
        stdout(&plain)
    );

    // rm: gone from /dev/shm and from ls; a second rm is a usage error.
    let rm = json(&["rm", &name], 0);
    assert_eq!(rm["name"], name.as_str());
    assert_eq!(
        rm["still_mapped_by"],
        serde_json::json!([std::process::id()])
    );
    assert!(!std::path::Path::new(&format!("/dev/shm/{name}")).exists());
    assert!(!stdout(&relshm(&["ls"])).contains(&name));
    assert_one_line_error(&relshm(&["rm", &name]), 2, "no shared-memory segment named");
    assert_one_line_error(
        &relshm(&["inspect", &name]),
        2,
        "no shared-memory segment named",
    );
}

#[test]
fn other_programs_objects_are_refused_and_not_listed() {
    let name = unique_name("foreign");
    let _cleanup = Cleanup(name.clone());
    let path = format!("/dev/shm/{name}");
    std::fs::write(&path, b"someone else's shared memory, not relshm's").unwrap();
    for cmd in ["inspect", "verify", "rm"] {
        assert_one_line_error(&relshm(&[cmd, &name]), 2, "is not a relshm segment");
    }
    assert!(
        std::path::Path::new(&path).exists(),
        "rm removed a foreign object"
    );
    assert!(!stdout(&relshm(&["ls"])).contains(&name));
    assert_one_line_error(&relshm(&["inspect", "a/b"]), 2, "is not a segment name");
    // Usage errors from the argument parser exit with 2 as well.
    assert_eq!(relshm(&["inspect"]).status.code(), Some(2));
}
