//! The `clipdraw` binary: parse flags, dispatch, print one-line errors.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use anyhow::{anyhow, bail, Context, Result};
use clap::Parser;

use clipdraw::cli::{
    Cli, Command, DrawConfig, InfoArgs, RenderArgs, Representation, ScoreArgs, TokenizeArgs,
};
use clipdraw::device;
use clipdraw::model::ClipModel;
use clipdraw::optimize::{self, Control, Drawing, Ending, PixelImage, Targets};
use clipdraw::output::{self, OutputPaths};
use clipdraw::scene::{Canvas, Scene};
use clipdraw::tokenizer::Tokenizer;
use clipdraw::{raster, svg};

/// Exit status for errors (as ripgrep).
const EXIT_ERROR: i32 = 2;
/// Exit status after Ctrl-C (128 + SIGINT), once the drawing is saved.
const EXIT_INTERRUPTED: i32 = 130;
/// Exit status when the optimisation diverged (the last finite drawing is saved).
const EXIT_DIVERGED: i32 = 1;

/// CLIP's merges, for `tokenize` without a model file.
const CLIP_BPE_GZ: &[u8] = include_bytes!("../assets/bpe_simple_vocab_16e6.txt.gz");
/// How many augmentations score the final drawing recorded in the outputs.
const FINAL_SCORE_AUGS: u32 = 32;

fn main() {
    let code = match Cli::try_parse() {
        Ok(cli) => match run(cli) {
            Ok(code) => code,
            Err(e) => {
                eprintln!("clipdraw: error: {}", one_line(&format!("{e:#}")));
                EXIT_ERROR
            }
        },
        Err(e) => match e.kind() {
            clap::error::ErrorKind::DisplayHelp
            | clap::error::ErrorKind::DisplayVersion
            | clap::error::ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => e.exit(),
            _ => {
                let text = e.render().to_string();
                let mut parts = text
                    .lines()
                    .map(str::trim)
                    .filter(|l| {
                        !l.is_empty() && !l.starts_with("Usage:") && !l.starts_with("For more")
                    })
                    .map(|l| l.strip_prefix("error: ").unwrap_or(l).to_string());
                let first = parts.next().unwrap_or_default();
                let tips: Vec<String> = parts.filter(|l| l.starts_with("tip:")).collect();
                let mut line = first;
                for t in tips {
                    line.push_str("; ");
                    line.push_str(&t);
                }
                eprintln!("clipdraw: error: {} (see clipdraw --help)", one_line(&line));
                EXIT_ERROR
            }
        },
    };
    std::process::exit(code);
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn run(cli: Cli) -> Result<i32> {
    match cli.command {
        Some(Command::Render(a)) => render(a),
        Some(Command::Tokenize(a)) => tokenize(a),
        Some(Command::Info(a)) => info(a),
        Some(Command::Score(a)) => score(a),
        None => draw(cli.draw.validate()?),
    }
}

/// The built-in model: a small CLIP-style model trained on drawings of simple
/// shapes by scripts/train_tiny_clip.py (docs/tiny-model.md says what it knows).
const BUILTIN_MODEL: &[u8] = include_bytes!("../assets/clipdraw-tiny.pt");
/// How outputs name the built-in model.
const BUILTIN_NAME: &str = "built-in";

/// Loads the model a run uses: `--model`, `CLIPDRAW_MODEL`, or the built-in one.
/// Returns it with the name outputs record.
fn load_model(flag: Option<&Path>, device: tch::Device) -> Result<(ClipModel, String)> {
    match flag {
        Some(path) => {
            let model = ClipModel::load(path, device).context("cannot load CLIP model")?;
            let name = path
                .file_name()
                .map_or_else(|| path.display().to_string(), |n| n.to_string_lossy().to_string());
            Ok((model, name))
        }
        None => {
            let model = ClipModel::from_bytes(BUILTIN_MODEL, device)
                .context("cannot load the built-in model")?;
            Ok((model, BUILTIN_NAME.to_string()))
        }
    }
}

/// Tells the user when the prompt has words the model never saw (built-in model).
fn note_unknown_words(model: &ClipModel, prompt: &str, quiet: bool) {
    let unknown = model.unknown_words(prompt);
    if quiet || unknown.is_empty() {
        return;
    }
    let list = unknown.iter().map(|w| format!("\"{w}\"")).collect::<Vec<_>>().join(", ");
    eprintln!(
        "clipdraw: note: the model never saw {list}; the built-in model knows simple shapes, colours, \
         positions, sizes and counts (use --model with a real CLIP for anything else)"
    );
}

fn tokenize(a: TokenizeArgs) -> Result<i32> {
    if a.prompt.trim().is_empty() {
        bail!("the prompt is empty");
    }
    let tokenized = match &a.model {
        Some(p) => load_model(Some(p), tch::Device::Cpu)?.0.tokenize(&a.prompt),
        None => Tokenizer::from_merges_gz(CLIP_BPE_GZ)?.tokenize(&a.prompt, 77),
    };
    if tokenized.truncated {
        eprintln!(
            "clipdraw: warning: the prompt is longer than the model's {} tokens; the end was cut off",
            tokenized.ids.len()
        );
    }
    println!("{}", serde_json::to_string(&tokenized.ids)?);
    Ok(0)
}

fn info(a: InfoArgs) -> Result<i32> {
    let (model, _) = load_model(a.model.model.as_deref(), tch::Device::Cpu)?;
    println!("{}", serde_json::to_string_pretty(model.info())?);
    Ok(0)
}

fn score(a: ScoreArgs) -> Result<i32> {
    if a.prompt.trim().is_empty() {
        bail!("the prompt is empty");
    }
    if !(0..=4096).contains(&a.augs) {
        bail!("--augs must be between 0 and 4096, got {}", a.augs);
    }
    let dev = device::resolve(a.device.parse()?)?.device;
    let image = output::load_image(&a.image)?;
    let (model, _) = load_model(a.model.model.as_deref(), dev)?;
    let prompt = model.embed_prompts(&[a.prompt.as_str()])?;
    let value = optimize::score(&model, &image.to_device(dev), &prompt, a.augs as u32, a.seed)?;
    if a.json {
        let v = serde_json::json!({
            "image": a.image, "prompt": a.prompt, "score": value, "augmentations": a.augs,
            "seed": a.seed, "model": model.info().architecture,
        });
        println!("{}", serde_json::to_string(&v)?);
    } else {
        println!("{value:.6}");
    }
    Ok(0)
}

fn render(a: RenderArgs) -> Result<i32> {
    if let Some(s) = a.size {
        if !(1..=16384).contains(&s) {
            bail!("--size must be between 1 and 16384 pixels, got {s}");
        }
    }
    output::check_target(&a.output, a.force)?;
    let text = std::fs::read_to_string(&a.input)
        .map_err(|e| anyhow!("cannot read {}: {e}", a.input.display()))?;
    let scene = svg::from_svg(&text, tch::Device::Cpu)
        .with_context(|| format!("cannot use {}", a.input.display()))?;
    let scene = match a.size {
        Some(px) => scaled(&scene, px),
        None => scene,
    };
    let image = tch::no_grad(|| raster::rasterize(&scene))?;
    output::write_atomic(&a.output, &output::tensor_to_png(&image)?, a.force)?;
    println!("{}", a.output.display());
    Ok(0)
}

/// The scene with its longer canvas side scaled to `px` pixels.
fn scaled(scene: &Scene, px: i64) -> Scene {
    let c = &scene.canvas;
    let f = px as f64 / c.width.max(c.height) as f64;
    Scene {
        canvas: Canvas {
            width: ((c.width as f64 * f).round() as i64).max(1),
            height: ((c.height as f64 * f).round() as i64).max(1),
        },
        points: &scene.points * f,
        segments: scene.segments.shallow_clone(),
        widths: &scene.widths * f,
        colors: scene.colors.shallow_clone(),
    }
}

/// Ctrl-C count, shared with the signal handler.
fn install_interrupt_handler() -> Arc<AtomicUsize> {
    let hits = Arc::new(AtomicUsize::new(0));
    let h = hits.clone();
    let _ = ctrlc::set_handler(move || {
        // The first Ctrl-C finishes the step and saves; a second one quits at once.
        if h.fetch_add(1, Ordering::SeqCst) >= 1 {
            eprintln!("\nclipdraw: interrupted again; quitting without saving");
            std::process::exit(EXIT_INTERRUPTED);
        }
    });
    hits
}

fn draw(cfg: DrawConfig) -> Result<i32> {
    // Installed first: a Ctrl-C while the model loads still saves a drawing.
    let hits = install_interrupt_handler();
    let strokes = cfg.representation == Representation::Strokes;
    let stem = cfg
        .output
        .clone()
        .unwrap_or_else(|| PathBuf::from(output::stem_from_prompt(&cfg.prompt, cfg.settings.seed)));
    let paths = OutputPaths::from_stem(&stem);
    paths.check_writable(strokes, cfg.force)?;
    let resolved = device::resolve(cfg.device)?;
    let dev = resolved.device;
    let (model, model_name) = load_model(cfg.model.as_deref(), dev)?;
    if let (Some(note), false) = (&resolved.note, cfg.quiet) {
        eprintln!("clipdraw: note: {note}");
    }
    note_unknown_words(&model, &cfg.prompt, cfg.quiet);
    let tokenized = model.tokenize(&cfg.prompt);
    if tokenized.truncated && !cfg.quiet {
        eprintln!(
            "clipdraw: warning: the prompt is longer than the model's {} tokens; the end was cut off",
            model.info().context_length
        );
    }
    let targets = Targets::new(&model, &cfg.prompt, &cfg.negatives)?;
    let size = model.info().image_size;

    let bar = if cfg.quiet || !std::io::stdout().is_terminal() {
        indicatif::ProgressBar::hidden()
    } else {
        let b = indicatif::ProgressBar::new(cfg.settings.iters as u64);
        b.set_style(
            indicatif::ProgressStyle::with_template(
                "{bar:30.cyan/blue} {pos}/{len} similarity {msg} {per_sec} ETA {eta}",
            )
            .expect("the template is valid")
            .progress_chars("=> "),
        );
        b
    };
    let on_step = |step: &optimize::Step| {
        bar.set_position(step.iter as u64);
        bar.set_message(format!("{:.4}", step.score));
        if hits.load(Ordering::SeqCst) > 0 {
            Control::Stop
        } else {
            Control::Continue
        }
    };
    let started = Instant::now();
    let seed = cfg.settings.seed;
    let (outcome, image, scene) = if strokes {
        let canvas = Canvas { width: size, height: size };
        let mut scene = Scene::random(1, cfg.strokes, canvas, seed, dev)?;
        let outcome = optimize::optimize(&model, &mut scene, &targets, &cfg.settings, on_step)?;
        let image = tch::no_grad(|| raster::rasterize(&scene))?;
        (outcome, image, Some(scene))
    } else {
        let mut pixels = PixelImage::random(size, size, seed, dev)?;
        let outcome = optimize::optimize(&model, &mut pixels, &targets, &cfg.settings, on_step)?;
        let image = tch::no_grad(|| pixels.render())?;
        (outcome, image, None)
    };
    bar.finish_and_clear();

    let final_score = optimize::score(&model, &image, &targets.prompt, FINAL_SCORE_AUGS, seed)?;
    let provenance = serde_json::json!({
        "tool": "clipdraw",
        "version": env!("CARGO_PKG_VERSION"),
        "prompt": cfg.prompt,
        "negative_prompts": cfg.negatives,
        "seed": seed,
        "representation": cfg.representation,
        "strokes": if strokes { Some(cfg.strokes) } else { None },
        "settings": cfg.settings,
        "model": {
            "architecture": model.info().architecture,
            "pretrained": model.info().pretrained,
            "file": model_name,
        },
        "iterations_done": outcome.iters_done,
        "ending": outcome.ending,
        "interrupted": outcome.ending == Ending::Interrupted,
        "final_score": final_score,
        "final_score_augmentations": FINAL_SCORE_AUGS,
    });
    let (svg_text, png) = match &scene {
        Some(scene) => {
            let meta = output::xml_escape(&serde_json::to_string(&provenance)?);
            let svg_text = svg::to_svg(scene, Some(&meta))?;
            let png = output::svg_to_png(&svg_text, cfg.png_size)?;
            (Some(svg_text), png)
        }
        None => (None, output::tensor_to_png(&image)?),
    };
    let per_iter = optimize::per_iter(&outcome.timings, outcome.iters_done);
    let mut sidecar = provenance.clone();
    sidecar["device"] = serde_json::json!(format!("{dev:?}"));
    sidecar["timings"] = serde_json::json!({
        "wall_s": started.elapsed().as_secs_f64(),
        "per_iteration": per_iter,
    });
    let written: Vec<&Path> = paths.written(strokes);
    sidecar["outputs"] = serde_json::json!(written);
    if let Some(svg_text) = &svg_text {
        output::write_atomic(&paths.svg, svg_text.as_bytes(), cfg.force)?;
    }
    output::write_atomic(&paths.png, &png, cfg.force)?;
    output::write_atomic(
        &paths.json,
        serde_json::to_string_pretty(&sidecar)?.as_bytes(),
        cfg.force,
    )?;

    if cfg.json {
        let summary = serde_json::json!({
            "svg": svg_text.as_ref().map(|_| &paths.svg), "png": paths.png, "json": paths.json,
            "final_score": final_score, "seed": seed,
            "iterations_done": outcome.iters_done, "ending": outcome.ending,
            "timings": sidecar["timings"],
        });
        println!("{}", serde_json::to_string(&summary)?);
    } else {
        for p in &written {
            println!("{}", p.display());
        }
    }
    match outcome.ending {
        Ending::Finished => Ok(0),
        Ending::Interrupted => {
            eprintln!(
                "clipdraw: interrupted after {} iterations; the drawing so far is saved",
                outcome.iters_done
            );
            Ok(EXIT_INTERRUPTED)
        }
        Ending::NonFinite => {
            eprintln!(
                "clipdraw: error: the loss or a parameter became NaN or infinite at iteration {}; \
                 saved the last finite drawing (try lower learning rates)",
                outcome.iters_done + 1
            );
            Ok(EXIT_DIVERGED)
        }
    }
}
