//! tinyvae on the Raspberry Pi Pico (RP2040, Cortex-M0+ at 125 MHz from its 12 MHz
//! crystal): the protocol runs over the RP2040's own USB as a CDC ACM serial port, an
//! SSD1306 128x64 OLED on I2C0 (GP4 SDA, GP5 SCL, 400 kHz) shows what the app does,
//! and SysTick counts core cycles (the M0+ has no DWT cycle counter). Everything else
//! is `tinyvae_app`.
//!
//! The HAL is rp2040-hal rather than embassy-rp: the app is a blocking poll loop
//! (`App::run`) with one interrupt (USB), so an async executor would only add code,
//! RAM for its task and futures, and a second way of doing things next to the other
//! boards. rp2040-hal gives the blocking clocks, pins, I2C and the `usb-device` bus
//! with nothing else attached; the firmware stays a thin board crate like the others.
//!
//! See README.md (in this folder) for the wiring, flashing and the USB port, and
//! firmware/README.md for the protocol, the screens and the counters.
#![no_std]
#![no_main]

mod usb;

use rp2040_hal::clocks::{init_clocks_and_plls, Clock as _};
use rp2040_hal::fugit::RateExtU32;
use rp2040_hal::gpio::{FunctionI2c, Pin, Pins, PullUp};
use rp2040_hal::{pac, Sio, Watchdog, I2C};
use static_cell::ConstStaticCell;
use tinyvae_app::rx::RxQueue;
use tinyvae_app::{App, Buffers, Parts};
use tinyvae_board_support::{stack, systick};
use tinyvae_oled::{Config, Oled};
use tinyvae_shared::model::Model;

#[cfg(not(feature = "defmt"))]
use panic_halt as _;
#[cfg(feature = "defmt")]
use {defmt_rtt as _, panic_probe as _};

/// The second-stage bootloader for the Pico's W25Q080 flash, in the first 256 bytes of
/// flash (memory.x's BOOT2 region), where the boot ROM looks for it.
#[link_section = ".boot2"]
#[used]
static BOOT2: [u8; 256] = rp2040_boot2::BOOT_LOADER_W25Q080;

/// The Pico's crystal.
const XOSC_HZ: u32 = 12_000_000;
/// The OLED's I2C clock: the SSD1306's fast mode.
const I2C_HZ: u32 = 400_000;

/// The app's large buffers, zero-initialized in .bss rather than built on the stack
/// (`ConstStaticCell::take` hands out the static itself, without a copy).
static BUFFERS: ConstStaticCell<Buffers> = ConstStaticCell::new(Buffers::new());
/// The USB line's receive ring, likewise.
static RX: ConstStaticCell<RxQueue> = ConstStaticCell::new(RxQueue::new());

/// rp2040-hal's entry: it releases the hardware spinlocks (a debugger's reset leaves
/// them as they were, and the critical sections take spinlock 31) before `main`.
#[rp2040_hal::entry]
fn main() -> ! {
    // Before any interrupt is enabled.
    stack::paint();
    let (Some(mut pac), Some(core), Some(buffers), Some(rx)) = (
        pac::Peripherals::take(),
        pac::CorePeripherals::take(),
        BUFFERS.try_take(),
        RX.try_take(),
    ) else {
        // Unreachable (main runs once); idle rather than panic.
        idle()
    };
    let mut watchdog = Watchdog::new(pac.WATCHDOG);
    // 125 MHz system clock and 48 MHz USB clock from the crystal. Fails only if the
    // crystal or a PLL does not start: a board that cannot clock its USB has no line.
    let Ok(clocks) = init_clocks_and_plls(
        XOSC_HZ,
        pac.XOSC,
        pac.CLOCKS,
        pac.PLL_SYS,
        pac.PLL_USB,
        &mut pac.RESETS,
        &mut watchdog,
    ) else {
        idle()
    };
    let sio = Sio::new(pac.SIO);
    let pins = Pins::new(
        pac.IO_BANK0,
        pac.PADS_BANK0,
        sio.gpio_bank0,
        &mut pac.RESETS,
    );
    // The internal pull-ups back the module's own (most SSD1306 boards carry them).
    let sda: Pin<_, FunctionI2c, PullUp> = pins.gpio4.reconfigure();
    let scl: Pin<_, FunctionI2c, PullUp> = pins.gpio5.reconfigure();
    let i2c = I2C::i2c0(
        pac.I2C0,
        sda,
        scl,
        I2C_HZ.Hz(),
        &mut pac.RESETS,
        clocks.system_clock.freq(),
    );
    // Sets the module up; one that does not answer costs a NACKed address byte a
    // flush, and the protocol is served all the same.
    let display = Oled::new(i2c, Config::default());
    // The Pico has no VBUS detection on the RP2040's pin (VBUS is sensed on GPIO24):
    // force "VBUS present", the device is bus-powered anyway.
    let bus = rp2040_hal::usb::UsbBus::new(
        pac.USBCTRL_REGS,
        pac.USBCTRL_DPRAM,
        clocks.usb_clock,
        true,
        &mut pac.RESETS,
    );
    let Some(serial) = usb::UsbSerial::init(bus, rx) else {
        idle()
    };
    // SysTick runs from the 125 MHz core clock: one tick per cycle.
    let counter = systick::Clock::start(core.SYST, 1);
    let model = Model::parse(tinyvae_app::MODEL_IMAGE).ok();
    let parts = Parts {
        serial,
        display,
        counter,
        footprint: stack::Footprint,
    };
    App::new(model, buffers, parts).run()
}

/// Where setup that cannot fail in practice ends up if it does: asleep, not panicking.
fn idle() -> ! {
    loop {
        cortex_m::asm::wfi();
    }
}
