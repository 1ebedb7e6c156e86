//! Export of the committed default checkpoint: the device model round trip, the ONNX
//! files in tract against candle, the fixed-point ranking against the float one, and
//! named errors for damaged model files.

use std::path::{Path, PathBuf};

use tinyvae_shared::model::ModelError;
use tinyvae_shared::model_file::{self, DeviceModelError};
use tinyvae_shared::pipeline::{self, Workspace};
use tinyvae_trainer::export::{self, ExportOptions, ONNX_TOLERANCE};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn export_default(dir: &Path) -> export::Exported {
    let options = ExportOptions {
        checkpoint: root().join("models/tinyvae-mnist.checkpoint.safetensors"),
        out: dir.join("m"),
        data: root().join("data/mnist-10k"),
        name: Some("test-export".into()),
        calibration_images: 500,
        prior_samples: 200,
        seed: 3,
        ..ExportOptions::default()
    };
    export::export(&options).expect("export succeeds")
}

#[test]
fn export_round_trip_onnx_and_ranking() {
    let dir = tempfile::tempdir().expect("temp dir");
    let exported = export_default(dir.path());

    // The device model file loads back to the same image, and host inference on it
    // gives the same scores as on the in-memory image.
    let file = model_file::load(&dir.path().join("m.safetensors")).expect("loads");
    assert_eq!(file.image, exported.image);
    assert_eq!(
        file.metadata.get("format").map(String::as_str),
        Some(model_file::FORMAT)
    );
    let model = file.model().expect("parses");
    assert_eq!(model.name(), "test-export");
    let test = tinyvae_datasets::load_split(
        &root().join("data/mnist-10k"),
        tinyvae_datasets::Split::Test,
        (28, 28),
    )
    .expect("test digits");
    let mut ws = Workspace::new();
    let mut flagged = 0;
    for i in 0..200 {
        let a = pipeline::score_image(&model, &mut ws, test.image_u8(i), model.threshold)
            .expect("scores");
        let b = pipeline::score_image(&model, &mut ws, test.image_u8(i), model.threshold)
            .expect("scores");
        assert_eq!(a, b);
        flagged += usize::from(a.score.anomalous);
    }
    // The threshold sits at 1% false positives on other normal digits.
    assert!(flagged <= 10, "{flagged} of 200 normal digits flagged");

    // Quantization targets: AUROC within 0.005 of float, 99% of verdicts agree.
    let r = &exported.report;
    println!(
        "export test: AUROC float {:.4} fixed {:.4}; {:.2}% verdicts agree",
        r.auroc_float,
        r.auroc_fixed,
        100.0 * r.decision_agreement
    );
    assert!(
        r.auroc_drop.abs() <= 0.005,
        "AUROC moved by {}",
        r.auroc_drop
    );
    assert!(
        r.decision_agreement >= 0.99,
        "agreement {}",
        r.decision_agreement
    );

    // The ONNX files run in tract and agree with candle.
    let loaded = tinyvae_trainer::checkpoint::load(
        &root().join("models/tinyvae-mnist.checkpoint.safetensors"),
        &candle_core::Device::Cpu,
    )
    .expect("checkpoint");
    let images: Vec<Vec<u8>> = (0..32).map(|i| test.image_u8(i).to_vec()).collect();
    let gap = export::check_onnx(
        &loaded.model,
        &dir.path().join("m.encoder.onnx"),
        &dir.path().join("m.decoder.onnx"),
        &images,
    )
    .expect("tract runs the files");
    println!("ONNX vs candle: max abs diff {gap:e}");
    assert!(gap <= ONNX_TOLERANCE);
}

#[test]
fn damaged_model_files_are_named_errors() {
    let good = std::fs::read(root().join("models/tinyvae-mnist.safetensors")).expect("model");
    let dir = tempfile::tempdir().expect("temp dir");

    let truncated = dir.path().join("truncated.safetensors");
    std::fs::write(&truncated, &good[..good.len() / 2]).expect("write");
    let err = model_file::load(&truncated).expect_err("truncated file rejected");
    assert!(matches!(err, DeviceModelError::Bad { .. }), "{err}");
    assert!(err.to_string().contains("truncated.safetensors"), "{err}");

    // Flip a byte inside the model image: safetensors still parses, the CRC does not.
    let mut corrupt = good.clone();
    let last = corrupt.len() - 100;
    corrupt[last] ^= 0x55;
    let path = dir.path().join("corrupt.safetensors");
    std::fs::write(&path, &corrupt).expect("write");
    let err = model_file::load(&path).expect_err("corrupt file rejected");
    let text = err.to_string();
    assert!(
        text.contains("corrupt.safetensors") && text.contains("CRC"),
        "{text}"
    );

    // A bare image with a damaged header names the field.
    let file = model_file::load(&root().join("models/tinyvae-mnist.safetensors")).expect("model");
    let mut bare = file.image.clone();
    bare[0] = b'X';
    assert_eq!(
        tinyvae_shared::model::Model::parse(&bare).unwrap_err(),
        ModelError::BadMagic
    );
    let missing = model_file::load(&dir.path().join("missing.safetensors")).expect_err("missing");
    assert!(
        matches!(missing, DeviceModelError::Read { .. }),
        "{missing}"
    );
}

/// A diverged checkpoint (one NaN weight) is refused by name, before anything is
/// written: quantization would otherwise turn NaN into 0 and export a model of zeros.
#[test]
fn a_checkpoint_with_nan_weights_is_not_exported() {
    let bytes = std::fs::read(root().join("models/tinyvae-mnist.checkpoint.safetensors"))
        .expect("checkpoint");
    let (_, header) = safetensors::SafeTensors::read_metadata(&bytes).expect("header");
    let metadata = header.metadata().clone();
    let st = safetensors::SafeTensors::deserialize(&bytes).expect("safetensors");
    let mut owned: Vec<(String, safetensors::Dtype, Vec<usize>, Vec<u8>)> = st
        .tensors()
        .into_iter()
        .map(|(n, v)| (n, v.dtype(), v.shape().to_vec(), v.data().to_vec()))
        .collect();
    owned.sort_by(|a, b| a.0.cmp(&b.0));
    let poisoned = owned
        .iter_mut()
        .find(|(n, d, _, _)| n.contains("weight") && *d == safetensors::Dtype::F32)
        .expect("a float weight");
    poisoned.3[..4].copy_from_slice(&f32::NAN.to_le_bytes());
    let views: Vec<(String, safetensors::tensor::TensorView<'_>)> = owned
        .iter()
        .map(|(n, d, s, data)| {
            let view = safetensors::tensor::TensorView::new(*d, s.clone(), data).expect("view");
            (n.clone(), view)
        })
        .collect();
    let dir = tempfile::tempdir().expect("temp dir");
    let checkpoint = dir.path().join("diverged.safetensors");
    safetensors::serialize_to_file(views, metadata, &checkpoint).expect("write");

    let options = ExportOptions {
        checkpoint: checkpoint.clone(),
        out: dir.path().join("m"),
        data: root().join("data/mnist-10k"),
        calibration_images: 100,
        prior_samples: 10,
        ..ExportOptions::default()
    };
    let err = export::export(&options).expect_err("a NaN weight must fail the export");
    let text = err.to_string();
    assert!(
        text.contains("diverged.safetensors") && text.contains("non-finite"),
        "{text}"
    );
    assert!(
        !dir.path().join("m.safetensors").exists(),
        "nothing may be written for a diverged checkpoint"
    );
}
