//! Command-line flags ("low args") and their validation into a configuration
//! ("high args"). Nothing here touches a model or a tensor.

use std::path::PathBuf;

use anyhow::{bail, Result};
use clap::{Args, Parser, Subcommand};

use crate::device::DeviceRequest;
use crate::optimize::Settings;

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
    pub command: Option<Command>,
    #[command(flatten)]
    pub draw: DrawArgs,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Draw an SVG through the differentiable rasterizer (what CLIP sees) to a PNG.
    Render(RenderArgs),
    /// Print a prompt's CLIP token ids, padded to the context length, as one JSON array.
    Tokenize(TokenizeArgs),
    /// Score an image against a prompt: the paper's metric, the mean cosine
    /// similarity over random augmentations.
    Score(ScoreArgs),
    /// Print a model file's metadata as JSON.
    Info(InfoArgs),
}

#[derive(Args, Debug)]
pub struct ScoreArgs {
    /// PNG, JPEG or SVG file.
    pub image: PathBuf,
    /// The prompt to compare with.
    pub prompt: String,
    /// Random augmentations to average over (0: the bare image).
    #[arg(long, default_value_t = 64)]
    pub augs: i64,
    /// Seed of the augmentations.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    #[command(flatten)]
    pub model: ModelArg,
    /// Device: auto, cpu, cuda or cuda:N.
    #[arg(long, default_value = "auto")]
    pub device: String,
    /// Print one JSON object instead of the bare score.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct ModelArg {
    /// TorchScript model file (see scripts/export_clip.py).
    #[arg(long, env = "CLIPDRAW_MODEL", value_name = "FILE")]
    pub model: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub struct DrawArgs {
    /// What to draw, e.g. "a drawing of a cat".
    #[arg(required = true)]
    pub prompt: Option<String>,
    /// Number of strokes.
    #[arg(long, default_value_t = 256)]
    pub strokes: i64,
    /// What is optimised: Bézier strokes (CLIPDraw) or the pixels of a 224×224 image
    /// (the paper's baseline; writes PNG and JSON, no SVG).
    #[arg(long, value_enum, default_value_t = Representation::Strokes)]
    pub representation: Representation,
    /// Optimisation steps.
    #[arg(long, default_value_t = 250)]
    pub iters: i64,
    /// Random augmentations per step (0: score the bare drawing).
    #[arg(long, default_value_t = 8)]
    pub augs: i64,
    /// Random seed; the same seed on the CPU gives the same SVG.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// A prompt to steer away from (repeatable).
    #[arg(long = "negative", value_name = "PROMPT")]
    pub negatives: Vec<String>,
    /// Weight of each negative prompt in the loss.
    #[arg(long, default_value_t = 0.3)]
    pub negative_weight: f64,
    /// Widest allowed stroke, in pixels of the 224-pixel canvas.
    #[arg(long, default_value_t = 50.0, value_name = "PX")]
    pub max_width: f64,
    /// Adam learning rate of control points (pixels).
    #[arg(long, default_value_t = 1.0)]
    pub lr_points: f64,
    /// Adam learning rate of stroke widths.
    #[arg(long, default_value_t = 0.1)]
    pub lr_width: f64,
    /// Adam learning rate of colours.
    #[arg(long, default_value_t = 0.01)]
    pub lr_color: f64,
    #[command(flatten)]
    pub model: ModelArg,
    /// Device: auto, cpu, cuda or cuda:N.
    #[arg(long, default_value = "auto")]
    pub device: String,
    /// Output path stem: writes STEM.svg, STEM.png and STEM.json [default: from the prompt and seed].
    #[arg(short, long, value_name = "STEM")]
    pub output: Option<PathBuf>,
    /// Size of the PNG's longer side, in pixels.
    #[arg(long, default_value_t = 512, value_name = "PX")]
    pub png_size: i64,
    /// Overwrite existing output files.
    #[arg(long)]
    pub force: bool,
    /// No progress bar, notes or warnings.
    #[arg(short, long)]
    pub quiet: bool,
    /// Print one JSON summary on stdout (for scripts) instead of the paths.
    #[arg(long)]
    pub json: bool,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Representation {
    Strokes,
    Pixels,
}

#[derive(Args, Debug)]
pub struct RenderArgs {
    /// SVG file to render.
    pub input: PathBuf,
    /// PNG file to write.
    #[arg(short, long)]
    pub output: PathBuf,
    /// Size of the PNG's longer side, in pixels [default: the SVG's own size].
    #[arg(long, value_name = "PX")]
    pub size: Option<i64>,
    /// Overwrite an existing output file.
    #[arg(long)]
    pub force: bool,
}

#[derive(Args, Debug)]
pub struct TokenizeArgs {
    /// The prompt to tokenize.
    pub prompt: String,
    /// Use this model file's merges and context length [default: CLIP's, 77].
    #[arg(long, env = "CLIPDRAW_MODEL", value_name = "FILE")]
    pub model: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub struct InfoArgs {
    #[command(flatten)]
    pub model: ModelArg,
}

/// The most strokes any run may ask for; far beyond what any drawing needs.
pub const MAX_STROKES: i64 = 100_000;
/// Rough peak memory per stroke for a grown drawing (fragments, graph, Adam state).
pub const BYTES_PER_STROKE: u64 = 2 << 20;

/// A validated drawing request.
#[derive(Debug)]
pub struct DrawConfig {
    pub prompt: String,
    pub negatives: Vec<String>,
    pub strokes: i64,
    pub representation: Representation,
    pub settings: Settings,
    pub model: Option<PathBuf>,
    pub device: DeviceRequest,
    pub output: Option<PathBuf>,
    pub png_size: u32,
    pub force: bool,
    pub quiet: bool,
    pub json: bool,
}

fn human_bytes(b: u64) -> String {
    let units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut v = b as f64;
    let mut i = 0;
    while v >= 1024.0 && i + 1 < units.len() {
        v /= 1024.0;
        i += 1;
    }
    format!("{v:.1} {}", units[i])
}

/// Memory the machine says is available, from /proc/meminfo (Linux), if known.
pub fn available_memory() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

impl DrawArgs {
    /// Checks every value before any work starts.
    pub fn validate(self) -> Result<DrawConfig> {
        let prompt = self.prompt.unwrap_or_default();
        if prompt.trim().is_empty() {
            bail!("the prompt is empty; say what to draw, e.g. clipdraw \"a drawing of a cat\"");
        }
        for n in &self.negatives {
            if n.trim().is_empty() {
                bail!("a --negative prompt is empty");
            }
        }
        if self.strokes < 1 {
            bail!("--strokes must be at least 1, got {}", self.strokes);
        }
        let need = self.strokes as u64 * BYTES_PER_STROKE;
        if self.strokes > MAX_STROKES {
            bail!(
                "--strokes {} is too many: it would need about {} of memory (at most {MAX_STROKES} strokes)",
                self.strokes,
                human_bytes(need)
            );
        }
        if let Some(avail) = available_memory() {
            if need > avail {
                bail!(
                    "--strokes {} would need about {} of memory, but only {} is available",
                    self.strokes,
                    human_bytes(need),
                    human_bytes(avail)
                );
            }
        }
        if !(1..=1_000_000).contains(&self.iters) {
            bail!("--iters must be between 1 and 1000000, got {}", self.iters);
        }
        if !(0..=256).contains(&self.augs) {
            bail!("--augs must be between 0 and 256, got {}", self.augs);
        }
        if !(1..=16384).contains(&self.png_size) {
            bail!("--png-size must be between 1 and 16384 pixels, got {}", self.png_size);
        }
        if !(self.max_width.is_finite() && self.max_width >= 1.0 && self.max_width <= 1000.0) {
            bail!("--max-width must be between 1 and 1000 pixels, got {}", self.max_width);
        }
        for (name, v) in [
            ("--lr-points", self.lr_points),
            ("--lr-width", self.lr_width),
            ("--lr-color", self.lr_color),
        ] {
            if !(v.is_finite() && v >= 0.0) {
                bail!("{name} must be a finite number ≥ 0, got {v}");
            }
        }
        if !self.negative_weight.is_finite() {
            bail!("--negative-weight must be finite, got {}", self.negative_weight);
        }
        let device: DeviceRequest = self.device.parse()?;
        Ok(DrawConfig {
            prompt,
            negatives: self.negatives,
            strokes: self.strokes,
            representation: self.representation,
            settings: Settings {
                iters: self.iters as u32,
                augs: self.augs as u32,
                seed: self.seed,
                negative_weight: self.negative_weight,
                min_width_px: 1.0,
                max_width_px: self.max_width,
                lr_points: self.lr_points,
                lr_width: self.lr_width,
                lr_color: self.lr_color,
            },
            model: self.model.model,
            device,
            output: self.output,
            png_size: self.png_size as u32,
            force: self.force,
            quiet: self.quiet,
            json: self.json,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<DrawConfig> {
        let mut v = vec!["clipdraw"];
        v.extend(args);
        let cli = Cli::try_parse_from(v)?;
        cli.draw.validate()
    }

    #[test]
    fn the_readme_command_parses_with_paper_defaults() {
        let c = parse(&["a drawing of a cat", "--strokes", "256", "--iters", "250"]).unwrap();
        assert_eq!(c.prompt, "a drawing of a cat");
        assert_eq!(c.strokes, 256);
        assert_eq!(c.settings, Settings::default());
    }

    #[test]
    fn bad_values_are_refused_with_the_flag_named() {
        for (args, needle) in [
            (vec!["   "], "prompt is empty"),
            (vec!["x", "--strokes", "0"], "--strokes"),
            (vec!["x", "--strokes", "-5"], "--strokes"),
            (vec!["x", "--strokes", "100000000"], "memory"),
            (vec!["x", "--iters", "0"], "--iters"),
            (vec!["x", "--augs", "1000"], "--augs"),
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
}
