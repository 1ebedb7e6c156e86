//! `tinyvae faults`, run as the real binary: the picture of every fault kind has the
//! size its layout promises, the table lists every kind, and a bad severity is refused
//! by name.

mod common;

use std::process::{Command, Output};

use common::train::data;
use common::{fails_with, ok};

fn tinyvae(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tinyvae"))
        .arg("faults")
        .arg("--data")
        .arg(data())
        .args(args)
        .output()
        .expect("running tinyvae faults")
}

#[test]
fn faults_draws_every_kind_and_refuses_bad_severities() {
    let dir = tempfile::tempdir().expect("temp dir");
    let png = dir.path().join("faults.png");
    let out = tinyvae(&[
        "--out",
        png.to_str().expect("utf-8 path"),
        "--severities",
        "0.5,1,2",
        "--digits",
        "2",
        "--seed",
        "3",
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    ok(out, "tinyvae faults");
    // The table: a header, a rule, one line per kind.
    assert_eq!(stdout.lines().count(), 2 + 22, "{stdout}");
    assert!(stdout.contains("| dead-region | subtractive |"), "{stdout}");
    assert!(
        stdout.contains("| motion-blur | optical | yes |"),
        "{stdout}"
    );
    let img = image::open(&png).expect("the PNG").to_rgb8();
    // 22 columns 94 pixels apart (84-pixel digits at scale 3, widened to the longest
    // label, "vignetting*", plus a 6-pixel gap) after a 56-pixel margin, 10 more
    // between each of the 5 families, 10 on the right: 56 + 22 * 94 + 4 * 10 + 10.
    // 2 digits x (clean + 3 severities) rows 88 pixels apart below 48 pixels of labels,
    // 10 more between digits, 30 for the key: 48 + 7 * 88 + 10 + 84 + 30.
    assert_eq!(img.dimensions(), (2174, 788));
    // The first clean digit sits in the first column: some ink there.
    let ink = (48..48 + 84)
        .flat_map(|y| (58..58 + 84).map(move |x| (x, y)))
        .filter(|&(x, y)| img.get_pixel(x, y).0[0] > 128)
        .count();
    assert!(ink > 100, "{ink} bright pixels in the first tile");

    let stderr = fails_with(
        tinyvae(&["--out", png.to_str().unwrap(), "--severities", "1,strong"]),
        "a severity that is no number",
        "--severities",
    );
    assert!(stderr.contains("strong"), "{stderr}");
    fails_with(
        tinyvae(&["--out", png.to_str().unwrap(), "--severities", "1,-0.5"]),
        "a negative severity",
        "expected a severity of 0 or more",
    );
}
