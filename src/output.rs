//! Writing results: SVG (what was optimised), PNG (resvg's rendering of that SVG)
//! and a JSON sidecar. Files appear atomically and never clobber unless forced.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use tch::{Kind, Tensor};

use crate::pipeline::Drawing;

/// The three files of one drawing, named from one stem: `STEM.svg`, `.png`, `.json`.
#[derive(Clone, Debug, serde::Serialize)]
pub struct OutputPaths {
    pub svg: PathBuf,
    pub png: PathBuf,
    pub json: PathBuf,
}

impl OutputPaths {
    /// `stem` is a path without extension (a trailing `.svg`/`.png`/`.json` is dropped).
    pub fn from_stem(stem: &Path) -> Self {
        let stem = match stem.extension().and_then(|e| e.to_str()) {
            Some("svg" | "png" | "json") => stem.with_extension(""),
            _ => stem.to_path_buf(),
        };
        let with = |ext: &str| {
            let mut s = stem.clone().into_os_string();
            s.push(".");
            s.push(ext);
            PathBuf::from(s)
        };
        Self { svg: with("svg"), png: with("png"), json: with("json") }
    }

    /// The files a run writes: all three, or PNG and JSON when there is no SVG.
    pub fn written(&self, with_svg: bool) -> Vec<&Path> {
        let mut v: Vec<&Path> = vec![&self.svg, &self.png, &self.json];
        if !with_svg {
            v.remove(0);
        }
        v
    }

    /// Fails, before any work starts, if the directory is missing or read-only or a
    /// file exists and `force` is off.
    pub fn check_writable(&self, with_svg: bool, force: bool) -> Result<()> {
        for p in self.written(with_svg) {
            check_target(p, force)?;
        }
        Ok(())
    }
}

/// Writes `drawing` as `paths` says (SVG for strokes, PNG at `png_size` px, the JSON
/// sidecar with the full record) and returns the paths written.
///
/// All or nothing: every file is written in full to a temporary name first (a full
/// disk fails here and changes nothing), then each is moved to its final name. The
/// SVG goes first and claims the stem: when another process wrote the same stem
/// meanwhile, this one errors and leaves that process's files alone.
pub fn write_drawing(
    drawing: &Drawing,
    paths: &OutputPaths,
    png_size: u32,
    force: bool,
) -> Result<Vec<PathBuf>> {
    let svg = drawing.svg()?;
    let png = drawing.png(png_size)?;
    let written: Vec<PathBuf> =
        paths.written(svg.is_some()).into_iter().map(Path::to_path_buf).collect();
    let mut record = drawing.record.clone();
    record.outputs = Some(written.clone());
    let sidecar = serde_json::to_string_pretty(&record)?;
    let mut files: Vec<(&Path, &[u8])> = Vec::new();
    if let Some(svg) = &svg {
        files.push((&paths.svg, svg.as_bytes()));
    }
    files.push((&paths.png, &png));
    files.push((&paths.json, sidecar.as_bytes()));
    write_all_atomic(&files, force)?;
    Ok(written)
}

/// Writes several files all or nothing: each in full to a temporary name, then each
/// moved to its final name. If a move fails, the files this call already put in
/// place are removed again (unless `force` replaced earlier ones).
pub fn write_all_atomic(files: &[(&Path, &[u8])], force: bool) -> Result<()> {
    let _writing = crate::signals::Writing::start();
    let mut staged: Vec<PathBuf> = Vec::new();
    let result = (|| -> Result<()> {
        for (path, bytes) in files {
            staged.push(stage(path, bytes)?);
        }
        // Other clipdraw processes publishing into this directory wait: with
        // --force, two runs of one stem then leave one run's files, not a mix.
        let _lock = DirLock::new(&parent_dir(files.first().map_or(Path::new("."), |f| f.0)));
        for (i, ((path, _), tmp)) in files.iter().zip(&staged).enumerate() {
            if let Err(e) = publish(tmp, path, force) {
                if !force {
                    for (done, _) in &files[..i] {
                        let _ = std::fs::remove_file(done);
                    }
                }
                return Err(e);
            }
        }
        Ok(())
    })();
    for tmp in &staged {
        let _ = std::fs::remove_file(tmp);
    }
    result
}

/// A file stem made from the prompt and seed: `a-drawing-of-a-cat-s0`.
pub fn stem_from_prompt(prompt: &str, seed: u64) -> String {
    let mut s = String::new();
    for c in prompt.chars().flat_map(char::to_lowercase) {
        if c.is_alphanumeric() {
            s.push(c);
        } else if !s.is_empty() && !s.ends_with('-') {
            s.push('-');
        }
        if s.chars().count() >= 60 {
            break;
        }
    }
    let s = s.trim_end_matches('-');
    let s = if s.is_empty() { "drawing" } else { s };
    format!("{s}-s{seed}")
}

/// Errors out if `path` cannot be written (missing or read-only directory, or an
/// existing file without `force`).
pub fn check_target(path: &Path, force: bool) -> Result<()> {
    let dir = parent_dir(path);
    let meta = std::fs::metadata(&dir)
        .map_err(|_| anyhow!("output directory {} does not exist", dir.display()))?;
    if !meta.is_dir() {
        bail!("output directory {} is not a directory", dir.display());
    }
    if path.is_dir() {
        bail!("{} is a directory", path.display());
    }
    if path.exists() && !force {
        bail!("{} already exists (use --force to overwrite)", path.display());
    }
    // Probe writability the only reliable way: create and remove a file.
    let probe = dir.join(format!(".clipdraw-probe-{}", std::process::id()));
    std::fs::File::create(&probe)
        .map_err(|e| anyhow!("output directory {} is not writable: {e}", dir.display()))?;
    let _ = std::fs::remove_file(&probe);
    Ok(())
}

fn parent_dir(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// An exclusive `flock` on a directory, held while files are moved into it;
/// released when dropped. Best effort: where the file system has no locks, the
/// moves go ahead unlocked.
struct DirLock(Option<std::fs::File>);

impl DirLock {
    fn new(dir: &Path) -> DirLock {
        use std::os::fd::AsRawFd;
        let Ok(f) = std::fs::File::open(dir) else { return DirLock(None) };
        // SAFETY: flock on a descriptor this function owns; no memory is involved.
        let locked = unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX) } == 0;
        DirLock(locked.then_some(f))
    }
}

impl Drop for DirLock {
    fn drop(&mut self) {
        use std::os::fd::AsRawFd;
        if let Some(f) = &self.0 {
            // SAFETY: as in `new`; closing the file would release it as well.
            unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_UN) };
        }
    }
}

/// Writes `bytes` to `path` atomically: a temporary file in the same directory,
/// then a rename (`force`) or a hard link that fails if `path` exists.
pub fn write_atomic(path: &Path, bytes: &[u8], force: bool) -> Result<()> {
    write_all_atomic(&[(path, bytes)], force)
}

/// Writes `bytes` in full (and to the disk) under a hidden temporary name beside
/// `path`, and returns that name. Nothing is left behind on failure.
fn stage(path: &Path, bytes: &[u8]) -> Result<PathBuf> {
    let dir = parent_dir(path);
    let name = path.file_name().ok_or_else(|| anyhow!("{} has no file name", path.display()))?;
    let tmp = dir.join(format!(".{}.tmp-{}", name.to_string_lossy(), std::process::id()));
    let result = (|| -> std::io::Result<()> {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()
    })();
    match result {
        Ok(()) => Ok(tmp),
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            Err(anyhow!("cannot write {}: {}", path.display(), io_reason(&e)))
        }
    }
}

/// Moves a staged file to `path`: a rename when `force`, else a hard link that
/// fails if `path` exists (another process wrote it meanwhile).
fn publish(tmp: &Path, path: &Path, force: bool) -> Result<()> {
    let r = if force { std::fs::rename(tmp, path) } else { std::fs::hard_link(tmp, path) };
    r.map_err(|e| {
        if e.kind() == std::io::ErrorKind::AlreadyExists {
            anyhow!("{} appeared while drawing (use --force to overwrite)", path.display())
        } else {
            anyhow!("cannot write {}: {}", path.display(), io_reason(&e))
        }
    })
}

/// An I/O error in words, with the case users meet most said plainly.
fn io_reason(e: &std::io::Error) -> String {
    match e.raw_os_error() {
        Some(libc::ENOSPC) => "the disk is full".into(),
        Some(libc::EFBIG) => "the file-size limit (ulimit -f) was reached".into(),
        Some(libc::EDQUOT) => "the disk quota is exhausted".into(),
        _ => e.to_string(),
    }
}

/// Draws an SVG file through clipdraw's own rasterizer (what CLIP sees) as a PNG,
/// at the file's size or with its longer side scaled to `size_px`.
pub fn rasterize_svg_file(input: &Path, size_px: Option<u32>) -> Result<Vec<u8>> {
    let text = std::fs::read_to_string(input)
        .map_err(|e| anyhow!("cannot read {}: {e}", input.display()))?;
    let scene = crate::svg::from_svg(&text, tch::Device::Cpu)
        .with_context(|| format!("cannot use {}", input.display()))?;
    let scene = match size_px {
        Some(px) => scene.scaled_to(px as i64)?,
        None => scene,
    };
    let (w, h) = (scene.canvas.width, scene.canvas.height);
    crate::request::check_memory(
        raster_bytes(&scene)?,
        &format!("rendering {} at {w}x{h} pixels", input.display()),
    )?;
    let image = tch::no_grad(|| crate::raster::rasterize(&scene))?;
    tensor_to_png(&image)
}

/// A bound on what rasterizing `scene` takes: per canvas pixel the rasterizer's
/// scratch and the images (48 bytes), and per pixel a stroke may cover (its
/// bounding box, widened by its width, within the canvas) its fragment (64 bytes).
/// A failed allocation there would abort the process, so this is checked first.
fn raster_bytes(scene: &crate::scene::Scene) -> Result<u64> {
    let (w, h) = (scene.canvas.width as f64, scene.canvas.height as f64);
    let mut covered = 0f64;
    for st in scene.strokes()? {
        let pad = st.width_px as f64 / 2.0 + 1.0;
        let (mut x0, mut y0, mut x1, mut y1) = (f64::MAX, f64::MAX, f64::MIN, f64::MIN);
        for p in &st.points {
            x0 = x0.min(p[0] as f64 - pad);
            y0 = y0.min(p[1] as f64 - pad);
            x1 = x1.max(p[0] as f64 + pad);
            y1 = y1.max(p[1] as f64 + pad);
        }
        let bw = (x1.min(w) - x0.max(0.0)).max(0.0);
        let bh = (y1.min(h) - y0.max(0.0)).max(0.0);
        covered += bw * bh;
    }
    Ok((w * h * 48.0 + covered * 64.0) as u64)
}

/// Renders SVG text with resvg to a square-ish PNG whose longer side is `size_px`.
pub fn svg_to_png(svg: &str, size_px: u32) -> Result<Vec<u8>> {
    svg_to_pixmap(svg, size_px)?.encode_png().map_err(|e| anyhow!("cannot encode PNG: {e}"))
}

/// Renders SVG text with resvg into a pixmap (premultiplied RGBA) whose longer
/// side is `size_px`.
pub fn svg_to_pixmap(svg: &str, size_px: u32) -> Result<resvg::tiny_skia::Pixmap> {
    let tree = crate::svg::parse_tree(svg).map_err(|e| anyhow!("cannot parse the SVG: {e}"))?;
    let s = tree.size();
    let scale = size_px as f32 / s.width().max(s.height());
    let (w, h) = ((s.width() * scale).round() as u32, (s.height() * scale).round() as u32);
    // The pixmap, and about as much again for the PNG encoder's buffers.
    crate::request::check_memory(w as u64 * h as u64 * 8, &format!("a {w}x{h} PNG"))?;
    let mut pixmap = resvg::tiny_skia::Pixmap::new(w.max(1), h.max(1))
        .ok_or_else(|| anyhow!("cannot allocate a {w}×{h} image"))?;
    crate::svg::render(&tree, resvg::tiny_skia::Transform::from_scale(scale, scale), &mut pixmap)?;
    Ok(pixmap)
}

/// Encodes an RGB image tensor (1, 3, H, W) or (3, H, W) in [0, 1] as PNG.
pub fn tensor_to_png(image: &Tensor) -> Result<Vec<u8>> {
    let img = if image.dim() == 4 { image.f_squeeze_dim(0)? } else { image.shallow_clone() };
    let (c, h, w) = img.size3()?;
    if c != 3 {
        bail!("image has {c} channels, expected 3");
    }
    let rgb = img
        .f_to_device(tch::Device::Cpu)?
        .f_clamp(0.0, 1.0)?
        .f_mul_scalar(255.0)?
        .f_round()?
        .f_to_kind(Kind::Uint8)?
        .f_permute([1, 2, 0])? // (H, W, 3)
        .f_contiguous()?;
    let n = (h * w * 3) as usize;
    let mut bytes = vec![0u8; n];
    rgb.f_copy_data(&mut bytes, n)?;
    let mut pixmap = resvg::tiny_skia::Pixmap::new(w as u32, h as u32)
        .ok_or_else(|| anyhow!("cannot allocate a {w}×{h} image"))?;
    for (px, src) in pixmap.data_mut().chunks_exact_mut(4).zip(bytes.chunks_exact(3)) {
        px.copy_from_slice(&[src[0], src[1], src[2], 255]);
    }
    pixmap.encode_png().map_err(|e| anyhow!("cannot encode PNG: {e}"))
}

/// Reads a PNG, JPEG or SVG as an RGB tensor (1, 3, H, W) in [0, 1] on the CPU.
/// Transparent pixels are composited over white; SVGs are rendered by resvg at
/// their own size.
pub fn load_image(path: &Path) -> Result<Tensor> {
    let bytes = std::fs::read(path).map_err(|e| anyhow!("cannot read {}: {e}", path.display()))?;
    let svg_name =
        path.extension().and_then(|e| e.to_str()).is_some_and(|e| e.eq_ignore_ascii_case("svg"));
    image_from_bytes(&bytes, path, svg_name)
}

/// [`load_image`] of bytes already read; `path` names them in errors, and
/// `svg_name` says the name ends in `.svg` (else SVG is told by its first `<`).
pub fn image_from_bytes(bytes: &[u8], path: &Path, svg_name: bool) -> Result<Tensor> {
    let is_svg = svg_name || bytes.trim_ascii_start().starts_with(b"<");
    let (w, h, rgba) = if is_svg {
        let text = std::str::from_utf8(bytes)
            .map_err(|_| anyhow!("{} is not UTF-8 SVG text", path.display()))?;
        let tree = crate::svg::parse_tree(text)
            .map_err(|e| anyhow!("{} is not a valid SVG: {e}", path.display()))?;
        let s = tree.size().to_int_size();
        // checked before allocating: a header can promise any size (40 GB for
        // 100000x100000), and a failed allocation aborts the process
        if s.width().max(s.height()) > crate::request::MAX_IMAGE_PX {
            bail!(
                "{} is {}x{} pixels; clipdraw reads images of at most {} pixels a side",
                path.display(),
                s.width(),
                s.height(),
                crate::request::MAX_IMAGE_PX
            );
        }
        let need = s.width() as u64 * s.height() as u64 * 32;
        crate::request::check_memory(
            need,
            &format!("{}, {}x{} pixels,", path.display(), s.width(), s.height()),
        )?;
        let mut pixmap = resvg::tiny_skia::Pixmap::new(s.width(), s.height())
            .ok_or_else(|| anyhow!("{} has an empty size", path.display()))?;
        crate::svg::render(&tree, resvg::tiny_skia::Transform::identity(), &mut pixmap)
            .map_err(|e| anyhow!("{}: {e}", path.display()))?;
        // Pixmaps are premultiplied; over white that is c + (1 - a).
        let data: Vec<u8> = pixmap
            .pixels()
            .iter()
            .flat_map(|p| {
                let a = p.alpha();
                [p.red() + (255 - a), p.green() + (255 - a), p.blue() + (255 - a), 255]
            })
            .collect();
        (s.width(), s.height(), data)
    } else {
        let img = decode_image(bytes)
            .map_err(|e| anyhow!("{} is not a readable PNG or JPEG image: {e}", path.display()))?;
        let (w, h) = img.dimensions();
        let data: Vec<u8> = img
            .pixels()
            .flat_map(|p| {
                let [r, g, b, a] = p.0;
                let over =
                    |c: u8| ((c as u32 * a as u32 + 255 * (255 - a as u32) + 127) / 255) as u8;
                [over(r), over(g), over(b), 255]
            })
            .collect();
        (w, h, data)
    };
    if w == 0 || h == 0 {
        bail!("{} is empty", path.display());
    }
    let t = Tensor::from_slice(&rgba)
        .f_view([h as i64, w as i64, 4])?
        .f_narrow(2, 0, 3)?
        .f_permute([2, 0, 1])? // (3, H, W)
        .f_unsqueeze(0)? // (1, 3, H, W)
        .f_to_kind(Kind::Float)?
        .f_div_scalar(255.0)?;
    Ok(t)
}

/// The most memory one decoded image may take, in bytes: a 16384² RGBA image.
pub const MAX_DECODE_BYTES: u64 = (crate::request::MAX_IMAGE_PX as u64).pow(2) * 4;

/// Decodes PNG or JPEG bytes as RGBA. The header's size is checked first (at most
/// [`crate::request::MAX_IMAGE_PX`] a side, and within the memory available), so
/// that a small file promising a huge image (a decompression bomb) is refused
/// before anything is allocated; the decoder's own allocations are capped too.
pub fn decode_image(bytes: &[u8]) -> Result<image::RgbaImage> {
    let max = crate::request::MAX_IMAGE_PX;
    let reader = || -> Result<image::ImageReader<std::io::Cursor<&[u8]>>> {
        let r = image::ImageReader::new(std::io::Cursor::new(bytes)).with_guessed_format()?;
        match r.format() {
            Some(image::ImageFormat::Png | image::ImageFormat::Jpeg) => Ok(r),
            _ => bail!("not a PNG or JPEG file"),
        }
    };
    let (w, h) = reader()?.into_dimensions()?;
    if w.max(h) > max {
        bail!("it is {w}x{h} pixels; clipdraw reads images of at most {max} pixels a side");
    }
    // RGBA bytes, then the float copy a tensor makes (12 bytes a pixel), twice over
    // for the decoder's own buffers.
    let need = w as u64 * h as u64 * 32;
    crate::request::check_memory(need, &format!("a {w}x{h} image"))?;
    let mut limits = image::Limits::default();
    limits.max_image_width = Some(max);
    limits.max_image_height = Some(max);
    limits.max_alloc = Some(MAX_DECODE_BYTES * 2);
    let mut r = reader()?;
    r.limits(limits);
    Ok(r.decode()?.to_rgba8())
}

/// Escapes text for XML element content.
pub fn xml_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            // XML 1.0 forbids most control characters even as references.
            c if (c as u32) < 0x20 && !matches!(c, '\n' | '\t' | '\r') => {
                out.push_str(&format!("\\u{:04x}", c as u32))
            }
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stems_are_safe_file_names() {
        assert_eq!(stem_from_prompt("a drawing of a cat", 3), "a-drawing-of-a-cat-s3");
        assert_eq!(stem_from_prompt("  ../../etc/passwd!! ", 0), "etc-passwd-s0");
        assert_eq!(stem_from_prompt("🐈", 1), "drawing-s1");
        assert_eq!(stem_from_prompt("自転車", 1), "自転車-s1");
        assert!(stem_from_prompt(&"x".repeat(500), 0).len() < 70);
    }

    #[test]
    fn paths_come_from_one_stem() {
        let p = OutputPaths::from_stem(Path::new("out/cat.svg"));
        assert_eq!(p.svg, Path::new("out/cat.svg"));
        assert_eq!(p.png, Path::new("out/cat.png"));
        assert_eq!(p.json, Path::new("out/cat.json"));
        let p = OutputPaths::from_stem(Path::new("v1.2"));
        assert_eq!(p.svg, Path::new("v1.2.svg"));
    }

    #[test]
    fn atomic_write_never_clobbers_without_force() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.txt");
        write_atomic(&p, b"one", false).unwrap();
        let err = write_atomic(&p, b"two", false).unwrap_err();
        assert!(format!("{err:#}").contains("use --force"), "{err:#}");
        assert_eq!(std::fs::read(&p).unwrap(), b"one");
        write_atomic(&p, b"three", true).unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"three");
        // No temporary files are left behind.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn targets_are_checked_before_work() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope/x.svg");
        assert!(check_target(&missing, false).unwrap_err().to_string().contains("does not exist"));
        let existing = dir.path().join("x.svg");
        std::fs::write(&existing, "").unwrap();
        assert!(check_target(&existing, false).unwrap_err().to_string().contains("already exists"));
        assert!(check_target(&existing, true).is_ok());
    }

    #[test]
    fn images_load_as_rgb_over_white() {
        let dir = tempfile::tempdir().unwrap();
        // A 2×1 PNG: opaque red, then fully transparent black.
        let mut pm = resvg::tiny_skia::Pixmap::new(2, 1).unwrap();
        pm.pixels_mut()[0] =
            resvg::tiny_skia::PremultipliedColorU8::from_rgba(255, 0, 0, 255).unwrap();
        let p = dir.path().join("a.png");
        pm.save_png(&p).unwrap();
        let t = load_image(&p).unwrap();
        assert_eq!(t.size(), [1, 3, 1, 2]);
        let v: Vec<f32> = Vec::try_from(t.flatten(0, -1)).unwrap();
        assert_eq!(v, [1.0, 1.0, 0.0, 1.0, 0.0, 1.0]); // R row, G row, B row
        let bad = dir.path().join("b.png");
        std::fs::write(&bad, b"garbage").unwrap();
        assert!(load_image(&bad).unwrap_err().to_string().contains("b.png"));
    }

    #[test]
    fn png_from_svg_has_the_requested_size() {
        let svg = r#"<svg xmlns="http://www.w3.org/2000/svg" width="224" height="224" viewBox="0 0 224 224"><rect width="224" height="224" fill="white"/><path d="M 10 10 C 50 50 100 10 200 200" stroke="red" stroke-width="8" fill="none"/></svg>"#;
        let png = svg_to_png(svg, 512).unwrap();
        let pixmap = resvg::tiny_skia::Pixmap::decode_png(&png).unwrap();
        assert_eq!((pixmap.width(), pixmap.height()), (512, 512));
        // Some red ink exists, and the corner is white.
        assert!(pixmap.pixels().iter().any(|p| p.red() > 200 && p.green() < 60));
        let c = pixmap.pixel(511, 0).unwrap();
        assert_eq!((c.red(), c.green(), c.blue()), (255, 255, 255));
    }
}
