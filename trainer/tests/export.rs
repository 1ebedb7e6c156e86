//! Export of the committed default checkpoint: the device model file run by the
//! device's code against candle's float scores, its 1% threshold measured on digits
//! that did not set it, the ONNX files in tract against candle, the fixed-point ranking
//! against the float one, and named errors for damaged model files.

use std::path::{Path, PathBuf};

use tinyvae_datasets::Dataset;
use tinyvae_shared::fixed::{q16_to_f64, Q16};
use tinyvae_shared::model::ModelError;
use tinyvae_shared::model_file::{self, DeviceModelError};
use tinyvae_shared::pipeline::{self, Workspace};
use tinyvae_trainer::export::{self, ExportOptions, ONNX_TOLERANCE};
use tinyvae_trainer::tensor::ToTensor;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The committed float checkpoint the tests export.
fn checkpoint() -> tinyvae_trainer::checkpoint::Loaded {
    tinyvae_trainer::checkpoint::load(
        &root().join("models/tinyvae-mnist.checkpoint.safetensors"),
        &candle_core::Device::Cpu,
    )
    .expect("checkpoint")
}

/// The seed the test exports with.
const SEED: u64 = 3;

/// The normal test images split as the export splits them: `(report, threshold)`. The
/// threshold comes from the second half only; the first is scored against it.
fn held_out_halves() -> (Dataset, Dataset) {
    let (_, test) =
        tinyvae_datasets::load_train_test(&root().join("data/mnist-10k"), (28, 28), SEED)
            .expect("bundled digits");
    test.split(0.5, SEED)
}

/// The device's score of every image of `set`, run from the exported file.
fn device_scores(model: &tinyvae_shared::model::Model<'_>, set: &Dataset) -> Vec<Q16> {
    let mut ws = Workspace::new();
    (0..set.len())
        .map(|i| {
            pipeline::score_image(model, &mut ws, set.image_u8(i), model.threshold)
                .expect("scores")
                .score
                .score
        })
        .collect()
}

/// The exported int8 model (run by the device's own code on the file's bytes) against
/// an independent path, candle's float score of the checkpoint, and its threshold
/// against the 1% target:
///
/// * the threshold is exactly the `floor(1% * (m + 1))`-th largest device score of the
///   `m` on the threshold half (counted here): the rank at which new clean frames are
///   flagged at 1% on average;
/// * on the disjoint report half, the flagged fraction lies within three standard
///   errors of 1%; the error combines the report half's binomial count and the
///   threshold's own sampling error as a quantile of the other half:
///   `sqrt(p (1 - p) (1/n + 1/m))`;
/// * the device's scores follow the float scores: mean signed gap within 0.5%, 99% of
///   them within 2%, all within 8% (measured: 0.02%, 0.94%, 4.2%); the float model at
///   its own 1% threshold and the device agree on at least 99% of verdicts.
fn device_model_against_candle_and_the_threshold(
    model: &tinyvae_shared::model::Model<'_>,
    export_threshold_float: f64,
) {
    let fpr = 0.01;
    let (report, threshold_set) = held_out_halves();
    let on_threshold_set = device_scores(model, &threshold_set);
    let m = on_threshold_set.len();
    // Scores strictly above the threshold: one fewer than its rank.
    let allowed = ((fpr * (m + 1) as f64).floor() as usize).max(1) - 1;
    let above = on_threshold_set
        .iter()
        .filter(|&&s| s > model.threshold)
        .count();
    let at_or_above = on_threshold_set
        .iter()
        .filter(|&&s| s >= model.threshold)
        .count();
    assert!(
        above <= allowed && at_or_above > allowed,
        "the threshold {} nats is not the 1% rank of the {m} threshold images: it flags \
         {above}, the next lower score would flag {at_or_above}, the rank leaves {allowed}",
        q16_to_f64(model.threshold)
    );

    let on_report = device_scores(model, &report);
    let n = on_report.len();
    let flagged = on_report.iter().filter(|&&s| s > model.threshold).count();
    let rate = flagged as f64 / n as f64;
    let se = (fpr * (1.0 - fpr) * (1.0 / n as f64 + 1.0 / m as f64)).sqrt();
    println!(
        "export test: {flagged} of {n} held-out normal digits flagged ({:.2}%), target 1% \
         +- {:.2}% (3 standard errors; threshold from {m} other digits)",
        100.0 * rate,
        300.0 * se
    );
    assert!(
        (rate - fpr).abs() <= 3.0 * se,
        "{flagged} of {n} held-out normal digits flagged ({:.2}%): outside 1% +- {:.2}%",
        100.0 * rate,
        300.0 * se
    );

    let loaded = checkpoint();
    let float = |set: &Dataset| -> Vec<f64> {
        let x = set.to_tensor(&candle_core::Device::Cpu).expect("tensor");
        tinyvae_trainer::eval::anomaly_scores(&loaded.model, &x).expect("float scores")
    };
    let (float_report, mut float_threshold_set) = (float(&report), float(&threshold_set));
    // Relative gaps, smallest to largest in size.
    let mut gaps: Vec<f64> = on_report
        .iter()
        .zip(&float_report)
        .map(|(&d, &f)| (q16_to_f64(d) - f) / f)
        .collect();
    let bias = gaps.iter().sum::<f64>() / n as f64;
    gaps.sort_by(|a, b| a.abs().total_cmp(&b.abs()));
    let (p99, worst) = (gaps[n * 99 / 100].abs(), gaps[n - 1].abs());
    println!(
        "export test: device vs candle scores on {n} digits: relative gap median {:.2}%, \
         99th percentile {:.2}%, largest {:.2}%, mean signed {:.3}%",
        100.0 * gaps[n / 2].abs(),
        100.0 * p99,
        100.0 * worst,
        100.0 * bias
    );
    assert!(
        bias.abs() <= 0.005 && p99 <= 0.02 && worst <= 0.08,
        "device scores stray from the float model's: mean signed gap {:.3}%, 99th \
         percentile {:.2}%, largest {:.2}% (limits 0.5%, 2%, 8%)",
        100.0 * bias,
        100.0 * p99,
        100.0 * worst
    );
    float_threshold_set.sort_by(f64::total_cmp);
    let float_threshold = float_threshold_set[m - allowed - 1];
    let flips = on_report
        .iter()
        .zip(&float_report)
        .filter(|(&d, &f)| (d > model.threshold) != (f > float_threshold))
        .count();
    println!(
        "export test: {flips} of {n} verdicts differ from candle's at its own 1% threshold \
         {float_threshold:.3} nats (the export's float threshold: \
         {export_threshold_float:.3})"
    );
    assert!(
        flips as f64 <= 0.01 * n as f64,
        "{flips} of {n} verdicts differ"
    );
}

fn export_default(dir: &Path) -> export::Exported {
    let options = ExportOptions {
        checkpoint: root().join("models/tinyvae-mnist.checkpoint.safetensors"),
        out: dir.join("m"),
        data: root().join("data/mnist-10k"),
        name: Some("test-export".into()),
        calibration_images: 500,
        prior_samples: 200,
        seed: SEED,
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
    device_model_against_candle_and_the_threshold(&model, exported.report.threshold_float);

    // Quantization targets: AUROC within 0.005 of float, 99% of verdicts agree.
    // The fault detector's report, float beside device: every kind, and the two
    // detectors within a few hundredths of each other.
    let (float, device) = exported.faults.as_ref().expect("fault report");
    assert_eq!(
        device.rows.len(),
        tinyvae_datasets::corrupt::Corruption::ALL.len()
    );
    assert_eq!(float.rows.len(), device.rows.len());
    for (f, d) in float.rows.iter().zip(&device.rows) {
        assert_eq!(f.kind, d.kind);
        assert!(
            (f.auroc - d.auroc).abs() < 0.05,
            "{}: {} vs {}",
            d.kind,
            f.auroc,
            d.auroc
        );
    }
    // The device's detector is the device report's fit, in the image.
    assert_eq!(model.detector(), Some(device.params));
    let report_json: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dir.path().join("m.quant.json")).expect("quant.json"),
    )
    .expect("quant.json is JSON");
    assert_eq!(
        report_json["faults"]["device"]["rows"]
            .as_array()
            .map(Vec::len),
        Some(device.rows.len())
    );
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
    let loaded = checkpoint();
    let (_, test) = held_out_halves();
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

/// The device image of a model file.
fn image_of(path: &Path) -> Vec<u8> {
    model_file::load(path).expect("model file").image
}

/// The shipped default model is what `export --fault-head` makes of the committed
/// checkpoint and head (seed 0, the head weight's default 1.5): the same image, byte
/// for byte. With the weight left to the export (`auto`), it is the best of the
/// candidate weights on the fitting frames, and the image differs only in the
/// detector section when that is not 1.5.
#[test]
fn the_shipped_model_is_reproduced_and_the_head_weight_is_chosen_on_fitting_frames() {
    let dir = tempfile::tempdir().unwrap();
    let options = ExportOptions {
        checkpoint: root().join("models/tinyvae-mnist.checkpoint.safetensors"),
        out: dir.path().join("given"),
        data: root().join("data/mnist-10k"),
        name: Some("tinyvae-mnist".into()),
        fault_head: Some(root().join("models/fault-head.safetensors")),
        ..ExportOptions::default()
    };
    let given = export::export(&options).expect("export with the head");
    let shipped = image_of(&root().join("models/tinyvae-mnist.safetensors"));
    assert_eq!(given.image, shipped, "the committed default model");
    let choice = given.head_weight.expect("a head: the weights are measured");
    assert_eq!(choice.rows.len(), 4);
    let best = choice
        .rows
        .iter()
        .max_by(|a, b| {
            (a.passing, a.mean_recall)
                .partial_cmp(&(b.passing, b.mean_recall))
                .unwrap()
        })
        .unwrap();
    assert_eq!(choice.weight, best.weight);
    assert!(
        choice.rows.iter().all(|r| r.sets == 18),
        "the 18 tuned kinds"
    );

    let auto = export::export(&ExportOptions {
        out: dir.path().join("auto"),
        head_weight: None,
        ..options
    })
    .expect("export choosing the weight");
    let model = tinyvae_shared::model::Model::parse(&auto.image).unwrap();
    let params = model.detector().expect("a detector section");
    let head = params.terms[tinyvae_shared::detect::Term::Head as usize];
    let given_model = tinyvae_shared::model::Model::parse(&given.image).unwrap();
    let given_head =
        given_model.detector().unwrap().terms[tinyvae_shared::detect::Term::Head as usize];
    // The head's upper scale is the fitted one divided by the weight.
    let fitted = f64::from(given_head.scale_high) * 1.5;
    let expected = (fitted / choice.weight).round();
    assert!(
        (f64::from(head.scale_high) - expected).abs() <= 1.0,
        "{} against {expected} (weight {})",
        head.scale_high,
        choice.weight
    );
}
