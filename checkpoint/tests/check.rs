//! The validator on files built here: it accepts model and resume files, and refuses
//! each kind of fault with an error that names the file and what was expected.

use std::collections::HashMap;
use std::path::Path;

use proptest::prelude::*;
use safetensors::tensor::TensorView;
use safetensors::Dtype;
use tinyvae_checkpoint::{
    check, check_resume, metadata, resume_metadata, CheckError, CheckpointMeta, DataInfo, Init,
    Likelihood, ModelConfig, ModelKind, Progress, TrainConfig,
};

const PATH: &str = "runs/x/last.safetensors";

fn config(kind: ModelKind) -> ModelConfig {
    ModelConfig {
        kind,
        width: 3,
        height: 2,
        hidden: vec![5, 4],
        latent: 2,
        likelihood: Likelihood::Gaussian,
    }
}

fn meta(config: ModelConfig) -> CheckpointMeta {
    CheckpointMeta {
        config,
        init: Init::Kaiming,
        data: DataInfo {
            source: "data/x".into(),
            train_images: 9,
            val_images: 1,
            split_seed: Some(4),
            ..DataInfo::default()
        },
        train: TrainConfig {
            epochs: 3,
            ..TrainConfig::default()
        },
        epoch: 2,
        metrics: serde_json::json!({ "loss": 12.25, "val": [1, 2.5] }),
    }
}

/// A checkpoint under construction: named tensors (dtype, shape, bytes) and metadata.
#[derive(Clone)]
struct File {
    tensors: Vec<(String, Dtype, Vec<usize>, Vec<u8>)>,
    metadata: HashMap<String, String>,
}

impl File {
    /// A model file of `meta`'s architecture, or a resume file (Adam moments, and
    /// best-epoch parameters when `best`).
    fn new(meta: &CheckpointMeta, resume: bool, best: bool) -> Self {
        let mut prefixes = vec![""];
        if resume {
            prefixes.extend(["adam.m.", "adam.v."]);
        }
        if best {
            prefixes.push("best.");
        }
        let mut tensors = Vec::new();
        for prefix in prefixes {
            for (name, shape) in meta.config.parameters() {
                let n: usize = shape.iter().product();
                let data = (0..n)
                    .flat_map(|i| (i as f32 * 0.25).to_le_bytes())
                    .collect();
                tensors.push((format!("{prefix}{name}"), Dtype::F32, shape, data));
            }
        }
        let metadata = if resume {
            let progress = Progress {
                epoch: 2,
                best_val: Some(3.5),
                ..Progress::default()
            };
            resume_metadata(meta, &progress, 17).unwrap()
        } else {
            metadata(meta).unwrap()
        };
        File { tensors, metadata }
    }

    fn bytes(&self) -> Vec<u8> {
        let views = self.tensors.iter().map(|(name, dtype, shape, data)| {
            (
                name.clone(),
                TensorView::new(*dtype, shape.clone(), data).unwrap(),
            )
        });
        safetensors::serialize(views, Some(self.metadata.clone())).unwrap()
    }

    fn tensor(&mut self, name: &str) -> &mut (String, Dtype, Vec<usize>, Vec<u8>) {
        self.tensors.iter_mut().find(|t| t.0 == name).unwrap()
    }

    fn without(mut self, name: &str) -> Self {
        self.tensors.retain(|t| t.0 != name);
        self
    }

    fn with_meta(mut self, key: &str, value: &str) -> Self {
        self.metadata.insert(key.into(), value.into());
        self
    }
}

fn model_file() -> File {
    File::new(&meta(config(ModelKind::Vae)), false, false)
}

fn resume_file(best: bool) -> File {
    File::new(&meta(config(ModelKind::Vae)), true, best)
}

/// The error `check` gives for `file`, as text, after checking that it names the file.
fn refused(file: &File) -> String {
    named(check(Path::new(PATH), &file.bytes()).map(|_| ()))
}

/// The error `check_resume` gives for `file`, as text, after checking that it names the
/// file.
fn refused_resume(file: &File) -> String {
    named(check_resume(Path::new(PATH), &file.bytes()).map(|_| ()))
}

fn named(result: Result<(), CheckError>) -> String {
    let err = result.expect_err("the file must be refused").to_string();
    assert!(
        err.starts_with(PATH),
        "the error does not name the file: {err}"
    );
    err
}

#[test]
fn model_and_resume_files_are_accepted_with_their_metadata() {
    for kind in [ModelKind::Vae, ModelKind::Ae] {
        let m = meta(config(kind));
        let bytes = File::new(&m, false, false).bytes();
        let checked = check(Path::new(PATH), &bytes).unwrap();
        assert_eq!(checked.meta, m);
        assert_eq!(checked.tensors.len(), m.config.parameters().len());
        // encoder 6 -> 5 -> 4 -> head, decoder 2 -> 4 -> 5 -> 6.
        let head = if kind == ModelKind::Vae { 4 } else { 2 };
        let weight = checked.tensors.tensor("encoder.2.weight").unwrap();
        assert_eq!(weight.shape(), [head, 4]);
        assert_eq!(
            checked.tensors.tensor("decoder.0.weight").unwrap().shape(),
            [4, 2]
        );
        assert_eq!(
            checked.tensors.tensor("decoder.2.bias").unwrap().shape(),
            [6]
        );
    }
    for best in [false, true] {
        let bytes = resume_file(best).bytes();
        let (checked, state) = check_resume(Path::new(PATH), &bytes).unwrap();
        assert_eq!(checked.meta, meta(config(ModelKind::Vae)));
        assert_eq!(state.adam_step, 17);
        assert_eq!(state.progress.best_val, Some(3.5));
        assert_eq!(state.has_best, best);
    }
}

#[test]
fn a_model_file_is_not_a_resume_file() {
    // The progress is read first (as the trainer always did), then the optimizer state.
    assert!(refused_resume(&model_file()).ends_with("metadata key \"progress\" missing"));
    let mut no_step = resume_file(false);
    no_step.metadata.remove("adam_step");
    assert!(refused_resume(&no_step).ends_with("not a resume file (no optimizer state)"));
}

#[test]
fn a_missing_parameter_is_refused_by_name() {
    for name in ["encoder.0.weight", "encoder.2.bias", "decoder.1.weight"] {
        let err = refused(&model_file().without(name));
        assert_eq!(err, format!("{PATH}: tensor {name}: missing"));
    }
}

#[test]
fn a_parameter_of_the_wrong_shape_is_refused_with_both_shapes() {
    let mut file = model_file();
    // Transposed: the same number of values in TensorFlow's [in, out] layout.
    file.tensor("encoder.1.weight").2 = vec![5, 4];
    assert_eq!(
        refused(&file),
        format!("{PATH}: tensor encoder.1.weight: shape [5, 4], expected [4, 5]")
    );
    let mut file = model_file();
    let bias = file.tensor("decoder.2.bias");
    bias.2 = vec![1, 6];
    assert_eq!(
        refused(&file),
        format!("{PATH}: tensor decoder.2.bias: shape [1, 6], expected [6]")
    );
    let mut file = model_file();
    let bias = file.tensor("decoder.0.bias");
    bias.2 = vec![5];
    bias.3.extend(0f32.to_le_bytes());
    assert_eq!(
        refused(&file),
        format!("{PATH}: tensor decoder.0.bias: shape [5], expected [4]")
    );
}

#[test]
fn a_parameter_of_the_wrong_type_is_refused() {
    let mut file = model_file();
    file.tensor("encoder.0.bias").1 = Dtype::I32;
    assert_eq!(
        refused(&file),
        format!("{PATH}: tensor encoder.0.bias: dtype I32, expected F32")
    );
    let mut file = model_file();
    let weight = file.tensor("decoder.1.weight");
    weight.1 = Dtype::F16;
    weight.3.truncate(weight.3.len() / 2);
    assert_eq!(
        refused(&file),
        format!("{PATH}: tensor decoder.1.weight: dtype F16, expected F32")
    );
}

#[test]
fn a_wrong_or_missing_format_key_is_refused() {
    let err = refused(&model_file().with_meta("format", "tinyvae-0"));
    assert!(
        err.ends_with("format Some(\"tinyvae-0\"), expected \"tinyvae-1\""),
        "{err}"
    );
    let mut file = model_file();
    file.metadata.remove("format");
    assert!(refused(&file).ends_with("format None, expected \"tinyvae-1\""));
    // A device model file has a format of its own.
    let device = model_file().with_meta("format", "tinyvae-device-1");
    assert!(refused(&device).contains("not a usable tinyvae checkpoint: format"));
}

#[test]
fn bad_metadata_json_is_refused_naming_the_key() {
    for (key, value) in [
        ("architecture", "{\"kind\": \"vae\""),
        ("architecture", "{\"kind\": \"gan\"}"),
        ("init", "\"xavier\""),
        ("data", "[]"),
        ("train", "{\"epochs\": -1}"),
        ("metrics", "nan"),
    ] {
        let err = refused(&model_file().with_meta(key, value));
        assert!(
            err.contains(&format!(
                "not a usable tinyvae checkpoint: metadata {key:?}: "
            )),
            "{key}={value}: {err}"
        );
    }
    let err = refused(&model_file().with_meta("epoch", "two"));
    assert!(err.ends_with("metadata \"epoch\" missing or not a number"));
    let mut file = model_file();
    file.metadata.remove("train");
    assert!(refused(&file).ends_with("metadata key \"train\" missing"));
    let err = refused_resume(&resume_file(false).with_meta("progress", "{\"epoch\": 1}"));
    assert!(
        err.contains("metadata \"progress\": missing field"),
        "{err}"
    );
    let err = refused_resume(&resume_file(false).with_meta("adam_step", "-1"));
    assert!(err.ends_with("not a resume file (no optimizer state)"));
}

#[test]
fn an_unusable_architecture_is_refused() {
    let mut zero = config(ModelKind::Ae);
    zero.hidden = vec![5, 0];
    let mut huge = config(ModelKind::Vae);
    huge.width = usize::MAX / 2;
    huge.height = 3;
    let mut huge_latent = config(ModelKind::Vae);
    huge_latent.latent = usize::MAX;
    for (config, what) in [
        (zero, "sizes must be positive"),
        (huge, "sizes too large"),
        (huge_latent, "sizes too large"),
    ] {
        // The tensors of a usable architecture, the metadata of the broken one.
        let file = model_file().with_meta("architecture", &serde_json::to_string(&config).unwrap());
        let err = refused(&file);
        assert!(
            err.starts_with(&format!("{PATH}: bad model configuration: {what}")),
            "{err}"
        );
    }
}

#[test]
fn a_resume_file_without_a_companion_tensor_is_refused() {
    for name in ["adam.m.encoder.0.weight", "adam.v.decoder.2.bias"] {
        let err = refused_resume(&resume_file(true).without(name));
        assert_eq!(
            err,
            format!("{PATH}: not a usable tinyvae checkpoint: tensor {name} missing")
        );
    }
    // Best-epoch parameters are all there or none: one is enough to ask for all.
    let err = refused_resume(&resume_file(true).without("best.encoder.1.bias"));
    assert!(err.ends_with("tensor best.encoder.1.bias missing"), "{err}");
    // A model file check does not look at them.
    assert!(check(
        Path::new(PATH),
        &resume_file(true).without("adam.m.encoder.0.weight").bytes()
    )
    .is_ok());
}

#[test]
fn a_misshapen_or_mistyped_companion_tensor_is_refused_like_its_parameter() {
    let mut file = resume_file(true);
    let best = file.tensor("best.decoder.0.bias");
    best.2 = vec![1];
    best.3.truncate(4);
    assert_eq!(
        refused_resume(&file),
        format!(
            "{PATH}: not a usable tinyvae checkpoint: tensor best.decoder.0.bias is F32 [1], \
             expected F32 [4] like parameter decoder.0.bias"
        )
    );
    let mut file = resume_file(false);
    file.tensor("adam.v.encoder.2.weight").1 = Dtype::U32;
    assert!(refused_resume(&file).ends_with(
        "tensor adam.v.encoder.2.weight is U32 [4, 4], expected F32 [4, 4] like parameter encoder.2.weight"
    ));
}

#[test]
fn bytes_that_are_not_safetensors_are_refused() {
    let bytes = model_file().bytes();
    for bad in [
        &b""[..],
        b"junk",
        &bytes[..bytes.len() - 1],
        &bytes[..bytes.len() / 2],
        &bytes[1..],
    ] {
        let err = check(Path::new(PATH), bad)
            .expect_err("refused")
            .to_string();
        assert!(
            err.starts_with(&format!("{PATH}: not a usable tinyvae checkpoint: ")),
            "{err}"
        );
    }
}

proptest! {
    /// Any byte changed or any prefix of a resume file: no panic, and what is accepted
    /// still holds every parameter in its shape.
    #[test]
    fn damaged_files_never_panic(at in any::<prop::sample::Index>(), byte in any::<u8>(), cut in any::<bool>()) {
        let mut bytes = resume_file(true).bytes();
        let i = at.index(bytes.len());
        if cut {
            bytes.truncate(i);
        } else {
            bytes[i] = byte;
        }
        if let Ok(checked) = check(Path::new(PATH), &bytes) {
            for (name, shape) in checked.meta.config.parameters() {
                let t = checked.tensors.tensor(&name).unwrap();
                prop_assert_eq!(t.shape(), shape.as_slice());
                prop_assert_eq!(t.dtype(), Dtype::F32);
            }
        }
        let _ = check_resume(Path::new(PATH), &bytes).map_err(|e| e.to_string());
    }
}
