//! The plan, the no-grad stage on the host: per stroke, its curve samples, the
//! pixels it covers with their nearest piece, and for pixels near its edge the foot
//! point and direction the device needs for the distance. Strokes are split into
//! contiguous ranges of about equal cost, planned on worker threads into [`Part`]s,
//! which [`Plan::merge`] joins in stroke order.

use std::ops::Range;

use anyhow::{anyhow, Result};
use tch::Tensor;

use super::enumerate::{for_each_pixel_near, project};
use super::flatten::{flatten_stroke, join_extension, piece_dirs};
use super::host::HostScene;
use super::pool::{Pool, Pools};
use super::{sort, RasterStats, FOOTPRINT_HALF};
use crate::scene::{MAX_SEGMENTS, POINTS_PER_STROKE};

/// Most host threads the plan uses.
pub(super) const MAX_PLAN_THREADS: usize = 4;
/// Below this estimated cost (pixels) the plan stays on one thread.
const MIN_PARALLEL_COST: f64 = 20_000.0;
/// Margin keeping "fully covered" fragments clear of the edge despite f32 rounding.
const FULL_MARGIN_PX: f64 = 1e-3;

/// A fragment as a part generates it: stroke (n·S + s), pixel (n·H·W + y·W + x),
/// and the part's edge index, or u32::MAX for a fully covered fragment.
pub(super) type Frag = (u32, u32, u32);

/// The no-grad part of a call: which samples and fragments exist, in order.
#[derive(Debug)]
pub(super) struct Plan {
    /// (L·4) rows of the (N·S·P, 2) points that each sample blends.
    pub sample_ctrl: Vec<i64>,
    /// (L·4) Bernstein weights of those rows.
    pub sample_weights: Vec<f64>,
    /// (G) fragments sorted by (pixel, stroke), host tensors written in place:
    /// stroke (n·S + s) int64, pixel (n·H·W + y·W + x) int64, last fragment of
    /// the same pixel int32. (scatter_add wants int64; so does index_select on a
    /// 2-D tensor, whose backward with int32 indices takes a slow path, ≈15× here.)
    pub frag_stroke: Tensor,
    pub frag_pixel: Tensor,
    pub frag_run_end: Tensor,
    /// `G`.
    pub fragments: usize,
    /// (F) edge fragments: position among the G, stroke, first sample of the
    /// nearest piece (the second is the next sample).
    pub edge_pos: Vec<i64>,
    pub edge_stroke: Vec<i64>,
    pub edge_sample: Vec<i64>,
    /// (F·4) d = `edge_cp` − [A, B]·`edge_coef`, i.e. coef = [(1−t)r̂, t·r̂].
    pub edge_coef: Vec<f64>,
    /// (F) p·r̂.
    pub edge_cp: Vec<f64>,
    /// Whether some stroke is thinner than the footprint, so that coverage must
    /// account for both edges of its band.
    pub has_thin: bool,
    pub pieces: usize,
    pub candidates: usize,
    /// Pixels covered by at least one fragment (`U`).
    pub covered_pixels: usize,
}

/// One worker's share of the plan: the samples, fragments and edge fragments of a
/// range of strokes, in stroke order; sample and edge indices local to the part.
#[derive(Debug, Default)]
pub(super) struct Part {
    sample_ctrl: Vec<i64>,
    sample_weights: Vec<f64>,
    /// Fragments in generation order (stroke-major).
    gen: Vec<Frag>,
    edge_stroke: Vec<i64>,
    edge_sample: Vec<i64>,
    edge_coef: Vec<f64>,
    edge_cp: Vec<f64>,
    has_thin: bool,
    pieces: usize,
    candidates: usize,
}

/// Per-pixel scratch for one worker, reused across its strokes: `stamp` marks the
/// pixels seen by the stroke being enumerated (stroke id + 1, so it never needs
/// clearing), with their nearest piece and squared distance to it.
pub(super) struct Scratch {
    stamp: Vec<u32>,
    best_d2: Vec<f64>,
    best_piece: Vec<u32>,
    touched: Vec<u32>,
    pos: Vec<[f64; 2]>,
    dirs: Vec<Option<[f64; 2]>>,
}

impl Scratch {
    /// A cleared scratch for `hw_px` pixels, from `pool` when one is there. Only
    /// `stamp` needs clearing: the other buffers are written before they are read.
    fn take(hw_px: usize, pool: &Pool<Scratch>) -> Scratch {
        let mut sc = pool.take().unwrap_or_else(|| Scratch {
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
    let nseg = h.segments[g].clamp(1, MAX_SEGMENTS) as usize;
    let pt = |k: usize| [h.points[(g * p + k) * 2], h.points[(g * p + k) * 2 + 1]];
    let len: f64 =
        (0..3 * nseg).map(|k| (pt(k + 1)[0] - pt(k)[0]).hypot(pt(k + 1)[1] - pt(k)[1])).sum();
    let reach = h.widths[g] / 2.0 + FOOTPRINT_HALF;
    (len + 2.0 * reach).min(1e7) * 2.0 * reach + 8.0
}

/// Plans strokes `strokes` (global stroke ids n·S + s) into a [`Part`].
pub(super) fn plan_strokes(h: &HostScene, strokes: Range<usize>, pools: &Pools) -> Part {
    let (w, ht) = (h.width, h.height);
    let mut part = Part { gen: pools.gen.take().unwrap_or_default(), ..Part::default() };
    part.gen.clear();
    let mut sc = Scratch::take((w * ht) as usize, &pools.scratch);
    for g in strokes {
        let first_sample = part.sample_weights.len() / 4;
        flatten_stroke(h, g, &mut part.sample_ctrl, &mut part.sample_weights, &mut sc.pos);
        let pos = &sc.pos;
        let npieces = pos.len() - 1;
        part.pieces += npieces;
        piece_dirs(pos, &mut sc.dirs);
        let dirs = &sc.dirs;

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
    pools.scratch.give(sc);
    part
}

/// Runs `f(k, inputs[k])` for every input, the first on this thread and the others
/// on threads of their own; the results in input order. A worker's panic becomes
/// an error (after every worker has finished).
pub(super) fn run_parts<In: Send, Out: Send>(
    inputs: Vec<In>,
    f: impl Fn(usize, In) -> Out + Sync,
) -> Result<Vec<Out>> {
    let mut inputs = inputs.into_iter();
    let Some(first) = inputs.next() else { return Ok(Vec::new()) };
    let f = &f;
    std::thread::scope(|scope| {
        let workers: Vec<_> =
            inputs.enumerate().map(|(k, x)| scope.spawn(move || f(k + 1, x))).collect();
        let mut out = vec![f(0, first)];
        let joined: Vec<_> = workers.into_iter().map(|w| w.join()).collect();
        for r in joined {
            out.push(r.map_err(|e| {
                let msg = e
                    .downcast_ref::<&str>()
                    .copied()
                    .or_else(|| e.downcast_ref::<String>().map(String::as_str))
                    .unwrap_or("no message");
                anyhow!("a rasterizer plan worker panicked: {msg}")
            })?);
        }
        Ok(out)
    })
}

impl Plan {
    /// Plans every stroke of `h`, with host buffers from `pools`.
    pub fn build(h: &HostScene, pools: &Pools) -> Result<Plan> {
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
        let ranges: Vec<Range<usize>> = if bounds.len() <= 2 {
            vec![0..total]
        } else {
            bounds.windows(2).map(|r| r[0]..r[1]).collect()
        };
        let parts = run_parts(ranges, |_, range| plan_strokes(h, range, pools))?;
        Plan::merge(h, hw_px, parts, pools)
    }

    /// Concatenates the parts (in stroke order) and orders their fragments by
    /// pixel, each pixel's in stroke (painting) order; gives the parts' fragment
    /// buffers back to `pools`.
    pub fn merge(h: &HostScene, hw_px: usize, parts: Vec<Part>, pools: &Pools) -> Result<Plan> {
        let npix = h.n as usize * hw_px;
        let gens: Vec<&[Frag]> = parts.iter().map(|p| p.gen.as_slice()).collect();
        let edges: Vec<usize> = parts.iter().map(|p| p.edge_stroke.len()).collect();
        let sorted = sort::sort_fragments(&gens, &edges, npix)?;
        let nedge = sorted.edge_pos.len();
        let mut plan = Plan {
            sample_ctrl: Vec::new(),
            sample_weights: Vec::new(),
            frag_stroke: sorted.frag_stroke,
            frag_pixel: sorted.frag_pixel,
            frag_run_end: sorted.frag_run_end,
            fragments: sorted.fragments,
            edge_pos: sorted.edge_pos,
            edge_stroke: Vec::with_capacity(nedge),
            edge_sample: Vec::with_capacity(nedge),
            edge_coef: Vec::with_capacity(4 * nedge),
            edge_cp: Vec::with_capacity(nedge),
            has_thin: false,
            pieces: 0,
            candidates: 0,
            covered_pixels: sorted.covered_pixels,
        };
        for mut part in parts {
            pools.gen.give(std::mem::take(&mut part.gen));
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

    /// The plan's counts.
    pub fn stats(&self) -> RasterStats {
        RasterStats {
            pieces: self.pieces,
            candidates: self.candidates,
            fragments: self.fragments,
            edge_fragments: self.edge_pos.len(),
            covered_pixels: self.covered_pixels,
        }
    }
}

/// A plan's contents as plain values, for equality in tests.
#[cfg(test)]
pub(super) fn comparable(p: Plan) -> String {
    use super::testutil::ints;
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

#[cfg(test)]
mod tests {
    use tch::Device;

    use super::*;
    use crate::scene::{Canvas, Scene};

    #[test]
    fn threaded_plan_matches_one_thread() {
        let c = Canvas::new(96, 80).unwrap();
        let pools = Pools::new();
        for (seed, grown) in [(1, true), (2, false)] {
            let scene = if grown {
                Scene::grown(2, 40, c, seed, Device::Cpu).unwrap()
            } else {
                Scene::random(2, 400, c, seed, Device::Cpu).unwrap()
            };
            let host = HostScene::read(&scene, 2, scene.num_strokes()).unwrap();
            let total = (host.n * host.s) as usize;
            let merge = |parts| comparable(Plan::merge(&host, 96 * 80, parts, &pools).unwrap());
            let one = merge(vec![plan_strokes(&host, 0..total, &pools)]);
            // Uneven ranges, as the cost split may make them.
            let parts = vec![
                plan_strokes(&host, 0..7, &pools),
                plan_strokes(&host, 7..50, &pools),
                plan_strokes(&host, 50..total, &pools),
            ];
            assert_eq!(one, merge(parts), "seed {seed}");
            assert_eq!(one, comparable(Plan::build(&host, &pools).unwrap()), "seed {seed}");
        }
    }

    #[test]
    fn a_worker_panic_is_an_error() {
        let r = run_parts(vec![0, 1, 2], |k, x: i32| {
            if k == 2 {
                panic!("part {x} failed");
            }
            x
        });
        let e = r.unwrap_err().to_string();
        assert!(e.contains("worker panicked: part 2 failed"), "{e}");
    }
}
