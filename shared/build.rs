//! Picks the dense kernel for the target (`cfg(tinyvae_kernel = ...)`).
//!
//! Stable Rust does not expose Arm's target features (`dsp`, `thumb2`, `v7`) to `cfg`:
//! `cfg(target_feature = "dsp")` is false even on `thumbv7em`. The target triple names
//! the architecture exactly, so the choice is made from it, and any crate built for a
//! target gets that target's kernel without a feature flag.

fn main() {
    println!("cargo::rustc-check-cfg=cfg(tinyvae_kernel, values(\"dsp\", \"thumb2\", \"thumb1\"))");
    println!("cargo::rerun-if-changed=build.rs");
    let target = std::env::var("TARGET").unwrap_or_default();
    let arch = target.split('-').next().unwrap_or("");
    let kernel = match arch {
        // Cortex-M4/M7: SMLAD and SXTB16 (the DSP extension is part of ARMv7E-M).
        "thumbv7em" => Some("dsp"),
        // Cortex-M3 and ARMv8-M Mainline (whose DSP extension is optional): MLA, SMULL.
        "thumbv7m" | "thumbv8m.main" => Some("thumb2"),
        // Cortex-M0/M0+/M23: MULS only, no 64-bit product.
        "thumbv6m" | "thumbv8m.base" => Some("thumb1"),
        _ => None,
    };
    if let Some(kernel) = kernel {
        println!("cargo::rustc-cfg=tinyvae_kernel=\"{kernel}\"");
    }
}
