//! `relshm ls`: the segments relshm created, found by the header magic at the start of
//! each object in `/dev/shm`, and the objects there this user may not read (so cannot
//! tell), listed as such instead of left out. Segments owned by another user than the one
//! running `ls` are marked: the library refuses to open those unless told their owner.

use relshm::collections::record::CollectionRecord;
use serde::Serialize;

use super::inspect::{LOCK_TIMEOUT, attach_table};
use super::output::{self, CliError, bytes, table};
use super::target::{self, Target, Unreadable};

/// Options of `relshm ls`.
#[derive(clap::Args)]
pub struct LsArgs {
    /// Print one JSON document instead of text.
    #[arg(long)]
    pub json: bool,
}

/// One segment's line.
#[derive(Debug, Serialize)]
pub struct Row {
    /// Name (without the leading `/`).
    pub name: String,
    /// Size from the header (bytes in use by the segment).
    pub size: u64,
    /// Bytes in live heap allocations (`None` if the heap could not be read, e.g. no
    /// write permission: the heap's lock must be taken to count).
    pub used: Option<u64>,
    /// Owner uid.
    pub uid: u32,
    /// Whether another user than the one running `ls` owns it (opening it then needs
    /// `OpenOptions::allow_owner(uid)`).
    pub other_owner: bool,
    /// Permission bits.
    pub mode: u32,
    /// Attach-table entries (processes that mapped it and did not detach).
    pub attached: usize,
    /// Of those, processes still alive.
    pub live: usize,
    /// The collections its directory registers, as `name: what` from their typed records
    /// (kind, types' sizes, strategy), whatever the types are.
    pub collections: Vec<String>,
    /// Why the segment could not be opened (or, for an object this user may not read, that
    /// it could not be read), if it could not.
    pub error: Option<String>,
}

impl Row {
    /// A row for an object, before anything is read from it.
    fn new(name: &str, size: u64, uid: u32, mode: u32) -> Self {
        Self {
            name: name.to_owned(),
            size,
            used: None,
            uid,
            other_owner: uid != target::euid(),
            mode,
            attached: 0,
            live: 0,
            collections: Vec::new(),
            error: None,
        }
    }
}

/// The row for an object this user may not read.
fn unreadable(u: &Unreadable) -> Row {
    let mut r = Row::new(&u.name, u.file_size, u.uid, u.mode);
    r.error = Some(format!(
        "cannot read: permission denied, owner uid {}",
        u.uid
    ));
    r
}

/// The row for one segment (this process's own attachment is not counted).
fn row(t: &Target) -> Row {
    let mut r = Row::new(&t.name, t.file_size, t.uid, t.mode);
    let mut fill = |h: &relshm::segment::Header| {
        let table = attach_table(h);
        r.attached = table.len();
        r.live = table.iter().filter(|a| a.alive).count();
        r.size = h.size;
    };
    match target::open_rw(t) {
        Ok(seg) => {
            fill(seg.header());
            r.used = seg
                .heap()
                .and_then(|h| Ok(h.with_lock_timeout(Some(LOCK_TIMEOUT)).stats()?))
                .ok()
                .map(|s| s.used_bytes);
            r.collections = collections(&seg);
        }
        // Without write access: the header can still be read.
        Err(_) => match target::open_ro(t) {
            Ok(seg) => fill(seg.header()),
            Err(e) => r.error = Some(e.message),
        },
    }
    r
}

/// `name: record` for each collection record in `seg`'s directory (none if it cannot be
/// read).
fn collections(seg: &relshm::segment::Segment) -> Vec<String> {
    let Ok(entries) = seg.directory().and_then(|d| Ok(d.entries()?)) else {
        return Vec::new();
    };
    entries
        .iter()
        .filter_map(|e| {
            let name = String::from_utf8_lossy(&e.name);
            Some(match CollectionRecord::in_entry(seg, e)? {
                Ok(rec) => format!("{name}: {rec}"),
                Err(why) => format!("{name}: damaged record ({why})"),
            })
        })
        .collect()
}

/// `name (kind)` for each collection, for the table.
fn short(collections: &[String]) -> String {
    let names: Vec<&str> = collections
        .iter()
        .map(
            |c| match c.split_once(" of ").or_else(|| c.split_once(',')) {
                Some((head, _)) => head,
                None => c.as_str(),
            },
        )
        .collect();
    names.join(", ")
}

fn human(rows: &[Row]) -> String {
    if rows.is_empty() {
        return "no relshm segments\n".into();
    }
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            vec![
                r.name.clone(),
                bytes(r.size),
                r.used.map_or("-".into(), bytes),
                if r.other_owner {
                    format!("{} (other user)", r.uid)
                } else {
                    r.uid.to_string()
                },
                format!("{:04o}", r.mode),
                format!("{} ({} live)", r.attached, r.live),
                short(&r.collections),
                r.error.clone().unwrap_or_default(),
            ]
        })
        .collect();
    table(
        &[
            "name",
            "size",
            "used",
            "uid",
            "mode",
            "attached",
            "collections",
            "",
        ],
        &cells,
    )
}

/// Runs `relshm ls`.
pub fn run(args: &LsArgs) -> Result<u8, CliError> {
    let found = target::scan()?;
    let mut rows: Vec<Row> = found.segments.iter().map(row).collect();
    rows.extend(found.unreadable.iter().map(unreadable));
    rows.sort_by(|a, b| a.name.cmp(&b.name));
    output::emit(args.json, rows.as_slice(), human);
    Ok(0)
}
