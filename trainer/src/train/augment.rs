//! Training-time augmentation: random translations.
//!
//! A sensor that is mounted a pixel or two off, or digits written off-centre, should
//! not look anomalous. Training on copies shifted by a few pixels teaches the model
//! that, where a few hundred images of one class would not.

use tinyvae_datasets::rng::SeededRng;

/// One `(dx, dy)` per image, each uniform in `-max..=max`; nothing when `max` is 0
/// (so runs without augmentation draw exactly the random numbers they always did).
pub fn draw_shifts(rng: &mut SeededRng, images: usize, max: usize) -> Vec<(i32, i32)> {
    if max == 0 {
        return Vec::new();
    }
    let span = (2 * max + 1) as f64;
    let mut offset =
        || (rng.uniform_range(0.0, span).floor() as i32).min(2 * max as i32) - max as i32;
    (0..images).map(|_| (offset(), offset())).collect()
}

/// Writes `src` (row major, `width x height`) moved right by `dx` and down by `dy`
/// into `dst`, with zeros where nothing moved in.
pub fn translate(
    src: &[f32],
    dst: &mut [f32],
    (width, height): (usize, usize),
    (dx, dy): (i32, i32),
) {
    dst.fill(0.0);
    let (w, h) = (width as i64, height as i64);
    for y in 0..h {
        let from_y = y - i64::from(dy);
        if !(0..h).contains(&from_y) {
            continue;
        }
        for x in 0..w {
            let from_x = x - i64::from(dx);
            if (0..w).contains(&from_x) {
                if let (Some(d), Some(&s)) = (
                    dst.get_mut((y * w + x) as usize),
                    src.get((from_y * w + from_x) as usize),
                ) {
                    *d = s;
                }
            }
        }
    }
}

/// [`translate`] over a batch of images stored back to back, one offset per image.
pub fn translate_batch(images: &[f32], size: (usize, usize), shifts: &[(i32, i32)]) -> Vec<f32> {
    let pixels = size.0 * size.1;
    let mut moved = vec![0.0; images.len()];
    for ((src, dst), &offset) in images
        .chunks_exact(pixels.max(1))
        .zip(moved.chunks_exact_mut(pixels.max(1)))
        .zip(shifts)
    {
        translate(src, dst, size, offset);
    }
    moved
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn translate_moves_pixels_and_fills_zeros() {
        let src: Vec<f32> = (1..=12).map(|v| v as f32).collect(); // 4 x 3
        let mut dst = vec![9.0; 12];
        translate(&src, &mut dst, (4, 3), (1, -1));
        #[rustfmt::skip]
        let want = [
            0.0, 5.0, 6.0, 7.0,
            0.0, 9.0, 10.0, 11.0,
            0.0, 0.0, 0.0, 0.0,
        ];
        assert_eq!(dst, want);
        translate(&src, &mut dst, (4, 3), (0, 0));
        assert_eq!(dst, src);
    }

    #[test]
    fn shifts_cover_the_range_and_nothing_is_drawn_without_them() {
        let mut rng = SeededRng::stream(1, "test", 0);
        let shifts = draw_shifts(&mut rng, 2000, 2);
        for v in -2..=2 {
            assert!(shifts.iter().any(|&(dx, _)| dx == v), "dx {v} never drawn");
            assert!(shifts.iter().any(|&(_, dy)| dy == v), "dy {v} never drawn");
        }
        assert!(shifts
            .iter()
            .all(|&(dx, dy)| dx.abs() <= 2 && dy.abs() <= 2));
        let (mut a, mut b) = (SeededRng::stream(3, "t", 0), SeededRng::stream(3, "t", 0));
        assert!(draw_shifts(&mut a, 10, 0).is_empty());
        assert_eq!(a.uniform_range(0.0, 1.0), b.uniform_range(0.0, 1.0));
    }
}
