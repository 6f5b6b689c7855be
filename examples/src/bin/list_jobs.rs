//! A job list shared by several processes, each mapping the segment at its own address.
//!
//! `cargo run -p relshm-examples --bin list_jobs [WORKERS]` creates a named segment with two
//! lists, `jobs` and `done`, fills `jobs`, and starts WORKERS (default 3) copies of itself
//! that pop jobs from the front and push results to the back of `done` until `jobs` is
//! empty. The lists use self-relative links (`Offset`), so no process translates anything.
//! The coordinator then checks every job was done exactly once, walks `done` with a cursor,
//! verifies both lists and removes the segment.

use std::process::Command;

use relshm::collections::arena::Arena;
use relshm::collections::list::List;
use relshm::ptr::Offset;
use relshm::segment::{CreateOptions, OpenOptions, Segment};

const JOBS: u64 = 1000;

/// A job or a result: `[id, payload]` (plain data, so it can live in the segment).
type Item = [u64; 2];

fn worker(name: &str, id: &str) -> Result<(), Box<dyn std::error::Error>> {
    let seg = Segment::open_named(name, &OpenOptions::new())?;
    let arena = Arena::<Offset>::new(&seg)?;
    let jobs = List::<Item, Offset>::open_named(&arena, "jobs")?;
    let done = List::<Item, Offset>::open_named(&arena, "done")?;
    let mut n = 0;
    while let Some([job, x]) = jobs.pop_front()? {
        done.push_back([job, x * x])?;
        n += 1;
    }
    println!(
        "worker {id} (pid {}): segment at {:p}, did {n} jobs",
        std::process::id(),
        seg.base()
    );
    Ok(())
}

/// Removes the named segment when the coordinator ends, however it ends.
struct Remove(String);
impl Drop for Remove {
    fn drop(&mut self) {
        let _ = Segment::remove_named(&self.0);
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("worker") {
        return worker(&args[2], &args[3]);
    }
    let workers: usize = args.get(1).map_or(Ok(3), |s| s.parse())?;
    let name = format!("/relshm-example-list-{}", std::process::id());
    let seg = Segment::create_named(&name, &CreateOptions::new(8 << 20))?;
    let _remove = Remove(name.clone());
    let arena = Arena::<Offset>::new(&seg)?;
    let jobs = List::<Item, Offset>::create_named(&arena, "jobs")?;
    let done = List::<Item, Offset>::create_named(&arena, "done")?;
    {
        let mut g = jobs.lock()?; // one lock for the whole batch
        for i in 0..JOBS {
            g.push_back([i, i + 1])?;
        }
    }
    println!(
        "coordinator: segment {name} at {:p}, {JOBS} jobs",
        seg.base()
    );

    let exe = std::env::current_exe()?;
    let children = (0..workers)
        .map(|i| {
            Command::new(&exe)
                .args(["worker", &name, &i.to_string()])
                .spawn()
        })
        .collect::<Result<Vec<_>, _>>()?;
    for mut c in children {
        if !c.wait()?.success() {
            return Err("a worker failed".into());
        }
    }

    assert_eq!(jobs.verify()?, 0);
    assert_eq!(done.verify()?, JOBS);
    let mut seen = vec![false; JOBS as usize];
    for [job, y] in done.to_vec()? {
        assert!(!seen[job as usize], "job {job} done twice");
        assert_eq!(y, (job + 1) * (job + 1));
        seen[job as usize] = true;
    }
    // A cursor removes every tenth result in place.
    let mut removed = 0;
    {
        let mut g = done.lock()?;
        let mut c = g.cursor_front()?;
        while let Some([job, _]) = c.current() {
            if job % 10 == 0 {
                c.remove_current()?;
                removed += 1;
            } else {
                c.move_next()?;
            }
        }
    }
    println!(
        "coordinator: all {JOBS} jobs done once; removed {removed} with a cursor, {} left, verify clean",
        done.verify()?
    );
    Ok(())
}
