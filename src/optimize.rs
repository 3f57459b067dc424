//! The CLIPDraw loop: rasterize, augment, embed, score, Adam step, clamp.
//!
//! Shapes (the legend in `lib.rs`): `N` drawings, `D` augmentations, `B` model batch,
//! `V` the model's input side, `E` embedding size, `Q` negative prompts.

use std::time::Instant;

use anyhow::{bail, Result};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use tch::{Kind, Tensor};

use crate::augment::{self, Augmentation};
use crate::device::sync;
use crate::model::ClipModel;
use crate::raster;
use crate::request::Settings;
use crate::scene::Scene;

/// What the loop reports after each iteration.
pub struct Step<'a> {
    /// 1-based iteration just finished.
    pub iter: u32,
    /// Iterations the run will do in all.
    pub iters: u32,
    /// Mean cosine similarity to the prompt over this iteration's augmentations.
    pub score: f64,
    /// The drawing after this iteration's update (for previews and timelapses:
    /// `render()` it, or read its `scene()`); the callback runs without autograd.
    pub drawing: &'a dyn Trainable,
    /// Per drawing of a batch ([`optimize_many`]): its own mean similarity; `score`
    /// is their mean.
    pub scores: &'a [f64],
    slots: &'a [AdamSlot],
    rngs: &'a [ChaCha8Rng],
}

impl Step<'_> {
    /// Everything needed to continue the run exactly from here: what a checkpoint
    /// holds. Copies the tensors to the CPU.
    pub fn state(&self) -> Result<LoopState> {
        let copy = |t: &Tensor| -> Result<Tensor> {
            Ok(t.f_to_device(tch::Device::Cpu)?.f_detach_copy()?)
        };
        Ok(LoopState {
            iter: self.iter,
            rng_word_pos: self.rngs.iter().map(ChaCha8Rng::get_word_pos).collect(),
            params: self.drawing.params().into_iter().map(copy).collect::<Result<_>>()?,
            adam_m: self.slots.iter().map(|s| copy(&s.m)).collect::<Result<_>>()?,
            adam_v: self.slots.iter().map(|s| copy(&s.v)).collect::<Result<_>>()?,
        })
    }
}

/// Where a run stands after an iteration, enough to continue it so that it ends
/// exactly as an uninterrupted run would: the trainable tensors, Adam's moments, the
/// iteration, and the position of every drawing's augmentation RNG in its stream
/// (augmentations are drawn from a stream seeded once, so the position is the
/// whole of the RNG's state). Tensors are (N, …) for N drawings, in
/// [`Trainable::params`] order.
#[derive(Debug)]
pub struct LoopState {
    /// Iterations done.
    pub iter: u32,
    /// Per drawing: `ChaCha8Rng::get_word_pos` of its augmentation RNG.
    pub rng_word_pos: Vec<u128>,
    pub params: Vec<Tensor>,
    pub adam_m: Vec<Tensor>,
    pub adam_v: Vec<Tensor>,
}

impl std::fmt::Debug for Step<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Step")
            .field("iter", &self.iter)
            .field("iters", &self.iters)
            .field("score", &self.score)
            .finish_non_exhaustive()
    }
}

/// Whether the caller wants the loop to go on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Control {
    Continue,
    Stop,
}

/// Where an iteration's time went, summed over the run.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Timings {
    pub total_s: f64,
    pub raster_s: f64,
    pub augment_s: f64,
    pub clip_s: f64,
    pub step_s: f64,
}

/// How the run ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Ending {
    Finished,
    Interrupted,
    /// The loss or a parameter became NaN/inf; the scene is the last finite one.
    NonFinite,
    /// The request's time limit was reached; the drawing is the one at that point.
    TimeLimit,
    /// An iteration could not allocate its memory (CUDA or host); the scene is the
    /// one before it.
    OutOfMemory,
}

/// Runs `f`, turning a panic that carries libtorch's out-of-memory error into that
/// error (tch panics when an operation with a scalar argument fails; see
/// [`crate::panics`]). Any other panic goes on as a panic.
fn guarded<T>(f: impl FnOnce() -> Result<T>) -> Result<T> {
    match crate::panics::catch(f) {
        Ok(r) => r,
        Err(message) => {
            let e = anyhow::anyhow!("{message}");
            if is_out_of_memory(&e) {
                Err(e)
            } else {
                panic!("{message}")
            }
        }
    }
}

/// Whether `e` is libtorch's allocation failure, on CUDA or on the host.
pub fn is_out_of_memory(e: &anyhow::Error) -> bool {
    let text = format!("{e:#}");
    text.contains("out of memory") || text.contains("can't allocate memory")
}

/// What [`optimize`] did.
pub struct Outcome {
    pub iters_done: u32,
    pub ending: Ending,
    pub timings: Timings,
}

/// Adam state of one parameter tensor.
struct AdamSlot {
    m: Tensor,
    v: Tensor,
}

impl AdamSlot {
    fn new(p: &Tensor) -> Self {
        Self { m: p.zeros_like(), v: p.zeros_like() }
    }

    /// One Adam step (β = 0.9, 0.999; ε = 1e-8) on `p` in place, `t` 1-based.
    fn step(&mut self, p: &mut Tensor, lr: f64, t: u32) -> Result<()> {
        let mut g = p.grad();
        if !g.defined() {
            return Ok(());
        }
        let (b1, b2, eps) = (0.9f64, 0.999f64, 1e-8);
        self.m = self.m.f_mul_scalar(b1)?.f_add(&g.f_mul_scalar(1.0 - b1)?)?;
        self.v = self.v.f_mul_scalar(b2)?.f_add(&g.f_square()?.f_mul_scalar(1.0 - b2)?)?;
        let mhat = self.m.f_div_scalar(1.0 - b1.powi(t as i32))?;
        let vhat = self.v.f_div_scalar(1.0 - b2.powi(t as i32))?;
        let update = mhat.f_div(&vhat.f_sqrt()?.f_add_scalar(eps)?)?.f_mul_scalar(lr)?;
        let _ = p.f_sub_(&update)?;
        let _ = g.f_zero_()?;
        Ok(())
    }
}

/// Text side of the loss: the prompt and the negative prompts, unit length.
pub struct Targets {
    /// (1, E)
    pub prompt: Tensor,
    /// (Q, E); Q may be 0.
    pub negatives: Tensor,
}

impl Targets {
    pub fn new(model: &ClipModel, prompt: &str, negatives: &[String]) -> Result<Self> {
        let prompt = model.embed_prompts(&[prompt])?;
        let negatives = if negatives.is_empty() {
            Tensor::f_zeros([0, prompt.size2()?.1], (Kind::Float, model.device()))?
        } else {
            let refs: Vec<&str> = negatives.iter().map(String::as_str).collect();
            model.embed_prompts(&refs)?
        };
        Ok(Self { prompt, negatives })
    }
}

/// `raster` (N, 3, H, W) as the model sees it: (B, 3, V, V) in [0, 1], B = N·max(D, 1),
/// the D augmentations of each drawing, or each drawing resized when D = 0.
fn model_batch(model: &ClipModel, raster: &Tensor, augs: &[Augmentation]) -> Result<Tensor> {
    let size = model.info().image_size;
    if augs.is_empty() {
        augment::resize(raster, size)
    } else {
        augment::apply(raster, augs, size)
    }
}

/// What the loop optimises: strokes (CLIPDraw) or raw pixels (the paper's baseline).
pub trait Trainable {
    /// (height, width) of the rendered image, in pixels.
    fn size(&self) -> (i64, i64);
    /// The image CLIP judges: (1, 3, H, W) in [0, 1], differentiable.
    fn render(&self) -> Result<Tensor>;
    /// The trainable tensors, in `params_mut` order.
    fn params(&self) -> Vec<&Tensor>;
    /// The trainable tensors with their learning rates at 0-based iteration `t`.
    fn params_mut(&mut self, settings: &Settings, t: u32) -> Vec<(&mut Tensor, f64)>;
    /// Projects parameters back into their valid range (no grad).
    fn clamp_(&mut self, settings: &Settings) -> Result<()>;
    fn set_requires_grad(&mut self, on: bool);
    /// Values that share no storage or graph with the live parameters.
    fn snapshot(&self) -> Result<Self>
    where
        Self: Sized;
    fn all_finite(&self) -> Result<bool>;
    /// The strokes, for drawings made of them.
    fn scene(&self) -> Option<&Scene> {
        None
    }
}

fn finite(t: &Tensor) -> Result<bool> {
    Ok(t.f_isfinite()?.f_all()?.f_int64_value(&[])? != 0)
}

impl Trainable for Scene {
    fn size(&self) -> (i64, i64) {
        (self.canvas.height, self.canvas.width)
    }

    fn render(&self) -> Result<Tensor> {
        raster::rasterize(self)
    }

    fn params(&self) -> Vec<&Tensor> {
        vec![&self.points, &self.widths, &self.colors]
    }

    fn params_mut(&mut self, settings: &Settings, t: u32) -> Vec<(&mut Tensor, f64)> {
        vec![
            (&mut self.points, settings.lr_points_at(t)),
            (&mut self.widths, settings.lr_width),
            (&mut self.colors, settings.lr_color),
        ]
    }

    fn clamp_(&mut self, settings: &Settings) -> Result<()> {
        Scene::clamp_(self, settings.min_width_px, settings.max_width_px)
    }

    fn set_requires_grad(&mut self, on: bool) {
        Scene::set_requires_grad(self, on)
    }

    fn snapshot(&self) -> Result<Self> {
        Ok(Scene {
            canvas: self.canvas,
            points: self.points.f_detach_copy()?,
            segments: self.segments.f_detach_copy()?,
            widths: self.widths.f_detach_copy()?,
            colors: self.colors.f_detach_copy()?,
        })
    }

    fn all_finite(&self) -> Result<bool> {
        Ok(finite(&self.points)? && finite(&self.widths)? && finite(&self.colors)?)
    }

    fn scene(&self) -> Option<&Scene> {
        Some(self)
    }
}

/// The paper's pixel baseline: an RGB image parameterised as sigmoid(logits).
pub struct PixelImage {
    /// (1, 3, H, W) float, unbounded.
    pub logits: Tensor,
}

/// Adam learning rate of the pixel baseline (the authors' code).
pub const LR_PIXELS: f64 = 0.01;

impl PixelImage {
    /// Logits N(0, 1) from `seed` (drawn on the CPU, so every device agrees).
    pub fn random(height: i64, width: i64, seed: u64, device: tch::Device) -> Result<Self> {
        use rand::Rng;
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let n = (3 * height * width) as usize;
        // Box–Muller: rand 0.8 has no normal distribution without rand_distr.
        let v: Vec<f32> = (0..n)
            .map(|_| {
                let (u1, u2): (f64, f64) = (rng.gen_range(f64::EPSILON..1.0), rng.gen());
                ((-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()) as f32
            })
            .collect();
        let logits = Tensor::from_slice(&v).f_view([1, 3, height, width])?.f_to_device(device)?;
        Ok(Self { logits })
    }
}

impl Trainable for PixelImage {
    fn size(&self) -> (i64, i64) {
        let s = self.logits.size();
        (s[2], s[3])
    }

    fn render(&self) -> Result<Tensor> {
        Ok(self.logits.f_sigmoid()?)
    }

    fn params(&self) -> Vec<&Tensor> {
        vec![&self.logits]
    }

    fn params_mut(&mut self, _settings: &Settings, _t: u32) -> Vec<(&mut Tensor, f64)> {
        vec![(&mut self.logits, LR_PIXELS)]
    }

    fn clamp_(&mut self, _settings: &Settings) -> Result<()> {
        Ok(())
    }

    fn set_requires_grad(&mut self, on: bool) {
        self.logits = self.logits.detach().set_requires_grad(on);
    }

    fn snapshot(&self) -> Result<Self> {
        Ok(Self { logits: self.logits.f_detach_copy()? })
    }

    fn all_finite(&self) -> Result<bool> {
        finite(&self.logits)
    }
}

/// Optimises `drawing` in place; calls `on_step` after every iteration.
///
/// One drawing at a time: the loss takes a (1, 3, H, W) render.
pub fn optimize<D: Trainable>(
    model: &ClipModel,
    drawing: &mut D,
    targets: &Targets,
    settings: &Settings,
    on_step: impl FnMut(&Step) -> Control,
) -> Result<Outcome> {
    let (targets, settings) = (std::slice::from_ref(targets), std::slice::from_ref(settings));
    optimize_many(model, drawing, targets, settings, None, on_step)
}

/// The augmentation RNG of a drawing with `seed`: one stream per drawing, so a
/// drawing's augmentations do not depend on what else is in its batch.
fn augmentation_rng(seed: u64) -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(seed ^ 0x5eed_a065)
}

/// Optimises the N drawings of `drawing` together, from the start or from `start`:
/// one render of N scenes, one model forward of N·D images, and one Adam step.
///
/// `targets` and `settings` hold one entry per drawing; the settings must agree on
/// everything but the seed, which seeds each drawing's own augmentations. Adam is
/// elementwise and the loss a sum of per-drawing terms, so drawings do not interact
/// except through floating-point summation order in the batched kernels.
pub fn optimize_many<D: Trainable>(
    model: &ClipModel,
    drawing: &mut D,
    targets: &[Targets],
    settings: &[Settings],
    start: Option<&LoopState>,
    mut on_step: impl FnMut(&Step) -> Control,
) -> Result<Outcome> {
    let Some(first) = settings.first() else { bail!("no drawings to optimise") };
    if targets.len() != settings.len() {
        bail!("{} prompts for {} drawings", targets.len(), settings.len());
    }
    if settings.iter().any(|s| !s.same_but_seed(first)) {
        bail!("drawings optimised together must share every setting but the seed");
    }
    let mut rngs: Vec<ChaCha8Rng> = settings.iter().map(|s| augmentation_rng(s.seed)).collect();
    let (height, width) = drawing.size();
    let mut done = 0;
    if let Some(st) = start {
        restore(drawing, first, st, &mut rngs)?;
        done = st.iter;
    }
    drawing.set_requires_grad(true);
    let mut slots: Vec<AdamSlot> =
        drawing.params_mut(first, 0).into_iter().map(|(p, _)| AdamSlot::new(p)).collect();
    if let Some(st) = start {
        for (slot, (m, v)) in slots.iter_mut().zip(st.adam_m.iter().zip(&st.adam_v)) {
            if m.size() != slot.m.size() || v.size() != slot.v.size() {
                bail!(
                    "the saved Adam state has shape {:?}, expected {:?}",
                    m.size(),
                    slot.m.size()
                );
            }
            slot.m = m.f_to_device(slot.m.device())?.f_detach_copy()?;
            slot.v = v.f_to_device(slot.v.device())?.f_detach_copy()?;
        }
    }
    let n = settings.len() as i64;
    let mut timings = Timings::default();
    let start_time = Instant::now();
    let finish = |drawing: &mut D, iters_done, ending, mut timings: Timings| {
        drawing.set_requires_grad(false);
        timings.total_s = start_time.elapsed().as_secs_f64();
        Ok(Outcome { iters_done, ending, timings })
    };
    for t in done + 1..=first.iters {
        let backup = drawing.snapshot()?;
        // One iteration; an allocation failure (CUDA or host out of memory) ends the
        // run with the drawing before it, which the caller saves.
        let stepped = guarded(|| -> Result<(bool, f64, Vec<f64>)> {
            let t0 = Instant::now();
            let image = drawing.render()?; // (N, 3, H, W)
            let (got, _, _, _) = image.size4()?;
            if got != n {
                bail!("the drawing renders {got} images for {n} prompts");
            }
            sync(image.device());
            let t1 = Instant::now();
            let mut parts = Vec::with_capacity(rngs.len());
            for (i, rng) in rngs.iter_mut().enumerate() {
                let augs: Vec<Augmentation> =
                    (0..first.augs).map(|_| Augmentation::random(rng, height, width)).collect();
                let one =
                    if n == 1 { image.shallow_clone() } else { image.f_narrow(0, i as i64, 1)? };
                parts.push(model_batch(model, &one, &augs)?); // (max(D, 1), 3, V, V)
            }
            let batch = if n == 1 { parts.remove(0) } else { Tensor::f_cat(&parts, 0)? }; // (B, 3, V, V)
            sync(batch.device());
            let t2 = Instant::now();
            let feats = model.embed_images(&batch)?; // (B, E), B = N·max(D, 1)
            let per = feats.size2()?.0 / n;
            let mut loss: Option<Tensor> = None;
            let mut sims_each = Vec::with_capacity(targets.len());
            for (i, target) in targets.iter().enumerate() {
                let f = if n == 1 {
                    feats.shallow_clone()
                } else {
                    feats.f_narrow(0, i as i64 * per, per)?
                };
                let sims = f.f_matmul(&target.prompt.f_transpose(0, 1)?)?; // (D, 1)
                let mut term = sims.f_sum(Kind::Float)?.f_neg()?;
                if target.negatives.size()[0] > 0 {
                    let neg = f.f_matmul(&target.negatives.f_transpose(0, 1)?)?; // (D, Q)
                    term =
                        term.f_add(&neg.f_sum(Kind::Float)?.f_mul_scalar(first.negative_weight)?)?;
                }
                loss = Some(match loss {
                    None => term,
                    Some(sum) => sum.f_add(&term)?,
                });
                sims_each.push(sims);
            }
            let Some(loss) = loss else { bail!("no drawings to optimise") };
            loss.f_backward()?;
            let loss_v = loss.f_double_value(&[])?;
            let scores: Vec<f64> = sims_each
                .iter()
                .map(|s| s.f_mean(Kind::Float)?.f_double_value(&[]))
                .collect::<Result<_, _>>()?;
            let score =
                if n == 1 { scores[0] } else { scores.iter().sum::<f64>() / scores.len() as f64 };
            let t3 = Instant::now();
            {
                let _guard = tch::no_grad_guard();
                for (slot, (p, lr)) in slots.iter_mut().zip(drawing.params_mut(first, t - 1)) {
                    slot.step(p, lr, t)?;
                }
                drawing.clamp_(first)?;
            }
            let ok = loss_v.is_finite() && drawing.all_finite()?;
            let t4 = Instant::now();
            timings.raster_s += (t1 - t0).as_secs_f64();
            timings.augment_s += (t2 - t1).as_secs_f64();
            timings.clip_s += (t3 - t2).as_secs_f64();
            timings.step_s += (t4 - t3).as_secs_f64();
            Ok((ok, score, scores))
        });
        let (ok, score, scores) = match stepped {
            Ok(v) => v,
            Err(e) if is_out_of_memory(&e) => {
                *drawing = backup;
                return finish(drawing, t - 1, Ending::OutOfMemory, timings);
            }
            Err(e) => return Err(e),
        };
        if !ok {
            *drawing = backup;
            return finish(drawing, t - 1, Ending::NonFinite, timings);
        }
        let control = {
            let _guard = tch::no_grad_guard();
            let step = Step {
                iter: t,
                iters: first.iters,
                score,
                drawing: &*drawing,
                scores: &scores,
                slots: &slots,
                rngs: &rngs,
            };
            on_step(&step)
        };
        if control == Control::Stop {
            return finish(drawing, t, Ending::Interrupted, timings);
        }
    }
    finish(drawing, first.iters, Ending::Finished, timings)
}

/// Puts a saved state's parameters and RNG positions into `drawing` and `rngs`.
fn restore<D: Trainable>(
    drawing: &mut D,
    settings: &Settings,
    state: &LoopState,
    rngs: &mut [ChaCha8Rng],
) -> Result<()> {
    if state.rng_word_pos.len() != rngs.len() {
        bail!(
            "the saved state is of {} drawings, expected {}",
            state.rng_word_pos.len(),
            rngs.len()
        );
    }
    if state.iter > settings.iters {
        bail!("the saved state is at iteration {}, past the run's {}", state.iter, settings.iters);
    }
    let params = drawing.params_mut(settings, 0);
    if params.len() != state.params.len()
        || state.adam_m.len() != params.len()
        || state.adam_v.len() != params.len()
    {
        bail!("the saved state has {} tensors, expected {}", state.params.len(), params.len());
    }
    for ((p, _), saved) in params.into_iter().zip(&state.params) {
        if p.size() != saved.size() || p.kind() != saved.kind() {
            bail!(
                "a saved tensor has shape {:?} ({:?}), expected {:?} ({:?})",
                saved.size(),
                saved.kind(),
                p.size(),
                p.kind()
            );
        }
        *p = saved.f_to_device(p.device())?.f_detach_copy()?;
    }
    for (rng, &pos) in rngs.iter_mut().zip(&state.rng_word_pos) {
        rng.set_word_pos(pos);
    }
    Ok(())
}

/// The paper's metric: mean cosine similarity between `prompt` ((1, E), unit length)
/// and `k` random augmentations of each of `images` ((N, 3, H, W) in [0, 1]), over
/// all N·k views; `k` = 0 scores each image resized, without augmentation.
pub fn score(
    model: &ClipModel,
    images: &Tensor,
    prompt: &Tensor,
    k: u32,
    seed: u64,
) -> Result<f64> {
    let (_, _, h, w) = images.size4()?;
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let augs: Vec<Augmentation> = (0..k).map(|_| Augmentation::random(&mut rng, h, w)).collect();
    let _guard = tch::no_grad_guard();
    let (mut total, mut views) = (0.0, 0i64);
    // Chunks of 16 keep memory flat for large K; K = 0 is one bare view per image.
    let chunks: Vec<&[Augmentation]> =
        if augs.is_empty() { vec![&[]] } else { augs.chunks(16).collect() };
    for chunk in chunks {
        let feats = model.embed_images(&model_batch(model, images, chunk)?)?; // (B, E)
        views += feats.size2()?.0;
        let sims = feats.f_matmul(&prompt.f_transpose(0, 1)?)?; // (B, 1)
        total += sims.f_sum(Kind::Float)?.f_double_value(&[])?;
    }
    Ok(total / views.max(1) as f64)
}

/// Time spent per iteration in each part.
pub fn per_iter(t: &Timings, iters: u32) -> Timings {
    let n = iters.max(1) as f64;
    Timings {
        total_s: t.total_s / n,
        raster_s: t.raster_s / n,
        augment_s: t.augment_s / n,
        clip_s: t.clip_s / n,
        step_s: t.step_s / n,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adam_matches_the_closed_form_first_step() {
        // With zero state, Adam's first update is lr · g / (|g| + ε) ≈ lr · sign(g).
        let mut p = Tensor::from_slice(&[1.0f32, -2.0, 3.0]).set_requires_grad(true);
        let loss = (&p * Tensor::from_slice(&[2.0f32, -0.5, 0.0])).sum(Kind::Float);
        loss.backward();
        let mut slot = AdamSlot::new(&p);
        {
            let _g = tch::no_grad_guard();
            slot.step(&mut p, 0.1, 1).unwrap();
        }
        let got: Vec<f32> = Vec::<f32>::try_from(p.detach()).unwrap();
        let want = [0.9f32, -1.9, 3.0];
        for (g, w) in got.iter().zip(want) {
            assert!((g - w).abs() < 1e-5, "{got:?} vs {want:?}");
        }
    }
}
