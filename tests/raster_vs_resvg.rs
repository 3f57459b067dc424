//! The rasterizer draws what the SVG says: `rasterize(scene)` against resvg's
//! rendering of `to_svg(scene)`, over random scenes with thin and wide strokes,
//! near-transparent strokes, strokes that leave the canvas, and 1- and 3-segment
//! paths.
//!
//! Bars: per channel, mean |difference| ≤ 2/255; outside a 1-pixel band along
//! stroke edges (where anti-aliasing legitimately differs), no pixel off by more
//! than 64/255. A failing scene writes a three-panel PNG (resvg | difference, red
//! where off-band pixels fail | rasterize) under the target directory and says
//! where; `CLIPDRAW_WRITE_DIFFS=1` writes them for every scene.

use std::path::PathBuf;

use clipdraw::raster::rasterize;
use clipdraw::scene::{Canvas, Scene};
use clipdraw::svg::to_svg;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use resvg::tiny_skia;
use tch::{Device, Kind, Tensor};

const MEAN_BAR: f64 = 2.0 / 255.0;
const OFF_BAND_BAR: f64 = 64.0 / 255.0;

struct Case {
    name: String,
    scene: Scene,
}

fn floats(t: &Tensor) -> Vec<f64> {
    Vec::<f64>::try_from(t.detach().to_kind(Kind::Double).flatten(0, -1)).unwrap()
}

fn tensor(v: &[f64], shape: &[i64]) -> Tensor {
    Tensor::from_slice(v).to_kind(Kind::Float).view(shape)
}

/// Overrides the per-stroke widths and alphas (and shifts points) of a scene.
fn adjust(
    scene: Scene,
    rng: &mut ChaCha8Rng,
    width: (f64, f64),
    alpha: (f64, f64),
    shift: f64,
) -> Scene {
    let (n, s) = (scene.num_drawings(), scene.num_strokes());
    let widths: Vec<f64> = (0..n * s).map(|_| rng.gen_range(width.0..=width.1)).collect();
    let mut colors = floats(&scene.colors);
    for k in 0..(n * s) as usize {
        colors[4 * k + 3] = rng.gen_range(alpha.0..=alpha.1);
    }
    let mut points = floats(&scene.points);
    if shift != 0.0 {
        // Move whole strokes so that many start near or beyond an edge.
        for k in 0..(n * s) as usize {
            let (dx, dy) = (rng.gen_range(-shift..=shift), rng.gen_range(-shift..=shift));
            for p in 0..10 {
                points[k * 20 + 2 * p] += dx;
                points[k * 20 + 2 * p + 1] += dy;
            }
        }
    }
    Scene::new(
        scene.canvas,
        tensor(&points, &[n, s, 10, 2]),
        scene.segments.shallow_clone(),
        tensor(&widths, &[n, s]),
        tensor(&colors, &[n, s, 4]),
    )
    .unwrap()
}

/// Every stroke with exactly `segments` segments (points regenerated as in init).
fn with_segments(scene: Scene, segments: i64) -> Scene {
    let (n, s) = (scene.num_drawings(), scene.num_strokes());
    let mut points = floats(&scene.points);
    let old = floats(&scene.segments);
    for k in 0..(n * s) as usize {
        let used = 3 * old[k] as usize;
        // Extend or cut the path: repeat its shape by continuing the last step.
        for p in used + 1..=3 * segments as usize {
            for c in 0..2 {
                let step = points[k * 20 + 2 * (p - 1) + c] - points[k * 20 + 2 * (p - 2) + c];
                points[k * 20 + 2 * p + c] = points[k * 20 + 2 * (p - 1) + c] + 0.8 * step + 3.0;
            }
        }
        let last = 3 * segments as usize;
        for p in last + 1..10 {
            for c in 0..2 {
                points[k * 20 + 2 * p + c] = points[k * 20 + 2 * last + c];
            }
        }
    }
    Scene::new(
        scene.canvas,
        tensor(&points, &[n, s, 10, 2]),
        Tensor::full([n, s], segments, (Kind::Int64, Device::Cpu)),
        scene.widths.shallow_clone(),
        scene.colors.shallow_clone(),
    )
    .unwrap()
}

fn cases() -> Vec<Case> {
    let mut out = Vec::new();
    let mut rng = ChaCha8Rng::seed_from_u64(2022);
    let canvases = [
        Canvas { width: 96, height: 96 },
        Canvas { width: 128, height: 80 },
        Canvas { width: 64, height: 72 },
    ];
    for i in 0..24u64 {
        let c = canvases[i as usize % 3];
        let (name, scene) = match i {
            0..=3 => ("init", Scene::random(1, 48, c, i, Device::Cpu).unwrap()),
            4..=5 => (
                "init 224",
                Scene::random(1, 128, Canvas { width: 224, height: 224 }, i, Device::Cpu).unwrap(),
            ),
            6..=9 => (
                "wide 1-50 px",
                adjust(
                    Scene::grown(1, 16, c, i, Device::Cpu).unwrap(),
                    &mut rng,
                    (1.0, 50.0),
                    (0.0, 1.0),
                    0.0,
                ),
            ),
            10..=11 => (
                "grown 224",
                Scene::grown(1, 64, Canvas { width: 224, height: 224 }, i, Device::Cpu).unwrap(),
            ),
            12..=14 => (
                "near-transparent",
                adjust(
                    Scene::grown(1, 24, c, i, Device::Cpu).unwrap(),
                    &mut rng,
                    (2.0, 30.0),
                    (0.0, 0.05),
                    0.0,
                ),
            ),
            15..=18 => (
                "leaving the canvas",
                adjust(
                    Scene::grown(1, 20, c, i, Device::Cpu).unwrap(),
                    &mut rng,
                    (3.0, 40.0),
                    (0.2, 1.0),
                    60.0,
                ),
            ),
            19..=21 => (
                "1-segment",
                with_segments(
                    adjust(
                        Scene::grown(1, 24, c, i, Device::Cpu).unwrap(),
                        &mut rng,
                        (1.0, 20.0),
                        (0.0, 1.0),
                        0.0,
                    ),
                    1,
                ),
            ),
            _ => (
                "3-segment",
                with_segments(
                    adjust(
                        Scene::grown(1, 24, c, i, Device::Cpu).unwrap(),
                        &mut rng,
                        (1.0, 20.0),
                        (0.0, 1.0),
                        0.0,
                    ),
                    3,
                ),
            ),
        };
        out.push(Case { name: format!("{i:02} {name}"), scene });
    }
    out
}

/// resvg's rendering of the scene's SVG: (H·W·3) RGB in [0, 1].
fn resvg_rgb(scene: &Scene) -> Vec<f64> {
    let text = to_svg(scene, None).unwrap();
    let tree = usvg::Tree::from_str(&text, &usvg::Options::default()).unwrap();
    let (w, h) = (scene.canvas.width as u32, scene.canvas.height as u32);
    let mut pixmap = tiny_skia::Pixmap::new(w, h).unwrap();
    resvg::render(&tree, tiny_skia::Transform::default(), &mut pixmap.as_mut());
    // The white background makes every pixel opaque, so premultiplied = straight.
    pixmap.data().chunks(4).flat_map(|p| [p[0], p[1], p[2]]).map(|v| v as f64 / 255.0).collect()
}

/// Our rendering: (H·W·3) RGB, channel last like resvg's.
fn ours_rgb(scene: &Scene) -> Vec<f64> {
    let img = tch::no_grad(|| rasterize(scene)).unwrap(); // (1, 3, H, W)
    floats(&img.squeeze_dim(0).permute([1, 2, 0])) // (H, W, 3)
}

/// Pixels whose centre lies within 1 px of some stroke's edge, from a dense
/// polyline of each stroke (independent of the rasterizer's flattening).
fn edge_band(scene: &Scene) -> Vec<bool> {
    let (w, h) = (scene.canvas.width as usize, scene.canvas.height as usize);
    let pts = floats(&scene.points);
    let segs = floats(&scene.segments);
    let widths = floats(&scene.widths);
    let mut band = vec![false; w * h];
    for k in 0..segs.len() {
        let p = |i: usize| [pts[k * 20 + 2 * i], pts[k * 20 + 2 * i + 1]];
        let mut poly = vec![p(0)];
        for j in 0..segs[k] as usize {
            let c = [p(3 * j), p(3 * j + 1), p(3 * j + 2), p(3 * j + 3)];
            for i in 1..=128 {
                let t = i as f64 / 128.0;
                let u = 1.0 - t;
                let b = [u * u * u, 3.0 * u * u * t, 3.0 * u * t * t, t * t * t];
                poly.push([0, 1].map(|a| (0..4).map(|q| b[q] * c[q][a]).sum::<f64>()));
            }
        }
        let hw = widths[k] / 2.0;
        let (mut x0, mut y0, mut x1, mut y1) = (f64::MAX, f64::MAX, f64::MIN, f64::MIN);
        for q in &poly {
            x0 = x0.min(q[0]);
            y0 = y0.min(q[1]);
            x1 = x1.max(q[0]);
            y1 = y1.max(q[1]);
        }
        let r = hw + 2.0;
        let xs =
            ((x0 - r).floor().max(0.0) as usize)..((x1 + r).ceil().clamp(0.0, w as f64) as usize);
        let ys =
            ((y0 - r).floor().max(0.0) as usize)..((y1 + r).ceil().clamp(0.0, h as f64) as usize);
        for y in ys {
            for x in xs.clone() {
                let c = [x as f64 + 0.5, y as f64 + 0.5];
                let mut d = f64::MAX;
                for ab in poly.windows(2) {
                    let (dx, dy) = (ab[1][0] - ab[0][0], ab[1][1] - ab[0][1]);
                    let (px, py) = (c[0] - ab[0][0], c[1] - ab[0][1]);
                    let l2 = dx * dx + dy * dy;
                    let t = if l2 > 0.0 { ((px * dx + py * dy) / l2).clamp(0.0, 1.0) } else { 0.0 };
                    d = d.min((px - t * dx).hypot(py - t * dy));
                }
                if (d - hw).abs() <= 1.0 {
                    band[y * w + x] = true;
                }
            }
        }
    }
    band
}

fn diff_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("raster_vs_resvg")
}

/// expected | difference (grey, ×4; red where an off-band pixel fails) | actual.
fn write_diff(
    name: &str,
    w: usize,
    h: usize,
    expected: &[f64],
    actual: &[f64],
    failing: &[bool],
) -> PathBuf {
    let mut pm = tiny_skia::Pixmap::new(3 * w as u32, h as u32).unwrap();
    let data = pm.data_mut();
    let to8 = |v: f64| (v.clamp(0.0, 1.0) * 255.0).round() as u8;
    for y in 0..h {
        for x in 0..w {
            let i = y * w + x;
            let e = &expected[3 * i..3 * i + 3];
            let a = &actual[3 * i..3 * i + 3];
            let d = (0..3).map(|c| (e[c] - a[c]).abs()).fold(0.0, f64::max);
            let mid = if failing[i] { [255, 0, 0] } else { [to8(1.0 - 4.0 * d); 3] };
            for (panel, rgb) in
                [[to8(e[0]), to8(e[1]), to8(e[2])], mid, [to8(a[0]), to8(a[1]), to8(a[2])]]
                    .iter()
                    .enumerate()
            {
                let o = 4 * (y * 3 * w + panel * w + x);
                data[o..o + 4].copy_from_slice(&[rgb[0], rgb[1], rgb[2], 255]);
            }
        }
    }
    let dir = diff_dir();
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!("{}.png", name.replace(' ', "_")));
    pm.save_png(&path).unwrap();
    path
}

#[test]
fn rasterize_matches_resvg() {
    let always = std::env::var_os("CLIPDRAW_WRITE_DIFFS").is_some_and(|v| v != "0");
    let mut failures = Vec::new();
    let (mut worst_mean, mut worst_off) = (0.0f64, 0.0f64);
    eprintln!(
        "{:<28} {:>22} {:>12} {:>9}",
        "scene", "mean |diff| R G B ×255", "off-band ×255", "band px"
    );
    for case in cases() {
        let (w, h) = (case.scene.canvas.width as usize, case.scene.canvas.height as usize);
        let expected = resvg_rgb(&case.scene);
        let actual = ours_rgb(&case.scene);
        let band = edge_band(&case.scene);
        let mut mean = [0.0f64; 3];
        let mut off = 0.0f64;
        let mut failing = vec![false; w * h];
        for i in 0..w * h {
            for c in 0..3 {
                let d = (expected[3 * i + c] - actual[3 * i + c]).abs();
                mean[c] += d / (w * h) as f64;
                if !band[i] {
                    off = off.max(d);
                    failing[i] |= d > OFF_BAND_BAR;
                }
            }
        }
        let m = mean.iter().cloned().fold(0.0, f64::max);
        worst_mean = worst_mean.max(m);
        worst_off = worst_off.max(off);
        eprintln!(
            "{:<28} {:>6.3} {:>6.3} {:>6.3}   {:>12.1} {:>9}",
            case.name,
            mean[0] * 255.0,
            mean[1] * 255.0,
            mean[2] * 255.0,
            off * 255.0,
            band.iter().filter(|&&b| b).count()
        );
        let bad = m > MEAN_BAR || off > OFF_BAND_BAR;
        if bad || always {
            let path = write_diff(&case.name, w, h, &expected, &actual, &failing);
            if bad {
                failures.push(format!(
                    "scene {}: mean |diff| {:.2}/255 (bar 2), worst off-band pixel {:.1}/255 (bar 64); diff image: {}",
                    case.name,
                    m * 255.0,
                    off * 255.0,
                    path.display()
                ));
            } else {
                eprintln!("  diff image: {}", path.display());
            }
        }
    }
    eprintln!(
        "worst mean |diff| {:.3}/255, worst off-band pixel {:.1}/255",
        worst_mean * 255.0,
        worst_off * 255.0
    );
    assert!(failures.is_empty(), "rasterize differs from resvg:\n{}", failures.join("\n"));
}
