//! Augmentation on the device: random perspective, then random resized crop.
//!
//! Shapes (the legend in `lib.rs`): `N` drawings, `D` augmentations per drawing,
//! `H`×`W` input pixels, `V` the output side (the model's input size).
//!
//! Both transforms are folded into one sampling grid per augmentation, so a batch
//! costs a single differentiable `grid_sample`. Coordinates are continuous pixels:
//! pixel `k` covers `[k, k+1)`, its centre is `k + 0.5`.

use anyhow::{bail, Result};
use rand::Rng;
use tch::{Device, Kind, Tensor};

/// torchvision's `RandomPerspective(distortion_scale)` as used by CLIPDraw.
pub const DISTORTION: f64 = 0.5;
/// `RandomResizedCrop` area fraction range.
pub const CROP_SCALE: (f64, f64) = (0.7, 0.9);
/// `RandomResizedCrop` aspect-ratio range (width / height).
pub const CROP_RATIO: (f64, f64) = (3.0 / 4.0, 4.0 / 3.0);

/// One augmentation: where each output pixel samples the input.
#[derive(Clone, Debug, PartialEq)]
pub struct Augmentation {
    /// Row-major 3×3 homography from perspective-output pixels to input pixels.
    pub homography: [f64; 9],
    /// Crop box in perspective-output pixels: (x0, y0, width, height).
    pub crop: (f64, f64, f64, f64),
}

impl Augmentation {
    /// The transform that returns its input unchanged (for an `H`×`W` image).
    pub fn identity(height: i64, width: i64) -> Self {
        Self {
            homography: [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0],
            crop: (0.0, 0.0, width as f64, height as f64),
        }
    }

    /// A random perspective then a random resized crop, as torchvision draws them.
    pub fn random<R: Rng>(rng: &mut R, height: i64, width: i64) -> Self {
        let (w, h) = (width as f64, height as f64);
        let (dx, dy) = (DISTORTION * w / 2.0, DISTORTION * h / 2.0);
        let corners = [(0.0, 0.0), (w, 0.0), (w, h), (0.0, h)];
        // Each corner moves inwards by up to half the distortion of its half-side.
        let moved = [
            (rng.gen_range(0.0..=dx), rng.gen_range(0.0..=dy)),
            (w - rng.gen_range(0.0..=dx), rng.gen_range(0.0..=dy)),
            (w - rng.gen_range(0.0..=dx), h - rng.gen_range(0.0..=dy)),
            (rng.gen_range(0.0..=dx), h - rng.gen_range(0.0..=dy)),
        ];
        // Content at `corners` moves to `moved`: sampling maps moved → corners.
        let homography =
            solve_homography(&moved, &corners).unwrap_or(Self::identity(height, width).homography);
        Self { homography, crop: random_crop(rng, h, w) }
    }
}

/// torchvision's RandomResizedCrop box: 10 tries, then the central crop.
fn random_crop<R: Rng>(rng: &mut R, h: f64, w: f64) -> (f64, f64, f64, f64) {
    let area = h * w;
    let (lo, hi) = (CROP_RATIO.0.ln(), CROP_RATIO.1.ln());
    for _ in 0..10 {
        let target = area * rng.gen_range(CROP_SCALE.0..=CROP_SCALE.1);
        let ratio = rng.gen_range(lo..=hi).exp();
        let cw = (target * ratio).sqrt().round();
        let ch = (target / ratio).sqrt().round();
        if cw > 0.0 && cw <= w && ch > 0.0 && ch <= h {
            let y0 = rng.gen_range(0.0..=(h - ch)).floor();
            let x0 = rng.gen_range(0.0..=(w - cw)).floor();
            return (x0, y0, cw, ch);
        }
    }
    let side = w.min(h);
    ((w - side) / 2.0, (h - side) / 2.0, side, side)
}

/// The homography taking each `from[k]` to `to[k]` (row-major, h33 = 1).
fn solve_homography(from: &[(f64, f64); 4], to: &[(f64, f64); 4]) -> Option<[f64; 9]> {
    // Standard 8×8 DLT system, solved by Gaussian elimination with partial pivoting.
    let mut a = [[0.0f64; 9]; 8];
    for k in 0..4 {
        let ((x, y), (u, v)) = (from[k], to[k]);
        a[2 * k] = [x, y, 1.0, 0.0, 0.0, 0.0, -u * x, -u * y, u];
        a[2 * k + 1] = [0.0, 0.0, 0.0, x, y, 1.0, -v * x, -v * y, v];
    }
    for col in 0..8 {
        let pivot = (col..8).max_by(|&i, &j| a[i][col].abs().total_cmp(&a[j][col].abs()))?;
        if a[pivot][col].abs() < 1e-12 {
            return None;
        }
        a.swap(col, pivot);
        for row in 0..8 {
            if row != col {
                let f = a[row][col] / a[col][col];
                for c in col..9 {
                    a[row][c] -= f * a[col][c];
                }
            }
        }
    }
    let mut h = [0.0; 9];
    for i in 0..8 {
        h[i] = a[i][8] / a[i][i];
    }
    h[8] = 1.0;
    Some(h)
}

/// Applies `augs` to every drawing, fills with white, resizes to `size` (V).
///
/// `images`: (N, 3, H, W) f32 RGB in [0, 1]; returns (N·D, 3, V, V) with the D
/// augmentations of drawing n at rows n·D .. n·D + D. Differentiable w.r.t. `images`.
pub fn apply(images: &Tensor, augs: &[Augmentation], size: i64) -> Result<Tensor> {
    let (n, c, h, w) = images.size4()?;
    if c != 3 {
        bail!("images have {c} channels, expected 3 (RGB)");
    }
    let d = augs.len() as i64;
    if d == 0 {
        bail!("no augmentations given");
    }
    let device = images.device();
    let grid = sampling_grid(augs, h, w, size, device)?; // (D, V, V, 2)
    let grid = grid.f_repeat([n, 1, 1, 1])?; // (N·D, V, V, 2)
    let batch = images.f_unsqueeze(1)?.f_expand([n, d, 3, h, w], false)?;
    let batch = batch.f_reshape([n * d, 3, h, w])?; // (N·D, 3, H, W)
                                                    // Sample (x − 1) with zero padding, then add 1: outside the image is white.
    let out = batch.f_sub_scalar(1.0)?.f_grid_sampler(&grid, 0, 0, false)?; // bilinear, zeros
    Ok(out.f_add_scalar(1.0)?)
}

/// The normalised grid_sample coordinates of every output pixel: (D, V, V, 2).
fn sampling_grid(
    augs: &[Augmentation],
    h: i64,
    w: i64,
    size: i64,
    device: Device,
) -> Result<Tensor> {
    let d = augs.len() as i64;
    let mut hom = Vec::with_capacity(augs.len() * 9);
    let mut crop = Vec::with_capacity(augs.len() * 4);
    for a in augs {
        hom.extend(a.homography.iter().map(|&v| v as f32));
        let (x0, y0, cw, ch) = a.crop;
        crop.extend([x0 as f32, y0 as f32, cw as f32, ch as f32]);
    }
    let opts = (Kind::Float, device);
    let hom = Tensor::from_slice(&hom).f_to_device(device)?.f_view([d, 1, 1, 9])?;
    let crop = Tensor::from_slice(&crop).f_to_device(device)?.f_view([d, 1, 1, 4])?;
    // Output pixel centres as fractions of the crop.
    let t = Tensor::f_arange(size, opts)?.f_add_scalar(0.5)?.f_div_scalar(size as f64)?; // (V)
    let fx = t.f_view([1, 1, size])?;
    let fy = t.f_view([1, size, 1])?;
    let x = crop.f_select(3, 0)?.f_add(&fx.f_mul(&crop.f_select(3, 2)?)?)?; // (D, V, V)
    let y = crop.f_select(3, 1)?.f_add(&fy.f_mul(&crop.f_select(3, 3)?)?)?; // (D, V, V)
    let hk = |k: i64| hom.f_select(3, k); // (D, 1, 1)
                                          // a·x + b·y + c for row (a, b, c) of the homography.
    let row = |a: i64| -> Result<Tensor> {
        Ok(hk(a)?.f_mul(&x)?.f_add(&hk(a + 1)?.f_mul(&y)?)?.f_add(&hk(a + 2)?)?)
    };
    let z = row(6)?;
    let sx = row(0)?.f_div(&z)?;
    let sy = row(3)?.f_div(&z)?;
    // Continuous pixel coordinates → [-1, 1] with align_corners = false.
    let gx = sx.f_mul_scalar(2.0 / w as f64)?.f_sub_scalar(1.0)?;
    let gy = sy.f_mul_scalar(2.0 / h as f64)?.f_sub_scalar(1.0)?;
    Ok(Tensor::f_stack(&[gx, gy], 3)?) // (D, V, V, 2)
}

/// Resizes (N, 3, H, W) to (N, 3, V, V) without augmenting (the `--augs 0` path).
pub fn resize(images: &Tensor, size: i64) -> Result<Tensor> {
    let (_, _, h, w) = images.size4()?;
    if h == size && w == size {
        return Ok(images.shallow_clone());
    }
    apply(images, &[Augmentation::identity(h, w)], size)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    fn test_image(h: i64, w: i64) -> Tensor {
        Tensor::rand([2, 3, h, w], (Kind::Float, Device::Cpu))
    }

    #[test]
    fn identity_returns_the_input() {
        tch::manual_seed(0);
        let img = test_image(224, 224);
        let out = apply(&img, &[Augmentation::identity(224, 224)], 224).unwrap();
        assert_eq!(out.size(), [2, 3, 224, 224]);
        let diff = (out - &img).abs().max().double_value(&[]);
        // Float rounding of the grid only: far below one 8-bit level (0.004).
        assert!(diff < 1e-4, "identity changed pixels by up to {diff}");
    }

    #[test]
    fn outside_is_filled_white() {
        // A pure shift by half the width: the right half samples outside the input.
        let mut aug = Augmentation::identity(64, 64);
        aug.homography[2] = 32.0;
        let black = Tensor::zeros([1, 3, 64, 64], (Kind::Float, Device::Cpu));
        let out = apply(&black, &[aug], 64).unwrap();
        let right = out.narrow(3, 40, 24).min().double_value(&[]);
        let left = out.narrow(3, 0, 24).max().double_value(&[]);
        assert!(right > 0.999, "fill is not white: min {right}");
        assert!(left < 1e-6, "inside pixels changed: max {left}");
    }

    #[test]
    fn random_crops_stay_in_range() {
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        for _ in 0..500 {
            let a = Augmentation::random(&mut rng, 224, 224);
            let (x0, y0, w, h) = a.crop;
            assert!(x0 >= 0.0 && y0 >= 0.0 && x0 + w <= 224.0 && y0 + h <= 224.0, "{:?}", a.crop);
            let frac = w * h / (224.0 * 224.0);
            assert!((0.68..=0.92).contains(&frac), "crop area fraction {frac}");
            let ratio = w / h;
            assert!((0.74..=1.36).contains(&ratio), "crop ratio {ratio}");
        }
    }

    #[test]
    fn perspective_maps_corners_inwards() {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        for _ in 0..100 {
            let a = Augmentation::random(&mut rng, 224, 224);
            let h = a.homography;
            // Content shrinks towards the centre, so the output's corners sample
            // on or outside the input's border (and get the white fill).
            let map = |x: f64, y: f64| {
                let z = h[6] * x + h[7] * y + h[8];
                ((h[0] * x + h[1] * y + h[2]) / z, (h[3] * x + h[4] * y + h[5]) / z)
            };
            let (x, y) = map(0.0, 0.0);
            assert!(x <= 1e-6 || y <= 1e-6, "top-left corner samples ({x}, {y})");
            let (x, y) = map(224.0, 224.0);
            assert!(x >= 224.0 - 1e-6 || y >= 224.0 - 1e-6, "bottom-right samples ({x}, {y})");
        }
    }

    #[test]
    fn gradient_reaches_the_input() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let augs: Vec<_> = (0..4).map(|_| Augmentation::random(&mut rng, 32, 32)).collect();
        let img = Tensor::rand([1, 3, 32, 32], (Kind::Float, Device::Cpu)).set_requires_grad(true);
        let out = apply(&img, &augs, 24).unwrap();
        assert_eq!(out.size(), [4, 3, 24, 24]);
        out.sum(Kind::Float).backward();
        let g = img.grad().abs().sum(Kind::Float).double_value(&[]);
        assert!(g > 0.0);
    }
}
