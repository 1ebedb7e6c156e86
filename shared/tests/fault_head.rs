//! The fault head's fixed-point pass against a plain integer reference.
//!
//! The head streams the first layer's pooled rows through a ring of four, builds each
//! convolution's patches channels-last and runs its hidden layer without scratch
//! ([`DenseLayer::forward_i8_direct`]); the reference computes every map whole, with
//! its own loops, from the same layers' row-major weights. Any slip in a patch's order,
//! the padding, the ring or the pooling changes the logits. Both routes of the first
//! convolution ([`Conv1`]: the M3's through the kernels, every other target's direct)
//! are held to it.

use proptest::prelude::*;
use tinyvae_shared::dense::{requantize_offset, DenseLayer, LayerOutput};
use tinyvae_shared::fault_head::{score_by, Conv1, FaultHead, HeadBuffers};
use tinyvae_shared::model::LayerSpec;
use tinyvae_shared::quantize::{quantize_layer, ActQuant, LayerBytes, OutputQuant};
use tinyvae_shared::rng::Rng;
use tinyvae_shared::testing::{random_layer, synthetic_head};

/// One output of `spec` on `input` (int8 codes), requantized as the kernels do.
fn neuron(spec: &LayerSpec, input: &[i32], j: usize) -> i32 {
    let dot = (0..spec.in_dim).fold(0i32, |acc, i| {
        acc.wrapping_add(
            i32::from(spec.weight[j * spec.in_dim + i]) * (input[i] - spec.input_zero_point),
        )
    });
    let acc = spec.bias[j].wrapping_add(dot);
    match spec.output {
        LayerOutput::Int8 { zero_point, relu } => {
            let q = requantize_offset(acc, spec.multiplier[j], spec.shift[j], zero_point)
                .clamp(-128, 127);
            if relu {
                q.max(zero_point)
            } else {
                q
            }
        }
        LayerOutput::Q16 => requantize_offset(acc, spec.multiplier[j], spec.shift[j], 0),
    }
}

/// A 3x3 convolution with zero-point padding over a `side`-square map stored
/// `map[c][y][x]`, then 2x2 max pooling: the pooled map, `[c][y][x]`.
fn conv_pool(spec: &LayerSpec, map: &[i32], side: usize, channels: usize) -> Vec<i32> {
    let out_channels = spec.out_dim;
    let mut full = vec![0i32; out_channels * side * side];
    for y in 0..side {
        for x in 0..side {
            let mut patch = vec![spec.input_zero_point; 9 * channels];
            for ky in 0..3 {
                for kx in 0..3 {
                    let (sy, sx) = (y as i64 + ky as i64 - 1, x as i64 + kx as i64 - 1);
                    if sy < 0 || sx < 0 || sy >= side as i64 || sx >= side as i64 {
                        continue;
                    }
                    for c in 0..channels {
                        patch[(ky * 3 + kx) * channels + c] =
                            map[(c * side + sy as usize) * side + sx as usize];
                    }
                }
            }
            for o in 0..out_channels {
                full[(o * side + y) * side + x] = neuron(spec, &patch, o);
            }
        }
    }
    let half = side / 2;
    let mut pooled = vec![i32::MIN; out_channels * half * half];
    for o in 0..out_channels {
        for y in 0..side {
            for x in 0..side {
                let p = &mut pooled[(o * half + y / 2) * half + x / 2];
                *p = (*p).max(full[(o * side + y) * side + x]);
            }
        }
    }
    pooled
}

/// The reference logits of `image`.
fn reference(layers: &[LayerSpec; 4], image: &[u8]) -> Vec<i32> {
    let pixels: Vec<i32> = image.iter().map(|&p| i32::from(p) - 128).collect();
    let first = conv_pool(&layers[0], &pixels, 28, 1);
    let c1 = layers[0].out_dim;
    let second = conv_pool(&layers[1], &first, 14, c1);
    let c2 = layers[1].out_dim;
    // The hidden layer reads the pooled map channels-last.
    let mut flat = vec![0i32; 49 * c2];
    for c in 0..c2 {
        for cell in 0..49 {
            flat[cell * c2 + c] = second[c * 49 + cell];
        }
    }
    let hidden: Vec<i32> = (0..layers[2].out_dim)
        .map(|j| neuron(&layers[2], &flat, j))
        .collect();
    (0..layers[3].out_dim)
        .map(|j| neuron(&layers[3], &hidden, j))
        .collect()
}

fn head_of(bytes: &[LayerBytes; 4]) -> FaultHead<'_> {
    let [a, b, c, d] = bytes.each_ref().map(LayerBytes::view);
    FaultHead::new([a, b, c, d]).expect("a head of chained shapes")
}

/// A frame with a few random strokes and specks, so that every map has both zeros and
/// activity near the edges.
fn frame(rng: &mut Rng) -> Vec<u8> {
    specks(rng, 200)
}

/// A frame of up to `most` random pixels, the rest background.
fn specks(rng: &mut Rng, most: u32) -> Vec<u8> {
    let mut img = vec![0u8; 784];
    for _ in 0..(rng.next_u32() % most) {
        let i = rng.next_u32() as usize % 784;
        img[i] = rng.next_u32() as u8;
    }
    img
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn head_equals_the_whole_map_reference(seed in any::<u64>(), c1 in 1usize..=16, c2 in 1usize..=32) {
        let layers = synthetic_head(seed, c1, c2);
        let bytes = layers.each_ref().map(LayerBytes::new);
        let head = head_of(&bytes);
        let mut buffers = HeadBuffers::new();
        let mut scratch = buffers.scratch();
        let mut rng = Rng::new(seed ^ 0x5eed);
        // A frame mostly background, and one with hardly any.
        for most in [200, 4000] {
            let img = specks(&mut rng, most);
            let want = reference(&layers, &img);
            let top = want[1..].iter().copied().max().unwrap();
            for route in [Conv1::Kernels, Conv1::Direct] {
                let views = bytes.each_ref().map(LayerBytes::view);
                let [a, b, c, d] = views.each_ref();
                let score = score_by(route, [a, b, c, d], &img, &mut scratch);
                prop_assert_eq!(&scratch.logits()[..want.len()], &want[..], "{:?}", route);
                prop_assert_eq!(score, top.saturating_sub(want[0]));
            }
            prop_assert_eq!(head.score(&img, &mut scratch), top.saturating_sub(want[0]));
        }
    }

    #[test]
    fn direct_pass_equals_the_kernel(seed in any::<u64>(), in_dim in 1usize..300, out_dim in 1usize..40, relu in any::<bool>()) {
        let mut rng = Rng::new(seed);
        let quant = ActQuant::from_range(-0.5, 1.0);
        let spec = quantize_layer(&random_layer(&mut rng, in_dim, out_dim), quant, OutputQuant::Int8 { quant, relu });
        let bytes = LayerBytes::new(&spec);
        let layer: DenseLayer<'_> = bytes.view();
        // Mostly the zero point (a ReLU map), some values off it.
        let input: Vec<i8> = (0..in_dim).map(|_| {
            let v = rng.next_u32();
            if v.is_multiple_of(3) { v as i8 } else { quant.zero_point as i8 }
        }).collect();
        let (mut kernel, mut direct) = (vec![0i8; out_dim], vec![0i8; out_dim]);
        let mut widened = vec![0i32; in_dim];
        prop_assert_eq!(layer.forward_i8(&input, &mut widened, &mut kernel), out_dim);
        prop_assert_eq!(layer.forward_i8_direct(&input, &mut direct), out_dim);
        prop_assert_eq!(kernel, direct);
    }
}

#[test]
fn scratch_carved_from_borrowed_buffers_gives_the_same_logits() {
    use tinyvae_shared::fault_head::{HeadScratch, MAPS_BYTES, SMALL_BYTES, WORDS};
    let layers = synthetic_head(3, 16, 32);
    let bytes = layers.each_ref().map(LayerBytes::new);
    let head = head_of(&bytes);
    let img = frame(&mut Rng::new(4));
    let mut owned = HeadBuffers::new();
    let mut owned = owned.scratch();
    let want = head.score(&img, &mut owned);
    let (mut maps, mut small) = (vec![7i8; MAPS_BYTES], vec![7i8; SMALL_BYTES]);
    let (mut words, mut logits) = (vec![7i32; WORDS], vec![7; 32]);
    let mut lent = HeadScratch::new(&mut maps, &mut small, &mut words, &mut logits).unwrap();
    assert_eq!(head.score(&img, &mut lent), want);
    assert_eq!(lent.logits()[..5], owned.logits()[..5]);
    let mut short = vec![0i8; MAPS_BYTES - 1];
    assert!(HeadScratch::new(&mut short, &mut small, &mut words, &mut logits).is_none());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// The device does not check a head's shapes (its build did): whatever four layers
    /// (empty ones too) and whatever frame it is handed, a pass ends without a panic; a
    /// frame short of 784 pixels reads 0.
    #[test]
    fn any_four_layers_run_without_a_panic(
        seed in any::<u64>(),
        dims in prop::collection::vec((0usize..200, 0usize..48), 4),
        short in 0usize..784,
    ) {
        let mut rng = Rng::new(seed);
        let quant = ActQuant::from_range(0.0, 1.0);
        let layers: Vec<LayerSpec> = dims
            .iter()
            .enumerate()
            .map(|(i, &(n_in, n_out))| {
                let output = if i == 3 {
                    OutputQuant::Q16
                } else {
                    OutputQuant::Int8 { quant, relu: true }
                };
                quantize_layer(&random_layer(&mut rng, n_in, n_out), quant, output)
            })
            .collect();
        let bytes: Vec<LayerBytes> = layers.iter().map(LayerBytes::new).collect();
        let views: Vec<DenseLayer<'_>> = bytes.iter().map(LayerBytes::view).collect();
        let mut buffers = HeadBuffers::new();
        let img = frame(&mut rng);
        let layers = [&views[0], &views[1], &views[2], &views[3]];
        for route in [Conv1::Kernels, Conv1::Direct] {
            let _ = score_by(route, layers, &img, &mut buffers.scratch());
            let margin = score_by(route, layers, &img[..short], &mut buffers.scratch());
            prop_assert_eq!(margin, 0);
        }
    }
}

#[test]
fn shapes_that_do_not_chain_are_refused() {
    let layers = synthetic_head(1, 4, 8);
    let mut wrong = layers.clone();
    wrong[1] = synthetic_head(1, 5, 8)[1].clone(); // reads 45 inputs, conv1 gives 36
    let bytes = wrong.each_ref().map(LayerBytes::new);
    let [a, b, c, d] = bytes.each_ref().map(LayerBytes::view);
    let err = FaultHead::new([a, b, c, d]).unwrap_err();
    assert!(err.to_string().contains("do not chain"), "{err}");
    let bytes = layers.each_ref().map(LayerBytes::new);
    let [a, b, c, d] = bytes.each_ref().map(LayerBytes::view);
    assert!(
        FaultHead::new([a, b, d, c]).is_err(),
        "logits and hidden swapped"
    );
    // The direct route pools before requantizing: a negative multiplier would make
    // its maximum the wrong one.
    let mut negative = layers.clone();
    negative[0].multiplier[2] = -negative[0].multiplier[2];
    let bytes = negative.each_ref().map(LayerBytes::new);
    let [a, b, c, d] = bytes.each_ref().map(LayerBytes::view);
    assert!(FaultHead::new([a, b, c, d]).is_err(), "negative multiplier");
}
