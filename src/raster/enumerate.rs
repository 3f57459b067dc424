//! Pixel enumeration: the pixels whose centres lie within a stroke's reach of one
//! line piece, scanned row by row over an oriented rectangle around the piece, so
//! that neighbouring pieces barely overlap.

/// Slack added to the enumeration rectangles so that rounding never drops a pixel.
const SLACK_PX: f64 = 0.01;

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
pub(super) fn project(p: [f64; 2], a: [f64; 2], b: [f64; 2]) -> (f64, f64) {
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

/// ⌊v⌋ clamped to `lo − 1..=hi`: below `lo` only when v is, so that a range
/// ending there stays empty.
fn floor_in(v: f64, lo: i64, hi: i64) -> i64 {
    let v = v.clamp(lo as f64 - 1.0, hi as f64 + 1.0);
    let i = v as i64;
    if (i as f64) > v { i - 1 } else { i }.min(hi)
}

/// Calls `visit(x, y, d²)` for each pixel whose centre lies within `reach` of the
/// segment a–b (d = that distance) and inside the segment's rectangle, which spans
/// `ext.0` before a and `ext.1` past b along the segment and ±`reach` across it.
/// Pixels are those of a `height`×`width` canvas; all lengths are in pixels.
pub(super) fn for_each_pixel_near(
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

#[cfg(test)]
mod tests {
    use tch::Device;

    use super::*;
    use crate::raster::host::HostScene;
    use crate::raster::plan::Plan;
    use crate::raster::pool::Pools;
    use crate::raster::testutil::ints;
    use crate::raster::FOOTPRINT_HALF;
    use crate::scene::{Canvas, Scene};

    #[test]
    fn ceil_and_floor_match_libm_within_range() {
        for v in [-3.5, -1.0, -0.25, 0.0, 0.25, 1.0, 2.5, 7.0, 9.75, 1e30, -1e30] {
            assert_eq!(ceil_in(v, 0, 8), (v.ceil() as i64).clamp(0, 8), "ceil {v}");
            assert_eq!(floor_in(v, -1, 8), (v.floor() as i64).clamp(-2, 8), "floor {v}");
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
            let plan = Plan::build(&host, &Pools::new()).unwrap();
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
}
