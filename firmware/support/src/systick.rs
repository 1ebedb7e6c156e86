//! A 64-bit counter from SysTick, for parts and emulators without a cycle counter.
//!
//! SysTick counts the core clock down in 24 bits and raises its exception on each
//! wrap; the exception counts the wraps for a 64-bit clock. What a tick is worth is the
//! board's to say ([`Clock::start`]'s `per_tick`):
//!
//! * QEMU does not emulate the DWT cycle counter, but under `-icount shift=0` its
//!   virtual clock advances exactly one nanosecond per instruction, and the
//!   LM3S6965's SysTick ticks every 5 ns (200 MHz / SYSDIV): 5 instructions a tick, a
//!   deterministic instruction count.
//! * The RP2040's Cortex-M0+ has no DWT cycle counter either: there a tick is one
//!   core cycle.
//!
//! A measurement restarts the counter ([`Clock::start_measurement`]) so that it does not
//! depend on where in a tick the work began: the same work then reads back the same
//! count, whatever ran before it (the idle walk included).
//!
//! [`Clock`] is the app's [`InstructionCounter`].

use core::sync::atomic::{AtomicU32, Ordering};

use cortex_m::peripheral::syst::SystClkSource;
use cortex_m::peripheral::{SCB, SYST};
use cortex_m_rt::exception;
use tinyvae_app::InstructionCounter;

/// SysTick's reload value: the full 24 bits.
const RELOAD: u32 = 0x00FF_FFFF;
/// Ticks per wrap.
const PERIOD: u64 = RELOAD as u64 + 1;
/// Cycles the idle loop spends between two polls of the line.
const IDLE_SPIN: u32 = 2_000;

/// Wraps since the last restart, counted by the SysTick exception.
static WRAPS: AtomicU32 = AtomicU32::new(0);

#[exception]
fn SysTick() {
    // A load and a store, not `fetch_add`: thumbv6m has no atomic read-modify-write.
    // Nothing can interleave: only this handler adds, and the main code's reset of
    // the count runs with interrupts off.
    WRAPS.store(
        WRAPS.load(Ordering::Relaxed).wrapping_add(1),
        Ordering::Relaxed,
    );
}

/// The 64-bit tick clock.
pub struct Clock {
    syst: SYST,
    /// Ticks counted before the last restart.
    base: u64,
    /// Instructions (or cycles) per tick.
    per_tick: u64,
}

impl Clock {
    /// Starts SysTick from the processor clock; each tick counts `per_tick`
    /// instructions or cycles.
    pub fn start(mut syst: SYST, per_tick: u64) -> Self {
        syst.disable_counter();
        syst.set_clock_source(SystClkSource::Core);
        syst.set_reload(RELOAD);
        syst.clear_current();
        syst.enable_interrupt();
        syst.enable_counter();
        Self {
            syst,
            base: 0,
            per_tick: per_tick.max(1),
        }
    }

    /// Ticks since the last restart.
    ///
    /// After a restart the counter reads 0 until the first clock edge reloads it, then
    /// counts down from [`RELOAD`]; it triggers (and the wrap is counted) when it
    /// reaches 0 again, so `(2^24 - current) mod 2^24` is the ticks into the period.
    fn ticks_since_restart(&self) -> u64 {
        loop {
            let before = WRAPS.load(Ordering::Acquire);
            let current = SYST::get_current() & RELOAD;
            let after = WRAPS.load(Ordering::Acquire);
            if before == after {
                let into_period = (PERIOD - current as u64) % PERIOD;
                return before as u64 * PERIOD + into_period;
            }
        }
    }
}

impl InstructionCounter for Clock {
    /// Instructions (or cycles) since boot; the resolution is one tick.
    fn now(&mut self) -> u64 {
        (self.base + self.ticks_since_restart()) * self.per_tick
    }

    /// Restarts the counter so that a measurement begins at a tick boundary.
    fn start_measurement(&mut self) {
        cortex_m::interrupt::free(|_| {
            self.base += self.ticks_since_restart();
            // Writing the current value clears it; it reloads on the next edge.
            self.syst.clear_current();
            SCB::clear_pendst();
            WRAPS.store(0, Ordering::Release);
        });
    }

    fn measured(&mut self) -> u64 {
        self.ticks_since_restart() * self.per_tick
    }

    /// Runs a moment without touching a peripheral. QEMU emulates register accesses
    /// far more slowly than plain instructions, so an idle loop that only polled would
    /// make the idle timer crawl; a few microseconds of latency are nothing to the
    /// host. (Not `wfi`: with the line quiet, nothing might wake the core before the
    /// idle screen is due.)
    fn pause(&mut self) {
        cortex_m::asm::delay(IDLE_SPIN);
    }
}
