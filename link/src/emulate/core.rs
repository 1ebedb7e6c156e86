//! The cores QEMU can put on the emulated board, and what each needs: the firmware's
//! target triple and QEMU's `-cpu`.

/// A core of the emulated board: QEMU's `-cpu` and the firmware target built for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Core {
    /// Cortex-M0 (`thumbv6m-none-eabi`): no Thumb-2, no 64-bit multiply.
    M0,
    /// Cortex-M3 (`thumbv7m-none-eabi`): the LM3S6965's own core.
    M3,
    /// Cortex-M4 (`thumbv7em-none-eabihf`): DSP instructions and an FPU.
    M4,
}

impl Core {
    /// Every core, in test order.
    pub const ALL: [Core; 3] = [Core::M0, Core::M3, Core::M4];

    /// The firmware's target triple.
    pub fn target(self) -> &'static str {
        match self {
            Core::M0 => "thumbv6m-none-eabi",
            Core::M3 => "thumbv7m-none-eabi",
            Core::M4 => "thumbv7em-none-eabihf",
        }
    }

    /// QEMU's `-cpu`.
    pub fn qemu_cpu(self) -> &'static str {
        match self {
            Core::M0 => "cortex-m0",
            Core::M3 => "cortex-m3",
            Core::M4 => "cortex-m4",
        }
    }

    /// `M0`, `M3`, `M4` (also the suffix of the tests' `TINYVAE_FIRMWARE_*` variables).
    pub fn name(self) -> &'static str {
        match self {
            Core::M0 => "M0",
            Core::M3 => "M3",
            Core::M4 => "M4",
        }
    }
}

impl std::str::FromStr for Core {
    type Err = String;

    /// `m0`, `m3` or `m4` (any case; `cortex-` in front allowed).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let name = s.to_ascii_lowercase();
        let name = name.strip_prefix("cortex-").unwrap_or(&name);
        Core::ALL
            .into_iter()
            .find(|c| c.name().eq_ignore_ascii_case(name))
            .ok_or_else(|| format!("unknown core {s:?}: expected m0, m3 or m4"))
    }
}

impl std::fmt::Display for Core {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.name().to_ascii_lowercase())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_back() {
        for core in Core::ALL {
            assert_eq!(core.to_string().parse::<Core>(), Ok(core));
            assert_eq!(core.qemu_cpu().parse::<Core>(), Ok(core));
        }
        assert!("m7".parse::<Core>().is_err());
    }
}
