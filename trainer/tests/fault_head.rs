//! The fault head: training repeats bit for bit, a saved head reads back, a bad file is
//! named, and the int8 head (the device's code) follows the float one, which catches a
//! weight laid out in the wrong order (a convolution's taps, the hidden layer's
//! channels-last columns).

use std::path::{Path, PathBuf};

use tinyvae_datasets::corrupt::corrupt_with;
use tinyvae_datasets::Dataset;
use tinyvae_trainer::fault_head::{self, FaultHead, FaultHeadParams};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// 300 training frames.
fn frames() -> Dataset {
    let (train, _) = tinyvae_datasets::load_train_test(&root().join("data/mnist-10k"), (28, 28), 0)
        .expect("the bundled digits");
    train.subset(&(0..300).collect::<Vec<_>>())
}

fn small() -> FaultHeadParams {
    FaultHeadParams {
        epochs: 1,
        copies: 1,
        ..FaultHeadParams::default()
    }
}

#[test]
fn training_repeats_and_a_saved_head_reads_back() {
    let d = frames();
    let a = fault_head::train(&d, &small()).unwrap();
    let b = fault_head::train(&d, &small()).unwrap();
    let (sa, sb) = (a.scores(&d).unwrap(), b.scores(&d).unwrap());
    assert_eq!(sa, sb, "same seeds, same bits");
    let untrained = FaultHead::new().unwrap().scores(&d).unwrap();
    assert_ne!(sa, untrained, "training moved the weights");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("head.safetensors");
    a.save(&path).unwrap();
    assert_eq!(FaultHead::load(&path).unwrap().scores(&d).unwrap(), sa);
}

#[test]
fn a_file_that_is_not_a_head_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("not-a-head.safetensors");
    std::fs::write(&path, b"not safetensors").unwrap();
    let err = FaultHead::load(&path).err().expect("refused").to_string();
    assert!(err.contains("not-a-head.safetensors"), "{err}");
}

#[test]
fn emphasis_on_a_held_out_kind_is_refused() {
    let params = FaultHeadParams {
        emphasis: vec![tinyvae_datasets::corrupt::Corruption::ALL
            .into_iter()
            .find(|k| k.held_out())
            .unwrap()],
        ..small()
    };
    let err = fault_head::train(&frames(), &params)
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("held out"), "{err}");
}

#[test]
fn int8_head_follows_the_float_one() {
    let d = frames();
    let head = fault_head::train(&d, &small()).unwrap();
    let faulted = corrupt_with(&d, &fault_head::fault_classes(), 9);
    let layers = fault_head::quantize(&head, &[&d, &faulted]).unwrap();
    for set in [&d, &faulted] {
        let float = head.scores(set).unwrap();
        let int8 = fault_head::int8_scores(&layers, set).unwrap();
        let mean = float.iter().sum::<f64>() / float.len() as f64;
        let spread =
            (float.iter().map(|f| (f - mean).powi(2)).sum::<f64>() / float.len() as f64).sqrt();
        let error = float
            .iter()
            .zip(&int8)
            .map(|(f, q)| (f - q).abs())
            .sum::<f64>()
            / float.len() as f64;
        assert!(spread > 0.05, "the scores vary ({spread})");
        assert!(
            error < 0.1 * spread,
            "int8 error {error} against a spread of {spread}"
        );
    }
}
