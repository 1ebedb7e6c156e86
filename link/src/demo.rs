//! The whole system on the emulated board, from a fresh clone: what `tinyvae demo`
//! and `scripts/demo` run.
//!
//! Builds the firmware with the chosen model, boots the emulated LM3S6965 in QEMU,
//! streams test digits and faulted copies of them over the serial line and reports the
//! device's verdicts (checking each one against the host's fixed-point prediction),
//! generates samples on the device, and saves the OLED screenshots and the samples as
//! PNGs. [`run`] writes its table to any `Write` and returns the figures.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tinyvae_datasets::corrupt::corrupt_dataset;
use tinyvae_datasets::grid::{save_grid, GridError, GridLayout};
use tinyvae_datasets::metrics::auroc;
use tinyvae_datasets::DataError;
use tinyvae_shared::fixed::q16_to_f64;
use tinyvae_shared::model::ModelError;
use tinyvae_shared::model_file::{self, DeviceModelError};
use tinyvae_shared::pipeline::{self, InferError, Workspace};

use crate::confusion::Confusion;
use crate::emulate::{
    boot, workspace_root, BootError, EmulateError, Emulator, EmulatorConfig, FirmwareBuild,
    EMULATED_BOARD,
};
use crate::info::describe;
use crate::serial::SerialError;

/// What the demo runs on and how much it does. Relative paths are taken from the
/// workspace root, so the demo runs the same from any folder of the checkout.
#[derive(Debug, Clone, PartialEq)]
pub struct DemoOptions {
    /// Device model to build into the firmware.
    pub model: PathBuf,
    /// Where the test digits come from (see [`tinyvae_datasets::load_test`]).
    pub data: PathBuf,
    /// Test digits to stream (each also sent once with a sensor fault).
    pub images: usize,
    /// Samples to generate on the device.
    pub samples: u64,
    /// Folder for the screenshots and samples.
    pub out: PathBuf,
    /// Seed of the faults and of the device's samples.
    pub seed: u64,
    /// Show cargo's progress while the firmware builds.
    pub verbose_build: bool,
}

impl Default for DemoOptions {
    /// The bundled model and digits, 40 digits, 16 samples, `out/demo`, seed 0.
    fn default() -> Self {
        Self {
            model: "models/tinyvae-mnist.safetensors".into(),
            data: "data/mnist-10k".into(),
            images: 40,
            samples: 16,
            out: "out/demo".into(),
            seed: 0,
            verbose_build: true,
        }
    }
}

/// Why the demo stopped.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    /// The model file is missing or invalid.
    #[error(transparent)]
    ModelFile(#[from] DeviceModelError),
    /// The model image does not parse.
    #[error("model: {0}")]
    Model(#[from] ModelError),
    /// Finding the workspace or building the firmware failed.
    #[error(transparent)]
    Emulate(#[from] EmulateError),
    /// QEMU or the first exchange with the firmware failed.
    #[error(transparent)]
    Boot(#[from] BootError),
    /// A request failed on the line or on the device.
    #[error("{context}: {source}")]
    Serial {
        /// Which request.
        context: String,
        /// What failed.
        source: SerialError,
    },
    /// The test digits could not be loaded.
    #[error(transparent)]
    Data(#[from] DataError),
    /// The host's fixed-point run failed.
    #[error("host fixed-point run: {0}")]
    Pipeline(#[from] InferError),
    /// The samples picture could not be written.
    #[error(transparent)]
    Grid(#[from] GridError),
    /// The output folder or the table could not be written.
    #[error("{}: {source}", path.display())]
    Io {
        /// What was being written.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The device runs another model than the one it was built with.
    #[error("the device runs model {device:#010x}, expected {expected:#010x}")]
    WrongModel {
        /// The device's model hash.
        device: u32,
        /// The model file's hash.
        expected: u32,
    },
    /// Device answers that differ from the host's fixed-point prediction.
    #[error("{0} device results differ from the host's fixed-point prediction")]
    Mismatch(usize),
}

/// The figures of a demo run.
#[derive(Debug, Clone, PartialEq)]
pub struct DemoReport {
    /// Images scored on the device (digits, then faulted copies).
    pub scored: usize,
    /// Mean instructions per encode request.
    pub mean_encode_instructions: f64,
    /// Mean instructions per generate request.
    pub mean_generate_instructions: f64,
    /// AUROC of the device's scores, digits vs faulted copies.
    pub auroc: Option<f64>,
    /// The device's verdicts against the truth.
    pub confusion: Confusion,
    /// Every file written.
    pub files: Vec<PathBuf>,
}

fn serial(context: impl Into<String>) -> impl FnOnce(SerialError) -> DemoError {
    let context = context.into();
    move |source| DemoError::Serial { context, source }
}

fn from_root(root: &Path, path: &Path) -> PathBuf {
    if path.is_absolute() {
        path.to_path_buf()
    } else {
        root.join(path)
    }
}

/// Runs the demo, writing its table to `out` and the build's progress to stderr.
pub fn run(options: &DemoOptions, out: &mut impl Write) -> Result<DemoReport, DemoError> {
    let cwd = std::env::current_dir().map_err(|source| DemoError::Io {
        path: ".".into(),
        source,
    })?;
    let root = workspace_root(&cwd)?;
    let model_path = from_root(&root, &options.model);
    let file = model_file::load(&model_path)?;
    let model = file.model()?;
    std::fs::create_dir_all(&options.out).map_err(|source| DemoError::Io {
        path: options.out.clone(),
        source,
    })?;
    let mut say = |line: std::fmt::Arguments<'_>| {
        writeln!(out, "{line}").map_err(|source| DemoError::Io {
            path: "<output>".into(),
            source,
        })
    };

    eprintln!("== building the firmware with {}", model_path.display());
    let elf = FirmwareBuild {
        dir: root.join(EMULATED_BOARD),
        target: None,
        features: Vec::new(),
        model: Some(model_path.clone()),
        target_dir: None,
        verbose: options.verbose_build,
    }
    .run()?;

    eprintln!("== booting the emulated LM3S6965 (QEMU lm3s6965evb)");
    // The boot screen is up from the first few thousand instructions until the idle
    // demo replaces it: `boot` takes its screenshot before it talks to the device.
    let boot_png = options.out.join("oled-boot.png");
    let mut config = EmulatorConfig::new(&elf);
    config.boot_screendump = Some(boot_png.clone());
    let (mut emulator, mut client, info) = boot(&config, Duration::from_secs(60))?;
    say(format_args!("device on {}", emulator.pty_path().display()))?;
    say(format_args!("{}", describe(&info).trim_end()))?;
    if info.model_hash != model.hash {
        return Err(DemoError::WrongModel {
            device: info.model_hash,
            expected: model.hash,
        });
    }
    let mut files = vec![boot_png];
    let shot = |emulator: &mut Emulator, name: &str| -> Result<PathBuf, DemoError> {
        let path = options.out.join(name);
        emulator.screendump(&path)?;
        Ok(path)
    };

    let test = tinyvae_datasets::load_test(
        &from_root(&root, &options.data),
        (model.input_width, model.input_height),
        options.seed,
    )?
    .take(options.images);
    let (faulted, kinds) = corrupt_dataset(&test, options.seed);

    eprintln!(
        "== streaming {} digits and {} faulted copies",
        test.len(),
        faulted.len()
    );
    say(format_args!(
        "image            truth      score    recon       kl  detector  fired     verdict     instructions"
    ))?;
    let mut ws = Workspace::new();
    let (mut scores, mut verdicts, mut truth) = (Vec::new(), Vec::new(), Vec::new());
    // The fault detector's score when the model carries one (it ranks and decides),
    // the negative ELBO's beside it.
    let mut elbo_scores = Vec::new();
    let mut mismatches = 0;
    let mut instructions = 0u64;
    let mut shots = (None, None);
    for (set, anomalous) in [(&test, false), (&faulted, true)] {
        for i in 0..set.len() {
            let image = set.image_u8(i);
            let e = client
                .encode(image)
                .map_err(serial(format!("encoding image {i}")))?;
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
            let (detector, fired) = match e.score.detector {
                Some(d) => (format!("{:.2}", q16_to_f64(d.score)), d.fired.name()),
                None => ("-".into(), "-"),
            };
            let flagged = e.score.flagged();
            say(format_args!(
                "{name:<16} {:<9} {:>8.2} {:>8.2} {:>8.2}  {detector:>8}  {fired:<8}  {:<10} {:>10}",
                if anomalous { "faulted" } else { "normal" },
                q16_to_f64(e.score.score),
                q16_to_f64(e.score.reconstruction),
                q16_to_f64(e.score.kl),
                if flagged { "ANOMALY" } else { "normal" },
                e.instructions
            ))?;
            // Keep one screen of each verdict, as the device drew it.
            if !anomalous && !flagged && shots.0.is_none() {
                shots.0 = Some(shot(&mut emulator, "oled-encode-normal.png")?);
            }
            if anomalous && flagged && shots.1.is_none() {
                shots.1 = Some(shot(&mut emulator, "oled-encode-anomaly.png")?);
            }
            instructions += e.instructions;
            elbo_scores.push(f64::from(e.score.score));
            scores.push(f64::from(
                e.score.detector.map_or(e.score.score, |d| d.score),
            ));
            verdicts.push(flagged);
            truth.push(anomalous);
        }
    }
    let mean_encode_instructions = instructions as f64 / scores.len().max(1) as f64;
    say(format_args!(""))?;
    say(format_args!(
        "{} images scored on the device, mean {:.0} instructions per encode; {} differ from the host's fixed-point prediction",
        scores.len(),
        mean_encode_instructions,
        mismatches
    ))?;
    let auroc = auroc(&scores, &truth);
    if let Some(a) = auroc {
        match tinyvae_datasets::metrics::auroc(&elbo_scores, &truth) {
            Some(elbo) if elbo_scores != scores => say(format_args!(
                "AUROC normal vs faulted (device scores): {a:.4} (fault detector; the negative ELBO alone: {elbo:.4})"
            ))?,
            _ => say(format_args!(
                "AUROC normal vs faulted (device scores): {a:.4}"
            ))?,
        }
    }
    let confusion = Confusion::tally(&verdicts, &truth);
    say(format_args!("{}", confusion.table()))?;

    eprintln!("== generating {} samples on the device", options.samples);
    let mut tiles = Vec::new();
    let mut gen_instructions = 0u64;
    for i in 0..options.samples {
        let seed = options.seed + i;
        let g = client
            .generate(seed, 1 << 16)
            .map_err(serial(format!("generating sample {i}")))?;
        let (_, host) = pipeline::generate(&model, &mut ws, seed, 1 << 16)?;
        if host != g.image {
            mismatches += 1;
        }
        gen_instructions += g.instructions;
        tiles.push(g.image.to_vec());
    }
    let generate_png = shot(&mut emulator, "oled-generate.png")?;
    let samples_png = options.out.join("device-samples.png");
    save_grid(
        &samples_png,
        &tiles,
        model.input_width,
        model.input_height,
        GridLayout::default(),
    )?;
    let mean_generate_instructions = gen_instructions as f64 / options.samples.max(1) as f64;
    say(format_args!(
        "{} samples, mean {:.0} instructions per generate",
        options.samples, mean_generate_instructions
    ))?;

    // Left alone, the board runs its stand-alone demo: it scores the frames built into
    // its flash and shows each verdict.
    std::thread::sleep(Duration::from_secs(4));
    let standalone_png = shot(&mut emulator, "oled-standalone.png")?;
    let stats = client.stats().map_err(serial("reading the stats"))?;
    say(format_args!(
        "device stats: {} frames, {} errors, {} scored, {} anomalies, {} generated",
        stats.frames, stats.errors, stats.scored, stats.anomalies, stats.generated
    ))?;
    files.extend(shots.0);
    files.extend(shots.1);
    files.extend([generate_png, standalone_png, samples_png]);
    for path in &files {
        say(format_args!("wrote {}", path.display()))?;
    }
    if mismatches != 0 {
        return Err(DemoError::Mismatch(mismatches));
    }
    Ok(DemoReport {
        scored: scores.len(),
        mean_encode_instructions,
        mean_generate_instructions,
        auroc,
        confusion,
        files,
    })
}
