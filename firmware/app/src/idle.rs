//! What a board shows when no host talks to it: the stand-alone demo or the latent
//! walk, switched by the board's button ([`crate::App::next_idle_screen`]).
//!
//! The demo lets a board flashed with nothing but the default model show the whole
//! product by itself. Each round it scores the frames compiled into flash
//! ([`DEMO_FRAMES`]: clean test digits, then the same kind of digits with a sensor
//! fault, each captioned with what it really is) against the device's current
//! threshold, shows each verdict, then generates [`DEMO_SAMPLES`] images from the
//! prior. The walk ([`crate::walk`]) morphs one generated digit into the next.

use tinyvae_shared::demo_frames::DemoFrames;

use crate::walk::Walk;

/// The stand-alone demo's frames, written by `tinyvae_datasets::demo_frames` (the
/// format is `tinyvae_shared::demo_frames`).
pub static DEMO_FRAMES: &[u8] = include_bytes!("../demo-frames.bin");

/// Samples generated after the demo frames, per round.
pub const DEMO_SAMPLES: u64 = 4;
/// Seed of the first demo sample; the k-th of a round uses `DEMO_SEED + k`, so every
/// round shows the same samples, as the host would generate them.
pub const DEMO_SEED: u64 = 0x6465_6D6F; // "demo"
/// Instructions from one demo screen to the next: long enough to read a verdict (a
/// second or two on a 100 MHz part or under QEMU).
pub const DEMO_FRAME_EVERY: u64 = 150_000_000;

/// The idle screens, in button order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdleScreen {
    /// Score the built-in frames, then generate samples.
    Demo,
    /// Walk through latent space.
    Walk,
}

impl IdleScreen {
    /// The screen the button switches to.
    pub fn next(self) -> Self {
        match self {
            IdleScreen::Demo => IdleScreen::Walk,
            IdleScreen::Walk => IdleScreen::Demo,
        }
    }
}

/// One step of the demo.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DemoStep<'a> {
    /// Score a built-in frame.
    Score {
        /// What the frame really is.
        caption: &'a str,
        /// Its pixels.
        pixels: &'a [u8],
    },
    /// Generate from the prior with this seed.
    Generate {
        /// The sampler's seed.
        seed: u64,
    },
}

/// Where the idle screens are.
pub struct Idle {
    screen: IdleScreen,
    /// The built-in frames that fit the model (none if the file does not parse or
    /// its images are not the model's size).
    frames: Option<DemoFrames<'static>>,
    /// The next demo step, counted from the round's start.
    demo_step: usize,
    walk: Walk,
}

impl Idle {
    /// Idle screens for a model of `latent` dimensions taking `width` x `height`
    /// images, starting with the demo.
    pub fn new(latent: usize, width: usize, height: usize) -> Self {
        let frames = DemoFrames::parse(DEMO_FRAMES).filter(|f| f.size() == (width, height));
        Self {
            screen: IdleScreen::Demo,
            frames,
            demo_step: 0,
            walk: Walk::new(latent),
        }
    }

    /// The screen being shown.
    pub fn screen(&self) -> IdleScreen {
        self.screen
    }

    /// Switches to the next screen; the demo restarts from its first frame.
    pub fn next_screen(&mut self) {
        self.screen = self.screen.next();
        self.demo_step = 0;
    }

    /// Starts the demo's round again from its first frame: each quiet spell after the
    /// host has spoken begins with the built-in frames, not wherever the last one
    /// stopped.
    pub fn restart_demo(&mut self) {
        self.demo_step = 0;
    }

    /// Instructions from one frame of the current screen to the next.
    pub fn frame_every(&self) -> u64 {
        match self.screen {
            IdleScreen::Demo => DEMO_FRAME_EVERY,
            IdleScreen::Walk => crate::WALK_FRAME_EVERY,
        }
    }

    /// The walk.
    pub fn walk(&mut self) -> &mut Walk {
        &mut self.walk
    }

    /// The demo's next step.
    pub fn next_demo_step(&mut self) -> DemoStep<'static> {
        let scored = self.frames.map_or(0, |f| f.len());
        let round = scored + DEMO_SAMPLES as usize;
        let step = self.demo_step % round;
        self.demo_step = (step + 1) % round;
        match self.frames.and_then(|f| f.get(step)) {
            Some((caption, pixels)) => DemoStep::Score { caption, pixels },
            None => DemoStep::Generate {
                seed: DEMO_SEED.wrapping_add((step - scored.min(step)) as u64),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_round_scores_every_frame_then_generates() {
        let mut idle = Idle::new(16, 28, 28);
        let frames = DemoFrames::parse(DEMO_FRAMES).expect("the built-in frames parse");
        assert_eq!(frames.len(), 8);
        for round in 0..2 {
            for i in 0..frames.len() {
                let want = frames
                    .get(i)
                    .map(|(caption, pixels)| DemoStep::Score { caption, pixels });
                assert_eq!(Some(idle.next_demo_step()), want, "round {round} frame {i}");
            }
            for k in 0..DEMO_SAMPLES {
                assert_eq!(
                    idle.next_demo_step(),
                    DemoStep::Generate {
                        seed: DEMO_SEED + k
                    }
                );
            }
        }
    }

    #[test]
    fn frames_of_another_size_are_left_out() {
        let mut idle = Idle::new(16, 32, 32);
        for k in 0..2 * DEMO_SAMPLES {
            assert_eq!(
                idle.next_demo_step(),
                DemoStep::Generate {
                    seed: DEMO_SEED + k % DEMO_SAMPLES
                }
            );
        }
    }

    #[test]
    fn the_button_cycles_and_restarts_the_demo() {
        let mut idle = Idle::new(16, 28, 28);
        let first = idle.next_demo_step();
        idle.next_screen();
        assert_eq!(idle.screen(), IdleScreen::Walk);
        idle.next_screen();
        assert_eq!(idle.screen(), IdleScreen::Demo);
        assert_eq!(idle.next_demo_step(), first);
    }
}
