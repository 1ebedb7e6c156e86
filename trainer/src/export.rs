//! Export: quantize a trained VAE for the device, write the ONNX float models, and
//! report what quantization cost. [`export`] with [`ExportOptions`] is what `tinyvae
//! export` runs.
//!
//! Writes, next to the output stem `STEM`:
//! * `STEM.safetensors`: the device model (see [`tinyvae_shared::model_file`]);
//! * `STEM.encoder.onnx`, `STEM.decoder.onnx`: the float networks, checked in tract;
//! * `STEM.quant.json`: the quantization report.
//!
//! Data roles: calibration ranges come from training images; the threshold from half of
//! the normal test images (seeded split); the report from the other half and its
//! corrupted copies (plus the other classes for a one-class model), so no image both
//! sets the threshold and is scored against it.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};
use serde_json::json;
use sha2::{Digest, Sha256};
use tinyvae_datasets::corrupt::{corrupt_with, Corruption};
use tinyvae_datasets::{DataError, Dataset};
use tinyvae_shared::detect::DetectorParams;
use tinyvae_shared::fixed::q16_to_f64;
use tinyvae_shared::model::{Model, ModelError as ImageError};
use tinyvae_shared::model_file::{self, write_atomic, DeviceModelError};

use crate::checkpoint::{self, CheckpointError};
use crate::detector::{
    fault_report, fit_seen, head_weight_on_fitting_frames, FaultReport, FitOptions,
    HeadWeightChoice, ReportError, ReportOptions, TermSource,
};
use crate::fault_head::{self, FaultHead, FaultHeadParams};
use crate::model::ModelError;
use crate::onnx::{self, OnnxError};
use crate::quant_report::{self, QuantReport};
use crate::quantize::{self, to_unit, FloatVae, QuantizeError};

/// Largest |tract - candle| accepted for the ONNX files.
pub const ONNX_TOLERANCE: f32 = 1e-4;

/// What to export and how. Build it with the two paths and `..Default::default()`.
#[derive(Debug, Clone, PartialEq)]
pub struct ExportOptions {
    /// Trained VAE checkpoint (from `tinyvae train`).
    pub checkpoint: PathBuf,
    /// Output stem: writes STEM.safetensors, STEM.encoder.onnx, STEM.decoder.onnx,
    /// STEM.quant.json.
    pub out: PathBuf,
    /// The images (IDX folder, IDX file or image folder; see
    /// [`tinyvae_datasets::load_train_test`]).
    pub data: PathBuf,
    /// The normal class of a one-class model; the checkpoint's when `None`.
    pub normal_class: Option<String>,
    /// Model name stored in the device model (at most 24 bytes; default: the stem).
    pub name: Option<String>,
    /// False-positive rate the anomaly threshold is set at, on held-out normal images.
    pub fpr: f64,
    /// Training images used to calibrate activation ranges.
    pub calibration_images: usize,
    /// Prior samples added to the decoder's calibration (the device also generates).
    pub prior_samples: usize,
    /// Seed of the data splits, prior samples and corruptions.
    pub seed: u64,
    /// A fault head (`tinyvae_trainer::fault_head`, saved by its `save`) to quantize
    /// into the image: the detector's 17th term. Its activation ranges come from the
    /// calibration images and a faulted copy of them.
    pub fault_head: Option<PathBuf>,
    /// The fault head's weight ([`crate::detector::FitOptions::head_weight`]; default
    /// its 1.5); `None`: the one [`crate::detector::head_weight_on_fitting_frames`]
    /// chooses. Either way, with a head, the export measures every candidate weight
    /// on the detector's fitting frames and faulted copies of them, and reports it.
    pub head_weight: Option<f64>,
}

impl Default for ExportOptions {
    /// The bundled digits, 1% false positives, 2,000 calibration images, 1,000 prior
    /// samples, seed 0; `checkpoint` and `out` empty (set them).
    fn default() -> Self {
        Self {
            checkpoint: PathBuf::new(),
            out: PathBuf::new(),
            data: "data/mnist-10k".into(),
            normal_class: None,
            name: None,
            fpr: 0.01,
            calibration_images: 2000,
            prior_samples: 1000,
            seed: 0,
            fault_head: None,
            head_weight: Some(FitOptions::default().head_weight),
        }
    }
}

/// Why an export failed; each names what it was working on.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// The checkpoint could not be read or is not usable.
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    /// The fault detector's report failed.
    #[error("fault report: {0}")]
    Faults(#[from] ReportError),
    /// A tensor operation on the float model failed.
    #[error("float model: {0}")]
    Model(#[from] ModelError),
    /// A tensor operation failed.
    #[error("float model: {0}")]
    Candle(#[from] candle_core::Error),
    /// The data could not be loaded.
    #[error(transparent)]
    Data(#[from] DataError),
    /// Quantization failed.
    #[error("{}: {source}", checkpoint.display())]
    Quantize {
        /// The checkpoint.
        checkpoint: PathBuf,
        /// What failed.
        source: QuantizeError,
    },
    /// The quantized image is not a valid device model.
    #[error("device model image: {0}")]
    Image(#[from] ImageError),
    /// Writing or checking an ONNX file failed.
    #[error(transparent)]
    Onnx(#[from] OnnxError),
    /// Writing the device model failed.
    #[error(transparent)]
    ModelFile(#[from] DeviceModelError),
    /// Serializing metadata failed.
    #[error("metadata: {0}")]
    Json(#[from] serde_json::Error),
    /// Reading the checkpoint or writing the report failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The inputs do not fit together (sizes, empty sets, ONNX disagreement).
    #[error("{0}")]
    Invalid(String),
}

/// Everything [`export`] produced.
#[derive(Debug, Clone)]
pub struct Exported {
    /// The validated model image.
    pub image: Vec<u8>,
    /// The quantization report.
    pub report: QuantReport,
    /// The fault detector per fault kind, float model then device twin (`None` with
    /// fewer than four normal test images).
    pub faults: Option<(FaultReport, FaultReport)>,
    /// Every candidate head weight measured on the detector's fitting frames, and the
    /// one they choose (`None` without a head); the image's is the options' unless
    /// they leave it to this choice.
    pub head_weight: Option<HeadWeightChoice>,
    /// The written files: the device model first.
    pub files: Vec<PathBuf>,
}

/// `stem` with `suffix` appended (`models/x` + `.onnx`).
fn with_suffix(stem: &Path, suffix: &str) -> PathBuf {
    let mut s = stem.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

fn images(ds: &Dataset) -> Vec<Vec<u8>> {
    (0..ds.len()).map(|i| ds.image_u8(i).to_vec()).collect()
}

/// Quantizes, checks and writes; see the module docs.
pub fn export(options: &ExportOptions) -> Result<Exported, ExportError> {
    let args = options;
    let device = Device::Cpu;
    let checkpoint_bytes = std::fs::read(&args.checkpoint).map_err(|source| ExportError::Io {
        path: args.checkpoint.clone(),
        source,
    })?;
    let quantize_err = |source| ExportError::Quantize {
        checkpoint: args.checkpoint.clone(),
        source,
    };
    let loaded = checkpoint::load(&args.checkpoint, &device)?;
    let config = loaded.meta.config.clone();
    refuse_non_finite(&args.checkpoint, &loaded.model)?;
    let vae = FloatVae::new(
        &config,
        loaded.model.encoder_layers()?,
        loaded.model.decoder_layers()?,
    )
    .map_err(quantize_err)?;

    let (train, test) =
        tinyvae_datasets::load_train_test(&args.data, (config.width, config.height), args.seed)?;
    if (train.width, train.height) != (config.width, config.height) {
        return Err(ExportError::Invalid(format!(
            "{}: images are {}x{}, the checkpoint {} was trained on {}x{}",
            args.data.display(),
            train.width,
            train.height,
            args.checkpoint.display(),
            config.width,
            config.height
        )));
    }
    let normal_class = args
        .normal_class
        .clone()
        .or_else(|| loaded.meta.data.normal_class.clone());
    let (train_normal, test_normal, test_other) = match &normal_class {
        Some(name) => {
            let c = train.class_index(name)?;
            let others: Vec<usize> = (0..test.len())
                .filter(|&i| test.label(i) != Some(c))
                .collect();
            (
                train.filter_class(c)?,
                test.filter_class(c)?,
                test.subset(&others),
            )
        }
        None => (train.clone(), test.clone(), test.take(0)),
    };
    let (report_set, threshold_set) = test_normal.split(0.5, args.seed);
    let (_, calibration_set) = train_normal.split(
        (args.calibration_images as f64 / train_normal.len().max(1) as f64).min(1.0),
        args.seed,
    );

    let calibration = quantize::calibrate(
        &vae,
        &images(&calibration_set),
        args.prior_samples,
        args.seed,
    )
    .map_err(quantize_err)?;
    let name = match &args.name {
        Some(n) => n.clone(),
        None => args
            .out
            .file_name()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "tinyvae".into()),
    };
    let mut spec = quantize::quantize(&vae, &calibration, &config, &name, 0);
    // The fault head, in the image before the detector is fitted, so that the device
    // report's terms (and the fit) include it.
    let fault_head = match &args.fault_head {
        None => None,
        Some(path) => {
            let head = FaultHead::load(path).map_err(|e| ExportError::Invalid(e.to_string()))?;
            let one = FaultHeadParams {
                copies: 1,
                ..FaultHeadParams::default()
            };
            let faulted = fault_head::faulted_copies(&calibration_set, &one)
                .map_err(|e| ExportError::Invalid(e.to_string()))?;
            let layers = fault_head::quantize(&head, &[&calibration_set, &faulted[0].0])
                .map_err(|e| ExportError::Invalid(format!("{}: {e}", path.display())))?;
            spec.head = Some(layers);
            Some(head)
        }
    };
    // The neighbourhoods of the normal training frames, for the detector's `unseen`
    // term: in the image from here on (with parameters that judge nothing until the
    // fit below), so that the device twin's reports count against them.
    spec.detector = Some(DetectorParams::default());
    spec.seen = Some(fit_seen(&train_normal));
    let draft = spec.to_bytes()?;
    let threshold_images = images(&threshold_set);
    spec.threshold =
        quantize::calibrate_threshold(&Model::parse(&draft)?, &threshold_images, args.fpr)
            .map_err(quantize_err)?;
    let image = spec.to_bytes()?;
    let model = Model::parse(&image)?;

    let float_threshold_scores: Vec<f64> = threshold_images
        .iter()
        .map(|im| vae.score(&to_unit(im)).total())
        .collect();
    let threshold_float = quantize::float_threshold(&float_threshold_scores, args.fpr)
        .ok_or_else(|| ExportError::Invalid("no images to set the threshold with".into()))?;
    // The quantization report's faulted images are the seven pixel faults, cycled as
    // `corrupt_dataset` cycled them before the fault model grew: its AUROC and verdict
    // agreement stay comparable with the model cards made then. (With every kind of
    // `Corruption::ALL` the export test's set scores AUROC 0.792 instead of 0.871, and
    // 98.9% of verdicts agree instead of 99.25%: more faulted frames land near the
    // threshold, where fixed point and float part ways.)
    let corrupted = corrupt_with(&report_set, &Corruption::PIXEL_FAULTS, args.seed);
    let normal = images(&report_set);
    let mut anomalous = images(&corrupted);
    anomalous.extend(images(&test_other));
    let report = quant_report::measure(
        &vae,
        &model,
        &calibration,
        &normal,
        &anomalous,
        threshold_float,
    );

    // The fault detector's report on the normal test images (split in two as the
    // threshold and report sets are), float and device side by side.
    let mut options = ReportOptions::default();
    if let Some(weight) = args.head_weight {
        if !(weight.is_finite() && weight > 0.0) {
            return Err(ExportError::Invalid(format!(
                "head weight {weight}: expected a number above 0"
            )));
        }
        options.fit.head_weight = weight;
    }
    let head_weight = match &fault_head {
        Some(_) if test_normal.len() >= 4 => {
            let choice = head_weight_on_fitting_frames(
                &TermSource::Device(&model),
                &test_normal,
                args.seed,
                options.fit,
            )?;
            if args.head_weight.is_none() {
                options.fit.head_weight = choice.weight;
            }
            Some(choice)
        }
        _ => None,
    };
    let faults = if test_normal.len() >= 4 {
        Some((
            fault_report(
                &match &fault_head {
                    None => TermSource::Float(&loaded.model, model.seen()),
                    Some(head) => TermSource::FloatWithHead(&loaded.model, model.seen(), head),
                },
                &test_normal,
                args.seed,
                options,
            )?,
            fault_report(
                &TermSource::Device(&model),
                &test_normal,
                args.seed,
                options,
            )?,
        ))
    } else {
        None
    };
    // The device's fault detector is the one the device report fitted (on its half of
    // the normal test images): it goes into the image, so the board judges frames as
    // the report says it does. Inference is unchanged; only the hash moves.
    let image = match &faults {
        Some((_, device)) => {
            spec.detector = Some(device.params);
            spec.to_bytes()?
        }
        None => {
            (spec.detector, spec.seen) = (None, None);
            spec.to_bytes()?
        }
    };
    let model = Model::parse(&image)?;

    let mut files = Vec::new();
    let encoder_path = with_suffix(&args.out, ".encoder.onnx");
    let decoder_path = with_suffix(&args.out, ".decoder.onnx");
    onnx::write(
        &onnx::encoder_model(&vae.encoder, vae.latent)?,
        &encoder_path,
    )?;
    onnx::write(&onnx::decoder_model(&vae.decoder)?, &decoder_path)?;
    let onnx_error = check_onnx(&loaded.model, &encoder_path, &decoder_path, &normal)?;
    files.extend([encoder_path, decoder_path]);

    let mut metadata = HashMap::new();
    metadata.insert("format".into(), model_file::FORMAT.into());
    metadata.insert("name".into(), name.clone());
    metadata.insert("architecture".into(), serde_json::to_string(&config)?);
    metadata.insert(
        "quantization".into(),
        "post-training; weights int8 symmetric per output channel; activations int8 affine \
         (min/max calibration); bias i32; requantization Q0.31 multiplier + shift; latent, \
         KL and score Q15.16"
            .into(),
    );
    metadata.insert("threshold_q16".into(), spec.threshold.to_string());
    metadata.insert(
        "threshold_nats".into(),
        format!("{:.4}", q16_to_f64(spec.threshold)),
    );
    metadata.insert("threshold_fpr".into(), args.fpr.to_string());
    metadata.insert("model_hash".into(), format!("{:#010x}", model.hash));
    metadata.insert(
        "source_checkpoint".into(),
        args.checkpoint.display().to_string(),
    );
    metadata.insert(
        "source_sha256".into(),
        format!("{:x}", Sha256::digest(&checkpoint_bytes)),
    );
    metadata.insert(
        "data".into(),
        json!({
            "source": args.data.display().to_string(),
            "normal_class": normal_class,
            "calibration_images": calibration_set.len(),
            "threshold_images": threshold_set.len(),
            "report_normal": normal.len(),
            "report_anomalous": anomalous.len(),
            "seed": args.seed,
        })
        .to_string(),
    );
    metadata.insert("report".into(), serde_json::to_string(&report)?);
    metadata.insert("onnx_max_abs_diff".into(), format!("{onnx_error:.3e}"));
    let model_path = with_suffix(&args.out, ".safetensors");
    model_file::save(&model_path, &image, metadata)?;
    files.insert(0, model_path);

    let report_path = with_suffix(&args.out, ".quant.json");
    let report_json = json!({
        "report": &report,
        "onnx_max_abs_diff": onnx_error,
        "faults": faults.as_ref().map(|(float, device)| json!({ "float": float, "device": device })),
        "head_weight": json!({ "weight": options.fit.head_weight, "choice": &head_weight }),
    });
    write_atomic(
        &report_path,
        serde_json::to_string_pretty(&report_json)?.as_bytes(),
    )
    .map_err(|(path, source)| ExportError::Io { path, source })?;
    files.push(report_path);
    Ok(Exported {
        image: image.clone(),
        report,
        faults,
        head_weight,
        files,
    })
}

/// Fails when a weight or bias of `model` is NaN or infinite: a diverged run must not
/// become a device model (quantization would turn NaN into 0 and export a valid-looking
/// model of zeros).
fn refuse_non_finite(path: &Path, model: &crate::model::Model) -> Result<(), ExportError> {
    let stacks = [
        ("encoder", model.encoder_layers()?),
        ("decoder", model.decoder_layers()?),
    ];
    for (stack, layers) in stacks {
        for (i, layer) in layers.iter().enumerate() {
            let bad = layer
                .weight
                .iter()
                .chain(&layer.bias)
                .filter(|v| !v.is_finite())
                .count();
            if bad > 0 {
                return Err(ExportError::Invalid(format!(
                    "{}: {stack} layer {i} has {bad} non-finite weights (NaN or Inf): the \
                     training run diverged; export refuses it",
                    path.display()
                )));
            }
        }
    }
    Ok(())
}

/// Runs both ONNX files in tract on up to 64 `images` and compares them with candle;
/// fails when they differ by more than [`ONNX_TOLERANCE`]. Returns the largest gap.
pub fn check_onnx(
    model: &crate::model::Model,
    encoder: &Path,
    decoder: &Path,
    images: &[Vec<u8>],
) -> Result<f32, ExportError> {
    let n = images.len().min(64);
    if n == 0 {
        return Err(ExportError::Invalid(
            "no images to check the ONNX files with".into(),
        ));
    }
    let width = images[0].len();
    let x: Vec<f32> = images[..n]
        .iter()
        .flat_map(|im| im.iter().map(|&p| p as f32 / 255.0))
        .collect();
    let xt = Tensor::from_vec(x.clone(), (n, width), &Device::Cpu)?;
    let (mu, logvar) = model.encode(&xt)?;
    let latent = mu.dim(1)?;
    let tract_enc = onnx::run_tract(encoder, &x, n, width)?;
    let image = candle_nn::ops::sigmoid(&model.decode(&mu)?)?;
    let mu_flat: Vec<f32> = mu.flatten_all()?.to_vec1()?;
    let tract_dec = onnx::run_tract(decoder, &mu_flat, n, latent)?;
    let mut worst = 0.0f32;
    for (candle_out, tract_out) in [
        (&mu, tract_enc.first()),
        (&logvar, tract_enc.get(1)),
        (&image, tract_dec.first()),
    ] {
        let expected: Vec<f32> = candle_out.flatten_all()?.to_vec1()?;
        let got = tract_out
            .ok_or_else(|| ExportError::Invalid("tract returned too few outputs".into()))?;
        if got.len() != expected.len() {
            return Err(ExportError::Invalid(format!(
                "tract output has {} values, candle {}",
                got.len(),
                expected.len()
            )));
        }
        for (a, b) in expected.iter().zip(got) {
            let gap = (a - b).abs();
            // f32::max skips NaN; a NaN output must not pass as a zero gap.
            worst = if gap.is_nan() {
                f32::NAN
            } else {
                worst.max(gap)
            };
        }
    }
    // A NaN anywhere fails too.
    if worst.is_nan() || worst > ONNX_TOLERANCE {
        return Err(ExportError::Invalid(format!(
            "ONNX files disagree with candle by {worst:.3e} (> {ONNX_TOLERANCE:e}): {} / {}",
            encoder.display(),
            decoder.display()
        )));
    }
    Ok(worst)
}
