//! I2C1 on the Arduino header (PB8 SCL = D15, PB9 SDA = D14) for the OLED, made safe to
//! use with no module attached, or with one that got stuck.
//!
//! The HAL's blocking I2C waits without a bound for the bus: a START waits until the
//! bus is free, and a STOP until it has gone out. That is fine on a healthy bus, but
//! the display is optional and the protocol must go on without it, so:
//!
//! * the pins get the internal pull-ups, so a header with nothing on it idles high and
//!   a transaction ends in a NACK instead of waiting (modules bring their own,
//!   stronger pull-ups);
//! * [`recover`] clocks a module that still holds SDA low (the MCU was reset in the
//!   middle of a byte, e.g. by the debugger) until it lets go, before the HAL takes the
//!   pins;
//! * [`Bus`] refuses a transaction while the bus is busy or a STOP is still pending
//!   (the HAL would wait for either forever), and ends a failed transaction with a
//!   STOP so that the bus is released (the HAL leaves it held after a NACK).
//!
//! A module that stretches the clock forever in the middle of a byte would still stall
//! the HAL; the SSD1306 never stretches the clock.

use embedded_hal::i2c::{ErrorType, Operation, SevenBitAddress};
use stm32f4xx_hal::gpio::{OpenDrain, Output, PB8, PB9};
use stm32f4xx_hal::i2c::{Error, I2c};
use stm32f4xx_hal::pac::I2C1;

/// Half an SCL period of the recovery clock: 5 µs at 100 MHz (100 kHz).
const HALF_PERIOD_CYCLES: u32 = 500;
/// Clock pulses that free any slave stuck in a byte: 8 bits and the acknowledge.
const RECOVERY_PULSES: usize = 9;

/// Frees the bus if a module holds SDA low: clocks SCL (up to nine pulses) until SDA
/// rises, then sends a STOP (SDA rising while SCL is high), as the I2C specification's
/// bus clear describes. Both pins are open-drain outputs released high.
pub fn recover(scl: &mut PB8<Output<OpenDrain>>, sda: &mut PB9<Output<OpenDrain>>) {
    let half_period = || cortex_m::asm::delay(HALF_PERIOD_CYCLES);
    scl.set_high();
    sda.set_high();
    half_period();
    for _ in 0..RECOVERY_PULSES {
        if sda.is_high() {
            break;
        }
        scl.set_low();
        half_period();
        scl.set_high();
        half_period();
    }
    // STOP: SDA low, then high while SCL is high.
    scl.set_low();
    half_period();
    sda.set_low();
    half_period();
    scl.set_high();
    half_period();
    sda.set_high();
    half_period();
}

/// I2C1 for the OLED: the HAL's blocking I2C with the guards described in the module
/// docs.
pub struct Bus {
    i2c: I2c<I2C1>,
}

impl Bus {
    /// Guards `i2c`.
    pub fn new(i2c: I2c<I2C1>) -> Self {
        Self { i2c }
    }
}

/// I2C1's registers, for the two checks the HAL does not offer. Read-mostly: the one
/// write, a STOP request after an error, is what the HAL itself does to end a
/// transaction, and runs only between two of the HAL's calls, from the one context
/// that uses the bus.
fn registers() -> &'static stm32f4xx_hal::pac::i2c1::RegisterBlock {
    // SAFETY: a fixed MMIO address, valid for the whole program; see above for why the
    // accesses do not disturb the HAL's driver.
    unsafe { &*I2C1::ptr() }
}

impl ErrorType for Bus {
    type Error = Error;
}

impl embedded_hal::i2c::I2c for Bus {
    fn transaction(
        &mut self,
        address: SevenBitAddress,
        operations: &mut [Operation<'_>],
    ) -> Result<(), Error> {
        let regs = registers();
        // The HAL would wait for a pending STOP or a busy bus without a bound.
        if regs.cr1().read().stop().bit_is_set() || regs.sr2().read().busy().bit_is_set() {
            return Err(Error::Bus);
        }
        let result = self.i2c.transaction_slice(address, operations);
        if result.is_err() {
            // After a NACK or a lost arbitration the HAL returns with the bus still
            // held: release it, so that the next START is a fresh one.
            regs.cr1().modify(|_, w| w.stop().set_bit());
        }
        result
    }
}
