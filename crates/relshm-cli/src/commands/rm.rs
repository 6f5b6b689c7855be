//! `relshm rm NAME`: removes a relshm segment's name (never another program's object).

use serde::Serialize;

use relshm::segment::Segment;

use super::inspect::attach_table;
use super::output::{self, CliError};
use super::target;

/// Options of `relshm rm`.
#[derive(clap::Args)]
pub struct RmArgs {
    /// The segment's name (as `relshm ls` shows it).
    pub name: String,
    /// Print one JSON document instead of text.
    #[arg(long)]
    pub json: bool,
}

/// What `rm` did.
#[derive(Debug, Serialize)]
pub struct Removed {
    /// The name removed.
    pub name: String,
    /// Live processes that still map it (they keep their mapping; the memory goes when
    /// the last one detaches).
    pub still_mapped_by: Vec<u32>,
}

/// Runs `relshm rm`.
pub fn run(args: &RmArgs) -> Result<u8, CliError> {
    let t = target::resolve(&args.name)?;
    // Read the attach table without joining it.
    let still_mapped_by = target::open_ro(&t)
        .map(|seg| {
            attach_table(seg.header())
                .into_iter()
                .filter(|a| a.alive)
                .map(|a| a.pid)
                .collect()
        })
        .unwrap_or_default();
    Segment::remove_named(&t.name).map_err(|e| target::seg_error(&t.name, e))?;
    let r = Removed {
        name: t.name,
        still_mapped_by,
    };
    output::emit(args.json, &r, |r| {
        let mut s = format!("removed {}\n", r.name);
        if !r.still_mapped_by.is_empty() {
            s.push_str(&format!(
                "note: still mapped by pid(s) {:?}; they keep their mapping until they detach\n",
                r.still_mapped_by
            ));
        }
        s
    });
    Ok(0)
}
