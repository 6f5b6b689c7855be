//! `relshm inspect` on a segment whose named mutex was held by a process that was
//! SIGKILLed: the lock shows a dead owner, and the killed process's attach-table entry
//! is flagged dead. The child maps the segment itself, at another address.

mod inspect_common;

use std::time::Duration;

use inspect_common::*;
use relshm::segment::{CreateOptions, OpenOptions, Segment};
use relshm::sync::Mutex;
use relshm_testkit::{Exit, Scratch, fork_child};

#[test]
fn a_lock_whose_owner_was_killed_shows_a_dead_owner() {
    let name = unique_name("dead");
    let _cleanup = Cleanup(name.clone());
    let seg = Segment::create_named(&name, &CreateOptions::new(1 << 20)).unwrap();
    seg.directory()
        .unwrap()
        .construct("guarded", Mutex::new(0u64))
        .unwrap();
    let scratch = Scratch::new();
    const READY: usize = 0;
    const BASE: usize = 1;
    const TID: usize = 2;

    let child = fork_child(|| {
        let seg = Segment::open_named(&name, &OpenOptions::new()).unwrap();
        let dir = seg.directory().unwrap();
        let m = dir.find::<Mutex<u64>>("guarded").unwrap();
        let mut g = m.lock().unwrap();
        *g += 1;
        std::mem::forget(g);
        scratch.slot(BASE).store(
            seg.base().as_ptr() as u64,
            std::sync::atomic::Ordering::Relaxed,
        );
        // SAFETY: gettid has no preconditions.
        let tid = unsafe { libc::gettid() } as u64;
        scratch
            .slot(TID)
            .store(tid, std::sync::atomic::Ordering::Relaxed);
        scratch
            .slot(READY)
            .store(1, std::sync::atomic::Ordering::Release);
        // Hold the lock until killed (the watchdog ends us if the parent never does).
        loop {
            std::thread::sleep(Duration::from_secs(1));
        }
    });
    scratch.wait_for(READY, 1, Duration::from_secs(60));
    let child_pid = child.pid() as u64;
    let child_base = scratch
        .slot(BASE)
        .load(std::sync::atomic::Ordering::Relaxed);
    assert_ne!(
        child_base,
        seg.base().as_ptr() as u64,
        "the child must map elsewhere"
    );

    // While the child lives, the lock is held by its thread.
    let report = json(&["inspect", &name], 0);
    let l = lock(&report, "object guarded");
    assert_eq!(l["state"], "held", "{l:#}");
    assert_eq!(
        l["owner_tid"],
        scratch.slot(TID).load(std::sync::atomic::Ordering::Relaxed)
    );

    assert_eq!(child.kill_and_wait(), Exit::Signal(libc::SIGKILL));

    // The first look after the kill still sees the child's attach entry (any later
    // attach, this inspection's own included, reclaims it).

    let report = json(&["inspect", &name], 0);
    let l = lock(&report, "object guarded");
    assert_eq!(l["dead_owner"], true, "{l:#}");
    assert!(
        l["state"] == "owner-died" || l["state"] == "dead-owner",
        "{l:#}"
    );
    for other in ["heap", "directory"] {
        assert_eq!(lock(&report, other)["dead_owner"], false, "{other}");
    }
    let entry = report["attached"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["pid"] == child_pid)
        .unwrap_or_else(|| panic!("the killed child's attach entry is missing: {report:#}"))
        .clone();
    assert_eq!(entry["alive"], false);
    assert_eq!(entry["base"], child_base);

    let text = stdout(&relshm(&["inspect", &name]));
    assert!(
        text.contains("OWNER DIED") || text.contains("DEAD OWNER"),
        "{text}"
    );
    // A dead owner of a plain mutex is not damage: the next locker recovers it.
    assert_eq!(relshm(&["verify", &name]).status.code(), Some(0));
}
