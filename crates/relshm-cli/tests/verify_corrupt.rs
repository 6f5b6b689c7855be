//! `relshm verify` over corrupted images: whenever the library's own `Map::verify` finds a
//! map damaged, the command exits non-zero; a map named by a bare offset (made before
//! typed collection records) is "unchecked" (exit 3), never clean; a clean recorded one
//! exits 0, whatever its types.
//!
//! The corrupted copies are seeded: set `RELSHM_VERIFY_COPIES` for more of them (the
//! default keeps CI fast) and `RELSHM_VERIFY_BIN` to measure another build's binary.

mod inspect_common;

use std::ops::Range;
use std::process::Command;

use inspect_common::*;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use relshm::collections::arena::Arena;
use relshm::collections::map::{Map, STRIPES};
use relshm::collections::record::CollectionRecord;
use relshm::collections::verify::offsets::{MAP_RESIZE_LOCK, MAP_STRIPES, STRIPE_LEN, STRIPE_SIZE};
use relshm::ptr::Offset;
use relshm::segment::{CreateOptions, OpenOptions, Segment};

/// The map under test.
type Known<'a> = Map<u64, [u8; 24], Offset>;
/// Another value shape.
type Other<'a> = Map<u64, [u8; 48], Offset>;

const ENTRIES: u64 = 3000;
/// Exit status of `relshm verify` for "nothing damaged, something unchecked".
const EXIT_UNCHECKED: i32 = 3;

fn verify_status(name: &str) -> i32 {
    let bin = std::env::var("RELSHM_VERIFY_BIN")
        .ok()
        .filter(|b| !b.is_empty())
        .unwrap_or_else(|| env!("CARGO_BIN_EXE_relshm").to_owned());
    let o = Command::new(bin)
        .args(["verify", name])
        .output()
        .expect("running relshm verify");
    o.status
        .code()
        .expect("relshm verify was killed by a signal")
}

/// A segment named `name` holding a map `map` of `ENTRIES` entries; returns the byte
/// ranges the map owns that a corruption may hit (its allocations, less the lock words,
/// which a damaged copy could make every locker wait on, and less the directory's record of
/// the map: `typed_records.rs` checks records of its own).
fn build_known(name: &str) -> (Segment, Vec<Range<u64>>) {
    let seg = Segment::create_named(name, &CreateOptions::new(4 << 20)).unwrap();
    let heap = seg.heap().unwrap();
    let before = heap.allocations().unwrap();
    let arena = Arena::<Offset>::new(&seg).unwrap();
    let map = Known::create(&arena).unwrap();
    for k in 0..ENTRIES {
        let mut v = [0u8; 24];
        v[..8].copy_from_slice(&k.to_le_bytes());
        map.insert(k * 7919, v).unwrap();
    }
    assert_eq!(map.verify().unwrap(), ENTRIES);
    let m = map.offset();
    let mut targets = Vec::new();
    for off in heap.allocations().unwrap() {
        if before.contains(&off) {
            continue;
        }
        targets.push(off..off + heap.usable_size(off).unwrap());
    }
    // The header's lock words: the resize lock, then each stripe's lock.
    let stripe_locks = (0..STRIPES as u64).map(|i| {
        let s = m + MAP_STRIPES + i * STRIPE_SIZE;
        s..s + STRIPE_LEN
    });
    let locks: Vec<Range<u64>> = core::iter::once(m + MAP_RESIZE_LOCK..m + MAP_STRIPES)
        .chain(stripe_locks)
        .collect();
    let targets = targets.into_iter().flat_map(|r| minus(r, &locks)).collect();
    // Recorded last, so its 8 bytes are not among the targets.
    seg.directory()
        .unwrap()
        .construct(
            "map",
            CollectionRecord::map::<u64, [u8; 24], Offset>().at(m),
        )
        .unwrap();
    (seg, targets)
}

/// `r` without the `holes`.
fn minus(r: Range<u64>, holes: &[Range<u64>]) -> Vec<Range<u64>> {
    let mut out = vec![r];
    for h in holes {
        out = out
            .into_iter()
            .flat_map(|r| {
                [r.start..r.end.min(h.start), r.start.max(h.end)..r.end]
                    .into_iter()
                    .filter(|p| p.start < p.end)
            })
            .collect();
    }
    out
}

/// The offset at `pick` bytes into the concatenated `targets`.
fn nth_byte(targets: &[Range<u64>], mut pick: u64) -> u64 {
    for r in targets {
        let len = r.end - r.start;
        if pick < len {
            return r.start + pick;
        }
        pick -= len;
    }
    unreachable!("pick beyond the targets")
}

/// Damages 1 to 3 places of `image` inside `targets`, the way bad writes do: a flipped
/// bit, a random byte, a random word, or a word set to a small value or an offset.
fn corrupt(image: &mut [u8], targets: &[Range<u64>], rng: &mut StdRng) {
    let total: u64 = targets.iter().map(|r| r.end - r.start).sum();
    for _ in 0..rng.gen_range(1..=3) {
        let at = nth_byte(targets, rng.gen_range(0..total)) as usize;
        let word = at & !7;
        match rng.gen_range(0..4) {
            0 => image[at] ^= 1 << rng.gen_range(0..8),
            1 => image[at] = rng.r#gen(),
            2 => image[word..word + 8].copy_from_slice(&rng.r#gen::<u64>().to_le_bytes()),
            _ => {
                let small = match rng.gen_range(0..3) {
                    0 => 0,
                    1 => rng.gen_range(1..64),
                    _ => nth_byte(targets, rng.gen_range(0..total)) & !7,
                };
                image[word..word + 8].copy_from_slice(&small.to_le_bytes());
            }
        }
    }
}

/// What the library itself says about the map in the segment `name`.
fn library_says_damaged(name: &str) -> bool {
    let Ok(seg) = Segment::open_named(name, &OpenOptions::new()) else {
        return true;
    };
    let Ok(arena) = Arena::<Offset>::new(&seg) else {
        return true;
    };
    Known::open_named(&arena, "map")
        .and_then(|m| m.verify())
        .is_err()
}

#[test]
fn whenever_the_map_finds_damage_relshm_verify_exits_non_zero() {
    let copies: u64 = std::env::var("RELSHM_VERIFY_COPIES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(150);
    let name = unique_name("vcorrupt");
    let _cleanup = Cleanup(name.clone());
    let (seg, targets) = build_known(&name);
    assert_eq!(
        verify_status(&name),
        0,
        "the intact segment must verify clean"
    );
    let image = std::fs::read(format!("/dev/shm/{name}")).unwrap();
    drop(seg);

    let copy = unique_name("vcorrupt-copy");
    let _cleanup_copy = Cleanup(copy.clone());
    let (mut lib_damaged, mut cli_flagged, mut missed) = (0, 0, Vec::new());
    let mut by_status = std::collections::BTreeMap::<i32, u64>::new();
    for seed in 0..copies {
        let mut rng = StdRng::seed_from_u64(seed);
        let mut bytes = image.clone();
        corrupt(&mut bytes, &targets, &mut rng);
        std::fs::write(format!("/dev/shm/{copy}"), &bytes).unwrap();
        // The command first: the library's check may repair what a dead holder left.
        let status = verify_status(&copy);
        let damaged = library_says_damaged(&copy);
        *by_status.entry(status).or_default() += 1;
        lib_damaged += u64::from(damaged);
        cli_flagged += u64::from(status != 0);
        if damaged && status == 0 {
            missed.push(seed);
        }
    }
    eprintln!(
        "{copies} corrupted copies: Map::verify() flagged {lib_damaged}, relshm verify exited \
         non-zero for {cli_flagged} (by status: {by_status:?}), missed {}",
        missed.len()
    );
    assert!(
        missed.is_empty(),
        "relshm verify exited 0 for copies the library finds damaged (seeds {missed:?})"
    );
    // The corruption must be able to fail the test: some copies are damaged.
    assert!(
        lib_damaged > 0,
        "no copy was damaged: the test proves nothing"
    );
}

#[test]
fn an_unchecked_map_is_never_clean() {
    let name = unique_name("vunknown");
    let _cleanup = Cleanup(name.clone());
    let seg = Segment::create_named(&name, &CreateOptions::new(1 << 20)).unwrap();
    let arena = Arena::<Offset>::new(&seg).unwrap();
    let known = Known::create_named(&arena, "known").unwrap();
    known.insert(1, [1; 24]).unwrap();
    let other = Other::create_named(&arena, "other").unwrap();
    other.insert(1, [2; 48]).unwrap();
    assert_eq!(verify_status(&name), 0);

    // Named the way segments were before typed records: a bare offset.
    let unknown = Other::create(&arena).unwrap();
    unknown.insert(1, [2; 48]).unwrap();
    assert_eq!(unknown.verify().unwrap(), 1);
    seg.directory()
        .unwrap()
        .construct(
            "unknown",
            core::sync::atomic::AtomicU64::new(unknown.offset()),
        )
        .unwrap();
    let v = json(&["verify", &name], EXIT_UNCHECKED);
    assert_eq!(v["clean"], false, "{v:#}");
    assert_eq!(
        (v["damaged"].clone(), v["unchecked"].clone()),
        (0.into(), 1.into())
    );
    let status = |what: &str| check(&v, what)["status"].clone();
    assert_eq!(status("object known"), "ok");
    assert_eq!(status("object other"), "ok");
    assert_eq!(status("object unknown"), "unchecked");
    let o = relshm(&["verify", &name]);
    let out = stdout(&o);
    assert_eq!(o.status.code(), Some(EXIT_UNCHECKED));
    assert!(
        out.lines()
            .any(|l| l.starts_with("unchecked") && l.contains("object unknown: ")),
        "{out}"
    );
    assert!(out.contains("NOT CLEAN"), "{out}");
    assert!(
        stderr(&o).contains(&format!("relshm: {name}: object unknown: not checked: ")),
        "{}",
        stderr(&o)
    );
    assert!(
        stderr(&o).contains("predates typed collection records"),
        "{}",
        stderr(&o)
    );

    // Damage wins over unchecked: exit 1.
    known.insert(2, [2; 24]).unwrap();
    let stripe_len = |i: u64| known.offset() + MAP_STRIPES + i * STRIPE_SIZE + STRIPE_LEN;
    let p = seg.region().resolve_as::<u64>(stripe_len(1)).unwrap();
    // SAFETY: in bounds and aligned (resolve_as); shared words are accessed atomically.
    unsafe { core::sync::atomic::AtomicU64::from_ptr(p.as_ptr()) }
        .fetch_add(5, core::sync::atomic::Ordering::AcqRel);
    assert!(known.verify().is_err());
    assert_eq!(verify_status(&name), 1);
}
