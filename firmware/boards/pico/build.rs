//! Puts memory.x (which cortex-m-rt's link.x includes) where the linker finds it, and
//! links defmt's section script when the `defmt` feature is on.

use std::env;
use std::fs;
use std::path::PathBuf;

fn main() {
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").unwrap_or_default());
    // A build script has no one to return an error to but cargo: failing loudly here
    // is the error report.
    if let Err(e) = fs::copy("memory.x", out_dir.join("memory.x")) {
        panic!("cannot copy memory.x to {}: {e}", out_dir.display());
    }
    println!("cargo:rerun-if-changed=memory.x");
    println!("cargo:rustc-link-search={}", out_dir.display());
    println!("cargo:rerun-if-changed=build.rs");
    if env::var_os("CARGO_FEATURE_DEFMT").is_some() {
        println!("cargo:rustc-link-arg=-Tdefmt.x");
    }
}
