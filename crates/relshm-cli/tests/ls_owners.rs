//! `relshm ls` and owners: a segment another user owns is listed and marked, and one the
//! user running `ls` may not read is listed as unreadable with its owner, not left out.

mod inspect_common;

use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::process::Command;

use inspect_common::*;
use relshm::segment::{CreateOptions, Segment};
use relshm_testkit::{CANNOT_BECOME_USER, Exit, NOBODY, fork_child_as, is_root};

/// The row `ls --json` printed for `name`.
fn row<'a>(ls: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    ls.as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == name)
        .unwrap_or_else(|| panic!("ls does not list {name}: {ls:#}"))
}

/// `relshm ls --json` run as uid/gid [`NOBODY`], from a copy of the binary any user may
/// execute (the build directory need not be reachable by others).
fn ls_as_nobody() -> serde_json::Value {
    let dir = std::env::temp_dir().join(format!("relshm-ls-owners-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let bin = dir.join("relshm");
    std::fs::copy(env!("CARGO_BIN_EXE_relshm"), &bin).unwrap();
    std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
    let o = Command::new(&bin)
        .args(["ls", "--json"])
        .uid(NOBODY)
        .gid(NOBODY)
        .output()
        .expect("running relshm as nobody");
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(o.status.code(), Some(0), "stderr: {}", stderr(&o));
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}: {}", stdout(&o)))
}

#[test]
fn ls_marks_other_owners_and_lists_what_it_cannot_read() {
    let mine = unique_name("mine");
    let _c1 = Cleanup(mine.clone());
    let _seg = Segment::create_named(&mine, &CreateOptions::new(64 << 10).mode(0o600)).unwrap();
    if !is_root() {
        eprintln!(
            "SKIPPED the other-user part: it needs root to run a process as uid {NOBODY}; \
             checking only that our own segment is listed as ours"
        );
        let ls = json(&["ls"], 0);
        assert_eq!(row(&ls, &mine)["other_owner"], false);
        return;
    }
    // A segment uid 65534 made (a squatter, for root), readable by everyone.
    let theirs = unique_name("theirs");
    let _c2 = Cleanup(theirs.clone());
    let made = fork_child_as(NOBODY, || {
        let opts = CreateOptions::new(64 << 10).mode(0o644);
        i32::from(Segment::create_named(&theirs, &opts).is_err())
    })
    .wait();
    assert_ne!(
        made,
        Exit::Code(CANNOT_BECOME_USER),
        "root, but cannot become {NOBODY}"
    );
    assert_eq!(made, Exit::Code(0));

    // As root: both listed; the other user's is marked, and still read.
    let ls = json(&["ls"], 0);
    let r = row(&ls, &mine);
    assert_eq!(
        (r["uid"].clone(), r["other_owner"].clone()),
        (0.into(), false.into())
    );
    let r = row(&ls, &theirs);
    assert_eq!(r["uid"], NOBODY, "{r:#}");
    assert_eq!(r["other_owner"], true, "{r:#}");
    assert!(r["error"].is_null(), "{r:#}");
    assert_eq!(r["size"], 64 << 10);
    let text = stdout(&relshm(&["ls"]));
    let line = text.lines().find(|l| l.contains(&theirs)).unwrap();
    assert!(line.contains("65534 (other user)"), "{line}");

    // As nobody: root's 0600 segment cannot be read, and is listed as such.
    let ls = ls_as_nobody();
    let r = row(&ls, &mine);
    assert_eq!(
        r["error"], "cannot read: permission denied, owner uid 0",
        "{r:#}"
    );
    assert_eq!(r["other_owner"], true);
    let r = row(&ls, &theirs);
    assert_eq!(r["other_owner"], false, "{r:#}");
    assert!(r["error"].is_null(), "{r:#}");
}
