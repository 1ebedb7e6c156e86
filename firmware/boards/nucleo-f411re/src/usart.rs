//! USART2, wired to the ST-LINK's virtual COM port (PA2 TX, PA3 RX): the serial line
//! that carries the protocol's frames, as the app's `embedded_io` byte stream.
//!
//! Receiving is interrupt-driven into the app's shared ring ([`tinyvae_app::rx`]): the
//! USART2 interrupt moves every received byte into it, so bytes that arrive while the
//! app decodes, draws or flushes the OLED (a flush takes ~25 ms, 290 bytes at
//! 115200 baud, far more than the USART's one-byte data register) wait in RAM. When
//! the ring is full the handler stops listening for RXNE and leaves the byte in the
//! USART; the reader listens again once it has taken bytes. Unlike QEMU, the ST-LINK
//! does not hold the host back (no flow control): a host that sends more than the
//! ring holds (1023 bytes, more than one request) before reading replies can overrun
//! the USART, and the damaged frame then gets an error reply. Sending is blocking.

use core::cell::RefCell;
use core::convert::Infallible;

use cortex_m::interrupt::Mutex;
use cortex_m::peripheral::NVIC;
use embedded_io::{ErrorType, Write};
use stm32f4xx_hal::nb;
use stm32f4xx_hal::pac::{interrupt, Interrupt, USART2};
use stm32f4xx_hal::prelude::*;
use stm32f4xx_hal::serial::{Rx, Serial as HalSerial, Tx};
use tinyvae_app::rx::{self, Fill, Line, Resume, RxProducer, RxQueue, RxReader};

/// Polls for room in the transmitter this many times before giving up on a byte
/// (at 100 MHz a byte takes ~8,700 cycles to leave; a poll is a few cycles).
const TX_WAIT_LIMIT: u32 = 1_000_000;

/// What the interrupt handler owns: the USART's receive side and the ring's writing
/// end. The reader's [`ResumeRx`] reaches it too, to listen again.
struct Receiver {
    rx: Rx<USART2>,
    producer: RxProducer<'static>,
    /// Whether the RXNE interrupt is enabled (false after a full ring).
    listening: bool,
}

static RECEIVER: Mutex<RefCell<Option<Receiver>>> = Mutex::new(RefCell::new(None));

/// USART2's interrupt (RXNE, or an overrun): moves received bytes into the ring until
/// the USART is empty or the ring is full (then stops listening until the reader has
/// made room).
#[interrupt]
fn USART2() {
    cortex_m::interrupt::free(|cs| {
        let mut receiver = RECEIVER.borrow(cs).borrow_mut();
        let Some(Receiver {
            rx,
            producer,
            listening,
        }) = receiver.as_mut()
        else {
            return;
        };
        // The HAL reads the status register, then the data register while RXNE is
        // set. A byte with a framing, noise, parity or overrun error is read and
        // dropped by the HAL (which clears the error): the frame CRC catches the damage.
        let source = || loop {
            match rx.read() {
                Ok(byte) => return Some(byte),
                Err(nb::Error::WouldBlock) => return None,
                Err(nb::Error::Other(_)) => {}
            }
        };
        if rx::fill(producer, source) == Fill::Full {
            rx.unlisten();
            *listening = false;
        }
    });
}

/// USART2's transmitter, at 115200 8N1.
pub struct Usart2 {
    tx: Tx<USART2>,
}

/// The protocol's line: the receive ring in, USART2 out.
pub type Serial = Line<'static, ResumeRx, Usart2>;

impl Usart2 {
    /// Splits `serial` and starts receiving into `ring` by interrupt.
    ///
    /// Call it once the stack is painted: the interrupt's frames must not land on a
    /// stack that is being painted.
    pub fn start(serial: HalSerial<USART2>, ring: &'static mut RxQueue) -> Serial {
        let (tx, mut rx) = serial.split();
        let (producer, consumer) = ring.split();
        rx.listen();
        cortex_m::interrupt::free(|cs| {
            RECEIVER.borrow(cs).replace(Some(Receiver {
                rx,
                producer,
                listening: true,
            }))
        });
        // SAFETY: the handler only touches USART2's receive side and the ring's
        // producer, which nothing else uses outside a critical section; unmasking
        // cannot break a critical section (none is open here).
        unsafe { NVIC::unmask(Interrupt::USART2) };
        Line::new(RxReader::new(consumer, ResumeRx), Self { tx })
    }
}

/// The reader's flow control: lets the handler fill the ring again after a full ring
/// stopped it.
pub struct ResumeRx;

impl Resume for ResumeRx {
    /// Listens for RXNE again, and pends the interrupt if a byte is already waiting.
    /// (The USART's interrupt line is level-triggered, so enabling RXNEIE with RXNE set
    /// would raise it anyway; pending it says so rather than rely on it.)
    fn resume(&mut self) {
        cortex_m::interrupt::free(|cs| {
            let mut receiver = RECEIVER.borrow(cs).borrow_mut();
            let Some(receiver) = receiver.as_mut() else {
                return;
            };
            if !receiver.listening {
                receiver.rx.listen();
                receiver.listening = true;
                if receiver.rx.is_rx_not_empty() {
                    NVIC::pend(Interrupt::USART2);
                }
            }
        });
    }

    /// Sleeps until the next interrupt (a byte arriving raises USART2's).
    fn wait(&mut self) {
        cortex_m::asm::wfi();
    }
}

/// Retries `attempt` while it would block, at most [`TX_WAIT_LIMIT`] times. A
/// transmitter that never frees up (it always does, within a byte time) costs a byte,
/// not the firmware.
fn bounded<E>(mut attempt: impl FnMut() -> nb::Result<(), E>) {
    for _ in 0..TX_WAIT_LIMIT {
        if !matches!(attempt(), Err(nb::Error::WouldBlock)) {
            return;
        }
    }
}

impl ErrorType for Usart2 {
    type Error = Infallible;
}

impl Write for Usart2 {
    /// Sends `buf`, waiting (bounded) for room in the transmitter before each byte.
    fn write(&mut self, buf: &[u8]) -> Result<usize, Infallible> {
        for &byte in buf {
            bounded(|| self.tx.write(byte));
        }
        Ok(buf.len())
    }

    /// Waits (bounded) until the last byte has left the shifter.
    fn flush(&mut self) -> Result<(), Infallible> {
        bounded(|| self.tx.flush());
        Ok(())
    }
}
