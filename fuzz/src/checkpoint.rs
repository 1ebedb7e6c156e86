//! `checkpoint_load`: the checkpoint validator (`tinyvae-checkpoint`, no candle).

use std::collections::HashMap;
use std::path::Path;

use safetensors::tensor::TensorView;
use safetensors::Dtype;
use tinyvae_checkpoint::{
    check, check_resume, metadata, resume_metadata, CheckError, Checked, ModelConfig, ModelKind,
    FORMAT,
};

const PATH: &str = "fuzz.safetensors";

/// The parameters an architecture must have, worked out here from the documented layout
/// rather than by the validator's own `ModelConfig::parameters`: the encoder maps
/// `width*height -> hidden.. -> 2*latent` (VAE) or `latent` (AE), the decoder
/// `latent -> hidden reversed.. -> width*height`; layer `i` of each has `weight`
/// `[out, in]` and `bias` `[out]`.
fn expected_parameters(config: &ModelConfig) -> Vec<(String, Vec<usize>)> {
    let pixels = config.width * config.height;
    let head = match config.kind {
        ModelKind::Vae => 2 * config.latent,
        ModelKind::Ae => config.latent,
    };
    let encoder: Vec<usize> = std::iter::once(pixels)
        .chain(config.hidden.iter().copied())
        .chain([head])
        .collect();
    let decoder: Vec<usize> = std::iter::once(config.latent)
        .chain(config.hidden.iter().rev().copied())
        .chain([pixels])
        .collect();
    let mut out = Vec::new();
    for (network, sizes) in [("encoder", encoder), ("decoder", decoder)] {
        for (i, pair) in sizes.windows(2).enumerate() {
            out.push((format!("{network}.{i}.weight"), vec![pair[1], pair[0]]));
            out.push((format!("{network}.{i}.bias"), vec![pair[1]]));
        }
    }
    out
}

/// A safetensors file of `tensors` (name, dtype, shape, bytes) and `metadata`.
fn file(tensors: &[Entry<'_>], metadata: HashMap<String, String>) -> Vec<u8> {
    let views = tensors.iter().map(|(name, dtype, shape, data)| {
        let view = TensorView::new(*dtype, shape.clone(), data).expect("a tensor of its own size");
        (name.clone(), view)
    });
    safetensors::serialize(views, Some(metadata))
        .expect("the tensors of an accepted file serialize")
}

/// Every tensor of an accepted file, to build variants of it from.
fn tensors<'a>(checked: &Checked<'a>) -> Vec<Entry<'a>> {
    checked
        .tensors
        .tensors()
        .into_iter()
        .map(|(name, t)| (name, t.dtype(), t.shape().to_vec(), t.data()))
        .collect()
}

/// One tensor of a file: name, dtype, shape, bytes.
type Entry<'a> = (String, Dtype, Vec<usize>, &'a [u8]);

/// `all` with the tensor `name` changed by `change`.
fn changed<'a>(all: &[Entry<'a>], name: &str, change: impl Fn(&mut Entry<'a>)) -> Vec<Entry<'a>> {
    all.iter()
        .map(|t| {
            let mut t = t.clone();
            if t.0 == name {
                change(&mut t);
            }
            t
        })
        .collect()
}

/// `all` without the tensor `name`.
fn without<'a>(all: &[Entry<'a>], name: &str) -> Vec<Entry<'a>> {
    all.iter().filter(|t| t.0 != name).cloned().collect()
}

/// `check` (or `check_resume` when `resume`) refuses `bytes`, naming the file and, when
/// given, the tensor.
fn assert_refused(bytes: &[u8], resume: bool, tensor: Option<&str>, what: &str) {
    let err = if resume {
        check_resume(Path::new(PATH), bytes).err()
    } else {
        check(Path::new(PATH), bytes).err()
    };
    let err = err.unwrap_or_else(|| panic!("{what}: accepted"));
    let text = err.to_string();
    assert!(
        text.starts_with(PATH),
        "{what}: the error does not name the file: {text}"
    );
    if let Some(name) = tensor {
        assert!(
            text.contains(name),
            "{what}: the error does not name {name}: {text}"
        );
        if !resume {
            assert!(matches!(err, CheckError::Tensor { .. }), "{what}: {err:?}");
        }
    }
}

/// `check` never panics, and what it accepts is a checkpoint: its `format` is
/// [`FORMAT`], every parameter of its architecture is there, F32, in its shape (worked
/// out independently, [`expected_parameters`]), and its metadata survives being written
/// again ([`metadata`]) and checked. Refusals name the file, and `check_resume` accepts
/// only what `check` accepts. Variants of an accepted file are refused: one parameter
/// (picked by the input's length) missing, in another shape or another type, and a
/// wrong `format`. Resume files get the same checks for their Adam moments and
/// best-epoch tensors.
pub fn check_checkpoint(data: &[u8]) {
    let path = Path::new(PATH);
    let resume = check_resume(path, data);
    let checked = match check(path, data) {
        Ok(checked) => checked,
        Err(err) => {
            let text = err.to_string();
            assert!(
                text.starts_with(PATH),
                "the error does not name the file: {text}"
            );
            assert!(
                resume.is_err(),
                "check_resume accepted what check refused: {text}"
            );
            return;
        }
    };
    assert_eq!(checked.raw.get("format").map(String::as_str), Some(FORMAT));
    let config = &checked.meta.config;
    let parameters = expected_parameters(config);
    assert_eq!(parameters, config.parameters());
    for (name, shape) in &parameters {
        let t = checked
            .tensors
            .tensor(name)
            .expect("every parameter is there");
        assert_eq!(t.dtype(), Dtype::F32, "{name}");
        assert_eq!(t.shape(), shape.as_slice(), "{name}");
        assert_eq!(
            t.data().len(),
            4 * shape.iter().product::<usize>(),
            "{name}"
        );
    }

    // Written again with the metadata `check` read, the file says the same.
    let all = tensors(&checked);
    let md = metadata(&checked.meta).expect("accepted metadata serializes");
    let again = file(&all, md.clone());
    let reread = check(path, &again).expect("an accepted checkpoint, written again, is accepted");
    assert_eq!(reread.meta, checked.meta);

    // Variants with one parameter broken are refused, naming it.
    let (name, _) = &parameters[data.len() % parameters.len()];
    let variants = [
        (without(&all, name), "a missing parameter"),
        (
            changed(&all, name, |t| t.2.push(1)),
            "a misshapen parameter",
        ),
        (
            changed(&all, name, |t| t.1 = Dtype::I32),
            "an I32 parameter",
        ),
    ];
    for (tensors, what) in variants {
        assert_refused(&file(&tensors, md.clone()), false, Some(name), what);
    }
    let mut other = md.clone();
    other.insert("format".into(), format!("{FORMAT}x"));
    assert_refused(&file(&all, other), false, None, "another format");

    let Ok((resumed, state)) = resume else {
        return;
    };
    assert_eq!(resumed.meta, checked.meta);
    let has_best = checked
        .tensors
        .names()
        .iter()
        .any(|n| n.starts_with("best."));
    assert_eq!(state.has_best, has_best);
    let prefixes: &[&str] = if has_best {
        &["adam.m.", "adam.v.", "best."]
    } else {
        &["adam.m.", "adam.v."]
    };
    for prefix in prefixes {
        for (name, shape) in &parameters {
            let t = checked
                .tensors
                .tensor(&format!("{prefix}{name}"))
                .expect("every companion is there");
            assert_eq!(t.dtype(), Dtype::F32, "{prefix}{name}");
            assert_eq!(t.shape(), shape.as_slice(), "{prefix}{name}");
        }
    }
    let md = resume_metadata(&checked.meta, &state.progress, state.adam_step)
        .expect("accepted metadata serializes");
    let again = file(&all, md.clone());
    let (reread, restate) =
        check_resume(path, &again).expect("an accepted resume file, written again, is accepted");
    assert_eq!(reread.meta, checked.meta);
    assert_eq!(restate, state);
    // A companion missing or misshapen is refused, naming it.
    let prefix = prefixes[data.len() % prefixes.len()];
    let companion = format!("{prefix}{name}");
    let variants = [
        (without(&all, &companion), "a missing companion"),
        (
            changed(&all, &companion, |t| t.2.push(1)),
            "a misshapen companion",
        ),
    ];
    for (tensors, what) in variants {
        assert_refused(&file(&tensors, md.clone()), true, Some(&companion), what);
    }
}
