//! Differentiable rasterizer: a [`Scene`]'s strokes, anti-aliased, with round caps
//! and joins, composited in order with "over" onto white.
//!
//! Shapes: `N` drawings, `S` strokes per drawing, `P` = 10 control points per
//! stroke, `H`×`W` pixels; and, built per call, `Ns` curve samples, `M` line pieces
//! (consecutive samples of one stroke), `G` fragments (a stroke's coverage of one
//! pixel), `R` covered pixels (runs of fragments).
//!
//! Two stages:
//! 1. A plan, on the host from detached values (no gradient flows through it): each
//!    cubic becomes K line pieces, K chosen so that the chords stay within
//!    [`FLATNESS_PX`] of the curve; each piece lists the pixels whose centres it
//!    can reach (an oriented rectangle around it, so pieces barely overlap); each
//!    (stroke, pixel) keeps its nearest piece; fragments are ordered by (pixel,
//!    stroke) with a counting sort. Work is proportional to the pixels the strokes
//!    cover, not to S·H·W.
//! 2. Tensor ops on the scene's device, differentiable w.r.t. points, widths and
//!    colours: sample positions from the control points, the distance from each
//!    fragment's pixel centre to its piece, the pixel's area coverage by the
//!    stroke's band (exact for a straight edge: the pixel's footprint along the
//!    edge normal is a trapezoid), alpha = coverage·opacity, and
//!    `pixel = Σ_s c_s α_s Π_{t>s}(1 − α_t) + white·Π_t(1 − α_t)` with the products
//!    taken as a cumulative sum of log(1 − α) over the sorted fragments.
//!
//! Like resvg, a stroke's opacity applies to the stroke as a whole: where a stroke
//! overlaps itself, the pixel takes the stroke's largest coverage, not the sum.

use anyhow::{bail, Context, Result};
use tch::{Device, Kind, Tensor};

use crate::scene::{Scene, POINTS_PER_STROKE};

/// Greatest distance between a cubic and its line pieces, in pixels.
pub const FLATNESS_PX: f64 = 0.05;
/// Most line pieces per cubic segment.
const MAX_PIECES_PER_SEGMENT: usize = 256;
/// Alpha is capped just below 1 so that log(1 − α) stays finite.
const MAX_ALPHA: f64 = 1.0 - 1e-6;
/// Slack added to the enumeration rectangles so that rounding never drops a pixel.
const SLACK_PX: f64 = 0.01;

/// Counts from one call, for benchmarks and tests.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RasterStats {
    /// Line pieces after flattening (`M`).
    pub pieces: usize,
    /// (piece, pixel) pairs examined on the host.
    pub candidates: usize,
    /// (stroke, pixel) fragments rendered differentiably (`G`).
    pub fragments: usize,
    /// Pixels covered by at least one stroke (`R`).
    pub covered_pixels: usize,
}

/// Renders every drawing of `scene` over an opaque white background.
///
/// Returns (N, 3, H, W) RGB in [0, 1] with the scene's float dtype, on its device,
/// differentiable w.r.t. `points`, `widths` and `colors`.
pub fn rasterize(scene: &Scene) -> Result<Tensor> {
    Ok(rasterize_with_stats(scene)?.0)
}

/// [`rasterize`], plus counts of the work done.
pub fn rasterize_with_stats(scene: &Scene) -> Result<(Tensor, RasterStats)> {
    let (n, s) = scene.check()?;
    let t0 = std::time::Instant::now();
    let host = HostScene::read(scene, n, s)?;
    let plan = Plan::build(&host);
    let t1 = std::time::Instant::now();
    let stats = RasterStats {
        pieces: plan.piece_a.len(),
        candidates: plan.candidates,
        fragments: plan.frag_piece.len(),
        covered_pixels: plan.run_start.len(),
    };
    let image = render(scene, &plan, n, s).context("rasterizer")?;
    if std::env::var_os("PROF").is_some() { eprintln!("plan {:?} render {:?}", t1 - t0, t1.elapsed()); }
    Ok((image, stats))
}

/// Detached host copy of what the plan needs.
struct HostScene {
    n: i64,
    s: i64,
    width: i64,
    height: i64,
    /// (N·S·P·2) pixels.
    points: Vec<f64>,
    /// (N·S) segment counts.
    segments: Vec<i64>,
    /// (N·S) pixels.
    widths: Vec<f64>,
}

impl HostScene {
    fn read(scene: &Scene, n: i64, s: i64) -> Result<HostScene> {
        let host = |t: &Tensor| -> Result<Vec<f64>> {
            let t = t.detach().f_to_device(Device::Cpu)?.f_to_kind(Kind::Double)?.f_flatten(0, -1)?;
            Ok(Vec::<f64>::try_from(&t)?)
        };
        let points = host(&scene.points)?;
        let widths = host(&scene.widths)?;
        let segments = Vec::<i64>::try_from(&scene.segments.f_to_device(Device::Cpu)?.f_flatten(0, -1)?)?;
        let p = POINTS_PER_STROKE as usize;
        for (g, &nseg) in segments.iter().enumerate() {
            let (d, k) = (g as i64 / s.max(1), g as i64 % s.max(1));
            if !(1..=crate::scene::MAX_SEGMENTS).contains(&nseg) {
                bail!("drawing {d} stroke {k} has {nseg} segments, expected 1..={}", crate::scene::MAX_SEGMENTS);
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
        Ok(HostScene { n, s, width: scene.canvas.width, height: scene.canvas.height, points, segments, widths })
    }
}

/// The no-grad part of a call: which samples, pieces and fragments exist, in order.
#[derive(Debug, Default)]
struct Plan {
    /// (Ns·4) rows of the (N·S·P, 2) points that each sample blends.
    sample_ctrl: Vec<i64>,
    /// (Ns·4) Bernstein weights of those rows.
    sample_weights: Vec<f32>,
    /// (M) index of each piece's first sample; its second is the next sample.
    piece_a: Vec<i64>,
    /// (G) fragments sorted by (pixel, stroke): nearest piece, stroke (n·S + s),
    /// pixel (n·H·W + y·W + x), pixel centre (x + ½, y + ½), last fragment of the
    /// same pixel.
    frag_piece: Vec<i64>,
    frag_stroke: Vec<i64>,
    frag_pixel: Vec<i64>,
    frag_center: Vec<f32>,
    frag_run_end: Vec<i64>,
    /// (R) covered pixels: first and last fragment, pixel index.
    run_start: Vec<i64>,
    run_end: Vec<i64>,
    run_pixel: Vec<i64>,
    candidates: usize,
}

fn bezier_weights(t: f64) -> [f64; 4] {
    let u = 1.0 - t;
    [u * u * u, 3.0 * u * u * t, 3.0 * u * t * t, t * t * t]
}

/// Line pieces for one cubic so that no chord strays more than [`FLATNESS_PX`]:
/// a chord over Δt deviates at most max|B''|·Δt²/8, and |B''| ≤ 6·max|Δ²P|.
fn pieces_for(c: &[[f64; 2]; 4]) -> usize {
    let dd = |a: [f64; 2], b: [f64; 2], c: [f64; 2]| (a[0] - 2.0 * b[0] + c[0]).hypot(a[1] - 2.0 * b[1] + c[1]);
    let m = dd(c[0], c[1], c[2]).max(dd(c[1], c[2], c[3]));
    let k = (0.75 * m / FLATNESS_PX).sqrt().ceil();
    if k.is_finite() {
        (k as usize).clamp(1, MAX_PIECES_PER_SEGMENT)
    } else {
        MAX_PIECES_PER_SEGMENT
    }
}

/// How far a piece's rectangle must reach past a vertex, as a fraction of the
/// stroke's reach, so that the round join's outer wedge is covered: sin of the
/// turning angle, or all of it past 90° or next to a zero-length piece.
fn join_extension(u1: Option<[f64; 2]>, u2: Option<[f64; 2]>) -> f64 {
    match (u1, u2) {
        (Some(a), Some(b)) => {
            let cos = a[0] * b[0] + a[1] * b[1];
            let sin = (a[0] * b[1] - a[1] * b[0]).abs();
            if cos <= 0.0 {
                1.0
            } else {
                sin
            }
        }
        _ => 1.0,
    }
}

/// Narrows `[lo, hi]` (in X) to where `lo_b <= c + g·X <= hi_b`.
fn slab(g: f64, c: f64, lo_b: f64, hi_b: f64, lo: &mut f64, hi: &mut f64) {
    if g.abs() < 1e-12 {
        if c < lo_b || c > hi_b {
            *lo = f64::INFINITY;
            *hi = f64::NEG_INFINITY;
        }
    } else {
        let (p, q) = ((lo_b - c) / g, (hi_b - c) / g);
        *lo = lo.max(p.min(q));
        *hi = hi.min(p.max(q));
    }
}

/// Calls `visit(x, y, d)` for each pixel whose centre lies within `reach` of the
/// segment a–b (d = that distance) and inside the segment's rectangle, which spans
/// `ext.0` before a and `ext.1` past b along the segment and ±`reach` across it.
fn for_each_pixel_near(
    a: [f64; 2],
    b: [f64; 2],
    ext: (f64, f64),
    reach: f64,
    width: i64,
    height: i64,
    mut visit: impl FnMut(i64, i64, f64),
) {
    let (dx, dy) = (b[0] - a[0], b[1] - a[1]);
    let len2 = dx * dx + dy * dy;
    let len = len2.sqrt();
    let (ux, uy) = if len > 1e-9 { (dx / len, dy / len) } else { (1.0, 0.0) };
    let (vx, vy) = (-uy, ux);
    let r = reach + SLACK_PX;
    let (lo, hi) = (-ext.0 - SLACK_PX, len + ext.1 + SLACK_PX);
    let ys = [lo * uy - r * vy, lo * uy + r * vy, hi * uy - r * vy, hi * uy + r * vy];
    let ymin = a[1] + ys.iter().cloned().fold(f64::INFINITY, f64::min);
    let ymax = a[1] + ys.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    let y0 = ((ymin - 0.5).ceil().max(0.0)) as i64;
    let y1 = ((ymax - 0.5).floor().min(height as f64 - 1.0)) as i64;
    for y in y0..=y1 {
        let py = y as f64 + 0.5 - a[1];
        let (mut xl, mut xh) = (f64::NEG_INFINITY, f64::INFINITY);
        slab(ux, py * uy, lo, hi, &mut xl, &mut xh);
        slab(vx, py * vy, -r, r, &mut xl, &mut xh);
        if xl > xh {
            continue;
        }
        let x0 = ((a[0] + xl - 0.5).ceil().max(0.0)) as i64;
        let x1 = ((a[0] + xh - 0.5).floor().min(width as f64 - 1.0)) as i64;
        for x in x0..=x1 {
            let px = x as f64 + 0.5 - a[0];
            let t = if len2 > 0.0 { ((px * dx + py * dy) / len2).clamp(0.0, 1.0) } else { 0.0 };
            let d = (px - t * dx).hypot(py - t * dy);
            if d < reach {
                visit(x, y, d);
            }
        }
    }
}

/// Half the extent of a unit pixel along a line's normal plus, for a piece in
/// direction (ux, uy): past this distance from the band, the pixel is untouched.
fn footprint_half(ux: f64, uy: f64) -> f64 {
    (ux.abs() + uy.abs()).max(std::f64::consts::SQRT_2) / 2.0
}

impl Plan {
    fn build(h: &HostScene) -> Plan {
        let (w, ht) = (h.width, h.height);
        let hw_px = (w * ht) as usize;
        let p = POINTS_PER_STROKE as usize;
        let mut plan = Plan::default();
        // Per-pixel scratch for the stroke being enumerated: `stamp` marks pixels
        // seen by this stroke (stroke id + 1, so it never needs clearing).
        let mut stamp = vec![0u32; hw_px];
        let mut best_d = vec![0f64; hw_px];
        let mut best_piece = vec![0i64; hw_px];
        let mut touched: Vec<u32> = Vec::new();
        // Fragments in generation order (stroke-major), sorted later.
        let mut gen: Vec<(u32, i64, i64)> = Vec::new(); // (stroke, piece, pixel)
        let mut pos: Vec<[f64; 2]> = Vec::new();
        let mut dirs: Vec<Option<[f64; 2]>> = Vec::new();

        for g in 0..(h.n * h.s) as usize {
            let nseg = h.segments[g] as usize;
            let ctrl = |k: usize| [h.points[(g * p + k) * 2], h.points[(g * p + k) * 2 + 1]];
            let row = |k: usize| (g * p + k) as i64;
            pos.clear();
            let first_sample = plan.sample_weights.len() / 4;
            plan.sample_ctrl.extend((0..4).map(row));
            plan.sample_weights.extend([1.0, 0.0, 0.0, 0.0]);
            pos.push(ctrl(0));
            for j in 0..nseg {
                let c = [ctrl(3 * j), ctrl(3 * j + 1), ctrl(3 * j + 2), ctrl(3 * j + 3)];
                let k = pieces_for(&c);
                for i in 1..=k {
                    let wts = bezier_weights(i as f64 / k as f64);
                    plan.sample_ctrl.extend((0..4).map(|q| row(3 * j + q)));
                    plan.sample_weights.extend(wts.map(|v| v as f32));
                    let mut q = [0.0; 2];
                    for (cp, wt) in c.iter().zip(wts) {
                        q[0] += wt * cp[0];
                        q[1] += wt * cp[1];
                    }
                    pos.push(q);
                }
            }
            let npieces = pos.len() - 1;
            let first_piece = plan.piece_a.len() as i64;
            plan.piece_a.extend((0..npieces).map(|i| (first_sample + i) as i64));
            dirs.clear();
            dirs.extend(pos.windows(2).map(|ab| {
                let (dx, dy) = (ab[1][0] - ab[0][0], ab[1][1] - ab[0][1]);
                let len = dx.hypot(dy);
                (len > 1e-9).then(|| [dx / len, dy / len])
            }));

            let half_w = h.widths[g] / 2.0;
            let stamp_id = g as u32 + 1;
            touched.clear();
            for i in 0..npieces {
                let (ux, uy) = dirs[i].map_or((1.0, 0.0), |u| (u[0], u[1]));
                let reach = half_w + footprint_half(ux, uy);
                let ext_a = if i == 0 { 1.0 } else { join_extension(dirs[i - 1], dirs[i]) };
                let ext_b = if i + 1 == npieces { 1.0 } else { join_extension(dirs[i], dirs[i + 1]) };
                let piece = first_piece + i as i64;
                let ext = (ext_a * reach, ext_b * reach);
                for_each_pixel_near(pos[i], pos[i + 1], ext, reach, w, ht, |x, y, d| {
                    plan.candidates += 1;
                    let q = (y * w + x) as usize;
                    if stamp[q] != stamp_id {
                        stamp[q] = stamp_id;
                        best_d[q] = d;
                        best_piece[q] = piece;
                        touched.push(q as u32);
                    } else if d < best_d[q] {
                        best_d[q] = d;
                        best_piece[q] = piece;
                    }
                });
            }
            let drawing_base = (g as i64 / h.s) * w * ht;
            gen.extend(touched.iter().map(|&q| (g as u32, best_piece[q as usize], drawing_base + q as i64)));
        }

        // Counting sort by pixel; generation is stroke-major, so each pixel's
        // fragments stay in stroke (painting) order.
        let npix = (h.n * w * ht) as usize;
        let mut offset = vec![0usize; npix + 1];
        for &(_, _, q) in &gen {
            offset[q as usize + 1] += 1;
        }
        for i in 0..npix {
            offset[i + 1] += offset[i];
        }
        let nfrag = gen.len();
        plan.frag_piece = vec![0; nfrag];
        plan.frag_stroke = vec![0; nfrag];
        plan.frag_pixel = vec![0; nfrag];
        plan.frag_center = vec![0.0; 2 * nfrag];
        plan.frag_run_end = vec![0; nfrag];
        let mut next = offset.clone();
        for &(g, piece, q) in &gen {
            let at = next[q as usize];
            next[q as usize] += 1;
            plan.frag_piece[at] = piece;
            plan.frag_stroke[at] = g as i64;
            plan.frag_pixel[at] = q;
            let local = q % (w * ht);
            plan.frag_center[2 * at] = (local % w) as f32 + 0.5;
            plan.frag_center[2 * at + 1] = (local / w) as f32 + 0.5;
        }
        for q in 0..npix {
            let (a, b) = (offset[q], offset[q + 1]);
            if a < b {
                plan.run_start.push(a as i64);
                plan.run_end.push(b as i64 - 1);
                plan.run_pixel.push(q as i64);
                plan.frag_run_end[a..b].fill(b as i64 - 1);
            }
        }
        plan
    }
}

/// The differentiable stage: (N, 3, H, W) from the scene's tensors and the plan.
fn render(scene: &Scene, plan: &Plan, n: i64, s: i64) -> Result<Tensor> {
    let dev = scene.device();
    let kind = scene.points.kind();
    let (h, w) = (scene.canvas.height, scene.canvas.width);
    let ints = |v: &[i64]| -> Result<Tensor> { Ok(Tensor::from_slice(v).f_to_device(dev)?) };
    let floats = |v: &[f32]| -> Result<Tensor> { Ok(Tensor::from_slice(v).f_to_device(dev)?.f_to_kind(kind)?) };
    let npix = n * h * w;
    let g = plan.frag_piece.len() as i64;
    let white = Tensor::f_ones([n, 3, h, w], (kind, dev))?;
    if g == 0 {
        // Nothing covers any pixel; keep the graph so callers can still backward.
        let zero = scene.points.f_sum(kind)?.f_mul_scalar(0.0)?;
        let zero = zero.f_add(&scene.widths.f_sum(kind)?.f_mul_scalar(0.0)?)?;
        let zero = zero.f_add(&scene.colors.f_sum(kind)?.f_mul_scalar(0.0)?)?;
        return Ok(white.f_add(&zero)?);
    }

    // Samples and pieces.
    let ns = (plan.sample_weights.len() / 4) as i64;
    let pts = scene.points.f_reshape([n * s * POINTS_PER_STROKE, 2])?; // (N·S·P, 2)
    let ctrl = pts.f_index_select(0, &ints(&plan.sample_ctrl)?)?.f_view([ns, 4, 2])?; // (Ns, 4, 2)
    let wts = floats(&plan.sample_weights)?.f_view([ns, 4, 1])?; // (Ns, 4, 1)
    let samples = ctrl.f_mul(&wts)?.f_sum_dim_intlist(1, false, kind)?; // (Ns, 2)
    let piece_a = ints(&plan.piece_a)?;
    let a = samples.f_index_select(0, &piece_a)?; // (M, 2)
    let b = samples.f_index_select(0, &piece_a.f_add_scalar(1)?)?; // (M, 2)
    let ab = b.f_sub(&a)?; // (M, 2)
    let len2 = ab.f_square()?.f_sum_dim_intlist(-1, true, kind)?; // (M, 1)
    let inv_len2 = len2.f_clamp_min(1e-12)?.f_reciprocal()?; // (M, 1)
    // The pixel's footprint along the piece's normal is a trapezoid: boxes of
    // widths `fa` ≥ `fb` (the normal's |components|) convolved.
    let dir = ab.f_div(&len2.f_add_scalar(1e-12)?.f_sqrt()?)?.f_abs()?; // (M, 2)
    let (d0, d1) = (dir.f_narrow(1, 0, 1)?, dir.f_narrow(1, 1, 1)?); // (M, 1) each
    let fa = d0.f_maximum(&d1)?.f_clamp_min(std::f64::consts::FRAC_1_SQRT_2 - 1e-4)?; // (M, 1)
    let fb = d0.f_minimum(&d1)?.f_clamp_min(1e-5)?; // (M, 1)
    let h1 = fa.f_sub(&fb)?.f_mul_scalar(0.5)?;
    let h2 = fa.f_add(&fb)?.f_mul_scalar(0.5)?;
    let inv_a = fa.f_reciprocal()?;
    let inv_2ab = fa.f_mul(&fb)?.f_mul_scalar(2.0)?.f_reciprocal()?;
    let piece_table = Tensor::f_cat(&[&a, &ab, &inv_len2, &h1, &h2, &inv_a, &inv_2ab], 1)?; // (M, 9)
    let stroke_table = Tensor::f_cat(
        &[&scene.widths.f_reshape([n * s, 1])?.f_mul_scalar(0.5)?, &scene.colors.f_reshape([n * s, 4])?],
        1,
    )?; // (N·S, 5): half width, RGBA

    // Fragments: distance to the piece and coverage.
    let fp = piece_table.f_index_select(0, &ints(&plan.frag_piece)?)?; // (G, 9)
    let fs = stroke_table.f_index_select(0, &ints(&plan.frag_stroke)?)?; // (G, 5)
    let col = |t: &Tensor, i: i64| t.f_select(1, i);
    let center = floats(&plan.frag_center)?.f_view([g, 2])?; // (G, 2)
    let ap = center.f_sub(&fp.f_narrow(1, 0, 2)?)?; // (G, 2)
    let abf = fp.f_narrow(1, 2, 2)?; // (G, 2)
    let t = ap.f_mul(&abf)?.f_sum_dim_intlist(-1, false, kind)?.f_mul(&col(&fp, 4)?)?.f_clamp(0.0, 1.0)?; // (G)
    let off = ap.f_sub(&abf.f_mul(&t.f_unsqueeze(-1)?)?)?; // (G, 2)
    let dist = off.f_square()?.f_sum_dim_intlist(-1, false, kind)?.f_add_scalar(1e-12)?.f_sqrt()?; // (G)
    let (h1, h2, inv_a, inv_2ab) = (col(&fp, 5)?, col(&fp, 6)?, col(&fp, 7)?, col(&fp, 8)?);
    // Pixel mass within `z` ≥ 0 of the footprint's centre on one side, minus ½:
    // linear on the plateau, quadratic on the trapezoid's slopes.
    let half_mass = |z: &Tensor| -> Result<Tensor> {
        let z = z.f_minimum(&h2)?;
        let slope = z.f_sub(&h1)?.f_relu()?.f_square()?.f_mul(&inv_2ab)?;
        Ok(z.f_mul(&inv_a)?.f_sub(&slope)?)
    };
    // Coverage of the band [−w/2, w/2] by a pixel whose centre is `dist` off it.
    let half_w = col(&fs, 0)?;
    let outer = half_mass(&half_w.f_add(&dist)?)?;
    let inner = half_w.f_sub(&dist)?;
    let inner = half_mass(&inner.f_abs()?)?.f_mul(&inner.f_sign()?)?;
    let coverage = outer.f_add(&inner)?; // (G)
    let alpha = coverage.f_mul(&col(&fs, 4)?)?.f_clamp(0.0, MAX_ALPHA)?; // (G)

    // Compositing: transmittance above each fragment from a cumulative sum of
    // log(1 − α) in f64 (in f32 the running sum over all pixels would lose digits).
    let log_t = alpha.f_neg()?.f_log1p()?.f_to_kind(Kind::Double)?; // (G)
    let cum = log_t.f_cumsum(0, Kind::Double)?; // (G)
    let cum_end = cum.f_index_select(0, &ints(&plan.frag_run_end)?)?; // (G)
    let above = cum_end.f_sub(&cum)?.f_exp()?.f_to_kind(kind)?; // (G)
    let weight = alpha.f_mul(&above)?; // (G)
    let rgb = fs.f_narrow(1, 1, 3)?.f_mul(&weight.f_unsqueeze(-1)?)?; // (G, 3)
    let paint = Tensor::f_zeros([npix, 3], (kind, dev))?.f_index_add(0, &ints(&plan.frag_pixel)?, &rgb)?; // (N·H·W, 3)

    let run_start = ints(&plan.run_start)?;
    let run_end = ints(&plan.run_end)?;
    let before = cum.f_index_select(0, &run_start)?.f_sub(&log_t.f_index_select(0, &run_start)?)?; // (R)
    let through = cum.f_index_select(0, &run_end)?.f_sub(&before)?.f_exp()?.f_to_kind(kind)?; // (R)
    let white_loss = Tensor::f_zeros([npix], (kind, dev))?.f_index_add(
        0,
        &ints(&plan.run_pixel)?,
        &through.f_sub_scalar(1.0)?,
    )?; // (N·H·W)
    let image = paint.f_add(&white_loss.f_add_scalar(1.0)?.f_unsqueeze(-1)?)?; // (N·H·W, 3)
    Ok(image.f_view([n, h, w, 3])?.f_permute([0, 3, 1, 2])?.f_contiguous()?) // (N, 3, H, W)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scene::Canvas;

    fn pixels(t: &Tensor) -> Vec<f64> {
        Vec::<f64>::try_from(t.detach().to_kind(Kind::Double).flatten(0, -1)).unwrap()
    }

    /// One stroke per entry: (control points used, width, RGBA).
    fn scene_of(canvas: Canvas, strokes: &[(&[[f64; 2]], f64, [f64; 4])], kind: Kind) -> Scene {
        let s = strokes.len() as i64;
        let mut pts = Vec::new();
        let mut segs = Vec::new();
        let mut widths = Vec::new();
        let mut colors: Vec<f64> = Vec::new();
        for (cp, w, c) in strokes {
            assert!(cp.len() % 3 == 1 && cp.len() <= 10);
            for k in 0..10 {
                let q = cp[k.min(cp.len() - 1)];
                pts.extend(q);
            }
            segs.push((cp.len() / 3) as i64);
            widths.push(*w);
            colors.extend(c);
        }
        Scene::new(
            canvas,
            Tensor::from_slice(&pts).view([1, s, 10, 2]).to_kind(kind),
            Tensor::from_slice(&segs).view([1, s]),
            Tensor::from_slice(&widths).view([1, s]).to_kind(kind),
            Tensor::from_slice(&colors).view([1, s, 4]).to_kind(kind),
        )
        .unwrap()
    }

    fn line(x0: f64, y0: f64, x1: f64, y1: f64) -> [[f64; 2]; 4] {
        let l = |t: f64| [x0 + t * (x1 - x0), y0 + t * (y1 - y0)];
        [l(0.0), l(1.0 / 3.0), l(2.0 / 3.0), l(1.0)]
    }

    #[test]
    fn opaque_horizontal_stroke_covers_its_band_exactly() {
        let c = Canvas::new(20, 12).unwrap();
        let seg = line(3.0, 6.0, 15.0, 6.0);
        let scene = scene_of(c, &[(&seg, 4.0, [1.0, 0.0, 0.0, 1.0])], Kind::Double);
        let img = pixels(&rasterize(&scene).unwrap()); // (1, 3, 12, 20)
        let at = |ch: usize, y: usize, x: usize| img[ch * 240 + y * 20 + x];
        // Rows 4..=7 lie inside the band y ∈ [4, 8]; rows 3 and 8 outside.
        for x in 3..15 {
            for y in 4..8 {
                assert!((at(0, y, x) - 1.0).abs() < 1e-6 && at(1, y, x) < 1e-5, "({x},{y}): {} {}", at(0, y, x), at(1, y, x));
            }
            assert!((at(1, 3, x) - 1.0).abs() < 1e-5 && (at(1, 8, x) - 1.0).abs() < 1e-5, "{x}: {} {}", at(1, 3, x), at(1, 8, x));
        }
        // Round cap: a disc of radius 2 around (3, 6) and nothing beyond.
        assert!(at(1, 5, 1) < 0.2 && (at(1, 0, 0) - 1.0).abs() < 1e-9);
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

    #[test]
    fn a_stroke_over_itself_is_not_darker_and_order_matters() {
        let c = Canvas::new(24, 24).unwrap();
        // Out along y = 12 and back: the stroke covers its band twice.
        let cp = [[4.0, 12.0], [10.0, 12.0], [14.0, 12.0], [20.0, 12.0], [14.0, 12.0], [10.0, 12.0], [4.0, 12.0]];
        let half = scene_of(c, &[(&cp, 4.0, [0.0, 0.0, 0.0, 0.5])], Kind::Double);
        let img = pixels(&rasterize(&half).unwrap());
        assert!((img[12 * 24 + 12] - 0.5).abs() < 1e-6, "got {}", img[12 * 24 + 12]);

        let red = line(2.0, 12.0, 22.0, 12.0);
        let blue = line(12.0, 2.0, 12.0, 22.0);
        let rb = scene_of(c, &[(&red, 6.0, [1.0, 0.0, 0.0, 1.0]), (&blue, 6.0, [0.0, 0.0, 1.0, 0.5])], Kind::Double);
        let img = pixels(&rasterize(&rb).unwrap());
        let px = |ch: usize| img[ch * 576 + 12 * 24 + 12];
        // Blue at half opacity over opaque red.
        assert!((px(0) - 0.5).abs() < 1e-5 && px(1).abs() < 1e-5 && (px(2) - 0.5).abs() < 1e-5);
    }

    #[test]
    fn batches_render_like_single_drawings() {
        let c = Canvas::new(40, 30).unwrap();
        let scene = Scene::grown(3, 6, c, 5, Device::Cpu).unwrap();
        let all = rasterize(&scene).unwrap();
        assert_eq!(all.size(), vec![3, 3, 30, 40]);
        for d in 0..3 {
            let one = rasterize(&scene.select(d).unwrap()).unwrap();
            let diff = (all.narrow(0, d, 1) - one).abs().max().double_value(&[]);
            assert!(diff < 1e-6, "drawing {d} differs by {diff}");
        }
    }

    #[test]
    fn enumeration_finds_every_pixel_within_reach() {
        // Against brute force: every pixel × every piece of every stroke.
        for seed in 0..6 {
            let c = Canvas::new(48, 40).unwrap();
            let mut scene = if seed % 2 == 0 {
                Scene::grown(1, 8, c, seed, Device::Cpu).unwrap()
            } else {
                Scene::random(1, 8, c, seed, Device::Cpu).unwrap()
            };
            if seed == 3 {
                scene.widths = scene.widths.shallow_clone() * 0.3;
            }
            let host = HostScene::read(&scene, 1, 8).unwrap();
            let plan = Plan::build(&host);
            let got: std::collections::HashSet<(i64, i64)> =
                plan.frag_stroke.iter().zip(&plan.frag_pixel).map(|(&s, &q)| (s, q)).collect();
            assert_eq!(got.len(), plan.frag_stroke.len(), "duplicate fragments");
            // Sample positions as the plan computed them.
            let pos: Vec<[f64; 2]> = plan
                .sample_ctrl
                .chunks(4)
                .zip(plan.sample_weights.chunks(4))
                .map(|(rows, wts)| {
                    let mut q = [0.0; 2];
                    for (&r, &wt) in rows.iter().zip(wts) {
                        q[0] += wt as f64 * host.points[2 * r as usize];
                        q[1] += wt as f64 * host.points[2 * r as usize + 1];
                    }
                    q
                })
                .collect();
            for (m, &ia) in plan.piece_a.iter().enumerate() {
                let (a, b) = (pos[ia as usize], pos[ia as usize + 1]);
                let stroke = plan.sample_ctrl[4 * ia as usize] / 10;
                let (dx, dy) = (b[0] - a[0], b[1] - a[1]);
                let len = dx.hypot(dy);
                let (ux, uy) = if len > 1e-9 { (dx / len, dy / len) } else { (1.0, 0.0) };
                let reach = host.widths[stroke as usize] / 2.0 + footprint_half(ux, uy);
                for y in 0..40 {
                    for x in 0..48 {
                        let (px, py) = (x as f64 + 0.5 - a[0], y as f64 + 0.5 - a[1]);
                        let t = if len > 0.0 { ((px * dx + py * dy) / (len * len)).clamp(0.0, 1.0) } else { 0.0 };
                        let d = (px - t * dx).hypot(py - t * dy);
                        if d < reach - 1e-6 {
                            assert!(
                                got.contains(&(stroke, y * 48 + x)),
                                "seed {seed}: piece {m} of stroke {stroke} reaches pixel ({x}, {y}) at {d:.3} < {reach:.3}, not enumerated"
                            );
                        }
                    }
                }
            }
        }
    }

    /// Σ image·weights, the scalar the gradient checks differentiate.
    fn loss(scene: &Scene, weights: &Tensor) -> Tensor {
        (rasterize(scene).unwrap() * weights).sum(Kind::Double)
    }

    #[test]
    fn gradients_match_finite_differences() {
        let c = Canvas::new(20, 16).unwrap();
        let mut worst = 0.0f64;
        for seed in 0..3u64 {
            let base = if seed == 0 { Scene::random(1, 3, c, 11, Device::Cpu) } else { Scene::grown(1, 3, c, seed, Device::Cpu) };
            let mut scene = base.unwrap().to_kind(Kind::Double).unwrap();
            if seed == 0 {
                // Init strokes are 1 px; make one thin (0.6 px) and one 3 px.
                scene.widths = Tensor::from_slice(&[1.0f64, 0.6, 3.0]).view([1, 3]);
            } else {
                scene.widths = scene.widths.shallow_clone() * 0.3;
            }
            scene.colors = scene.colors.shallow_clone().clamp(0.2, 0.9);
            let weights = Tensor::randn([1, 3, 16, 20], (Kind::Double, Device::Cpu));
            scene.set_requires_grad(true);
            let l = loss(&scene, &weights);
            l.backward();
            for (name, param) in [("points", &scene.points), ("widths", &scene.widths), ("colors", &scene.colors)] {
                let grad = pixels(&param.grad());
                let flat = pixels(param);
                let mut fd = vec![0.0; flat.len()];
                let eps = 1e-5;
                for i in 0..flat.len() {
                    let eval = |delta: f64| {
                        let mut v = flat.clone();
                        v[i] += delta;
                        let t = Tensor::from_slice(&v).view(param.size().as_slice());
                        let s2 = Scene {
                            canvas: c,
                            points: if name == "points" { t.shallow_clone() } else { scene.points.detach() },
                            segments: scene.segments.shallow_clone(),
                            widths: if name == "widths" { t.shallow_clone() } else { scene.widths.detach() },
                            colors: if name == "colors" { t.shallow_clone() } else { scene.colors.detach() },
                        };
                        loss(&s2, &weights).double_value(&[])
                    };
                    fd[i] = (eval(eps) - eval(-eps)) / (2.0 * eps);
                }
                let norm = fd.iter().map(|v| v * v).sum::<f64>().sqrt().max(1e-9);
                let err = grad.iter().zip(&fd).map(|(a, b)| (a - b).powi(2)).sum::<f64>().sqrt() / norm;
                worst = worst.max(err);
                assert!(err < 1e-4, "seed {seed}: {name} gradient off by {err:.2e} (relative L2)");
            }
        }
        eprintln!("gradient check: worst relative L2 error {worst:.2e}");
    }

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

    #[test]
    fn strokes_off_canvas_leave_it_white_and_differentiable() {
        let c = Canvas::new(8, 8).unwrap();
        let seg = line(-50.0, -50.0, -40.0, -45.0);
        let mut scene = scene_of(c, &[(&seg, 2.0, [0.0, 0.0, 0.0, 1.0])], Kind::Float);
        scene.set_requires_grad(true);
        let img = rasterize(&scene).unwrap();
        assert!(pixels(&img).iter().all(|&v| v == 1.0));
        img.sum(Kind::Float).backward();
        assert!(pixels(&scene.points.grad()).iter().all(|&v| v == 0.0));
    }
}
