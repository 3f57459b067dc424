//! Running a batch: decide per job (skip, resume, start), draw the rest in groups of
//! up to the batch size, checkpoint every K iterations, write each drawing with its
//! fingerprint, and rebuild the gallery.

use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use serde_json::Value;

use super::checkpoint;
use super::gallery;
use super::jobs::{fnv1a64, job_key, Job};
use super::shard::Shard;
use crate::model::ClipModel;
use crate::optimize::{Ending, LoopState};
use crate::output::{write_drawing, OutputPaths};
use crate::pipeline;
use crate::record::{ModelRecord, Record};
use crate::request::{self, Representation, Settings};
use crate::{Control, DrawRequest};

/// How to run a batch.
#[derive(Debug, Clone)]
pub struct Options {
    pub dir: PathBuf,
    pub png_size: u32,
    /// Redraw jobs whose existing drawing or checkpoint was made with other settings.
    pub force: bool,
    /// Write a checkpoint every this many iterations (0: never, except on stop).
    pub checkpoint_every: u32,
    /// Drawings optimised together.
    pub batch_size: usize,
    pub shard: Shard,
}

/// What a batch run tells its caller as it goes (progress bars, JSON lines).
pub trait Progress {
    /// `total` jobs in this shard, `done` of them finished before this run.
    fn begin(&mut self, _total: usize, _done: usize) {}
    /// A group of jobs starts, at iteration `from` of `iters`.
    fn group(&mut self, _jobs: &[&Job], _from: u32, _iters: u32) {}
    /// An iteration of the current group ended with these per-job scores.
    fn step(&mut self, _iter: u32, _scores: &[f64]) {}
    /// A job's drawing was written (finished, or interrupted if the run stops).
    fn written(&mut self, _job: &Job, _record: &Record, _paths: &OutputPaths) {}
}

/// What a batch run did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Summary {
    /// Jobs of this shard.
    pub total: usize,
    /// Finished before this run, so skipped.
    pub skipped: usize,
    /// Drawn to the end in this run.
    pub drawn: usize,
    /// Ended with non-finite values (the last finite drawing is written).
    pub diverged: usize,
    /// The run was asked to stop; unfinished jobs have checkpoints.
    pub stopped: bool,
}

/// What identifies a job: its settings and the model. The JSON it is the hash of.
pub fn fingerprint_input(r: &DrawRequest, model: &ModelRecord) -> Value {
    let mut v = job_key(r);
    v["model"] = serde_json::json!(model);
    v
}

/// The same from a written record.
fn record_input(r: &Record) -> Value {
    serde_json::json!({
        "prompt": r.prompt,
        "negatives": r.negative_prompts,
        "representation": r.representation,
        "strokes": r.strokes,
        "settings": r.settings,
        "model": r.model,
    })
}

pub fn fingerprint(input: &Value) -> String {
    format!("fnv1a64:{:016x}", fnv1a64(input.to_string().as_bytes()))
}

fn model_record(model: &ClipModel) -> ModelRecord {
    ModelRecord {
        architecture: model.info().architecture.clone(),
        pretrained: model.info().pretrained.clone(),
        file: model.name().to_string(),
    }
}

/// The first setting in which two fingerprint inputs differ, named like its flag,
/// with both values.
fn difference(old: &Value, new: &Value) -> String {
    fn flat(prefix: &str, v: &Value, out: &mut Vec<(String, String)>) {
        match v {
            Value::Object(m) => {
                for (k, x) in m {
                    let key = if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") };
                    flat(&key, x, out);
                }
            }
            other => out.push((prefix.to_string(), other.to_string())),
        }
    }
    let (mut a, mut b) = (Vec::new(), Vec::new());
    flat("", old, &mut a);
    flat("", new, &mut b);
    let get = |list: &[(String, String)], k: &str| {
        list.iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.clone())
            .unwrap_or_else(|| "nothing".into())
    };
    let mut keys: Vec<&String> = a.iter().map(|(k, _)| k).chain(b.iter().map(|(k, _)| k)).collect();
    keys.dedup();
    for k in keys {
        let (x, y) = (get(&a, k), get(&b, k));
        if x != y {
            let name = k
                .trim_start_matches("settings.")
                .replace("model.file", "model")
                .replace("model.", "model ")
                .replace("_px", "")
                .replace('_', "-");
            return format!("{name} is {x} there and {y} in this job");
        }
    }
    "the fingerprints differ".to_string()
}

/// Makes `dir` if needed and checks that files can be written in it.
pub fn prepare_dir(dir: &Path) -> Result<()> {
    if dir.exists() && !dir.is_dir() {
        bail!("the output directory {} is not a directory", dir.display());
    }
    std::fs::create_dir_all(dir)
        .map_err(|e| anyhow!("cannot make the output directory {}: {e}", dir.display()))?;
    crate::output::check_target(&dir.join("index.html"), true)
}

/// A job of this shard that needs drawing.
struct Pending<'a> {
    job: &'a Job,
    fingerprint: String,
    start: Option<LoopState>,
}

/// What to do with `job`: `None` if it is finished; else where to start.
fn plan<'a>(job: &'a Job, model: &ModelRecord, opts: &Options) -> Result<Option<Pending<'a>>> {
    let input = fingerprint_input(&job.request, model);
    let fp = fingerprint(&input);
    let paths = OutputPaths::from_stem(&opts.dir.join(&job.stem));
    // An interrupted (or out-of-memory) drawing resumes from its checkpoint (or
    // afresh without one).
    if paths.json.exists() {
        let text = std::fs::read_to_string(&paths.json)
            .map_err(|e| anyhow!("cannot read {}: {e}", paths.json.display()))?;
        match Record::from_json(&text) {
            Ok(r) if r.fingerprint.as_deref() == Some(fp.as_str()) => {
                if !matches!(r.ending, Ending::Interrupted | Ending::OutOfMemory) {
                    return Ok(None);
                }
            }
            Ok(r) if !opts.force => bail!(
                "job {} ({}): {} exists from other settings: {} (use --force to redraw it)",
                job.stem,
                job.origin,
                paths.json.display(),
                difference(&record_input(&r), &input)
            ),
            Err(e) if !opts.force => bail!(
                "job {} ({}): {} exists and is not usable: {e} (use --force to redraw it)",
                job.stem,
                job.origin,
                paths.json.display()
            ),
            _ => {}
        }
    }
    let ckpt = checkpoint::path(&opts.dir, &job.stem);
    let start = match checkpoint::read(&ckpt)? {
        Some(c) if c.fingerprint == fp => Some(c.state),
        Some(_) if !opts.force => bail!(
            "job {} ({}): its checkpoint {} was made by another job (use --force to start it afresh)",
            job.stem,
            job.origin,
            ckpt.display()
        ),
        _ => None,
    };
    Ok(Some(Pending { job, fingerprint: fp, start }))
}

/// Jobs that can share a forward pass: same settings but the seed, same strokes,
/// same starting iteration; pixel drawings go alone.
fn group_key(p: &Pending) -> String {
    let r = &p.job.request;
    if r.representation == Representation::Pixels {
        return format!("alone:{}", p.job.stem);
    }
    let settings = Settings { seed: 0, ..r.settings.clone() };
    format!(
        "{}:{}:{}",
        serde_json::json!(settings),
        r.strokes,
        p.start.as_ref().map_or(0, |s| s.iter)
    )
}

/// Draws the jobs of `opts.shard` that are not finished, into `opts.dir`.
///
/// Every job is checked (existing drawings and checkpoints against its
/// fingerprint) before any drawing starts. `stop` is polled after every
/// iteration: when it says yes, the current drawings are checkpointed and written
/// as they are, and the run returns with `stopped`.
pub fn run(
    model: &ClipModel,
    jobs: &[Job],
    opts: &Options,
    stop: &dyn Fn() -> bool,
    progress: &mut dyn Progress,
) -> Result<Summary> {
    prepare_dir(&opts.dir)?;
    let mrec = model_record(model);
    let mine: Vec<&Job> =
        jobs.iter().enumerate().filter(|(k, _)| opts.shard.owns(*k)).map(|(_, j)| j).collect();
    let mut pending = Vec::new();
    for job in &mine {
        if let Some(p) = plan(job, &mrec, opts)? {
            pending.push(p);
        }
    }
    let mut summary =
        Summary { total: mine.len(), skipped: mine.len() - pending.len(), ..Summary::default() };
    progress.begin(summary.total, summary.skipped);

    // Groups in order of first appearance, each cut into batches.
    let mut groups: Vec<(String, Vec<Pending>)> = Vec::new();
    for p in pending {
        let key = group_key(&p);
        match groups.iter_mut().find(|(k, _)| *k == key) {
            Some((_, g)) => g.push(p),
            None => groups.push((key, vec![p])),
        }
    }
    let size = opts.batch_size.max(1);
    'groups: for (_, group) in groups {
        let mut rest = group;
        while !rest.is_empty() {
            if stop() {
                summary.stopped = true;
                break 'groups;
            }
            let batch: Vec<Pending> = rest.drain(..size.min(rest.len())).collect();
            let stopped = draw_batch(model, &batch, opts, stop, progress, &mut summary)?;
            if stopped {
                summary.stopped = true;
                break 'groups;
            }
        }
    }
    gallery::rebuild(&opts.dir).context("cannot rebuild the gallery")?;
    Ok(summary)
}

/// Draws one batch; returns whether it was stopped.
fn draw_batch(
    model: &ClipModel,
    batch: &[Pending],
    opts: &Options,
    stop: &dyn Fn() -> bool,
    progress: &mut dyn Progress,
    summary: &mut Summary,
) -> Result<bool> {
    let requests: Vec<DrawRequest> = batch.iter().map(|p| copy_request(&p.job.request)).collect();
    // Batches are grouped by starting iteration: all resume, or none does.
    let saved: Vec<LoopState> =
        batch.iter().filter_map(|p| p.start.as_ref()).map(copy_state).collect::<Result<_>>()?;
    let joined = match saved.len() {
        0 => None,
        n if n == batch.len() => Some(checkpoint::join(&saved)?),
        _ => bail!("internal: a batch mixes resumed and fresh jobs"),
    };
    let jobs: Vec<&Job> = batch.iter().map(|p| p.job).collect();
    let iters = requests[0].settings.iters;
    progress.group(&jobs, joined.as_ref().map_or(0, |s| s.iter), iters);
    let every = opts.checkpoint_every;
    let mut save_error = None;
    let mut stopped = false;
    let drawings = pipeline::draw_many(model, &requests, joined.as_ref(), |step| {
        progress.step(step.iter, step.scores);
        let stopping = stop();
        if stopping || (every > 0 && step.iter % every == 0 && step.iter < step.iters) {
            let saved = step.state().and_then(|state| {
                for (i, p) in batch.iter().enumerate() {
                    let one = if batch.len() == 1 {
                        copy_state(&state)?
                    } else {
                        checkpoint::select(&state, i)?
                    };
                    checkpoint::write(
                        &checkpoint::path(&opts.dir, &p.job.stem),
                        &p.fingerprint,
                        &one,
                    )?;
                }
                Ok(())
            });
            if let Err(e) = saved {
                save_error = Some(e);
                return Control::Stop;
            }
        }
        if stopping {
            stopped = true;
            Control::Stop
        } else {
            Control::Continue
        }
    })?;
    if let Some(e) = save_error {
        return Err(e.context("cannot write a checkpoint"));
    }
    for (p, mut drawing) in batch.iter().zip(drawings) {
        drawing.record.fingerprint = Some(p.fingerprint.clone());
        let paths = OutputPaths::from_stem(&opts.dir.join(&p.job.stem));
        write_drawing(&drawing, &paths, opts.png_size, true)?;
        if drawing.record.ending == Ending::OutOfMemory {
            bail!(
                "ran out of memory at iteration {} of {}; the drawing so far and its checkpoint are saved (run again with a smaller --batch-size, or fewer strokes or augmentations, to resume)",
                drawing.record.iterations_done + 1,
                p.job.stem
            );
        }
        match drawing.record.ending {
            Ending::Interrupted => {}
            ending => {
                let ckpt = checkpoint::path(&opts.dir, &p.job.stem);
                match std::fs::remove_file(&ckpt) {
                    Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                        bail!("cannot remove the checkpoint {}: {e}", ckpt.display())
                    }
                    _ => {}
                }
                summary.drawn += 1;
                summary.diverged += usize::from(ending == Ending::NonFinite);
            }
        }
        progress.written(p.job, &drawing.record, &paths);
    }
    Ok(stopped)
}

fn copy_request(r: &DrawRequest) -> DrawRequest {
    DrawRequest {
        prompt: r.prompt.clone(),
        negatives: r.negatives.clone(),
        representation: r.representation,
        strokes: r.strokes,
        settings: r.settings.clone(),
        ..DrawRequest::new("")
    }
}

fn copy_state(s: &LoopState) -> Result<LoopState> {
    let copy = |v: &Vec<tch::Tensor>| -> Result<Vec<tch::Tensor>> {
        v.iter().map(|t| Ok(t.f_detach_copy()?)).collect()
    };
    Ok(LoopState {
        iter: s.iter,
        rng_word_pos: s.rng_word_pos.clone(),
        params: copy(&s.params)?,
        adam_m: copy(&s.adam_m)?,
        adam_v: copy(&s.adam_v)?,
    })
}

/// Free memory on `device` in bytes, if known: MemAvailable on the CPU,
/// `nvidia-smi` on CUDA.
pub fn free_memory(device: tch::Device) -> Option<u64> {
    match device {
        tch::Device::Cuda(i) => {
            let out = std::process::Command::new("nvidia-smi")
                .args([
                    "--query-gpu=memory.free",
                    "--format=csv,noheader,nounits",
                    "-i",
                    &i.to_string(),
                ])
                .output()
                .ok()?;
            let mib: u64 = String::from_utf8_lossy(&out.stdout).trim().parse().ok()?;
            Some(mib << 20)
        }
        _ => request::available_memory(),
    }
}

/// The batch size to use: `requested`, refused with the estimate if it will not
/// fit; else 1 on the CPU, and on CUDA as many as fit in 80 % of free memory.
pub fn choose_batch_size(
    requested: Option<usize>,
    model: &ClipModel,
    jobs: &[Job],
) -> Result<usize> {
    let info = model.info();
    let (strokes, augs) = jobs
        .iter()
        .map(|j| (j.request.strokes, j.request.settings.augs))
        .fold((1, 0), |(s, a), (s2, a2)| (s.max(s2), a.max(a2)));
    let need = |n: usize| request::batch_bytes(n, strokes, augs, info.image_size, info.embed_dim);
    let free = free_memory(model.device());
    match requested {
        Some(n) => {
            if let Some(free) = free {
                if need(n) > free {
                    bail!(
                        "--batch-size {n} would need about {} of memory ({strokes} strokes, {augs} augmentations per drawing), but only {} is free",
                        request::human_bytes(need(n)),
                        request::human_bytes(free)
                    );
                }
            }
            Ok(n)
        }
        None => match (model.device(), free) {
            (tch::Device::Cuda(_), Some(free)) => {
                let fit =
                    (1..=request::MAX_BATCH_SIZE).take_while(|&n| need(n) <= free / 5 * 4).last();
                Ok(fit.unwrap_or(1).min(jobs.len().max(1)))
            }
            _ => Ok(1),
        },
    }
}
