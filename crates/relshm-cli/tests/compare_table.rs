//! `relshm compare` prints the table (with ratios, crossovers and winners) and draws the
//! crossover plots, with the peers only beside rows of their shape; the child subcommand
//! stays hidden from the help.

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

/// The lines of the table headed `heading` (up to the next blank line).
fn table<'a>(text: &'a str, heading: &str) -> Vec<&'a str> {
    let lines: Vec<&str> = text
        .lines()
        .skip_while(|l| !l.starts_with(heading))
        .take_while(|l| !l.is_empty())
        .collect();
    assert!(!lines.is_empty(), "no table {heading:?} in\n{text}");
    lines
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
        "list,vec",
        "--no-peers",
        "--plot",
        svg.to_str().unwrap(),
    ]);
    for heading in [
        "list of 1e3 elements (linked",
        "vec of 1e3 elements (contiguous",
    ] {
        let rows = table(&text, heading);
        for strategy in [
            "fixed-raw",
            "copy-translate",
            "memcpy",
            "offset",
            "baserel",
            "segrel",
            "swizzle-cold",
            "swizzle-warm",
            "first-touch",
        ] {
            let row = rows
                .iter()
                .find(|l| l.starts_with(strategy))
                .unwrap_or_else(|| panic!("no {strategy} row under {heading:?} in\n{text}"));
            assert!(!row.contains("FAILED"), "{row}");
        }
        // The baseline's cells are its own ratio, 1.
        let base = rows.iter().find(|l| l.starts_with("fixed-raw")).unwrap();
        assert!(base.contains("x1.00"), "{base}");
        let limit = |strategy: &str| {
            let line = format!("  x limit {strategy}:");
            rows.iter()
                .find(|l| l.starts_with(&line))
                .unwrap_or_else(|| panic!("no {line:?} under {heading:?} in\n{text}"))
                .to_string()
        };
        let copy = limit("copy-translate");
        assert!(
            copy.contains("handover x") && copy.contains("export x"),
            "{copy}"
        );
        for s in ["offset", "baserel", "segrel"] {
            assert!(limit(s).contains("import x"), "{}", limit(s));
        }
        let cold = limit("swizzle-cold");
        assert!(
            cold.contains("read pass x") && cold.contains("import x"),
            "{cold}"
        );
    }
    for s in ["list", "vec"] {
        assert!(
            text.contains(&format!("  {s:<5}copy-translate vs offset:  1e3 ")),
            "{text}"
        );
    }
    assert!(text.contains("where each strategy wins"), "{text}");
    assert!(!text.contains("rkyv"), "--no-peers leaves the peers out");
    assert!(!text.contains("peers"), "and says nothing of them: {text}");

    let plot = std::fs::read_to_string(&svg).expect("the plot was written");
    assert!(plot.starts_with("<svg"), "an SVG document");
    assert!(plot.contains("copy-translate") && plot.contains("offset"));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn compare_puts_the_peers_beside_rows_of_their_shape() {
    let text = relshm(&[
        "compare",
        "--quick",
        "--sizes",
        "1000",
        "--structures",
        "list,vec",
    ]);
    let peers = ["rkyv-validated", "rkyv-unchecked", "postcard"];
    let vec = table(&text, "vec of 1e3 elements");
    assert!(
        vec.iter().any(|l| l.contains(
            "peers (contiguous, the same shape as relshm's vec; same data set, in this process)"
        )),
        "{text}"
    );
    for peer in peers {
        let row = vec
            .iter()
            .find(|l| l.starts_with(peer))
            .unwrap_or_else(|| panic!("no {peer} row beside the vector in\n{text}"));
        assert!(row.contains(" x"), "ratios to the vector's baseline: {row}");
    }
    let list = table(&text, "list of 1e3 elements");
    assert!(
        list.iter()
            .any(|l| l.contains("peers: none of this shape (linked); theirs are under vec")),
        "{text}"
    );
    assert!(
        !list.iter().any(|l| peers.iter().any(|p| l.starts_with(p))),
        "no peer row beside the list in\n{text}"
    );
    assert!(
        text.contains("  vec  rkyv-validated vs offset:  1e3 "),
        "{text}"
    );
    assert!(!text.contains("list rkyv-validated vs offset"), "{text}");
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
