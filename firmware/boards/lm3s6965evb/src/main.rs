//! tinyvae on the LM3S6965 evaluation board (QEMU's `lm3s6965evb`): UART0 carries the
//! protocol, the SSD0323 OLED on SSI0 shows what the app does, SysTick counts
//! instructions. Everything else is `tinyvae_app`.
//!
//! See firmware/README.md for the build, the memory map and the serial behaviour.
#![no_std]
#![no_main]

mod hw;
#[cfg(feature = "defmt")]
mod logging;
mod pl011;
mod pl022;
mod ssd0323;
mod vectors;

use cortex_m_rt::entry;
use panic_halt as _;
use static_cell::ConstStaticCell;
use tinyvae_app::rx::RxQueue;
use tinyvae_app::{App, Buffers, Parts};
use tinyvae_board_support::{stack, systick};
use tinyvae_screens::FrameBuffer;
use tinyvae_shared::model::Model;

/// The app's large buffers, zero-initialized in .bss rather than built on the stack
/// (`ConstStaticCell::take` hands out the static itself, without a copy).
static BUFFERS: ConstStaticCell<Buffers> = ConstStaticCell::new(Buffers::new());
/// The OLED's frame, likewise.
static FRAME: ConstStaticCell<FrameBuffer> = ConstStaticCell::new(FrameBuffer::new());
/// The UART's receive ring, likewise.
static RX: ConstStaticCell<RxQueue> = ConstStaticCell::new(RxQueue::new());

#[entry]
fn main() -> ! {
    let divider = hw::init_clocks();
    // Before any interrupt runs. Input that arrives meanwhile waits: QEMU holds it back
    // until the UART is configured.
    stack::paint();
    let (Some(core), Some(buffers), Some(frame), Some(rx)) = (
        cortex_m::Peripherals::take(),
        BUFFERS.try_take(),
        FRAME.try_take(),
        RX.try_take(),
    ) else {
        // Unreachable (main runs once); idle rather than panic.
        loop {
            cortex_m::asm::wfi();
        }
    };
    let serial = pl011::Uart0::init(rx);
    // Under `-icount shift=0` a SysTick tick is 5 ns of QEMU's 200 MHz clock times
    // the divider: 5 instructions each (see `hw::init_clocks`).
    let counter = systick::Clock::start(core.SYST, 5 * u64::from(divider));
    let display = ssd0323::Ssd0323::init(pl022::Ssi0::init(), frame);
    let model = Model::parse(tinyvae_app::MODEL_IMAGE).ok();
    let parts = Parts {
        serial,
        display,
        counter,
        footprint: stack::Footprint,
    };
    App::new(model, buffers, parts).run()
}
