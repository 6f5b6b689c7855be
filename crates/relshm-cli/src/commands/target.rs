//! Finding relshm segments: names, `/dev/shm` entries whose first bytes are relshm's
//! header magic, and opening them for inspection.
//!
//! Only objects that start with [`MAGIC`] are relshm's: everything else in `/dev/shm`
//! (other programs' shared memory) is never opened read-write, listed or removed.

use std::fs::File;
use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use relshm::segment::header::MAGIC;
use relshm::segment::{OpenOptions, ReadOnlySegment, Segment, SegmentError};

use super::output::CliError;

/// Where POSIX shared-memory objects live on Linux.
pub const SHM_DIR: &str = "/dev/shm";

/// A shared-memory object whose first eight bytes are relshm's header magic.
#[derive(Debug, Clone)]
pub struct Target {
    /// The name without the leading `/`.
    pub name: String,
    /// Its file under [`SHM_DIR`].
    pub path: PathBuf,
    /// Size of the backing object.
    pub file_size: u64,
    /// Owner uid.
    pub uid: u32,
    /// Permission bits.
    pub mode: u32,
}

/// A `/dev/shm` object this process may not read (`EACCES`): it may be a relshm segment,
/// and `relshm ls` lists it as unreadable rather than leaving it out.
#[derive(Debug, Clone)]
pub struct Unreadable {
    /// The name without the leading `/`.
    pub name: String,
    /// Size of the backing object.
    pub file_size: u64,
    /// Owner uid.
    pub uid: u32,
    /// Permission bits.
    pub mode: u32,
}

/// What [`scan`] found in [`SHM_DIR`].
#[derive(Debug, Default)]
pub struct Scan {
    /// The relshm segments, sorted by name.
    pub segments: Vec<Target>,
    /// Objects that could not be read to tell, sorted by name.
    pub unreadable: Vec<Unreadable>,
}

/// What looking at one object under [`SHM_DIR`] found.
enum Looked {
    /// A relshm segment.
    Segment(Target),
    /// Readable, and not relshm's.
    NotOurs,
    /// Reading it was refused.
    Unreadable(Unreadable),
}

/// This process's effective uid: a segment owned by any other is opened only when the
/// caller names that owner ([`OpenOptions::allow_owner`]).
pub fn euid() -> u32 {
    rustix::process::geteuid().as_raw()
}

/// Whether the file starts with relshm's magic (`Ok(false)` for shorter or other files).
fn has_magic(path: &Path) -> std::io::Result<bool> {
    let mut word = [0u8; 8];
    let mut f = File::open(path)?;
    match f.read_exact(&mut word) {
        Ok(()) => Ok(u64::from_le_bytes(word) == MAGIC),
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Ok(false),
        Err(e) => Err(e),
    }
}

fn bare(name: &str) -> Result<&str, CliError> {
    let bare = name.strip_prefix('/').unwrap_or(name);
    if bare.is_empty() || bare.contains('/') || bare == "." || bare == ".." {
        return Err(CliError::usage(format!(
            "{name:?} is not a segment name (give the name `relshm ls` shows, without '/')"
        )));
    }
    Ok(bare)
}

/// Looks up the relshm segment `name` (with or without the leading `/`).
pub fn resolve(name: &str) -> Result<Target, CliError> {
    let bare = bare(name)?;
    match look(bare)? {
        Looked::Segment(t) => Ok(t),
        Looked::NotOurs => Err(CliError::usage(format!(
            "{bare:?} is not a relshm segment (its first bytes are not relshm's header \
             magic); refusing to touch it"
        ))),
        Looked::Unreadable(u) => Err(CliError::failed(format!(
            "cannot read {}: permission denied (run as its owner, uid {})",
            Path::new(SHM_DIR).join(bare).display(),
            u.uid
        ))),
    }
}

/// Stats and reads the magic of `SHM_DIR/bare`.
fn look(bare: &str) -> Result<Looked, CliError> {
    let path = Path::new(SHM_DIR).join(bare);
    let meta = std::fs::metadata(&path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => CliError::usage(format!(
            "no shared-memory segment named {bare:?} (see `relshm ls`)"
        )),
        _ => CliError::failed(format!("cannot stat {}: {e}", path.display())),
    })?;
    if !meta.is_file() {
        return Err(CliError::usage(format!(
            "{} is not a shared-memory object",
            path.display()
        )));
    }
    match has_magic(&path) {
        Ok(true) => Ok(Looked::Segment(Target {
            name: bare.to_owned(),
            path,
            file_size: meta.len(),
            uid: meta.uid(),
            mode: meta.mode() & 0o7777,
        })),
        Ok(false) => Ok(Looked::NotOurs),
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
            Ok(Looked::Unreadable(Unreadable {
                name: bare.to_owned(),
                file_size: meta.len(),
                uid: meta.uid(),
                mode: meta.mode() & 0o7777,
            }))
        }
        Err(e) => Err(CliError::failed(format!(
            "cannot read {}: {e} (run as its owner, uid {})",
            path.display(),
            meta.uid()
        ))),
    }
}

/// Every relshm segment in [`SHM_DIR`], and every object there this process may not read
/// (so cannot tell), each sorted by name; objects that are not relshm's are skipped.
pub fn scan() -> Result<Scan, CliError> {
    let dir = std::fs::read_dir(SHM_DIR)
        .map_err(|e| CliError::failed(format!("cannot list {SHM_DIR}: {e}")))?;
    let mut out = Scan::default();
    for entry in dir.flatten() {
        let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
            continue;
        };
        // An object removed between read_dir and here is simply not listed.
        match look(&name) {
            Ok(Looked::Segment(t)) => out.segments.push(t),
            Ok(Looked::Unreadable(u)) => out.unreadable.push(u),
            Ok(Looked::NotOurs) | Err(_) => {}
        }
    }
    out.segments.sort_by(|a, b| a.name.cmp(&b.name));
    out.unreadable.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// Turns a segment error into a one-line CLI error.
pub fn seg_error(name: &str, e: SegmentError) -> CliError {
    match e {
        SegmentError::NotFound { .. } => CliError::usage(format!(
            "no shared-memory segment named {name:?} (see `relshm ls`)"
        )),
        SegmentError::InvalidName { .. } => CliError::usage(format!("{name:?}: {e}")),
        other => CliError::failed(format!("segment {name:?}: {other}")),
    }
}

/// How the commands open a segment they were pointed at: whoever owns it, as found when
/// it was looked up (the commands inspect and repair other users' segments on purpose;
/// should another object take the name meanwhile, its owner is checked against this one).
fn opts(t: &Target) -> OpenOptions {
    OpenOptions::new().allow_owner(t.uid)
}

/// Maps the segment read-write (the heap and directory take their locks even to read).
/// It registers in the attach table for as long as the command runs.
pub fn open_rw(t: &Target) -> Result<Segment, CliError> {
    Segment::open_named(&t.name, &opts(t)).map_err(|e| seg_error(&t.name, e))
}

/// Maps the segment read-only (header and attach table only; works without write access).
pub fn open_ro(t: &Target) -> Result<ReadOnlySegment, CliError> {
    ReadOnlySegment::open_named(&t.name, &opts(t)).map_err(|e| seg_error(&t.name, e))
}
