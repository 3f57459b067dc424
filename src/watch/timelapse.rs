//! Timelapses from frames kept as stroke values (a few kB per frame, so a run
//! keeps them all and renders once at the end).
//!
//! - SVG: one document, one `<path>` per stroke whose `d`, `stroke`,
//!   `stroke-opacity` and `stroke-width` animate through the frames with SMIL
//!   `<animate values=…>` (linear in between, so the motion is smooth at any frame
//!   rate), looping. The paths' own attributes are the last frame, so a viewer
//!   without SMIL shows the final drawing. A stroke keeps its segment count for the
//!   whole run, so every `d` has the same commands and interpolates.
//! - GIF and APNG: each frame rendered by resvg, [`FRAME_S`] per frame, the last
//!   held for [`HOLD_S`], looping.

use std::fmt::Write as _;

use anyhow::{anyhow, Result};

use super::TimelapseMode;
use crate::output;
use crate::scene::{Canvas, Stroke};

/// Seconds each frame shows.
pub const FRAME_S: f64 = 0.1;
/// Seconds the last frame is held before the animation loops.
pub const HOLD_S: f64 = 2.0;

/// One frame: the drawing after iteration `iter`.
#[derive(Clone, Debug)]
pub struct Frame {
    pub iter: u32,
    pub strokes: Vec<Stroke>,
}

/// The frames of one run, in order.
#[derive(Debug, Default)]
pub struct Timelapse {
    frames: Vec<Frame>,
}

/// `v` with at most `decimals` decimals and no trailing zeros: the timelapse's
/// coordinates need 0.1 px (far below a pixel at the canvas size), and shorter
/// numbers keep a 250-frame, 256-stroke file near 1 MB.
fn short(v: f32, decimals: usize) -> String {
    let s = format!("{:.*}", decimals, v);
    let s = if s.contains('.') { s.trim_end_matches('0').trim_end_matches('.') } else { &s };
    if s == "-0" {
        "0".into()
    } else {
        s.into()
    }
}

fn path_d(st: &Stroke) -> String {
    let mut d = String::with_capacity(st.points.len() * 10);
    for (i, p) in st.points.iter().enumerate() {
        let cmd = match i {
            0 => "M",
            i if i % 3 == 1 => " C",
            _ => "",
        };
        let _ = write!(d, "{cmd} {} {}", short(p[0], 1), short(p[1], 1));
    }
    d.trim_start().to_string()
}

fn hex(rgba: &[f32; 4]) -> String {
    let c = |v: f32| (v.clamp(0.0, 1.0) * 255.0).round() as u8;
    format!("#{:02x}{:02x}{:02x}", c(rgba[0]), c(rgba[1]), c(rgba[2]))
}

impl Timelapse {
    pub fn push(&mut self, frame: Frame) {
        self.frames.push(frame);
    }

    pub fn len(&self) -> usize {
        self.frames.len()
    }

    pub fn is_empty(&self) -> bool {
        self.frames.is_empty()
    }

    /// Seconds one loop of the animation lasts.
    pub fn duration_s(&self) -> f64 {
        self.frames.len().saturating_sub(1) as f64 * FRAME_S + HOLD_S
    }

    /// The animated SVG. In [`TimelapseMode::Strokes`] the frames are prefixes of
    /// the last one, and each path only appears at its frame.
    pub fn to_svg(
        &self,
        canvas: Canvas,
        mode: TimelapseMode,
        background: Option<&str>,
    ) -> Result<String> {
        let last = self.frames.last().ok_or_else(|| anyhow!("the timelapse has no frames"))?;
        let (w, h) = (canvas.width, canvas.height);
        let dur = self.duration_s();
        let n = self.frames.len();
        // Frame i starts at i·FRAME_S; the last value repeats at the end (the hold).
        let mut key_times: Vec<String> =
            (0..n).map(|i| short((i as f64 * FRAME_S / dur) as f32, 4)).collect();
        key_times.push("1".into());
        let key_times = key_times.join(";");
        let mut out = String::with_capacity(256 + n * last.strokes.len() * 60);
        let _ = writeln!(out, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>");
        let _ = writeln!(
            out,
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" viewBox=\"0 0 {w} {h}\">"
        );
        crate::svg::ground(&mut out, canvas, background);
        let anim = |out: &mut String, attr: &str, values: &[String]| {
            let mut v = values.join(";");
            let _ = write!(v, ";{}", values[values.len() - 1]);
            let _ = write!(
                out,
                "<animate attributeName=\"{attr}\" dur=\"{}s\" repeatCount=\"indefinite\" keyTimes=\"{key_times}\" values=\"{v}\"/>",
                short(dur as f32, 3)
            );
        };
        for (k, st) in last.strokes.iter().enumerate() {
            let _ = write!(
                out,
                "<path d=\"{}\" fill=\"none\" stroke=\"{}\" stroke-opacity=\"{}\" stroke-width=\"{}\" stroke-linecap=\"round\" stroke-linejoin=\"round\">",
                path_d(st),
                hex(&st.rgba),
                short(st.rgba[3].clamp(0.0, 1.0), 3),
                short(st.width_px.max(0.0), 2)
            );
            match mode {
                TimelapseMode::Iterations => {
                    let of = |f: &dyn Fn(&Stroke) -> String| -> Vec<String> {
                        self.frames.iter().map(|fr| f(&fr.strokes[k])).collect()
                    };
                    anim(&mut out, "d", &of(&path_d));
                    anim(&mut out, "stroke", &of(&|s| hex(&s.rgba)));
                    anim(&mut out, "stroke-opacity", &of(&|s| short(s.rgba[3].clamp(0.0, 1.0), 3)));
                    anim(&mut out, "stroke-width", &of(&|s| short(s.width_px.max(0.0), 2)));
                }
                TimelapseMode::Strokes => {
                    // The first frame that holds stroke k; hidden before it.
                    let first = self.frames.iter().position(|f| f.strokes.len() > k).unwrap_or(0);
                    if first > 0 {
                        let at = short((first as f64 * FRAME_S / dur) as f32, 4);
                        let _ = write!(
                            out,
                            "<animate attributeName=\"visibility\" dur=\"{}s\" repeatCount=\"indefinite\" calcMode=\"discrete\" keyTimes=\"0;{at}\" values=\"hidden;visible\"/>",
                            short(dur as f32, 3)
                        );
                    }
                }
            }
            out.push_str("</path>\n");
        }
        out.push_str("</svg>\n");
        Ok(out)
    }

    /// Every frame rendered by resvg at `size_px` (longer side), as RGBA over white
    /// and the background (a data URI), if any.
    fn rendered(
        &self,
        canvas: Canvas,
        size_px: u32,
        background: Option<&str>,
    ) -> Result<Vec<(u32, u32, Vec<u8>)>> {
        self.frames
            .iter()
            .map(|f| {
                let svg = crate::svg::strokes_to_svg(canvas, &f.strokes, None, background)?;
                let pm = output::svg_to_pixmap(&svg, size_px)?;
                // The white background makes every pixel opaque, so premultiplied
                // values are the colours themselves.
                Ok((pm.width(), pm.height(), pm.data().to_vec()))
            })
            .collect()
    }

    /// The frames as a looping GIF.
    pub fn to_gif(
        &self,
        canvas: Canvas,
        size_px: u32,
        background: Option<&str>,
    ) -> Result<Vec<u8>> {
        use image::codecs::gif::{GifEncoder, Repeat};
        use image::{Delay, Frame as ImageFrame, RgbaImage};
        let frames = self.rendered(canvas, size_px, background)?;
        let mut bytes = Vec::new();
        {
            // Speed 10 of 1–30: NeuQuant at speed 1 takes seconds per frame; 10 is
            // the gif crate's own default and looks the same on these drawings.
            let mut enc = GifEncoder::new_with_speed(&mut bytes, 10);
            enc.set_repeat(Repeat::Infinite).map_err(|e| anyhow!("cannot encode GIF: {e}"))?;
            let n = frames.len();
            for (i, (w, h, data)) in frames.into_iter().enumerate() {
                let img = RgbaImage::from_raw(w, h, data)
                    .ok_or_else(|| anyhow!("a {w}×{h} frame has the wrong size"))?;
                let ms = if i + 1 == n { HOLD_S } else { FRAME_S } * 1000.0;
                let frame =
                    ImageFrame::from_parts(img, 0, 0, Delay::from_numer_denom_ms(ms as u32, 1));
                enc.encode_frame(frame).map_err(|e| anyhow!("cannot encode GIF frame {i}: {e}"))?;
            }
        }
        Ok(bytes)
    }

    /// The frames as a looping APNG (RGB, 8 bits).
    pub fn to_apng(
        &self,
        canvas: Canvas,
        size_px: u32,
        background: Option<&str>,
    ) -> Result<Vec<u8>> {
        let frames = self.rendered(canvas, size_px, background)?;
        let (w, h) = frames.first().map(|f| (f.0, f.1)).ok_or_else(|| anyhow!("no frames"))?;
        let mut bytes = Vec::new();
        let err = |e: png::EncodingError| anyhow!("cannot encode APNG: {e}");
        {
            let mut enc = png::Encoder::new(&mut bytes, w, h);
            enc.set_color(png::ColorType::Rgb);
            enc.set_depth(png::BitDepth::Eight);
            enc.set_animated(frames.len() as u32, 0).map_err(err)?;
            let mut writer = enc.write_header().map_err(err)?;
            let n = frames.len();
            for (i, (_, _, data)) in frames.iter().enumerate() {
                // Delays as fractions of a second: 1/10 per frame, 2/1 for the hold.
                let (num, den) = if i + 1 == n { (HOLD_S, 1.0) } else { (FRAME_S * 10.0, 10.0) };
                writer.set_frame_delay(num as u16, den as u16).map_err(err)?;
                let rgb: Vec<u8> = data.chunks_exact(4).flat_map(|p| [p[0], p[1], p[2]]).collect();
                writer.write_image_data(&rgb).map_err(err)?;
            }
            writer.finish().map_err(err)?;
        }
        Ok(bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stroke(x: f32, rgba: [f32; 4]) -> Stroke {
        Stroke {
            points: vec![[x, 1.0], [x + 1.0, 2.0], [x + 2.0, 3.0], [x + 3.0, 4.26]],
            width_px: 2.0,
            rgba,
        }
    }

    #[test]
    fn svg_paths_animate_through_every_frame_and_end_on_the_last() {
        let mut t = Timelapse::default();
        for (i, x) in [0.0, 10.0, 20.0].into_iter().enumerate() {
            let a = stroke(x, [1.0, 0.0, 0.0, 0.5]);
            let b = stroke(x + 5.0, [0.0, 0.0, 1.0, 1.0]);
            t.push(Frame { iter: i as u32 + 1, strokes: vec![a, b] });
        }
        let svg = t.to_svg(Canvas::new(40, 30).unwrap(), TimelapseMode::Iterations, None).unwrap();
        usvg::Tree::from_str(&svg, &usvg::Options::default()).unwrap();
        assert_eq!(svg.matches("<path ").count(), 2);
        assert_eq!(svg.matches("<animate ").count(), 8);
        // The static d is the last frame; the values run first → last, then hold.
        assert!(svg.contains("<path d=\"M 20 1 C 21 2 22 3 23 4.3\""), "{svg}");
        assert!(svg.contains("values=\"M 0 1 C 1 2 2 3 3 4.3;M 10 1 C 11 2 12 3 13 4.3;M 20 1 C 21 2 22 3 23 4.3;M 20 1 C 21 2 22 3 23 4.3\""), "{svg}");
        assert!(svg.contains("keyTimes=\"0;0.0455;0.0909;1\""), "{svg}");
        assert!(svg.contains("dur=\"2.2s\""));
    }

    #[test]
    fn stroke_mode_reveals_paths_in_order() {
        let all: Vec<Stroke> =
            (0..3).map(|i| stroke(i as f32 * 5.0, [0.0, 0.0, 0.0, 1.0])).collect();
        let mut t = Timelapse::default();
        for end in [2, 3] {
            t.push(Frame { iter: 9, strokes: all[..end].to_vec() });
        }
        let svg = t.to_svg(Canvas::new(40, 30).unwrap(), TimelapseMode::Strokes, None).unwrap();
        assert_eq!(svg.matches("<path ").count(), 3);
        // Only the third stroke waits, until frame 1 of 2 (0.1 s of 2.1 s).
        assert_eq!(svg.matches("attributeName=\"visibility\"").count(), 1);
        assert!(svg.contains("keyTimes=\"0;0.0476\" values=\"hidden;visible\""), "{svg}");
    }
}
