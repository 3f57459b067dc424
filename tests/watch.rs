//! Watching a drawing: the live preview in a real terminal (tmux), timelapses
//! decoded back, the animated SVG in a real browser, and bad input refused first.

mod common;
#[path = "common/term.rs"]
mod term;

use std::path::Path;
use std::process::{Command, Output};

use common::{clipdraw, fixture};
use image::AnimationDecoder;
use term::{box_down, decode_half_blocks, load_rgb, mean_abs_diff, Tmux};

/// Preview cells vs the written PNG box-averaged to the same 64×64 pixels: mean
/// absolute difference per channel, in 0–255 units. The two come from different
/// rasterizers (clipdraw's at 224 px pooled to 64, resvg's at 256 px averaged 4×4),
/// which differ by a fraction of a grey level on average (measured 0.6; the mirrored
/// PNG gives 6.3).
const PREVIEW_TOL: f64 = 2.0;
/// Chromium's rendering of the timelapse's last frame vs resvg's PNG of the final
/// drawing, both 224 px: anti-aliasing differs and the timelapse rounds points to
/// 0.1 px (measured 0.2; the first frame is 3.8 away).
const BROWSER_TOL: f64 = 1.0;

fn bin() -> String {
    env!("CARGO_BIN_EXE_clipdraw").to_string()
}

fn tiny() -> String {
    fixture("tiny.pt").display().to_string()
}

fn run(dir: &Path, args: &[&str]) -> Output {
    clipdraw().current_dir(dir).args(args).output().expect("the binary runs")
}

fn ok(o: &Output) {
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

/// A quick drawing with the tiny fixture model, as shell words for tmux. Labels are
/// not coloured (`--color never`), so that any escape sequence after the preview
/// is one the preview left behind.
fn quick_sh(extra: &str) -> String {
    format!(
        "'{}' 'a red star on the left' --model '{}' --strokes 48 --augs 1 --color never {extra}",
        bin(),
        tiny()
    )
}

fn quick<'a>(model: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut v = vec!["a red star on the left", "--model", model, "--strokes", "24", "--augs", "1"];
    v.extend(extra);
    v
}

/// After the run, nothing but the preview carries an escape sequence: lines after
/// the last cell row are plain (so no colour leaked), and the cursor is shown.
fn assert_terminal_clean(t: &Tmux) {
    let screen = t.capture(true);
    let lines: Vec<&str> = screen.lines().collect();
    let last_cells = lines.iter().rposition(|l| l.contains('▀')).unwrap_or(0);
    // capture-pane -e writes a cell's attributes as changes from the cell before,
    // so the first text after the picture may say "back to default colours".
    for line in &lines[last_cells + 1..] {
        let mut rest = line.to_string();
        for reset in ["\x1b[39m", "\x1b[49m", "\x1b[0m", "\x1b[m"] {
            rest = rest.replace(reset, "");
        }
        assert!(!rest.contains('\x1b'), "stray escape after the preview: {line:?}");
    }
    assert!(t.cursor_shown(), "the cursor is hidden");
}

fn apng_frames(path: &Path) -> Vec<image::Frame> {
    let f = std::io::BufReader::new(std::fs::File::open(path).unwrap());
    let dec = image::codecs::png::PngDecoder::new(f).unwrap();
    assert!(dec.is_apng().unwrap(), "{} is not animated", path.display());
    dec.apng().unwrap().into_frames().collect_frames().unwrap()
}

fn gif_frames(path: &Path) -> Vec<image::Frame> {
    let f = std::io::BufReader::new(std::fs::File::open(path).unwrap());
    image::codecs::gif::GifDecoder::new(f).unwrap().into_frames().collect_frames().unwrap()
}

fn rgb_of(frame: &image::Frame) -> Vec<u8> {
    frame.buffer().pixels().flat_map(|p| [p[0], p[1], p[2]]).collect()
}

#[test]
fn the_preview_in_a_terminal_shows_the_drawing_in_place_and_leaves_it_clean() {
    let dir = tempfile::tempdir().unwrap();
    let script = format!(
        "cd '{}' && {} --iters 12 --preview --png-size 256 -o d",
        dir.path().display(),
        quick_sh("")
    );
    let t = Tmux::start("preview", &script);
    let plain = t.wait_for(120, "the run to end", |s| s.contains("EXIT="));
    assert!(plain.contains("EXIT=0"), "{plain}");
    for f in ["d.svg", "d.png", "d.json"] {
        assert!(plain.contains(f), "{f} not printed:\n{plain}");
    }
    let (w, h, cells) = decode_half_blocks(&t.capture(true));
    // Three frames (iterations 5, 10 and the end) took the same 32 rows: in place.
    assert_eq!((w, h), (64, 64), "the preview is not one 64×64 picture");
    let (pw, ph, png) = load_rgb(&dir.path().join("d.png"));
    assert_eq!((pw, ph), (256, 256));
    let want = box_down(&png, 256, 256, 4);
    let d = mean_abs_diff(&cells, &want);
    assert!(d <= PREVIEW_TOL, "preview differs from the PNG by {d:.2} (tolerance {PREVIEW_TOL})");
    // The comparison can tell drawings apart: the mirrored PNG is far off.
    let mirrored: Vec<u8> = want
        .chunks(64 * 3)
        .flat_map(|row| row.chunks(3).rev().flatten().copied().collect::<Vec<_>>())
        .collect();
    let dm = mean_abs_diff(&cells, &mirrored);
    eprintln!("preview vs PNG: {d:.3}, vs the mirrored PNG: {dm:.3} (0-255 units)");
    assert!(dm > 2.0 * d + 1.0, "mirrored {dm:.2} vs {d:.2}: the check cannot tell");
    assert_terminal_clean(&t);
}

#[test]
fn ctrl_c_keeps_the_terminal_clean_and_writes_the_timelapse_so_far() {
    let dir = tempfile::tempdir().unwrap();
    let script = format!(
        "cd '{}' && {} --iters 100000 --preview --preview-every 2 --timelapse t.png --frame-every 3 --png-size 64 -o int",
        dir.path().display(),
        quick_sh("")
    );
    let t = Tmux::start("ctrlc", &script);
    t.wait_for(120, "the preview", |s| s.contains('▀'));
    std::thread::sleep(std::time::Duration::from_millis(1500));
    t.send_keys("C-c");
    let plain = t.wait_for(60, "the run to end", |s| s.contains("EXIT="));
    assert!(plain.contains("EXIT=130"), "{plain}");
    assert_terminal_clean(&t);
    let (w, h, _) = decode_half_blocks(&t.capture(true));
    assert_eq!((w, h), (64, 64), "the preview is not one picture after Ctrl-C");

    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("int.json")).unwrap())
            .unwrap();
    assert_eq!(json["interrupted"], true);
    let done = json["iterations_done"].as_u64().unwrap() as usize;
    // Frames at iteration 1, every 3rd, and the last one done.
    let expected = 1 + done / 3 + usize::from(!done.is_multiple_of(3));
    let frames = apng_frames(&dir.path().join("t.png"));
    assert_eq!(frames.len(), expected, "{done} iterations done");
    let (_, _, png) = load_rgb(&dir.path().join("int.png"));
    assert_eq!(rgb_of(frames.last().unwrap()), png, "the last frame is not the saved drawing");
}

#[test]
fn the_preview_stays_off_without_color_when_quiet_and_off_a_terminal() {
    let dir = tempfile::tempdir().unwrap();
    let q = quick_sh("--iters 6 --preview-every 1 --preview --force");
    let script = format!(
        "cd '{}' && NO_COLOR=1 {q} -o a && {q} -q -o b && {q} -o c > paths.txt && echo MARK",
        dir.path().display()
    );
    let t = Tmux::start("off", &script);
    let plain = t.wait_for(120, "the runs to end", |s| s.contains("EXIT="));
    assert!(plain.contains("MARK") && plain.contains("EXIT=0"), "{plain}");
    assert!(!t.capture(true).contains('▀'), "a preview was drawn:\n{plain}");
    let paths = std::fs::read_to_string(dir.path().join("paths.txt")).unwrap();
    assert!(!paths.contains('\x1b') && paths.contains("c.svg"), "{paths:?}");
}

#[test]
fn raster_timelapses_and_frames_decode_to_the_frames_of_the_run() {
    let dir = tempfile::tempdir().unwrap();
    let m = tiny();
    let common = ["--iters", "12", "--frame-every", "5", "--png-size", "96"];
    let mut a = quick(&m, &common);
    a.extend(["--timelapse", "t.png", "--frames", "fr", "-o", "a"]);
    ok(&run(dir.path(), &a));
    // Iterations 1, 5, 10 and the last, 12.
    let frames = apng_frames(&dir.path().join("t.png"));
    assert_eq!(frames.len(), 4);
    for f in &frames {
        assert_eq!(f.buffer().dimensions(), (96, 96));
    }
    let delays: Vec<(u32, u32)> = frames.iter().map(|f| f.delay().numer_denom_ms()).collect();
    assert_eq!(delays.iter().map(|(n, d)| n / d).collect::<Vec<_>>(), [100, 100, 100, 2000]);
    let (_, _, png) = load_rgb(&dir.path().join("a.png"));
    assert_eq!(rgb_of(&frames[3]), png, "the held last frame is the drawing");
    assert!(mean_abs_diff(&rgb_of(&frames[0]), &png) > 0.5, "the first frame is the drawing");
    let mut names: Vec<String> = std::fs::read_dir(dir.path().join("fr"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["frame-00001.png", "frame-00002.png", "frame-00003.png", "frame-00004.png"]);
    for (i, name) in names.iter().enumerate() {
        assert_eq!(load_rgb(&dir.path().join("fr").join(name)).2, rgb_of(&frames[i]), "{name}");
    }

    // The same run as a GIF: the same frames, up to the GIF's 256-colour palette.
    let mut b = quick(&m, &common);
    b.extend(["--timelapse", "t.gif", "-o", "b"]);
    ok(&run(dir.path(), &b));
    let gif = gif_frames(&dir.path().join("t.gif"));
    assert_eq!(gif.len(), 4);
    assert_eq!(gif[0].buffer().dimensions(), (96, 96));
    assert_eq!(gif[3].delay().numer_denom_ms(), (2000, 1));
    for (g, p) in gif.iter().zip(&frames) {
        let d = mean_abs_diff(&rgb_of(g), &rgb_of(p));
        assert!(d < 3.0, "GIF frame off by {d:.2}");
    }
}

#[test]
fn frames_and_timelapses_show_the_background_as_the_drawing_does() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let bg = common::quadrants();
    bg.save(d.join("bg.png")).unwrap();
    let m = tiny();
    let common =
        ["--iters", "6", "--frame-every", "5", "--png-size", "96", "--background", "bg.png"];
    let mut a = quick(&m, &common);
    a.extend(["--timelapse", "t.png", "--frames", "fr", "-o", "a"]);
    ok(&run(d, &a));
    // The oracle is the drawing's own PNG, which shows the background.
    let (_, _, png) = load_rgb(&d.join("a.png"));
    let frames = apng_frames(&d.join("t.png"));
    assert_eq!(frames.len(), 3, "iterations 1, 5 and 6");
    assert_eq!(rgb_of(&frames[2]), png, "the held last frame is the drawing, background and all");
    assert_eq!(load_rgb(&d.join("fr").join("frame-00003.png")).2, png, "the last frame file");
    // The first frame too: its corner pixels, far from the few strokes, are the
    // background's quadrant colours, not white.
    let first = frames[0].buffer();
    for (x, y) in [(2, 2), (93, 2), (2, 93), (93, 93)] {
        let p = first.get_pixel(x, y).0;
        let want = bg.get_pixel(x * 224 / 96, y * 224 / 96).0;
        let off = p.iter().zip(want).map(|(&a, b)| (a as i32 - b as i32).abs()).max().unwrap();
        assert!(off <= 40, "first frame at ({x}, {y}) is {p:?}, the background {want:?}");
    }

    // The animated SVG paints the same background; without SMIL it shows the last
    // frame, so resvg's rendering of it is the drawing.
    let mut b = quick(&m, &common);
    b.extend(["--timelapse", "t.svg", "-o", "b"]);
    ok(&run(d, &b));
    let svg = std::fs::read_to_string(d.join("t.svg")).unwrap();
    assert!(svg.contains("<image id=\"background\"") && svg.contains("data:image/png;base64,"));
    let still = clipdraw::output::svg_to_png(&svg, 96).unwrap();
    let still = image::load_from_memory(&still).unwrap().to_rgb8().into_raw();
    let (_, _, b_png) = load_rgb(&d.join("b.png"));
    let diff = mean_abs_diff(&still, &b_png);
    assert!(diff < 0.5, "the SVG timelapse's still is {diff:.2} away from the drawing");
}

#[test]
fn stroke_mode_paints_the_final_drawing_stroke_by_stroke() {
    let dir = tempfile::tempdir().unwrap();
    let m = tiny();
    let mut a = quick(&m, &["--iters", "3", "--png-size", "64", "--timelapse-mode", "strokes"]);
    a.extend(["--frame-every", "10", "--timelapse", "s.png", "--frames", "sf", "-o", "a"]);
    ok(&run(dir.path(), &a));
    // 24 strokes, 10 per frame: 10, 20, 24.
    let frames = apng_frames(&dir.path().join("s.png"));
    assert_eq!(frames.len(), 3);
    assert_eq!(std::fs::read_dir(dir.path().join("sf")).unwrap().count(), 3);
    let (_, _, png) = load_rgb(&dir.path().join("a.png"));
    assert_eq!(rgb_of(&frames[2]), png);
    // Each frame adds ink: more non-white pixels than the one before.
    let ink = |f: &image::Frame| rgb_of(f).chunks(3).filter(|p| p.iter().any(|&c| c < 250)).count();
    assert!(ink(&frames[0]) < ink(&frames[1]) && ink(&frames[1]) < ink(&frames[2]));

    let mut b = quick(&m, &["--iters", "3", "--timelapse-mode", "strokes", "--frame-every", "10"]);
    b.extend(["--timelapse", "s.svg", "-o", "b"]);
    ok(&run(dir.path(), &b));
    let svg = std::fs::read_to_string(dir.path().join("s.svg")).unwrap();
    usvg::Tree::from_str(&svg, &usvg::Options::default()).unwrap();
    assert_eq!(svg.matches("<path ").count(), 24);
    // Strokes 10–23 wait for their frame.
    assert_eq!(svg.matches("attributeName=\"visibility\"").count(), 14);
}

/// Chromium's screenshot of an HTML page holding `svg` with its animations paused
/// at `t_s` seconds, as 224×224 RGB.
fn screenshot_at(dir: &Path, svg: &str, t_s: f64, name: &str) -> Vec<u8> {
    let body = svg.split_once("?>").map_or(svg, |(_, rest)| rest);
    let page = format!(
        "<!DOCTYPE html><html><head><style>html,body{{margin:0;overflow:hidden;background:#fff}}svg{{display:block}}</style></head><body>{body}<script>const s=document.querySelector('svg');s.pauseAnimations();s.setCurrentTime({t_s});</script></body></html>"
    );
    let html = dir.join(format!("{name}.html"));
    std::fs::write(&html, page).unwrap();
    let shot = dir.join(format!("{name}.png"));
    let profile = tempfile::tempdir().unwrap();
    let o = Command::new("chromium")
        .args(["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run"])
        .args(["--disable-background-networking", "--disable-component-update", "--disable-sync"])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(["--hide-scrollbars", "--window-size=224,224"])
        .arg(format!("--screenshot={}", shot.display()))
        .arg(format!("file://{}", html.display()))
        .output()
        .expect("chromium runs (scripts/deps.sh installs it)");
    assert!(shot.is_file(), "no screenshot: {}", String::from_utf8_lossy(&o.stderr));
    let (w, h, rgb) = load_rgb(&shot);
    assert_eq!((w, h), (224, 224));
    rgb
}

#[test]
fn the_animated_svg_moves_in_a_browser_and_ends_on_the_drawing() {
    let dir = tempfile::tempdir().unwrap();
    let m = tiny();
    let mut a = quick(&m, &["--iters", "12", "--frame-every", "5", "--png-size", "224"]);
    a.extend(["--lr-points", "3", "--timelapse", "t.svg", "-o", "d"]);
    ok(&run(dir.path(), &a));
    let svg = std::fs::read_to_string(dir.path().join("t.svg")).unwrap();
    // 4 frames: 3 × 0.1 s, then the last held for 2 s.
    assert!(svg.contains("dur=\"2.3s\""), "{}", &svg[..400]);
    let start = screenshot_at(dir.path(), &svg, 0.0, "start");
    let held = screenshot_at(dir.path(), &svg, 2.0, "held");
    let (_, _, png) = load_rgb(&dir.path().join("d.png"));
    let d_end = mean_abs_diff(&held, &png);
    assert!(d_end <= BROWSER_TOL, "the held frame differs from the drawing by {d_end:.2}");
    let d_move = mean_abs_diff(&start, &held);
    eprintln!("browser: held frame vs PNG {d_end:.3}, start vs held {d_move:.3} (0-255 units)");
    assert!(d_move > d_end + 0.5, "the animation does not move: {d_move:.2} vs {d_end:.2}");
}

#[test]
fn bad_watch_input_fails_in_one_line_before_any_work() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("full")).unwrap();
    std::fs::write(dir.path().join("full/old.png"), "x").unwrap();
    // A model that does not exist: a check that ran after loading would say so.
    for (extra, needle) in [
        (vec!["--timelapse", "t.mp4"], "unknown timelapse extension '.mp4'"),
        (vec!["--timelapse", "nodir/t.gif"], "does not exist"),
        (vec!["--preview-png", "nodir/p.png"], "does not exist"),
        (vec!["--frame-every", "0"], "--frame-every"),
        (vec!["--preview-every", "0"], "--preview-every"),
        (vec!["--frames", "full"], "not empty"),
        (vec!["--timelapse", "d.png", "-o", "d"], "overwrite another output"),
        (vec!["--timelapse", "t.gif", "--representation", "pixels"], "strokes representation"),
    ] {
        let mut args = vec!["a red star", "--model", "missing.pt"];
        args.extend(&extra);
        let o = run(dir.path(), &args);
        let err = String::from_utf8_lossy(&o.stderr).to_string();
        assert_eq!(o.status.code(), Some(2), "{extra:?}: {err}");
        assert_eq!(err.trim_end().lines().count(), 1, "{extra:?}: {err}");
        assert!(err.starts_with("clipdraw: error: ") && err.contains(needle), "{extra:?}: {err}");
    }
    let mut left: Vec<_> =
        std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
    left.sort();
    assert_eq!(left, ["full"], "files were written");
    assert_eq!(std::fs::read_dir(dir.path().join("full")).unwrap().count(), 1);
}
