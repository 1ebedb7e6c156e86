//! The firmware's stand-alone demo frames (`firmware/app/demo-frames.bin`) are what
//! `demo_frames::build` makes from the bundled test digits, byte for byte: the file
//! cannot drift from the code that documents it. `TINYVAE_BLESS=1` rewrites it.

use std::path::Path;

use tinyvae_datasets::{demo_frames, load_test};
use tinyvae_shared::demo_frames::DemoFrames;

#[test]
fn the_firmwares_demo_frames_are_current() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let test = load_test(&root.join("data/mnist-10k"), (28, 28), 0).expect("bundled digits");
    let want = demo_frames::build(&test).expect("builds");
    let path = root.join("firmware/app/demo-frames.bin");
    if std::env::var_os("TINYVAE_BLESS").is_some() {
        std::fs::write(&path, &want).expect("write demo-frames.bin");
    }
    let have =
        std::fs::read(&path).expect("firmware/app/demo-frames.bin (TINYVAE_BLESS=1 writes it)");
    assert!(
        have == want,
        "{} is stale: rerun with TINYVAE_BLESS=1",
        path.display()
    );
    let frames = DemoFrames::parse(&have).expect("parses");
    let captions: Vec<&str> = (0..frames.len())
        .filter_map(|i| frames.get(i).map(|(c, _)| c))
        .collect();
    assert_eq!(
        captions,
        [
            "digit 0",
            "digit 6",
            "digit 3",
            "digit 7",
            "noise",
            "stuck-lines",
            "salt-pepper",
            "drift"
        ]
    );
    // The faulted frames differ from the digits they came from.
    for k in 0..demo_frames::FAULTS.len() {
        let i = demo_frames::CLEAN + k;
        assert_ne!(frames.get(i).map(|(_, p)| p), Some(test.image_u8(i)));
    }
}
