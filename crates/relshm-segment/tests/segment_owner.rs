//! Owners, not only modes: a segment another user created under the name (or path) we
//! open is refused unless the caller names that owner, and creation refuses a size too
//! small for the segment's own header.

mod segment_support;

use std::sync::atomic::{AtomicU64, Ordering};

use relshm_segment::{
    CreateOptions, MIN_SEGMENT_SIZE, OpenOptions, ReadOnlySegment, Segment, SegmentError,
};
use relshm_testkit::{CANNOT_BECOME_USER, Exit, NOBODY, fork_child_as, is_root};
use segment_support::{LIMIT, ShmName, TempPath};

/// Held by every test of this file: a child forked while another test thread is inside
/// a lock (a `OnceLock` being initialised, say) would wait for it forever.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn one_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner())
}

/// Runs `f` in a forked child as uid/gid [`NOBODY`].
fn as_nobody(f: impl FnOnce() -> i32) -> Exit {
    fork_child_as(NOBODY, f).wait_timeout(LIMIT)
}

/// The value the squatter left under "mark".
fn mark(seg: &Segment) -> u64 {
    let dir = seg.directory().unwrap();
    dir.find::<AtomicU64>("mark")
        .unwrap()
        .get()
        .load(Ordering::Acquire)
}

fn assert_foreign(err: SegmentError, name: &str) {
    let text = err.to_string();
    match err {
        SegmentError::ForeignOwner {
            name: n,
            owner,
            euid,
            allowed,
        } => {
            assert!(n.contains(name), "{n:?} does not name {name:?}");
            assert_eq!(owner, NOBODY);
            assert_eq!(euid, rustix::process::geteuid().as_raw());
            assert_eq!(allowed, None);
        }
        other => panic!("expected ForeignOwner, got {other:?}: {text}"),
    }
    assert!(text.contains(name), "{text}");
    assert!(text.contains("owned by uid 65534"), "{text}");
    assert!(text.contains("allow_owner(65534)"), "{text}");
}

#[test]
fn segment_squatted_by_another_uid_is_refused_unless_allowed() {
    let _serial = one_at_a_time();
    if !is_root() {
        // Without root no process here can own an object as another user: only the
        // default (own uid) path can be checked.
        eprintln!(
            "SKIPPED the squatter part: it needs root to run a squatter as uid {NOBODY}; \
             checking only that a segment of our own uid opens"
        );
        let name = ShmName::new("own");
        let _seg = Segment::create_named(&name.0, &CreateOptions::new(64 << 10)).unwrap();
        Segment::open_named(&name.0, &OpenOptions::new()).unwrap();
        return;
    }
    let name = ShmName::new("squat");
    let path = TempPath::new("squat");
    // World-readable and -writable, so the mode check cannot be what refuses it.
    let mode = 0o666;
    let squat = as_nobody(|| {
        let opts = CreateOptions::new(64 << 10).mode(mode);
        let (Ok(seg), Ok(file)) = (
            Segment::create_named(&name.0, &opts),
            Segment::create_file(&path.0, &opts),
        ) else {
            return 1;
        };
        let marked = |s: &Segment, v| {
            s.directory()
                .and_then(|d| Ok(d.construct("mark", AtomicU64::new(v)).map(drop)?))
        };
        i32::from(marked(&seg, 0x5a).is_err() || marked(&file, 0x5b).is_err())
    });
    assert_ne!(
        squat,
        Exit::Code(CANNOT_BECOME_USER),
        "running as root but cannot become uid {NOBODY}"
    );
    assert_eq!(
        squat,
        Exit::Code(0),
        "the squatter could not create its segments"
    );

    // Refused by default, read-write and read-only, open and open-or-create.
    let create = CreateOptions::new(64 << 10).mode(mode);
    let defaults = OpenOptions::new();
    assert_foreign(
        Segment::open_named(&name.0, &defaults).unwrap_err(),
        &name.0,
    );
    assert_foreign(
        Segment::open_or_create_named(&name.0, &create).unwrap_err(),
        &name.0,
    );
    assert_foreign(
        ReadOnlySegment::open_named(&name.0, &defaults).unwrap_err(),
        &name.0,
    );
    let file = path.0.display().to_string();
    assert_foreign(Segment::open_file(&path.0, &defaults).unwrap_err(), &file);
    assert_foreign(
        Segment::open_or_create_file(&path.0, &create).unwrap_err(),
        &file,
    );
    assert_foreign(
        ReadOnlySegment::open_file(&path.0, &defaults).unwrap_err(),
        &file,
    );
    // Allowing some other uid is not allowing this one.
    let err = Segment::open_named(&name.0, &OpenOptions::new().allow_owner(1234)).unwrap_err();
    assert!(
        matches!(
            err,
            SegmentError::ForeignOwner {
                owner: NOBODY,
                allowed: Some(1234),
                ..
            }
        ),
        "{err:?}"
    );
    assert!(
        err.to_string().contains("nor the allowed owner uid 1234"),
        "{err}"
    );

    // Opted in by naming the owner: the squatter's segments open, with its contents.
    let allow = OpenOptions::new().allow_owner(NOBODY);
    let seg = Segment::open_named(&name.0, &allow).unwrap();
    assert_eq!(mark(&seg), 0x5a);
    let again =
        Segment::open_or_create_named(&name.0, &create.clone().allow_owner(NOBODY)).unwrap();
    assert_eq!(again.segment_id(), seg.segment_id());
    ReadOnlySegment::open_named(&name.0, &allow).unwrap();
    let f = Segment::open_file(&path.0, &allow).unwrap();
    assert_eq!(mark(&f), 0x5b);
    Segment::open_or_create_file(&path.0, &create.allow_owner(NOBODY)).unwrap();
}

#[test]
fn too_small_for_the_header_says_so() {
    let _serial = one_at_a_time();
    for size in [0, 1, 4096, MIN_SEGMENT_SIZE / 2] {
        let err = Segment::create_unnamed(&CreateOptions::new(size)).unwrap_err();
        assert_eq!(
            err,
            SegmentError::TooSmall {
                requested: size,
                min: MIN_SEGMENT_SIZE
            },
            "size {size}"
        );
        let text = err.to_string();
        assert!(text.contains("too small to hold its header"), "{text}");
        assert!(!text.contains("corrupt"), "{text}");
    }
    // The named kinds refuse it the same way and leave no half-made object behind.
    let name = ShmName::new("small");
    assert!(matches!(
        Segment::create_named(&name.0, &CreateOptions::new(0)),
        Err(SegmentError::TooSmall { .. })
    ));
    assert!(matches!(
        Segment::open_named(&name.0, &OpenOptions::new()),
        Err(SegmentError::NotFound { .. })
    ));
    // The minimum itself is enough for a working heap and directory.
    let seg = Segment::create_unnamed(&CreateOptions::new(MIN_SEGMENT_SIZE)).unwrap();
    let off = seg.alloc(64, 8).unwrap();
    seg.free(off).unwrap();
    seg.directory().unwrap();
}
