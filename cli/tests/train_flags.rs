//! `tinyvae train`'s diagnostics, run as the real binary: `--profile` reports its phases
//! (as `step_profile_ms` with `--json`, and says when the CPU's fused step left nothing
//! to split), and `--device cuda` in a build without CUDA is refused by name.

mod common;

use common::train::train;
use common::{fails_with, ok};

#[test]
fn profile_reports_in_the_summary() {
    let dir = tempfile::tempdir().expect("temp dir");
    let flags = ["--limit", "100", "--epochs", "1", "--profile"];
    let out = train(
        &dir.path().join("json"),
        &[&flags[..], &["--json"]].concat(),
    );
    ok(out.clone(), "a profiled run with --json");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let done: serde_json::Value = stdout
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .find(|v: &serde_json::Value| v["event"] == "done")
        .expect("a done line");
    let phases = done["step_profile_ms"]
        .as_object()
        .expect("step_profile_ms");
    for phase in [
        "batch",
        "forward",
        "backward",
        "optimizer",
        "graph",
        "readback",
    ] {
        assert!(phases.contains_key(phase), "{phase} missing: {done}");
    }
    // On the CPU the fused step runs, which is not split into phases.
    assert_eq!(done["profiled_steps"], 0, "{done}");

    let out = train(&dir.path().join("text"), &flags);
    ok(out.clone(), "a profiled run");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("profile: no candle steps ran"),
        "the readable summary says what the profile saw: {stdout}"
    );
}

#[test]
fn cuda_without_the_feature_is_refused_by_name() {
    if cfg!(feature = "cuda") {
        return; // there, cuda:1 is a real device
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let out = train(dir.path(), &["--limit", "100", "--device", "cuda:1"]);
    fails_with(out, "--device cuda:1 without CUDA", "cannot open cuda:1");
}
