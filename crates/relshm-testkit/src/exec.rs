//! Exec'ed children: the running test binary started again to run one test as another
//! process, the way applications share a segment (a fresh exec maps it at an address of
//! its own choosing, with nothing inherited but what the parent passes).
//!
//! A test that spawns children starts with `if let Some(role) = exec::role() { ... }`:
//! in a child, [`role`] names the part to play and [`arg`] what the parent passed.

use std::process::{Child, Command, Stdio};

/// The environment variable naming a child's role.
pub const ENV_ROLE: &str = "RELSHM_EXEC_ROLE";
/// The environment variable carrying the parent's argument.
pub const ENV_ARG: &str = "RELSHM_EXEC_ARG";

/// The role this process plays, if it is an exec'ed child.
pub fn role() -> Option<String> {
    std::env::var(ENV_ROLE).ok()
}

/// The argument the parent passed to this child ("" if none).
pub fn arg() -> String {
    std::env::var(ENV_ARG).unwrap_or_default()
}

/// Starts the test binary again, running only the test `test` (its full path, as
/// `module::name`, or the bare name for a test at the top of an integration test file), as
/// a child playing `role` with `arg`. Its stderr is the test's, so its panics show.
pub fn spawn(test: &str, role: &str, arg: &str) -> Child {
    let exe = std::env::current_exe().expect("the test binary's path");
    Command::new(exe)
        .args(["--exact", test, "--nocapture", "--test-threads=1", "-q"])
        .env(ENV_ROLE, role)
        .env(ENV_ARG, arg)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .spawn()
        .expect("re-executing the test binary")
}

/// Waits for `child` and says whether it succeeded, killing it if it has not ended by
/// `limit` (a hung child fails the test instead of hanging it).
pub fn wait(mut child: Child, limit: std::time::Duration) -> bool {
    let deadline = std::time::Instant::now() + limit;
    loop {
        match child.try_wait().expect("waiting for a child") {
            Some(status) => return status.success(),
            None if std::time::Instant::now() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                return false;
            }
            None => std::thread::sleep(std::time::Duration::from_millis(10)),
        }
    }
}
