//! The quantized model image: one byte string that flash can hold as `&'static [u8]`
//! and the kernels read in place, without copying.
//!
//! All integers are little endian. Layout (offsets in bytes):
//!
//! ```text
//! header (64 bytes)
//!   0  magic "TVAE"
//!   4  u16 format version (FORMAT_VERSION)
//!   6  u8  reconstruction likelihood: 0 Bernoulli (BCE), 1 squared error
//!   7  u8  fault head layers: 0 (none; 0 was "reserved" before the head) or 4
//!   8  u16 input width     10  u16 input height     12 u16 latent size
//!  14  u8  encoder layers  15  u8  decoder layers
//!  16  i32 anomaly threshold (Q16)
//!  20  i32 latent->int8 multiplier  24 i32 shift  28 i32 zero point
//!      (quantizes z, in Q16, into the decoder's int8 input)
//!  32  [u8; 24] model name, ASCII, zero padded
//!  56  u32 total image length, trailer included
//!  60  u32 detector section length: 0 (none), DETECTOR_SECTION_LEN_SEEN (2740: the
//!      parameters and the seen neighbourhoods), DETECTOR_SECTION_LEN (276: the
//!      parameters, `unseen` reads 0) or, from older images, 2724 and 260 (before the
//!      `head` term: that term off), 196 (each term's edges at one centre) or 184
//!      (before the `dimmest` term: that term off too)
//! layers, encoder then decoder, each:
//!   u16 in, u16 out, u8 kind (0 int8+ReLU, 1 int8 linear, 2 Q16), u8 0, u16 0,
//!   i32 input zero point, i32 output zero point,
//!   i32 bias[out], i32 multiplier[out], i32 shift[out],
//!   i8 weights[ceil(out/4)*4*in] in the kernel's grouped order, zero-padded to 4 bytes
//! output tables (the decoder's int8 logits q, indexed by q + 128):
//!   u8 pixel[256] = round(255 * sigmoid(logit)),
//!   i32 softplus[256] = ln(1 + e^logit) in Q16, i32 logit[256] in Q16
//! detector section (when its length is not 0): the fault detector's parameters,
//!   i32 threshold, then per term i32 high, scale_high, low, scale_low (older
//!   sections: i32 centre, scale_high, scale_low)
//!   (see crate::detect::DetectorParams::from_le_bytes); then, in a 2724-byte
//!   section, the 2464-byte set of neighbourhoods seen on clean frames
//!   (crate::detect::Seen)
//! fault head (when header byte 7 is 4): the rest of the body, its four layers in
//!   the layers' format, conv1, conv2, hidden, logits (crate::fault_head::FaultHead;
//!   a layer here may read up to HEAD_MAX_INPUTS inputs)
//! trailer: u32 CRC-32 (iSCSI) of every byte before it — the model hash
//! ```
//!
//! The input pixels enter the encoder as `q = pixel - 128` (scale 1/255, zero point
//! -128), so the first encoder layer's input zero point must be -128.
//!
//! [`Model::parse`] checks every field, size and the CRC before anything reads the
//! weights; a malformed or truncated image is a [`ModelError`], never a panic or an
//! out-of-bounds read.

use heapless::Vec;

use crate::dense::{weight_bytes, DenseLayer, LayerOutput};
use crate::detect::{is_detector_section_len, seen_section_params_len, DetectorParams, Seen};
use crate::fault_head::FaultHead;
use crate::fixed::Q16;
use crate::protocol::{MAX_LATENT, MAX_NAME, MAX_PIXELS};

/// Name of the u8 tensor that holds the model image inside an exported safetensors
/// file (the firmware's build script and the host both read it from there).
pub const DEVICE_IMAGE_TENSOR: &str = "device_image";
/// `b"TVAE"`.
pub const MAGIC: [u8; 4] = *b"TVAE";
/// Version of the layout above.
pub const FORMAT_VERSION: u16 = 1;
/// Bytes in the header.
pub const HEADER_LEN: usize = 64;
/// Bytes in a layer record before its arrays.
pub const LAYER_HEADER_LEN: usize = 16;
/// Bytes of the output tables.
pub const TABLES_LEN: usize = 256 + 256 * 4 * 2;
/// Most layers in the encoder or in the decoder.
pub const MAX_LAYERS: usize = 6;
/// Layers of a fault head section.
pub const HEAD_LAYERS: u8 = 4;
/// Most inputs of a fault head layer: its hidden layer reads the 7x7 pooled map of up
/// to 32 channels.
pub const HEAD_MAX_INPUTS: usize = 49 * crate::fault_head::MAX_CONV2;
/// Widest layer (inputs or outputs) the device supports.
pub const MAX_WIDTH: usize = MAX_PIXELS;
/// Largest magnitude of a softplus or logit table entry, Q16 (64.0): the exporter clips
/// logits at 20.
pub const TABLE_LIMIT: u32 = 64 << 16;
/// Zero point of the encoder's input: pixels enter as `pixel - 128`.
pub const INPUT_ZERO_POINT: i32 = -128;

/// Why a model image was rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ModelError {
    /// The image ended before the named part.
    #[error("model truncated: {part} needs {needed} bytes, {available} left")]
    Truncated {
        /// What was being read.
        part: &'static str,
        /// Bytes it needs.
        needed: usize,
        /// Bytes left.
        available: usize,
    },
    /// The image does not start with `TVAE`.
    #[error("not a tinyvae model: bad magic")]
    BadMagic,
    /// The format version is not one this code reads.
    #[error("model format version {0} is not supported (expected {FORMAT_VERSION})")]
    UnsupportedVersion(u16),
    /// The CRC in the trailer does not match the bytes.
    #[error("model CRC mismatch: stored {stored:#010x}, computed {computed:#010x}")]
    BadCrc {
        /// The CRC in the trailer.
        stored: u32,
        /// The CRC of the bytes.
        computed: u32,
    },
    /// The length in the header disagrees with the bytes given.
    #[error("model length field says {declared} bytes, image has {actual}")]
    LengthMismatch {
        /// Length in the header.
        declared: usize,
        /// Bytes given.
        actual: usize,
    },
    /// A field holds a value outside its range.
    #[error("model field `{field}` is invalid: {reason}")]
    InvalidField {
        /// The field.
        field: &'static str,
        /// What was expected.
        reason: &'static str,
    },
    /// Layer shapes do not chain.
    #[error("layer {layer} of the {network} takes {got} inputs, expected {expected}")]
    ShapeMismatch {
        /// "encoder" or "decoder".
        network: &'static str,
        /// Index of the layer.
        layer: usize,
        /// Inputs expected from the previous stage.
        expected: usize,
        /// Inputs the layer declares.
        got: usize,
    },
}

/// The decoder's output distribution: what the trainer's reconstruction loss is and how
/// the device computes the reconstruction term of its score. One type for both sides;
/// checkpoints store it by its lowercase name, the model image by its code (0, 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Likelihood {
    /// Bernoulli per pixel: binary cross-entropy of `sigmoid(logits)`, summed (the
    /// device reads it from the logit tables).
    Bernoulli,
    /// Gaussian per pixel with mean `sigmoid(logits)` and variance 1/2: the negative
    /// log-likelihood is the summed squared error over pixels in [0, 1] (plus a constant
    /// `D/2 ln(pi)` that tinyvae leaves out everywhere).
    Gaussian,
}

impl Likelihood {
    /// Every likelihood, in the order of their codes.
    pub const ALL: [Likelihood; 2] = [Likelihood::Bernoulli, Likelihood::Gaussian];

    /// The lowercase name used on the command line and in checkpoints.
    pub const fn name(self) -> &'static str {
        match self {
            Likelihood::Bernoulli => "bernoulli",
            Likelihood::Gaussian => "gaussian",
        }
    }
}

impl core::fmt::Display for Likelihood {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.name())
    }
}

impl core::str::FromStr for Likelihood {
    type Err = UnknownName;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|l| l.name() == s)
            .ok_or(UnknownName {
                expected: "bernoulli or gaussian",
            })
    }
}

/// A name that is not one of a type's names; says which ones are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UnknownName {
    /// The accepted names.
    pub expected: &'static str,
}

impl core::fmt::Display for UnknownName {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "expected {}", self.expected)
    }
}

impl core::error::Error for UnknownName {}

/// The decoder's output tables, indexed by `logit_q + 128`.
#[derive(Debug, Clone, Copy)]
pub struct OutputTables<'a> {
    pixel: &'a [u8; 256],
    softplus: WordTable<'a>,
    logit: WordTable<'a>,
}

/// A table of 256 little-endian `i32`s in the model image: read as words where the
/// image is 4-byte aligned (the device's flash copy always is: one `LDR` a lookup, where
/// four byte loads and their shifts cost the Cortex-M3 about 14,000 instructions an
/// encode), byte by byte where it is not (a host buffer may not be).
#[derive(Debug, Clone, Copy)]
enum WordTable<'a> {
    Words(&'a [i32; 256]),
    Bytes(&'a [u8]),
}

impl<'a> WordTable<'a> {
    fn new(bytes: &'a [u8]) -> Self {
        match bytemuck::try_cast_slice::<u8, i32>(bytes).map(<&[i32; 256]>::try_from) {
            Ok(Ok(words)) if cfg!(target_endian = "little") => WordTable::Words(words),
            _ => WordTable::Bytes(bytes),
        }
    }

    #[inline(always)]
    fn get(self, q: i8) -> i32 {
        let i = (q as i32 + 128) as usize;
        match self {
            WordTable::Words(words) => words[i],
            WordTable::Bytes(bytes) => match bytes.get(i * 4..i * 4 + 4) {
                Some(b) => i32::from_le_bytes([b[0], b[1], b[2], b[3]]),
                None => 0,
            },
        }
    }
}

impl OutputTables<'_> {
    /// The pixel for an int8 logit: `round(255 * sigmoid(logit))`.
    #[inline]
    pub fn pixel(&self, q: i8) -> u8 {
        self.pixel[(q as i32 + 128) as usize]
    }

    /// `ln(1 + e^logit)` in Q16.
    #[inline]
    pub fn softplus(&self, q: i8) -> Q16 {
        self.softplus.get(q)
    }

    /// The logit in Q16.
    #[inline]
    pub fn logit(&self, q: i8) -> Q16 {
        self.logit.get(q)
    }
}

/// A validated model image.
#[derive(Debug, Clone)]
pub struct Model<'a> {
    bytes: &'a [u8],
    /// Reconstruction likelihood.
    pub likelihood: Likelihood,
    /// Input width in pixels.
    pub input_width: usize,
    /// Input height in pixels.
    pub input_height: usize,
    /// Latent dimension.
    pub latent: usize,
    /// Anomaly threshold stored at export, Q16.
    pub threshold: Q16,
    /// Multiplier quantizing Q16 latents into the decoder's int8 input.
    pub z_multiplier: i32,
    /// Shift quantizing Q16 latents into the decoder's int8 input.
    pub z_shift: i32,
    /// Zero point of the decoder's int8 input.
    pub z_zero_point: i32,
    name: &'a str,
    /// Encoder layers; the last outputs mu and logvar in Q16.
    pub encoder: Vec<DenseLayer<'a>, MAX_LAYERS>,
    /// Decoder layers; the last outputs int8 logits.
    pub decoder: Vec<DenseLayer<'a>, MAX_LAYERS>,
    /// Logit to pixel, softplus and logit tables.
    pub tables: OutputTables<'a>,
    /// CRC-32 of the image: the model's identity.
    pub hash: u32,
    /// The detector section's parameters, [`crate::detect::DETECTOR_SECTION_LEN`] bytes or an older
    /// length (read on demand, so a parsed model stays small on the device's stack).
    detector: Option<&'a [u8]>,
    /// The detector section's set of seen neighbourhoods, when it has one.
    seen: Option<Seen<'a>>,
    /// The fault head's section (read on demand, as the detector; checked at parse on
    /// the host).
    head: Option<&'a [u8]>,
}

/// A little-endian reader that turns every short read into [`ModelError::Truncated`].
struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, part: &'static str) -> Result<&'a [u8], ModelError> {
        let available = self.bytes.len().saturating_sub(self.pos);
        if n > available {
            return Err(ModelError::Truncated {
                part: named(part),
                needed: n,
                available,
            });
        }
        let slice = &self.bytes[self.pos..self.pos + n];
        self.pos += n;
        Ok(slice)
    }

    fn u8(&mut self, part: &'static str) -> Result<u8, ModelError> {
        Ok(self.take(1, part)?[0])
    }

    fn u16(&mut self, part: &'static str) -> Result<u16, ModelError> {
        let b = self.take(2, part)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }

    fn u32(&mut self, part: &'static str) -> Result<u32, ModelError> {
        let b = self.take(4, part)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn i32(&mut self, part: &'static str) -> Result<i32, ModelError> {
        Ok(self.u32(part)? as i32)
    }
}

fn invalid(field: &'static str, reason: &'static str) -> ModelError {
    ModelError::InvalidField {
        field: named(field),
        reason: named(reason),
    }
}

/// A part's name or a reason in a [`ModelError`]: the text on the host, empty on the
/// device. The board never shows why an image failed to parse (its build parsed it
/// first, and at boot it draws "INVALID MODEL"), so its flash carries none of the
/// texts: 676 bytes on the Cortex-M3, which paid for the fault head's faster passes.
#[inline(always)]
const fn named(text: &'static str) -> &'static str {
    if cfg!(feature = "host") {
        text
    } else {
        ""
    }
}

fn check_zero_point(zp: i32, field: &'static str) -> Result<(), ModelError> {
    if (-128..=127).contains(&zp) {
        Ok(())
    } else {
        Err(invalid(field, "zero point must be in -128..=127"))
    }
}

fn check_requant(multiplier: &[u8], shift: &[u8]) -> Result<(), ModelError> {
    for (m, s) in multiplier.chunks_exact(4).zip(shift.chunks_exact(4)) {
        let m = i32::from_le_bytes([m[0], m[1], m[2], m[3]]);
        let s = i32::from_le_bytes([s[0], s[1], s[2], s[3]]);
        if m != 0 && m < (1 << 30) {
            return Err(invalid("multiplier", "must be 0 or in [2^30, 2^31)"));
        }
        if !(-31..=30).contains(&s) {
            return Err(invalid("shift", "must be in -31..=30"));
        }
    }
    Ok(())
}

/// A layer of at most `max_in` inputs (the fault head's hidden layer reads more than
/// the VAE's widest).
fn read_layer_within<'a>(r: &mut Reader<'a>, max_in: usize) -> Result<DenseLayer<'a>, ModelError> {
    let in_dim = r.u16("layer header")? as usize;
    let out_dim = r.u16("layer header")? as usize;
    let kind = r.u8("layer header")?;
    let _pad = r.take(3, "layer header")?;
    let input_zero_point = r.i32("layer header")?;
    let output_zero_point = r.i32("layer header")?;
    if in_dim == 0 || out_dim == 0 || in_dim > max_in || out_dim > MAX_WIDTH {
        return Err(invalid(
            "layer size",
            "inputs and outputs must be in 1..=1024 (head inputs: 1568)",
        ));
    }
    check_zero_point(input_zero_point, "layer input zero point")?;
    let output = match kind {
        0 | 1 => {
            check_zero_point(output_zero_point, "layer output zero point")?;
            LayerOutput::Int8 {
                zero_point: output_zero_point,
                relu: kind == 0,
            }
        }
        2 => LayerOutput::Q16,
        _ => {
            return Err(invalid(
                "layer kind",
                "must be 0 (ReLU), 1 (linear) or 2 (Q16)",
            ))
        }
    };
    let bias = r.take(4 * out_dim, "layer bias")?;
    let multiplier = r.take(4 * out_dim, "layer multipliers")?;
    let shift = r.take(4 * out_dim, "layer shifts")?;
    check_requant(multiplier, shift)?;
    let n_weights = weight_bytes(in_dim, out_dim);
    let weights = r.take(n_weights, "layer weights")?;
    r.take(n_weights.next_multiple_of(4) - n_weights, "layer padding")?;
    Ok(DenseLayer {
        in_dim,
        out_dim,
        input_zero_point,
        output,
        weights: bytemuck::cast_slice(weights),
        bias,
        multiplier,
        shift,
    })
}

/// `count` layers, each reading what the one before it writes (the first
/// `expected_in`); `None`: the fault head's, whose layers chain through convolution
/// patches and pooling (checked by [`FaultHead::new`]) and may read up to
/// [`HEAD_MAX_INPUTS`]. One reader for every network: the device carries it once.
fn read_stack<'a>(
    r: &mut Reader<'a>,
    count: usize,
    network: &'static str,
    mut expected_in: Option<usize>,
) -> Result<Vec<DenseLayer<'a>, MAX_LAYERS>, ModelError> {
    let mut layers = Vec::new();
    for index in 0..count {
        let most = if expected_in.is_some() {
            MAX_WIDTH
        } else {
            HEAD_MAX_INPUTS
        };
        let layer = read_layer_within(r, most)?;
        if let Some(expected_in) = expected_in.filter(|&e| e != layer.in_dim) {
            return Err(ModelError::ShapeMismatch {
                network,
                layer: index,
                expected: expected_in,
                got: layer.in_dim,
            });
        }
        expected_in = expected_in.map(|_| layer.out_dim);
        layers
            .push(layer)
            .map_err(|_| invalid("layer count", "too many layers"))?;
    }
    Ok(layers)
}

/// The fault head's four layers, checked to chain ([`FaultHead::new`]); `None` if
/// they do not read or do not chain. (A loop over one read: the device carries it
/// once.)
fn read_head<'a>(r: &mut Reader<'a>) -> Option<FaultHead<'a>> {
    let layers = read_stack(r, usize::from(HEAD_LAYERS), "fault head", None).ok()?;
    FaultHead::new(layers.into_array().ok()?).ok()
}

impl<'a> Model<'a> {
    /// Validates `bytes` and returns a view of the model in them.
    pub fn parse(bytes: &'a [u8]) -> Result<Self, ModelError> {
        let mut r = Reader { bytes, pos: 0 };
        if r.take(4, "magic")? != MAGIC {
            return Err(ModelError::BadMagic);
        }
        let version = r.u16("header")?;
        if version != FORMAT_VERSION {
            return Err(ModelError::UnsupportedVersion(version));
        }
        let likelihood = match r.u8("header")? {
            0 => Likelihood::Bernoulli,
            1 => Likelihood::Gaussian,
            _ => {
                return Err(invalid(
                    "likelihood",
                    "must be 0 (Bernoulli) or 1 (squared error)",
                ))
            }
        };
        let head_layers = r.u8("header")?;
        if head_layers != 0 && head_layers != HEAD_LAYERS {
            return Err(invalid("fault head layers", "must be 0 or 4"));
        }
        let input_width = r.u16("header")? as usize;
        let input_height = r.u16("header")? as usize;
        let latent = r.u16("header")? as usize;
        let n_encoder = r.u8("header")? as usize;
        let n_decoder = r.u8("header")? as usize;
        let threshold = r.i32("header")?;
        let z_multiplier = r.i32("header")?;
        let z_shift = r.i32("header")?;
        let z_zero_point = r.i32("header")?;
        let name_bytes = r.take(MAX_NAME, "header")?;
        let declared = r.u32("header")? as usize;
        let detector_len = r.u32("header")? as usize;

        if declared != bytes.len() {
            return Err(ModelError::LengthMismatch {
                declared,
                actual: bytes.len(),
            });
        }
        let body_len = bytes.len() - 4;
        let stored = u32::from_le_bytes([
            bytes[body_len],
            bytes[body_len + 1],
            bytes[body_len + 2],
            bytes[body_len + 3],
        ]);
        let computed = crate::protocol::FRAME_CRC.checksum(&bytes[..body_len]);
        if stored != computed {
            return Err(ModelError::BadCrc { stored, computed });
        }

        let pixels = input_width * input_height;
        if input_width == 0 || input_height == 0 || pixels > MAX_PIXELS {
            return Err(invalid("input size", "width x height must be in 1..=1024"));
        }
        if latent == 0 || latent > MAX_LATENT {
            return Err(invalid("latent", "must be in 1..=32"));
        }
        if !(1..=MAX_LAYERS).contains(&n_encoder) || !(1..=MAX_LAYERS).contains(&n_decoder) {
            return Err(invalid("layer count", "each network needs 1..=6 layers"));
        }
        let name_len = name_bytes.iter().position(|&b| b == 0).unwrap_or(MAX_NAME);
        let name = crate::ascii::ascii_str(&name_bytes[..name_len])
            .ok_or_else(|| invalid("name", "must be ASCII"))?;
        check_zero_point(z_zero_point, "latent zero point")?;
        check_requant(&z_multiplier.to_le_bytes(), &z_shift.to_le_bytes())?;

        let encoder = read_stack(&mut r, n_encoder, "encoder", Some(pixels))?;
        let decoder = read_stack(&mut r, n_decoder, "decoder", Some(latent))?;
        check_roles(&encoder, &decoder, pixels, latent)?;

        let pixel: &[u8; 256] = r
            .take(256, "output tables")?
            .try_into()
            .map_err(|_| invalid("output tables", "256 pixels"))?;
        let softplus = r.take(256 * 4, "output tables")?;
        let logit = r.take(256 * 4, "output tables")?;
        // The reconstruction term sums 255 * softplus - pixel * logit per pixel in 32
        // bits (crate::score), exact while both stay within +-64.0.
        let beyond = |table: &[u8]| {
            table
                .chunks_exact(4)
                .any(|w| i32::from_le_bytes([w[0], w[1], w[2], w[3]]).unsigned_abs() > TABLE_LIMIT)
        };
        if beyond(softplus) || beyond(logit) {
            return Err(invalid(
                "output tables",
                "softplus and logit entries must be within +-64.0 (Q16)",
            ));
        }
        let detector = match detector_len {
            0 => None,
            n if is_detector_section_len(n) || seen_section_params_len(n).is_some() => {
                Some(r.take(detector_len, "detector")?)
            }
            _ => {
                return Err(invalid(
                    "detector length",
                    "must be 0, 2740 or 276 (older: 2724, 260, 196, 184)",
                ))
            }
        };
        // The fault head is the rest of the body, read on demand (`fault_head`).
        let head = match head_layers {
            0 => None,
            _ => Some(r.take(body_len.saturating_sub(r.pos), "fault head")?),
        };
        if r.pos != body_len {
            return Err(invalid(
                "length",
                "bytes left between the tables and the CRC",
            ));
        }
        // A section with the seen set holds the parameters first.
        let params_len = seen_section_params_len(detector_len).unwrap_or(detector_len);
        let (detector, seen) = match detector.map(|d| d.split_at_checked(params_len)) {
            Some(Some((params, set))) if !set.is_empty() => (Some(params), Seen::new(set)),
            _ => (detector, None),
        };
        let model = Model {
            bytes,
            likelihood,
            input_width,
            input_height,
            latent,
            threshold,
            z_multiplier,
            z_shift,
            z_zero_point,
            name,
            encoder,
            decoder,
            tables: OutputTables {
                pixel,
                softplus: WordTable::new(softplus),
                logit: WordTable::new(logit),
            },
            hash: stored,
            detector,
            seen,
            head,
        };
        // Checked here on the host (the exporter, the firmware's build script, `tinyvae`
        // reading a file); on the device, which only runs an image its build checked, a
        // head that does not read is no head (its term reads 0), for less code.
        #[cfg(feature = "host")]
        if model.head.is_some() {
            if model.fault_head().is_none() {
                return Err(invalid(
                    "fault head",
                    "its four layers must chain as fault_head::FaultHead and fill the section",
                ));
            }
            let side = crate::fault_head::SIDE;
            if (input_width, input_height) != (side, side) {
                return Err(invalid("fault head", "reads 28x28 frames only"));
            }
        }
        Ok(model)
    }

    /// The fault head (`None`: the model has none, and the detector's `head` term
    /// reads 0).
    /// (The host's view, checked; the device scores through [`Model::fault_head_score`],
    /// which reads the layers in place.)
    pub fn fault_head(&self) -> Option<FaultHead<'a>> {
        let bytes = self.head?;
        let mut r = Reader { bytes, pos: 0 };
        let head = read_head(&mut r)?;
        (r.pos == bytes.len()).then_some(head)
    }

    /// The fault head's term of `image` ([`crate::fault_head::score`]; `None`: the
    /// model has no head). The layers are read where they lie for each frame.
    #[inline(never)]
    pub fn fault_head_score(
        &self,
        image: &[u8],
        scratch: &mut crate::fault_head::HeadScratch<'_>,
    ) -> Option<Q16> {
        let bytes = self.head?;
        let mut r = Reader { bytes, pos: 0 };
        // Matched in place: moving the layers out of the `Result` would copy them (a
        // second 340 bytes of stack under the head's pass).
        let stack = read_stack(&mut r, usize::from(HEAD_LAYERS), "fault head", None);
        let Ok([a, b, c, d]) = stack.as_ref().map(|layers| layers.as_slice()) else {
            return None;
        };
        (r.pos == bytes.len()).then(|| crate::fault_head::score([a, b, c, d], image, scratch))
    }

    /// The fault detector fitted at export (`None`: the model has none, and the
    /// device's detector stays off until it is calibrated).
    #[inline(never)] // one copy of the section reader on the device, not one per caller
    pub fn detector(&self) -> Option<DetectorParams> {
        self.detector.and_then(DetectorParams::from_le_bytes)
    }

    /// The neighbourhoods clean frames hold, fitted at export for
    /// [`crate::detect::Term::Unseen`] (`None`: an image from before protocol 8, whose
    /// term then reads 0).
    pub fn seen(&self) -> Option<Seen<'a>> {
        self.seen
    }

    /// The model's name.
    pub fn name(&self) -> &'a str {
        self.name
    }

    /// The raw image.
    pub fn bytes(&self) -> &'a [u8] {
        self.bytes
    }

    /// Pixels per image.
    pub fn pixels(&self) -> usize {
        self.input_width * self.input_height
    }

    /// Weights of the VAE, both networks (biases and the fault head not counted: the
    /// card and the boot screen describe the VAE).
    pub fn parameters(&self) -> usize {
        self.encoder
            .iter()
            .chain(self.decoder.iter())
            .map(|l| l.in_dim * l.out_dim)
            .sum()
    }
}

/// Checks what each network's layers must be: int8 hidden layers, a Q16 encoder head of
/// 2 x latent outputs, a linear int8 decoder output of one logit per pixel.
fn check_roles(
    encoder: &[DenseLayer<'_>],
    decoder: &[DenseLayer<'_>],
    pixels: usize,
    latent: usize,
) -> Result<(), ModelError> {
    let (Some((head, enc_hidden)), Some((out, dec_hidden))) =
        (encoder.split_last(), decoder.split_last())
    else {
        return Err(invalid("layer count", "each network needs a layer"));
    };
    if head.output != LayerOutput::Q16 || head.out_dim != 2 * latent {
        return Err(invalid(
            "encoder head",
            "must output 2 x latent values (mu, logvar) in Q16",
        ));
    }
    if !matches!(out.output, LayerOutput::Int8 { relu: false, .. }) || out.out_dim != pixels {
        return Err(invalid(
            "decoder output",
            "must be a linear int8 layer with one logit per pixel",
        ));
    }
    if enc_hidden
        .iter()
        .chain(dec_hidden)
        .any(|l| l.output == LayerOutput::Q16)
    {
        return Err(invalid("hidden layer", "hidden layers must output int8"));
    }
    if encoder[0].input_zero_point != INPUT_ZERO_POINT {
        return Err(invalid("encoder input zero point", "must be -128"));
    }
    for (prev, next) in encoder.iter().zip(&encoder[1..]) {
        if let LayerOutput::Int8 { zero_point, .. } = prev.output {
            if zero_point != next.input_zero_point {
                return Err(invalid(
                    "zero point",
                    "a layer's input zero point must match the previous output",
                ));
            }
        }
    }
    for (prev, next) in decoder.iter().zip(&decoder[1..]) {
        if let LayerOutput::Int8 { zero_point, .. } = prev.output {
            if zero_point != next.input_zero_point {
                return Err(invalid(
                    "zero point",
                    "a layer's input zero point must match the previous output",
                ));
            }
        }
    }
    Ok(())
}

#[cfg(feature = "host")]
pub use builder::{LayerSpec, ModelSpec};

#[cfg(feature = "host")]
mod builder {
    //! Writing model images (host only: the exporter and the tests use it).
    use super::*;
    use crate::detect::{DETECTOR_SECTION_LEN, DETECTOR_SECTION_LEN_SEEN};
    use std::vec::Vec as StdVec;

    /// One quantized layer, row-major weights (`weight[j * in_dim + i]`).
    #[derive(Debug, Clone, PartialEq)]
    pub struct LayerSpec {
        /// Inputs.
        pub in_dim: usize,
        /// Outputs.
        pub out_dim: usize,
        /// Output format.
        pub output: LayerOutput,
        /// Input zero point.
        pub input_zero_point: i32,
        /// Row-major int8 weights.
        pub weight: StdVec<i8>,
        /// i32 biases.
        pub bias: StdVec<i32>,
        /// Q0.31 multipliers.
        pub multiplier: StdVec<i32>,
        /// Shifts.
        pub shift: StdVec<i32>,
    }

    /// Everything a model image holds.
    #[derive(Debug, Clone, PartialEq)]
    pub struct ModelSpec {
        /// Name, at most 24 ASCII characters (the OLED's font draws nothing else).
        pub name: String,
        /// Reconstruction likelihood.
        pub likelihood: Likelihood,
        /// Input width.
        pub input_width: usize,
        /// Input height.
        pub input_height: usize,
        /// Latent size.
        pub latent: usize,
        /// Threshold, Q16.
        pub threshold: Q16,
        /// Latent quantization: multiplier, shift, zero point.
        pub z_quant: (i32, i32, i32),
        /// Encoder layers.
        pub encoder: StdVec<LayerSpec>,
        /// Decoder layers.
        pub decoder: StdVec<LayerSpec>,
        /// Scale of the decoder's int8 logits.
        pub logit_scale: f64,
        /// Zero point of the decoder's int8 logits.
        pub logit_zero_point: i32,
        /// The fault detector fitted at export, if any.
        pub detector: Option<DetectorParams>,
        /// The neighbourhoods clean frames hold ([`Seen`]'s bytes), written after the
        /// detector's parameters; only with a detector.
        pub seen: Option<StdVec<u8>>,
        /// The fault head's layers (conv1, conv2, hidden, logits), if any.
        pub head: Option<[LayerSpec; 4]>,
    }

    fn put_i32s(out: &mut StdVec<u8>, values: &[i32]) {
        for v in values {
            out.extend_from_slice(&v.to_le_bytes());
        }
    }

    impl ModelSpec {
        /// Serializes the model and validates the result with [`Model::parse`].
        pub fn to_bytes(&self) -> Result<StdVec<u8>, ModelError> {
            let mut out = StdVec::new();
            out.extend_from_slice(&MAGIC);
            out.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
            out.push(match self.likelihood {
                Likelihood::Bernoulli => 0,
                Likelihood::Gaussian => 1,
            });
            out.push(if self.head.is_some() { HEAD_LAYERS } else { 0 });
            for v in [self.input_width, self.input_height, self.latent] {
                let v = u16::try_from(v).map_err(|_| invalid("size", "must fit in u16"))?;
                out.extend_from_slice(&v.to_le_bytes());
            }
            for n in [self.encoder.len(), self.decoder.len()] {
                out.push(u8::try_from(n).map_err(|_| invalid("layer count", "too many"))?);
            }
            put_i32s(
                &mut out,
                &[
                    self.threshold,
                    self.z_quant.0,
                    self.z_quant.1,
                    self.z_quant.2,
                ],
            );
            let mut name = [0u8; MAX_NAME];
            let bytes = self.name.as_bytes();
            if bytes.len() > MAX_NAME {
                return Err(invalid("name", "at most 24 bytes"));
            }
            if !bytes.is_ascii() {
                return Err(invalid("name", "must be ASCII"));
            }
            name[..bytes.len()].copy_from_slice(bytes);
            out.extend_from_slice(&name);
            let length_at = out.len();
            out.extend_from_slice(&[0; 4]);
            let seen = match (&self.detector, &self.seen) {
                (_, None) => None,
                (Some(_), Some(seen)) => Some(
                    Seen::new(seen)
                        .ok_or_else(|| invalid("seen", "must be SEEN_LEN (2464) bytes"))?,
                ),
                (None, Some(_)) => return Err(invalid("seen", "needs a detector")),
            };
            let detector_len = match (&self.detector, seen) {
                (None, _) => 0,
                (Some(_), None) => DETECTOR_SECTION_LEN as u32,
                (Some(_), Some(_)) => DETECTOR_SECTION_LEN_SEEN as u32,
            };
            out.extend_from_slice(&detector_len.to_le_bytes());
            for layer in self.encoder.iter().chain(&self.decoder) {
                write_layer(&mut out, layer)?;
            }
            write_tables(&mut out, self.logit_scale, self.logit_zero_point);
            if let Some(detector) = &self.detector {
                out.extend_from_slice(&detector.to_le_bytes());
            }
            if let Some(seen) = seen {
                out.extend_from_slice(seen.as_bytes());
            }
            for layer in self.head.iter().flatten() {
                write_layer(&mut out, layer)?;
            }
            let total = out.len() + 4;
            let total32 = u32::try_from(total).map_err(|_| invalid("length", "too large"))?;
            out[length_at..length_at + 4].copy_from_slice(&total32.to_le_bytes());
            let crc = crate::protocol::FRAME_CRC.checksum(&out);
            out.extend_from_slice(&crc.to_le_bytes());
            Model::parse(&out)?;
            Ok(out)
        }
    }

    fn write_layer(out: &mut StdVec<u8>, layer: &LayerSpec) -> Result<(), ModelError> {
        let n = layer.out_dim;
        if layer.weight.len() != layer.in_dim * n
            || layer.bias.len() != n
            || layer.multiplier.len() != n
            || layer.shift.len() != n
        {
            return Err(invalid(
                "layer arrays",
                "lengths must match the layer's shape",
            ));
        }
        for v in [layer.in_dim, layer.out_dim] {
            let v = u16::try_from(v).map_err(|_| invalid("layer size", "must fit in u16"))?;
            out.extend_from_slice(&v.to_le_bytes());
        }
        let (kind, zp) = match layer.output {
            LayerOutput::Int8 { zero_point, relu } => (if relu { 0 } else { 1 }, zero_point),
            LayerOutput::Q16 => (2, 0),
        };
        out.extend_from_slice(&[kind, 0, 0, 0]);
        put_i32s(out, &[layer.input_zero_point, zp]);
        put_i32s(out, &layer.bias);
        put_i32s(out, &layer.multiplier);
        put_i32s(out, &layer.shift);
        let grouped = crate::dense::group_weights(&layer.weight, layer.in_dim, n);
        out.extend(grouped.iter().map(|&w| w as u8));
        out.resize(out.len().next_multiple_of(4), 0);
        Ok(())
    }

    /// The output tables for int8 logits of this scale and zero point, computed in f64
    /// once at export; the device only looks them up.
    fn write_tables(out: &mut StdVec<u8>, scale: f64, zero_point: i32) {
        let logit = |q: i32| scale * (q - zero_point) as f64;
        for q in -128..128 {
            let p = 1.0 / (1.0 + (-logit(q)).exp());
            out.push((255.0 * p).round().clamp(0.0, 255.0) as u8);
        }
        for q in -128..128 {
            let l = logit(q);
            // softplus(l) = max(l, 0) + ln(1 + e^-|l|), stable for any l.
            let sp = l.max(0.0) + (-l.abs()).exp().ln_1p();
            out.extend_from_slice(&crate::fixed::q16_from_f64(sp).to_le_bytes());
        }
        for q in -128..128 {
            out.extend_from_slice(&crate::fixed::q16_from_f64(logit(q)).to_le_bytes());
        }
    }
}
