//! The fixed-point pipeline per image on this host, at batch 1 and one thread, on a
//! synthetic model of the default model's shape (784-64-16).
//!
//! `cargo bench -p tinyvae-shared --features host --bench pipeline`
//!
//! This is the quick loop for kernel work: it builds in seconds, where the comparison
//! with tract-onnx (`cargo bench -p tinyvae-trainer --bench host_inference`) needs the
//! trainer. Prints microseconds per encode, per score (encode, decode of mu, score) and
//! per decode.

use std::hint::black_box;

use tinyvae_shared::model::Model;
use tinyvae_shared::pipeline::{self, Workspace};
use tinyvae_shared::rng::Rng;
use tinyvae_shared::testing::{synthetic_model, time_batches, SyntheticShape};

const ITERATIONS: usize = 1000;
const BATCHES: usize = 7;
const IMAGES: usize = 64;

fn time(label: &str, f: impl FnMut(usize)) {
    let (best, median) = time_batches(BATCHES, ITERATIONS, f);
    println!("{label:<16} {best:>8.2} us/image (median batch {median:.2})");
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let bytes = synthetic_model(1, SyntheticShape::default()).to_bytes()?;
    let model = Model::parse(&bytes)?;
    let mut rng = Rng::new(2);
    let images: Vec<Vec<u8>> = (0..IMAGES)
        .map(|_| (0..model.pixels()).map(|_| rng.next_u32() as u8).collect())
        .collect();
    let mut ws = Workspace::new();
    println!(
        "synthetic {}x{} model, latent {}, {} parameters, best of {BATCHES} x {ITERATIONS} iterations",
        model.input_width,
        model.input_height,
        model.latent,
        model.parameters()
    );
    time("encode", |i| {
        black_box(pipeline::encode(&model, &mut ws, &images[i % IMAGES]).ok());
    });
    time("score", |i| {
        black_box(
            pipeline::score_image(&model, &mut ws, &images[i % IMAGES], model.threshold).ok(),
        );
    });
    let z = vec![0; model.latent];
    time("decode", |_| {
        black_box(pipeline::decode(&model, &mut ws, black_box(&z)).ok());
    });
    Ok(())
}
