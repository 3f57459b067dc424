//! Scenes as SVG: [`to_svg`] writes one drawing as a standalone document that resvg
//! (and browsers) render like [`crate::raster::rasterize`]; [`from_svg`] reads such
//! a document, or any SVG made of stroked paths, back into a scene.
//!
//! Shapes as in [`crate::scene`]: `N` drawings, `S` strokes, `P` = 10 control points.

use std::fmt::Write as _;

use anyhow::{anyhow, bail, Result};
use tch::Device;
use usvg::tiny_skia_path::{PathSegment, Point};

use crate::scene::{Canvas, Scene, Stroke, MAX_SEGMENTS};

/// The largest SVG document clipdraw reads, in bytes (a 100,000-stroke drawing
/// is about 15 MB).
pub const MAX_SVG_BYTES: usize = 64 << 20;
/// The most XML nodes (elements, text, comments) in an SVG document clipdraw reads.
pub const MAX_SVG_NODES: u32 = 1_000_000;
/// The deepest nesting of elements clipdraw reads; SVG readers recurse per level.
pub const MAX_SVG_DEPTH: usize = 256;
/// The largest coordinate (after transforms) a stroke read from an SVG may have,
/// in pixels: 1000 canvases of the largest size away from the origin.
pub const MAX_COORD_PX: f32 = 4.0e6;

/// Parses XML text within [`MAX_SVG_BYTES`] and [`MAX_SVG_NODES`] (DTDs allowed,
/// as usvg allows them; roxmltree bounds entity expansion itself).
pub fn parse_xml(text: &str) -> Result<roxmltree::Document<'_>> {
    if text.len() > MAX_SVG_BYTES {
        bail!(
            "the SVG is {} bytes; clipdraw reads SVGs of at most {} MiB",
            text.len(),
            MAX_SVG_BYTES >> 20
        );
    }
    let opts = roxmltree::ParsingOptions {
        allow_dtd: true,
        nodes_limit: MAX_SVG_NODES,
        ..Default::default()
    };
    roxmltree::Document::parse_with_options(text, opts).map_err(|e| match e {
        roxmltree::Error::NodesLimitReached => anyhow!(
            "the SVG has more than {MAX_SVG_NODES} XML nodes; clipdraw reads at most that many"
        ),
        e => anyhow!("not a readable SVG document: {e}"),
    })
}

/// Parses SVG text with usvg within clipdraw's limits ([`MAX_SVG_BYTES`],
/// [`MAX_SVG_NODES`], [`MAX_SVG_DEPTH`]), checked before usvg allocates or recurses.
/// Every SVG clipdraw reads goes through here.
pub fn parse_tree(text: &str) -> Result<usvg::Tree> {
    let doc = parse_xml(text)?;
    // Depth by parent, in document order (parents come first): no recursion here.
    let mut depth = vec![0usize; doc.descendants().count()];
    for node in doc.descendants() {
        if let Some(parent) = node.parent() {
            let d = depth[parent.id().get_usize()] + 1;
            if d > MAX_SVG_DEPTH {
                bail!("the SVG nests elements more than {MAX_SVG_DEPTH} deep; clipdraw reads at most that");
            }
            depth[node.id().get_usize()] = d;
        }
    }
    usvg::Tree::from_xmltree(&doc, &usvg::Options::default())
        .map_err(|e| anyhow!("not a readable SVG document: {e}"))
}

/// Renders `tree` into `pixmap` with resvg, under `transform`. A panic inside
/// resvg (tiny-skia 0.12 has one on some extreme coordinates) becomes an error.
pub fn render(
    tree: &usvg::Tree,
    transform: resvg::tiny_skia::Transform,
    pixmap: &mut resvg::tiny_skia::Pixmap,
) -> Result<()> {
    crate::panics::catch(|| resvg::render(tree, transform, &mut pixmap.as_mut()))
        .map_err(|m| anyhow!("resvg cannot render it ({m})"))
}

/// Decimals written for coordinates and widths (pixels) and opacities: 1/1000 px
/// is far below what anti-aliasing can show, and re-parsing gives the same picture.
const DECIMALS: usize = 3;

/// `v` rounded to [`DECIMALS`], without trailing zeros or a negative zero, so that
/// equal values always give byte-identical text.
fn num(v: f64) -> String {
    let s = format!("{v:.DECIMALS$}");
    let s = if s.contains('.') { s.trim_end_matches('0').trim_end_matches('.') } else { &s };
    if s == "-0" {
        "0".to_string()
    } else {
        s.to_string()
    }
}

fn channel_hex(c: f64) -> u8 {
    (c.clamp(0.0, 1.0) * 255.0).round() as u8
}

/// One drawing (`scene` must have N = 1) as a standalone SVG document: a white
/// background, then one `<path>` per stroke in painting order (`M`, then 1–3 `C`
/// segments), round caps and joins, colour as `#rrggbb`, alpha as `stroke-opacity`.
///
/// `metadata` is XML text that is already escaped; it goes inside `<metadata>`.
pub fn to_svg(scene: &Scene, metadata: Option<&str>) -> Result<String> {
    to_svg_over(scene, metadata, None)
}

/// [`to_svg`], with a picture between the white background and the strokes:
/// `background` is an image URL (a `data:` URI keeps the file self-contained),
/// stretched over the whole canvas.
pub fn to_svg_over(
    scene: &Scene,
    metadata: Option<&str>,
    background: Option<&str>,
) -> Result<String> {
    let (n, _) = scene.check()?;
    if n != 1 {
        bail!("to_svg writes one drawing, but the scene has {n}; select one with Scene::select");
    }
    strokes_to_svg(scene.canvas, &scene.strokes()?, metadata, background)
}

/// What every stroke document paints first: white, then the background image
/// (a data URI) stretched over the canvas, if any.
pub fn ground(out: &mut String, canvas: Canvas, background: Option<&str>) {
    let (w, h) = (canvas.width, canvas.height);
    let _ = writeln!(out, "<rect width=\"{w}\" height=\"{h}\" fill=\"white\"/>");
    if let Some(href) = background {
        let _ = writeln!(
            out,
            "<image id=\"background\" width=\"{w}\" height=\"{h}\" preserveAspectRatio=\"none\" href=\"{href}\"/>"
        );
    }
}

/// The document [`to_svg_over`] writes, from plain strokes on `canvas` (for
/// drawings kept as values, such as timelapse frames).
pub fn strokes_to_svg(
    canvas: Canvas,
    strokes: &[Stroke],
    metadata: Option<&str>,
    background: Option<&str>,
) -> Result<String> {
    let (w, h) = (canvas.width, canvas.height);
    let mut out = String::with_capacity(200 + 220 * strokes.len());
    out.push_str("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(out, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" viewBox=\"0 0 {w} {h}\">");
    if let Some(m) = metadata {
        let _ = writeln!(out, "<metadata>{m}</metadata>");
    }
    ground(&mut out, canvas, background);
    for (k, st) in strokes.iter().enumerate() {
        let (c, width) = (st.rgba.map(f64::from), st.width_px as f64);
        let used: Vec<f64> = st.points.iter().flat_map(|p| [p[0] as f64, p[1] as f64]).collect();
        if let Some(v) = used.iter().chain(&c).chain([&width]).find(|v| !v.is_finite()) {
            bail!("stroke {k} has a non-finite value ({v}) in its points, width or colour");
        }
        let mut d = format!("M {} {}", num(used[0]), num(used[1]));
        for (i, xy) in used[2..].chunks(2).enumerate() {
            d.push_str(if i % 3 == 0 { " C " } else { " " });
            let _ = write!(d, "{} {}", num(xy[0]), num(xy[1]));
        }
        let _ = writeln!(
            out,
            "<path d=\"{d}\" fill=\"none\" stroke=\"#{:02x}{:02x}{:02x}\" stroke-opacity=\"{}\" stroke-width=\"{}\" stroke-linecap=\"round\" stroke-linejoin=\"round\"/>",
            channel_hex(c[0]),
            channel_hex(c[1]),
            channel_hex(c[2]),
            num(c[3].clamp(0.0, 1.0)),
            num(width.max(0.0)),
        );
    }
    out.push_str("</svg>\n");
    Ok(out)
}

/// Reads an SVG into an N = 1 scene on `device`.
///
/// Every visible path with a solid stroke colour becomes strokes: usvg resolves
/// styles and transforms; lines and quadratics are raised to cubics, a closing
/// segment becomes a line, each subpath starts a new stroke and one with more than
/// 3 segments is split into several (round caps meet exactly where the round join
/// was). Fills, gradients, images and text are ignored; caps and joins are always
/// drawn round. The canvas is the document's size, rounded up to whole pixels.
pub fn from_svg(text: &str, device: Device) -> Result<Scene> {
    let tree = parse_tree(text)?;
    let size = tree.size();
    let canvas = Canvas::new(size.width().ceil() as i64, size.height().ceil() as i64)?;
    let strokes = strokes_of(&tree)?.map_err(|why| anyhow!(why))?;
    Scene::from_strokes(canvas, &strokes, device)
}

/// The stroked paths of a parsed SVG, as [`from_svg`] reads them. Strokes beyond
/// the limits are an error; an SVG without any readable stroke is `Ok(Err(why))`,
/// so that a caller that can draw on an empty canvas (`--init` with
/// `--add-strokes`) tells the two apart.
pub fn strokes_of(tree: &usvg::Tree) -> Result<std::result::Result<Vec<Stroke>, String>> {
    let mut strokes = Vec::new();
    let mut skipped = 0usize;
    collect(tree.root(), 1.0, &mut strokes, &mut skipped);
    if strokes.is_empty() {
        let why = if skipped > 0 {
            format!(
                " ({skipped} stroked paths use gradients or patterns, which clipdraw cannot read)"
            )
        } else {
            String::new()
        };
        return Ok(Err(format!(
            "the SVG has no stroked paths{why}: clipdraw reads drawings made of strokes with a solid colour"
        )));
    }
    check_strokes_read(&strokes)?;
    Ok(Ok(strokes))
}

/// Strokes read from a file are refused when there are more than a drawing may
/// have, or when a number is not finite or far off the canvas.
fn check_strokes_read(strokes: &[Stroke]) -> Result<()> {
    let max = crate::request::MAX_STROKES as usize;
    if strokes.len() > max {
        bail!("the SVG has {} strokes; a drawing has at most {max}", strokes.len());
    }
    for (k, st) in strokes.iter().enumerate() {
        let far = st.points.iter().flatten().find(|v| !(v.abs() <= MAX_COORD_PX));
        if let Some(v) = far {
            bail!("stroke {k} has a coordinate of {v:e} px; clipdraw reads coordinates within ±{MAX_COORD_PX:e} px");
        }
        if !(st.width_px.is_finite() && st.rgba.iter().all(|c| c.is_finite())) {
            bail!("stroke {k} has a width or colour that is not a finite number");
        }
    }
    Ok(())
}

fn collect(group: &usvg::Group, opacity: f32, out: &mut Vec<Stroke>, skipped: &mut usize) {
    for node in group.children() {
        match node {
            usvg::Node::Group(g) => collect(g, opacity * g.opacity().get(), out, skipped),
            usvg::Node::Path(path) => {
                let Some(stroke) = path.stroke() else { continue };
                if !path.is_visible() {
                    continue;
                }
                let usvg::Paint::Color(c) = stroke.paint() else {
                    *skipped += 1;
                    continue;
                };
                let ts = path.abs_transform();
                // A stroke's width scales with the transform's area scale.
                let scale = (ts.sx * ts.sy - ts.kx * ts.ky).abs().sqrt();
                let rgba = [
                    c.red as f32 / 255.0,
                    c.green as f32 / 255.0,
                    c.blue as f32 / 255.0,
                    stroke.opacity().get() * opacity,
                ];
                let width = stroke.width().get() * scale;
                let map = |mut p: Point| {
                    ts.map_point(&mut p);
                    [p.x, p.y]
                };
                split_into_strokes(path.data().segments(), &map, width, rgba, out);
            }
            usvg::Node::Image(_) | usvg::Node::Text(_) => {}
        }
    }
}

/// Turns one path's segments into strokes of at most [`MAX_SEGMENTS`] cubics.
fn split_into_strokes(
    segments: impl Iterator<Item = PathSegment>,
    map: &dyn Fn(Point) -> [f32; 2],
    width: f32,
    rgba: [f32; 4],
    out: &mut Vec<Stroke>,
) {
    // Cubic segments of the current subpath, each as (p1, p2, p3); `start` is p0.
    let mut start: Option<[f32; 2]> = None;
    let mut cubics: Vec<[[f32; 2]; 3]> = Vec::new();
    let mut flush = |start: Option<[f32; 2]>, cubics: &mut Vec<[[f32; 2]; 3]>| {
        if let Some(p0) = start {
            let mut from = p0;
            for chunk in cubics.chunks(MAX_SEGMENTS as usize) {
                let mut points = vec![from];
                for c in chunk {
                    points.extend(c);
                }
                from = *points.last().unwrap_or(&from);
                out.push(Stroke { points, width_px: width, rgba });
            }
        }
        cubics.clear();
    };
    let line = |a: [f32; 2], b: [f32; 2]| {
        let at = |t: f32| [a[0] + t * (b[0] - a[0]), a[1] + t * (b[1] - a[1])];
        [at(1.0 / 3.0), at(2.0 / 3.0), b]
    };
    let mut current = [0.0f32; 2];
    for seg in segments {
        match seg {
            PathSegment::MoveTo(p) => {
                flush(start, &mut cubics);
                current = map(p);
                start = Some(current);
            }
            PathSegment::LineTo(p) => {
                let b = map(p);
                cubics.push(line(current, b));
                current = b;
            }
            PathSegment::QuadTo(q, p) => {
                let (q, b) = (map(q), map(p));
                // Degree elevation: the cubic's handles sit 2/3 of the way to q.
                let lerp = |a: [f32; 2], c: [f32; 2]| {
                    [a[0] + 2.0 / 3.0 * (c[0] - a[0]), a[1] + 2.0 / 3.0 * (c[1] - a[1])]
                };
                cubics.push([lerp(current, q), lerp(b, q), b]);
                current = b;
            }
            PathSegment::CubicTo(c1, c2, p) => {
                let b = map(p);
                cubics.push([map(c1), map(c2), b]);
                current = b;
            }
            PathSegment::Close => {
                if let Some(p0) = start {
                    if p0 != current {
                        cubics.push(line(current, p0));
                    }
                    current = p0;
                }
            }
        }
    }
    flush(start, &mut cubics);
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::{Kind, Tensor};

    fn flat(t: &Tensor) -> Vec<f64> {
        Vec::<f64>::try_from(t.to_kind(Kind::Double).flatten(0, -1)).unwrap()
    }

    #[test]
    fn numbers_are_short_and_deterministic() {
        assert_eq!(num(1.0), "1");
        assert_eq!(num(12.3456), "12.346");
        assert_eq!(num(-0.0001), "0");
        assert_eq!(num(0.5), "0.5");
        assert_eq!(num(-3.25), "-3.25");
    }

    #[test]
    fn round_trip_keeps_the_drawing() {
        let canvas = Canvas::new(64, 48).unwrap();
        let scene = Scene::grown(1, 12, canvas, 3, Device::Cpu).unwrap();
        let text = to_svg(&scene, Some("<prompt>a cat &amp; a dog</prompt>")).unwrap();
        assert!(
            text.contains("viewBox=\"0 0 64 48\"")
                && text.contains("<metadata><prompt>a cat &amp; a dog")
        );
        assert_eq!(text.matches("<path ").count(), 12);
        assert_eq!(
            text,
            to_svg(&scene, Some("<prompt>a cat &amp; a dog</prompt>")).unwrap(),
            "not deterministic"
        );

        let back = from_svg(&text, Device::Cpu).unwrap();
        assert_eq!(back.canvas, canvas);
        assert_eq!(flat(&back.segments), flat(&scene.segments));
        let close = |a: &Tensor, b: &Tensor, tol: f64| {
            let d = flat(a).iter().zip(flat(b)).map(|(x, y)| (x - y).abs()).fold(0.0, f64::max);
            assert!(d <= tol, "differs by {d}");
        };
        close(&back.points, &scene.points, 6e-4);
        close(&back.widths, &scene.widths, 6e-4);
        close(&back.colors.narrow(2, 0, 3), &scene.colors.narrow(2, 0, 3), 0.5 / 255.0 + 1e-6);
        close(&back.colors.narrow(2, 3, 1), &scene.colors.narrow(2, 3, 1), 6e-4);
        // Written again, the text is identical.
        assert_eq!(to_svg(&back, Some("<prompt>a cat &amp; a dog</prompt>")).unwrap(), text);
    }

    #[test]
    fn foreign_svg_paths_become_strokes() {
        let text = r##"<svg xmlns="http://www.w3.org/2000/svg" width="100" height="50">
            <rect width="100" height="50" fill="#fff"/>
            <g transform="translate(10 5) scale(2)" opacity="0.5">
              <path d="M 0 0 L 10 0 Q 15 5 10 10 L 0 10 Z" stroke="red" stroke-width="3" fill="none"/>
            </g>
            <polyline points="1,1 2,2" stroke="url(#nothing)" fill="none"/>
            <path d="M 5 40 L 20 40 M 30 40 L 40 45" stroke="#00ff00"/>
        </svg>"##;
        let s = from_svg(text, Device::Cpu).unwrap();
        assert_eq!(s.canvas, Canvas::new(100, 50).unwrap());
        // First path: 3 segments + the closing line = 4 → strokes of 3 and 1; second: 2 subpaths.
        assert_eq!(flat(&s.segments), vec![3.0, 1.0, 1.0, 1.0]);
        let p = flat(&s.points);
        assert_eq!(&p[0..2], &[10.0, 5.0]);
        assert_eq!(&p[6..8], &[30.0, 5.0], "L 10 0 maps to (30, 5)");
        assert_eq!(&p[20..22], &p[18..20], "the second stroke starts where the first ended");
        let w = flat(&s.widths);
        assert!((w[0] - 6.0).abs() < 1e-5 && (w[2] - 1.0).abs() < 1e-5, "{w:?}");
        let c = flat(&s.colors);
        assert_eq!(&c[0..4], &[1.0, 0.0, 0.0, 0.5]);
        assert_eq!(&c[8..12], &[0.0, 1.0, 0.0, 1.0]);
    }

    #[test]
    fn files_without_strokes_are_refused_clearly() {
        let e = from_svg("hello", Device::Cpu).unwrap_err().to_string();
        assert!(e.contains("not a readable SVG"), "{e}");
        let e = from_svg(r#"<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"><rect width="5" height="5"/></svg>"#, Device::Cpu)
            .unwrap_err()
            .to_string();
        assert!(e.contains("no stroked paths"), "{e}");
        let scene = Scene::random(2, 3, Canvas::new(10, 10).unwrap(), 0, Device::Cpu).unwrap();
        assert!(to_svg(&scene, None).unwrap_err().to_string().contains("has 2"));
    }
}
