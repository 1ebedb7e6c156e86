//! Simulated sensor faults, used to check that the anomaly score flags broken
//! inputs and not only unfamiliar classes. Every corruption is seeded.
//!
//! Twenty-two kinds in five [`Family`]s: what a fault adds to the reading
//! ([`Family::Additive`]), removes from it ([`Family::Subtractive`]), what a lens or a
//! light does to it ([`Family::Optical`]), where the frame lands ([`Family::Geometric`])
//! and frames that are not one clean view of one object ([`Family::Content`]).
//!
//! Each kind has a default severity, what the sensor fault it stands for would show on
//! a 28x28 digit (written in its doc comment and [`Corruption::description`]), and
//! scales with [`Corruption::apply_at`]'s `severity`: 1 is the default, 0 (nearly) no
//! fault, more is stronger. The severities are the faults', not tuned to make any
//! detector look good or bad.
//!
//! The seven kinds of [`Corruption::PIXEL_FAULTS`] (the first seven of
//! [`Corruption::ALL`]) draw exactly the random numbers and give exactly the bytes they
//! always did: denoising checkpoints, the firmware's demo frames and the end-to-end
//! tests were made with them.

use serde::Serialize;

use crate::dataset::Dataset;
use crate::rng::SeededRng;

/// What a fault does to the reading, broadly.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Family {
    /// Something is added on top of the scene: noise, hot pixels, offset.
    Additive,
    /// Part of the scene is missing: dead pixels, lines, regions, something in the way.
    Subtractive,
    /// Lens and light: blur, falloff, gain.
    Optical,
    /// The scene is all there but not where or how large it should be.
    Geometric,
    /// The frame is not a clean view of one object: two frames, an inverted one, none.
    Content,
}

impl Family {
    /// Every family, in report order.
    pub const ALL: [Family; 5] = [
        Family::Additive,
        Family::Subtractive,
        Family::Optical,
        Family::Geometric,
        Family::Content,
    ];

    /// Lower-case name used in reports.
    pub fn name(self) -> &'static str {
        match self {
            Family::Additive => "additive",
            Family::Subtractive => "subtractive",
            Family::Optical => "optical",
            Family::Geometric => "geometric",
            Family::Content => "content",
        }
    }
}

/// A kind of sensor fault. The doc comment of each gives its default severity (1.0)
/// and how [`Corruption::apply_at`]'s severity `s` scales it (`s` below 0 counts as 0).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Corruption {
    /// Additive Gaussian noise, sigma = 0.25 of full scale (a noisy, badly shielded
    /// readout). Sigma scales with `s`.
    Noise,
    /// 15% of pixels read 0 (dead). The fraction scales with `s` (at most all).
    DeadPixels,
    /// 3% of pixels read 255 (stuck hot). The fraction scales with `s`.
    StuckPixels,
    /// A 9x9 patch near the centre covered (reads 0): part of the stroke vanishes.
    /// The patch's area scales with `s` (side `9 sqrt(s)`).
    Occlusion,
    /// Offset drift: every pixel reads 64 counts (25%) too high. The offset scales
    /// with `s`.
    Drift,
    /// One row and one column stuck at full scale (a readout line fault). Below 1,
    /// `s` is the stuck level (`255 s`, where above the pixel); above 1, `ceil(s)` row
    /// and column pairs.
    StuckLines,
    /// Salt-and-pepper: 5% of pixels flip to 0 or 255. The fraction scales with `s`.
    SaltPepper,
    /// A square block of the sensor, 10x10 to 14x14 pixels, reads 0 (a dead region,
    /// a flake of dirt on the die); placed anywhere it covers ink of the digit. The
    /// block's area scales with `s`.
    DeadRegion,
    /// 4 rows or 4 columns read 0 (a failing line driver, lost readout lines), drawn
    /// among the lines that cross the digit: a lost line on blank background changes
    /// no reading. The number of lines is `round(4 s)`.
    LineDropout,
    /// A 9x9 patch near the centre reads full scale: glare, or a finger lit from the
    /// front. The patch's area scales with `s`, as [`Corruption::Occlusion`]'s.
    BrightOcclusion,
    /// Out of focus: a Gaussian blur of sigma 1.5 pixels. Sigma scales with `s`.
    Defocus,
    /// Motion blur: the average along a 7-pixel line in a random direction (the sensor
    /// or the object moved during the exposure). The length scales with `s`.
    MotionBlur,
    /// Vignetting: brightness falls off with the square of the distance from the
    /// optical centre (up to 4 pixels off the frame's: a cheap, misaligned lens), to
    /// 10% at the corners. The fall-off (90% at the corners) scales with `s`.
    Vignetting,
    /// Gain fault: every reading halved (x0.5, a low-contrast frame). The gain is
    /// `0.5^s`.
    Gain,
    /// Gain x3 clipped at 255 (an exposure far too long): the digit becomes a fat
    /// binary blob. The gain is `3^s`.
    Saturation,
    /// The whole frame shifted 5 to 7 pixels in a random direction, the uncovered
    /// part reading 0 (a loose mount, a cropping offset). The distance scales with `s`.
    Shift,
    /// The frame rotated by 60 to 120 degrees either way, or (one time in four) by
    /// 180, about its centre (bilinear, 0 outside): a mount knocked sideways or
    /// upside down, not the +-15 degrees digits naturally vary by. The angle scales
    /// with `s`, up to 180 degrees.
    Rotation,
    /// The frame zoomed about its centre by x1.6 to x2.0, or (one time in two) by
    /// x0.5 (bilinear, 0 outside): wrong optics or working distance. The factor is
    /// `f^s`.
    Scale,
    /// A torn frame: the top half of this frame above the bottom half of another one
    /// from the same sensor (two halves from different moments). The torn part is
    /// `s / 2` of the height, from the bottom, at most 3/4 (a frame torn everywhere would
    /// be the other frame, whole).
    Torn,
    /// A second object in view: another frame of the same sensor laid over this one
    /// (pixel-wise maximum). The other frame's brightness scales with `s`.
    Overlay,
    /// Inverted polarity (`255 - p`): a sign error, a negative image. Polarity is
    /// flipped or not: from `s = 0.5` on the frame is inverted, below it is untouched
    /// (half way to its inverse would be a flat grey frame, another fault).
    Inverted,
    /// No scene at all: a frame of uniform random pixels (a disconnected sensor's
    /// floating input). Below 1 the reading is `s` of the way to the noise.
    PureNoise,
}

impl Corruption {
    /// Every corruption, in report order: the seven [`Corruption::PIXEL_FAULTS`] first,
    /// then the others family by family.
    pub const ALL: [Corruption; 22] = [
        Corruption::Noise,
        Corruption::DeadPixels,
        Corruption::StuckPixels,
        Corruption::Occlusion,
        Corruption::Drift,
        Corruption::StuckLines,
        Corruption::SaltPepper,
        Corruption::DeadRegion,
        Corruption::LineDropout,
        Corruption::BrightOcclusion,
        Corruption::Defocus,
        Corruption::MotionBlur,
        Corruption::Vignetting,
        Corruption::Gain,
        Corruption::Saturation,
        Corruption::Shift,
        Corruption::Rotation,
        Corruption::Scale,
        Corruption::Torn,
        Corruption::Overlay,
        Corruption::Inverted,
        Corruption::PureNoise,
    ];

    /// The seven pixel-level faults tinyvae started with, in their old order: what
    /// denoising is trained and reported against (the denoise report's benchmark
    /// numbers, `serial denoise --corrupt all`), so those stay comparable.
    pub const PIXEL_FAULTS: [Corruption; 7] = [
        Corruption::Noise,
        Corruption::DeadPixels,
        Corruption::StuckPixels,
        Corruption::Occlusion,
        Corruption::Drift,
        Corruption::StuckLines,
        Corruption::SaltPepper,
    ];

    /// Kinds kept out of tuning detectors (thresholds, score choices), to measure how
    /// a detector does on faults it was not tuned on. Each has a tuned cousin in its
    /// family, so they test generalisation to a new fault of a known kind rather than
    /// to a whole unseen family: line-dropout (subtractive; dead-pixels, dead-region
    /// and stuck-lines are tuned), motion-blur (a directional blur; defocus is tuned),
    /// vignetting (a gain that varies over the frame; gain is tuned) and torn (two
    /// moments in one frame; shift and overlay are tuned).
    pub const HELD_OUT: [Corruption; 4] = [
        Corruption::LineDropout,
        Corruption::MotionBlur,
        Corruption::Vignetting,
        Corruption::Torn,
    ];

    /// Whether this kind is one of [`Corruption::HELD_OUT`].
    pub fn held_out(self) -> bool {
        Corruption::HELD_OUT.contains(&self)
    }

    /// The kind's family.
    pub fn family(self) -> Family {
        use Corruption::*;
        match self {
            Noise | StuckPixels | Drift | StuckLines | SaltPepper => Family::Additive,
            DeadPixels | Occlusion | DeadRegion | LineDropout | BrightOcclusion => {
                Family::Subtractive
            }
            Defocus | MotionBlur | Vignetting | Gain | Saturation => Family::Optical,
            Shift | Rotation | Scale | Torn => Family::Geometric,
            Overlay | Inverted | PureNoise => Family::Content,
        }
    }

    /// Short name used in reports (kebab-case).
    pub fn name(self) -> &'static str {
        match self {
            Corruption::Noise => "noise",
            Corruption::DeadPixels => "dead-pixels",
            Corruption::StuckPixels => "stuck-pixels",
            Corruption::Occlusion => "occlusion",
            Corruption::Drift => "drift",
            Corruption::StuckLines => "stuck-lines",
            Corruption::SaltPepper => "salt-pepper",
            Corruption::DeadRegion => "dead-region",
            Corruption::LineDropout => "line-dropout",
            Corruption::BrightOcclusion => "bright-occlusion",
            Corruption::Defocus => "defocus",
            Corruption::MotionBlur => "motion-blur",
            Corruption::Vignetting => "vignetting",
            Corruption::Gain => "gain",
            Corruption::Saturation => "saturation",
            Corruption::Shift => "shift",
            Corruption::Rotation => "rotation",
            Corruption::Scale => "scale",
            Corruption::Torn => "torn",
            Corruption::Overlay => "overlay",
            Corruption::Inverted => "inverted",
            Corruption::PureNoise => "pure-noise",
        }
    }

    /// What the fault does at its default severity, in one line.
    pub fn description(self) -> &'static str {
        match self {
            Corruption::Noise => "Gaussian noise, sigma 25% of full scale",
            Corruption::DeadPixels => "15% of pixels read 0",
            Corruption::StuckPixels => "3% of pixels read 255 (hot)",
            Corruption::Occlusion => "a 9x9 patch near the centre reads 0",
            Corruption::Drift => "offset: every pixel reads 64 counts (25%) high",
            Corruption::StuckLines => "one row and one column stuck at 255",
            Corruption::SaltPepper => "5% of pixels flip to 0 or 255",
            Corruption::DeadRegion => "a 10x10 to 14x14 block over the digit reads 0",
            Corruption::LineDropout => "4 rows or 4 columns across the digit read 0",
            Corruption::BrightOcclusion => "a 9x9 patch near the centre reads 255 (glare)",
            Corruption::Defocus => "out of focus: Gaussian blur, sigma 1.5 px",
            Corruption::MotionBlur => "motion blur: 7 px line in a random direction",
            Corruption::Vignetting => "brightness falls off to 10% at the corners",
            Corruption::Gain => "gain x0.5: a low-contrast frame",
            Corruption::Saturation => "gain x3 clipped at 255: a fat binary blob",
            Corruption::Shift => "frame shifted 5-7 px in a random direction",
            Corruption::Rotation => "frame rotated 60-120 degrees either way, or 180",
            Corruption::Scale => "frame zoomed x1.6-2.0, or x0.5",
            Corruption::Torn => "top half of this frame, bottom half of another",
            Corruption::Overlay => "another frame laid over this one (max)",
            Corruption::Inverted => "inverted polarity: 255 - p",
            Corruption::PureNoise => "no scene: uniform random pixels",
        }
    }

    /// Whether [`Corruption::apply`] reads its `other` frame.
    pub fn uses_other(self) -> bool {
        matches!(self, Corruption::Torn | Corruption::Overlay)
    }

    /// The corruption called `name` (as [`Corruption::name`] spells it).
    pub fn from_name(name: &str) -> Option<Corruption> {
        Corruption::ALL.into_iter().find(|c| c.name() == name)
    }

    /// A comma-separated list of names, `all` for [`Corruption::ALL`] or `pixel` for
    /// [`Corruption::PIXEL_FAULTS`] (the seven kinds `all` meant before the fault model
    /// grew), without repeats and in the order given: what `--denoise` and similar flags
    /// take.
    pub fn parse_list(list: &str) -> Result<Vec<Corruption>, UnknownCorruption> {
        match list.trim() {
            "all" => return Ok(Corruption::ALL.to_vec()),
            "pixel" => return Ok(Corruption::PIXEL_FAULTS.to_vec()),
            _ => {}
        }
        let mut out = Vec::new();
        for name in list.split(',').map(str::trim) {
            let kind = Corruption::from_name(name).ok_or_else(|| UnknownCorruption {
                name: name.to_string(),
            })?;
            if !out.contains(&kind) {
                out.push(kind);
            }
        }
        Ok(out)
    }

    /// A corrupted copy of `img` (`w` x `h` bytes) at the default severity: see
    /// [`Corruption::apply_at`].
    pub fn apply(
        self,
        img: &[u8],
        other: &[u8],
        w: usize,
        h: usize,
        rng: &mut SeededRng,
    ) -> Vec<u8> {
        self.apply_at(img, other, w, h, 1.0, rng)
    }

    /// A corrupted copy of `img` (`w` x `h` bytes) at `severity` (1 = the default of
    /// the kind's doc comment, 0 = no fault, more = stronger; below 0 counts as 0).
    /// `other` is a different frame of the same sensor (`w` x `h` bytes), which
    /// [`Corruption::Torn`] and [`Corruption::Overlay`] read (missing pixels read 0)
    /// and the other kinds ignore. Every random choice comes from `rng`; the seven
    /// [`Corruption::PIXEL_FAULTS`] draw from it exactly as they always did.
    pub fn apply_at(
        self,
        img: &[u8],
        other: &[u8],
        w: usize,
        h: usize,
        severity: f64,
        rng: &mut SeededRng,
    ) -> Vec<u8> {
        let s = severity.max(0.0); // NaN counts as 0 too
        let mut out = img.to_vec();
        match self {
            Corruption::Noise => {
                let sigma = 0.25 * 255.0 * s;
                for p in &mut out {
                    let v = f64::from(*p) + sigma * rng.normal();
                    *p = v.round().clamp(0.0, 255.0) as u8;
                }
            }
            Corruption::DeadPixels => {
                let frac = 0.15 * s;
                for p in &mut out {
                    if rng.uniform() < frac {
                        *p = 0;
                    }
                }
            }
            Corruption::StuckPixels => {
                let frac = 0.03 * s;
                for p in &mut out {
                    if rng.uniform() < frac {
                        *p = 255;
                    }
                }
            }
            Corruption::Occlusion | Corruption::BrightOcclusion => {
                let level = if self == Corruption::Occlusion {
                    0
                } else {
                    255
                };
                let side = ((9.0 * s.sqrt()).round() as usize).min(w).min(h);
                let x0 = w / 4 + rng.below((w / 2).saturating_sub(side).max(1));
                let y0 = h / 4 + rng.below((h / 2).saturating_sub(side).max(1));
                fill_block(&mut out, w, h, (x0, y0), side, level);
            }
            Corruption::Drift => {
                let offset = (64.0 * s).round().min(255.0) as u8;
                for p in &mut out {
                    *p = p.saturating_add(offset);
                }
            }
            Corruption::StuckLines => {
                let pairs = s.ceil().max(1.0) as usize;
                let level = (255.0 * s.min(1.0)).round() as u8;
                for _ in 0..pairs {
                    let r = rng.below(h);
                    let c = rng.below(w);
                    for x in 0..w {
                        out[r * w + x] = out[r * w + x].max(level);
                    }
                    for y in 0..h {
                        out[y * w + c] = out[y * w + c].max(level);
                    }
                }
            }
            Corruption::SaltPepper => {
                let (pepper, salt) = (0.025 * s, 0.05 * s);
                for p in &mut out {
                    let u = rng.uniform();
                    if u < pepper {
                        *p = 0;
                    } else if u < salt {
                        *p = 255;
                    }
                }
            }
            Corruption::DeadRegion => {
                let drawn = 10 + rng.below(5);
                let side = ((drawn as f64 * s.sqrt()).round() as usize).min(w).min(h);
                let ink = ink_pixels(img);
                let at = if ink.is_empty() {
                    rng.below((w * h).max(1))
                } else {
                    ink[rng.below(ink.len())]
                };
                let (ix, iy) = (at % w.max(1), at / w.max(1));
                let x0 = ix.saturating_sub(rng.below(side.max(1))).min(w - side);
                let y0 = iy.saturating_sub(rng.below(side.max(1))).min(h - side);
                fill_block(&mut out, w, h, (x0, y0), side, 0);
            }
            Corruption::LineDropout => {
                let columns = rng.below(2) == 1;
                let (lines, across) = if columns { (w, h) } else { (h, w) };
                let at = |line: usize, k: usize| if columns { k * w + line } else { line * w + k };
                let mut inked: Vec<usize> = (0..lines)
                    .filter(|&l| (0..across).any(|k| img.get(at(l, k)).is_some_and(|&p| p > 0)))
                    .collect();
                if inked.is_empty() {
                    inked = (0..lines).collect();
                }
                rng.shuffle(&mut inked);
                let n = ((4.0 * s).round() as usize).min(inked.len());
                for &l in &inked[..n] {
                    for k in 0..across {
                        out[at(l, k)] = 0;
                    }
                }
            }
            Corruption::Defocus => out = gaussian_blur(img, w, h, 1.5 * s),
            Corruption::MotionBlur => {
                let angle = rng.uniform() * std::f64::consts::PI;
                out = line_blur(img, w, h, 7.0 * s, angle);
            }
            Corruption::Vignetting => {
                let ox = rng.uniform_range(-4.0, 4.0);
                let oy = rng.uniform_range(-4.0, 4.0);
                let (cx, cy) = ((w as f64 - 1.0) / 2.0, (h as f64 - 1.0) / 2.0);
                let corner2 = (cx * cx + cy * cy).max(1.0);
                for y in 0..h {
                    for x in 0..w {
                        let (dx, dy) = (x as f64 - cx - ox, y as f64 - cy - oy);
                        let gain = (1.0 - 0.9 * s * (dx * dx + dy * dy) / corner2).clamp(0.0, 1.0);
                        out[y * w + x] = to_u8(f64::from(img[y * w + x]) * gain);
                    }
                }
            }
            Corruption::Gain | Corruption::Saturation => {
                let base: f64 = if self == Corruption::Gain { 0.5 } else { 3.0 };
                let gain = base.powf(s);
                for p in &mut out {
                    *p = to_u8(f64::from(*p) * gain);
                }
            }
            Corruption::Shift => {
                let angle = rng.uniform() * std::f64::consts::TAU;
                let dist = rng.uniform_range(5.0, 7.0) * s;
                let dx = (dist * angle.cos()).round() as isize;
                let dy = (dist * angle.sin()).round() as isize;
                out = warp(img, w, h, |x, y| (x - dx as f64, y - dy as f64));
            }
            Corruption::Rotation => {
                let half_turn = rng.uniform() < 0.25;
                let degrees = rng.uniform_range(60.0, 120.0);
                let sign = if rng.below(2) == 0 { -1.0 } else { 1.0 };
                let base = if half_turn { 180.0 } else { sign * degrees };
                let theta = (base * s).clamp(-180.0, 180.0).to_radians();
                let (sin, cos) = theta.sin_cos();
                let (cx, cy) = ((w as f64 - 1.0) / 2.0, (h as f64 - 1.0) / 2.0);
                // Each output pixel reads the input at the inverse rotation.
                out = warp(img, w, h, |x, y| {
                    let (dx, dy) = (x - cx, y - cy);
                    (cx + cos * dx + sin * dy, cy - sin * dx + cos * dy)
                });
            }
            Corruption::Scale => {
                let shrink = rng.uniform() < 0.5;
                let zoom = rng.uniform_range(1.6, 2.0);
                let factor = if shrink { 0.5f64 } else { zoom }.powf(s);
                let (cx, cy) = ((w as f64 - 1.0) / 2.0, (h as f64 - 1.0) / 2.0);
                out = warp(img, w, h, |x, y| {
                    (cx + (x - cx) / factor, cy + (y - cy) / factor)
                });
            }
            Corruption::Torn => {
                let torn = (s / 2.0).min(0.75);
                let tear = ((h as f64) * (1.0 - torn)).round().clamp(0.0, h as f64) as usize;
                for (k, p) in out.iter_mut().enumerate().skip(tear * w) {
                    *p = other.get(k).copied().unwrap_or(0);
                }
            }
            Corruption::Overlay => {
                for (k, p) in out.iter_mut().enumerate() {
                    let q = f64::from(other.get(k).copied().unwrap_or(0));
                    *p = (*p).max(to_u8(q * s));
                }
            }
            Corruption::Inverted => {
                if s >= 0.5 {
                    for p in &mut out {
                        *p = 255 - *p;
                    }
                }
            }
            Corruption::PureNoise => {
                let t = s.min(1.0);
                for p in &mut out {
                    let u = rng.below(256) as f64;
                    *p = to_u8((1.0 - t) * f64::from(*p) + t * u);
                }
            }
        }
        out
    }
}

/// `v` rounded and clamped to a reading.
fn to_u8(v: f64) -> u8 {
    v.round().clamp(0.0, 255.0) as u8
}

/// Sets the `side` x `side` block at `(x0, y0)` (clipped to the frame) to `level`.
fn fill_block(
    out: &mut [u8],
    w: usize,
    h: usize,
    (x0, y0): (usize, usize),
    side: usize,
    level: u8,
) {
    for y in y0..(y0 + side).min(h) {
        for x in x0..(x0 + side).min(w) {
            out[y * w + x] = level;
        }
    }
}

/// Indices of the digit's ink: pixels at half scale or more, else any lit pixel.
fn ink_pixels(img: &[u8]) -> Vec<usize> {
    let strong: Vec<usize> = (0..img.len()).filter(|&k| img[k] >= 128).collect();
    if strong.is_empty() {
        (0..img.len()).filter(|&k| img[k] > 0).collect()
    } else {
        strong
    }
}

/// The reading at `(x, y)` by bilinear interpolation, 0 outside the frame.
fn bilinear(img: &[u8], w: usize, h: usize, x: f64, y: f64) -> f64 {
    let (x0, y0) = (x.floor(), y.floor());
    let (fx, fy) = (x - x0, y - y0);
    let at = |xi: f64, yi: f64| -> f64 {
        if xi < 0.0 || yi < 0.0 || xi >= w as f64 || yi >= h as f64 {
            0.0
        } else {
            f64::from(img[yi as usize * w + xi as usize])
        }
    };
    let top = at(x0, y0) * (1.0 - fx) + at(x0 + 1.0, y0) * fx;
    let bottom = at(x0, y0 + 1.0) * (1.0 - fx) + at(x0 + 1.0, y0 + 1.0) * fx;
    top * (1.0 - fy) + bottom * fy
}

/// A geometric transform: output pixel `(x, y)` reads `img` at `source(x, y)`
/// (bilinear, 0 outside).
fn warp(img: &[u8], w: usize, h: usize, source: impl Fn(f64, f64) -> (f64, f64)) -> Vec<u8> {
    let mut out = vec![0u8; w * h];
    for y in 0..h {
        for x in 0..w {
            let (sx, sy) = source(x as f64, y as f64);
            out[y * w + x] = to_u8(bilinear(img, w, h, sx, sy));
        }
    }
    out
}

/// A separable Gaussian blur of standard deviation `sigma` pixels (0 outside the
/// frame: the dark surround of the scene). Below 0.05 pixels, a copy.
fn gaussian_blur(img: &[u8], w: usize, h: usize, sigma: f64) -> Vec<u8> {
    if sigma < 0.05 {
        return img.to_vec();
    }
    let radius = (3.0 * sigma).ceil() as isize;
    let kernel: Vec<f64> = (-radius..=radius)
        .map(|k| (-((k * k) as f64) / (2.0 * sigma * sigma)).exp())
        .collect();
    let total: f64 = kernel.iter().sum();
    let pass = |src: &[f64], horizontal: bool| -> Vec<f64> {
        let mut dst = vec![0.0; w * h];
        for y in 0..h as isize {
            for x in 0..w as isize {
                let mut acc = 0.0;
                for (i, &k) in kernel.iter().enumerate() {
                    let d = i as isize - radius;
                    let (sx, sy) = if horizontal { (x + d, y) } else { (x, y + d) };
                    if sx >= 0 && sy >= 0 && sx < w as isize && sy < h as isize {
                        acc += k * src[sy as usize * w + sx as usize];
                    }
                }
                dst[y as usize * w + x as usize] = acc / total;
            }
        }
        dst
    };
    let src: Vec<f64> = img.iter().map(|&p| f64::from(p)).collect();
    pass(&pass(&src, true), false)
        .into_iter()
        .map(to_u8)
        .collect()
}

/// The mean of `img` along a line of `length` pixels centred on each pixel, at
/// `angle` radians (bilinear samples one pixel or less apart, 0 outside). Below one
/// pixel, a copy.
fn line_blur(img: &[u8], w: usize, h: usize, length: f64, angle: f64) -> Vec<u8> {
    if length < 1.0 {
        return img.to_vec();
    }
    let samples = length.ceil() as usize + 1;
    let (sin, cos) = angle.sin_cos();
    let mut out = vec![0u8; w * h];
    for y in 0..h {
        for x in 0..w {
            let mut acc = 0.0;
            for k in 0..samples {
                let t = length * (k as f64 / (samples - 1) as f64 - 0.5);
                acc += bilinear(img, w, h, x as f64 + t * cos, y as f64 + t * sin);
            }
            out[y * w + x] = to_u8(acc / samples as f64);
        }
    }
    out
}

/// A name that is no [`Corruption`] (its message lists the valid ones).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown fault kind {name:?}: expected a comma-separated list of {}, or all, or pixel",
    valid_names()
)]
pub struct UnknownCorruption {
    /// The name given.
    pub name: String,
}

/// Every [`Corruption::name`], comma separated.
pub fn valid_names() -> String {
    Corruption::ALL.map(Corruption::name).join(", ")
}

/// The frame image `i` of `n` is paired with as [`Corruption::apply`]'s `other`: the
/// next one, wrapping around (never `i` itself when `n > 1`; `i` when `n == 1`).
pub fn other_index(i: usize, n: usize) -> usize {
    if n <= 1 {
        i
    } else {
        (i + 1) % n
    }
}

/// A corrupted copy of every image of `ds`, cycling through [`Corruption::ALL`]
/// (image `i` gets corruption `i mod 22`), each seeded by `(seed, "corrupt", i)`, its
/// `other` frame image [`other_index`]`(i)` (clean).
pub fn corrupt_dataset(ds: &Dataset, seed: u64) -> (Dataset, Vec<Corruption>) {
    let kinds: Vec<Corruption> = (0..ds.len())
        .map(|i| Corruption::ALL[i % Corruption::ALL.len()])
        .collect();
    (corrupt_with(ds, &kinds, seed), kinds)
}

/// A corrupted copy of every image of `ds`, image `i` with `kinds[i % kinds.len()]`
/// (none when `kinds` is empty), seeded and paired as [`corrupt_dataset`] does: what
/// it does with a list of kinds of one's own (e.g. [`Corruption::PIXEL_FAULTS`]).
pub fn corrupt_with(ds: &Dataset, kinds: &[Corruption], seed: u64) -> Dataset {
    if kinds.is_empty() {
        return ds.clone();
    }
    corrupt_frames(ds, format!("{} (corrupted)", ds.source), |i| {
        let rng = SeededRng::stream(seed, "corrupt", i as u64);
        (kinds[i % kinds.len()], 1.0, rng)
    })
}

/// Every frame `i` of `ds` with the fault `draw(i)` gives it (kind, severity and the
/// generator its draws come from), paired with frame [`other_index`]`(i)` (clean):
/// the loop every corrupting function here shares.
fn corrupt_frames(
    ds: &Dataset,
    source: String,
    mut draw: impl FnMut(usize) -> (Corruption, f64, SeededRng),
) -> Dataset {
    let mut out = ds.clone();
    let (n, d) = (ds.len(), ds.image_len());
    for i in 0..n {
        let (kind, severity, mut rng) = draw(i);
        let other = ds.image_u8(other_index(i, n));
        let img = kind.apply_at(
            ds.image_u8(i),
            other,
            ds.width,
            ds.height,
            severity,
            &mut rng,
        );
        out.pixels[i * d..(i + 1) * d].copy_from_slice(&img);
    }
    out.source = source;
    out
}

/// [`corrupt_with`]'s frames and kinds, each frame at its own severity, drawn
/// log-uniformly from half to twice the default, frame `i` seeded by `(seed,
/// "bound-severity", i)` (the severity first, then the fault's draws) and paired as
/// [`corrupt_with`] pairs it: training frames for a classifier shown faults from faint to
/// gross, which carry to kinds it is not shown (BENCHMARKS.md, "A head the board can
/// carry"). The purpose string is the one that measurement was run with.
pub fn corrupt_with_spread_severity(ds: &Dataset, kinds: &[Corruption], seed: u64) -> Dataset {
    if kinds.is_empty() {
        return ds.clone();
    }
    let source = format!("{} (corrupted, spread severity)", ds.source);
    corrupt_frames(ds, source, |i| {
        let mut rng = SeededRng::stream(seed, "bound-severity", i as u64);
        let severity = 2f64.powf(rng.uniform_range(-1.0, 1.0));
        (kinds[i % kinds.len()], severity, rng)
    })
}

/// Every image of `ds` corrupted with `kind` (default severity), image `i` seeded by
/// `(seed, "corrupt-<name>", i)` so that kinds draw independently, its `other` frame
/// image [`other_index`]`(i)`: N clean against N faulted images of one kind.
pub fn corrupt_each(ds: &Dataset, kind: Corruption, seed: u64) -> Dataset {
    corrupt_each_at(ds, kind, 1.0, seed)
}

/// [`corrupt_each`] at `severity` (see [`Corruption::apply_at`]), with the same draws.
pub fn corrupt_each_at(ds: &Dataset, kind: Corruption, severity: f64, seed: u64) -> Dataset {
    let purpose = format!("corrupt-{}", kind.name());
    corrupt_frames(ds, format!("{} ({})", ds.source, kind.name()), |i| {
        (kind, severity, SeededRng::stream(seed, &purpose, i as u64))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const W: usize = 28;
    const H: usize = 28;

    /// A 28x28 digit-like image with every grey level: a ring of ink with soft edges.
    fn ring() -> Vec<u8> {
        let mut img = vec![0u8; W * H];
        for y in 0..H {
            for x in 0..W {
                let (dx, dy) = (x as f64 - 13.5, y as f64 - 13.5);
                let r = (dx * dx + dy * dy * 0.6).sqrt();
                let v = 255.0 * (1.0 - ((r - 7.0).abs() / 3.0)).max(0.0);
                img[y * W + x] = v.round() as u8;
            }
        }
        img
    }

    /// A "1": a vertical bar, off centre (a half turn moves it).
    fn bar() -> Vec<u8> {
        let mut img = vec![0u8; W * H];
        for y in 6..22 {
            for x in 8..16 {
                img[y * W + x] = 200;
            }
        }
        img
    }

    /// A "7": a bar across the top and a slanted stroke down, with no symmetry a
    /// half turn or a mirror would keep.
    fn seven() -> Vec<u8> {
        let mut img = vec![0u8; W * H];
        for y in 5..8 {
            for x in 7..21 {
                img[y * W + x] = 230;
            }
        }
        for y in 8..23 {
            let x = 19 - (y - 8) * 8 / 15;
            for dx in 0..3 {
                img[y * W + x - dx] = 210;
            }
        }
        img
    }

    /// The centre of mass of `img`'s ink, in pixels.
    fn centroid(img: &[u8]) -> (f64, f64) {
        let (mut sx, mut sy, mut m) = (0.0, 0.0, 0.0);
        for (k, &p) in img.iter().enumerate() {
            let p = f64::from(p);
            sx += p * (k % W) as f64;
            sy += p * (k / W) as f64;
            m += p;
        }
        (sx / m, sy / m)
    }

    fn fnv(b: &[u8]) -> u64 {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for &x in b {
            h ^= u64::from(x);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        h
    }

    fn l1(a: &[u8], b: &[u8]) -> u64 {
        a.iter()
            .zip(b)
            .map(|(&x, &y)| u64::from(x.abs_diff(y)))
            .sum()
    }

    /// The seven old kinds' bytes (FNV-1a of the output) and the generator's next draw
    /// after them, computed with the code before the fault model grew: they must never
    /// change (denoising checkpoints, the demo frames and the e2e tests use them).
    #[test]
    fn pixel_faults_give_the_bytes_they_always_did() {
        let pins: [(Corruption, u64, u64, u64); 21] = [
            (Corruption::Noise, 1, 0x16783559a185318a, 0xb2efe97ada878fbd),
            (Corruption::Noise, 7, 0xa02a32f83586f592, 0x9cc98d48a8939a30),
            (
                Corruption::Noise,
                56880,
                0x819d4cf059abf276,
                0x6a965f5539fa6f34,
            ),
            (
                Corruption::DeadPixels,
                1,
                0xa97e6007375fc5d1,
                0xb2efe97ada878fbd,
            ),
            (
                Corruption::DeadPixels,
                7,
                0x75102400645997a8,
                0x9cc98d48a8939a30,
            ),
            (
                Corruption::DeadPixels,
                56880,
                0x2bfa289fdbe5b675,
                0x6a965f5539fa6f34,
            ),
            (
                Corruption::StuckPixels,
                1,
                0x27764090df9ddc4f,
                0xb2efe97ada878fbd,
            ),
            (
                Corruption::StuckPixels,
                7,
                0xe2685423f370623b,
                0x9cc98d48a8939a30,
            ),
            (
                Corruption::StuckPixels,
                56880,
                0x6d70a78743d19506,
                0x6a965f5539fa6f34,
            ),
            (
                Corruption::Occlusion,
                1,
                0x96be5a9e7b18cc58,
                0x19a37d5757aaf520,
            ),
            (
                Corruption::Occlusion,
                7,
                0x3fe64a188588c843,
                0xb7b311b3b0d45872,
            ),
            (
                Corruption::Occlusion,
                56880,
                0x9a775faec4520713,
                0x061618937b76faf0,
            ),
            (Corruption::Drift, 1, 0xcdeb65fdb03173ed, 0xcfc5d07f6f03c29b),
            (Corruption::Drift, 7, 0xcdeb65fdb03173ed, 0x0e2c1a002aae913d),
            (
                Corruption::Drift,
                56880,
                0xcdeb65fdb03173ed,
                0xba382c06a2a918d2,
            ),
            (
                Corruption::StuckLines,
                1,
                0x80300561d0f216c0,
                0x19a37d5757aaf520,
            ),
            (
                Corruption::StuckLines,
                7,
                0xbda7c97d3ee64a24,
                0xb7b311b3b0d45872,
            ),
            (
                Corruption::StuckLines,
                56880,
                0x470926b88c3708a6,
                0x061618937b76faf0,
            ),
            (
                Corruption::SaltPepper,
                1,
                0xdd32c3f20d919929,
                0xb2efe97ada878fbd,
            ),
            (
                Corruption::SaltPepper,
                7,
                0x37f564bff6c528fa,
                0x9cc98d48a8939a30,
            ),
            (
                Corruption::SaltPepper,
                56880,
                0xdf14382b2ac38418,
                0x6a965f5539fa6f34,
            ),
        ];
        let (img, other) = (ring(), bar());
        for (kind, seed, bytes, next) in pins {
            assert!(Corruption::PIXEL_FAULTS.contains(&kind));
            let mut rng = SeededRng::new(seed);
            let out = kind.apply(&img, &other, W, H, &mut rng);
            assert_eq!(fnv(&out), bytes, "{} seed {seed}: bytes", kind.name());
            assert_eq!(rng.next_u64(), next, "{} seed {seed}: draws", kind.name());
            // Severity 1 is the default, and `other` is not read.
            let again = kind.apply_at(&img, &img, W, H, 1.0, &mut SeededRng::new(seed));
            assert_eq!(again, out, "{}", kind.name());
        }
        assert_eq!(Corruption::PIXEL_FAULTS, Corruption::ALL[..7]);
    }

    #[test]
    fn every_corruption_changes_a_digit_like_image() {
        // Not the ring: a "0" is (nearly) what a half turn makes of it.
        for img in [bar(), seven()] {
            let other = if img == bar() { seven() } else { bar() };
            for c in Corruption::ALL {
                for seed in 0..20 {
                    let out = c.apply(&img, &other, W, H, &mut SeededRng::new(seed));
                    assert_eq!(out.len(), img.len());
                    assert_ne!(out, img, "{} seed {seed}", c.name());
                }
            }
        }
    }

    #[test]
    fn same_seed_same_bytes_other_seed_other_bytes() {
        let (img, other) = (ring(), bar());
        for c in Corruption::ALL {
            let a = c.apply(&img, &other, W, H, &mut SeededRng::new(3));
            let b = c.apply(&img, &other, W, H, &mut SeededRng::new(3));
            assert_eq!(a, b, "{}", c.name());
            let random = !matches!(
                c,
                Corruption::Drift
                    | Corruption::Defocus
                    | Corruption::Gain
                    | Corruption::Saturation
                    | Corruption::Torn
                    | Corruption::Overlay
                    | Corruption::Inverted
            );
            if random {
                let differ =
                    (4..12).any(|seed| c.apply(&img, &other, W, H, &mut SeededRng::new(seed)) != a);
                assert!(differ, "{} ignores its seed", c.name());
            }
        }
    }

    #[test]
    fn severity_zero_is_no_fault_and_more_is_more() {
        let (img, other) = (ring(), bar());
        for c in Corruption::ALL {
            let at = |s: f64| c.apply_at(&img, &other, W, H, s, &mut SeededRng::new(11));
            assert_eq!(at(0.0), img, "{} at severity 0", c.name());
            assert_eq!(at(-1.0), img, "{} at severity -1", c.name());
            let (d_half, d_one, d_two) =
                (l1(&at(0.5), &img), l1(&at(1.0), &img), l1(&at(2.0), &img));
            assert!(d_half > 0, "{} at severity 0.5 changes nothing", c.name());
            // How far a moved, turned or zoomed frame differs pixel by pixel is not
            // monotonic in the distance, angle or factor (a ring moved by its own
            // width overlaps itself again); those are checked below.
            if matches!(
                c,
                Corruption::Shift | Corruption::Rotation | Corruption::Scale
            ) {
                continue;
            }
            assert!(
                d_half <= d_one && d_one <= d_two,
                "{}: L1 {d_half} (0.5), {d_one} (1), {d_two} (2)",
                c.name()
            );
        }
    }

    #[test]
    fn geometric_faults_grow_with_severity() {
        let img = seven();
        let c0 = centroid(&img);
        let moved = |s: f64| {
            let out = Corruption::Shift.apply_at(&img, &img, W, H, s, &mut SeededRng::new(2));
            let c = centroid(&out);
            (c.0 - c0.0).hypot(c.1 - c0.1)
        };
        assert!(
            moved(0.5) < moved(1.0) && moved(1.0) > 3.5,
            "{} {}",
            moved(0.5),
            moved(1.0)
        );
        // The ink's spread about the frame centre grows with a zoom in and shrinks with
        // a zoom out, more at a higher severity.
        let spread = |out: &[u8]| {
            let (mut s, mut m) = (0.0, 0.0);
            for (k, &p) in out.iter().enumerate() {
                let (dx, dy) = ((k % W) as f64 - 13.5, (k / W) as f64 - 13.5);
                s += f64::from(p) * (dx * dx + dy * dy);
                m += f64::from(p);
            }
            (s / m).sqrt()
        };
        let base = spread(&img);
        for seed in 0..8 {
            let at = |s: f64| {
                spread(&Corruption::Scale.apply_at(&img, &img, W, H, s, &mut SeededRng::new(seed)))
            };
            let (half, one) = (at(0.5), at(1.0));
            assert!(
                (half - base).abs() < (one - base).abs() && (one - base).abs() > 1.0,
                "seed {seed}: spread {base} -> {half} -> {one}"
            );
        }
        // A rotation by 60 degrees or more moves the "7"'s bar off the top rows.
        for seed in 0..8 {
            let out = Corruption::Rotation.apply(&img, &img, W, H, &mut SeededRng::new(seed));
            let top: u64 = out[5 * W..8 * W].iter().map(|&p| u64::from(p)).sum();
            let was: u64 = img[5 * W..8 * W].iter().map(|&p| u64::from(p)).sum();
            assert!(top < was / 2, "seed {seed}: {top} of {was}");
        }
    }

    #[test]
    fn torn_and_overlay_read_the_other_frame() {
        let (img, a, b) = (ring(), bar(), vec![255u8; W * H]);
        for c in Corruption::ALL {
            let with_a = c.apply(&img, &a, W, H, &mut SeededRng::new(5));
            let with_b = c.apply(&img, &b, W, H, &mut SeededRng::new(5));
            assert_eq!(with_a != with_b, c.uses_other(), "{}", c.name());
        }
        let torn = Corruption::Torn.apply(&img, &a, W, H, &mut SeededRng::new(0));
        assert_eq!(torn[..W * H / 2], img[..W * H / 2]);
        assert_eq!(torn[W * H / 2..], a[W * H / 2..]);
        let over = Corruption::Overlay.apply(&img, &a, W, H, &mut SeededRng::new(0));
        assert!(over
            .iter()
            .zip(img.iter().zip(&a))
            .all(|(&o, (&p, &q))| o == p.max(q)));
    }

    #[test]
    fn dead_region_covers_ink() {
        let img = bar();
        for seed in 0..50 {
            let out = Corruption::DeadRegion.apply(&img, &img, W, H, &mut SeededRng::new(seed));
            let dead = out
                .iter()
                .zip(&img)
                .filter(|(&o, &p)| o == 0 && p > 0)
                .count();
            assert!(dead > 0, "seed {seed}");
        }
    }

    #[test]
    fn families_and_held_out_kinds() {
        for f in Family::ALL {
            assert!(
                Corruption::ALL.iter().any(|c| c.family() == f),
                "{}",
                f.name()
            );
        }
        for c in Corruption::HELD_OUT {
            assert!(Corruption::ALL.contains(&c) && c.held_out());
            assert!(!Corruption::PIXEL_FAULTS.contains(&c));
        }
        assert_eq!(Corruption::ALL.iter().filter(|c| c.held_out()).count(), 4);
        for c in Corruption::ALL {
            assert!(!c.description().is_empty());
            assert_eq!(Corruption::ALL.iter().filter(|&&k| k == c).count(), 1);
        }
    }

    #[test]
    fn datasets_pair_images_with_others_and_kinds_draw_apart() {
        let n = 30;
        let mut pixels = Vec::new();
        for i in 0..n {
            pixels.extend(if i % 2 == 0 { ring() } else { bar() });
        }
        let ds = Dataset {
            width: W,
            height: H,
            pixels,
            labels: None,
            class_names: Vec::new(),
            source: "toy".into(),
        };
        let (bad, kinds) = corrupt_dataset(&ds, 1);
        assert_eq!(bad.len(), n);
        assert_eq!(kinds[..22], Corruption::ALL);
        assert_eq!(kinds[22], Corruption::Noise);
        for (i, kind) in kinds.iter().enumerate() {
            assert_ne!(other_index(i, n), i);
            assert_ne!(
                bad.image_u8(i),
                ds.image_u8(i),
                "image {i} ({})",
                kind.name()
            );
        }
        assert_eq!(other_index(0, 1), 0);
        // The seven pixel faults, cycled, are what corrupt_dataset gave before it grew.
        let old = corrupt_with(&ds, &Corruption::PIXEL_FAULTS, 1);
        assert_eq!(old.image_u8(3), bad.image_u8(3));
        assert_ne!(old.image_u8(8), bad.image_u8(8));
        let each = corrupt_each(&ds, Corruption::Noise, 1);
        let each2 = corrupt_each(&ds, Corruption::SaltPepper, 1);
        assert_eq!(each, corrupt_each(&ds, Corruption::Noise, 1));
        assert_ne!(each.image_u8(0), bad.image_u8(0));
        assert!((0..n).all(|i| each.image_u8(i) != ds.image_u8(i)));
        assert!((0..n).all(|i| each2.image_u8(i) != ds.image_u8(i)));
    }

    #[test]
    fn names_parse_back() {
        for c in Corruption::ALL {
            assert_eq!(Corruption::from_name(c.name()), Some(c));
        }
        assert_eq!(Corruption::parse_list("all"), Ok(Corruption::ALL.to_vec()));
        assert_eq!(
            Corruption::parse_list(" pixel"),
            Ok(Corruption::PIXEL_FAULTS.to_vec())
        );
        assert_eq!(
            Corruption::parse_list("drift, noise,drift,torn"),
            Ok(vec![Corruption::Drift, Corruption::Noise, Corruption::Torn])
        );
        let err = Corruption::parse_list("noise,fog").unwrap_err();
        assert_eq!(err.name, "fog");
        assert!(err.to_string().contains("salt-pepper"), "{err}");
        assert!(err.to_string().contains("pure-noise"), "{err}");
    }
}
