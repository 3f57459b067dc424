//! The real binary, run in temporary directories.

mod common;

use std::path::Path;
use std::process::Output;

use common::{clipdraw, fixture};

fn run(dir: &Path, args: &[&str]) -> Output {
    clipdraw().current_dir(dir).args(args).output().expect("the binary runs")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).to_string()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).to_string()
}

/// A user-facing failure: exit 2, one `clipdraw: error:` line, no panic.
fn assert_clean_error(o: &Output, needle: &str) {
    let err = stderr(o);
    assert_eq!(o.status.code(), Some(2), "exit status; stderr: {err}");
    assert_eq!(err.trim_end().lines().count(), 1, "not one line: {err}");
    assert!(err.starts_with("clipdraw: error: "), "{err}");
    assert!(err.contains(needle), "expected {needle:?} in: {err}");
    assert!(!err.contains("panicked") && !err.contains("backtrace"), "{err}");
}

fn tiny() -> String {
    fixture("tiny.pt").display().to_string()
}

/// A quick drawing with the tiny fixture model.
fn quick<'a>(model: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut v =
        vec!["a red star", "--model", model, "--strokes", "12", "--iters", "3", "--augs", "2"];
    v.extend(extra);
    v
}

#[test]
fn tokenize_prints_padded_ids_as_one_json_line() {
    let dir = tempfile::tempdir().unwrap();
    let o = run(dir.path(), &["tokenize", "a drawing of a cat"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    assert_eq!(out.lines().count(), 1);
    let ids: Vec<i64> = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(ids.len(), 77);
    assert_eq!(ids[0], 49406);
    let end = ids.iter().position(|&i| i == 49407).unwrap();
    assert!(ids[end + 1..].iter().all(|&i| i == 0));
    assert_eq!(end, 6, "5 words → 5 tokens: {ids:?}");
    assert!(stderr(&o).is_empty());
}

#[test]
fn tokenize_warns_when_truncating() {
    let dir = tempfile::tempdir().unwrap();
    let long = "cat ".repeat(100);
    let o = run(dir.path(), &["tokenize", &long, "--model", &tiny()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let ids: Vec<i64> = serde_json::from_str(stdout(&o).trim()).unwrap();
    assert_eq!(ids.len(), 77);
    assert_eq!(ids[76], 49407, "the end token is kept");
    assert!(stderr(&o).contains("warning"), "{}", stderr(&o));
}

#[test]
fn info_prints_the_models_metadata() {
    let dir = tempfile::tempdir().unwrap();
    let o = run(dir.path(), &["info", "--model", &tiny()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v["architecture"], "clipdraw-test-tiny");
    assert_eq!(v["embed_dim"], 64);
}

#[test]
fn draw_writes_svg_png_and_json() {
    let dir = tempfile::tempdir().unwrap();
    let m = tiny();
    let o = run(dir.path(), &quick(&m, &["-o", "cat", "--png-size", "128"]));
    assert!(o.status.success(), "{}", stderr(&o));
    let printed: Vec<String> = stdout(&o).lines().map(|l| l.trim().to_string()).collect();
    assert_eq!(printed, ["cat.svg", "cat.png", "cat.json"]);

    let svg = std::fs::read_to_string(dir.path().join("cat.svg")).unwrap();
    assert_eq!(svg.matches("<path").count(), 12);
    assert!(svg.contains("viewBox=\"0 0 224 224\""));
    assert!(svg.contains("stroke-linecap=\"round\"") && svg.contains("stroke-opacity"));
    assert!(svg.contains("<metadata>") && svg.contains("a red star"));
    // The SVG parses, and the PNG is resvg's rendering of it at --png-size.
    usvg::Tree::from_str(&svg, &usvg::Options::default()).unwrap();
    let png = resvg::tiny_skia::Pixmap::load_png(dir.path().join("cat.png")).unwrap();
    assert_eq!((png.width(), png.height()), (128, 128));

    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("cat.json")).unwrap())
            .unwrap();
    assert_eq!(json["prompt"], "a red star");
    assert_eq!(json["seed"], 0);
    assert_eq!(json["settings"]["iters"], 3);
    assert_eq!(json["model"]["architecture"], "clipdraw-test-tiny");
    assert!(json["final_score"].as_f64().unwrap().abs() <= 1.0);
    assert!(json["timings"]["per_iteration"]["clip_s"].as_f64().unwrap() > 0.0);
}

#[test]
fn default_names_come_from_prompt_and_seed_and_json_mode_prints_a_summary() {
    let dir = tempfile::tempdir().unwrap();
    let m = tiny();
    let o = run(dir.path(), &quick(&m, &["--seed", "7", "--json"]));
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    assert_eq!(out.lines().count(), 1, "{out}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["svg"], "a-red-star-s7.svg");
    assert_eq!(v["seed"], 7);
    assert!(v["final_score"].is_number());
    assert!(dir.path().join("a-red-star-s7.png").is_file());
}

#[test]
fn the_same_seed_gives_a_byte_identical_svg() {
    let dir = tempfile::tempdir().unwrap();
    let m = tiny();
    for stem in ["a", "b"] {
        let o = run(dir.path(), &quick(&m, &["--seed", "3", "-o", stem]));
        assert!(o.status.success(), "{}", stderr(&o));
    }
    let a = std::fs::read(dir.path().join("a.svg")).unwrap();
    let b = std::fs::read(dir.path().join("b.svg")).unwrap();
    assert!(a == b, "two runs with seed 3 wrote different SVGs");
    let o = run(dir.path(), &quick(&m, &["--seed", "4", "-o", "c"]));
    assert!(o.status.success());
    assert_ne!(a, std::fs::read(dir.path().join("c.svg")).unwrap(), "the seed changes nothing");
}

#[test]
fn existing_files_are_kept_unless_forced() {
    let dir = tempfile::tempdir().unwrap();
    let m = tiny();
    std::fs::write(dir.path().join("x.png"), b"precious").unwrap();
    let o = run(dir.path(), &quick(&m, &["-o", "x"]));
    assert_clean_error(&o, "x.png already exists");
    assert_eq!(std::fs::read(dir.path().join("x.png")).unwrap(), b"precious");
    assert!(!dir.path().join("x.svg").exists(), "a half-written result was left");
    let o = run(dir.path(), &quick(&m, &["-o", "x", "--force"]));
    assert!(o.status.success(), "{}", stderr(&o));
    assert_ne!(std::fs::read(dir.path().join("x.png")).unwrap(), b"precious");
}

#[test]
fn bad_input_gets_one_line_and_no_files() {
    let dir = tempfile::tempdir().unwrap();
    let m = tiny();
    let broken = fixture("broken_truncated.pt").display().to_string();
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["   ", "--model", &m], "prompt is empty"),
        (vec!["x", "--model", &m, "--strokes", "0"], "--strokes"),
        (vec!["x", "--model", &m, "--strokes", "-3"], "--strokes"),
        (vec!["x", "--model", &m, "--strokes", "100000000"], "memory"),
        (vec!["x", "--model", &m, "--iters", "0"], "--iters"),
        (vec!["x", "--model", &m, "-o", "missing/dir/x"], "does not exist"),
        (vec!["x", "--model", &m, "--device", "tpu"], "unknown device"),
        (vec!["x", "--model", "nope.pt"], "nope.pt"),
        (vec!["x", "--model", &broken], "truncated"),
        (vec!["x", "--strokess", "3"], "--strokes"),
        (vec!["x", "--iters", "many"], "many"),
    ];
    for (args, needle) in cases {
        let o = run(dir.path(), &args);
        assert_clean_error(&o, needle);
    }
    if tch::Cuda::device_count() == 0 {
        let o = run(dir.path(), &["x", "--model", &m, "--device", "cuda"]);
        assert_clean_error(&o, "no CUDA device");
    }
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0, "files were left behind");
}

#[test]
fn unwritable_output_directories_are_refused_before_work() {
    let dir = tempfile::tempdir().unwrap();
    let m = tiny();
    // /proc refuses new files even to root (CI runs as root).
    let o = run(dir.path(), &quick(&m, &["-o", "/proc/clipdraw-test"]));
    assert_clean_error(&o, "not writable");
    // A file where a directory should be.
    std::fs::write(dir.path().join("plain"), b"").unwrap();
    let o = run(dir.path(), &quick(&m, &["-o", "plain/x"]));
    assert_clean_error(&o, "not a directory");
    // Directory permissions, which bind everyone but root.
    let ro = dir.path().join("ro");
    std::fs::create_dir(&ro).unwrap();
    let mut perm = std::fs::metadata(&ro).unwrap().permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perm, 0o555);
    std::fs::set_permissions(&ro, perm).unwrap();
    let o = run(dir.path(), &quick(&m, &["-o", "ro/x"]));
    if std::fs::File::create(ro.join("probe")).is_ok() {
        // Root writes anyway, and so does clipdraw: the drawing must then exist.
        assert!(o.status.success(), "{}", stderr(&o));
        assert!(ro.join("x.svg").is_file());
    } else {
        assert_clean_error(&o, "not writable");
    }
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 2, "files were left behind");
}

#[test]
fn a_libtorch_failure_is_one_line_without_a_backtrace() {
    // no_grad.pt passes every load-time check, but its image tower cuts the graph,
    // so libtorch itself refuses the first backward.
    let dir = tempfile::tempdir().unwrap();
    let m = fixture("no_grad.pt").display().to_string();
    let o = run(dir.path(), &quick(&m, &["-o", "x", "--quiet"]));
    assert_clean_error(&o, "libtorch: element 0 of tensors does not require grad");
    assert!(!stderr(&o).contains("Exception raised from"), "{}", stderr(&o));
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0, "files were left behind");
}

#[test]
fn clap_errors_are_one_line_with_the_flag_and_a_suggestion() {
    let dir = tempfile::tempdir().unwrap();
    for (args, needle) in [
        (vec!["x", "--strokess", "3"], "unknown flag --strokess; did you mean --strokes?"),
        (vec!["x", "--representation", "vector"], "invalid value 'vector' for --representation"),
        (vec!["x", "--augs", "5000"], "invalid value '5000' for --augs"),
        (vec!["render", "a.svg"], "missing --output"),
    ] {
        let o = run(dir.path(), &args);
        assert_clean_error(&o, needle);
    }
}

#[test]
fn render_draws_an_svg_through_the_rasterizer() {
    let dir = tempfile::tempdir().unwrap();
    let m = tiny();
    let o = run(dir.path(), &quick(&m, &["-o", "d"]));
    assert!(o.status.success(), "{}", stderr(&o));
    let o = run(dir.path(), &["render", "d.svg", "-o", "seen.png", "--size", "100"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let png = resvg::tiny_skia::Pixmap::load_png(dir.path().join("seen.png")).unwrap();
    assert_eq!((png.width(), png.height()), (100, 100));
    let o = run(dir.path(), &["render", "d.svg", "-o", "seen.png"]);
    assert_clean_error(&o, "already exists");
    std::fs::write(dir.path().join("junk.svg"), "not svg at all").unwrap();
    let o = run(dir.path(), &["render", "junk.svg", "-o", "j.png"]);
    assert_clean_error(&o, "junk.svg");
    assert!(!dir.path().join("j.png").exists());
}

#[test]
fn ctrl_c_saves_the_drawing_marked_interrupted_and_exits_130() {
    let dir = tempfile::tempdir().unwrap();
    let m = tiny();
    let child = clipdraw()
        .current_dir(dir.path())
        .args([
            "a red star",
            "--model",
            &m,
            "--strokes",
            "8",
            "--iters",
            "100000",
            "--augs",
            "1",
            "-o",
            "int",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(2500));
    let status = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let o = child.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(130), "{}", stderr(&o));
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("int.json")).unwrap())
            .unwrap();
    assert_eq!(json["interrupted"], true);
    let svg = std::fs::read_to_string(dir.path().join("int.svg")).unwrap();
    assert!(svg.contains("\"interrupted\":true"));
    assert!(dir.path().join("int.png").is_file());
}

#[test]
fn score_reads_png_and_svg_and_agrees_between_them() {
    let dir = tempfile::tempdir().unwrap();
    let m = tiny();
    let o = run(dir.path(), &quick(&m, &["-o", "d", "--png-size", "224"]));
    assert!(o.status.success(), "{}", stderr(&o));
    let mut scores = Vec::new();
    for file in ["d.svg", "d.png"] {
        let o =
            run(dir.path(), &["score", file, "a red star", "--model", &m, "--augs", "8", "--json"]);
        assert!(o.status.success(), "{}", stderr(&o));
        let v: serde_json::Value = serde_json::from_str(stdout(&o).trim()).unwrap();
        assert_eq!(v["augmentations"], 8);
        scores.push(v["score"].as_f64().unwrap());
    }
    // The PNG is resvg's rendering of the SVG at the same size: same pixels.
    assert!((scores[0] - scores[1]).abs() < 1e-3, "{scores:?}");
    let o = run(dir.path(), &["score", "d.png", "a red star", "--model", &m, "--augs", "4"]);
    let plain: f64 = stdout(&o).trim().parse().unwrap();
    assert!(plain.abs() <= 1.0);
    std::fs::write(dir.path().join("bad.png"), b"nope").unwrap();
    let o = run(dir.path(), &["score", "bad.png", "a red star", "--model", &m]);
    assert_clean_error(&o, "bad.png");
    let o = run(dir.path(), &["score", "d.png", " ", "--model", &m]);
    assert_clean_error(&o, "prompt is empty");
}

/// An SVG whose header promises 100000x100000 pixels (a 40 GB pixmap) is refused
/// before anything is allocated; it used to abort with "memory allocation of
/// 40000000000 bytes failed". The run is held to 6 GB of address space, so a
/// regression fails here instead of exhausting the machine.
#[test]
fn score_refuses_an_svg_that_promises_a_huge_image() {
    let dir = tempfile::tempdir().unwrap();
    let svg = r#"<svg xmlns="http://www.w3.org/2000/svg" width="100000" height="100000"><rect width="9" height="9"/></svg>"#;
    std::fs::write(dir.path().join("big.svg"), svg).unwrap();
    let o = std::process::Command::new("bash")
        .current_dir(dir.path())
        .args(["-c", "ulimit -v 6000000; exec \"$0\" score big.svg 'a red star' --model \"$1\""])
        .arg(clipdraw().get_program())
        .arg(tiny())
        .output()
        .unwrap();
    assert_clean_error(&o, "big.svg is 100000x100000 pixels");
}

#[test]
fn pixel_baseline_writes_png_and_json_only() {
    let dir = tempfile::tempdir().unwrap();
    let m = tiny();
    let args = [
        "a red star",
        "--model",
        &m,
        "--iters",
        "3",
        "--augs",
        "0",
        "--representation",
        "pixels",
        "-o",
        "px",
    ];
    let o = run(dir.path(), &args);
    assert!(o.status.success(), "{}", stderr(&o));
    let printed: Vec<String> = stdout(&o).lines().map(|l| l.trim().to_string()).collect();
    assert_eq!(printed, ["px.png", "px.json"]);
    assert!(!dir.path().join("px.svg").exists());
    let png = resvg::tiny_skia::Pixmap::load_png(dir.path().join("px.png")).unwrap();
    assert_eq!((png.width(), png.height()), (224, 224));
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("px.json")).unwrap())
            .unwrap();
    assert_eq!(json["representation"], "pixels");
    assert_eq!(json["settings"]["augs"], 0);
}

#[test]
fn the_built_in_model_draws_without_a_model_file() {
    let dir = tempfile::tempdir().unwrap();
    let o = run(
        dir.path(),
        &["a red star", "--strokes", "8", "--iters", "2", "--augs", "2", "-o", "b", "--json"],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("b.json")).unwrap()).unwrap();
    assert_eq!(json["model"]["file"], "built-in");
    assert!(json["model"]["architecture"].as_str().unwrap().starts_with("clipdraw-tiny"));
    assert!(!stderr(&o).contains("never saw"), "{}", stderr(&o));
    let o = run(dir.path(), &["info"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("known_words"));
}

#[test]
fn words_the_built_in_model_never_saw_get_a_one_line_notice() {
    let dir = tempfile::tempdir().unwrap();
    let o = run(
        dir.path(),
        &["a red giraffe riding a bicycle", "--strokes", "8", "--iters", "1", "--augs", "1"],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let err = stderr(&o);
    let notes: Vec<&str> = err.lines().filter(|l| l.contains("never saw")).collect();
    assert_eq!(notes.len(), 1, "{}", stderr(&o));
    for w in ["giraffe", "riding", "bicycle"] {
        assert!(notes[0].contains(w), "{}", notes[0]);
    }
    assert!(!notes[0].contains("\"red\""), "{}", notes[0]);
    // --quiet silences it; a real CLIP file has no word list and no notice.
    let o = run(
        dir.path(),
        &["a red giraffe", "--strokes", "8", "--iters", "1", "--augs", "1", "-q", "-o", "q"],
    );
    assert!(!stderr(&o).contains("never saw"));
}
