//! tinyvae firmware: serves the int8 VAE over UART0 and shows it on the OLED.
//!
//! See README.md for the build, the memory map and the serial behaviour.
#![no_std]
#![no_main]

mod app;
mod clock;
mod hw;
mod oled;
mod stack;
mod uart;
mod walk;

use core::sync::atomic::{AtomicBool, Ordering};

use cortex_m_rt::entry;
use panic_halt as _;
use tinyvae_shared::model::Model;

use crate::app::{App, Buffers};

/// The model image, validated by build.rs, in flash.
static MODEL_IMAGE: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/model.bin"));

/// The large buffers, zero-initialized in .bss rather than built on the stack.
static mut BUFFERS: Buffers = Buffers::new();

/// Hands out `BUFFERS` once.
fn take_buffers() -> Option<&'static mut Buffers> {
    static TAKEN: AtomicBool = AtomicBool::new(false);
    if TAKEN.swap(true, Ordering::AcqRel) {
        return None;
    }
    // SAFETY: the flag above lets this run once, so this is the only reference to
    // BUFFERS ever created, and no interrupt handler touches it.
    Some(unsafe { &mut *core::ptr::addr_of_mut!(BUFFERS) })
}

#[entry]
fn main() -> ! {
    let divider = hw::init_clocks();
    // The UART first: until it runs, QEMU holds the host's input back.
    let uart = uart::Uart0::init();
    stack::paint();
    let (Some(core), Some(buffers)) = (cortex_m::Peripherals::take(), take_buffers()) else {
        // Unreachable (main runs once); idle rather than panic.
        loop {
            cortex_m::asm::wfi();
        }
    };
    let clock = clock::Clock::start(core.SYST, divider);
    let oled = oled::Oled::init();
    let model = Model::parse(MODEL_IMAGE).ok();
    let mut app = App::new(model, buffers, clock, uart, oled);
    app.run()
}
