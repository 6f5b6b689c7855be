//! Process identity from `/proc/<pid>/stat`: a pid is reused after its process exits, the
//! pair (pid, start time) is not. The attach table and the grow lock record that pair so
//! that entries of dead processes can be told from live ones.

/// The start time (field 22 of `/proc/<pid>/stat`, clock ticks since boot) of a live
/// process, or `None` if there is no such process or it is a zombie (dead, not reaped).
pub fn start_time(pid: u32) -> Option<u64> {
    if pid == 0 {
        return None;
    }
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let stat = parse_stat(&text)?;
    (stat.state != 'Z' && stat.state != 'X').then_some(stat.start_time)
}

/// Whether `/proc` proves that the process `pid` whose start time satisfies `same` is gone:
/// there is no such pid, it is a zombie, or the pid now belongs to a process started at
/// another time (`same` false). `false` when `/proc` cannot tell (not mounted, the entry
/// hidden by `hidepid`, unreadable or unparsable): a process is never declared dead on
/// doubt, since what callers do with a dead process's records (free its blocks, take its
/// claims over) would corrupt a live one's.
pub fn is_gone(pid: u32, same: impl FnOnce(u64) -> bool) -> bool {
    if pid == 0 {
        return false;
    }
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(text) => parse_stat(&text)
            .is_some_and(|st| st.state == 'Z' || st.state == 'X' || !same(st.start_time)),
        // No entry means no such process, provided /proc shows us ourselves.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            start_time(relshm_sync::process::process_id()).is_some()
        }
        Err(_) => false,
    }
}

/// This process's start time.
pub fn own_start_time() -> u64 {
    use std::sync::atomic::{
        AtomicU64,
        Ordering::{Acquire, Relaxed, Release},
    };
    // Cached per pid: a forked child has its own pid and start time.
    static CACHE: AtomicU64 = AtomicU64::new(0);
    static CACHED_PID: AtomicU64 = AtomicU64::new(0);
    let pid = relshm_sync::process::process_id();
    if CACHED_PID.load(Acquire) == u64::from(pid) {
        return CACHE.load(Relaxed);
    }
    // Our own /proc entry exists while we run; 0 only if /proc is not mounted.
    let t = start_time(pid).unwrap_or(0);
    CACHE.store(t, Relaxed);
    CACHED_PID.store(u64::from(pid), Release);
    t
}

/// The fields of a `/proc/<pid>/stat` line that liveness checks need.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stat {
    /// Field 3: R, S, D, Z, T, ...
    pub state: char,
    /// Field 22: start time in clock ticks after boot.
    pub start_time: u64,
}

/// Parses a `/proc/<pid>/stat` line.
///
/// Field 2 is the command name in parentheses and may itself contain spaces and `)`, so
/// the fields after it are counted from the *last* `)`.
///
/// ```
/// # use relshm_segment::procstat::parse_stat;
/// let line = "42 (a) b) c) S 1 42 42 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 12345 0 0";
/// assert_eq!(parse_stat(line).unwrap().start_time, 12345);
/// assert_eq!(parse_stat(line).unwrap().state, 'S');
/// assert!(parse_stat("42 (truncated S 1").is_none());
/// ```
pub fn parse_stat(line: &str) -> Option<Stat> {
    let after = &line[line.rfind(')')? + 1..];
    let mut fields = after.split_ascii_whitespace();
    let state = fields.next()?.chars().next()?;
    // After the state (field 3), start time is field 22: skip fields 4..=21.
    let start_time = fields.nth(18)?.parse().ok()?;
    Some(Stat { state, start_time })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_process_is_alive_and_stable() {
        let t = own_start_time();
        assert!(t > 0);
        assert_eq!(start_time(relshm_sync::process::process_id()), Some(t));
    }

    #[test]
    fn gone_only_when_proc_proves_it() {
        let me = relshm_sync::process::process_id();
        let t = own_start_time();
        assert!(!is_gone(me, |s| s == t));
        assert!(is_gone(me, |s| s != t), "another start time: pid reused");
        assert!(!is_gone(0, |_| true), "pid 0 is no process to judge");
        assert!(is_gone(u32::MAX, |_| true), "no such pid");
        // A reaped child is gone.
        let child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        assert!(child.wait_with_output().unwrap().status.success());
        assert!(is_gone(pid, |_| true));
    }

    #[test]
    fn missing_and_garbage() {
        assert_eq!(start_time(0), None);
        assert_eq!(start_time(u32::MAX), None);
        assert!(parse_stat("").is_none());
        assert!(parse_stat("1 (x) S 1 2 3").is_none());
        assert!(
            parse_stat("1 (x) S 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 notanumber").is_none()
        );
    }
}
