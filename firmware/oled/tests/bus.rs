//! What the driver sends on the bus, decoded by a model of the SSD1306 and compared
//! pixel for pixel with the host's rendering of the same screen.
//!
//! A recording I2C bus keeps every write transaction. [`Controller`] replays them the
//! way the SSD1306 reads them (control byte 0x00: commands, 0x40: display data; the
//! addressing mode, column and page windows), refuses any command it does not know,
//! and ends up with the controller's 128x64 1-bit display RAM. The expected picture is
//! the host's `FrameBuffer` with the same screen drawn on it, mapped through
//! [`tinyvae_oled::lit`]. The RAM starts as a noise pattern, so a byte that never
//! arrives shows up as a difference too.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::io::Read as _;
use std::rc::Rc;

use embedded_graphics::pixelcolor::Gray4;
use embedded_graphics::prelude::{Point, Primitive, Size};
use embedded_graphics::primitives::{PrimitiveStyle, Rectangle};
use embedded_graphics::Drawable;
use embedded_hal::i2c::{ErrorKind, ErrorType, I2c, NoAcknowledgeSource, Operation};
use tinyvae_app::testing::{Counter, Line, Memory};
use tinyvae_app::{draw_boot_screen, App, Buffers, Display, Parts, MODEL_IMAGE};
use tinyvae_oled::{lit, Config, Oled, HEIGHT, WIDTH};
use tinyvae_screens::{self as screen, FrameBuffer};
use tinyvae_shared::model::Model;
use tinyvae_shared::pipeline::{self, Workspace};
use tinyvae_shared::protocol::{
    decode_frame, encode_frame, Request, Response, MAX_FRAME, MAX_PAYLOAD,
};

// ---------------------------------------------------------------------------------
// The bus

/// What the bus saw, shared between the test and the driver that owns the bus.
#[derive(Default)]
struct Log {
    /// Every write transaction that was acknowledged: (7-bit address, bytes).
    writes: Vec<(u8, Vec<u8>)>,
    /// Transactions still acknowledged before the module "goes away" (`None`: always).
    acknowledge: Option<usize>,
    /// Transactions refused (the driver must not panic on them).
    refused: usize,
}

/// An I2C bus that records every write transaction.
#[derive(Clone, Default)]
struct Bus(Rc<RefCell<Log>>);

impl Bus {
    /// A bus whose module acknowledges `n` more transactions, then none.
    fn acknowledge(&self, n: Option<usize>) {
        self.0.borrow_mut().acknowledge = n;
    }

    fn take_writes(&self) -> Vec<(u8, Vec<u8>)> {
        std::mem::take(&mut self.0.borrow_mut().writes)
    }

    fn refused(&self) -> usize {
        self.0.borrow().refused
    }
}

impl ErrorType for Bus {
    type Error = ErrorKind;
}

impl I2c for Bus {
    fn transaction(
        &mut self,
        address: u8,
        operations: &mut [Operation<'_>],
    ) -> Result<(), ErrorKind> {
        let mut log = self.0.borrow_mut();
        match &mut log.acknowledge {
            Some(0) => {
                log.refused += 1;
                return Err(ErrorKind::NoAcknowledge(NoAcknowledgeSource::Address));
            }
            Some(n) => *n -= 1,
            None => {}
        }
        let mut bytes = Vec::new();
        for operation in operations {
            match operation {
                Operation::Write(chunk) => bytes.extend_from_slice(chunk),
                Operation::Read(_) => panic!("the SSD1306 driver never reads"),
            }
        }
        log.writes.push((address, bytes));
        Ok(())
    }
}

// ---------------------------------------------------------------------------------
// The controller

/// The SSD1306's display RAM and the settings that decide how the panel shows it.
struct Controller {
    /// 8 pages of 128 columns; bit `y % 8` of `ram[y / 8][x]` is pixel `(x, y)`.
    ram: [[u8; WIDTH]; HEIGHT / 8],
    /// Memory addressing mode (0x20): 0 horizontal, 1 vertical, 2 page (the reset
    /// value).
    mode: u8,
    columns: (usize, usize),
    pages: (usize, usize),
    column: usize,
    page: usize,
    display_on: bool,
    charge_pump: u8,
    multiplex: u8,
    offset: u8,
    start_line: u8,
    segment_remap: bool,
    com_reversed: bool,
    com_pins: u8,
    inverted: bool,
    all_on: bool,
    scrolling: bool,
}

impl Controller {
    /// A controller after power-on (datasheet reset values), its RAM full of noise.
    fn new() -> Self {
        let mut ram = [[0u8; WIDTH]; HEIGHT / 8];
        let mut noise = 0x2545_f491_u32;
        for byte in ram.iter_mut().flatten() {
            noise ^= noise << 13;
            noise ^= noise >> 17;
            noise ^= noise << 5;
            *byte = noise as u8;
        }
        Self {
            ram,
            mode: 2,
            columns: (0, WIDTH - 1),
            pages: (0, HEIGHT / 8 - 1),
            column: 0,
            page: 0,
            display_on: false,
            charge_pump: 0x10,
            multiplex: 63,
            offset: 0,
            start_line: 0,
            segment_remap: false,
            com_reversed: false,
            com_pins: 0x12,
            inverted: false,
            all_on: false,
            scrolling: false,
        }
    }

    /// Replays every transaction addressed to `address`.
    fn replay(&mut self, address: u8, writes: &[(u8, Vec<u8>)]) -> Result<(), String> {
        for (i, (to, bytes)) in writes.iter().enumerate() {
            if *to != address {
                return Err(format!(
                    "transaction {i} went to 0x{to:02X}, not 0x{address:02X}"
                ));
            }
            self.transaction(bytes)
                .map_err(|e| format!("transaction {i} ({bytes:02X?}): {e}"))?;
        }
        Ok(())
    }

    /// One write transaction: a control byte, then commands or data.
    fn transaction(&mut self, bytes: &[u8]) -> Result<(), String> {
        match bytes.split_first() {
            // Co = 0, D/C# = 0: every following byte is a command or its argument.
            Some((0x00, commands)) => self.commands(commands),
            // Co = 0, D/C# = 1: every following byte is display data.
            Some((0x40, data)) => data.iter().try_for_each(|&b| self.data(b)),
            Some((control, _)) => Err(format!("control byte 0x{control:02X} not modelled")),
            None => Err("empty transaction".into()),
        }
    }

    fn commands(&mut self, mut bytes: &[u8]) -> Result<(), String> {
        while let Some((&op, rest)) = bytes.split_first() {
            let arguments = match op {
                0x81 | 0x20 | 0xA8 | 0xD3 | 0xDA | 0xD5 | 0xD9 | 0xDB | 0x8D => 1,
                0x21 | 0x22 => 2,
                _ => 0,
            };
            if rest.len() < arguments {
                return Err(format!("command 0x{op:02X} lacks its arguments"));
            }
            let (args, rest) = rest.split_at(arguments);
            self.command(op, args)?;
            bytes = rest;
        }
        Ok(())
    }

    fn command(&mut self, op: u8, args: &[u8]) -> Result<(), String> {
        match (op, args) {
            // Contrast, clock divider and oscillator, pre-charge, VCOMH: how bright and
            // how fast, not what is shown.
            (0x81 | 0xD5 | 0xD9 | 0xDB, _) => {}
            (0xAE | 0xAF, _) => self.display_on = op == 0xAF,
            (0xA4 | 0xA5, _) => self.all_on = op == 0xA5,
            (0xA6 | 0xA7, _) => self.inverted = op == 0xA7,
            (0x2E | 0x2F, _) => self.scrolling = op == 0x2F,
            (0xA0 | 0xA1, _) => self.segment_remap = op == 0xA1,
            (0xC0 | 0xC8, _) => self.com_reversed = op == 0xC8,
            (0x40..=0x7F, _) => self.start_line = op & 0x3F,
            (0xE3, _) => {}
            (0x20, &[mode]) if mode <= 2 => self.mode = mode,
            (0x21, &[start, end]) if start <= end && usize::from(end) < WIDTH => {
                self.columns = (start.into(), end.into());
                self.column = start.into();
            }
            (0x22, &[start, end]) if start <= end && usize::from(end) < HEIGHT / 8 => {
                self.pages = (start.into(), end.into());
                self.page = start.into();
            }
            (0xA8, &[ratio]) => self.multiplex = ratio,
            (0xD3, &[offset]) => self.offset = offset,
            (0xDA, &[pins]) => self.com_pins = pins,
            (0x8D, &[pump]) => self.charge_pump = pump,
            _ => return Err(format!("unknown command 0x{op:02X} {args:02X?}")),
        }
        Ok(())
    }

    /// One byte of display data, in horizontal addressing: the column advances, and
    /// past the window's last column wraps to its first on the next page.
    fn data(&mut self, byte: u8) -> Result<(), String> {
        if self.mode != 0 {
            return Err(format!(
                "data in addressing mode {} (not modelled)",
                self.mode
            ));
        }
        self.ram[self.page][self.column] = byte;
        if self.column == self.columns.1 {
            self.column = self.columns.0;
            self.page = if self.page == self.pages.1 {
                self.pages.0
            } else {
                self.page + 1
            };
        } else {
            self.column += 1;
        }
        Ok(())
    }

    /// Whether the panel shows the RAM as it is: on, powered, all 64 rows from line 0,
    /// the usual module orientation (columns and rows remapped: column 0 on the left,
    /// page 0 at the top as these modules are mounted), no inversion, no scrolling.
    fn shows_ram_as_is(&self) -> Result<(), String> {
        let settings = [
            ("display on", self.display_on, true),
            ("charge pump on", self.charge_pump == 0x14, true),
            ("64 rows", self.multiplex == 63, true),
            ("no offset", self.offset == 0 && self.start_line == 0, true),
            ("segment remap", self.segment_remap, true),
            ("COM scan reversed", self.com_reversed, true),
            ("alternative COM pins", self.com_pins == 0x12, true),
            ("inverted", self.inverted, false),
            ("all on", self.all_on, false),
            ("scrolling", self.scrolling, false),
        ];
        for (what, got, want) in settings {
            if got != want {
                return Err(format!("{what}: {got}, expected {want}"));
            }
        }
        Ok(())
    }

    fn pixel(&self, x: usize, y: usize) -> bool {
        self.ram[y / 8][x] >> (y % 8) & 1 == 1
    }
}

// ---------------------------------------------------------------------------------
// Helpers

fn model() -> Model<'static> {
    Model::parse(MODEL_IMAGE).expect("the embedded model parses")
}

/// The first `count` digits of the repository's MNIST test split.
fn mnist_digits(count: usize) -> Vec<Vec<u8>> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../data/mnist-10k/test-images-idx3-ubyte.gz"
    );
    let file = std::fs::File::open(path).expect("data/mnist-10k is in the repository");
    let mut bytes = Vec::new();
    flate2::read::GzDecoder::new(file)
        .read_to_end(&mut bytes)
        .expect("the digits decompress");
    assert_eq!(bytes[..4], [0, 0, 8, 3], "IDX image file");
    bytes[16..]
        .chunks(784)
        .take(count)
        .map(<[u8]>::to_vec)
        .collect()
}

/// Asserts that the controller's RAM shows `want` through the dither, and that the
/// panel shows its RAM as it is.
#[track_caller]
fn assert_shows(controller: &Controller, want: &FrameBuffer) {
    if let Err(e) = controller.shows_ram_as_is() {
        panic!("the panel does not show its RAM as is: {e}");
    }
    let mut differing = 0;
    let mut first = None;
    for y in 0..HEIGHT {
        for x in 0..WIDTH {
            let expected = lit(x, y, want.get(x, y));
            if controller.pixel(x, y) != expected {
                differing += 1;
                first.get_or_insert((x, y, expected, want.get(x, y)));
            }
        }
    }
    if let Some((x, y, expected, level)) = first {
        panic!(
            "{differing} pixels differ; the first at ({x}, {y}): the panel has it {}, \
             the host's grey {level} dithers to {}",
            if expected { "off" } else { "on" },
            if expected { "on" } else { "off" },
        );
    }
}

#[track_caller]
fn replay(controller: &mut Controller, bus: &Bus) {
    if let Err(e) = controller.replay(0x3C, &bus.take_writes()) {
        panic!("the controller refuses the stream: {e}");
    }
}

/// An OLED on a recording bus, the controller that bus feeds, and the host's frame
/// that the panel must show.
struct Bench {
    oled: Oled<Bus>,
    bus: Bus,
    controller: Controller,
    want: FrameBuffer,
}

impl Bench {
    /// An OLED on a fresh bus whose module acknowledges `acknowledge` transactions
    /// (`None`: all), and a controller that has taken what was sent so far.
    fn new(acknowledge: Option<usize>) -> Self {
        let bus = Bus::default();
        bus.acknowledge(acknowledge);
        let oled = Oled::new(bus.clone(), Config::default());
        let mut controller = Controller::new();
        replay(&mut controller, &bus);
        Self {
            oled,
            bus,
            controller,
            want: FrameBuffer::new(),
        }
    }

    /// Set up and showing the boot screen.
    fn booted(model: &Model<'_>) -> Self {
        let mut bench = Self::new(None);
        assert!(bench.oled.is_ready());
        bench.show(Target::Boot(model));
        bench
    }

    /// Draws `target` on the OLED and on the host's frame, without flushing.
    fn draw(&mut self, target: Target<'_>) {
        target.draw(&mut self.oled);
        target.draw(&mut self.want);
    }

    /// Draws `target`, flushes, replays and checks the panel.
    #[track_caller]
    fn show(&mut self, target: Target<'_>) {
        self.draw(target);
        self.oled.flush();
        replay(&mut self.controller, &self.bus);
        assert_shows(&self.controller, &self.want);
    }
}

/// What to draw.
#[derive(Clone, Copy)]
enum Target<'a> {
    Boot(&'a Model<'a>),
    Scored(&'a [u8], &'a pipeline::Scored),
    Rectangle(Rectangle, u8),
}

impl Target<'_> {
    fn draw<D: screen::Screen>(self, target: &mut D) {
        match self {
            Target::Boot(model) => draw_boot_screen(target, Some(model)),
            Target::Scored(image, scored) => {
                screen::draw_scored(target, image, &scored.reconstruction, 28, 28, &scored.score)
            }
            Target::Rectangle(area, level) => {
                let _ = area
                    .into_styled(PrimitiveStyle::with_fill(Gray4::new(level)))
                    .draw(target);
            }
        }
    }
}

fn scored(model: &Model<'_>, image: &[u8]) -> pipeline::Scored {
    let mut workspace = Box::new(Workspace::new());
    pipeline::score_image(model, &mut workspace, image, model.threshold).expect("a 28x28 digit")
}

// ---------------------------------------------------------------------------------
// Tests

#[test]
fn the_boot_screen_reaches_the_panel_pixel_for_pixel() {
    Bench::booted(&model());
}

#[test]
fn scored_digits_reach_the_panel_pixel_for_pixel() {
    let model = model();
    let mut bench = Bench::booted(&model);
    for digit in mnist_digits(3) {
        let scored = scored(&model, &digit);
        bench.show(Target::Scored(&digit, &scored));
    }
}

#[test]
fn a_partial_update_lands_in_its_window() {
    let mut bench = Bench::booted(&model());
    // Odd positions and sizes, over page boundaries, several greys: each flush sends
    // only the changed window, and the rest of the RAM must keep the boot screen.
    let areas = [
        (37, 21, 13, 9),
        (0, 0, 1, 1),
        (127, 63, 1, 1),
        (5, 7, 120, 2),
    ];
    for (i, (x, y, w, h)) in areas.into_iter().enumerate() {
        let area = Rectangle::new(Point::new(x, y), Size::new(w, h));
        bench.show(Target::Rectangle(area, (3 + 4 * i as u8) % 16));
    }
}

#[test]
fn the_app_shows_its_screens_through_the_oled() {
    let bus = Bus::default();
    let parts = Parts {
        serial: Line::default(),
        display: Oled::new(bus.clone(), Config::default()),
        counter: Counter::default(),
        footprint: Memory,
    };
    let mut app = App::new(Some(model()), Box::leak(Box::new(Buffers::new())), parts);
    let model = model();
    let mut controller = Controller::new();
    replay(&mut controller, &bus);
    let mut want = FrameBuffer::new();
    draw_boot_screen(&mut want, Some(&model));
    assert_shows(&controller, &want);

    // An encode request through the app: its screen is the scored one.
    let digit = mnist_digits(1).remove(0);
    let request = Request::Encode {
        image: digit.iter().copied().collect(),
    };
    let (mut scratch, mut out) = ([0u8; MAX_PAYLOAD], [0u8; MAX_FRAME]);
    let n = encode_frame(&request, &mut scratch, &mut out).expect("request fits a frame");
    app.parts_mut().serial.input = out[..n].iter().copied().collect::<VecDeque<u8>>();
    while !app.parts().serial.input.is_empty() {
        app.poll();
    }
    let mut reply = std::mem::take(&mut app.parts_mut().serial.output);
    assert_eq!(reply.pop(), Some(0), "one frame back");
    assert!(matches!(
        decode_frame::<Response>(&mut reply),
        Ok(Response::Encoded(_))
    ));
    let scored = scored(&model, &digit);
    Target::Scored(&digit, &scored).draw(&mut want);
    replay(&mut controller, &bus);
    assert_shows(&controller, &want);
}

#[test]
fn a_missing_display_is_set_up_once_it_answers_and_gets_the_whole_frame() {
    let mut bench = Bench::new(Some(0));
    assert!(!bench.oled.is_ready());
    assert_eq!(bench.oled.failures(), 1);
    bench.draw(Target::Boot(&model()));
    bench.oled.flush();
    assert!(!bench.oled.is_ready());
    assert_eq!(bench.oled.failures(), 2);
    assert_eq!(
        bench.bus.refused(),
        2,
        "one refused address per attempt, no more"
    );
    assert!(bench.bus.take_writes().is_empty());

    // The module answers now. A small change is drawn; the flush sets the controller
    // up and sends the whole frame, boot screen included, over the RAM's noise.
    bench.bus.acknowledge(None);
    let dot = Rectangle::new(Point::new(60, 30), Size::new(3, 3));
    bench.show(Target::Rectangle(dot, 9));
    assert!(bench.oled.is_ready());
    assert_eq!(bench.oled.failures(), 2);
}

#[test]
fn a_flush_that_fails_halfway_is_redone_in_full() {
    let mut bench = Bench::new(None);
    bench.draw(Target::Boot(&model()));
    // The module stops answering after 10 transactions of the flush.
    bench.bus.acknowledge(Some(10));
    bench.oled.flush();
    assert!(!bench.oled.is_ready());
    assert_eq!(bench.oled.failures(), 1);
    assert_eq!(
        bench.bus.refused(),
        1,
        "the flush stops at the first refusal"
    );
    bench.bus.take_writes();

    // Back: a one-pixel change brings the whole frame, to a controller that lost its
    // RAM (and its settings) meanwhile.
    bench.bus.acknowledge(None);
    bench.controller = Controller::new();
    let dot = Rectangle::new(Point::new(100, 50), Size::new(1, 1));
    bench.show(Target::Rectangle(dot, 15));
    assert!(bench.oled.is_ready());
}

#[test]
fn the_address_is_configurable() {
    let bus = Bus::default();
    let mut config = Config::default();
    config.address = 0x3D;
    let mut oled = Oled::new(bus.clone(), config);
    draw_boot_screen(&mut oled, Some(&model()));
    oled.flush();
    let writes = bus.take_writes();
    assert!(!writes.is_empty());
    assert!(writes.iter().all(|(address, _)| *address == 0x3D));
    let mut controller = Controller::new();
    controller
        .replay(0x3D, &writes)
        .expect("the controller takes the stream");
}

#[test]
fn the_controller_model_refuses_what_it_does_not_know() {
    let mut controller = Controller::new();
    assert!(
        controller.transaction(&[0x00, 0xFF]).is_err(),
        "unknown command"
    );
    assert!(
        controller.transaction(&[0x00, 0x21, 0]).is_err(),
        "missing argument"
    );
    assert!(
        controller.transaction(&[0x80, 0xAF]).is_err(),
        "Co = 1 not modelled"
    );
    assert!(
        controller.transaction(&[0x40, 0xFF]).is_err(),
        "data in page mode"
    );
    assert!(
        controller.transaction(&[0x00, 0x22, 0, 8]).is_err(),
        "page 8"
    );
    // Horizontal addressing wraps within the window.
    controller
        .transaction(&[0x00, 0x20, 0x00, 0x21, 10, 11, 0x22, 2, 3])
        .expect("window");
    controller
        .transaction(&[0x40, 1, 2, 3, 4, 5])
        .expect("data");
    assert_eq!(controller.ram[2][11], 2);
    assert_eq!((controller.ram[3][10], controller.ram[3][11]), (3, 4));
    // Past the window's last page the column and the page start over.
    assert_eq!(controller.ram[2][10], 5);
    assert_eq!((controller.column, controller.page), (11, 2));
}
