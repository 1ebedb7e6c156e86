//! Whole-model inference: image to posterior, latent to image, score, generation.
//!
//! These are the functions the firmware serves and `tinyvae infer` runs on the host, so
//! the two produce the same bits. All buffers live in a caller-owned [`Workspace`]
//! (about 7 KiB), so nothing allocates and the stack use is fixed.
//!
//! The request entry points ([`score_image`], [`decode`], [`generate`], [`denoise`],
//! [`compress`]) are never inlined. The firmware builds its app at opt-level "z" (which
//! outlines and shares code for size) and this crate at "s"; LLVM optimizes inlined
//! code with its caller's attributes, so a pipeline inlined into the app would be
//! optimized as the app is. As calls, they keep this crate's opt-level.

use crate::code::{self, Code, MAX_CODE_BITS, MIN_CODE_BITS};
use crate::detect::{self, DetectorParams, RawTerms, Term};
use crate::fault_head::{self, HeadScratch};
use crate::fixed::{mul_q16, Q16};
use crate::latent::kl_q16;
use crate::model::{Model, MAX_WIDTH};
use crate::protocol::{ErrorCode, Latent, Pixels, ScoreReport, MAX_LATENT};
use crate::rng::Gaussian;
use crate::{dense::requantize, score};

/// Scratch buffers for one inference at a time.
pub struct Workspace {
    widened: [i32; MAX_WIDTH],
    ping: [i8; MAX_WIDTH],
    pong: [i8; MAX_WIDTH],
    head: [Q16; 2 * MAX_LATENT],
}

impl Default for Workspace {
    fn default() -> Self {
        Self::new()
    }
}

impl Workspace {
    /// The fault head's scratch in these buffers, once the VAE is done with them: the
    /// widened inputs' first words as the head's, the rest of them (seen as bytes) as
    /// its maps, one activation buffer as its patch, and the encoder head's slots as
    /// its logits. The head costs no RAM of its own.
    fn head_scratch(&mut self) -> Option<HeadScratch<'_>> {
        const _: () = assert!(fault_head::WORDS + fault_head::MAPS_BYTES / 4 <= MAX_WIDTH);
        let (words, rest) = self.widened.split_at_mut(fault_head::WORDS);
        let maps: &mut [i8] = bytemuck::cast_slice_mut(rest);
        HeadScratch::new(maps, &mut self.ping, words, &mut self.head)
    }

    /// Zeroed buffers.
    pub const fn new() -> Self {
        Self {
            widened: [0; MAX_WIDTH],
            ping: [0; MAX_WIDTH],
            pong: [0; MAX_WIDTH],
            head: [0; 2 * MAX_LATENT],
        }
    }
}

/// Why an inference request was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum InferError {
    /// The image has the wrong number of pixels.
    #[error("image has {got} pixels, the model takes {expected}")]
    WrongImageSize {
        /// Pixels the model takes.
        expected: usize,
        /// Pixels given.
        got: usize,
    },
    /// The latent vector has the wrong length.
    #[error("latent vector has {got} values, the model takes {expected}")]
    WrongLatentSize {
        /// Latent size of the model.
        expected: usize,
        /// Values given.
        got: usize,
    },
    /// A latent code's bit depth is outside
    /// [`MIN_CODE_BITS`]`..=`[`MAX_CODE_BITS`].
    #[error("bits per dimension must be {MIN_CODE_BITS} to {MAX_CODE_BITS}, got {got}")]
    WrongCodeBits {
        /// Bits asked for.
        got: u8,
    },
}

impl From<InferError> for ErrorCode {
    fn from(e: InferError) -> Self {
        let clip = |v: usize| u16::try_from(v).unwrap_or(u16::MAX);
        match e {
            InferError::WrongImageSize { expected, got } => ErrorCode::WrongImageSize {
                expected: clip(expected),
                got: clip(got),
            },
            InferError::WrongLatentSize { expected, got } => ErrorCode::WrongLatentSize {
                expected: clip(expected),
                got: clip(got),
            },
            InferError::WrongCodeBits { got } => ErrorCode::WrongCodeBits {
                min: MIN_CODE_BITS,
                max: MAX_CODE_BITS,
                got,
            },
        }
    }
}

/// The encoder's Gaussian q(z|x) = N(mu, exp(logvar)).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Posterior {
    /// Mean, Q16.
    pub mu: Latent,
    /// Log-variance, Q16.
    pub logvar: Latent,
}

/// An image's score with its reconstruction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scored {
    /// The posterior.
    pub posterior: Posterior,
    /// The score and verdict.
    pub score: ScoreReport,
    /// decoder(mu) as pixels.
    pub reconstruction: Pixels,
    /// The fault detector's raw terms of the image against its reconstruction (what a
    /// calibration takes in).
    pub terms: RawTerms,
}

/// Runs the encoder on `image` (row-major pixels).
pub fn encode(
    model: &Model<'_>,
    ws: &mut Workspace,
    image: &[u8],
) -> Result<Posterior, InferError> {
    let head = encode_head(model, ws, image)?;
    let (mu, logvar) = head.split_at(head.len() / 2);
    Ok(Posterior {
        mu: mu.iter().copied().collect(),
        logvar: logvar.iter().copied().collect(),
    })
}

/// Runs the encoder on `image` and returns its head in the workspace: mu, then
/// logvar, `model.latent` values each (none for a model without an encoder). The
/// requests that need only mu read it here rather than copy a whole [`Posterior`].
fn encode_head<'w>(
    model: &Model<'_>,
    ws: &'w mut Workspace,
    image: &[u8],
) -> Result<&'w [Q16], InferError> {
    if image.len() != model.pixels() {
        return Err(InferError::WrongImageSize {
            expected: model.pixels(),
            got: image.len(),
        });
    }
    for (q, &p) in ws.ping.iter_mut().zip(image) {
        *q = (p as i32 - 128) as i8;
    }
    let Workspace {
        widened,
        ping,
        pong,
        head,
    } = ws;
    let mut input_is_ping = true;
    let Some((last, hidden)) = model.encoder.split_last() else {
        return Ok(&[]);
    };
    for layer in hidden {
        if input_is_ping {
            layer.forward_i8(&ping[..], widened, pong);
        } else {
            layer.forward_i8(&pong[..], widened, ping);
        }
        input_is_ping = !input_is_ping;
    }
    let input = if input_is_ping { &ping[..] } else { &pong[..] };
    last.forward_q16(input, widened, head);
    Ok(&head[..2 * model.latent.min(MAX_LATENT)])
}

/// Quantizes a Q16 latent vector into the decoder's int8 input codes.
pub fn quantize_latent(model: &Model<'_>, z: &[Q16], out: &mut [i8]) {
    for (q, &v) in out.iter_mut().zip(z) {
        let scaled = requantize(v, model.z_multiplier, model.z_shift);
        *q = scaled.saturating_add(model.z_zero_point).clamp(-128, 127) as i8;
    }
}

/// Runs the decoder on `z` (Q16) and returns its int8 logits, one per pixel.
pub fn decode_logits<'w>(
    model: &Model<'_>,
    ws: &'w mut Workspace,
    z: &[Q16],
) -> Result<&'w [i8], InferError> {
    if z.len() != model.latent {
        return Err(InferError::WrongLatentSize {
            expected: model.latent,
            got: z.len(),
        });
    }
    quantize_latent(model, z, &mut ws.ping);
    let Workspace {
        widened,
        ping,
        pong,
        ..
    } = ws;
    let mut input_is_ping = true;
    for layer in model.decoder.iter() {
        if input_is_ping {
            layer.forward_i8(&ping[..], widened, pong);
        } else {
            layer.forward_i8(&pong[..], widened, ping);
        }
        input_is_ping = !input_is_ping;
    }
    let out = if input_is_ping { &ping[..] } else { &pong[..] };
    Ok(&out[..model.pixels()])
}

/// Decodes `z` into pixels.
#[inline(never)] // keeps this crate's opt-level under the app's "z": see the module docs
pub fn decode(model: &Model<'_>, ws: &mut Workspace, z: &[Q16]) -> Result<Pixels, InferError> {
    let logits = decode_logits(model, ws, z)?;
    Ok(logits.iter().map(|&q| model.tables.pixel(q)).collect())
}

/// Encodes `image`, decodes mu and scores the image against `threshold` and the
/// model's own fault detector ([`Model::detector`]).
pub fn score_image(
    model: &Model<'_>,
    ws: &mut Workspace,
    image: &[u8],
    threshold: Q16,
) -> Result<Scored, InferError> {
    score_image_with(model, ws, image, threshold, model.detector().as_ref())
}

/// [`score_image`] with the fault detector in force on the device (the model's, or
/// one a calibration set; `None`: no detector verdict, though the terms are still
/// read, for a calibration).
///
/// On the Cortex-M0 the fault head runs first, from this small frame: under the VAE's
/// scoring (a frame of some 2.9 KB, the reconstruction among it) its pass would have
/// taken the stack past the 32 KiB RAM budget. Elsewhere it runs after the VAE, inside
/// one function: the Cortex-M3's code budget has no room for the extra call, and its
/// stack has room for the pass (BENCHMARKS.md, "The fault head on the board").
#[inline(never)] // keeps this crate's opt-level under the app's "z": see the module docs
pub fn score_image_with(
    model: &Model<'_>,
    ws: &mut Workspace,
    image: &[u8],
    threshold: Q16,
    detector: Option<&DetectorParams>,
) -> Result<Scored, InferError> {
    let head = if cfg!(tinyvae_kernel = "thumb1") {
        Some(head_margin(model, ws, image))
    } else {
        None
    };
    score_with_head(model, ws, image, threshold, detector, head)
}

/// The fault head's margin of `image` (`None`: the model has none), in the
/// workspace's buffers.
// On the M0 its frames must not sit under the VAE's (see `score_image_with`);
// elsewhere it folds into the scoring.
#[cfg_attr(tinyvae_kernel = "thumb1", inline(never))]
#[cfg_attr(not(tinyvae_kernel = "thumb1"), inline(always))]
fn head_margin(model: &Model<'_>, ws: &mut Workspace, image: &[u8]) -> Option<Q16> {
    let mut scratch = ws.head_scratch()?;
    model.fault_head_score(image, &mut scratch)
}

/// [`score_image_with`]'s scoring; `head` is the fault head's margin when it has run
/// already (`Some`), or `None` to run it here, after the VAE.
#[cfg_attr(tinyvae_kernel = "thumb1", inline(never))]
#[cfg_attr(not(tinyvae_kernel = "thumb1"), inline(always))]
fn score_with_head(
    model: &Model<'_>,
    ws: &mut Workspace,
    image: &[u8],
    threshold: Q16,
    detector: Option<&DetectorParams>,
    head: Option<Option<Q16>>,
) -> Result<Scored, InferError> {
    let posterior = encode(model, ws, image)?;
    let kl = kl_q16(&posterior.mu, &posterior.logvar);
    let logits = decode_logits(model, ws, &posterior.mu)?;
    let mut reconstruction = Pixels::new();
    // Image sizes are checked by the encoder: at most MAX_PIXELS.
    let _ = reconstruction.resize(logits.len(), 0);
    let recon = score::reconstruct(
        model.likelihood,
        &model.tables,
        image,
        logits,
        &mut reconstruction,
    );
    let mut score = score::report(recon.term, kl, threshold);
    let mut terms = detect::image_terms(
        image,
        reconstruction.len(),
        model.input_width,
        model.input_height,
        score.score,
        recon.residual,
        model.seen(),
    );
    // The fault head reads the frame itself, in the buffers the VAE is done with.
    let head = head.unwrap_or_else(|| head_margin(model, ws, image));
    if let Some(margin) = head {
        terms[Term::Head as usize] = detect::head_term(margin);
    }
    score.detector = detector.map(|d| d.report(&terms));
    Ok(Scored {
        posterior,
        score,
        reconstruction,
        terms,
    })
}

/// Draws z = temperature * eps with eps ~ N(0, I) from the generator seeded by `seed`.
pub fn prior_sample(latent: usize, seed: u64, temperature: Q16) -> Latent {
    let mut gaussian = Gaussian::new(seed);
    (0..latent.min(MAX_LATENT))
        .map(|_| mul_q16(gaussian.next_q16(), temperature))
        .collect()
}

/// Samples the prior and decodes the sample: the device's `generate`.
#[inline(never)] // keeps this crate's opt-level under the app's "z": see the module docs
pub fn generate(
    model: &Model<'_>,
    ws: &mut Workspace,
    seed: u64,
    temperature: Q16,
) -> Result<(Latent, Pixels), InferError> {
    let z = prior_sample(model.latent, seed, temperature);
    let image = decode(model, ws, &z)?;
    Ok((z, image))
}

/// Encodes `image` and decodes mu: the image as the model would draw it. A model
/// trained on clean images (or to undo faults) leaves out what it never learnt, such as
/// a sensor fault, so this is the device's denoiser. The same bits as
/// [`score_image`]'s reconstruction, without the cost of the score.
#[inline(never)] // keeps this crate's opt-level under the app's "z": see the module docs
pub fn denoise(model: &Model<'_>, ws: &mut Workspace, image: &[u8]) -> Result<Pixels, InferError> {
    let head = encode_head(model, ws, image)?;
    let latent = head.len() / 2;
    let mut mu = [0; MAX_LATENT];
    mu[..latent].copy_from_slice(&head[..latent]);
    decode(model, ws, &mu[..latent])
}

/// Encodes `image` and packs mu at `bits` bits per dimension ([`code::pack`]): a
/// few bytes the host can decode back into an image. The bit depth is checked before
/// the encoder runs, so a bad request costs nothing.
#[inline(never)] // keeps this crate's opt-level under the app's "z": see the module docs
pub fn compress(
    model: &Model<'_>,
    ws: &mut Workspace,
    image: &[u8],
    bits: u8,
) -> Result<Code, InferError> {
    if !(MIN_CODE_BITS..=MAX_CODE_BITS).contains(&bits) {
        return Err(InferError::WrongCodeBits { got: bits });
    }
    let head = encode_head(model, ws, image)?;
    // mu is at most MAX_LATENT values, and `bits` was checked above.
    Ok(code::pack_checked(&head[..head.len() / 2], bits))
}

/// Encodes `image`, decodes mu and reads every fault-detector term of the image
/// against its reconstruction ([`detect::raw_terms`]); the negative ELBO at `z = mu`
/// is the first term. The terms of [`score_image`], without a verdict.
pub fn detector_terms(
    model: &Model<'_>,
    ws: &mut Workspace,
    image: &[u8],
) -> Result<RawTerms, InferError> {
    score_image_with(model, ws, image, 0, None).map(|scored| scored.terms)
}
