//! The training record a checkpoint stores: the run's hyperparameters
//! ([`TrainConfig`], key `train`) and, in resume files, its [`Progress`] (key
//! `progress`) with the metrics of every epoch.

use serde::{Deserialize, Serialize};

/// Hyperparameters of a run (stored in checkpoints).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrainConfig {
    /// Epochs to run (an upper bound when early stopping is on).
    pub epochs: usize,
    /// Minibatch size.
    pub batch_size: usize,
    /// Adam learning rate.
    pub lr: f64,
    /// Seed of every random choice.
    pub seed: u64,
    /// Weight of the KL term (beta-VAE); 1 is the true ELBO.
    pub beta: f64,
    /// Epochs over which the KL weight ramps linearly from 0 to `beta` (0: no warm-up).
    pub warmup_epochs: f64,
    /// Stop after this many epochs without a better validation loss (0: never).
    pub patience: usize,
    /// Translate each training image by a random offset of up to this many pixels in
    /// x and y, zero-filled (0: no augmentation). Absent in older checkpoints.
    #[serde(default)]
    pub shift: usize,
    /// Draws of the reparameterisation noise per image in the ELBO estimate (Kingma
    /// and Welling's L): the loss is the mean over the draws, which lowers the
    /// gradient's variance at L times the decoder's cost. 1 in older checkpoints.
    #[serde(default = "one")]
    pub mc_samples: usize,
    /// Denoising training (Vincent et al. 2008): fault kinds (`Corruption::name`) one
    /// of which, drawn at random, corrupts each training input while the target stays
    /// the clean image. Empty (older checkpoints too): plain reconstruction.
    #[serde(default)]
    pub denoise: Vec<String>,
    /// Fraction of the training images corrupted when `denoise` is set (the rest train
    /// clean to clean). 1 in older checkpoints.
    #[serde(default = "one_f64")]
    pub denoise_frac: f64,
}

fn one() -> usize {
    1
}

fn one_f64() -> f64 {
    1.0
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            epochs: 20,
            batch_size: 128,
            lr: 1e-3,
            seed: 0,
            beta: 1.0,
            warmup_epochs: 0.0,
            patience: 0,
            shift: 0,
            mc_samples: 1,
            denoise: Vec::new(),
            denoise_frac: 1.0,
        }
    }
}

/// Loss terms averaged per image.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct LossParts {
    /// `recon + beta * kl`.
    pub loss: f64,
    /// Reconstruction negative log-likelihood.
    pub recon: f64,
    /// KL divergence to the prior.
    pub kl: f64,
}

/// One line of the metrics log.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EpochMetrics {
    /// 1-based epoch number.
    pub epoch: usize,
    /// KL weight used at the end of the epoch.
    pub beta: f64,
    /// Training loss (averaged over the epoch's batches).
    pub train: LossParts,
    /// Validation loss with the full `beta`, when there is a validation set.
    pub val: Option<LossParts>,
    /// Wall-clock seconds of the epoch's training steps.
    pub seconds: f64,
}

/// Progress through a run, saved with the model for `--resume`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Progress {
    /// Epochs completed.
    pub epoch: usize,
    /// Best validation loss so far.
    pub best_val: Option<f64>,
    /// Epoch of `best_val`.
    pub best_epoch: usize,
    /// Epochs since the best validation loss.
    pub bad_epochs: usize,
    /// Whether early stopping fired.
    pub stopped_early: bool,
    /// Metrics of every completed epoch.
    pub history: Vec<EpochMetrics>,
}

#[cfg(test)]
mod tests {
    use super::TrainConfig;

    /// A checkpoint written before `shift`, `mc_samples` and denoising existed loads
    /// with today's behaviour for each.
    #[test]
    fn older_train_records_take_the_defaults() {
        let old = r#"{"epochs":60,"batch_size":64,"lr":0.001,"seed":1,"beta":1.0,
            "warmup_epochs":0.0,"patience":5}"#;
        let cfg: TrainConfig = serde_json::from_str(old).expect("old record");
        assert_eq!(cfg.shift, 0);
        assert_eq!(cfg.mc_samples, 1);
        assert!(cfg.denoise.is_empty());
        assert_eq!(cfg.denoise_frac, 1.0);
    }
}
