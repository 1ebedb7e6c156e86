//! tinyvae on ST's Nucleo-F411RE: an STM32F411RE (Cortex-M4F with the DSP extension,
//! run at 100 MHz from the internal 16 MHz oscillator through the PLL). USART2, the
//! ST-LINK's virtual COM port, carries the protocol; an SSD1306 OLED on I2C1 shows what
//! the app does; the DWT counts core cycles; the user button B1 switches the idle
//! screen (the stand-alone demo or the latent walk). Everything else is `tinyvae_app`.
//!
//! # Why stm32f4xx-hal
//!
//! The app is one blocking poll loop: it serves a request, draws, replies, polls again.
//! It needs clocks, GPIO, a USART whose receive interrupt it can switch on and off, and a
//! blocking I2C; stm32f4xx-hal gives exactly that, each as a plain value handed to the
//! app. embassy-stm32 is built around its async executor and time driver; a blocking
//! single-task app would carry them (and a timer interrupt) for nothing, in flash and
//! in a second context to reason about. The HAL's blocking I2C waits without bounds,
//! which `i2c.rs` guards against.
//!
//! # Clocks
//!
//! HSI (16 MHz, ±1 %) into the PLL, not the 8 MHz the ST-LINK can feed to the HSE
//! input: that clock reaches the target only on boards whose solder bridges route the
//! ST-LINK's MCO to it, and the HAL waits without a bound for an HSE that never
//! starts. The HSI is always there and is well within what the USART (±2 % at 16x
//! oversampling) and I2C need; the cycle counts do not depend on the clock's accuracy.
//! APB1 (USART2, I2C1) runs at 50 MHz, its maximum.
//!
//! See README.md in this folder for the wiring and flashing, and firmware/README.md for
//! the protocol and the app.
#![no_std]
#![no_main]

mod button;
mod i2c;
#[cfg(feature = "defmt")]
mod logging;
mod usart;

use cortex_m_rt::entry;
#[cfg(not(feature = "defmt"))]
use panic_halt as _;
use static_cell::ConstStaticCell;
use stm32f4xx_hal::gpio::PinState;
use stm32f4xx_hal::i2c::I2c;
use stm32f4xx_hal::pac;
use stm32f4xx_hal::prelude::*;
use stm32f4xx_hal::rcc::Config as Clocks;
use stm32f4xx_hal::serial::{Config as SerialConfig, Serial};
use tinyvae_app::rx::RxQueue;
use tinyvae_app::{App, Buffers, Parts};
use tinyvae_board_support::{dwt, stack};
use tinyvae_oled::{Config as OledConfig, Oled};
use tinyvae_shared::model::Model;

/// The core clock: the STM32F411's maximum.
const SYSCLK_MHZ: u32 = 100;
/// The protocol's line rate (8N1).
const BAUD: u32 = 115_200;
/// The OLED's 7-bit I2C address: 0x3C on most modules, 0x3D where the module's address
/// jumper (SA0) is set.
const OLED_ADDRESS: u8 = 0x3C;
/// I2C fast mode: a full OLED frame (1 KiB in 16-byte transactions) takes ~25 ms.
const I2C_KHZ: u32 = 400;

/// The app's large buffers, zero-initialized in .bss rather than built on the stack
/// (`ConstStaticCell::take` hands out the static itself, without a copy).
static BUFFERS: ConstStaticCell<Buffers> = ConstStaticCell::new(Buffers::new());
/// USART2's receive ring, likewise.
static RX: ConstStaticCell<RxQueue> = ConstStaticCell::new(RxQueue::new());

/// Where `main` goes if the impossible happens (a peripheral or a static taken twice,
/// the USART refusing 115200 baud at 50 MHz): idle rather than panic.
fn idle() -> ! {
    loop {
        cortex_m::asm::wfi();
    }
}

#[entry]
fn main() -> ! {
    // Before anything else runs on the stack, and before any interrupt is enabled.
    stack::paint();
    let (Some(dp), Some(mut core), Some(buffers), Some(ring)) = (
        pac::Peripherals::take(),
        cortex_m::Peripherals::take(),
        BUFFERS.try_take(),
        RX.try_take(),
    ) else {
        idle()
    };
    let mut rcc = dp.RCC.freeze(Clocks::hsi().sysclk(SYSCLK_MHZ.MHz()));
    let counter = dwt::Clock::start(&mut core.DCB, &mut core.DWT);
    let gpioa = dp.GPIOA.split(&mut rcc);
    let gpiob = dp.GPIOB.split(&mut rcc);
    let gpioc = dp.GPIOC.split(&mut rcc);

    // The protocol first, so that bytes sent meanwhile wait in the ring.
    let config = SerialConfig::default().baudrate(BAUD.bps());
    let Ok(serial) = Serial::new(dp.USART2, (gpioa.pa2, gpioa.pa3), config, &mut rcc) else {
        idle()
    };
    let serial = usart::Usart2::start(serial, ring);

    // The OLED: free the bus, then hand the pins to I2C1 (alternate function 4).
    let mut scl = gpiob.pb8.into_open_drain_output_in_state(PinState::High);
    let mut sda = gpiob.pb9.into_open_drain_output_in_state(PinState::High);
    scl.set_internal_resistor(stm32f4xx_hal::gpio::Pull::Up);
    sda.set_internal_resistor(stm32f4xx_hal::gpio::Pull::Up);
    i2c::recover(&mut scl, &mut sda);
    let pins = (
        scl.into_alternate_open_drain::<4>(),
        sda.into_alternate_open_drain::<4>(),
    );
    let bus = i2c::Bus::new(I2c::new(dp.I2C1, pins, I2C_KHZ.kHz(), &mut rcc));
    let mut oled_config = OledConfig::default();
    oled_config.address = OLED_ADDRESS;
    let display = Oled::new(bus, oled_config);
    #[cfg(feature = "defmt")]
    defmt::info!(
        "oled at 0x3c: {=str}",
        if display.is_ready() {
            "ready"
        } else {
            "no answer"
        }
    );

    let mut button = button::Button::new(gpioc.pc13.into_input());
    let model = Model::parse(tinyvae_app::MODEL_IMAGE).ok();
    let parts = Parts {
        serial,
        display,
        counter,
        footprint: stack::Footprint,
    };
    let mut app = App::new(model, buffers, parts);
    loop {
        app.poll();
        if button.was_pressed() {
            app.next_idle_screen();
        }
    }
}
