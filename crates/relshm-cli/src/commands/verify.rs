//! `relshm verify NAME`: checks the heap, the directory and every collection reachable
//! from the directory. Exit status 0 when clean, 1 with one line per problem.
//!
//! Verifying takes each structure's lock, as any user would; a lock whose owner died is
//! repaired by that (the documented recovery), so the verdict is on the repaired state.

use relshm::segment::directory::Directory;
use serde::Serialize;

use super::collections::{self, Ctx, Outcome};
use super::inspect::LOCK_TIMEOUT;
use super::output::{self, CliError, EXIT_FAILURE};
use super::target;

/// Options of `relshm verify`.
#[derive(clap::Args)]
pub struct VerifyArgs {
    /// The segment's name (as `relshm ls` shows it).
    pub name: String,
    /// Print one JSON document instead of text.
    #[arg(long)]
    pub json: bool,
}

/// One check.
#[derive(Debug, Serialize)]
pub struct Check {
    /// What was checked: `header`, `heap`, `directory`, `object NAME`.
    pub what: String,
    /// `ok`, `damaged` or `unchecked`.
    pub status: &'static str,
    /// Details or the problem.
    pub message: String,
}

/// The verdict.
#[derive(Debug, Serialize)]
pub struct Verdict {
    /// Segment name.
    pub name: String,
    /// Whether every check passed (unchecked objects do not count as damage).
    pub clean: bool,
    /// Every check, in order.
    pub checks: Vec<Check>,
}

impl Verdict {
    fn add(&mut self, what: impl Into<String>, status: &'static str, message: impl Into<String>) {
        if status == "damaged" {
            self.clean = false;
        }
        self.checks.push(Check {
            what: what.into(),
            status,
            message: output::one_line(&message.into()),
        });
    }
}

/// Runs every check on the segment `name`.
pub fn verdict(name: &str) -> Result<Verdict, CliError> {
    let t = target::resolve(name)?;
    let mut v = Verdict {
        name: t.name.clone(),
        clean: true,
        checks: Vec::new(),
    };
    let seg = match target::open_rw(&t) {
        Ok(seg) => seg,
        // The magic is right (resolve checked it), so a refused header is damage.
        Err(e) if e.code == EXIT_FAILURE => {
            v.add("header", "damaged", e.message);
            return Ok(v);
        }
        Err(e) => return Err(e),
    };
    v.add("header", "ok", "magic, version, layout and checksum valid");
    let heap = match seg.heap() {
        Ok(h) => h.with_lock_timeout(Some(LOCK_TIMEOUT)),
        Err(e) => {
            v.add("heap", "damaged", e.to_string());
            return Ok(v);
        }
    };
    match heap.verify() {
        Ok(s) => v.add(
            "heap",
            "ok",
            format!(
                "{} live allocation(s), {} free block(s), counters consistent",
                s.used_blocks, s.free_blocks
            ),
        ),
        Err(e) => v.add("heap", "damaged", e.to_string()),
    }
    let dir = match Directory::open(&heap) {
        Ok(d) => d,
        Err(e) => {
            v.add("directory", "damaged", e.to_string());
            return Ok(v);
        }
    };
    match dir.verify() {
        Ok(n) => v.add(
            "directory",
            "ok",
            format!("{n} named object(s), all reachable"),
        ),
        Err(e) => v.add("directory", "damaged", e.to_string()),
    }
    // A table whose entries cannot be listed has been reported above.
    let Ok(entries) = dir.entries() else {
        return Ok(v);
    };
    let ctx = Ctx { seg: &seg, heap };
    for e in &entries {
        let what = format!("object {}", collections::entry_name(e));
        match collections::verify(&ctx, e) {
            Outcome::Clean(m) => v.add(what, "ok", m),
            Outcome::Damaged(m) => v.add(what, "damaged", m),
            Outcome::Unchecked(m) => v.add(what, "unchecked", m),
            Outcome::Plain => {}
        }
    }
    Ok(v)
}

fn human(v: &Verdict) -> String {
    let mut out = String::new();
    for c in &v.checks {
        let tag = match c.status {
            "ok" => "ok",
            "damaged" => "DAMAGED",
            _ => "unchecked",
        };
        out.push_str(&format!("{tag:9} {}: {}\n", c.what, c.message));
    }
    let damaged = v.checks.iter().filter(|c| c.status == "damaged").count();
    if v.clean {
        out.push_str(&format!("{}: clean\n", v.name));
    } else {
        out.push_str(&format!("{}: {damaged} problem(s) found\n", v.name));
    }
    out
}

/// Runs `relshm verify`: exit 0 when clean, 1 on damage (one stderr line per problem).
pub fn run(args: &VerifyArgs) -> Result<u8, CliError> {
    let v = verdict(&args.name)?;
    output::emit(args.json, &v, human);
    if v.clean {
        return Ok(0);
    }
    for c in v.checks.iter().filter(|c| c.status == "damaged") {
        eprintln!("relshm: {}: {}: {}", v.name, c.what, c.message);
    }
    Ok(EXIT_FAILURE)
}
