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
use clipdraw::batch::{Defaults, Shard};
use clipdraw::device::DeviceRequest;
use clipdraw::request::{self, MAX_AUGS, MAX_BATCH_SIZE, MAX_IMAGE_PX, MAX_ITERS, MAX_WIDTH_PX};
use clipdraw::{DrawRequest, Representation, Settings};

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
    #[command(flatten)]
    settings: SettingsArgs,
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
    /// No progress bar, notes or warnings.
    #[arg(short, long)]
    quiet: bool,
    /// Print one JSON summary on stdout (for scripts) instead of the paths.
    #[arg(long)]
    json: bool,
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

/// What one run of the binary is to do, every value checked.
#[derive(Debug)]
pub enum Config {
    Draw(DrawConfig),
    Render(RenderConfig),
    Score(ScoreConfig),
    Tokenize(TokenizeConfig),
    Info(InfoConfig),
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
    pub quiet: bool,
    pub json: bool,
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
        Ok(match self.command {
            Some(Command::Render(a)) => Config::Render(RenderConfig {
                input: a.input,
                output: a.output,
                size_px: a.size,
                force: a.force,
            }),
            Some(Command::Score(a)) => Config::Score(ScoreConfig {
                image: a.image,
                prompt: a.prompt,
                augs: a.augs,
                seed: a.seed,
                model: a.model.model,
                device: a.device.device,
                json: a.json,
            }),
            Some(Command::Tokenize(a)) => {
                Config::Tokenize(TokenizeConfig { prompt: a.prompt, model: a.model })
            }
            Some(Command::Info(a)) => Config::Info(InfoConfig { model: a.model.model }),
            Some(Command::Batch(a)) => Config::Batch(BatchConfig {
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
                quiet: a.quiet,
                json: a.json,
            }),
            Some(Command::Gallery(a)) => Config::Gallery(GalleryConfig { dir: a.dir }),
            None => Config::Draw(self.draw.into_config()?),
        })
    }
}

impl DrawArgs {
    fn into_config(self) -> Result<DrawConfig> {
        let request = DrawRequest {
            // clap requires it and prompt_arg checked it.
            prompt: self.prompt.unwrap_or_default(),
            negatives: self.settings.negatives.clone(),
            representation: self.settings.representation(),
            strokes: self.settings.strokes,
            settings: self.settings.settings(),
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
            quiet: self.quiet,
            json: self.json,
            seeds: self.settings.seeds.map(|s| s.0),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<DrawConfig> {
        let mut v = vec!["clipdraw"];
        v.extend(args);
        match Cli::try_parse_from(v)?.into_config()? {
            Config::Draw(c) => Ok(c),
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
        ] {
            let err = parse(&args).unwrap_err().to_string();
            assert!(err.contains(needle), "{args:?}: {err}");
        }
    }

    #[test]
    fn batch_flags_are_the_draw_flags_with_the_same_defaults() {
        let cfg = |args: &[&str]| {
            let mut v = vec!["clipdraw"];
            v.extend(args);
            Cli::try_parse_from(v)
                .map_err(|e| e.to_string())?
                .into_config()
                .map_err(|e| e.to_string())
        };
        let Ok(Config::Batch(b)) = cfg(&["batch", "jobs.txt", "-o", "out"]) else {
            panic!("not a batch")
        };
        let single = parse(&["x"]).unwrap().request;
        assert_eq!(b.defaults.settings, single.settings);
        assert_eq!(
            (b.defaults.strokes, b.defaults.representation),
            (single.strokes, single.representation)
        );
        assert_eq!((b.checkpoint_every, b.batch_size, b.shard), (25, None, None));
        let Ok(Config::Batch(b)) =
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
