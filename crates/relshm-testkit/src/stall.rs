//! The lost-wake-up ("stall") harness of issue 12: lock users keep making progress while
//! the processes that wait beside them are SIGKILLed.
//!
//! One test runs, as real processes that re-exec the test binary (each maps the shared
//! memory at its own address, as independent applications would):
//!
//! - `users` [`Role::User`] processes that use the primitive in a loop with a tiny critical
//!   section and call [`Worker::beat`] once per round (their heartbeat);
//! - `victims` [`Role::Victim`] processes that use the same primitive, so that they sleep
//!   in it while it is contended. One per round is SIGKILLed, preferably at the moment it
//!   is runnable inside its blocking call (woken, not yet back), then respawned after
//!   [`WINDOW`];
//! - `hogs` busy-looping processes, so that a woken process often waits for a CPU and
//!   dies between its wake-up and its next step.
//!
//! # What counts as a stall
//!
//! A **stall** is a user whose heartbeat did not advance for more than [`STALL`] (100 ms,
//! the bound). Users measure their own gaps (between two beats, on the monotonic
//! clock), so a harness that is itself slow to run invents none. On a loaded machine a
//! user also stalls for reasons that are not the lock's: it is runnable but gets no CPU, or
//! the process it waits for (the holder, or the waiter that was woken to pass the lock on)
//! is runnable but gets no CPU. The control run shows such gaps. So the harness looks at
//! every gap while it lasts (threads' states from `/proc`) and calls it a **lost
//! wake-up** when, continuously for [`CONFIRM`] past the 100 ms mark,
//!
//! 1. the stalled user is asleep (`S`) inside its blocking call ([`Worker::waiting`]),
//! 2. some other process made progress in the last [`MOVING`] (20 ms: the primitive is
//!    moving, so no holder is stuck off-CPU), or none is even runnable (all asleep), and
//! 3. no live process is runnable inside a blocking call (nobody was woken who could still
//!    hand the primitive on).
//!
//! 4. the primitive's own word does not say that a wake-up is owed (the test's
//!    [`Config::wake_owed`] probe, where it has one: a lock word with `WAITERS` set is
//!    bound to wake a sleeper at its next unlock, so a user asleep beside it is being
//!    out-raced by bargers, unfair but not forgotten).
//!
//! That is the state a wake-up swallowed by a dead process leaves behind. The test asserts
//! zero lost wake-ups; it prints every stall > 100 ms with its cause and the longest gap:
//! `stall-test NAME: K kills, L lost wake-ups (stalls > 100ms asleep and forgotten),
//! S stalls > 100ms in all, max gap G`, then the causes it saw and, for each lost wake-up,
//! a snapshot of every process. A forgotten user normally resumes when the respawned victim
//! contends (so its gap is about [`WINDOW`] plus a start-up); one that does not beat for
//! [`RESCUE`] is killed and respawned, so a lost wake-up never hangs the test.
//!
//! # Environment
//!
//! - `RELSHM_STALL_KILLS=N` overrides every test's kill count (a soak: `N=3000`);
//! - `RELSHM_STALL_CONTROL=1` runs the control experiment: victims are asked to leave
//!   (they return from their loop at their next beat) instead of being killed;
//! - `RELSHM_STALL_SEED=S` replays the random kill moments;
//! - `RELSHM_STALL_HOGS=N` and `RELSHM_STALL_HOG_NICE=N` change the hogs (default: the
//!   test's count, nice 0); `RELSHM_STALL_VICTIMS=N` the victims.
//!
//! The roles are selected in the child by private environment variables; the test
//! function calls [`run`] in both the harness and its children, and [`run`] dispatches.

use crate::shm::{Mapping, Shm};
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// A user that makes no progress for longer than this has stalled (the bound).
pub const STALL: Duration = Duration::from_millis(100);
/// How long past [`STALL`] a stall must look like a lost wake-up to count as one.
pub const CONFIRM: Duration = Duration::from_millis(10);
/// Another process that beat this recently shows that the primitive is moving.
pub const MOVING: Duration = Duration::from_millis(20);
/// A user stalled this long is killed and respawned, so the test ends.
pub const RESCUE: Duration = Duration::from_secs(2);
/// After this many rescued users the verdict is clear: the test stops early (each rescue
/// costs [`RESCUE`]).
const MAX_RESCUES: u64 = 10;
/// How long the harness watches the users after each kill before it respawns the victim
/// (a fresh contender would wake a forgotten sleeper and hide the stall).
pub const WINDOW: Duration = Duration::from_millis(150);
/// How long to look for a victim at the moment it was woken before picking any.
const SEARCH: Duration = Duration::from_millis(20);
/// Longest random delay before a kill, after the previous victim was respawned.
const MAX_DELAY_US: u64 = 20_000;
/// How long to wait for a (re)spawned process's first beat.
const START_LIMIT: Duration = Duration::from_secs(30);
/// How long a control-run victim may take to leave on its own.
const LEAVE_LIMIT: Duration = Duration::from_secs(5);

/// Overrides every stall test's kill count.
pub const ENV_KILLS: &str = "RELSHM_STALL_KILLS";
/// Set to `1` for the control run (victims leave instead of being killed).
pub const ENV_CONTROL: &str = "RELSHM_STALL_CONTROL";
/// Seed of the random kill moments.
pub const ENV_SEED: &str = "RELSHM_STALL_SEED";
const ENV_HOGS: &str = "RELSHM_STALL_HOGS";
const ENV_HOG_NICE: &str = "RELSHM_STALL_HOG_NICE";
const ENV_VICTIMS: &str = "RELSHM_STALL_VICTIMS";
/// Private: the child's role, control page, slot and the test's argument.
const ENV_ROLE: &str = "RELSHM_STALL_ROLE";
const ENV_CTL: &str = "RELSHM_STALL_CTL";
const ENV_SLOT: &str = "RELSHM_STALL_SLOT";
const ENV_ARG: &str = "RELSHM_STALL_ARG";

/// Control-page words per process.
const WORDS: usize = 8;
/// Monotonic time (ns) of the process's last beat; 0 before its first.
const BEAT_NS: usize = 0;
/// Number of beats.
const BEATS: usize = 1;
/// Gaps between two beats longer than [`STALL`].
const STALLS: usize = 2;
/// Longest gap between two beats (ns).
const MAX_GAP: usize = 3;
/// Set by the harness: leave at the next beat (control run).
const LEAVE: usize = 4;
/// Non-zero while the process is inside a call that may block ([`Worker::waiting`]).
const WAITING: usize = 5;
/// The id of the thread that runs the role (libtest runs a test on a thread of its own).
const TID: usize = 6;
const CTL_LEN: usize = 4096;
const MAX_PROCS: usize = CTL_LEN / 8 / WORDS;
/// The slot hogs are given: they never write the control page.
const HOG_SLOT: usize = MAX_PROCS - 1;

/// What a child process of a stall test does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Lock user `n` (0-based): must never stall.
    User(usize),
    /// Victim `n` (0-based): killed at random moments, respawned.
    Victim(usize),
}

/// One stall test's shape.
#[derive(Debug, Clone)]
pub struct Config {
    /// Short name for the report line ("mutex").
    pub name: &'static str,
    /// The test function's name, as `--exact` selects it in a re-exec of the test binary.
    pub test: &'static str,
    /// Lock users (never killed).
    pub users: usize,
    /// Victims alive at once.
    pub victims: usize,
    /// CPU hogs.
    pub hogs: usize,
    /// Kills to run (overridden by `RELSHM_STALL_KILLS`).
    pub kills: usize,
    /// Whether the primitive's shared state says that a wake-up is owed to its sleepers
    /// (for a lock: `WAITERS` is set in its word), given the test's argument string; `None`
    /// when the primitive has no such word. See the module docs, condition 4.
    pub wake_owed: Option<fn(&str) -> bool>,
}

impl Config {
    /// Two users, three victims, two hogs, `kills` kills.
    pub fn new(name: &'static str, test: &'static str, kills: usize) -> Self {
        Self {
            name,
            test,
            users: 2,
            victims: 3,
            hogs: 2,
            kills,
            wake_owed: None,
        }
    }
}

/// The handle a user or victim process gets: its role, the test's argument string and
/// its heartbeat.
pub struct Worker {
    role: Role,
    slot: usize,
    arg: String,
    ctl: Mapping,
}

impl Worker {
    /// This process's role.
    pub fn role(&self) -> Role {
        self.role
    }

    /// The string the test's set-up returned (where to find the shared object).
    pub fn arg(&self) -> &str {
        &self.arg
    }

    fn w(&self, i: usize) -> &AtomicU64 {
        word(&self.ctl, self.slot, i)
    }

    /// Runs `f`, a call that may block on the primitive (`lock`, `recv`), marked so that
    /// the harness knows who waits (and prefers to kill victims woken inside it).
    pub fn waiting<T>(&self, f: impl FnOnce() -> T) -> T {
        self.w(WAITING).store(1, Ordering::Relaxed);
        let r = f();
        self.w(WAITING).store(0, Ordering::Relaxed);
        r
    }

    /// The usual loop: beat, run `round` (one use of the primitive), spin `outside_us`
    /// microseconds of work outside it; until [`beat`](Self::beat) says leave (users:
    /// forever).
    pub fn rounds(&self, outside_us: u64, mut round: impl FnMut()) {
        while self.beat() {
            round();
            spin_us(outside_us);
        }
    }

    /// Records one round of progress. Returns `false` when the harness asks this process
    /// to leave (control run): the caller then returns from its loop.
    pub fn beat(&self) -> bool {
        let now = mono_ns();
        let prev = self.w(BEAT_NS).load(Ordering::Relaxed);
        if prev != 0 {
            let gap = now.saturating_sub(prev);
            self.w(MAX_GAP).fetch_max(gap, Ordering::Relaxed);
            if gap > nanos(STALL) {
                self.w(STALLS).fetch_add(1, Ordering::Relaxed);
            }
        }
        self.w(BEAT_NS).store(now, Ordering::Release);
        self.w(BEATS).fetch_add(1, Ordering::Release);
        self.w(LEAVE).load(Ordering::Acquire) == 0
    }
}

/// Spins for about `us` microseconds (a critical section's worth of work).
pub fn spin_us(us: u64) {
    let end = mono_ns() + us * 1000;
    while mono_ns() < end {
        std::hint::spin_loop();
    }
}

/// Runs the stall test `cfg`.
///
/// In the harness (the test as `cargo test` runs it): calls `setup` once, which creates the
/// shared object and returns something to keep alive for the test's duration plus an
/// argument string for the children (typically an [`fd_path`](crate::fd_path) and an
/// offset); spawns the processes, kills victims, measures, prints the report and panics
/// if a user stalled because of a lost wake-up.
///
/// In a child (a re-exec of the test binary with a role set): calls `work` with its
/// [`Worker`]; users must loop forever, victims until [`Worker::beat`] returns `false`;
/// then the process exits.
pub fn run<K>(cfg: &Config, setup: impl FnOnce() -> (K, String), work: impl FnOnce(&Worker)) {
    if let Ok(role) = std::env::var(ENV_ROLE) {
        child_main(&role, work);
    }
    // Stall tests of one binary would load the 2-core CI machine together: one at a time.
    static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let (keep, arg) = setup();
    let report = Harness::new(cfg, arg).run();
    drop(keep);
    println!("{report}");
    for line in &report.log {
        println!("  {line}");
    }
    assert_eq!(
        report.lost,
        0,
        "{}: users stalled > {STALL:?} asleep in the primitive while it moved on (lost \
         wake-ups); see the lines above",
        report.title()
    );
    assert_eq!(
        report.stuck_leavers,
        0,
        "{}: victims asked to leave did not",
        report.title()
    );
}

fn child_main(role: &str, work: impl FnOnce(&Worker)) -> ! {
    let parse = |s: &str| -> usize { s.parse().expect("a role index") };
    let role = match role.split_once(' ') {
        None if role == "hog" => loop {
            std::hint::spin_loop();
        },
        Some(("user", n)) => Role::User(parse(n)),
        Some(("victim", n)) => Role::Victim(parse(n)),
        _ => panic!("{ENV_ROLE}={role}: not a stall-test role"),
    };
    let env = |k: &str| std::env::var(k).unwrap_or_else(|_| panic!("the harness sets {k}"));
    let worker = Worker {
        role,
        slot: parse(&env(ENV_SLOT)),
        arg: env(ENV_ARG),
        ctl: Shm::open(&env(ENV_CTL)).map(),
    };
    // SAFETY: gettid has no preconditions.
    let tid = unsafe { libc::gettid() };
    worker.w(TID).store(tid as u64, Ordering::Release);
    work(&worker);
    std::process::exit(0);
}

fn word(ctl: &Mapping, slot: usize, i: usize) -> &AtomicU64 {
    ctl.at((slot * WORDS + i) * 8)
}

fn mono_ns() -> u64 {
    // SAFETY: all-zero bytes are a valid timespec; clock_gettime fills it.
    let mut ts: libc::timespec = unsafe { std::mem::zeroed() };
    // SAFETY: a valid clock id and out-pointer.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

fn nanos(d: Duration) -> u64 {
    d.as_nanos() as u64
}

fn ms(ns: u64) -> String {
    format!("{}ms", ns / 1_000_000)
}

/// The scheduler state letter of thread `tid` of process `pid` (`R` runnable, `S`
/// asleep...), `?` if gone or unknown.
fn thread_state(pid: u32, tid: u64) -> char {
    std::fs::read_to_string(format!("/proc/{pid}/task/{tid}/stat"))
        .ok()
        .and_then(|s| {
            let (_, rest) = s.rsplit_once(") ")?;
            rest.chars().next()
        })
        .unwrap_or('?')
}

/// A spawned child; killed and reaped when dropped.
struct Proc(std::process::Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Why a user's gap past [`STALL`] happened, as the harness saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Cause {
    /// Asleep in the call, the primitive moving on, nobody woken to hand it on.
    Lost,
    /// The user itself was runnable: it waited for a CPU.
    Runnable,
    /// Another process was runnable inside a blocking call (woken, waiting for a CPU).
    WokenWaiting,
    /// Nothing moved: the holder (or everyone) was off the CPU.
    NothingMoved,
    /// Asleep while the primitive moved on, but its word said a wake-up was owed: bargers
    /// kept winning the lock from the woken (unfair, not lost).
    OutRaced,
    /// Something else (the user was in neither state, or gone).
    Other,
}

/// The gap a user is in right now, as far as the harness followed it.
#[derive(Clone, Copy, Default)]
struct Episode {
    /// The user's last beat when the gap began (identifies the gap).
    since: u64,
    /// When the lost-wake-up signature began to hold without a break (0: it does not).
    lost_from: u64,
    /// The cause decided for this gap, once decided.
    cause: Option<Cause>,
}

/// What one stall test measured.
struct Report {
    name: &'static str,
    control: bool,
    kills: usize,
    /// Gaps > STALL measured by the users (plus rescued users).
    stalls: u64,
    lost: u64,
    causes: std::collections::BTreeMap<Cause, u64>,
    max_gap_ns: u64,
    rescued: u64,
    stuck_leavers: u64,
    targeted: u64,
    beats: Vec<u64>,
    elapsed: Duration,
    seed: u64,
    shape: (usize, usize, usize, i32),
    log: Vec<String>,
}

impl Report {
    fn title(&self) -> String {
        let control = if self.control { " (control)" } else { "" };
        format!("stall-test {}{control}", self.name)
    }
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (users, victims, hogs, nice) = self.shape;
        let what = if self.control { "leaves" } else { "kills" };
        write!(
            f,
            "{}: {} {what}, {} lost wake-ups (stalls > {}ms asleep and forgotten), \
             {} stalls > {}ms in all, max gap {}",
            self.title(),
            self.kills,
            self.lost,
            STALL.as_millis(),
            self.stalls,
            STALL.as_millis(),
            ms(self.max_gap_ns),
        )?;
        write!(
            f,
            "\n  causes seen {:?}; {} victims caught woken in the call; {} users rescued; \
             {} victims stuck; user rounds {:?}; {users} users {victims} victims {hogs} hogs \
             (nice {nice}); {:.1} s; {ENV_SEED}={}",
            self.causes,
            self.targeted,
            self.rescued,
            self.stuck_leavers,
            self.beats,
            self.elapsed.as_secs_f64(),
            self.seed,
        )
    }
}

struct Harness<'c> {
    cfg: &'c Config,
    kills: usize,
    hog_nice: i32,
    hogs: usize,
    victims_n: usize,
    control: bool,
    seed: u64,
    rng: u64,
    arg: String,
    ctl_shm: Shm,
    ctl: Mapping,
    users: Vec<Option<Proc>>,
    victims: Vec<Option<Proc>>,
    hog_procs: Vec<Proc>,
    /// Stalls and longest gap of user processes that were replaced.
    retired_stalls: u64,
    retired_gap: u64,
    rescued: u64,
    stuck_leavers: u64,
    /// Victims ended while found runnable inside a blocking call.
    targeted: u64,
    episodes: Vec<Episode>,
    causes: std::collections::BTreeMap<Cause, u64>,
    /// The kill round in progress, for the log.
    round: usize,
    log: Vec<String>,
}

impl<'c> Harness<'c> {
    fn new(cfg: &'c Config, arg: String) -> Self {
        let env_num = |k: &str| std::env::var(k).ok().and_then(|v| v.parse::<i64>().ok());
        let victims_n = env_num(ENV_VICTIMS).map_or(cfg.victims, |n| n as usize);
        assert!(
            cfg.users + victims_n < HOG_SLOT && victims_n > 0,
            "1 to {} processes",
            HOG_SLOT - 1
        );
        let seed = env_num(ENV_SEED)
            .map_or_else(|| mono_ns() ^ u64::from(std::process::id()), |s| s as u64);
        let ctl_shm = Shm::new(CTL_LEN);
        let ctl = ctl_shm.map();
        Self {
            cfg,
            kills: env_num(ENV_KILLS).map_or(cfg.kills, |k| k as usize),
            hog_nice: env_num(ENV_HOG_NICE).map_or(0, |n| n as i32),
            hogs: env_num(ENV_HOGS).map_or(cfg.hogs, |n| n as usize),
            victims_n,
            control: std::env::var(ENV_CONTROL).is_ok_and(|v| v == "1"),
            seed,
            rng: seed | 1,
            arg,
            ctl_shm,
            ctl,
            users: Vec::new(),
            victims: Vec::new(),
            hog_procs: Vec::new(),
            retired_stalls: 0,
            retired_gap: 0,
            rescued: 0,
            stuck_leavers: 0,
            targeted: 0,
            episodes: vec![Episode::default(); cfg.users],
            causes: Default::default(),
            round: 0,
            log: Vec::new(),
        }
    }

    /// xorshift64*: enough for kill moments, and replayable from the seed.
    fn random(&mut self, below: u64) -> u64 {
        self.rng ^= self.rng >> 12;
        self.rng ^= self.rng << 25;
        self.rng ^= self.rng >> 27;
        self.rng.wrapping_mul(0x2545_f491_4f6c_dd1d) % below.max(1)
    }

    fn w(&self, slot: usize, i: usize) -> &AtomicU64 {
        word(&self.ctl, slot, i)
    }

    /// The live process in `slot` (users first, then victims), if any.
    fn proc(&self, slot: usize) -> Option<&Proc> {
        match slot.checked_sub(self.cfg.users) {
            None => self.users[slot].as_ref(),
            Some(v) => self.victims[v].as_ref(),
        }
    }

    /// The state of the role thread of the process in `slot` (`?` if none).
    fn state(&self, slot: usize) -> char {
        self.proc(slot).map_or('?', |p| {
            thread_state(p.0.id(), self.w(slot, TID).load(Ordering::Acquire))
        })
    }

    fn in_call(&self, slot: usize) -> bool {
        self.w(slot, WAITING).load(Ordering::Relaxed) != 0
    }

    /// Re-execs the test binary as `role`, with control-page slot `slot` (cleared first).
    fn spawn(&self, role: &str, slot: usize) -> Proc {
        for i in 0..WORDS {
            self.w(slot, i).store(0, Ordering::Release);
        }
        let nice = if role == "hog" { self.hog_nice } else { 0 };
        let exe = std::env::current_exe().expect("the test binary's path");
        let mut cmd = Command::new(exe);
        cmd.args([
            "--exact",
            self.cfg.test,
            "--nocapture",
            "--test-threads=1",
            "-q",
        ])
        .env(ENV_ROLE, role)
        .env(ENV_CTL, self.ctl_shm.path())
        .env(ENV_SLOT, slot.to_string())
        .env(ENV_ARG, &self.arg)
        .stdin(Stdio::null())
        .stdout(Stdio::null());
        // SAFETY: prctl and setpriority are async-signal-safe system calls; the closure
        // only copies an integer.
        unsafe {
            cmd.pre_exec(move || {
                // Die with the harness, even if it is killed.
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                if nice != 0 {
                    libc::setpriority(libc::PRIO_PROCESS, 0, nice);
                }
                Ok(())
            });
        }
        Proc(cmd.spawn().expect("re-exec of the test binary"))
    }

    fn spawn_user(&self, i: usize) -> Option<Proc> {
        Some(self.spawn(&format!("user {i}"), i))
    }

    fn spawn_victim(&self, i: usize) -> Option<Proc> {
        Some(self.spawn(&format!("victim {i}"), self.cfg.users + i))
    }

    fn run(mut self) -> Report {
        let t0 = Instant::now();
        self.hog_procs = (0..self.hogs)
            .map(|_| self.spawn("hog", HOG_SLOT))
            .collect();
        self.users = (0..self.cfg.users).map(|i| self.spawn_user(i)).collect();
        self.victims = (0..self.victims_n).map(|i| self.spawn_victim(i)).collect();
        for slot in 0..self.cfg.users {
            assert!(
                self.await_first_beat(slot),
                "stall-test {}: user {slot} never made progress",
                self.cfg.name
            );
        }
        for i in 0..self.victims_n {
            self.await_first_beat(self.cfg.users + i);
        }
        // Start-up (exec'ing everyone on a loaded machine) is not part of the scenario.
        self.watch(Duration::from_millis(50));
        for slot in 0..self.cfg.users {
            self.w(slot, STALLS).store(0, Ordering::Release);
            self.w(slot, MAX_GAP).store(0, Ordering::Release);
        }
        self.causes.clear();
        self.log.clear();
        for k in 0..self.kills {
            if self.rescued >= MAX_RESCUES {
                self.log.push(format!(
                    "stopped after {k} rounds: {MAX_RESCUES} users had to be rescued"
                ));
                self.kills = k;
                break;
            }
            self.round = k;
            let delay = self.random(MAX_DELAY_US);
            self.watch(Duration::from_micros(delay));
            let v = self.pick_victim();
            self.end_victim(v);
            self.watch(WINDOW);
            self.victims[v] = self.spawn_victim(v);
            self.await_first_beat(self.cfg.users + v);
        }
        let (stalls, max_gap_ns) = self.stalls();
        let beats = (0..self.cfg.users)
            .map(|s| self.w(s, BEATS).load(Ordering::Acquire))
            .collect();
        Report {
            name: self.cfg.name,
            control: self.control,
            kills: self.kills,
            stalls,
            lost: self.causes.get(&Cause::Lost).copied().unwrap_or(0),
            causes: std::mem::take(&mut self.causes),
            max_gap_ns,
            rescued: self.rescued,
            stuck_leavers: self.stuck_leavers,
            targeted: self.targeted,
            beats,
            elapsed: t0.elapsed(),
            seed: self.seed,
            shape: (self.cfg.users, self.victims_n, self.hogs, self.hog_nice),
            log: std::mem::take(&mut self.log),
        }
    }

    /// The victim to end: one found inside a blocking call and runnable (so, most likely,
    /// woken and not yet back from the call: the moment a lost wake-up needs), searched for
    /// up to [`SEARCH`]; else a random one.
    fn pick_victim(&mut self) -> usize {
        let end = Instant::now() + SEARCH;
        while Instant::now() < end {
            for v in 0..self.victims_n {
                let slot = self.cfg.users + v;
                if self.in_call(slot) && self.state(slot) == 'R' {
                    self.targeted += 1;
                    return v;
                }
            }
            std::thread::sleep(Duration::from_micros(50));
        }
        self.random(self.victims_n as u64) as usize
    }

    /// Kills victim `v` (control run: asks it to leave and waits until it has).
    fn end_victim(&mut self, v: usize) {
        let slot = self.cfg.users + v;
        if self.control {
            self.w(slot, LEAVE).store(1, Ordering::Release);
            let deadline = Instant::now() + LEAVE_LIMIT;
            loop {
                let p = &mut self.victims[v].as_mut().expect("a live victim").0;
                if matches!(p.try_wait(), Ok(Some(_))) {
                    break;
                }
                if Instant::now() >= deadline {
                    self.stuck_leavers += 1;
                    self.log
                        .push(format!("victim {v} did not leave in {LEAVE_LIMIT:?}"));
                    break;
                }
                self.watch(Duration::from_millis(1));
            }
        }
        drop(self.victims[v].take()); // SIGKILL (if still there) and reap
    }

    /// Waits for the first beat of the process in `slot`; false if it did not come.
    fn await_first_beat(&mut self, slot: usize) -> bool {
        let deadline = Instant::now() + START_LIMIT;
        while self.w(slot, BEATS).load(Ordering::Acquire) == 0 {
            if Instant::now() >= deadline {
                self.log
                    .push(format!("slot {slot}: no first beat in {START_LIMIT:?}"));
                return false;
            }
            self.watch(Duration::from_millis(1));
        }
        true
    }

    /// Total stalls and longest gap so far, over current and replaced users.
    fn stalls(&self) -> (u64, u64) {
        (0..self.cfg.users).fold((self.retired_stalls, self.retired_gap), |(s, g), u| {
            (
                s + self.w(u, STALLS).load(Ordering::Acquire),
                g.max(self.w(u, MAX_GAP).load(Ordering::Acquire)),
            )
        })
    }

    /// Watches the users for `d`: a user that exited fails the test; one in a gap past
    /// [`STALL`] has the gap's cause decided ([`Self::follow`]); one that has not beaten
    /// for [`RESCUE`] is killed and respawned.
    fn watch(&mut self, d: Duration) {
        let end = Instant::now() + d;
        loop {
            for u in 0..self.cfg.users {
                let user = &mut self.users[u].as_mut().expect("a live user").0;
                if let Ok(Some(status)) = user.try_wait() {
                    panic!(
                        "stall-test {}: user {u} exited ({status}); is `{}` the test's name?",
                        self.cfg.name, self.cfg.test
                    );
                }
                let gap = self.follow(u);
                if gap > nanos(RESCUE) {
                    self.rescue(u, gap);
                }
            }
            let now = Instant::now();
            if now >= end {
                return;
            }
            std::thread::sleep((end - now).min(Duration::from_millis(1)));
        }
    }

    /// Follows user `u`'s current gap; returns its length (ns). Decides the gap's cause
    /// once it is past [`STALL`]: lost wake-up if the signature (module docs) holds
    /// without a break for [`CONFIRM`], else what broke it first.
    fn follow(&mut self, u: usize) -> u64 {
        let last = self.w(u, BEAT_NS).load(Ordering::Acquire);
        if last == 0 {
            return 0; // not started yet
        }
        let now = mono_ns();
        let gap = now.saturating_sub(last);
        let mut ep = self.episodes[u];
        if ep.since != last {
            ep = Episode {
                since: last,
                ..Episode::default()
            };
        }
        if gap > nanos(STALL) && ep.cause.is_none() {
            let cause = self.cause_now(u, now);
            if cause != Cause::Lost {
                ep.cause = Some(cause);
            } else if ep.lost_from == 0 {
                ep.lost_from = now;
            } else if now - ep.lost_from >= nanos(CONFIRM) {
                ep.cause = Some(Cause::Lost);
            }
            if let Some(c) = ep.cause {
                *self.causes.entry(c).or_default() += 1;
                if c == Cause::Lost {
                    let snapshot = self.snapshot(now);
                    self.log.push(format!(
                        "round {}: user {u} asleep in the call for {} while others moved on \
                         and no one was woken to hand it on [{snapshot}]",
                        self.round,
                        ms(gap)
                    ));
                }
            }
        }
        self.episodes[u] = ep;
        gap
    }

    /// The cause the current state of the processes points to, for user `u` in a gap.
    fn cause_now(&self, u: usize, now: u64) -> Cause {
        let slots = 0..self.cfg.users + self.victims_n;
        match self.state(u) {
            'R' => return Cause::Runnable,
            'S' if self.in_call(u) => {}
            _ => return Cause::Other,
        }
        if slots
            .clone()
            .any(|s| s != u && self.in_call(s) && self.state(s) == 'R')
        {
            return Cause::WokenWaiting;
        }
        let others = || slots.clone().filter(|&s| s != u && self.proc(s).is_some());
        let moved = others().any(|s| {
            let beat = self.w(s, BEAT_NS).load(Ordering::Acquire);
            beat != 0 && now.saturating_sub(beat) < nanos(MOVING)
        });
        // Nobody moved: a holder off the CPU explains it, unless no one is even runnable
        // (all asleep: nothing will ever wake them).
        if moved || others().all(|s| self.state(s) != 'R') {
            if self.cfg.wake_owed.is_some_and(|owed| owed(&self.arg)) {
                Cause::OutRaced
            } else {
                Cause::Lost
            }
        } else {
            Cause::NothingMoved
        }
    }

    /// Every user's and victim's state for the log: `u0:S*12ms` is user 0, asleep (`S`),
    /// inside its blocking call (`*`), last beat 12 ms ago.
    fn snapshot(&self, now: u64) -> String {
        (0..self.cfg.users + self.victims_n)
            .map(|s| {
                let (kind, n) = match s.checked_sub(self.cfg.users) {
                    None => ('u', s),
                    Some(v) => ('v', v),
                };
                let call = if self.in_call(s) { "*" } else { "" };
                let beat = now.saturating_sub(self.w(s, BEAT_NS).load(Ordering::Acquire));
                format!("{kind}{n}:{}{call}{}", self.state(s), ms(beat))
            })
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// Replaces user `u`, stalled for `gap` ns (counted as one stall).
    fn rescue(&mut self, u: usize, gap: u64) {
        self.rescued += 1;
        self.retired_stalls += 1 + self.w(u, STALLS).load(Ordering::Acquire);
        self.retired_gap = self
            .retired_gap
            .max(gap)
            .max(self.w(u, MAX_GAP).load(Ordering::Acquire));
        self.log.push(format!(
            "round {}: user {u} made no progress for {}: killed and respawned it",
            self.round,
            ms(gap)
        ));
        drop(self.users[u].take());
        self.users[u] = self.spawn_user(u);
        self.episodes[u] = Episode::default();
        self.await_first_beat(u);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_running_thread_reads_as_runnable() {
        // SAFETY: gettid has no preconditions.
        let tid = unsafe { libc::gettid() } as u64;
        assert_eq!(thread_state(std::process::id(), tid), 'R');
        assert_eq!(thread_state(std::process::id(), u64::MAX), '?');
    }

    #[test]
    fn spin_us_spins_at_least_that_long() {
        let t = Instant::now();
        spin_us(200);
        assert!(t.elapsed() >= Duration::from_micros(200));
    }
}
