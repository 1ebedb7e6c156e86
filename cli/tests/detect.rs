//! `tinyvae detect`, run as the real binary on the committed default model: the
//! detector sees the faults the negative ELBO alone is blind to (dead pixels, a dark
//! occlusion, a dead region), the report covers every kind, and bad settings are
//! refused by name.

mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::train::data;
use common::{fails_with, ok};

fn tinyvae(args: &[&str]) -> Output {
    let model = Path::new(env!("CARGO_MANIFEST_DIR")).join("../models/tinyvae-mnist.safetensors");
    Command::new(env!("CARGO_BIN_EXE_tinyvae"))
        .arg("detect")
        .arg("--model")
        .arg(model)
        .arg("--data")
        .arg(data())
        .args(args)
        .output()
        .expect("running tinyvae detect")
}

#[test]
fn the_detector_sees_what_the_elbo_misses() {
    let dir = tempfile::tempdir().expect("temp dir");
    let json = dir.path().join("detect.json");
    let out = tinyvae(&[
        "--json",
        json.to_str().expect("utf-8 path"),
        "--calibrate",
        "200",
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    ok(out, "tinyvae detect");
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).expect("report written"))
            .expect("report is JSON");
    let rows = report["rows"].as_array().expect("rows");
    assert_eq!(rows.len(), 22, "{stdout}");
    let row = |kind: &str| {
        rows.iter()
            .find(|r| r["kind"] == kind)
            .unwrap_or_else(|| panic!("no row for {kind}: {stdout}"))
    };
    for kind in ["dead-pixels", "occlusion", "dead-region"] {
        let r = row(kind);
        let (elbo, detector) = (r["auroc_elbo"].as_f64(), r["auroc"].as_f64());
        let (Some(elbo), Some(detector)) = (elbo, detector) else {
            panic!("{kind}: {r}");
        };
        // The ELBO is near a coin on these; the detector well above it.
        assert!(elbo < 0.7, "{kind}: -ELBO AUROC {elbo}");
        assert!(detector > 0.9, "{kind}: detector AUROC {detector}");
    }
    // Dead pixels leave zeros in strokes in patterns no clean digit has: the `unseen`
    // term sees them, and so does the fault head, which was shown them.
    let dead = &row("dead-pixels")["fired"];
    assert!(dead == "unseen" || dead == "head", "{stdout}");
    // Stuck pixels are isolated bright pixels, and one outside the digit makes it span
    // more rows than any clean digit (the tail fit's eighth-of-a-row scale).
    assert_eq!(row("stuck-pixels")["fired"], "extent", "{stdout}");
    let held: Vec<&str> = rows
        .iter()
        .filter(|r| r["held_out"] == true)
        .filter_map(|r| r["kind"].as_str())
        .collect();
    assert_eq!(held.len(), 4, "{held:?}");
    let pooled = report["pooled_auroc"].as_f64().expect("pooled AUROC");
    let elbo = report["pooled_auroc_elbo"]
        .as_f64()
        .expect("pooled ELBO AUROC");
    assert!(pooled > elbo + 0.1, "pooled {pooled} vs -ELBO {elbo}");
    // The threshold was set on the other half; its false positives stay near 1%.
    let fpr = report["false_positive_rate"].as_f64().expect("FPR");
    assert!(fpr <= 0.03, "false positives {fpr}");
    assert!(stdout.contains("Pooled AUROC"), "{stdout}");
    // The device's way of calibrating, from 200 frames, keeps false positives low on
    // the other clean frames (its threshold comes from frames its terms did not see).
    let line = stdout
        .lines()
        .find(|l| l.starts_with("Threshold: device"))
        .unwrap_or_else(|| panic!("no calibration summary: {stdout}"));
    let device_fpr: f64 = line
        .split("false positives device ")
        .nth(1)
        .and_then(|r| r.split('%').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no device rate in {line:?}"));
    assert!(device_fpr <= 3.0, "{line}");
}

#[test]
fn the_float_checkpoint_is_reported_beside_its_device_twin() {
    let checkpoint = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../models/tinyvae-mnist.checkpoint.safetensors");
    let out = tinyvae(&[
        "--checkpoint",
        checkpoint.to_str().expect("utf-8 path"),
        "--limit",
        "400",
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    ok(out, "tinyvae detect --checkpoint");
    assert!(
        stdout.contains("AUROC detector, float | AUROC detector, device"),
        "{stdout}"
    );
    // One row per kind; float and device detectors within 0.02 AUROC of each other.
    let rows: Vec<&str> = stdout
        .lines()
        .filter(|l| l.starts_with("| ") && !l.starts_with("| fault"))
        .collect();
    assert_eq!(rows.len(), 22, "{stdout}");
    for row in rows {
        let cells: Vec<&str> = row.split('|').map(str::trim).collect();
        let float: f64 = cells[5].parse().unwrap_or_else(|_| panic!("{row}"));
        let device: f64 = cells[6].parse().unwrap_or_else(|_| panic!("{row}"));
        assert!((float - device).abs() < 0.02, "{row}");
    }
    assert!(stdout.contains("\nfloat: pooled AUROC"), "{stdout}");
    assert!(stdout.contains("\ndevice: pooled AUROC"), "{stdout}");
}

#[test]
fn splits_report_each_kinds_recall_on_every_split() {
    let out = tinyvae(&["--limit", "400", "--seed", "3", "--splits", "2"]);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    ok(out, "tinyvae detect --splits 2");
    let table = stdout
        .split("Recall on 2 seeded splits")
        .nth(1)
        .unwrap_or_else(|| panic!("no splits table: {stdout}"));
    assert!(table.contains("| seed 3 | seed 4 | mean |"), "{table}");
    let rows: Vec<Vec<&str>> = table
        .lines()
        .filter(|l| l.starts_with("| ") && !l.starts_with("| kind |"))
        .map(|l| l.split('|').map(str::trim).collect())
        .collect();
    // 22 kinds, then false positives, pooled AUROC, threshold and the count below 90%.
    assert_eq!(rows.len(), 26, "{table}");
    let percent = |cell: &str| -> f64 {
        cell.trim_end_matches('%')
            .parse()
            .unwrap_or_else(|_| panic!("{cell:?} in {table}"))
    };
    for row in &rows[..22] {
        // | kind | held out | seed 3 | seed 4 | mean | lowest | highest |
        let (a, b, mean) = (percent(row[3]), percent(row[4]), percent(row[5]));
        assert!((mean - (a + b) / 2.0).abs() < 0.06, "{row:?}");
        assert_eq!(percent(row[6]), a.min(b), "{row:?}");
        assert_eq!(percent(row[7]), a.max(b), "{row:?}");
    }
    // The first split is the report printed above the table: its recalls are the same.
    let first = stdout
        .lines()
        .find(|l| l.starts_with("| occlusion |"))
        .unwrap_or_else(|| panic!("{stdout}"));
    let occlusion = rows
        .iter()
        .find(|r| r[1] == "occlusion")
        .unwrap_or_else(|| panic!("{table}"));
    assert!(
        first.contains(&format!("| {} |", occlusion[3])),
        "{first} / {occlusion:?}"
    );
    fails_with(tinyvae(&["--splits", "1"]), "one split", "--splits");
}

#[test]
fn bad_settings_are_refused_by_name() {
    fails_with(tinyvae(&["--tail", "0.4"]), "quantile 0.4", "--tail");
    fails_with(tinyvae(&["--fpr", "1"]), "fpr 1", "--fpr");
    fails_with(tinyvae(&["--calibrate", "3"]), "calibrate 3", "--calibrate");
    fails_with(tinyvae(&["--severity", "0"]), "severity 0", "--severity");
    fails_with(
        tinyvae(&["--limit", "2"]),
        "two frames",
        "at least 4 clean frames",
    );
}

#[test]
fn eval_reports_the_detector_float_and_device() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let run = |device_model: &Path| {
        Command::new(env!("CARGO_BIN_EXE_tinyvae"))
            .arg("eval")
            .arg("--model")
            .arg(root.join("models/tinyvae-mnist.checkpoint.safetensors"))
            .arg("--device-model")
            .arg(device_model)
            .arg("--data")
            .arg(data())
            .args(["--k", "1", "--limit", "300"])
            .output()
            .expect("running tinyvae eval")
    };
    let out = run(&root.join("models/tinyvae-mnist.safetensors"));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    ok(out, "tinyvae eval --device-model");
    let report: serde_json::Value = serde_json::from_str(&stdout).expect("stdout is JSON");
    for side in ["float", "device"] {
        let rows = report["faults"][side]["rows"].as_array();
        assert_eq!(rows.map(Vec::len), Some(22), "{side}: {stdout}");
    }
    assert!(stderr.contains("AUROC detector, float"), "{stderr}");
    let missing = root.join("models/no-such-model.safetensors");
    fails_with(
        run(&missing),
        "a missing device model",
        "no-such-model.safetensors",
    );
}
