//! The fault detector: several integer statistics of a frame and of its
//! reconstruction, each standardized against clean frames, and the largest of them.
//!
//! The negative ELBO alone (the [`score`](crate::score) module) is one-sided: a fault
//! that removes ink (dead pixels, a dark occlusion, a lens out of focus) leaves an
//! image that is *easier* to explain, so its score drops. The detector therefore reads
//! several [`Term`]s, each with its own edges and scales fitted on clean frames only
//! ([`TermParams`]): the ELBO in both directions (a frame far too likely is out of
//! distribution too, Nalisnick et al. 2019), the confident missing and excess ink of
//! the residual, local pixel statistics a sensor fault breaks (holes in strokes,
//! isolated hot pixels, hard straight cuts) and where the ink's centroid lies.
//!
//! Each term's standardized value is `z = (raw - high) / scale_high` above its upper
//! edge, `(low - raw) / scale_low` below its lower edge and 0 between them (a zero scale
//! turns that side off), in Q16. The host fits each side as a tail: the edge is a
//! quantile of clean frames and the scale the mean excess beyond it, so `z` counts
//! e-folds of tail probability on every term alike. The frame's score is the largest
//! `z`; the term that gave it is the one that *fired*. One threshold on that score gives
//! the verdict. Everything is integer arithmetic, so the host and every core compute
//! the same bits.

use crate::fixed::{saturate_i64, Q16, Q16_ONE};
use crate::math::div_rem_u64;
use crate::protocol::{DetectorReport, MAX_PIXELS};
use crate::score::div_round;
use core::num::NonZeroU32;

/// One statistic the detector reads.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "kebab-case")]
#[repr(u8)]
pub enum Term {
    /// The negative ELBO at `z = mu` (in 1/256 nat, [`elbo_term`]), both directions: high is an input the
    /// model cannot explain, low one it explains too well (a blank or washed-out frame).
    Elbo = 0,
    /// Pixels the input reads as exactly 0 (background, or a dead or occluded pixel)
    /// where the reconstruction draws more than [`MISSING_DRAWN`]: ink the model expects
    /// and the sensor did not deliver. (Counting only inputs at 0 leaves out a stroke's
    /// soft edge that the reconstruction draws a little wider or darker: on the default
    /// model, trained to denoise, occlusion's AUROC 0.963 -> 0.971, BENCHMARKS.md "Exact
    /// zeros".)
    MissingInk = 1,
    /// Pixels the input has as ink (more than half scale above the reconstruction) that
    /// the reconstruction lacks.
    ExcessInk = 2,
    /// Pixels at exactly 0 inside a stroke: both neighbours left and right, or both
    /// above and below, above half scale (in the first [`NEIGHBOURHOOD_COLUMNS`]
    /// columns; a pixel outside them or the frame reads 0). Dead pixels. (A clean
    /// digit's gap between two close strokes is anti-aliased and rarely reads 0; a dead
    /// photosite reads the black level. Counting pixels below a quarter instead gave
    /// dead pixels 0.969 AUROC on the default model, exactly 0 gives 0.992.)
    Holes = 3,
    /// Pixels at 0 beside ink in their row ([`unseen_candidates`]) whose neighbourhood
    /// is not in the model's set: the neighbourhoods the exporter saw at least twice
    /// among the clean frames of the model's training data. The 3x3 pixels around each,
    /// every one read at three levels (0, up to half scale, above it;
    /// [`neighbourhood`]), looked up in that set ([`Seen`], in the model image); in the
    /// rows the digit spans (from the first to the last holding a pixel above half
    /// scale, as [`Term::Extent`]). A dead pixel
    /// inside or at the edge of a stroke, in any direction: a local pattern
    /// anti-aliased handwriting never draws, of which a rule ([`Term::Holes`]: a 0
    /// between two pixels above half scale) catches a part. A model image without the
    /// set reads 0. (Protocol 8; it replaced bright pixels with four dark neighbours,
    /// which no fault kind needed: dead pixels' recall 85% -> 96%, BENCHMARKS.md "Unseen
    /// neighbourhoods".)
    Unseen = 4,
    /// Hard edges: pairs of a bright pixel (at least 7/8 of full scale) and one at
    /// exactly 0, left and right or above and below (both in the first
    /// [`NEIGHBOURHOOD_COLUMNS`] columns). Strokes cut by an occluder or a dead region,
    /// and the rims of a saturated blob (a clean stroke fades out over a pixel or two).
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
    /// Solid blocks: [`BLOCK_SIDE`] x [`BLOCK_SIDE`] squares of pixels all at 7/8 of
    /// full scale or more (counted by their top-left pixel, in the frame's first 32
    /// columns). A clean stroke is two to four pixels wide; glare, a finger lit from the
    /// front or a blob saturated through is a solid patch. (Protocol 7; it replaced a
    /// count of bright pixels with four bright neighbours, which a thick stroke has too:
    /// bright occlusion's recall 78% -> 100%, BENCHMARKS.md "Blocks and ends".)
    Block = 11,
    /// The digit's larger extent: the rows from the first to the last that hold a pixel
    /// above half scale, or the columns likewise if they are more; both directions. A
    /// digit zoomed, shrunk or pushed off the frame. (The larger side rather than the
    /// rows: the normal frames' objects come at one size, MNIST's scaled to fit 20
    /// pixels on their longer side, which a tall 1 and a wide 2 share; a digit shrunk to
    /// half was missed at 66% recall by the rows alone and is caught at 100% by the
    /// larger side, BENCHMARKS.md "Exact zeros".)
    Extent = 12,
    /// Full scale minus the dimmer of the digit's two ends: the brightest pixel of its
    /// first [`ENDS_ROWS`] rows (from the first row holding a pixel above half scale)
    /// and of its last [`ENDS_ROWS`] rows (to the last such row); 0 for a frame with no
    /// such row. A clean stroke reaches full brightness near both ends of the digit; a
    /// lens whose brightness falls off away from its centre dims the ends first, which
    /// the quarters of [`Term::Dimmest`] average with the bright middle. (Protocol 7; it
    /// replaced the columns spanned, which no fault kind needed once [`Term::Extent`]
    /// read them: vignetting 0.969 -> 0.996 AUROC, BENCHMARKS.md "Blocks and ends".)
    Ends = 13,
    /// The mid-tones' share of the ink pixels (mid-tones and bright), in 1/256, both
    /// directions: how soft the strokes' edges are whatever the digit's size. Blur and
    /// low gain raise it, saturation and glare lower it.
    Softness = 14,
    /// Full scale minus the brightest pixel of the dimmest quarter of the frame (split
    /// at its middle row and column): every stretch of a clean stroke reaches full
    /// brightness somewhere, so a quarter whose strokes all stay dim is a local loss of
    /// gain (vignetting, a shading or a dirty lens over part of the frame) that the
    /// frame-wide counts average away. Only quarters with ink count: those whose rows'
    /// extents above half scale (from each row's first such pixel to its last, split
    /// at the middle column) cover at least [`DIMMEST_MIN_INK`] pixels. Only bright
    /// pixels (7/8 of full scale or more) can be a quarter's peak; a quarter with ink
    /// and none reads 255. (Both keep the encode cheap: per pixel, the term costs one
    /// comparison in the bright pixels' branch.)
    Dimmest = 15,
    /// The fault head's verdict ([`crate::fault_head`]): a small convolutional
    /// classifier of the frame itself, its largest fault logit less its clean one, in
    /// 1/256 logit ([`head_term`]). It sees what the terms above read near where clean
    /// digits put them: a patch over a stroke, a second digit laid over the first, a
    /// clipped stroke (BENCHMARKS.md, "The head in int8"). 0 for a model without a
    /// head, and off in a detector section from before it (protocol 9).
    Head = 16,
}

/// The side of a [`Term::Block`], wider than the thickest clean stroke: on the default
/// model's fitting frames, 1% of clean digits hold eight or more 5x5 blocks of bright
/// pixels and one 6x6 block or more (at most 9). (The device's pass builds its runs of
/// six with shifts: changing the side means changing them.)
pub const BLOCK_SIDE: usize = 6;

/// The smallest scale of [`Term::Block`]: four blocks make 1.0. Clean digits rarely
/// hold a block, so the device's `Calibrate` (an edge at the mean, a scale to the third
/// most extreme of 100 frames) found a scale of 0, floored at one block, and a thick
/// clean digit's 6 blocks set its threshold at 6.0 (recall 71% over every kind). A 9x9
/// glare patch holds 16. The host's tail fit (3.5 blocks on the default model) is above
/// its floor of a quarter.
pub const BLOCK_MIN_SCALE: i32 = 4;

/// The rows at each end of the digit that [`Term::Ends`] reads: the outer 30% of the
/// 20 rows an MNIST digit spans, where a lens's fall-off is strongest.
pub const ENDS_ROWS: usize = 6;

/// How many [`Term`]s there are.
pub const TERMS: usize = 17;

/// The smallest scale of [`Term::Dimmest`]: a quarter's peak 12 levels below the clean
/// frames' typical one makes 1.0. Fitted on the 99% quantile alone the scale was 5 and
/// the term's clean tail raised the threshold (1.36 to 1.50), costing the tuned kinds
/// 0.001 of AUROC; at 12, with [`DIMMEST_MIN_INK`] at 13, they lose none
/// (BENCHMARKS.md, "The sixteenth term"). [`Term::Ends`], which counts levels below
/// full scale too, shares it. The device's `Calibrate` floors the term's scale at it;
/// the host's tail fit floors every term at an eighth of its smallest scale.
pub const DIMMEST_MIN_SCALE: i32 = 12;

/// Pixels of row extents above half scale a quarter of the frame needs for
/// [`Term::Dimmest`] to read it: a quarter crossed only by a stroke's tail does not
/// count.
pub const DIMMEST_MIN_INK: u32 = 13;

/// The smallest scale of [`Term::Unseen`], in neighbourhoods: a clean frame now and then
/// holds one the training frames did not (one in ten of the default model's fitting
/// frames), so the device's [`Calibrator`], whose 100 fitting frames often hold none,
/// would otherwise call two of them anomalous (2.9% false positives on new clean
/// frames against 2.0% at 2; BENCHMARKS.md "Unseen neighbourhoods"). The host's fit
/// is above it.
pub const UNSEEN_MIN_SCALE: i32 = 2;

/// Neighbourhoods [`Term::Unseen`] tells apart: 3x3 pixels at three levels each.
pub const NEIGHBOURHOODS: usize = 19_683;

/// Bytes of a [`Seen`] set: one bit per neighbourhood, padded to whole words.
pub const SEEN_LEN: usize = NEIGHBOURHOODS.div_ceil(32) * 4;

/// [`Term::Holes`], [`Term::Cuts`] and [`Term::Unseen`] read the frame's first this
/// many columns (a row's pixels are one bit each in a word, and the column left of the
/// frame is bit 0), as if the frame ended there.
pub const NEIGHBOURHOOD_COLUMNS: usize = 31;

/// A pixel's level in a [`neighbourhood`]: 0, up to half scale, above half scale.
pub const fn level(p: u8) -> u8 {
    (p != 0) as u8 + (p as i32 > HALF) as u8
}

/// The neighbourhood of pixel (`x`, `y`) of `image` (`width` wide, row major): the
/// levels of the 3x3 pixels around it, row by row from the top left, as the digits of
/// a base-3 number (the top left one the most significant). Pixels outside the frame,
/// or in a column from [`NEIGHBOURHOOD_COLUMNS`] on, read 0. The definition the
/// device's pass is held to and the exporter fits [`Seen`] with.
pub fn neighbourhood(image: &[u8], width: usize, x: usize, y: usize) -> usize {
    let mut index = 0;
    for dy in 0..3 {
        for dx in 0..3 {
            let p = match (x + dx).checked_sub(1).zip((y + dy).checked_sub(1)) {
                Some((nx, ny)) if nx < width.min(NEIGHBOURHOOD_COLUMNS) => {
                    image.get(ny * width + nx).copied().unwrap_or(0)
                }
                _ => 0,
            };
            index = index * 3 + usize::from(level(p));
        }
    }
    index
}

/// The pixels [`Term::Unseen`] judges in the rows of `image` (`width` wide): those
/// at 0 beside one that is not (left or right, in the same row), in the first
/// [`NEIGHBOURHOOD_COLUMNS`] columns (a pixel beyond them reads 0), as (column, row).
/// (The term reads the rows the digit spans; the exporter fits [`Seen`] on every row.)
pub fn unseen_candidates(image: &[u8], width: usize) -> impl Iterator<Item = (usize, usize)> + '_ {
    image.chunks(width.max(1)).enumerate().flat_map(|(y, row)| {
        let row = &row[..row.len().min(NEIGHBOURHOOD_COLUMNS)];
        let inked = |x: Option<usize>| x.and_then(|x| row.get(x)).is_some_and(|&p| p != 0);
        (0..row.len())
            .filter(move |&x| row[x] == 0 && (inked(x.checked_sub(1)) || inked(Some(x + 1))))
            .map(move |x| (x, y))
    })
}

/// The neighbourhoods clean frames hold: bit `i` (byte `i / 8`, bit `i % 8`) of the
/// set is neighbourhood `i` ([`neighbourhood`]). Fitted by the exporter on the model's
/// training frames and shipped in its image (flash on the device: the set is read in
/// place).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Seen<'a> {
    bits: &'a [u8; SEEN_LEN],
}

impl<'a> Seen<'a> {
    /// The set in `bytes`; `None` unless exactly [`SEEN_LEN`] long.
    pub fn new(bytes: &'a [u8]) -> Option<Self> {
        Some(Self {
            bits: bytes.try_into().ok()?,
        })
    }

    /// Whether clean frames hold neighbourhood `index` (`false` beyond the last).
    #[inline(always)]
    pub fn contains(&self, index: usize) -> bool {
        self.bits
            .get(index >> 3)
            .is_some_and(|b| (b >> (index & 7)) & 1 != 0)
    }

    /// The set's bytes.
    pub fn as_bytes(&self) -> &'a [u8] {
        self.bits
    }
}

impl Term {
    /// Every term, in the order of their indices.
    pub const ALL: [Term; TERMS] = [
        Term::Elbo,
        Term::MissingInk,
        Term::ExcessInk,
        Term::Holes,
        Term::Unseen,
        Term::Cuts,
        Term::CentroidX,
        Term::CentroidY,
        Term::Ink,
        Term::Bright,
        Term::Midtones,
        Term::Block,
        Term::Extent,
        Term::Ends,
        Term::Softness,
        Term::Dimmest,
        Term::Head,
    ];

    /// The term with index `i`.
    pub fn from_index(i: u8) -> Option<Term> {
        Term::ALL.get(i as usize).copied()
    }

    /// Whether the term flags values below its lower edge too.
    pub fn two_sided(self) -> bool {
        matches!(
            self,
            Term::Elbo
                | Term::CentroidX
                | Term::CentroidY
                | Term::Ink
                | Term::Bright
                | Term::Midtones
                | Term::Extent
                | Term::Softness
        )
    }

    /// The smallest scale the term may have, in whole raw units: one nat for the ELBO, a
    /// quarter pixel for a centroid, one full-scale pixel of ink, one pixel or row for
    /// a count or a span. Without it a term that never moves on clean frames (holes
    /// are usually 0) would call any change infinitely anomalous.
    pub fn min_scale(self) -> i32 {
        match self {
            Term::Elbo => 1 << ELBO_TERM_BITS,
            Term::CentroidX | Term::CentroidY => 64,
            Term::Ink => 255,
            Term::Dimmest | Term::Ends => DIMMEST_MIN_SCALE,
            Term::Block => BLOCK_MIN_SCALE,
            Term::Unseen => UNSEEN_MIN_SCALE,
            Term::Head => HEAD_MIN_SCALE,
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
            Term::Unseen => "unseen",
            Term::Cuts => "cuts",
            Term::CentroidX => "centre-x",
            Term::CentroidY => "centre-y",
            Term::Ink => "ink",
            Term::Bright => "bright",
            Term::Midtones => "midtones",
            Term::Block => "block",
            Term::Extent => "extent",
            Term::Ends => "ends",
            Term::Softness => "softness",
            Term::Dimmest => "dimmest",
            Term::Head => "head",
        }
    }
}

/// Half of full scale: excess ink counts differences above it.
const HALF: i32 = 128;
/// [`Term::MissingInk`] counts reconstruction pixels above this (3/8 of full scale)
/// where the input reads 0.
pub const MISSING_DRAWN: u8 = 96;
/// Bright: at least 7/8 of full scale.
const BRIGHT: i32 = 224;
/// Mid-tones start above 1/8 of full scale.
const DARK: i32 = 32;

/// The raw value of every term for one frame.
pub type RawTerms = [i32; TERMS];

/// Fraction bits of the ELBO term: 1/256 nat, enough for a scale and, with the scales'
/// own eight fraction bits ([`SCALE_BITS`]), scales up to 32,768 nats in an `i32`.
pub const ELBO_TERM_BITS: u32 = 8;

/// The ELBO term of a frame whose negative ELBO is `elbo` (Q16): in 1/256 nat,
/// rounded down.
pub const fn elbo_term(elbo: Q16) -> i32 {
    elbo >> (16 - ELBO_TERM_BITS)
}

/// Fraction bits of [`Term::Head`]: 1/256 logit (a Q16 margin would overflow the
/// detector's `raw << 8` scale arithmetic past 128 logits).
pub const HEAD_TERM_BITS: u32 = 8;

/// The smallest scale of [`Term::Head`], in its raw units: a quarter logit.
pub const HEAD_MIN_SCALE: i32 = 1 << (HEAD_TERM_BITS - 2);

/// The head term of a frame whose head margin is `margin` (Q16): in 1/256 logit,
/// rounded down.
pub const fn head_term(margin: Q16) -> i32 {
    margin >> (16 - HEAD_TERM_BITS)
}

/// The ELBO term's value in nats, for reports.
pub fn elbo_term_nats(term: i32) -> f64 {
    f64::from(term) / f64::from(1u32 << ELBO_TERM_BITS)
}

/// Computes every term of `image` (`width` x `height`, row major) against its
/// reconstruction `recon` (pixels) and its negative ELBO `elbo` (Q16), [`Term::Unseen`]
/// against `seen` (0 without a set).
pub fn raw_terms(
    image: &[u8],
    recon: &[u8],
    width: usize,
    height: usize,
    elbo: Q16,
    seen: Option<Seen<'_>>,
) -> RawTerms {
    let mut residual = Residual::default();
    for (&x, &r) in image.iter().zip(recon) {
        residual.add(x, r);
    }
    image_terms(image, recon.len(), width, height, elbo, residual, seen)
}

/// Missing and excess ink, counted pixel by pixel (see [`Term::MissingInk`] and
/// [`Term::ExcessInk`]). (The device counts them in the pass that turns the decoder's
/// logits into pixels, [`crate::score::reconstruct`].)
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Residual {
    /// Pixels the input reads as 0 where the reconstruction draws more than
    /// [`MISSING_DRAWN`].
    pub missing: i32,
    /// Pixels the input has more than half scale above the reconstruction.
    pub excess: i32,
}

impl Residual {
    /// Counts one pixel: `input` as the sensor gave it, `drawn` its reconstruction.
    #[inline(always)]
    pub fn add(&mut self, input: u8, drawn: u8) {
        if input == 0 {
            if drawn > MISSING_DRAWN {
                self.missing += 1;
            }
        } else if i32::from(input) - i32::from(drawn) > HALF {
            self.excess += 1;
        }
    }
}

/// Every term given the residual counts: the ink statistics and the neighbourhood
/// counts of `image` alone (its first `min(image.len(), recon_len)` pixels, as
/// [`raw_terms`] pairs them with a reconstruction of `recon_len` pixels).
///
/// Written for the device's instruction count (the detector may add at most 15% to an
/// encode): row by row, only the span between a row's first and last inked pixel is
/// read, for the ink statistics and again, in the digit's rows, for the neighbourhood
/// terms (`neighbourhood_terms`: each row's pixels as bits, the terms as bit
/// operations on three rows), so a digit's blank margins cost a scan and nothing more.
/// Each loop holds few enough counters to stay in the Cortex-M's registers, with no
/// division or index arithmetic per pixel (the M0 has no divide instruction).
/// `tests/detector_terms.rs` holds it to the terms' definition.
pub fn image_terms(
    image: &[u8],
    recon_len: usize,
    width: usize,
    height: usize,
    elbo: Q16,
    residual: Residual,
    seen: Option<Seen<'_>>,
) -> RawTerms {
    // At most MAX_PIXELS are read, so the sums below fit in 32 bits (255 * 1023 * 1024
    // for the weighted ones).
    let pixels = if width == 0 {
        0
    } else {
        image.len().min(recon_len).min(MAX_PIXELS)
    };
    let image_read = &image[..pixels];

    let (mut ink, mut sum_x, mut sum_y, mut bright, mut midtones) = (0u32, 0u32, 0u32, 0, 0);
    // First and last row and column with a pixel above half scale.
    let (mut top, mut bottom, mut left, mut right) = (usize::MAX, 0, usize::MAX, 0);
    // Per quarter (top left, top right, bottom left, bottom right): the brightest
    // bright pixel and the pixels of the rows' extents above half scale.
    let (mut peak, mut inked) = ([0i32; 4], [0u32; 4]);
    let (mid_x, mid_y) = (width / 2, height / 2);
    for (y, row) in image_read.chunks(width.max(1)).enumerate() {
        // First and last column above half scale.
        let (mut first, mut last) = (usize::MAX, 0);
        if let Some((lo, hi)) = ink_span(row) {
            let mut row_ink = 0u32;
            let mut row_x = 0u32;
            let bottom_half = 2 * usize::from(y >= mid_y);
            for (x, &p) in row[lo..=hi].iter().enumerate() {
                let (p, x) = (i32::from(p), x + lo);
                if p >= BRIGHT {
                    bright += 1;
                    let quarter = bottom_half + usize::from(x >= mid_x);
                    peak[quarter] = peak[quarter].max(p);
                } else if p > DARK {
                    midtones += 1;
                }
                row_ink += p as u32;
                row_x += p as u32 * x as u32;
                if p > HALF {
                    first = first.min(x);
                    last = x;
                }
            }
            ink += row_ink;
            sum_x += row_x;
            sum_y += row_ink * y as u32;
            if first != usize::MAX {
                // The row's extent above half scale, split at the middle column.
                if first < mid_x {
                    inked[bottom_half] += (last.min(mid_x - 1) + 1 - first) as u32;
                }
                if last >= mid_x {
                    inked[bottom_half + 1] += (last + 1 - first.max(mid_x)) as u32;
                }
                top = top.min(y);
                bottom = y;
                left = left.min(first);
                right = right.max(last);
            }
        }
    }

    let centroid = |sum: u32, span: usize| -> i32 {
        match NonZeroU32::new(ink) {
            // (sum * 256 + ink / 2) / ink: 1/256 pixel, rounded.
            Some(d) => div_rem_u64(u64::from(sum) * 256 + u64::from(d.get() / 2), d).0 as i32,
            // A blank frame's centroid is the middle.
            None => (span as i32) * 128,
        }
    };
    let mut raw = [0; TERMS];
    raw[Term::Elbo as usize] = elbo_term(elbo);
    raw[Term::MissingInk as usize] = residual.missing;
    raw[Term::ExcessInk as usize] = residual.excess;
    raw[Term::CentroidX as usize] = centroid(sum_x, width.saturating_sub(1));
    raw[Term::CentroidY as usize] = centroid(sum_y, height.saturating_sub(1));
    raw[Term::Ink as usize] = ink as i32;
    raw[Term::Bright as usize] = bright;
    raw[Term::Midtones as usize] = midtones;
    // Each needs a pixel above half scale: a hole's neighbours, a cut's or a block's
    // bright pixels (a bright pixel is one), an unseen neighbourhood (see
    // `neighbourhood_terms`); a frame without one has no ends.
    if top != usize::MAX {
        neighbourhood_terms(image_read, width, top, bottom, seen, &mut raw);
    }
    // An empty frame spans nothing.
    let rows = (bottom + 1).saturating_sub(top) as i32;
    let columns = (right + 1).saturating_sub(left) as i32;
    raw[Term::Extent as usize] = rows.max(columns);
    // midtones * 256 / (bright + midtones + 1): both counts are at most the pixel count.
    raw[Term::Softness as usize] =
        (midtones as u32 * 256 / (bright as u32 + midtones as u32 + 1)) as i32;
    raw[Term::Dimmest as usize] = peak
        .iter()
        .zip(&inked)
        .filter(|&(_, &n)| n >= DIMMEST_MIN_INK)
        .map(|(&p, _)| 255 - p)
        .max()
        .unwrap_or(0);
    raw
}

/// The first and last column of `row` holding a pixel that is not 0. The blank
/// margins are skipped four pixels at a time (one word load each on the M3 and M4).
/// (Out of line: [`image_terms`] and [`neighbourhood_terms`] share one copy.)
#[inline(never)]
fn ink_span(row: &[u8]) -> Option<(usize, usize)> {
    let mut words = row.chunks_exact(4);
    let mut first = None;
    for (w, c) in (&mut words).enumerate() {
        if u32::from_ne_bytes([c[0], c[1], c[2], c[3]]) != 0 {
            first = c.iter().position(|&p| p != 0).map(|i| 4 * w + i);
            break;
        }
    }
    let first = match first {
        Some(first) => first,
        None => {
            let rest = words.remainder();
            let tail = row.len() - rest.len();
            let first = rest.iter().position(|&p| p != 0)?;
            let last = rest.iter().rposition(|&p| p != 0).unwrap_or(first);
            return Some((tail + first, tail + last));
        }
    };
    // From the end: the remainder first, then whole words.
    let tail = row.len() - row.len() % 4;
    if let Some(i) = row[tail..].iter().rposition(|&p| p != 0) {
        return Some((first, tail + i));
    }
    for (w, c) in row[..tail].chunks_exact(4).enumerate().rev() {
        if u32::from_ne_bytes([c[0], c[1], c[2], c[3]]) != 0 {
            let last = c.iter().rposition(|&p| p != 0).map_or(first, |i| 4 * w + i);
            return Some((first, last));
        }
    }
    Some((first, first))
}

/// The terms that read pixels with their neighbours ([`Term::Holes`], [`Term::Cuts`],
/// [`Term::Block`], [`Term::Unseen`] against `seen`, 0 without) and [`Term::Ends`], into
/// `raw`, for a frame whose pixels above half scale lie in rows `top..=bottom`: its own
/// pass over those rows and the one on either side, after the main one. Each row's
/// pixels become bits (column x: bit x, or x + 1 where a term reads the column to the
/// left too), read between its first and last pixel that is not 0, and each term is a
/// few bit operations on three rows' bits per row, whatever the row holds. (A loop
/// over pixel pairs cost several thousand instructions an encode and the M3 more code.)
/// The rows outside hold nothing above half scale, so they hold no hole, cut, block or
/// judged pixel ([`unseen_candidates`]) whose term needs one, and change neither end's
/// maximum (row `top` holds more); the two beside the digit are read as the neighbours
/// of its first and last rows.
#[inline(never)]
fn neighbourhood_terms(
    image: &[u8],
    width: usize,
    top: usize,
    bottom: usize,
    seen: Option<Seen<'_>>,
    raw: &mut RawTerms,
) {
    // The columns where a run of BLOCK_SIDE bright pixels starts in each of the last
    // one to five rows (bit x: column x).
    let (mut one, mut two, mut three, mut four, mut five) = (0u32, 0u32, 0u32, 0u32, 0u32);
    let (mut blocks, mut first_end, mut last_end) = (0, 0u8, 0u8);
    let mut rows = RowBits::default();
    let mut unseen = seen.map(UnseenRows::new);
    for y in top.saturating_sub(1)..=bottom + 1 {
        let row = image.get(y * width..).unwrap_or(&[]);
        let row = row.get(..width).unwrap_or(row);
        // The row's brightest pixel, its bright pixels, its pixels not 0 and those
        // above half scale (bit x: column x < 32).
        let (mut peak, mut bright, mut inked, mut half) = (0u8, 0u32, 0u32, 0u32);
        if let Some((lo, hi)) = ink_span(row) {
            let mut bit = 1u32.checked_shl(lo as u32).unwrap_or(0);
            for &p in &row[lo..=hi] {
                peak = peak.max(p);
                if p != 0 {
                    inked |= bit;
                }
                if i32::from(p) > HALF {
                    half |= bit;
                }
                if i32::from(p) >= BRIGHT {
                    bright |= bit;
                }
                // Past column 31 the bit is 0.
                bit <<= 1;
            }
        }
        // Runs of BLOCK_SIDE (6) bright pixels: of 2, of 4, of 4 and 2 more; a block
        // ends on this row where a run starts at the same column on the five before.
        let pairs = bright & (bright >> 1);
        let run = pairs & (pairs >> 2) & (pairs >> 4);
        let mut ended = five & run;
        while ended != 0 {
            ended &= ended - 1;
            blocks += 1;
        }
        (five, four, three, two, one) = (four & run, three & run, two & run, one & run, run);
        if y < top + ENDS_ROWS {
            first_end = first_end.max(peak);
        }
        if y + ENDS_ROWS > bottom {
            last_end = last_end.max(peak);
        }
        let levels = Levels {
            inked: inked << 1,
            half: half << 1,
        };
        // The row's pixels at 0 (bit x + 1: column x).
        let zero = !levels.inked & columns(row.len());
        rows.push(levels.half, zero, bright << 1);
        if let Some(unseen) = &mut unseen {
            unseen.push(levels, zero, y > top);
        }
    }
    raw[Term::Holes as usize] = rows.holes;
    raw[Term::Cuts as usize] = rows.cuts;
    raw[Term::Block as usize] = blocks;
    raw[Term::Ends as usize] = 255 - i32::from(first_end.min(last_end));
    raw[Term::Unseen as usize] = unseen.map_or(0, |u| u.count);
}

/// The columns of a row of `len` pixels that the neighbourhood terms read: bits 1 to
/// `min(len, NEIGHBOURHOOD_COLUMNS)` (bit x + 1: column x).
fn columns(len: usize) -> u32 {
    u32::MAX >> (31 - len.min(NEIGHBOURHOOD_COLUMNS)) & !1
}

/// The bits set in `bits`, one loop turn per bit: the masks [`RowBits`] counts are
/// mostly empty (the M0 and M3 have no population count).
fn ones(mut bits: u32) -> i32 {
    let mut n = 0;
    while bits != 0 {
        bits &= bits - 1;
        n += 1;
    }
    n
}

/// [`Term::Holes`] and [`Term::Cuts`], counted row by row from each row's bits (bit
/// x + 1: column x): the holes of a row when the row below it comes, the cuts of a row
/// (between its pixels, and between it and the row above) when it comes.
#[derive(Default)]
struct RowBits {
    /// The last two rows' pixels above half scale, the older first.
    half_above: u32,
    half_middle: u32,
    /// The last row's pixels at 0 and its bright pixels.
    zero_middle: u32,
    bright_middle: u32,
    holes: i32,
    cuts: i32,
}

impl RowBits {
    /// Takes the next row: its pixels above half scale, at 0 and bright.
    #[inline(always)]
    fn push(&mut self, half: u32, zero: u32, bright: u32) {
        // The last row's pixels at 0 between two above half scale, left and right or
        // above and below.
        let between = (self.half_middle << 1) & (self.half_middle >> 1);
        self.holes += ones(self.zero_middle & (between | (self.half_above & half)));
        // A bright pixel beside one at 0: in this row (bit x + 1 stands for the pair of
        // columns x and x + 1), and with the row above.
        let across = (bright & (zero >> 1)) | (zero & (bright >> 1));
        let down = (self.bright_middle & zero) | (self.zero_middle & bright);
        self.cuts += ones(across) + ones(down);
        (self.half_above, self.half_middle) = (self.half_middle, half);
        (self.zero_middle, self.bright_middle) = (zero, bright);
    }
}

/// One row's pixel levels as bits (bit x + 1: column x, up to
/// [`NEIGHBOURHOOD_COLUMNS`]; bit 0 is the column left of the frame).
#[derive(Debug, Clone, Copy, Default)]
struct Levels {
    /// Pixels not 0.
    inked: u32,
    /// Pixels above half scale.
    half: u32,
}

/// The base-3 value of three pixels' bits (bit 0 the left one, the most significant
/// digit): with `inked`'s and `half`'s bits added, three [`level`]s.
const TRIPLE: [u8; 8] = [0, 9, 3, 12, 1, 10, 4, 13];

/// [`Term::Unseen`], counted row by row: each row's neighbourhoods are judged when
/// the row below it comes.
struct UnseenRows<'a> {
    seen: Seen<'a>,
    /// The levels of the last two rows, the older first.
    above: Levels,
    middle: Levels,
    /// The last row's pixels to judge (bit x + 1: column x).
    judged: u32,
    /// The neighbourhoods found unseen so far.
    count: i32,
}

impl<'a> UnseenRows<'a> {
    fn new(seen: Seen<'a>) -> Self {
        Self {
            seen,
            above: Levels::default(),
            middle: Levels::default(),
            judged: 0,
            count: 0,
        }
    }

    /// Takes the next row (its `levels` and its pixels at 0) and, when `judge`, counts
    /// the last row's pixels whose neighbourhood the set lacks. Per pixel, each row's
    /// three levels come from its bits by one shift, so a judged pixel costs some forty
    /// instructions (a frame has a few dozen) and any other one nothing.
    #[inline(never)] // one loop with its own registers
    fn push(&mut self, below: Levels, zero: u32, judge: bool) {
        let rows = [self.above, self.middle, below];
        let mut judged = if judge { self.judged } else { 0 };
        while judged != 0 {
            // Bit x + 1 is column x, whose three pixels start at bit x.
            let shift = judged.trailing_zeros() - 1;
            judged &= judged - 1;
            let index = rows.iter().fold(0, |index, l| {
                let (i, h) = ((l.inked >> shift) & 7, (l.half >> shift) & 7);
                index * 27 + usize::from(TRIPLE[i as usize]) + usize::from(TRIPLE[h as usize])
            });
            self.count += i32::from(!self.seen.contains(index));
        }
        // The new row's pixels at 0 beside one that is not.
        let beside = (below.inked << 1) | (below.inked >> 1);
        (self.above, self.middle, self.judged) = (self.middle, below, beside & zero);
    }
}

/// Fraction bits of a [`TermParams`] scale: scales are in 1/256 of the term's raw unit,
/// so a count term (holes, rows) can have a scale below one count.
pub const SCALE_BITS: u32 = 8;

/// A scale of `units` whole raw units in [`SCALE_BITS`] fixed point (saturating; zero
/// and negative scales stay off).
pub const fn scale_from_units(units: i32) -> i32 {
    units.saturating_mul(1 << SCALE_BITS)
}

/// A [`TermParams`] scale in the term's raw units, for reports.
pub fn scale_units(scale: i32) -> f64 {
    f64::from(scale) / f64::from(1u32 << SCALE_BITS)
}

/// A term's edges and scales, fitted on clean frames: `z` is 0 from `low` to `high`
/// and grows by 1.0 per scale beyond either edge.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct TermParams {
    /// The upper edge: raw values above it count.
    pub high: i32,
    /// Raw units (in 1/256, [`SCALE_BITS`]) that make 1.0 above `high`; 0 turns the
    /// upper side off.
    pub scale_high: i32,
    /// The lower edge: raw values below it count.
    pub low: i32,
    /// Raw units (in 1/256) that make 1.0 below `low`; 0 turns the lower side off.
    pub scale_low: i32,
}

impl TermParams {
    /// The standardized value of `raw`, Q16, never negative (saturating).
    pub fn z(&self, raw: i32) -> Q16 {
        let Some((distance, scale)) = self.distance(raw) else {
            return 0;
        };
        // distance < 2^32, so distance << 24 < 2^56: no overflow.
        let q = div_rem_u64(distance << (16 + SCALE_BITS), scale).0;
        saturate_i64(q as i64)
    }

    /// Parameters with one edge for both sides (`z` measured from `centre`), as the
    /// device's [`Calibrator`] and detector sections before edges set them.
    pub const fn centred(centre: i32, scale_high: i32, scale_low: i32) -> Self {
        Self {
            high: centre,
            scale_high,
            low: centre,
            scale_low,
        }
    }

    /// How far `raw` lies beyond an edge and the scale of that side (`None` between the
    /// edges, or when the side is off): `z` is `distance << 24 / scale` (Q16, the scale
    /// in 1/256).
    #[inline(always)]
    fn distance(&self, raw: i32) -> Option<(u64, NonZeroU32)> {
        let (distance, scale) = if raw > self.high {
            (i64::from(raw) - i64::from(self.high), self.scale_high)
        } else if raw < self.low {
            (i64::from(self.low) - i64::from(raw), self.scale_low)
        } else {
            return None;
        };
        let scale = u32::try_from(scale).ok().and_then(NonZeroU32::new)?;
        Some((distance as u64, scale))
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

/// Bytes of the detector section of a model image ([`crate::model`]): the threshold,
/// then each term's upper edge, upper scale, lower edge and lower scale, every value an
/// `i32`, little endian.
pub const DETECTOR_SECTION_LEN: usize = 4 + 16 * TERMS;

/// Bytes of the detector section images had before [`Term::Head`] (16 terms, each
/// with its edges): such a section still loads, with that term off.
pub const DETECTOR_SECTION_LEN_16_TERMS: usize = DETECTOR_SECTION_LEN - 16;

/// Bytes of the detector section images had before the edges (16 terms, each a centre,
/// an upper and a lower scale): such a section still loads, each term's edges at its
/// centre.
pub const DETECTOR_SECTION_LEN_CENTRED: usize = 4 + 12 * 16;

/// Bytes of the detector section images had before [`Term::Dimmest`] (15 centred
/// terms): such a section still loads, with that term off.
pub const DETECTOR_SECTION_LEN_15_TERMS: usize = DETECTOR_SECTION_LEN_CENTRED - 12;

/// Bytes of a detector section that carries the [`Seen`] set of [`Term::Unseen`] after
/// the parameters (protocol 9 on).
pub const DETECTOR_SECTION_LEN_SEEN: usize = DETECTOR_SECTION_LEN + SEEN_LEN;

/// The same with the parameters of [`DETECTOR_SECTION_LEN_16_TERMS`] (protocol 8).
pub const DETECTOR_SECTION_LEN_16_TERMS_SEEN: usize = DETECTOR_SECTION_LEN_16_TERMS + SEEN_LEN;

/// Whether `len` is the length of a detector section's parameters some image format
/// holds.
///
/// The device reads only sections with edges (protocol 7 on): it runs the image its
/// build checked, and the firmware's build refuses an older one (re-export it); the
/// host reads every length, so an old model file still loads.
pub const fn is_detector_section_len(len: usize) -> bool {
    len == DETECTOR_SECTION_LEN
        || (cfg!(feature = "host")
            && (len == DETECTOR_SECTION_LEN_16_TERMS
                || len == DETECTOR_SECTION_LEN_CENTRED
                || len == DETECTOR_SECTION_LEN_15_TERMS))
}

/// The length of the parameters of a detector section `len` bytes long that carries the
/// [`Seen`] set, if it is one.
pub const fn seen_section_params_len(len: usize) -> Option<usize> {
    match len {
        DETECTOR_SECTION_LEN_SEEN => Some(DETECTOR_SECTION_LEN),
        DETECTOR_SECTION_LEN_16_TERMS_SEEN if cfg!(feature = "host") => {
            Some(DETECTOR_SECTION_LEN_16_TERMS)
        }
        _ => None,
    }
}

impl DetectorParams {
    /// Reads a detector section's parameters; `None` unless `bytes` is exactly
    /// [`DETECTOR_SECTION_LEN`] long (the parameters of a
    /// [`DETECTOR_SECTION_LEN_SEEN`] section), or one of the older lengths
    /// ([`DETECTOR_SECTION_LEN_CENTRED`]: each term's edges at its centre;
    /// [`DETECTOR_SECTION_LEN_15_TERMS`]: the same, the term it lacks off). Every value
    /// is valid: a negative scale turns its side off, like a zero one.
    pub fn from_le_bytes(bytes: &[u8]) -> Option<Self> {
        if !is_detector_section_len(bytes.len()) {
            return None;
        }
        // Word k of the section (the length is checked: every read is inside it).
        let word = |k: usize| {
            bytes
                .get(4 * k..4 * k + 4)
                .map_or(0, |b| i32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        };
        let mut params = DetectorParams {
            threshold: word(0),
            ..DetectorParams::default()
        };
        // Four words a term, or three in the centred sections (whose scales were whole
        // raw units); a section of fewer terms leaves the last ones off.
        let stride = if bytes.len() == DETECTOR_SECTION_LEN
            || bytes.len() == DETECTOR_SECTION_LEN_16_TERMS
        {
            4
        } else {
            3
        };
        let terms = (bytes.len() / 4 - 1) / stride;
        for (i, term) in params.terms.iter_mut().enumerate().take(terms) {
            let k = 1 + stride * i;
            *term = if stride == 4 || !cfg!(feature = "host") {
                TermParams {
                    high: word(k),
                    scale_high: word(k + 1),
                    low: word(k + 2),
                    scale_low: word(k + 3),
                }
            } else {
                TermParams::centred(
                    word(k),
                    scale_from_units(word(k + 1)),
                    scale_from_units(word(k + 2)),
                )
            };
        }
        Some(params)
    }

    /// The detector section for these parameters (what [`Self::from_le_bytes`] reads).
    pub fn to_le_bytes(&self) -> [u8; DETECTOR_SECTION_LEN] {
        let mut out = [0; DETECTOR_SECTION_LEN];
        let words = core::iter::once(self.threshold).chain(
            self.terms
                .iter()
                .flat_map(|t| [t.high, t.scale_high, t.low, t.scale_low]),
        );
        for (chunk, w) in out.chunks_exact_mut(4).zip(words) {
            chunk.copy_from_slice(&w.to_le_bytes());
        }
        out
    }
}

/// A frame's verdict: the largest standardized term and which one it was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Detection {
    /// The largest standardized term ([`TermParams::z`]), Q16.
    pub score: Q16,
    /// The term that gave `score` (the first, on a tie).
    pub fired: Term,
    /// `score > threshold`.
    pub anomalous: bool,
}

impl DetectorParams {
    /// The verdict as the protocol reports it.
    pub fn report(&self, raw: &RawTerms) -> DetectorReport {
        let d = self.detect(raw);
        DetectorReport {
            score: d.score,
            threshold: self.threshold,
            fired: d.fired,
            anomalous: d.anomalous,
        }
    }

    /// Standardizes `raw` and applies the threshold.
    ///
    /// One division per frame rather than one per term (each is a call of some sixty
    /// instructions on the Cortex-M): the largest `distance / scale` is found by
    /// cross-multiplying (`distance < 2^32` and `scale < 2^31`, so the products fit in
    /// 64 bits), its `z` is divided out, and the term that fires is the first whose
    /// `z` reaches it, as if every `z` had been computed.
    pub fn detect(&self, raw: &RawTerms) -> Detection {
        let (mut top_distance, mut top_scale) = (0u64, 1u64);
        let mut top = None;
        for (term, &value) in self.terms.iter().zip(raw) {
            if let Some((distance, scale)) = term.distance(value) {
                let scale = u64::from(scale.get());
                if distance * top_scale > top_distance * scale {
                    (top_distance, top_scale) = (distance, scale);
                    top = Some((term, value));
                }
            }
        }
        let best_z = top.map_or(0, |(term, value)| term.z(value));
        // The first term whose z is at least best_z: distance * 2^24 >= best_z * scale
        // (saturated z included: best_z is then i32::MAX; both sides < 2^63). Every z
        // is 0 when best_z is.
        let best = if best_z == 0 {
            0
        } else {
            self.terms
                .iter()
                .zip(raw)
                .position(|(term, &value)| {
                    term.distance(value).is_some_and(|(distance, scale)| {
                        distance << (16 + SCALE_BITS) >= best_z as u64 * u64::from(scale.get())
                    })
                })
                .unwrap_or(0)
        };
        Detection {
            score: best_z,
            fired: Term::ALL[best],
            anomalous: best_z > self.threshold,
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
/// half sets the threshold: of its `m` frames' scores the `m / 100`-th largest (at least
/// the largest, at most the [`THRESHOLD_RANKS`]-th), which leaves about 1% of new clean
/// frames above it, never below 1.0. (The second largest of 100, the rule before, left
/// 2.75% of 400 new digits above it on the board.) Memory: a sum and the kept extremes
/// per term and the parameters fitted so far (about 750 bytes), whatever `frames` is;
/// the host's twin is this very code.
///
/// A threshold-only calibration ([`Calibrator::start_threshold`]) keeps the terms of the
/// detector in force and sets only the threshold, the same way, from all its frames:
/// for a board whose sensor is the training data's kind, where the terms fitted at
/// export on 1,002 frames see more than 100 of the board's can (BENCHMARKS.md, "What a
/// calibration on the board costs in recall").
///
/// An idle calibrator ([`Calibrator::idle`], or one whose frames are all in) takes no
/// frames, so the device keeps one and restarts it in place ([`Calibrator::start`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Calibrator {
    /// Frames asked for (0: idle).
    frames: u16,
    /// Whether the terms in `params` stay (a threshold-only calibration: no fitting
    /// half).
    keep_terms: bool,
    /// Frames seen.
    seen: u16,
    /// Per term: the sum of the fitting frames' raw values.
    sum: [i64; TERMS],
    /// Per term: the largest raw values seen while fitting, largest first, as
    /// [`ordered`] keys.
    high: [[u32; CALIBRATION_RANK]; TERMS],
    /// Per term: the smallest raw values seen while fitting, as the keys of `!v` (which
    /// reverses the order without overflow), so that one "largest first" insertion
    /// keeps both.
    low: [[u32; CALIBRATION_RANK]; TERMS],
    /// The parameters fitted so far (terms after the first half, threshold at the end).
    params: DetectorParams,
    /// The largest scores of the threshold frames, largest first, as keys.
    top_scores: [u32; THRESHOLD_RANKS],
}

/// The key of `v` that sorts as `v` does but whose smallest value is 0: an idle
/// [`Calibrator`] is all zeros, which the device clears with a `memset` instead of
/// copying a constant of its size.
fn ordered(v: i32) -> u32 {
    (v as u32) ^ 0x8000_0000
}

/// The value of an [`ordered`] key.
fn unordered(key: u32) -> i32 {
    (key ^ 0x8000_0000) as i32
}

/// How many of the threshold frames' largest scores [`Calibrator`] keeps: the threshold
/// is the `m / 100`-th largest of `m` (about 1% false positives), up to this rank.
pub const THRESHOLD_RANKS: usize = 8;

/// The fewest frames a calibration takes: two per half, so each half has a rank.
pub const MIN_CALIBRATION_FRAMES: u16 = 4;

impl Calibrator {
    /// A calibrator that takes no frames until [`Calibrator::start`]ed.
    pub const fn idle() -> Self {
        Self {
            frames: 0,
            keep_terms: false,
            seen: 0,
            sum: [0; TERMS],
            high: [[0; CALIBRATION_RANK]; TERMS],
            low: [[0; CALIBRATION_RANK]; TERMS],
            params: DetectorParams {
                terms: [TermParams::centred(0, 0, 0); TERMS],
                threshold: 0,
            },
            top_scores: [0; THRESHOLD_RANKS],
        }
    }

    /// A calibration over `frames` frames (see [`Calibrator::start`]).
    pub fn new(frames: u16) -> Self {
        let mut calibrator = Self::idle();
        calibrator.start(frames);
        calibrator
    }

    /// Starts over on `frames` frames: at least [`MIN_CALIBRATION_FRAMES`], or none
    /// (`0` stops the calibration under way). Returns the frames it will take.
    pub fn start(&mut self, frames: u16) -> u16 {
        *self = Self::idle();
        if frames > 0 {
            self.frames = frames.max(MIN_CALIBRATION_FRAMES);
        }
        self.frames
    }

    /// Starts over on `frames` frames (as [`Calibrator::start`]) that set only the
    /// threshold, keeping the terms of `in_force` (the detector the frames are judged
    /// by). Without one there are no terms to keep, and the calibration fits them too.
    /// Returns the frames it will take.
    pub fn start_threshold(&mut self, frames: u16, in_force: Option<DetectorParams>) -> u16 {
        let frames = self.start(frames);
        if let Some(params) = in_force.filter(|_| frames > 0) {
            self.params = params;
            self.keep_terms = true;
        }
        frames
    }

    /// Frames still to come (0: idle or finished).
    pub fn remaining(&self) -> u16 {
        self.frames - self.seen
    }

    /// Frames taken by the fitting half (none when the terms are kept).
    fn fitting_frames(&self) -> u16 {
        if self.keep_terms {
            0
        } else {
            self.frames / 2
        }
    }

    /// Takes one clean frame's raw terms; returns the parameters once the last frame
    /// is in (and `None` before, or after: a finished or idle calibration takes none).
    pub fn add(&mut self, raw: &RawTerms) -> Option<DetectorParams> {
        if self.seen >= self.frames {
            return None;
        }
        let fitting = self.fitting_frames();
        if self.seen < fitting {
            for (t, &v) in raw.iter().enumerate() {
                self.sum[t] += i64::from(v);
                insert_descending(&mut self.high[t], ordered(v));
                insert_descending(&mut self.low[t], ordered(!v));
            }
        } else {
            let score = self.params.detect(raw).score;
            insert_descending(&mut self.top_scores, ordered(score));
        }
        self.seen += 1;
        if self.seen == fitting {
            self.fit_terms();
        }
        if self.seen == self.frames {
            // The r-th largest of m scores leaves about r / (m + 1) of new clean
            // frames above it: r = m / 100 (at least 1) for about 1%.
            let m = usize::from(self.frames - self.fitting_frames());
            let rank = (m / 100).clamp(1, THRESHOLD_RANKS);
            self.params.threshold = unordered(self.top_scores[rank - 1]).max(Q16_ONE);
            return Some(self.params);
        }
        None
    }

    /// Sets every term's centre and scales from the fitting half.
    fn fit_terms(&mut self) {
        let n = NonZeroU32::new(u32::from(self.fitting_frames())).unwrap_or(NonZeroU32::MIN);
        let rank = CALIBRATION_RANK.min(self.fitting_frames() as usize) - 1;
        for (t, term) in Term::ALL.into_iter().enumerate() {
            // The mean, rounded half away from zero, without a 64-bit division call.
            let centre = saturate_i64(div_round(self.sum[t], n));
            let floor = term.min_scale();
            let high = unordered(self.high[t][rank])
                .saturating_sub(centre)
                .max(floor);
            let low = if term.two_sided() {
                centre
                    .saturating_sub(!unordered(self.low[t][rank]))
                    .max(floor)
            } else {
                0
            };
            self.params.terms[t] =
                TermParams::centred(centre, scale_from_units(high), scale_from_units(low));
        }
    }
}

/// Inserts `v` into `kept` (largest first), dropping the smallest.
fn insert_descending<const N: usize>(kept: &mut [u32; N], v: u32) {
    let mut carry = v;
    for slot in kept.iter_mut() {
        if carry > *slot {
            core::mem::swap(&mut carry, slot);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The [`Seen`] bytes of the neighbourhoods [`Term::Unseen`] judges in `frames`.
    fn seen_in(frames: &[&[u8; 28 * 28]]) -> [u8; SEEN_LEN] {
        let mut bits = [0; SEEN_LEN];
        for frame in frames {
            for (x, y) in unseen_candidates(*frame, 28) {
                let n = neighbourhood(*frame, 28, x, y);
                bits[n / 8] |= 1 << (n % 8);
            }
        }
        bits
    }

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
    fn a_clean_bar_has_no_holes_unseen_neighbourhoods_or_cuts() {
        let img = bar();
        let seen = seen_in(&[&img]);
        let raw = raw_terms(&img, &img, 28, 28, 5 << 16, Seen::new(&seen));
        assert_eq!(raw[Term::Holes as usize], 0);
        assert_eq!(raw[Term::Unseen as usize], 0);
        // The bar's top and bottom rows end hard: each of the four bright columns has
        // 255 next to 0 at both ends.
        assert_eq!(raw[Term::Cuts as usize], 2 * 4);
        assert_eq!(raw[Term::MissingInk as usize], 0);
        assert_eq!(raw[Term::Elbo as usize], 5 << 8);
        // Centroid: column 13.5, row 13.5, in 1/256 px.
        assert_eq!(raw[Term::CentroidX as usize], 3456);
        assert_eq!(raw[Term::CentroidY as usize], 3456);
        // Rows 6..22, columns 12..16 are above half scale (the soft edges are not).
        assert_eq!(raw[Term::Extent as usize], 16);
        // Both ends reach full scale.
        assert_eq!(raw[Term::Ends as usize], 0);
        // Four pixels per row at full scale, the two edges at 90 are mid-tones; a
        // stroke four wide holds no solid block.
        assert_eq!(raw[Term::Bright as usize], 16 * 4);
        assert_eq!(raw[Term::Midtones as usize], 16 * 2);
        assert_eq!(raw[Term::Block as usize], 0);
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
        assert_eq!(
            raw_terms(&dead, &clean, 28, 28, 0, None)[Term::Holes as usize],
            2
        );
        assert_eq!(
            raw_terms(&dead, &clean, 28, 28, 0, None)[Term::MissingInk as usize],
            2
        );
        // Against the neighbourhoods of the clean bar: each dead pixel is a 0 inside
        // the bar, which it never has; a pixel dimmed (not 0) is not judged. Beside a
        // hot pixel off the bar, the 0s left and right of it are judged: the bar has
        // no pixel above half scale alone in its row. Without a set the term reads 0.
        let seen = seen_in(&[&clean]);
        let unseen = |img: &[u8; 28 * 28]| {
            raw_terms(img, &clean, 28, 28, 0, Seen::new(&seen))[Term::Unseen as usize]
        };
        assert_eq!(unseen(&dead), 2);
        let mut dimmed = clean;
        dimmed[10 * 28 + 13] = 200;
        assert_eq!(unseen(&dimmed), 0);
        let mut hot = clean;
        hot[3 * 28 + 3] = 255;
        assert_eq!(unseen(&hot), 2);
        assert_eq!(
            raw_terms(&hot, &clean, 28, 28, 0, None)[Term::Unseen as usize],
            0
        );
        assert_eq!(
            raw_terms(&hot, &clean, 28, 28, 0, None)[Term::ExcessInk as usize],
            1
        );
        // A dark band across the bar: two new cuts of the 4-wide stroke.
        let mut cut = clean;
        for x in 0..28 {
            cut[13 * 28 + x] = 0;
            cut[14 * 28 + x] = 0;
        }
        let cuts = raw_terms(&cut, &clean, 28, 28, 0, None)[Term::Cuts as usize];
        assert_eq!(cuts, 2 * 4 + 2 * 4);
        // A dark pixel that is not at 0 is no hole, and a reconstruction a little above
        // an input that is not 0 is no missing ink.
        let mut dim = clean;
        dim[10 * 28 + 13] = 1;
        assert_eq!(
            raw_terms(&dim, &clean, 28, 28, 0, None)[Term::Holes as usize],
            0
        );
        assert_eq!(
            raw_terms(&dim, &clean, 28, 28, 0, None)[Term::MissingInk as usize],
            0
        );
        let mut faint = blank();
        faint[10 * 28 + 13] = MISSING_DRAWN;
        faint[10 * 28 + 14] = MISSING_DRAWN + 1;
        assert_eq!(
            raw_terms(&blank(), &faint, 28, 28, 0, None)[Term::MissingInk as usize],
            1
        );
    }

    #[test]
    fn a_blank_frame_has_its_centroid_in_the_middle() {
        let raw = raw_terms(&blank(), &blank(), 28, 28, 0, None);
        assert_eq!(raw[Term::Ink as usize], 0);
        assert_eq!(raw[Term::CentroidX as usize], 27 * 128);
        assert_eq!(raw[Term::Extent as usize], 0);
        assert_eq!(raw[Term::Ends as usize], 0);
        assert_eq!(raw[Term::Block as usize], 0);
    }

    #[test]
    fn glare_makes_blocks_and_a_dim_end_makes_ends() {
        // A 9x9 patch at full scale over the bar: (9 - 6 + 1)^2 solid 6x6 blocks.
        let mut glare = bar();
        for y in 10..19 {
            for x in 9..18 {
                glare[y * 28 + x] = 255;
            }
        }
        assert_eq!(
            raw_terms(&glare, &glare, 28, 28, 0, None)[Term::Block as usize],
            16
        );
        // One pixel below bright in the patch's middle leaves no 6x6 block whole.
        glare[14 * 28 + 13] = 223;
        assert_eq!(
            raw_terms(&glare, &glare, 28, 28, 0, None)[Term::Block as usize],
            0
        );
        // The bar's last six rows (16..22) dimmed to 200 (its edges stay at 90): the
        // bottom end peaks at 200, the top one at 255.
        let mut dim = bar();
        for p in &mut dim[16 * 28..22 * 28] {
            if *p == 255 {
                *p = 200;
            }
        }
        assert_eq!(
            raw_terms(&dim, &dim, 28, 28, 0, None)[Term::Ends as usize],
            55
        );
        // (Row 15, the seventh from the end, stays at 255 and does not count.) The
        // brightest pixel of the last six rows sets the end.
        dim[21 * 28 + 12] = 201;
        assert_eq!(
            raw_terms(&dim, &dim, 28, 28, 0, None)[Term::Ends as usize],
            54
        );
    }

    #[test]
    fn standardization_is_two_sided_and_can_be_switched_off() {
        let p = TermParams::centred(100, scale_from_units(10), 0);
        assert_eq!(p.z(110), Q16_ONE);
        assert_eq!(p.z(125), Q16_ONE * 5 / 2);
        assert_eq!(p.z(50), 0);
        let p = TermParams {
            scale_low: scale_from_units(20),
            ..p
        };
        assert_eq!(p.z(60), 2 * Q16_ONE);
        assert_eq!(TermParams::centred(i32::MIN, 1, 1).z(i32::MAX), i32::MAX);
        // A scale below one raw unit: a quarter count makes 1.0.
        assert_eq!(TermParams::centred(0, 64, 0).z(3), 12 * Q16_ONE);
        // Edges apart: nothing between them, each side measured from its own edge.
        let p = TermParams {
            high: 120,
            scale_high: scale_from_units(10),
            low: 90,
            scale_low: scale_from_units(5),
        };
        for raw in [90, 100, 120] {
            assert_eq!(p.z(raw), 0, "{raw}");
        }
        assert_eq!(p.z(135), 3 * Q16_ONE / 2);
        assert_eq!(p.z(80), 2 * Q16_ONE);
        // Edges crossed (a hand-made section): every value still has one side.
        let crossed = TermParams {
            high: 80,
            low: 100,
            ..p
        };
        assert_eq!(crossed.z(90), Q16_ONE);
        assert_eq!(crossed.z(75), 5 * Q16_ONE);
    }

    #[test]
    fn calibration_fits_the_first_half_and_thresholds_the_second() {
        // 200 frames: ELBO 100..=199 nats while fitting, holes 0 but 5, 6, 7 on three.
        let frame = |elbo: i32, holes: i32| {
            let mut r = [0; TERMS];
            r[Term::Elbo as usize] = elbo << 8;
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
        assert_eq!((elbo.high, elbo.low), ((299 << 8) / 2, (299 << 8) / 2));
        assert_eq!(elbo.scale_high, scale_from_units((197 << 8) - elbo.high));
        assert_eq!(elbo.scale_low, scale_from_units(elbo.high - (102 << 8)));
        let holes = p.terms[Term::Holes as usize];
        // Mean (5 + 6 + 7) / 100 rounds to 0; third largest 5.
        assert_eq!(holes, TermParams::centred(0, scale_from_units(5), 0));
        // Threshold: of 100 threshold-half scores the largest, the 250-nat frame's.
        let z250 = elbo.z(250 << 8);
        assert!(z250 > elbo.z(240 << 8));
        assert_eq!(p.threshold, z250);
        // A finished calibration takes no more frames, nor does an idle one; a restart
        // in place starts from nothing.
        assert_eq!(cal.add(&frame(0, 0)), None);
        assert_eq!(cal.remaining(), 0);
        assert_eq!(Calibrator::idle().add(&frame(0, 0)), None);
        assert_eq!(cal.start(1), MIN_CALIBRATION_FRAMES);
        assert_eq!(cal, Calibrator::new(MIN_CALIBRATION_FRAMES));
        assert_eq!(cal.start(0), 0);
        assert_eq!(cal, Calibrator::idle());
    }

    #[test]
    fn a_threshold_calibration_keeps_the_terms_and_thresholds_every_frame() {
        let frame = |elbo: i32| {
            let mut r = [0; TERMS];
            r[Term::Elbo as usize] = elbo << 8;
            r
        };
        let mut in_force = DetectorParams::default();
        in_force.terms[Term::Elbo as usize] =
            TermParams::centred(100 << 8, scale_from_units(10 << 8), 0);
        in_force.threshold = 7 * Q16_ONE;
        let mut cal = Calibrator::idle();
        assert_eq!(cal.start_threshold(200, Some(in_force)), 200);
        // Every frame counts towards the threshold: ELBO 100 nats (z 0) but 250, 240
        // and 230 nats (z 15, 14, 13) on three of the 200.
        let mut done = None;
        for i in 0..200 {
            let elbo = match i {
                5 => 250,
                150 => 240,
                199 => 230,
                _ => 100,
            };
            done = cal.add(&frame(elbo));
            assert_eq!(done.is_some(), i == 199, "frame {i}");
        }
        let p = done.unwrap();
        assert_eq!(p.terms, in_force.terms, "the terms in force stay");
        // Of 200 scores the second largest (200 / 100).
        assert_eq!(p.threshold, 14 * Q16_ONE);
        // With no detector in force it is a whole calibration; 0 cancels as `start`.
        assert_eq!(cal.start_threshold(6, None), 6);
        assert_eq!(cal, Calibrator::new(6));
        assert_eq!(cal.start_threshold(0, Some(in_force)), 0);
        assert_eq!(cal, Calibrator::idle());
    }

    #[test]
    fn the_model_section_round_trips() {
        let mut p = DetectorParams::default();
        for (t, term) in p.terms.iter_mut().enumerate() {
            let t = t as i32;
            *term = TermParams {
                high: -1000 * t,
                scale_high: 7 + t,
                low: -2000 * t,
                scale_low: i32::MIN + t,
            };
        }
        p.threshold = 0x0001_8000;
        let bytes = p.to_le_bytes();
        assert_eq!(&bytes[..4], &0x0001_8000i32.to_le_bytes());
        assert_eq!(&bytes[4..8], &0i32.to_le_bytes());
        assert_eq!(&bytes[8..12], &7i32.to_le_bytes());
        assert_eq!(&bytes[28..32], &(-2000i32).to_le_bytes());
        assert_eq!(DetectorParams::from_le_bytes(&bytes), Some(p));
        assert_eq!(DetectorParams::from_le_bytes(&bytes[1..]), None);
        // A section from before the edges: a centre and two scales per term, the
        // edges both at the centre.
        let mut centred = DetectorParams {
            threshold: p.threshold,
            ..DetectorParams::default()
        };
        let mut old_bytes = p.threshold.to_le_bytes().to_vec();
        // (Sixteen terms: `head` came after the edges.)
        for (t, term) in centred.terms.iter_mut().enumerate().take(16) {
            let t = t as i32;
            *term = TermParams::centred(
                -1000 * t,
                scale_from_units(7 + t),
                scale_from_units(i32::MIN + t),
            );
            for w in [-1000 * t, 7 + t, i32::MIN + t] {
                old_bytes.extend(w.to_le_bytes());
            }
        }
        assert_eq!(old_bytes.len(), DETECTOR_SECTION_LEN_CENTRED);
        assert_eq!(DetectorParams::from_le_bytes(&old_bytes), Some(centred));
        // A section from before the `dimmest` term: the same terms, that one off.
        let mut old = centred;
        old.terms[Term::Dimmest as usize] = TermParams::default();
        assert_eq!(
            DetectorParams::from_le_bytes(&old_bytes[..DETECTOR_SECTION_LEN_15_TERMS]),
            Some(old)
        );
        assert_eq!(
            DetectorParams::from_le_bytes(&[0; DETECTOR_SECTION_LEN + 1]),
            None
        );
        // A section from before the `head` term (protocol 8): sixteen terms with
        // edges, that one off.
        let mut sixteen = p;
        sixteen.terms[Term::Head as usize] = TermParams::default();
        assert_eq!(
            DetectorParams::from_le_bytes(&bytes[..DETECTOR_SECTION_LEN_16_TERMS]),
            Some(sixteen)
        );
    }

    #[test]
    fn the_threshold_rank_grows_with_the_frames() {
        // 1,000 frames: 500 set the threshold, from their 5th largest score.
        let mut r = [0; TERMS];
        let mut cal = Calibrator::new(1000);
        let mut done = None;
        for i in 0..1000 {
            // Fitting half: ELBO 0..=499 nats; threshold half: 0..=499 again.
            r[Term::Elbo as usize] = (i % 500) << 8;
            done = cal.add(&r).or(done);
        }
        let p = done.expect("finished");
        let elbo = p.terms[Term::Elbo as usize];
        assert_eq!(p.threshold, elbo.z(495 << 8).max(Q16_ONE));
    }

    #[test]
    fn extremes_are_kept_in_order() {
        let mut kept = [0; 3];
        for v in [5, -1, 9, i32::MIN, 7, 3, 9] {
            insert_descending(&mut kept, ordered(v));
        }
        assert_eq!(kept.map(unordered), [9, 9, 7]);
        // The smallest, kept bit-inverted.
        let mut low = [0; 3];
        for v in [5, 1, 9, i32::MAX, 7, -3, i32::MIN] {
            insert_descending(&mut low, ordered(!v));
        }
        assert_eq!(low.map(|k| !unordered(k)), [i32::MIN, -3, 1]);
    }

    #[test]
    fn detect_equals_standardizing_every_term() {
        // The definition: every z, the first largest fires.
        fn by_definition(p: &DetectorParams, raw: &RawTerms) -> (Q16, Term) {
            let z: [Q16; TERMS] = core::array::from_fn(|i| p.terms[i].z(raw[i]));
            let mut best = 0;
            for i in 0..TERMS {
                if z[i] > z[best] {
                    best = i;
                }
            }
            (z[best], Term::ALL[best])
        }
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for round in 0..20_000 {
            let mut p = DetectorParams::default();
            let mut raw = [0; TERMS];
            for (term, value) in p.terms.iter_mut().zip(raw.iter_mut()) {
                // Small values make equal ratios common; wide ones with small scales
                // saturate (equal z from different ratios).
                let v = |r: u64| -> i32 {
                    match round % 3 {
                        0 => r as i32,
                        1 => (r % 7) as i32 - 2,
                        _ => (r % 4) as i32,
                    }
                };
                *term = TermParams {
                    high: v(next()),
                    scale_high: v(next()),
                    low: v(next()),
                    scale_low: v(next()),
                };
                *value = if round % 3 == 2 {
                    next() as i32
                } else {
                    v(next())
                };
            }
            let d = p.detect(&raw);
            assert_eq!((d.score, d.fired), by_definition(&p, &raw), "{p:?} {raw:?}");
        }
    }

    #[test]
    fn the_largest_term_fires() {
        let mut params = DetectorParams::default();
        params.terms[Term::Holes as usize] = TermParams::centred(0, scale_from_units(2), 0);
        params.terms[Term::Elbo as usize] = TermParams::centred(
            100 << 8,
            scale_from_units(20 << 8),
            scale_from_units(10 << 8),
        );
        let mut raw = [0; TERMS];
        raw[Term::Elbo as usize] = 75 << 8; // 2.5 below
        raw[Term::Holes as usize] = 4; // 2.0 above
        let d = params.detect(&raw);
        assert_eq!(d.fired, Term::Elbo);
        assert_eq!(d.score, 5 * Q16_ONE / 2);
        assert!(d.anomalous);
        raw[Term::Elbo as usize] = 100 << 8;
        raw[Term::Holes as usize] = 2;
        let d = params.detect(&raw);
        assert_eq!(
            (d.fired, d.score, d.anomalous),
            (Term::Holes, Q16_ONE, false)
        );
    }
}
