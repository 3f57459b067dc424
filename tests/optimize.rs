//! The optimisation loop against a real (tiny, random-init) TorchScript CLIP.

mod common;

use clipdraw::model::ClipModel;
use clipdraw::optimize::{self, Control, Ending, Targets};
use clipdraw::raster;
use clipdraw::scene::{Canvas, Scene};
use clipdraw::Settings;
use tch::{Device, Kind};

fn model() -> ClipModel {
    ClipModel::load(&common::fixture("tiny.pt"), Device::Cpu).unwrap()
}

fn scene(strokes: i64, seed: u64) -> Scene {
    Scene::random(1, strokes, Canvas { width: 224, height: 224 }, seed, Device::Cpu).unwrap()
}

fn quick(iters: u32) -> Settings {
    Settings { iters, augs: 2, ..Settings::default() }
}

#[test]
fn optimisation_raises_the_similarity() {
    // Without augmentation the objective is deterministic, so a working gradient
    // path must raise it. (A random-weight model barely reacts to augmented
    // views, so this is the check it can support.)
    let m = model();
    let targets = Targets::new(&m, "a drawing of a cat", &[]).unwrap();
    let mut s = scene(32, 1);
    let before = tch::no_grad(|| raster::rasterize(&s)).unwrap();
    let score_before = optimize::score(&m, &before, &targets.prompt, 0, 0).unwrap();
    let settings = Settings { augs: 0, ..quick(25) };
    let out = optimize::optimize(&m, &mut s, &targets, &settings, |_| Control::Continue).unwrap();
    assert_eq!(out.ending, Ending::Finished);
    assert_eq!(out.iters_done, 25);
    let after = tch::no_grad(|| raster::rasterize(&s)).unwrap();
    let score_after = optimize::score(&m, &after, &targets.prompt, 0, 0).unwrap();
    assert!(score_after > score_before + 0.02, "similarity {score_before:.4} → {score_after:.4}");
}

#[test]
fn clamps_hold_after_every_step() {
    let m = model();
    let targets = Targets::new(&m, "a red star", &[]).unwrap();
    let mut s = scene(16, 2);
    let settings = Settings { lr_width: 1e3, lr_color: 1e3, max_width_px: 7.0, ..quick(3) };
    optimize::optimize(&m, &mut s, &targets, &settings, |_| Control::Continue).unwrap();
    let (wmin, wmax) = (s.widths.min().double_value(&[]), s.widths.max().double_value(&[]));
    assert!(wmin >= 1.0 && wmax <= 7.0, "widths in [{wmin}, {wmax}]");
    let (cmin, cmax) = (s.colors.min().double_value(&[]), s.colors.max().double_value(&[]));
    assert!(cmin >= 0.0 && cmax <= 1.0, "colours in [{cmin}, {cmax}]");
}

#[test]
fn a_nan_step_stops_and_keeps_the_last_finite_drawing() {
    let m = model();
    let targets = Targets::new(&m, "a red star", &[]).unwrap();
    let mut s = scene(16, 3);
    let initial = s.points.copy();
    let settings = Settings { lr_points: f64::NAN, ..quick(10) };
    let out = optimize::optimize(&m, &mut s, &targets, &settings, |_| Control::Continue).unwrap();
    assert_eq!(out.ending, Ending::NonFinite);
    assert_eq!(out.iters_done, 0);
    assert!(bool::try_from(s.points.isfinite().all()).unwrap());
    assert!(s.points.equal(&initial), "the drawing is not the last finite one");
}

#[test]
fn the_callback_can_stop_the_loop() {
    let m = model();
    let targets = Targets::new(&m, "a red star", &[]).unwrap();
    let mut s = scene(8, 4);
    let mut seen = Vec::new();
    let out = optimize::optimize(&m, &mut s, &targets, &quick(50), |step| {
        seen.push(step.iter);
        assert!(step.score.is_finite() && step.score.abs() <= 1.0);
        if step.iter == 4 {
            Control::Stop
        } else {
            Control::Continue
        }
    })
    .unwrap();
    assert_eq!(out.ending, Ending::Interrupted);
    assert_eq!(out.iters_done, 4);
    assert_eq!(seen, [1, 2, 3, 4]);
}

#[test]
fn negative_prompts_change_the_drawing() {
    let m = model();
    let run = |neg: &[String]| {
        let targets = Targets::new(&m, "a red star", neg).unwrap();
        let mut s = scene(16, 5);
        optimize::optimize(&m, &mut s, &targets, &quick(5), |_| Control::Continue).unwrap();
        s.points.copy()
    };
    let plain = run(&[]);
    let again = run(&[]);
    assert!(plain.equal(&again), "the loop is not deterministic on the CPU");
    let steered = run(&["a blue circle".to_string()]);
    let d = (plain - steered).abs().max().double_value(&[]);
    assert!(d > 1e-4, "a negative prompt changed nothing");
}

#[test]
fn zero_augmentations_scores_the_bare_drawing() {
    let m = model();
    let targets = Targets::new(&m, "a red star", &[]).unwrap();
    let mut s = scene(8, 6);
    let settings = Settings { augs: 0, ..quick(3) };
    let out = optimize::optimize(&m, &mut s, &targets, &settings, |_| Control::Continue).unwrap();
    assert_eq!(out.ending, Ending::Finished);
    // K = 0 scores the bare drawing: the cosine of its own embedding.
    let img = tch::no_grad(|| raster::rasterize(&s)).unwrap();
    let bare = optimize::score(&m, &img, &targets.prompt, 0, 0).unwrap();
    let direct = tch::no_grad(|| {
        let f =
            clipdraw::model::unit(&m.encode_image(&m.normalize(&img).unwrap()).unwrap()).unwrap();
        f.matmul(&targets.prompt.transpose(0, 1)).sum(Kind::Float).double_value(&[])
    });
    assert!((bare - direct).abs() < 1e-6, "score(K=0) {bare} vs direct {direct}");
}

#[test]
fn the_score_is_a_mean_over_every_image_and_view() {
    // Two copies of one image score what one does (the score once returned N × the
    // mean for N images); an image and a white one score the average of the two.
    let m = model();
    let targets = Targets::new(&m, "a drawing of a cat", &[]).unwrap();
    let img = tch::no_grad(|| raster::rasterize(&scene(32, 2))).unwrap();
    let white = img.ones_like();
    let one = optimize::score(&m, &img, &targets.prompt, 4, 1).unwrap();
    let two =
        optimize::score(&m, &tch::Tensor::cat(&[&img, &img], 0), &targets.prompt, 4, 1).unwrap();
    assert!((one - two).abs() < 1e-5, "{one} vs {two}");
    let w = optimize::score(&m, &white, &targets.prompt, 4, 1).unwrap();
    let mix =
        optimize::score(&m, &tch::Tensor::cat(&[&img, &white], 0), &targets.prompt, 4, 1).unwrap();
    assert!((mix - (one + w) / 2.0).abs() < 1e-5, "{mix} vs mean of {one} and {w}");
}
