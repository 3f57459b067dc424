//! The scene as the plan reads it: a detached f64 host copy, checked for what the
//! plan relies on (segment counts in range, finite used points, finite widths ≥ 0,
//! strokes and pixels numbered within u32).

use anyhow::{bail, Result};
use tch::{Device, Kind, Tensor};

use crate::scene::{Scene, MAX_SEGMENTS, POINTS_PER_STROKE};

/// Detached host copy of what the plan needs.
pub(super) struct HostScene {
    pub n: i64,
    pub s: i64,
    pub width: i64,
    pub height: i64,
    /// (N·S·P·2) pixels.
    pub points: Vec<f64>,
    /// (N·S) segment counts.
    pub segments: Vec<i64>,
    /// (N·S) pixels.
    pub widths: Vec<f64>,
}

impl HostScene {
    /// Copies `scene` (N = `n` drawings of S = `s` strokes, already checked by
    /// [`Scene::check`]) to the host and validates its values; errors name the
    /// drawing, the stroke and the value.
    pub fn read(scene: &Scene, n: i64, s: i64) -> Result<HostScene> {
        let host = |t: &Tensor| -> Result<Vec<f64>> {
            let t = t
                .f_detach()?
                .f_to_device(Device::Cpu)?
                .f_to_kind(Kind::Double)?
                .f_flatten(0, -1)?;
            Ok(Vec::<f64>::try_from(&t)?)
        };
        // The plan numbers strokes and pixels with u32.
        let (hw, limit) = (scene.canvas.width * scene.canvas.height, u32::MAX as i64 / 2);
        if n * s >= limit || n * hw >= limit {
            bail!("{n} drawings of {s} strokes on {hw} pixels each are too many to rasterize at once (at most {limit} strokes and pixels in all)");
        }
        let points = host(&scene.points)?;
        let widths = host(&scene.widths)?;
        let segments =
            Vec::<i64>::try_from(&scene.segments.f_to_device(Device::Cpu)?.f_flatten(0, -1)?)?;
        let p = POINTS_PER_STROKE as usize;
        for (g, &nseg) in segments.iter().enumerate() {
            let (d, k) = (g as i64 / s.max(1), g as i64 % s.max(1));
            if !(1..=MAX_SEGMENTS).contains(&nseg) {
                bail!("drawing {d} stroke {k} has {nseg} segments, expected 1..={MAX_SEGMENTS}");
            }
            let used = &points[g * p * 2..(g * p + 3 * nseg as usize + 1) * 2];
            if let Some(v) = used.iter().find(|v| !v.is_finite()) {
                bail!("drawing {d} stroke {k} has a control point coordinate {v}, expected finite values");
            }
            let w = widths[g];
            if !(w.is_finite() && w >= 0.0) {
                bail!("drawing {d} stroke {k} has width {w} px, expected a finite value >= 0");
            }
        }
        Ok(HostScene {
            n,
            s,
            width: scene.canvas.width,
            height: scene.canvas.height,
            points,
            segments,
            widths,
        })
    }
}

#[cfg(test)]
mod tests {
    use tch::{Device, Tensor};

    use crate::raster::rasterize;
    use crate::scene::{Canvas, Scene};

    #[test]
    fn bad_scenes_are_refused_with_names() {
        let c = Canvas::new(16, 16).unwrap();
        let mut scene = Scene::random(1, 2, c, 0, Device::Cpu).unwrap();
        scene.segments = Tensor::from_slice(&[1i64, 4]).view([1, 2]);
        let e = rasterize(&scene).unwrap_err().to_string();
        assert!(e.contains("stroke 1 has 4 segments"), "{e}");
        let mut scene = Scene::random(1, 2, c, 0, Device::Cpu).unwrap();
        scene.widths = Tensor::from_slice(&[1.0f32, f32::NAN]).view([1, 2]);
        let e = rasterize(&scene).unwrap_err().to_string();
        assert!(e.contains("stroke 1 has width NaN"), "{e}");
        let mut scene = Scene::random(1, 2, c, 0, Device::Cpu).unwrap();
        scene.points = scene.points.shallow_clone() * f64::INFINITY;
        let e = rasterize(&scene).unwrap_err().to_string();
        assert!(e.contains("control point"), "{e}");
    }
}
