//! Helpers shared by the segment tests.
#![allow(dead_code)]

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use relshm_segment::{Region, Segment};

/// Generous deadline for children on a loaded machine.
pub const LIMIT: Duration = Duration::from_secs(60);

/// A unique shared-memory name, removed on drop.
pub struct ShmName(pub String);

impl ShmName {
    pub fn new(tag: &str) -> Self {
        static N: AtomicU64 = AtomicU64::new(0);
        Self(format!(
            "relshm-test-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ))
    }
}

impl Drop for ShmName {
    fn drop(&mut self) {
        let _ = Segment::remove_named(&self.0);
    }
}

/// A unique temporary file path, removed on drop.
pub struct TempPath(pub std::path::PathBuf);

impl TempPath {
    pub fn new(tag: &str) -> Self {
        static N: AtomicU64 = AtomicU64::new(0);
        let p = std::env::temp_dir().join(format!(
            "relshm-test-{tag}-{}-{}.seg",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_file(&p);
        Self(p)
    }
}

impl Drop for TempPath {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// The u64 at `offset` of a region, as an atomic.
pub fn word(region: Region, offset: u64) -> &'static AtomicU64 {
    let p = region
        .resolve_as::<u64>(offset)
        .expect("offset inside the region");
    // SAFETY: the tests keep the segment mapped while they use the word, the address is
    // checked and aligned, and shared words are only accessed atomically.
    unsafe { AtomicU64::from_ptr(p.as_ptr()) }
}

/// First offset after the header that tests may scribble on.
pub const DATA: u64 = 4096;
