//! The built-in model draws everyday things that an independent judge recognises.
//!
//! The judge (`tests/data/judge.pt`, made by `scripts/train_judge.py`) is a classifier
//! of another architecture and seed, trained on icons only: it never saw a clipdraw
//! drawing and shares no weights with the built-in model. For each of 24 everyday
//! prompts it must put the prompt's concept in its top 5 of all its concepts (1,002)
//! for most drawings, and far more often than for the untouched random initial
//! strokes (the control).
//!
//! It runs [`SEEDS`] seed(s) at [`ITERS`] iterations (otherwise default settings);
//! `CLIPDRAW_EVERYDAY_SEEDS`, `CLIPDRAW_EVERYDAY_ITERS` change them and
//! `CLIPDRAW_EVERYDAY_MODEL=FILE` judges another model file instead of the built-in
//! one (a candidate, before it is embedded):
//!
//!     CLIPDRAW_EVERYDAY_SEEDS=5 CLIPDRAW_EVERYDAY_ITERS=250 \
//!         cargo test --release --test everyday -- --ignored --nocapture
//!
//! Ignored until the built-in model reaches the bar (issue 14; see
//! docs/everyday-model.md for where the candidates stand).

use std::path::PathBuf;

use clipdraw::scene::{Canvas, Scene};
use clipdraw::{ClipModel, Control, DrawRequest};
use tch::{Device, Tensor};

const SEEDS: u64 = 1;
const ITERS: u32 = 100;

/// Prompt and the judge's name (slug) for its concept.
const PROMPTS: [(&str, &str); 24] = [
    ("a drawing of a cat", "cat"),
    ("a drawing of a dog", "dog"),
    ("a drawing of a fish", "fish"),
    ("a drawing of a butterfly", "butterfly"),
    ("a drawing of a snail", "snail"),
    ("a drawing of an elephant", "elephant"),
    ("a drawing of a penguin", "penguin"),
    ("a drawing of a cactus", "cactus"),
    ("a drawing of a mushroom", "mushroom"),
    ("a drawing of a sailboat", "sailboat"),
    ("a drawing of a bicycle", "bicycle"),
    ("a drawing of an airplane", "airplane"),
    ("a drawing of a rocket", "rocket"),
    ("a drawing of a house", "house"),
    ("a drawing of a castle", "castle"),
    ("a drawing of a snowman", "snowman"),
    ("a drawing of an umbrella", "umbrella"),
    ("a drawing of a pizza", "pizza"),
    ("a drawing of a banana", "banana"),
    ("a drawing of a red apple", "red-apple"),
    ("a drawing of a birthday cake", "birthday-cake"),
    ("a drawing of a guitar", "guitar"),
    ("a drawing of a key", "key"),
    ("a drawing of a light bulb", "light-bulb"),
];

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

struct Judge {
    module: tch::CModule,
    slugs: Vec<String>,
    /// top-5 on held-out icons drawn as coloured outlines only: the judge's ceiling
    ceiling: f64,
}

fn judge() -> Judge {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data");
    let module = tch::CModule::load(dir.join("judge.pt")).expect("tests/data/judge.pt");
    let side: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("judge.json")).unwrap()).unwrap();
    let slugs = side["concepts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["slug"].as_str().unwrap().to_string())
        .collect();
    let ceiling = side["figures"]["outline"]["top5"].as_f64().unwrap();
    Judge { module, slugs, ceiling }
}

impl Judge {
    /// Whether the judge puts `slug` among its five best answers for `image`
    /// ((1, 3, H, W) RGB in [0, 1]).
    fn in_top5(&self, image: &Tensor, slug: &str) -> bool {
        let want =
            self.slugs.iter().position(|s| s == slug).expect("a concept of the judge") as i64;
        let logits =
            tch::no_grad(|| self.module.forward_ts(&[image.to_kind(tch::Kind::Float)])).unwrap();
        let (_, top) = logits.topk(5, 1, true, true);
        Vec::<i64>::try_from(top.flatten(0, -1)).unwrap().contains(&want)
    }
}

#[test]
#[ignore = "issue 14: no built-in model reaches this bar yet (docs/everyday-model.md)"]
fn an_independent_judge_recognises_everyday_drawings() {
    let seeds: u64 = env_or("CLIPDRAW_EVERYDAY_SEEDS", SEEDS);
    let iters: u32 = env_or("CLIPDRAW_EVERYDAY_ITERS", ITERS);
    let judge = judge();
    let model = match std::env::var("CLIPDRAW_EVERYDAY_MODEL") {
        Ok(file) => ClipModel::load(std::path::Path::new(&file), Device::Cpu).unwrap(),
        Err(_) => ClipModel::builtin(Device::Cpu).unwrap(),
    };
    let (mut hits, mut control, mut n) = (0usize, 0usize, 0usize);
    let mut rows = Vec::new();
    for (prompt, slug) in PROMPTS {
        let (mut h, mut c) = (0, 0);
        for seed in 0..seeds {
            let mut request = DrawRequest::new(prompt);
            request.settings.iters = iters;
            request.settings.seed = seed;
            let drawing = clipdraw::draw(&model, &request, |_| Control::Continue).unwrap();
            h += judge.in_top5(&drawing.image, slug) as usize;
            let canvas = Canvas::new(224, 224).unwrap();
            let init = Scene::random(1, request.strokes, canvas, seed, Device::Cpu).unwrap();
            c += judge.in_top5(&clipdraw::raster::rasterize(&init).unwrap(), slug) as usize;
        }
        rows.push(format!("{prompt}: {h}/{seeds} (control {c}/{seeds})"));
        hits += h;
        control += c;
        n += seeds as usize;
    }
    let rate = hits as f64 / n as f64;
    let control_rate = control as f64 / n as f64;
    let bar = 0.6f64.min(0.8 * judge.ceiling);
    eprintln!(
        "{}\njudge top-5: drawings {hits}/{n} = {:.1} %, control {control}/{n} = {:.1} %; \
         judge ceiling on line drawings {:.1} %; bar {:.1} % ({iters} iterations, {seeds} seed(s))",
        rows.join("\n"),
        100.0 * rate,
        100.0 * control_rate,
        100.0 * judge.ceiling,
        100.0 * bar
    );
    assert!(rate >= bar, "{:.1} % of drawings recognised, bar {:.1} %", 100.0 * rate, 100.0 * bar);
    assert!(
        rate - control_rate >= 0.4,
        "only {:.1} points above the random-stroke control",
        100.0 * (rate - control_rate)
    );
}
