//! Reference images: `rasterize` on small hand-written scenes, each testing one
//! thing, against PNGs the rasterizer made and a person looked at
//! (`tests/ref/<name>.png`).
//!
//! Tolerance: after quantising to 8 bits (round(255·v)), no channel of any pixel
//! may differ from the reference by more than 1/255: room for a rounding boundary
//! crossed on another CPU or libtorch build, none for a visible change.
//!
//! `CLIPDRAW_REGENERATE_REFS=1 cargo test --release --test raster_ref` rewrites the
//! references instead of comparing and says which files it wrote (shown with
//! `-- --nocapture`); look at them before committing. A failing scene writes a
//! three-panel PNG (expected | difference, grey ×4 and red where over the
//! tolerance | actual) under the target directory and says where; a missing
//! reference fails with the command that makes it.

use std::path::PathBuf;

use clipdraw::raster::rasterize;
use clipdraw::scene::{Canvas, Scene};
use resvg::tiny_skia::Pixmap;
use tch::Tensor;

/// Largest allowed difference per channel, in 8-bit steps.
const TOLERANCE_8BIT: u8 = 1;

/// One stroke: the control points it uses (1 + 3·segments), width (px), RGBA.
struct Stroke<'a>(&'a [[f32; 2]], f32, [f32; 4]);

/// A one-drawing scene on a `width`×`height` canvas.
fn scene(width: i64, height: i64, strokes: &[Stroke]) -> Scene {
    let s = strokes.len() as i64;
    let (mut points, mut segments) = (Vec::<f32>::new(), Vec::<i64>::new());
    let (mut widths, mut colors) = (Vec::<f32>::new(), Vec::<f32>::new());
    for Stroke(cp, w, rgba) in strokes {
        assert!(cp.len() % 3 == 1 && cp.len() <= 10, "{} control points", cp.len());
        // Points after the last used one hold copies of it.
        points.extend((0..10).flat_map(|k| cp[k.min(cp.len() - 1)]));
        segments.push(cp.len() as i64 / 3);
        widths.push(*w);
        colors.extend(rgba);
    }
    Scene::new(
        Canvas::new(width, height).unwrap(),
        Tensor::from_slice(&points).view([1, s, 10, 2]),
        Tensor::from_slice(&segments).view([1, s]),
        Tensor::from_slice(&widths).view([1, s]),
        Tensor::from_slice(&colors).view([1, s, 4]),
    )
    .unwrap()
}

/// A straight stroke from `a` to `b` as one cubic segment.
fn line(a: [f32; 2], b: [f32; 2]) -> [[f32; 2]; 4] {
    let at = |t: f32| [a[0] + t * (b[0] - a[0]), a[1] + t * (b[1] - a[1])];
    [at(0.0), at(1.0 / 3.0), at(2.0 / 3.0), at(1.0)]
}

/// The scene rendered and quantised: (H·W·3) RGB bytes, channel last.
fn render_8bit(scene: &Scene) -> Vec<u8> {
    let img = tch::no_grad(|| rasterize(scene)).unwrap(); // (1, 3, H, W)
    let hwc = img.squeeze_dim(0).permute([1, 2, 0]).flatten(0, -1); // (H·W·3)
    let v = Vec::<f32>::try_from(&hwc).unwrap();
    v.iter().map(|&x| (x.clamp(0.0, 1.0) * 255.0).round() as u8).collect()
}

/// An opaque `width`×`height` pixmap from RGB bytes.
fn pixmap(width: usize, height: usize, rgb: &[u8]) -> Pixmap {
    let mut pm = Pixmap::new(width as u32, height as u32).unwrap();
    for (px, c) in pm.data_mut().chunks_mut(4).zip(rgb.chunks(3)) {
        px.copy_from_slice(&[c[0], c[1], c[2], 255]);
    }
    pm
}

/// expected | difference (grey, ×4; red over the tolerance) | actual.
fn write_diff(name: &str, w: usize, h: usize, expected: &[u8], actual: &[u8]) -> PathBuf {
    let mut rgb = vec![0u8; 3 * w * h * 3];
    for y in 0..h {
        for x in 0..w {
            let i = 3 * (y * w + x);
            let (e, a) = (&expected[i..i + 3], &actual[i..i + 3]);
            let d = (0..3).map(|c| e[c].abs_diff(a[c])).max().unwrap();
            let mid =
                if d > TOLERANCE_8BIT { [255, 0, 0] } else { [255u8.saturating_sub(4 * d); 3] };
            for (panel, px) in [e, &mid[..], a].iter().enumerate() {
                let o = 3 * (y * 3 * w + panel * w + x);
                rgb[o..o + 3].copy_from_slice(px);
            }
        }
    }
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("raster_ref");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!("{name}.png"));
    pixmap(3 * w, h, &rgb).save_png(&path).unwrap();
    path
}

/// Renders `scene` and compares it with `tests/ref/<name>.png`, or rewrites that
/// file under `CLIPDRAW_REGENERATE_REFS=1`.
fn check(name: &str, scene: Scene) {
    let (w, h) = (scene.canvas.width as usize, scene.canvas.height as usize);
    let actual = render_8bit(&scene);
    let path =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/ref").join(format!("{name}.png"));
    if std::env::var_os("CLIPDRAW_REGENERATE_REFS").is_some_and(|v| v != "0") {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        pixmap(w, h, &actual).save_png(&path).unwrap();
        eprintln!("wrote reference {} ({w}x{h})", path.display());
        return;
    }
    let Ok(reference) = Pixmap::load_png(&path) else {
        panic!(
            "no reference image {} for scene {name}: make it with \
             CLIPDRAW_REGENERATE_REFS=1 cargo test --release --test raster_ref, \
             look at it, and commit it",
            path.display()
        );
    };
    assert!(
        (reference.width() as usize, reference.height() as usize) == (w, h),
        "scene {name} is {w}x{h} pixels, but its reference {} is {}x{}",
        path.display(),
        reference.width(),
        reference.height()
    );
    // Every reference pixel is opaque, so premultiplied = straight.
    let expected: Vec<u8> = reference.data().chunks(4).flat_map(|p| [p[0], p[1], p[2]]).collect();
    let worst = expected.iter().zip(&actual).map(|(e, a)| e.abs_diff(*a)).max().unwrap_or(0);
    let over = (0..w * h)
        .filter(|i| {
            (0..3).any(|c| expected[3 * i + c].abs_diff(actual[3 * i + c]) > TOLERANCE_8BIT)
        })
        .count();
    if over > 0 {
        let diff = write_diff(name, w, h, &expected, &actual);
        panic!(
            "scene {name}: {over} pixels differ from {} by more than {TOLERANCE_8BIT}/255 \
             (worst {worst}/255); diff image (expected | difference | actual): {}",
            path.display(),
            diff.display()
        );
    }
}

const RED: [f32; 4] = [0.9, 0.1, 0.1, 1.0];
const BLUE: [f32; 4] = [0.1, 0.2, 0.9, 1.0];
const BLACK: [f32; 4] = [0.0, 0.0, 0.0, 1.0];

/// One wide opaque stroke: a flat band with half-disc caps at both ends.
#[test]
fn wide_stroke_round_caps() {
    check(
        "wide_stroke_round_caps",
        scene(48, 48, &[Stroke(&line([14.0, 20.0], [34.0, 28.0]), 14.0, RED)]),
    );
}

/// Half-transparent red, then half-transparent blue across it: where they cross,
/// the later (blue) stroke is on top, and the crossing is darker than either.
#[test]
fn half_transparent_crossing_in_order() {
    let half = |c: [f32; 4]| [c[0], c[1], c[2], 0.5];
    check(
        "half_transparent_crossing_in_order",
        scene(
            48,
            48,
            &[
                Stroke(&line([6.0, 24.0], [42.0, 24.0]), 12.0, half(RED)),
                Stroke(&line([24.0, 6.0], [24.0, 42.0]), 12.0, half(BLUE)),
            ],
        ),
    );
}

/// One stroke of three cubic segments (an S with a hook), round joins between them.
#[test]
fn three_segment_curve() {
    let cp = [
        [8.0, 52.0],
        [8.0, 20.0],
        [32.0, 20.0],
        [32.0, 32.0],
        [32.0, 44.0],
        [56.0, 44.0],
        [56.0, 12.0],
        [56.0, 4.0],
        [44.0, 4.0],
        [40.0, 10.0],
    ];
    check("three_segment_curve", scene(64, 64, &[Stroke(&cp, 4.0, [0.1, 0.5, 0.2, 1.0])]));
}

/// Strokes thinner than a pixel (0.4 px) at three angles: faint, unbroken lines.
#[test]
fn thin_subpixel_strokes() {
    let strokes = [
        Stroke(&line([4.0, 8.5], [44.0, 8.5]), 0.4, BLACK),
        Stroke(&line([4.0, 16.0], [44.0, 40.0]), 0.4, BLACK),
        Stroke(&line([8.5, 20.0], [8.5, 44.0]), 0.4, BLACK),
    ];
    check("thin_subpixel_strokes", scene(48, 48, &strokes));
}

/// Wide strokes running off every side of the canvas: cut at the border, no wrap.
#[test]
fn strokes_leaving_the_canvas() {
    let strokes = [
        Stroke(&line([-20.0, 10.0], [30.0, -8.0]), 10.0, RED),
        Stroke(&line([24.0, 24.0], [70.0, 40.0]), 10.0, BLUE),
        Stroke(&line([12.0, 30.0], [4.0, 80.0]), 10.0, BLACK),
    ];
    check("strokes_leaving_the_canvas", scene(48, 48, &strokes));
}

/// A 64-wide, 40-high canvas: a red mark at the top left, a blue one at the bottom
/// right, a black diagonal between them, so a swapped height and width shows.
#[test]
fn non_square_canvas_64x40() {
    let strokes = [
        Stroke(&line([2.0, 2.0], [62.0, 38.0]), 2.0, BLACK),
        Stroke(&line([4.0, 6.0], [16.0, 6.0]), 5.0, RED),
        Stroke(&line([48.0, 34.0], [60.0, 34.0]), 5.0, BLUE),
    ];
    check("non_square_canvas_64x40", scene(64, 40, &strokes));
}
