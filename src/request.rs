//! What a drawing asks for: [`DrawRequest`] and its [`Settings`], with the limits
//! every caller (the binary's flags, a batch job, a library user) is held to.
//! Nothing here touches a model or a tensor beyond holding an initial scene.

use anyhow::{bail, Result};

use crate::background::Background;
use crate::constraints::{ColorRule, OpacityRule};
use crate::record::FileRef;
use crate::scene::{Canvas, Scene, MAX_SEGMENTS};

/// The most strokes a drawing may have; far beyond what any drawing needs.
pub const MAX_STROKES: i64 = 100_000;
/// Rough peak memory per stroke for a grown drawing (fragments, graph, Adam state).
pub const BYTES_PER_STROKE: u64 = 2 << 20;
/// The most optimisation steps a run may ask for.
pub const MAX_ITERS: u32 = 1_000_000;
/// The most augmentations per step (drawing) or per score. One limit for both: a
/// step holds its batch with gradients, a score streams it in chunks, but either
/// beyond 1024 views says nothing more about a drawing.
pub const MAX_AUGS: u32 = 1024;
/// The longest side of any image clipdraw writes or renders, in pixels.
pub const MAX_IMAGE_PX: u32 = 16384;
/// The widest stroke a run may allow, in pixels.
pub const MAX_WIDTH_PX: f64 = 1000.0;

/// The most seeds one `--seeds` range may expand to.
pub const MAX_SEEDS: u64 = 100_000;
/// The most drawings optimised together (`--batch-size`).
pub const MAX_BATCH_SIZE: usize = 1024;

/// Seeds from `A..B` (B excluded, as in Rust), `A..=B` (B included) or one number.
pub fn parse_seeds(s: &str) -> Result<Vec<u64>> {
    let num = |t: &str| -> Result<u64> {
        t.trim()
            .parse()
            .map_err(|_| anyhow::anyhow!("{t:?} in seeds {s:?} is not a whole number >= 0"))
    };
    let (lo, hi) = if let Some((a, b)) = s.split_once("..=") {
        (
            num(a)?,
            num(b)?
                .checked_add(1)
                .ok_or_else(|| anyhow::anyhow!("seeds {s:?} end past the largest seed"))?,
        )
    } else if let Some((a, b)) = s.split_once("..") {
        (num(a)?, num(b)?)
    } else {
        let v = num(s)?;
        (v, v + 1)
    };
    if lo >= hi {
        bail!("seeds {s:?} are an empty range (A..B excludes B; A..=B includes it)");
    }
    if hi - lo > MAX_SEEDS {
        bail!("seeds {s:?} are {} seeds, more than {MAX_SEEDS}", hi - lo);
    }
    Ok((lo..hi).collect())
}

/// A rough peak memory for `n` stroke drawings optimised together: the strokes'
/// own share ([`BYTES_PER_STROKE`]) plus, per augmented view, the model's
/// activations kept for the backward pass, taken as V²·E·2 bytes for input side V
/// and embedding size E (about 50 MiB for ViT-B/32). An estimate, not a measure.
pub fn batch_bytes(n: usize, strokes: i64, augs: u32, image_size: i64, embed_dim: i64) -> u64 {
    let views = n as u64 * augs.max(1) as u64;
    let per_view = (image_size.max(1) as u64).pow(2) * embed_dim.max(1) as u64 * 2;
    let strokes = n as u64 * (strokes.max(1) as u64).saturating_mul(BYTES_PER_STROKE);
    strokes.saturating_add(views.saturating_mul(per_view))
}

/// Rough peak memory of one drawing's run: its strokes (whose rasterized fragments
/// grow with the canvas side), the model's views and the canvas-sized images of
/// the render and each augmentation with their gradients.
pub fn draw_bytes(strokes: i64, augs: u32, canvas: Canvas, image_size: i64, embed_dim: i64) -> u64 {
    let area = (canvas.width.max(1) as u64) * (canvas.height.max(1) as u64);
    let side_factor = ((area as f64).sqrt() / 224.0).max(1.0);
    let strokes =
        ((strokes.max(1) as u64).saturating_mul(BYTES_PER_STROKE) as f64 * side_factor) as u64;
    let views = batch_bytes(1, 1, augs, image_size, embed_dim).saturating_sub(BYTES_PER_STROKE);
    let images = area.saturating_mul(3 * 4 * 2).saturating_mul(augs as u64 + 2);
    strokes.saturating_add(views).saturating_add(images)
}

/// What the loop optimises.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Representation {
    /// RGBA Bézier strokes (CLIPDraw); written as SVG, PNG and JSON.
    Strokes,
    /// The pixels of an image the size of the model's input (the paper's baseline);
    /// written as PNG and JSON.
    Pixels,
}

/// Everything that shapes an optimisation, with DESIGN.md's defaults.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize, PartialEq)]
pub struct Settings {
    pub iters: u32,
    /// Augmentations per iteration; 0 scores the bare drawing (the paper's ablation).
    pub augs: u32,
    pub seed: u64,
    pub negative_weight: f64,
    pub min_width_px: f64,
    pub max_width_px: f64,
    pub lr_points: f64,
    pub lr_width: f64,
    pub lr_color: f64,
    /// Which colours strokes may take (absent from records: any).
    #[serde(default, skip_serializing_if = "ColorRule::is_any")]
    pub colors: ColorRule,
    /// Whether strokes keep their own opacity (absent from records: free).
    #[serde(default, skip_serializing_if = "OpacityRule::is_free")]
    pub opacity: OpacityRule,
    /// Cubic segments of new random strokes, min..=max within 1..=3 (absent: 1..=3).
    #[serde(default = "all_segments", skip_serializing_if = "is_all_segments")]
    pub segments: (i64, i64),
}

fn all_segments() -> (i64, i64) {
    (1, MAX_SEGMENTS)
}

fn is_all_segments(s: &(i64, i64)) -> bool {
    *s == all_segments()
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            iters: 250,
            augs: 8,
            seed: 0,
            negative_weight: 0.3,
            min_width_px: 1.0,
            max_width_px: 50.0,
            lr_points: 1.0,
            lr_width: 0.1,
            lr_color: 0.01,
            colors: ColorRule::Any,
            opacity: OpacityRule::Free,
            segments: all_segments(),
        }
    }
}

impl Settings {
    /// The points learning rate at 0-based iteration `t`: ×0.4 from 50 %, ×0.1 from
    /// 75 % of the iterations.
    pub fn lr_points_at(&self, t: u32) -> f64 {
        let f = t as f64 / self.iters.max(1) as f64;
        if f >= 0.75 {
            self.lr_points * 0.1
        } else if f >= 0.5 {
            self.lr_points * 0.4
        } else {
            self.lr_points
        }
    }

    /// Whether `other` asks for the same run but for the seed (numbers compared
    /// bit for bit, so that a NaN setting equals itself).
    pub fn same_but_seed(&self, other: &Settings) -> bool {
        let f = |s: &Settings| {
            [s.negative_weight, s.min_width_px, s.max_width_px, s.lr_points, s.lr_width, s.lr_color]
                .map(f64::to_bits)
        };
        self.iters == other.iters && self.augs == other.augs && f(self) == f(other)
    }

    /// Checks every value; errors name the setting and the value.
    pub fn check(&self) -> Result<()> {
        // 0 iterations only make sense from an initial drawing; DrawRequest::check
        // says so.
        if self.iters > MAX_ITERS {
            bail!("iterations must be between 1 and {MAX_ITERS}, got {}", self.iters);
        }
        let (lo, hi) = self.segments;
        if !(1 <= lo && lo <= hi && hi <= MAX_SEGMENTS) {
            bail!("segments per stroke {lo}..{hi} are invalid: expected 1 <= min <= max <= {MAX_SEGMENTS}");
        }
        self.colors.check()?;
        if self.augs > MAX_AUGS {
            bail!("augmentations must be between 0 and {MAX_AUGS}, got {}", self.augs);
        }
        if !self.negative_weight.is_finite() {
            bail!("the negative weight must be finite, got {}", self.negative_weight);
        }
        let (lo, hi) = (self.min_width_px, self.max_width_px);
        if !(lo.is_finite() && hi.is_finite() && 0.0 <= lo && lo <= hi && hi <= MAX_WIDTH_PX) {
            bail!("stroke widths [{lo}, {hi}] px are invalid: expected 0 <= min <= max <= {MAX_WIDTH_PX}");
        }
        for (name, v) in
            [("points", self.lr_points), ("width", self.lr_width), ("colour", self.lr_color)]
        {
            if !(v.is_finite() && v >= 0.0) {
                bail!("the {name} learning rate must be a finite number >= 0, got {v}");
            }
        }
        Ok(())
    }
}

/// One drawing to make: what [`crate::draw`] takes.
#[derive(Debug)]
pub struct DrawRequest {
    /// What to draw, e.g. "a drawing of a cat".
    pub prompt: String,
    /// Prompts to steer away from, each weighted by `settings.negative_weight`.
    pub negatives: Vec<String>,
    pub representation: Representation,
    /// Strokes of a random initial drawing (ignored when `init` is given).
    pub strokes: i64,
    pub settings: Settings,
    /// Start from this drawing (N = 1) instead of random strokes; its canvas is the
    /// drawing's canvas. Strokes only.
    pub init: Option<Scene>,
    /// Random strokes painted over `init` (ignored without it).
    pub add_strokes: i64,
    /// Keep every stroke of `init` exactly as it is; only added strokes learn.
    pub freeze_init: bool,
    /// The canvas of a random initial drawing [default: the model's input size];
    /// ignored with `init`.
    pub canvas: Option<Canvas>,
    /// A fixed picture under the strokes, at the drawing's canvas size.
    pub background: Option<Background>,
    /// Stop optimising once this much time has passed since the loop began.
    pub time_limit: Option<std::time::Duration>,
    /// The file this drawing continues (recorded, so chains can be traced).
    pub parent: Option<FileRef>,
}

impl DrawRequest {
    /// A request for `prompt` with the paper's defaults: 256 strokes, [`Settings::default`].
    /// The same request with another seed (an initial drawing is copied).
    pub fn with_seed(&self, seed: u64) -> Result<DrawRequest> {
        Ok(DrawRequest {
            prompt: self.prompt.clone(),
            negatives: self.negatives.clone(),
            representation: self.representation,
            strokes: self.strokes,
            settings: Settings { seed, ..self.settings.clone() },
            init: match &self.init {
                Some(scene) => Some(scene.to_device(scene.device())?),
                None => None,
            },
            add_strokes: self.add_strokes,
            freeze_init: self.freeze_init,
            canvas: self.canvas,
            background: self.background.clone(),
            time_limit: self.time_limit,
            parent: self.parent.clone(),
        })
    }

    pub fn new(prompt: impl Into<String>) -> Self {
        Self {
            prompt: prompt.into(),
            negatives: Vec::new(),
            representation: Representation::Strokes,
            strokes: 256,
            settings: Settings::default(),
            init: None,
            add_strokes: 0,
            freeze_init: false,
            canvas: None,
            background: None,
            time_limit: None,
            parent: None,
        }
    }

    /// Checks everything that can be checked without a model, before any work.
    pub fn check(&self) -> Result<()> {
        self.check_within(available_memory())
    }

    /// [`DrawRequest::check`] against `free` bytes of memory
    /// ([`check_strokes_within`]).
    pub fn check_within(&self, free: Option<u64>) -> Result<()> {
        check_prompt(&self.prompt)?;
        for n in &self.negatives {
            check_prompt(n).map_err(|_| anyhow::anyhow!("a negative prompt is empty"))?;
        }
        check_strokes_within(self.strokes, free)?;
        self.settings.check()?;
        if self.settings.iters == 0 && self.init.is_none() {
            bail!("iterations must be between 1 and {MAX_ITERS}, got 0 (0 only with an initial drawing)");
        }
        if self.add_strokes < 0 {
            bail!("strokes to add must be 0 or more, got {}", self.add_strokes);
        }
        if self.freeze_init && self.init.is_none() {
            bail!("freezing the initial strokes needs an initial drawing");
        }
        if self.freeze_init && self.add_strokes == 0 && self.settings.iters > 0 {
            bail!("nothing left to optimise: every stroke is frozen (add strokes to optimise)");
        }
        if self.time_limit.is_some_and(|t| t.is_zero()) {
            bail!("the time limit must be longer than 0");
        }
        if let (Some(c), Some(bg)) = (self.drawing_canvas(), &self.background) {
            if (bg.width as i64, bg.height as i64) != (c.width, c.height) {
                bail!(
                    "the background is {}x{} pixels but the canvas is {}x{}",
                    bg.width,
                    bg.height,
                    c.width,
                    c.height
                );
            }
        }
        if self.representation == Representation::Pixels {
            let strokes_only = [
                (self.background.is_some(), "a background"),
                (self.canvas.is_some(), "a canvas size"),
                (!self.settings.colors.is_any(), "a colour rule"),
                (!self.settings.opacity.is_free(), "an opacity rule"),
                (self.add_strokes > 0, "added strokes"),
            ];
            if let Some((_, what)) = strokes_only.iter().find(|(on, _)| *on) {
                bail!("{what} needs the strokes representation");
            }
        }
        if let Some(init) = &self.init {
            let (n, _) = init.check()?;
            if n != 1 {
                bail!("the initial drawing must be one drawing, got {n}");
            }
            if self.representation != Representation::Strokes {
                bail!("an initial drawing needs the strokes representation");
            }
        }
        Ok(())
    }
}

impl DrawRequest {
    /// The canvas the drawing will have, when known without a model: the initial
    /// drawing's, or the requested one.
    pub fn drawing_canvas(&self) -> Option<Canvas> {
        self.init.as_ref().map(|s| s.canvas).or(self.canvas)
    }
}

/// A prompt must say something.
pub fn check_prompt(prompt: &str) -> Result<()> {
    if prompt.trim().is_empty() {
        bail!("the prompt is empty; say what to draw, e.g. \"a drawing of a cat\"");
    }
    Ok(())
}

/// A stroke count must be at least 1 and fit in memory.
pub fn check_strokes(strokes: i64) -> Result<()> {
    check_strokes_within(strokes, available_memory())
}

/// [`check_strokes`] against `free` bytes of memory, read once by a caller that
/// checks many requests (a job list of thousands would otherwise read
/// /proc/meminfo for each).
pub fn check_strokes_within(strokes: i64, free: Option<u64>) -> Result<()> {
    if strokes < 1 {
        bail!("the stroke count must be at least 1, got {strokes}");
    }
    let need = (strokes as u64).saturating_mul(BYTES_PER_STROKE);
    if strokes > MAX_STROKES {
        bail!(
            "{strokes} strokes are too many: they would need about {} of memory (at most {MAX_STROKES} strokes)",
            human_bytes(need)
        );
    }
    check_fits(need, free, &format!("{strokes} strokes"))
}

/// Refuses work that would need more than this process can allocate now
/// ([`memory_for_this_process`]), naming `what` and both figures. Passes when the
/// figure is unknown. For allocations made in Rust, whose failure aborts.
pub fn check_memory(need: u64, what: &str) -> Result<()> {
    check_fits(need, memory_for_this_process(), what)
}

/// As [`check_memory`], against `free` bytes (host or device memory).
pub fn check_fits(need: u64, free: Option<u64>, what: &str) -> Result<()> {
    if let Some(free) = free {
        if need > free {
            bail!(
                "{what} would need about {} of memory, but only {} is available",
                human_bytes(need),
                human_bytes(free)
            );
        }
    }
    Ok(())
}

/// `b` bytes in binary units, one decimal: "1.5 GiB".
pub fn human_bytes(b: u64) -> String {
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

/// What this process can still allocate: the memory available, or less when an
/// address-space limit (`ulimit -v`) leaves less to map.
pub fn memory_for_this_process() -> Option<u64> {
    let host = available_memory();
    match (host, address_space_left()) {
        (Some(h), Some(l)) => Some(h.min(l)),
        (h, l) => h.or(l),
    }
}

/// What an address-space limit (`ulimit -v`, RLIMIT_AS) leaves this process to
/// map, if one is set: a larger allocation would fail however much memory is free.
fn address_space_left() -> Option<u64> {
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit writes into the struct it is given.
    if unsafe { libc::getrlimit(libc::RLIMIT_AS, &mut lim) } != 0
        || lim.rlim_cur == libc::RLIM_INFINITY
    {
        return None;
    }
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmSize:"))?;
    let used: u64 = line.split_whitespace().nth(1)?.parse::<u64>().ok()? * 1024;
    Some((lim.rlim_cur as u64).saturating_sub(used))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn points_schedule_follows_the_paper() {
        let s = Settings { iters: 100, ..Settings::default() };
        assert_eq!(s.lr_points_at(0), 1.0);
        assert_eq!(s.lr_points_at(49), 1.0);
        assert_eq!(s.lr_points_at(50), 0.4);
        assert_eq!(s.lr_points_at(74), 0.4);
        assert!((s.lr_points_at(75) - 0.1).abs() < 1e-12);
    }

    #[test]
    fn the_defaults_pass_and_bad_values_are_named() {
        DrawRequest::new("a cat").check().unwrap();
        let bad = |f: &dyn Fn(&mut DrawRequest)| {
            let mut r = DrawRequest::new("a cat");
            f(&mut r);
            r.check().unwrap_err().to_string()
        };
        assert!(bad(&|r| r.prompt = "  ".into()).contains("prompt is empty"));
        assert!(bad(&|r| r.negatives = vec!["".into()]).contains("negative"));
        assert!(bad(&|r| r.strokes = 0).contains("at least 1"));
        assert!(bad(&|r| r.strokes = 100_000_000).contains("memory"));
        assert!(bad(&|r| r.settings.iters = 0).contains("iterations"));
        assert!(bad(&|r| r.settings.augs = MAX_AUGS + 1).contains("augmentations"));
        assert!(bad(&|r| r.settings.max_width_px = 0.5).contains("widths"));
        assert!(bad(&|r| r.settings.lr_color = f64::NAN).contains("colour learning rate"));
        assert!(bad(&|r| r.settings.negative_weight = f64::INFINITY).contains("negative weight"));
    }

    #[test]
    fn settings_compare_bit_for_bit_but_the_seed() {
        let a = Settings { lr_points: f64::NAN, ..Settings::default() };
        assert!(a.same_but_seed(&Settings { seed: 9, ..a.clone() }));
        assert!(!a.same_but_seed(&Settings { iters: 9, ..a.clone() }));
        assert!(!a.same_but_seed(&Settings::default()));
    }

    #[test]
    fn seed_ranges_follow_rust() {
        assert_eq!(parse_seeds("0..4").unwrap(), [0, 1, 2, 3]);
        assert_eq!(parse_seeds("2..=4").unwrap(), [2, 3, 4]);
        assert_eq!(parse_seeds("7").unwrap(), [7]);
        assert!(parse_seeds("4..4").unwrap_err().to_string().contains("empty"));
        assert!(parse_seeds("a..4").unwrap_err().to_string().contains("\"a\""));
        assert!(parse_seeds("0..1000000").unwrap_err().to_string().contains("more than"));
    }

    #[test]
    fn sizes_read_in_binary_units() {
        assert_eq!(human_bytes(512), "512.0 B");
        assert_eq!(human_bytes(3 << 29), "1.5 GiB");
    }
}
