//! Command-line flags ("low args") and their validation into one configuration per
//! command ("high args"), in one place. Part of the binary, not the library: the
//! library takes a [`DrawRequest`], so that batch jobs and library users are held
//! to the same limits (`clipdraw::request`) without going through clap.
//!
//! Every check of a flag's value happens here, during parsing, through clap value
//! parsers built on the library's limits; `Cli::into_config` only assembles.

use std::path::PathBuf;

use anyhow::Result;
use clap::{Args, Parser, Subcommand};
use clipdraw::device::DeviceRequest;
use clipdraw::request::{self, MAX_AUGS, MAX_IMAGE_PX, MAX_ITERS, MAX_WIDTH_PX};
use clipdraw::watch::{Protocol, TimelapseFormat, TimelapseMode, WatchConfig};
use clipdraw::{DrawRequest, Representation, Settings};

use crate::ui::{ColorChoice, Level, Ui};

/// Turn a text prompt into a drawing: CLIPDraw's RGBA Bézier strokes, optimised so
/// that a CLIP model finds the drawing similar to the prompt.
#[derive(Parser, Debug)]
#[command(
    name = "clipdraw",
    version,
    args_conflicts_with_subcommands = true,
    subcommand_negates_reqs = true,
    allow_negative_numbers = true,
    after_help = "Examples:\n  clipdraw \"a drawing of a cat\" --strokes 256 --iters 250 --model vit-b-32.pt\n  clipdraw render cat-s0.svg -o what-clip-sees.png\n  clipdraw tokenize \"a drawing of a cat\""
)]
pub struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    draw: DrawArgs,
    /// Errors only: no progress bar, notes or warnings.
    #[arg(short, long, global = true)]
    quiet: bool,
    /// Say more: -v the resolved settings, device, model and timings; -vv every iteration.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,
    /// When to colour warnings and errors.
    #[arg(long, value_enum, default_value_t = ColorChoice::Auto, global = true, value_name = "WHEN")]
    color: ColorChoice,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Draw an SVG through the differentiable rasterizer (what CLIP sees) to a PNG.
    Render(RenderArgs),
    /// Print a prompt's CLIP token ids, padded to the context length, as one JSON array.
    Tokenize(TokenizeArgs),
    /// Score an image against a prompt: the paper's metric, the mean cosine
    /// similarity over random augmentations.
    Score(ScoreArgs),
    /// Print a model file's metadata as JSON.
    Info(InfoArgs),
    /// Print a shell completion script, e.g. `source <(clipdraw completions bash)`.
    Completions(CompletionsArgs),
    /// Print the man page (roff); scripts/install.sh installs it.
    #[command(hide = true)]
    Man,
}

#[derive(Args, Debug)]
struct CompletionsArgs {
    /// The shell to complete for.
    #[arg(value_enum)]
    shell: clap_complete::Shell,
}

// Value parsers: each turns one flag's text into a checked value, with the
// library's limits and messages.

fn prompt_arg(s: &str) -> Result<String, String> {
    request::check_prompt(s).map(|()| s.to_string()).map_err(|e| e.to_string())
}

fn strokes_arg(s: &str) -> Result<i64, String> {
    let n: i64 = s.parse().map_err(|_| format!("{s:?} is not a whole number"))?;
    request::check_strokes(n).map(|()| n).map_err(|e| e.to_string())
}

fn device_arg(s: &str) -> Result<DeviceRequest, String> {
    s.parse().map_err(|e: anyhow::Error| e.to_string())
}

fn finite_arg(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() => Ok(v),
        _ => Err(format!("expected a finite number, got {s:?}")),
    }
}

fn rate_arg(s: &str) -> Result<f64, String> {
    match finite_arg(s)? {
        v if v >= 0.0 => Ok(v),
        v => Err(format!("expected a number >= 0, got {v}")),
    }
}

fn width_arg(s: &str) -> Result<f64, String> {
    match finite_arg(s)? {
        v if (1.0..=MAX_WIDTH_PX).contains(&v) => Ok(v),
        v => Err(format!("expected a width between 1 and {MAX_WIDTH_PX} pixels, got {v}")),
    }
}

fn iters_parser() -> clap::builder::RangedI64ValueParser<u32> {
    clap::value_parser!(u32).range(1..=MAX_ITERS as i64)
}

fn augs_parser() -> clap::builder::RangedI64ValueParser<u32> {
    clap::value_parser!(u32).range(0..=MAX_AUGS as i64)
}

fn pixels_parser() -> clap::builder::RangedI64ValueParser<u32> {
    clap::value_parser!(u32).range(1..=MAX_IMAGE_PX as i64)
}

#[derive(Args, Debug)]
struct ModelArg {
    /// TorchScript model file (see scripts/export_clip.py) [default: the built-in model].
    #[arg(long, env = "CLIPDRAW_MODEL", value_name = "FILE")]
    model: Option<PathBuf>,
}

#[derive(Args, Debug)]
struct DeviceArg {
    /// Device: auto, cpu, cuda or cuda:N.
    #[arg(long, default_value = "auto", value_parser = device_arg)]
    device: DeviceRequest,
}

#[derive(Args, Debug)]
struct DrawArgs {
    /// What to draw, e.g. "a drawing of a cat".
    #[arg(required = true, value_parser = prompt_arg)]
    prompt: Option<String>,
    /// Number of strokes.
    #[arg(long, default_value = "256", value_parser = strokes_arg, value_name = "N")]
    strokes: i64,
    /// What is optimised: Bézier strokes (CLIPDraw) or the pixels of a 224×224 image
    /// (the paper's baseline; writes PNG and JSON, no SVG).
    #[arg(long, value_enum, default_value_t = RepresentationArg::Strokes)]
    representation: RepresentationArg,
    /// Optimisation steps.
    #[arg(long, default_value = "250", value_parser = iters_parser(), value_name = "N")]
    iters: u32,
    /// Random augmentations per step (0: score the bare drawing).
    #[arg(long, default_value = "8", value_parser = augs_parser(), value_name = "N")]
    augs: u32,
    /// Random seed; the same seed on the CPU gives the same SVG.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// A prompt to steer away from (repeatable).
    #[arg(long = "negative", value_name = "PROMPT", value_parser = prompt_arg)]
    negatives: Vec<String>,
    /// Weight of each negative prompt in the loss.
    #[arg(long, default_value = "0.3", value_parser = finite_arg, value_name = "W")]
    negative_weight: f64,
    /// Widest allowed stroke, in pixels of the 224-pixel canvas.
    #[arg(long, default_value = "50", value_parser = width_arg, value_name = "PX")]
    max_width: f64,
    /// Adam learning rate of control points (pixels).
    #[arg(long, default_value = "1.0", value_parser = rate_arg, value_name = "LR")]
    lr_points: f64,
    /// Adam learning rate of stroke widths.
    #[arg(long, default_value = "0.1", value_parser = rate_arg, value_name = "LR")]
    lr_width: f64,
    /// Adam learning rate of colours.
    #[arg(long, default_value = "0.01", value_parser = rate_arg, value_name = "LR")]
    lr_color: f64,
    #[command(flatten)]
    model: ModelArg,
    #[command(flatten)]
    device: DeviceArg,
    /// Output path stem: writes STEM.svg, STEM.png and STEM.json [default: from the prompt and seed].
    #[arg(short, long, value_name = "STEM")]
    output: Option<PathBuf>,
    /// Size of the PNG's longer side, in pixels.
    #[arg(long, default_value = "512", value_parser = pixels_parser(), value_name = "PX")]
    png_size: u32,
    /// Overwrite existing output files.
    #[arg(long)]
    force: bool,
    /// Print one JSON summary on stdout (for scripts) instead of the paths.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    watch: WatchArgs,
}

/// Watching the drawing form (see `clipdraw::watch`).
#[derive(Args, Debug)]
struct WatchArgs {
    /// Show the drawing live in the terminal above the progress bar, and leave the
    /// final drawing there (off with --quiet, NO_COLOR, or when stdout or stderr is
    /// not a terminal).
    #[arg(long)]
    preview: bool,
    /// How the preview is drawn: kitty or iTerm2 images where the terminal announces
    /// them, else Unicode half-blocks in 24-bit colour.
    #[arg(long, value_enum, default_value_t = ProtocolArg::Auto, value_name = "HOW")]
    preview_protocol: ProtocolArg,
    /// Iterations between preview updates (terminal and --preview-png).
    #[arg(long, default_value = "5", value_parser = iters_parser(), value_name = "K")]
    preview_every: u32,
    /// Rewrite this PNG (atomically) at every preview update, for an image viewer
    /// that reloads on change.
    #[arg(long, value_name = "FILE")]
    preview_png: Option<PathBuf>,
    /// Write a timelapse; the extension picks the format: .svg (animated SVG),
    /// .gif, or .png (APNG, rendered at --png-size).
    #[arg(long, value_name = "FILE", value_parser = timelapse_arg)]
    timelapse: Option<PathBuf>,
    /// What the timelapse and --frames show: the optimisation, or the final drawing
    /// painted stroke by stroke.
    #[arg(long, value_enum, default_value_t = ModeArg::Iterations, value_name = "MODE")]
    timelapse_mode: ModeArg,
    /// Iterations between timelapse frames (strokes per frame with
    /// --timelapse-mode strokes).
    #[arg(long, default_value = "5", value_parser = iters_parser(), value_name = "K")]
    frame_every: u32,
    /// Write every timelapse frame as DIR/frame-00001.png, ... (at --png-size).
    #[arg(long, value_name = "DIR")]
    frames: Option<PathBuf>,
}

fn timelapse_arg(s: &str) -> Result<PathBuf, String> {
    let p = PathBuf::from(s);
    TimelapseFormat::from_path(&p).map(|_| p).map_err(|e| e.to_string())
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum ProtocolArg {
    Auto,
    Blocks,
    Kitty,
    Iterm2,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum ModeArg {
    Iterations,
    Strokes,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum RepresentationArg {
    Strokes,
    Pixels,
}

#[derive(Args, Debug)]
struct ScoreArgs {
    /// PNG, JPEG or SVG file.
    image: PathBuf,
    /// The prompt to compare with.
    #[arg(value_parser = prompt_arg)]
    prompt: String,
    /// Random augmentations to average over (0: the bare image).
    #[arg(long, default_value = "64", value_parser = augs_parser(), value_name = "N")]
    augs: u32,
    /// Seed of the augmentations.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    #[command(flatten)]
    model: ModelArg,
    #[command(flatten)]
    device: DeviceArg,
    /// Print one JSON object instead of the bare score.
    #[arg(long)]
    json: bool,
}

#[derive(Args, Debug)]
struct RenderArgs {
    /// SVG file to render.
    input: PathBuf,
    /// PNG file to write.
    #[arg(short, long)]
    output: PathBuf,
    /// Size of the PNG's longer side, in pixels [default: the SVG's own size].
    #[arg(long, value_name = "PX", value_parser = pixels_parser())]
    size: Option<u32>,
    /// Overwrite an existing output file.
    #[arg(long)]
    force: bool,
}

#[derive(Args, Debug)]
struct TokenizeArgs {
    /// The prompt to tokenize.
    #[arg(value_parser = prompt_arg)]
    prompt: String,
    /// Use this model file's merges and context length [default: CLIP's, 77].
    #[arg(long, env = "CLIPDRAW_MODEL", value_name = "FILE")]
    model: Option<PathBuf>,
}

#[derive(Args, Debug)]
struct InfoArgs {
    #[command(flatten)]
    model: ModelArg,
}

/// What one run of the binary is to do, every value checked, and how much to say.
#[derive(Debug)]
pub struct Config {
    pub command: CommandConfig,
    pub ui: Ui,
}

#[derive(Debug)]
pub enum CommandConfig {
    Draw(DrawConfig),
    Render(RenderConfig),
    Score(ScoreConfig),
    Tokenize(TokenizeConfig),
    Info(InfoConfig),
    Completions(clap_complete::Shell),
    Man,
}

/// A drawing, and how to run and write it.
#[derive(Debug)]
pub struct DrawConfig {
    pub request: DrawRequest,
    pub model: Option<PathBuf>,
    pub device: DeviceRequest,
    pub output: Option<PathBuf>,
    pub png_size: u32,
    pub force: bool,
    pub json: bool,
    pub watch: WatchConfig,
}

#[derive(Debug)]
pub struct RenderConfig {
    pub input: PathBuf,
    pub output: PathBuf,
    pub size_px: Option<u32>,
    pub force: bool,
}

#[derive(Debug)]
pub struct ScoreConfig {
    pub image: PathBuf,
    pub prompt: String,
    pub augs: u32,
    pub seed: u64,
    pub model: Option<PathBuf>,
    pub device: DeviceRequest,
    pub json: bool,
}

#[derive(Debug)]
pub struct TokenizeConfig {
    pub prompt: String,
    pub model: Option<PathBuf>,
}

#[derive(Debug)]
pub struct InfoConfig {
    pub model: Option<PathBuf>,
}

impl Cli {
    /// The configuration these flags ask for.
    pub fn into_config(self) -> Result<Config> {
        let ui = Ui::new(Level::from_flags(self.quiet, self.verbose), self.color);
        let command = match self.command {
            Some(Command::Render(a)) => CommandConfig::Render(RenderConfig {
                input: a.input,
                output: a.output,
                size_px: a.size,
                force: a.force,
            }),
            Some(Command::Score(a)) => CommandConfig::Score(ScoreConfig {
                image: a.image,
                prompt: a.prompt,
                augs: a.augs,
                seed: a.seed,
                model: a.model.model,
                device: a.device.device,
                json: a.json,
            }),
            Some(Command::Tokenize(a)) => {
                CommandConfig::Tokenize(TokenizeConfig { prompt: a.prompt, model: a.model })
            }
            Some(Command::Info(a)) => CommandConfig::Info(InfoConfig { model: a.model.model }),
            Some(Command::Completions(a)) => CommandConfig::Completions(a.shell),
            Some(Command::Man) => CommandConfig::Man,
            None => CommandConfig::Draw(self.draw.into_config()?),
        };
        Ok(Config { command, ui })
    }
}

impl DrawArgs {
    fn into_config(self) -> Result<DrawConfig> {
        let request = DrawRequest {
            // clap requires it and prompt_arg checked it.
            prompt: self.prompt.unwrap_or_default(),
            negatives: self.negatives,
            representation: match self.representation {
                RepresentationArg::Strokes => Representation::Strokes,
                RepresentationArg::Pixels => Representation::Pixels,
            },
            strokes: self.strokes,
            settings: Settings {
                iters: self.iters,
                augs: self.augs,
                seed: self.seed,
                negative_weight: self.negative_weight,
                min_width_px: 1.0,
                max_width_px: self.max_width,
                lr_points: self.lr_points,
                lr_width: self.lr_width,
                lr_color: self.lr_color,
            },
            init: None,
        };
        // Every flag was checked while parsing; this holds the request to the same
        // rules as any library caller, and cannot disagree with them.
        request.check()?;
        Ok(DrawConfig {
            request,
            model: self.model.model,
            device: self.device.device,
            output: self.output,
            png_size: self.png_size,
            force: self.force,
            json: self.json,
            watch: self.watch.into_config(self.png_size, self.force),
        })
    }
}

impl WatchArgs {
    fn into_config(self, png_size: u32, force: bool) -> WatchConfig {
        WatchConfig {
            preview: self.preview,
            protocol: match self.preview_protocol {
                ProtocolArg::Auto => Protocol::Auto,
                ProtocolArg::Blocks => Protocol::Blocks,
                ProtocolArg::Kitty => Protocol::Kitty,
                ProtocolArg::Iterm2 => Protocol::Iterm2,
            },
            preview_every: self.preview_every,
            preview_png: self.preview_png,
            timelapse: self.timelapse,
            mode: match self.timelapse_mode {
                ModeArg::Iterations => TimelapseMode::Iterations,
                ModeArg::Strokes => TimelapseMode::Strokes,
            },
            frame_every: self.frame_every,
            frames_dir: self.frames,
            png_size,
            force,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<DrawConfig> {
        let mut v = vec!["clipdraw"];
        v.extend(args);
        match Cli::try_parse_from(v)?.into_config()?.command {
            CommandConfig::Draw(c) => Ok(c),
            other => anyhow::bail!("not a drawing: {other:?}"),
        }
    }

    #[test]
    fn the_readme_command_parses_with_paper_defaults() {
        let c = parse(&["a drawing of a cat", "--strokes", "256", "--iters", "250"]).unwrap();
        assert_eq!(c.request.prompt, "a drawing of a cat");
        assert_eq!(c.request.strokes, 256);
        assert_eq!(c.request.settings, Settings::default());
        assert_eq!(c.device, DeviceRequest::Auto);
    }

    #[test]
    fn bad_values_are_refused_with_the_flag_named() {
        for (args, needle) in [
            (vec!["   "], "prompt is empty"),
            (vec!["x", "--strokes", "0"], "--strokes"),
            (vec!["x", "--strokes", "-5"], "--strokes"),
            (vec!["x", "--strokes", "100000000"], "memory"),
            (vec!["x", "--iters", "0"], "--iters"),
            (vec!["x", "--augs", "100000"], "--augs"),
            (vec!["x", "--png-size", "0"], "--png-size"),
            (vec!["x", "--max-width", "0.5"], "--max-width"),
            (vec!["x", "--lr-points", "NaN"], "--lr-points"),
            (vec!["x", "--device", "tpu"], "unknown device"),
            (vec!["x", "--negative", ""], "--negative"),
            (vec!["x", "--timelapse", "t.mp4"], "unknown timelapse extension '.mp4'"),
            (vec!["x", "--timelapse", "t"], "no extension"),
            (vec!["x", "--frame-every", "0"], "--frame-every"),
            (vec!["x", "--preview-every", "-1"], "--preview-every"),
        ] {
            let err = parse(&args).unwrap_err().to_string();
            assert!(err.contains(needle), "{args:?}: {err}");
        }
    }

    #[test]
    fn quiet_verbose_and_colour_apply_to_every_command() {
        let ui = |args: &[&str]| {
            let mut v = vec!["clipdraw"];
            v.extend(args);
            Cli::try_parse_from(v).unwrap().into_config().unwrap().ui.level
        };
        assert_eq!(ui(&["x"]), Level::Normal);
        assert_eq!(ui(&["x", "-q"]), Level::Quiet);
        assert_eq!(ui(&["x", "-vv"]), Level::Debug);
        assert_eq!(ui(&["score", "a.png", "x", "-v"]), Level::Verbose);
        assert_eq!(ui(&["tokenize", "x", "-q"]), Level::Quiet);
        assert!(Cli::try_parse_from(["clipdraw", "x", "--color", "sometimes"]).is_err());
    }

    #[test]
    fn every_command_shares_the_same_limits() {
        let cfg = |args: &[&str]| {
            let mut v = vec!["clipdraw"];
            v.extend(args);
            Cli::try_parse_from(v).map_err(|e| e.to_string())
        };
        // The augmentation limit is the same for a drawing and a score.
        let over = (MAX_AUGS + 1).to_string();
        assert!(cfg(&["x", "--augs", &over]).unwrap_err().contains("--augs"));
        assert!(cfg(&["score", "a.png", "x", "--augs", &over]).unwrap_err().contains("--augs"));
        let top = MAX_AUGS.to_string();
        assert!(cfg(&["score", "a.png", "x", "--augs", &top]).is_ok());
        // Empty prompts are refused by every command that takes one.
        for args in [vec!["tokenize", " "], vec!["score", "a.png", ""], vec![""]] {
            assert!(cfg(&args).unwrap_err().contains("prompt is empty"), "{args:?}");
        }
        // Pixel sizes have one range.
        assert!(cfg(&["render", "a.svg", "-o", "b.png", "--size", "0"]).is_err());
        assert!(cfg(&["render", "a.svg", "-o", "b.png", "--size", "16385"]).is_err());
        assert!(cfg(&["x", "--png-size", "16385"]).is_err());
    }
}
