//! One drawing from request to record: [`draw`] is the entry point every caller
//! uses (the binary, the tests, the benches, the examples); [`Drawing`] is what it
//! returns, ready to be written as SVG, PNG and JSON.
//!
//! Data descends once: request → text targets → initial drawing → optimisation
//! loop → final score → record. Nothing here prints or touches the file system.

use std::cell::Cell;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use tch::Tensor;

use crate::background::Background;
use crate::constraints::Constrained;
use crate::model::ClipModel;
use crate::optimize::{self, Control, Ending, LoopState, PixelImage, Step, Targets};
use crate::raster;
use crate::record::{ModelRecord, Record, RunTimings, TOOL};
use crate::request::{DrawRequest, Representation, Settings};
use crate::scene::{Canvas, Scene};
use crate::svg;

/// How many augmentations score the final drawing recorded in the outputs.
pub const FINAL_SCORE_AUGS: u32 = 32;

/// A finished (or interrupted, or diverged) drawing with its record.
#[derive(Debug)]
pub struct Drawing {
    /// The strokes (N = 1, on the model's device, detached); `None` for pixels.
    pub scene: Option<Scene>,
    /// What the model judged: (1, 3, H, W) RGB in [0, 1].
    pub image: Tensor,
    /// Everything about the run but its output paths (set when it is written).
    pub record: Record,
    /// The picture under the strokes, embedded in the SVG.
    pub background: Option<Background>,
}

impl Drawing {
    /// The drawing as a standalone SVG with its portable record in `<metadata>`;
    /// `None` for the pixel representation.
    pub fn svg(&self) -> Result<Option<String>> {
        let Some(scene) = &self.scene else { return Ok(None) };
        let meta = crate::output::xml_escape(&self.record.portable().to_json()?);
        let uri = self.background.as_ref().map(Background::data_uri).transpose()?;
        Ok(Some(svg::to_svg_over(scene, Some(&meta), uri.as_deref())?))
    }

    /// A PNG: resvg's rendering of the SVG with its longer side `size_px` for
    /// strokes; the image itself for pixels.
    pub fn png(&self, size_px: u32) -> Result<Vec<u8>> {
        match self.svg()? {
            Some(text) => crate::output::svg_to_png(&text, size_px),
            None => crate::output::tensor_to_png(&self.image),
        }
    }
}

/// A message for the user about a request, before drawing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Notice {
    /// The run goes on, but not quite as asked.
    Warning(String),
    /// Worth knowing.
    Note(String),
}

/// What the user should hear about `prompt` with `model`: words it never saw, a
/// prompt cut to the context length.
pub fn prompt_notices(model: &ClipModel, prompt: &str) -> Vec<Notice> {
    let mut out = Vec::new();
    let unknown = model.unknown_words(prompt);
    if !unknown.is_empty() {
        let list = unknown.iter().map(|w| format!("\"{w}\"")).collect::<Vec<_>>().join(", ");
        let knows = match &model.info().concepts {
            Some(c) => format!(
                "this model knows {} everyday things (`clipdraw info` lists them) and simple \
                 shapes, colours, positions, sizes and counts",
                c.values().map(Vec::len).sum::<usize>()
            ),
            None => "the built-in model knows simple shapes, colours, positions, sizes and counts"
                .to_string(),
        };
        out.push(Notice::Note(format!(
            "the model never saw {list}; {knows} (use --model with a real CLIP for anything else)"
        )));
    }
    if model.tokenize(prompt).truncated {
        out.push(Notice::Warning(format!(
            "the prompt is longer than the model's {} tokens; the end was cut off",
            model.info().context_length
        )));
    }
    out
}

/// The paper's metric for any image: mean cosine similarity between `prompt` and
/// `augs` random augmentations (seeded by `seed`) of `image` ((1, 3, H, W) RGB in
/// [0, 1], on any device).
pub fn score_image(
    model: &ClipModel,
    image: &Tensor,
    prompt: &str,
    augs: u32,
    seed: u64,
) -> Result<f64> {
    crate::request::check_prompt(prompt)?;
    let text = model.embed_prompts(&[prompt])?;
    optimize::score(model, &image.f_to_device(model.device())?, &text, augs, seed)
}

/// Makes the drawing `request` asks for, judged by `model`, on the model's device.
///
/// `on_step` runs after every iteration; returning [`Control::Stop`] ends the run
/// early with the drawing so far (its record says `interrupted`). A run whose loss
/// or parameters become non-finite ends with the last finite drawing.
pub fn draw(
    model: &ClipModel,
    request: &DrawRequest,
    on_step: impl FnMut(&Step) -> Control,
) -> Result<Drawing> {
    request.check()?;
    let started = Instant::now();
    let dev = model.device();
    let settings = &request.settings;
    let seed = settings.seed;
    let size = model.info().image_size;
    check_fits_memory(model, request)?;
    let targets = Targets::new(model, &request.prompt, &request.negatives)?;
    // The time limit stops the loop through its callback: after the iteration in
    // which the time ran out, so a run overshoots by less than one iteration.
    let timed_out = Cell::new(false);
    let mut on_step = on_step;
    let loop_start = Instant::now();
    let mut step = |st: &Step| {
        if on_step(st) == Control::Stop {
            return Control::Stop;
        }
        match request.time_limit {
            Some(limit) if loop_start.elapsed() >= limit => {
                timed_out.set(true);
                Control::Stop
            }
            _ => Control::Continue,
        }
    };
    let background = match &request.background {
        Some(b) => Some(b.tensor()?.f_to_device(dev)?),
        None => None,
    };
    let (mut outcome, image, scene) = match request.representation {
        Representation::Strokes => {
            let (scene, init_strokes) = initial_scene(request, size, dev)?;
            let frozen = if request.freeze_init { init_strokes } else { 0 };
            let plain = frozen == 0
                && settings.colors.is_any()
                && settings.opacity.is_free()
                && background.is_none();
            let (outcome, scene) = if plain {
                // The bare scene, exactly as before constraints existed.
                let mut scene = scene;
                let outcome = optimize::optimize(model, &mut scene, &targets, settings, &mut step)
                    .context("cannot optimise the drawing")?;
                (outcome, scene)
            } else {
                let mut c = Constrained::new(
                    scene,
                    frozen,
                    settings,
                    background.as_ref().map(Tensor::shallow_clone),
                )?;
                let outcome = optimize::optimize(model, &mut c, &targets, settings, &mut step)
                    .context("cannot optimise the drawing")?;
                (outcome, c.finish()?)
            };
            let image = tch::no_grad(|| match &background {
                Some(bg) => raster::rasterize_over(&scene, bg),
                None => raster::rasterize(&scene),
            })?;
            (outcome, image, Some(scene))
        }
        Representation::Pixels => {
            if request.init.is_some() {
                bail!("an initial drawing needs the strokes representation");
            }
            let mut pixels = PixelImage::random(size, size, seed, dev)?;
            let outcome = optimize::optimize(model, &mut pixels, &targets, settings, &mut step)
                .context("cannot optimise the image")?;
            let image = tch::no_grad(|| optimize::Trainable::render(&pixels))?;
            (outcome, image, None)
        }
    };
    if timed_out.get() && outcome.ending == Ending::Interrupted {
        outcome.ending = Ending::TimeLimit;
    }
    let final_score = optimize::score(model, &image, &targets.prompt, FINAL_SCORE_AUGS, seed)?;
    let strokes = scene.as_ref().map(Scene::num_strokes);
    let record = record_of(model, request, strokes, &outcome, final_score, started);
    Ok(Drawing { scene, image, record, background: request.background.clone() })
}

/// Refuses a drawing whose run would not fit in the memory free on the model's
/// device (host memory on the CPU, device memory on CUDA), before it starts.
fn check_fits_memory(model: &ClipModel, request: &DrawRequest) -> Result<()> {
    let info = model.info();
    let canvas = match request.drawing_canvas() {
        Some(c) => c,
        None => Canvas::new(info.image_size, info.image_size)?,
    };
    let strokes =
        if request.representation == Representation::Strokes { request.strokes } else { 0 };
    let need = crate::request::draw_bytes(
        strokes,
        request.settings.augs,
        canvas,
        info.image_size,
        info.embed_dim,
    );
    let what = format!(
        "{} strokes on a {}x{} canvas with {} augmentations",
        strokes, canvas.width, canvas.height, request.settings.augs
    );
    crate::request::check_fits(need, crate::batch::run::free_memory(model.device()), &what)
}

/// Whether `requests` can be optimised together by [`draw_many`]: strokes without
/// an initial drawing, the same stroke count, every setting but the seed the same.
/// A single request always can.
pub fn batchable(requests: &[DrawRequest]) -> Result<()> {
    let Some(first) = requests.first() else { bail!("no drawings requested") };
    for r in requests {
        plain_for_batch(r)?;
    }
    if requests.len() == 1 {
        return Ok(());
    }
    for r in requests {
        if r.representation != Representation::Strokes || r.init.is_some() {
            bail!("only random-start stroke drawings can be drawn together");
        }
        if r.strokes != first.strokes {
            bail!(
                "drawings drawn together need one stroke count, got {} and {}",
                first.strokes,
                r.strokes
            );
        }
        if !r.settings.same_but_seed(&first.settings) {
            bail!("drawings drawn together must share every setting but the seed");
        }
    }
    Ok(())
}

/// Makes the drawings `requests` ask for together (see [`batchable`]): one render
/// of N scenes and one model forward of N·D images per iteration, each drawing with
/// its own seed's initial strokes and augmentations. `start` continues a run from a
/// [`Step::state`] of the same requests. `on_step` sees all N drawings at once.
pub fn draw_many(
    model: &ClipModel,
    requests: &[DrawRequest],
    start: Option<&LoopState>,
    on_step: impl FnMut(&Step) -> Control,
) -> Result<Vec<Drawing>> {
    for request in requests {
        request.check()?;
    }
    batchable(requests)?;
    let started = Instant::now();
    let dev = model.device();
    let first = &requests[0];
    let settings: Vec<_> = requests.iter().map(|r| r.settings.clone()).collect();
    let targets: Vec<Targets> = requests
        .iter()
        .map(|r| Targets::new(model, &r.prompt, &r.negatives))
        .collect::<Result<_>>()?;
    let size = model.info().image_size;
    let (outcome, images, scenes) = match first.representation {
        Representation::Strokes => {
            let mut scene = match &first.init {
                Some(init) => init.to_device(dev)?,
                None if requests.len() == 1 => Scene::random(
                    1,
                    first.strokes,
                    Canvas::new(size, size)?,
                    settings[0].seed,
                    dev,
                )?,
                None => {
                    let canvas = Canvas::new(size, size)?;
                    let each = settings
                        .iter()
                        .map(|s| Scene::random(1, first.strokes, canvas, s.seed, dev))
                        .collect::<Result<Vec<_>>>()?;
                    Scene::concat(&each)?
                }
            };
            let outcome =
                optimize::optimize_many(model, &mut scene, &targets, &settings, start, on_step)
                    .context("cannot optimise the drawing")?;
            let image = tch::no_grad(|| raster::rasterize(&scene))?; // (N, 3, H, W)
            if requests.len() == 1 {
                (outcome, vec![image], vec![Some(scene)])
            } else {
                let mut images = Vec::with_capacity(requests.len());
                let mut scenes = Vec::with_capacity(requests.len());
                for i in 0..requests.len() as i64 {
                    images.push(image.f_narrow(0, i, 1)?.f_contiguous()?); // (1, 3, H, W)
                    scenes.push(Some(scene.select(i)?));
                }
                (outcome, images, scenes)
            }
        }
        Representation::Pixels => {
            if first.init.is_some() {
                bail!("an initial drawing needs the strokes representation");
            }
            let mut pixels = PixelImage::random(size, size, settings[0].seed, dev)?;
            let outcome =
                optimize::optimize_many(model, &mut pixels, &targets, &settings, start, on_step)
                    .context("cannot optimise the image")?;
            let image = tch::no_grad(|| optimize::Trainable::render(&pixels))?;
            (outcome, vec![image], vec![None])
        }
    };
    let mut drawings = Vec::with_capacity(requests.len());
    for (((request, target), image), scene) in requests.iter().zip(&targets).zip(images).zip(scenes)
    {
        let settings = &request.settings;
        let seed = settings.seed;
        let final_score = optimize::score(model, &image, &target.prompt, FINAL_SCORE_AUGS, seed)?;
        let strokes = scene.as_ref().map(Scene::num_strokes);
        let record = record_of(model, request, strokes, &outcome, final_score, started);
        drawings.push(Drawing { scene, image, record, background: None });
    }
    Ok(drawings)
}

/// The record of a finished run of `request`; the clock started at `started`.
fn record_of(
    model: &ClipModel,
    request: &DrawRequest,
    strokes: Option<i64>,
    outcome: &optimize::Outcome,
    final_score: f64,
    started: Instant,
) -> Record {
    let info = model.info();
    Record {
        tool: TOOL.to_string(),
        version: env!("CARGO_PKG_VERSION").to_string(),
        prompt: request.prompt.clone(),
        negative_prompts: request.negatives.clone(),
        seed: request.settings.seed,
        representation: request.representation,
        strokes,
        settings: request.settings.clone(),
        model: ModelRecord {
            architecture: info.architecture.clone(),
            pretrained: info.pretrained.clone(),
            file: model.name().to_string(),
        },
        iterations_done: outcome.iters_done,
        ending: outcome.ending,
        interrupted: outcome.ending == Ending::Interrupted,
        final_score,
        final_score_augmentations: FINAL_SCORE_AUGS,
        fingerprint: None,
        device: Some(format!("{:?}", model.device())),
        timings: Some(RunTimings {
            wall_s: started.elapsed().as_secs_f64(),
            per_iteration: optimize::per_iter(&outcome.timings, outcome.iters_done),
        }),
        outputs: None,
        parent: request.parent.clone(),
        frozen_strokes: if request.freeze_init {
            request.init.as_ref().map_or(0, Scene::num_strokes)
        } else {
            0
        },
        background: request.background.as_ref().map(|b| b.source.clone()),
        time_limit_s: request.time_limit.map(|t| t.as_secs_f64()),
    }
}

/// [`draw_many`] (and so `clipdraw batch`) draws from random strokes on the model's
/// canvas with free colours and opacities; the iterate features go through [`draw`].
fn plain_for_batch(r: &DrawRequest) -> Result<()> {
    let s = &r.settings;
    let d = Settings::default();
    let unsupported = [
        (r.init.is_some(), "an initial drawing"),
        (r.add_strokes > 0 || r.freeze_init, "added or frozen strokes"),
        (r.canvas.is_some(), "a canvas of its own"),
        (r.background.is_some(), "a background"),
        (r.time_limit.is_some(), "a time limit"),
        (!s.colors.is_any() || !s.opacity.is_free(), "colour or opacity rules"),
        (s.segments != d.segments, "a segment range"),
    ];
    if let Some((_, what)) = unsupported.iter().find(|(on, _)| *on) {
        bail!("drawings made together (clipdraw batch) cannot have {what} yet; draw it alone with clipdraw");
    }
    Ok(())
}

/// The drawing the loop starts from, on `dev`, and how many of its strokes came
/// from the request's initial drawing.
fn initial_scene(request: &DrawRequest, model_size: i64, dev: tch::Device) -> Result<(Scene, i64)> {
    let settings = &request.settings;
    let seed = settings.seed;
    match &request.init {
        Some(init) => {
            let n = init.num_strokes();
            if request.add_strokes == 0 {
                return Ok((init.to_device(dev)?, n));
            }
            let spec = crate::init::stroke_init(init.canvas, settings);
            let added = Scene::random_spec(
                1,
                request.add_strokes,
                init.canvas,
                seed,
                tch::Device::Cpu,
                &spec,
            )?;
            let mut strokes = init.strokes()?;
            strokes.extend(added.strokes()?);
            Ok((Scene::from_strokes(init.canvas, &strokes, dev)?, n))
        }
        None => {
            let canvas = match request.canvas {
                Some(c) => c,
                None => Canvas::new(model_size, model_size)?,
            };
            let strokes = request.strokes;
            let default_init =
                request.canvas.is_none() && settings.segments == Settings::default().segments;
            let scene = if default_init {
                // DESIGN.md's init, unchanged: default drawings stay the same.
                Scene::random(1, strokes, canvas, seed, dev)?
            } else {
                let spec = crate::init::stroke_init(canvas, settings);
                Scene::random_spec(1, strokes, canvas, seed, dev, &spec)?
            };
            Ok((scene, 0))
        }
    }
}
