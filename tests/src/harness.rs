//! Shared set-up of the end-to-end tests: which model, which firmware, booting the
//! firmware in QEMU, and the bundled test digits.
//!
//! Environment:
//! - `TINYVAE_MODEL`: the model file (safetensors with a `device_image` tensor, or a
//!   bare `TVAE` image), relative to the workspace root. Default:
//!   `models/tinyvae-mnist.safetensors`; when that does not exist either, a seeded
//!   synthetic model is written to `target/e2e-model/` and used (with a note on
//!   stderr), so the tests run before a trained model is exported.
//! - `TINYVAE_FIRMWARE_M0`, `_M3`, `_M4` (and `TINYVAE_FIRMWARE` for the M3): a
//!   prebuilt firmware ELF for that core. It must embed the same model. Default:
//!   `cargo build --release --target <the core's target>` in
//!   `firmware/boards/lm3s6965evb/` (its own target dir), with `TINYVAE_MODEL` set to
//!   the model above unless it is the default model. Cargo rebuilds only what is
//!   stale, so after `scripts/test`'s own firmware builds this costs a second.
//!
//! Every test runs on each [`Core`] QEMU can put on the board: the same firmware
//! source built for the core's target.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

use tinyvae_shared::protocol::DeviceInfo;

pub use tinyvae_link::emulate::Core;
use tinyvae_link::emulate::{
    boot as boot_emulator, Emulator, EmulatorConfig, FirmwareBuild, EMULATED_BOARD,
};
use tinyvae_link::serial::DeviceClient;
use tinyvae_shared::model_file;

/// The default model, relative to the workspace root.
pub const DEFAULT_MODEL: &str = "models/tinyvae-mnist.safetensors";

/// How long a request may take: generous, for a loaded two-core CI machine.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// The workspace root (the folder holding `firmware/` and `tests/`).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

/// The model the tests (and the firmware under test) use; see the module docs.
pub fn model_path() -> &'static Path {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        let root = workspace_root();
        if let Some(p) = std::env::var_os("TINYVAE_MODEL").filter(|p| !p.is_empty()) {
            return root.join(p);
        }
        let default = root.join(DEFAULT_MODEL);
        if default.is_file() {
            return default;
        }
        let path = root.join("target/e2e-model/synthetic-1.safetensors");
        write_synthetic_model(&path, 1);
        eprintln!(
            "note: {DEFAULT_MODEL} does not exist; testing with the synthetic model {}",
            path.display()
        );
        path
    })
}

/// Writes the synthetic model of `tinyvae_shared::testing` drawn from `seed` as
/// safetensors.
pub fn write_synthetic_model(path: &Path, seed: u64) {
    use tinyvae_shared::testing::{synthetic_model, SyntheticShape};
    let image = synthetic_model(seed, SyntheticShape::default())
        .to_bytes()
        .expect("the synthetic model validates");
    model_file::save(path, &image, Default::default())
        .unwrap_or_else(|e| panic!("writing the synthetic model: {e}"));
}

/// The model image in [`model_path`].
pub fn model_image() -> &'static [u8] {
    static IMAGE: OnceLock<Vec<u8>> = OnceLock::new();
    IMAGE.get_or_init(|| {
        model_file::load(model_path())
            .map(|f| f.image)
            .unwrap_or_else(|e| panic!("cannot load the test model: {e}"))
    })
}

/// The firmware ELF for `core`, built once per test binary; see the module docs.
pub fn firmware_elf(core: Core) -> &'static Path {
    static ELFS: [OnceLock<PathBuf>; 3] = [OnceLock::new(), OnceLock::new(), OnceLock::new()];
    ELFS[core as usize].get_or_init(|| {
        let prebuilt = std::env::var_os(format!("TINYVAE_FIRMWARE_{}", core.name()))
            .or_else(|| {
                (core == Core::M3)
                    .then(|| std::env::var_os("TINYVAE_FIRMWARE"))
                    .flatten()
            })
            .filter(|p| !p.is_empty());
        if let Some(p) = prebuilt {
            return PathBuf::from(p);
        }
        let root = workspace_root();
        let board = root.join(EMULATED_BOARD);
        // The default model needs no TINYVAE_MODEL: leaving it unset keeps cargo's
        // fingerprint identical to a plain `cargo build --release --target T` in the
        // board crate (as scripts/test runs), so that build is reused, not redone.
        let model = model_path();
        let explicit = std::env::var_os("TINYVAE_MODEL").is_some_and(|p| !p.is_empty());
        FirmwareBuild {
            dir: board.clone(),
            target: Some(core.target().into()),
            features: Vec::new(),
            model: (explicit || model != root.join(DEFAULT_MODEL)).then(|| model.to_path_buf()),
            // The board's own target dir, whatever CARGO_TARGET_DIR the tests inherit.
            target_dir: Some(board.join("target")),
            verbose: false,
        }
        .run()
        .unwrap_or_else(|e| panic!("building the firmware for the {core:?} failed: {e}"))
    })
}

/// The firmware running in QEMU, with a connected client.
pub struct Device {
    /// QEMU (killed on drop).
    pub emulator: Emulator,
    /// The serial client on QEMU's pty.
    pub client: DeviceClient,
    /// The device's answer to the first `Info`.
    pub info: DeviceInfo,
}

/// Boots the firmware for `core` in a fresh QEMU with that core and waits until it
/// answers.
pub fn boot(core: Core) -> Device {
    boot_with_screendump(core, None)
}

/// [`boot`], saving the boot screen to `boot_screen` first (see
/// [`EmulatorConfig::boot_screendump`]).
pub fn boot_with_screendump(core: Core, boot_screen: Option<PathBuf>) -> Device {
    let mut config = EmulatorConfig::new(firmware_elf(core));
    config.cpu = Some(core.qemu_cpu().into());
    config.boot_screendump = boot_screen;
    let (emulator, mut client, info) = boot_emulator(&config, Duration::from_secs(60))
        .unwrap_or_else(|e| panic!("booting the {core:?} firmware in QEMU failed: {e}"));
    client.set_timeout(REQUEST_TIMEOUT);
    Device {
        emulator,
        client,
        info,
    }
}

/// The bundled test digits (2,004 MNIST images, 28x28, labelled), read by the
/// host's data loader.
pub fn test_digits() -> tinyvae_datasets::Dataset {
    let dir = workspace_root().join("data/mnist-10k");
    tinyvae_datasets::idx::load_pair(
        &dir.join("test-images-idx3-ubyte.gz"),
        Some(&dir.join("test-labels-idx1-ubyte.gz")),
    )
    .unwrap_or_else(|e| panic!("test digits: {e}"))
}
