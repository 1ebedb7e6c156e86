//! Denoise and Compress on the device against the host's run of the same pipeline: every
//! reply bit for bit, the device's counters, the refusal of a bad bit depth, and the
//! screens each request leaves on the OLED. The median instructions per request are
//! printed (`--nocapture`), the figures BENCHMARKS quotes: measured on requests sent
//! one at a time, since a receive interrupt that falls in a measured window (as the
//! bursts of the parity check make them do) is counted too.

use std::time::Instant;

use tinyvae_e2e::harness::{boot, test_images, workspace_root, Core, Device, REQUEST_TIMEOUT};
use tinyvae_screens::{self as screen, FrameBuffer};
use tinyvae_shared::code;
use tinyvae_shared::pipeline::{self, Workspace};
use tinyvae_shared::protocol::{
    encode_frame, ErrorCode, Request, Response, MAX_FRAME, MAX_PAYLOAD,
};

use super::{compare_with_host, model};

/// Frames sent before their replies are read: the round trip through the pty is paid
/// once per burst rather than once per request, and the firmware's receive ring holds
/// the line back while it works.
const BURST: usize = 8;

/// The bit depths Compress is checked at, image `i` at `BITS[i % 3]`: the coarsest,
/// a middle one and the finest.
const BITS: [u8; 3] = [1, 4, 8];

/// The images: 60 test digits and 60 digits with a simulated sensor fault (each kind of
/// `Corruption::ALL` in turn), away from the indices the other parity tests use.
fn images(width: usize, height: usize) -> Vec<(String, Vec<u8>)> {
    test_images(width, height, 300..360, 360..420, &[])
}

/// Sends `requests` in bursts of [`BURST`] and returns the replies in order.
fn exchange_all(device: &mut Device, requests: &[Request]) -> Vec<Response> {
    let mut replies = Vec::with_capacity(requests.len());
    let mut scratch = [0u8; MAX_PAYLOAD];
    let mut out = [0u8; MAX_FRAME];
    for burst in requests.chunks(BURST) {
        let mut bytes = Vec::new();
        for request in burst {
            let n = encode_frame(request, &mut scratch, &mut out).expect("request fits a frame");
            bytes.extend_from_slice(&out[..n]);
        }
        device.client.send_raw(&bytes).expect("send a burst");
        for _ in burst {
            let deadline = Instant::now() + REQUEST_TIMEOUT;
            let reply = device
                .client
                .read_response(deadline)
                .unwrap_or_else(|e| panic!("reply {}: {e}", replies.len()));
            replies.push(reply);
        }
    }
    replies
}

/// The median of a non-empty sample.
fn median(values: &mut [u64]) -> u64 {
    values.sort_unstable();
    values[values.len() / 2]
}

/// Fails with the first few `mismatches` out of `total` requests of `what`, if any.
fn assert_none_differ(mismatches: &[String], total: usize, what: &str) {
    assert!(
        mismatches.is_empty(),
        "{} of {total} {what} differ from the host; first: {:#?}",
        mismatches.len(),
        &mismatches[..mismatches.len().min(3)]
    );
}

pub(super) fn denoise_and_compress_match_the_host_bit_for_bit(core: Core) {
    let mut device = boot(core);
    let model = model();
    let mut ws = Workspace::new();
    let images = images(model.input_width, model.input_height);
    assert!(images.len() >= 100);

    let requests: Vec<Request> = images
        .iter()
        .map(|(_, image)| Request::Denoise {
            image: image.iter().copied().collect(),
        })
        .collect();
    let mut mismatches = Vec::new();
    for ((name, image), reply) in images.iter().zip(exchange_all(&mut device, &requests)) {
        let want = pipeline::denoise(&model, &mut ws, image).expect("host denoises");
        match reply {
            Response::Denoised(got) if got.image == want => {
                assert!(got.instructions > 0, "{name}: no instructions counted");
            }
            other => mismatches.push(format!("{name}: device {other:?}")),
        }
    }
    assert_none_differ(&mismatches, images.len(), "denoises");

    let requests: Vec<Request> = images
        .iter()
        .enumerate()
        .map(|(i, (_, image))| Request::Compress {
            image: image.iter().copied().collect(),
            bits: BITS[i % BITS.len()],
        })
        .collect();
    for (i, ((name, image), reply)) in images
        .iter()
        .zip(exchange_all(&mut device, &requests))
        .enumerate()
    {
        let bits = BITS[i % BITS.len()];
        let want = pipeline::compress(&model, &mut ws, image, bits).expect("host compresses");
        match reply {
            Response::Compressed(got) if got.code == want && got.bits == bits => {
                assert!(got.instructions > 0, "{name}: no instructions counted");
                assert_eq!(got.code.len(), code::code_len(model.latent, bits));
            }
            other => mismatches.push(format!("{name} at {bits} bits: device {other:?}")),
        }
    }
    assert_none_differ(&mismatches, images.len(), "compresses");

    // The instruction counts, one request at a time: every 4th image (15 clean digits,
    // 15 faulted), denoised and compressed at each depth.
    let mut denoise_counts = Vec::new();
    let mut compress_counts: [Vec<u64>; 3] = Default::default();
    for (_, image) in images.iter().step_by(4) {
        denoise_counts.push(device.client.denoise(image).expect("denoise").instructions);
        for (bits, counts) in BITS.iter().zip(&mut compress_counts) {
            let got = device.client.compress(image, *bits).expect("compress");
            counts.push(got.instructions);
        }
    }
    println!(
        "{core:?}: denoise, median {} instructions over {} images",
        median(&mut denoise_counts),
        denoise_counts.len()
    );
    for (bits, counts) in BITS.iter().zip(&mut compress_counts) {
        println!(
            "{core:?}: compress at {bits} bits, median {} instructions over {} images",
            median(counts),
            counts.len()
        );
    }

    // A bit depth outside 1..=8 is refused with the range, and the device carries on.
    for bits in [0u8, 9] {
        match device.client.compress(&images[0].1, bits) {
            Err(tinyvae_e2e::serial::SerialError::Device(ErrorCode::WrongCodeBits {
                min: 1,
                max: 8,
                got,
            })) if got == bits => {}
            other => panic!("Compress at {bits} bits got {other:?}"),
        }
    }
    let stats = device.client.stats().expect("Stats");
    let n = images.len() as u32;
    let timed = images.len().div_ceil(4) as u32;
    let (n_denoised, n_compressed) = (n + timed, n + 3 * timed);
    assert_eq!(
        (stats.denoised, stats.compressed, stats.errors),
        (n_denoised, n_compressed, 2),
        "the device's counters"
    );
    let info = device.client.info().expect("Info");
    println!(
        "{core:?}: stack high-water {} B after the denoises and compresses ({} B static RAM)",
        info.stack_high_water, info.ram_static
    );
}

/// Sends `request`, dumps the screen and compares it with `want`, up to three times
/// (the idle demo may replace the screen on a stalled machine; a real difference
/// fails every attempt).
fn screen_matches(device: &mut Device, core: Core, request: &Request, want: &FrameBuffer) {
    let dir = workspace_root().join("target/e2e-screens");
    std::fs::create_dir_all(&dir).expect("screens folder");
    let mut failures = Vec::new();
    for attempt in 0..3 {
        let reply = device.client.request(request).expect("reply");
        assert!(
            matches!(reply, Response::Denoised(_) | Response::Compressed(_)),
            "{reply:?}"
        );
        let dump = dir.join(format!(
            "transform-{core:?}-{attempt}-{}.png",
            std::process::id()
        ));
        device
            .emulator
            .screendump(&dump)
            .unwrap_or_else(|e| panic!("screendump: {e}"));
        let (differing, _) = compare_with_host(&dump, want);
        if differing.is_empty() {
            let _ = std::fs::remove_file(&dump);
            return;
        }
        failures.push(format!(
            "{}: {} pixels differ",
            dump.display(),
            differing.len()
        ));
    }
    panic!("the OLED never matched the host rendering: {failures:#?}");
}

/// The screens Denoise and Compress leave on the OLED are the host's renderings of
/// the same replies, pixel for pixel.
pub(super) fn denoise_and_compress_screens_match_the_host_rendering(core: Core) {
    let mut device = boot(core);
    let model = model();
    let mut ws = Workspace::new();
    let (w, h) = (model.input_width, model.input_height);
    // A faulted digit: the screen shows the fault beside the cleaned image.
    let (_, faulted) = &images(w, h)[61];
    let cleaned = pipeline::denoise(&model, &mut ws, faulted).expect("host denoises");
    let mut want = FrameBuffer::new();
    screen::draw_denoised(&mut want, faulted, &cleaned, w, h);
    let request = Request::Denoise {
        image: faulted.iter().copied().collect(),
    };
    screen_matches(&mut device, core, &request, &want);

    let code = pipeline::compress(&model, &mut ws, faulted, 8).expect("host compresses");
    let mut want = FrameBuffer::new();
    screen::draw_compressed(&mut want, faulted, w, h, &code);
    let request = Request::Compress {
        image: faulted.iter().copied().collect(),
        bits: 8,
    };
    screen_matches(&mut device, core, &request, &want);
}
