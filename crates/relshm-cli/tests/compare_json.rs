//! `relshm compare --json` output validates against the documented schema
//! (docs/compare.schema.json), and says what the comparison promises: two processes at
//! different addresses except for the fixed-address baseline, ratios to that baseline,
//! peers only beside rows of their own shape.

use std::process::Command;

use serde_json::Value;

fn schema() -> Value {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../docs/compare.schema.json"
    );
    serde_json::from_str(&std::fs::read_to_string(path).expect("reading the schema"))
        .expect("the schema is JSON")
}

fn run_compare() -> Value {
    let out = Command::new(env!("CARGO_BIN_EXE_relshm"))
        .args(["compare", "--quick", "--json", "--sizes", "1000"])
        .output()
        .expect("running relshm compare");
    assert!(
        out.status.success(),
        "relshm compare failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("stdout is one JSON document")
}

fn errors(validator: &jsonschema::Validator, v: &Value) -> Vec<String> {
    validator
        .iter_errors(v)
        .map(|e| format!("{} at {}", e, e.instance_path))
        .collect()
}

#[test]
fn compare_json_validates_against_the_documented_schema() {
    let validator = jsonschema::validator_for(&schema()).expect("the schema compiles");
    let report = run_compare();
    let errs = errors(&validator, &report);
    assert!(errs.is_empty(), "schema violations: {errs:#?}");

    let results = report["results"].as_array().unwrap();
    // 3 structures x (fixed-raw, copy-translate, its memcpy limit, offset, baserel, segrel,
    // swizzle cold + warm, their first-touch limit), and 3 peers for the vector and the map
    // (none has a list).
    assert_eq!(results.len(), 3 * 9 + 2 * 3);
    for (structure, shape, peers) in [
        ("list", "linked", 0),
        ("vec", "contiguous", 3),
        ("map", "hash", 3),
    ] {
        let rows: Vec<&Value> = results
            .iter()
            .filter(|r| r["structure"] == structure)
            .collect();
        assert_eq!(rows.len(), 9 + peers, "{structure} rows");
        for r in &rows {
            assert_eq!(r["shape"], shape, "{structure}: {}", r["strategy"]);
        }
        let peer_rows = rows.iter().filter(|r| r["kind"] == "peer").count();
        assert_eq!(peer_rows, peers, "{structure}: peers beside it");
    }
    for r in results {
        let name = r["strategy"].as_str().unwrap();
        if r["kind"] == "limit" {
            let measured: &[&str] = match name {
                "memcpy" => &["handover", "export"],
                "first-touch" => &["read"],
                other => panic!("unexpected limit row {other}"),
            };
            for (w, m) in r["workloads"].as_object().unwrap() {
                assert_eq!(
                    m["ns"].as_f64().is_some_and(|ns| ns > 0.0),
                    measured.contains(&w.as_str()),
                    "{name} {w}: measured exactly where it is a limit"
                );
            }
            continue;
        }
        // Every cell with a limit says which, and the cells that must have one have one.
        let limited: &[(&str, &str)] = match name {
            "copy-translate" => &[("handover", "memcpy"), ("export", "memcpy")],
            "offset" | "baserel" | "segrel" | "swizzle-warm" => {
                &[("import", "memcpy of the image")]
            }
            "swizzle-cold" => &[("import", "memcpy of the image"), ("read", "first-touch")],
            _ => &[],
        };
        for (w, m) in r["workloads"].as_object().unwrap() {
            let of = limited.iter().find(|(k, _)| k == w).map(|(_, of)| *of);
            let x = m["limit"].as_f64();
            assert_eq!(x.is_some(), of.is_some(), "{name} {w}: x limit {x:?}");
            if let Some(of) = of {
                assert!(x.unwrap() > 0.0, "{name} {w}: x limit {x:?}");
                let said = m["limit_of"].as_str().unwrap_or_default();
                assert!(said.contains(of), "{name} {w}: limit of {said:?}");
            }
        }
        if r["kind"] == "peer" {
            continue;
        }
        let (p, c) = (&r["parent_base"], &r["child_base"]);
        if name == "fixed-raw" {
            assert_eq!(p, c, "the baseline maps at one address in both processes");
            for (w, m) in r["workloads"].as_object().unwrap() {
                if m["ns"].as_f64().is_some_and(|ns| ns > 0.0) {
                    assert_eq!(m["ratio"].as_f64(), Some(1.0), "{w} of the baseline");
                }
            }
        } else {
            assert_ne!(p, c, "{name}: the second process maps at another address");
        }
        let read = &r["workloads"]["read"];
        assert!(
            read["ns"].as_f64().unwrap() > 0.0,
            "{name} measured its reads"
        );
        let shares = ["fixed-raw", "offset", "baserel", "segrel"].contains(&name);
        assert_eq!(
            r["workloads"]["mutate"]["ns"].is_number(),
            shares,
            "{name}: contended mutations exactly where the structure is shared for writing"
        );
    }
    let crossovers = report["crossovers"].as_array().unwrap();
    for s in ["list", "vec", "map"] {
        assert!(
            crossovers
                .iter()
                .any(|c| c["structure"] == s && c["a"] == "copy-translate" && c["b"] == "offset"),
            "the copy-time vs offset crossover of {s} is reported"
        );
    }
}

#[test]
fn the_schema_rejects_what_compare_must_not_print() {
    let validator = jsonschema::validator_for(&schema()).expect("the schema compiles");
    let mut good = run_compare();
    assert!(errors(&validator, &good).is_empty());

    let mut bad = good.clone();
    bad["results"][0]["strategy"] = "teleport".into();
    assert!(
        !errors(&validator, &bad).is_empty(),
        "unknown strategy accepted"
    );

    let peer = |v: &Value| {
        v["results"]
            .as_array()
            .unwrap()
            .iter()
            .position(|r| r["kind"] == "peer" && r["structure"] == "vec")
            .expect("a peer row beside the vector")
    };
    let mut bad = good.clone();
    let i = peer(&bad);
    bad["results"][i]["structure"] = "list".into();
    bad["results"][i]["shape"] = "linked".into();
    assert!(
        !errors(&validator, &bad).is_empty(),
        "a peer row beside the list accepted"
    );

    let mut bad = good.clone();
    let i = peer(&bad);
    bad["results"][i]["shape"] = "linked".into();
    assert!(
        !errors(&validator, &bad).is_empty(),
        "a row of another shape than its structure's accepted"
    );

    let mut bad = good.clone();
    bad["results"][0]["workloads"]
        .as_object_mut()
        .unwrap()
        .remove("read");
    assert!(
        !errors(&validator, &bad).is_empty(),
        "missing workload accepted"
    );

    let mut bad = good.clone();
    bad["results"][0]["workloads"]["build"]["ns"] = Value::Null;
    bad["results"][0]["workloads"]["build"]["note"] = Value::Null;
    assert!(
        !errors(&validator, &bad).is_empty(),
        "a missing time without a reason accepted"
    );

    good.as_object_mut().unwrap().remove("machine");
    assert!(
        !errors(&validator, &good).is_empty(),
        "missing machine accepted"
    );
}
