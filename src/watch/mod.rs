//! Watching a drawing form: a live preview in the terminal, a preview PNG that an
//! image viewer reloads, a timelapse (animated SVG, GIF or APNG) and numbered frames.
//!
//! A [`Watcher`] is fed every [`Step`] of [`crate::draw`] and then the finished
//! [`Drawing`]; it takes from a step only what its outputs need (the stroke values
//! every `frame_every` iterations, a render every `preview_every`), so that watching
//! costs little next to the CLIP step. Everything a run could refuse is checked by
//! [`WatchConfig::check`] before the run starts.
//!
//! | file | job |
//! | --- | --- |
//! | `preview.rs` | the terminal preview: half-block cells, kitty and iTerm2 images |
//! | `timelapse.rs` | frames as stroke values, written as SMIL SVG, GIF or APNG |
//! | `frames.rs` | numbered PNG frames in a directory |

mod frames;
mod preview;
mod timelapse;

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use crate::optimize::Step;
use crate::output;
use crate::pipeline::Drawing;
use crate::request::Representation;
use crate::scene::Canvas;

pub use preview::{half_blocks, Protocol, TerminalPreview};
pub use timelapse::{Frame, Timelapse, FRAME_S, HOLD_S};

/// Timelapse file formats, chosen by the file's extension.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TimelapseFormat {
    /// One SVG whose paths animate (SMIL), looping.
    Svg,
    /// An animated GIF rendered by resvg.
    Gif,
    /// An animated PNG (APNG) rendered by resvg.
    Apng,
}

impl TimelapseFormat {
    /// The format a file name asks for, from its extension (any case).
    pub fn from_path(path: &Path) -> Result<Self> {
        let ext = path.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase);
        match ext.as_deref() {
            Some("svg") => Ok(Self::Svg),
            Some("gif") => Ok(Self::Gif),
            Some("png" | "apng") => Ok(Self::Apng),
            Some(e) => bail!("unknown timelapse extension '.{e}'; expected .svg, .gif or .png"),
            None => bail!("the timelapse file has no extension; expected .svg, .gif or .png"),
        }
    }
}

/// What a timelapse shows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TimelapseMode {
    /// The optimisation: the drawing every `frame_every` iterations.
    Iterations,
    /// The final drawing painted `frame_every` strokes per frame.
    Strokes,
}

/// Everything a run is to show and write while it draws.
#[derive(Clone, Debug)]
pub struct WatchConfig {
    /// Show the drawing in the terminal (if the terminal allows; see
    /// [`TerminalPreview::allowed`]).
    pub preview: bool,
    /// Which image protocol the preview uses.
    pub protocol: Protocol,
    /// Iterations between preview updates (terminal and `preview_png`).
    pub preview_every: u32,
    /// A PNG rewritten atomically at every preview update.
    pub preview_png: Option<PathBuf>,
    /// The timelapse file; its extension says its format.
    pub timelapse: Option<PathBuf>,
    pub mode: TimelapseMode,
    /// Iterations (or strokes, in [`TimelapseMode::Strokes`]) between frames.
    pub frame_every: u32,
    /// A directory for numbered PNG frames.
    pub frames_dir: Option<PathBuf>,
    /// Longer side of raster frames, in pixels.
    pub png_size: u32,
    pub force: bool,
}

impl Default for WatchConfig {
    fn default() -> Self {
        Self {
            preview: false,
            protocol: Protocol::Auto,
            preview_every: 5,
            preview_png: None,
            timelapse: None,
            mode: TimelapseMode::Iterations,
            frame_every: 5,
            frames_dir: None,
            png_size: 512,
            force: false,
        }
    }
}

impl WatchConfig {
    /// Whether any output needs frames from the run.
    pub fn wants_frames(&self) -> bool {
        self.timelapse.is_some() || self.frames_dir.is_some()
    }

    /// Fails, before any work, on anything the run would refuse later: zero
    /// intervals, an unknown timelapse extension, unwritable or existing files
    /// (without `force`), a frames directory that is not empty (without `force`),
    /// a file that is also one of the drawing's own `outputs`, frames for pixels.
    pub fn check(&self, representation: Representation, outputs: &[&Path]) -> Result<()> {
        if self.preview_every == 0 {
            bail!("the preview interval must be at least 1 iteration, got 0");
        }
        if self.frame_every == 0 {
            bail!("the frame interval must be at least 1, got 0");
        }
        if self.wants_frames() && representation != Representation::Strokes {
            bail!("a timelapse or frames need the strokes representation");
        }
        let mut taken: Vec<PathBuf> = outputs.iter().map(|p| p.to_path_buf()).collect();
        let files = [("preview PNG", &self.preview_png), ("timelapse", &self.timelapse)];
        for (what, path) in files {
            let Some(path) = path else { continue };
            if what == "timelapse" {
                TimelapseFormat::from_path(path)?;
            }
            if taken.iter().any(|t| same_file(t, path)) {
                bail!("the {what} {} would overwrite another output of this run", path.display());
            }
            output::check_target(path, self.force)
                .with_context(|| format!("cannot write the {what}"))?;
            taken.push(path.clone());
        }
        if let Some(dir) = &self.frames_dir {
            frames::check_dir(dir, self.force)?;
        }
        Ok(())
    }
}

fn same_file(a: &Path, b: &Path) -> bool {
    let abs = |p: &Path| std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf());
    abs(a) == abs(b)
}

/// Follows one run: feed it every step, then the drawing.
pub struct Watcher {
    config: WatchConfig,
    terminal: Option<TerminalPreview>,
    timelapse: Option<Timelapse>,
    frames: Option<frames::FramesDir>,
    canvas: Option<Canvas>,
    /// The drawing's background as a data URI: frames and timelapses show it, as
    /// the drawing does.
    background: Option<String>,
    /// Iteration of the last frame taken, so the final drawing is not taken twice.
    last_frame_iter: u32,
}

impl Watcher {
    /// A watcher for a checked `config`. `terminal` is the live preview when the
    /// caller found the terminal fit for it (see [`TerminalPreview::allowed`]).
    /// `background` is the drawing's background as a data URI
    /// ([`crate::background::Background::data_uri`]).
    pub fn new(
        config: &WatchConfig,
        terminal: Option<TerminalPreview>,
        background: Option<String>,
    ) -> Self {
        let frames_wanted = config.mode == TimelapseMode::Iterations;
        Self {
            terminal,
            timelapse: config.timelapse.as_ref().map(|_| Timelapse::default()),
            frames: match (&config.frames_dir, frames_wanted) {
                (Some(d), true) => {
                    Some(frames::FramesDir::new(d, config.png_size, background.clone()))
                }
                _ => None,
            },
            canvas: None,
            background,
            last_frame_iter: 0,
            config: config.clone(),
        }
    }

    /// Takes what the outputs need from one step: a frame at iteration 1, every
    /// `frame_every`-th iteration, and a preview every `preview_every`-th.
    pub fn on_step(&mut self, step: &Step) -> Result<()> {
        let c = &self.config;
        let (every, wants_preview) =
            (c.preview_every, self.terminal.is_some() || c.preview_png.is_some());
        if c.mode == TimelapseMode::Iterations
            && c.wants_frames()
            && (step.iter == 1 || step.iter.is_multiple_of(c.frame_every))
        {
            if let Some(scene) = step.drawing.scene() {
                self.canvas = Some(scene.canvas);
                self.take_frame(step.iter, Frame { iter: step.iter, strokes: scene.strokes()? })?;
            }
        }
        if wants_preview && step.iter.is_multiple_of(every) {
            let image = step.drawing.render()?; // (1, 3, H, W)
            self.show(&image)?;
        }
        Ok(())
    }

    fn take_frame(&mut self, iter: u32, frame: Frame) -> Result<()> {
        if let (Some(dir), Some(canvas)) = (&mut self.frames, self.canvas) {
            dir.write(canvas, &frame.strokes)?;
        }
        if let Some(t) = &mut self.timelapse {
            t.push(frame);
        }
        self.last_frame_iter = iter;
        Ok(())
    }

    fn show(&mut self, image: &tch::Tensor) -> Result<()> {
        if let Some(t) = &mut self.terminal {
            // A terminal that stopped taking output ends the preview, not the run.
            if t.show(image).is_err() {
                self.terminal = None;
            }
        }
        if let Some(path) = &self.config.preview_png {
            // Replaced by rename, so a viewer never reads half a file.
            output::write_atomic(path, &output::tensor_to_png(image)?, true)?;
        }
        Ok(())
    }

    /// Shows the final drawing (left in the terminal), writes the last frame and the timelapse, and
    /// returns the files written (the timelapse; frames and the preview PNG are
    /// not listed, as they were written during the run).
    pub fn finish(mut self, drawing: &Drawing) -> Result<Vec<PathBuf>> {
        if self.terminal.is_some() || self.config.preview_png.is_some() {
            self.show(&drawing.image)?;
        }
        let Some(scene) = &drawing.scene else { return Ok(Vec::new()) };
        if !self.config.wants_frames() {
            return Ok(Vec::new());
        }
        let canvas = scene.canvas;
        self.canvas = Some(canvas);
        let strokes = scene.strokes()?;
        let done = drawing.record.iterations_done;
        if self.config.mode == TimelapseMode::Strokes {
            let k = self.config.frame_every as usize;
            let mut dir =
                self.config.frames_dir.as_ref().map(|d| {
                    frames::FramesDir::new(d, self.config.png_size, self.background.clone())
                });
            let mut t = Timelapse::default();
            for end in (k..strokes.len() + k).step_by(k) {
                let part = strokes[..end.min(strokes.len())].to_vec();
                if let Some(dir) = &mut dir {
                    dir.write(canvas, &part)?;
                }
                t.push(Frame { iter: done, strokes: part });
            }
            self.timelapse = self.timelapse.map(|_| t);
        } else if self.last_frame_iter != done || done == 0 {
            self.take_frame(done, Frame { iter: done, strokes })?;
        }
        let mut written = Vec::new();
        if let (Some(path), Some(t)) = (&self.config.timelapse, &self.timelapse) {
            let bg = self.background.as_deref();
            let bytes = match TimelapseFormat::from_path(path)? {
                TimelapseFormat::Svg => t.to_svg(canvas, self.config.mode, bg)?.into_bytes(),
                TimelapseFormat::Gif => t.to_gif(canvas, self.config.png_size, bg)?,
                TimelapseFormat::Apng => t.to_apng(canvas, self.config.png_size, bg)?,
            };
            output::write_atomic(path, &bytes, self.config.force)?;
            written.push(path.clone());
        }
        Ok(written)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extensions_choose_the_format_and_others_are_refused() {
        assert_eq!(TimelapseFormat::from_path(Path::new("a.SVG")).unwrap(), TimelapseFormat::Svg);
        assert_eq!(TimelapseFormat::from_path(Path::new("a.gif")).unwrap(), TimelapseFormat::Gif);
        assert_eq!(TimelapseFormat::from_path(Path::new("a.png")).unwrap(), TimelapseFormat::Apng);
        let e = TimelapseFormat::from_path(Path::new("a.mp4")).unwrap_err().to_string();
        assert!(e.contains("'.mp4'") && e.contains(".gif"), "{e}");
        assert!(TimelapseFormat::from_path(Path::new("a")).is_err());
    }

    #[test]
    fn checks_refuse_before_work() {
        let dir = tempfile::tempdir().unwrap();
        let at = |name: &str| dir.path().join(name);
        let check = |c: &WatchConfig| {
            c.check(Representation::Strokes, &[&at("d.png")]).map_err(|e| format!("{e:#}"))
        };
        let base = WatchConfig::default();
        check(&base).unwrap();
        let e = check(&WatchConfig { frame_every: 0, ..base.clone() }).unwrap_err();
        assert!(e.contains("frame interval"), "{e}");
        let e = check(&WatchConfig { preview_every: 0, ..base.clone() }).unwrap_err();
        assert!(e.contains("preview interval"), "{e}");
        let e = check(&WatchConfig { timelapse: Some(at("d.png")), ..base.clone() }).unwrap_err();
        assert!(e.contains("overwrite another output"), "{e}");
        let e =
            check(&WatchConfig { timelapse: Some(at("nope/t.gif")), ..base.clone() }).unwrap_err();
        assert!(e.contains("does not exist"), "{e}");
        let pixels = WatchConfig { timelapse: Some(at("t.gif")), ..base.clone() }
            .check(Representation::Pixels, &[]);
        assert!(pixels.unwrap_err().to_string().contains("strokes representation"));
        std::fs::create_dir(at("frames")).unwrap();
        std::fs::write(at("frames/x"), "").unwrap();
        let full = WatchConfig { frames_dir: Some(at("frames")), ..base.clone() };
        assert!(check(&full).unwrap_err().contains("not empty"));
        check(&WatchConfig { force: true, ..full }).unwrap();
    }
}
