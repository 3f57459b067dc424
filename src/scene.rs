//! The drawing's parameters: stroke control points, segment counts, widths and
//! colours, with the CLIPDraw initialisation (DESIGN.md section 1) and the clamps
//! applied after every optimiser step.
//!
//! Shapes (the legend in `lib.rs`): `N` drawings (batch), `S` strokes per drawing,
//! `P` = 10 control points per stroke (p0, then 3 per cubic segment, [`MAX_SEGMENTS`]
//! segments at most), `H`×`W` pixels. Coordinates are pixels, x right and y down, (0, 0) the top-left corner of
//! the canvas; pixel (i, j) has its centre at (i + 0.5, j + 0.5).

use anyhow::{anyhow, bail, Result};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tch::{Device, Kind, Tensor};

use crate::request::MAX_IMAGE_PX;

/// Most cubic segments a stroke can have.
pub const MAX_SEGMENTS: i64 = 3;
/// Control points stored per stroke: p0 plus 3 per segment.
pub const POINTS_PER_STROKE: i64 = 1 + 3 * MAX_SEGMENTS;

/// Size of the drawing, in pixels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Canvas {
    pub width: i64,
    pub height: i64,
}

impl Canvas {
    /// A `width`×`height` canvas; both sides must be in 1..=[`MAX_IMAGE_PX`] pixels.
    pub fn new(width: i64, height: i64) -> Result<Canvas> {
        let c = Canvas { width, height };
        c.validate()?;
        Ok(c)
    }

    pub fn validate(&self) -> Result<()> {
        let sides = 1..=MAX_IMAGE_PX as i64;
        if !sides.contains(&self.width) || !sides.contains(&self.height) {
            bail!(
                "canvas is {}x{} pixels, expected each side in 1..={MAX_IMAGE_PX}",
                self.width,
                self.height
            );
        }
        Ok(())
    }
}

/// N drawings of S strokes each. Every stroke is an open path of 1–3 cubic Bézier
/// segments with round caps and joins, painted in order over white.
#[derive(Debug)]
pub struct Scene {
    pub canvas: Canvas,
    /// (N, S, 10, 2) float, pixels. Segment j of a stroke uses points 3j..=3j+3;
    /// points after the last used one hold copies of it.
    pub points: Tensor,
    /// (N, S) int64 in 1..=3: cubic segments used by each stroke.
    pub segments: Tensor,
    /// (N, S) float: stroke width in pixels.
    pub widths: Tensor,
    /// (N, S, 4) float: RGBA in [0, 1]; alpha is the stroke's opacity.
    pub colors: Tensor,
}

/// One stroke as plain values: an open path of 1–3 cubic Bézier segments.
#[derive(Clone, Debug, PartialEq)]
pub struct Stroke {
    /// p0, then 3 points per cubic segment (4, 7 or 10 points), in pixels.
    pub points: Vec<[f32; 2]>,
    pub width_px: f32,
    /// RGBA in [0, 1]; alpha is the stroke's opacity.
    pub rgba: [f32; 4],
}

impl Stroke {
    /// Cubic segments, or `None` when the point count is not 1 + 3k, k in 1..=3.
    pub fn segments(&self) -> Option<i64> {
        let n = self.points.len() as i64;
        ((n - 1) % 3 == 0 && (1..=MAX_SEGMENTS).contains(&((n - 1) / 3))).then_some((n - 1) / 3)
    }
}

/// How random strokes are drawn ([`Scene::random`], [`Scene::grown`],
/// [`Scene::random_spec`]).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct StrokeInit {
    /// Each next control point moves by `step_px · (U(0,1) − 0.5)`, per axis (x, y).
    pub step_px: [f64; 2],
    /// Stroke width drawn uniformly from this range, in pixels.
    pub width_px: (f64, f64),
    /// Cubic segments per stroke, drawn uniformly from this range (within 1..=3).
    pub segments: (i64, i64),
}

impl Scene {
    /// Builds a scene from its tensors, checking shapes, dtypes and devices.
    ///
    /// `points` (N, S, 10, 2) float, `segments` (N, S) int64, `widths` (N, S) float,
    /// `colors` (N, S, 4) float, all on one device; float tensors share one dtype
    /// (Float normally; Double is accepted for gradient checks).
    pub fn new(
        canvas: Canvas,
        points: Tensor,
        segments: Tensor,
        widths: Tensor,
        colors: Tensor,
    ) -> Result<Scene> {
        let scene = Scene { canvas, points, segments, widths, colors };
        scene.check()?;
        Ok(scene)
    }

    /// Checks the invariants [`Scene::new`] promises; returns (N, S).
    pub fn check(&self) -> Result<(i64, i64)> {
        self.canvas.validate()?;
        let (n, s) = match self.points.size().as_slice() {
            &[n, s, p, 2] if p == POINTS_PER_STROKE => (n, s),
            other => {
                bail!("scene points have shape {other:?}, expected [N, S, {POINTS_PER_STROKE}, 2]")
            }
        };
        let shapes = [
            ("segments", self.segments.size(), vec![n, s]),
            ("widths", self.widths.size(), vec![n, s]),
            ("colors", self.colors.size(), vec![n, s, 4]),
        ];
        for (name, got, want) in shapes {
            if got != want {
                bail!("scene {name} have shape {got:?}, expected {want:?} (N = {n} drawings, S = {s} strokes)");
            }
        }
        let kind = self.points.kind();
        if kind != Kind::Float && kind != Kind::Double {
            bail!("scene points have dtype {kind:?}, expected Float (or Double)");
        }
        for (name, t) in [("widths", &self.widths), ("colors", &self.colors)] {
            if t.kind() != kind {
                bail!("scene {name} have dtype {:?}, but points have {kind:?}", t.kind());
            }
        }
        if self.segments.kind() != Kind::Int64 {
            bail!("scene segments have dtype {:?}, expected Int64", self.segments.kind());
        }
        let device = self.points.device();
        for (name, t) in
            [("segments", &self.segments), ("widths", &self.widths), ("colors", &self.colors)]
        {
            if t.device() != device {
                bail!("scene {name} are on {:?}, but points are on {device:?}", t.device());
            }
        }
        Ok((n, s))
    }

    /// DESIGN.md initialisation: per stroke 1–3 segments (uniform); start point
    /// uniform on the canvas; each next control point = previous +
    /// 0.1·canvas·(U(0,1) − 0.5) per axis; width 1 px; RGBA each U(0,1).
    ///
    /// Random numbers come from `ChaCha8Rng::seed_from_u64(seed)` on the CPU, drawn
    /// drawing by drawing, stroke by stroke (segments, p0, the next points, colour),
    /// so a seed gives the same scene on every device.
    pub fn random(
        drawings: i64,
        strokes: i64,
        canvas: Canvas,
        seed: u64,
        device: Device,
    ) -> Result<Scene> {
        let (cw, ch) = (canvas.width as f64, canvas.height as f64);
        let spec = StrokeInit {
            step_px: [0.1 * cw, 0.1 * ch],
            width_px: (1.0, 1.0),
            segments: (1, MAX_SEGMENTS),
        };
        Self::random_with(drawings, strokes, canvas, seed, device, &spec)
    }

    /// A drawing as it looks after optimisation, for benchmarks: like
    /// [`Scene::random`], but each next control point moves up to ±0.15·canvas per
    /// axis and widths are uniform in 10–30 px.
    pub fn grown(
        drawings: i64,
        strokes: i64,
        canvas: Canvas,
        seed: u64,
        device: Device,
    ) -> Result<Scene> {
        let (cw, ch) = (canvas.width as f64, canvas.height as f64);
        let spec = StrokeInit {
            step_px: [0.3 * cw, 0.3 * ch],
            width_px: (10.0, 30.0),
            segments: (1, MAX_SEGMENTS),
        };
        Self::random_with(drawings, strokes, canvas, seed, device, &spec)
    }

    /// Random strokes drawn as `spec` says, in the same order as [`Scene::random`]
    /// (which is this with its DESIGN.md spec).
    pub fn random_spec(
        drawings: i64,
        strokes: i64,
        canvas: Canvas,
        seed: u64,
        device: Device,
        spec: &StrokeInit,
    ) -> Result<Scene> {
        let (lo, hi) = spec.segments;
        if !(1 <= lo && lo <= hi && hi <= MAX_SEGMENTS) {
            bail!("segments per stroke {lo}..{hi} are invalid: expected 1 <= min <= max <= {MAX_SEGMENTS}");
        }
        Self::random_with(drawings, strokes, canvas, seed, device, spec)
    }

    fn random_with(
        drawings: i64,
        strokes: i64,
        canvas: Canvas,
        seed: u64,
        device: Device,
        spec: &StrokeInit,
    ) -> Result<Scene> {
        canvas.validate()?;
        if drawings < 1 || strokes < 1 {
            bail!("a scene needs at least 1 drawing and 1 stroke, got {drawings} drawings of {strokes} strokes");
        }
        let (cw, ch) = (canvas.width as f64, canvas.height as f64);
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let all: Vec<Stroke> = (0..drawings * strokes)
            .map(|_| {
                // The same call as before the range became a setting: 1..=3 draws
                // the same numbers, so default drawings are unchanged.
                let nseg: i64 = rng.gen_range(spec.segments.0..=spec.segments.1);
                let mut x = rng.gen::<f64>() * cw;
                let mut y = rng.gen::<f64>() * ch;
                let mut points = vec![[x as f32, y as f32]];
                for _ in 0..3 * nseg {
                    x += spec.step_px[0] * (rng.gen::<f64>() - 0.5);
                    y += spec.step_px[1] * (rng.gen::<f64>() - 0.5);
                    points.push([x as f32, y as f32]);
                }
                let (lo, hi) = spec.width_px;
                let width_px = (lo + (hi - lo) * rng.gen::<f64>()) as f32;
                let rgba = [rng.gen::<f32>(), rng.gen::<f32>(), rng.gen::<f32>(), rng.gen::<f32>()];
                Stroke { points, width_px, rgba }
            })
            .collect();
        Self::from_stroke_rows(canvas, drawings, &all, device)
    }

    /// One drawing (N = 1) made of `strokes`, painted in order, on `device`.
    pub fn from_strokes(canvas: Canvas, strokes: &[Stroke], device: Device) -> Result<Scene> {
        Self::from_stroke_rows(canvas, 1, strokes, device)
    }

    /// `drawings` drawings from `strokes` laid out drawing by drawing.
    fn from_stroke_rows(
        canvas: Canvas,
        drawings: i64,
        strokes: &[Stroke],
        device: Device,
    ) -> Result<Scene> {
        let total = strokes.len() as i64;
        if drawings < 1 || total == 0 || total % drawings != 0 {
            bail!("{total} strokes cannot make {drawings} drawings of at least 1 stroke each");
        }
        let (n, s) = (drawings, total / drawings);
        let p = POINTS_PER_STROKE as usize;
        let mut points = Vec::with_capacity(strokes.len() * p * 2);
        let mut segments = Vec::with_capacity(strokes.len());
        let mut widths = Vec::with_capacity(strokes.len());
        let mut colors = Vec::with_capacity(strokes.len() * 4);
        for (k, st) in strokes.iter().enumerate() {
            let nseg = st.segments().ok_or_else(|| {
                anyhow!(
                    "stroke {k} has {} control points, expected 4, 7 or 10 (p0, then 3 per cubic segment)",
                    st.points.len()
                )
            })?;
            let last = st.points[st.points.len() - 1];
            // Unused trailing points repeat the last used one.
            for j in 0..p {
                points.extend(*st.points.get(j).unwrap_or(&last));
            }
            segments.push(nseg);
            widths.push(st.width_px);
            colors.extend(st.rgba);
        }
        let host = |v: Tensor, shape: &[i64]| -> Result<Tensor> {
            Ok(v.f_view(shape)?.f_to_device(device)?)
        };
        Scene::new(
            canvas,
            host(Tensor::from_slice(&points), &[n, s, POINTS_PER_STROKE, 2])?,
            host(Tensor::from_slice(&segments), &[n, s])?,
            host(Tensor::from_slice(&widths), &[n, s])?,
            host(Tensor::from_slice(&colors), &[n, s, 4])?,
        )
    }

    /// The strokes of drawing 0 (N must be 1), in painting order, as plain values.
    pub fn strokes(&self) -> Result<Vec<Stroke>> {
        let (n, s) = self.check()?;
        if n != 1 {
            bail!("the scene has {n} drawings; select one with Scene::select");
        }
        let host = |t: &Tensor| -> Result<Vec<f32>> {
            let t = t.f_detach()?.f_to_device(Device::Cpu)?.f_to_kind(Kind::Float)?;
            Ok(Vec::<f32>::try_from(&t.f_flatten(0, -1)?)?)
        };
        let (points, widths, colors) =
            (host(&self.points)?, host(&self.widths)?, host(&self.colors)?);
        let segments =
            Vec::<i64>::try_from(&self.segments.f_to_device(Device::Cpu)?.f_flatten(0, -1)?)?;
        let p = POINTS_PER_STROKE as usize;
        (0..s as usize)
            .map(|k| {
                let nseg = segments[k];
                if !(1..=MAX_SEGMENTS).contains(&nseg) {
                    bail!("stroke {k} has {nseg} segments, expected 1..={MAX_SEGMENTS}");
                }
                let used = 3 * nseg as usize + 1;
                let pts = &points[k * p * 2..(k * p + used) * 2];
                Ok(Stroke {
                    points: pts.chunks(2).map(|xy| [xy[0], xy[1]]).collect(),
                    width_px: widths[k],
                    rgba: [colors[4 * k], colors[4 * k + 1], colors[4 * k + 2], colors[4 * k + 3]],
                })
            })
            .collect()
    }

    /// The scene with its longer canvas side scaled to `px` pixels: points and
    /// widths scale with it, colours stay.
    pub fn scaled_to(&self, px: i64) -> Result<Scene> {
        let c = &self.canvas;
        let f = px as f64 / c.width.max(c.height) as f64;
        let canvas = Canvas::new(
            ((c.width as f64 * f).round() as i64).max(1),
            ((c.height as f64 * f).round() as i64).max(1),
        )?;
        Scene::new(
            canvas,
            self.points.f_mul_scalar(f)?,
            self.segments.shallow_clone(),
            self.widths.f_mul_scalar(f)?,
            self.colors.shallow_clone(),
        )
    }

    /// In place and outside autograd: widths to [`min_width`, `max_width`] px,
    /// colours (RGB and alpha) to [0, 1].
    pub fn clamp_(&mut self, min_width: f64, max_width: f64) -> Result<()> {
        if !(min_width.is_finite()
            && max_width.is_finite()
            && 0.0 <= min_width
            && min_width <= max_width)
        {
            bail!("width clamp range [{min_width}, {max_width}] px is invalid: expected 0 <= min <= max, both finite");
        }
        let _guard = tch::no_grad_guard();
        let _ = self.widths.f_clamp_(min_width, max_width)?;
        let _ = self.colors.f_clamp_(0.0, 1.0)?;
        Ok(())
    }

    /// Turns gradient tracking on or off for points, widths and colours (the
    /// segment counts are discrete and never learn).
    pub fn set_requires_grad(&mut self, on: bool) {
        self.points = self.points.set_requires_grad(on);
        self.widths = self.widths.set_requires_grad(on);
        self.colors = self.colors.set_requires_grad(on);
    }

    /// Drawing `drawing` alone, as an N = 1 scene: a detached copy on the same device.
    pub fn select(&self, drawing: i64) -> Result<Scene> {
        let n = self.num_drawings();
        if !(0..n).contains(&drawing) {
            bail!("drawing {drawing} does not exist: the scene has {n} drawings (0..{n})");
        }
        let one =
            |t: &Tensor| -> Result<Tensor> { Ok(t.f_narrow(0, drawing, 1)?.f_detach_copy()?) };
        Scene::new(
            self.canvas,
            one(&self.points)?,
            one(&self.segments)?,
            one(&self.widths)?,
            one(&self.colors)?,
        )
    }

    /// The drawings of `scenes` (one canvas, one stroke count) as one scene, in order.
    pub fn concat(scenes: &[Scene]) -> Result<Scene> {
        let Some(first) = scenes.first() else { bail!("no scenes to join") };
        for s in scenes {
            if s.canvas != first.canvas || s.num_strokes() != first.num_strokes() {
                bail!(
                    "scenes joined into one need one canvas and stroke count: {}×{} px with {} strokes, and {}×{} px with {}",
                    first.canvas.width, first.canvas.height, first.num_strokes(),
                    s.canvas.width, s.canvas.height, s.num_strokes()
                );
            }
        }
        let cat = |f: fn(&Scene) -> &Tensor| -> Result<Tensor> {
            let parts: Vec<&Tensor> = scenes.iter().map(f).collect();
            Ok(Tensor::f_cat(&parts, 0)?)
        };
        Scene::new(
            first.canvas,
            cat(|s| &s.points)?,
            cat(|s| &s.segments)?,
            cat(|s| &s.widths)?,
            cat(|s| &s.colors)?,
        )
    }

    pub fn num_drawings(&self) -> i64 {
        self.points.size().first().copied().unwrap_or(0)
    }

    pub fn num_strokes(&self) -> i64 {
        self.points.size().get(1).copied().unwrap_or(0)
    }

    pub fn device(&self) -> Device {
        self.points.device()
    }

    /// A detached copy on `device`.
    pub fn to_device(&self, device: Device) -> Result<Scene> {
        let mv = |t: &Tensor| -> Result<Tensor> { Ok(t.f_to_device(device)?.f_detach_copy()?) };
        Scene::new(
            self.canvas,
            mv(&self.points)?,
            mv(&self.segments)?,
            mv(&self.widths)?,
            mv(&self.colors)?,
        )
    }

    /// The scene in `kind` (Float or Double), detached; for gradient checks in f64.
    pub fn to_kind(&self, kind: Kind) -> Result<Scene> {
        let cv = |t: &Tensor| -> Result<Tensor> { Ok(t.f_to_kind(kind)?.f_detach_copy()?) };
        Scene::new(
            self.canvas,
            cv(&self.points)?,
            self.segments.f_detach_copy()?,
            cv(&self.widths)?,
            cv(&self.colors)?,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vec_f32(t: &Tensor) -> Vec<f32> {
        Vec::<f32>::try_from(t.flatten(0, -1).to_kind(Kind::Float)).unwrap()
    }

    #[test]
    fn random_is_reproducible_and_follows_the_init() {
        let canvas = Canvas::new(224, 160).unwrap();
        let a = Scene::random(2, 50, canvas, 7, Device::Cpu).unwrap();
        let b = Scene::random(2, 50, canvas, 7, Device::Cpu).unwrap();
        let c = Scene::random(2, 50, canvas, 8, Device::Cpu).unwrap();
        assert_eq!(vec_f32(&a.points), vec_f32(&b.points));
        assert_ne!(vec_f32(&a.points), vec_f32(&c.points));
        assert_eq!(a.num_drawings(), 2);
        assert_eq!(a.num_strokes(), 50);

        let segs = Vec::<i64>::try_from(a.segments.flatten(0, -1)).unwrap();
        assert!(segs.iter().all(|s| (1..=3).contains(s)));
        for k in 1..=3 {
            assert!(segs.contains(&k), "100 strokes should include {k}-segment ones");
        }
        assert!(vec_f32(&a.widths).iter().all(|&w| w == 1.0));
        assert!(vec_f32(&a.colors).iter().all(|&c| (0.0..=1.0).contains(&c)));

        let pts = vec_f32(&a.points);
        for (i, &nseg) in segs.iter().enumerate() {
            let p = &pts[i * 20..(i + 1) * 20];
            assert!((0.0..=224.0).contains(&p[0]) && (0.0..=160.0).contains(&p[1]));
            let used = 3 * nseg as usize;
            for k in 1..=used {
                // Steps are at most 0.05·canvas per axis.
                assert!((p[2 * k] - p[2 * k - 2]).abs() <= 0.05 * 224.0 + 1e-3);
                assert!((p[2 * k + 1] - p[2 * k - 1]).abs() <= 0.05 * 160.0 + 1e-3);
            }
            for k in used + 1..10 {
                assert_eq!(
                    &p[2 * k..2 * k + 2],
                    &p[2 * used..2 * used + 2],
                    "trailing points repeat the last"
                );
            }
        }
    }

    #[test]
    fn grown_has_wide_strokes() {
        let s = Scene::grown(1, 64, Canvas::new(224, 224).unwrap(), 1, Device::Cpu).unwrap();
        assert!(vec_f32(&s.widths).iter().all(|&w| (10.0..=30.0).contains(&w)));
    }

    #[test]
    fn clamp_limits_widths_and_colours() {
        let mut s = Scene::random(1, 3, Canvas::new(32, 32).unwrap(), 0, Device::Cpu).unwrap();
        s.widths = Tensor::from_slice(&[-1.0f32, 20.0, 80.0]).view([1, 3]);
        s.colors =
            Tensor::from_slice(&[-0.5f32, 0.5, 1.5, 2.0, 0.1, 0.2, 0.3, 0.4, 0., 0., 0., 0.])
                .view([1, 3, 4]);
        s.set_requires_grad(true);
        s.clamp_(1.0, 50.0).unwrap();
        assert_eq!(vec_f32(&s.widths), vec![1.0, 20.0, 50.0]);
        assert_eq!(&vec_f32(&s.colors)[..4], &[0.0, 0.5, 1.0, 1.0]);
        assert!(s.points.requires_grad() && s.widths.requires_grad() && s.colors.requires_grad());
        let e = s.clamp_(5.0, 2.0).unwrap_err().to_string();
        assert!(e.contains("[5, 2]"), "{e}");
    }

    #[test]
    fn select_and_shape_errors_name_the_problem() {
        let s = Scene::random(3, 4, Canvas::new(32, 32).unwrap(), 0, Device::Cpu).unwrap();
        let one = s.select(2).unwrap();
        assert_eq!(one.points.size(), vec![1, 4, 10, 2]);
        assert_eq!(vec_f32(&one.points), vec_f32(&s.points.narrow(0, 2, 1)));
        let e = s.select(3).unwrap_err().to_string();
        assert!(e.contains("drawing 3") && e.contains("3 drawings"), "{e}");

        let e = Scene::new(
            s.canvas,
            Tensor::zeros([1, 4, 7, 2], (Kind::Float, Device::Cpu)),
            s.segments.shallow_clone(),
            s.widths.shallow_clone(),
            s.colors.shallow_clone(),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("[1, 4, 7, 2]"), "{e}");
        let e = Scene::new(
            s.canvas,
            s.points.shallow_clone(),
            s.segments.shallow_clone(),
            Tensor::zeros([3, 5], (Kind::Float, Device::Cpu)),
            s.colors.shallow_clone(),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("widths") && e.contains("[3, 5]"), "{e}");
        assert!(Canvas::new(0, 10).unwrap_err().to_string().contains("0x10"));
    }

    #[test]
    fn strokes_round_trip_through_a_scene() {
        let canvas = Canvas::new(60, 40).unwrap();
        let scene = Scene::random(1, 20, canvas, 3, Device::Cpu).unwrap();
        let strokes = scene.strokes().unwrap();
        assert_eq!(strokes.len(), 20);
        let back = Scene::from_strokes(canvas, &strokes, Device::Cpu).unwrap();
        for (a, b) in [
            (&scene.points, &back.points),
            (&scene.widths, &back.widths),
            (&scene.colors, &back.colors),
        ] {
            assert_eq!(vec_f32(a), vec_f32(b));
        }
        assert_eq!(
            Vec::<i64>::try_from(scene.segments.flatten(0, -1)).unwrap(),
            strokes.iter().map(|s| s.segments().unwrap()).collect::<Vec<_>>()
        );
        let bad = Stroke { points: vec![[0.0, 0.0]; 5], width_px: 1.0, rgba: [0.0; 4] };
        let e = Scene::from_strokes(canvas, &[bad], Device::Cpu).unwrap_err().to_string();
        assert!(e.contains("stroke 0 has 5 control points"), "{e}");
        assert!(Scene::from_strokes(canvas, &[], Device::Cpu).is_err());
        let two = Scene::random(2, 3, canvas, 0, Device::Cpu).unwrap();
        assert!(two.strokes().unwrap_err().to_string().contains("2 drawings"));
    }

    #[test]
    fn scaled_to_scales_points_and_widths_with_the_longer_side() {
        let scene = Scene::grown(1, 4, Canvas::new(100, 50).unwrap(), 1, Device::Cpu).unwrap();
        let big = scene.scaled_to(300).unwrap();
        assert_eq!(big.canvas, Canvas::new(300, 150).unwrap());
        let (a, b) = (vec_f32(&scene.points), vec_f32(&big.points));
        assert!(a.iter().zip(&b).all(|(x, y)| (x * 3.0 - y).abs() < 1e-4));
        let (a, b) = (vec_f32(&scene.widths), vec_f32(&big.widths));
        assert!(a.iter().zip(&b).all(|(x, y)| (x * 3.0 - y).abs() < 1e-4));
        assert_eq!(vec_f32(&scene.colors), vec_f32(&big.colors));
    }
}
