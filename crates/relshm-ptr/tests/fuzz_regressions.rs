//! Replays the fuzz targets' saved inputs (crash reproducers named `crash-*`, and corpus
//! seeds named `seed-*`) under `cargo test`, plus a few hundred deterministic random
//! inputs per target, so CI checks the fuzzed properties without a fuzzer.
//!
//! A crash found by `cargo +nightly fuzz run T` is kept by copying
//! `fuzz/artifacts/T/crash-*` into `tests/fuzz-regressions/T/`.

#[path = "../../../fuzz/src/lib.rs"]
mod checks;

use std::alloc::{GlobalAlloc, Layout, System};
use std::path::Path;

/// The system allocator, failing any request over [`CAP`] (the process then aborts with
/// "memory allocation of N bytes failed"): the images are at most 256 KiB, so only a
/// length read from them can ask for more, which must be an `Err` instead. libFuzzer's
/// `-malloc_limit_mb` checks the same under `cargo fuzz`.
struct Capped;

const CAP: usize = 64 << 20;

// SAFETY: forwards to `System`, or fails the allocation by returning null (allowed by
// the `GlobalAlloc` contract); never unwinds.
unsafe impl GlobalAlloc for Capped {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if layout.size() > CAP {
            return std::ptr::null_mut();
        }
        // SAFETY: forwarded: the caller's layout has a non-zero size.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded: `ptr` came from `alloc` above, i.e. from `System`.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOC: Capped = Capped;

fn replay(target: &str, check: fn(&[u8])) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fuzz-regressions")
        .join(target);
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let data = std::fs::read(&path).unwrap();
        let r = std::panic::catch_unwind(|| check(&data));
        assert!(r.is_ok(), "{target}: input {} fails", path.display());
        n += 1;
    }
    assert!(n > 0, "no saved inputs in {}", dir.display());
    let mut rng = fastrand::Rng::with_seed(0x5eed);
    for i in 0..300 {
        let len = rng.usize(0..600);
        let data: Vec<u8> = (0..len).map(|_| rng.u8(..)).collect();
        let r = std::panic::catch_unwind(|| check(&data));
        assert!(r.is_ok(), "{target}: random input {i} fails: {data:?}");
    }
}

#[test]
fn swizzle_roundtrip_inputs() {
    replay("swizzle_roundtrip", checks::swizzle_roundtrip);
}

#[test]
fn translate_roundtrip_inputs() {
    replay("translate_roundtrip", checks::translate_roundtrip);
}

#[test]
fn untrusted_image_inputs() {
    replay("untrusted_image", checks::untrusted_image);
}
