//! `relshm inspect NAME`: the header, the attach table (dead entries flagged), the heap's
//! counters, the named objects with their types, and every lock's state and owner.
//!
//! The attach table is the snapshot read when this process mapped the segment, before it
//! claimed its own entry: entries of processes that died without detaching are flagged,
//! and the claim then reclaims one of them (so a second inspection may not see it).
//!
//! Lock states are read before anything takes a lock: taking the heap or directory lock
//! after its owner died repairs it, which would hide the death from the report.

use std::time::Duration;

use relshm::segment::directory::Directory;
use relshm::segment::heap::HeapStats;
use relshm::segment::{Header, procstat};
use serde::Serialize;

use super::collections::{self, Ctx};
use super::locks::{self, LockState};
use super::output::{self, CliError, bytes, table};
use super::target::{self, Target};

/// How long inspection waits for the heap and directory locks.
pub const LOCK_TIMEOUT: Duration = Duration::from_secs(2);

/// Options of `relshm inspect`.
#[derive(clap::Args)]
pub struct InspectArgs {
    /// The segment's name (as `relshm ls` shows it).
    pub name: String,
    /// Print one JSON document instead of text.
    #[arg(long)]
    pub json: bool,
}

/// One attach-table entry.
#[derive(Debug, Clone, Serialize)]
pub struct Attached {
    /// Entry index.
    pub slot: u32,
    /// The process that mapped the segment.
    pub pid: u32,
    /// Its start time (clock ticks after boot).
    pub start_time: u64,
    /// Where the segment starts in that process.
    pub base: u64,
    /// Whether that process still runs (false: it died without detaching).
    pub alive: bool,
}

/// The non-free entries of the attach table as recorded in `h` (a snapshot taken when
/// this process mapped the segment, before it claimed its own entry).
pub fn attach_table(h: &Header) -> Vec<Attached> {
    const START_MASK: u64 = 0x7fff_ffff;
    h.attach
        .iter()
        .enumerate()
        .filter(|(_, e)| e.owner != 0)
        .map(|(i, e)| {
            let pid = (e.owner >> 32) as u32;
            let alive =
                procstat::start_time(pid).is_some_and(|t| t & START_MASK == e.owner & START_MASK);
            Attached {
                slot: i as u32,
                pid,
                start_time: e.start_time,
                base: e.base,
                alive,
            }
        })
        .collect()
}

/// The header fields a user cares about.
#[derive(Debug, Serialize)]
pub struct HeaderInfo {
    /// On-segment format version.
    pub format_version: u32,
    /// Random segment identity.
    pub segment_id: String,
    /// Bytes in use now.
    pub size: u64,
    /// Bytes it may grow to.
    pub max_size: u64,
    /// Number of growths.
    pub generation: u64,
    /// The fixed base of a fixed-address segment.
    pub fixed_base: Option<u64>,
    /// Heap control block offset.
    pub heap_offset: u64,
    /// Directory table offset (0 = none).
    pub directory_offset: u64,
}

/// The heap's counters.
#[derive(Debug, Serialize)]
pub struct HeapInfo {
    /// Bytes in the arena.
    pub arena_bytes: u64,
    /// Bytes in live allocations (headers included).
    pub used_bytes: u64,
    /// Live allocations.
    pub used_blocks: u64,
    /// Bytes in free blocks.
    pub free_bytes: u64,
    /// Free blocks.
    pub free_blocks: u64,
    /// Largest allocatable payload.
    pub largest_free: u64,
    /// Dead-holder repairs so far.
    pub repairs: u64,
}

impl From<HeapStats> for HeapInfo {
    fn from(s: HeapStats) -> Self {
        Self {
            arena_bytes: s.arena_bytes,
            used_bytes: s.used_bytes,
            used_blocks: s.used_blocks,
            free_bytes: s.free_bytes,
            free_blocks: s.free_blocks,
            largest_free: s.largest_free,
            repairs: s.repairs,
        }
    }
}

/// One named object.
#[derive(Debug, Serialize)]
pub struct Object {
    /// Its name.
    pub name: String,
    /// The recorded type name.
    #[serde(rename = "type")]
    pub type_name: String,
    /// The recorded type version.
    pub type_version: u32,
    /// `size_of` the type.
    pub size: u64,
    /// Offset of the object.
    pub offset: u64,
    /// What it is or names: "list of 3 element(s) at 0x...", "robust mutex", ...
    pub holds: String,
}

/// Everything `inspect` reports.
#[derive(Debug, Serialize)]
pub struct Report {
    /// Segment name.
    pub name: String,
    /// Backing file.
    pub path: String,
    /// Owner uid.
    pub uid: u32,
    /// Permission bits.
    pub mode: u32,
    /// Header fields.
    pub header: HeaderInfo,
    /// Attach table entries (dead ones have `alive: false`); this inspector excluded.
    pub attached: Vec<Attached>,
    /// Heap counters, if they could be read.
    pub heap: Option<HeapInfo>,
    /// Why they could not.
    pub heap_error: Option<String>,
    /// Named objects.
    pub objects: Vec<Object>,
    /// Why the directory could not be read.
    pub directory_error: Option<String>,
    /// Every lock found, with its state.
    pub locks: Vec<LockState>,
}

/// Builds the report for `t`.
pub fn report(t: &Target) -> Result<Report, CliError> {
    let seg = target::open_rw(t)?;
    let h = seg.header();
    let header = HeaderInfo {
        format_version: h.format_version,
        segment_id: format!("{:#018x}", h.segment_id),
        size: seg.size(),
        max_size: h.max_size,
        generation: seg.generation(),
        fixed_base: seg.fixed_base(),
        heap_offset: h.heap_offset,
        directory_offset: h.directory_offset,
    };
    let attached = attach_table(h);
    let mut rep = Report {
        name: t.name.clone(),
        path: t.path.display().to_string(),
        uid: t.uid,
        mode: t.mode,
        header,
        attached,
        heap: None,
        heap_error: None,
        objects: Vec::new(),
        directory_error: None,
        locks: Vec::new(),
    };
    let heap = match seg.heap() {
        Ok(heap) => heap.with_lock_timeout(Some(LOCK_TIMEOUT)),
        Err(e) => {
            rep.heap_error = Some(e.to_string());
            return Ok(rep);
        }
    };
    let base = seg.base().as_ptr() as u64;
    let at = |m: &relshm::sync::RawMutex| (m as *const _ as u64).wrapping_sub(base);
    rep.locks.push(locks::mutex_state(
        "heap".into(),
        at(heap.raw_lock()),
        heap.raw_lock(),
    ));
    let dir = Directory::open(&heap);
    if let Ok(d) = &dir {
        rep.locks.push(locks::mutex_state(
            "directory".into(),
            at(d.raw_lock()),
            d.raw_lock(),
        ));
    }
    match heap.stats() {
        Ok(s) => rep.heap = Some(s.into()),
        Err(e) => rep.heap_error = Some(e.to_string()),
    }
    let entries = dir.and_then(|d| d.entries());
    let ctx = Ctx { seg: &seg };
    match entries {
        Ok(entries) => {
            for e in &entries {
                let d = collections::describe(&ctx, e);
                rep.locks.extend(d.locks);
                rep.objects.push(Object {
                    name: collections::entry_name(e),
                    type_name: e.type_info.name.clone(),
                    type_version: e.type_info.version,
                    size: e.type_info.size,
                    offset: e.offset,
                    holds: d.holds,
                });
            }
            rep.objects.sort_by(|a, b| a.name.cmp(&b.name));
        }
        Err(e) => rep.directory_error = Some(e.to_string()),
    }
    Ok(rep)
}

fn human(r: &Report) -> String {
    let h = &r.header;
    let mut out = format!(
        "segment {} ({})\n  size {} (max {}), generation {}, owner uid {}, mode {:04o}\n  \
         format v{}, id {}, heap at {:#x}, directory at {:#x}, {}\n",
        r.name,
        r.path,
        bytes(h.size),
        bytes(h.max_size),
        h.generation,
        r.uid,
        r.mode,
        h.format_version,
        h.segment_id,
        h.heap_offset,
        h.directory_offset,
        match h.fixed_base {
            Some(b) => format!("fixed address {b:#x}"),
            None => "maps anywhere".into(),
        }
    );
    out.push_str(&format!("\nattached processes ({}):\n", r.attached.len()));
    let rows: Vec<Vec<String>> = r
        .attached
        .iter()
        .map(|a| {
            vec![
                a.slot.to_string(),
                a.pid.to_string(),
                a.start_time.to_string(),
                format!("{:#x}", a.base),
                if a.alive {
                    "alive"
                } else {
                    "DEAD (never detached)"
                }
                .into(),
            ]
        })
        .collect();
    out.push_str(&indent(&table(
        &["slot", "pid", "start", "base", "state"],
        &rows,
    )));
    if r.attached.iter().any(|a| !a.alive) {
        out.push_str(
            "  (a dead entry is reclaimed by the next process that maps the segment; this \
             inspection may have taken one)\n",
        );
    }
    out.push_str("\nheap: ");
    match (&r.heap, &r.heap_error) {
        (Some(s), _) => out.push_str(&format!(
            "arena {}, used {} in {} block(s), free {} in {} block(s), largest free {}, \
             repairs {}\n",
            bytes(s.arena_bytes),
            bytes(s.used_bytes),
            s.used_blocks,
            bytes(s.free_bytes),
            s.free_blocks,
            bytes(s.largest_free),
            s.repairs
        )),
        (None, Some(e)) => out.push_str(&format!("unreadable: {}\n", output::one_line(e))),
        (None, None) => out.push_str("unreadable\n"),
    }
    out.push_str(&format!("\nnamed objects ({}):\n", r.objects.len()));
    if let Some(e) = &r.directory_error {
        out.push_str(&format!(
            "  directory unreadable: {}\n",
            output::one_line(e)
        ));
    }
    let rows: Vec<Vec<String>> = r
        .objects
        .iter()
        .map(|o| {
            vec![
                o.name.clone(),
                format!("{} v{}", o.type_name, o.type_version),
                o.size.to_string(),
                format!("{:#x}", o.offset),
                o.holds.clone(),
            ]
        })
        .collect();
    out.push_str(&indent(&table(
        &["name", "type", "size", "offset", "holds"],
        &rows,
    )));
    out.push_str(&format!("\nlocks ({}):\n", r.locks.len()));
    let rows: Vec<Vec<String>> = r
        .locks
        .iter()
        .map(|l| vec![l.lock.clone(), format!("{:#x}", l.offset), l.describe()])
        .collect();
    out.push_str(&indent(&table(&["lock", "offset", "state"], &rows)));
    out
}

fn indent(text: &str) -> String {
    text.lines().map(|l| format!("  {l}\n")).collect()
}

/// Runs `relshm inspect`.
pub fn run(args: &InspectArgs) -> Result<u8, CliError> {
    let t = target::resolve(&args.name)?;
    let r = report(&t)?;
    output::emit(args.json, &r, human);
    Ok(0)
}
