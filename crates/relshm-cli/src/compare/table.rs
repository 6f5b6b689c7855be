//! The human-readable report: one table per structure and size, the crossover points, and
//! which strategy wins each workload.

use std::fmt::Write;

use super::json::{BASELINE, Kind, Report, Row, Shape};
use super::rows::{FAILED, FIRST_TOUCH, MEMCPY};
use super::workload::Structure;

/// Columns shown, with their headings (`first_read` stays in the JSON).
const COLUMNS: [(&str, &str); 6] = [
    ("build", "build"),
    ("handover", "handover"),
    ("read", "read pass"),
    ("mutate", "mutate/op"),
    ("export", "export"),
    ("import", "import"),
];

/// `ns` with a unit that keeps 3 significant digits.
pub fn human(ns: f64) -> String {
    let (v, unit) = if ns >= 1e9 {
        (ns / 1e9, "s")
    } else if ns >= 1e6 {
        (ns / 1e6, "ms")
    } else if ns >= 1e3 {
        (ns / 1e3, "us")
    } else {
        (ns, "ns")
    };
    let digits = if v >= 100.0 {
        0
    } else if v >= 10.0 {
        1
    } else {
        2
    };
    format!("{v:.digits$}{unit}")
}

/// A ratio with 3 significant digits (2 decimals below 10).
pub fn ratio(x: f64) -> String {
    let digits = if x >= 100.0 {
        0
    } else if x >= 10.0 {
        1
    } else {
        2
    };
    format!("x{x:.digits$}")
}

/// A size as `1e3`-style text when it is a power of ten.
pub fn size(n: u64) -> String {
    let mut e = 0;
    let mut m = n;
    while m >= 10 && m.is_multiple_of(10) {
        m /= 10;
        e += 1;
    }
    if m == 1 && e >= 3 {
        format!("1e{e}")
    } else {
        n.to_string()
    }
}

fn cell(r: &Row, key: &str) -> String {
    match r.workloads.get(key) {
        Some(m) => match (m.ns, m.ratio) {
            (Some(v), Some(x)) => format!("{} {}", human(v), ratio(x)),
            (Some(v), None) => human(v),
            (None, _) if failed(r) => "FAILED".into(),
            _ => "-".into(),
        },
        None => "-".into(),
    }
}

/// The whole report as text.
pub fn render(report: &Report) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "relshm compare: {} on {} ({} cores), {}, {:.1} s",
        report.date,
        report.machine.cpu,
        report.machine.cores,
        if report.quick { "quick" } else { "default" },
        report.elapsed_s
    );
    let _ = writeln!(
        out,
        "times: build/handover/export/import in total, read per whole pass (list, vec: \
         traverse all, map: look up every key), mutate per operation with 2 processes contending; \
         xR = ratio to {BASELINE} (same structure and size); - = not applicable (see --json); \
         limits measured in this run: {MEMCPY} = copy-translate's copies without rewriting \
         links, {FIRST_TOUCH} = the first touch of each page of the structure in a fresh private \
         view (a write where a cold swizzle pass swizzles); x limit: copy-translate's handover and export / {MEMCPY}, each import / memcpy \
         of its image into a fresh segment, swizzle-cold's read / (swizzle-warm's + {FIRST_TOUCH})"
    );
    render_addresses(report, &mut out);
    for s in Structure::ALL {
        for &n in &report.sizes {
            let rows: Vec<&Row> = report
                .results
                .iter()
                .filter(|r| r.structure == s && r.n == n)
                .collect();
            if rows.is_empty() {
                continue;
            }
            let _ = writeln!(
                out,
                "\n{} of {} elements ({})",
                s.name(),
                size(n),
                describe(s.shape())
            );
            let _ = write!(out, "{:<16}", "strategy");
            for (_, h) in COLUMNS {
                let _ = write!(out, " {h:>16}");
            }
            out.push('\n');
            for &r in &rows {
                if r.kind == Kind::Peer && r.strategy == "rkyv-validated" {
                    let _ = writeln!(out, "{:-<16} {}", "", peers_heading(s, r.shape));
                }
                let _ = write!(out, "{:<16}", r.strategy);
                for (k, _) in COLUMNS {
                    let _ = write!(out, " {:>16}", cell(r, k));
                }
                out.push('\n');
            }
            if !rows.iter().any(|r| r.kind == Kind::Peer) {
                no_peer_line(report, s, &mut out);
            }
            render_limits(&rows, &mut out);
        }
    }
    render_failures(report, &mut out);
    render_crossovers(report, &mut out);
    render_wins(report, &mut out);
    out
}

/// What a shape means for a read pass.
fn describe(shape: Shape) -> &'static str {
    match shape {
        Shape::Linked => "linked: a pass chases one link per element",
        Shape::Contiguous => "contiguous: a pass walks one buffer",
        Shape::Hash => "hash table",
    }
}

/// The line above the peer rows: whether they have the shape of the rows above them.
fn peers_heading(s: Structure, peer: Shape) -> String {
    let same = if peer == s.shape() {
        format!("the same shape as relshm's {}", s.name())
    } else {
        format!(
            "NOT the shape of relshm's {} ({})",
            s.name(),
            s.shape().name()
        )
    };
    format!(
        "peers ({}, {same}; same data set, in this process)",
        peer.name()
    )
}

/// Where the report has peer rows but none for `s`: says so, and where they are.
fn no_peer_line(report: &Report, s: Structure, out: &mut String) {
    let elsewhere: Vec<&str> = Structure::ALL
        .iter()
        .filter(|o| {
            report
                .results
                .iter()
                .any(|r| r.kind == Kind::Peer && r.structure == **o)
        })
        .map(|o| o.name())
        .collect();
    if !elsewhere.is_empty() {
        let _ = writeln!(
            out,
            "{:-<16} peers: none of this shape ({}); theirs are under {}",
            "",
            s.shape().name(),
            elsewhere.join(", ")
        );
    }
}

/// One line per strategy with a limit row: how far each of its cells is from it.
fn render_limits(rows: &[&Row], out: &mut String) {
    for r in rows.iter().filter(|r| r.kind == Kind::Relshm) {
        let figures: Vec<String> = COLUMNS
            .iter()
            .filter_map(|(k, h)| {
                let x = r.workloads.get(*k)?.limit?;
                Some(format!("{h} {}", ratio(x)))
            })
            .collect();
        if !figures.is_empty() {
            let _ = writeln!(
                out,
                "  x limit {:<15} {}",
                format!("{}:", r.strategy),
                figures.join(", ")
            );
        }
    }
}

fn render_crossovers(report: &Report, out: &mut String) {
    let _ = writeln!(
        out,
        "\ncrossovers: after how many read passes (the first included) the first strategy's \
         up-front work (handover + first pass) has paid for itself against the second's"
    );
    let mut pairs: Vec<(String, String)> = report
        .crossovers
        .iter()
        .map(|c| (c.a.clone(), c.b.clone()))
        .collect();
    pairs.sort();
    pairs.dedup();
    for s in Structure::ALL {
        for (a, b) in &pairs {
            let cells: Vec<_> = report
                .crossovers
                .iter()
                .filter(|c| c.structure == s && &c.a == a && &c.b == b)
                .collect();
            // A pair one of whose rows this structure lacks (the peers have no list).
            if cells.is_empty() {
                continue;
            }
            let mut line = format!("  {:<5}{a} vs {b}:", s.name());
            for c in cells {
                let when = match c.after_passes {
                    Some(k) if k <= 1.0 => "from the 1st".to_string(),
                    Some(k) => format!("after {k:.0}"),
                    None => "never".to_string(),
                };
                let _ = write!(line, "  {} {when};", size(c.n));
            }
            let _ = writeln!(out, "{}", line.trim_end_matches(';'));
        }
    }
}

fn render_wins(report: &Report, out: &mut String) {
    let _ = writeln!(
        out,
        "\nwhere each strategy wins (fastest relshm strategy other than the {BASELINE} baseline, per size)"
    );
    for s in Structure::ALL {
        if !report.results.iter().any(|r| r.structure == s) {
            continue;
        }
        for (k, h) in COLUMNS {
            let mut line = format!("  {:<5}{h:<10}", s.name());
            for &n in &report.sizes {
                let best = report
                    .results
                    .iter()
                    .filter(|r| {
                        r.structure == s
                            && r.n == n
                            && r.kind == Kind::Relshm
                            && r.strategy != BASELINE
                    })
                    .filter_map(|r| Some((r.workloads.get(k)?.ns?, r)))
                    .min_by(|a, b| a.0.total_cmp(&b.0));
                if let Some((_, r)) = best {
                    let ratio = r.workloads[k]
                        .ratio
                        .map(|x| format!(" {}", ratio(x)))
                        .unwrap_or_default();
                    let _ = write!(line, "  {} {}{ratio};", size(n), r.strategy);
                }
            }
            let _ = writeln!(out, "{}", line.trim_end_matches(';'));
        }
    }
}

fn failed(r: &Row) -> bool {
    r.workloads
        .values()
        .any(|m| m.note.as_deref().is_some_and(|n| n.starts_with(FAILED)))
}

fn render_failures(report: &Report, out: &mut String) {
    let mut seen = Vec::new();
    for r in report.results.iter().filter(|r| failed(r)) {
        let Some(note) = r.workloads.get("read").and_then(|m| m.note.clone()) else {
            continue;
        };
        if seen.contains(&(r.structure, r.n, note.clone())) {
            continue;
        }
        let _ = writeln!(
            out,
            "\nFAILED {} of {} elements, {}: {}",
            r.structure.name(),
            size(r.n),
            r.strategy,
            &note[FAILED.len()..]
        );
        seen.push((r.structure, r.n, note));
    }
}

/// One line on where the two processes mapped the segments (checked by every run).
fn render_addresses(report: &Report, out: &mut String) {
    let mapped: Vec<&Row> = report
        .results
        .iter()
        .filter(|r| r.kind == Kind::Relshm && r.child_base.is_some())
        .collect();
    let base = mapped.iter().find(|r| r.strategy == BASELINE);
    let other = mapped.iter().find(|r| r.strategy != BASELINE);
    if let (Some(b), Some(o)) = (base, other) {
        let _ = writeln!(
            out,
            "addresses: the second process mapped each segment at another address (e.g. {} \
             here, {} there), the baseline at the same fixed address ({}) in both",
            o.parent_base.as_deref().unwrap_or("?"),
            o.child_base.as_deref().unwrap_or("?"),
            b.child_base.as_deref().unwrap_or("?"),
        );
    }
}
