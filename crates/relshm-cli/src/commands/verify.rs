//! `relshm verify NAME`: checks the header, heap, directory and every named object of a
//! segment through the library's whole-segment check
//! ([`relshm::verify_segment`](relshm::collections::verify::verify_segment)) and prints
//! one line per part: `ok`, `DAMAGED` or `unchecked`.
//!
//! Exit status: 0 when every part was verified ([`EXIT_CLEAN`]), 1 when something is
//! damaged ([`EXIT_FAILURE`]), 2 for usage errors ([`EXIT_USAGE`]: no such segment, not a
//! relshm segment), 3 when nothing was found damaged but something could not be checked
//! ([`EXIT_UNCHECKED`]: a list or map named by a bare offset from before typed collection
//! records, a lock held too long). A non-zero status is never "clean".
//!
//! Lists and maps are walked from their typed directory records, whatever their element
//! types. Verifying takes each list's or map's lock, as any user would; one whose last
//! holder died mid-operation is "unchecked" (only a user that knows its types repairs it).

use relshm::collections::verify::verify_segment;
use relshm::segment::verify::{SegmentReport, Verdict as PartVerdict};
use serde::Serialize;

#[cfg(doc)]
use super::output::EXIT_USAGE;
use super::output::{self, CliError, EXIT_FAILURE};
use super::target;

/// Exit code when every part was verified.
pub const EXIT_CLEAN: u8 = 0;
/// Exit code when nothing was found damaged but some part could not be checked.
pub const EXIT_UNCHECKED: u8 = 3;

/// Options of `relshm verify`.
#[derive(clap::Args)]
#[command(
    after_help = "Exit status: 0 every part verified clean; 1 damage found; 2 usage \
                        error (no such segment, not a relshm segment); 3 nothing found damaged \
                        but some part could not be checked (an object of a type this build \
                        does not know, a lock held too long): not clean."
)]
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
    /// What was checked, the problem, or why it was not checked.
    pub message: String,
}

/// The verdict.
#[derive(Debug, Serialize)]
pub struct Verdict {
    /// Segment name.
    pub name: String,
    /// Whether every part was verified (an unchecked part is not clean).
    pub clean: bool,
    /// Parts found damaged.
    pub damaged: usize,
    /// Parts that could not be checked.
    pub unchecked: usize,
    /// Every check, in order.
    pub checks: Vec<Check>,
}

impl Verdict {
    fn new(name: String) -> Self {
        Self {
            name,
            clean: true,
            damaged: 0,
            unchecked: 0,
            checks: Vec::new(),
        }
    }

    fn add(&mut self, what: impl Into<String>, status: &'static str, message: impl Into<String>) {
        match status {
            "ok" => {}
            "damaged" => self.damaged += 1,
            _ => self.unchecked += 1,
        }
        self.clean = self.damaged == 0 && self.unchecked == 0;
        self.checks.push(Check {
            what: what.into(),
            status,
            message: output::one_line(&message.into()),
        });
    }

    fn add_report(&mut self, report: &SegmentReport) {
        for c in &report.checks {
            let (status, message) = match &c.verdict {
                PartVerdict::Verified(m) => ("ok", m.clone()),
                PartVerdict::Corrupt(e) => ("damaged", e.to_string()),
                PartVerdict::Unchecked(m) => ("unchecked", m.clone()),
            };
            self.add(c.part.to_string(), status, message);
        }
    }

    /// The exit code this verdict stands for.
    pub fn exit_code(&self) -> u8 {
        if self.damaged > 0 {
            EXIT_FAILURE
        } else if self.unchecked > 0 {
            EXIT_UNCHECKED
        } else {
            EXIT_CLEAN
        }
    }
}

/// Runs every check on the segment `name`.
pub fn verdict(name: &str) -> Result<Verdict, CliError> {
    let t = target::resolve(name)?;
    let mut v = Verdict::new(t.name.clone());
    let seg = match target::open_rw(&t) {
        Ok(seg) => seg,
        // The magic is right (resolve checked it), so a refused header is damage.
        Err(e) if e.code == EXIT_FAILURE => {
            v.add("header", "damaged", e.message);
            for part in ["heap", "directory"] {
                v.add(part, "unchecked", "the segment cannot be mapped");
            }
            return Ok(v);
        }
        Err(e) => return Err(e),
    };
    v.add_report(&verify_segment(&seg));
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
    let verified = v.checks.len() - v.damaged - v.unchecked;
    let line = match (v.damaged, v.unchecked) {
        (0, 0) => format!("{}: clean ({verified} part(s) verified)", v.name),
        (0, u) => format!(
            "{}: NOT CLEAN: {u} part(s) unchecked, nothing found damaged ({verified} verified)",
            v.name
        ),
        (d, u) => format!(
            "{}: {d} problem(s) found, {u} part(s) unchecked ({verified} verified)",
            v.name
        ),
    };
    out.push_str(&line);
    out.push('\n');
    out
}

/// Runs `relshm verify`: exit 0 when every part was verified, 1 on damage, 3 when
/// something could not be checked (one stderr line per such part).
pub fn run(args: &VerifyArgs) -> Result<u8, CliError> {
    let v = verdict(&args.name)?;
    output::emit(args.json, &v, human);
    for c in v.checks.iter().filter(|c| c.status != "ok") {
        let how = if c.status == "damaged" {
            ""
        } else {
            "not checked: "
        };
        eprintln!("relshm: {}: {}: {how}{}", v.name, c.what, c.message);
    }
    Ok(v.exit_code())
}
