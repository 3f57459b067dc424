//! `--frames DIR`: every frame as a numbered PNG (`frame-00001.png`, …), rendered
//! by resvg, for people who make their video with their own tool
//! (`ffmpeg -i DIR/frame-%05d.png`).

use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};

use crate::output;
use crate::scene::{Canvas, Stroke};

/// Fails if `dir` cannot hold the frames: its parent is missing, it is a file, or
/// it holds anything and `force` is off. A missing `dir` is made at the first frame.
pub fn check_dir(dir: &Path, force: bool) -> Result<()> {
    if dir.is_dir() {
        let mut entries = std::fs::read_dir(dir)
            .map_err(|e| anyhow!("cannot read the frames directory {}: {e}", dir.display()))?;
        if entries.next().is_some() && !force {
            bail!(
                "the frames directory {} exists and is not empty (use --force to write into it)",
                dir.display()
            );
        }
        // The same probe as for files: create and remove one.
        output::check_target(&dir.join(".clipdraw-frames-probe"), true)
            .with_context(|| format!("cannot write frames into {}", dir.display()))?;
        Ok(())
    } else if dir.exists() {
        bail!("the frames directory {} is a file", dir.display())
    } else {
        output::check_target(dir, false)
            .with_context(|| format!("cannot make the frames directory {}", dir.display()))
    }
}

/// Writes frames one by one as they come.
pub struct FramesDir {
    dir: PathBuf,
    size_px: u32,
    background: Option<String>,
    written: u32,
}

impl FramesDir {
    /// Frames in `dir` at `size_px`, over `background` (a data URI) if any.
    pub fn new(dir: &Path, size_px: u32, background: Option<String>) -> Self {
        Self { dir: dir.to_path_buf(), size_px, background, written: 0 }
    }

    /// Renders `strokes` on `canvas` at the frame size and writes the next number.
    pub fn write(&mut self, canvas: Canvas, strokes: &[Stroke]) -> Result<PathBuf> {
        if self.written == 0 {
            std::fs::create_dir_all(&self.dir).with_context(|| {
                format!("cannot make the frames directory {}", self.dir.display())
            })?;
        }
        self.written += 1;
        let path = self.dir.join(format!("frame-{:05}.png", self.written));
        let svg = crate::svg::strokes_to_svg(canvas, strokes, None, self.background.as_deref())?;
        // --force was checked against a non-empty directory; frames of this run
        // replace those of an earlier one.
        output::write_atomic(&path, &output::svg_to_png(&svg, self.size_px)?, true)?;
        Ok(path)
    }
}
