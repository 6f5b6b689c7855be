//! Test support for relshm's multi-process tests.
//!
//! - [`fork_child`] runs a closure in a real child process that can never outlive its
//!   deadline (an `alarm(2)` watchdog kills it), and [`Child`] waits with a deadline too,
//!   so a broken lock or queue fails a test instead of hanging CI.
//! - [`Scratch`] is a page of shared anonymous memory, inherited across `fork`, for
//!   parent/child hand-shakes ("I hold the lock now") outside the code under test.
//! - [`Shm`] is a memfd that each process maps on its own ([`Shm::map`]), so the same
//!   object lives at different addresses in different processes (or twice in one);
//!   [`Shm::path`] / [`fd_path`] name it for exec'ed children.
//! - [`exec`] re-executes the test binary as a child playing one role: how unrelated
//!   processes (not forks) share a segment.
//! - [`stall`] runs the lost-wake-up scenario: lock users, victims SIGKILLed while they
//!   wait beside them, CPU hogs, and a heartbeat check that no user stalls.

pub mod exec;
mod shm;
pub mod stall;

pub use shm::{Mapping, Shm, fd_path, open_fd_path};

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// How a child process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// It called `exit`/`_exit` with this code (0 is success; 101 means it panicked).
    Code(i32),
    /// It was killed by this signal.
    Signal(i32),
}

impl Exit {
    /// Whether the child exited with code 0.
    pub fn success(self) -> bool {
        self == Exit::Code(0)
    }
}

/// A forked child process. Dropping a `Child` that has not been waited for kills it.
#[derive(Debug)]
pub struct Child {
    pid: libc::pid_t,
    reaped: bool,
}

/// Default watchdog for children: no test child may live longer than this.
pub const CHILD_WATCHDOG: Duration = Duration::from_secs(120);

/// Forks a child that runs `f` and exits with the code it returns (101 if it panics).
///
/// The child gets an `alarm` watchdog of [`CHILD_WATCHDOG`], so it dies even if the parent
/// forgets it. Only the calling thread exists in the child: `f` must not wait for locks that
/// other threads of the test process may hold (printing is fine: the child has its own
/// stdout buffer, but keep it short).
pub fn fork_child<F: FnOnce() -> i32>(f: F) -> Child {
    // SAFETY: fork has no memory-safety preconditions; the child runs only `f` and then
    // `_exit`s without running the parent's destructors or atexit handlers twice.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork failed: {}", std::io::Error::last_os_error());
    if pid == 0 {
        // SAFETY: alarm and _exit are async-signal-safe and have no preconditions.
        unsafe { libc::alarm(CHILD_WATCHDOG.as_secs() as libc::c_uint) };
        let code = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).unwrap_or(101);
        // SAFETY: see above; _exit ends the child without unwinding into the test harness.
        unsafe { libc::_exit(code) };
    }
    Child { pid, reaped: false }
}

/// `nobody`'s uid and gid on Linux: the other user of the owner tests.
pub const NOBODY: u32 = 65534;

/// Exit code of a [`fork_child_as`] child that could not become the user asked for.
pub const CANNOT_BECOME_USER: i32 = 86;

/// Whether this process runs as root (effective uid 0): only root can run a child as
/// another user, so tests that need one check this and say when they skip.
pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// [`fork_child`], but the child first drops root for uid and gid `id` with no
/// supplementary groups, then runs `f`. If it may not (the test does not run as root), it
/// exits with [`CANNOT_BECOME_USER`].
pub fn fork_child_as<F: FnOnce() -> i32>(id: u32, f: F) -> Child {
    fork_child(|| {
        // SAFETY: credential calls in the single-threaded forked child; the group list and
        // the gid go first, while the process may still change them.
        let dropped = unsafe {
            libc::setgroups(0, core::ptr::null()) == 0
                && libc::setgid(id) == 0
                && libc::setuid(id) == 0
        };
        if dropped { f() } else { CANNOT_BECOME_USER }
    })
}

impl Child {
    /// The child's process id.
    pub fn pid(&self) -> i32 {
        self.pid
    }

    /// Sends SIGKILL (no effect if it already exited).
    pub fn kill(&self) {
        if !self.reaped {
            // SAFETY: kill has no memory-safety preconditions; the pid is our unreaped child.
            unsafe { libc::kill(self.pid, libc::SIGKILL) };
        }
    }

    /// Waits for the child to end; kills it and panics if it is still running after `limit`.
    pub fn wait_timeout(mut self, limit: Duration) -> Exit {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(exit) = self.try_wait() {
                return exit;
            }
            if Instant::now() >= deadline {
                self.kill();
                let _ = self.blocking_wait();
                panic!(
                    "child {} still running after {limit:?}: killed it",
                    self.pid
                );
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// Waits for the child to end, at most [`CHILD_WATCHDOG`].
    pub fn wait(self) -> Exit {
        self.wait_timeout(CHILD_WATCHDOG)
    }

    /// Polls `ready` until it holds, while the child runs: panics (naming `what`) if the
    /// child ends first or `limit` passes. What a kill test waits for before it kills the
    /// child at a chosen moment.
    pub fn wait_until(&mut self, what: &str, limit: Duration, mut ready: impl FnMut() -> bool) {
        let deadline = Instant::now() + limit;
        while !ready() {
            if let Some(exit) = self.try_wait() {
                panic!("{what}: the child ended early: {exit:?}");
            }
            assert!(Instant::now() < deadline, "{what}: the child is stuck");
            std::hint::spin_loop();
        }
    }

    /// Kills the child and reaps it, returning how it ended (normally `Signal(SIGKILL)`).
    pub fn kill_and_wait(mut self) -> Exit {
        self.kill();
        self.blocking_wait()
    }

    /// Returns how the child ended, if it has, without blocking.
    pub fn try_wait(&mut self) -> Option<Exit> {
        self.waitpid(libc::WNOHANG)
    }

    fn blocking_wait(&mut self) -> Exit {
        self.waitpid(0)
            .expect("blocking waitpid returned no status")
    }

    fn waitpid(&mut self, flags: libc::c_int) -> Option<Exit> {
        if self.reaped {
            panic!("child {} was already reaped", self.pid);
        }
        let mut status = 0;
        loop {
            // SAFETY: status is a valid out-pointer; pid is our own unreaped child.
            let r = unsafe { libc::waitpid(self.pid, &mut status, flags) };
            if r == 0 {
                return None;
            }
            if r < 0 {
                let err = std::io::Error::last_os_error();
                if err.kind() == std::io::ErrorKind::Interrupted {
                    continue;
                }
                panic!("waitpid({}) failed: {err}", self.pid);
            }
            self.reaped = true;
            return Some(if libc::WIFEXITED(status) {
                Exit::Code(libc::WEXITSTATUS(status))
            } else {
                Exit::Signal(libc::WTERMSIG(status))
            });
        }
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        if !self.reaped {
            self.kill();
            let _ = self.blocking_wait();
        }
    }
}

/// A page of shared anonymous memory holding 512 atomic counters, inherited by forked
/// children: a side channel for hand-shakes and tallies that does not go through the code
/// under test.
pub struct Scratch {
    ptr: *mut AtomicU64,
}

// SAFETY: the page holds only atomics, which any thread may access.
unsafe impl Send for Scratch {}
// SAFETY: as above.
unsafe impl Sync for Scratch {}

impl Scratch {
    /// Number of counters in the page.
    pub const SLOTS: usize = 512;

    /// Maps a zeroed shared page.
    pub fn new() -> Self {
        // SAFETY: an anonymous mapping with no address hint has no preconditions.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                4096,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        assert_ne!(
            p,
            libc::MAP_FAILED,
            "mmap: {}",
            std::io::Error::last_os_error()
        );
        Self { ptr: p.cast() }
    }

    /// Counter `i` (panics if `i >= SLOTS`).
    pub fn slot(&self, i: usize) -> &AtomicU64 {
        assert!(i < Self::SLOTS, "scratch slot {i} out of range");
        // SAFETY: the page is mapped for self's lifetime, zero-initialised (a valid
        // AtomicU64), and i is in bounds.
        unsafe { &*self.ptr.add(i) }
    }

    /// Spins (with short sleeps) until counter `i` is at least `value`; panics after `limit`.
    pub fn wait_for(&self, i: usize, value: u64, limit: Duration) {
        let deadline = Instant::now() + limit;
        while self.slot(i).load(Ordering::Acquire) < value {
            assert!(
                Instant::now() < deadline,
                "scratch slot {i} did not reach {value} in {limit:?}"
            );
            std::thread::sleep(Duration::from_micros(50));
        }
    }
}

impl Default for Scratch {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        // SAFETY: ptr is the page mapped in new(); nothing borrowed from it outlives self.
        unsafe { libc::munmap(self.ptr.cast(), 4096) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn child_exit_codes_and_shared_scratch() {
        let scratch = Scratch::new();
        let child = fork_child(|| {
            scratch.slot(0).store(7, Ordering::Release);
            3
        });
        assert_eq!(child.wait_timeout(Duration::from_secs(10)), Exit::Code(3));
        assert_eq!(scratch.slot(0).load(Ordering::Acquire), 7);
    }

    #[test]
    fn killed_child_reports_signal() {
        let child = fork_child(|| {
            loop {
                std::thread::sleep(Duration::from_millis(10));
            }
        });
        assert_eq!(child.kill_and_wait(), Exit::Signal(libc::SIGKILL));
    }
}
