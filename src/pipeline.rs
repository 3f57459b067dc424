//! One drawing from request to record: [`draw`] is the entry point every caller
//! uses (the binary, the tests, the benches, the examples); [`Drawing`] is what it
//! returns, ready to be written as SVG, PNG and JSON.
//!
//! Data descends once: request → text targets → initial drawing → optimisation
//! loop → final score → record. Nothing here prints or touches the file system.

use std::time::Instant;

use anyhow::{bail, Context, Result};
use tch::Tensor;

use crate::model::ClipModel;
use crate::optimize::{self, Control, Ending, LoopState, PixelImage, Step, Targets};
use crate::raster;
use crate::record::{ModelRecord, Record, RunTimings, TOOL};
use crate::request::{DrawRequest, Representation};
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
}

impl Drawing {
    /// The drawing as a standalone SVG with its portable record in `<metadata>`;
    /// `None` for the pixel representation.
    pub fn svg(&self) -> Result<Option<String>> {
        let Some(scene) = &self.scene else { return Ok(None) };
        let meta = crate::output::xml_escape(&self.record.portable().to_json()?);
        Ok(Some(svg::to_svg(scene, Some(&meta))?))
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
        out.push(Notice::Note(format!(
            "the model never saw {list}; the built-in model knows simple shapes, colours, \
             positions, sizes and counts (use --model with a real CLIP for anything else)"
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
    let mut drawings = draw_many(model, std::slice::from_ref(request), None, on_step)?;
    Ok(drawings.remove(0))
}

/// Whether `requests` can be optimised together by [`draw_many`]: strokes without
/// an initial drawing, the same stroke count, every setting but the seed the same.
/// A single request always can.
pub fn batchable(requests: &[DrawRequest]) -> Result<()> {
    let Some(first) = requests.first() else { bail!("no drawings requested") };
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
        let record = Record {
            tool: TOOL.to_string(),
            version: env!("CARGO_PKG_VERSION").to_string(),
            prompt: request.prompt.clone(),
            negative_prompts: request.negatives.clone(),
            seed,
            representation: request.representation,
            strokes: scene.as_ref().map(Scene::num_strokes),
            settings: settings.clone(),
            model: ModelRecord {
                architecture: model.info().architecture.clone(),
                pretrained: model.info().pretrained.clone(),
                file: model.name().to_string(),
            },
            iterations_done: outcome.iters_done,
            ending: outcome.ending,
            interrupted: outcome.ending == Ending::Interrupted,
            final_score,
            final_score_augmentations: FINAL_SCORE_AUGS,
            fingerprint: None,
            device: Some(format!("{dev:?}")),
            timings: Some(RunTimings {
                wall_s: started.elapsed().as_secs_f64(),
                per_iteration: optimize::per_iter(&outcome.timings, outcome.iters_done),
            }),
            outputs: None,
        };
        drawings.push(Drawing { scene, image, record });
    }
    Ok(drawings)
}
