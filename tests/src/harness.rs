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
//!
//! A second firmware embeds [`ODD_SHAPE`], a synthetic model whose every layer leaves
//! a remainder in each kernel ([`odd_model_image`], [`odd_firmware_elf`]). It is built
//! in its own target dir (`target/odd-model` in the board crate): sharing the default
//! build's would make cargo rebuild one whenever the other ran, since the firmware's
//! build script reruns when `TINYVAE_MODEL` changes.

use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

use tinyvae_datasets::corrupt::{other_index, Corruption};
use tinyvae_datasets::rng::SeededRng;
use tinyvae_shared::protocol::DeviceInfo;

pub use tinyvae_link::emulate::Core;
use tinyvae_link::emulate::{
    boot as boot_emulator, Emulator, EmulatorConfig, FirmwareBuild, EMULATED_BOARD,
};
use tinyvae_link::serial::DeviceClient;
use tinyvae_shared::model_file;
use tinyvae_shared::testing::{synthetic_model, SyntheticShape};

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
    let image = synthetic_model(seed, SyntheticShape::default())
        .to_bytes()
        .expect("the synthetic model validates");
    model_file::save(path, &image, Default::default())
        .unwrap_or_else(|e| panic!("writing the synthetic model: {e}"));
}

/// The odd-shaped model's layers (27x25 = 675 pixels, hidden 37, latent 5):
///
/// | layer | inputs | outputs |
/// |---|---|---|
/// | encoder 1 | 675 | 37 |
/// | encoder head | 37 | 10 (mu, logvar) |
/// | decoder 1 | 5 | 37 |
/// | decoder 2 | 37 | 675 |
///
/// Every remainder path of the device kernels (`shared/src/dense/kernel`) runs, where
/// the default model (784, 64, 32, 16: multiples of 8) runs none:
/// * Cortex-M3 (`thumb`, eight inputs a pass): 675 = 84 x 8 + 3 and 37 = 4 x 8 + 5
///   leave inputs to the portable loop after the assembly; 5 < 8 takes the branch
///   with no assembly pass at all.
/// * Cortex-M0 (`thumb1`, two inputs a pass): 675, 37 and 5 are odd: one input of
///   every layer goes to the portable loop.
/// * Cortex-M4 (`dsp`, eight inputs a pass on `SMLAD` pairs): odd input counts leave
///   `widen_pairs` a lone last half-word; the Rust tail runs 3 (675) and 5 (37)
///   inputs, both halves of a pair word; 5 < 8 runs the tail alone.
/// * Every core (`kernel::run`): 37 = 9 x 4 + 1, 10 = 2 x 4 + 2 and 675 = 168 x 4 + 3
///   outputs end in a partial channel group of 1, 2 and 3; their 10, 3 and 169 groups
///   end in a partial batch (of eight groups) of 2, 3 (the only batch) and 1.
///
/// No shape reaches the M4's unaligned-weight loop or the M0's byte-wise parameter
/// reads: every section of a model image is a multiple of 4 bytes and the firmware
/// puts the image at a 4-byte boundary.
pub const ODD_SHAPE: SyntheticShape = SyntheticShape {
    width: 27,
    height: 25,
    hidden: 37,
    latent: 5,
};

/// The seed of the odd-shaped synthetic model.
const ODD_SEED: u64 = 27;

/// The odd-shaped synthetic model's image ([`ODD_SHAPE`]), also written (as a bare
/// image) to `target/e2e-model/` for the firmware's build. The file is rewritten only
/// when its bytes differ: a new modification time alone would make cargo rebuild the
/// firmware.
pub fn odd_model_image() -> &'static [u8] {
    static IMAGE: OnceLock<Vec<u8>> = OnceLock::new();
    IMAGE.get_or_init(|| {
        synthetic_model(ODD_SEED, ODD_SHAPE)
            .to_bytes()
            .expect("the odd-shaped synthetic model validates")
    })
}

/// The file [`odd_model_image`] is written to, written once per test binary.
fn odd_model_path() -> &'static Path {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        let path = workspace_root().join("target/e2e-model/odd-27x25.tvae");
        let image = odd_model_image();
        if std::fs::read(&path).ok().as_deref() != Some(image) {
            model_file::write_atomic(&path, image)
                .unwrap_or_else(|(p, e)| panic!("writing {}: {e}", p.display()));
        }
        path
    })
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
        // The default model needs no TINYVAE_MODEL: leaving it unset keeps cargo's
        // fingerprint identical to a plain `cargo build --release --target T` in the
        // board crate (as scripts/test runs), so that build is reused, not redone.
        let model = model_path();
        let explicit = std::env::var_os("TINYVAE_MODEL").is_some_and(|p| !p.is_empty());
        let model = (explicit || model != root.join(DEFAULT_MODEL)).then_some(model);
        // The board's own target dir, whatever CARGO_TARGET_DIR the tests inherit.
        build_firmware(core, model, &root.join(EMULATED_BOARD).join("target"))
    })
}

/// The firmware ELF for `core` embedding the odd-shaped model ([`odd_model_image`]),
/// built once per test binary in its own target dir (see the module docs).
pub fn odd_firmware_elf(core: Core) -> &'static Path {
    static ELFS: [OnceLock<PathBuf>; 3] = [OnceLock::new(), OnceLock::new(), OnceLock::new()];
    ELFS[core as usize].get_or_init(|| {
        let target_dir = workspace_root()
            .join(EMULATED_BOARD)
            .join("target/odd-model");
        build_firmware(core, Some(odd_model_path()), &target_dir)
    })
}

/// Builds (or finds up to date) the release firmware for `core` with `model` embedded
/// (the firmware's default model when `None`) in `target_dir`.
fn build_firmware(core: Core, model: Option<&Path>, target_dir: &Path) -> PathBuf {
    FirmwareBuild {
        dir: workspace_root().join(EMULATED_BOARD),
        target: Some(core.target().into()),
        features: Vec::new(),
        model: model.map(Path::to_path_buf),
        target_dir: Some(target_dir.to_path_buf()),
        verbose: false,
    }
    .run()
    .unwrap_or_else(|e| panic!("building the firmware for the {core:?} failed: {e}"))
}

/// What a firmware ELF itself says about its memory, for checking the figures the
/// device reports in `Info` (read from the file, not from the firmware's linker
/// symbols, so a wrong report cannot agree with itself).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ElfFootprint {
    /// Bytes programmed into flash: from the lowest to the end of the highest load
    /// address of the loadable segments that carry bytes (code, read-only data and
    /// the initial values of `.data`).
    pub flash: u32,
    /// Static RAM: the span of the allocated sections that are writable or zero-filled
    /// (`.data`, `.bss`, `.uninit`).
    pub ram_static: u32,
    /// Lowest address of that span.
    pub ram_start: u32,
    /// The initial stack pointer: the first word of the vector table (address 0).
    pub stack_top: u32,
}

impl ElfFootprint {
    /// The stack's region: from the end of the statics to the initial stack pointer.
    pub fn stack_region(&self) -> u32 {
        self.stack_top - self.ram_start - self.ram_static
    }
}

/// Reads [`ElfFootprint`] from the ELF32 (little-endian) at `path`: its program
/// headers, section headers and the vector table's first word.
pub fn elf_footprint(path: &Path) -> ElfFootprint {
    let elf = std::fs::read(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    let at = |offset: usize, len: usize| -> &[u8] {
        elf.get(offset..offset + len)
            .unwrap_or_else(|| panic!("{} ends before byte {}", path.display(), offset + len))
    };
    let u16_at = |offset: usize| u16::from_le_bytes([at(offset, 2)[0], at(offset, 2)[1]]) as usize;
    let u32_at = |offset: usize| {
        let b = at(offset, 4);
        u32::from_le_bytes([b[0], b[1], b[2], b[3]])
    };
    assert_eq!(
        at(0, 6),
        b"\x7fELF\x01\x01",
        "{}: not a little-endian ELF32",
        path.display()
    );
    const PT_LOAD: u32 = 1;
    const SHT_NOBITS: u32 = 8;
    const SHF_WRITE: u32 = 1;
    const SHF_ALLOC: u32 = 2;
    // Program headers: (p_paddr, p_filesz) of the loaded segments with bytes.
    let (phoff, phentsize, phnum) = (u32_at(0x1c) as usize, u16_at(0x2a), u16_at(0x2c));
    let loaded: Vec<(u32, u32)> = (0..phnum)
        .map(|i| phoff + i * phentsize)
        .filter(|&ph| u32_at(ph) == PT_LOAD && u32_at(ph + 16) > 0)
        .map(|ph| (u32_at(ph + 12), u32_at(ph + 16)))
        .collect();
    let flash_start = loaded
        .iter()
        .map(|&(a, _)| a)
        .min()
        .expect("a loaded segment");
    let flash_end = loaded
        .iter()
        .map(|&(a, n)| a + n)
        .max()
        .expect("a loaded segment");
    // Section headers: (sh_type, sh_flags, sh_addr, sh_offset, sh_size).
    let (shoff, shentsize, shnum) = (u32_at(0x20) as usize, u16_at(0x2e), u16_at(0x30));
    let sections: Vec<[u32; 5]> = (0..shnum)
        .map(|i| shoff + i * shentsize)
        .map(|sh| [4, 8, 12, 16, 20].map(|field| u32_at(sh + field)))
        .collect();
    let ram: Vec<(u32, u32)> = sections
        .iter()
        .filter(|&&[kind, flags, ..]| {
            flags & SHF_ALLOC != 0 && (flags & SHF_WRITE != 0 || kind == SHT_NOBITS)
        })
        .map(|&[_, _, addr, _, size]| (addr, size))
        .collect();
    let ram_start = ram.iter().map(|&(a, _)| a).min().expect("a RAM section");
    let ram_end = ram
        .iter()
        .map(|&(a, n)| a + n)
        .max()
        .expect("a RAM section");
    let vector_table = sections
        .iter()
        .find(|&&[kind, flags, addr, ..]| flags & SHF_ALLOC != 0 && kind != SHT_NOBITS && addr == 0)
        .expect("a section at address 0 (the vector table)");
    ElfFootprint {
        flash: flash_end - flash_start,
        ram_static: ram_end - ram_start,
        ram_start,
        stack_top: u32_at(vector_table[3] as usize),
    }
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
    boot_firmware(core, firmware_elf(core), boot_screen)
}

/// Boots the firmware `elf` (built for `core`) in a fresh QEMU with that core, saving
/// the boot screen to `boot_screen` if given, and waits until it answers.
pub fn boot_firmware(core: Core, elf: &Path, boot_screen: Option<PathBuf>) -> Device {
    let mut config = EmulatorConfig::new(elf);
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

/// Named test images of `width` x `height` (the bundled digits' size): the digits with
/// indices in `plain` ("digit #i"), the digits in `faulted` each with one simulated
/// sensor fault of the trainer's data module (cycling through [`Corruption::ALL`],
/// seeded by the index, the next digit as the frame torn and overlay mix in:
/// "<fault> #i"), and one flat image per level in `flat`
/// ("flat <level>").
pub fn test_images(
    width: usize,
    height: usize,
    plain: Range<usize>,
    faulted: Range<usize>,
    flat: &[u8],
) -> Vec<(String, Vec<u8>)> {
    let digits = test_digits();
    assert_eq!((digits.width, digits.height), (width, height));
    let mut images: Vec<(String, Vec<u8>)> = plain
        .map(|i| (format!("digit #{i}"), digits.image_u8(i).to_vec()))
        .collect();
    for i in faulted {
        let fault = Corruption::ALL[i % Corruption::ALL.len()];
        let image = fault.apply(
            digits.image_u8(i),
            digits.image_u8(other_index(i, digits.len())),
            width,
            height,
            &mut SeededRng::new(i as u64),
        );
        images.push((format!("{} #{i}", fault.name()), image));
    }
    for &level in flat {
        images.push((format!("flat {level}"), vec![level; width * height]));
    }
    images
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
