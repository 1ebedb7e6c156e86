//! With the `cuda` feature: compiles `kernels/training.cu` to PTX with `nvcc`, for
//! `src/cuda.rs` to embed. Without it: nothing (the default build needs no CUDA).
//!
//! `nvcc` is the one candle's own kernels are built with: `$CUDA_ROOT/bin/nvcc` when
//! `CUDA_ROOT` is set, else `nvcc` on the `PATH`. The PTX targets the virtual
//! architecture `compute_$CUDA_COMPUTE_CAP` (candle's variable too; default 75, the
//! oldest CUDA 13 supports), which the driver compiles for the GPU it runs on.

use std::path::PathBuf;
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=kernels/training.cu");
    println!("cargo:rerun-if-env-changed=CUDA_COMPUTE_CAP");
    println!("cargo:rerun-if-env-changed=CUDA_ROOT");
    if std::env::var_os("CARGO_FEATURE_CUDA").is_none() {
        return;
    }
    let nvcc = std::env::var_os("CUDA_ROOT")
        .map(|root| PathBuf::from(root).join("bin").join("nvcc"))
        .unwrap_or_else(|| PathBuf::from("nvcc"));
    let cap = std::env::var("CUDA_COMPUTE_CAP").unwrap_or_else(|_| "75".to_string());
    let cap = cap
        .trim()
        .trim_start_matches("sm_")
        .trim_start_matches("compute_");
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"))
        .join("training.ptx");
    let status = Command::new(&nvcc)
        .args(["--ptx", "-O3", "-std=c++17"])
        .arg(format!("-arch=compute_{cap}"))
        .arg("-o")
        .arg(&out)
        .arg("kernels/training.cu")
        .status();
    match status {
        Ok(s) if s.success() => {}
        Ok(s) => panic!(
            "{} failed ({s}) compiling kernels/training.cu for compute_{cap}",
            nvcc.display()
        ),
        Err(e) => panic!(
            "the cuda feature needs nvcc ({}): {e}; set CUDA_ROOT or put nvcc on the PATH \
             (scripts/build-cuda installs one)",
            nvcc.display()
        ),
    }
}
