//! Corrupted images: random bytes, bit flips, truncation and hostile-but-consistent
//! headers, fed to `Header::validate` and to the file-backed open path. Every one must
//! give `Err` (or, where the mutation leaves a valid header, a segment that works), never
//! a crash or a hang.

mod segment_support;

use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use relshm_segment::{
    CreateOptions, Header, OpenOptions, ReadOnlySegment, Segment, SegmentError, page_size,
};
use segment_support::TempPath;
use zerocopy::{FromBytes, IntoBytes};

const SIZE: u64 = 16 << 10;
/// Bytes of the header that are immutable and covered by magic/version/fingerprint/checksum.
const CHECKED: usize = core::mem::offset_of!(Header, size);

fn valid_image(path: &std::path::Path) -> Vec<u8> {
    let seg = Segment::create_file(path, &CreateOptions::new(SIZE).max_size(1 << 20)).unwrap();
    seg.flush().unwrap();
    drop(seg);
    let bytes = std::fs::read(path).unwrap();
    std::fs::remove_file(path).unwrap();
    bytes
}

/// Opens `image` as a file-backed segment, read-write and read-only.
fn open_image(path: &std::path::Path, image: &[u8]) -> [Result<u64, SegmentError>; 2] {
    std::fs::write(path, image).unwrap();
    let opts = OpenOptions::new().init_timeout(Duration::ZERO);
    let rw = Segment::open_file(path, &opts).map(|s| {
        // A header that passed validation must describe bytes that really are mapped.
        let r = s.region();
        assert!(r.len() <= image.len() as u64);
        assert!(s.size() <= s.max_size());
        let last = r.resolve_as::<u64>(r.len() - 8).unwrap();
        // SAFETY: resolved inside the mapping; nobody else writes this private test file.
        unsafe { last.as_ptr().read_volatile() };
        r.len()
    });
    let ro = ReadOnlySegment::open_file(path, &opts).map(|s| {
        s.load_u64(s.len() - 8).unwrap();
        s.len()
    });
    [rw, ro]
}

#[test]
fn ten_thousand_mutated_images() {
    let path = TempPath::new("corrupt");
    let good = valid_image(&path.0);
    assert!(open_image(&path.0, &good).iter().all(Result::is_ok));
    let page = page_size();
    let mut rng = StdRng::seed_from_u64(0x5eed_0fc0_ffee);
    let mut errs = 0u64;
    let mut oks = 0u64;
    for round in 0..10_000u32 {
        let (image, must_fail) = match round % 5 {
            0 => {
                let len = rng.gen_range(0..=SIZE as usize);
                (
                    (0..len).map(|_| rng.r#gen::<u8>()).collect::<Vec<u8>>(),
                    true,
                )
            }
            1 => {
                let mut img = good.clone();
                for _ in 0..rng.gen_range(1..=4) {
                    let bit = rng.gen_range(0..CHECKED * 8);
                    img[bit / 8] ^= 1 << (bit % 8);
                }
                (img, true)
            }
            2 => {
                let len = rng.gen_range(1..SIZE as usize);
                (good[..len].to_vec(), true)
            }
            3 => {
                let mut img = good.clone();
                for _ in 0..rng.gen_range(1..=8) {
                    let bit = rng.gen_range(0..Header::END * 8);
                    img[bit / 8] ^= 1 << (bit % 8);
                }
                (img, false)
            }
            _ => {
                // A hostile writer that keeps the checksum consistent.
                let mut h = Header::read_from_prefix(&good).unwrap().0;
                let pick = |rng: &mut StdRng| match rng.gen_range(0..4) {
                    0 => rng.r#gen::<u64>(),
                    1 => rng.gen_range(0..64) * page,
                    2 => 1 << rng.gen_range(0..64),
                    _ => rng.gen_range(0..SIZE * 2),
                };
                for _ in 0..rng.gen_range(1..=3) {
                    match rng.gen_range(0..7) {
                        0 => h.size = pick(&mut rng),
                        1 => h.max_size = pick(&mut rng),
                        2 => h.flags = rng.gen_range(0..4),
                        3 => h.fixed_base = pick(&mut rng),
                        4 => h.heap_offset = pick(&mut rng),
                        5 => h.directory_offset = pick(&mut rng),
                        _ => h.attach_capacity = rng.r#gen(),
                    }
                }
                h.seal();
                let mut img = good.clone();
                img[..Header::END].copy_from_slice(h.as_bytes());
                (img, false)
            }
        };
        let direct = Header::validate(&image, image.len() as u64, page);
        let opened = open_image(&path.0, &image);
        if must_fail {
            assert!(direct.is_err(), "round {round}: mutated image validated");
            for r in &opened {
                assert!(r.is_err(), "round {round}: mutated image opened");
            }
        }
        for r in opened.iter() {
            match r {
                Ok(_) => oks += 1,
                Err(e) => {
                    errs += 1;
                    // Every error explains itself.
                    assert!(e.to_string().len() > 20, "{e}");
                }
            }
        }
    }
    // Most mutations are refused, a few hostile ones are valid segments.
    assert!(errs > 15_000, "errs {errs}, oks {oks}");
    assert!(
        oks > 100,
        "the valid-after-mutation path was exercised: oks {oks}"
    );
    eprintln!("corrupt images: {errs} refused, {oks} still valid");
}
