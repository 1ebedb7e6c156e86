//! `tinyvae serial denoise` and `tinyvae serial compress`: the device's Denoise and
//! Compress requests over a set of images, with image-quality figures (PSNR and SSIM
//! from `tinyvae_datasets::metrics`) and a PNG of the rows.

use anyhow::{bail, ensure, Context};
use tinyvae_datasets::corrupt::{corrupt_with, Corruption};
use tinyvae_datasets::grid::{grid_image, GridLayout};
use tinyvae_datasets::metrics::{psnr, ssim};
use tinyvae_datasets::Dataset;
use tinyvae_link::serial::DeviceClient;
use tinyvae_shared::code::{self, code_len};
use tinyvae_shared::model::Model;
use tinyvae_shared::model_file;
use tinyvae_shared::pipeline::{self, Workspace};

use super::commands::load_for_device;
use super::{CompressArgs, DenoiseArgs, FaultChoice};

/// The seed of the host's faults: the one `serial encode --corrupt` uses, so the same
/// image gets the same fault in both commands.
const FAULT_SEED: u64 = 0x5eed;

/// Pixels as values in [0, 1], what the metrics take.
fn unit(pixels: &[u8]) -> Vec<f32> {
    pixels.iter().map(|&p| f32::from(p) / 255.0).collect()
}

/// PSNR (dB) and SSIM of `image` against `reference` (both `w` x `h`).
fn quality(image: &[u8], reference: &[u8], w: usize, h: usize) -> (f64, f64) {
    let (a, b) = (unit(image), unit(reference));
    (
        psnr(&a, &b).unwrap_or(f64::NAN),
        ssim(&a, &b, w, h).unwrap_or(f64::NAN),
    )
}

/// The mean of `values`, or NaN for none. An infinite PSNR (an exact image) makes
/// the mean infinite, which is what it is.
fn mean(values: &[f64]) -> f64 {
    values.iter().sum::<f64>() / values.len() as f64
}

/// `set` with the fault `choice` applied to every image, seeded per image as
/// `corrupt_dataset` does (`all`: the seven [`Corruption::PIXEL_FAULTS`] in turn), and
/// each image's fault name.
fn faulted(set: &Dataset, choice: FaultChoice) -> (Dataset, Vec<&'static str>) {
    let kinds: Vec<Corruption> = match choice {
        FaultChoice::All => Corruption::PIXEL_FAULTS.to_vec(),
        FaultChoice::One(kind) => vec![kind],
    };
    let out = corrupt_with(set, &kinds, FAULT_SEED);
    let names = (0..set.len())
        .map(|i| kinds[i % kinds.len()].name())
        .collect();
    (out, names)
}

/// Writes `rows` (each a row of equal-sized images) as one grid PNG at `path`.
fn save_rows(
    path: &std::path::Path,
    rows: &[&[Vec<u8>]],
    w: usize,
    h: usize,
    scale: usize,
) -> anyhow::Result<()> {
    let columns = rows.first().map_or(1, |r| r.len());
    let tiles: Vec<&Vec<u8>> = rows.iter().flat_map(|r| r.iter()).collect();
    let layout = GridLayout {
        columns,
        scale,
        gap: 1,
    };
    grid_image(&tiles, w, h, layout)
        .save(path)
        .with_context(|| format!("writing {}", path.display()))
}

pub(super) fn denoise(client: &mut DeviceClient, args: &DenoiseArgs) -> anyhow::Result<()> {
    let info = client.info()?;
    let set = load_for_device(&args.images, None, Some(args.limit), &info)?;
    ensure!(!set.is_empty(), "{} holds no images", args.images.display());
    let (w, h) = (set.width, set.height);
    let (sent, faults) = match args.corrupt {
        Some(choice) => {
            let (out, names) = faulted(&set, choice);
            (out, Some(names))
        }
        None => (set.clone(), None),
    };
    let mut inputs = Vec::with_capacity(sent.len());
    let mut cleaned = Vec::with_capacity(sent.len());
    let mut instructions = Vec::with_capacity(sent.len());
    for i in 0..sent.len() {
        let input = sent.image_u8(i).to_vec();
        let d = client
            .denoise(&input)
            .with_context(|| format!("denoising image #{i}"))?;
        ensure!(
            d.image.len() == input.len(),
            "the device returned {} pixels for a {w}x{h} image",
            d.image.len()
        );
        instructions.push(d.instructions as f64);
        inputs.push(input);
        cleaned.push(d.image.to_vec());
    }
    let clean: Vec<Vec<u8>> = (0..set.len()).map(|i| set.image_u8(i).to_vec()).collect();
    match &faults {
        Some(names) => {
            println!("image  fault          faulted PSNR  SSIM   denoised PSNR  SSIM");
            let (mut before, mut after) = (Vec::new(), Vec::new());
            for i in 0..clean.len() {
                let (p0, s0) = quality(&inputs[i], &clean[i], w, h);
                let (p1, s1) = quality(&cleaned[i], &clean[i], w, h);
                println!(
                    "#{i:<5} {:<14} {p0:>9.2} dB {s0:>6.3} {p1:>10.2} dB {s1:>6.3}",
                    names[i]
                );
                before.push((p0, s0));
                after.push((p1, s1));
            }
            let psnr_of = |v: &[(f64, f64)]| mean(&v.iter().map(|q| q.0).collect::<Vec<_>>());
            let ssim_of = |v: &[(f64, f64)]| mean(&v.iter().map(|q| q.1).collect::<Vec<_>>());
            println!(
                "faulted vs clean:  PSNR {:.2} dB  SSIM {:.4} (mean of {})",
                psnr_of(&before),
                ssim_of(&before),
                before.len()
            );
            println!(
                "denoised vs clean: PSNR {:.2} dB  SSIM {:.4}",
                psnr_of(&after),
                ssim_of(&after)
            );
        }
        None => {
            let q: Vec<(f64, f64)> = (0..clean.len())
                .map(|i| quality(&cleaned[i], &inputs[i], w, h))
                .collect();
            println!(
                "denoised vs input: PSNR {:.2} dB  SSIM {:.4} (mean of {}; --corrupt compares \
                 with the clean images)",
                mean(&q.iter().map(|v| v.0).collect::<Vec<_>>()),
                mean(&q.iter().map(|v| v.1).collect::<Vec<_>>()),
                q.len()
            );
        }
    }
    println!("mean {:.0} instructions per denoise", mean(&instructions));
    let mut rows: Vec<&[Vec<u8>]> = vec![&inputs, &cleaned];
    if faults.is_some() {
        rows.push(&clean);
    }
    save_rows(&args.out, &rows, w, h, args.scale)?;
    println!(
        "wrote {} ({} rows: {}) to {}",
        inputs.len(),
        rows.len(),
        if faults.is_some() {
            "faulted, denoised, clean"
        } else {
            "input, denoised"
        },
        args.out.display()
    );
    Ok(())
}

/// How the host turns a code back into an image: the device decoder's twin on the
/// host, or the device itself.
enum Decoder<'m> {
    /// `pipeline::decode` with the model file (checked to be the device's).
    Twin(Box<Model<'m>>, Box<Workspace>),
    /// A `Decode` request.
    Device,
}

impl Decoder<'_> {
    fn decode(
        &mut self,
        client: &mut DeviceClient,
        z: &[tinyvae_shared::fixed::Q16],
    ) -> anyhow::Result<Vec<u8>> {
        Ok(match self {
            Decoder::Twin(model, ws) => pipeline::decode(model, ws, z)?.to_vec(),
            Decoder::Device => client.decode(z)?.image.to_vec(),
        })
    }
}

pub(super) fn compress(client: &mut DeviceClient, args: &CompressArgs) -> anyhow::Result<()> {
    // Read the model file first: a bad path fails before any device traffic.
    let image = args
        .model
        .as_deref()
        .map(|p| {
            model_file::load(p)
                .map(|f| f.image)
                .with_context(|| format!("loading the model {}", p.display()))
        })
        .transpose()?;
    let info = client.info()?;
    let mut decoder = match &image {
        Some(image) => {
            let model = Model::parse(image).context("the model file")?;
            if model.hash != info.model_hash {
                bail!(
                    "the device runs the model with hash {:08x}, not {} (hash {:08x}): its \
                     codes only decode with the device's own model",
                    info.model_hash,
                    args.model
                        .as_deref()
                        .unwrap_or(std::path::Path::new(""))
                        .display(),
                    model.hash
                );
            }
            Decoder::Twin(Box::new(model), Box::new(Workspace::new()))
        }
        None => Decoder::Device,
    };
    let set = load_for_device(&args.images, None, Some(args.limit), &info)?;
    ensure!(!set.is_empty(), "{} holds no images", args.images.display());
    let (w, h) = (set.width, set.height);
    let latent = usize::from(info.latent);
    let raw = w * h;
    let expected = code_len(latent, args.bits);
    println!("image   code bytes  ratio    PSNR      SSIM   code");
    let (mut originals, mut decoded) = (Vec::new(), Vec::new());
    let (mut psnrs, mut ssims, mut instructions) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..set.len() {
        let original = set.image_u8(i).to_vec();
        let c = client
            .compress(&original, args.bits)
            .with_context(|| format!("compressing image #{i}"))?;
        ensure!(
            c.code.len() == expected && c.bits == args.bits,
            "the device sent a {}-byte code at {} bits; {latent} dimensions at {} bits take \
             {expected}",
            c.code.len(),
            c.bits,
            args.bits
        );
        let z = code::decode_q16(&c.code, args.bits, latent)?;
        let image = decoder.decode(client, &z)?;
        let (p, s) = quality(&image, &original, w, h);
        let hex: String = c.code.iter().map(|b| format!("{b:02x}")).collect();
        println!(
            "#{i:<6} {:>10}  {:>5.1}x {p:>6.2} dB  {s:>6.3}   {hex}",
            c.code.len(),
            raw as f64 / c.code.len() as f64
        );
        psnrs.push(p);
        ssims.push(s);
        instructions.push(c.instructions as f64);
        originals.push(original);
        decoded.push(image);
    }
    println!(
        "{} images at {} bits: {expected} bytes per image instead of {raw} ({:.1}x smaller); \
         decoded by the {}: PSNR {:.2} dB, SSIM {:.4} (means); mean {:.0} instructions per \
         compress",
        originals.len(),
        args.bits,
        raw as f64 / expected as f64,
        match decoder {
            Decoder::Twin(..) => "device decoder's host twin",
            Decoder::Device => "device",
        },
        mean(&psnrs),
        mean(&ssims),
        mean(&instructions)
    );
    if let Some(out) = &args.out {
        save_rows(out, &[&originals, &decoded], w, h, 4)?;
        println!("wrote originals and decoded images to {}", out.display());
    }
    Ok(())
}
