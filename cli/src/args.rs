//! Options several subcommands share: where the images come from, which device
//! computes.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use candle_core::Device;
use tinyvae_datasets::Dataset;

/// Where the images come from.
#[derive(clap::Args, Clone, Debug)]
pub struct DataArgs {
    /// IDX directory (train-*/t10k-*/test-* files, gzipped or not), an IDX
    /// images file, or a folder of PNG/JPEG/BMP images (class sub-folders optional).
    #[arg(long, default_value = "data/mnist-10k")]
    pub data: PathBuf,
    /// Keep only this class (by name, e.g. "3") for one-class training or as the
    /// normal class when scoring anomalies.
    #[arg(long)]
    pub normal_class: Option<String>,
    /// Use at most this many images (after class filtering; at least 1).
    #[arg(long, value_parser = at_least_one)]
    pub limit: Option<usize>,
    /// Width images from folders are resized to.
    #[arg(long, default_value_t = 28)]
    pub width: usize,
    /// Height images from folders are resized to.
    #[arg(long, default_value_t = 28)]
    pub height: usize,
}

impl DataArgs {
    /// Train and test sets (test: the data's test split, or a seeded 20% of a plain folder).
    pub fn load_train_test(&self, seed: u64) -> Result<(Dataset, Dataset)> {
        Ok(tinyvae_datasets::load_train_test(
            &self.data,
            (self.width, self.height),
            seed,
        )?)
    }

    /// Only the test split, sized to `(w, h)` when it comes from a folder.
    pub fn load_test(&self, size: (usize, usize), seed: u64) -> Result<Dataset> {
        Ok(tinyvae_datasets::load_test(&self.data, size, seed)?)
    }

    /// [`DataArgs::load_test`], then only `--normal-class` (when given) and at most
    /// `--limit` images.
    pub fn load_test_selected(&self, size: (usize, usize), seed: u64) -> Result<Dataset> {
        let mut test = self.load_test(size, seed)?;
        if let Some(class) = &self.normal_class {
            test = test.filter_class(test.class_index(class)?)?;
        }
        if let Some(n) = self.limit {
            test = test.take(n);
        }
        Ok(test)
    }
}

/// Parses a count flag that must be at least 1: `--limit 0` or `--epochs 0` would
/// otherwise run on nothing and still write a "trained" model. clap names the flag in
/// the error.
pub fn at_least_one(s: &str) -> Result<usize, String> {
    match s.parse::<usize>() {
        Ok(0) => Err("expected a whole number of at least 1, got 0".into()),
        Ok(n) => Ok(n),
        Err(e) => Err(format!("expected a whole number of at least 1 ({e})")),
    }
}

/// Parses a fraction in `[0, 1)`, such as `--val-frac`: 1 or more would hold out every
/// image and leave none to train on; negative and NaN values have no meaning.
pub fn fraction_below_one(s: &str) -> Result<f64, String> {
    let v: f64 = s
        .parse()
        .map_err(|e| format!("expected a fraction in [0, 1) ({e})"))?;
    if (0.0..1.0).contains(&v) {
        Ok(v)
    } else {
        Err(format!("expected a fraction in [0, 1), got {v}"))
    }
}

/// Which device to compute on.
#[derive(clap::Args, Clone, Debug)]
pub struct DeviceArgs {
    /// cpu, cuda, cuda:N (needs the `cuda` cargo feature) or metal (the `metal` feature).
    #[arg(long, default_value = "cpu")]
    pub device: String,
}

impl DeviceArgs {
    /// The candle device.
    pub fn device(&self) -> Result<Device> {
        let d = self.device.as_str();
        if d == "cpu" {
            return Ok(Device::Cpu);
        }
        if let Some(rest) = d.strip_prefix("cuda") {
            let ordinal: usize = match rest.strip_prefix(':') {
                Some(n) => n
                    .parse()
                    .with_context(|| format!("bad CUDA device {d:?}"))?,
                None if rest.is_empty() => 0,
                None => bail!("unknown device {d:?}"),
            };
            #[cfg(feature = "cuda")]
            return tinyvae_trainer::cuda::open(ordinal)
                .with_context(|| format!("cannot open {d}"));
            #[cfg(not(feature = "cuda"))]
            bail!(
                "cannot open cuda:{ordinal}: this tinyvae was built without CUDA (rebuild with \
                 `--features cuda`, or use scripts/build-cuda)"
            );
        }
        if d == "metal" {
            if cfg!(feature = "metal") {
                return Device::new_metal(0).context("cannot open the Metal device");
            }
            bail!("this tinyvae was built without Metal: rebuild with `--features metal`");
        }
        bail!("unknown device {d:?} (use cpu, cuda, cuda:N or metal)")
    }
}
