//! Renders a list of SVG documents into one raw RGBA array, for the training scripts
//! (`scripts/icons.py` writes the list, `scripts/train_everyday.py` and
//! `scripts/train_judge.py` read the array).
//!
//!     render_icons LIST.jsonl OUT.rgba SIZE fill|outline
//!
//! LIST.jsonl holds one JSON string per line, a whole SVG document. OUT.rgba gets
//! N × SIZE × SIZE × 4 bytes: straight (not premultiplied) RGBA on transparency, each
//! document fitted into the square and centred. `outline` draws every filled or
//! stroked shape as a coloured outline of one width (SIZE / 40 px) and no fill: the
//! "ideal line drawing" of an icon, which the judge's ceiling is measured on.
//!
//! A document that does not parse is left transparent and its line number is
//! printed to stderr; the exit status is then still 0, so that one bad icon does
//! not lose the rest (the caller reads the count from stderr).

use std::io::{BufRead, Write};

use anyhow::{bail, Context, Result};
use resvg::tiny_skia::{self, Paint, PathBuilder, Pixmap, Stroke, Transform};
use usvg::tiny_skia_path::PathSegment;

fn main() {
    if let Err(e) = run() {
        eprintln!("render_icons: {e:#}");
        std::process::exit(1);
    }
}

fn run() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [list, out, size, mode] = args.as_slice() else {
        bail!("usage: render_icons LIST.jsonl OUT.rgba SIZE fill|outline");
    };
    let size: u32 = size.parse().context("SIZE must be a whole number of pixels")?;
    if !(8..=1024).contains(&size) {
        bail!("SIZE must be 8-1024 px, not {size}");
    }
    let outline = match mode.as_str() {
        "fill" => false,
        "outline" => true,
        other => bail!("mode must be fill or outline, not {other:?}"),
    };
    let file = std::fs::File::open(list).with_context(|| format!("cannot open {list}"))?;
    let docs: Vec<String> = std::io::BufReader::new(file)
        .lines()
        .map(|l| Ok(serde_json::from_str::<String>(&l?)?))
        .collect::<Result<_>>()
        .with_context(|| format!("{list} must hold one JSON string per line"))?;

    let px = (size * size * 4) as usize;
    let mut pixels = vec![0u8; docs.len() * px];
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let chunk = docs.len().div_ceil(threads).max(1);
    let failed: Vec<usize> = std::thread::scope(|s| {
        let jobs: Vec<_> = docs
            .chunks(chunk)
            .zip(pixels.chunks_mut(chunk * px))
            .enumerate()
            .map(|(k, (docs, out))| {
                s.spawn(move || {
                    let mut failed = Vec::new();
                    for (i, (doc, out)) in docs.iter().zip(out.chunks_mut(px)).enumerate() {
                        match render(doc, size, outline) {
                            Some(pm) => unpremultiply_into(&pm, out),
                            None => failed.push(k * chunk + i + 1),
                        }
                    }
                    failed
                })
            })
            .collect();
        jobs.into_iter().flat_map(|j| j.join().expect("render thread")).collect()
    });
    let tmp = format!("{out}.tmp-{}", std::process::id());
    let mut f = std::fs::File::create(&tmp).with_context(|| format!("cannot write {tmp}"))?;
    f.write_all(&pixels)?;
    f.sync_all()?;
    std::fs::rename(&tmp, out)?;
    for line in &failed {
        eprintln!("render_icons: line {line} did not parse; left transparent");
    }
    eprintln!("render_icons: {} documents, {} failed", docs.len(), failed.len());
    Ok(())
}

fn render(doc: &str, size: u32, outline: bool) -> Option<Pixmap> {
    let tree = usvg::Tree::from_str(doc, &usvg::Options::default()).ok()?;
    let (w, h) = (tree.size().width(), tree.size().height());
    let scale = size as f32 / w.max(h);
    let ts = Transform::from_row(
        scale,
        0.0,
        0.0,
        scale,
        (size as f32 - w * scale) / 2.0,
        (size as f32 - h * scale) / 2.0,
    );
    let mut pm = Pixmap::new(size, size)?;
    if outline {
        let stroke = Stroke { width: size as f32 / 40.0, ..Stroke::default() };
        outline_group(tree.root(), ts, &stroke, &mut pm);
    } else {
        resvg::render(&tree, ts, &mut pm.as_mut());
    }
    Some(pm)
}

/// Strokes every visible path of `group` in the colour of its fill (or its stroke),
/// with a constant width in output pixels.
fn outline_group(group: &usvg::Group, ts: Transform, stroke: &Stroke, pm: &mut Pixmap) {
    for node in group.children() {
        match node {
            usvg::Node::Group(g) => outline_group(g, ts, stroke, pm),
            usvg::Node::Path(path) if path.is_visible() => {
                let paint = path.fill().map(|f| f.paint()).or(path.stroke().map(|s| s.paint()));
                let Some(rgb) = paint.map(paint_colour) else { continue };
                let Some(data) = path.data().clone().transform(ts.pre_concat(path.abs_transform()))
                else {
                    continue;
                };
                let mut paint = Paint::default();
                paint.set_color_rgba8(rgb[0], rgb[1], rgb[2], 255);
                paint.anti_alias = true;
                // a path's own copy through PathBuilder drops degenerate pieces
                let mut pb = PathBuilder::new();
                for seg in data.segments() {
                    match seg {
                        PathSegment::MoveTo(p) => pb.move_to(p.x, p.y),
                        PathSegment::LineTo(p) => pb.line_to(p.x, p.y),
                        PathSegment::QuadTo(a, p) => pb.quad_to(a.x, a.y, p.x, p.y),
                        PathSegment::CubicTo(a, b, p) => pb.cubic_to(a.x, a.y, b.x, b.y, p.x, p.y),
                        PathSegment::Close => pb.close(),
                    }
                }
                if let Some(p) = pb.finish() {
                    pm.stroke_path(&p, &paint, stroke, Transform::identity(), None);
                }
            }
            _ => {}
        }
    }
}

/// One colour for a paint: a solid colour as it is, a gradient as the mean of its
/// stops; very light colours are darkened so that an outline shows on white.
fn paint_colour(paint: &usvg::Paint) -> [u8; 3] {
    let c = match paint {
        usvg::Paint::Color(c) => [c.red, c.green, c.blue].map(f32::from),
        usvg::Paint::LinearGradient(g) => mean_stop(g.stops()),
        usvg::Paint::RadialGradient(g) => mean_stop(g.stops()),
        usvg::Paint::Pattern(_) => [0.0; 3],
    };
    let lum = 0.299 * c[0] + 0.587 * c[1] + 0.114 * c[2];
    let k = if lum > 220.0 { 0.6 } else { 1.0 };
    c.map(|v| (v * k).round().clamp(0.0, 255.0) as u8)
}

fn mean_stop(stops: &[usvg::Stop]) -> [f32; 3] {
    let n = stops.len().max(1) as f32;
    let mut m = [0.0f32; 3];
    for s in stops {
        let c = s.color();
        m[0] += c.red as f32 / n;
        m[1] += c.green as f32 / n;
        m[2] += c.blue as f32 / n;
    }
    m
}

fn unpremultiply_into(pm: &Pixmap, out: &mut [u8]) {
    for (px, o) in pm.pixels().iter().zip(out.chunks_exact_mut(4)) {
        let c: tiny_skia::ColorU8 = px.demultiply();
        o.copy_from_slice(&[c.red(), c.green(), c.blue(), c.alpha()]);
    }
}
