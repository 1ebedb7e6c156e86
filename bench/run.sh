#!/usr/bin/env bash
# Reproduces the PyTorch comparison in BENCHMARKS.md: the canonical PyTorch
# example VAE and the same setup in tinyvae, on the same split, in one run on one
# machine, alternating the two programs so background load hits both alike.
# Usage: bench/run.sh [repeats]   (needs: python3 with torch + numpy; cargo)
set -euo pipefail
cd "$(dirname "$0")/.."
repeats="${1:-2}"
cargo build --release -p tinyvae
out=bench/results
mkdir -p "$out"
: > "$out/pytorch.jsonl"
: > "$out/tinyvae.jsonl"
for r in $(seq 1 "$repeats"); do
  python3 bench/pytorch_vae.py --data data/mnist-10k --epochs 10 --batch-size 128 --threads 2 --seed "$r" \
    | tail -n 1 | tee -a "$out/pytorch.jsonl"
  ./target/release/tinyvae train --data data/mnist-10k --kind vae --hidden 400 --latent 20 \
    --likelihood bernoulli --init torch --epochs 10 --batch-size 128 --lr 1e-3 --seed "$r" \
    --val-frac 0 --patience 0 --quiet --out "runs/bench-$r" | tail -n 1 | tee -a "$out/tinyvae.jsonl"
done
nproc; lscpu | grep 'Model name' || true
