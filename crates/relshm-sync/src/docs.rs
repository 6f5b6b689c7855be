//! Design notes: how the locks work and how each known trap is handled.
//!
//! # The lock word
//!
//! Every owned lock ([`RawMutex`](crate::RawMutex), and through it the writer lock and the
//! reader slots of [`RawRwLock`](crate::RawRwLock)) is one `u32` in the kernel's
//! robust-futex format: owner thread id in bits 0..30 ([`TID_MASK`](crate::TID_MASK)),
//! [`OWNER_DIED`](crate::OWNER_DIED) (bit 30), [`WAITERS`](crate::WAITERS) (bit 31).
//!
//! - Uncontended lock: one CAS `0 -> tid`; unlock: one CAS `tid -> 0`. A futex wake
//!   happens only if `WAITERS` was set.
//! - Contended: spin briefly, set `WAITERS`, `FUTEX_WAIT` on a *shared* futex (never
//!   `FUTEX_PRIVATE_FLAG`: the kernel keys it by the backing page, so mappings at different
//!   addresses in different processes meet on the same futex). A thread that slept takes
//!   the lock with `WAITERS` set, so its unlock wakes the next sleeper. An unlock that
//!   sees `WAITERS` leaves the bit in the free word (see *Waiters that die*).
//! - Owner death: the kernel sets `OWNER_DIED`, clears the tid and wakes one waiter. The
//!   next locker takes the word with `OWNER_DIED` kept and gets `OwnerDied`; the bit stays
//!   until `make_consistent`. Unlocking while it is still set stores
//!   [`NOT_RECOVERABLE`](crate::NOT_RECOVERABLE) (tid all ones, never a real id) and wakes
//!   everyone, who then get `NotRecoverable`.
//!
//! # How owner death is detected: the kernel robust list
//!
//! The kernel walks a per-thread list of held robust locks when a thread exits for any
//! reason, SIGKILL included, and acts *at that moment* (`Documentation/locking/
//! robust-futex-ABI.rst`). There is one list per thread and glibc registers it at thread
//! creation for its own robust `pthread_mutex_t`s. So [`RawMutex`](crate::RawMutex) is a
//! list node with glibc's node shape on 64-bit glibc targets (lock word at `node - 32`,
//! `{prev, next}` at offsets 24 and 32, like `__data.__list` of `pthread_mutex_t`), and a
//! lock is linked into the calling thread's list after it is acquired and unlinked before
//! it is released, each announced in `list_op_pending` so that a death half-way is still
//! seen. glibc's own robust mutexes and ours share the list in any order (tested).
//!
//! Measured on the development machine (2 cores, loaded): kill -> `OwnerDied` latency over
//! 100 rounds, median about 0.1 ms, worst under 10 ms.
//!
//! # The traps, one by one
//!
//! - **glibc already registered a list.** We do not register another (that would
//!   silently disable glibc's robust mutexes): we read glibc's head with
//!   `get_robust_list(0)` and link into it. Its `futex_offset` is checked against ours;
//!   if no list is registered (not glibc) we register our own head of the same shape; if a
//!   list with another offset is registered, owner death is not detected for that thread
//!   ([`robust_supported`](crate::robust_supported) says so) and the locks still work
//!   (use timeouts there).
//! - **PID reuse.** Nobody ever compares a stored id with a live process later: the
//!   kernel marks the dead thread's locks while it tears the thread down, before the id can
//!   be reused. A recycled id therefore cannot be mistaken for the dead owner. (A stale id
//!   can only stay in a word when the walk could not reach the lock: see *unmapped*.)
//! - **PID namespaces.** The word holds the id in the owner's own namespace (`gettid`,
//!   the kernel's `task_pid_vnr`), and the kernel compares it, at death, with the dying
//!   thread's id in that same namespace, so robustness works across namespaces. Ids of
//!   processes in different namespaces may collide: [`owner`](crate::RawMutex::owner) is
//!   then informational only, and `RawRwLock::unlock_shared_any` (used by the `lock_api`
//!   impl, which has no slot token) should not be used across namespaces; the typed
//!   guards carry their slot and are unaffected.
//! - **A lock unmapped while held.** The kernel's walk stops at a node it cannot read, and
//!   glibc's next list operation would write into it. Guards borrow the mapping, so safe
//!   code cannot unmap a held lock; `mem::forget(guard)` followed by an unmap (or exit after
//!   unmapping) leaves the lock held by a dead id forever: lockers then need
//!   `lock_timeout` (tested). Layers above must not unmap a segment while guards live.
//! - **fork.** glibc empties and re-registers the child's list; an `atfork` handler
//!   resets our cached thread id and list head. Locks the parent held stay the parent's:
//!   unlocking one in the child (a guard inherited by the child) does nothing (tested).
//! - **Threads.** Guards are `!Send`: a lock is linked into the locking thread's list and
//!   must be released by that thread.
//! - **Untrusted bytes.** Any lock word is a state; a garbage id looks like a lock held by
//!   a thread that may never release it, so code mapping segments it does not trust should
//!   use the `*_timeout` calls. The list links are process-local pointers that only the
//!   owning thread and its kernel follow; null or misaligned links are refused, but a
//!   process that overwrites the links of a lock *while another process holds it* can
//!   corrupt that owner's robust list (exactly as with process-shared robust
//!   `pthread_mutex_t`s).
//! - **Recursion.** Locking a lock the thread already holds deadlocks (as with
//!   `std::sync::Mutex`); use `try_lock` if unsure.
//!
//! # Waiters that die
//!
//! A process may be killed while it *waits*, not only while it holds a lock: asleep, or
//! just after a wake-up took it off the futex queue and before it retook the word. The
//! sleeper case is harmless (the kernel drops a dead sleeper from the queue). The woken
//! case is not: the wake-up was meant to let the next waiter in, and it dies with the
//! victim. With the classic protocol (unlock stores `0`, wakes one if `WAITERS` was set)
//! a barger then takes the free word on the fast path *without* `WAITERS`, its unlock
//! wakes nobody, and the remaining sleepers sleep while the lock is free, possibly forever.
//! Measured before the fix with real processes (`tests/waiter_kill_mp.rs`): survivors
//! stalled on `Mutex` and on `List`'s lock while waiters were SIGKILLed; the loom models
//! in `tests/loom_kill.rs` deadlock on the old code for every primitive.
//!
//! How each primitive hands the duty on (no timers, no polling; the uncontended paths are
//! unchanged: one atomic each way):
//!
//! - **Owned locks** ([`RawMutex`](crate::RawMutex), so [`Mutex`](crate::Mutex),
//!   [`RwLock`](crate::RwLock)'s writer and reader slots, and every lock built on them):
//!   an unlock that sees `WAITERS` stores `WAITERS` (not `0`) and wakes one. Whoever takes
//!   the free word next, the woken waiter or a barger, keeps the bit and so owns the duty
//!   to wake the next sleeper at its unlock. If the woken waiter dies while the word is
//!   still free, the kernel wakes another sleeper in its place: a waiter names the lock in
//!   its robust list's `list_op_pending` for its whole acquisition, and the kernel's exit
//!   path (`handle_futex_death`, Linux 5.10 and later) wakes one waiter of a pending lock
//!   whose owner part is zero. The bit is cleared by an unlock whose wake found nobody
//!   asleep, which proves nobody is: a sleeper only sleeps on a held word. Cost: every
//!   contended unlock wakes a sleeper, also when a barger took the word from a woken one
//!   (which the old protocol skipped, and which is exactly the case a death makes fatal).
//!   Measured on a 16-core x86 VM, N forked processes locking one `Mutex<u64>` in a loop,
//!   old and new binaries alternated, two rounds: 1 process unchanged (18.8 vs 18.5 and
//!   16.1 vs 16.1 M lock/unlock per s); empty critical section, new/old throughput 0.92-0.99
//!   at N=2, 0.87-0.91 at 4, 0.73-0.81 at 8, 0.83-0.87 at 16; a 200 ns critical section,
//!   0.86-1.03 at every N. The contended lock's throughput is its own open issue (a
//!   hand-off lock); this protocol is what any such lock must keep.
//! - **Counting waits** ([`Semaphore`](crate::Semaphore),
//!   [`AutoResetEvent`](crate::AutoResetEvent)): the word they sleep on has no owner for
//!   the kernel to act on, so they borrow one. Waiters queue on a *turnstile*, a robust
//!   [`RawMutex`](crate::RawMutex) inside the primitive, and only the turnstile's holder
//!   (the head) sleeps on the count or state word. A post's single wake-up always reaches
//!   the head; a head killed anywhere releases the turnstile through the kernel's robust
//!   list, which wakes the next waiter to become head and look at the word again. This
//!   works because the word is state: whichever waiter is head can take what a post left.
//!   [`ManualResetEvent`](crate::ManualResetEvent)'s `set` wakes every sleeper, so it
//!   needs no turnstile.
//! - **Condition variables** ([`Condvar`](crate::Condvar)): a notification is an event,
//!   not state: it is meant for the waiters that wait *now*, so a turnstile would let a
//!   head that waits for a later notification block a notified waiter queued behind it
//!   (tried: the ping-pong test of `tests/handoff_mp.rs` deadlocked). `notify_one` wakes
//!   every sleeper instead; the others see a spurious wake-up, which condition variables
//!   allow, and wait again. The cost is a herd on `notify_one` with many waiters; a
//!   shared-memory condition variable rarely has more than a few.
//! - **Queues, ports and streams** (`relshm-collections`): their sleeps are bounded by
//!   the liveness interval (20 ms) after which a sleeper re-checks the ring and reaps dead
//!   peers, so a wake-up lost with a killed receiver delays a survivor by at most one
//!   interval.
//!
//! Why not the alternatives: waking every sleeper on each unlock is correct but a
//! thundering herd under contention; a waiter count instead of a bit is left too high by
//! every killed waiter, costing a futile syscall on each later unlock forever; bounded
//! sleeps that re-check cost an idle sleeper a wake-up per interval and leave a stall of
//! up to one interval per kill. The robust list already runs at every death, so handing the
//! duty on through it costs nothing while nobody dies.
//!
//! If no compatible robust list can be registered ([`robust_supported`](crate::robust_supported)
//! is `false`), neither owner death nor waiter death is seen by the kernel: use the
//! `*_timeout` calls there.
//!
//! # Readers-writer lock and reader death
//!
//! See [`RawRwLock`](crate::RawRwLock): a writer mutex plus
//! [`READER_SLOTS`](crate::READER_SLOTS) robust reader slots. Reader death is recovered
//! transparently (the dead reader's slot is marked by the kernel and the waiting writer
//! takes it over); writer death is reported as `OwnerDied` with write access to whoever
//! next takes the lock, reader or writer. Writers are preferred: once a writer waits, new
//! readers queue behind it.
//!
//! # `lock_api`
//!
//! `RawMutex` and `RawRwLock` implement `lock_api::RawMutex` / `lock_api::RawRwLock` for
//! in-process users. `lock_api` has no way to return `OwnerDied`, so its `lock` panics
//! (after handing the owner-died mark on to the next robust locker) and its `try_lock`
//! returns `false`; see the `lock_api_impl` notes on the impls.
//!
//! # Model checking
//!
//! Every algorithm is written against a small facade ([`facade`](crate::facade)). Under
//! `RUSTFLAGS="--cfg loom"` it is loom's: futex wait/wake become a modelled kernel wait
//! queue (the word re-checked under a loom mutex; `futex_wake(n)` takes exactly `n`
//! sleepers off the queue, oldest first), time is a model clock that timed waits advance,
//! `simulate_owner_death()` does what the kernel does when a thread dies (held locks and
//! the pending operation), and `killable(KillAt { wait, stage }, f)` kills a thread inside
//! a futex wait, asleep or just woken. The models are in `tests/loom.rs` and
//! `tests/loom_kill.rs`; `.ci/loom` runs them.
