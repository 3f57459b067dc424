//! Scenes and read-backs shared by the rasterizer's unit tests.

use tch::{Kind, Tensor};

use crate::scene::{Canvas, Scene};

/// A tensor's values as f64, flattened.
pub fn pixels(t: &Tensor) -> Vec<f64> {
    Vec::<f64>::try_from(t.detach().to_kind(Kind::Double).flatten(0, -1)).unwrap()
}

/// An integer tensor's values as i64.
pub fn ints(t: &Tensor) -> Vec<i64> {
    Vec::<i64>::try_from(&t.to_kind(Kind::Int64)).unwrap()
}

/// One stroke per entry: (control points used, width, RGBA).
pub fn scene_of(canvas: Canvas, strokes: &[(&[[f64; 2]], f64, [f64; 4])], kind: Kind) -> Scene {
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

/// A straight cubic from (x0, y0) to (x1, y1).
pub fn line(x0: f64, y0: f64, x1: f64, y1: f64) -> [[f64; 2]; 4] {
    let l = |t: f64| [x0 + t * (x1 - x0), y0 + t * (y1 - y0)];
    [l(0.0), l(1.0 / 3.0), l(2.0 / 3.0), l(1.0)]
}
