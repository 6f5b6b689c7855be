//! `relshm demo` end to end: the real binary, a real child process.

use std::process::Command;

#[test]
fn demo_shares_a_segment_with_a_child_at_another_address() {
    let out = Command::new(env!("CARGO_BIN_EXE_relshm"))
        .args(["demo", "--increments", "5000"])
        .output()
        .expect("running relshm demo");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "demo failed: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let base = |who: &str| {
        let line = stdout
            .lines()
            .find(|l| l.starts_with(who) && l.contains("maps it at"))
            .unwrap_or_else(|| panic!("no {who} base line in:\n{stdout}"));
        line.rsplit(' ').next().unwrap().to_owned()
    };
    assert_ne!(base("parent"), base("child"), "{stdout}");
    assert!(stdout.contains("the counter at 5000"), "{stdout}");
    assert!(stdout.contains("is refused"), "{stdout}");
    assert!(stdout.contains("hello from the parent"), "{stdout}");
}
