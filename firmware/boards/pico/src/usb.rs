//! The protocol's line: a USB CDC ACM serial port on the RP2040's own USB device, so
//! the host needs no adapter (Linux: `/dev/ttyACM*`; the baud rate the host sets is
//! ignored).
//!
//! Receiving is interrupt-driven into the app's shared ring ([`tinyvae_app::rx`]):
//! `USBCTRL_IRQ` polls the USB device (enumeration, control requests, finished
//! packets) and moves what the CDC class has read into the ring. When the ring is full
//! the handler stops reading from the class and masks itself: the class's buffer and
//! then the OUT endpoint fill up, and the USB controller NAKs the host's next packets
//! (USB's own flow control), so nothing is lost however fast the host sends. Masking is
//! needed because the controller keeps its interrupt asserted while an unread packet
//! waits in the endpoint; the reader unmasks and pends it as soon as it has made room
//! ([`ResumeRx`]).
//!
//! Sending happens on the main loop: the reply is written into the class inside a
//! critical section (the device and the class are shared with the interrupt), retrying
//! while the class's buffer is full. Each try also polls the device, so the reply
//! drains even while the interrupt is masked on a full ring. A host that stops reading
//! (its port closed) would keep the buffer full forever: after [`TX_WAIT_LIMIT`] tries
//! without progress (about 100 ms) the rest of the frame is dropped and the host times
//! out; the firmware goes on serving.

use core::cell::RefCell;

use cortex_m::peripheral::NVIC;
use critical_section::Mutex;
use embedded_io::{ErrorKind, ErrorType, Write};
use rp2040_hal::pac::{interrupt, Interrupt};
use rp2040_hal::usb::UsbBus;
use static_cell::StaticCell;
use tinyvae_app::rx::{self, Fill, Line, Resume, RxProducer, RxQueue, RxReader};
use usb_device::bus::UsbBusAllocator;
use usb_device::device::{
    StringDescriptors, UsbDevice, UsbDeviceBuilder, UsbDeviceState, UsbVidPid,
};
use usb_device::UsbError;
use usbd_serial::SerialPort;

/// Raspberry Pi's vendor id with the product id it assigns to CDC serial ports on the
/// Pico (the one the Pico SDK's stdio-over-USB uses), so hosts bind their CDC ACM
/// driver without any setup.
const VID_PID: UsbVidPid = UsbVidPid(0x2E8A, 0x000A);
const MANUFACTURER: &str = "tinyvae";
const PRODUCT: &str = "tinyvae Pico";
/// The same on every board: a per-board number would need the flash chip's unique id,
/// which can only be read with execute-in-place switched off. Two Picos on one host
/// are told apart by their port (`/dev/serial/by-path`).
const SERIAL_NUMBER: &str = "tinyvae-pico";
/// Endpoint 0's packet size: 64 rather than 8 sidesteps the enumeration race that
/// rp2040-hal's `usb` module documents for small control packets.
const EP0_PACKET: u8 = 64;

/// Core cycles between two tries of a blocked send: 10 us at 125 MHz.
const TX_WAIT_CYCLES: u32 = 1_250;
/// Tries of a blocked send (or flush) without progress before the rest of the frame is
/// dropped: about 100 ms. A host that reads gets a 64-byte packet every USB frame
/// (1 ms) at the very least, so only a host that stopped reading reaches it.
const TX_WAIT_LIMIT: u32 = 10_000;

/// The USB device, its CDC ACM class and the ring's writing end: everything the
/// interrupt and the sending main loop share.
struct Usb {
    device: UsbDevice<'static, UsbBus>,
    serial: SerialPort<'static, UsbBus>,
    producer: RxProducer<'static>,
}

/// Shared between `USBCTRL_IRQ` and [`UsbSerial`]'s sending; `None` until
/// [`UsbSerial::init`] (the interrupt is unmasked only afterwards). A reference to
/// [`USB_STATE`] rather than the state itself: `None` is then all zeros and the static
/// lives in .bss, where an `Option<Usb>` (1 KiB) would go to .data, with a copy in
/// flash.
static USB: Mutex<RefCell<Option<&'static mut Usb>>> = Mutex::new(RefCell::new(None));

/// The shared USB state itself, placed once by [`UsbSerial::init`].
static USB_STATE: StaticCell<Usb> = StaticCell::new();

/// The bus allocator: the device and the class borrow it for the firmware's lifetime.
static USB_BUS: StaticCell<UsbBusAllocator<UsbBus>> = StaticCell::new();

impl Usb {
    /// Polls the device and moves what the class has received into the ring; on a
    /// full ring, masks the interrupt until the reader has made room.
    fn service(&mut self) {
        let Self {
            device,
            serial,
            producer,
        } = self;
        device.poll(&mut [&mut *serial]);
        // One byte at a time: `fill` takes a byte only while the ring has room, so the
        // class never hands over a byte the ring cannot hold.
        let source = || {
            let mut byte = [0u8];
            matches!(serial.read(&mut byte), Ok(1)).then_some(byte[0])
        };
        if rx::fill(producer, source) == Fill::Full {
            NVIC::mask(Interrupt::USBCTRL_IRQ);
        }
    }

    /// One try at handing `buf` to the class.
    fn send(&mut self, buf: &[u8]) -> Try<usize> {
        self.service();
        if self.device.state() != UsbDeviceState::Configured {
            return Try::Gone;
        }
        match self.serial.write(buf) {
            Ok(n) => Try::Done(n),
            Err(UsbError::WouldBlock) => Try::Busy,
            Err(_) => Try::Gone,
        }
    }

    /// One try at pushing what the class holds into the endpoint.
    fn flush(&mut self) -> Try<()> {
        self.service();
        if self.device.state() != UsbDeviceState::Configured {
            return Try::Gone;
        }
        match self.serial.flush() {
            Ok(()) => Try::Done(()),
            Err(UsbError::WouldBlock) => Try::Busy,
            Err(_) => Try::Gone,
        }
    }
}

/// The outcome of one try at sending.
enum Try<T> {
    Done(T),
    /// The class's buffer or the endpoint is full: try again.
    Busy,
    /// No host (unplugged, suspended, not yet configured) or a USB error: drop.
    Gone,
}

/// Runs `f` on the shared USB state inside a critical section.
fn with_usb<T>(f: impl FnOnce(&mut Usb) -> Try<T>) -> Try<T> {
    critical_section::with(|cs| match USB.borrow_ref_mut(cs).as_deref_mut() {
        Some(usb) => f(usb),
        None => Try::Gone,
    })
}

#[interrupt]
fn USBCTRL_IRQ() {
    critical_section::with(|cs| match USB.borrow_ref_mut(cs).as_deref_mut() {
        Some(usb) => usb.service(),
        // Unreachable: the interrupt is unmasked only once the state is in place.
        None => NVIC::mask(Interrupt::USBCTRL_IRQ),
    });
}

/// The reader's flow control: lets the handler fill the ring again after it masked
/// itself on a full ring.
pub struct ResumeRx;

impl Resume for ResumeRx {
    /// Pends the interrupt before unmasking it: bytes already waiting in the class and
    /// the endpoint raise no new edge, and the host sends nothing more until they are
    /// read.
    fn resume(&mut self) {
        if !NVIC::is_enabled(Interrupt::USBCTRL_IRQ) {
            NVIC::pend(Interrupt::USBCTRL_IRQ);
            // SAFETY: the handler touches only the shared USB state, behind its
            // critical section; unmasking cannot break a critical section (none is
            // open here).
            unsafe { NVIC::unmask(Interrupt::USBCTRL_IRQ) };
        }
    }

    /// Sleeps until the next interrupt (USB's, or SysTick's every 134 ms).
    fn wait(&mut self) {
        cortex_m::asm::wfi();
    }
}

/// The protocol's line: the receive ring in, USB out.
pub type Serial = Line<'static, ResumeRx, UsbSerial>;

/// What a write or flush that dropped the rest of a frame returns: the host stopped
/// reading or went away.
const DROPPED: ErrorKind = ErrorKind::TimedOut;

/// The protocol's transmitter over USB.
pub struct UsbSerial {
    /// A write gave up: the rest of this frame goes nowhere, until the app's flush
    /// ends the frame (so a dropped frame costs the wait once, not once per call).
    dropping: bool,
}

impl UsbSerial {
    /// Builds the CDC ACM device on `bus` and starts receiving into `rx` by interrupt.
    /// `None` only if the device cannot be described (one string set and a 64-byte
    /// control endpoint always can) or if called twice.
    ///
    /// Call it once the stack is painted: the interrupt's frames must not land on a
    /// stack that is being painted.
    pub fn init(bus: UsbBus, rx: &'static mut RxQueue) -> Option<Serial> {
        let bus = USB_BUS.try_init(UsbBusAllocator::new(bus))?;
        // The class first: it allocates its endpoints before the device is built.
        let serial = SerialPort::new(bus);
        let strings = StringDescriptors::default()
            .manufacturer(MANUFACTURER)
            .product(PRODUCT)
            .serial_number(SERIAL_NUMBER);
        let device = UsbDeviceBuilder::new(bus, VID_PID)
            .strings(&[strings])
            .ok()?
            .max_packet_size_0(EP0_PACKET)
            .ok()?
            .device_class(usbd_serial::USB_CLASS_CDC)
            .build();
        let (producer, consumer) = rx.split();
        let usb = USB_STATE.try_init(Usb {
            device,
            serial,
            producer,
        })?;
        critical_section::with(|cs| USB.borrow(cs).replace(Some(usb)));
        // SAFETY: the handler touches only the shared USB state, now in place, behind
        // its critical section; no critical section is open here.
        unsafe { NVIC::unmask(Interrupt::USBCTRL_IRQ) };
        let tx = Self { dropping: false };
        Some(Line::new(RxReader::new(consumer, ResumeRx), tx))
    }

    /// Retries `attempt` while it reports a full buffer, up to [`TX_WAIT_LIMIT`] times.
    /// [`DROPPED`] when it gives up.
    fn retry<T>(mut attempt: impl FnMut() -> Try<T>) -> Result<T, ErrorKind> {
        for _ in 0..TX_WAIT_LIMIT {
            match attempt() {
                Try::Done(value) => return Ok(value),
                Try::Busy => cortex_m::asm::delay(TX_WAIT_CYCLES),
                Try::Gone => break,
            }
        }
        Err(DROPPED)
    }
}

impl ErrorType for UsbSerial {
    type Error = ErrorKind;
}

impl Write for UsbSerial {
    /// Hands as much of `buf` as fits to the class, waiting (bounded) for room.
    fn write(&mut self, buf: &[u8]) -> Result<usize, ErrorKind> {
        if buf.is_empty() {
            return Ok(0);
        }
        if self.dropping {
            return Err(DROPPED);
        }
        let sent = Self::retry(|| with_usb(|usb| usb.send(buf)));
        self.dropping = sent.is_err();
        sent
    }

    /// Waits (bounded) until the class has handed its last packet to the endpoint;
    /// ends a dropped frame.
    fn flush(&mut self) -> Result<(), ErrorKind> {
        if core::mem::take(&mut self.dropping) {
            return Err(DROPPED);
        }
        Self::retry(|| with_usb(Usb::flush))
    }
}
