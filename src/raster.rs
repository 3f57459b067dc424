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
//!    cover, not to S·H·W; strokes are split into ranges planned on parallel
//!    threads, merged in stroke order.
//! 2. Tensor ops on the scene's device, differentiable w.r.t. points, widths and
//!    colours: curve samples from the control points; for fragments near a stroke's
//!    edge, the distance from the pixel centre to the nearest piece and the pixel's
//!    coverage by the stroke's band (fragments deep inside have coverage 1 and skip
//!    this); alpha = coverage·opacity; and
//!    `pixel = Σ_s c_s α_s Π_{t>s}(1 − α_t) + white·Π_t(1 − α_t)`, the products taken
//!    as a cumulative sum of log(1 − α) over the sorted fragments; with white = 1
//!    this is `1 + Σ_s (c_s − 1) α_s Π_{t>s}(1 − α_t)`, one scatter per channel.
//!
//! Distance: the plan fixes each edge fragment's foot parameter t on its piece A–B
//! and the unit direction r̂ from the foot point Q to the pixel centre p; the device
//! computes d = (p − Q)·r̂, which equals |p − Q| and has the same first derivatives
//! (t is optimal, and r̂ only turns perpendicular to p − Q), so gradients are exact.
//!
//! Coverage: a pixel is a fixed trapezoid footprint across the edge (boxes of
//! [`FOOTPRINT_A`] and [`FOOTPRINT_B`] px convolved), within 0.027 of the exact area
//! coverage of a unit square by a straight edge at any angle. Being isotropic, it
//! depends on the distance alone, which keeps the gradient simple and exact.
//!
//! Like resvg, a stroke's opacity applies to the stroke as a whole: where a stroke
//! overlaps itself, the pixel takes the stroke's largest coverage, not the sum.

use std::sync::Mutex;

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
/// Pixel footprint across an edge: boxes of these widths (px) convolved. Chosen to
/// minimise the largest error against exact area coverage over all edge angles
/// (0° is a box of 1, 45° boxes of √½ each).
pub const FOOTPRINT_A: f64 = 0.92;
pub const FOOTPRINT_B: f64 = 0.33;
/// Half the footprint's support: a pixel centre this far outside the band is
/// untouched; this far inside, fully covered.
const FOOTPRINT_HALF: f64 = (FOOTPRINT_A + FOOTPRINT_B) / 2.0;
/// Margin keeping "fully covered" fragments clear of the edge despite f32 rounding.
const FULL_MARGIN_PX: f64 = 1e-3;

/// Counts from one call, for benchmarks and tests.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RasterStats {
    /// Line pieces after flattening (`M`).
    pub pieces: usize,
    /// (piece, pixel) pairs examined on the host.
    pub candidates: usize,
    /// (stroke, pixel) fragments composited (`G`).
    pub fragments: usize,
    /// Fragments near a stroke's edge, whose coverage is computed (`E`).
    pub edge_fragments: usize,
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
    let host = HostScene::read(scene, n, s)?;
    let plan = Plan::build(&host)?;
    let stats = RasterStats {
        pieces: plan.pieces,
        candidates: plan.candidates,
        fragments: plan.fragments,
        edge_fragments: plan.edge_pos.len(),
        covered_pixels: plan.covered_pixels,
    };
    let image = render(scene, &plan, n, s).context("rasterizer")?;
    Ok((image, stats))
}

/// The host stage alone (reading the scene and building the plan), for benchmarks
/// that split the cost between host and device.
#[doc(hidden)]
pub fn plan_stats(scene: &Scene) -> Result<RasterStats> {
    let (n, s) = scene.check()?;
    let host = HostScene::read(scene, n, s)?;
    let plan = Plan::build(&host)?;
    Ok(RasterStats {
        pieces: plan.pieces,
        candidates: plan.candidates,
        fragments: plan.fragments,
        edge_fragments: plan.edge_pos.len(),
        covered_pixels: plan.covered_pixels,
    })
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
            let t =
                t.detach().f_to_device(Device::Cpu)?.f_to_kind(Kind::Double)?.f_flatten(0, -1)?;
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
            if !(1..=crate::scene::MAX_SEGMENTS).contains(&nseg) {
                bail!(
                    "drawing {d} stroke {k} has {nseg} segments, expected 1..={}",
                    crate::scene::MAX_SEGMENTS
                );
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

/// The no-grad part of a call: which samples and fragments exist, in order.
#[derive(Debug)]
struct Plan {
    /// (Ns·4) rows of the (N·S·P, 2) points that each sample blends.
    sample_ctrl: Vec<i64>,
    /// (Ns·4) Bernstein weights of those rows.
    sample_weights: Vec<f64>,
    /// (G) fragments sorted by (pixel, stroke), host tensors written in place:
    /// stroke (n·S + s) int64, pixel (n·H·W + y·W + x) int64, last fragment of
    /// the same pixel int32. (scatter_add wants int64; so does index_select on a
    /// 2-D tensor, whose backward with int32 indices takes a slow path, ≈15× here.)
    frag_stroke: Tensor,
    frag_pixel: Tensor,
    frag_run_end: Tensor,
    /// `G`.
    fragments: usize,
    /// (E) edge fragments: position among the G, stroke, first sample of the
    /// nearest piece (the second is the next sample).
    edge_pos: Vec<i64>,
    edge_stroke: Vec<i64>,
    edge_sample: Vec<i64>,
    /// (E·4) d = `edge_cp` − [A, B]·`edge_coef`, i.e. coef = [(1−t)r̂, t·r̂].
    edge_coef: Vec<f64>,
    /// (E) p·r̂.
    edge_cp: Vec<f64>,
    /// Whether some stroke is thinner than the footprint, so that coverage must
    /// account for both edges of its band.
    has_thin: bool,
    pieces: usize,
    candidates: usize,
    /// Pixels covered by at least one fragment (`R`).
    covered_pixels: usize,
}

/// One worker's share of the plan: the samples, fragments and edge fragments of a
/// range of strokes, in stroke order; sample and edge indices local to the part.
#[derive(Debug, Default)]
struct Part {
    sample_ctrl: Vec<i64>,
    sample_weights: Vec<f64>,
    /// Fragments in generation order (stroke-major): stroke, pixel (n·H·W + y·W +
    /// x), and the part's edge index or u32::MAX for fully covered ones.
    gen: Vec<(u32, u32, u32)>,
    edge_stroke: Vec<i64>,
    edge_sample: Vec<i64>,
    edge_coef: Vec<f64>,
    edge_cp: Vec<f64>,
    has_thin: bool,
    pieces: usize,
    candidates: usize,
}

fn bezier_weights(t: f64) -> [f64; 4] {
    let u = 1.0 - t;
    [u * u * u, 3.0 * u * u * t, 3.0 * u * t * t, t * t * t]
}

/// Line pieces for one cubic so that no chord strays more than [`FLATNESS_PX`]:
/// a chord over Δt deviates at most max|B''|·Δt²/8, and |B''| ≤ 6·max|Δ²P|.
fn pieces_for(c: &[[f64; 2]; 4]) -> usize {
    let dd = |a: [f64; 2], b: [f64; 2], c: [f64; 2]| {
        (a[0] - 2.0 * b[0] + c[0]).hypot(a[1] - 2.0 * b[1] + c[1])
    };
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

/// Foot parameter t ∈ [0, 1] of `p` on the segment a–b, and the distance.
fn project(p: [f64; 2], a: [f64; 2], b: [f64; 2]) -> (f64, f64) {
    let (dx, dy) = (b[0] - a[0], b[1] - a[1]);
    let (px, py) = (p[0] - a[0], p[1] - a[1]);
    let len2 = dx * dx + dy * dy;
    let t = if len2 > 0.0 { ((px * dx + py * dy) / len2).clamp(0.0, 1.0) } else { 0.0 };
    let (ex, ey) = (px - t * dx, py - t * dy);
    (t, (ex * ex + ey * ey).sqrt())
}

/// ⌈v⌉ clamped to `lo..=hi`, without a libm call (`f64::ceil` is one on baseline
/// x86-64).
fn ceil_in(v: f64, lo: i64, hi: i64) -> i64 {
    let v = v.clamp(lo as f64 - 1.0, hi as f64 + 1.0);
    let i = v as i64; // truncates towards zero
    (if (i as f64) < v { i + 1 } else { i }).clamp(lo, hi)
}

/// ⌊v⌋ clamped to `lo..=hi` (an empty range when `hi` < `lo` stays empty).
fn floor_in(v: f64, lo: i64, hi: i64) -> i64 {
    let v = v.clamp(lo as f64 - 1.0, hi as f64 + 1.0);
    let i = v as i64;
    if (i as f64) > v { i - 1 } else { i }.min(hi)
}

/// Calls `visit(x, y, d²)` for each pixel whose centre lies within `reach` of the
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
    // Below this length the foot is a (t = 0), off by under 1e-9 px.
    let inv_len2 = if len > 1e-9 { 1.0 / len2 } else { 0.0 };
    let reach2 = reach * reach;
    let (vx, vy) = (-uy, ux);
    let r = reach + SLACK_PX;
    let (lo, hi) = (-ext.0 - SLACK_PX, len + ext.1 + SLACK_PX);
    let ys = [lo * uy - r * vy, lo * uy + r * vy, hi * uy - r * vy, hi * uy + r * vy];
    let ymin = a[1] + ys.iter().cloned().fold(f64::INFINITY, f64::min);
    let ymax = a[1] + ys.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    let y0 = ceil_in(ymin - 0.5, 0, height - 1);
    let y1 = floor_in(ymax - 0.5, -1, height - 1);
    for y in y0..=y1 {
        let py = y as f64 + 0.5 - a[1];
        let (mut xl, mut xh) = (f64::NEG_INFINITY, f64::INFINITY);
        slab(ux, py * uy, lo, hi, &mut xl, &mut xh);
        slab(vx, py * vy, -r, r, &mut xl, &mut xh);
        if xl > xh {
            continue;
        }
        let x0 = ceil_in(a[0] + xl - 0.5, 0, width - 1);
        let x1 = floor_in(a[0] + xh - 0.5, -1, width - 1);
        let pyd = py * dy;
        for x in x0..=x1 {
            let px = x as f64 + 0.5 - a[0];
            let t = ((px * dx + pyd) * inv_len2).clamp(0.0, 1.0);
            let (ex, ey) = (px - t * dx, py - t * dy);
            let d2 = ex * ex + ey * ey;
            if d2 < reach2 {
                visit(x, y, d2);
            }
        }
    }
}

/// Per-pixel scratch for one worker, reused across its strokes: `stamp` marks the
/// pixels seen by the stroke being enumerated (stroke id + 1, so it never needs
/// clearing), with their nearest piece and squared distance to it.
struct Scratch {
    stamp: Vec<u32>,
    best_d2: Vec<f64>,
    best_piece: Vec<u32>,
    touched: Vec<u32>,
    pos: Vec<[f64; 2]>,
    dirs: Vec<Option<[f64; 2]>>,
}

/// Host buffers kept between calls: on these machines a fresh page costs more
/// than the work done in it. At most [`MAX_PLAN_THREADS`] of each are kept.
static SCRATCH_POOL: Mutex<Vec<Scratch>> = Mutex::new(Vec::new());
static GEN_POOL: Mutex<Vec<Vec<(u32, u32, u32)>>> = Mutex::new(Vec::new());

fn pooled<T>(pool: &Mutex<Vec<T>>) -> Option<T> {
    pool.lock().ok()?.pop()
}

fn pool<T>(pool: &Mutex<Vec<T>>, item: T) {
    if let Ok(mut p) = pool.lock() {
        if p.len() < MAX_PLAN_THREADS {
            p.push(item);
        }
    }
}

impl Scratch {
    /// A cleared scratch for `hw_px` pixels, from the pool when one is there.
    fn take(hw_px: usize) -> Scratch {
        let mut sc = pooled(&SCRATCH_POOL).unwrap_or_else(|| Scratch {
            stamp: Vec::new(),
            best_d2: Vec::new(),
            best_piece: Vec::new(),
            touched: Vec::new(),
            pos: Vec::new(),
            dirs: Vec::new(),
        });
        sc.stamp.clear();
        sc.stamp.resize(hw_px, 0);
        sc.best_d2.resize(hw_px, 0.0);
        sc.best_piece.resize(hw_px, 0);
        sc
    }
}

/// Rough cost of enumerating a stroke, in pixels: its control polygon's length
/// plus its caps, times its reach on both sides.
fn stroke_cost(h: &HostScene, g: usize) -> f64 {
    let p = POINTS_PER_STROKE as usize;
    let nseg = h.segments[g].clamp(1, crate::scene::MAX_SEGMENTS) as usize;
    let pt = |k: usize| [h.points[(g * p + k) * 2], h.points[(g * p + k) * 2 + 1]];
    let len: f64 =
        (0..3 * nseg).map(|k| (pt(k + 1)[0] - pt(k)[0]).hypot(pt(k + 1)[1] - pt(k)[1])).sum();
    let reach = h.widths[g] / 2.0 + FOOTPRINT_HALF;
    (len + 2.0 * reach).min(1e7) * 2.0 * reach + 8.0
}

/// Plans strokes `strokes` (global stroke ids n·S + s) into a [`Part`].
fn plan_strokes(h: &HostScene, strokes: std::ops::Range<usize>) -> Part {
    let (w, ht) = (h.width, h.height);
    let p = POINTS_PER_STROKE as usize;
    let mut part = Part { gen: pooled(&GEN_POOL).unwrap_or_default(), ..Part::default() };
    part.gen.clear();
    let mut sc = Scratch::take((w * ht) as usize);
    for g in strokes {
        let nseg = h.segments[g] as usize;
        let ctrl = |k: usize| [h.points[(g * p + k) * 2], h.points[(g * p + k) * 2 + 1]];
        let row = |k: usize| (g * p + k) as i64;
        let pos = &mut sc.pos;
        pos.clear();
        let first_sample = part.sample_weights.len() / 4;
        part.sample_ctrl.extend((0..4).map(row));
        part.sample_weights.extend([1.0, 0.0, 0.0, 0.0]);
        pos.push(ctrl(0));
        for j in 0..nseg {
            let c = [ctrl(3 * j), ctrl(3 * j + 1), ctrl(3 * j + 2), ctrl(3 * j + 3)];
            let k = pieces_for(&c);
            for i in 1..=k {
                let wts = bezier_weights(i as f64 / k as f64);
                part.sample_ctrl.extend((0..4).map(|q| row(3 * j + q)));
                part.sample_weights.extend(wts);
                let mut q = [0.0; 2];
                for (cp, wt) in c.iter().zip(wts) {
                    q[0] += wt * cp[0];
                    q[1] += wt * cp[1];
                }
                pos.push(q);
            }
        }
        let npieces = pos.len() - 1;
        part.pieces += npieces;
        let dirs = &mut sc.dirs;
        dirs.clear();
        dirs.extend(pos.windows(2).map(|ab| {
            let (dx, dy) = (ab[1][0] - ab[0][0], ab[1][1] - ab[0][1]);
            let len = (dx * dx + dy * dy).sqrt();
            (len > 1e-9).then(|| [dx / len, dy / len])
        }));

        let half_w = h.widths[g] / 2.0;
        part.has_thin |= half_w < FOOTPRINT_HALF;
        let reach = half_w + FOOTPRINT_HALF;
        let stamp_id = g as u32 + 1;
        let canvas_base = (g / h.s as usize * (w * ht) as usize) as u32;
        let (stamp, best_d2, best_piece, touched) =
            (&mut sc.stamp, &mut sc.best_d2, &mut sc.best_piece, &mut sc.touched);
        touched.clear();
        let mut candidates = 0;
        for i in 0..npieces {
            let ext_a = if i == 0 { 1.0 } else { join_extension(dirs[i - 1], dirs[i]) };
            let ext_b = if i + 1 == npieces { 1.0 } else { join_extension(dirs[i], dirs[i + 1]) };
            let ext = (ext_a * reach, ext_b * reach);
            for_each_pixel_near(pos[i], pos[i + 1], ext, reach, w, ht, |x, y, d2| {
                candidates += 1;
                let q = (y * w + x) as usize;
                if stamp[q] != stamp_id {
                    stamp[q] = stamp_id;
                    best_d2[q] = d2;
                    best_piece[q] = i as u32;
                    touched.push(q as u32);
                } else if d2 < best_d2[q] {
                    best_d2[q] = d2;
                    best_piece[q] = i as u32;
                }
            });
        }
        part.candidates += candidates;
        // Fully covered below this distance (squared); everything is an edge
        // fragment for strokes thinner than the footprint.
        let full_below = half_w - FOOTPRINT_HALF - FULL_MARGIN_PX;
        let full_below2 = if full_below > 0.0 { full_below * full_below } else { -1.0 };
        part.gen.reserve(touched.len());
        for &q in touched.iter() {
            let q = q as usize;
            let mut edge = u32::MAX;
            if best_d2[q] >= full_below2 {
                let i = best_piece[q] as usize;
                let c = [(q % w as usize) as f64 + 0.5, (q / w as usize) as f64 + 0.5];
                let (a, b) = (pos[i], pos[i + 1]);
                let (t, d) = project(c, a, b);
                let foot = [a[0] + t * (b[0] - a[0]), a[1] + t * (b[1] - a[1])];
                // On the centreline any unit vector gives d = 0; take the normal.
                let r = if d > 1e-9 {
                    [(c[0] - foot[0]) / d, (c[1] - foot[1]) / d]
                } else {
                    dirs[i].map_or([0.0, 1.0], |u| [-u[1], u[0]])
                };
                edge = part.edge_stroke.len() as u32;
                part.edge_stroke.push(g as i64);
                part.edge_sample.push((first_sample + i) as i64);
                part.edge_coef.extend([(1.0 - t) * r[0], (1.0 - t) * r[1], t * r[0], t * r[1]]);
                part.edge_cp.push(c[0] * r[0] + c[1] * r[1]);
            }
            part.gen.push((g as u32, canvas_base + q as u32, edge));
        }
    }
    pool(&SCRATCH_POOL, sc);
    part
}

/// Most host threads the plan uses.
const MAX_PLAN_THREADS: usize = 4;
/// Below this estimated cost (pixels) the plan stays on one thread.
const MIN_PARALLEL_COST: f64 = 20_000.0;

impl Plan {
    fn build(h: &HostScene) -> Result<Plan> {
        let hw_px = (h.width * h.height) as usize;
        let total = (h.n * h.s) as usize;
        // Strokes are enumerated independently: split them into contiguous ranges
        // of about equal cost, one per thread, keeping stroke order across parts.
        let costs: Vec<f64> = (0..total).map(|g| stroke_cost(h, g)).collect();
        let sum: f64 = costs.iter().sum();
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        let threads = if sum < MIN_PARALLEL_COST { 1 } else { threads.clamp(1, MAX_PLAN_THREADS) };
        let mut bounds = vec![0];
        let mut acc = 0.0;
        for (g, c) in costs.iter().enumerate() {
            acc += c;
            if bounds.len() < threads && acc >= sum * bounds.len() as f64 / threads as f64 {
                bounds.push(g + 1);
            }
        }
        bounds.push(total);
        bounds.dedup();
        let parts: Vec<Part> = if bounds.len() <= 2 {
            vec![plan_strokes(h, 0..total)]
        } else {
            std::thread::scope(|scope| {
                let workers: Vec<_> = bounds
                    .windows(2)
                    .skip(1)
                    .map(|r| {
                        let range = r[0]..r[1];
                        scope.spawn(move || plan_strokes(h, range))
                    })
                    .collect();
                let mut parts = vec![plan_strokes(h, bounds[0]..bounds[1])];
                parts.extend(workers.into_iter().map(|w| w.join().expect("plan worker panicked")));
                parts
            })
        };
        Plan::merge(h, hw_px, parts)
    }

    /// Concatenates the parts and orders fragments by pixel with a counting sort;
    /// the parts are in stroke order, so each pixel's fragments stay in stroke
    /// (painting) order. Each part counts and places its own fragments, in
    /// parallel.
    fn merge(h: &HostScene, hw_px: usize, parts: Vec<Part>) -> Result<Plan> {
        let npix = h.n as usize * hw_px;
        let parallel = parts.len() > 1;
        let each = |f: &(dyn Fn(usize) + Sync)| {
            if parallel {
                std::thread::scope(|scope| {
                    for k in 1..parts.len() {
                        scope.spawn(move || f(k));
                    }
                    f(0);
                });
            } else {
                f(0);
            }
        };
        // counts[k][q]: part k's fragments on pixel q; then where the next goes.
        let counts: Vec<std::sync::Mutex<Vec<u32>>> =
            parts.iter().map(|_| std::sync::Mutex::new(Vec::new())).collect();
        each(&|k| {
            let mut c = vec![0u32; npix];
            for &(_, q, _) in &parts[k].gen {
                c[q as usize] += 1;
            }
            *counts[k].lock().unwrap() = c;
        });
        let mut counts: Vec<Vec<u32>> =
            counts.into_iter().map(|c| c.into_inner().unwrap()).collect();
        let total: usize = parts.iter().map(|p| p.gen.len()).sum();
        if total >= i32::MAX as usize {
            bail!(
                "{total} stroke fragments are too many to rasterize at once (at most {})",
                i32::MAX
            );
        }
        let mut run_bounds = Vec::new(); // (first, one past last) of each covered pixel
        let mut at = 0u32;
        for q in 0..npix {
            let first = at;
            for c in counts.iter_mut() {
                let n = c[q];
                c[q] = at;
                at += n;
            }
            if at > first {
                run_bounds.push((first, at));
            }
        }
        let nfrag = at as usize;
        let nedge: usize = parts.iter().map(|p| p.edge_stroke.len()).sum();
        let host_ints = |kind| Tensor::f_empty([nfrag as i64], (kind, Device::Cpu));
        let mut plan = Plan {
            sample_ctrl: Vec::new(),
            sample_weights: Vec::new(),
            frag_stroke: host_ints(Kind::Int64)?,
            frag_pixel: host_ints(Kind::Int64)?,
            frag_run_end: host_ints(Kind::Int)?,
            fragments: nfrag,
            edge_pos: vec![0; nedge],
            edge_stroke: Vec::with_capacity(nedge),
            edge_sample: Vec::with_capacity(nedge),
            edge_coef: Vec::with_capacity(4 * nedge),
            edge_cp: Vec::with_capacity(nedge),
            has_thin: false,
            pieces: 0,
            candidates: 0,
            covered_pixels: run_bounds.len(),
        };
        if nfrag > 0 {
            // Fresh contiguous host tensors of `nfrag` elements of these types.
            let out = SharedOut {
                stroke: plan.frag_stroke.data_ptr() as *mut i64,
                pixel: plan.frag_pixel.data_ptr() as *mut i64,
                edge_pos: plan.edge_pos.as_mut_ptr(),
            };
            let edge_base: Vec<usize> = parts
                .iter()
                .scan(0, |acc, p| {
                    let b = *acc;
                    *acc += p.edge_stroke.len();
                    Some(b)
                })
                .collect();
            let next: Vec<std::sync::Mutex<Vec<u32>>> =
                counts.into_iter().map(std::sync::Mutex::new).collect();
            let out = &out;
            each(&|k| {
                let mut next = next[k].lock().unwrap();
                for &(g, q, edge) in &parts[k].gen {
                    let at = next[q as usize] as usize;
                    next[q as usize] += 1;
                    // SAFETY: `at` < nfrag, and the counting sort gives every
                    // fragment of every part its own position, so no two threads
                    // write the same element; edge indices are disjoint per part.
                    unsafe {
                        *out.stroke.add(at) = g as i64;
                        *out.pixel.add(at) = q as i64;
                        if edge != u32::MAX {
                            *out.edge_pos.add(edge_base[k] + edge as usize) = at as i64;
                        }
                    }
                }
            });
        }
        if nfrag > 0 {
            // SAFETY: a fresh contiguous int32 host tensor of `nfrag` elements, not
            // shared yet.
            let run_end = unsafe {
                std::slice::from_raw_parts_mut(plan.frag_run_end.data_ptr() as *mut i32, nfrag)
            };
            for &(a, b) in &run_bounds {
                run_end[a as usize..b as usize].fill(b as i32 - 1);
            }
        }
        for mut part in parts {
            pool(&GEN_POOL, std::mem::take(&mut part.gen));
            let sample_base = (plan.sample_weights.len() / 4) as i64;
            plan.sample_ctrl.extend(part.sample_ctrl);
            plan.sample_weights.extend(part.sample_weights);
            plan.edge_stroke.extend(part.edge_stroke);
            plan.edge_sample.extend(part.edge_sample.iter().map(|&i| i + sample_base));
            plan.edge_coef.extend(part.edge_coef);
            plan.edge_cp.extend(part.edge_cp);
            plan.has_thin |= part.has_thin;
            plan.pieces += part.pieces;
            plan.candidates += part.candidates;
        }
        Ok(plan)
    }
}

/// Where [`Plan::merge`]'s threads place fragments: disjoint elements of the
/// plan's arrays.
struct SharedOut {
    stroke: *mut i64,
    pixel: *mut i64,
    edge_pos: *mut i64,
}
// SAFETY: the threads sharing it write disjoint elements (see `Plan::merge`).
unsafe impl Sync for SharedOut {}

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
fn coverage(half_w: &Tensor, dist: &Tensor, thin: bool) -> Result<Tensor> {
    let inner = half_w.f_sub(dist)?;
    let near = half_mass(&inner.f_abs()?)?.f_mul(&inner.f_sign()?)?;
    if thin {
        Ok(near.f_add(&half_mass(&half_w.f_add(dist)?)?)?)
    } else {
        Ok(near.f_add_scalar(0.5)?)
    }
}

/// The differentiable stage: (N, 3, H, W) from the scene's tensors and the plan.
fn render(scene: &Scene, plan: &Plan, n: i64, s: i64) -> Result<Tensor> {
    let dev = scene.device();
    let kind = scene.points.kind();
    let (h, w) = (scene.canvas.height, scene.canvas.width);
    let ints = |v: &[i64]| -> Result<Tensor> { Ok(Tensor::from_slice(v).f_to_device(dev)?) };
    let floats = |v: &[f64]| -> Result<Tensor> {
        let t = if kind == Kind::Float {
            Tensor::from_slice(&v.iter().map(|&x| x as f32).collect::<Vec<f32>>())
        } else {
            Tensor::from_slice(v)
        };
        Ok(t.f_to_device(dev)?)
    };
    let npix = n * h * w;
    let g = plan.fragments as i64;
    if g == 0 {
        let white = Tensor::f_ones([n, 3, h, w], (kind, dev))?;
        // Nothing covers any pixel; keep the graph so callers can still backward.
        let mut zero = scene.points.f_sum(kind)?.f_mul_scalar(0.0)?;
        for t in [&scene.widths, &scene.colors] {
            zero = zero.f_add(&t.f_sum(kind)?.f_mul_scalar(0.0)?)?;
        }
        return Ok(white.f_add(&zero)?);
    }
    let colors = scene.colors.f_reshape([n * s, 4])?; // (N·S, 4)

    // Alpha: the stroke's opacity deep inside it, coverage·opacity near its edges.
    let opacity = colors.f_select(1, 3)?.f_clamp(0.0, MAX_ALPHA)?; // (N·S)
    let frag_stroke = plan.frag_stroke.f_to_device(dev)?;
    let mut alpha = opacity.f_index_select(0, &frag_stroke)?; // (G)
    let e = plan.edge_pos.len() as i64;
    if e > 0 {
        let ns = (plan.sample_weights.len() / 4) as i64;
        let pts = scene.points.f_reshape([n * s * POINTS_PER_STROKE, 2])?; // (N·S·P, 2)
        let ctrl = pts.f_index_select(0, &ints(&plan.sample_ctrl)?)?.f_view([ns, 4, 2])?; // (Ns, 4, 2)
        let wts = floats(&plan.sample_weights)?.f_view([ns, 4, 1])?; // (Ns, 4, 1)
        let samples = ctrl.f_mul(&wts)?.f_sum_dim_intlist(1, false, kind)?; // (Ns, 2)
                                                                            // Each row: a sample and the next, i.e. a piece's [A, B].
        let pairs =
            Tensor::f_cat(&[samples.f_narrow(0, 0, ns - 1)?, samples.f_narrow(0, 1, ns - 1)?], 1)?; // (Ns−1, 4)
        let ab = pairs.f_index_select(0, &ints(&plan.edge_sample)?)?; // (E, 4)
        let coef = floats(&plan.edge_coef)?.f_view([e, 4])?; // (E, 4)
        let dist =
            floats(&plan.edge_cp)?.f_sub(&ab.f_mul(&coef)?.f_sum_dim_intlist(1, false, kind)?)?; // (E)
        let edge_stroke = ints(&plan.edge_stroke)?;
        let half_w =
            scene.widths.f_reshape([n * s])?.f_mul_scalar(0.5)?.f_index_select(0, &edge_stroke)?; // (E)
        let edge_alpha = coverage(&half_w, &dist, plan.has_thin)?
            .f_clamp(0.0, 1.0)?
            .f_mul(&opacity.f_index_select(0, &edge_stroke)?)?; // (E)
        alpha = alpha.f_index_put(&[Some(ints(&plan.edge_pos)?)], &edge_alpha, false)?;
    }

    // Transmittance above each fragment from a cumulative sum of log(1 − α) in f64
    // (in f32 the running sum over all pixels would lose digits).
    let log_t = alpha.f_neg()?.f_log1p()?.f_to_kind(Kind::Double)?; // (G)
    let cum = log_t.f_cumsum(0, Kind::Double)?; // (G)
    let cum_end = cum.f_index_select(0, &plan.frag_run_end.f_to_device(dev)?)?; // (G)
    let above = cum_end.f_sub(&cum)?.f_exp()?.f_to_kind(kind)?; // (G)

    // Over white, a pixel is 1 + Σ_i α_i·above_i·(c_i − 1): the weights α_i·above_i
    // sum to 1 − Π(1 − α), so the background needs no term of its own. Channel-major
    // layouts keep every big op contiguous, forward and backward.
    let tint = colors.f_narrow(1, 0, 3)?.f_sub_scalar(1.0)?.f_transpose(0, 1)?.f_contiguous()?; // (3, N·S)
    let paint = tint.f_index_select(1, &frag_stroke)?.f_mul(&alpha.f_mul(&above)?)?; // (3, G)
    let pixel = plan.frag_pixel.f_to_device(dev)?.f_expand([3, g], false)?; // (3, G)
    let image = Tensor::f_zeros([3, npix], (kind, dev))?.f_scatter_add(1, &pixel, &paint)?; // (3, N·H·W)
    Ok(image
        .f_add_scalar(1.0)?
        .f_view([3, n, h, w])?
        .f_permute([1, 0, 2, 3])? // (N, 3, H, W)
        .f_contiguous()?)
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

    #[test]
    fn a_stroke_over_itself_is_not_darker_and_order_matters() {
        let c = Canvas::new(24, 24).unwrap();
        // Out along y = 12 and back: the stroke covers its band twice.
        let cp = [
            [4.0, 12.0],
            [10.0, 12.0],
            [14.0, 12.0],
            [20.0, 12.0],
            [14.0, 12.0],
            [10.0, 12.0],
            [4.0, 12.0],
        ];
        let half = scene_of(c, &[(&cp, 4.0, [0.0, 0.0, 0.0, 0.5])], Kind::Double);
        let img = pixels(&rasterize(&half).unwrap());
        assert!((img[12 * 24 + 12] - 0.5).abs() < 1e-6, "got {}", img[12 * 24 + 12]);

        let red = line(2.0, 12.0, 22.0, 12.0);
        let blue = line(12.0, 2.0, 12.0, 22.0);
        let rb = scene_of(
            c,
            &[(&red, 6.0, [1.0, 0.0, 0.0, 1.0]), (&blue, 6.0, [0.0, 0.0, 1.0, 0.5])],
            Kind::Double,
        );
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
            let plan = Plan::build(&host).unwrap();
            let (frag_stroke, frag_pixel) = (ints(&plan.frag_stroke), ints(&plan.frag_pixel));
            let got: std::collections::HashSet<(i64, i64)> =
                frag_stroke.iter().zip(&frag_pixel).map(|(&s, &q)| (s, q)).collect();
            assert_eq!(got.len(), plan.fragments, "duplicate fragments");
            // Sample positions as the plan computed them.
            let pos: Vec<[f64; 2]> = plan
                .sample_ctrl
                .chunks(4)
                .zip(plan.sample_weights.chunks(4))
                .map(|(rows, wts)| {
                    let mut q = [0.0; 2];
                    for (&r, &wt) in rows.iter().zip(wts) {
                        q[0] += wt * host.points[2 * r as usize];
                        q[1] += wt * host.points[2 * r as usize + 1];
                    }
                    q
                })
                .collect();
            for ia in 0..pos.len() - 1 {
                let stroke = plan.sample_ctrl[4 * ia] / 10;
                if plan.sample_ctrl[4 * ia + 4] / 10 != stroke {
                    continue; // the last sample of one stroke, the first of the next
                }
                let (a, b) = (pos[ia], pos[ia + 1]);
                let reach = host.widths[stroke as usize] / 2.0 + FOOTPRINT_HALF;
                for y in 0..40 {
                    for x in 0..48 {
                        let (_, d) = project([x as f64 + 0.5, y as f64 + 0.5], a, b);
                        if d < reach - 1e-6 {
                            assert!(
                                got.contains(&(stroke, y * 48 + x)),
                                "seed {seed}: piece at sample {ia} of stroke {stroke} reaches pixel ({x}, {y}) at {d:.3} < {reach:.3}, not enumerated"
                            );
                        }
                    }
                }
            }
        }
    }

    fn ints(t: &Tensor) -> Vec<i64> {
        Vec::<i64>::try_from(&t.to_kind(Kind::Int64)).unwrap()
    }

    /// A plan's contents as plain values, for equality.
    fn comparable(p: Plan) -> String {
        let tensors = [&p.frag_stroke, &p.frag_pixel, &p.frag_run_end].map(ints);
        format!(
            "{:?}",
            (
                (p.sample_ctrl, p.sample_weights, tensors, p.fragments),
                (p.edge_pos, p.edge_stroke, p.edge_sample, p.edge_coef, p.edge_cp),
                (p.has_thin, p.pieces, p.candidates, p.covered_pixels)
            )
        )
    }

    #[test]
    fn threaded_plan_matches_one_thread() {
        let c = Canvas::new(96, 80).unwrap();
        for (seed, grown) in [(1, true), (2, false)] {
            let scene = if grown {
                Scene::grown(2, 40, c, seed, Device::Cpu).unwrap()
            } else {
                Scene::random(2, 400, c, seed, Device::Cpu).unwrap()
            };
            let host = HostScene::read(&scene, 2, scene.num_strokes()).unwrap();
            let total = (host.n * host.s) as usize;
            let one = comparable(
                Plan::merge(&host, 96 * 80, vec![plan_strokes(&host, 0..total)]).unwrap(),
            );
            // Uneven ranges, as the cost split may make them.
            let parts = vec![
                plan_strokes(&host, 0..7),
                plan_strokes(&host, 7..50),
                plan_strokes(&host, 50..total),
            ];
            assert_eq!(one, comparable(Plan::merge(&host, 96 * 80, parts).unwrap()), "seed {seed}");
            assert_eq!(one, comparable(Plan::build(&host).unwrap()), "seed {seed}");
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
            let base = if seed == 0 {
                Scene::random(1, 3, c, 11, Device::Cpu)
            } else {
                Scene::grown(1, 3, c, seed, Device::Cpu)
            };
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
            for (name, param) in
                [("points", &scene.points), ("widths", &scene.widths), ("colors", &scene.colors)]
            {
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
                            points: if name == "points" {
                                t.shallow_clone()
                            } else {
                                scene.points.detach()
                            },
                            segments: scene.segments.shallow_clone(),
                            widths: if name == "widths" {
                                t.shallow_clone()
                            } else {
                                scene.widths.detach()
                            },
                            colors: if name == "colors" {
                                t.shallow_clone()
                            } else {
                                scene.colors.detach()
                            },
                        };
                        loss(&s2, &weights).double_value(&[])
                    };
                    fd[i] = (eval(eps) - eval(-eps)) / (2.0 * eps);
                }
                let norm = fd.iter().map(|v| v * v).sum::<f64>().sqrt().max(1e-9);
                let err =
                    grad.iter().zip(&fd).map(|(a, b)| (a - b).powi(2)).sum::<f64>().sqrt() / norm;
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
