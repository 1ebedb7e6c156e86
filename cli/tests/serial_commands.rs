//! The `tinyvae serial` subcommands, run as the real `tinyvae` binary against the
//! firmware in QEMU: each must succeed on the right inputs and fail cleanly, with a
//! message naming the problem, on wrong ones. Their printed numbers are checked bit for
//! bit in `tests/tests/firmware_qemu.rs`. Runs once per core (`m0`, `m3`, `m4`).

mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::{fails_with, ok};

use tinyvae_e2e::harness::{boot, model_path, workspace_root, write_synthetic_model, Core, Device};

/// Runs `tinyvae serial --port PORT --timeout 60 ARGS...`.
fn serial(port: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tinyvae"))
        .args(["serial", "--port", port, "--timeout", "60"])
        .args(args)
        .output()
        .expect("running tinyvae")
}

fn path(p: &Path) -> &str {
    p.to_str().expect("UTF-8 path")
}

#[test]
fn m0_serial_subcommands_work_against_the_emulator() {
    serial_subcommands_work_against_the_emulator(Core::M0);
}

#[test]
fn m3_serial_subcommands_work_against_the_emulator() {
    serial_subcommands_work_against_the_emulator(Core::M3);
}

#[test]
fn m4_serial_subcommands_work_against_the_emulator() {
    serial_subcommands_work_against_the_emulator(Core::M4);
}

fn serial_subcommands_work_against_the_emulator(core: Core) {
    let Device {
        emulator, client, ..
    } = boot(core);
    // Release the pty: each subcommand opens it exclusively, like a user would.
    drop(client);
    let port = emulator.pty_path().display().to_string();
    let digits = workspace_root().join("data/mnist-10k/test-images-idx3-ubyte.gz");
    let out_dir = workspace_root().join("target/e2e-cli");
    std::fs::create_dir_all(&out_dir).expect("output folder");

    ok(
        serial(&port, &["info", "--model", path(model_path())]),
        "info --model with the firmware's own model",
    );

    let other = out_dir.join(format!("other-model-{core:?}.safetensors"));
    write_synthetic_model(&other, 99);
    fails_with(
        serial(&port, &["info", "--model", path(&other)]),
        "info --model with another model",
        "hash",
    );

    ok(
        serial(
            &port,
            &[
                "encode",
                "--images",
                path(&digits),
                "--anomalous-classes",
                "1,7",
                "--limit",
                "30",
            ],
        ),
        "encode with labelled anomalous classes",
    );
    ok(
        serial(
            &port,
            &[
                "encode",
                "--images",
                path(&digits),
                "--corrupt",
                "--limit",
                "14",
                "--summary",
            ],
        ),
        "encode with corrupted copies",
    );

    let grid = out_dir.join(format!("grid-{core:?}-{}.png", std::process::id()));
    ok(
        serial(
            &port,
            &[
                "generate",
                "--seed",
                "5",
                "--count",
                "10",
                "--columns",
                "4",
                "--scale",
                "2",
                "--out",
                path(&grid),
            ],
        ),
        "generate",
    );
    let png = image::open(&grid).expect("grid PNG").to_luma8();
    // 4 columns and 3 rows of 56-pixel cells with 1-pixel separators.
    assert_eq!((png.width(), png.height()), (4 * 57 + 1, 3 * 57 + 1));
    let _ = std::fs::remove_file(&grid);

    ok(
        serial(&port, &["bench", "--count", "3", "--images", path(&digits)]),
        "bench",
    );
    // Denoise digits the host faults (rows faulted / denoised / clean) and, without
    // --corrupt, the digits as they are (rows input / denoised).
    let denoised = out_dir.join(format!("denoised-{core:?}-{}.png", std::process::id()));
    let out = serial(
        &port,
        &[
            "denoise",
            "--images",
            path(&digits),
            "--corrupt",
            "all",
            "--limit",
            "7",
            "--scale",
            "1",
            "--out",
            path(&denoised),
        ],
    );
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    ok(out, "denoise --corrupt all");
    assert!(
        stdout.contains("faulted vs clean:") && stdout.contains("denoised vs clean:"),
        "denoise prints PSNR and SSIM before and after: {stdout}"
    );
    let png = image::open(&denoised).expect("denoise PNG").to_luma8();
    // 7 columns and 3 rows of 28-pixel cells with 1-pixel separators.
    assert_eq!((png.width(), png.height()), (7 * 29 + 1, 3 * 29 + 1));
    ok(
        serial(
            &port,
            &[
                "denoise",
                "--images",
                path(&digits),
                "--limit",
                "2",
                "--out",
                path(&denoised),
            ],
        ),
        "denoise without faults",
    );
    let png = image::open(&denoised).expect("denoise PNG").to_luma8();
    assert_eq!(png.height(), 2 * (4 * 28 + 1) + 1, "two rows at scale 4");
    let _ = std::fs::remove_file(&denoised);
    fails_with(
        serial(
            &port,
            &[
                "denoise",
                "--images",
                path(&digits),
                "--corrupt",
                "rain",
                "--out",
                path(&denoised),
            ],
        ),
        "an unknown fault",
        "expected one of noise, dead-pixels",
    );

    // Compress at 4 bits, decoded by the host twin (with the model file) and by the
    // device; at 8 bits a 16-dimensional code is 16 bytes.
    let out = serial(
        &port,
        &[
            "compress",
            "--images",
            path(&digits),
            "--bits",
            "4",
            "--limit",
            "5",
            "--model",
            path(model_path()),
        ],
    );
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    ok(out, "compress --bits 4 --model");
    assert!(
        stdout.contains("8 bytes per image instead of 784 (98.0x smaller)"),
        "compress prints the size: {stdout}"
    );
    let out = serial(
        &port,
        &[
            "compress",
            "--images",
            path(&digits),
            "--bits",
            "8",
            "--limit",
            "3",
        ],
    );
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    ok(out, "compress --bits 8, decoded by the device");
    assert!(stdout.contains("16 bytes per image"), "{stdout}");
    for bits in ["0", "9"] {
        fails_with(
            serial(
                &port,
                &["compress", "--images", path(&digits), "--bits", bits],
            ),
            "compress at a bit depth outside 1 to 8",
            "1..=8",
        );
    }
    fails_with(
        serial(
            &port,
            &[
                "compress",
                "--images",
                path(&digits),
                "--bits",
                "4",
                "--model",
                path(&other),
            ],
        ),
        "compress with another model's decoder",
        "hash",
    );

    ok(serial(&port, &["set-threshold", "123.5"]), "set-threshold");
    ok(serial(&port, &["stats"]), "stats");

    fails_with(
        serial(
            &port,
            &["encode", "--images", "/nonexistent/images.idx", "--summary"],
        ),
        "a missing image file",
        "nonexistent",
    );
    drop(emulator);
}
