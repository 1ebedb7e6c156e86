//! `tinyvae denoise`: faulted test images through one or more models, as a picture and
//! a PSNR/SSIM table against the clean images (see `tinyvae_trainer::denoise`).

use std::path::PathBuf;

use anyhow::{Context, Result};

use crate::args::{DataArgs, DeviceArgs};
use tinyvae_trainer::checkpoint;
use tinyvae_trainer::denoise::{denoise, DenoiseOptions};

/// Arguments of `tinyvae denoise`.
#[derive(clap::Args, Clone, Debug)]
pub struct Args {
    /// Checkpoints as LABEL=PATH (or a PATH, labelled by its folder's name); repeat to
    /// compare models, e.g. --model vae=runs/vae/model.safetensors --model dvae=...
    #[arg(long, required = true, value_parser = labelled_path)]
    pub model: Vec<(String, PathBuf)>,
    #[command(flatten)]
    pub data: DataArgs,
    #[command(flatten)]
    pub device: DeviceArgs,
    /// Test images shown per fault kind in the picture.
    #[arg(long, default_value_t = 8, value_parser = crate::args::at_least_one)]
    pub examples: usize,
    /// Seed of the faults.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Pixel scale factor of the picture.
    #[arg(long, default_value_t = 3)]
    pub scale: usize,
    /// Output PNG: per fault kind, a row of faulted images, one row per model's
    /// output, a row of the clean images.
    #[arg(long, default_value = "denoise.png")]
    pub out: PathBuf,
    /// The table as JSON [default: the PNG's path with .json].
    #[arg(long)]
    pub json: Option<PathBuf>,
}

/// Parses `LABEL=PATH`, or a bare path labelled by its parent folder (`runs/dvae/
/// model.safetensors` is `dvae`) or, failing that, its file stem.
fn labelled_path(s: &str) -> Result<(String, PathBuf), String> {
    if let Some((label, path)) = s.split_once('=') {
        if label.is_empty() || path.is_empty() {
            return Err(format!("expected LABEL=PATH or PATH, got {s:?}"));
        }
        return Ok((label.to_string(), PathBuf::from(path)));
    }
    let path = PathBuf::from(s);
    let label = path
        .parent()
        .and_then(|p| p.file_name())
        .or_else(|| path.file_stem())
        .map_or_else(|| s.to_string(), |n| n.to_string_lossy().into_owned());
    Ok((label, path))
}

/// Runs `tinyvae denoise`.
pub fn run(args: Args) -> Result<()> {
    let device = args.device.device()?;
    let models = args
        .model
        .iter()
        .map(|(label, path)| {
            let loaded = checkpoint::load(path, &device)
                .with_context(|| format!("--model {label}={}", path.display()))?;
            Ok((label.clone(), loaded.model))
        })
        .collect::<Result<Vec<_>>>()?;
    let first = &models[0].1.config;
    let mut test = args
        .data
        .load_test((first.width, first.height), args.seed)?;
    if let Some(n) = args.data.limit {
        test = test.take(n);
    }
    let refs: Vec<(String, &_)> = models.iter().map(|(l, m)| (l.clone(), m)).collect();
    let opts = DenoiseOptions {
        seed: args.seed,
        examples: args.examples,
    };
    let out = denoise(&refs, &test, &opts)?;
    let size = (test.width, test.height);
    crate::output::save_unit_grid(&args.out, &out.tiles, out.columns, size, args.scale)?;
    let json_path = args
        .json
        .clone()
        .unwrap_or_else(|| args.out.with_extension("json"));
    let text = serde_json::to_string_pretty(&out.report)?;
    crate::output::write_file(&json_path, text.as_bytes())?;
    println!(
        "Mean PSNR (dB) and SSIM against the clean image, {} test images per fault, seed {}:\n",
        out.report.images, out.report.seed
    );
    print!("{}", out.report.markdown());
    eprintln!(
        "wrote {} (per fault, in {} order: faulted, {}, clean) and {}",
        args.out.display(),
        out.report
            .kinds
            .iter()
            .map(|k| k.kind.name())
            .collect::<Vec<_>>()
            .join(", "),
        refs.iter()
            .map(|(l, _)| l.as_str())
            .collect::<Vec<_>>()
            .join(", "),
        json_path.display()
    );
    Ok(())
}
