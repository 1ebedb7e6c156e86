//! The serial receive ring every board shares: an interrupt handler moves received
//! bytes into it, the app's reader takes them out.
//!
//! A request the app serves costs hundreds of thousands of instructions (a walk frame,
//! a decode, an encode with its screen), while a UART's receive FIFO holds 16 bytes or
//! fewer: 1.4 ms at 115200 baud. Without a ring, a host that sends its next frame while
//! the device is busy loses bytes to overrun. With one, the handler empties the FIFO
//! into [`RX_CAPACITY`] bytes of RAM whatever the app is doing.
//!
//! The policy lives here, so each board only says how to read its peripheral:
//!
//! * [`fill`] (the handler) takes bytes while the source has one *and* the ring has
//!   room. On a full ring it stops before taking the byte, so the byte stays in the
//!   peripheral (QEMU then holds the host back; a real UART keeps it in its FIFO) and
//!   the board masks its receive interrupt until the reader has made room.
//! * [`RxReader`] is the app's end: [`embedded_io::Read`] and [`ReadReady`] over the
//!   ring, calling the board's [`Resume`] after every read that took bytes, which
//!   unmasks the interrupt (and pends it if bytes are waiting).
//! * [`Line`] is what a board hands the app as its serial line: the ring's reader
//!   for input and the board's transmitter (any [`embedded_io::Write`]) for output, so
//!   a board writes only its transmitter and its interrupt handler.
//!
//! `heapless::spsc` makes the split lock-free: the handler owns the producer, the app
//! the consumer, and a single-core part needs no critical section around either.

use core::convert::Infallible;

use embedded_io::{ErrorType, Read, ReadReady, Write};
use heapless::spsc::{Consumer, Producer, Queue};

/// The ring's size; it holds one byte less, which is more than the longest request
/// frame (an encode of 784 pixels is 794 bytes on the wire).
pub const RX_CAPACITY: usize = 1024;

/// The received bytes, between a board's interrupt handler and [`RxReader`].
pub type RxQueue = Queue<u8, RX_CAPACITY>;

/// The handler's end of the ring.
pub type RxProducer<'a> = Producer<'a, u8>;

/// What [`fill`] left behind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fill {
    /// The source is empty; every byte it had is in the ring.
    Drained,
    /// The ring is full and the source may still hold bytes: mask the receive
    /// interrupt until [`Resume::resume`].
    Full,
}

/// Moves bytes from `source` (the peripheral's receive register: `None` when empty)
/// into the ring until the source is empty or the ring is full.
///
/// `source` is called only when the ring has room, so a byte is never taken from the
/// peripheral and then dropped.
pub fn fill(producer: &mut RxProducer<'_>, mut source: impl FnMut() -> Option<u8>) -> Fill {
    loop {
        if !producer.ready() {
            return Fill::Full;
        }
        match source() {
            // `ready` said there is room, so the enqueue cannot fail.
            Some(byte) => {
                let _ = producer.enqueue(byte);
            }
            None => return Fill::Drained,
        }
    }
}

/// The board's half of flow control: what to do once the reader has made room, and
/// how to wait for input.
pub trait Resume {
    /// Lets the handler fill the ring again (unmask the receive interrupt; pend it if
    /// bytes are already waiting in the peripheral, since no new edge may come).
    fn resume(&mut self);

    /// Waits a moment for input while a blocking read finds the ring empty: a board
    /// sleeps until the next interrupt (`wfi`). The default spins.
    fn wait(&mut self) {}
}

/// A [`Resume`] for sources that never stop (tests).
impl Resume for () {
    fn resume(&mut self) {}
}

/// The app's end of the ring.
pub struct RxReader<'a, R> {
    consumer: Consumer<'a, u8>,
    resume: R,
}

impl<'a, R: Resume> RxReader<'a, R> {
    /// Reads from `consumer`, calling `resume` after each read.
    pub fn new(consumer: Consumer<'a, u8>, resume: R) -> Self {
        Self { consumer, resume }
    }

    /// Whether the ring is empty.
    pub fn is_empty(&self) -> bool {
        !self.consumer.ready()
    }
}

impl<R> ErrorType for RxReader<'_, R> {
    type Error = Infallible;
}

impl<R: Resume> ReadReady for RxReader<'_, R> {
    fn read_ready(&mut self) -> Result<bool, Infallible> {
        Ok(self.consumer.ready())
    }
}

impl<R: Resume> Read for RxReader<'_, R> {
    /// Waits for a byte ([`Resume::wait`]; the app asks only when [`ReadReady`] said
    /// one is there), then takes what the ring holds, up to `buf.len()`.
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, Infallible> {
        if buf.is_empty() {
            return Ok(0);
        }
        while self.is_empty() {
            self.resume.wait();
        }
        let mut n = 0;
        for slot in buf.iter_mut() {
            let Some(byte) = self.consumer.dequeue() else {
                break;
            };
            *slot = byte;
            n += 1;
        }
        if n > 0 {
            self.resume.resume();
        }
        Ok(n)
    }
}

/// A board's serial line: input from the receive ring, output through the board's
/// transmitter `T`.
pub struct Line<'a, R, T> {
    rx: RxReader<'a, R>,
    tx: T,
}

impl<'a, R: Resume, T> Line<'a, R, T> {
    /// The line that reads `rx` and writes `tx`.
    pub fn new(rx: RxReader<'a, R>, tx: T) -> Self {
        Self { rx, tx }
    }
}

impl<R, T: ErrorType> ErrorType for Line<'_, R, T> {
    type Error = T::Error;
}

impl<R: Resume, T: ErrorType> ReadReady for Line<'_, R, T> {
    fn read_ready(&mut self) -> Result<bool, T::Error> {
        Ok(!self.rx.is_empty())
    }
}

impl<R: Resume, T: ErrorType> Read for Line<'_, R, T> {
    /// See [`RxReader`]'s `read`: reading the ring cannot fail.
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, T::Error> {
        Ok(self.rx.read(buf).unwrap_or(0))
    }
}

impl<R: Resume, T: Write> Write for Line<'_, R, T> {
    fn write(&mut self, buf: &[u8]) -> Result<usize, T::Error> {
        self.tx.write(buf)
    }

    fn flush(&mut self) -> Result<(), T::Error> {
        self.tx.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;
    use std::collections::VecDeque;
    use std::rc::Rc;

    use proptest::prelude::*;

    /// A receive FIFO of `depth` bytes in front of a host that holds back while the
    /// FIFO is full (QEMU's behaviour; a real host at 115200 baud is slower than the
    /// handler, which this models by the FIFO never overflowing while unmasked).
    struct Uart {
        fifo: VecDeque<u8>,
        depth: usize,
        masked: Rc<Cell<bool>>,
    }

    struct Unmask(Rc<Cell<bool>>);

    impl Resume for Unmask {
        fn resume(&mut self) {
            self.0.set(false);
        }
    }

    #[derive(Debug, Clone)]
    enum Step {
        /// The host sends this many bytes (a burst).
        Send(usize),
        /// The app reads up to this many bytes (0: it is busy computing).
        Read(usize),
    }

    fn steps() -> impl Strategy<Value = Vec<Step>> {
        prop::collection::vec(
            prop_oneof![
                (1usize..3000).prop_map(Step::Send),
                (0usize..64).prop_map(Step::Read),
            ],
            1..60,
        )
    }

    /// Runs `steps`, with the handler called whenever a byte lands in the FIFO while
    /// unmasked, and returns (bytes sent, bytes the app read) in order.
    fn simulate(steps: &[Step], depth: usize) -> (Vec<u8>, Vec<u8>) {
        let mut queue = RxQueue::new();
        let (mut producer, consumer) = queue.split();
        let masked = Rc::new(Cell::new(false));
        let mut uart = Uart {
            fifo: VecDeque::new(),
            depth,
            masked: masked.clone(),
        };
        let mut reader = RxReader::new(consumer, Unmask(masked));
        let (mut sent, mut got) = (Vec::new(), Vec::new());
        let mut pending: VecDeque<u8> = VecDeque::new();
        let mut counter = 0u32;
        let interrupt = |uart: &mut Uart, producer: &mut RxProducer<'_>| {
            if !uart.masked.get() && fill(producer, || uart.fifo.pop_front()) == Fill::Full {
                uart.masked.set(true);
            }
        };
        let deliver = |uart: &mut Uart, pending: &mut VecDeque<u8>, producer: &mut _| {
            // The host's bytes enter the FIFO one at a time while it has room; each
            // arrival raises the (maybe masked) interrupt.
            while uart.fifo.len() < uart.depth {
                let Some(b) = pending.pop_front() else { break };
                uart.fifo.push_back(b);
                interrupt(uart, producer);
            }
        };
        let read = |reader: &mut RxReader<'_, Unmask>, got: &mut Vec<u8>, n: usize| {
            // As the app does: a blocking read only when a byte is there.
            if reader.is_empty() {
                return;
            }
            let mut buf = vec![0u8; n];
            let k = reader.read(&mut buf).unwrap_or(0);
            got.extend_from_slice(&buf[..k]);
        };
        for step in steps {
            match *step {
                Step::Send(n) => {
                    for _ in 0..n {
                        counter = counter.wrapping_mul(1_103_515_245).wrapping_add(12_345);
                        let b = (counter >> 16) as u8;
                        sent.push(b);
                        pending.push_back(b);
                    }
                }
                Step::Read(n) => {
                    read(&mut reader, &mut got, n);
                    // An unmask with bytes waiting pends the interrupt.
                    interrupt(&mut uart, &mut producer);
                }
            }
            deliver(&mut uart, &mut pending, &mut producer);
        }
        // Afterwards the app drains everything.
        while got.len() < sent.len() {
            let before = got.len();
            read(&mut reader, &mut got, 16);
            interrupt(&mut uart, &mut producer);
            deliver(&mut uart, &mut pending, &mut producer);
            if got.len() == before && reader.is_empty() && uart.fifo.is_empty() {
                break;
            }
        }
        (sent, got)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]
        /// Bursts far larger than the ring, read in small chunks with long busy
        /// stretches between them: every byte arrives, once, in order.
        #[test]
        fn bursts_lose_and_reorder_nothing(steps in steps(), depth in 1usize..32) {
            let (sent, got) = simulate(&steps, depth);
            prop_assert_eq!(got, sent);
        }
    }

    #[test]
    fn a_full_ring_leaves_the_byte_in_the_source() {
        let mut queue = RxQueue::new();
        let (mut producer, _consumer) = queue.split();
        let mut source = (0..RX_CAPACITY as u32 + 10).map(|i| i as u8);
        assert_eq!(fill(&mut producer, || source.next()), Fill::Full);
        // The ring holds capacity - 1; the next byte was not taken.
        assert_eq!(source.next(), Some((RX_CAPACITY - 1) as u8));
    }

    #[test]
    fn an_empty_source_drains() {
        let mut queue = RxQueue::new();
        let (mut producer, consumer) = queue.split();
        let mut source = [1u8, 2, 3].into_iter();
        assert_eq!(fill(&mut producer, || source.next()), Fill::Drained);
        let mut reader = RxReader::new(consumer, ());
        let mut buf = [0u8; 8];
        assert_eq!(reader.read(&mut buf).ok(), Some(3));
        assert_eq!(&buf[..3], &[1, 2, 3]);
        assert_eq!(reader.read_ready().ok(), Some(false));
    }
}
