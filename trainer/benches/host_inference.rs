//! Host inference per image at batch 1: the `shared` fixed-point path (what the device
//! runs) against tract-onnx running the float ONNX files.
//!
//! `cargo bench -p tinyvae-trainer --bench host_inference [-- MODEL_STEM]`
//! (default stem `models/tinyvae-mnist`: reads `.safetensors`, `.encoder.onnx`,
//! `.decoder.onnx`). Prints microseconds per encode+score and per decode.

use std::hint::black_box;
use std::path::PathBuf;

use tinyvae_shared::pipeline::{self, Workspace};
use tract_onnx::prelude::*;

const ITERATIONS: usize = 500;
const BATCHES: usize = 7;

/// The fastest of `BATCHES` batches (printed with the median batch): both paths are
/// measured the same way in the same run.
fn time(label: &str, f: impl FnMut(usize)) -> f64 {
    let (best, median) = tinyvae_shared::testing::time_batches(BATCHES, ITERATIONS, f);
    println!("{label:<44} {best:>9.2} us/image (median batch {median:.2})");
    best
}

fn plan(path: &PathBuf, width: usize) -> TractResult<std::sync::Arc<TypedSimplePlan>> {
    tract_onnx::onnx()
        .model_for_path(path)?
        .with_input_fact(0, f32::fact([1, width]).into())?
        .into_optimized()?
        .into_runnable()
}

fn main() -> anyhow::Result<()> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let stem = std::env::args()
        .skip(1)
        .find(|a| !a.starts_with('-'))
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("models/tinyvae-mnist"));
    let with = |suffix: &str| {
        let mut s = stem.as_os_str().to_owned();
        s.push(suffix);
        PathBuf::from(s)
    };
    let file = tinyvae_shared::model_file::load(&with(".safetensors"))?;
    let model = file.model()?;
    let test = tinyvae_datasets::load_split(
        &root.join("data/mnist-10k"),
        tinyvae_datasets::Split::Test,
        (model.input_width, model.input_height),
    )?;
    let n = test.len().min(256);
    let pixels = model.pixels();
    println!(
        "model {} ({} weights), {n} test images cycled, best of {BATCHES} x {ITERATIONS} iterations, 1 thread",
        model.name(),
        model.parameters()
    );

    let mut ws = Workspace::new();
    let fixed_encode_only = time("fixed point (shared): encode", |i| {
        black_box(pipeline::encode(&model, &mut ws, test.image_u8(i % n)).ok());
    });
    let fixed_encode = time("fixed point (shared): encode + score", |i| {
        let image = test.image_u8(i % n);
        black_box(pipeline::score_image(&model, &mut ws, image, model.threshold).ok());
    });
    let z = vec![0; model.latent];
    let fixed_decode = time("fixed point (shared): decode", |_| {
        black_box(pipeline::decode(&model, &mut ws, black_box(&z)).ok());
    });

    let encoder = plan(&with(".encoder.onnx"), pixels)?;
    let decoder = plan(&with(".decoder.onnx"), model.latent)?;
    let inputs: Vec<Tensor> = (0..n)
        .map(|i| {
            let x: Vec<f32> = test.image_u8(i).iter().map(|&p| p as f32 / 255.0).collect();
            Tensor::from_shape(&[1, pixels], &x)
        })
        .collect::<TractResult<_>>()?;
    let tract_encode = time("tract-onnx float: encode", |i| {
        black_box(encoder.run(tvec!(inputs[i % n].clone().into())).ok());
    });
    let zt = Tensor::from_shape(&[1, model.latent], &vec![0f32; model.latent])?;
    let tract_decode = time("tract-onnx float: decode", |_| {
        black_box(decoder.run(tvec!(zt.clone().into())).ok());
    });
    println!(
        "encode: fixed {fixed_encode_only:.1} us vs tract {tract_encode:.1} us ({:.2}x)",
        tract_encode / fixed_encode_only
    );
    // The score also needs a decode of mu: compare like with like.
    println!(
        "encode+score: fixed {fixed_encode:.1} us vs tract encode+decode {:.1} us ({:.2}x)",
        tract_encode + tract_decode,
        (tract_encode + tract_decode) / fixed_encode
    );
    println!(
        "decode: fixed {fixed_decode:.1} us vs tract {tract_decode:.1} us ({:.2}x)",
        tract_decode / fixed_decode
    );
    Ok(())
}
