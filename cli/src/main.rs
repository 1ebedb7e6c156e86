//! The `tinyvae` command: every piece of command-line code (clap arguments, printing,
//! progress bars, anyhow) and nothing else. Each subcommand is a module with its `Args`
//! and a `run` that calls the libraries: `tinyvae-trainer` (train, evaluate, export,
//! card), `tinyvae-link` (serial, emulate, flash, demo), `tinyvae-datasets` and
//! `tinyvae-shared`.

mod args;
mod card;
mod compress;
mod demo;
mod denoise;
mod detect;
mod emulate;
mod eval;
mod export;
mod faults;
mod flash;
mod infer;
mod interpolate;
mod latent_map;
mod oneclass;
mod output;
mod probe;
mod reconstruct;
mod sample;
mod serial;
mod train;
mod traverse;

use clap::{Parser, Subcommand};

// mimalloc keeps large training temporaries mapped instead of mmap/munmap-ing
// them every step, which is ~1.5x faster on small CPUs.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Train, evaluate and look at VAEs and plain autoencoders.
#[derive(Parser, Debug)]
#[command(name = "tinyvae", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Train a VAE or AE; writes checkpoints, metrics.jsonl and loss.png.
    Train(train::Args),
    /// Test negative ELBO, IWAE NLL estimate, reconstruction error and anomaly AUROCs.
    Eval(eval::Args),
    /// A grid of images decoded from the prior.
    Sample(sample::Args),
    /// Test images beside their reconstructions.
    Reconstruct(reconstruct::Args),
    /// Latent-space walks between pairs of images, for one or more models.
    Interpolate(interpolate::Args),
    /// One latent dimension varied at a time.
    Traverse(traverse::Args),
    /// Faulted test images through one or more models: a picture and a PSNR/SSIM table.
    Denoise(denoise::Args),
    /// Every simulated sensor fault on a few test digits: a picture and a table.
    Faults(faults::Args),
    /// The fault detector on the device twin: per-fault AUROC, recall and false positives.
    Detect(detect::Args),
    /// Per-class one-class AUROC table beside Deep SVDD.
    Oneclass(oneclass::Args),
    /// Classify digits from a frozen encoder's codes with 100, 1,000 or all labels,
    /// beside raw pixels and PCA (logistic regression and kNN).
    Probe(probe::Args),
    /// The test set's codes coloured by digit beside the decoded latent grid.
    LatentMap(latent_map::Args),
    /// The latent code as an image codec at 1-8 bits beside PCA, JPEG and PNG.
    Compress(compress::Args),
    /// Quantize a VAE for the device, write ONNX files, report the quantization cost.
    Export(export::Args),
    /// Run the device's fixed-point inference on the host: score images, generate.
    Infer(infer::Args),
    /// Write the model card of an exported model (metrics, settings, pictures).
    Card(card::Args),
    /// Talk to the firmware over a serial port (a board or `tinyvae emulate`'s pty).
    Serial(serial::SerialArgs),
    /// Run the firmware in QEMU and serve its UART on a pty.
    Emulate(emulate::EmulateArgs),
    /// Build the firmware for a board and flash it (probe-rs, UF2, or QEMU for the
    /// emulated board).
    Flash(flash::Args),
    /// The whole system on the emulated board: detection, generation, OLED screenshots.
    Demo(demo::Args),
}

fn main() -> anyhow::Result<()> {
    // candle 0.11 runs element-wise ops on a pool of spinning workers. At these
    // tensor sizes that gains nothing, and on a busy 2-core machine the spinning
    // made epochs up to 10x slower; matmuls still use every core (rayon).
    // Set before any candle call, while this is the only thread.
    if std::env::var_os("CANDLE_NUM_THREADS").is_none() {
        std::env::set_var("CANDLE_NUM_THREADS", "1");
    }
    match Cli::parse().command {
        Command::Train(a) => train::run(a),
        Command::Eval(a) => eval::run(a),
        Command::Sample(a) => sample::run(a),
        Command::Reconstruct(a) => reconstruct::run(a),
        Command::Interpolate(a) => interpolate::run(a),
        Command::Traverse(a) => traverse::run(a),
        Command::Denoise(a) => denoise::run(a),
        Command::Faults(a) => faults::run(a),
        Command::Detect(a) => detect::run(a),
        Command::Oneclass(a) => oneclass::run(a),
        Command::Probe(a) => probe::run(a),
        Command::LatentMap(a) => latent_map::run(a),
        Command::Compress(a) => compress::run(a),
        Command::Export(a) => export::run(a),
        Command::Infer(a) => infer::run(a),
        Command::Card(a) => card::run(a),
        Command::Serial(a) => serial::run(&a),
        Command::Emulate(a) => emulate::run(&a),
        Command::Flash(a) => flash::run(&a),
        Command::Demo(a) => demo::run(a),
    }
}
