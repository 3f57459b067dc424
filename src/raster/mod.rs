//! Differentiable rasterizer: a [`Scene`]'s strokes, anti-aliased, with round caps
//! and joins, composited in order with "over" onto white.
//!
//! Shapes: `N` drawings, `S` strokes per drawing, `P` = 10 control points per
//! stroke, `H`×`W` canvas pixels; and, built per call, `L` curve samples, `M` line
//! pieces (consecutive samples of one stroke), `G` fragments (a stroke's coverage of
//! one pixel), `F` edge fragments (fragments near a stroke's edge), `U` covered
//! pixels (runs of fragments).
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
//!
//! Files, in the order a call runs through them:
//! - `host.rs`: the scene's detached host copy, validated.
//! - `flatten.rs`: cubics into curve samples and line pieces.
//! - `enumerate.rs`: the pixels whose centres a line piece can reach.
//! - `plan.rs`: the plan, strokes split into ranges planned on worker threads.
//! - `pool.rs`: host buffers kept between calls (the module's only state).
//! - `sort.rs`: the counting sort of fragments by pixel (the module's only `unsafe`).
//! - `coverage.rs`: a pixel's coverage by a band, from the distance.
//! - `composite.rs`: the differentiable stage, from the plan to the image (over
//!   white, or over a background picture: `B + Σ_s (c_s − B) α_s Π_{t>s}(1 − α_t)`).
//! - `testutil.rs`: scenes and read-backs for the unit tests.

mod composite;
mod coverage;
mod enumerate;
mod flatten;
mod host;
mod plan;
mod pool;
mod sort;
#[cfg(test)]
mod testutil;

use anyhow::{bail, Context, Result};
use tch::Tensor;

use crate::scene::Scene;
use host::HostScene;
use plan::Plan;
use pool::Pools;

/// Greatest distance between a cubic and its line pieces, in pixels.
pub const FLATNESS_PX: f64 = 0.05;
/// Pixel footprint across an edge: boxes of these widths (px) convolved. Chosen to
/// minimise the largest error against exact area coverage over all edge angles
/// (0° is a box of 1, 45° boxes of √½ each).
pub const FOOTPRINT_A: f64 = 0.92;
pub const FOOTPRINT_B: f64 = 0.33;
/// Half the footprint's support: a pixel centre this far outside the band is
/// untouched; this far inside, fully covered.
const FOOTPRINT_HALF: f64 = (FOOTPRINT_A + FOOTPRINT_B) / 2.0;

/// Counts from one call, for benchmarks and tests.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RasterStats {
    /// Line pieces after flattening (`M`).
    pub pieces: usize,
    /// (piece, pixel) pairs examined on the host.
    pub candidates: usize,
    /// (stroke, pixel) fragments composited (`G`).
    pub fragments: usize,
    /// Fragments near a stroke's edge, whose coverage is computed (`F`).
    pub edge_fragments: usize,
    /// Pixels covered by at least one stroke (`U`).
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
    rasterize_in(scene, &pool::SHARED)
}

/// The host stage alone (reading the scene and building the plan), for benchmarks
/// that split the cost between host and device.
#[doc(hidden)]
pub fn plan_stats(scene: &Scene) -> Result<RasterStats> {
    let (n, s) = scene.check()?;
    let host = HostScene::read(scene, n, s)?;
    Ok(Plan::build(&host, &pool::SHARED)?.stats())
}

/// Renders every drawing of `scene` over `background`: (1, 3, H, W) RGB in [0, 1]
/// at the canvas size, on the scene's device (converted to its dtype). Over a
/// constant-white background this equals [`rasterize`] up to float rounding.
pub fn rasterize_over(scene: &Scene, background: &Tensor) -> Result<Tensor> {
    let (n, s) = scene.check()?;
    let (h, w) = (scene.canvas.height, scene.canvas.width);
    let (_, c, bh, bw) = background.size4()?;
    if (c, bh, bw) != (3, h, w) {
        bail!("the background is {c}×{bh}×{bw} (channels×H×W), but the canvas needs 3×{h}×{w}");
    }
    let bg = background.f_to_device(scene.device())?.f_to_kind(scene.points.f_kind()?)?;
    let host = HostScene::read(scene, n, s)?;
    let plan = Plan::build(&host, &pool::SHARED)?;
    composite::render(scene, &plan, n, s, Some(&bg)).context("rasterizer")
}

/// [`rasterize_with_stats`] with host buffers from `pools`.
fn rasterize_in(scene: &Scene, pools: &Pools) -> Result<(Tensor, RasterStats)> {
    let (n, s) = scene.check()?;
    let host = HostScene::read(scene, n, s)?;
    let plan = Plan::build(&host, pools)?;
    let image = composite::render(scene, &plan, n, s, None).context("rasterizer")?;
    Ok((image, plan.stats()))
}
