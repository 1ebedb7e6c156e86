//! The boards tinyvae runs on, in one table: the firmware folder, the probe-rs chip,
//! the target, the USB ids of the board's serial port and what a user must connect.
//! `tinyvae flash` and `tinyvae serial --port auto` both read it, so a new board is one
//! new row here (and its crate under `firmware/boards/`).
//!
//! [`choose_port`] is the pure half of `--port auto`: it matches a list of port
//! descriptions ([`PortSeen`], from [`ports_seen`] or a test) against the table.

use std::fmt;

use crate::emulate::EMULATED_BOARD;

/// A USB vendor:product id that identifies a board's serial port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UsbId {
    /// Vendor id.
    pub vid: u16,
    /// Product id.
    pub pid: u16,
    /// What carries the serial line, e.g. `ST-LINK/V2-1`.
    pub name: &'static str,
}

impl fmt::Display for UsbId {
    /// `0483:374B`, the way `lsusb` and probe-rs print ids (upper-case hex here).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04X}:{:04X}", self.vid, self.pid)
    }
}

/// How the firmware gets onto a board.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flashing {
    /// Through a debug probe, `probe-rs download --chip <chip>`.
    Probe {
        /// probe-rs's chip name (`probe-rs chip list`).
        chip: &'static str,
    },
    /// Never flashed: QEMU runs the ELF (`tinyvae emulate`).
    Emulated,
}

/// One board tinyvae's firmware runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Board {
    /// The name on the command line, also the folder under `firmware/boards/`.
    pub name: &'static str,
    /// The board's own name, for messages.
    pub title: &'static str,
    /// The firmware crate, relative to the workspace root.
    pub dir: &'static str,
    /// The firmware's target triple (the emulated board's default core; `--core`
    /// picks another there).
    pub target: &'static str,
    /// How the firmware is put on it.
    pub flashing: Flashing,
    /// USB ids of the board's serial port (empty for the emulated board, whose port
    /// is a pty).
    pub usb: &'static [UsbId],
    /// What to plug in before flashing, as a sentence that follows "connect ...".
    pub connect: &'static str,
    /// Whether the chip's boot ROM takes a UF2 file on a USB drive (`--uf2`).
    pub uf2: bool,
}

/// ST-LINK/V2-1 and V3 ids: the Nucleo's serial port is the ST-LINK's virtual COM port.
const ST_LINK: &[UsbId] = &[
    UsbId {
        vid: 0x0483,
        pid: 0x374B,
        name: "ST-LINK/V2-1",
    },
    UsbId {
        vid: 0x0483,
        pid: 0x374E,
        name: "STLINK-V3",
    },
    UsbId {
        vid: 0x0483,
        pid: 0x3752,
        name: "STLINK-V3",
    },
];

/// The Pico firmware's own USB CDC port (`firmware/boards/pico` uses the Raspberry Pi
/// vendor id with the Pico's product id).
const PICO_CDC: &[UsbId] = &[UsbId {
    vid: 0x2E8A,
    pid: 0x000A,
    name: "Raspberry Pi Pico USB CDC",
}];

/// Every board, in the order `--help` lists them.
pub const BOARDS: [Board; 3] = [
    Board {
        name: "nucleo-f411re",
        title: "Nucleo-F411RE",
        dir: "firmware/boards/nucleo-f411re",
        target: "thumbv7em-none-eabihf",
        flashing: Flashing::Probe {
            chip: "STM32F411RETx",
        },
        usb: ST_LINK,
        connect: "connect the Nucleo-F411RE's ST-LINK USB port (CN1, mini-B) to this computer",
        uf2: false,
    },
    Board {
        name: "pico",
        title: "Raspberry Pi Pico",
        dir: "firmware/boards/pico",
        target: "thumbv6m-none-eabi",
        flashing: Flashing::Probe { chip: "RP2040" },
        usb: PICO_CDC,
        connect: "connect a debug probe (a second Pico running debugprobe, or any CMSIS-DAP \
                  probe) to the Pico's SWD pins (SWCLK, GND, SWDIO), or use --uf2",
        uf2: true,
    },
    Board {
        name: "lm3s6965evb",
        title: "LM3S6965 evaluation board (QEMU)",
        dir: EMULATED_BOARD,
        target: "thumbv7m-none-eabi",
        flashing: Flashing::Emulated,
        usb: &[],
        connect: "nothing: QEMU emulates it",
        uf2: false,
    },
];

/// The names of [`BOARDS`], for clap's list of possible values.
pub fn names() -> [&'static str; BOARDS.len()] {
    BOARDS.map(|b| b.name)
}

/// The board called `name` (exactly as in [`Board::name`]).
pub fn board(name: &str) -> Option<&'static Board> {
    BOARDS.iter().find(|b| b.name == name)
}

/// A serial port as the OS reports it: enough to match it against [`BOARDS`] and to
/// name it in an error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortSeen {
    /// The path to open, e.g. `/dev/ttyACM0` or `COM3`.
    pub name: String,
    /// Its USB ids and product string, if it is a USB port.
    pub usb: Option<UsbSeen>,
}

/// The USB side of a [`PortSeen`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsbSeen {
    /// Vendor id.
    pub vid: u16,
    /// Product id.
    pub pid: u16,
    /// The device's product string, if it has one.
    pub product: Option<String>,
}

impl fmt::Display for PortSeen {
    /// `/dev/ttyUSB0 (USB 1A86:7523 "USB Serial")` or `/dev/ttyS0 (not USB)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.usb {
            None => write!(f, "{} (not USB)", self.name),
            Some(usb) => {
                write!(f, "{} (USB {:04X}:{:04X}", self.name, usb.vid, usb.pid)?;
                if let Some(product) = &usb.product {
                    write!(f, " {product:?}")?;
                }
                f.write_str(")")
            }
        }
    }
}

/// The serial ports the OS knows, sorted by name so that "the first" is stable.
///
/// On Linux this needs no libudev: `serialport` built without its `libudev` feature
/// reads the USB ids from `/sys/class/tty/<name>/device/../idVendor` and `idProduct`.
/// It panics when `/sys/class/tty` is missing (some containers), so that case is
/// answered here with no ports.
pub fn ports_seen() -> Result<Vec<PortSeen>, serialport::Error> {
    if cfg!(target_os = "linux") && !std::path::Path::new("/sys/class/tty").is_dir() {
        return Ok(Vec::new());
    }
    let mut ports: Vec<PortSeen> = serialport::available_ports()?
        .into_iter()
        .map(|p| PortSeen {
            usb: match p.port_type {
                serialport::SerialPortType::UsbPort(u) => Some(UsbSeen {
                    vid: u.vid,
                    pid: u.pid,
                    product: u.product,
                }),
                _ => None,
            },
            name: p.port_name,
        })
        .collect();
    ports.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(ports)
}

/// A port that belongs to a known board.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortMatch {
    /// The port's path.
    pub port: String,
    /// The board it belongs to.
    pub board: &'static Board,
    /// The USB id that matched.
    pub id: UsbId,
}

impl fmt::Display for PortMatch {
    /// `/dev/ttyACM0: ST-LINK/V2-1 (Nucleo-F411RE), 0483:374B`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: {} ({}), {}",
            self.port, self.id.name, self.board.title, self.id
        )
    }
}

/// What `--port auto` picked, and what else it could have picked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AutoPort {
    /// The first matching port.
    pub chosen: PortMatch,
    /// Other matching ports, in order.
    pub others: Vec<PortMatch>,
}

impl AutoPort {
    /// What to tell the user: which port, why, and which others were passed over.
    pub fn explain(&self) -> String {
        let mut s = format!("using {}", self.chosen);
        if !self.others.is_empty() {
            s.push_str(&format!(
                "\n{} other board port(s) found, not used (pass --port to pick one):",
                self.others.len()
            ));
            for other in &self.others {
                s.push_str(&format!("\n  {other}"));
            }
        }
        s
    }
}

/// No port belongs to a known board.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", no_board_message(.seen))]
pub struct NoBoardPort {
    /// Every port that was looked at.
    pub seen: Vec<PortSeen>,
}

fn no_board_message(seen: &[PortSeen]) -> String {
    let seen = if seen.is_empty() {
        "none".to_owned()
    } else {
        seen.iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    };
    let wanted = BOARDS
        .iter()
        .flat_map(|b| {
            b.usb
                .iter()
                .map(move |id| format!("{id} ({}, {})", id.name, b.title))
        })
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "no tinyvae board found among the serial ports (seen: {seen}); looked for USB ids \
         {wanted}. Plug the board in, or pass --port PATH (`tinyvae emulate` prints the \
         emulated board's pty)"
    )
}

/// Picks the first port in `ports` whose USB id is a known board's.
///
/// macOS lists each device twice, as `/dev/cu.X` and `/dev/tty.X`; the `tty.` one
/// waits for a carrier signal that a USB CDC port never raises, so it is dropped when
/// its `cu.` twin is present.
pub fn choose_port(ports: &[PortSeen]) -> Result<AutoPort, NoBoardPort> {
    let has = |name: &str| ports.iter().any(|p| p.name == name);
    let mut matches = ports
        .iter()
        .filter(|p| {
            p.name
                .strip_prefix("/dev/tty.")
                .is_none_or(|rest| !has(&format!("/dev/cu.{rest}")))
        })
        .filter_map(|p| {
            let usb = p.usb.as_ref()?;
            BOARDS.iter().find_map(|board| {
                board
                    .usb
                    .iter()
                    .find(|id| id.vid == usb.vid && id.pid == usb.pid)
                    .map(|id| PortMatch {
                        port: p.name.clone(),
                        board,
                        id: *id,
                    })
            })
        });
    match matches.next() {
        Some(chosen) => Ok(AutoPort {
            chosen,
            others: matches.collect(),
        }),
        None => Err(NoBoardPort {
            seen: ports.to_vec(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn usb(name: &str, vid: u16, pid: u16) -> PortSeen {
        PortSeen {
            name: name.into(),
            usb: Some(UsbSeen {
                vid,
                pid,
                product: None,
            }),
        }
    }

    fn plain(name: &str) -> PortSeen {
        PortSeen {
            name: name.into(),
            usb: None,
        }
    }

    #[test]
    fn the_table_is_consistent() {
        for b in &BOARDS {
            assert_eq!(board(b.name), Some(b));
            assert!(b.dir.ends_with(b.name), "{} lives in {}", b.name, b.dir);
            assert!(!b.connect.is_empty());
        }
        assert_eq!(names(), ["nucleo-f411re", "pico", "lm3s6965evb"]);
        assert_eq!(board("nucleo"), None);
        assert_eq!(
            board("nucleo-f411re").map(|b| b.flashing),
            Some(Flashing::Probe {
                chip: "STM32F411RETx"
            })
        );
        assert_eq!(
            board("pico").map(|b| b.flashing),
            Some(Flashing::Probe { chip: "RP2040" })
        );
    }

    #[test]
    fn picks_the_st_link_and_says_why() {
        let ports = [
            plain("/dev/ttyS0"),
            usb("/dev/ttyUSB0", 0x1A86, 0x7523),
            usb("/dev/ttyACM0", 0x0483, 0x374B),
        ];
        let auto = choose_port(&ports).expect("a match");
        assert_eq!(auto.chosen.port, "/dev/ttyACM0");
        assert_eq!(auto.chosen.board.name, "nucleo-f411re");
        assert!(auto.others.is_empty());
        assert_eq!(
            auto.explain(),
            "using /dev/ttyACM0: ST-LINK/V2-1 (Nucleo-F411RE), 0483:374B"
        );
    }

    #[test]
    fn knows_every_st_link_and_the_pico() {
        for (pid, name) in [
            (0x374B, "ST-LINK/V2-1"),
            (0x374E, "STLINK-V3"),
            (0x3752, "STLINK-V3"),
        ] {
            let auto = choose_port(&[usb("/dev/ttyACM3", 0x0483, pid)]).expect("ST-LINK");
            assert_eq!(
                (auto.chosen.board.name, auto.chosen.id.name),
                ("nucleo-f411re", name)
            );
        }
        let auto = choose_port(&[usb("/dev/ttyACM1", 0x2E8A, 0x000A)]).expect("Pico");
        assert_eq!(auto.chosen.board.name, "pico");
        assert_eq!(
            auto.chosen.to_string(),
            "/dev/ttyACM1: Raspberry Pi Pico USB CDC (Raspberry Pi Pico), 2E8A:000A"
        );
        // The right vendor with another product is not a board.
        assert!(choose_port(&[usb("/dev/ttyACM0", 0x0483, 0x5740)]).is_err());
        assert!(choose_port(&[usb("/dev/ttyACM0", 0x2E8A, 0x000C)]).is_err());
    }

    #[test]
    fn several_boards_take_the_first_and_list_the_others() {
        let ports = [
            usb("/dev/ttyACM0", 0x2E8A, 0x000A),
            plain("/dev/ttyS0"),
            usb("/dev/ttyACM1", 0x0483, 0x374E),
            usb("/dev/ttyACM2", 0x0483, 0x374B),
        ];
        let auto = choose_port(&ports).expect("a match");
        assert_eq!(auto.chosen.port, "/dev/ttyACM0");
        let others: Vec<&str> = auto.others.iter().map(|m| m.port.as_str()).collect();
        assert_eq!(others, ["/dev/ttyACM1", "/dev/ttyACM2"]);
        let text = auto.explain();
        assert!(text.starts_with("using /dev/ttyACM0: "), "{text}");
        assert!(text.contains("2 other board port(s)"), "{text}");
        assert!(
            text.contains("/dev/ttyACM1: STLINK-V3 (Nucleo-F411RE), 0483:374E"),
            "{text}"
        );
        assert!(text.contains("/dev/ttyACM2: ST-LINK/V2-1"), "{text}");
    }

    #[test]
    fn macos_prefers_the_callout_device() {
        let ports = [
            usb("/dev/tty.usbmodem1103", 0x0483, 0x374B),
            usb("/dev/cu.usbmodem1103", 0x0483, 0x374B),
        ];
        let auto = choose_port(&ports).expect("a match");
        assert_eq!(auto.chosen.port, "/dev/cu.usbmodem1103");
        assert!(auto.others.is_empty());
        // Alone, the tty. device is still used.
        let auto = choose_port(&ports[..1]).expect("a match");
        assert_eq!(auto.chosen.port, "/dev/tty.usbmodem1103");
    }

    #[test]
    fn no_match_lists_the_ports_seen_and_the_ids_wanted() {
        let mut serial = usb("/dev/ttyUSB0", 0x1A86, 0x7523);
        if let Some(u) = &mut serial.usb {
            u.product = Some("USB Serial".into());
        }
        let err = choose_port(&[plain("/dev/ttyS0"), serial]).expect_err("no board");
        let text = err.to_string();
        for needle in [
            "no tinyvae board found",
            "/dev/ttyS0 (not USB)",
            "/dev/ttyUSB0 (USB 1A86:7523 \"USB Serial\")",
            "0483:374B (ST-LINK/V2-1, Nucleo-F411RE)",
            "0483:374E",
            "0483:3752",
            "2E8A:000A (Raspberry Pi Pico USB CDC, Raspberry Pi Pico)",
            "--port",
        ] {
            assert!(text.contains(needle), "missing {needle:?} in: {text}");
        }
        let none = choose_port(&[]).expect_err("no ports at all");
        assert!(none.to_string().contains("(seen: none)"), "{none}");
    }
}
