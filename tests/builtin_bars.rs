//! The built-in model's drawings mean what they say, judged by pixels, not by a
//! model: colour prompts give ink of that hue, position prompts put the ink's
//! centroid in that half, in at least 9 of 10 seeds each.
//!
//! Drawings use the default settings except for fewer iterations (ITERS).
//!
//! Also a check that the embedded file tells shapes apart, on shapes drawn by resvg
//! rather than by the training script (see that test for its bar).

use clipdraw::{ClipModel, Control, DrawRequest};
use tch::{Device, Kind, Tensor};

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
    ClipModel::builtin(Device::Cpu).unwrap()
}

/// A default drawing of `prompt` but for [`ITERS`] iterations: (3, H, W) in [0, 1].
fn draw(m: &ClipModel, prompt: &str, seed: u64) -> Tensor {
    let mut request = DrawRequest::new(prompt);
    request.settings.iters = ITERS;
    request.settings.seed = seed;
    let drawing = clipdraw::draw(m, &request, |_| Control::Continue).unwrap();
    drawing.image.squeeze_dim(0)
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

/// SVG markup of one shape centred in a 224 px canvas, filled or outlined in `rgb`.
/// Drawn by hand here and rendered by resvg, so the images owe nothing to the
/// training script's PIL drawings.
fn shape_svg(shape: &str, rgb: &str, filled: bool) -> String {
    let paint = if filled {
        format!(r#"fill="{rgb}" stroke="none""#)
    } else {
        format!(r#"fill="none" stroke="{rgb}" stroke-width="9" stroke-linejoin="round""#)
    };
    let star: Vec<String> = (0..10)
        .map(|k| {
            let r = if k % 2 == 0 { 58.0 } else { 24.0 };
            let a = (-90.0 + 36.0 * k as f64).to_radians();
            format!("{:.1},{:.1}", 112.0 + r * a.cos(), 118.0 + r * a.sin())
        })
        .collect();
    let body = match shape {
        "circle" => format!(r#"<circle cx="112" cy="112" r="52" {paint}/>"#),
        "square" => format!(r#"<rect x="68" y="68" width="88" height="88" {paint}/>"#),
        "triangle" => format!(r#"<polygon points="112,52 170,156 54,156" {paint}/>"#),
        "star" => format!(r#"<polygon points="{}" {paint}/>"#, star.join(" ")),
        "heart" => format!(
            r#"<path d="M112,166 C60,128 52,100 60,82 C72,54 104,56 112,84 C120,56 152,54 164,82 C172,100 164,128 112,166 Z" {paint}/>"#
        ),
        "cross" => format!(
            r#"<polygon points="96,56 128,56 128,96 168,96 168,128 128,128 128,168 96,168 96,128 56,128 56,96 96,96" {paint}/>"#
        ),
        "line" => format!(
            r#"<line x1="60" y1="160" x2="164" y2="64" stroke="{rgb}" stroke-width="{}" stroke-linecap="round"/>"#,
            if filled { 14 } else { 7 }
        ),
        other => panic!("no such shape {other}"),
    };
    format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="224" height="224" viewBox="0 0 224 224"><rect width="224" height="224" fill="white"/>{body}</svg>"#
    )
}

/// The embedded file tells shapes apart on shapes it never saw drawn this way: 7
/// shapes × 4 colours × filled / outlined, written here as SVG and rendered by resvg,
/// each classified among "a drawing of a <colour> <shape>" for the seven shapes with
/// its true colour. Chance is 14 %.
///
/// The issue's 85 % bar is the training script's held-out accuracy on its own kind of
/// drawings (96.7 % for this file). On these out-of-distribution drawings the file
/// scores 46/56 (82 %): big filled crosses read as squares, outlined hearts as
/// circles. The bar here, 75 %, guards against a regression (the first built-in model
/// had 28 % shape accuracy); it was set after seeing the 82 %.
#[test]
fn the_built_in_model_names_shapes_drawn_by_resvg() {
    const SHAPES: [&str; 7] = ["circle", "square", "triangle", "star", "heart", "cross", "line"];
    let colours =
        [("red", "#dc1e1e"), ("blue", "#1e46e1"), ("green", "#1ea52d"), ("black", "#111")];
    let m = model();
    let dir = tempfile::tempdir().unwrap();
    let (mut hits, mut total, mut misses) = (0, 0, Vec::new());
    for (name, rgb) in colours {
        let prompts: Vec<String> =
            SHAPES.iter().map(|s| format!("a drawing of a {name} {s}")).collect();
        let refs: Vec<&str> = prompts.iter().map(|p| p.as_str()).collect();
        let text = m.embed_prompts(&refs).unwrap(); // (7, E), unit length
        for (k, shape) in SHAPES.iter().enumerate() {
            for filled in [true, false] {
                let path = dir.path().join(format!("{shape}-{name}-{filled}.svg"));
                std::fs::write(&path, shape_svg(shape, rgb, filled)).unwrap();
                let img = clipdraw::output::load_image(&path).unwrap();
                let feats = tch::no_grad(|| m.embed_images(&img)).unwrap();
                let best = feats.matmul(&text.transpose(0, 1)).argmax(-1, false).int64_value(&[0]);
                total += 1;
                if best as usize == k {
                    hits += 1;
                } else {
                    let style = if filled { "filled" } else { "outlined" };
                    misses.push(format!("{name} {shape} ({style}) -> {}", SHAPES[best as usize]));
                }
            }
        }
    }
    println!("shapes named: {hits}/{total}; misses: {misses:?}");
    assert!(hits * 100 >= 75 * total, "shapes named: {hits}/{total}; misses: {misses:?}");
}
