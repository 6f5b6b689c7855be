//! Helpers shared by the `inspect_*` end-to-end tests (included with `mod`).

#![allow(dead_code)]

use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};

/// A segment name unique to this test process and call.
pub fn unique_name(tag: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "relshm-test-{tag}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// Removes the named segment (or plain /dev/shm file) when dropped, however the test ends.
pub struct Cleanup(pub String);

impl Drop for Cleanup {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(format!("/dev/shm/{}", self.0));
    }
}

/// Runs the real `relshm` binary.
pub fn relshm(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_relshm"))
        .args(args)
        .output()
        .expect("running relshm")
}

/// stdout as text.
pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// stderr as text.
pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Runs `relshm ARGS --json`, asserts the exit code, parses stdout.
pub fn json(args: &[&str], code: i32) -> serde_json::Value {
    let mut all = args.to_vec();
    all.push("--json");
    let o = relshm(&all);
    assert_eq!(
        o.status.code(),
        Some(code),
        "relshm {all:?}: stdout:\n{}\nstderr:\n{}",
        stdout(&o),
        stderr(&o)
    );
    serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("relshm {all:?} printed invalid JSON ({e}):\n{}", stdout(&o)))
}

/// The element of the array `report[list]` whose `key` is `value`.
fn item<'a>(
    report: &'a serde_json::Value,
    list: &str,
    key: &str,
    value: &str,
) -> &'a serde_json::Value {
    report[list]
        .as_array()
        .unwrap_or_else(|| panic!("no array {list:?} in {report:#}"))
        .iter()
        .find(|x| x[key] == value)
        .unwrap_or_else(|| panic!("no {list} with {key} {value:?} in {report:#}"))
}

/// The lock named `lock` in an inspect report.
pub fn lock<'a>(report: &'a serde_json::Value, lock: &str) -> &'a serde_json::Value {
    item(report, "locks", "lock", lock)
}

/// The object named `name` in an inspect report.
pub fn object<'a>(report: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    item(report, "objects", "name", name)
}

/// The check of `what` (`heap`, `object NAME`, ...) in a `verify --json` report.
pub fn check<'a>(report: &'a serde_json::Value, what: &str) -> &'a serde_json::Value {
    item(report, "checks", "what", what)
}

/// Asserts an error message is one line on stderr with the `relshm: error:` prefix.
pub fn assert_one_line_error(o: &Output, code: i32, needle: &str) {
    let err = stderr(o);
    assert_eq!(o.status.code(), Some(code), "stderr: {err}");
    assert_eq!(err.lines().count(), 1, "expected one line, got:\n{err}");
    assert!(err.starts_with("relshm: error: "), "{err}");
    assert!(err.contains(needle), "{err:?} does not mention {needle:?}");
}
