//! `checkpoint_candle`: the trainer's whole checkpoint loader, validator and candle
//! (feature `checkpoint`, which brings candle and tract), and the checkpoint seeds of
//! both checkpoint targets, written by the trainer.

use std::path::Path;

use candle_core::{DType, Device, Tensor};
use tinyvae_trainer::checkpoint::{self, CheckpointError, CheckpointMeta, DataInfo};
use tinyvae_trainer::model::{Init, Likelihood, ModelKind};
use tinyvae_trainer::train::{TrainConfig, Trainer};
use tinyvae_trainer::{Model, ModelConfig};

use crate::seeds::Seed;

/// `checkpoint::load_bytes` never panics; it accepts only what the validator
/// (`tinyvae_checkpoint::check`) accepts, with the same metadata, and refuses those
/// only for candle's own reasons (a tensor type candle cannot read), never for the
/// architecture; what it accepts says it is a tinyvae checkpoint, holds every parameter
/// of its architecture in the right shape, and runs a forward pass with outputs of the
/// architecture's sizes.
pub fn check_candle_checkpoint(data: &[u8]) {
    let path = Path::new("fuzz.safetensors");
    let checked = tinyvae_checkpoint::check(path, data);
    let loaded = match checkpoint::load_bytes(path, data, &Device::Cpu) {
        Ok(loaded) => loaded,
        Err(err) => {
            assert!(
                checked.is_err() || matches!(err, CheckpointError::Format { .. }),
                "the validator accepted what the model refuses: {err}"
            );
            return;
        }
    };
    let checked = checked.expect("what candle loads, the validator accepts");
    assert_eq!(checked.meta, loaded.meta);
    assert_eq!(
        loaded.raw.get("format").map(String::as_str),
        Some(checkpoint::FORMAT)
    );
    let config = &loaded.meta.config;
    assert_eq!(&loaded.model.config, config);
    let dims = config.encoder_dims().into_iter().map(|d| ("encoder", d));
    let dims = dims.chain(config.decoder_dims().into_iter().map(|d| ("decoder", d)));
    let vars = loaded.model.named_vars();
    assert_eq!(
        vars.len(),
        2 * (config.encoder_dims().len() + config.decoder_dims().len())
    );
    for ((network, (a, b)), pair) in dims.zip(vars.chunks(2)) {
        assert!(pair[0].0.starts_with(network));
        assert_eq!(pair[0].1.dims(), [b, a]);
        assert_eq!(pair[1].1.dims(), [b]);
    }
    let x =
        Tensor::zeros((2, config.input_dim()), DType::F32, &Device::Cpu).expect("an input batch");
    let (mu, logvar) = loaded.model.encode(&x).expect("the encoder runs");
    assert_eq!(mu.dims(), [2, config.latent]);
    assert_eq!(logvar.dims(), [2, config.latent]);
    let logits = loaded.model.decode(&mu).expect("the decoder runs");
    assert_eq!(logits.dims(), [2, config.input_dim()]);
}

fn meta(config: ModelConfig, epoch: usize) -> CheckpointMeta {
    CheckpointMeta {
        config,
        init: Init::Torch,
        data: DataInfo {
            source: "synthetic".into(),
            train_images: 3,
            val_images: 1,
            ..DataInfo::default()
        },
        train: TrainConfig {
            epochs: 2,
            batch_size: 4,
            ..TrainConfig::default()
        },
        epoch,
        metrics: serde_json::json!({ "loss": 1.5 }),
    }
}

/// Trainer checkpoints of tiny models: a VAE model file, an AE model file, and VAE
/// resume files with Adam moments, one of them with best-epoch parameters too.
pub fn seeds() -> Vec<Seed> {
    let dir = std::env::temp_dir().join(format!("tinyvae-fuzz-seeds-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("a temporary folder");
    let mut out = Vec::new();
    for (name, kind, hidden) in [
        ("checkpoint-vae", ModelKind::Vae, vec![6]),
        ("checkpoint-ae", ModelKind::Ae, vec![5, 3]),
    ] {
        let config = ModelConfig {
            kind,
            width: 3,
            height: 2,
            hidden,
            latent: 2,
            likelihood: Likelihood::Bernoulli,
        };
        let model = Model::new(config.clone(), Init::Torch, 1, &Device::Cpu).expect("a model");
        let path = dir.join(name);
        checkpoint::save_model(&path, &model, &meta(config.clone(), 2)).expect("saves");
        out.extend(crate::seeds::file_seeds("checkpoint_load", name, &path));
        if kind == ModelKind::Vae {
            let mut trainer =
                Trainer::new(model, meta(config.clone(), 1).train).expect("a trainer");
            for name in ["checkpoint-resume", "checkpoint-resume-best"] {
                if name.ends_with("best") {
                    trainer.best = Some(trainer.model.snapshot().expect("a snapshot"));
                }
                let path = dir.join(name);
                checkpoint::save_trainer(&path, &trainer, &meta(config.clone(), 1)).expect("saves");
                out.extend(crate::seeds::file_seeds("checkpoint_load", name, &path));
            }
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    out
}
