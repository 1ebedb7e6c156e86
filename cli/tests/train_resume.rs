//! `tinyvae train --resume`, run as the real binary: a run stopped and resumed without
//! repeating its flags ends with the same weights as one that never stopped; a resume
//! without `--epochs` keeps the run's own budget; a flag that contradicts the
//! checkpoint's data split is refused by name.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::{fails_with, ok};

fn data() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../data/mnist-10k")
}

/// `tinyvae train` on a small, fast setup, with `extra` flags.
fn train(out: &Path, extra: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tinyvae"))
        .args(["train", "--quiet", "--hidden", "16", "--latent", "2"])
        .args(["--batch-size", "50", "--patience", "0"])
        .arg("--data")
        .arg(data())
        .arg("--out")
        .arg(out)
        .args(extra)
        .output()
        .expect("running tinyvae")
}

/// The epoch lines of a run's metrics.jsonl (the final summary line excluded).
fn epoch_lines(run: &Path) -> usize {
    std::fs::read_to_string(run.join("metrics.jsonl"))
        .expect("metrics.jsonl")
        .lines()
        .filter(|l| l.contains("\"epoch\"") && !l.contains("\"event\""))
        .count()
}

/// Every tensor of a safetensors file, by name.
fn tensors(path: &Path) -> Vec<(String, Vec<u8>)> {
    let bytes = std::fs::read(path).expect("model file");
    let st = safetensors::SafeTensors::deserialize(&bytes).expect("safetensors");
    let mut out: Vec<(String, Vec<u8>)> = st
        .tensors()
        .into_iter()
        .map(|(name, view)| (name, view.data().to_vec()))
        .collect();
    out.sort();
    out
}

#[test]
fn a_resumed_run_ends_exactly_like_an_uninterrupted_one() {
    let dir = tempfile::tempdir().expect("temp dir");
    let split = ["--seed", "7", "--val-frac", "0.2", "--limit", "300"];
    let whole = dir.path().join("whole");
    let mut flags = split.to_vec();
    flags.extend(["--epochs", "4"]);
    ok(train(&whole, &flags), "the uninterrupted run");

    let parts = dir.path().join("parts");
    let mut flags = split.to_vec();
    flags.extend(["--epochs", "2"]);
    ok(train(&parts, &flags), "the first half");
    // No --seed, --val-frac or --limit: the checkpoint's split must be used.
    ok(
        train(&parts, &["--resume", "--epochs", "4"]),
        "the resumed second half",
    );

    assert_eq!(
        epoch_lines(&parts),
        4,
        "one log line per epoch, none repeated"
    );
    let (a, b) = (
        tensors(&whole.join("model.safetensors")),
        tensors(&parts.join("model.safetensors")),
    );
    assert_eq!(a.len(), b.len());
    for ((name_a, data_a), (name_b, data_b)) in a.iter().zip(&b) {
        assert_eq!(name_a, name_b);
        assert!(data_a == data_b, "tensor {name_a} differs after the resume");
    }
}

#[test]
fn resume_keeps_the_budget_and_refuses_another_split() {
    let dir = tempfile::tempdir().expect("temp dir");
    let run = dir.path().join("run");
    ok(
        train(&run, &["--seed", "3", "--limit", "200", "--epochs", "3"]),
        "the run",
    );
    // Without --epochs the run's own budget (3) stands: nothing is left to train.
    ok(train(&run, &["--resume"]), "a resume without --epochs");
    assert_eq!(
        epoch_lines(&run),
        3,
        "the resume must not train past 3 epochs"
    );

    for (flag, value) in [("--seed", "4"), ("--limit", "100"), ("--val-frac", "0.3")] {
        let what = format!("--resume {flag} {value}");
        let stderr = fails_with(
            train(&run, &["--resume", flag, value]),
            &what,
            "contradicts",
        );
        assert!(stderr.contains(flag), "{what}: {stderr}");
    }
    // Repeating the checkpoint's own values is fine.
    ok(
        train(&run, &["--resume", "--seed", "3", "--limit", "200"]),
        "a resume that repeats the split",
    );
}
