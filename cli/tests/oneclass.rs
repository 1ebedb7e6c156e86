//! `tinyvae oneclass`, run as the real binary on one digit with a tiny model: the table
//! and the JSON carry the relative reconstruction error beside the reconstruction term
//! and the ELBO, and a model of 0s tells other digits from 0s by it.

mod common;

use std::process::Command;

use common::ok;
use common::train::data;

#[test]
fn one_digit_table_ranks_by_the_relative_error() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (json, md) = (dir.path().join("oc.json"), dir.path().join("oc.md"));
    let out = Command::new(env!("CARGO_BIN_EXE_tinyvae"))
        .args([
            "oneclass",
            "--classes",
            "0",
            "--limit",
            "300",
            "--hidden",
            "16",
        ])
        .args([
            "--latent",
            "2",
            "--epochs",
            "10",
            "--likelihood",
            "gaussian",
        ])
        .arg("--data")
        .arg(data())
        .arg("--json")
        .arg(&json)
        .arg("--markdown")
        .arg(&md)
        .output()
        .expect("running tinyvae oneclass");
    ok(out, "tinyvae oneclass");
    let j: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&json).expect("JSON written")).expect("JSON");
    assert_eq!(j["score"], "relative reconstruction error at z = mu");
    let rows = j["classes"].as_array().expect("classes");
    assert_eq!(rows.len(), 1, "{j}");
    let row = &rows[0];
    assert_eq!(row["class"], "0");
    assert_eq!(row["train_images"], 300);
    let au = |key: &str| row[key].as_f64().unwrap_or_else(|| panic!("{key}: {row}"));
    // Ten epochs on 300 zeros separate them from the other digits (86% here).
    assert!(au("auroc") > 70.0 && au("auroc") <= 100.0, "{row}");
    for key in ["reconstruction_auroc", "elbo_auroc", "corruption_auroc"] {
        assert!((0.0..=100.0).contains(&au(key)), "{key}: {row}");
    }
    assert_eq!(j["mean_auroc"].as_f64(), Some(au("auroc")));
    let table = std::fs::read_to_string(&md).expect("table written");
    assert!(
        table.contains("relative reconstruction error") && table.contains("| 0 | 300 |"),
        "{table}"
    );
}
