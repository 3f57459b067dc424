//! The `clipdraw` binary: parse flags into a checked configuration, dispatch to the
//! library, print results and one-line errors. No tensor code and no pipeline here.

mod args;
mod progress;
mod ui;
mod version;

use std::io::IsTerminal;
use std::path::PathBuf;

use anyhow::Result;
use clap::error::{ContextKind, ErrorKind};

use args::{
    BatchConfig, Cli, CommandConfig, Config, DrawConfig, GalleryConfig, InfoConfig, RenderConfig,
    ScoreConfig, TokenizeConfig,
};
use clap::{CommandFactory, FromArgMatches};
use clipdraw::batch;
use clipdraw::output::{self, OutputPaths};
use clipdraw::pipeline::{self, Notice};
use clipdraw::signals;
use clipdraw::tokenizer::Tokenizer;
use clipdraw::watch::{TerminalPreview, Watcher};
use clipdraw::{device, optimize::Ending, ClipModel, Control, Representation};
use ui::{ColorChoice, Level, Ui};

/// Exit status for errors (as ripgrep).
const EXIT_ERROR: i32 = 2;
/// Exit status when the optimisation diverged (the last finite drawing is saved).
const EXIT_DIVERGED: i32 = 1;

fn main() {
    let code = match parse() {
        Ok(cli) => match cli.into_config() {
            Ok(config) => {
                let ui = config.ui;
                run(config).unwrap_or_else(|e| {
                    ui.error(&error_line(&e));
                    EXIT_ERROR
                })
            }
            Err(e) => {
                Ui::new(Level::Normal, ColorChoice::from_raw_args()).error(&error_line(&e));
                EXIT_ERROR
            }
        },
        Err(e) => match e.kind() {
            ErrorKind::DisplayHelp
            | ErrorKind::DisplayVersion
            | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => e.exit(),
            _ => {
                let ui = Ui::new(Level::Normal, ColorChoice::from_raw_args());
                ui.error(&format!("{} (see clipdraw --help)", one_line(&clap_message(&e))));
                EXIT_ERROR
            }
        },
    };
    std::process::exit(code);
}

/// The flags, with the long version text built only when it is asked for (it
/// looks at libtorch and the built-in model).
fn parse() -> Result<Cli, clap::Error> {
    let mut cmd = Cli::command();
    if std::env::args().skip(1).any(|a| a == "--version" || a == "-V") {
        // Built once per process that asks, so leaking it costs nothing.
        let text: &'static str = Box::leak(version::long_version().into_boxed_str());
        cmd = cmd.version(text).long_version(text);
    }
    Cli::from_arg_matches(&cmd.try_get_matches()?)
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
    let ui = config.ui;
    match config.command {
        CommandConfig::Draw(c) => draw(c, ui),
        CommandConfig::Render(c) => render(c),
        CommandConfig::Score(c) => score(c, ui),
        CommandConfig::Tokenize(c) => tokenize(c, ui),
        CommandConfig::Info(c) => info(c),
        CommandConfig::Batch(c) => run_batch(c, ui),
        CommandConfig::Gallery(c) => gallery(c, ui),
        CommandConfig::Completions(shell) => {
            clap_complete::generate(shell, &mut Cli::command(), "clipdraw", &mut std::io::stdout());
            Ok(0)
        }
        CommandConfig::Man => {
            clap_mangen::Man::new(Cli::command()).render(&mut std::io::stdout())?;
            Ok(0)
        }
    }
}

fn run_batch(c: BatchConfig, ui: Ui) -> Result<i32> {
    // Installed first: a stop before the first iteration ends the run cleanly.
    signals::install();
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
    let stop = || signals::stop_signal().is_some();
    let summary = batch::run(&model, &jobs, &opts, &stop, &mut bars)?;
    bars.finish();
    if summary.stopped {
        let sig = signals::stop_signal().unwrap_or(libc::SIGINT);
        // Printed even with -q: a cluster job's log must say why it ended.
        eprintln!(
            "clipdraw: stopped; unfinished drawings are saved with checkpoints; run the same command to resume"
        );
        return Ok(signals::exit_status(sig));
    }
    if !c.quiet {
        ui.note(&format!(
            "{} drawn, {} already done (shard {}/{}, {} jobs): {}",
            summary.drawn,
            summary.skipped,
            shard.index,
            shard.count,
            summary.total,
            c.dir.join("index.html").display()
        ));
    }
    Ok(if summary.diverged > 0 { EXIT_DIVERGED } else { 0 })
}

fn gallery(c: GalleryConfig, ui: Ui) -> Result<i32> {
    if !c.dir.is_dir() {
        anyhow::bail!("{} is not a directory", c.dir.display());
    }
    let n = batch::gallery::rebuild(&c.dir)?;
    println!("{}", c.dir.join("index.html").display());
    ui.note(&format!("{n} drawings in the gallery"));
    Ok(0)
}

fn notice(ui: Ui, n: &Notice) {
    match n {
        Notice::Warning(m) => ui.warning(m),
        Notice::Note(m) => ui.note(m),
    }
}

fn tokenize(c: TokenizeConfig, ui: Ui) -> Result<i32> {
    let tokenized = match &c.model {
        Some(p) => ClipModel::load_or_builtin(Some(p), tch::Device::Cpu)?.tokenize(&c.prompt),
        None => Tokenizer::clip()?.tokenize(&c.prompt, 77),
    };
    if tokenized.truncated {
        ui.warning(&format!(
            "the prompt is longer than the model's {} tokens; the end was cut off",
            tokenized.ids.len()
        ));
    }
    println!("{}", serde_json::to_string(&tokenized.ids)?);
    Ok(0)
}

fn info(c: InfoConfig) -> Result<i32> {
    let model = ClipModel::load_or_builtin(c.model.as_deref(), tch::Device::Cpu)?;
    println!("{}", serde_json::to_string_pretty(model.info())?);
    Ok(0)
}

fn score(c: ScoreConfig, ui: Ui) -> Result<i32> {
    let dev = device::resolve(c.device)?.device;
    let image = output::load_image(&c.image)?;
    let model = ClipModel::load_or_builtin(c.model.as_deref(), dev)?;
    ui.info(&format!("device {dev:?}; model {} ({})", model.name(), model.info().architecture));
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

fn progress_bar(iters: u32, ui: Ui) -> indicatif::ProgressBar {
    // Drawn on stderr, so shown only when stderr is a terminal; -vv prints every
    // iteration as a line instead.
    if ui.level == Level::Quiet || ui.debug() || !std::io::stderr().is_terminal() {
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

fn draw(c: DrawConfig, ui: Ui) -> Result<i32> {
    // Installed first: a stop signal while the model loads still saves a drawing
    // (the loop stops after its first step).
    signals::install();
    match c.seeds.clone() {
        Some(seeds) => draw_seeds(c, &seeds, ui),
        None => draw_one(c, ui),
    }
}

/// `--seeds`: one drawing per seed at STEM-sSEED, every target checked first.
fn draw_seeds(c: DrawConfig, seeds: &[u64], ui: Ui) -> Result<i32> {
    let w = &c.watch;
    if w.timelapse.is_some() || w.frames_dir.is_some() || w.preview_png.is_some() {
        anyhow::bail!("--seeds draws several drawings; --timelapse, --frames and --preview-png name one file each (draw one seed at a time for them)");
    }
    let r = &c.request;
    let requests: Vec<clipdraw::DrawRequest> =
        seeds.iter().map(|&seed| r.with_seed(seed)).collect::<Result<_>>()?;
    let configs: Vec<DrawConfig> = seeds
        .iter()
        .zip(requests)
        .map(|(&seed, request)| DrawConfig {
            request,
            output: Some(match &c.output {
                Some(stem) => PathBuf::from(format!("{}-s{seed}", stem.display())),
                None => PathBuf::from(output::stem_from_prompt(&r.prompt, seed)),
            }),
            model: c.model.clone(),
            seeds: None,
            watch: c.watch.clone(),
            ..c
        })
        .collect();
    for one in &configs {
        let with_svg = one.request.representation == Representation::Strokes;
        OutputPaths::from_stem(one.output.as_deref().unwrap_or(std::path::Path::new(".")))
            .check_writable(with_svg, c.force)?;
    }
    for one in configs {
        let code = draw_one(one, ui)?;
        if code != 0 {
            return Ok(code);
        }
    }
    Ok(0)
}

fn draw_one(c: DrawConfig, ui: Ui) -> Result<i32> {
    let req = &c.request;
    let stem = c
        .output
        .clone()
        .unwrap_or_else(|| PathBuf::from(output::stem_from_prompt(&req.prompt, req.settings.seed)));
    let paths = OutputPaths::from_stem(&stem);
    let with_svg = req.representation == Representation::Strokes;
    paths.check_writable(with_svg, c.force)?;
    c.watch.check(req.representation, &paths.written(with_svg))?;
    let resolved = device::resolve(c.device)?;
    let model = ClipModel::load_or_builtin(c.model.as_deref(), resolved.device)?;
    if let Some(note) = &resolved.note {
        ui.note(note);
    }
    pipeline::prompt_notices(&model, &req.prompt).iter().for_each(|n| notice(ui, n));
    if ui.verbose() {
        ui.info(&format!(
            "device {:?}; model {} ({}, {} px, {}-d)",
            resolved.device,
            model.name(),
            model.info().architecture,
            model.info().image_size,
            model.info().embed_dim
        ));
        ui.info(&format!(
            "prompt {:?}, negatives {:?}, {:?}, {} strokes; settings {}",
            req.prompt,
            req.negatives,
            req.representation,
            req.strokes,
            serde_json::to_string(&req.settings)?
        ));
        ui.info(&format!(
            "writing {}",
            paths
                .written(req.representation == Representation::Strokes)
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }

    let bar = progress_bar(req.settings.iters, ui);
    let preview = (c.watch.preview && TerminalPreview::allowed(ui.level == Level::Quiet))
        .then(|| TerminalPreview::new(bar.clone(), c.watch.protocol));
    // Only a run that keeps frames pays for the background's PNG encoding.
    let background = match &req.background {
        Some(b) if c.watch.wants_frames() => Some(b.data_uri()?),
        _ => None,
    };
    let mut watcher = Watcher::new(&c.watch, preview, background);
    let mut watch_error = None;
    let drawing = pipeline::draw(&model, req, |step| {
        bar.set_position(step.iter as u64);
        bar.set_message(format!("{:.4}", step.score));
        if ui.debug() {
            bar.suspend(|| {
                eprintln!(
                    "clipdraw: iteration {}/{}: similarity {:.4}",
                    step.iter, step.iters, step.score
                )
            });
        }
        // A failed frame or preview file stops the run; the drawing is still saved.
        if let Err(e) = watcher.on_step(step) {
            watch_error = Some(e);
        }
        if signals::stop_signal().is_some() || watch_error.is_some() {
            Control::Stop
        } else {
            Control::Continue
        }
    })?;
    let mut written = output::write_drawing(&drawing, &paths, c.png_size, c.force)?;
    if let Some(e) = watch_error {
        bar.finish_and_clear();
        return Err(e.context("cannot watch the drawing (the drawing is saved)"));
    }
    // Up to the last frame, also after Ctrl-C.
    written.extend(watcher.finish(&drawing)?);
    bar.finish_and_clear();

    let record = &drawing.record;
    if let (true, Some(t)) = (ui.verbose(), &record.timings) {
        let p = &t.per_iteration;
        ui.info(&format!(
            "{} iterations in {:.2} s; per iteration {:.4} s: rasterizer {:.4}, augmentation {:.4}, CLIP {:.4}, step {:.4}; final score {:.4}",
            record.iterations_done, t.wall_s, p.total_s, p.raster_s, p.augment_s, p.clip_s, p.step_s, record.final_score
        ));
    }
    if c.json {
        let summary = serde_json::json!({
            "svg": drawing.scene.as_ref().map(|_| &paths.svg), "png": paths.png, "json": paths.json,
            "final_score": record.final_score, "seed": record.seed,
            "iterations_done": record.iterations_done, "ending": record.ending,
            "timings": record.timings, "timelapse": c.watch.timelapse,
        });
        println!("{}", serde_json::to_string(&summary)?);
    } else {
        for p in &written {
            println!("{}", p.display());
        }
    }
    match record.ending {
        Ending::Finished => Ok(0),
        Ending::TimeLimit => {
            ui.note(&format!(
                "the time limit was reached after {} iterations; the drawing is saved",
                record.iterations_done
            ));
            Ok(0)
        }
        Ending::Interrupted => {
            ui.note(&format!(
                "interrupted after {} iterations; the drawing so far is saved",
                record.iterations_done
            ));
            Ok(signals::exit_status(signals::stop_signal().unwrap_or(libc::SIGINT)))
        }
        Ending::OutOfMemory => {
            ui.error(&format!(
                "ran out of memory at iteration {}; saved the drawing so far (try fewer strokes or augmentations, or a smaller canvas)",
                record.iterations_done + 1
            ));
            Ok(EXIT_ERROR)
        }
        Ending::NonFinite => {
            ui.error(&format!(
                "the loss or a parameter became NaN or infinite at iteration {}; \
                 saved the last finite drawing (try lower learning rates)",
                record.iterations_done + 1
            ));
            Ok(EXIT_DIVERGED)
        }
    }
}
