//! The acceptance test of "an API an application can embed", written only against the
//! facade's prelude: an application keeps a segment and three collections (a map, a list
//! and a typed queue) in its own struct, moves it into a thread, and two exec'ed processes
//! (mapping the segment at addresses of their own) build the same struct by name. Every
//! participant counts, pushes jobs and sends messages with known ids; the merged result is
//! checked exactly: every count, every job, every message once.

use relshm::prelude::*;
use relshm_testkit::exec;
use std::collections::BTreeMap;
use std::time::Duration;

/// The test's full name, for the exec'ed children.
const TEST: &str = "an_app_struct_is_shared_by_threads_and_exec_ed_processes";
/// Participants: the thread that owns the parent's `App`, the parent's main thread, and
/// two exec'ed children.
const PARTICIPANTS: u64 = 4;
/// Work items per participant.
const ITEMS: u64 = 300;
/// Keys every participant increments (each once per item, round robin).
const KEYS: u64 = 10;

/// What an application keeps: the segment and its collections, all owned, all `'static`.
struct App {
    seg: Segment,
    counts: Map<u64, u64>,
    jobs: List<u64>,
    inbox: Queue<u64>,
}

impl App {
    /// Makes the collections in a new segment.
    fn create(seg: Segment) -> Result<Self, Error> {
        Ok(App {
            counts: seg.create_map("counts")?,
            jobs: seg.create_list("jobs")?,
            inbox: seg.create_queue("inbox", QueueConfig::with_capacity(2048))?,
            seg,
        })
    }

    /// Finds them in a segment another process (or thread) made.
    fn open(seg: Segment) -> Result<Self, Error> {
        Ok(App {
            counts: seg.open_map("counts")?,
            jobs: seg.open_list("jobs")?,
            inbox: seg.open_queue("inbox")?,
            seg,
        })
    }

    /// Participant `who`'s share of the work: counts, jobs and messages with known ids.
    fn work(&self, who: u64) -> Result<(), Error> {
        let tx = self.inbox.sender()?;
        for i in 0..ITEMS {
            self.counts.upsert(i % KEYS, 0, |c| *c += 1)?;
            self.jobs.push_back(job(who, i))?;
            tx.send_timeout(&message(who, i), Duration::from_secs(10))?;
        }
        // A per-participant key: who saw how much, checked against the segment's size.
        self.counts.insert(1000 + who, self.seg.size())?;
        Ok(())
    }
}

type Error = Box<dyn std::error::Error + Send + Sync>;

fn job(who: u64, i: u64) -> u64 {
    who * 1_000_000 + i
}

fn message(who: u64, i: u64) -> u64 {
    (who << 32) | i
}

/// An exec'ed child: maps the segment by name (at an address of its own, asserted), builds
/// its own `App` and does its share.
fn child(arg: &str) -> Result<(), Error> {
    let mut parts = arg.split(',');
    let (name, parent_base, who) = (
        parts.next().ok_or("no segment name")?,
        parts.next().ok_or("no parent base")?.parse::<usize>()?,
        parts.next().ok_or("no participant id")?.parse::<u64>()?,
    );
    let seg = Segment::open_named(name, &OpenOptions::new())?;
    assert_ne!(
        seg.base().as_ptr() as usize,
        parent_base,
        "the child must map the segment at another address than the parent"
    );
    let app = App::open(seg)?;
    // The types are checked on open: the inbox is a queue of u64, not of u32.
    assert!(matches!(
        app.seg.open_queue::<u32>("inbox"),
        Err(CollectionError::RecordMismatch { .. })
    ));
    app.work(who)
}

#[test]
fn an_app_struct_is_shared_by_threads_and_exec_ed_processes() {
    if let Some(role) = exec::role() {
        assert_eq!(role, "child");
        child(&exec::arg()).unwrap();
        return;
    }
    let name = format!("relshm-app-{}", std::process::id());
    let seg = Segment::create_named(&name, &CreateOptions::new(1 << 20).max_size(64 << 20))
        .expect("create the segment");
    let base = seg.base().as_ptr() as usize;
    let app = App::create(seg.clone()).expect("create the collections");
    // Taken before anyone sends, kept to the end: senders are never disconnected.
    let rx = app.inbox.receiver().expect("receiver");

    let children: Vec<_> = (2..PARTICIPANTS)
        .map(|who| exec::spawn(TEST, "child", &format!("{name},{base},{who}")))
        .collect();
    let worker = std::thread::spawn(move || -> Result<App, Error> {
        app.work(0)?;
        Ok(app)
    });
    let mine = App::open(seg.clone()).expect("open the collections");
    mine.work(1).expect("the main thread's work");
    let app = worker
        .join()
        .expect("the thread panicked")
        .expect("the thread's work");
    let ok: Vec<bool> = children
        .into_iter()
        .map(|c| exec::wait(c, Duration::from_secs(60)))
        .collect();
    Segment::remove_named(&name).unwrap();
    assert!(
        ok.iter().all(|&ok| ok),
        "a child failed (its panic is above): {ok:?}"
    );

    // Every message exactly once. Every sender is gone by now, so the drained queue says
    // disconnected rather than empty.
    let mut got = Vec::new();
    loop {
        match rx.try_recv() {
            Ok(m) => got.push(m),
            Err(CollectionError::Disconnected { peer: "sender" }) => break,
            Err(e) => panic!("draining the inbox: {e}"),
        }
    }
    got.sort_unstable();
    let mut want: Vec<u64> = (0..PARTICIPANTS)
        .flat_map(|who| (0..ITEMS).map(move |i| message(who, i)))
        .collect();
    want.sort_unstable();
    assert_eq!(got.len(), want.len(), "messages received");
    assert_eq!(got, want);
    assert!(app.inbox.is_empty());

    // Every job exactly once, each participant's in its own order.
    let jobs = app.jobs.to_vec().unwrap();
    for who in 0..PARTICIPANTS {
        let own: Vec<u64> = jobs
            .iter()
            .copied()
            .filter(|j| j / 1_000_000 == who)
            .collect();
        assert_eq!(own, (0..ITEMS).map(|i| job(who, i)).collect::<Vec<_>>());
    }
    assert_eq!(jobs.len() as u64, PARTICIPANTS * ITEMS);
    assert_eq!(app.jobs.verify().unwrap(), PARTICIPANTS * ITEMS);

    // Every count exact.
    let counts: BTreeMap<u64, u64> = app.counts.entries().unwrap().into_iter().collect();
    for k in 0..KEYS {
        assert_eq!(counts[&k], PARTICIPANTS * ITEMS / KEYS, "count of key {k}");
    }
    for who in 0..PARTICIPANTS {
        assert!(
            counts[&(1000 + who)] >= 1 << 20,
            "participant {who} saw the segment"
        );
    }
    assert_eq!(counts.len() as u64, KEYS + PARTICIPANTS);
    assert!(relshm::verify_segment(&app.seg).is_clean());
}
