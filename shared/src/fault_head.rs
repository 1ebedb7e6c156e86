//! The fault head in fixed point: a small convolutional classifier of the frame
//! itself, the detector's 17th term, bit for bit the same on host and device.
//!
//! Why a classifier beside the VAE: the sixteen terms read the frame against its
//! reconstruction; a patch on a stroke, a second digit laid over the first or a clipped
//! stroke leave them near where clean digits put them. A classifier told what faults
//! look like sees them (BENCHMARKS.md, "A head the board can carry"). The float head
//! and its training are `tinyvae_trainer::fault_head`.
//!
//! Shape, on a 28x28 frame: a 3x3 convolution (`conv1`, 1 to `c1` channels, zero
//! padding, ReLU) and 2x2 max pooling to 14x14; a 3x3 convolution (`conv2`, `c1` to `c2`)
//! and pooling to 7x7; a dense layer (`hidden`, ReLU); the class logits (`logits`, Q16;
//! class 0 clean). The term is the largest fault logit less the clean one.
//!
//! Each convolution is a [`DenseLayer`] over a 3x3 patch (its weights rows of
//! `(ky * 3 + kx) * channels + c`; activations are stored channels-last, so a patch
//! row is contiguous), run by the per-core kernels: the head costs no kernel of its
//! own.
//! Pooling takes the largest of four int8 outputs; requantization and ReLU are monotone,
//! so that equals requantizing the largest accumulator.
//!
//! ## Memory
//!
//! The first layer's pooled map (14 x 14 x 16 = 3,136 bytes) is never held whole: a
//! pooled row of the second layer reads four pooled rows of the first, so those are
//! computed as they are needed into a ring of four ([`HeadBuffers`]: 896 bytes for 16
//! channels). The hidden layer reads its 1,568 inputs directly
//! ([`DenseLayer::forward_i8_direct`]) instead of widening them into 6 KiB of scratch.

use crate::dense::{DenseLayer, LayerOutput};
use crate::fixed::Q16;
use crate::model::INPUT_ZERO_POINT;

/// The frame side the head reads.
pub const SIDE: usize = 28;
/// The first pooled map's side.
const HALF: usize = SIDE / 2;
/// The second pooled map's side.
const QUARTER: usize = SIDE / 4;
/// Taps of a 3x3 kernel.
const TAPS: usize = 9;
/// Most channels of the first convolution.
pub const MAX_CONV1: usize = 16;
/// Most channels of the second convolution.
pub const MAX_CONV2: usize = 32;
/// Most hidden units.
pub const MAX_HIDDEN: usize = 32;
/// Most classes (the clean one included).
pub const MAX_CLASSES: usize = 32;
/// Pooled rows of the first layer held at once.
const RING: usize = 4;

/// Why four layers do not make a head.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum HeadShapeError {
    /// A layer's inputs or outputs are not what the shape needs.
    #[error("fault head layer {layer}: {what}")]
    Layer {
        /// 0 conv1, 1 conv2, 2 hidden, 3 logits.
        layer: usize,
        /// What was expected.
        what: &'static str,
    },
}

/// Bytes of the first layer's ring of pooled rows and the second layer's pooled map
/// ([`HeadScratch::new`]'s `maps`): 896 + 1,568.
pub const MAPS_BYTES: usize = RING * HALF * MAX_CONV1 + QUARTER * QUARTER * MAX_CONV2;
/// Bytes of a patch, a position's outputs and the hidden units (`small`): 144 + 32 + 32.
pub const SMALL_BYTES: usize = TAPS * MAX_CONV1 + MAX_CONV2 + MAX_HIDDEN;
/// Words of the kernels' widened inputs (`words`): a second-layer patch.
pub const WORDS: usize = TAPS * MAX_CONV1;

/// Scratch space for one head pass, borrowed: the device lends the buffers the VAE
/// has finished with (its widened inputs seen as bytes, an activation buffer, the
/// encoder head's output), so the head costs no RAM of its own; the host can use
/// [`HeadBuffers`].
pub struct HeadScratch<'s> {
    rows: &'s mut [i8],
    pooled: &'s mut [i8],
    patch: &'s mut [i8],
    out: &'s mut [i8],
    hidden: &'s mut [i8],
    widened: &'s mut [i32],
    logits: &'s mut [Q16],
}

impl<'s> HeadScratch<'s> {
    /// Scratch carved from `maps` (at least [`MAPS_BYTES`]), `small` ([`SMALL_BYTES`]),
    /// `words` ([`WORDS`]) and `logits` ([`MAX_CLASSES`]); `None` when one is short.
    pub fn new(
        maps: &'s mut [i8],
        small: &'s mut [i8],
        words: &'s mut [i32],
        logits: &'s mut [Q16],
    ) -> Option<Self> {
        let (rows, rest) = maps.split_at_mut_checked(RING * HALF * MAX_CONV1)?;
        let pooled = rest.get_mut(..QUARTER * QUARTER * MAX_CONV2)?;
        let (patch, rest) = small.split_at_mut_checked(TAPS * MAX_CONV1)?;
        let (out, rest) = rest.split_at_mut_checked(MAX_CONV2)?;
        let hidden = rest.get_mut(..MAX_HIDDEN)?;
        Some(Self {
            rows,
            pooled,
            patch,
            out,
            hidden,
            widened: words.get_mut(..WORDS)?,
            logits: logits.get_mut(..MAX_CLASSES)?,
        })
    }

    /// The class logits of the last pass (Q16; class 0 clean), in the first as many
    /// slots as the head has classes.
    pub fn logits(&self) -> &[Q16] {
        self.logits
    }
}

/// Owned scratch for a head pass (about 3.3 KiB), for the host.
pub struct HeadBuffers {
    rows: [i8; RING * HALF * MAX_CONV1],
    pooled: [i8; QUARTER * QUARTER * MAX_CONV2],
    patch: [i8; TAPS * MAX_CONV1],
    out: [i8; MAX_CONV2],
    hidden: [i8; MAX_HIDDEN],
    words: [i32; WORDS],
    logits: [Q16; MAX_CLASSES],
}

impl Default for HeadBuffers {
    fn default() -> Self {
        Self::new()
    }
}

impl HeadBuffers {
    /// Zeroed buffers.
    pub const fn new() -> Self {
        Self {
            rows: [0; RING * HALF * MAX_CONV1],
            pooled: [0; QUARTER * QUARTER * MAX_CONV2],
            patch: [0; TAPS * MAX_CONV1],
            out: [0; MAX_CONV2],
            hidden: [0; MAX_HIDDEN],
            words: [0; WORDS],
            logits: [0; MAX_CLASSES],
        }
    }

    /// The buffers as a head's scratch.
    pub fn scratch(&mut self) -> HeadScratch<'_> {
        HeadScratch {
            rows: &mut self.rows,
            pooled: &mut self.pooled,
            patch: &mut self.patch,
            out: &mut self.out,
            hidden: &mut self.hidden,
            widened: &mut self.words,
            logits: &mut self.logits,
        }
    }
}

/// The head's four layers, checked to fit together ([`FaultHead::new`]).
#[derive(Debug, Clone, Copy)]
pub struct FaultHead<'a> {
    conv1: DenseLayer<'a>,
    conv2: DenseLayer<'a>,
    hidden: DenseLayer<'a>,
    logits: DenseLayer<'a>,
}

fn relu_zero_point(layer: &DenseLayer<'_>) -> Option<i32> {
    match layer.output {
        LayerOutput::Int8 {
            zero_point,
            relu: true,
        } => Some(zero_point),
        _ => None,
    }
}

impl<'a> FaultHead<'a> {
    /// The head of these layers, if their shapes chain: `conv1` 9 pixel inputs (zero
    /// point [`INPUT_ZERO_POINT`]) to at most [`MAX_CONV1`] ReLU outputs; `conv2` 9 x
    /// `c1` inputs to at most [`MAX_CONV2`]; `hidden` 49 x `c2` to at most
    /// [`MAX_HIDDEN`] (ReLU); `logits` Q16, 2 to [`MAX_CLASSES`] classes. Each layer's
    /// input zero point must be its predecessor's output zero point (the padding and
    /// the pooled maps' zeros).
    pub fn new(
        conv1: DenseLayer<'a>,
        conv2: DenseLayer<'a>,
        hidden: DenseLayer<'a>,
        logits: DenseLayer<'a>,
    ) -> Result<Self, HeadShapeError> {
        let bad = |layer, what| Err(HeadShapeError::Layer { layer, what });
        let (c1, c2) = (conv1.out_dim, conv2.out_dim);
        let Some(zp1) = relu_zero_point(&conv1) else {
            return bad(0, "must output int8 with ReLU");
        };
        if conv1.in_dim != TAPS || conv1.input_zero_point != INPUT_ZERO_POINT || c1 > MAX_CONV1 {
            return bad(0, "must read a 3x3 pixel patch into at most 16 channels");
        }
        let Some(zp2) = relu_zero_point(&conv2) else {
            return bad(1, "must output int8 with ReLU");
        };
        if conv2.in_dim != TAPS * c1 || conv2.input_zero_point != zp1 || c2 > MAX_CONV2 {
            return bad(
                1,
                "must read a 3x3 patch of conv1's channels into at most 32",
            );
        }
        if relu_zero_point(&hidden).is_none() {
            return bad(2, "must output int8 with ReLU");
        }
        if hidden.in_dim != QUARTER * QUARTER * c2
            || hidden.input_zero_point != zp2
            || hidden.out_dim > MAX_HIDDEN
        {
            return bad(2, "must read conv2's 7x7 pooled map into at most 32 units");
        }
        let hidden_zp = relu_zero_point(&hidden).unwrap_or(0);
        if logits.output != LayerOutput::Q16
            || logits.in_dim != hidden.out_dim
            || logits.input_zero_point != hidden_zp
            || !(2..=MAX_CLASSES).contains(&logits.out_dim)
        {
            return bad(
                3,
                "must read the hidden units into 2 to 32 Q16 class logits",
            );
        }
        Ok(Self {
            conv1,
            conv2,
            hidden,
            logits,
        })
    }

    /// The four layers, in order.
    pub fn layers(&self) -> [&DenseLayer<'a>; 4] {
        [&self.conv1, &self.conv2, &self.hidden, &self.logits]
    }

    /// Multiply-accumulates of one pass (for cost reports): each convolution at every
    /// position of its map, then the two dense layers.
    pub fn macs(&self) -> usize {
        SIDE * SIDE * self.conv1.macs()
            + HALF * HALF * self.conv2.macs()
            + self.hidden.macs()
            + self.logits.macs()
    }

    /// The term of a 28x28 frame (row-major pixels, at least 784): its largest fault
    /// logit less its clean one, Q16 (saturating). The logits stay in `buffers` ([`HeadScratch::logits`]).
    pub fn score(&self, image: &[u8], buffers: &mut HeadScratch<'_>) -> Q16 {
        let (c1, c2) = (self.conv1.out_dim, self.conv2.out_dim);
        let mut computed = 0;
        for py in 0..QUARTER {
            // Pooled row `py` reads the second layer's rows 2py and 2py+1, which read
            // the first layer's pooled rows 2py-1 to 2py+2.
            while computed < (2 * py + 3).min(HALF) {
                self.first_row(image, computed, buffers);
                computed += 1;
            }
            for px in 0..QUARTER {
                let cell = (py * QUARTER + px) * c2;
                buffers.pooled[cell..cell + c2].fill(i8::MIN);
                for (dy, dx) in [(0, 0), (0, 1), (1, 0), (1, 1)] {
                    let (y, x) = (2 * py + dy, 2 * px + dx);
                    self.second_patch(y, x, buffers);
                    self.conv2.forward_i8(
                        &buffers.patch[..TAPS * c1],
                        buffers.widened,
                        &mut buffers.out[..c2],
                    );
                    max_into(&mut buffers.pooled[cell..cell + c2], &buffers.out[..c2]);
                }
            }
        }
        let hidden = self.hidden.out_dim;
        self.hidden.forward_i8_direct(
            &buffers.pooled[..QUARTER * QUARTER * c2],
            &mut buffers.hidden[..hidden],
        );
        let classes = self.logits.out_dim;
        self.logits.forward_q16(
            &buffers.hidden[..hidden],
            buffers.widened,
            &mut buffers.logits[..classes],
        );
        let clean = buffers.logits[0];
        let top = buffers.logits[1..classes]
            .iter()
            .copied()
            .max()
            .unwrap_or(clean);
        top.saturating_sub(clean)
    }

    /// The first layer's pooled row `qy` into its ring slot.
    fn first_row(&self, image: &[u8], qy: usize, buffers: &mut HeadScratch<'_>) {
        let c1 = self.conv1.out_dim;
        let pixel = |y: usize, x: usize| -> i8 {
            // Pixel p enters as p - 128 (scale 1/255, zero point -128); outside the
            // frame as the zero point (real 0).
            match (y.checked_sub(1), x.checked_sub(1)) {
                (Some(y), Some(x)) if y < SIDE && x < SIDE => image
                    .get(y * SIDE + x)
                    .map_or(i8::MIN, |&p| (p ^ 0x80) as i8),
                _ => i8::MIN,
            }
        };
        let slot = (qy % RING) * HALF * c1;
        for qx in 0..HALF {
            let cell = slot + qx * c1;
            buffers.rows[cell..cell + c1].fill(i8::MIN);
            for (dy, dx) in [(0, 0), (0, 1), (1, 0), (1, 1)] {
                let (y, x) = (2 * qy + dy, 2 * qx + dx);
                // Tap (ky, kx) reads pixel (y + ky - 1, x + kx - 1): `pixel` takes the
                // coordinates plus one.
                for (t, tap) in buffers.patch[..TAPS].iter_mut().enumerate() {
                    *tap = pixel(y + t / 3, x + t % 3);
                }
                self.conv1.forward_i8(
                    &buffers.patch[..TAPS],
                    buffers.widened,
                    &mut buffers.out[..c1],
                );
                max_into(&mut buffers.rows[cell..cell + c1], &buffers.out[..c1]);
            }
        }
    }

    /// The second layer's 3x3 patch at position (y, x) of the 14x14 map, from the
    /// ring, the first layer's zero point outside the map.
    fn second_patch(&self, y: usize, x: usize, buffers: &mut HeadScratch<'_>) {
        let c1 = self.conv1.out_dim;
        let zero = self.conv2.input_zero_point as i8;
        for ky in 0..3 {
            for kx in 0..3 {
                let tap = (ky * 3 + kx) * c1;
                let dest = &mut buffers.patch[tap..tap + c1];
                match ((y + ky).checked_sub(1), (x + kx).checked_sub(1)) {
                    (Some(sy), Some(sx)) if sy < HALF && sx < HALF => {
                        let from = (sy % RING) * HALF * c1 + sx * c1;
                        dest.copy_from_slice(&buffers.rows[from..from + c1]);
                    }
                    _ => dest.fill(zero),
                }
            }
        }
    }
}

/// `acc[i] = max(acc[i], values[i])`.
fn max_into(acc: &mut [i8], values: &[i8]) {
    for (a, &v) in acc.iter_mut().zip(values) {
        *a = (*a).max(v);
    }
}
