//! Where a drawing starts: an initial SVG file ([`InitFile`]), random strokes on
//! any canvas ([`stroke_init`]), and how lengths scale with the canvas; plus the
//! parsers for the values of those flags (canvas sizes, ranges, durations).
//!
//! Lengths: the paper's numbers (1-pixel strokes, steps of 0.1·canvas, widths up
//! to 50 px, a points learning rate of 1 px) are for a 224×224 canvas. On a W×H
//! canvas each is multiplied by [`length_scale`] = √(W·H)/224, so a larger canvas
//! gives the same drawing at a higher resolution, and steps are the same in x and
//! y (a wide canvas does not stretch its strokes). Widths given in canvas pixels
//! (`--width`) are taken as they are.

use std::path::Path;
use std::time::Duration;

use anyhow::{anyhow, bail, Result};

use crate::record::{FileRef, Record};
use crate::request::Settings;
use crate::scene::{Canvas, Stroke, StrokeInit};

/// The canvas side the paper's lengths are given for.
pub const REFERENCE_SIDE: f64 = 224.0;
/// The longest canvas side a drawing may ask for.
pub const MAX_CANVAS_SIDE: i64 = 4096;

/// √(W·H) / 224: how much the paper's lengths grow on `canvas`.
pub fn length_scale(canvas: Canvas) -> f64 {
    ((canvas.width * canvas.height) as f64).sqrt() / REFERENCE_SIDE
}

/// DESIGN.md's init on `canvas` with the lengths scaled: steps of 0.1·√(W·H) per
/// axis, width `length_scale` px (kept inside the settings' width range), the
/// settings' segment range.
pub fn stroke_init(canvas: Canvas, settings: &Settings) -> StrokeInit {
    let k = length_scale(canvas);
    let step = 0.1 * REFERENCE_SIDE * k;
    let width = k.clamp(settings.min_width_px, settings.max_width_px);
    StrokeInit { step_px: [step, step], width_px: (width, width), segments: settings.segments }
}

/// An initial drawing read from an SVG file.
#[derive(Clone, Debug)]
pub struct InitFile {
    /// The path as given, with the SHA-256 of the bytes read.
    pub source: FileRef,
    pub canvas: Canvas,
    /// Its strokes in painting order; may be empty (then `why_empty` says why).
    pub strokes: Vec<Stroke>,
    pub why_empty: Option<String>,
    /// The clipdraw record in its metadata, if it has one.
    pub record: Option<Record>,
}

impl InitFile {
    /// Reads `path`: a clipdraw SVG gives back every stroke and its record; any
    /// other SVG its stroked paths ([`crate::svg::from_svg`]'s rules).
    pub fn read(path: &Path) -> Result<InitFile> {
        let bytes =
            std::fs::read(path).map_err(|e| anyhow!("cannot read {}: {e}", path.display()))?;
        let text = std::str::from_utf8(&bytes)
            .map_err(|_| anyhow!("{} is not an SVG file (not UTF-8 text)", path.display()))?;
        let tree = crate::svg::parse_tree(text)
            .map_err(|e| anyhow!("{} is not an SVG clipdraw can read: {e}", path.display()))?;
        let size = tree.size();
        let canvas = Canvas::new(size.width().ceil() as i64, size.height().ceil() as i64)
            .map_err(|e| anyhow!("{}: {e}", path.display()))?;
        // Strokes beyond the limits are an error even with --add-strokes: drawing
        // over an empty canvas instead would quietly drop the file's drawing.
        let (strokes, why_empty) =
            match crate::svg::strokes_of(&tree).map_err(|e| anyhow!("{}: {e}", path.display()))? {
                Ok(strokes) => (strokes, None),
                Err(why) => (Vec::new(), Some(format!("{}: {why}", path.display()))),
            };
        let record = Record::from_svg(text).ok();
        Ok(InitFile { source: FileRef::of(path, &bytes), canvas, strokes, why_empty, record })
    }
}

/// `WxH`, e.g. `384x216`, each side in 16..=[`MAX_CANVAS_SIDE`].
pub fn parse_canvas(s: &str) -> Result<Canvas> {
    let bad = || anyhow!("expected WIDTHxHEIGHT in pixels, e.g. 384x216, got {s:?}");
    let (w, h) = s.split_once(['x', 'X']).ok_or_else(bad)?;
    let (w, h): (i64, i64) =
        (w.trim().parse().map_err(|_| bad())?, h.trim().parse().map_err(|_| bad())?);
    for side in [w, h] {
        if !(16..=MAX_CANVAS_SIDE).contains(&side) {
            bail!("canvas {w}x{h}: each side must be 16 to {MAX_CANVAS_SIDE} pixels");
        }
    }
    Canvas::new(w, h)
}

/// `MIN..MAX` (or one value, meaning both) of finite numbers with MIN <= MAX.
pub fn parse_range(s: &str) -> Result<(f64, f64)> {
    let num = |t: &str| -> Result<f64> {
        match t.trim().parse::<f64>() {
            Ok(v) if v.is_finite() => Ok(v),
            _ => bail!("expected MIN..MAX, e.g. 2..8, got {s:?}"),
        }
    };
    let (lo, hi) = match s.split_once("..") {
        Some((a, b)) => (num(a)?, num(b)?),
        None => (num(s)?, num(s)?),
    };
    if lo > hi {
        bail!("the range {s:?} is empty: MIN is above MAX");
    }
    Ok((lo, hi))
}

/// A duration such as `90s`, `5m`, `1.5h`, `500ms` (a bare number is seconds);
/// it must be longer than 0.
pub fn parse_duration(s: &str) -> Result<Duration> {
    let t = s.trim();
    let split = t.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let scale = match unit.trim() {
        "" | "s" | "sec" => 1.0,
        "ms" => 1e-3,
        "m" | "min" => 60.0,
        "h" => 3600.0,
        _ => bail!("expected a duration such as 90s, 5m or 1h, got {s:?}"),
    };
    let v: f64 = number
        .parse()
        .map_err(|_| anyhow!("expected a duration such as 90s, 5m or 1h, got {s:?}"))?;
    let secs = v * scale;
    if !(secs.is_finite() && secs > 0.0) {
        bail!("the time limit must be longer than 0, got {s:?}");
    }
    Duration::try_from_secs_f64(secs).map_err(|_| anyhow!("the time limit {s:?} is too long"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_parse_and_bad_ones_are_named() {
        assert_eq!(parse_canvas("384x216").unwrap(), Canvas::new(384, 216).unwrap());
        assert_eq!(parse_canvas("1024X1024").unwrap(), Canvas::new(1024, 1024).unwrap());
        for bad in ["384", "x216", "384x", "0x10", "10x99999", "a×b", "-5x20"] {
            assert!(parse_canvas(bad).is_err(), "{bad}");
        }
        assert_eq!(parse_range("2..8").unwrap(), (2.0, 8.0));
        assert_eq!(parse_range("3").unwrap(), (3.0, 3.0));
        assert!(parse_range("8..2").unwrap_err().to_string().contains("empty"));
        assert!(parse_range("a..2").is_err());
        assert_eq!(parse_duration("90s").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("5m").unwrap(), Duration::from_secs(300));
        assert_eq!(parse_duration("1.5h").unwrap(), Duration::from_secs(5400));
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_duration("2").unwrap(), Duration::from_secs(2));
        for bad in ["0s", "0", "-3s", "", "5 parsecs", "s", "1e3s"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn lengths_scale_with_the_area() {
        assert_eq!(length_scale(Canvas::new(224, 224).unwrap()), 1.0);
        assert_eq!(length_scale(Canvas::new(448, 448).unwrap()), 2.0);
        let init = stroke_init(Canvas::new(448, 448).unwrap(), &Settings::default());
        assert!(init.step_px.iter().all(|v| (v - 44.8).abs() < 1e-9), "{:?}", init.step_px);
        assert_eq!(init.width_px, (2.0, 2.0));
    }
}
