//! Turns measured runs into report rows: one per workload cell, ratios to the baseline,
//! and the crossover points.

use std::collections::BTreeMap;
use std::time::Duration;

use super::json::{BASELINE, Crossover, Kind, Measure, Row};
use super::limits::Limit;
use super::peers::{Peer, PeerRun};
use super::strategy::{Run, Strategy};
use super::workload::Structure;

fn ns(d: Duration) -> f64 {
    d.as_nanos() as f64
}

const NOT_SHARED: &str = "the second process gets a private copy: no shared writes to contend on";
const PRIVATE_VIEW: &str = "writes stay in each process's private view until a whole-image publish";

/// The rows of one relshm strategy run (two for swizzling: cold and warm).
pub fn strategy_rows(s: Structure, n: u64, strategy: Strategy, run: &Run) -> Vec<Row> {
    let mut w = BTreeMap::new();
    w.insert("build".into(), Measure::ns(ns(run.build), "total"));
    let mut handover = Measure::ns(ns(run.handover), "total");
    if let Some(t) = run.translate {
        handover = handover.note(&format!("includes the translated copy: {:.0} ns", ns(t)));
    }
    if let Some(l) = run.limit {
        handover = handover.against(ns(l.fresh), MEMCPY);
    }
    w.insert("handover".into(), handover);
    let c = &run.child;
    w.insert("first_read".into(), Measure::ns(c.first_ns as f64, "pass"));
    w.insert(
        "read".into(),
        Measure::ns(c.steady_ns as f64, "pass").reps(c.reps),
    );
    let mutate = match run.mutate {
        Some(d) => Measure::ns(ns(d) / (2 * run.mutate_ops) as f64, "op").note(&format!(
            "2 processes x {} operations, wall time of the slower",
            run.mutate_ops
        )),
        None if strategy == Strategy::Swizzle => Measure::none("op", PRIVATE_VIEW),
        None => Measure::none("op", NOT_SHARED),
    };
    w.insert("mutate".into(), mutate);
    let mut export = Measure::ns(ns(run.export), "total");
    if let Some(l) = run.limit {
        export = export.against(ns(l.resident), MEMCPY);
    }
    w.insert("export".into(), export);
    let mut import = Measure::ns(ns(run.import), "total");
    if let Some(l) = run.import_limit {
        import = import
            .against(ns(l), IMAGE_MEMCPY)
            .note(&format!("{IMAGE_MEMCPY}: {:.0} ns", ns(l)));
    }
    w.insert("import".into(), import);
    let row = |name: &str, w: BTreeMap<String, Measure>| Row {
        structure: s,
        shape: s.shape(),
        n,
        strategy: name.into(),
        kind: Kind::Relshm,
        parent_base: Some(format!("{:#x}", run.parent_base)),
        child_base: Some(format!("{:#x}", c.base)),
        workloads: w,
    };
    if let Some(l) = run.limit {
        return vec![row(strategy.name(), w), memcpy_row(s, n, &l)];
    }
    if strategy != Strategy::Swizzle {
        return vec![row(strategy.name(), w)];
    }
    // Cold: every pass in a fresh view swizzles as it goes; warm: the view is swizzled.
    let mut cold = w.clone();
    let swizzled = c.swizzled.unwrap_or(0);
    let mut read = Measure::ns(c.first_ns as f64, "pass").note(&format!(
        "first pass in a fresh private view ({swizzled} links swizzled)"
    ));
    if let Some((fault_ns, _, _)) = c.first_touch {
        read = read.against((c.steady_ns + fault_ns) as f64, WARM_PLUS_FAULTS);
    }
    cold.insert("read".into(), read);
    let mut rows = vec![row("swizzle-cold", cold), row("swizzle-warm", w)];
    rows.extend(
        c.first_touch
            .map(|(fault_ns, pages, written)| first_touch_row(s, n, fault_ns, pages, written)),
    );
    rows
}

/// The name of the `memcpy` limit row.
pub const MEMCPY: &str = "memcpy";
/// The name of the page-fault limit row.
pub const FIRST_TOUCH: &str = "first-touch";
/// What an import is measured against.
const IMAGE_MEMCPY: &str = "memcpy of the image into a fresh segment";
/// What a cold swizzle pass is measured against.
const WARM_PLUS_FAULTS: &str = "swizzle-warm pass + first-touch";
/// What a limit row does not measure.
const ONLY: &str = "a limit: only the unavoidable part of one workload is measured";

/// Every workload's cell without a time, for the reason given.
fn unmeasured(why: &str) -> BTreeMap<String, Measure> {
    [
        ("build", "total"),
        ("handover", "total"),
        ("first_read", "pass"),
        ("read", "pass"),
        ("mutate", "op"),
        ("export", "total"),
        ("import", "total"),
    ]
    .into_iter()
    .map(|(k, unit)| (k.to_string(), Measure::none(unit, why)))
    .collect()
}

/// A limit row's cells, every one "not measured" but those given.
fn limit_cells(
    measured: impl IntoIterator<Item = (&'static str, Measure)>,
) -> BTreeMap<String, Measure> {
    let mut w = unmeasured(ONLY);
    w.extend(measured.into_iter().map(|(k, m)| (k.to_string(), m)));
    w
}

fn limit_row(s: Structure, n: u64, name: &str, workloads: BTreeMap<String, Measure>) -> Row {
    Row {
        structure: s,
        shape: s.shape(),
        n,
        strategy: name.into(),
        kind: Kind::Limit,
        parent_base: None,
        child_base: None,
        workloads,
    }
}

/// The `first-touch` limit row: the first touch of every page the structure occupies, in
/// a fresh private view, a write where the cold pass swizzled (measured by the swizzle
/// run's second process).
fn first_touch_row(s: Structure, n: u64, fault_ns: u64, pages: u64, written: u64) -> Row {
    let read = Measure::ns(fault_ns as f64, "pass").note(&format!(
        "the first touch of each of the {pages} pages the structure occupies in a fresh \
         private view, a write (a copy-on-write fault) to the {written} in which a cold pass \
         swizzles links, a read to the others"
    ));
    limit_row(s, n, FIRST_TOUCH, limit_cells([("read", read)]))
}

/// The `memcpy` limit row: the bytes copy-translate copied, copied without rewriting.
fn memcpy_row(s: Structure, n: u64, l: &Limit) -> Row {
    let mb = l.bytes as f64 / 1e6;
    let handover = Measure::ns(ns(l.fresh), "total").note(&format!(
        "memcpy of the {mb:.2} MB copy-translate copies, into fresh pages of a fresh segment"
    ));
    let export = Measure::ns(ns(l.resident), "total").note(&format!(
        "memcpy of the same {mb:.2} MB again, into the same (resident) pages"
    ));
    limit_row(
        s,
        n,
        MEMCPY,
        limit_cells([("handover", handover), ("export", export)]),
    )
}

/// The rows of a strategy run that failed: no times, the error in every note.
pub fn failed_rows(s: Structure, n: u64, strategy: Strategy, e: &anyhow::Error) -> Vec<Row> {
    let w = unmeasured(&format!("{FAILED}{e:#}"));
    let names: &[&str] = if strategy == Strategy::Swizzle {
        &["swizzle-cold", "swizzle-warm"]
    } else {
        &[strategy.name()]
    };
    names
        .iter()
        .map(|name| Row {
            structure: s,
            shape: s.shape(),
            n,
            strategy: (*name).into(),
            kind: Kind::Relshm,
            parent_base: None,
            child_base: None,
            workloads: w.clone(),
        })
        .collect()
}

/// How the note of a failed run starts.
pub const FAILED: &str = "failed: ";

/// The row of one peer run.
pub fn peer_row(s: Structure, n: u64, peer: Peer, run: &PeerRun) -> Row {
    let mut w = BTreeMap::new();
    w.insert(
        "build".into(),
        Measure::ns(ns(run.build), "total").note(&format!(
            "building a {} ({})",
            run.what,
            run.shape.name()
        )),
    );
    w.insert("handover".into(), Measure::ns(ns(run.handover), "total"));
    w.insert("first_read".into(), Measure::ns(ns(run.first), "pass"));
    w.insert(
        "read".into(),
        Measure::ns(ns(run.steady), "pass").reps(run.reps),
    );
    w.insert(
        "mutate".into(),
        Measure::none("op", "serialised bytes are not shared for writing"),
    );
    w.insert("export".into(), Measure::ns(ns(run.export), "total"));
    w.insert("import".into(), Measure::ns(ns(run.import), "total"));
    Row {
        structure: s,
        n,
        strategy: peer.name().into(),
        shape: run.shape,
        kind: Kind::Peer,
        parent_base: None,
        child_base: None,
        workloads: w,
    }
}

/// Fills in every measured cell's ratio to the baseline's cell.
pub fn add_ratios(rows: &mut [Row]) {
    let base: Vec<(Structure, u64, BTreeMap<String, Measure>)> = rows
        .iter()
        .filter(|r| r.strategy == BASELINE)
        .map(|r| (r.structure, r.n, r.workloads.clone()))
        .collect();
    for r in rows.iter_mut() {
        let Some((_, _, b)) = base.iter().find(|(s, n, _)| *s == r.structure && *n == r.n) else {
            continue;
        };
        for (name, m) in r.workloads.iter_mut() {
            let b = b.get(name).and_then(|m| m.ns).filter(|&v| v > 0.0);
            m.ratio = m.ns.zip(b).map(|(v, b)| v / b);
        }
    }
}

/// The pairs weighed against each other: the first does more work up front.
const PAIRS: [(&str, &str); 6] = [
    ("copy-translate", "offset"),
    ("copy-translate", "segrel"),
    ("swizzle-warm", "offset"),
    ("swizzle-warm", "segrel"),
    ("copy-translate", "swizzle-warm"),
    ("rkyv-validated", "offset"),
];

/// Up-front (handover + first pass) and per-pass cost of a row.
pub(super) fn costs(r: &Row) -> Option<(f64, f64)> {
    let get = |k: &str| r.workloads.get(k).and_then(|m| m.ns);
    Some((get("handover")? + get("first_read")?, get("read")?))
}

/// After how many passes `a` (up front `ua`, per pass `pa`) has cost less than `b`:
/// `ua + (k-1) pa <= ub + (k-1) pb`.
pub fn crossing(ua: f64, pa: f64, ub: f64, pb: f64) -> Option<f64> {
    if ua <= ub && pa <= pb {
        return Some(1.0);
    }
    if pa >= pb {
        return None;
    }
    Some(1.0 + ((ua - ub) / (pb - pa)).max(0.0).ceil())
}

/// The crossover points of every pair at every size.
pub fn crossovers(rows: &[Row]) -> Vec<Crossover> {
    let mut out = Vec::new();
    let find = |s: Structure, n: u64, name: &str| {
        rows.iter()
            .find(|r| r.structure == s && r.n == n && r.strategy == name)
    };
    let mut keys: Vec<(Structure, u64)> = rows.iter().map(|r| (r.structure, r.n)).collect();
    keys.dedup();
    for (s, n) in keys {
        for (a, b) in PAIRS {
            let (Some(ra), Some(rb)) = (find(s, n, a), find(s, n, b)) else {
                continue;
            };
            let (Some((ua, pa)), Some((ub, pb))) = (costs(ra), costs(rb)) else {
                continue;
            };
            out.push(Crossover {
                structure: s,
                n,
                a: a.into(),
                b: b.into(),
                a_upfront_ns: ua,
                b_upfront_ns: ub,
                a_pass_ns: pa,
                b_pass_ns: pb,
                after_passes: crossing(ua, pa, ub, pb),
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::crossing;

    #[test]
    fn crossing_points() {
        // 1000 ns more up front, 10 ns saved per pass: level after 100 more passes.
        assert_eq!(crossing(1100.0, 10.0, 100.0, 20.0), Some(101.0));
        assert_eq!(crossing(100.0, 10.0, 200.0, 20.0), Some(1.0));
        assert_eq!(crossing(1100.0, 20.0, 100.0, 20.0), None);
        assert_eq!(crossing(1100.0, 30.0, 100.0, 20.0), None);
    }
}
