//! `tinyvae demo`: the whole system on the emulated board, from a fresh clone.
//!
//! Builds the firmware with the default model, boots the emulated LM3S6965 in QEMU,
//! streams bundled test digits and faulted copies of them over the serial line and prints
//! the device's verdicts (checking each one against the host's fixed-point prediction),
//! generates samples on the device, and saves the OLED screenshots and the samples as
//! PNGs.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{ensure, Context, Result};
use tinyvae_shared::fixed::q16_to_f64;
use tinyvae_shared::pipeline::{self, Workspace};

use super::DataArgs;
use crate::data::corrupt::corrupt_dataset;
use crate::device_model;
use crate::emulate::{boot, workspace_root, EmulatorConfig, FirmwareBuild, EMULATED_BOARD};
use crate::eval::auroc;
use crate::serial::metrics::Confusion;

/// Arguments of `tinyvae demo`.
#[derive(clap::Args, Clone, Debug)]
pub struct Args {
    /// Device model to build into the firmware.
    #[arg(long, default_value = "models/tinyvae-mnist.safetensors")]
    pub model: PathBuf,
    #[command(flatten)]
    pub data: DataArgs,
    /// Test digits to stream (each also sent once with a sensor fault).
    #[arg(long, default_value_t = 40)]
    pub images: usize,
    /// Samples to generate on the device.
    #[arg(long, default_value_t = 16)]
    pub samples: u64,
    /// Folder for the screenshots and samples.
    #[arg(long, default_value = "out/demo")]
    pub out: PathBuf,
    /// Seed of the faults and of the device's samples.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
}

/// Runs the demo.
pub fn run(args: Args) -> Result<()> {
    let root = workspace_root(&std::env::current_dir()?)?;
    let model_path = if args.model.is_absolute() {
        args.model.clone()
    } else {
        root.join(&args.model)
    };
    let file = device_model::load(&model_path)?;
    let model = file.model()?;
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating {}", args.out.display()))?;

    eprintln!("== building the firmware with {}", model_path.display());
    let elf = FirmwareBuild {
        dir: root.join(EMULATED_BOARD),
        target: None,
        features: Vec::new(),
        model: Some(model_path.clone()),
        target_dir: None,
        verbose: true,
    }
    .run()?;

    eprintln!("== booting the emulated LM3S6965 (QEMU lm3s6965evb)");
    // The boot screen is up from the first few thousand instructions until the idle
    // walk replaces it: `boot` takes its screenshot before it talks to the device.
    let boot_png = args.out.join("oled-boot.png");
    let mut config = EmulatorConfig::new(&elf);
    config.boot_screendump = Some(boot_png.clone());
    let (mut emulator, mut client, info) = boot(&config, Duration::from_secs(60))?;
    println!("device on {}", emulator.pty_path().display());
    crate::serial::print_info(&info);
    ensure!(
        info.model_hash == model.hash,
        "the device runs model {:#010x}, expected {:#010x}",
        info.model_hash,
        model.hash
    );
    let shot = |emulator: &mut crate::emulate::Emulator, name: &str| -> Result<PathBuf> {
        let path = args.out.join(name);
        emulator.screendump(&path)?;
        Ok(path)
    };

    let data_path = if args.data.data.is_absolute() {
        args.data.data.clone()
    } else {
        root.join(&args.data.data)
    };
    let data = DataArgs {
        data: data_path,
        ..args.data.clone()
    };
    let test = data
        .load_test((model.input_width, model.input_height), args.seed)?
        .take(args.images);
    let (faulted, kinds) = corrupt_dataset(&test, args.seed);

    eprintln!(
        "== streaming {} digits and {} faulted copies",
        test.len(),
        faulted.len()
    );
    println!("image            truth      score    recon       kl  verdict     instructions");
    let mut ws = Workspace::new();
    let (mut scores, mut verdicts, mut truth) = (Vec::new(), Vec::new(), Vec::new());
    let mut mismatches = 0;
    let mut instructions = 0u64;
    let mut shots = (None, None);
    for (set, anomalous) in [(&test, false), (&faulted, true)] {
        for i in 0..set.len() {
            let image = set.image_u8(i);
            let e = client
                .encode(image)
                .with_context(|| format!("encoding image {i}"))?;
            let host = pipeline::score_image(&model, &mut ws, image, info.threshold)?;
            if host.score != e.score
                || host.posterior.mu != e.mu
                || host.posterior.logvar != e.logvar
            {
                mismatches += 1;
            }
            let name = if anomalous {
                let kind = kinds.get(i).map_or("fault", |k| k.name());
                format!("#{i} {kind}")
            } else {
                format!(
                    "#{i} digit {}",
                    set.label(i).map_or("?".into(), |l| l.to_string())
                )
            };
            println!(
                "{name:<16} {:<9} {:>8.2} {:>8.2} {:>8.2}  {:<10} {:>10}",
                if anomalous { "faulted" } else { "normal" },
                q16_to_f64(e.score.score),
                q16_to_f64(e.score.reconstruction),
                q16_to_f64(e.score.kl),
                if e.score.anomalous {
                    "ANOMALY"
                } else {
                    "normal"
                },
                e.instructions
            );
            // Keep one screen of each verdict, as the device drew it.
            if !anomalous && !e.score.anomalous && shots.0.is_none() {
                shots.0 = Some(shot(&mut emulator, "oled-encode-normal.png")?);
            }
            if anomalous && e.score.anomalous && shots.1.is_none() {
                shots.1 = Some(shot(&mut emulator, "oled-encode-anomaly.png")?);
            }
            instructions += e.instructions;
            scores.push(f64::from(e.score.score));
            verdicts.push(e.score.anomalous);
            truth.push(anomalous);
        }
    }
    println!();
    println!(
        "{} images scored on the device, mean {:.0} instructions per encode; {} differ from the host's fixed-point prediction",
        scores.len(),
        instructions as f64 / scores.len().max(1) as f64,
        mismatches
    );
    if let Some(a) = auroc(&scores, &truth) {
        println!("AUROC normal vs faulted (device scores): {a:.4}");
    }
    println!("{}", Confusion::tally(&verdicts, &truth).table());

    eprintln!("== generating {} samples on the device", args.samples);
    let mut tiles = Vec::new();
    let mut gen_instructions = 0u64;
    for i in 0..args.samples {
        let g = client.generate(args.seed + i, 1 << 16)?;
        let (_, host) = pipeline::generate(&model, &mut ws, args.seed + i, 1 << 16)?;
        if host != g.image {
            mismatches += 1;
        }
        gen_instructions += g.instructions;
        tiles.push(
            g.image
                .iter()
                .map(|&p| p as f32 / 255.0)
                .collect::<Vec<f32>>(),
        );
    }
    let generate_png = shot(&mut emulator, "oled-generate.png")?;
    let samples_png = args.out.join("device-samples.png");
    crate::pictures::save_grid(
        &samples_png,
        &tiles,
        8,
        model.input_width,
        model.input_height,
        3,
    )?;
    println!(
        "{} samples, mean {:.0} instructions per generate",
        args.samples,
        gen_instructions as f64 / args.samples.max(1) as f64
    );

    // Left alone, the board walks through latent space on its display.
    std::thread::sleep(Duration::from_secs(4));
    let walk_png = shot(&mut emulator, "oled-walk.png")?;
    let stats = client.stats()?;
    println!(
        "device stats: {} frames, {} errors, {} scored, {} anomalies, {} generated",
        stats.frames, stats.errors, stats.scored, stats.anomalies, stats.generated
    );
    for path in [
        Some(boot_png),
        shots.0,
        shots.1,
        Some(generate_png),
        Some(walk_png),
        Some(samples_png),
    ]
    .into_iter()
    .flatten()
    {
        println!("wrote {}", path.display());
    }
    ensure!(
        mismatches == 0,
        "{mismatches} device results differ from the host's fixed-point prediction"
    );
    Ok(())
}
