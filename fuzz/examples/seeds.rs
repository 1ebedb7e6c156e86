//! Writes the seed corpus: `cargo run --features checkpoint --example seeds` (in
//! `fuzz/`; without the feature, all but the trainer checkpoints) replaces the seeds in `corpus/<target>/` (files named `seed-*`) with
//! freshly drawn ones; whatever else a fuzzing run added there stays.

use std::path::Path;

fn main() -> std::io::Result<()> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus");
    let seeds = tinyvae_fuzz::seeds::seeds().into_iter();
    // Trainer checkpoints need candle: without the feature, their seeds stay as they are.
    #[cfg(feature = "checkpoint")]
    let seeds = seeds.chain(tinyvae_fuzz::checkpoint_candle::seeds());
    let seeds: Vec<_> = seeds.collect();
    for seed in &seeds {
        let dir = root.join(seed.target);
        std::fs::create_dir_all(&dir)?;
        std::fs::write(dir.join(format!("seed-{}", seed.name)), &seed.bytes)?;
    }
    println!("{} seeds in {}", seeds.len(), root.display());
    Ok(())
}
