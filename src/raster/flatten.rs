//! Flattening: each cubic of a stroke becomes K line pieces between curve samples,
//! K chosen so that the chords stay within [`FLATNESS_PX`] of the curve. A sample
//! is kept as the 4 control-point rows it blends and their Bernstein weights, so
//! that the device can recompute it differentiably.

use super::host::HostScene;
use super::FLATNESS_PX;
use crate::scene::POINTS_PER_STROKE;

/// Most line pieces per cubic segment.
const MAX_PIECES_PER_SEGMENT: usize = 256;

pub(super) fn bezier_weights(t: f64) -> [f64; 4] {
    let u = 1.0 - t;
    [u * u * u, 3.0 * u * u * t, 3.0 * u * t * t, t * t * t]
}

/// Line pieces for one cubic so that no chord strays more than [`FLATNESS_PX`]:
/// a chord over Δt deviates at most max|B''|·Δt²/8, and |B''| ≤ 6·max|Δ²P|.
pub(super) fn pieces_for(c: &[[f64; 2]; 4]) -> usize {
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

/// Appends the curve samples of stroke `g` (global id n·S + s): per sample, the 4
/// rows of the (N·S·P, 2) points it blends to `rows` and their weights to
/// `weights`; its position (px) to `pos`, which is cleared first. The first sample
/// is p0; each segment adds its K pieces' end points.
pub(super) fn flatten_stroke(
    h: &HostScene,
    g: usize,
    rows: &mut Vec<i64>,
    weights: &mut Vec<f64>,
    pos: &mut Vec<[f64; 2]>,
) {
    let p = POINTS_PER_STROKE as usize;
    let nseg = h.segments[g] as usize;
    let ctrl = |k: usize| [h.points[(g * p + k) * 2], h.points[(g * p + k) * 2 + 1]];
    let row = |k: usize| (g * p + k) as i64;
    pos.clear();
    rows.extend((0..4).map(row));
    weights.extend([1.0, 0.0, 0.0, 0.0]);
    pos.push(ctrl(0));
    for j in 0..nseg {
        let c = [ctrl(3 * j), ctrl(3 * j + 1), ctrl(3 * j + 2), ctrl(3 * j + 3)];
        let k = pieces_for(&c);
        for i in 1..=k {
            let wts = bezier_weights(i as f64 / k as f64);
            rows.extend((0..4).map(|q| row(3 * j + q)));
            weights.extend(wts);
            let mut q = [0.0; 2];
            for (cp, wt) in c.iter().zip(wts) {
                q[0] += wt * cp[0];
                q[1] += wt * cp[1];
            }
            pos.push(q);
        }
    }
}

/// Unit direction of each piece between consecutive samples `pos` (into `dirs`,
/// cleared first); `None` for a piece of (near) zero length.
pub(super) fn piece_dirs(pos: &[[f64; 2]], dirs: &mut Vec<Option<[f64; 2]>>) {
    dirs.clear();
    dirs.extend(pos.windows(2).map(|ab| {
        let (dx, dy) = (ab[1][0] - ab[0][0], ab[1][1] - ab[0][1]);
        let len = (dx * dx + dy * dy).sqrt();
        (len > 1e-9).then(|| [dx / len, dy / len])
    }));
}

/// How far a piece's rectangle must reach past a vertex, as a fraction of the
/// stroke's reach, so that the round join's outer wedge is covered: sin of the
/// turning angle, or all of it past 90° or next to a zero-length piece.
pub(super) fn join_extension(u1: Option<[f64; 2]>, u2: Option<[f64; 2]>) -> f64 {
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Distance from `p` to the segment a–b.
    fn to_chord(p: [f64; 2], a: [f64; 2], b: [f64; 2]) -> f64 {
        super::super::enumerate::project(p, a, b).1
    }

    #[test]
    fn chords_stay_within_flatness() {
        let cubics = [
            [[0.0, 0.0], [10.0, 40.0], [30.0, -40.0], [40.0, 0.0]],
            [[5.0, 5.0], [5.0, 5.0], [6.0, 5.0], [6.0, 5.0]],
            [[0.0, 0.0], [100.0, 0.0], [0.0, 100.0], [100.0, 100.0]],
            [[3.0, 1.0], [-20.0, 8.0], [25.0, 30.0], [2.0, 2.0]],
        ];
        for c in cubics {
            let k = pieces_for(&c);
            let at = |t: f64| {
                let w = bezier_weights(t);
                [0, 1].map(|a| (0..4).map(|q| w[q] * c[q][a]).sum::<f64>())
            };
            for i in 0..k {
                let (t0, t1) = (i as f64 / k as f64, (i + 1) as f64 / k as f64);
                for j in 1..50 {
                    let t = t0 + (t1 - t0) * j as f64 / 50.0;
                    let d = to_chord(at(t), at(t0), at(t1));
                    assert!(d <= FLATNESS_PX + 1e-12, "{c:?}: piece {i} of {k} strays {d}");
                }
            }
        }
    }

    #[test]
    fn joins_extend_by_the_turn() {
        let (e, n) = (Some([1.0, 0.0]), Some([0.0, 1.0]));
        assert_eq!(join_extension(e, e), 0.0);
        assert_eq!(join_extension(e, n), 1.0);
        assert_eq!(join_extension(e, Some([-1.0, 0.0])), 1.0);
        assert_eq!(join_extension(None, e), 1.0);
        let d = Some([0.5f64.sqrt(), 0.5f64.sqrt()]);
        assert!((join_extension(e, d) - 0.5f64.sqrt()).abs() < 1e-12);
    }
}
