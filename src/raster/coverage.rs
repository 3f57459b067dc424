//! Coverage of a pixel by a stroke's band, from the distance of its centre to the
//! centreline alone: the pixel is a fixed trapezoid footprint across the edge
//! (boxes of [`FOOTPRINT_A`] and [`FOOTPRINT_B`] px convolved), so the gradient is
//! simple and exact.

use anyhow::Result;
use tch::Tensor;

use super::{FOOTPRINT_A, FOOTPRINT_B, FOOTPRINT_HALF};

/// Pixel mass of the footprint within `z` ≥ 0 of its centre on one side, minus
/// ½ beyond: linear on the trapezoid's plateau, quadratic on its slopes.
fn half_mass(z: &Tensor) -> Result<Tensor> {
    let (h1, h2) = ((FOOTPRINT_A - FOOTPRINT_B) / 2.0, FOOTPRINT_HALF);
    let z = z.f_clamp_max(h2)?;
    let slope = z
        .f_sub_scalar(h1)?
        .f_relu()?
        .f_square()?
        .f_mul_scalar(1.0 / (2.0 * FOOTPRINT_A * FOOTPRINT_B))?;
    Ok(z.f_mul_scalar(1.0 / FOOTPRINT_A)?.f_sub(&slope)?)
}

/// Coverage of a pixel whose centre is `dist` px from the centreline of a band
/// of half width `half_w` px: F(w/2 − d) − F(−w/2 − d), F the footprint's CDF.
/// `thin`: some band is narrower than the footprint, so its far edge counts.
/// Both (F) float, on one device; returns (F), not yet clamped to [0, 1].
pub(super) fn coverage(half_w: &Tensor, dist: &Tensor, thin: bool) -> Result<Tensor> {
    let inner = half_w.f_sub(dist)?;
    let near = half_mass(&inner.f_abs()?)?.f_mul(&inner.f_sign()?)?;
    if thin {
        Ok(near.f_add(&half_mass(&half_w.f_add(dist)?)?)?)
    } else {
        Ok(near.f_add_scalar(0.5)?)
    }
}

#[cfg(test)]
mod tests {
    use tch::Kind;

    use crate::raster::rasterize;
    use crate::raster::testutil::{line, pixels, scene_of};
    use crate::scene::Canvas;

    #[test]
    fn opaque_horizontal_stroke_covers_its_band() {
        let c = Canvas::new(20, 12).unwrap();
        let seg = line(3.0, 6.0, 15.0, 6.0);
        let scene = scene_of(c, &[(&seg, 4.0, [1.0, 0.0, 0.0, 1.0])], Kind::Double);
        let img = pixels(&rasterize(&scene).unwrap()); // (1, 3, 12, 20)
        let at = |ch: usize, y: usize, x: usize| img[ch * 240 + y * 20 + x];
        // The band is y ∈ [4, 8]. Rows 5 and 6 are deep inside; rows 4 and 7 are
        // inside too, but the footprint (0.625 px half support) blurs the edge by
        // under 0.03, and rows 3 and 8 get as little; rows 2 and 9 are untouched.
        for x in 3..15 {
            for y in 5..7 {
                assert!((at(0, y, x) - 1.0).abs() < 1e-9 && at(1, y, x) < 1e-5, "({x},{y})");
            }
            for (y, v) in [(3, 0.0), (4, 1.0), (7, 1.0), (8, 0.0)] {
                assert!((1.0 - at(1, y, x) - v).abs() < 0.03, "({x},{y}): green {}", at(1, y, x));
            }
            assert!(at(1, 2, x) == 1.0 && at(1, 9, x) == 1.0);
        }
        // Round cap: a disc of radius 2 around (3, 6) and nothing beyond.
        assert!(at(1, 6, 1) < 0.2 && at(1, 6, 0) > 0.95 && at(1, 0, 0) == 1.0);
    }

    #[test]
    fn coverage_is_area_for_a_half_covered_pixel_row() {
        // A band y ∈ [4.5, 7.5]: rows 4 and 7 are half covered.
        let c = Canvas::new(16, 12).unwrap();
        let seg = line(-10.0, 6.0, 30.0, 6.0);
        let scene = scene_of(c, &[(&seg, 3.0, [0.0, 0.0, 0.0, 1.0])], Kind::Double);
        let img = pixels(&rasterize(&scene).unwrap());
        for x in 0..16 {
            assert!((img[4 * 16 + x] - 0.5).abs() < 1e-6 && (img[7 * 16 + x] - 0.5).abs() < 1e-6);
            assert!(img[5 * 16 + x].abs() < 1e-5 && img[6 * 16 + x].abs() < 1e-5);
        }
    }
}
