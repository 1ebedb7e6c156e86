//! The `tinyvae serial` subcommands (their library entry point, `serial::run`) against
//! the firmware in QEMU: each must succeed on the right inputs and fail cleanly on
//! wrong ones. Their printed output is not checked here; the numbers behind it are
//! checked bit for bit in `firmware_qemu.rs`. Runs once per core (`m0`, `m3`, `m4`).

use std::path::PathBuf;

use tinyvae_e2e::harness::{boot, model_path, workspace_root, write_synthetic_model, Core, Device};
use tinyvae_e2e::serial::{
    run, BenchArgs, EncodeArgs, GenerateArgs, InfoArgs, SerialArgs, SerialCommand, SetThresholdArgs,
};

fn args(port: &str, command: SerialCommand) -> SerialArgs {
    SerialArgs {
        port: port.to_owned(),
        baud: 115_200,
        timeout: 60.0,
        command,
    }
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

    run(&args(
        &port,
        SerialCommand::Info(InfoArgs {
            model: Some(model_path().to_path_buf()),
        }),
    ))
    .expect("info --model with the firmware's own model");

    let other = out_dir.join(format!("other-model-{core:?}.safetensors"));
    write_synthetic_model(&other, 99);
    let err = run(&args(
        &port,
        SerialCommand::Info(InfoArgs { model: Some(other) }),
    ))
    .expect_err("info --model with another model must fail");
    assert!(err.to_string().contains("hash"), "{err:#}");

    run(&args(
        &port,
        SerialCommand::Encode(EncodeArgs {
            images: digits.clone(),
            labels: None,
            anomalous_classes: vec!["1".into(), "7".into()],
            anomalous: None,
            corrupt: false,
            limit: Some(30),
            summary: false,
        }),
    ))
    .expect("encode with labelled anomalous classes");
    run(&args(
        &port,
        SerialCommand::Encode(EncodeArgs {
            images: digits.clone(),
            labels: None,
            anomalous_classes: Vec::new(),
            anomalous: None,
            corrupt: true,
            limit: Some(14),
            summary: true,
        }),
    ))
    .expect("encode with corrupted copies");

    let grid = out_dir.join(format!("grid-{core:?}-{}.png", std::process::id()));
    run(&args(
        &port,
        SerialCommand::Generate(GenerateArgs {
            seed: 5,
            temperature: 1.0,
            count: 10,
            columns: 4,
            scale: 2,
            out: grid.clone(),
        }),
    ))
    .expect("generate");
    let png = image::open(&grid).expect("grid PNG").to_luma8();
    // 4 columns and 3 rows of 56-pixel cells with 1-pixel separators.
    assert_eq!((png.width(), png.height()), (4 * 57 + 1, 3 * 57 + 1));
    let _ = std::fs::remove_file(&grid);

    run(&args(
        &port,
        SerialCommand::Bench(BenchArgs {
            count: 3,
            images: Some(digits),
            clock_mhz: 50.0,
        }),
    ))
    .expect("bench");
    run(&args(
        &port,
        SerialCommand::SetThreshold(SetThresholdArgs { threshold: 123.5 }),
    ))
    .expect("set-threshold");
    run(&args(&port, SerialCommand::Stats)).expect("stats");

    let missing = PathBuf::from("/nonexistent/images.idx");
    let err = run(&args(
        &port,
        SerialCommand::Encode(EncodeArgs {
            images: missing,
            labels: None,
            anomalous_classes: Vec::new(),
            anomalous: None,
            corrupt: false,
            limit: None,
            summary: true,
        }),
    ))
    .expect_err("a missing image file must fail");
    assert!(err.to_string().contains("nonexistent"), "{err:#}");
    drop(emulator);
}
