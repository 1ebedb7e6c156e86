//! Compiles the model into the firmware.
//!
//! Reads the u8 tensor `device_image` from a safetensors file (default
//! `models/tinyvae-mnist.safetensors`, or the file `TINYVAE_MODEL` names; a relative
//! path is relative to the repository root, whichever board crate is being built),
//! validates it with the same `Model::parse` the firmware runs, and writes the bytes
//! to `$OUT_DIR/model.bin` for `include_bytes!` ([`crate::MODEL_IMAGE`]). A model that
//! does not validate fails the build, naming the file and the reason, instead of
//! producing a firmware that could only answer errors.

use std::env;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use tinyvae_shared::detect::{DETECTOR_SECTION_LEN, DETECTOR_SECTION_LEN_SEEN};
use tinyvae_shared::model::Model;
use tinyvae_shared::model_file;

const DEFAULT_MODEL: &str = "models/tinyvae-mnist.safetensors";

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<(), String> {
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").ok_or("OUT_DIR is not set")?);
    let manifest_dir =
        PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").ok_or("CARGO_MANIFEST_DIR is not set")?);

    // The repository root: this crate is firmware/app.
    let root = manifest_dir.join("../..");
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=TINYVAE_MODEL");
    let path = match env::var_os("TINYVAE_MODEL") {
        Some(p) if !p.is_empty() => root.join(p),
        _ => root.join(DEFAULT_MODEL),
    };
    println!("cargo:rerun-if-changed={}", path.display());

    let image = read_device_image(&path)?;
    let model =
        Model::parse(&image).map_err(|e| format!("model {} is invalid: {e}", path.display()))?;
    // The device reads only the current detector section (protocol 9: 17 terms, with
    // or without the seen set); the host still reads older ones, so this build checks
    // it (`detect::is_detector_section_len`).
    let detector_len = image
        .get(60..64)
        .map_or(0, |b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize);
    if ![0, DETECTOR_SECTION_LEN, DETECTOR_SECTION_LEN_SEEN].contains(&detector_len) {
        return Err(format!(
            "model {}: its detector section ({detector_len} bytes) predates protocol 9 and \
             the device does not read it; export the model again (tinyvae export)",
            path.display()
        ));
    }
    println!(
        "cargo:warning=model {:?} from {}: {}x{} input, latent {}, {} parameters, {} bytes, hash {:08x}",
        model.name(),
        path.display(),
        model.input_width,
        model.input_height,
        model.latent,
        model.parameters(),
        image.len(),
        model.hash
    );
    fs::write(out_dir.join("model.bin"), &image)
        .map_err(|e| format!("cannot write {}: {e}", out_dir.join("model.bin").display()))?;
    Ok(())
}

/// The validated model image in the device model file at `path` (read by the same
/// `model_file::load` the host uses), with a hint when there is no file.
fn read_device_image(path: &Path) -> Result<Vec<u8>, String> {
    if !path.exists() {
        return Err(format!(
            "no model at {}\n  \
             Train and export one, point TINYVAE_MODEL at a safetensors model, or build a \
             synthetic one:\n  \
             cargo run -p tinyvae-shared --features host --example synthetic_model -- \
             /tmp/synthetic.safetensors\n  \
             TINYVAE_MODEL=/tmp/synthetic.safetensors cargo build --release (in a board crate)",
            path.display()
        ));
    }
    model_file::load(path)
        .map(|file| file.image)
        .map_err(|e| e.to_string())
}
