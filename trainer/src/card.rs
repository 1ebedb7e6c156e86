//! The model card of an exported model, generated from the checkpoint, the device
//! model and the training run, so that every figure in it is measured. [`write_card`]
//! with [`CardOptions`] is what `tinyvae card` runs.
//!
//! Writes `OUT.md` and, in the folder `OUT/`, the pictures it shows: the training curve
//! (copied from the run), float samples from the prior, the device's fixed-point samples
//! and test reconstructions.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use candle_core::Device;
use serde_json::Value;
use tinyvae_datasets::grid::{save_grid, unit_to_pixels, GridError, GridLayout};
use tinyvae_datasets::DataError;
use tinyvae_shared::fixed::q16_to_f64;
use tinyvae_shared::model::ModelError as ImageError;
use tinyvae_shared::model_file::{self, write_atomic, DeviceModelError};
use tinyvae_shared::pipeline::{self, InferError, Workspace};

use crate::checkpoint::{self, CheckpointError};
use crate::pictures;
use crate::tensor::ToTensor;

/// What the card describes and where it goes.
#[derive(Debug, Clone, PartialEq)]
pub struct CardOptions {
    /// The float checkpoint the model was exported from.
    pub checkpoint: PathBuf,
    /// The exported device model (`STEM.safetensors`).
    pub model: PathBuf,
    /// The training run's output folder (for `loss.png`), if kept.
    pub run_dir: Option<PathBuf>,
    /// The images the reconstructions are drawn from (their test split).
    pub data: PathBuf,
    /// Output: writes OUT.md and the pictures in OUT/.
    pub out: PathBuf,
    /// Seed of the pictures' samples.
    pub seed: u64,
}

impl Default for CardOptions {
    /// The bundled digits, seed 0, no run folder; the paths empty (set them).
    fn default() -> Self {
        Self {
            checkpoint: PathBuf::new(),
            model: PathBuf::new(),
            run_dir: None,
            data: "data/mnist-10k".into(),
            out: PathBuf::new(),
            seed: 0,
        }
    }
}

/// Why a card could not be written.
#[derive(Debug, thiserror::Error)]
pub enum CardError {
    /// The checkpoint could not be read.
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    /// The device model could not be read.
    #[error(transparent)]
    ModelFile(#[from] DeviceModelError),
    /// The device model image does not parse.
    #[error("device model image: {0}")]
    Image(#[from] ImageError),
    /// The float model failed.
    #[error("float model: {0}")]
    Candle(#[from] candle_core::Error),
    /// The host's fixed-point run failed.
    #[error("fixed-point run: {0}")]
    Infer(#[from] InferError),
    /// The test images could not be loaded.
    #[error(transparent)]
    Data(#[from] DataError),
    /// A picture could not be written.
    #[error(transparent)]
    Grid(#[from] GridError),
    /// Metadata could not be turned into a table.
    #[error("metadata: {0}")]
    Json(#[from] serde_json::Error),
    /// A file could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
}

/// A JSON value as a reader expects it in a table: integers as integers (a batch size
/// is `64`, not `64.0000`), short decimals as written (`0.001`), long measurements to
/// four decimals, strings without quotes, `null` as a dash.
pub fn shown(value: &Value) -> String {
    match value {
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                i.to_string()
            } else if let Some(u) = n.as_u64() {
                u.to_string()
            } else {
                match n.as_f64() {
                    Some(f) if f.fract() == 0.0 && f.abs() < 1e15 => format!("{f:.0}"),
                    Some(f) => {
                        let short = f.to_string();
                        let decimals = short.split_once('.').map_or(0, |(_, d)| d.len());
                        if decimals <= 4 {
                            short
                        } else {
                            format!("{f:.4}")
                        }
                    }
                    None => n.to_string(),
                }
            }
        }
        Value::String(s) => s.clone(),
        Value::Null => "-".into(),
        other => other.to_string(),
    }
}

/// A two-column Markdown table of a JSON object's fields, each in its own form.
fn table(value: &Value) -> String {
    let mut out = String::from("| key | value |\n|---|---|\n");
    if let Value::Object(map) = value {
        for (k, v) in map {
            let _ = writeln!(out, "| {k} | {} |", shown(v).replace('|', "\\|"));
        }
    }
    out
}

fn relative(path: &Path, base: &Path) -> String {
    path.strip_prefix(base)
        .unwrap_or(path)
        .display()
        .to_string()
}

/// The card's fault detector section: the detector the image carries, term by term,
/// and the export's fault report (`STEM.quant.json` beside the model), float beside
/// device, when it is there.
fn fault_detector_section(md: &mut String, model: &tinyvae_shared::model::Model<'_>, path: &Path) {
    use tinyvae_shared::detect::{scale_units, Term};
    let _ = writeln!(md, "## Fault detector\n");
    let Some(params) = model.detector() else {
        let _ = writeln!(
            md,
            "The image carries no fault detector: the device judges frames by the negative \
             ELBO alone until a `Calibrate` request sets one.\n"
        );
        return;
    };
    let _ = writeln!(
        md,
        "The image carries the fault detector the device applies to every scored frame: \
         each term standardized beyond its edges by its scales, the largest of them against \
         the threshold {:.3} (`tinyvae detect` explains the terms; on the board a `Calibrate` \
         request replaces them and the threshold, a `CalibrateThreshold` request the \
         threshold alone).\n\n| term | upper edge | scale above | lower edge | scale below |\n|---|---|---|---|---|",
        q16_to_f64(params.threshold)
    );
    for term in Term::ALL {
        let t = params.terms[term as usize];
        let _ = writeln!(
            md,
            "| {} | {} | {:.2} | {} | {:.2} |",
            term.name(),
            t.high,
            scale_units(t.scale_high),
            t.low,
            scale_units(t.scale_low)
        );
    }
    md.push('\n');
    let report: Option<Value> = std::fs::read_to_string(path.with_extension("quant.json"))
        .ok()
        .and_then(|text| serde_json::from_str(&text).ok());
    let Some(faults) = report
        .as_ref()
        .map(|r| &r["faults"])
        .filter(|f| f.is_object())
    else {
        return;
    };
    let (float, device) = (&faults["float"], &faults["device"]);
    let _ = writeln!(
        md,
        "Per fault kind (clean test digits vs the same digits faulted, `tinyvae export`'s \
         report): pooled AUROC {} float, {} device (the negative ELBO alone: {}); \
         {} false positives on {} clean frames the detector was not fitted on.\n\n\
         | fault | held out | AUROC, float | AUROC, device | recall, device | fired most |\n|---|---|---|---|---|---|",
        shown(&float["pooled_auroc"]),
        shown(&device["pooled_auroc"]),
        shown(&device["pooled_auroc_elbo"]),
        shown(&device["false_positive_rate"]),
        shown(&device["eval_frames"]),
    );
    let rows = |r: &Value| r["rows"].as_array().cloned().unwrap_or_default();
    for (f, d) in rows(float).iter().zip(rows(device).iter()) {
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} | {} |",
            shown(&d["kind"]),
            if d["held_out"].as_bool() == Some(true) {
                "yes"
            } else {
                ""
            },
            shown(&f["auroc"]),
            shown(&d["auroc"]),
            shown(&d["recall"]),
            shown(&d["fired"]),
        );
    }
    md.push('\n');
}

/// Writes the card (`OUT.md`) and its pictures (in `OUT/`); returns the card's path.
pub fn write_card(options: &CardOptions) -> Result<PathBuf, CardError> {
    let args = options;
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| CardError::Io { path, source }
    };
    let loaded = checkpoint::load(&args.checkpoint, &Device::Cpu)?;
    let file = model_file::load(&args.model)?;
    let model = file.model()?;
    let config = &loaded.meta.config;
    let dir = args.out.clone();
    std::fs::create_dir_all(&dir).map_err(io(&dir))?;
    let base = dir.parent().unwrap_or(Path::new("."));
    let (w, h) = (config.width, config.height);

    let samples = dir.join("samples-float.png");
    let tiles: Vec<Vec<u8>> = pictures::sample(&loaded.model, 32, args.seed)?
        .iter()
        .map(|t| unit_to_pixels(t))
        .collect();
    save_grid(&samples, &tiles, w, h, GridLayout::default())?;

    let device_samples = dir.join("samples-device.png");
    let mut ws = Workspace::new();
    let mut tiles = Vec::new();
    for i in 0..32 {
        let (_, image) = pipeline::generate(&model, &mut ws, args.seed + i, 1 << 16)?;
        tiles.push(image.to_vec());
    }
    save_grid(&device_samples, &tiles, w, h, GridLayout::default())?;

    let test = tinyvae_datasets::load_test(&args.data, (w, h), args.seed)?.take(16);
    let recon = dir.join("reconstructions.png");
    let x = test.to_tensor(&Device::Cpu)?;
    let mut tiles = Vec::new();
    let float_recon = pictures::reconstruct(&loaded.model, &x)?;
    for (i, r) in float_recon.iter().enumerate() {
        tiles.push(test.image_u8(i).to_vec());
        tiles.push(unit_to_pixels(r));
        let device = pipeline::score_image(&model, &mut ws, test.image_u8(i), model.threshold)?;
        tiles.push(device.reconstruction.to_vec());
    }
    let layout = GridLayout {
        columns: 6,
        ..GridLayout::default()
    };
    save_grid(&recon, &tiles, w, h, layout)?;

    let curve = match &args.run_dir {
        Some(run) => {
            let to = dir.join("loss.png");
            let from = run.join("loss.png");
            // The run folder may be the card's own picture folder: copying a file onto
            // itself would truncate it.
            let same = matches!(
                (std::fs::canonicalize(&from), std::fs::canonicalize(&to)),
                (Ok(a), Ok(b)) if a == b
            );
            if !same {
                std::fs::copy(&from, &to).map_err(io(&from))?;
            }
            Some(to)
        }
        None => None,
    };

    let meta = &loaded.meta;
    let report: Value = file
        .metadata
        .get("report")
        .and_then(|r| serde_json::from_str(r).ok())
        .unwrap_or(Value::Null);
    let name = model.name();
    let mut md = String::new();
    let _ = writeln!(md, "# Model card: {name}\n");
    let _ = writeln!(
        md,
        "Generated by `tinyvae card` from `{}` and `{}`. Every figure below was measured by \
         the tool; regenerate the card rather than editing it.\n",
        args.checkpoint.display(),
        args.model.display()
    );
    let _ = writeln!(md, "## What it is\n");
    let _ = writeln!(
        md,
        "A variational autoencoder for {w}x{h} grayscale images: encoder {:?} -> 2 x {} \
         (mu, logvar), decoder mirrored, {:?} likelihood. On the device its negative ELBO at \
         z = mu is the anomaly score; scores above {:.2} nats are flagged (threshold set at a \
         {}% false-positive rate on held-out normal images).\n",
        config.hidden,
        config.latent,
        config.likelihood,
        q16_to_f64(model.threshold),
        file.metadata
            .get("threshold_fpr")
            .and_then(|f| f.parse::<f64>().ok())
            .map_or("?".into(), |f| format!("{}", f * 100.0)),
    );
    let _ = writeln!(
        md,
        "## Data\n\n{}",
        table(&serde_json::to_value(&meta.data)?)
    );
    if let Some(d) = file
        .metadata
        .get("data")
        .and_then(|d| serde_json::from_str(d).ok())
    {
        let _ = writeln!(
            md,
            "Export (calibration, threshold and report images):\n\n{}",
            table(&d)
        );
    }
    let _ = writeln!(
        md,
        "## Training settings\n\n{}",
        table(&serde_json::to_value(&meta.train)?)
    );
    let _ = writeln!(
        md,
        "Initialization: {:?}; epochs run: {}.\n",
        meta.init, meta.epoch
    );
    if let Some(curve) = &curve {
        let _ = writeln!(
            md,
            "## Training curve\n\n![loss curves]({})\n",
            relative(curve, base)
        );
    }
    let _ = writeln!(md, "## Float metrics\n\n{}", table(&meta.metrics));
    let _ = writeln!(md, "## Device model\n");
    let _ = writeln!(
        md,
        "| key | value |\n|---|---|\n| model hash (CRC-32) | {:#010x} |\n| weights | {} |\n\
         | model image | {} bytes |\n| threshold | {:.4} nats (Q16 {}) |\n| quantization | {} |\n\
         | ONNX max abs diff vs candle | {} |\n",
        model.hash,
        model.parameters(),
        file.image.len(),
        q16_to_f64(model.threshold),
        model.threshold,
        file.metadata.get("quantization").map_or("", String::as_str),
        file.metadata
            .get("onnx_max_abs_diff")
            .map_or("", String::as_str),
    );
    let _ = writeln!(md, "## Quantization report\n");
    if let Value::Object(map) = &report {
        let mut scalars = serde_json::Map::new();
        for (k, v) in map {
            if k != "layers" {
                scalars.insert(k.clone(), v.clone());
            }
        }
        let _ = writeln!(md, "{}", table(&Value::Object(scalars)));
        let _ = writeln!(
            md,
            "| layer | shape | max abs error | in output steps |\n|---|---|---|---|"
        );
        if let Some(Value::Array(layers)) = map.get("layers") {
            for l in layers {
                let _ = writeln!(
                    md,
                    "| {} | {} | {:.5} | {:.2} |",
                    l["layer"].as_str().unwrap_or(""),
                    l["shape"].as_str().unwrap_or(""),
                    l["max_abs_error"].as_f64().unwrap_or(f64::NAN),
                    l["max_error_steps"].as_f64().unwrap_or(f64::NAN),
                );
            }
        }
        md.push('\n');
    }
    fault_detector_section(&mut md, &model, &args.model);
    let _ = writeln!(md, "## Pictures\n");
    let _ = writeln!(
        md,
        "Samples from the prior, float model:\n\n![float samples]({})\n",
        relative(&samples, base)
    );
    let _ = writeln!(
        md,
        "The same kind of samples from the device's fixed-point decoder (`tinyvae infer generate`, \
         bit-identical to the board):\n\n![device samples]({})\n",
        relative(&device_samples, base)
    );
    let _ = writeln!(
        md,
        "Test digits (left), float reconstruction (middle), device reconstruction (right):\n\n\
         ![reconstructions]({})\n",
        relative(&recon, base)
    );
    let card = args.out.with_extension("md");
    write_atomic(&card, md.as_bytes()).map_err(|(path, source)| CardError::Io { path, source })?;
    Ok(card)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_show_in_their_own_form() {
        let v: Value = serde_json::json!({
            "batch_size": 64, "lr": 0.001, "beta": 1.0, "loss": 117.672119140625,
            "normal_class": null, "source": "data/mnist-10k", "neg": -3
        });
        let t = table(&v);
        assert!(t.contains("| batch_size | 64 |"), "{t}");
        assert!(t.contains("| lr | 0.001 |"), "{t}");
        assert!(t.contains("| beta | 1 |"), "{t}");
        assert!(t.contains("| loss | 117.6721 |"), "{t}");
        assert!(t.contains("| normal_class | - |"), "{t}");
        assert!(t.contains("| source | data/mnist-10k |"), "{t}");
        assert!(t.contains("| neg | -3 |"), "{t}");
    }
}
