//! `tinyvae train --resume`, run as the real binary: a run stopped and resumed without
//! repeating its flags ends with the same weights as one that never stopped; a resume
//! without `--epochs` keeps the run's own budget; a flag that contradicts the
//! checkpoint's data split is refused by name; flags that would train on nothing are
//! refused by name with the range they take.

mod common;

use common::train::{assert_same_tensors, epoch_lines, train};
use common::{fails_with, ok};

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
        epoch_lines(&parts).len(),
        4,
        "one log line per epoch, none repeated"
    );
    assert_same_tensors(
        &whole.join("model.safetensors"),
        &parts.join("model.safetensors"),
        "the resumed run",
    );
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
        epoch_lines(&run).len(),
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

/// Flags that would train on nothing are refused before any training, each naming the
/// flag and the range it takes.
#[test]
fn flags_that_leave_nothing_to_train_on_are_refused() {
    let dir = tempfile::tempdir().expect("temp dir");
    let run = dir.path().join("run");
    for (flags, needle) in [
        (
            &["--val-frac", "1"][..],
            "expected a fraction in [0, 1), got 1",
        ),
        (
            &["--val-frac", "1.5"],
            "expected a fraction in [0, 1), got 1.5",
        ),
        (
            &["--val-frac", "-0.1"],
            "expected a fraction in [0, 1), got -0.1",
        ),
        (
            &["--val-frac", "NaN"],
            "expected a fraction in [0, 1), got NaN",
        ),
        (
            &["--limit", "0"],
            "expected a whole number of at least 1, got 0",
        ),
        (
            &["--epochs", "0"],
            "expected a whole number of at least 1, got 0",
        ),
    ] {
        let what = flags.join(" ");
        let stderr = fails_with(train(&run, flags), &what, needle);
        assert!(
            stderr.contains(flags[0]),
            "{what} must name {}: {stderr}",
            flags[0]
        );
    }
    // Splits of valid flags that leave one side empty.
    fails_with(
        train(&run, &["--limit", "3", "--val-frac", "0.1"]),
        "3 images with --val-frac 0.1",
        "--val-frac 0.1 of the 3 images",
    );
    fails_with(
        train(&run, &["--limit", "1", "--val-frac", "0.9"]),
        "1 image with --val-frac 0.9",
        "no training images: --val-frac 0.9 holds out 1 of the 1 images",
    );
    assert!(
        !run.join("last.safetensors").exists() && !run.join("model.safetensors").exists(),
        "a refused run writes no model"
    );
}
