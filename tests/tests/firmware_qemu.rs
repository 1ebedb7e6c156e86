//! The real firmware in QEMU (`lm3s6965evb`) over its UART pty, against the host's run
//! of the very same shared code: every answer must match bit for bit.
//!
//! Every test runs once per core QEMU can put on the board (`m0::`, `m3::`, `m4::`):
//! the same firmware source built for `thumbv6m-none-eabi`, `thumbv7m-none-eabi` and
//! `thumbv7em-none-eabihf`. Each test boots its own QEMU (killed on drop), so they run
//! in parallel and a failure leaves nothing behind. Each firmware is built once per run
//! of this binary (see `tinyvae_e2e::harness`). No test asserts anything about time.

use std::time::{Duration, Instant};

use tinyvae_app::idle::{DemoStep, Idle, DEMO_FRAMES, DEMO_SAMPLES};
use tinyvae_e2e::harness::{
    boot, boot_firmware, boot_with_screendump, elf_footprint, firmware_elf, model_image,
    odd_firmware_elf, odd_model_image, test_digits, test_images, workspace_root, Core, Device,
};
use tinyvae_e2e::serial::SerialError;
use tinyvae_screens::{self as screen, FrameBuffer, DUMP_HEIGHT, DUMP_WIDTH};
use tinyvae_shared::demo_frames::DemoFrames;
use tinyvae_shared::fixed::Q16_ONE;
use tinyvae_shared::model::Model;
use tinyvae_shared::pipeline::{self, Workspace};
use tinyvae_shared::protocol::{
    encode_frame, DeviceInfo, ErrorCode, Request, Response, MAX_FRAME, MAX_PAYLOAD,
    PROTOCOL_VERSION,
};
use tinyvae_shared::rng::Rng;

// A folder of its own, so cargo does not take it for a test binary of its own.
#[path = "firmware_qemu/detector.rs"]
mod detector;
#[path = "firmware_qemu/load.rs"]
mod load;

#[path = "firmware_qemu/transform.rs"]
mod transform;

use detector::calibration_on_the_device_equals_the_host_twin;
use load::the_device_under_load_answers_every_frame;
use transform::{
    denoise_and_compress_match_the_host_bit_for_bit,
    denoise_and_compress_screens_match_the_host_rendering,
};

fn model() -> Model<'static> {
    Model::parse(model_image()).expect("the test model parses")
}

fn info_matches_the_model_file(core: Core) {
    let mut device = boot(core);
    let model = model();
    let info = device.info.clone();
    assert_eq!(info.protocol_version, PROTOCOL_VERSION);
    assert_eq!(
        info.model_hash,
        model.hash,
        "the device runs another model than {}",
        tinyvae_e2e::harness::model_path().display()
    );
    assert_eq!(info.model_name.as_str(), model.name());
    assert_eq!(usize::from(info.input_width), model.input_width);
    assert_eq!(usize::from(info.input_height), model.input_height);
    assert_eq!(usize::from(info.latent), model.latent);
    assert_eq!(info.parameters as usize, model.parameters());
    assert_eq!(info.threshold, model.threshold);
    assert!(
        info.flash_used as usize > model_image().len(),
        "flash {} cannot hold the {}-byte model",
        info.flash_used,
        model_image().len()
    );
    assert_footprint_matches_the_elf(&info, firmware_elf(core));
    // Everything but the stack's high-water mark (which only grows) is fixed.
    let again = device.client.info().expect("second Info");
    assert!(again.stack_high_water >= info.stack_high_water);
    assert_eq!(
        DeviceInfo {
            stack_high_water: info.stack_high_water,
            ..again
        },
        info
    );
}

/// The memory figures of `info` against the firmware's ELF: flash and static RAM
/// exactly, and a stack high-water mark that is neither zero nor the whole region (a
/// stack never painted reads as all used).
fn assert_footprint_matches_the_elf(info: &DeviceInfo, elf: &std::path::Path) {
    let want = elf_footprint(elf);
    assert_eq!(
        info.flash_used,
        want.flash,
        "flash the device reports vs the bytes {} loads",
        elf.display()
    );
    assert_eq!(
        info.ram_static,
        want.ram_static,
        "static RAM the device reports vs the sections of {}",
        elf.display()
    );
    let region = want.stack_region();
    assert!(
        info.stack_high_water > 0 && info.stack_high_water < region,
        "stack high-water mark {} B outside (0, {region}) (the region between the statics \
         and the initial stack pointer {:#x})",
        info.stack_high_water,
        want.stack_top
    );
}

/// The images the parity test scores: real digits, digits with every simulated sensor
/// fault of the trainer's data module, and extremes.
fn parity_images(width: usize, height: usize) -> Vec<(String, Vec<u8>)> {
    test_images(width, height, 0..150, 150..206, &[0, 255, 128])
}

/// Encodes each image on `device` and checks mu, logvar and the score against the
/// host's run of `model` at the device's current `threshold`, then reconstructs every
/// `reconstruct_every`-th image and checks the decoded pixels.
fn assert_encodes_match(
    device: &mut Device,
    model: &Model<'_>,
    images: &[(String, Vec<u8>)],
    reconstruct_every: usize,
) {
    let mut ws = Workspace::new();
    let mut mismatches = Vec::new();
    for (name, image) in images {
        let got = device
            .client
            .encode(image)
            .unwrap_or_else(|e| panic!("encode {name}: {e}"));
        let want = pipeline::score_image(model, &mut ws, image, model.threshold)
            .expect("host scores the image");
        if got.mu != want.posterior.mu
            || got.logvar != want.posterior.logvar
            || got.score != want.score
        {
            mismatches.push(format!(
                "{name}: device score {:?} mu {:?}, host score {:?} mu {:?}",
                got.score, got.mu, want.score, want.posterior.mu
            ));
        }
        assert!(got.instructions > 0, "{name}: no instructions counted");
    }
    assert!(
        mismatches.is_empty(),
        "{} of {} encodes differ from the host; first: {:#?}",
        mismatches.len(),
        images.len(),
        &mismatches[..mismatches.len().min(3)]
    );
    // Reconstruct returns decoder(mu) with the same score.
    for (name, image) in images.iter().step_by(reconstruct_every) {
        let got = device
            .client
            .reconstruct(image)
            .unwrap_or_else(|e| panic!("reconstruct {name}: {e}"));
        let want = pipeline::score_image(model, &mut ws, image, model.threshold)
            .expect("host scores the image");
        assert_eq!(got.image, want.reconstruction, "{name}: reconstruction");
        assert_eq!(got.score, want.score, "{name}: score");
    }
}

/// Generates `count` seeded images on `device` (seeds spread over the u64 range, four
/// temperatures including 0) and decodes one prior sample, checking each latent vector
/// and image against the host's run of `model`.
fn assert_generations_match(device: &mut Device, model: &Model<'_>, count: u64) {
    let mut ws = Workspace::new();
    let temperatures = [Q16_ONE, Q16_ONE / 2, 3 * Q16_ONE / 2, 0];
    for i in 0..count {
        let seed = i.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ i;
        let temperature = temperatures[i as usize % temperatures.len()];
        let got = device
            .client
            .generate(seed, temperature)
            .unwrap_or_else(|e| panic!("generate seed {seed}: {e}"));
        let (z, image) =
            pipeline::generate(model, &mut ws, seed, temperature).expect("host generates");
        assert_eq!(got.z, z, "seed {seed}: latent sample");
        assert_eq!(got.image, image, "seed {seed}: image");
    }
    // Decode of a given latent vector.
    let z = pipeline::prior_sample(model.latent, 7, Q16_ONE);
    let got = device.client.decode(&z).expect("decode");
    assert_eq!(got.z, z);
    assert_eq!(
        got.image,
        pipeline::decode(model, &mut ws, &z).expect("host decodes")
    );
}

fn encodes_match_the_host_bit_for_bit(core: Core) {
    let mut device = boot(core);
    let model = model();
    let mut ws = Workspace::new();
    let images = parity_images(model.input_width, model.input_height);
    assert!(images.len() >= 200);
    assert_encodes_match(&mut device, &model, &images, 20);

    // The verdict follows a new threshold.
    let lowered = device.client.set_threshold(0).expect("set threshold");
    assert_eq!(lowered, 0);
    let (name, image) = &images[0];
    let got = device
        .client
        .encode(image)
        .expect("encode after set-threshold");
    let want = pipeline::score_image(&model, &mut ws, image, 0).expect("host");
    assert_eq!(got.score, want.score, "{name} at threshold 0");

    // A wrong-sized image is refused, and the device carries on.
    match device.client.encode(&[0u8; 10]) {
        Err(SerialError::Device(ErrorCode::WrongImageSize { expected, got })) => {
            assert_eq!(usize::from(expected), model.pixels());
            assert_eq!(got, 10);
        }
        other => panic!("a 10-pixel image got {other:?}"),
    }
    device.client.info().expect("Info after an error");
}

fn generations_match_the_host_bit_for_bit(core: Core) {
    let mut device = boot(core);
    assert_generations_match(&mut device, &model(), 20);
}

/// Images for the odd-shaped model: digits cropped to its size at shifting offsets,
/// seeded noise, and extremes (flat black, white and grey, a checkerboard, a ramp).
fn odd_images(width: usize, height: usize) -> Vec<(String, Vec<u8>)> {
    let digits = test_digits();
    let mut images: Vec<(String, Vec<u8>)> = (0..40)
        .map(|i| {
            let (dx, dy) = (
                i % (digits.width - width + 1),
                i % (digits.height - height + 1),
            );
            let digit = digits.image_u8(i);
            let crop = (0..height)
                .flat_map(|y| (0..width).map(move |x| (x, y)))
                .map(|(x, y)| digit[(y + dy) * digits.width + x + dx])
                .collect();
            (format!("digit #{i} cropped at ({dx}, {dy})"), crop)
        })
        .collect();
    let mut rng = Rng::new(0x0dd);
    for i in 0..10 {
        let noise = (0..width * height).map(|_| rng.next_u32() as u8).collect();
        images.push((format!("noise #{i}"), noise));
    }
    for level in [0u8, 255, 128] {
        images.push((format!("flat {level}"), vec![level; width * height]));
    }
    let pixels = 0..width * height;
    images.push((
        "checkerboard".into(),
        pixels
            .clone()
            .map(|p| {
                if (p % width + p / width).is_multiple_of(2) {
                    255
                } else {
                    0
                }
            })
            .collect(),
    ));
    images.push((
        "ramp".into(),
        pixels
            .map(|p| (p * 255 / (width * height - 1)) as u8)
            .collect(),
    ));
    images
}

/// The firmware built with the odd-shaped model (see `harness::ODD_SHAPE`: every
/// layer leaves a remainder in each kernel, where the default model's leave none)
/// answers encodes, reconstructions, generations and a decode bit for bit like the
/// host's run of the same model bytes.
fn odd_shaped_model_matches_the_host_bit_for_bit(core: Core) {
    let model = Model::parse(odd_model_image()).expect("the odd-shaped model parses");
    let mut device = boot_firmware(core, odd_firmware_elf(core), None);
    let info = &device.info;
    assert_eq!(info.model_hash, model.hash, "the device runs another model");
    assert_eq!(
        (info.input_width, info.input_height, info.latent),
        (27, 25, 5),
        "the odd shape"
    );
    assert_footprint_matches_the_elf(info, odd_firmware_elf(core));
    let images = odd_images(model.input_width, model.input_height);
    assert!(images.len() >= 50);
    assert_encodes_match(&mut device, &model, &images, 5);
    assert_generations_match(&mut device, &model, 12);
}

/// The host's rendering of `fb` as QEMU dumps it, and the indices of the pixels of the
/// screendump `dump` that differ from it. The rendering must not be nearly blank, so
/// a dark panel cannot pass for a dark screen.
fn compare_with_host(dump: &std::path::Path, fb: &FrameBuffer) -> (Vec<usize>, Vec<u8>) {
    let want = screen::screendump_pixels(fb);
    let lit = want.iter().filter(|&&p| p != 0).count();
    assert!(
        lit > 1000,
        "the host rendering is nearly blank ({lit} lit pixels)"
    );
    let have = read_dump(dump);
    let differing = (0..want.len())
        .filter(|&i| have[i] != Some(want[i]))
        .collect();
    (differing, want)
}

/// QEMU's screendump PNG as one grey byte per pixel; `None` where a pixel is not grey.
fn read_dump(path: &std::path::Path) -> Vec<Option<u8>> {
    let png = image::open(path)
        .unwrap_or_else(|e| panic!("decoding {}: {e}", path.display()))
        .to_rgb8();
    assert_eq!(
        (png.width() as usize, png.height() as usize),
        (DUMP_WIDTH, DUMP_HEIGHT),
        "screendump size"
    );
    png.pixels()
        .map(|p| (p[0] == p[1] && p[1] == p[2]).then_some(p[0]))
        .collect()
}

fn screen_after_generate_matches_the_host_rendering(core: Core) {
    let mut device = boot(core);
    let model = model();
    let mut ws = Workspace::new();
    let dir = workspace_root().join("target/e2e-screens");
    std::fs::create_dir_all(&dir).expect("screens folder");
    // The firmware shows the generated image until its idle demo starts, about a
    // virtual second later; the dump follows the reply within milliseconds, but a
    // stalled CI machine could let the demo win, so a mismatch is retried twice
    // (a real difference fails every attempt).
    let mut failures = Vec::new();
    for attempt in 0..3u64 {
        let seed = 42 + attempt;
        let got = device
            .client
            .generate(seed, Q16_ONE)
            .unwrap_or_else(|e| panic!("generate: {e}"));
        let dump = dir.join(format!(
            "generate-{core:?}-{seed}-{}.png",
            std::process::id()
        ));
        device
            .emulator
            .screendump(&dump)
            .unwrap_or_else(|e| panic!("screendump: {e}"));
        let (_, image) = pipeline::generate(&model, &mut ws, seed, Q16_ONE).expect("host");
        assert_eq!(got.image, image, "seed {seed}: image");
        let mut fb = FrameBuffer::new();
        screen::draw_generated(&mut fb, &image, model.input_width, model.input_height, seed);
        let (differing, want) = compare_with_host(&dump, &fb);
        if differing.is_empty() {
            let _ = std::fs::remove_file(&dump);
            return;
        }
        let host = dir.join(format!("host-{core:?}-{seed}-{}.png", std::process::id()));
        image::GrayImage::from_raw(DUMP_WIDTH as u32, DUMP_HEIGHT as u32, want)
            .expect("host rendering size")
            .save(&host)
            .expect("save host rendering");
        let first = differing[0];
        eprintln!(
            "screen attempt {attempt}: {} pixels differ",
            differing.len()
        );
        failures.push(format!(
            "seed {seed}: {} pixels differ, first at ({}, {}); QEMU {}, host {}",
            differing.len(),
            first % DUMP_WIDTH,
            first / DUMP_WIDTH,
            dump.display(),
            host.display()
        ));
    }
    panic!("the OLED never matched the host rendering: {failures:#?}");
}

/// The boot screen, dumped as soon as the firmware has drawn it (before the first
/// request, long before the idle demo), is the host's rendering of the model's boot
/// screen: the screenshot the README shows as "boot" is that screen.
fn boot_screen_matches_the_host_rendering(core: Core) {
    let model = model();
    let dir = workspace_root().join("target/e2e-screens");
    std::fs::create_dir_all(&dir).expect("screens folder");
    let mut fb = FrameBuffer::new();
    screen::draw_boot(
        &mut fb,
        model.name(),
        model.input_width,
        model.input_height,
        model.latent,
        model.parameters(),
        model.hash,
    );
    // A stalled CI machine can hold the guest mid-flush long enough for the dump to
    // look finished, so a mismatch is retried on a fresh boot (a real difference
    // fails every attempt).
    let mut failures = Vec::new();
    for attempt in 0..3 {
        let dump = dir.join(format!(
            "boot-{core:?}-{attempt}-{}.png",
            std::process::id()
        ));
        let device = boot_with_screendump(core, Some(dump.clone()));
        drop(device);
        let (differing, _) = compare_with_host(&dump, &fb);
        if differing.is_empty() {
            let _ = std::fs::remove_file(&dump);
            return;
        }
        eprintln!(
            "boot screen attempt {attempt}: {} pixels differ",
            differing.len()
        );
        failures.push(format!(
            "{}: {} pixels differ",
            dump.display(),
            differing.len()
        ));
    }
    panic!("the boot screendump never matched the host's boot screen: {failures:#?}");
}

/// Requests sent back to back, more bytes than the firmware's receive ring holds,
/// are all answered in order and bit for bit: the ring holds the line back when full
/// instead of dropping bytes.
fn pipelined_requests_are_all_answered(core: Core) {
    let mut device = boot(core);
    let model = model();
    let mut ws = Workspace::new();
    let images = parity_images(model.input_width, model.input_height);
    let burst = &images[..8];
    let mut bytes = Vec::new();
    for (_, image) in burst {
        let mut scratch = [0u8; MAX_PAYLOAD];
        let mut out = [0u8; MAX_FRAME];
        let request = Request::Encode {
            image: image.iter().copied().collect(),
        };
        let n = encode_frame(&request, &mut scratch, &mut out).expect("fits");
        bytes.extend_from_slice(&out[..n]);
    }
    assert!(bytes.len() > 4096, "the burst must overflow the ring");
    device.client.send_raw(&bytes).expect("send the burst");
    for (name, image) in burst {
        let deadline = Instant::now() + Duration::from_secs(60);
        let want = pipeline::score_image(&model, &mut ws, image, model.threshold).expect("host");
        match device.client.read_response(deadline) {
            Ok(Response::Encoded(got)) => {
                assert_eq!(
                    (got.mu, got.score),
                    (want.posterior.mu, want.score),
                    "{name}"
                )
            }
            other => panic!("{name}: {other:?}"),
        }
    }
}

/// With no host talking, the board runs its stand-alone demo: it scores the frames
/// built into its flash, then generates samples. Screendumps taken while it runs show
/// consecutive demo screens, each the host's rendering of the same step: the verdict
/// and the reconstruction on the device's OLED are the host's, bit for bit.
fn standalone_demo_matches_the_host_rendering(core: Core) {
    let mut device = boot(core);
    let model = model();
    let mut ws = Workspace::new();
    let mut idle = Idle::new(model.latent, model.input_width, model.input_height);
    let round = DemoFrames::parse(DEMO_FRAMES).map_or(0, |f| f.len()) + DEMO_SAMPLES as usize;
    let (w, h) = (model.input_width, model.input_height);
    let wanted: Vec<Vec<u8>> = (0..round)
        .map(|_| {
            let mut fb = FrameBuffer::new();
            match idle.next_demo_step() {
                DemoStep::Score { caption, pixels } => {
                    let scored = pipeline::score_image(&model, &mut ws, pixels, model.threshold)
                        .expect("host scores");
                    let (r, report) = (&scored.reconstruction, &scored.score);
                    screen::draw_demo_scored(&mut fb, pixels, r, w, h, report, caption);
                }
                DemoStep::Generate { seed } => {
                    let (_, image) =
                        pipeline::generate(&model, &mut ws, seed, Q16_ONE).expect("host");
                    screen::draw_generated(&mut fb, &image, w, h, seed);
                }
            }
            screen::screendump_pixels(&fb)
        })
        .collect();
    let dir = workspace_root().join("target/e2e-screens");
    std::fs::create_dir_all(&dir).expect("screens folder");
    let dump = dir.join(format!("demo-{core:?}-{}.png", std::process::id()));
    let mut seen = vec![false; round];
    let deadline = Instant::now() + Duration::from_secs(60);
    while !(seen[0] && seen[1]) {
        assert!(
            Instant::now() < deadline,
            "the first two demo screens were not both seen in 60 s: {seen:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
        device
            .emulator
            .screendump(&dump)
            .unwrap_or_else(|e| panic!("screendump: {e}"));
        let have = read_dump(&dump);
        for (step, want) in wanted.iter().enumerate() {
            if have.iter().zip(want).all(|(a, b)| *a == Some(*b)) {
                seen[step] = true;
            }
        }
    }
    let _ = std::fs::remove_file(&dump);
}

fn emulator_is_gone_after_drop(core: Core) {
    let device = boot(core);
    let pid = device.emulator.pid();
    let proc_dir = std::path::PathBuf::from(format!("/proc/{pid}"));
    assert!(proc_dir.exists(), "QEMU runs while the device lives");
    drop(device);
    // Drop kills and reaps the child, so its /proc entry is gone at once.
    assert!(!proc_dir.exists(), "QEMU {pid} still runs after drop");
}

/// One `#[test]` per core for each test above.
macro_rules! on_every_core {
    ($($test:ident),* $(,)?) => {
        mod m0 {
            $(#[test] fn $test() { super::$test(super::Core::M0) })*
        }
        mod m3 {
            $(#[test] fn $test() { super::$test(super::Core::M3) })*
        }
        mod m4 {
            $(#[test] fn $test() { super::$test(super::Core::M4) })*
        }
    };
}

on_every_core!(
    info_matches_the_model_file,
    encodes_match_the_host_bit_for_bit,
    generations_match_the_host_bit_for_bit,
    screen_after_generate_matches_the_host_rendering,
    the_device_under_load_answers_every_frame,
    emulator_is_gone_after_drop,
    boot_screen_matches_the_host_rendering,
    pipelined_requests_are_all_answered,
    odd_shaped_model_matches_the_host_bit_for_bit,
    standalone_demo_matches_the_host_rendering,
    denoise_and_compress_match_the_host_bit_for_bit,
    denoise_and_compress_screens_match_the_host_rendering,
    calibration_on_the_device_equals_the_host_twin,
);
