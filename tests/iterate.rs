//! Iterating on a drawing, through the real binary in temporary directories:
//! --init and `continue`, frozen and added strokes, canvases, constraints,
//! backgrounds, time limits, and the bad input of each.

mod common;

use std::path::Path;
use std::process::Output;

use common::{clipdraw, fixture};

fn run(dir: &Path, args: &[&str]) -> Output {
    clipdraw().current_dir(dir).args(args).output().expect("the binary runs")
}

fn ok(dir: &Path, args: &[&str]) {
    let o = run(dir, args);
    assert!(o.status.success(), "{args:?}: {}", String::from_utf8_lossy(&o.stderr));
}

fn tiny() -> String {
    fixture("tiny.pt").display().to_string()
}

fn read(dir: &Path, name: &str) -> String {
    std::fs::read_to_string(dir.join(name)).unwrap()
}

/// The `<path>` lines of an SVG, in order.
fn paths(svg: &str) -> Vec<String> {
    svg.lines().filter(|l| l.starts_with("<path ")).map(str::to_string).collect()
}

/// The value of `attr="..."` in one element line.
fn attr<'a>(line: &'a str, attr: &str) -> &'a str {
    let key = format!(" {attr}=\"");
    let start = line.find(&key).unwrap_or_else(|| panic!("no {attr} in {line}")) + key.len();
    &line[start..start + line[start..].find('"').unwrap()]
}

/// A first drawing: 12 strokes, 3 iterations, with the tiny model.
fn first(dir: &Path, extra: &[&str]) {
    let m = tiny();
    let mut args = vec!["a red star", "--model", &m, "--augs", "2"];
    for (flag, default) in [("--strokes", "12"), ("--iters", "3"), ("-o", "a")] {
        if !extra.contains(&flag) {
            args.extend([flag, default]);
        }
    }
    args.extend(extra);
    ok(dir, &args);
}

#[test]
fn a_clipdraw_svg_round_trips_byte_identically_outside_its_record() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    first(d, &[]);
    let m = tiny();
    ok(d, &["continue", "a.svg", "--iters", "0", "--model", &m]);
    ok(d, &["another prompt", "--init", "a.svg", "--iters", "0", "--model", &m, "-o", "b"]);
    let a = read(d, "a.svg");
    // Only the record differs: it names its parent and the new prompt.
    let body =
        |s: &str| s.lines().filter(|l| !l.starts_with("<metadata>")).collect::<Vec<_>>().join("\n");
    assert_eq!(body(&read(d, "a-c1.svg")), body(&a));
    assert_eq!(body(&read(d, "b.svg")), body(&a));
    assert_eq!(paths(&a).len(), 12);
    let rec: serde_json::Value = serde_json::from_str(&read(d, "a-c1.json")).unwrap();
    assert_eq!(rec["parent"]["path"], "a.svg");
    // An independent digest: sha256sum of the parent's bytes.
    let sum = std::process::Command::new("sha256sum").arg(d.join("a.svg")).output().unwrap();
    let want = String::from_utf8_lossy(&sum.stdout).split_whitespace().next().unwrap().to_string();
    assert_eq!(rec["parent"]["sha256"], want.as_str());
    assert_eq!(rec["prompt"], "a red star", "continue keeps the recorded prompt");
    assert_eq!(rec["iterations_done"], 0);
}

#[test]
fn frozen_strokes_stay_while_added_ones_move() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    first(d, &[]);
    let m = tiny();
    let cont = |iters: &str, out: &str| {
        ok(
            d,
            &[
                "continue",
                "a.svg",
                "--iters",
                iters,
                "--add-strokes",
                "6",
                "--freeze-init",
                "--prompt",
                "a blue star",
                "--model",
                &m,
                "-o",
                out,
            ],
        );
    };
    cont("50", "moved");
    cont("0", "start");
    let (a, moved, start) =
        (paths(&read(d, "a.svg")), paths(&read(d, "moved.svg")), paths(&read(d, "start.svg")));
    assert_eq!(moved.len(), 18);
    assert_eq!(&moved[..12], &a[..], "frozen strokes changed");
    assert_eq!(start.len(), 18);
    let changed = moved[12..].iter().zip(&start[12..]).filter(|(x, y)| x != y).count();
    assert_eq!(changed, 6, "every added stroke should have moved in 50 iterations");
    let rec: serde_json::Value = serde_json::from_str(&read(d, "moved.json")).unwrap();
    assert_eq!(rec["frozen_strokes"], 12);
    assert_eq!(rec["prompt"], "a blue star");
}

#[test]
fn palette_runs_use_only_palette_colours_and_opaque_means_opacity_one() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    first(
        d,
        &[
            "--strokes",
            "40",
            "--iters",
            "20",
            "--colors",
            "#ff0000,#0000FF,#fc0",
            "--opacity",
            "opaque",
        ],
    );
    let svg = read(d, "a.svg");
    let ps = paths(&svg);
    assert_eq!(ps.len(), 40);
    let mut seen = std::collections::BTreeSet::new();
    for p in &ps {
        let c = attr(p, "stroke");
        assert!(["#ff0000", "#0000ff", "#ffcc00"].contains(&c), "{c} is not in the palette");
        seen.insert(c.to_string());
        assert_eq!(attr(p, "stroke-opacity"), "1");
    }
    assert!(seen.len() >= 2, "40 random strokes should not all pick one colour: {seen:?}");
    first(d, &["--strokes", "20", "--colors", "black", "--width", "3..3", "-o", "sketch"]);
    for p in paths(&read(d, "sketch.svg")) {
        assert_eq!((attr(&p, "stroke"), attr(&p, "stroke-width")), ("#000000", "3"));
    }
}

#[test]
fn a_wide_canvas_is_inked_from_side_to_side() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    first(d, &["--canvas", "384x216", "--strokes", "64", "--png-size", "384"]);
    let svg = read(d, "a.svg");
    assert!(
        svg.contains("width=\"384\" height=\"216\" viewBox=\"0 0 384 216\""),
        "{}",
        &svg[..200]
    );
    let png = image::open(d.join("a.png")).unwrap().to_rgb8();
    assert_eq!(png.dimensions(), (384, 216));
    let ink = |x0: u32, x1: u32| {
        (x0..x1)
            .flat_map(|x| (0..216).map(move |y| (x, y)))
            .filter(|&(x, y)| png.get_pixel(x, y).0.iter().any(|&c| c < 200))
            .count()
    };
    assert!(ink(0, 128) > 50 && ink(256, 384) > 50, "left {} right {}", ink(0, 128), ink(256, 384));
}

#[test]
fn a_time_limit_stops_within_an_iteration_and_writes_everything() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    first(d, &["--iters", "100000", "--time-limit", "3s"]);
    for f in ["a.svg", "a.png", "a.json"] {
        assert!(d.join(f).is_file(), "{f} missing");
    }
    let rec: serde_json::Value = serde_json::from_str(&read(d, "a.json")).unwrap();
    assert_eq!(rec["ending"], "time_limit");
    assert_eq!(rec["interrupted"], false);
    let n = rec["iterations_done"].as_f64().unwrap();
    assert!(n >= 1.0 && n < 100000.0, "{n} iterations");
    let per = rec["timings"]["per_iteration"]["total_s"].as_f64().unwrap();
    let looped = per * n;
    // The loop checks after each iteration: it ran at least 3 s, and the last
    // iteration (estimated by the mean, plus scheduling slack) crossed the line.
    assert!(looped >= 2.99, "stopped early: {looped} s");
    assert!(looped - 3.0 < per + 0.5, "overshot by {} s at {per} s per iteration", looped - 3.0);
    assert!(read(d, "a.svg").contains("\"ending\":\"time_limit\""));
}

#[test]
fn a_background_shows_through_away_from_the_strokes() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let bg = common::quadrants();
    bg.save(d.join("bg.png")).unwrap();
    first(d, &["--strokes", "6", "--background", "bg.png", "--png-size", "224"]);
    let svg = read(d, "a.svg");
    assert!(svg.contains("<image id=\"background\"") && svg.contains("data:image/png;base64,"));
    // Strokes lie inside their control points' hull: a box around them, grown by
    // half the width and 2 px of anti-aliasing, holds all their ink.
    let boxes: Vec<[f64; 4]> = paths(&svg)
        .iter()
        .map(|p| {
            let v: Vec<f64> =
                attr(p, "d").split_whitespace().filter_map(|t| t.parse().ok()).collect();
            let m = attr(p, "stroke-width").parse::<f64>().unwrap() / 2.0 + 2.0;
            let (xs, ys): (Vec<f64>, Vec<f64>) = v.chunks(2).map(|c| (c[0], c[1])).unzip();
            let lo = |s: &[f64]| s.iter().cloned().fold(f64::INFINITY, f64::min) - m;
            let hi = |s: &[f64]| s.iter().cloned().fold(f64::NEG_INFINITY, f64::max) + m;
            [lo(&xs), lo(&ys), hi(&xs), hi(&ys)]
        })
        .collect();
    let png = image::open(d.join("a.png")).unwrap().to_rgb8();
    let (mut far, mut differ) = (0, 0);
    for (x, y, p) in png.enumerate_pixels() {
        let (cx, cy) = (x as f64 + 0.5, y as f64 + 0.5);
        let near_stroke =
            boxes.iter().any(|b| cx >= b[0] && cy >= b[1] && cx <= b[2] && cy <= b[3]);
        let near_border = (cx - 112.0).abs() < 3.0 || (cy - 112.0).abs() < 3.0;
        if near_stroke || near_border {
            continue;
        }
        far += 1;
        let want = bg.get_pixel(x, y);
        if p.0.iter().zip(want.0).any(|(&a, b)| (a as i32 - b as i32).abs() > 2) {
            differ += 1;
        }
    }
    assert!(far > 10_000, "only {far} pixels are far from strokes");
    assert_eq!(differ, 0, "{differ} of {far} far pixels differ from the background");
}

#[test]
fn bad_input_fails_cleanly_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("notes.txt"), "just text").unwrap();
    std::fs::write(d.join("empty.svg"), r#"<svg xmlns="http://www.w3.org/2000/svg" width="50" height="40"><rect width="5" height="5"/></svg>"#).unwrap();
    std::fs::write(d.join("foreign.svg"), r#"<svg xmlns="http://www.w3.org/2000/svg" width="50" height="40"><path d="M 1 1 L 30 30" stroke="red"/></svg>"#).unwrap();
    std::fs::write(d.join("pic.gif"), b"GIF89a\x01\x00\x01\x00").unwrap();
    std::fs::create_dir(d.join("adir")).unwrap();
    let m = tiny();
    let before: std::collections::BTreeSet<_> =
        std::fs::read_dir(d).unwrap().map(|e| e.unwrap().file_name()).collect();
    for (args, needle) in [
        (vec!["x", "--init", "missing.svg"], "missing.svg"),
        (vec!["x", "--init", "adir"], "adir"),
        (vec!["x", "--init", "notes.txt"], "not an SVG"),
        (vec!["x", "--init", "empty.svg"], "--add-strokes"),
        (vec!["x", "--background", "missing.png"], "missing.png"),
        (vec!["x", "--background", "pic.gif"], "not a PNG, JPEG or SVG"),
        (vec!["x", "--colors", "#ff0000,#12zz00"], "\"#12zz00\""),
        (vec!["x", "--canvas", "384by216"], "--canvas"),
        (vec!["x", "--canvas", "100000x20"], "--canvas"),
        (vec!["x", "--freeze-init"], "--freeze-init needs --init"),
        (vec!["x", "--init", "foreign.svg", "--freeze-init"], "nothing left to optimise"),
        (vec!["continue", "foreign.svg"], "no clipdraw record"),
        (vec!["x", "--time-limit", "soon"], "--time-limit"),
        (vec!["x", "--time-limit", "0s"], "longer than 0"),
        (vec!["x", "--time-limit=-5s"], "--time-limit"),
        (vec!["x", "--iters", "0"], "--iters"),
        (vec!["x", "--width", "9..2"], "--width"),
        (vec!["x", "--segments", "0..4"], "--segments"),
    ] {
        let mut full = args.clone();
        full.extend(["--model", &m, "-o", "out"]);
        let o = run(d, &full);
        let err = String::from_utf8_lossy(&o.stderr).to_string();
        assert_eq!(o.status.code(), Some(2), "{args:?}: {err}");
        assert_eq!(err.trim_end().lines().count(), 1, "{args:?}: not one line: {err}");
        assert!(
            err.starts_with("clipdraw: error: ") && err.contains(needle),
            "{args:?}: expected {needle:?} in {err}"
        );
        assert!(!err.contains("panicked"), "{err}");
        let after: std::collections::BTreeSet<_> =
            std::fs::read_dir(d).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(after, before, "{args:?} wrote files");
    }
}
