//! Logging, behind the `defmt` feature.
//!
//! With the feature, [`info!`] is `defmt::info!`: the board links a defmt transport
//! on a channel that is not the protocol's UART (semihosting under QEMU), so the line
//! still carries nothing but frames. Without it, the macro expands to nothing and
//! neither the strings nor the formatting reach the image. The app logs only outside
//! measured windows: a log call never shows up in an instruction count.

#[cfg(feature = "defmt")]
macro_rules! info {
    ($($arg:tt)*) => {
        defmt::info!($($arg)*)
    };
}

#[cfg(not(feature = "defmt"))]
macro_rules! info {
    ($($arg:tt)*) => {{}};
}

pub(crate) use info;
