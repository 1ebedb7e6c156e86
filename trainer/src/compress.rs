//! The latent code as an image codec: what `shared::code` (the board's `Compress`
//! request) costs in image quality at each bit depth, against a linear transform coder
//! (PCA), JPEG and lossless PNG at the same bytes per image.
//!
//! Every method's output is rounded to 8-bit pixels before it is scored, as a receiver
//! would store it, and scored with `datasets::metrics`' PSNR and SSIM against the
//! original image, averaged over the images. A per-image PSNR is capped at
//! [`PSNR_CAP_DB`] so that an exact copy does not make the mean infinite.

use std::path::Path;

use image::codecs::jpeg::JpegEncoder;
use image::codecs::png::PngEncoder;
use image::{ExtendedColorType, ImageEncoder, ImageFormat};
use serde::Serialize;
use tinyvae_datasets::grid::unit_to_pixels;
use tinyvae_datasets::metrics::{psnr, ssim};
use tinyvae_datasets::Dataset;
use tinyvae_shared::code::{self, CodeError};
use tinyvae_shared::fixed::{q16_from_f64, Q16};
use tinyvae_shared::pipeline::{self, InferError, Workspace};

use crate::eval::{decode_means, encode_means};
use crate::model::Model;
use crate::pca::{Pca, PcaError};
use crate::pictures::canvas::Canvas;
use crate::pictures::plot::{draw_chart, save, Chart, Mark, Marker, Series};
use crate::pictures::PictureError;

/// The highest per-image PSNR counted, dB.
pub const PSNR_CAP_DB: f64 = 100.0;

/// Why the comparison could not run.
#[derive(Debug, thiserror::Error)]
pub enum CompressError {
    /// A tensor operation failed.
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
    /// The latent code refused the latent (too wide) or a bit depth.
    #[error("latent code: {0}")]
    Code(#[from] CodeError),
    /// The device model refused an image or latent.
    #[error("device model: {0}")]
    Infer(#[from] InferError),
    /// PCA failed.
    #[error(transparent)]
    Pca(#[from] PcaError),
    /// The image crate failed to encode or decode.
    #[error("{what}: {source}")]
    Image {
        /// What was being done.
        what: String,
        /// The image crate's error.
        source: image::ImageError,
    },
    /// A JPEG stream could not be parsed.
    #[error(transparent)]
    Jpeg(#[from] JpegError),
    /// A model's input size is not the data's.
    #[error("the {which} takes {model} pixels, the images have {data}")]
    InputSize {
        /// Which model.
        which: &'static str,
        /// Pixels the model takes.
        model: usize,
        /// Pixels per image.
        data: usize,
    },
    /// No test images, or a bad setting.
    #[error("{0}")]
    Settings(String),
}

/// Why [`jpeg_scan_bytes`] could not read a JPEG stream.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JpegError {
    /// It does not start with SOI (`FF D8`).
    #[error("not a JPEG stream: no SOI marker at the start")]
    NoSoi,
    /// A marker or segment runs past the end.
    #[error("JPEG stream truncated at byte {0}")]
    Truncated(usize),
    /// Something other than a marker where one must be.
    #[error("JPEG stream: expected a marker at byte {0}")]
    NoMarker(usize),
    /// EOI (`FF D9`) before any SOS, or the stream ends without EOI.
    #[error("JPEG stream: {0}")]
    NoScan(&'static str),
}

/// Bytes of entropy-coded data in a JPEG stream: everything between the end of each
/// SOS (start of scan) header and the marker that ends that scan (EOI for the last),
/// byte stuffing (`FF 00`) and restart markers (`FF D0`-`D7`) included, since a
/// decoder needs them. What is left out is what a sender and receiver could agree on
/// once, out of band: SOI, the quantization and Huffman tables, the frame and scan
/// headers, APP segments and EOI. On a 28 x 28 image those are a few hundred bytes,
/// more than the scan itself.
pub fn jpeg_scan_bytes(data: &[u8]) -> Result<usize, JpegError> {
    if data.get(..2) != Some(&[0xFF, 0xD8]) {
        return Err(JpegError::NoSoi);
    }
    let mut pos = 2;
    let mut total = 0;
    let mut scans = 0;
    loop {
        if data.get(pos) != Some(&0xFF) {
            return Err(if pos >= data.len() {
                JpegError::Truncated(pos)
            } else {
                JpegError::NoMarker(pos)
            });
        }
        // Fill bytes: any number of FF before a marker code.
        while data.get(pos + 1) == Some(&0xFF) {
            pos += 1;
        }
        let Some(&marker) = data.get(pos + 1) else {
            return Err(JpegError::Truncated(pos + 1));
        };
        match marker {
            0xD9 if scans == 0 => return Err(JpegError::NoScan("EOI before any scan")),
            0xD9 => return Ok(total),
            0x01 | 0xD0..=0xD7 => pos += 2,
            _ => {
                let len = match data.get(pos + 2..pos + 4) {
                    Some(b) => usize::from(u16::from_be_bytes([b[0], b[1]])),
                    None => return Err(JpegError::Truncated(pos + 2)),
                };
                if len < 2 {
                    return Err(JpegError::NoMarker(pos + 2));
                }
                let end = pos + 2 + len;
                if end > data.len() {
                    return Err(JpegError::Truncated(data.len()));
                }
                pos = end;
                if marker == 0xDA {
                    scans += 1;
                    let start = pos;
                    loop {
                        match (data.get(pos), data.get(pos + 1)) {
                            (Some(0xFF), Some(0x00 | 0xD0..=0xD7)) => pos += 2,
                            (Some(0xFF), Some(_)) => break,
                            (Some(_), _) => pos += 1,
                            (None, _) => return Err(JpegError::NoScan("no EOI after the scan")),
                        }
                    }
                    total += pos - start;
                }
            }
        }
    }
}

/// What `tinyvae compress` compares.
#[derive(Clone, Debug, Serialize)]
pub struct CompressOptions {
    /// Bit depths of the latent code (1 to 8).
    pub bits: Vec<u8>,
    /// JPEG qualities (1 to 100).
    pub jpeg_qualities: Vec<u8>,
}

impl Default for CompressOptions {
    /// Every bit depth; JPEG from its lowest quality to its highest, densest at the low
    /// end where its sizes come nearest the latent code's.
    fn default() -> Self {
        Self {
            bits: (code::MIN_CODE_BITS..=code::MAX_CODE_BITS).collect(),
            jpeg_qualities: vec![1, 5, 10, 20, 30, 40, 50, 60, 70, 80, 90, 95, 100],
        }
    }
}

/// One method at one setting.
#[derive(Clone, Debug, Serialize)]
pub struct RdPoint {
    /// The setting ("4 bits", "q 10", "12 x 6 bits").
    pub setting: String,
    /// Mean bytes per image as sent (for JPEG: the entropy-coded scan only).
    pub bytes: f64,
    /// JPEG only: mean bytes of the whole file, headers and tables included.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file_bytes: Option<f64>,
    /// Mean PSNR, dB (each image capped at [`PSNR_CAP_DB`]).
    pub psnr: f64,
    /// Mean SSIM.
    pub ssim: f64,
}

/// The comparison's findings.
#[derive(Clone, Debug, Serialize)]
pub struct CompressReport {
    /// Test images scored.
    pub test_images: usize,
    /// Bytes of one raw image (one per pixel).
    pub raw_bytes: usize,
    /// Latent dimensions of the checkpoint.
    pub latent: usize,
    /// Settings.
    pub options: CompressOptions,
    /// The latent code at each bit depth, float encoder and decoder (checkpoint).
    pub vae: Vec<RdPoint>,
    /// The float decoder fed the unquantized `mu` (4 bytes a dimension as f32): the
    /// floor the code's quantization adds to.
    pub vae_unquantized: RdPoint,
    /// The latent code at each bit depth through the device's fixed-point encoder and
    /// decoder (the exported model, run on the host), when one was given.
    pub device: Option<Vec<RdPoint>>,
    /// PCA at each of the latent code's byte budgets, the best split of the budget
    /// between components and bits (see [`compare`]).
    pub pca: Vec<RdPoint>,
    /// JPEG at each quality: `bytes` the scan, `file_bytes` the file.
    pub jpeg: Vec<RdPoint>,
    /// Mean bytes of a lossless PNG (8-bit grayscale) of each image.
    pub png_bytes: f64,
}

/// Mean PSNR and SSIM of `decoded` (8-bit images, one after another) against `test`.
fn quality(test: &Dataset, decoded: &[u8]) -> (f64, f64) {
    let d = test.image_len();
    let (mut p, mut s) = (0.0, 0.0);
    for (i, out) in decoded.chunks_exact(d).enumerate() {
        let a: Vec<f32> = out.iter().map(|&v| f32::from(v) / 255.0).collect();
        let b = test.image_f32(i);
        p += psnr(&a, &b).map_or(0.0, |v| v.min(PSNR_CAP_DB));
        s += ssim(&a, &b, test.width, test.height).unwrap_or(0.0);
    }
    let n = test.len().max(1) as f64;
    (p / n, s / n)
}

fn point(test: &Dataset, setting: String, bytes: f64, decoded: &[u8]) -> RdPoint {
    let (psnr, ssim) = quality(test, decoded);
    RdPoint {
        setting,
        bytes,
        file_bytes: None,
        psnr,
        ssim,
    }
}

/// Each `mu` row packed at `bits` and decoded back: the latent vectors the host's
/// decoder gets, and the code's length in bytes.
fn through_code(mu: &[Q16], latent: usize, bits: u8) -> Result<(Vec<f64>, usize), CompressError> {
    let mut z = Vec::with_capacity(mu.len());
    let mut len = 0;
    for row in mu.chunks_exact(latent) {
        let packed = code::pack(row, bits)?;
        len = packed.len();
        z.extend(code::decode(&packed, bits, latent)?);
    }
    Ok((z, len))
}

/// PCA coefficients quantized like the latent code: each divided by its component's
/// standard deviation and put through the code's Gaussian-quantile levels at `bits`,
/// then scaled back. The coefficients of a component are close to Gaussian, so the
/// levels that suit the VAE's `mu` suit them too, and the two coders differ only in
/// their transform.
fn quantize_pca(coef: &[f64], k: usize, sd: &[f64], bits: u8) -> Vec<f64> {
    coef.iter()
        .enumerate()
        .map(|(i, &c)| {
            let s = sd[i % k].max(1e-12);
            code::level_value(code::level(q16_from_f64(c / s), bits), bits) * s
        })
        .collect()
}

fn image_err(what: String) -> impl FnOnce(image::ImageError) -> CompressError {
    move |source| CompressError::Image { what, source }
}

/// Runs the comparison on `test`.
///
/// * The latent code: `mu` from the float encoder, packed with `shared::code` at each
///   bit depth, decoded with `code::decode` and the float decoder. With `device`, the
///   same through the fixed-point twin of the board: `pipeline::encode`, the code, and
///   `pipeline::decode`.
/// * PCA, fitted on `train`: for a budget of `B` bytes, `k = 8 B / b` components at
///   `b` bits each (quantized as in [`quantize_pca`]), for every `b` from 1 to 8; the
///   best PSNR is reported. Eight bits on `B` components is one of the splits.
/// * JPEG at each quality (the `image` crate's baseline encoder), decoded back with
///   the `image` crate; PNG once, lossless, for its size.
pub fn compare(
    model: &Model,
    device: Option<&tinyvae_shared::model::Model<'_>>,
    train: &Dataset,
    test: &Dataset,
    opts: &CompressOptions,
) -> Result<CompressReport, CompressError> {
    let d = test.image_len();
    if test.is_empty() {
        return Err(CompressError::Settings("no test images".into()));
    }
    let pixels = model.config.width * model.config.height;
    if pixels != d {
        return Err(CompressError::InputSize {
            which: "checkpoint",
            model: pixels,
            data: d,
        });
    }
    if let Some(bad) = opts.bits.iter().find(|b| !(1..=8).contains(*b)) {
        return Err(CodeError::Bits(*bad).into());
    }
    if let Some(bad) = opts.jpeg_qualities.iter().find(|q| !(1..=100).contains(*q)) {
        return Err(CompressError::Settings(format!(
            "JPEG quality {bad} is outside 1 to 100"
        )));
    }
    let latent = model.config.latent;
    let mu = encode_means(model, test)?;
    let mu_q: Vec<Q16> = mu.iter().map(|&v| q16_from_f64(f64::from(v))).collect();
    let decode_float = |z: &[f32]| -> Result<Vec<u8>, CompressError> {
        Ok(unit_to_pixels(&decode_means(model, z)?))
    };
    let mut vae = Vec::new();
    for &bits in &opts.bits {
        let (z, len) = through_code(&mu_q, latent, bits)?;
        let z: Vec<f32> = z.iter().map(|&v| v as f32).collect();
        vae.push(point(
            test,
            format!("{bits} bits"),
            len as f64,
            &decode_float(&z)?,
        ));
    }
    let vae_unquantized = point(
        test,
        "f32 mu".into(),
        (4 * latent) as f64,
        &decode_float(&mu)?,
    );
    let device = match device {
        Some(dm) => Some(device_points(dm, test, &opts.bits)?),
        None => None,
    };
    let budgets: Vec<usize> = {
        let mut b: Vec<usize> = vae.iter().map(|p| p.bytes as usize).collect();
        b.sort_unstable();
        b.dedup();
        b
    };
    let max_k = (8 * budgets.last().copied().unwrap_or(1)).min(d);
    let train_px = train.to_unit_f32();
    let pca = Pca::fit(&train_px, d, max_k)?;
    let test_px = test.to_unit_f32();
    let coef_all = pca.project(&test_px, max_k)?;
    let sd: Vec<f64> = pca.variances.iter().map(|v| v.sqrt()).collect();
    let mut pca_points = Vec::new();
    for &budget in &budgets {
        let mut best: Option<RdPoint> = None;
        for bits in 1..=8u8 {
            let k = (8 * budget / usize::from(bits)).min(max_k);
            if k == 0 {
                continue;
            }
            let coef: Vec<f64> = coef_all
                .chunks_exact(max_k)
                .flat_map(|r| r[..k].iter().copied())
                .collect();
            let q = quantize_pca(&coef, k, &sd, bits);
            let x: Vec<f32> = pca
                .reconstruct_all(&q, k)?
                .iter()
                .map(|&v| v as f32)
                .collect();
            let p = point(
                test,
                format!("{k} x {bits} bits"),
                (k * usize::from(bits)).div_ceil(8) as f64,
                &unit_to_pixels(&x),
            );
            if best.as_ref().is_none_or(|b| p.psnr > b.psnr) {
                best = Some(p);
            }
        }
        pca_points.extend(best);
    }
    let (w, h) = (test.width as u32, test.height as u32);
    let mut jpeg = Vec::new();
    for &q in &opts.jpeg_qualities {
        let (mut scan, mut file) = (0usize, 0usize);
        let mut decoded = Vec::with_capacity(test.pixels.len());
        for i in 0..test.len() {
            let mut buf = Vec::new();
            JpegEncoder::new_with_quality(&mut buf, q)
                .encode(test.image_u8(i), w, h, ExtendedColorType::L8)
                .map_err(image_err(format!(
                    "JPEG-encoding test image {i} at quality {q}"
                )))?;
            scan += jpeg_scan_bytes(&buf)?;
            file += buf.len();
            let img = image::load_from_memory_with_format(&buf, ImageFormat::Jpeg)
                .map_err(image_err(format!("decoding the JPEG of test image {i}")))?;
            decoded.extend(img.to_luma8().into_raw());
        }
        let n = test.len() as f64;
        let mut p = point(test, format!("q {q}"), scan as f64 / n, &decoded);
        p.file_bytes = Some(file as f64 / n);
        jpeg.push(p);
    }
    let mut png = 0usize;
    for i in 0..test.len() {
        let mut buf = Vec::new();
        PngEncoder::new(&mut buf)
            .write_image(test.image_u8(i), w, h, ExtendedColorType::L8)
            .map_err(image_err(format!("PNG-encoding test image {i}")))?;
        png += buf.len();
    }
    Ok(CompressReport {
        test_images: test.len(),
        raw_bytes: d,
        latent,
        options: opts.clone(),
        vae,
        vae_unquantized,
        device,
        pca: pca_points,
        jpeg,
        png_bytes: png as f64 / test.len() as f64,
    })
}

/// The latent code through the device's fixed-point encoder and decoder.
fn device_points(
    dm: &tinyvae_shared::model::Model<'_>,
    test: &Dataset,
    bits: &[u8],
) -> Result<Vec<RdPoint>, CompressError> {
    if dm.pixels() != test.image_len() {
        return Err(CompressError::InputSize {
            which: "device model",
            model: dm.pixels(),
            data: test.image_len(),
        });
    }
    let mut ws = Workspace::new();
    let mut mu = Vec::with_capacity(test.len() * dm.latent);
    for i in 0..test.len() {
        mu.extend(pipeline::encode(dm, &mut ws, test.image_u8(i))?.mu);
    }
    let mut out = Vec::new();
    for &b in bits {
        // The latent the device's decoder gets from a code is `code::decode_q16`'s,
        // the same call `tinyvae serial compress --model` makes on a board's codes.
        let mut decoded = Vec::with_capacity(test.pixels.len());
        let mut len = 0;
        for row in mu.chunks_exact(dm.latent) {
            let packed = code::pack(row, b)?;
            len = packed.len();
            let z = code::decode_q16(&packed, b, dm.latent)?;
            decoded.extend(pipeline::decode(dm, &mut ws, &z)?);
        }
        out.push(point(test, format!("{b} bits"), len as f64, &decoded));
    }
    Ok(out)
}

/// Draws PSNR against bytes per image (log scale) for every method to `path`, with the
/// PNG and raw sizes marked, and a note of JPEG's smallest file.
pub fn rate_distortion_plot(path: &Path, report: &CompressReport) -> Result<(), PictureError> {
    let pts = |v: &[RdPoint]| v.iter().map(|p| (p.bytes, p.psnr)).collect::<Vec<_>>();
    let line = |name: String, color: [u8; 3], points| Series {
        name,
        color,
        points,
        mark: Mark::LinePoints,
    };
    let mut series = vec![line(
        format!("VAE code, bits 1-8 ({} dims), float decoder", report.latent),
        [214, 39, 40],
        pts(&report.vae),
    )];
    if let Some(dev) = &report.device {
        series.push(line(
            "VAE code, device fixed-point twin".into(),
            [255, 127, 14],
            pts(dev),
        ));
    }
    series.push(line(
        "PCA, same bytes (best components x bits)".into(),
        [44, 160, 44],
        pts(&report.pca),
    ));
    series.push(line(
        "JPEG entropy-coded scan only (tables out of band)".into(),
        [31, 119, 180],
        pts(&report.jpeg),
    ));
    series.push(line(
        "JPEG whole file (headers + tables)".into(),
        [148, 103, 189],
        report
            .jpeg
            .iter()
            .filter_map(|p| p.file_bytes.map(|f| (f, p.psnr)))
            .collect(),
    ));
    let chart = Chart {
        title: format!(
            "PSNR (dB) vs bytes per image, {} test images",
            report.test_images
        ),
        x_label: "bytes per image (log scale)".into(),
        log_x: true,
        series,
        markers: vec![
            Marker {
                x: report.png_bytes,
                label: format!("PNG lossless {:.0} B", report.png_bytes),
                color: [90, 90, 90],
            },
            Marker {
                x: report.raw_bytes as f64,
                label: format!("raw {} B", report.raw_bytes),
                color: [0, 0, 0],
            },
        ],
        legend_at: Some((-(880 - 40), 10)),
        ..Chart::default()
    };
    let mut cv = Canvas::new(1000, 640);
    draw_chart(&mut cv, (90, 40, 880, 500), &chart);
    if let Some(j) = report
        .jpeg
        .iter()
        .min_by(|a, b| a.bytes.total_cmp(&b.bytes))
    {
        cv.text(
            90,
            596,
            &format!(
                "JPEG's smallest ({}): {:.0} B file, {:.0} B scan, PSNR {:.2} dB",
                j.setting,
                j.file_bytes.unwrap_or(f64::NAN),
                j.bytes,
                j.psnr
            ),
            [0, 0, 0],
        );
    }
    if let Some(v) = report.vae.iter().max_by(|a, b| a.bytes.total_cmp(&b.bytes)) {
        cv.text(
            90,
            612,
            &format!(
                "VAE code at {} ({:.0} B): PSNR {:.2} dB",
                v.setting, v.bytes, v.psnr
            ),
            [0, 0, 0],
        );
    }
    save(&cv, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encode(q: u8) -> Vec<u8> {
        let px: Vec<u8> = (0..28 * 28).map(|i| ((i * 37) % 251) as u8).collect();
        let mut buf = Vec::new();
        JpegEncoder::new_with_quality(&mut buf, q)
            .encode(&px, 28, 28, ExtendedColorType::L8)
            .unwrap();
        buf
    }

    /// A hand-made stream: SOI, an APP0 of 4 bytes, SOS with a 3-byte header, then 5
    /// scan bytes holding a stuffed FF 00 and a restart marker, then EOI.
    #[test]
    fn scan_bytes_of_a_hand_made_stream() {
        let s = [
            0xFF, 0xD8, // SOI
            0xFF, 0xE0, 0x00, 0x04, 0xAA, 0xBB, // APP0, length 4
            0xFF, 0xDA, 0x00, 0x03, 0x01, // SOS, length 3
            0x12, 0xFF, 0x00, 0xFF, 0xD0, 0x34, // scan: 6 bytes
            0xFF, 0xD9, // EOI
        ];
        assert_eq!(jpeg_scan_bytes(&s), Ok(6));
        assert_eq!(jpeg_scan_bytes(&s[1..]), Err(JpegError::NoSoi));
        assert_eq!(
            jpeg_scan_bytes(&s[..s.len() - 2]),
            Err(JpegError::NoScan("no EOI after the scan"))
        );
        assert_eq!(
            jpeg_scan_bytes(&[0xFF, 0xD8, 0xFF, 0xD9]),
            Err(JpegError::NoScan("EOI before any scan"))
        );
        assert_eq!(
            jpeg_scan_bytes(&[0xFF, 0xD8, 0xFF, 0xE0, 0x00, 0x09, 0x00]),
            Err(JpegError::Truncated(7))
        );
    }

    /// On the image crate's real output: the scan is a small part of the file, ends
    /// right before the final EOI, and grows with the quality.
    #[test]
    fn scan_bytes_of_real_jpegs() {
        let (lo, hi) = (encode(1), encode(95));
        let (a, b) = (jpeg_scan_bytes(&lo).unwrap(), jpeg_scan_bytes(&hi).unwrap());
        assert!(a > 0 && a < lo.len() / 2, "scan {a} of {}", lo.len());
        assert!(b > a);
        // The scan is the bytes just before EOI.
        assert_eq!(&lo[lo.len() - 2..], &[0xFF, 0xD9]);
        let sos = lo
            .windows(2)
            .position(|w| w == [0xFF, 0xDA])
            .expect("an SOS");
        let header = usize::from(u16::from_be_bytes([lo[sos + 2], lo[sos + 3]]));
        assert_eq!(a, lo.len() - 2 - (sos + 2 + header));
    }
}
