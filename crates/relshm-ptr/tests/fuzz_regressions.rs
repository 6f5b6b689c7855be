//! Replays the fuzz targets' saved inputs (crash reproducers named `crash-*`, and corpus
//! seeds named `seed-*`) under `cargo test`, plus a few hundred deterministic random
//! inputs per target, so CI checks the fuzzed properties without a fuzzer.
//!
//! A crash found by `cargo +nightly fuzz run T` is kept by copying
//! `fuzz/artifacts/T/crash-*` into `tests/fuzz-regressions/T/`.

#[path = "../../../fuzz/src/lib.rs"]
mod checks;

use std::path::Path;

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
