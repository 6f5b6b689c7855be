//! The real facade: core atomics, Linux shared futexes, gettid cached per thread.

use super::Wake;
use core::time::Duration;
use rustix::thread::futex;
use std::cell::Cell;

pub(crate) use std::time::Instant;

pub(crate) use core::sync::atomic::{AtomicU32, Ordering, fence};

pub(crate) use crate::robust::{dequeue, enqueue, op_begin, op_end};

/// Sleeps while `*word == expected`, at most `timeout` (relative). Uses a shared futex so
/// the kernel keys it by the backing page and every mapping of the page shares it.
pub fn futex_wait(word: &AtomicU32, expected: u32, timeout: Option<Duration>) -> Wake {
    let ts = timeout.map(|d| rustix::thread::futex::Timespec {
        tv_sec: d.as_secs().min(i64::MAX as u64) as i64,
        tv_nsec: i64::from(d.subsec_nanos()),
    });
    match futex::wait(word, futex::Flags::empty(), expected, ts.as_ref()) {
        Err(rustix::io::Errno::TIMEDOUT) => Wake::TimedOut,
        // EAGAIN (word changed), EINTR and success: the caller re-checks the word.
        _ => Wake::Woken,
    }
}

/// Announces that the calling thread sleeps on the doorbell `word` (see
/// [`DOORBELL_STEP`](super::DOORBELL_STEP)) until [`doorbell_disarm`]: if it dies meanwhile,
/// asleep or woken, the kernel wakes another sleeper of `word` in its place.
pub fn doorbell_arm(word: &AtomicU32) {
    crate::robust::arm_doorbell(word);
}

/// Ends [`doorbell_arm`]'s announcement.
pub fn doorbell_disarm() {
    crate::robust::disarm_doorbell();
}

/// Wakes at most `n` waiters sleeping on `word` in any process; returns how many it woke.
pub fn futex_wake(word: &AtomicU32, n: u32) -> u32 {
    // Errors are impossible for a valid aligned address (EFAULT cannot happen for a
    // reference); counting one as "none woken" only costs a later futile wake.
    futex::wake(word, futex::Flags::empty(), n).map_or(0, |k| k as u32)
}

/// A hint inside short spin loops.
#[inline]
pub fn spin_hint() {
    core::hint::spin_loop();
}

thread_local! {
    /// The calling thread's kernel tid (0 = not looked up yet).
    static TID: Cell<u32> = const { Cell::new(0) };
}

/// Whether our `atfork` child handler is registered: 0 no, 1 being registered, 2 yes.
/// A thread id may be cached only once it is registered (else a forked child would keep
/// its parent's id). Deliberately not a `Once`: a child forked while another thread is
/// inside a `Once` would block forever on it.
static ATFORK: AtomicU32 = AtomicU32::new(0);

/// The calling process's id (0 = not looked up yet), cached like [`TID`]: glibc no longer
/// caches `getpid`, and a system call costs 0.1-0.3 us on a virtual machine, which the
/// allocator's fast path (that names its process in every block it caches) cannot pay.
static PID: AtomicU32 = AtomicU32::new(0);

/// How many forks separate this process from the one that loaded the library: a handle
/// that recorded it can tell it now runs in a forked child (see [`fork_generation`]).
static FORK_GEN: core::sync::atomic::AtomicU64 = core::sync::atomic::AtomicU64::new(0);

extern "C" fn after_fork_in_child() {
    // The child's only thread is the one that forked: it has a new tid and pid, and glibc
    // has reset (and re-registered) its robust list, so forget those caches.
    TID.with(|t| t.set(0));
    PID.store(0, Ordering::Relaxed);
    FORK_GEN.fetch_add(1, Ordering::Relaxed);
    crate::robust::forget_head_after_fork();
}

/// Registers the handler (idempotent, never blocks); returns whether it is registered.
extern "C" fn register_atfork() -> bool {
    match ATFORK.compare_exchange(0, 1, Ordering::AcqRel, Ordering::Acquire) {
        Ok(_) => {
            // SAFETY: registering a plain extern "C" fn without arguments; the handler
            // only touches thread-locals of the calling thread.
            let r = unsafe { libc::pthread_atfork(None, None, Some(after_fork_in_child)) };
            ATFORK.store(if r == 0 { 2 } else { 0 }, Ordering::Release);
            r == 0
        }
        Err(state) => state == 2,
    }
}

/// Whether per-process caches may be filled: only once a fork would reset them.
#[inline]
fn forks_reset_caches() -> bool {
    ATFORK.load(Ordering::Acquire) == 2 || register_atfork()
}

extern "C" fn register_atfork_at_load() {
    register_atfork();
}

/// Registers the handler while the program is still single-threaded (before `main`), so
/// that no fork can ever catch a registration half-way.
#[used]
// SAFETY: `.init_array` entries are called once by the dynamic loader / libc start-up
// code with no arguments, which is the signature of register_atfork_at_load; it only
// calls pthread_atfork, which is allowed at that point.
#[unsafe(link_section = ".init_array")]
static REGISTER_ATFORK_AT_LOAD: extern "C" fn() = register_atfork_at_load;

/// The calling thread's kernel thread id, as the kernel's robust-futex code compares it
/// (`task_pid_vnr`: the id in the caller's own PID namespace).
#[inline]
pub(crate) fn current_tid() -> u32 {
    let t = TID.with(Cell::get);
    if t != 0 {
        return t;
    }
    slow_tid()
}

#[cold]
fn slow_tid() -> u32 {
    let t = rustix::thread::gettid().as_raw_nonzero().get() as u32;
    if forks_reset_caches() {
        TID.with(|c| c.set(t));
    }
    t
}

/// The calling process's id, cached until the next fork.
#[inline]
pub fn process_id() -> u32 {
    match PID.load(Ordering::Relaxed) {
        0 => slow_pid(),
        p => p,
    }
}

#[cold]
fn slow_pid() -> u32 {
    let p = rustix::process::getpid().as_raw_nonzero().get() as u32;
    if forks_reset_caches() {
        PID.store(p, Ordering::Relaxed);
    }
    p
}

/// The number of forks between the process that loaded this library and the caller's
/// process (0 in the original, 1 in its child, ...): a value recorded before a fork differs
/// from the child's. Forks that bypass `pthread_atfork` (a raw `clone` system call) are not
/// counted, nor reset the cached [`process_id`].
#[inline]
pub fn fork_generation() -> u64 {
    forks_reset_caches();
    FORK_GEN.load(Ordering::Relaxed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atfork_handler_is_registered_before_main() {
        // No test of this binary calls current_tid before this check on its own thread,
        // and the `.init_array` constructor ran before main.
        assert_eq!(ATFORK.load(Ordering::Acquire), 2);
    }

    #[test]
    fn forked_child_sees_its_own_pid_and_generation() {
        let (pid, generation) = (process_id(), fork_generation());
        assert_eq!(pid, std::process::id());
        // SAFETY: the child only reads atomics, makes getpid/_exit system calls and exits.
        let child = unsafe { libc::fork() };
        assert!(child >= 0);
        if child == 0 {
            let ok = process_id() == std::process::id()
                && process_id() != pid
                && fork_generation() == generation + 1;
            // SAFETY: leaving the child without running the harness.
            unsafe { libc::_exit(if ok { 0 } else { 1 }) };
        }
        let mut status = 0;
        // SAFETY: waiting for our own child with a valid out-pointer.
        assert_eq!(unsafe { libc::waitpid(child, &mut status, 0) }, child);
        assert!(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0);
        assert_eq!((process_id(), fork_generation()), (pid, generation));
    }

    #[test]
    fn forked_child_sees_its_own_tid() {
        let parent = current_tid();
        // SAFETY: the child only calls async-signal-safe-enough code (gettid via our cache
        // reset by the atfork handler) and _exits.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0);
        if pid == 0 {
            let ok = current_tid() != parent
                && current_tid() as i32 == rustix::process::getpid().as_raw_nonzero().get();
            // SAFETY: leaving the child without running the harness.
            unsafe { libc::_exit(if ok { 0 } else { 1 }) };
        }
        let mut status = 0;
        // SAFETY: waiting for our own child with a valid out-pointer.
        assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
        assert!(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0);
    }
}
