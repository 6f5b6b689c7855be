//! `relshm compare-child`: the second process of every run (see [`super::protocol`]).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use relshm::collections::arena::Arena;
use relshm::ptr::{BaseRel, Offset, Raw, Repr, SegRel, Swizzle};
use relshm::segment::{OpenOptions, Placement, Segment};

use super::image::SharedArena;
use super::protocol::{
    CHILD_BASE, CHILD_HINT, COPY_ROOT, ChildReport, GO, MUTATE_ROUNDS, Pace, READY, ROOT, SLOTS,
    SLOTS_NAME, wait_for,
};
use super::strategy::Strategy;
use super::workload::{Coll, Structure, checksum};

/// Arguments of the hidden child subcommand (written by the parent).
#[derive(clap::Args)]
pub struct ChildArgs {
    /// The segment to open.
    #[arg(long)]
    segment: String,
    /// The structure to read.
    #[arg(long, value_enum)]
    structure: Structure,
    /// The pointer strategy.
    #[arg(long, value_enum)]
    strategy: Strategy,
    /// Elements in the structure.
    #[arg(long)]
    n: u64,
    /// Milliseconds to spend on repeated read passes.
    #[arg(long)]
    budget_ms: u64,
    /// At most this many repeated read passes.
    #[arg(long)]
    max_reps: u32,
    /// Contended mutations to make (0: none).
    #[arg(long)]
    mutate_ops: u64,
}

impl ChildArgs {
    /// The argument list that makes the child run with `self`'s values.
    #[allow(clippy::too_many_arguments)]
    pub fn command_line(
        segment: &str,
        structure: Structure,
        strategy: Strategy,
        n: u64,
        budget: Duration,
        max_reps: u32,
        mutate_ops: u64,
    ) -> Vec<String> {
        vec![
            "compare-child".into(),
            "--segment".into(),
            segment.into(),
            "--structure".into(),
            structure.name().into(),
            "--strategy".into(),
            strategy.name().into(),
            "--n".into(),
            n.to_string(),
            "--budget-ms".into(),
            budget.as_millis().to_string(),
            "--max-reps".into(),
            max_reps.to_string(),
            "--mutate-ops".into(),
            mutate_ops.to_string(),
        ]
    }
}

/// Runs the child: prints its [`ChildReport`] as one JSON line.
pub fn run(args: &ChildArgs) -> anyhow::Result<()> {
    let seg = Segment::open_named(
        &args.segment,
        &OpenOptions::new().placement(Placement::Hint(CHILD_HINT)),
    )
    .with_context(|| format!("opening segment {}", args.segment))?;
    let dir = seg.directory()?;
    let slots = dir.find::<[AtomicU64; SLOTS]>(SLOTS_NAME)?;
    let slots = slots.get();
    let base = seg.base().as_ptr() as u64;
    slots[CHILD_BASE].store(base, Ordering::Release);
    wait_for(
        &slots[GO],
        1,
        "the parent's go-ahead",
        Pace::Patient,
        || Ok(()),
    )?;
    let report = match args.strategy {
        Strategy::FixedRaw => measure(args, slots, base, || Raw::arena(&seg))?,
        Strategy::Offset => measure(args, slots, base, || Offset::arena(&seg))?,
        Strategy::BaseRel => measure(args, slots, base, || BaseRel::arena(&seg))?,
        Strategy::SegRel => measure(args, slots, base, || SegRel::arena(&seg))?,
        Strategy::Swizzle => {
            let mut swizzled = 0;
            let mut written = Vec::new();
            let mut r = measure_with(
                args,
                slots,
                base,
                ROOT,
                || Ok(Arena::<Swizzle>::private(&seg)?),
                |a| {
                    swizzled = a.swizzled_words() as u64;
                    written = a.written_pages();
                },
            )?;
            r.swizzled = Some(swizzled);
            let (t, touched) = super::limits::first_touch(&seg, &written)?;
            r.first_touch = Some((t.as_nanos() as u64, touched.pages, touched.written));
            r
        }
        Strategy::CopyTime => measure_with(
            args,
            slots,
            base,
            COPY_ROOT,
            // SAFETY: `seg` stays mapped (and writable) until this function returns, and
            // the parent wrote the copy for this mapping's base before raising GO.
            || Ok(unsafe { Arena::<Raw>::translated(seg.region(), base)? }),
            |_| {},
        )?,
    };
    println!("{}", serde_json::to_string(&report)?);
    Ok(())
}

fn measure<R: Repr>(
    args: &ChildArgs,
    slots: &[AtomicU64; SLOTS],
    base: u64,
    make: impl FnOnce() -> anyhow::Result<Arena<R>>,
) -> anyhow::Result<ChildReport> {
    measure_with(args, slots, base, ROOT, make, |_| {})
}

/// Opens the structure through the arena `make` returns, runs the read passes and, if
/// asked, the contended mutations; `after` sees the arena once the reads are done.
fn measure_with<R: Repr>(
    args: &ChildArgs,
    slots: &[AtomicU64; SLOTS],
    base: u64,
    root_slot: usize,
    make: impl FnOnce() -> anyhow::Result<Arena<R>>,
    after: impl FnOnce(&Arena<R>),
) -> anyhow::Result<ChildReport> {
    let t = Instant::now();
    let arena = make()?;
    let root = slots[root_slot].load(Ordering::Acquire);
    let coll = Coll::open(args.structure, &arena, root)?;
    let open_ns = t.elapsed().as_nanos() as u64;
    let want = checksum(args.n);
    let (first, steady, reps) = super::workload::repeat(
        Duration::from_millis(args.budget_ms),
        args.max_reps,
        want,
        || coll.read_pass(args.n),
    )?;
    after(&arena);
    let mutate_ns = if args.mutate_ops > 0 {
        let mut rounds = Vec::new();
        for r in 0..MUTATE_ROUNDS {
            slots[READY].fetch_add(1, Ordering::AcqRel);
            // The parent comes soon (it only waited for this side): start with it.
            wait_for(
                &slots[READY],
                2 * r + 2,
                "the parent at the mutation barrier",
                Pace::Prompt,
                || Ok(()),
            )?;
            rounds.push(coll.mutate(args.n, args.mutate_ops)?.as_nanos() as u64);
        }
        Some(rounds)
    } else {
        None
    };
    Ok(ChildReport {
        base,
        open_ns,
        first_ns: first.as_nanos() as u64,
        steady_ns: steady.as_nanos() as u64,
        reps,
        mutate_ns,
        swizzled: None,
        first_touch: None,
    })
}
