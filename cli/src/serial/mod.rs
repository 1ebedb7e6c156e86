//! `tinyvae serial`: talk to the tinyvae firmware over a serial port — a board's
//! `/dev/ttyACM*` or the pty of `tinyvae emulate` — with the postcard + CRC + COBS
//! protocol of [`tinyvae_shared::protocol`].
//!
//! The line itself is `tinyvae_link::serial::DeviceClient`; this module is the
//! command-line edge. Images come from `tinyvae_datasets` (IDX files, IDX folders,
//! image folders), faults from `tinyvae_datasets::corrupt`.

mod commands;
mod monitor;
mod transform;
mod view;

use std::path::PathBuf;

/// `tinyvae serial`: talk to a device (or the emulator's pty).
#[derive(Debug, Clone, clap::Args)]
pub struct SerialArgs {
    /// Serial port, e.g. /dev/ttyACM0 or the pty `tinyvae emulate` prints; `auto`
    /// picks the first port whose USB id is a known board's (ST-LINK, Pico).
    #[arg(long)]
    pub port: String,
    /// Baud rate (8N1). QEMU's pty ignores it.
    #[arg(long, default_value_t = 115_200)]
    pub baud: u32,
    /// Seconds to wait for each response.
    #[arg(long, default_value_t = 20.0)]
    pub timeout: f64,
    /// What to ask the device.
    #[command(subcommand)]
    pub command: SerialCommand,
}

/// The requests `tinyvae serial` can make.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum SerialCommand {
    /// Print the device's description; with --model, check it runs that model.
    Info(InfoArgs),
    /// Score images on the device; with ground truth, report AUROC and a confusion table.
    Encode(EncodeArgs),
    /// Generate images from the prior with the device's seeded generator.
    Generate(GenerateArgs),
    /// Denoise images on the device (encode, decode mu); with --corrupt, fault them
    /// first and report PSNR and SSIM against the clean images.
    Denoise(DenoiseArgs),
    /// Compress images on the device into latent codes of --bits bits per dimension;
    /// report their size and the PSNR and SSIM of the images decoded from them.
    Compress(CompressArgs),
    /// Instructions the device spends per encode, decode and generate.
    Bench(BenchArgs),
    /// Replace the device's anomaly threshold (until reset).
    SetThreshold(SetThresholdArgs),
    /// Print the device's request counters.
    Stats,
    /// Calibrate the device's fault detector on clean images (on-device learning):
    /// the device takes the next --frames images it scores as normal and sets its own
    /// thresholds (or, with --threshold-only, its threshold alone); prints what it set
    /// and, with --model, checks it against the host's run of the same calibration.
    Calibrate(CalibrateArgs),
    /// Print the fault detector the device applies and the calibration's progress.
    Detector,
    /// A live terminal view while the device scores images: scores, verdicts, the
    /// last image beside its reconstruction, instructions per request.
    Monitor(MonitorArgs),
}

/// `tinyvae serial info`.
#[derive(Debug, Clone, clap::Args)]
pub struct InfoArgs {
    /// Model file (exported safetensors or bare image) to compare with the device's.
    #[arg(long)]
    pub model: Option<PathBuf>,
}

/// Which images to send and what is known about them: shared by `serial encode` and
/// `serial monitor`.
#[derive(Debug, Clone, clap::Args)]
pub struct ImageSource {
    /// IDX image file (gzip or plain; labels found beside it are used), a folder of
    /// IDX files (its test split) or a folder of images (class sub-folders = labels).
    #[arg(long)]
    pub images: PathBuf,
    /// IDX label file for an IDX --images file.
    #[arg(long)]
    pub labels: Option<PathBuf>,
    /// Classes that count as anomalous, by name (digits for MNIST, sub-folder names
    /// for image folders), e.g. `--anomalous-classes 1,7`; needs labels.
    #[arg(long, value_delimiter = ',')]
    pub anomalous_classes: Vec<String>,
    /// A second image set, all anomalous (--images are then all normal).
    #[arg(long)]
    pub anomalous: Option<PathBuf>,
    /// Also score a seeded, corrupted copy of every image (simulated sensor faults,
    /// cycling through every kind `tinyvae faults` shows) as anomalous.
    #[arg(long)]
    pub corrupt: bool,
    /// Score at most this many images from each set.
    #[arg(long)]
    pub limit: Option<usize>,
}

/// `tinyvae serial encode`.
#[derive(Debug, Clone, clap::Args)]
pub struct EncodeArgs {
    /// The images.
    #[command(flatten)]
    pub source: ImageSource,
    /// Print only the summary, not one line per image.
    #[arg(long)]
    pub summary: bool,
}

/// The request `serial monitor` sends for each image.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum MonitorRequest {
    /// Score and reconstruct: the view shows the reconstruction.
    Reconstruct,
    /// Score only (cheaper on the device): no reconstruction to show.
    Encode,
}

/// `tinyvae serial monitor`.
#[derive(Debug, Clone, clap::Args)]
pub struct MonitorArgs {
    /// The images, sent in order and from the start again after the last.
    #[command(flatten)]
    pub source: ImageSource,
    /// The request sent per image.
    #[arg(long, value_enum, default_value_t = MonitorRequest::Reconstruct)]
    pub request: MonitorRequest,
    /// Seconds from one request to the next (the device's own time counts in it).
    #[arg(long, default_value_t = 0.25)]
    pub interval: f64,
    /// Stop after this many frames (at least 1); until q or Esc when absent.
    #[arg(long, value_parser = crate::args::at_least_one)]
    pub frames: Option<usize>,
    /// Frames the score plot and the median cost cover.
    #[arg(long, default_value_t = 200, value_parser = crate::args::at_least_one)]
    pub window: usize,
}

/// `tinyvae serial generate`.
#[derive(Debug, Clone, clap::Args)]
pub struct GenerateArgs {
    /// Seed of the first image; image i uses seed + i.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Standard deviation of the prior sample (1.0 = the prior).
    #[arg(long, default_value_t = 1.0)]
    pub temperature: f64,
    /// Number of images.
    #[arg(long, default_value_t = 16)]
    pub count: u64,
    /// Images per row of the grid.
    #[arg(long, default_value_t = 8)]
    pub columns: u32,
    /// Magnification of each pixel.
    #[arg(long, default_value_t = 4)]
    pub scale: u32,
    /// Output PNG.
    #[arg(long)]
    pub out: PathBuf,
}

/// A simulated sensor fault for `serial denoise --corrupt`: one kind of
/// `tinyvae_datasets::corrupt::Corruption` by name, or `all` to cycle through the seven
/// pixel faults (`Corruption::PIXEL_FAULTS`) denoising is trained and reported on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultChoice {
    /// Every image gets this fault.
    One(tinyvae_datasets::corrupt::Corruption),
    /// Image i gets pixel fault i mod 7, seeded as `serial encode --corrupt` seeds its
    /// faults (the first seven images get the same fault in both).
    All,
}

/// Parses a fault name (`noise`, `dead-pixels`, ...: any kind `tinyvae faults` draws)
/// or `all` (the seven pixel faults).
fn parse_fault(s: &str) -> Result<FaultChoice, String> {
    use tinyvae_datasets::corrupt::Corruption;
    if s == "all" {
        return Ok(FaultChoice::All);
    }
    Corruption::from_name(s)
        .map(FaultChoice::One)
        .ok_or_else(|| {
            let names: Vec<&str> = Corruption::PIXEL_FAULTS.iter().map(|c| c.name()).collect();
            format!(
                "expected one of {}, another kind `tinyvae faults` lists, or all; got `{s}`",
                names.join(", ")
            )
        })
}

/// `tinyvae serial denoise`.
#[derive(Debug, Clone, clap::Args)]
pub struct DenoiseArgs {
    /// IDX image file (gzip or plain), a folder of IDX files (its test split) or a
    /// folder of images.
    #[arg(long)]
    pub images: PathBuf,
    /// Fault each image on the host before sending it (seeded): a fault's name
    /// (noise, dead-pixels, stuck-pixels, occlusion, drift, stuck-lines, salt-pepper, or
    /// any other kind `tinyvae faults` shows) or `all` to cycle through those seven
    /// pixel faults. The clean images are then the reference.
    #[arg(long, value_parser = parse_fault)]
    pub corrupt: Option<FaultChoice>,
    /// Denoise at most this many images (at least 1).
    #[arg(long, default_value_t = 16, value_parser = crate::args::at_least_one)]
    pub limit: usize,
    /// Output PNG: one column per image; rows input (faulted), denoised, and clean
    /// when --corrupt made the faults.
    #[arg(long)]
    pub out: PathBuf,
    /// Magnification of each pixel in the PNG (at least 1).
    #[arg(long, default_value_t = 4, value_parser = crate::args::at_least_one)]
    pub scale: usize,
}

/// `tinyvae serial compress`.
#[derive(Debug, Clone, clap::Args)]
pub struct CompressArgs {
    /// IDX image file (gzip or plain), a folder of IDX files (its test split) or a
    /// folder of images.
    #[arg(long)]
    pub images: PathBuf,
    /// Bits per latent dimension, 1 to 8.
    #[arg(long, value_parser = clap::value_parser!(u8).range(1..=8))]
    pub bits: u8,
    /// Compress at most this many images (at least 1).
    #[arg(long, default_value_t = 16, value_parser = crate::args::at_least_one)]
    pub limit: usize,
    /// The device's model file: the codes are then decoded on the host by the
    /// device's decoder twin (it must be the model the device runs). Without it they
    /// are decoded by the device itself (`Decode`): the same bits.
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// Output PNG: one column per image; rows original and decoded from its code.
    #[arg(long)]
    pub out: Option<PathBuf>,
}

/// `tinyvae serial bench`.
#[derive(Debug, Clone, clap::Args)]
pub struct BenchArgs {
    /// Requests of each kind.
    #[arg(long, default_value_t = 20)]
    pub count: u64,
    /// Images to encode (IDX or folder); random images when absent.
    #[arg(long)]
    pub images: Option<PathBuf>,
    /// Clock used to turn instructions into a time estimate, MHz.
    #[arg(long, default_value_t = 50.0)]
    pub clock_mhz: f64,
}

/// `tinyvae serial calibrate`.
#[derive(Debug, Clone, clap::Args)]
pub struct CalibrateArgs {
    /// Clean images from the device's own sensor: an IDX file or folder (its test
    /// split) or a folder of images.
    #[arg(long)]
    pub images: PathBuf,
    /// IDX label file for an IDX --images file.
    #[arg(long)]
    pub labels: Option<PathBuf>,
    /// Frames to calibrate on (the first of --images): half fit the terms, half set
    /// the threshold (with --threshold-only, all set the threshold).
    #[arg(long, default_value_t = 200)]
    pub frames: u16,
    /// Keep the terms of the detector in force (the model's, or an earlier
    /// calibration's) and set only the threshold: for a sensor like the training
    /// data's, where the exported terms find more faults than terms fitted on a few
    /// hundred of the board's frames.
    #[arg(long)]
    pub threshold_only: bool,
    /// Then score this many further clean images (the ones after the calibration's)
    /// and report how many the new thresholds flag: the false-positive rate.
    #[arg(long, default_value_t = 0)]
    pub check: usize,
    /// The model the device runs (exported safetensors or bare image): the host runs
    /// the same calibration on its twin of the device and the two must agree to the
    /// bit.
    #[arg(long)]
    pub model: Option<PathBuf>,
}

/// `tinyvae serial set-threshold`.
#[derive(Debug, Clone, clap::Args)]
pub struct SetThresholdArgs {
    /// New threshold in score units (nats); scores above it are anomalous.
    pub threshold: f64,
}

/// Runs `tinyvae serial`.
pub fn run(args: &SerialArgs) -> anyhow::Result<()> {
    commands::run(args)
}
