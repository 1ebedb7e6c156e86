//! Running `tinyvae train` on a small, fast setup and reading what it wrote.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The bundled 10k-digit subset.
pub fn data() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../data/mnist-10k")
}

/// `tinyvae train` into `out` with `extra` flags (the architecture among them), batches
/// of 50 and no early stopping; not started.
pub fn command(out: &Path, extra: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_tinyvae"));
    c.args(["train", "--quiet", "--batch-size", "50", "--patience", "0"])
        .arg("--data")
        .arg(data())
        .arg("--out")
        .arg(out)
        .args(extra);
    c
}

/// Runs [`command`] to the end with a tiny model (hidden 16, latent 2; a resumed run
/// keeps its checkpoint's).
pub fn train(out: &Path, extra: &[&str]) -> Output {
    let mut flags = vec!["--hidden", "16", "--latent", "2"];
    flags.extend(extra);
    command(out, &flags).output().expect("running tinyvae")
}

/// The epoch lines of a run's metrics.jsonl (the final summary line excluded).
pub fn epoch_lines(run: &Path) -> Vec<String> {
    std::fs::read_to_string(run.join("metrics.jsonl"))
        .expect("metrics.jsonl")
        .lines()
        .filter(|l| l.contains("\"epoch\"") && !l.contains("\"event\""))
        .map(str::to_owned)
        .collect()
}

/// Every tensor of a safetensors file, by name, as raw bytes.
pub fn tensors(path: &Path) -> Vec<(String, Vec<u8>)> {
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

/// Asserts that two safetensors files hold the same tensors, bit for bit.
pub fn assert_same_tensors(a: &Path, b: &Path, what: &str) {
    let (a, b) = (tensors(a), tensors(b));
    let names = |t: &[(String, Vec<u8>)]| t.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>();
    assert_eq!(names(&a), names(&b), "{what}: tensor names");
    for ((name, data_a), (_, data_b)) in a.iter().zip(&b) {
        assert!(data_a == data_b, "{what}: tensor {name} differs");
    }
}
