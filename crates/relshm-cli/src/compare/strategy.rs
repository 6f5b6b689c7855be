//! The parent's half of one run: one structure, one size, one pointer strategy.

use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use relshm::collections::arena::Arena;
use relshm::ptr::translate::{Space, Translated};
use relshm::ptr::{BaseRel, Offset, Raw, Repr, SegRel, Swizzle};
use relshm::segment::{CreateOptions, Placement, Segment, SegmentError};

use super::child::ChildArgs;
use super::image::SharedArena;
use super::limits::{self, Limit};
use super::protocol::{
    CHILD_BASE, COPY_ROOT, ChildReport, GO, MUTATE_ROUNDS, Pace, READY, ROOT, SLOTS, SLOTS_NAME,
    wait_for,
};
use super::workload::{Coll, Structure, mutate_ops};
use crate::remove_on_drop::RemoveOnDrop;

/// The pointer strategies relshm implements (swizzling is reported cold and warm).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Strategy {
    /// Raw pointers in a segment every process maps at one fixed address: the baseline.
    #[value(name = "fixed-raw")]
    FixedRaw,
    /// Raw pointers valid in the builder only; the receiver gets a translated copy.
    #[value(name = "copy-translate")]
    CopyTime,
    /// Self-relative offsets, shared in place.
    #[value(name = "offset")]
    Offset,
    /// Offsets from the segment's base, shared in place.
    #[value(name = "baserel")]
    BaseRel,
    /// `(segment id, offset)` pairs, shared in place.
    #[value(name = "segrel")]
    SegRel,
    /// Tagged offsets swizzled into raw pointers on first use, in a private view.
    #[value(name = "swizzle")]
    Swizzle,
}

impl Strategy {
    /// Every strategy, baseline first.
    pub const ALL: [Strategy; 6] = [
        Self::FixedRaw,
        Self::CopyTime,
        Self::Offset,
        Self::BaseRel,
        Self::SegRel,
        Self::Swizzle,
    ];

    /// The name used on the command line and in the JSON.
    pub fn name(self) -> &'static str {
        match self {
            Self::FixedRaw => "fixed-raw",
            Self::CopyTime => "copy-translate",
            Self::Offset => "offset",
            Self::BaseRel => "baserel",
            Self::SegRel => "segrel",
            Self::Swizzle => "swizzle",
        }
    }

    /// Whether both processes mutate the one shared structure in place.
    pub fn shares_writes(self) -> bool {
        matches!(
            self,
            Self::FixedRaw | Self::Offset | Self::BaseRel | Self::SegRel
        )
    }
}

/// How long and how often to repeat read passes.
#[derive(Clone, Copy, Debug)]
pub struct Budget {
    /// Time for repeated read passes per run.
    pub read: Duration,
    /// Most repeated read passes per run.
    pub max_reps: u32,
    /// Whether this is a `--quick` run.
    pub quick: bool,
}

/// What one run measured.
#[derive(Debug)]
pub struct Run {
    /// Where the parent mapped the segment.
    pub parent_base: u64,
    /// What the child measured (and where it mapped the segment).
    pub child: ChildReport,
    /// Building the structure in the parent (for swizzle: in its private view, then
    /// publishing the view).
    pub build: Duration,
    /// From the structure being built to it being open in the child: the copy-time
    /// translation (if any) plus the child's open.
    pub handover: Duration,
    /// The copy-time translation alone, if this strategy has one.
    pub translate: Option<Duration>,
    /// Contended mutations (2 processes, `mutate_ops` each): the slower side's time in the
    /// median of the rounds.
    pub mutate: Option<Duration>,
    /// Mutations each process made.
    pub mutate_ops: u64,
    /// Exporting a position-independent image of the structure.
    pub export: Duration,
    /// Importing the image at another address until the structure is open there.
    pub import: Duration,
    /// The copy-time translation's limit: `memcpy` of the bytes it copied, this run.
    pub limit: Option<Limit>,
    /// The import's limit: `memcpy` of the image into a fresh segment, this run.
    pub import_limit: Option<Duration>,
}

/// Page-aligned addresses tried, in order, for the fixed-address baseline.
const FIXED_ADDRESSES: [usize; 3] = [0x4e00_0000_0000, 0x4c00_0000_0000, 0x3a00_0000_0000];

/// Runs `strategy` on `n` elements of `structure`, with a child process started from `exe`.
pub fn run(
    exe: &std::path::Path,
    structure: Structure,
    strategy: Strategy,
    n: u64,
    budget: Budget,
    seq: u32,
) -> anyhow::Result<Run> {
    let name = format!("relshm-compare-{}-{seq}", std::process::id());
    let size = structure.segment_bytes(n);
    let seg = create(&name, size, strategy == Strategy::FixedRaw)?;
    let _unlink = RemoveOnDrop(&name);
    let dir = seg.directory()?;
    let slots = dir.construct(SLOTS_NAME, [const { AtomicU64::new(0) }; SLOTS])?;
    let slots: &[AtomicU64; SLOTS] = slots.get();
    let job = Job {
        exe,
        name: &name,
        structure,
        strategy,
        n,
        budget,
        seg: &seg,
        slots,
    };
    match strategy {
        Strategy::FixedRaw => job.in_place::<Raw>(),
        Strategy::Offset => job.in_place::<Offset>(),
        Strategy::BaseRel => job.in_place::<BaseRel>(),
        Strategy::SegRel => job.in_place::<SegRel>(),
        Strategy::Swizzle => job.swizzle(),
        Strategy::CopyTime => job.copy_time(),
    }
}

/// Creates the run's segment: in fixed-address mode for the baseline.
fn create(name: &str, size: u64, fixed: bool) -> anyhow::Result<Segment> {
    let opts = CreateOptions::new(size);
    if !fixed {
        return Segment::create_named(name, &opts).with_context(|| format!("creating {name}"));
    }
    let mut last = None;
    for addr in FIXED_ADDRESSES {
        match Segment::create_named(name, &opts.clone().fixed_address(addr)) {
            Err(e @ SegmentError::AddressTaken { .. }) => last = Some(e),
            other => return other.with_context(|| format!("creating {name} at {addr:#x}")),
        }
    }
    Err(last.expect("at least one address was tried"))
        .context("every fixed address tried for the baseline is taken in this process")
}

struct Job<'a> {
    exe: &'a std::path::Path,
    name: &'a str,
    structure: Structure,
    strategy: Strategy,
    n: u64,
    budget: Budget,
    seg: &'a Segment,
    slots: &'a [AtomicU64; SLOTS],
}

impl Job<'_> {
    fn base(&self) -> u64 {
        self.seg.base().as_ptr() as u64
    }

    fn ops(&self) -> u64 {
        if self.strategy.shares_writes() {
            mutate_ops(self.budget.quick)
        } else {
            0
        }
    }

    fn spawn(&self) -> anyhow::Result<Child> {
        let args = ChildArgs::command_line(
            self.name,
            self.structure,
            self.strategy,
            self.n,
            self.budget.read,
            self.budget.max_reps,
            self.ops(),
        );
        Command::new(self.exe)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .context("starting the child process (relshm compare-child)")
    }

    /// Starts the child, waits for its address, runs `before_go` (the copy-time
    /// translation) and lets it go; mutates against it with `coll` if given; returns its
    /// report, the `before_go` time and the parent's mutation time.
    fn hand_over<R: Repr>(
        &self,
        coll: Option<&Coll<R>>,
        before_go: impl FnOnce(u64) -> anyhow::Result<()>,
    ) -> anyhow::Result<(ChildReport, Duration, Option<Vec<Duration>>)> {
        let mut child = self.spawn()?;
        let result = self.talk(&mut child, coll, before_go);
        if result.is_err() {
            let _ = child.kill();
        }
        let out = child.wait_with_output().context("waiting for the child")?;
        let stderr = String::from_utf8_lossy(&out.stderr);
        let (go_time, mine) = result.with_context(|| format!("child said: {}", stderr.trim()))?;
        if !out.status.success() {
            bail!("the child failed ({}): {}", out.status, stderr.trim());
        }
        let line = String::from_utf8_lossy(&out.stdout);
        let report: ChildReport = serde_json::from_str(line.trim())
            .with_context(|| format!("reading the child's report {line:?}"))?;
        let fixed = self.strategy == Strategy::FixedRaw;
        ensure!(
            (report.base == self.base()) == fixed,
            "the child mapped the segment at {:#x}, the parent at {:#x}: {}",
            report.base,
            self.base(),
            if fixed {
                "the fixed-address baseline needs one address"
            } else {
                "the comparison needs two different addresses"
            }
        );
        Ok((report, go_time, mine))
    }

    fn talk<R: Repr>(
        &self,
        child: &mut Child,
        coll: Option<&Coll<R>>,
        before_go: impl FnOnce(u64) -> anyhow::Result<()>,
    ) -> anyhow::Result<(Duration, Option<Vec<Duration>>)> {
        // What the child printed is added by `hand_over`, which collects its output.
        let mut alive = || match child.try_wait()? {
            None => Ok(()),
            Some(status) => bail!("the child exited early ({status})"),
        };
        let child_base = wait_for(
            &self.slots[CHILD_BASE],
            1,
            "the child's address",
            Pace::Patient,
            &mut alive,
        )?;
        let t = Instant::now();
        before_go(child_base)?;
        let go_time = t.elapsed();
        self.slots[GO].store(1, Ordering::Release);
        let mine = match coll {
            Some(c) if self.ops() > 0 => {
                let mut rounds = Vec::new();
                for r in 0..MUTATE_ROUNDS {
                    let what = "the child at the mutation barrier";
                    // The child may still be reading: wait patiently. It then waits
                    // promptly for this side, so both start together.
                    wait_for(
                        &self.slots[READY],
                        2 * r + 1,
                        what,
                        Pace::Patient,
                        &mut alive,
                    )?;
                    self.slots[READY].fetch_add(1, Ordering::AcqRel);
                    rounds.push(c.mutate(self.n, self.ops())?);
                }
                Some(rounds)
            }
            _ => None,
        };
        Ok((go_time, mine))
    }

    fn finish(
        &self,
        build: Duration,
        (child, go_time, mine): (ChildReport, Duration, Option<Vec<Duration>>),
        translate: Option<Duration>,
        export: Duration,
        import: Duration,
        limit: Option<Limit>,
    ) -> Run {
        // Each round lasts until the slower side is done; the median round is reported.
        let mutate = match (mine, &child.mutate_ns) {
            (Some(p), Some(c)) => {
                let mut rounds: Vec<Duration> = p
                    .iter()
                    .zip(c)
                    .map(|(&p, &c)| p.max(Duration::from_nanos(c)))
                    .collect();
                rounds.sort();
                rounds.get(rounds.len() / 2).copied()
            }
            _ => None,
        };
        Run {
            parent_base: self.base(),
            handover: go_time + Duration::from_nanos(child.open_ns),
            child,
            build,
            translate,
            mutate,
            mutate_ops: self.ops(),
            export,
            import,
            limit,
            import_limit: None,
        }
    }

    fn check_len(&self, got: u64, when: &str) -> anyhow::Result<()> {
        ensure!(
            got == self.n,
            "{} {} holds {got} elements {when}, expected {}",
            self.strategy.name(),
            self.structure.name(),
            self.n
        );
        Ok(())
    }

    /// Fixed-address raw, self-relative and segment-relative: one structure, shared in place.
    fn in_place<R: SharedArena>(&self) -> anyhow::Result<Run> {
        let arena = R::arena(self.seg)?;
        let coll = Coll::create(self.structure, &arena)?;
        let build = coll.build(self.n)?;
        self.slots[ROOT].store(coll.offset(), Ordering::Release);
        let talked = self.hand_over(Some(&coll), |_| Ok(()))?;
        self.check_len(coll.verify()?, "after the contended mutations")?;

        let t = Instant::now();
        let img = self.seg.data_image();
        let export = t.elapsed();
        // Raw pointers only mean something at the fixed address: the baseline's image goes
        // back into the segment there; the others' into a mapping at another address.
        let other;
        let target = if self.strategy == Strategy::FixedRaw {
            self.seg
        } else {
            other = self.seg.reopen(Placement::Anywhere)?;
            &other
        };
        let t = Instant::now();
        target.write_data_image(&img);
        let a = R::arena(target)?;
        let c = Coll::open(self.structure, &a, coll.offset())?;
        let import = t.elapsed();
        self.check_len(c.verify()?, "after export and import")?;
        let mut run = self.finish(build, talked, None, export, import, None);
        // The baseline's image goes back into its own, resident mapping (a fixed-address
        // segment has no second mapping to copy into): only the others have this limit.
        if self.strategy != Strategy::FixedRaw {
            run.import_limit = Some(limits::image_copy(self.seg, &img)?);
        }
        Ok(run)
    }

    /// Swizzling: built in a private view, published, read in the child's own view.
    fn swizzle(&self) -> anyhow::Result<Run> {
        let arena = Arena::<Swizzle>::private(self.seg)?;
        let coll = Coll::create(self.structure, &arena)?;
        let t = Instant::now();
        coll.build(self.n)?;
        self.slots[ROOT].store(0, Ordering::Release);
        arena.publish(self.seg)?;
        let build = t.elapsed();
        // Publishing replaced the shared bytes (slots included) with the view's.
        self.slots[ROOT].store(coll.offset(), Ordering::Release);
        let talked = self.hand_over::<Swizzle>(None, |_| Ok(()))?;

        let t = Instant::now();
        let img = arena.export()?;
        let export = t.elapsed();
        let other = self.seg.reopen(Placement::Anywhere)?;
        let t = Instant::now();
        other.write_data_image(&img);
        let a = Arena::<Swizzle>::private(&other)?;
        let c = Coll::open(self.structure, &a, coll.offset())?;
        let import = t.elapsed();
        self.check_len(c.verify()?, "after export and import")?;
        let mut run = self.finish(build, talked, None, export, import, None);
        run.import_limit = Some(limits::image_copy(self.seg, &img)?);
        Ok(run)
    }

    /// Copy-time translation: raw pointers valid here, a translated copy for the child.
    fn copy_time(&self) -> anyhow::Result<Run> {
        // The original lives in a segment of its own, private to this process (source and
        // destination of a translation never overlap); the run's named segment receives
        // the copies.
        let src =
            Segment::create_unnamed(&CreateOptions::new(self.structure.segment_bytes(self.n)))
                .context("creating the copy-time strategy's source segment")?;
        let arena = Arena::<Raw>::local(&src)?;
        let coll = Coll::create(self.structure, &arena)?;
        let build = coll.build(self.n)?;
        let block = self.seg.alloc(self.structure.copy_bytes(self.n), 64)?;
        let mut translate = Duration::ZERO;
        let mut copied = 0;
        let talked = self.hand_over::<Raw>(None, |child_base| {
            let t = Instant::now();
            let copy = self.translate(&coll, child_base, block)?;
            translate = t.elapsed();
            copied = copy.copied;
            self.slots[COPY_ROOT].store(copy.root_offset, Ordering::Release);
            Ok(())
        })?;
        let limit = limits::memcpy(&src, copied)?;

        // Copy-time translation has no address-free image: exporting means translating
        // for the importer's address, importing means opening the copy there.
        let other = self.seg.reopen(Placement::Anywhere)?;
        let other_base = other.base().as_ptr() as u64;
        let t = Instant::now();
        let copy = self.translate(&coll, other_base, block)?;
        let export = t.elapsed();
        let t = Instant::now();
        // SAFETY: `other` stays mapped until this function returns, and the copy in it was
        // written for `other`'s base just above.
        let a = unsafe { Arena::<Raw>::translated(other.region(), other_base)? };
        let c = Coll::open(self.structure, &a, copy.root_offset)?;
        let import = t.elapsed();
        self.check_len(c.verify()?, "in the imported copy")?;
        Ok(self.finish(build, talked, Some(translate), export, import, Some(limit)))
    }

    /// Translates `coll` into the block at `start` for a process that maps the segment
    /// at `base`.
    fn translate(&self, coll: &Coll<Raw>, base: u64, start: u64) -> anyhow::Result<Translated> {
        // SAFETY: the segment stays mapped while `self` lives; the block at `start` was
        // allocated for the copy and is read only by a child that waits for GO (or, for
        // the export, by nobody until this returns).
        let space = unsafe { Space::new(self.seg.region(), base) };
        let t = match coll {
            Coll::List(l) => l.translate_to(&space, start)?,
            Coll::Vec(v) => v.translate_to(&space, start)?,
            Coll::Map(m) => m.translate_to(&space, start)?,
        };
        let reserved = self.structure.copy_bytes(self.n);
        ensure!(
            t.used <= start + reserved,
            "the translated copy overran its block: {} bytes, {reserved} reserved",
            t.used - start
        );
        Ok(t)
    }
}
