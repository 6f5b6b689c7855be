//! The machine-readable form of a comparison (`relshm compare --json`), documented by the
//! JSON Schema in `docs/compare.schema.json` (a test validates real output against it).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::workload::Structure;

/// The value of [`Report::schema`]; bumped when the form changes incompatibly.
pub const SCHEMA: &str = "relshm-compare/3";

/// The strategy every ratio is taken against.
pub const BASELINE: &str = "fixed-raw";

/// A whole comparison run.
#[derive(Debug, Serialize, Deserialize)]
pub struct Report {
    /// Always [`SCHEMA`].
    pub schema: String,
    /// When the run started, UTC, `YYYY-MM-DDTHH:MM:SSZ`.
    pub date: String,
    /// The machine it ran on.
    pub machine: Machine,
    /// Whether it was a `--quick` run.
    pub quick: bool,
    /// Element counts measured.
    pub sizes: Vec<u64>,
    /// The strategy ratios are taken against ([`BASELINE`]).
    pub baseline: String,
    /// Wall-clock seconds the whole run took.
    pub elapsed_s: f64,
    /// One row per structure, size and strategy or peer.
    pub results: Vec<Row>,
    /// Where one strategy starts to beat another as read passes accumulate.
    pub crossovers: Vec<Crossover>,
}

/// Where the numbers come from.
#[derive(Debug, Serialize, Deserialize)]
pub struct Machine {
    /// CPU model (`/proc/cpuinfo`).
    pub cpu: String,
    /// CPUs this process may use.
    pub cores: u32,
    /// Kernel release.
    pub kernel: String,
}

/// Whether a row is one of relshm's strategies or a peer library.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// A relshm pointer strategy.
    Relshm,
    /// A serialisation library run on the same data set.
    Peer,
    /// A physical limit measured in the same run (`memcpy` of the bytes a strategy copies,
    /// first touch of the pages it touches).
    Limit,
}

/// How a row's data structure lays out its elements: rows of one structure and size
/// compare like with like where their shapes agree (the peers' `Vec<u64>` is contiguous,
/// as relshm's `vec` is, not linked as its `list` is).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Shape {
    /// One node per element, a link chased per element (relshm's list).
    Linked,
    /// The elements in one buffer (relshm's vec, a std `Vec`).
    Contiguous,
    /// A hash table (relshm's map, a std `HashMap`, rkyv's archived map).
    Hash,
}

impl Shape {
    /// Lower-case name, as in the JSON.
    pub fn name(self) -> &'static str {
        match self {
            Self::Linked => "linked",
            Self::Contiguous => "contiguous",
            Self::Hash => "hash",
        }
    }
}

/// One structure, size and strategy.
#[derive(Debug, Serialize, Deserialize)]
pub struct Row {
    /// `list`, `vec` or `map`.
    pub structure: Structure,
    /// How the data structure this row measured lays out its elements.
    pub shape: Shape,
    /// Elements.
    pub n: u64,
    /// Strategy, limit or peer name (`fixed-raw`, `copy-translate`, `memcpy`, `first-touch`, `offset`,
    /// `baserel`, `segrel`, `swizzle-cold`, `swizzle-warm`, `rkyv-validated`,
    /// `rkyv-unchecked`, `postcard`).
    pub strategy: String,
    /// relshm strategy, limit or peer.
    pub kind: Kind,
    /// Where the parent mapped the segment (`0x...`), for relshm strategies.
    pub parent_base: Option<String>,
    /// Where the second process mapped it, for relshm strategies.
    pub child_base: Option<String>,
    /// Every workload (`build`, `handover`, `first_read`, `read`, `mutate`, `export`,
    /// `import`), measured or not.
    pub workloads: BTreeMap<String, Measure>,
}

/// One workload's time, or why there is none.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Measure {
    /// Nanoseconds: per pass for reads, per operation for mutations, in total otherwise;
    /// `null` when the strategy does not do this workload.
    pub ns: Option<f64>,
    /// `ns` divided by the baseline's `ns` for the same structure, size and workload.
    pub ratio: Option<f64>,
    /// `ns` divided by the same run's limit for this workload, where the strategy has one
    /// (copy-translate's handover and export: the `memcpy` row; every import: `memcpy` of
    /// the image into a fresh mapping; swizzle-cold's read: the warm pass plus the
    /// `first-touch` row).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<f64>,
    /// What `limit` divides by: the limit row's name, or how the limit is made of them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit_of: Option<String>,
    /// `total`, `pass` or `op`.
    pub unit: String,
    /// Repetitions behind a median, where there were several.
    pub reps: Option<u32>,
    /// Why there is no time, or what the time includes.
    pub note: Option<String>,
}

impl Measure {
    /// A measured time.
    pub fn ns(ns: f64, unit: &str) -> Self {
        Self {
            ns: Some(ns),
            ratio: None,
            limit: None,
            limit_of: None,
            unit: unit.into(),
            reps: None,
            note: None,
        }
    }

    /// No time, for the reason given.
    pub fn none(unit: &str, why: &str) -> Self {
        Self {
            ns: None,
            ratio: None,
            limit: None,
            limit_of: None,
            unit: unit.into(),
            reps: None,
            note: Some(why.into()),
        }
    }

    /// Adds the ratio to a limit measured in the same run, and what that limit is.
    pub fn against(mut self, limit_ns: f64, of: &str) -> Self {
        self.limit = self.ns.map(|ns| ns / limit_ns.max(1.0));
        self.limit_of = Some(of.into());
        self
    }

    /// Adds a repetition count.
    pub fn reps(mut self, reps: u32) -> Self {
        self.reps = Some(reps);
        self
    }

    /// Adds a note.
    pub fn note(mut self, note: &str) -> Self {
        self.note = Some(note.into());
        self
    }
}

/// After how many read passes strategy `a` (more work up front, cheaper passes) has cost
/// less in total than strategy `b`.
#[derive(Debug, Serialize, Deserialize)]
pub struct Crossover {
    /// `list`, `vec` or `map`.
    pub structure: Structure,
    /// Elements.
    pub n: u64,
    /// The strategy that pays up front.
    pub a: String,
    /// The strategy it is weighed against.
    pub b: String,
    /// `a`'s handover plus first pass, nanoseconds.
    pub a_upfront_ns: f64,
    /// `b`'s handover plus first pass, nanoseconds.
    pub b_upfront_ns: f64,
    /// `a`'s steady pass, nanoseconds.
    pub a_pass_ns: f64,
    /// `b`'s steady pass, nanoseconds.
    pub b_pass_ns: f64,
    /// Passes (the first included) after which `a` has cost less in total; 1 if it never
    /// costs more, `null` if it never catches up.
    pub after_passes: Option<f64>,
}

/// Writes `report` as pretty JSON.
pub fn to_string(report: &Report) -> anyhow::Result<String> {
    Ok(serde_json::to_string_pretty(report)?)
}
