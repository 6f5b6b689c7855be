//! The scaling harness runs every workload at N = 1, 2 as real worker processes and
//! reports a positive throughput for each (the short CI form of the sweep).

use std::process::Command;

#[test]
fn every_workload_reports_throughput_at_one_and_two_processes() {
    let out = Command::new(env!("CARGO_BIN_EXE_scale"))
        .args(["--procs", "1,2", "--secs", "0.2", "--keys", "2000"])
        .output()
        .expect("running scale");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "scale failed: {}\n{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rows = [
        ("mutex", "1"),
        ("mutex", "2"),
        ("pthread", "2"),
        ("ticket", "2"),
        ("alloc", "2"),
        ("seg-alloc", "2"),
        ("malloc", "2"),
        ("map", "2"),
        ("queue", "1+1"),
        ("channel", "1+1"),
    ];
    for (workload, procs) in rows {
        let row = stdout
            .lines()
            .find(|l| {
                let mut f = l.split_whitespace();
                f.next() == Some(workload) && f.next() == Some(procs)
            })
            .unwrap_or_else(|| panic!("no {workload} row at {procs}:\n{stdout}"));
        let mops: f64 = row.split_whitespace().nth(2).unwrap().parse().unwrap();
        assert!(mops > 0.0, "{workload} at {procs}: {row}");
    }
    assert!(stdout.contains("mutex / pthread at 2:"), "{stdout}");
}
