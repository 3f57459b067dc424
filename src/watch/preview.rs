//! The live preview in the terminal, drawn above the progress bar and redrawn in
//! place.
//!
//! Half-block cells work in every terminal with 24-bit colour: each cell is `▀`
//! with the upper pixel as foreground and the lower as background colour, so a
//! cell is one pixel wide and two tall (terminal cells are about twice as tall as
//! wide, so the pixels come out square). Terminals that announce an image protocol
//! get the drawing itself: kitty's graphics protocol (kitty, Ghostty) or iTerm2's
//! inline images (iTerm2, WezTerm), both carrying a PNG, sized to the same cells.
//! Hand-written rather than a crate (viuer): the crates print at the cursor
//! and move it, while this preview must share the screen with indicatif's bar
//! (through `ProgressBar::suspend`) and return the cursor below itself every time.

use std::io::{IsTerminal, Write};

use anyhow::{bail, Result};
use base64::Engine as _;
use tch::{Kind, Tensor};

use crate::output;

/// The most cell rows the preview takes, so that it never fills a tall terminal.
const MAX_ROWS: u16 = 32;
/// Rows left free below the preview for the bar and the shell prompt.
const SPARE_ROWS: u16 = 4;
/// The smallest preview worth drawing, in cell rows.
const MIN_ROWS: u16 = 4;

/// How the preview reaches the terminal.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    /// Kitty or iTerm2 images where the environment announces them, else half-blocks.
    Auto,
    /// Unicode half-block cells with 24-bit colour.
    Blocks,
    /// Kitty's graphics protocol.
    Kitty,
    /// iTerm2's inline image protocol.
    Iterm2,
}

impl Protocol {
    /// `Auto` made concrete from the environment (`var` reads a variable). tmux and
    /// screen pass neither protocol through, so inside them it is half-blocks.
    pub fn resolve(self, var: &dyn Fn(&str) -> Option<String>) -> Protocol {
        if self != Protocol::Auto {
            return self;
        }
        let is = |k: &str, v: &str| var(k).is_some_and(|x| x == v);
        let term = var("TERM").unwrap_or_default();
        if var("TMUX").is_some() || term.starts_with("screen") || term.starts_with("tmux") {
            Protocol::Blocks
        } else if var("KITTY_WINDOW_ID").is_some()
            || term == "xterm-kitty"
            || term == "xterm-ghostty"
        {
            Protocol::Kitty
        } else if is("TERM_PROGRAM", "iTerm.app")
            || is("TERM_PROGRAM", "WezTerm")
            || is("LC_TERMINAL", "iTerm2")
        {
            Protocol::Iterm2
        } else {
            Protocol::Blocks
        }
    }
}

/// Half-block lines for an RGB image (`rgb` is H×W×3 bytes, row-major, H even):
/// H/2 lines of W cells, colours set only where they change, each line reset at
/// its end so nothing leaks into what follows.
pub fn half_blocks(rgb: &[u8], width: usize, height: usize) -> Vec<String> {
    let px = |x: usize, y: usize| {
        let i = 3 * (y * width + x);
        (rgb[i], rgb[i + 1], rgb[i + 2])
    };
    (0..height / 2)
        .map(|row| {
            let mut line = String::with_capacity(width * 40);
            let (mut fg, mut bg) = (None, None);
            for x in 0..width {
                let (top, bottom) = (px(x, 2 * row), px(x, 2 * row + 1));
                if fg != Some(top) {
                    line.push_str(&format!("\x1b[38;2;{};{};{}m", top.0, top.1, top.2));
                    fg = Some(top);
                }
                if bg != Some(bottom) {
                    line.push_str(&format!("\x1b[48;2;{};{};{}m", bottom.0, bottom.1, bottom.2));
                    bg = Some(bottom);
                }
                line.push('▀');
            }
            line.push_str("\x1b[0m");
            line
        })
        .collect()
}

/// The preview's size in pixels (width, height; height even, two per cell row)
/// for an image of `(h, w)` pixels in a terminal of `rows`×`cols` cells.
fn fit(rows: u16, cols: u16, (h, w): (i64, i64)) -> Option<(usize, usize)> {
    let cell_rows = rows.saturating_sub(SPARE_ROWS).min(MAX_ROWS);
    let mut ph = 2 * cell_rows as usize;
    let mut pw = (ph as f64 * w as f64 / h as f64).round() as usize;
    let max_w = cols.saturating_sub(1) as usize;
    if pw > max_w {
        ph = 2 * ((max_w as f64 * h as f64 / w as f64) as usize / 2);
        pw = max_w;
    }
    (ph >= 2 * MIN_ROWS as usize && pw >= 1).then_some((pw, ph))
}

/// `image` ((1, 3, H, W) in [0, 1]) averaged down to `width`×`height` pixels, as
/// H×W×3 bytes.
fn downscale(image: &Tensor, width: usize, height: usize) -> Result<Vec<u8>> {
    let small = image
        .f_to_device(tch::Device::Cpu)?
        .f_to_kind(Kind::Float)?
        .f_adaptive_avg_pool2d([height as i64, width as i64])? // (1, 3, h, w)
        .f_clamp(0.0, 1.0)?
        .f_mul_scalar(255.0)?
        .f_round()?
        .f_to_kind(Kind::Uint8)?
        .f_squeeze_dim(0)?
        .f_permute([1, 2, 0])? // (h, w, 3)
        .f_contiguous()?;
    let n = width * height * 3;
    let mut bytes = vec![0u8; n];
    small.f_copy_data(&mut bytes, n)?;
    Ok(bytes)
}

/// The live preview on stderr, sharing the screen with a progress bar.
///
/// The first frame claims its rows (scrolling the screen once if need be) and
/// saves the cursor at their top-left corner (DECSC); every frame restores it
/// (DECRC) and draws from there. A saved position lives in the terminal, so it
/// survives what relative moves do not: Ctrl-C makes the terminal's line
/// discipline drop output still queued, which can swallow a cursor move.
pub struct TerminalPreview {
    bar: indicatif::ProgressBar,
    protocol: Protocol,
    /// (width, height) in pixels, fixed by the first frame.
    size: Option<(usize, usize)>,
}

impl TerminalPreview {
    /// Whether a live preview may be shown: stdout and stderr are terminals, the run
    /// is not quiet, and `NO_COLOR` is unset or empty (no-color.org).
    pub fn allowed(quiet: bool) -> bool {
        let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
        !quiet && !no_color && std::io::stdout().is_terminal() && std::io::stderr().is_terminal()
    }

    /// A preview drawn above `bar` (which must draw on stderr).
    pub fn new(bar: indicatif::ProgressBar, protocol: Protocol) -> Self {
        let protocol = protocol.resolve(&|k| std::env::var(k).ok());
        Self { bar, protocol, size: None }
    }

    /// Draws `image` ((1, 3, H, W) in [0, 1]) in place of the last frame. A frame
    /// that no longer fits a shrunk terminal is skipped.
    pub fn show(&mut self, image: &Tensor) -> Result<()> {
        let (_, _, h, w) = image.size4()?;
        let Some((rows, cols)) = console::Term::stderr().size_checked() else {
            bail!("stderr has no terminal size");
        };
        let Some(fits) = fit(rows, cols, (h, w)) else { return Ok(()) };
        // CAN ends any escape sequence cut short by a dropped write.
        let mut frame = String::from("\x18");
        let (pw, ph) = match self.size {
            None => {
                let rows = fits.1 / 2;
                frame.push_str(&format!("\r{}\x1b[{rows}A\x1b7", "\n".repeat(rows)));
                self.size = Some(fits);
                fits
            }
            Some(size) if size.0 > fits.0 || size.1 > fits.1 => return Ok(()),
            Some(size) => {
                frame.push_str("\x1b8");
                size
            }
        };
        let cell_rows = ph / 2;
        match self.protocol {
            Protocol::Blocks | Protocol::Auto => {
                for line in half_blocks(&downscale(image, pw, ph)?, pw, ph) {
                    frame.push('\r');
                    frame.push_str(&line);
                    frame.push_str("\x1b[K\n");
                }
            }
            Protocol::Kitty | Protocol::Iterm2 => {
                // The image protocols move the cursor each their own way: come back
                // to the corner and step below the image.
                let png = output::tensor_to_png(image)?;
                frame.push_str(&image_escape(self.protocol, &png, pw, cell_rows));
                frame.push_str(&format!("\x1b8\x1b[{cell_rows}B\r"));
            }
        }
        // Whatever is below (a bar cut short by Ctrl-C) goes; the bar redraws.
        frame.push_str("\x1b[J");
        let mut err = std::io::stderr().lock();
        self.bar.suspend(|| err.write_all(frame.as_bytes()).and_then(|()| err.flush()))?;
        Ok(())
    }
}

/// The escape sequence that shows `png` in `cols`×`rows` cells at the cursor.
fn image_escape(protocol: Protocol, png: &[u8], cols: usize, rows: usize) -> String {
    let data = base64::engine::general_purpose::STANDARD.encode(png);
    match protocol {
        Protocol::Iterm2 => format!(
            "\x1b]1337;File=inline=1;size={};width={cols};height={rows};preserveAspectRatio=1:{data}\x07",
            png.len()
        ),
        _ => {
            // Kitty takes at most 4096 bytes of payload per escape; image id 1 is
            // replaced by every frame (a=T transmits and shows, C=1 keeps the
            // cursor, q=2 asks for no replies on stdin).
            let mut out = String::from("\x1b_Ga=d,d=I,i=1,q=2\x1b\\");
            let chunks: Vec<&[u8]> = data.as_bytes().chunks(4096).collect();
            for (i, chunk) in chunks.iter().enumerate() {
                let more = u8::from(i + 1 < chunks.len());
                let head = if i == 0 {
                    format!("a=T,f=100,i=1,c={cols},r={rows},C=1,q=2,m={more}")
                } else {
                    format!("m={more}")
                };
                out.push_str(&format!("\x1b_G{head};{}\x1b\\", String::from_utf8_lossy(chunk)));
            }
            out
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auto_picks_the_protocol_the_environment_announces() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |k: &str| pairs.iter().find(|(n, _)| *n == k).map(|(_, v)| v.to_string())
        };
        let r = |pairs| Protocol::Auto.resolve(&env(pairs));
        assert_eq!(r(&[("TERM", "xterm-256color")]), Protocol::Blocks);
        assert_eq!(r(&[("TERM", "xterm-kitty")]), Protocol::Kitty);
        assert_eq!(r(&[("TERM_PROGRAM", "iTerm.app")]), Protocol::Iterm2);
        // Inside tmux a kitty outside does not help.
        assert_eq!(r(&[("KITTY_WINDOW_ID", "1"), ("TMUX", "/tmp/x")]), Protocol::Blocks);
        assert_eq!(Protocol::Kitty.resolve(&env(&[("TMUX", "x")])), Protocol::Kitty);
    }

    #[test]
    fn half_blocks_carry_two_pixels_per_cell_and_reset_each_line() {
        // 2×2: red over blue, then green over blue.
        let rgb = [255, 0, 0, 0, 255, 0, 0, 0, 255, 0, 0, 255];
        let lines = half_blocks(&rgb, 2, 2);
        assert_eq!(
            lines,
            ["\x1b[38;2;255;0;0m\x1b[48;2;0;0;255m▀\x1b[38;2;0;255;0m▀\x1b[0m".to_string()]
        );
    }

    #[test]
    fn the_preview_fits_the_terminal() {
        assert_eq!(fit(50, 100, (224, 224)), Some((64, 64)));
        assert_eq!(fit(24, 80, (224, 224)), Some((40, 40)));
        assert_eq!(fit(50, 30, (224, 224)), Some((29, 28)));
        assert_eq!(fit(6, 80, (224, 224)), None);
    }

    #[test]
    fn kitty_frames_replace_one_image_in_chunks() {
        let png = vec![7u8; 10_000];
        let s = image_escape(Protocol::Kitty, &png, 20, 10);
        assert!(s.starts_with("\x1b_Ga=d,d=I,i=1"));
        assert_eq!(s.matches("\x1b_G").count(), 1 + 13_336usize.div_ceil(4096));
        let payload: String = s
            .split("\x1b_G")
            .skip(2)
            .map(|e| e.split_once(';').unwrap().1.trim_end_matches("\x1b\\"))
            .collect();
        assert_eq!(base64::engine::general_purpose::STANDARD.decode(payload).unwrap(), png);
        let s = image_escape(Protocol::Iterm2, &png, 20, 10);
        assert!(s.starts_with("\x1b]1337;File=inline=1;size=10000;width=20;height=10"));
    }
}
