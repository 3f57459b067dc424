//! Scenes and read-backs shared by the rasterizer's unit tests.

use tch::{Kind, Tensor};

use crate::scene::{Canvas, Scene, Stroke};

/// A tensor's values as f64, flattened.
pub fn pixels(t: &Tensor) -> Vec<f64> {
    Vec::<f64>::try_from(t.detach().to_kind(Kind::Double).flatten(0, -1)).unwrap()
}

/// An integer tensor's values as i64.
pub fn ints(t: &Tensor) -> Vec<i64> {
    Vec::<i64>::try_from(&t.to_kind(Kind::Int64)).unwrap()
}

/// One stroke per entry: (control points used, width, RGBA), made through
/// [`Scene::from_strokes`] (so in f32) and converted to `kind`.
pub fn scene_of(canvas: Canvas, strokes: &[(&[[f64; 2]], f64, [f64; 4])], kind: Kind) -> Scene {
    let strokes: Vec<Stroke> = strokes
        .iter()
        .map(|(cp, w, c)| Stroke {
            points: cp.iter().map(|p| [p[0] as f32, p[1] as f32]).collect(),
            width_px: *w as f32,
            rgba: c.map(|v| v as f32),
        })
        .collect();
    Scene::from_strokes(canvas, &strokes, tch::Device::Cpu).unwrap().to_kind(kind).unwrap()
}

/// A straight cubic from (x0, y0) to (x1, y1).
pub fn line(x0: f64, y0: f64, x1: f64, y1: f64) -> [[f64; 2]; 4] {
    let l = |t: f64| [x0 + t * (x1 - x0), y0 + t * (y1 - y0)];
    [l(0.0), l(1.0 / 3.0), l(2.0 / 3.0), l(1.0)]
}
