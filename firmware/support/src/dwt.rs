//! A 64-bit cycle counter from the DWT's `CYCCNT`, for Cortex-M3/M4/M7 parts.
//!
//! `CYCCNT` counts core cycles in 32 bits: at 100 MHz it wraps every 43 seconds, far
//! longer than any request, but not than the idle timer. [`Clock::now`] extends it to
//! 64 bits by noticing wraps between two reads (the app reads the clock at least once
//! a poll, far more often than every 43 s). QEMU does not emulate the DWT: the
//! emulated board uses [`crate::systick`] instead.

use cortex_m::peripheral::{DCB, DWT};
use tinyvae_app::InstructionCounter;

/// Cycles the idle loop spends between two polls of the line.
const IDLE_SPIN: u32 = 2_000;

/// The 64-bit cycle clock.
pub struct Clock {
    /// Cycles before the last 32-bit value read.
    high: u64,
    /// The last 32-bit value read.
    last: u32,
    /// Where the current measurement began.
    measure_from: u64,
}

impl Clock {
    /// Enables the trace unit and starts `CYCCNT` from zero.
    pub fn start(dcb: &mut DCB, dwt: &mut DWT) -> Self {
        dcb.enable_trace();
        // Some parts lock the DWT until the software lock access register is written.
        DWT::unlock();
        dwt.set_cycle_count(0);
        dwt.enable_cycle_counter();
        Self {
            high: 0,
            last: 0,
            measure_from: 0,
        }
    }
}

impl InstructionCounter for Clock {
    /// Cycles since [`Clock::start`].
    fn now(&mut self) -> u64 {
        let current = DWT::cycle_count();
        if current < self.last {
            self.high += 1 << 32;
        }
        self.last = current;
        self.high + current as u64
    }

    fn start_measurement(&mut self) {
        self.measure_from = self.now();
    }

    fn measured(&mut self) -> u64 {
        self.now().wrapping_sub(self.measure_from)
    }

    fn pause(&mut self) {
        cortex_m::asm::delay(IDLE_SPIN);
    }
}
