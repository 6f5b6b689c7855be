//! `relshm compare` prints the table (with ratios, crossovers and winners) and draws the
//! crossover plots; the child subcommand stays hidden from the help.

use std::process::Command;

fn relshm(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_relshm"))
        .args(args)
        .output()
        .expect("running relshm");
    assert!(
        out.status.success(),
        "relshm {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("UTF-8 output")
}

#[test]
fn compare_prints_the_table_and_draws_the_plot() {
    let dir = std::env::temp_dir().join(format!("relshm-compare-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let svg = dir.join("cross.svg");
    let text = relshm(&[
        "compare",
        "--quick",
        "--sizes",
        "1000",
        "--structures",
        "list",
        "--no-peers",
        "--plot",
        svg.to_str().unwrap(),
    ]);
    assert!(text.contains("list of 1e3 elements"), "{text}");
    for strategy in [
        "fixed-raw",
        "copy-translate",
        "offset",
        "baserel",
        "segrel",
        "swizzle-cold",
        "swizzle-warm",
    ] {
        assert!(
            text.lines().any(|l| l.starts_with(strategy)),
            "no {strategy} row in\n{text}"
        );
    }
    // The baseline's cells are its own ratio, 1.
    let base = text.lines().find(|l| l.starts_with("fixed-raw")).unwrap();
    assert!(base.contains("x1.00"), "{base}");
    assert!(text.contains("copy-translate vs offset:"), "{text}");
    assert!(
        text.lines().any(|l| l.starts_with("memcpy")),
        "no memcpy limit row in\n{text}"
    );
    let limit = text
        .lines()
        .find(|l| l.contains("x limit (copy-translate vs memcpy"))
        .unwrap_or_else(|| panic!("no x limit line in\n{text}"));
    assert!(
        limit.contains("handover x") && limit.contains("export x"),
        "{limit}"
    );
    assert!(text.contains("where each strategy wins"), "{text}");
    assert!(!text.contains("rkyv"), "--no-peers leaves the peers out");

    let plot = std::fs::read_to_string(&svg).expect("the plot was written");
    assert!(plot.starts_with("<svg"), "an SVG document");
    assert!(plot.contains("copy-translate") && plot.contains("offset"));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn the_child_half_is_hidden_and_refuses_a_missing_segment() {
    let help = relshm(&["--help"]);
    assert!(help.contains("compare"));
    assert!(!help.contains("compare-child"));
    let out = Command::new(env!("CARGO_BIN_EXE_relshm"))
        .args([
            "compare-child",
            "--segment",
            "relshm-compare-no-such-segment",
            "--structure",
            "list",
            "--strategy",
            "offset",
            "--n",
            "10",
            "--budget-ms",
            "1",
            "--max-reps",
            "1",
            "--mutate-ops",
            "0",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("relshm-compare-no-such-segment"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
}
