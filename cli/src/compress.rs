//! `tinyvae compress`: the latent code as an image codec, at every bit depth, through
//! the float decoder and the device's fixed-point twin, beside PCA, JPEG and PNG at
//! the same bytes per image; a table, JSON and the rate-distortion plot.

use std::path::PathBuf;

use anyhow::{Context, Result};

use crate::args::{DataArgs, DeviceArgs};
use tinyvae_shared::model_file;
use tinyvae_trainer::checkpoint;
use tinyvae_trainer::compress::{
    compare, rate_distortion_plot, CompressOptions, CompressReport, RdPoint,
};

/// Arguments of `tinyvae compress`.
#[derive(clap::Args, Clone, Debug)]
pub struct Args {
    /// Checkpoint: the float encoder and decoder.
    #[arg(long)]
    pub model: PathBuf,
    /// Exported device model (`STEM.safetensors` from `tinyvae export`): also run the
    /// code through the device's fixed-point encoder and decoder.
    #[arg(long)]
    pub device_model: Option<PathBuf>,
    #[command(flatten)]
    pub data: DataArgs,
    #[command(flatten)]
    pub device: DeviceArgs,
    /// Bit depths of the latent code, comma separated (1 to 8).
    #[arg(long, value_delimiter = ',', default_value = "1,2,3,4,5,6,7,8",
          value_parser = clap::value_parser!(u8).range(1..=8))]
    pub bits: Vec<u8>,
    /// JPEG qualities, comma separated (1 to 100).
    #[arg(long, value_delimiter = ',', default_value = "1,5,10,20,30,40,50,60,70,80,90,95,100",
          value_parser = clap::value_parser!(u8).range(1..=100))]
    pub jpeg_quality: Vec<u8>,
    /// Rate-distortion plot (PNG).
    #[arg(long, default_value = "rate-distortion.png")]
    pub plot: PathBuf,
    /// Also write the table as Markdown here.
    #[arg(long)]
    pub markdown: Option<PathBuf>,
    /// Also write the results as JSON here.
    #[arg(long)]
    pub json: Option<PathBuf>,
}

/// Runs `tinyvae compress`.
pub fn run(args: Args) -> Result<()> {
    let device = args.device.device()?;
    let loaded = checkpoint::load(&args.model, &device)?;
    let cfg = &loaded.model.config;
    let (mut train, mut test) = args.data.load_train_test(0)?;
    if let Some(n) = args.data.limit {
        train = train.take(n);
        test = test.take(n);
    }
    let file = args
        .device_model
        .as_ref()
        .map(|p| model_file::load(p).with_context(|| format!("--device-model {}", p.display())))
        .transpose()?;
    let dm = file.as_ref().map(|f| f.model()).transpose()?;
    let opts = CompressOptions {
        bits: args.bits.clone(),
        jpeg_qualities: args.jpeg_quality.clone(),
    };
    let report = compare(&loaded.model, dm.as_ref(), &train, &test, &opts)?;
    let md = markdown(&report, cfg.latent);
    println!("{md}");
    rate_distortion_plot(&args.plot, &report)?;
    eprintln!("wrote {}", args.plot.display());
    if let Some(p) = &args.markdown {
        crate::output::write_file(p, md.as_bytes())?;
    }
    if let Some(p) = &args.json {
        crate::output::write_file(p, serde_json::to_string_pretty(&report)?.as_bytes())?;
    }
    Ok(())
}

fn row(method: &str, p: &RdPoint, raw: usize) -> String {
    format!(
        "| {method} | {} | {:.1}{} | {:.1}x | {:.2} | {:.3} |\n",
        p.setting,
        p.bytes,
        p.file_bytes
            .map_or(String::new(), |f| format!(" (file {f:.0})")),
        raw as f64 / p.bytes.max(1e-9),
        p.psnr,
        p.ssim
    )
}

/// One row per method and setting: bytes, ratio to the raw image, PSNR, SSIM.
fn markdown(r: &CompressReport, latent: usize) -> String {
    let mut md = format!(
        "{} test images of {} bytes; latent {latent} dims. PSNR/SSIM of the 8-bit output, mean over images. JPEG bytes: entropy-coded scan only (tables shared out of band), whole file in brackets.\n\n| method | setting | bytes/image | ratio to raw | PSNR (dB) | SSIM |\n|---|---|---|---|---|---|\n",
        r.test_images, r.raw_bytes
    );
    for p in &r.vae {
        md += &row("VAE code, float decoder", p, r.raw_bytes);
    }
    md += &row("VAE, unquantized mu", &r.vae_unquantized, r.raw_bytes);
    for p in r.device.iter().flatten() {
        md += &row("VAE code, device fixed point", p, r.raw_bytes);
    }
    for p in &r.pca {
        md += &row("PCA (components x bits)", p, r.raw_bytes);
    }
    for p in &r.jpeg {
        md += &row("JPEG", p, r.raw_bytes);
    }
    md += &format!(
        "| PNG (lossless) | - | {:.1} | {:.1}x | inf | 1.000 |\n",
        r.png_bytes,
        r.raw_bytes as f64 / r.png_bytes.max(1e-9)
    );
    md
}
