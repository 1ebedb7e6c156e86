//! `tinyvae train --denoise` and `--mc-samples`, `tinyvae eval --mc-samples` and
//! `tinyvae denoise`, run as the real binary on tiny models: the settings reach the
//! checkpoint, the denoise command writes its picture and table with finite scores, and
//! bad values are refused by flag name with what was expected.

mod common;

use std::path::Path;
use std::process::Command;

use common::train::{data, train};
use common::{fails_with, ok};

/// The `train` record stored in a checkpoint's metadata.
fn train_record(model: &Path) -> serde_json::Value {
    let bytes = std::fs::read(model).expect("model file");
    let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes).expect("safetensors header");
    let meta = meta.metadata().clone().expect("metadata");
    serde_json::from_str(meta.get("train").expect("train key")).expect("train JSON")
}

fn tinyvae() -> Command {
    Command::new(env!("CARGO_BIN_EXE_tinyvae"))
}

#[test]
fn denoising_and_several_draws_train_evaluate_and_denoise() {
    let dir = tempfile::tempdir().expect("temp dir");
    let small = ["--limit", "300", "--epochs", "2", "--seed", "2"];
    let dvae = dir.path().join("dvae");
    let mut flags = small.to_vec();
    flags.extend(["--denoise", "noise,drift", "--mc-samples", "3"]);
    ok(train(&dvae, &flags), "train --denoise --mc-samples");
    let record = train_record(&dvae.join("model.safetensors"));
    assert_eq!(record["mc_samples"], 3, "{record}");
    assert_eq!(
        record["denoise"],
        serde_json::json!(["noise", "drift"]),
        "{record}"
    );

    let dae = dir.path().join("dae");
    let mut flags = small.to_vec();
    flags.extend(["--kind", "ae", "--denoise", "all", "--denoise-frac", "0.5"]);
    ok(train(&dae, &flags), "train --kind ae --denoise all");
    // `all` is every kind of `tinyvae faults` (`pixel` the seven pixel faults).
    assert_eq!(
        train_record(&dae.join("model.safetensors"))["denoise"]
            .as_array()
            .map(Vec::len),
        Some(22)
    );

    let eval = tinyvae()
        .args(["eval", "--k", "4", "--limit", "50", "--mc-samples", "4"])
        .arg("--model")
        .arg(dvae.join("model.safetensors"))
        .arg("--data")
        .arg(data())
        .output()
        .expect("running tinyvae eval");
    let stdout = String::from_utf8_lossy(&eval.stdout).into_owned();
    ok(eval, "eval --mc-samples 4");
    let report: serde_json::Value = serde_json::from_str(&stdout).expect("eval JSON");
    assert_eq!(report["mc_samples"], 4);
    assert!(report["neg_elbo_mc"].as_f64().is_some_and(f64::is_finite));

    let png = dir.path().join("denoise.png");
    let table = dir.path().join("denoise.json");
    let out = tinyvae()
        .args(["denoise", "--limit", "40", "--examples", "3"])
        .arg("--model")
        .arg(format!("dvae={}", dvae.join("model.safetensors").display()))
        .arg("--model")
        .arg(dae.join("model.safetensors"))
        .arg("--data")
        .arg(data())
        .arg("--out")
        .arg(&png)
        .arg("--json")
        .arg(&table)
        .output()
        .expect("running tinyvae denoise");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    ok(out, "denoise");
    assert!(stdout.contains("| drift |"), "{stdout}");
    assert!(
        stdout.contains("dvae PSNR") && stdout.contains("dae PSNR"),
        "{stdout}"
    );
    let picture = image::open(&png).expect("denoise.png");
    assert!(picture.width() > 0 && picture.height() > picture.width());
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&table).expect("table")).expect("JSON");
    let kinds = report["kinds"].as_array().expect("kinds");
    assert_eq!(kinds.len(), 7);
    for kind in kinds {
        for model in kind["denoised"].as_array().expect("models") {
            let psnr = model["psnr"].as_f64().expect("psnr");
            let ssim = model["ssim"].as_f64().expect("ssim");
            assert!(psnr.is_finite() && psnr > 0.0, "{kind}");
            assert!(ssim.is_finite() && ssim <= 1.0, "{kind}");
        }
    }
}

#[test]
fn bad_denoise_and_draw_flags_are_refused_by_name() {
    let dir = tempfile::tempdir().expect("temp dir");
    let run = dir.path().join("run");
    let msg = fails_with(
        train(&run, &["--denoise", "noise,fog"]),
        "--denoise noise,fog",
        "--denoise",
    );
    assert!(msg.contains("fog") && msg.contains("salt-pepper"), "{msg}");
    fails_with(
        train(&run, &["--mc-samples", "0"]),
        "--mc-samples 0",
        "--mc-samples",
    );
    fails_with(
        train(&run, &["--denoise", "all", "--denoise-frac", "0"]),
        "--denoise-frac 0",
        "--denoise-frac",
    );
    let out = tinyvae()
        .args(["denoise", "--model", "=x"])
        .output()
        .expect("running tinyvae denoise");
    fails_with(out, "denoise --model =x", "LABEL=PATH");
    assert!(!run.join("model.safetensors").exists());
}

/// The faults and the extra noise draws come from the epoch's stream: a denoising
/// L = 2 run stopped and resumed (without repeating the flags) ends bit for bit like
/// one that never stopped.
#[test]
fn a_resumed_denoising_run_ends_like_an_uninterrupted_one() {
    let dir = tempfile::tempdir().expect("temp dir");
    let flags = [
        "--limit",
        "200",
        "--seed",
        "5",
        "--denoise",
        "all",
        "--denoise-frac",
        "0.7",
        "--mc-samples",
        "2",
    ];
    let whole = dir.path().join("whole");
    let mut all = flags.to_vec();
    all.extend(["--epochs", "2"]);
    ok(train(&whole, &all), "the uninterrupted run");
    let parts = dir.path().join("parts");
    let mut first = flags.to_vec();
    first.extend(["--epochs", "1"]);
    ok(train(&parts, &first), "the first epoch");
    // Flags that contradict the checkpoint's training are refused by name, and nothing
    // is trained; repeating the checkpoint's own settings is fine.
    for (flag, value) in [
        ("--denoise", "noise"),
        ("--mc-samples", "1"),
        ("--denoise-frac", "1"),
        ("--batch-size", "32"),
    ] {
        let out = train(&parts, &["--resume", "--epochs", "2", flag, value]);
        fails_with(out, &format!("--resume {flag} {value}"), flag);
    }
    let out = train(&parts, &["--resume", "--epochs", "2", "--mc-samples", "3"]);
    fails_with(out, "--resume --mc-samples 3", "which trains with 2");
    assert_eq!(
        train_record(&parts.join("last.safetensors"))["epochs"],
        1,
        "a refused resume left the checkpoint as it was"
    );
    ok(
        train(
            &parts,
            &[
                "--resume",
                "--epochs",
                "2",
                "--mc-samples",
                "2",
                "--denoise-frac",
                "0.7",
            ],
        ),
        "the resumed second epoch",
    );
    common::train::assert_same_tensors(
        &whole.join("model.safetensors"),
        &parts.join("model.safetensors"),
        "the resumed denoising run",
    );
}
