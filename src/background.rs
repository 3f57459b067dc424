//! A fixed picture under the strokes: PNG or JPEG (scaled to cover the canvas and
//! centre-cropped) or SVG (rendered by resvg the same way), held as 8-bit RGB at
//! the canvas size. The same 8-bit pixels go to the rasterizer and, as a PNG data
//! URI, into the written SVG, so what CLIP judged and what a browser shows agree.

use std::path::Path;

use anyhow::{anyhow, Result};
use tch::{Kind, Tensor};

use crate::record::FileRef;
use crate::scene::Canvas;

/// A background at a canvas's size.
#[derive(Clone, PartialEq, Eq)]
pub struct Background {
    /// Where it came from.
    pub source: FileRef,
    pub width: u32,
    pub height: u32,
    /// Row-major RGB, 3 bytes a pixel, transparency already over white.
    pub rgb: Vec<u8>,
}

impl std::fmt::Debug for Background {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Background")
            .field("source", &self.source)
            .field("size", &(self.width, self.height))
            .finish_non_exhaustive()
    }
}

/// What kind of picture a file holds, from its first bytes (not its name).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Png,
    Jpeg,
    Svg,
}

/// Reads `path` and tells its format; errors name the file.
pub fn probe(path: &Path) -> Result<(Vec<u8>, Format)> {
    let bytes = std::fs::read(path).map_err(|e| anyhow!("cannot read {}: {e}", path.display()))?;
    let format = sniff(&bytes)
        .ok_or_else(|| anyhow!("{} is not a PNG, JPEG or SVG file", path.display()))?;
    Ok((bytes, format))
}

/// The format of `bytes` by their first bytes, if clipdraw reads it.
pub fn sniff(bytes: &[u8]) -> Option<Format> {
    Some(if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
        Format::Png
    } else if bytes.starts_with(&[0xff, 0xd8, 0xff]) {
        Format::Jpeg
    } else if bytes.trim_ascii_start().starts_with(b"<") {
        Format::Svg
    } else {
        return None;
    })
}

impl Background {
    /// `path` drawn at `canvas`'s size. Pictures of another aspect ratio are
    /// scaled to cover the canvas and centred (the overflow is cut off).
    pub fn load(path: &Path, canvas: Canvas) -> Result<Background> {
        let (bytes, format) = probe(path)?;
        Self::from_bytes(path, bytes, format, canvas)
    }

    /// [`Background::load`] of bytes already read and sniffed; `path` names them.
    pub fn from_bytes(
        path: &Path,
        bytes: Vec<u8>,
        format: Format,
        canvas: Canvas,
    ) -> Result<Background> {
        let (w, h) = (canvas.width as u32, canvas.height as u32);
        let rgba = match format {
            Format::Svg => render_svg(&bytes, w, h)
                .map_err(|e| anyhow!("cannot use {} as a background: {e}", path.display()))?,
            Format::Png | Format::Jpeg => {
                let img = crate::output::decode_image(&bytes).map_err(|e| {
                    anyhow!("{} is not a readable PNG or JPEG: {e}", path.display())
                })?;
                cover(&img, w, h)
            }
        };
        let rgb = rgba
            .chunks_exact(4)
            .flat_map(|p| {
                let a = p[3] as u32;
                // Straight alpha over white, rounded.
                let over = |c: u8| ((c as u32 * a + 255 * (255 - a) + 127) / 255) as u8;
                [over(p[0]), over(p[1]), over(p[2])]
            })
            .collect();
        Ok(Background { source: FileRef::of(path, &bytes), width: w, height: h, rgb })
    }

    /// (1, 3, H, W) float in [0, 1] on the CPU.
    pub fn tensor(&self) -> Result<Tensor> {
        let (w, h) = (self.width as i64, self.height as i64);
        Ok(Tensor::f_from_slice(&self.rgb)?
            .f_view([h, w, 3])?
            .f_permute([2, 0, 1])? // (3, H, W)
            .f_unsqueeze(0)? // (1, 3, H, W)
            .f_to_kind(Kind::Float)?
            .f_div_scalar(255.0)?)
    }

    /// The pixels as a PNG file.
    pub fn png(&self) -> Result<Vec<u8>> {
        let mut pixmap = resvg::tiny_skia::Pixmap::new(self.width, self.height)
            .ok_or_else(|| anyhow!("cannot allocate a {}×{} image", self.width, self.height))?;
        for (px, src) in pixmap.data_mut().chunks_exact_mut(4).zip(self.rgb.chunks_exact(3)) {
            px.copy_from_slice(&[src[0], src[1], src[2], 255]);
        }
        pixmap.encode_png().map_err(|e| anyhow!("cannot encode PNG: {e}"))
    }

    /// The PNG as a `data:` URI for an SVG `<image>`.
    pub fn data_uri(&self) -> Result<String> {
        Ok(format!("data:image/png;base64,{}", base64(&self.png()?)))
    }
}

/// `img` scaled (bilinear) to cover `w`×`h`, centred: RGBA bytes.
fn cover(img: &image::RgbaImage, w: u32, h: u32) -> Vec<u8> {
    let (iw, ih) = img.dimensions();
    let scale = (w as f64 / iw as f64).max(h as f64 / ih as f64);
    let (sw, sh) =
        (((iw as f64 * scale).round() as u32).max(w), ((ih as f64 * scale).round() as u32).max(h));
    let scaled = if (sw, sh) == (iw, ih) {
        img.clone()
    } else {
        image::imageops::resize(img, sw, sh, image::imageops::FilterType::Triangle)
    };
    let (x0, y0) = ((sw - w) / 2, (sh - h) / 2);
    image::imageops::crop_imm(&scaled, x0, y0, w, h).to_image().into_raw()
}

/// An SVG rendered to cover `w`×`h`, centred, like [`cover`]: RGBA bytes, straight
/// alpha.
fn render_svg(bytes: &[u8], w: u32, h: u32) -> Result<Vec<u8>> {
    let text = std::str::from_utf8(bytes).map_err(|_| anyhow!("it is not UTF-8 SVG text"))?;
    let tree =
        crate::svg::parse_tree(text).map_err(|e| anyhow!("it is not a readable SVG: {e}"))?;
    let s = tree.size();
    let scale = (w as f32 / s.width()).max(h as f32 / s.height());
    let (dx, dy) = ((w as f32 - s.width() * scale) / 2.0, (h as f32 - s.height() * scale) / 2.0);
    let mut pixmap =
        resvg::tiny_skia::Pixmap::new(w, h).ok_or_else(|| anyhow!("cannot allocate {w}×{h}"))?;
    let ts = resvg::tiny_skia::Transform::from_row(scale, 0.0, 0.0, scale, dx, dy);
    crate::svg::render(&tree, ts, &mut pixmap)?;
    // Pixmaps are premultiplied; demultiply so that every format composites alike.
    Ok(pixmap
        .pixels()
        .iter()
        .flat_map(|p| {
            let c = p.demultiply();
            [c.red(), c.green(), c.blue(), c.alpha()]
        })
        .collect())
}

/// Standard base64 (RFC 4648, with padding): a dozen lines, not worth a crate.
pub fn base64(bytes: &[u8]) -> String {
    const ABC: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = (b[0] as u32) << 16 | (b[1] as u32) << 8 | b[2] as u32;
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ABC[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_rfc_4648_vectors() {
        for (plain, coded) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(plain.as_bytes()), coded, "{plain:?}");
        }
    }

    #[test]
    fn pictures_cover_the_canvas_and_unknown_files_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        // 4×2 PNG: left half red, right half blue; on a 2×2 canvas the centre stays.
        let mut img = image::RgbaImage::new(4, 2);
        for (x, _, p) in img.enumerate_pixels_mut() {
            *p = if x < 2 { image::Rgba([255, 0, 0, 255]) } else { image::Rgba([0, 0, 255, 255]) };
        }
        let p = dir.path().join("a.png");
        img.save(&p).unwrap();
        let bg = Background::load(&p, Canvas::new(2, 2).unwrap()).unwrap();
        assert_eq!(bg.rgb, vec![255, 0, 0, 0, 0, 255, 255, 0, 0, 0, 0, 255]);
        assert_eq!(bg.tensor().unwrap().size(), [1, 3, 2, 2]);
        let svg = dir.path().join("b.svg");
        std::fs::write(&svg, r##"<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"><rect width="10" height="10" fill="#00ff00"/></svg>"##).unwrap();
        let bg = Background::load(&svg, Canvas::new(30, 20).unwrap()).unwrap();
        assert!(bg.rgb.chunks(3).all(|p| p == [0, 255, 0]), "the SVG covers the canvas");
        let bad = dir.path().join("c.gif");
        std::fs::write(&bad, b"GIF89a....").unwrap();
        let e = Background::load(&bad, Canvas::new(2, 2).unwrap()).unwrap_err().to_string();
        assert!(e.contains("c.gif") && e.contains("not a PNG, JPEG or SVG"), "{e}");
    }
}
