//! UART0 (an ARM PL011) by polling: the serial line that carries the protocol's
//! frames, as the app's `embedded_io` byte stream.

use core::convert::Infallible;

use embedded_io::{ErrorType, Read, ReadReady, Write};

use crate::hw::{self, Reg};

const UART0: usize = 0x4000_C000;
const DR: Reg = Reg::at(UART0, 0x000);
const FR: Reg = Reg::at(UART0, 0x018);
const IBRD: Reg = Reg::at(UART0, 0x024);
const FBRD: Reg = Reg::at(UART0, 0x028);
const LCRH: Reg = Reg::at(UART0, 0x02C);
const CTL: Reg = Reg::at(UART0, 0x030);

const FR_BUSY: u32 = 1 << 3;
const FR_RXFE: u32 = 1 << 4;
const FR_TXFF: u32 = 1 << 5;
const LCRH_FEN: u32 = 1 << 4;
const LCRH_WLEN_8: u32 = 0b11 << 5;
const CTL_UARTEN: u32 = 1 << 0;
const CTL_TXE: u32 = 1 << 8;
const CTL_RXE: u32 = 1 << 9;

/// Polls for a free transmit slot this many times before giving up on a byte.
const TX_WAIT_LIMIT: u32 = 1_000_000;

/// UART0 at 115200 8N1 (QEMU ignores the rate).
pub struct Uart0 {
    /// Whether the 16-byte FIFOs are on yet.
    fifo_on: bool,
}

impl Uart0 {
    /// Configures UART0 and its pins (PA0 RX, PA1 TX), FIFOs off for now.
    pub fn init() -> Self {
        hw::gpio_peripheral(hw::GPIO_A, 0b11);
        CTL.write(0);
        // 115200 baud from a 50 MHz clock: 50e6 / (16 * 115200) = 27 + 8/64.
        IBRD.write(27);
        FBRD.write(8);
        LCRH.write(LCRH_WLEN_8);
        CTL.write(CTL_UARTEN | CTL_TXE | CTL_RXE);
        let mut uart = Self { fifo_on: false };
        uart.enable_fifo_when_idle();
        uart
    }

    /// Turns the FIFOs on, but only while nothing is waiting in the receiver.
    ///
    /// The FIFOs make a 784-pixel request arrive about twice as fast under QEMU, which
    /// hands input over one FIFO-full at a time. But QEMU 7.2's PL011 empties its
    /// receive FIFO whenever LCRH.FEN changes, so switching with a byte waiting (the
    /// host may have written before the firmware started) would lose it. With the
    /// FIFO off, QEMU holds input back after one byte and loses nothing; the switch is
    /// retried after every reply, when a request/response host is waiting, not sending.
    fn enable_fifo_when_idle(&mut self) {
        if !self.fifo_on && FR.read() & FR_RXFE != 0 {
            LCRH.write(LCRH_WLEN_8 | LCRH_FEN);
            self.fifo_on = true;
        }
    }

    /// Whether a received byte is waiting.
    #[inline]
    fn rx_ready(&self) -> bool {
        FR.read() & FR_RXFE == 0
    }
}

impl ErrorType for Uart0 {
    type Error = Infallible;
}

impl ReadReady for Uart0 {
    fn read_ready(&mut self) -> Result<bool, Infallible> {
        Ok(self.rx_ready())
    }
}

impl Read for Uart0 {
    /// Waits for a byte, then takes what has arrived, up to `buf.len()`. Break,
    /// framing and parity errors (bits 8..11 of DR) are dropped with the byte's
    /// status: the frame CRC catches the damage.
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, Infallible> {
        if buf.is_empty() {
            return Ok(0);
        }
        while !self.rx_ready() {}
        let mut n = 0;
        for slot in buf.iter_mut() {
            if !self.rx_ready() {
                break;
            }
            *slot = (DR.read() & 0xFF) as u8;
            n += 1;
        }
        Ok(n)
    }
}

impl Write for Uart0 {
    /// Sends `buf`, waiting (bounded) for room in the transmitter.
    fn write(&mut self, buf: &[u8]) -> Result<usize, Infallible> {
        for &b in buf {
            hw::wait_until(TX_WAIT_LIMIT, || FR.read() & FR_TXFF == 0);
            DR.write(b as u32);
        }
        Ok(buf.len())
    }

    /// Waits (bounded) until the last byte has left, then turns the FIFOs on if the
    /// line is quiet: the end of a reply is when a request/response host waits
    /// rather than sends.
    fn flush(&mut self) -> Result<(), Infallible> {
        hw::wait_until(TX_WAIT_LIMIT, || FR.read() & FR_BUSY == 0);
        self.enable_fifo_when_idle();
        Ok(())
    }
}
