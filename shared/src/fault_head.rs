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
//! row is contiguous), run by the per-core kernels. Pooling takes the largest of four
//! int8 outputs; requantization and ReLU are monotone (the first convolution's
//! multipliers are not negative: [`FaultHead::new`]), so that equals requantizing the
//! largest dot product, which the first convolution's direct route does ([`Conv1`]).
//!
//! ## Speed
//!
//! On the Cortex-M3 a pass cost 3.9 million instructions: the first convolution 1.08
//! million (784 kernel calls of nine inputs, each tap copied by `memcpy`), the second
//! 2.27 million (196 calls of 144 inputs), the hidden layer 0.56 million (one output at
//! a time, every input read 32 times). Now (2.8 million, the same bits):
//!
//! * a patch all at the zero point (a digit's background: most of the first layer's
//!   positions) has the same outputs wherever it is, so `pooled_row` runs the kernel
//!   for it once a row and reuses them;
//! * the first layer's taps are single bytes, read from the frame itself (the pixel's
//!   top bit flipped is its int8 code), not copied by `memcpy`;
//! * the kernels' scratch holds a second-layer patch's sparse list ([`WORDS`]), so a
//!   patch about half at the zero point (a pooled ReLU map's usual) runs the loop
//!   over its live inputs; with room for the patch widened only, one of more than 71
//!   live inputs ran the dense loop over all 144;
//! * the hidden layer reads each input once a group of four outputs
//!   ([`DenseLayer::forward_i8_direct`]).
//!
//! The first convolution has nine inputs an output, too few for a kernel call to pay
//! its way. Where the code fits (every core but the M3, whose runtime code has a 32
//! KiB budget; and the host), `first_pooled_row` reads the frame itself: a pooled
//! cell's 4x4 window once, a background window's outputs computed once a row, the
//! taps on a background pixel skipped, the four positions' dot products pooled before
//! one requantization ([`Conv1::Direct`]: built for the M3 as a measurement, 0.40
//! million instructions fewer an encode, for 908 bytes of code).
//!
//! ## Memory
//!
//! The first layer's pooled map (14 x 14 x 16 = 3,136 bytes) is never held whole: a
//! pooled row of the second layer reads four pooled rows of the first, so those are
//! computed as they are needed into a ring of four ([`HeadBuffers`]: 896 bytes for 16
//! channels). The hidden layer reads its 1,568 inputs directly
//! ([`DenseLayer::forward_i8_direct`]) instead of widening them into 6 KiB of scratch.
//! The first layer reads the frame where it lies.

use crate::dense::{group_dots, DenseLayer, LayerOutput, CHANNEL_GROUP};
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
/// Pooled rows of the first layer held at once (a power of two: a row's slot is a
/// mask of its index).
const RING: usize = 4;
const _: () = assert!(RING.is_power_of_two());

/// Why four layers do not make a head: their shapes do not chain as the module docs
/// say (sizes, output kinds, zero points).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the fault head's four layers do not chain (3x3 patches of 1 then at most 16 channels into at most 16 and 32, a 7x7 map into at most 32 units, 2 to 32 Q16 logits; the first convolution's multipliers not negative)")]
pub struct HeadShapeError;

/// Bytes of the first layer's ring of pooled rows and the second layer's pooled map
/// ([`HeadScratch::new`]'s `maps`): 896 + 1,568.
pub const MAPS_BYTES: usize = RING * HALF * MAX_CONV1 + QUARTER * QUARTER * MAX_CONV2;
/// Bytes of a patch, a position's outputs and the hidden units (`small`): 144 + 32 + 32.
pub const SMALL_BYTES: usize = TAPS * MAX_CONV1 + MAX_CONV2 + MAX_HIDDEN;
/// Words of the kernels' inputs (`words`): a second-layer patch's sparse list (two
/// words an input off the zero point, and a padding pair), which the kernels take
/// whenever at most three quarters of the patch is off it. With room for one patch
/// widened only (144 words, before), a patch of more than 71 live inputs (a pooled
/// ReLU map is about half live) ran the dense loop over all 144.
pub const WORDS: usize = 2 * TAPS * MAX_CONV1 + 2;

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
    /// Scratch carved from `maps` ([`MAPS_BYTES`]), `small` ([`SMALL_BYTES`]), `words`
    /// ([`WORDS`]) and `logits` ([`MAX_CLASSES`]); `None` when one is short.
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

/// Owned scratch for a head pass (about 4 KiB), for the host.
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

impl<'a> FaultHead<'a> {
    /// The head of these layers, if their shapes chain: `conv1` 9 pixel inputs (zero
    /// point [`INPUT_ZERO_POINT`]) to at most [`MAX_CONV1`] ReLU outputs; `conv2` 9 x
    /// `c1` inputs to at most [`MAX_CONV2`] (ReLU); `hidden` 49 x `c2` to at most
    /// [`MAX_HIDDEN`] (ReLU); `logits` Q16, 2 to [`MAX_CLASSES`] classes; `conv1`'s
    /// multipliers not negative (the direct route pools dot products). Each layer's
    /// input zero point must be its predecessor's output zero point (the padding and
    /// the pooled maps' zeros). One test, one error, and on the host only (feature
    /// `host`: the exporter, the firmware's build, `tinyvae` reading a file): the device
    /// runs only an image its build parsed, and [`score`] clamps every shape, so no
    /// layers make it panic.
    pub fn new(layers: [DenseLayer<'a>; 4]) -> Result<Self, HeadShapeError> {
        let [conv1, conv2, hidden, logits] = layers;
        let zp = |l: &DenseLayer<'_>| match l.output {
            LayerOutput::Int8 {
                zero_point,
                relu: true,
            } => Some(zero_point),
            _ => None,
        };
        let chains = |from: Option<i32>, to: &DenseLayer<'_>, inputs: usize, most: usize| {
            from == Some(to.input_zero_point) && to.in_dim == inputs && to.out_dim <= most
        };
        let (c1, c2, units) = (conv1.out_dim, conv2.out_dim, hidden.out_dim);
        let ok = !cfg!(feature = "host")
            || (chains(Some(INPUT_ZERO_POINT), &conv1, TAPS, MAX_CONV1)
                && chains(zp(&conv1), &conv2, TAPS * c1, MAX_CONV2)
                && chains(zp(&conv2), &hidden, QUARTER * QUARTER * c2, MAX_HIDDEN)
                && chains(zp(&hidden), &logits, units, MAX_CLASSES)
                && logits.output == LayerOutput::Q16
                && logits.out_dim >= 2
                // Pooled before requantization ([`Conv1::Direct`]): monotone only so.
                && (0..c1).all(|j| conv1.multiplier(j) >= 0));
        if !ok {
            return Err(HeadShapeError);
        }
        Ok(Self {
            conv1,
            conv2,
            hidden,
            logits,
        })
    }

    /// Multiply-accumulates of one pass (for cost reports): each convolution at every
    /// position of its map, then the two dense layers.
    pub fn macs(&self) -> usize {
        SIDE * SIDE * self.conv1.macs()
            + HALF * HALF * self.conv2.macs()
            + self.hidden.macs()
            + self.logits.macs()
    }

    /// The term of a 28x28 frame (row-major pixels, at least 784; a shorter frame reads
    /// 0): its largest fault logit less its clean one, Q16 (saturating). The logits
    /// stay in `buffers` ([`HeadScratch::logits`]).
    pub fn score(&self, image: &[u8], buffers: &mut HeadScratch<'_>) -> Q16 {
        score(
            [&self.conv1, &self.conv2, &self.hidden, &self.logits],
            image,
            buffers,
        )
    }
}

/// [`FaultHead::score`] on four layers as they lie (by reference: the device reads
/// them from the model image for each frame and copies nothing). Shapes beyond the
/// head's limits are clamped, so no layers make it panic; layers that do not chain
/// (which [`FaultHead::new`] and the host's parse refuse) give a meaningless term.
pub fn score(layers: [&DenseLayer<'_>; 4], image: &[u8], buffers: &mut HeadScratch<'_>) -> Q16 {
    pass::<{ matches!(CONV1, Conv1::Direct) }>(layers, image, buffers)
}

/// How a pass runs the first convolution.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Conv1 {
    /// Through the per-core kernels, a 3x3 patch at a time (`pooled_row`): the least
    /// code.
    Kernels,
    /// Read from the frame by a routine of its own (`first_pooled_row`): 11-15% fewer
    /// instructions an encode (M0, M3, M4), for 0.9-1.1 KB of code.
    Direct,
}

/// The first convolution's route on this target. The Cortex-M3's runtime code has a
/// 32 KiB budget that the direct routine does not fit (firmware/README.md,
/// "Footprint"), so it runs the kernels; every other core, with room, and the host run
/// the direct routine. Both give the same bits (`shared/tests/fault_head.rs`).
pub const CONV1: Conv1 = if cfg!(tinyvae_kernel = "thumb2") {
    Conv1::Kernels
} else {
    Conv1::Direct
};

/// [`score`] with the first convolution run by `route` rather than [`CONV1`]: the
/// host's tests hold both routes to the same bits (a target's build carries only the
/// route [`score`] takes).
#[cfg(feature = "host")]
pub fn score_by(
    route: Conv1,
    layers: [&DenseLayer<'_>; 4],
    image: &[u8],
    buffers: &mut HeadScratch<'_>,
) -> Q16 {
    match route {
        Conv1::Kernels => pass::<false>(layers, image, buffers),
        Conv1::Direct => pass::<true>(layers, image, buffers),
    }
}

/// A pass of the head, the first convolution run directly (`DIRECT`) or through the
/// kernels.
#[inline(always)]
fn pass<const DIRECT: bool>(
    layers: [&DenseLayer<'_>; 4],
    image: &[u8],
    buffers: &mut HeadScratch<'_>,
) -> Q16 {
    let [conv1, conv2, hidden_layer, logits] = layers;
    // A frame of another size (no parse lets a head beside such a model) reads 0.
    let Some(image) = image.get(..SIDE * SIDE) else {
        return 0;
    };
    // At least one channel each: a patch of zero-byte taps would not make chunks.
    let c1 = conv1.out_dim.clamp(1, MAX_CONV1);
    let c2 = conv2.out_dim.clamp(1, MAX_CONV2);
    let mut computed = 0;
    for py in 0..QUARTER {
        // Pooled row `py` reads the second layer's rows 2py and 2py+1, which read
        // the first layer's pooled rows 2py-1 to 2py+2 (held in a ring of four).
        while computed < (2 * py + 3).min(HALF) {
            if DIRECT {
                let slot = (computed % RING) * HALF * c1;
                first_pooled_row(conv1, c1, image, computed, &mut buffers.rows[slot..]);
            } else {
                pooled_row(conv1, Layer::First, c1, c2, computed, image, buffers);
            }
            computed += 1;
        }
        pooled_row(conv2, Layer::Second, c1, c2, py, image, buffers);
    }
    let hidden = hidden_layer.out_dim.min(MAX_HIDDEN);
    hidden_layer.forward_i8_direct(
        &buffers.pooled[..QUARTER * QUARTER * c2],
        &mut buffers.hidden[..hidden],
    );
    let classes = logits.out_dim.clamp(1, MAX_CLASSES);
    logits.forward_q16(
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

/// One pooled row of the first convolution (`layer`: one input channel, `cout` ReLU
/// outputs, 2x2 max pooling) read straight from the frame's pixels (`image`, 28x28):
/// output row `py` into `dst` (14 cells of `cout` channels, channels-last).
///
/// A pooled cell's 4x4 window is read once, less the zero point (a tap beyond the
/// frame reads 0). A window all at the zero point (a digit's background, most of a
/// frame) has every dot product 0: its outputs are computed once a row. Otherwise, for
/// each group of four outputs (their weights stored `[tap][channel]`, so a tap's four
/// are one word) the four positions' dot products run over the taps off the zero
/// point, and the largest of each output's four is requantized once.
#[inline(never)]
fn first_pooled_row(layer: &DenseLayer<'_>, cout: usize, image: &[u8], py: usize, dst: &mut [i8]) {
    let output = layer.int8_output();
    let Some(weights) = layer
        .weights
        .get(..cout.div_ceil(CHANNEL_GROUP) * TAPS * CHANNEL_GROUP)
    else {
        return;
    };
    let (taps, _) = weights.as_chunks::<CHANNEL_GROUP>();
    // A window all at the zero point (the background) has every dot product 0.
    let mut background = [0i8; MAX_CONV1];
    for (j, b) in background.iter_mut().enumerate().take(cout) {
        *b = layer.output_i8(j, 0, output);
    }
    for (px, cell) in dst.chunks_mut(cout).take(HALF).enumerate() {
        // The window's pixel (wy, wx) is the frame's (2py + wy - 1, 2px + wx - 1).
        let mut window = [0i32; 16];
        let mut any = 0;
        for (w, v) in window.iter_mut().enumerate() {
            let (y, x) = (
                (2 * py + w / 4).wrapping_sub(1),
                (2 * px + w % 4).wrapping_sub(1),
            );
            if y < SIDE && x < SIDE {
                // Pixel p's code is p - 128 (scale 1/255).
                let code = image.get(y * SIDE + x).map_or(0, |&p| (p ^ 0x80) as i8);
                *v = i32::from(code).wrapping_sub(layer.input_zero_point);
                any |= *v;
            }
        }
        if any == 0 {
            for (c, &b) in cell.iter_mut().zip(&background) {
                *c = b;
            }
            continue;
        }
        for (g, (group, slots)) in taps
            .chunks_exact(TAPS)
            .zip(cell.chunks_mut(CHANNEL_GROUP))
            .enumerate()
        {
            // Maxima in registers: at opt-level "s" an array of them stays in memory.
            let (mut b0, mut b1, mut b2, mut b3) = (i32::MIN, i32::MIN, i32::MIN, i32::MIN);
            for at in &WINDOW_TAPS {
                let taps = at.iter().map(|&i| window[usize::from(i) % 16]);
                let [d0, d1, d2, d3] = group_dots(group, taps);
                (b0, b1, b2, b3) = (b0.max(d0), b1.max(d1), b2.max(d2), b3.max(d3));
            }
            for (c, (slot, best)) in slots.iter_mut().zip([b0, b1, b2, b3]).enumerate() {
                *slot = layer.output_i8(g * CHANNEL_GROUP + c, best, output);
            }
        }
    }
}

/// For each of a pooled cell's four positions (dy, dx), the index in its 4x4 window
/// of each tap (ky, kx): `(dy + ky) * 4 + dx + kx`.
const WINDOW_TAPS: [[u8; TAPS]; 4] = {
    let mut at = [[0; TAPS]; 4];
    let mut k = 0;
    while k < 4 {
        let mut t = 0;
        while t < TAPS {
            at[k][t] = ((k / 2 + t / 3) * 4 + k % 2 + t % 3) as u8;
            t += 1;
        }
        k += 1;
    }
    at
};

/// Which convolution [`pooled_row`] runs.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Layer {
    /// `conv1`: the frame to the ring of pooled rows.
    First,
    /// `conv2`: the ring to the pooled map.
    Second,
}

/// Pooled row `py` of a convolution (3x3, ReLU, 2x2 max pooling): `conv1` (`which`:
/// [`Layer::First`]) over the frame into the ring's slot `py % 4`, or `conv2` over the
/// ring (whose row `r` sits in slot `r % 4`) into row `py` of the pooled map; maps
/// stored channels-last, `c1` and `c2` channels. Outside the map a tap reads the
/// layer's input zero point (real 0). A patch all at the zero point runs through the
/// kernel once a row, its outputs kept in the hidden units' buffer (idle until the
/// hidden layer). Both layers run this one routine, which picks its buffers itself:
/// the device carries its code, and one short call, once.
#[inline(never)]
fn pooled_row(
    layer: &DenseLayer<'_>,
    which: Layer,
    c1: usize,
    c2: usize,
    py: usize,
    image: &[u8],
    buffers: &mut HeadScratch<'_>,
) {
    let HeadScratch {
        rows,
        pooled,
        patch,
        out,
        hidden: quiet,
        widened,
        ..
    } = buffers;
    // Map row r sits in slot `r & slots` of `src`: the ring's r % 4, the frame's r
    // (every bit kept).
    // The frame's pixel p enters as p - 128 (scale 1/255, zero point -128): its
    // bytes with the top bit flipped.
    let (src, flip, side, slots, cin, cout, dst): (&[u8], u8, _, _, _, _, &mut [i8]) =
        if which == Layer::Second {
            (
                bytemuck::cast_slice(rows),
                0,
                HALF,
                RING - 1,
                c1,
                c2,
                &mut pooled[py * QUARTER * c2..],
            )
        } else {
            (
                image,
                0x80,
                SIDE,
                usize::MAX,
                1,
                c1,
                &mut rows[(py % RING) * HALF * c1..],
            )
        };
    let zero = layer.input_zero_point as i8;
    let row_len = side * cin;
    let mut have_quiet = false;
    for px in 0..side / 2 {
        let cell = &mut dst[px * cout..(px + 1) * cout];
        for k in 0..4 {
            // Tap (ky, kx) of position (2py + k / 2, 2px + k % 2) reads the map's
            // (sy - 1, sx - 1) for sy = y + ky, sx = x + kx.
            let (y, x) = (2 * py + k / 2, 2 * px + k % 2);
            let mut taps = patch[..TAPS * cin].chunks_exact_mut(cin);
            for sy in y..y + 3 {
                for sx in x..x + 3 {
                    let Some(tap) = taps.next() else { break };
                    let (my, mx) = (sy.wrapping_sub(1), sx.wrapping_sub(1));
                    if my < side && mx < side {
                        let from = (my & slots) * row_len + mx * cin;
                        if let [one] = tap {
                            *one = (src[from] ^ flip) as i8;
                        } else {
                            tap.copy_from_slice(bytemuck::cast_slice(&src[from..from + cin]));
                        }
                    } else {
                        // Not `fill`: that would pull in `memset` (62 bytes on the
                        // M3) for the border taps alone.
                        for v in tap.iter_mut() {
                            *v = core::hint::black_box(zero);
                        }
                    }
                }
            }
            // A patch all at the zero point (the frame's background) has the same
            // outputs wherever it is: computed once a row, into `quiet`.
            let is_quiet = patch[..TAPS * cin].iter().all(|&v| v == zero);
            let outputs = if is_quiet { &mut **quiet } else { &mut **out };
            if !(is_quiet && have_quiet) {
                layer.forward_i8(&patch[..TAPS * cin], widened, &mut outputs[..cout]);
                have_quiet |= is_quiet;
            }
            // The first position's outputs, then the larger of each.
            for (c, &v) in cell.iter_mut().zip(&outputs[..cout]) {
                *c = if k == 0 { v } else { (*c).max(v) };
            }
        }
    }
}
