//! `tinyvae probe`, `latent-map` and `compress`, run as the real binary on tiny models
//! trained for a few epochs on a few hundred digits: each writes what it promises, with
//! sane numbers, and refuses bad arguments by name.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::train::{command, data};
use common::{fails_with, ok};

fn tinyvae(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tinyvae"))
        .args(args)
        .arg("--data")
        .arg(data())
        .output()
        .expect("running tinyvae")
}

/// A tiny model (hidden 16, latent 2 unless `extra` says otherwise) trained on 400
/// digits; `extra` picks kind and latent.
fn tiny_model(dir: &Path, name: &str, extra: &[&str]) -> PathBuf {
    let out = dir.join(name);
    let mut flags = vec!["--hidden", "16", "--limit", "400", "--epochs", "3"];
    if !extra.contains(&"--latent") {
        flags.extend(["--latent", "2"]);
    }
    flags.extend(extra);
    ok(
        command(&out, &flags)
            .output()
            .expect("running tinyvae train"),
        "training a tiny model",
    );
    out.join("model.safetensors")
}

fn json(path: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(path).expect("the JSON file")).expect("valid JSON")
}

fn repo(path: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(path)
        .display()
        .to_string()
}

#[test]
fn probe_reports_every_classifier_and_refuses_zero_labels() {
    let dir = tempfile::tempdir().expect("temp dir");
    let model = tiny_model(dir.path(), "vae", &[]);
    let m = model.to_str().expect("utf-8 path");
    let j = dir.path().join("probe.json");
    let out = tinyvae(&[
        "probe",
        "--model",
        m,
        "--labels",
        "20,all",
        "--limit",
        "500",
        "--json",
        j.to_str().expect("utf-8 path"),
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    ok(out, "probe");
    assert!(stdout.contains("Kingma et al. 2014"), "{stdout}");
    assert!(
        stdout.contains("| VAE mu | 2 | logistic (L2) |"),
        "{stdout}"
    );
    let r = json(&j);
    let results = r["report"]["results"].as_array().expect("results");
    // 2 budgets x 3 feature sets x 2 classifiers.
    assert_eq!(results.len(), 12);
    assert_eq!(r["report"]["train_images"], 500);
    assert_eq!(r["report"]["test_images"], 2004);
    for x in results {
        let e = x["test_error"].as_f64().expect("an error rate");
        assert!((0.0..=1.0).contains(&e), "{x}");
        if x["labels"] == 500 && x["features"] == "pixels" {
            // 500 labelled digits: both classifiers are far better than chance (90%).
            assert!(e < 0.3, "{x}");
        }
    }
    assert_eq!(
        results.iter().filter(|x| x["labels"] == 20).count(),
        6,
        "20 labels, class balanced"
    );
    fails_with(
        tinyvae(&["probe", "--model", m, "--labels", "100,0"]),
        "--labels 0",
        "--labels",
    );
    fails_with(
        tinyvae(&["probe", "--model", m, "--labels", "some"]),
        "--labels some",
        "or \"all\"",
    );
}

#[test]
fn latent_map_draws_two_d_models_and_needs_project_for_wider_ones() {
    let dir = tempfile::tempdir().expect("temp dir");
    let vae = tiny_model(dir.path(), "vae", &[]);
    let ae = tiny_model(dir.path(), "ae", &["--kind", "ae"]);
    let png = dir.path().join("map.png");
    let (v, a) = (
        vae.to_str().expect("utf-8 path"),
        ae.to_str().expect("utf-8 path"),
    );
    let p = png.to_str().expect("utf-8 path");
    ok(
        tinyvae(&[
            "latent-map",
            "--model",
            v,
            "--model",
            a,
            "--grid",
            "6",
            "--limit",
            "300",
            "--out",
            p,
        ]),
        "latent-map of a VAE and an AE",
    );
    let one = image::image_dimensions(&png).expect("a PNG");
    ok(
        tinyvae(&["latent-map", "--model", v, "--limit", "300", "--out", p]),
        "latent-map of one model",
    );
    let single = image::image_dimensions(&png).expect("a PNG");
    assert!(
        one.0 > single.0 + 300,
        "two columns are wider: {one:?} vs {single:?}"
    );

    let wide = tiny_model(dir.path(), "wide", &["--latent", "3"]);
    let w = wide.to_str().expect("utf-8 path");
    fails_with(
        tinyvae(&["latent-map", "--model", w, "--limit", "100", "--out", p]),
        "a 3-D latent without --project",
        "pass --project",
    );
    ok(
        tinyvae(&[
            "latent-map",
            "--model",
            w,
            "--project",
            "--limit",
            "100",
            "--out",
            p,
        ]),
        "a 3-D latent with --project",
    );
    fails_with(
        tinyvae(&["latent-map", "--model", v, "--grid", "1", "--out", p]),
        "--grid 1",
        "--grid",
    );
}

#[test]
fn compress_measures_the_code_beside_jpeg_and_the_device_twin() {
    let dir = tempfile::tempdir().expect("temp dir");
    let j = dir.path().join("rd.json");
    let plot = dir.path().join("rd.png");
    let (ckpt, dev) = (
        repo("models/tinyvae-mnist.checkpoint.safetensors"),
        repo("models/tinyvae-mnist.safetensors"),
    );
    ok(
        tinyvae(&[
            "compress",
            "--model",
            &ckpt,
            "--device-model",
            &dev,
            "--limit",
            "60",
            "--bits",
            "1,8",
            "--jpeg-quality",
            "1,90",
            "--plot",
            plot.to_str().expect("utf-8 path"),
            "--json",
            j.to_str().expect("utf-8 path"),
        ]),
        "compress",
    );
    assert!(image::image_dimensions(&plot).is_ok(), "a PNG plot");
    let r = json(&j);
    assert_eq!(r["test_images"], 60);
    // 16 dimensions: 2 bytes at 1 bit, 16 at 8.
    let bytes: Vec<f64> = r["vae"]
        .as_array()
        .expect("vae")
        .iter()
        .map(|p| p["bytes"].as_f64().expect("bytes"))
        .collect();
    assert_eq!(bytes, [2.0, 16.0]);
    let psnr = |v: &serde_json::Value| v["psnr"].as_f64().expect("psnr");
    let (float8, dev8) = (&r["vae"][1], &r["device"][1]);
    assert!(psnr(float8) > psnr(&r["vae"][0]), "8 bits beat 1 bit");
    // The fixed-point twin decodes what the float model does, to within a dB.
    assert!(
        (psnr(float8) - psnr(dev8)).abs() < 1.0,
        "{float8} vs {dev8}"
    );
    for p in r["jpeg"].as_array().expect("jpeg") {
        let (scan, file) = (
            p["bytes"].as_f64().expect("scan bytes"),
            p["file_bytes"].as_f64().expect("file bytes"),
        );
        assert!(scan > 0.0 && file > scan + 100.0, "{p}");
    }
    assert!(psnr(&r["jpeg"][1]) > psnr(&r["jpeg"][0]));
    let png = r["png_bytes"].as_f64().expect("png bytes");
    assert!(png > 50.0 && png < 784.0, "{png}");
    assert_eq!(r["pca"].as_array().expect("pca").len(), 2);

    fails_with(
        tinyvae(&["compress", "--model", &ckpt, "--bits", "9"]),
        "--bits 9",
        "--bits",
    );
    fails_with(
        tinyvae(&[
            "compress",
            "--model",
            &ckpt,
            "--device-model",
            "no/such/file.safetensors",
        ]),
        "a missing device model",
        "--device-model no/such/file.safetensors",
    );
}
