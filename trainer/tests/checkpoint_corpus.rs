//! The checkpoint fuzz targets' corpus (`fuzz/corpus/checkpoint_load/`, seeds and every
//! crash found, see RELIABILITY.md), replayed through the trainer's whole loader (the
//! validator, then candle) on every `cargo test`. CI fuzzes the validator alone
//! (`checkpoint_load`); the whole loader's target (`checkpoint_candle`) needs an
//! instrumented build of candle and tract that takes far longer than CI allows.
//!
//! Every file must load as a checkpoint or a device model file, or give a typed error
//! naming the file; the validator (`tinyvae_checkpoint::check`) must accept exactly the
//! files that load, with the same metadata; the seeds written from real checkpoints must
//! load, and the resume seeds must pass `check_resume`.

use std::path::{Path, PathBuf};

use candle_core::Device;
use tinyvae_shared::model_file;
use tinyvae_trainer::checkpoint;

fn corpus() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/checkpoint_load");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    files
}

#[test]
fn the_checkpoint_fuzz_corpus_loads_or_gives_named_errors() {
    let files = corpus();
    assert!(!files.is_empty(), "the checkpoint corpus is empty");
    let (mut checkpoints, mut device_models) = (0, 0);
    for path in &files {
        let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        // The validator (what CI fuzzes) and the whole loader agree on every file.
        let checked = tinyvae_checkpoint::check(path, &bytes);
        match checkpoint::load_bytes(path, &bytes, &Device::Cpu) {
            Ok(loaded) => {
                checkpoints += 1;
                let checked = checked
                    .unwrap_or_else(|e| panic!("{name} loads, but the validator refuses it: {e}"));
                assert_eq!(checked.meta, loaded.meta, "{name}");
            }
            Err(e) => {
                assert!(
                    e.to_string().contains(&path.display().to_string()),
                    "{name}: the error does not name the file: {e}"
                );
                assert!(checked.is_err(), "{name}: the validator accepts it: {e}");
            }
        }
        match model_file::from_bytes(path, bytes.clone()) {
            Ok(_) => device_models += 1,
            Err(e) => assert!(
                e.to_string().contains(&path.display().to_string()),
                "{name}: the error does not name the file: {e}"
            ),
        }
        // The seeds written whole from a real file must load as what they are.
        if name.starts_with("seed-checkpoint-") && !name.ends_with("-header") {
            assert!(
                checkpoint::load_bytes(path, &bytes, &Device::Cpu).is_ok(),
                "{name} is a real checkpoint and must load"
            );
            let resume = tinyvae_checkpoint::check_resume(path, &bytes);
            if name.starts_with("seed-checkpoint-resume") {
                let (_, state) = resume.unwrap_or_else(|e| panic!("{name} is a resume file: {e}"));
                assert_eq!(state.has_best, name.ends_with("-best"), "{name}");
            } else {
                assert!(resume.is_err(), "{name} is a model file, not a resume file");
            }
        }
    }
    println!(
        "checkpoint corpus: {} files, {checkpoints} load as checkpoints, {device_models} as device model files",
        files.len()
    );
    assert!(checkpoints >= 4 && device_models >= 2);
}
