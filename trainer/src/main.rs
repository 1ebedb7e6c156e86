//! The `tinyvae` command: a thin dispatcher over [`Command`]; each subcommand
//! lives in its own module under `tinyvae_trainer::cli`.

use clap::{Parser, Subcommand};
use tinyvae_trainer::cli;

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
    Train(cli::train::Args),
    /// Test negative ELBO, IWAE NLL estimate, reconstruction error and anomaly AUROCs.
    Eval(cli::eval::Args),
    /// A grid of images decoded from the prior.
    Sample(cli::sample::Args),
    /// Test images beside their reconstructions.
    Reconstruct(cli::reconstruct::Args),
    /// Latent-space walks between pairs of images, for one or more models.
    Interpolate(cli::interpolate::Args),
    /// One latent dimension varied at a time.
    Traverse(cli::traverse::Args),
    /// Per-class one-class AUROC table beside Deep SVDD.
    Oneclass(cli::oneclass::Args),
    /// Quantize a VAE for the device, write ONNX files, report the quantization cost.
    Export(cli::export::Args),
    /// Run the device's fixed-point inference on the host: score images, generate.
    Infer(cli::infer::Args),
    /// Write the model card of an exported model (metrics, settings, pictures).
    Card(cli::card::Args),
    /// Talk to the firmware over a serial port (a board or `tinyvae emulate`'s pty).
    Serial(tinyvae_trainer::serial::SerialArgs),
    /// Run the firmware in QEMU and serve its UART on a pty.
    Emulate(tinyvae_trainer::emulate::EmulateArgs),
    /// The whole system on the emulated board: detection, generation, OLED screenshots.
    Demo(cli::demo::Args),
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
        Command::Train(a) => cli::train::run(a),
        Command::Eval(a) => cli::eval::run(a),
        Command::Sample(a) => cli::sample::run(a),
        Command::Reconstruct(a) => cli::reconstruct::run(a),
        Command::Interpolate(a) => cli::interpolate::run(a),
        Command::Traverse(a) => cli::traverse::run(a),
        Command::Oneclass(a) => cli::oneclass::run(a),
        Command::Export(a) => cli::export::run(a),
        Command::Infer(a) => cli::infer::run(a),
        Command::Card(a) => cli::card::run(a),
        Command::Serial(a) => tinyvae_trainer::serial::run(&a),
        Command::Emulate(a) => tinyvae_trainer::emulate::run(&a),
        Command::Demo(a) => cli::demo::run(a),
    }
}
