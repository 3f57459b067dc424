//! The `clipdraw` binary: parse flags into a checked configuration, dispatch to the
//! library, print results and one-line errors. No tensor code and no pipeline here.

mod args;
mod progress;

use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use anyhow::Result;
use clap::error::{ContextKind, ErrorKind};
use clap::Parser;

use args::{
    BatchConfig, Cli, Config, DrawConfig, GalleryConfig, InfoConfig, RenderConfig, ScoreConfig,
    TokenizeConfig,
};
use clipdraw::batch;
use clipdraw::output::{self, OutputPaths};
use clipdraw::pipeline::{self, Notice};
use clipdraw::tokenizer::Tokenizer;
use clipdraw::{device, optimize::Ending, ClipModel, Control, Representation};

/// Exit status for errors (as ripgrep).
const EXIT_ERROR: i32 = 2;
/// Exit status after Ctrl-C (128 + SIGINT), once the drawing is saved.
const EXIT_INTERRUPTED: i32 = 130;
/// Exit status when the optimisation diverged (the last finite drawing is saved).
const EXIT_DIVERGED: i32 = 1;

fn main() {
    let code = match Cli::try_parse() {
        Ok(cli) => match cli.into_config().and_then(run) {
            Ok(code) => code,
            Err(e) => {
                eprintln!("clipdraw: error: {}", error_line(&e));
                EXIT_ERROR
            }
        },
        Err(e) => match e.kind() {
            ErrorKind::DisplayHelp
            | ErrorKind::DisplayVersion
            | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => e.exit(),
            _ => {
                eprintln!("clipdraw: error: {} (see clipdraw --help)", one_line(&clap_message(&e)));
                EXIT_ERROR
            }
        },
    };
    std::process::exit(code);
}

/// An error and its causes on one line; libtorch's messages lose their C++
/// backtraces.
fn error_line(e: &anyhow::Error) -> String {
    let parts: Vec<String> = e
        .chain()
        .map(|cause| match cause.downcast_ref::<tch::TchError>() {
            Some(t) => format!("libtorch: {}", clipdraw::model::torch_msg(t)),
            None => cause.to_string(),
        })
        .collect();
    one_line(&parts.join(": "))
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// One line for a clap error, from its kind and context rather than its English
/// rendering.
fn clap_message(e: &clap::Error) -> String {
    let ctx = |k| e.get(k).map(|v| v.to_string()).unwrap_or_default();
    let (arg, value) = (ctx(ContextKind::InvalidArg), ctx(ContextKind::InvalidValue));
    let suggestion = |kind, what: &str| {
        let s = ctx(kind);
        if s.is_empty() {
            String::new()
        } else {
            format!("; did you mean {what}{s}?")
        }
    };
    let cause = std::error::Error::source(e).map(|s| s.to_string());
    match e.kind() {
        ErrorKind::UnknownArgument => {
            format!("unknown flag {arg}{}", suggestion(ContextKind::SuggestedArg, ""))
        }
        ErrorKind::InvalidSubcommand => {
            format!("unknown command {arg}{}", suggestion(ContextKind::SuggestedSubcommand, ""))
        }
        ErrorKind::InvalidValue => {
            let valid = ctx(ContextKind::ValidValue);
            let expected =
                if valid.is_empty() { String::new() } else { format!("; expected {valid}") };
            if value.is_empty() {
                format!("{arg} needs a value{expected}")
            } else {
                format!("invalid value '{value}' for {arg}{expected}")
            }
        }
        ErrorKind::ValueValidation => match cause {
            Some(c) => format!("invalid value '{value}' for {arg}: {c}"),
            None => format!("invalid value '{value}' for {arg}"),
        },
        ErrorKind::MissingRequiredArgument => format!("missing {arg}"),
        ErrorKind::MissingSubcommand => "a command is missing".to_string(),
        ErrorKind::ArgumentConflict => {
            format!("{arg} cannot be used with {}", ctx(ContextKind::PriorArg))
        }
        ErrorKind::TooManyValues | ErrorKind::WrongNumberOfValues => {
            format!("unexpected value '{value}' for {arg}")
        }
        ErrorKind::NoEquals if !arg.is_empty() => {
            format!("{arg} is not valid here")
        }
        ErrorKind::InvalidUtf8 => "an argument is not valid UTF-8".to_string(),
        kind => {
            let what = kind.as_str().unwrap_or("invalid arguments");
            if arg.is_empty() {
                what.to_string()
            } else {
                format!("{what}: {arg}")
            }
        }
    }
}

fn run(config: Config) -> Result<i32> {
    match config {
        Config::Draw(c) => draw(c),
        Config::Render(c) => render(c),
        Config::Score(c) => score(c),
        Config::Tokenize(c) => tokenize(c),
        Config::Info(c) => info(c),
        Config::Batch(c) => run_batch(c),
        Config::Gallery(c) => gallery(c),
    }
}

fn run_batch(c: BatchConfig) -> Result<i32> {
    // Installed first: a stop before the first iteration ends the run cleanly.
    progress::install_stop_signals();
    let jobs = batch::jobs::load(&c.jobs, &c.defaults)?;
    let shard = batch::shard::resolve(c.shard, c.shards, |k| std::env::var(k).ok())?;
    let resolved = device::resolve(c.device)?;
    let model = ClipModel::load_or_builtin(c.model.as_deref(), resolved.device)?;
    let batch_size = batch::run::choose_batch_size(c.batch_size, &model, &jobs)?;
    batch::run::prepare_dir(&c.dir)?;
    let opts = batch::Options {
        dir: c.dir.clone(),
        png_size: c.png_size,
        force: c.force,
        checkpoint_every: c.checkpoint_every,
        batch_size,
        shard,
    };
    let mut bars = progress::BatchProgress::new(c.quiet, c.json);
    let stop = || progress::stop_signal().is_some();
    let summary = batch::run(&model, &jobs, &opts, &stop, &mut bars)?;
    bars.finish();
    if summary.stopped {
        let sig = progress::stop_signal().unwrap_or(libc::SIGINT);
        eprintln!(
            "clipdraw: stopped; unfinished drawings are saved with checkpoints; run the same command to resume"
        );
        return Ok(128 + sig);
    }
    if !c.quiet {
        eprintln!(
            "clipdraw: {} drawn, {} already done (shard {}/{}, {} jobs): {}",
            summary.drawn,
            summary.skipped,
            shard.index,
            shard.count,
            summary.total,
            c.dir.join("index.html").display()
        );
    }
    Ok(if summary.diverged > 0 { EXIT_DIVERGED } else { 0 })
}

fn gallery(c: GalleryConfig) -> Result<i32> {
    if !c.dir.is_dir() {
        anyhow::bail!("{} is not a directory", c.dir.display());
    }
    let n = batch::gallery::rebuild(&c.dir)?;
    println!("{}", c.dir.join("index.html").display());
    eprintln!("clipdraw: {n} drawings in the gallery");
    Ok(0)
}

fn notice(n: &Notice) {
    match n {
        Notice::Warning(m) => eprintln!("clipdraw: warning: {m}"),
        Notice::Note(m) => eprintln!("clipdraw: note: {m}"),
    }
}

fn tokenize(c: TokenizeConfig) -> Result<i32> {
    let tokenized = match &c.model {
        Some(p) => ClipModel::load_or_builtin(Some(p), tch::Device::Cpu)?.tokenize(&c.prompt),
        None => Tokenizer::clip()?.tokenize(&c.prompt, 77),
    };
    if tokenized.truncated {
        notice(&Notice::Warning(format!(
            "the prompt is longer than the model's {} tokens; the end was cut off",
            tokenized.ids.len()
        )));
    }
    println!("{}", serde_json::to_string(&tokenized.ids)?);
    Ok(0)
}

fn info(c: InfoConfig) -> Result<i32> {
    let model = ClipModel::load_or_builtin(c.model.as_deref(), tch::Device::Cpu)?;
    println!("{}", serde_json::to_string_pretty(model.info())?);
    Ok(0)
}

fn score(c: ScoreConfig) -> Result<i32> {
    let dev = device::resolve(c.device)?.device;
    let image = output::load_image(&c.image)?;
    let model = ClipModel::load_or_builtin(c.model.as_deref(), dev)?;
    let value = pipeline::score_image(&model, &image, &c.prompt, c.augs, c.seed)?;
    if c.json {
        let v = serde_json::json!({
            "image": c.image, "prompt": c.prompt, "score": value, "augmentations": c.augs,
            "seed": c.seed, "model": model.info().architecture,
        });
        println!("{}", serde_json::to_string(&v)?);
    } else {
        println!("{value:.6}");
    }
    Ok(0)
}

fn render(c: RenderConfig) -> Result<i32> {
    output::check_target(&c.output, c.force)?;
    let png = output::rasterize_svg_file(&c.input, c.size_px)?;
    output::write_atomic(&c.output, &png, c.force)?;
    println!("{}", c.output.display());
    Ok(0)
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

fn progress_bar(iters: u32, quiet: bool) -> indicatif::ProgressBar {
    // Drawn on stderr, so shown only when stderr is a terminal.
    if quiet || !std::io::stderr().is_terminal() {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new(iters as u64);
    if let Ok(style) = indicatif::ProgressStyle::with_template(
        "{bar:30.cyan/blue} {pos}/{len} similarity {msg} {per_sec} ETA {eta}",
    ) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar
}

fn draw(c: DrawConfig) -> Result<i32> {
    // Installed first: a Ctrl-C while the model loads still saves a drawing.
    let hits = install_interrupt_handler();
    match c.seeds.clone() {
        Some(seeds) => draw_seeds(c, &seeds, &hits),
        None => draw_one(c, &hits),
    }
}

/// `--seeds`: one drawing per seed at STEM-sSEED, every target checked first.
fn draw_seeds(c: DrawConfig, seeds: &[u64], hits: &Arc<AtomicUsize>) -> Result<i32> {
    let r = &c.request;
    let configs: Vec<DrawConfig> = seeds
        .iter()
        .map(|&seed| DrawConfig {
            request: clipdraw::DrawRequest {
                prompt: r.prompt.clone(),
                negatives: r.negatives.clone(),
                representation: r.representation,
                strokes: r.strokes,
                settings: clipdraw::Settings { seed, ..r.settings.clone() },
                init: None,
            },
            output: Some(match &c.output {
                Some(stem) => PathBuf::from(format!("{}-s{seed}", stem.display())),
                None => PathBuf::from(output::stem_from_prompt(&r.prompt, seed)),
            }),
            model: c.model.clone(),
            seeds: None,
            ..c
        })
        .collect();
    for one in &configs {
        let with_svg = one.request.representation == Representation::Strokes;
        OutputPaths::from_stem(one.output.as_deref().unwrap_or(std::path::Path::new(".")))
            .check_writable(with_svg, c.force)?;
    }
    for one in configs {
        let code = draw_one(one, hits)?;
        if code != 0 {
            return Ok(code);
        }
    }
    Ok(0)
}

fn draw_one(c: DrawConfig, hits: &Arc<AtomicUsize>) -> Result<i32> {
    let req = &c.request;
    let stem = c
        .output
        .clone()
        .unwrap_or_else(|| PathBuf::from(output::stem_from_prompt(&req.prompt, req.settings.seed)));
    let paths = OutputPaths::from_stem(&stem);
    paths.check_writable(req.representation == Representation::Strokes, c.force)?;
    let resolved = device::resolve(c.device)?;
    let model = ClipModel::load_or_builtin(c.model.as_deref(), resolved.device)?;
    if !c.quiet {
        if let Some(note) = &resolved.note {
            notice(&Notice::Note(note.clone()));
        }
        pipeline::prompt_notices(&model, &req.prompt).iter().for_each(notice);
    }

    let bar = progress_bar(req.settings.iters, c.quiet);
    let drawing = pipeline::draw(&model, req, |step| {
        bar.set_position(step.iter as u64);
        bar.set_message(format!("{:.4}", step.score));
        if hits.load(Ordering::SeqCst) > 0 {
            Control::Stop
        } else {
            Control::Continue
        }
    })?;
    bar.finish_and_clear();
    let written = output::write_drawing(&drawing, &paths, c.png_size, c.force)?;

    let record = &drawing.record;
    if c.json {
        let summary = serde_json::json!({
            "svg": drawing.scene.as_ref().map(|_| &paths.svg), "png": paths.png, "json": paths.json,
            "final_score": record.final_score, "seed": record.seed,
            "iterations_done": record.iterations_done, "ending": record.ending,
            "timings": record.timings,
        });
        println!("{}", serde_json::to_string(&summary)?);
    } else {
        for p in &written {
            println!("{}", p.display());
        }
    }
    match record.ending {
        Ending::Finished => Ok(0),
        Ending::Interrupted => {
            eprintln!(
                "clipdraw: interrupted after {} iterations; the drawing so far is saved",
                record.iterations_done
            );
            Ok(EXIT_INTERRUPTED)
        }
        Ending::NonFinite => {
            eprintln!(
                "clipdraw: error: the loss or a parameter became NaN or infinite at iteration {}; \
                 saved the last finite drawing (try lower learning rates)",
                record.iterations_done + 1
            );
            Ok(EXIT_DIVERGED)
        }
    }
}
