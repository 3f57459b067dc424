//! Command-line flags ("low args") and their validation into one configuration per
//! command ("high args"), in one place. Part of the binary, not the library: the
//! library takes a [`DrawRequest`], so that batch jobs and library users are held
//! to the same limits (`clipdraw::request`) without going through clap.
//!
//! Every check of a flag's value happens here, during parsing, through clap value
//! parsers built on the library's limits; `Cli::into_config` only assembles.

use std::path::PathBuf;

use anyhow::{bail, Result};
use clap::{Args, Parser, Subcommand};
use clipdraw::background::{self, Background};
use clipdraw::batch::{Defaults, Shard};
use clipdraw::constraints::{ColorRule, OpacityRule};
use clipdraw::device::DeviceRequest;
use clipdraw::init::{self, InitFile};
use clipdraw::request::{self, MAX_AUGS, MAX_BATCH_SIZE, MAX_IMAGE_PX, MAX_ITERS, MAX_WIDTH_PX};
use clipdraw::scene::{Canvas, Scene};
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
    /// Draw every job of a job list into a directory; rerun to resume.
    #[command(
        after_help = "JOBS: one prompt per line (# comments), or JSONL objects with \"prompt\" and any\nof name, seed, seeds, negatives, strokes, iters, augs, negative-weight, max-width,\nlr-points, lr-width, lr-color, representation; - reads stdin.\n\nExamples:\n  clipdraw batch prompts.txt -o out --seeds 0..4\n  clipdraw batch jobs.jsonl -o out --shard 1/4\n  sbatch --array=0-3 examples/slurm-array.sh prompts.txt out"
    )]
    Batch(BatchArgs),
    /// Rebuild DIR/index.html and DIR/manifest.jsonl from the drawings' JSON sidecars.
    Gallery(GalleryArgs),
    /// Continue a clipdraw drawing: its strokes, prompt and settings (from the
    /// record in the SVG) unless told otherwise; writes STEM-c1 (then -c2, ...).
    Continue(ContinueArgs),
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

/// A `--seeds` range, expanded (a newtype: clap reads `Option<Vec<_>>` as a
/// repeated flag).
#[derive(Clone, Debug)]
struct SeedList(Vec<u64>);

fn seeds_arg(s: &str) -> Result<SeedList, String> {
    request::parse_seeds(s).map(SeedList).map_err(|e| e.to_string())
}

fn shard_arg(s: &str) -> Result<Shard, String> {
    s.parse().map_err(|e: anyhow::Error| e.to_string())
}

fn checkpoint_parser() -> clap::builder::RangedI64ValueParser<u32> {
    clap::value_parser!(u32).range(0..=MAX_ITERS as i64)
}

fn batch_size_arg(s: &str) -> Result<usize, String> {
    match s.parse::<usize>() {
        Ok(n) if (1..=MAX_BATCH_SIZE).contains(&n) => Ok(n),
        _ => Err(format!("expected a whole number from 1 to {MAX_BATCH_SIZE}, got {s:?}")),
    }
}

fn shards_arg(s: &str) -> Result<usize, String> {
    match s.parse::<usize>() {
        Ok(n) if n >= 1 => Ok(n),
        _ => Err(format!("expected a shard count of at least 1, got {s:?}")),
    }
}

fn iters_parser() -> clap::builder::RangedI64ValueParser<u32> {
    // 0 is only for --init (a round trip); into_config refuses it otherwise.
    clap::value_parser!(u32).range(0..=MAX_ITERS as i64)
}

/// A period in iterations (or strokes): at least 1.
fn every_parser() -> clap::builder::RangedI64ValueParser<u32> {
    clap::value_parser!(u32).range(1..=MAX_ITERS as i64)
}

fn init_arg(s: &str) -> Result<InitFile, String> {
    InitFile::read(std::path::Path::new(s)).map_err(|e| e.to_string())
}

fn background_arg(s: &str) -> Result<PathBuf, String> {
    background::probe(std::path::Path::new(s)).map(|_| PathBuf::from(s)).map_err(|e| e.to_string())
}

fn canvas_arg(s: &str) -> Result<Canvas, String> {
    init::parse_canvas(s).map_err(|e| e.to_string())
}

fn duration_arg(s: &str) -> Result<std::time::Duration, String> {
    init::parse_duration(s).map_err(|e| e.to_string())
}

fn colors_arg(s: &str) -> Result<ColorRule, String> {
    ColorRule::parse(s).map_err(|e| e.to_string())
}

fn width_range_arg(s: &str) -> Result<(f64, f64), String> {
    match init::parse_range(s).map_err(|e| e.to_string())? {
        (lo, hi) if lo >= 0.0 && hi > 0.0 && hi <= MAX_WIDTH_PX => Ok((lo, hi)),
        (lo, hi) => Err(format!(
            "widths {lo}..{hi} px: expected 0 <= MIN <= MAX <= {MAX_WIDTH_PX}, MAX > 0"
        )),
    }
}

fn segments_arg(s: &str) -> Result<(i64, i64), String> {
    let (lo, hi) = init::parse_range(s).map_err(|e| e.to_string())?;
    let whole = |v: f64| v.fract() == 0.0 && (1.0..=3.0).contains(&v);
    if !(whole(lo) && whole(hi)) {
        return Err(format!("segments {lo}..{hi}: expected whole numbers from 1 to 3"));
    }
    Ok((lo as i64, hi as i64))
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
    #[command(flatten)]
    settings: SettingsArgs,
    #[command(flatten)]
    iterate: IterateArgs,
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
    #[arg(long, default_value = "5", value_parser = every_parser(), value_name = "K")]
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
    #[arg(long, default_value = "5", value_parser = every_parser(), value_name = "K")]
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

/// Flags that start a drawing from another or constrain its strokes.
#[derive(Args, Debug)]
struct IterateArgs {
    /// Start from this SVG: a clipdraw SVG restores every stroke; any other SVG gives
    /// its stroked paths (its fills, gradients and text are ignored: pass the same
    /// file as --background to keep them as a fixed picture underneath).
    #[arg(long, value_parser = init_arg, value_name = "FILE.svg")]
    init: Option<InitFile>,
    /// Random strokes to add over the --init drawing.
    #[arg(long, default_value = "0", value_parser = clap::value_parser!(u32).range(0..=request::MAX_STROKES), value_name = "N")]
    add_strokes: u32,
    /// Keep the --init strokes exactly as they are; only added strokes learn.
    #[arg(long)]
    freeze_init: bool,
    /// Canvas size in pixels, up to 4096 a side [default: the model's input size].
    /// Init steps, widths and --lr-points scale with √(W·H)/224.
    #[arg(long, value_parser = canvas_arg, value_name = "WxH", conflicts_with = "init")]
    canvas: Option<Canvas>,
    /// A PNG, JPEG or SVG drawn under the strokes, scaled to cover the canvas
    /// (224x224 unless --canvas or --init says otherwise) and embedded in the SVG.
    #[arg(long, value_parser = background_arg, value_name = "FILE")]
    background: Option<PathBuf>,
    /// Stop optimising after this long (90s, 5m, 1h) and write the drawing.
    #[arg(long, value_parser = duration_arg, value_name = "DURATION")]
    time_limit: Option<std::time::Duration>,
    /// Stroke colours: any, black, or a palette "#rrggbb,#rrggbb,..." (one per stroke).
    #[arg(long, default_value = "any", value_parser = colors_arg, value_name = "RULE")]
    colors: ColorRule,
    /// Stroke opacity: free (optimised) or opaque (always 1).
    #[arg(long, value_enum, default_value_t = OpacityArg::Free)]
    opacity: OpacityArg,
    /// Stroke widths MIN..MAX in canvas pixels (e.g. 2..2 for a fixed width);
    /// replaces --max-width.
    #[arg(long, value_parser = width_range_arg, value_name = "MIN..MAX", conflicts_with = "max_width")]
    width: Option<(f64, f64)>,
    /// Cubic segments per new stroke, MIN..MAX within 1..3.
    #[arg(long, default_value = "1..3", value_parser = segments_arg, value_name = "MIN..MAX")]
    segments: (i64, i64),
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum OpacityArg {
    Free,
    Opaque,
}

#[derive(Args, Debug)]
struct ContinueArgs {
    /// A clipdraw SVG (one with its record).
    #[arg(value_parser = init_arg, value_name = "FILE.svg")]
    file: InitFile,
    /// Optimisation steps [default: as recorded].
    #[arg(long, value_parser = iters_parser(), value_name = "N")]
    iters: Option<u32>,
    /// A new prompt [default: as recorded].
    #[arg(long, value_parser = prompt_arg)]
    prompt: Option<String>,
    /// New negative prompts, replacing the recorded ones (repeatable).
    #[arg(long = "negative", value_name = "PROMPT", value_parser = prompt_arg)]
    negatives: Vec<String>,
    /// Random seed [default: as recorded].
    #[arg(long)]
    seed: Option<u64>,
    /// Random strokes to add over the drawing.
    #[arg(long, default_value = "0", value_parser = clap::value_parser!(u32).range(0..=request::MAX_STROKES), value_name = "N")]
    add_strokes: u32,
    /// Keep the drawing's strokes exactly as they are; only added strokes learn.
    #[arg(long)]
    freeze_init: bool,
    /// A picture under the strokes [default: the recorded one, if its file is
    /// still there with the same SHA-256].
    #[arg(long, value_parser = background_arg, value_name = "FILE")]
    background: Option<PathBuf>,
    /// Stop optimising after this long (90s, 5m, 1h).
    #[arg(long, value_parser = duration_arg, value_name = "DURATION")]
    time_limit: Option<std::time::Duration>,
    #[command(flatten)]
    model: ModelArg,
    #[command(flatten)]
    device: DeviceArg,
    /// Output path stem [default: FILE's stem with -c1, or the next -cN].
    #[arg(short, long, value_name = "STEM")]
    output: Option<PathBuf>,
    /// Size of the PNG's longer side, in pixels.
    #[arg(long, default_value = "512", value_parser = pixels_parser(), value_name = "PX")]
    png_size: u32,
    /// Overwrite existing output files.
    #[arg(long)]
    force: bool,
    /// Print one JSON summary on stdout instead of the paths.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    watch: WatchArgs,
}

/// The settings of a drawing: the flags of a single draw, and every batch job's
/// defaults (a JSONL job's keys have the same names).
#[derive(Args, Debug)]
struct SettingsArgs {
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
    /// One drawing per seed: A..B (B excluded), A..=B (B included) or N.
    #[arg(long, value_name = "A..B", value_parser = seeds_arg, conflicts_with = "seed")]
    seeds: Option<SeedList>,
    /// A prompt to steer away from (repeatable).
    #[arg(long = "negative", value_name = "PROMPT", value_parser = prompt_arg)]
    negatives: Vec<String>,
    /// Weight of each negative prompt in the loss.
    #[arg(long, default_value = "0.3", value_parser = finite_arg, value_name = "W")]
    negative_weight: f64,
    /// Widest allowed stroke, in pixels of the 224-pixel canvas (scaled with --canvas).
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
}

impl SettingsArgs {
    fn representation(&self) -> Representation {
        match self.representation {
            RepresentationArg::Strokes => Representation::Strokes,
            RepresentationArg::Pixels => Representation::Pixels,
        }
    }

    fn settings(&self) -> Settings {
        Settings {
            iters: self.iters,
            augs: self.augs,
            seed: self.seed,
            negative_weight: self.negative_weight,
            min_width_px: 1.0,
            max_width_px: self.max_width,
            lr_points: self.lr_points,
            lr_width: self.lr_width,
            lr_color: self.lr_color,
            ..Settings::default()
        }
    }
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
struct BatchArgs {
    /// Job list: a text or JSONL file, or - for stdin.
    jobs: PathBuf,
    /// Output directory (made if missing); DIR/STEM.svg, .png, .json per job.
    #[arg(short, long, value_name = "DIR")]
    output: PathBuf,
    #[command(flatten)]
    settings: SettingsArgs,
    #[command(flatten)]
    model: ModelArg,
    #[command(flatten)]
    device: DeviceArg,
    /// Size of the PNG's longer side, in pixels.
    #[arg(long, default_value = "512", value_parser = pixels_parser(), value_name = "PX")]
    png_size: u32,
    /// Redraw jobs whose existing drawing or checkpoint was made with other settings.
    #[arg(long)]
    force: bool,
    /// Write each unfinished drawing's state every K iterations (0: only when stopped).
    #[arg(long, default_value = "25", value_parser = checkpoint_parser(), value_name = "K")]
    checkpoint_every: u32,
    /// Drawings optimised together [default: 1 on the CPU; on CUDA, what fits in free memory].
    #[arg(long, value_parser = batch_size_arg, value_name = "N")]
    batch_size: Option<usize>,
    /// Draw only jobs whose index is I modulo N [default: from SLURM_ARRAY_TASK_ID, or JOB_COMPLETION_INDEX with --shards].
    #[arg(long, value_name = "I/N", value_parser = shard_arg, conflicts_with = "shards")]
    shard: Option<Shard>,
    /// Shard count for JOB_COMPLETION_INDEX (Kubernetes Indexed Jobs).
    #[arg(long, value_name = "N", value_parser = shards_arg)]
    shards: Option<usize>,
    /// No progress bars.
    #[arg(short, long)]
    quiet: bool,
    /// Print one JSON line per written drawing on stdout.
    #[arg(long)]
    json: bool,
}

#[derive(Args, Debug)]
struct GalleryArgs {
    /// A directory of drawings made by clipdraw batch (or any clipdraw drawings).
    dir: PathBuf,
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
    Batch(BatchConfig),
    Gallery(GalleryConfig),
}

/// A batch: the job list, every job's defaults, and how to run it.
#[derive(Debug)]
pub struct BatchConfig {
    pub jobs: PathBuf,
    pub defaults: Defaults,
    pub dir: PathBuf,
    pub model: Option<PathBuf>,
    pub device: DeviceRequest,
    pub png_size: u32,
    pub force: bool,
    pub checkpoint_every: u32,
    pub batch_size: Option<usize>,
    pub shard: Option<Shard>,
    pub shards: Option<usize>,
    pub quiet: bool,
    pub json: bool,
}

#[derive(Debug)]
pub struct GalleryConfig {
    pub dir: PathBuf,
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
    /// `--seeds`: one drawing per seed, each at STEM-sSEED.
    pub seeds: Option<Vec<u64>>,
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
            Some(Command::Continue(a)) => CommandConfig::Draw(a.into_config()?),
            Some(Command::Batch(a)) if a.settings.iters == 0 => {
                bail!("--iters must be at least 1 for clipdraw batch (0 is only for --init)")
            }
            Some(Command::Batch(a)) => CommandConfig::Batch(BatchConfig {
                jobs: a.jobs,
                defaults: Defaults {
                    negatives: a.settings.negatives.clone(),
                    representation: a.settings.representation(),
                    strokes: a.settings.strokes,
                    settings: a.settings.settings(),
                    seeds: a.settings.seeds.clone().map(|s| s.0),
                },
                dir: a.output,
                model: a.model.model,
                device: a.device.device,
                png_size: a.png_size,
                force: a.force,
                checkpoint_every: a.checkpoint_every,
                batch_size: a.batch_size,
                shard: a.shard,
                shards: a.shards,
                quiet: ui.level == Level::Quiet,
                json: a.json,
            }),
            Some(Command::Gallery(a)) => CommandConfig::Gallery(GalleryConfig { dir: a.dir }),
            None => CommandConfig::Draw(self.draw.into_config()?),
        };
        Ok(Config { command, ui })
    }
}

impl DrawArgs {
    fn into_config(self) -> Result<DrawConfig> {
        let it = self.iterate;
        let mut settings = Settings {
            colors: it.colors,
            opacity: match it.opacity {
                OpacityArg::Free => OpacityRule::Free,
                OpacityArg::Opaque => OpacityRule::Opaque,
            },
            segments: it.segments,
            ..self.settings.settings()
        };
        if self.settings.iters == 0 && it.init.is_none() {
            bail!("--iters 0 needs --init (it writes the initial drawing back unchanged)");
        }
        if it.freeze_init && it.init.is_none() {
            bail!("--freeze-init needs --init: there is no initial drawing to freeze");
        }
        // Lengths in 224-pixel units follow the canvas; --width is in canvas pixels.
        let canvas = it.init.as_ref().map(|f| f.canvas).or(it.canvas);
        if let Some(c) = canvas {
            let k = init::length_scale(c);
            settings.min_width_px *= k;
            settings.max_width_px = (settings.max_width_px * k).min(MAX_WIDTH_PX);
            settings.lr_points *= k;
        }
        if let Some((lo, hi)) = it.width {
            settings.min_width_px = lo;
            settings.max_width_px = hi;
        }
        let mut request = DrawRequest {
            // clap requires it and prompt_arg checked it.
            prompt: self.prompt.unwrap_or_default(),
            negatives: self.settings.negatives.clone(),
            representation: self.settings.representation(),
            strokes: self.settings.strokes,
            settings,
            ..DrawRequest::new("")
        };
        request.canvas = it.canvas;
        request.time_limit = it.time_limit;
        let background_canvas = canvas.unwrap_or(Canvas::new(224, 224)?);
        if let Some(path) = &it.background {
            request.background = Some(Background::load(path, background_canvas)?);
            request.canvas = Some(background_canvas).filter(|_| it.init.is_none());
        }
        if let Some(file) = it.init {
            start_from(&mut request, file, it.add_strokes as i64, it.freeze_init)?;
        }
        let seeds = self.settings.seeds.clone().map(|s| s.0);
        let mut config = finish_config(
            request,
            self.model.model,
            self.device.device,
            self.output,
            self.png_size,
            self.force,
            self.json,
            self.watch.into_config(self.png_size, self.force),
        )?;
        config.seeds = seeds;
        Ok(config)
    }
}

/// Puts `file`'s strokes into `request` as its initial drawing.
fn start_from(request: &mut DrawRequest, file: InitFile, add: i64, freeze: bool) -> Result<()> {
    request.parent = Some(file.source.clone());
    request.add_strokes = add;
    if file.strokes.is_empty() {
        if add == 0 {
            bail!(
                "{} (add strokes with --add-strokes N to draw over it)",
                file.why_empty.unwrap_or_else(|| "the SVG has no strokes".into())
            );
        }
        // Nothing to start from but the canvas: the added strokes are the drawing.
        request.canvas = Some(file.canvas);
        request.strokes = add;
        request.add_strokes = 0;
        return Ok(());
    }
    if freeze && add == 0 && request.settings.iters > 0 {
        bail!("nothing left to optimise: --freeze-init freezes every stroke; add some with --add-strokes N");
    }
    request.freeze_init = freeze;
    request.canvas = None;
    request.init = Some(Scene::from_strokes(file.canvas, &file.strokes, tch::Device::Cpu)?);
    Ok(())
}

fn finish_config(
    request: DrawRequest,
    model: Option<PathBuf>,
    device: DeviceRequest,
    output: Option<PathBuf>,
    png_size: u32,
    force: bool,
    json: bool,
    watch: WatchConfig,
) -> Result<DrawConfig> {
    // Every flag was checked while parsing; this holds the request to the same
    // rules as any library caller, and cannot disagree with them.
    request.check()?;
    Ok(DrawConfig { request, model, device, output, png_size, force, json, watch, seeds: None })
}

impl ContinueArgs {
    fn into_config(self) -> Result<DrawConfig> {
        let file = self.file;
        let path = PathBuf::from(&file.source.path);
        let Some(record) = file.record.clone() else {
            bail!(
                "{} has no clipdraw record, so there is nothing to continue; start from its strokes with: clipdraw PROMPT --init {}",
                path.display(),
                path.display()
            );
        };
        if record.representation != Representation::Strokes {
            bail!("{} is a pixel drawing; only stroke drawings can be continued", path.display());
        }
        let mut settings = record.settings.clone();
        if let Some(n) = self.iters {
            settings.iters = n;
        }
        if let Some(seed) = self.seed {
            settings.seed = seed;
        }
        let mut request = DrawRequest {
            prompt: self.prompt.unwrap_or(record.prompt.clone()),
            negatives: if self.negatives.is_empty() {
                record.negative_prompts.clone()
            } else {
                self.negatives
            },
            settings,
            time_limit: self.time_limit,
            ..DrawRequest::new("")
        };
        let background = match (&self.background, &record.background) {
            (Some(p), _) => Some(p.clone()),
            (None, Some(rec)) => {
                let p = PathBuf::from(&rec.path);
                let same = std::fs::read(&p)
                    .map(|b| clipdraw::record::FileRef::of(&p, &b).sha256 == rec.sha256)
                    .unwrap_or(false);
                if !same {
                    bail!(
                        "{} was drawn over the background {} (SHA-256 {}), which is no longer there unchanged; pass it with --background FILE",
                        path.display(),
                        rec.path,
                        rec.sha256
                    );
                }
                Some(p)
            }
            (None, None) => None,
        };
        if let Some(p) = &background {
            request.background = Some(Background::load(p, file.canvas)?);
        }
        let output = self.output.or_else(|| Some(next_stem(&path)));
        start_from(&mut request, file, self.add_strokes as i64, self.freeze_init)?;
        finish_config(
            request,
            self.model.model,
            self.device.device,
            output,
            self.png_size,
            self.force,
            self.json,
            self.watch.into_config(self.png_size, self.force),
        )
    }
}

/// `dir/cat-s0.svg` → `dir/cat-s0-c1`; `cat-s0-c1.svg` → `cat-s0-c2`.
fn next_stem(path: &std::path::Path) -> PathBuf {
    let stem = path.with_extension("");
    let name = stem.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
    let next = match name.rsplit_once("-c") {
        Some((head, n)) if !n.is_empty() && n.chars().all(|c| c.is_ascii_digit()) => {
            match n.parse::<u64>() {
                Ok(k) => format!("{head}-c{}", k + 1),
                Err(_) => format!("{name}-c1"),
            }
        }
        _ => format!("{name}-c1"),
    };
    stem.with_file_name(next)
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
    fn continuations_are_numbered() {
        assert_eq!(next_stem(std::path::Path::new("d/cat-s0.svg")), PathBuf::from("d/cat-s0-c1"));
        assert_eq!(next_stem(std::path::Path::new("cat-s0-c1.svg")), PathBuf::from("cat-s0-c2"));
        assert_eq!(next_stem(std::path::Path::new("a-cab.svg")), PathBuf::from("a-cab-c1"));
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
    fn batch_flags_are_the_draw_flags_with_the_same_defaults() {
        let cfg = |args: &[&str]| {
            let mut v = vec!["clipdraw"];
            v.extend(args);
            Cli::try_parse_from(v)
                .map_err(|e| e.to_string())?
                .into_config()
                .map(|c| c.command)
                .map_err(|e| e.to_string())
        };
        let Ok(CommandConfig::Batch(b)) = cfg(&["batch", "jobs.txt", "-o", "out"]) else {
            panic!("not a batch")
        };
        let single = parse(&["x"]).unwrap().request;
        assert_eq!(b.defaults.settings, single.settings);
        assert_eq!(
            (b.defaults.strokes, b.defaults.representation),
            (single.strokes, single.representation)
        );
        assert_eq!((b.checkpoint_every, b.batch_size, b.shard), (25, None, None));
        let Ok(CommandConfig::Batch(b)) =
            cfg(&["batch", "j", "-o", "o", "--iters", "9", "--seeds", "1..=2", "--shard", "1/3"])
        else {
            panic!("not a batch")
        };
        assert_eq!(b.defaults.settings.iters, 9);
        assert_eq!(b.defaults.seeds, Some(vec![1, 2]));
        assert_eq!(b.shard, Some(Shard { index: 1, count: 3 }));
        for (args, needle) in [
            (vec!["batch", "j", "-o", "o", "--iters", "0"], "--iters"),
            (vec!["batch", "j", "-o", "o", "--shard", "3/3"], "--shard"),
            (vec!["batch", "j", "-o", "o", "--batch-size", "0"], "--batch-size"),
            (vec!["batch", "j", "-o", "o", "--seed", "1", "--seeds", "0..2"], "--seed"),
            (vec!["batch", "j", "-o", "o", "--shard", "0/2", "--shards", "2"], "--shard"),
            (vec!["batch", "j"], "--output"),
            (vec!["x", "--seeds", "5..2"], "--seeds"),
        ] {
            let e = cfg(&args).unwrap_err();
            assert!(e.contains(needle), "{args:?}: {e}");
        }
        assert_eq!(parse(&["x", "--seeds", "0..3"]).unwrap().seeds, Some(vec![0, 1, 2]));
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
