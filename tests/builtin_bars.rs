//! The built-in model's drawings mean what they say, judged by pixels, not by a
//! model: colour prompts give ink of that hue, position prompts put the ink's
//! centroid in that half, in at least 9 of 10 seeds each.
//!
//! Drawings use the default settings except for fewer iterations (ITERS).

use clipdraw::model::ClipModel;
use clipdraw::optimize::{self, Control, Settings, Targets};
use clipdraw::raster;
use clipdraw::scene::{Canvas, Scene};
use tch::{Device, Kind, Tensor};

const BUILTIN: &[u8] = include_bytes!("../assets/clipdraw-tiny.pt");
const ITERS: u32 = 60;
const SEEDS: u64 = 10;
const NEEDED: usize = 9;

/// The colour names, in the order [`hue_name`] reports them.
const COLOURS: [&str; 8] = ["red", "orange", "yellow", "green", "blue", "purple", "pink", "black"];

/// The colour name of one ink pixel by its hue (HSV), or `None` for greys.
///
/// Hue, not distance in RGB: a half-transparent red stroke over white is light red,
/// (1, 0.5, 0.5), whose hue is still red's.
fn hue_name(c: [f64; 3]) -> Option<usize> {
    let max = c.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    let min = c.iter().cloned().fold(f64::INFINITY, f64::min);
    if max < 0.35 {
        return Some(7); // black
    }
    if max - min < 0.2 * max {
        return None; // grey: no hue to speak of
    }
    let d = max - min;
    let h = if max == c[0] {
        60.0 * ((c[1] - c[2]) / d).rem_euclid(6.0)
    } else if max == c[1] {
        60.0 * ((c[2] - c[0]) / d + 2.0)
    } else {
        60.0 * ((c[0] - c[1]) / d + 4.0)
    };
    Some(match h {
        h if !(15.0..345.0).contains(&h) => 0, // red
        h if h < 45.0 => 1,                    // orange
        h if h < 70.0 => 2,                    // yellow
        h if h < 170.0 => 3,                   // green
        h if h < 260.0 => 4,                   // blue
        h if h < 290.0 => 5,                   // purple
        _ => 6,                                // pink
    })
}

fn model() -> ClipModel {
    ClipModel::from_bytes(BUILTIN, Device::Cpu).unwrap()
}

fn draw(m: &ClipModel, prompt: &str, seed: u64) -> Tensor {
    let targets = Targets::new(m, prompt, &[]).unwrap();
    let mut scene =
        Scene::random(1, 256, Canvas { width: 224, height: 224 }, seed, Device::Cpu).unwrap();
    let settings = Settings { iters: ITERS, seed, ..Settings::default() };
    optimize::optimize(m, &mut scene, &targets, &settings, |_| Control::Continue).unwrap();
    tch::no_grad(|| raster::rasterize(&scene)).unwrap().squeeze_dim(0) // (3, H, W)
}

/// Pixels clearly not white: (K, 3) RGB and their (x, y) positions.
fn ink(img: &Tensor) -> (Vec<[f64; 3]>, Vec<(f64, f64)>) {
    let (_, h, w) = img.size3().unwrap();
    let v: Vec<f64> = Vec::try_from(img.to_kind(Kind::Double).flatten(0, -1)).unwrap();
    let plane = (h * w) as usize;
    let mut rgb = Vec::new();
    let mut pos = Vec::new();
    for i in 0..plane {
        let c = [v[i], v[plane + i], v[2 * plane + i]];
        let darkness = 1.0 - c.iter().cloned().fold(f64::INFINITY, f64::min);
        if darkness > 0.3 {
            rgb.push(c);
            pos.push(((i as i64 % w) as f64 + 0.5, (i as i64 / w) as f64 + 0.5));
        }
    }
    (rgb, pos)
}

/// The colour name most ink pixels have (see [`hue_name`]).
fn dominant_colour(img: &Tensor) -> &'static str {
    let (rgb, _) = ink(img);
    let mut counts = [0usize; 8];
    for k in rgb.into_iter().filter_map(hue_name) {
        counts[k] += 1;
    }
    let k = (0..8).max_by_key(|&k| counts[k]).unwrap();
    if counts[k] == 0 {
        "none"
    } else {
        COLOURS[k]
    }
}

#[test]
fn the_hue_judge_names_plain_colours() {
    let cases = [
        ([0.9, 0.1, 0.1], "red"),
        ([1.0, 0.5, 0.5], "red"),
        ([1.0, 0.55, 0.0], "orange"),
        ([0.95, 0.9, 0.1], "yellow"),
        ([0.1, 0.7, 0.2], "green"),
        ([0.1, 0.2, 0.9], "blue"),
        ([0.55, 0.15, 0.7], "purple"),
        ([1.0, 0.45, 0.75], "pink"),
        ([0.05, 0.05, 0.05], "black"),
    ];
    for (c, name) in cases {
        assert_eq!(hue_name(c).map(|k| COLOURS[k]), Some(name), "{c:?}");
    }
    assert_eq!(hue_name([0.6, 0.6, 0.62]), None);
}

fn centroid(img: &Tensor) -> Option<(f64, f64)> {
    let (_, pos) = ink(img);
    if pos.is_empty() {
        return None;
    }
    let n = pos.len() as f64;
    Some((pos.iter().map(|p| p.0).sum::<f64>() / n, pos.iter().map(|p| p.1).sum::<f64>() / n))
}

#[test]
fn colour_prompts_give_ink_of_that_colour() {
    let m = model();
    let mut report = Vec::new();
    let mut failed = false;
    for name in COLOURS {
        let prompt = format!("a {name} circle");
        let got: Vec<&str> = (0..SEEDS).map(|s| dominant_colour(&draw(&m, &prompt, s))).collect();
        let hits = got.iter().filter(|g| **g == name).count();
        failed |= hits < NEEDED;
        report.push(format!("{prompt}: {hits}/{SEEDS} {got:?}"));
    }
    println!("dominant ink colours:\n{}", report.join("\n"));
    assert!(!failed, "dominant ink colours:\n{}", report.join("\n"));
}

#[test]
fn position_prompts_put_the_ink_in_that_half() {
    let m = model();
    let mut report = Vec::new();
    let mut failed = false;
    let cases: [(&str, fn((f64, f64)) -> bool); 4] = [
        ("a red star on the left", |c| c.0 < 112.0),
        ("a red star on the right", |c| c.0 > 112.0),
        ("a red star at the top", |c| c.1 < 112.0),
        ("a red star at the bottom", |c| c.1 > 112.0),
    ];
    for (prompt, inside) in cases {
        let got: Vec<Option<(f64, f64)>> =
            (0..SEEDS).map(|s| centroid(&draw(&m, prompt, s))).collect();
        let hits = got.iter().filter(|c| c.is_some_and(inside)).count();
        failed |= hits < NEEDED;
        let shown: Vec<String> = got
            .iter()
            .map(|c| c.map_or("none".to_string(), |(x, y)| format!("({x:.0}, {y:.0})")))
            .collect();
        report.push(format!("{prompt}: {hits}/{SEEDS} {}", shown.join(" ")));
    }
    println!("ink centroids:\n{}", report.join("\n"));
    assert!(!failed, "ink centroids:\n{}", report.join("\n"));
}
