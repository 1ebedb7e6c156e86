//! UART0 (an ARM PL011): the serial line that carries the protocol's frames, as the
//! app's `embedded_io` byte stream.
//!
//! Receiving is interrupt-driven into the app's shared ring ([`tinyvae_app::rx`]): the
//! UART0 interrupt moves every received byte into it, and bytes that arrive while the
//! app decodes or draws wait there instead of in the UART. When the ring is full the
//! handler masks the receive interrupt and leaves the bytes in the UART (QEMU then
//! holds the host's input back); the reader unmasks it as soon as it has taken a
//! byte, so nothing is lost however fast the host sends. Sending is polled.

use core::cell::RefCell;
use core::convert::Infallible;

use cortex_m::interrupt::{InterruptNumber, Mutex};
use cortex_m::peripheral::NVIC;
use embedded_io::{ErrorType, Write};
use tinyvae_app::rx::{self, Fill, Line, Resume, RxProducer, RxQueue, RxReader};

use crate::hw::{self, Reg};

const UART0: usize = 0x4000_C000;
const DR: Reg = Reg::at(UART0, 0x000);
const FR: Reg = Reg::at(UART0, 0x018);
const IBRD: Reg = Reg::at(UART0, 0x024);
const FBRD: Reg = Reg::at(UART0, 0x028);
const LCRH: Reg = Reg::at(UART0, 0x02C);
const CTL: Reg = Reg::at(UART0, 0x030);
const IM: Reg = Reg::at(UART0, 0x038);
const ICR: Reg = Reg::at(UART0, 0x044);

const FR_BUSY: u32 = 1 << 3;
const FR_RXFE: u32 = 1 << 4;
const FR_TXFF: u32 = 1 << 5;
const LCRH_FEN: u32 = 1 << 4;
const LCRH_WLEN_8: u32 = 0b11 << 5;
const CTL_UARTEN: u32 = 1 << 0;
const CTL_TXE: u32 = 1 << 8;
const CTL_RXE: u32 = 1 << 9;
/// Receive (bit 4) and receive-timeout (bit 6) interrupts, in IM and ICR.
const INT_RX: u32 = 1 << 4 | 1 << 6;

/// UART0's interrupt line on the LM3S6965.
#[derive(Clone, Copy)]
struct Uart0Irq;

// SAFETY: 5 is UART0's interrupt number in the LM3S6965's vector table.
unsafe impl InterruptNumber for Uart0Irq {
    fn number(self) -> u16 {
        5
    }
}

/// The ring's writing end, for the interrupt handler.
static RX_PRODUCER: Mutex<RefCell<Option<RxProducer<'static>>>> = Mutex::new(RefCell::new(None));

/// Polls for a free transmit slot this many times before giving up on a byte.
const TX_WAIT_LIMIT: u32 = 1_000_000;

/// UART0's transmitter, at 115200 8N1 (QEMU ignores the rate).
pub struct Uart0 {
    /// Whether the 16-byte FIFOs are on yet.
    fifo_on: bool,
}

/// The protocol's line: the receive ring in, UART0 out.
pub type Serial = Line<'static, ResumeRx, Uart0>;

/// UART0's interrupt: moves received bytes into the ring until the UART is empty or
/// the ring is full (then masks itself until the reader has made room).
pub fn on_interrupt() {
    cortex_m::interrupt::free(|cs| {
        let mut producer = RX_PRODUCER.borrow(cs).borrow_mut();
        let Some(producer) = producer.as_mut() else {
            IM.clear_bits(INT_RX);
            return;
        };
        // Break, framing and parity errors (bits 8..11 of DR) are dropped with the
        // byte's status: the frame CRC catches the damage.
        let source = || (FR.read() & FR_RXFE == 0).then(|| (DR.read() & 0xFF) as u8);
        match rx::fill(producer, source) {
            // Full: leave the rest in the UART, its interrupt pending but masked.
            Fill::Full => IM.clear_bits(INT_RX),
            Fill::Drained => ICR.write(INT_RX),
        }
    });
}

impl Uart0 {
    /// Configures UART0 and its pins (PA0 RX, PA1 TX), FIFOs off for now, and starts
    /// receiving into `rx` by interrupt; returns the line.
    ///
    /// Call it once the stack is painted: the interrupt's frames must not land on a
    /// stack that is being painted.
    pub fn init(rx: &'static mut RxQueue) -> Serial {
        hw::gpio_peripheral(hw::GPIO_A, 0b11);
        CTL.write(0);
        // 115200 baud from a 50 MHz clock: 50e6 / (16 * 115200) = 27 + 8/64.
        IBRD.write(27);
        FBRD.write(8);
        LCRH.write(LCRH_WLEN_8);
        CTL.write(CTL_UARTEN | CTL_TXE | CTL_RXE);
        let (producer, consumer) = rx.split();
        cortex_m::interrupt::free(|cs| RX_PRODUCER.borrow(cs).replace(Some(producer)));
        ICR.write(INT_RX);
        IM.set_bits(INT_RX);
        // SAFETY: the handler only touches the UART and the ring's producer, which
        // nothing else uses; unmasking cannot break a critical section (none is open).
        unsafe { NVIC::unmask(Uart0Irq) };
        let mut uart = Self { fifo_on: false };
        uart.enable_fifo_when_idle();
        Line::new(RxReader::new(consumer, ResumeRx), uart)
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
}

/// The reader's flow control: lets the handler fill the ring again after it masked
/// itself on a full ring.
pub struct ResumeRx;

impl Resume for ResumeRx {
    /// The UART raises its receive interrupt when a byte arrives, and QEMU sends no
    /// more while the UART is full, so bytes already waiting are handed to the handler
    /// by pending its interrupt here rather than left for an edge that never comes.
    fn resume(&mut self) {
        cortex_m::interrupt::free(|_| {
            if IM.read() & INT_RX != INT_RX {
                IM.set_bits(INT_RX);
                if FR.read() & FR_RXFE == 0 {
                    NVIC::pend(Uart0Irq);
                }
            }
        });
    }

    /// Sleeps until the next interrupt (a byte, or SysTick's wrap).
    fn wait(&mut self) {
        cortex_m::asm::wfi();
    }
}

impl ErrorType for Uart0 {
    type Error = Infallible;
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
