//! The app's request loop on the host: an in-memory serial line, a frame-buffer
//! display and a counter that advances a fixed amount per call stand in for the board.
//! Every reply is checked against the host's run of the same shared code, and every
//! screen against the host's rendering of it.

use tinyvae_app::idle::{DemoStep, Idle, IdleScreen, DEMO_FRAMES, DEMO_FRAME_EVERY, DEMO_SAMPLES};
use tinyvae_app::testing::{self, Counter, Line, Memory, Panel, PAUSE, STEP};
use tinyvae_app::walk::Walk;
use tinyvae_app::{draw_boot_screen, App, Buffers, IDLE_AFTER, MODEL_IMAGE};
use tinyvae_screens::{self as screen, FrameBuffer};
use tinyvae_shared::demo_frames::DemoFrames;
use tinyvae_shared::detect::{Calibrator, DetectorParams};
use tinyvae_shared::fixed::Q16_ONE;
use tinyvae_shared::model::Model;
use tinyvae_shared::pipeline::{self, Workspace};
use tinyvae_shared::protocol::{
    decode_frame, encode_frame, ErrorCode, Latent, Pixels, Request, Response, FRAME_CRC, MAX_FRAME,
    MAX_PAYLOAD, PROTOCOL_VERSION,
};

type TestApp = App<'static, Line, Panel, Counter, Memory>;

fn model() -> Model<'static> {
    Model::parse(MODEL_IMAGE).expect("the embedded model parses")
}

fn app_with(model: Option<Model<'static>>) -> TestApp {
    App::new(model, Box::leak(Box::new(Buffers::new())), testing::parts())
}

fn app() -> TestApp {
    app_with(Some(model()))
}

fn frame(request: &Request) -> Vec<u8> {
    let mut scratch = [0u8; MAX_PAYLOAD];
    let mut out = [0u8; MAX_FRAME];
    let n = encode_frame(request, &mut scratch, &mut out).expect("request fits a frame");
    out[..n].to_vec()
}

/// Sends `bytes`, runs the loop until they are consumed, and returns every reply.
fn exchange(app: &mut TestApp, bytes: &[u8]) -> Vec<Response> {
    app.parts_mut().serial.input.extend(bytes);
    while !app.parts().serial.input.is_empty() {
        assert!(app.poll(), "bytes waiting but none taken");
    }
    let output = std::mem::take(&mut app.parts_mut().serial.output);
    let mut replies = Vec::new();
    let mut bodies: Vec<&[u8]> = output.split(|&b| b == 0).collect();
    assert_eq!(bodies.pop(), Some(&[][..]), "output ends with a terminator");
    for body in bodies {
        let mut body = body.to_vec();
        replies.push(decode_frame::<Response>(&mut body).expect("the app sends valid frames"));
    }
    replies
}

fn request(app: &mut TestApp, request: &Request) -> Response {
    let mut replies = exchange(app, &frame(request));
    assert_eq!(replies.len(), 1, "one reply per request: {replies:?}");
    replies.remove(0)
}

fn digit(seed: u32) -> Pixels {
    let mut rng = tinyvae_shared::rng::Rng::new(u64::from(seed));
    (0..784i32)
        .map(|i| {
            let (x, y) = (i % 28, i / 28);
            let ring = (x - 14).pow(2) + (y - 14).pow(2);
            if (40..90).contains(&ring) {
                200 + (rng.next_u32() % 56) as u8
            } else {
                (rng.next_u32() % 30) as u8
            }
        })
        .collect()
}

#[test]
fn boot_screen_is_shown_at_start() {
    let app = app();
    let m = model();
    let mut want = FrameBuffer::new();
    screen::draw_boot(&mut want, m.name(), 28, 28, 16, m.parameters(), m.hash);
    assert_eq!(app.parts().display.flushes, 1);
    assert!(app.parts().display.shown == want, "boot screen differs");
    assert!(
        app.parts().serial.output.is_empty(),
        "nothing but frames on the line"
    );
}

#[test]
fn info_describes_the_model_and_the_board() {
    let mut app = app();
    let m = model();
    let Response::Info(info) = request(&mut app, &Request::Info) else {
        panic!("Info expected");
    };
    assert_eq!(info.protocol_version, PROTOCOL_VERSION);
    assert_eq!(info.model_name.as_str(), m.name());
    assert_eq!(info.model_hash, m.hash);
    assert_eq!(usize::from(info.input_width), m.input_width);
    assert_eq!(usize::from(info.latent), m.latent);
    assert_eq!(info.parameters as usize, m.parameters());
    assert_eq!(info.threshold, m.threshold);
    assert_eq!(info.firmware_version.as_str(), env!("CARGO_PKG_VERSION"));
    assert_eq!(
        (info.flash_used, info.ram_static, info.stack_high_water),
        (150_000, 15_000, 4_000)
    );
}

#[test]
fn encode_matches_the_host_and_shows_the_verdict() {
    let mut app = app();
    let m = model();
    let mut ws = Workspace::new();
    for seed in 0..3 {
        let image = digit(seed);
        let Response::Encoded(got) = request(
            &mut app,
            &Request::Encode {
                image: image.clone(),
            },
        ) else {
            panic!("Encoded expected");
        };
        let want = pipeline::score_image(&m, &mut ws, &image, m.threshold).expect("host scores");
        assert_eq!(got.mu, want.posterior.mu);
        assert_eq!(got.logvar, want.posterior.logvar);
        assert_eq!(got.score, want.score);
        // The measured window is the pipeline call alone: one counter reading in, one out.
        assert_eq!(got.instructions, STEP);
        let mut screen_want = FrameBuffer::new();
        screen::draw_scored(
            &mut screen_want,
            &image,
            &want.reconstruction,
            28,
            28,
            &want.score,
        );
        assert!(
            app.parts().display.shown == screen_want,
            "scored screen differs"
        );
    }
    let stats = app.stats();
    assert_eq!((stats.frames, stats.scored, stats.errors), (3, 3, 0));
    assert_eq!(stats.instructions, 3 * STEP);

    // Reconstruct: decoder(mu) with the same score; a new threshold flips the verdict.
    let image = digit(9);
    let Response::ThresholdSet { threshold: 0 } =
        request(&mut app, &Request::SetThreshold { threshold: 0 })
    else {
        panic!("ThresholdSet expected");
    };
    let Response::Reconstructed(got) = request(
        &mut app,
        &Request::Reconstruct {
            image: image.clone(),
        },
    ) else {
        panic!("Reconstructed expected");
    };
    let want = pipeline::score_image(&m, &mut ws, &image, 0).expect("host scores");
    assert_eq!(got.image, want.reconstruction);
    assert_eq!(got.score, want.score);
    assert!(got.score.anomalous);
}

/// Encodes the digits of `seeds` on the app under a calibration and feeds the host's
/// twin `host` the same frames; each must be judged by `in_force` (the detector in
/// force before). Returns what the twin set, once its frames are all in.
fn feed(
    app: &mut TestApp,
    m: &Model<'_>,
    mut host: Calibrator,
    seeds: std::ops::Range<u32>,
    in_force: Option<&DetectorParams>,
) -> Option<DetectorParams> {
    let mut ws = Workspace::new();
    let mut set = None;
    for seed in seeds {
        let image = digit(seed);
        let Response::Encoded(got) = request(
            app,
            &Request::Encode {
                image: image.clone(),
            },
        ) else {
            panic!("Encoded expected");
        };
        let want = pipeline::score_image_with(m, &mut ws, &image, m.threshold, in_force)
            .expect("host scores");
        assert_eq!(
            got.score, want.score,
            "judged by the detector in force before"
        );
        set = host.add(&want.terms).or(set);
    }
    set
}

#[test]
fn calibrate_sets_the_detector_the_host_calibrator_sets() {
    let mut app = app();
    let m = model();
    let mut ws = Workspace::new();
    let shipped = m.detector();
    assert!(shipped.is_some(), "the embedded model carries a detector");
    let state = |app: &mut TestApp| match request(app, &Request::Detector) {
        Response::Detector(state) => state,
        other => panic!("Detector expected, got {other:?}"),
    };
    assert_eq!(state(&mut app).params, shipped);
    let Response::Calibrating { frames: 6 } = request(&mut app, &Request::Calibrate { frames: 6 })
    else {
        panic!("Calibrating expected");
    };
    assert_eq!(state(&mut app).calibration_left, 6);
    let calibrated = feed(&mut app, &m, Calibrator::new(6), 10..16, shipped.as_ref())
        .expect("six frames finish the calibration");
    let now = state(&mut app);
    assert_eq!((now.params, now.calibration_left), (Some(calibrated), 0));
    // What follows is judged by the calibrated detector, and counted by its verdict.
    let anomalies = app.stats().anomalies;
    let image = digit(20);
    let Response::Reconstructed(got) = request(
        &mut app,
        &Request::Reconstruct {
            image: image.clone(),
        },
    ) else {
        panic!("Reconstructed expected");
    };
    let want = pipeline::score_image_with(&m, &mut ws, &image, m.threshold, Some(&calibrated))
        .expect("host scores");
    assert_eq!(got.score, want.score);
    assert_eq!(
        app.stats().anomalies,
        anomalies + u32::from(want.score.flagged())
    );
    // 0 cancels (nothing under way: nothing changes); the calibration stays in force.
    let Response::Calibrating { frames: 0 } = request(&mut app, &Request::Calibrate { frames: 0 })
    else {
        panic!("Calibrating expected");
    };
    assert_eq!(state(&mut app).params, Some(calibrated));

    // The threshold alone: the calibrated terms stay, the threshold is the twin's.
    let Response::Calibrating { frames: 4 } =
        request(&mut app, &Request::CalibrateThreshold { frames: 4 })
    else {
        panic!("Calibrating expected");
    };
    let mut host = Calibrator::idle();
    host.start_threshold(4, Some(calibrated));
    let thresholded = feed(&mut app, &m, host, 30..34, Some(&calibrated))
        .expect("four frames finish the threshold calibration");
    assert_eq!(state(&mut app).params, Some(thresholded));
    assert_eq!(thresholded.terms, calibrated.terms);
}

#[test]
fn generate_and_decode_match_the_host() {
    let mut app = app();
    let m = model();
    let mut ws = Workspace::new();
    let Response::Generated(got) = request(
        &mut app,
        &Request::Generate {
            seed: 42,
            temperature: Q16_ONE,
        },
    ) else {
        panic!("Generated expected");
    };
    let (z, image) = pipeline::generate(&m, &mut ws, 42, Q16_ONE).expect("host generates");
    assert_eq!((got.z, &got.image), (z, &image));
    let mut want = FrameBuffer::new();
    screen::draw_generated(&mut want, &image, 28, 28, 42);
    assert!(
        app.parts().display.shown == want,
        "generated screen differs"
    );

    let z: Latent = pipeline::prior_sample(m.latent, 7, Q16_ONE);
    let Response::Generated(got) = request(&mut app, &Request::Decode { z: z.clone() }) else {
        panic!("Generated expected");
    };
    assert_eq!(
        got.image,
        pipeline::decode(&m, &mut ws, &z).expect("host decodes")
    );
    let Response::Stats(stats) = request(&mut app, &Request::Stats) else {
        panic!("Stats expected");
    };
    assert_eq!((stats.generated, stats.frames), (2, 3));
}

#[test]
fn denoise_and_compress_match_the_host() {
    let mut app = app();
    let m = model();
    let mut ws = Workspace::new();
    for seed in 0..3 {
        let image = digit(seed);
        let Response::Denoised(got) = request(
            &mut app,
            &Request::Denoise {
                image: image.clone(),
            },
        ) else {
            panic!("Denoised expected");
        };
        let want = pipeline::denoise(&m, &mut ws, &image).expect("host denoises");
        assert_eq!(got.image, want);
        assert_eq!(got.instructions, STEP);
        let mut screen_want = FrameBuffer::new();
        screen::draw_denoised(&mut screen_want, &image, &want, 28, 28);
        assert!(
            app.parts().display.shown == screen_want,
            "denoised screen differs"
        );
    }
    for (i, bits) in [1u8, 3, 8].into_iter().enumerate() {
        let image = digit(10 + i as u32);
        let Response::Compressed(got) = request(
            &mut app,
            &Request::Compress {
                image: image.clone(),
                bits,
            },
        ) else {
            panic!("Compressed expected");
        };
        let want = pipeline::compress(&m, &mut ws, &image, bits).expect("host compresses");
        assert_eq!((&got.code, got.bits), (&want, bits));
        assert_eq!(got.code.len(), (m.latent * usize::from(bits)).div_ceil(8));
        assert_eq!(got.instructions, STEP);
        let mut screen_want = FrameBuffer::new();
        screen::draw_compressed(&mut screen_want, &image, 28, 28, &want);
        assert!(
            app.parts().display.shown == screen_want,
            "compressed screen differs"
        );
    }
    // A bit depth outside 1..=8 is an error frame naming the range, and counts as an
    // error, not as a compressed image; so is a wrong-sized image.
    for bits in [0u8, 9, 255] {
        assert_eq!(
            request(
                &mut app,
                &Request::Compress {
                    image: digit(0),
                    bits
                }
            ),
            Response::Error(ErrorCode::WrongCodeBits {
                min: 1,
                max: 8,
                got: bits
            })
        );
    }
    let short: Pixels = (0..10).collect();
    assert_eq!(
        request(&mut app, &Request::Denoise { image: short }),
        Response::Error(ErrorCode::WrongImageSize {
            expected: 784,
            got: 10
        })
    );
    let stats = app.stats();
    assert_eq!(
        (stats.frames, stats.errors, stats.denoised, stats.compressed),
        (10, 4, 3, 3)
    );
    assert_eq!((stats.scored, stats.generated), (0, 0));
    assert_eq!(stats.instructions, 6 * STEP);
}

#[test]
fn wrong_sizes_are_refused() {
    let mut app = app();
    let short: Pixels = (0..10).collect();
    assert_eq!(
        request(&mut app, &Request::Encode { image: short }),
        Response::Error(ErrorCode::WrongImageSize {
            expected: 784,
            got: 10
        })
    );
    let z: Latent = (0..3).collect();
    assert_eq!(
        request(&mut app, &Request::Decode { z }),
        Response::Error(ErrorCode::WrongLatentSize {
            expected: 16,
            got: 3
        })
    );
}

#[test]
fn garbage_frames_each_get_one_error() {
    let mut app = app();
    let mut rng = tinyvae_shared::rng::Rng::new(0x6a7b);
    // A lone terminator: an empty frame.
    assert_eq!(
        exchange(&mut app, &[0]),
        [Response::Error(ErrorCode::EmptyFrame)]
    );
    // A valid message with its CRC flipped.
    let mut bad = frame(&Request::Info);
    let mut payload = vec![0u8; 16];
    let n = {
        let mut scratch = [0u8; 16];
        let body = postcard::to_slice(&Request::Info, &mut scratch).expect("fits");
        payload[..body.len()].copy_from_slice(body);
        body.len()
    };
    let crc = FRAME_CRC.checksum(&payload[..n]) ^ 1;
    payload.truncate(n);
    payload.extend_from_slice(&crc.to_le_bytes());
    bad.clear();
    bad.resize(payload.len() + 2, 0);
    let len = cobs::encode(&payload, &mut bad);
    bad.truncate(len);
    bad.push(0);
    assert_eq!(
        exchange(&mut app, &bad),
        [Response::Error(ErrorCode::BadCrc)]
    );
    // Random non-zero bytes: some error each, never a reply of another kind.
    for _ in 0..200 {
        let n = 1 + rng.next_u32() as usize % 300;
        let mut garbage: Vec<u8> = (0..n).map(|_| 1 + (rng.next_u32() % 255) as u8).collect();
        garbage.push(0);
        let replies = exchange(&mut app, &garbage);
        assert!(
            matches!(replies.as_slice(), [Response::Error(_)]),
            "{n} random bytes got {replies:?}"
        );
    }
    // Truncated requests.
    let full = frame(&Request::Encode { image: digit(1) });
    for keep in [1, 2, 5, 100, full.len() - 2] {
        let mut cut = full[..keep].to_vec();
        cut.push(0);
        let replies = exchange(&mut app, &cut);
        assert!(
            matches!(replies.as_slice(), [Response::Error(_)]),
            "cut at {keep}: {replies:?}"
        );
    }
    let stats = app.stats();
    assert_eq!(stats.errors, stats.frames);
    assert_eq!(stats.frames, 2 + 200 + 5);
    // And the app still serves.
    assert!(matches!(
        request(&mut app, &Request::Info),
        Response::Info(_)
    ));
}

#[test]
fn an_over_long_frame_gets_one_error_then_the_line_resyncs() {
    let mut app = app();
    let mut bytes = vec![0x55u8; MAX_FRAME + 700];
    bytes.push(0);
    bytes.extend(frame(&Request::Stats));
    let replies = exchange(&mut app, &bytes);
    assert_eq!(replies.len(), 2, "{replies:?}");
    assert_eq!(replies[0], Response::Error(ErrorCode::FrameTooLong));
    let Response::Stats(stats) = &replies[1] else {
        panic!("Stats expected, got {:?}", replies[1]);
    };
    assert_eq!((stats.frames, stats.errors), (2, 1));
}

#[test]
fn requests_sent_back_to_back_are_answered_in_order() {
    let mut app = app();
    let mut bytes = frame(&Request::Stats);
    bytes.extend(frame(&Request::SetThreshold { threshold: 5 }));
    bytes.extend(frame(&Request::Info));
    let replies = exchange(&mut app, &bytes);
    assert!(matches!(
        replies.as_slice(),
        [Response::Stats(_), Response::ThresholdSet { threshold: 5 }, Response::Info(i)] if i.threshold == 5
    ));
}

/// The host's rendering of the demo's step.
fn demo_screen(m: &Model<'_>, step: DemoStep<'_>) -> FrameBuffer {
    let mut want = FrameBuffer::new();
    let ws = &mut Workspace::new();
    match step {
        DemoStep::Score { caption, pixels } => {
            let scored = pipeline::score_image(m, ws, pixels, m.threshold).expect("scores");
            let (r, report) = (&scored.reconstruction, &scored.score);
            screen::draw_demo_scored(&mut want, pixels, r, 28, 28, report, caption);
        }
        DemoStep::Generate { seed } => {
            let (_, image) = pipeline::generate(m, ws, seed, Q16_ONE).expect("generates");
            screen::draw_generated(&mut want, &image, 28, 28, seed);
        }
    }
    want
}

/// Polls until the display flushes once more; returns the polls it took.
fn poll_until_flush(app: &mut TestApp) -> u64 {
    let flushes = app.parts().display.flushes;
    let mut polls = 0;
    while app.parts().display.flushes == flushes {
        app.poll();
        polls += 1;
        assert!(polls < 10_000_000, "no idle frame");
    }
    assert_eq!(app.parts().display.flushes, flushes + 1);
    polls
}

#[test]
fn the_demo_starts_after_a_quiet_spell_and_yields_to_the_host() {
    let mut app = app();
    let m = model();
    let boot_flushes = app.parts().display.flushes;
    // Just short of the idle time: still the boot screen.
    let polls_to_idle = IDLE_AFTER / (STEP + PAUSE);
    for _ in 0..polls_to_idle - 2 {
        app.poll();
    }
    assert_eq!(app.parts().display.flushes, boot_flushes);
    for _ in 0..4 {
        app.poll();
    }
    assert_eq!(
        app.parts().display.flushes,
        boot_flushes + 1,
        "one demo frame"
    );
    assert_eq!(app.idle_screen(), Some(IdleScreen::Demo));
    let mut idle = Idle::new(m.latent, 28, 28);
    assert!(
        app.parts().display.shown == demo_screen(&m, idle.next_demo_step()),
        "the first demo frame differs"
    );
    // A second frame, then the host speaks: served at once.
    poll_until_flush(&mut app);
    assert!(matches!(
        request(&mut app, &Request::Stats),
        Response::Stats(_)
    ));
    // The next quiet spell starts the demo from its first frame again.
    poll_until_flush(&mut app);
    let mut idle = Idle::new(m.latent, 28, 28);
    assert!(
        app.parts().display.shown == demo_screen(&m, idle.next_demo_step()),
        "the demo did not restart"
    );
}

#[test]
fn the_demo_scores_its_frames_then_generates_in_rounds() {
    let mut app = app();
    let m = model();
    let mut idle = Idle::new(m.latent, 28, 28);
    let round = DemoFrames::parse(DEMO_FRAMES).map_or(0, |f| f.len()) as u64 + DEMO_SAMPLES;
    let mut verdicts = Vec::new();
    for i in 0..round + 2 {
        let polls = poll_until_flush(&mut app);
        if i > 0 {
            // One frame every DEMO_FRAME_EVERY instructions, give or take a poll.
            let instructions = polls * (STEP + PAUSE);
            assert!(
                instructions.abs_diff(DEMO_FRAME_EVERY) < 4 * (STEP + PAUSE) + 4 * STEP,
                "frame {i} came after {instructions} instructions"
            );
        }
        let step = idle.next_demo_step();
        if let DemoStep::Score { pixels, .. } = step {
            let scored = pipeline::score_image(&m, &mut Workspace::new(), pixels, m.threshold)
                .expect("scores");
            verdicts.push(scored.score.anomalous);
        }
        assert!(
            app.parts().display.shown == demo_screen(&m, step),
            "demo screen {i} differs"
        );
    }
    // The demo's own frames are not requests: no counter moved.
    let Response::Stats(stats) = request(&mut app, &Request::Stats) else {
        panic!("Stats expected");
    };
    assert_eq!((stats.scored, stats.generated), (0, 0));
    // A demo worth watching shows both verdicts.
    assert!(
        verdicts.contains(&true) && verdicts.contains(&false),
        "{verdicts:?}"
    );
}

#[test]
fn the_button_switches_to_the_walk_at_once_and_back() {
    let mut app = app();
    let m = model();
    // Busy with the host a moment ago.
    assert!(matches!(
        request(&mut app, &Request::Stats),
        Response::Stats(_)
    ));
    app.next_idle_screen();
    assert_eq!(app.idle_screen(), Some(IdleScreen::Walk));
    assert_eq!(poll_until_flush(&mut app), 1, "shown at the next poll");
    let mut walk = Walk::new(m.latent);
    let (z, step) = walk.next_point();
    let image = pipeline::decode(&m, &mut Workspace::new(), &z).expect("host decodes");
    let mut want = FrameBuffer::new();
    screen::draw_walk(&mut want, &image, 28, 28, step);
    assert!(app.parts().display.shown == want, "walk frame differs");
    app.next_idle_screen();
    assert_eq!(app.idle_screen(), Some(IdleScreen::Demo));
    assert_eq!(poll_until_flush(&mut app), 1);
    let mut idle = Idle::new(m.latent, 28, 28);
    assert!(app.parts().display.shown == demo_screen(&m, idle.next_demo_step()));
}

#[test]
fn without_a_model_every_inference_is_refused() {
    let mut app = app_with(None);
    let mut boot = FrameBuffer::new();
    draw_boot_screen(&mut boot, None);
    assert!(
        app.parts().display.shown == boot,
        "boot screen of a missing model"
    );
    let Response::Info(info) = request(&mut app, &Request::Info) else {
        panic!("Info expected");
    };
    assert_eq!((info.input_width, info.latent, info.model_hash), (0, 0, 0));
    assert_eq!(
        request(&mut app, &Request::Encode { image: digit(0) }),
        Response::Error(ErrorCode::WrongImageSize {
            expected: 0,
            got: 784
        })
    );
    assert_eq!(
        request(
            &mut app,
            &Request::Generate {
                seed: 1,
                temperature: Q16_ONE
            }
        ),
        Response::Error(ErrorCode::WrongLatentSize {
            expected: 0,
            got: 0
        })
    );
}
