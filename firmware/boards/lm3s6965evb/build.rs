//! Puts memory.x and device.x (which cortex-m-rt's link.x includes) where the linker
//! finds them, and links defmt's section script when the `defmt` feature is on.

use std::env;
use std::fs;
use std::path::PathBuf;

fn main() {
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").unwrap_or_default());
    // A build script has no one to return an error to but cargo: failing loudly here
    // is the error report.
    for script in ["memory.x", "device.x"] {
        if let Err(e) = fs::copy(script, out_dir.join(script)) {
            panic!("cannot copy {script} to {}: {e}", out_dir.display());
        }
        println!("cargo:rerun-if-changed={script}");
    }
    println!("cargo:rustc-link-search={}", out_dir.display());
    println!("cargo:rerun-if-changed=build.rs");
    if env::var_os("CARGO_FEATURE_DEFMT").is_some() {
        println!("cargo:rustc-link-arg=-Tdefmt.x");
    }
}
