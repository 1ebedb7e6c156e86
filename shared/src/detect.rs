//! The fault detector: several integer statistics of a frame and of its
//! reconstruction, each standardized against clean frames, and the largest of them.
//!
//! The negative ELBO alone (the [`score`](crate::score) module) is one-sided: a fault
//! that removes ink (dead pixels, a dark occlusion, a lens out of focus) leaves an
//! image that is *easier* to explain, so its score drops. The detector therefore reads
//! several [`Term`]s, each with its own centre and scales fitted on clean frames only
//! ([`TermParams`]): the ELBO in both directions (a frame far too likely is out of
//! distribution too, Nalisnick et al. 2019), the confident missing and excess ink of
//! the residual, local pixel statistics a sensor fault breaks (holes in strokes,
//! isolated hot pixels, hard straight cuts) and where the ink's centroid lies.
//!
//! Each term's standardized value is `z = (raw - centre) / scale_high` above the centre
//! and `(centre - raw) / scale_low` below it (a zero scale turns that side off), in
//! Q16. The frame's score is the largest `z`; the term that gave it is the one that
//! *fired*. One threshold on that score (1.0 = the edge of the clean frames the scales
//! were fitted on) gives the verdict. Everything is integer arithmetic, so the host and
//! every core compute the same bits.

use crate::fixed::{saturate_i64, Q16, Q16_ONE};
use crate::math::div_rem_u64;
use crate::score::div_round;
use core::num::NonZeroU32;

/// One statistic the detector reads.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "kebab-case")]
#[repr(u8)]
pub enum Term {
    /// The negative ELBO at `z = mu` (Q16 nats), both directions: high is an input the
    /// model cannot explain, low one it explains too well (a blank or washed-out frame).
    Elbo = 0,
    /// Pixels the reconstruction draws as ink (more than half scale above the input)
    /// that the input lacks.
    MissingInk = 1,
    /// Pixels the input has as ink (more than half scale above the reconstruction) that
    /// the reconstruction lacks.
    ExcessInk = 2,
    /// Dark pixels inside a stroke: below a quarter of full scale with both neighbours
    /// left and right, or both above and below, above half scale. Dead pixels.
    Holes = 3,
    /// Bright pixels (above 3/4 of full scale) whose four neighbours are all below a
    /// quarter: hot pixels, salt noise.
    Spikes = 4,
    /// Hard edges between a bright pixel (at least 5/8 of full scale) and a pixel at
    /// exactly 0, running on for two pixels along a straight line: strokes cut by an
    /// occluder or a dead region (a clean stroke fades out over a pixel or two).
    Cuts = 5,
    /// The ink centroid's column, in 1/256 pixel, both directions.
    CentroidX = 6,
    /// The ink centroid's row, in 1/256 pixel, both directions.
    CentroidY = 7,
    /// Total ink (the sum of the pixels), both directions: offset drift, gain loss,
    /// saturation, an inverted or blank frame.
    Ink = 8,
    /// Bright pixels (at least 7/8 of full scale), both directions: too few is a lens
    /// out of focus, a gain loss or vignetting; too many is saturation or glare.
    Bright = 9,
    /// Mid-tone pixels (between 1/8 and 7/8 of full scale), both directions: blur
    /// spreads a stroke's edge over more of them, saturation leaves none.
    Midtones = 10,
    /// Solid pixels: at least 7/8 of full scale with all four neighbours too. A stroke is
    /// two or three pixels wide; a glare patch or a saturated blob is solid.
    Solid = 11,
    /// Rows from the first to the last that hold a pixel above half scale, both
    /// directions: a digit zoomed, shrunk or pushed off the frame.
    Height = 12,
    /// Columns from the first to the last that hold a pixel above half scale, both
    /// directions.
    Width = 13,
    /// The mid-tones' share of the ink pixels (mid-tones and bright), in 1/256, both
    /// directions: how soft the strokes' edges are whatever the digit's size. Blur and
    /// low gain raise it, saturation and glare lower it.
    Softness = 14,
}

/// How many [`Term`]s there are.
pub const TERMS: usize = 15;

impl Term {
    /// Every term, in the order of their indices.
    pub const ALL: [Term; TERMS] = [
        Term::Elbo,
        Term::MissingInk,
        Term::ExcessInk,
        Term::Holes,
        Term::Spikes,
        Term::Cuts,
        Term::CentroidX,
        Term::CentroidY,
        Term::Ink,
        Term::Bright,
        Term::Midtones,
        Term::Solid,
        Term::Height,
        Term::Width,
        Term::Softness,
    ];

    /// The term with index `i`.
    pub fn from_index(i: u8) -> Option<Term> {
        Term::ALL.get(i as usize).copied()
    }

    /// Whether the term flags values below its centre too.
    pub fn two_sided(self) -> bool {
        matches!(
            self,
            Term::Elbo
                | Term::CentroidX
                | Term::CentroidY
                | Term::Ink
                | Term::Bright
                | Term::Midtones
                | Term::Height
                | Term::Width
                | Term::Softness
        )
    }

    /// The smallest scale the term may have, in its raw units: one nat for the ELBO, a
    /// quarter pixel for a centroid, one full-scale pixel of ink, one pixel or row for
    /// a count or a span. Without it a term that never moves on clean frames (spikes
    /// are usually 0) would call any change infinitely anomalous.
    pub fn min_scale(self) -> i32 {
        match self {
            Term::Elbo => Q16_ONE,
            Term::CentroidX | Term::CentroidY => 64,
            Term::Ink => 255,
            _ => 1,
        }
    }

    /// Short name for reports and the OLED (at most 8 characters).
    pub fn name(self) -> &'static str {
        match self {
            Term::Elbo => "elbo",
            Term::MissingInk => "missing",
            Term::ExcessInk => "excess",
            Term::Holes => "holes",
            Term::Spikes => "spikes",
            Term::Cuts => "cuts",
            Term::CentroidX => "centre-x",
            Term::CentroidY => "centre-y",
            Term::Ink => "ink",
            Term::Bright => "bright",
            Term::Midtones => "midtones",
            Term::Solid => "solid",
            Term::Height => "height",
            Term::Width => "width",
            Term::Softness => "softness",
        }
    }
}

/// Half of full scale: the residual terms count differences above it.
const HALF: i32 = 128;
/// A quarter of full scale.
const QUARTER: i32 = 64;
/// Three quarters of full scale.
const THREE_QUARTERS: i32 = 192;
/// Bright: at least 7/8 of full scale.
const BRIGHT: i32 = 224;
/// Mid-tones start above 1/8 of full scale.
const DARK: i32 = 32;
/// A cut's bright side is at least this bright (5/8 of full scale).
const CUT_BRIGHT: i32 = 160;

/// The raw value of every term for one frame.
pub type RawTerms = [i32; TERMS];

/// Computes every term of `image` (`width` x `height`, row major) against its
/// reconstruction `recon` (pixels) and its negative ELBO `elbo` (Q16).
pub fn raw_terms(image: &[u8], recon: &[u8], width: usize, height: usize, elbo: Q16) -> RawTerms {
    let mut missing = 0;
    let mut excess = 0;
    let mut ink: i64 = 0;
    let (mut bright, mut midtones) = (0, 0);
    let mut sum_x: i64 = 0;
    let mut sum_y: i64 = 0;
    // First and last row and column with a pixel above half scale.
    let (mut top, mut bottom, mut left, mut right) = (usize::MAX, 0, usize::MAX, 0);
    // Column and row counters instead of `i % width` and `i / width`: no division per
    // pixel (the M0 has no divide instruction).
    let (mut col, mut row) = (0usize, 0usize);
    for (&x, &r) in image.iter().zip(recon) {
        let (x, r) = (i32::from(x), i32::from(r));
        if r - x > HALF {
            missing += 1;
        } else if x - r > HALF {
            excess += 1;
        }
        if x >= BRIGHT {
            bright += 1;
        } else if x > DARK {
            midtones += 1;
        }
        ink += i64::from(x);
        if x > HALF {
            top = top.min(row);
            bottom = bottom.max(row);
            left = left.min(col);
            right = right.max(col);
        }
        sum_x += i64::from(x) * col as i64;
        sum_y += i64::from(x) * row as i64;
        col += 1;
        if col == width {
            col = 0;
            row += 1;
        }
    }
    let (holes, spikes, cuts, solid) = local_counts(image, width, height);
    let centroid = |sum: i64, span: usize| -> i32 {
        match NonZeroU32::new(u32::try_from(ink).unwrap_or(u32::MAX)) {
            // (sum * 256 + ink / 2) / ink: 1/256 pixel, rounded.
            Some(d) => div_rem_u64((sum as u64) * 256 + u64::from(d.get() / 2), d).0 as i32,
            // A blank frame's centroid is the middle.
            None => (span as i32) * 128,
        }
    };
    let mut raw = [0; TERMS];
    raw[Term::Elbo as usize] = elbo;
    raw[Term::MissingInk as usize] = missing;
    raw[Term::ExcessInk as usize] = excess;
    raw[Term::Holes as usize] = holes;
    raw[Term::Spikes as usize] = spikes;
    raw[Term::Cuts as usize] = cuts;
    raw[Term::CentroidX as usize] = centroid(sum_x, width.saturating_sub(1));
    raw[Term::CentroidY as usize] = centroid(sum_y, height.saturating_sub(1));
    raw[Term::Ink as usize] = saturate_i64(ink);
    raw[Term::Bright as usize] = bright;
    raw[Term::Midtones as usize] = midtones;
    raw[Term::Solid as usize] = solid;
    // An empty frame spans nothing.
    raw[Term::Height as usize] = (bottom + 1).saturating_sub(top) as i32;
    raw[Term::Width as usize] = (right + 1).saturating_sub(left) as i32;
    // midtones * 256 / (bright + midtones + 1): both counts are at most the pixel count.
    raw[Term::Softness as usize] =
        (midtones as u32 * 256 / (bright as u32 + midtones as u32 + 1)) as i32;
    raw
}

/// Holes, spikes, cuts and solid pixels of `image` (see [`Term`]); border pixels only
/// as neighbours.
fn local_counts(image: &[u8], width: usize, height: usize) -> (i32, i32, i32, i32) {
    let (mut holes, mut spikes, mut cuts, mut solid) = (0, 0, 0, 0);
    if width < 3 || height < 3 || image.len() < width * height {
        return (0, 0, 0, 0);
    }
    let px = |x: usize, y: usize| i32::from(image[y * width + x]);
    // A hard edge between two pixels: one at exactly 0, the other bright.
    let hard = |a: i32, b: i32| a.min(b) == 0 && a.max(b) >= CUT_BRIGHT;
    for y in 0..height - 1 {
        for x in 0..width - 1 {
            let here = px(x, y);
            let right = px(x + 1, y);
            let below = px(x, y + 1);
            let diagonal = px(x + 1, y + 1);
            // A horizontal edge (x | x+1) continued on the row below, same way round.
            if hard(here, right) && hard(below, diagonal) && (here == 0) == (below == 0) {
                cuts += 1;
            }
            // A vertical edge (y / y+1) continued in the next column, same way round.
            if hard(here, below) && hard(right, diagonal) && (here == 0) == (right == 0) {
                cuts += 1;
            }
            if x == 0 || y == 0 {
                continue;
            }
            let (left, above) = (px(x - 1, y), px(x, y - 1));
            if here < QUARTER && (left.min(right) > HALF || above.min(below) > HALF) {
                holes += 1;
            }
            if here > THREE_QUARTERS && left.max(right).max(above).max(below) < QUARTER {
                spikes += 1;
            }
            if here.min(left).min(right).min(above).min(below) >= BRIGHT {
                solid += 1;
            }
        }
    }
    (holes, spikes, cuts, solid)
}

/// A term's centre and scales, fitted on clean frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct TermParams {
    /// The clean frames' typical raw value.
    pub centre: i32,
    /// Raw units that make 1.0 above the centre; 0 turns the upper side off.
    pub scale_high: i32,
    /// Raw units that make 1.0 below the centre; 0 turns the lower side off.
    pub scale_low: i32,
}

impl TermParams {
    /// The standardized value of `raw`, Q16, never negative (saturating).
    pub fn z(&self, raw: i32) -> Q16 {
        let (distance, scale) = if raw >= self.centre {
            (i64::from(raw) - i64::from(self.centre), self.scale_high)
        } else {
            (i64::from(self.centre) - i64::from(raw), self.scale_low)
        };
        let Some(scale) = u32::try_from(scale).ok().and_then(NonZeroU32::new) else {
            return 0;
        };
        // distance < 2^33, so distance << 16 < 2^49: no overflow.
        let q = div_rem_u64((distance as u64) << 16, scale).0;
        saturate_i64(q as i64)
    }
}

/// Every term's parameters and the threshold on the largest standardized term.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct DetectorParams {
    /// One entry per [`Term`], in index order.
    pub terms: [TermParams; TERMS],
    /// Frames scoring above this are anomalous, Q16 (1.0 = the fitted edge).
    pub threshold: Q16,
}

impl Default for DetectorParams {
    /// Every term off, threshold 1.0: nothing fires until calibrated.
    fn default() -> Self {
        Self {
            terms: [TermParams::default(); TERMS],
            threshold: Q16_ONE,
        }
    }
}

/// A frame's verdict: the largest standardized term and which one it was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Detection {
    /// Every term's standardized value, Q16.
    pub z: [Q16; TERMS],
    /// The largest of `z`, Q16.
    pub score: Q16,
    /// The term that gave `score` (the first, on a tie).
    pub fired: Term,
    /// `score > threshold`.
    pub anomalous: bool,
}

impl DetectorParams {
    /// Standardizes `raw` and applies the threshold.
    pub fn detect(&self, raw: &RawTerms) -> Detection {
        let mut z = [0; TERMS];
        let mut best = 0;
        for i in 0..TERMS {
            z[i] = self.terms[i].z(raw[i]);
            if z[i] > z[best] {
                best = i;
            }
        }
        Detection {
            z,
            score: z[best],
            fired: Term::ALL[best],
            anomalous: z[best] > self.threshold,
        }
    }
}

/// How many of the most extreme values per term and direction [`Calibrator`] keeps.
pub const CALIBRATION_RANK: usize = 3;

/// On-device calibration in fixed memory: the next `frames` clean frames set the
/// detector's parameters, so a board adapts to its own sensor without the host.
///
/// The first half of the frames fits the terms: each term's centre is the mean of its
/// raw values, its scale reaches from the centre to the [`CALIBRATION_RANK`]-th largest
/// value (and, two-sided, to the same rank from the bottom), never below
/// [`Term::min_scale`]. With 100 frames that rank is the 97th-98th percentile. The second
/// half sets the threshold: the second largest of its frames' scores (about 1% false
/// positives with 100 frames), never below 1.0. Memory: a sum and the kept extremes per
/// term (about 360 bytes), whatever `frames` is; the host's twin is this very code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Calibrator {
    /// Frames asked for.
    frames: u16,
    /// Frames seen.
    seen: u16,
    /// Per term: the sum of the fitting frames' raw values.
    sum: [i64; TERMS],
    /// Per term: the largest raw values seen while fitting, largest first.
    high: [[i32; CALIBRATION_RANK]; TERMS],
    /// Per term: the smallest raw values seen while fitting, smallest first.
    low: [[i32; CALIBRATION_RANK]; TERMS],
    /// The parameters fitted so far (terms after the first half, threshold at the end).
    params: DetectorParams,
    /// The two largest scores of the threshold frames, largest first.
    top_scores: [Q16; 2],
}

/// The fewest frames a calibration takes: two per half, so each half has a rank.
pub const MIN_CALIBRATION_FRAMES: u16 = 4;

impl Calibrator {
    /// A calibration over `frames` frames (at least [`MIN_CALIBRATION_FRAMES`]).
    pub fn new(frames: u16) -> Self {
        Self {
            frames: frames.max(MIN_CALIBRATION_FRAMES),
            seen: 0,
            sum: [0; TERMS],
            high: [[i32::MIN; CALIBRATION_RANK]; TERMS],
            low: [[i32::MAX; CALIBRATION_RANK]; TERMS],
            params: DetectorParams::default(),
            top_scores: [i32::MIN; 2],
        }
    }

    /// Frames still to come.
    pub fn remaining(&self) -> u16 {
        self.frames - self.seen
    }

    /// Frames taken by the fitting half.
    fn fitting_frames(&self) -> u16 {
        self.frames / 2
    }

    /// Takes one clean frame's raw terms; returns the parameters once the last frame
    /// is in (and `None` before, or after: a finished calibration takes no more).
    pub fn add(&mut self, raw: &RawTerms) -> Option<DetectorParams> {
        if self.seen >= self.frames {
            return None;
        }
        let fitting = self.fitting_frames();
        if self.seen < fitting {
            for (t, &v) in raw.iter().enumerate() {
                self.sum[t] += i64::from(v);
                insert_descending(&mut self.high[t], v);
                insert_descending_by(&mut self.low[t], v, |a, b| a < b);
            }
        } else {
            let score = self.params.detect(raw).score;
            insert_descending(&mut self.top_scores, score);
        }
        self.seen += 1;
        if self.seen == fitting {
            self.fit_terms();
        }
        if self.seen == self.frames {
            self.params.threshold = self.top_scores[1].max(Q16_ONE);
            return Some(self.params);
        }
        None
    }

    /// Sets every term's centre and scales from the fitting half.
    fn fit_terms(&mut self) {
        let n = NonZeroU32::new(u32::from(self.fitting_frames())).unwrap_or(NonZeroU32::MIN);
        for term in Term::ALL {
            let t = term as usize;
            // The mean, rounded half away from zero, without a 64-bit division call.
            let centre = saturate_i64(div_round(self.sum[t], n));
            let rank = CALIBRATION_RANK.min(self.fitting_frames() as usize) - 1;
            let floor = term.min_scale();
            let high = self.high[t][rank].saturating_sub(centre).max(floor);
            let low = if term.two_sided() {
                centre.saturating_sub(self.low[t][rank]).max(floor)
            } else {
                0
            };
            self.params.terms[t] = TermParams {
                centre,
                scale_high: high,
                scale_low: low,
            };
        }
    }
}

/// Inserts `v` into `kept` (largest first), dropping the smallest.
fn insert_descending<const N: usize>(kept: &mut [i32; N], v: i32) {
    insert_descending_by(kept, v, |a, b| a > b);
}

/// Inserts `v` into `kept`, ordered so that `before(kept[i], kept[i + 1])`, dropping
/// the last.
fn insert_descending_by<const N: usize>(
    kept: &mut [i32; N],
    v: i32,
    before: impl Fn(i32, i32) -> bool,
) {
    let mut carry = v;
    for slot in kept.iter_mut() {
        if before(carry, *slot) {
            core::mem::swap(&mut carry, slot);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn blank() -> [u8; 28 * 28] {
        [0; 28 * 28]
    }

    /// A vertical bar, columns 12..16, rows 6..22, with soft edges.
    fn bar() -> [u8; 28 * 28] {
        let mut img = blank();
        for y in 6..22 {
            img[y * 28 + 11] = 90;
            for x in 12..16 {
                img[y * 28 + x] = 255;
            }
            img[y * 28 + 16] = 90;
        }
        img
    }

    #[test]
    fn a_clean_bar_has_no_holes_spikes_or_cuts() {
        let img = bar();
        let raw = raw_terms(&img, &img, 28, 28, 5 << 16);
        assert_eq!(raw[Term::Holes as usize], 0);
        assert_eq!(raw[Term::Spikes as usize], 0);
        // The bar's top and bottom rows end hard (255 next to 0) along straight lines.
        assert_eq!(raw[Term::Cuts as usize], 2 * 3);
        assert_eq!(raw[Term::MissingInk as usize], 0);
        assert_eq!(raw[Term::Elbo as usize], 5 << 16);
        // Centroid: column 13.5, row 13.5, in 1/256 px.
        assert_eq!(raw[Term::CentroidX as usize], 3456);
        assert_eq!(raw[Term::CentroidY as usize], 3456);
        // Rows 6..22, columns 12..16 are above half scale (the soft edges are not).
        assert_eq!(raw[Term::Height as usize], 16);
        assert_eq!(raw[Term::Width as usize], 4);
        // Four pixels per row at full scale, the two edges at 90 are mid-tones, and
        // the inner two columns' rows 7..21 are solid.
        assert_eq!(raw[Term::Bright as usize], 16 * 4);
        assert_eq!(raw[Term::Midtones as usize], 16 * 2);
        assert_eq!(raw[Term::Solid as usize], 14 * 2);
        assert_eq!(raw[Term::Ink as usize], 16 * (4 * 255 + 2 * 90));
        // 32 * 256 / (64 + 32 + 1) = 84.45...
        assert_eq!(raw[Term::Softness as usize], 84);
    }

    #[test]
    fn each_local_fault_moves_its_term() {
        let clean = bar();
        let mut dead = clean;
        dead[10 * 28 + 13] = 0;
        dead[14 * 28 + 14] = 0;
        assert_eq!(raw_terms(&dead, &clean, 28, 28, 0)[Term::Holes as usize], 2);
        assert_eq!(
            raw_terms(&dead, &clean, 28, 28, 0)[Term::MissingInk as usize],
            2
        );
        let mut hot = clean;
        hot[3 * 28 + 3] = 255;
        assert_eq!(raw_terms(&hot, &clean, 28, 28, 0)[Term::Spikes as usize], 1);
        assert_eq!(
            raw_terms(&hot, &clean, 28, 28, 0)[Term::ExcessInk as usize],
            1
        );
        // A dark band across the bar: two new straight cuts of the 4-wide stroke.
        let mut cut = clean;
        for x in 0..28 {
            cut[13 * 28 + x] = 0;
            cut[14 * 28 + x] = 0;
        }
        let cuts = raw_terms(&cut, &clean, 28, 28, 0)[Term::Cuts as usize];
        assert_eq!(cuts, 2 * 3 + 2 * 3);
    }

    #[test]
    fn a_blank_frame_has_its_centroid_in_the_middle() {
        let raw = raw_terms(&blank(), &blank(), 28, 28, 0);
        assert_eq!(raw[Term::Ink as usize], 0);
        assert_eq!(raw[Term::CentroidX as usize], 27 * 128);
        assert_eq!(raw[Term::Height as usize], 0);
        assert_eq!(raw[Term::Width as usize], 0);
    }

    #[test]
    fn standardization_is_two_sided_and_can_be_switched_off() {
        let p = TermParams {
            centre: 100,
            scale_high: 10,
            scale_low: 0,
        };
        assert_eq!(p.z(110), Q16_ONE);
        assert_eq!(p.z(125), Q16_ONE * 5 / 2);
        assert_eq!(p.z(50), 0);
        let p = TermParams { scale_low: 20, ..p };
        assert_eq!(p.z(60), 2 * Q16_ONE);
        assert_eq!(
            TermParams {
                centre: i32::MIN,
                scale_high: 1,
                scale_low: 1
            }
            .z(i32::MAX),
            i32::MAX
        );
    }

    #[test]
    fn calibration_fits_the_first_half_and_thresholds_the_second() {
        // 200 frames: ELBO 100..=199 nats while fitting, holes 0 but 5, 6, 7 on three.
        let frame = |elbo: i32, holes: i32| {
            let mut r = [0; TERMS];
            r[Term::Elbo as usize] = elbo << 16;
            r[Term::Holes as usize] = holes;
            r
        };
        let mut cal = Calibrator::new(200);
        for i in 0..100 {
            let holes = if i >= 97 { i - 92 } else { 0 };
            assert_eq!(cal.add(&frame(100 + i, holes)), None);
        }
        assert_eq!(cal.remaining(), 100);
        // The threshold half: ELBO 150 except two frames at 250 and 240 nats.
        let mut done = None;
        for i in 0..100 {
            let elbo = match i {
                10 => 250,
                20 => 240,
                _ => 150,
            };
            done = cal.add(&frame(elbo, 0));
            assert_eq!(done.is_some(), i == 99);
        }
        let p = done.unwrap();
        let elbo = p.terms[Term::Elbo as usize];
        // Mean 149.5 nats exactly in Q16; the third largest is 197, the third smallest 102.
        assert_eq!(elbo.centre, (299 << 16) / 2);
        assert_eq!(elbo.scale_high, (197 << 16) - elbo.centre);
        assert_eq!(elbo.scale_low, elbo.centre - (102 << 16));
        let holes = p.terms[Term::Holes as usize];
        // Mean (5 + 6 + 7) / 100 rounds to 0; third largest 5.
        assert_eq!((holes.centre, holes.scale_high, holes.scale_low), (0, 5, 0));
        // Threshold: the second largest threshold-half score, the 240-nat frame's.
        let z240 = elbo.z(240 << 16);
        assert!(z240 > Q16_ONE);
        assert_eq!(p.threshold, z240);
        // A finished calibration takes no more frames.
        assert_eq!(cal.add(&frame(0, 0)), None);
        assert_eq!(cal.remaining(), 0);
    }

    #[test]
    fn extremes_are_kept_in_order() {
        let mut kept = [i32::MIN; 3];
        for v in [5, 1, 9, 7, 3, 9] {
            insert_descending(&mut kept, v);
        }
        assert_eq!(kept, [9, 9, 7]);
        let mut low = [i32::MAX; 3];
        for v in [5, 1, 9, 7, 3] {
            insert_descending_by(&mut low, v, |a, b| a < b);
        }
        assert_eq!(low, [1, 3, 5]);
    }

    #[test]
    fn the_largest_term_fires() {
        let mut params = DetectorParams::default();
        params.terms[Term::Holes as usize] = TermParams {
            centre: 0,
            scale_high: 2,
            scale_low: 0,
        };
        params.terms[Term::Elbo as usize] = TermParams {
            centre: 100 << 16,
            scale_high: 20 << 16,
            scale_low: 10 << 16,
        };
        let mut raw = [0; TERMS];
        raw[Term::Elbo as usize] = 75 << 16; // 2.5 below
        raw[Term::Holes as usize] = 4; // 2.0 above
        let d = params.detect(&raw);
        assert_eq!(d.fired, Term::Elbo);
        assert_eq!(d.score, 5 * Q16_ONE / 2);
        assert!(d.anomalous);
        raw[Term::Elbo as usize] = 100 << 16;
        raw[Term::Holes as usize] = 2;
        let d = params.detect(&raw);
        assert_eq!(
            (d.fired, d.score, d.anomalous),
            (Term::Holes, Q16_ONE, false)
        );
    }
}
