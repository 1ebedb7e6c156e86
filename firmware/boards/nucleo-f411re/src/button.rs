//! The user button B1 (PC13, low while pressed; the board has its own pull-up and a
//! 100 nF capacitor), polled from the main loop and debounced by counting samples.
//!
//! Polled rather than interrupt-driven: the app runs a blocking loop anyway, and a
//! press only has to take effect between two requests, so an EXTI handler would add a
//! second context for nothing.

use cortex_m::peripheral::DWT;
use stm32f4xx_hal::gpio::{Input, PC13};

/// Cycles between two samples: 1 ms at 100 MHz. The main loop comes by every 20 µs
/// when idle, but only every ~30 ms while it serves a request or draws a walk frame
/// (the OLED's flush): sampling by time, not by loop turn, keeps the debounce in
/// milliseconds either way.
const SAMPLE_EVERY_CYCLES: u32 = 100_000;
/// Consecutive samples that must agree before a change counts: 10 ms or more, longer
/// than the button's bounce.
const STABLE_SAMPLES: u8 = 10;

/// B1, debounced.
pub struct Button {
    pin: PC13<Input>,
    /// `CYCCNT` at the last sample.
    last_sample: u32,
    /// The debounced state: pressed or not.
    pressed: bool,
    /// Consecutive samples that disagreed with `pressed`.
    differing: u8,
}

impl Button {
    /// Debounces `pin`, starting released. Needs the DWT cycle counter running.
    pub fn new(pin: PC13<Input>) -> Self {
        Self {
            pin,
            last_sample: DWT::cycle_count(),
            pressed: false,
            differing: 0,
        }
    }

    /// Samples the button if a sample is due; true once per press, when it has been
    /// down for [`STABLE_SAMPLES`] samples in a row.
    pub fn was_pressed(&mut self) -> bool {
        let now = DWT::cycle_count();
        if now.wrapping_sub(self.last_sample) < SAMPLE_EVERY_CYCLES {
            return false;
        }
        self.last_sample = now;
        let down = self.pin.is_low();
        if down == self.pressed {
            self.differing = 0;
            return false;
        }
        self.differing += 1;
        if self.differing < STABLE_SAMPLES {
            return false;
        }
        self.differing = 0;
        self.pressed = down;
        down
    }
}
