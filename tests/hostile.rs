//! Hostile input and faults through the real binary (docs/hostile-input.md):
//! limits checked before allocating, memory running out mid-run, stop signals,
//! full disks and file-size limits, two processes writing one stem.

mod common;

use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use common::{clipdraw, fixture};

fn tiny() -> String {
    fixture("tiny.pt").display().to_string()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).to_string()
}

/// A user-facing failure: exit 2, one `clipdraw: error:` line, no panic.
fn assert_clean_error(o: &Output, needle: &str) {
    let err = stderr(o);
    let lines: Vec<&str> = err.lines().filter(|l| !l.contains("no CUDA device")).collect();
    assert_eq!(o.status.code(), Some(2), "exit status; stderr: {err}");
    assert_eq!(lines.len(), 1, "not one line: {err}");
    assert!(lines[0].starts_with("clipdraw: error: "), "{err}");
    assert!(err.contains(needle), "expected {needle:?} in: {err}");
    assert!(!err.contains("panicked") && !err.contains("backtrace"), "{err}");
}

/// `clipdraw ARGS` in `dir` under `ulimits` (bash `ulimit` options, e.g. `-v 6000000`).
fn run_limited(dir: &Path, ulimits: &str, args: &[&str]) -> Output {
    Command::new("bash")
        .current_dir(dir)
        .args(["-c", &format!("ulimit {ulimits}; exec \"$0\" \"$@\"")])
        .arg(clipdraw().get_program())
        .args(args)
        .env_remove("CLIPDRAW_MODEL")
        .output()
        .unwrap()
}

/// The names in `dir`, sorted, hidden ones included.
fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .collect();
    v.sort();
    v
}

fn no_temporary_files(dir: &Path) {
    let left: Vec<String> = names(dir).into_iter().filter(|n| n.contains(".tmp-")).collect();
    assert!(left.is_empty(), "temporary files left behind: {left:?}");
}

/// A PNG whose header promises `w`×`h` RGBA pixels, with one tiny IDAT.
fn png_promising(w: u32, h: u32) -> Vec<u8> {
    fn crc32(bytes: &[u8]) -> u32 {
        let mut c = 0xffff_ffffu32;
        for &b in bytes {
            c ^= b as u32;
            for _ in 0..8 {
                c = if c & 1 != 0 { 0xedb8_8320 ^ (c >> 1) } else { c >> 1 };
            }
        }
        !c
    }
    fn chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
        out.extend((data.len() as u32).to_be_bytes());
        let mut body = kind.to_vec();
        body.extend(data);
        out.extend(&body);
        out.extend(crc32(&body).to_be_bytes());
    }
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut ihdr = Vec::new();
    ihdr.extend(w.to_be_bytes());
    ihdr.extend(h.to_be_bytes());
    ihdr.extend([8, 6, 0, 0, 0]); // 8-bit RGBA, no interlace
    chunk(&mut png, b"IHDR", &ihdr);
    // zlib: an empty stored block; the image data is far too short.
    chunk(&mut png, b"IDAT", &[0x78, 0x01, 0x01, 0x00, 0x00, 0xff, 0xff, 0x00, 0x00, 0x00, 0x01]);
    chunk(&mut png, b"IEND", &[]);
    png
}

#[test]
fn the_crc_of_the_hand_made_png_is_right() {
    // The oracle: the png crate decodes a small hand-made header.
    let bytes = png_promising(3, 2);
    let decoder = png::Decoder::new(std::io::Cursor::new(bytes));
    let reader = decoder.read_info().expect("a valid header");
    assert_eq!((reader.info().width, reader.info().height), (3, 2));
}

#[test]
fn images_promising_huge_sizes_are_refused_before_allocating() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("bomb.png"), png_promising(100_000, 100_000)).unwrap();
    let svg = r#"<svg xmlns="http://www.w3.org/2000/svg" width="1e9" height="1e9"><path d="M0 0 L9 9" stroke="red"/></svg>"#;
    std::fs::write(d.join("bomb.svg"), svg).unwrap();
    // 6 GB of address space: a 100000² RGBA image would need 40 GB.
    let m = tiny();
    let o = run_limited(d, "-v 6000000", &["score", "bomb.png", "a cat", "--model", &m]);
    assert_clean_error(&o, "100000x100000 pixels; clipdraw reads images of at most 16384");
    let o = run_limited(d, "-v 6000000", &["score", "bomb.svg", "a cat", "--model", &m]);
    assert_clean_error(&o, "1000000000x1000000000 pixels");
    let o = run_limited(
        d,
        "-v 6000000",
        &["a cat", "--model", &m, "--background", "bomb.png", "--iters", "1", "-o", "bg"],
    );
    assert_clean_error(&o, "16384 pixels a side");
    assert_eq!(names(d), ["bomb.png", "bomb.svg"], "nothing is written");
}

#[test]
fn svgs_beyond_the_limits_are_refused_with_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let head = r#"<svg xmlns="http://www.w3.org/2000/svg" width="64" height="64">"#;
    let path = r#"<path d="M0 0 L9 9" stroke="red"/>"#;
    let cases = [
        (
            "deep.svg",
            format!("{head}{}{path}{}</svg>", "<g>".repeat(300), "</g>".repeat(300)),
            "more than 256 deep",
        ),
        (
            "many.svg",
            format!("{head}{}</svg>", "<g/>".repeat(1_100_000)),
            "more than 1000000 XML nodes",
        ),
        (
            "far.svg",
            format!(r#"{head}<path d="M 1e30 0 L 9 9" stroke="red"/></svg>"#),
            "coordinate of 1e30 px",
        ),
        (
            "nan.svg",
            format!(r#"{head}<path d="M NaN 0 L 9 9" stroke="red"/></svg>"#),
            "no stroked paths",
        ),
        (
            "scaled.svg",
            format!(
                r#"{head}<g transform="scale(1e20)"><path d="M 1 0 L 9 9" stroke="red"/></g></svg>"#
            ),
            "within ±4e6 px",
        ),
    ];
    let m = tiny();
    for (name, text, needle) in &cases {
        std::fs::write(d.join(name), text).unwrap();
        let o = run_limited(
            d,
            "-v 6000000",
            &["a cat", "--model", &m, "--init", name, "--iters", "1", "-o", "out"],
        );
        assert_clean_error(&o, needle);
        if ["far.svg", "scaled.svg"].contains(name) {
            // Strokes beyond the limits are an error even where an SVG without any
            // may be drawn over: the file's drawing is not dropped in silence.
            let args = ["a cat", "--model", &m, "--init", name, "--add-strokes", "4"];
            let o =
                run_limited(d, "-v 6000000", &[&args[..], &["--iters", "1", "-o", "out"]].concat());
            assert_clean_error(&o, needle);
        }
        if ["deep.svg", "many.svg"].contains(name) {
            // score reads the picture, not the strokes: the document limits hold.
            let o = run_limited(d, "-v 6000000", &["score", name, "a cat", "--model", &m]);
            assert_clean_error(&o, needle);
            let o = run_limited(d, "-v 6000000", &["render", name, "-o", "r.png"]);
            assert_clean_error(&o, needle);
        }
    }
    assert!(!names(d).iter().any(|n| n.starts_with("out") || n.starts_with("r.")));
}

#[test]
fn job_lists_that_expand_past_the_limit_are_refused_before_any_drawing() {
    // Two lines of 60000 seeds each: 120000 jobs, over the 100000 a list may have.
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let line = r#"{"prompt": "a red star", "seeds": "0..60000"}"#;
    let line2 = r#"{"prompt": "a blue star", "seeds": "0..60000"}"#;
    std::fs::write(d.join("big.jsonl"), format!("{line}\n{line2}\n")).unwrap();
    let m = tiny();
    let o = run_limited(d, "-v 6000000", &["batch", "big.jsonl", "-o", "out", "--model", &m]);
    assert_clean_error(&o, "big.jsonl:2: the job list big.jsonl comes to more than 100000 jobs");
    assert_eq!(names(d), ["big.jsonl"], "nothing is written");
}

#[test]
fn runs_that_cannot_fit_in_memory_are_refused_before_starting() {
    let dir = tempfile::tempdir().unwrap();
    let m = tiny();
    let o = clipdraw()
        .current_dir(dir.path())
        .args(["a cat", "--model", &m, "--canvas", "4096x4096", "--augs", "1024", "-o", "big"])
        .output()
        .unwrap();
    assert_clean_error(&o, "on a 4096x4096 canvas with 1024 augmentations would need about");
    assert!(stderr(&o).contains("is available"), "{}", stderr(&o));
    // Strokes at 2 MiB each: 1000 more than the memory available now can hold.
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap();
    let kib: u64 = meminfo
        .lines()
        .find(|l| l.starts_with("MemAvailable:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .unwrap()
        .parse()
        .unwrap();
    let strokes = (kib / 2048 + 1000).to_string();
    assert!(kib / 2048 + 1000 <= 100_000, "this machine has more memory than the test assumes");
    let o = clipdraw()
        .current_dir(dir.path())
        .args(["a cat", "--model", &m, "--strokes", &strokes, "-o", "many"])
        .output()
        .unwrap();
    assert_clean_error(&o, &format!("{strokes} strokes would need about"));
    assert!(stderr(&o).contains("of memory, but only"), "{}", stderr(&o));
    let o = clipdraw()
        .current_dir(dir.path())
        .args(["a cat", "--model", &m, "--strokes", "100001", "-o", "many"])
        .output()
        .unwrap();
    assert_clean_error(&o, "at most 100000 strokes");
    assert!(names(dir.path()).is_empty());
}

#[test]
fn running_out_of_memory_mid_run_saves_the_drawing_so_far() {
    // 1024 augmentations need more than these address-space limits allow, while
    // the binary and the tiny model load in less. Each limit that gets past loading
    // must end in the saved drawing and one line.
    let m = tiny();
    let mut reached = 0;
    for limit in ["1300000", "1600000", "1900000"] {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let o = run_limited(
            d,
            &format!("-v {limit}"),
            &[
                "a cat",
                "--model",
                &m,
                "--augs",
                "1024",
                "--strokes",
                "16",
                "--iters",
                "5",
                "-o",
                "oom",
            ],
        );
        let err = stderr(&o);
        assert!(!err.contains("panicked"), "{limit}: {err}");
        if err.contains("cannot load") {
            continue;
        }
        assert_clean_error(&o, "ran out of memory at iteration 1; saved the drawing so far");
        let json: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(d.join("oom.json")).unwrap()).unwrap();
        assert_eq!(json["ending"], "out_of_memory", "{limit}");
        assert_eq!(json["iterations_done"], 0, "{limit}");
        assert!(std::fs::read_to_string(d.join("oom.svg")).unwrap().contains("out_of_memory"));
        assert!(d.join("oom.png").is_file());
        reached += 1;
    }
    assert!(reached > 0, "no limit got past loading the model");
}

/// Starts a long drawing in `dir` with stem `stem`.
fn start_long(dir: &Path, stem: &str) -> std::process::Child {
    let m = tiny();
    clipdraw()
        .current_dir(dir)
        .args(["a red star", "--model", &m, "--strokes", "8", "--iters", "100000", "--augs", "1"])
        .args(["-o", stem])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn send(child: &std::process::Child, sig: &str) {
    let ok = Command::new("kill").args([sig, &child.id().to_string()]).status().unwrap();
    assert!(ok.success());
}

#[test]
fn sigterm_and_sighup_save_the_drawing_and_exit_128_plus_the_signal() {
    for (sig, code) in [("-TERM", 143), ("-HUP", 129)] {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let child = start_long(d, "s");
        std::thread::sleep(Duration::from_millis(2500));
        send(&child, sig);
        let o = child.wait_with_output().unwrap();
        assert_eq!(o.status.code(), Some(code), "{sig}: {}", stderr(&o));
        assert!(stderr(&o).contains("the drawing so far is saved"), "{}", stderr(&o));
        let json: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(d.join("s.json")).unwrap()).unwrap();
        assert_eq!(json["interrupted"], true);
        assert!(std::fs::read_to_string(d.join("s.svg")).unwrap().contains("\"interrupted\":true"));
        assert_eq!(names(d), ["s.json", "s.png", "s.svg"], "{sig}");
    }
}

/// Whatever the moment of a stop signal (or two), the directory holds either
/// nothing or the three complete files, never a temporary or partial one.
fn assert_all_or_nothing(d: &Path, o: &Output, what: &str) {
    no_temporary_files(d);
    let files = names(d);
    if files.is_empty() {
        return;
    }
    assert_eq!(files, ["s.json", "s.png", "s.svg"], "{what}: {}", stderr(o));
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(d.join("s.json")).unwrap())
            .unwrap_or_else(|e| panic!("{what}: s.json is not whole: {e}"));
    assert_eq!(json["interrupted"], true, "{what}");
    let svg = std::fs::read_to_string(d.join("s.svg")).unwrap();
    assert!(svg.trim_end().ends_with("</svg>"), "{what}: s.svg is cut short");
    resvg::tiny_skia::Pixmap::load_png(d.join("s.png"))
        .unwrap_or_else(|e| panic!("{what}: s.png is not whole: {e}"));
}

#[test]
fn a_second_signal_quits_at_once_and_leaves_no_partial_file() {
    for gap_ms in [0u64, 5, 40] {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let child = start_long(d, "s");
        std::thread::sleep(Duration::from_millis(2500));
        send(&child, "-INT");
        std::thread::sleep(Duration::from_millis(gap_ms));
        send(&child, "-INT");
        let o = child.wait_with_output().unwrap();
        assert_eq!(o.status.code(), Some(130), "gap {gap_ms} ms: {}", stderr(&o));
        assert!(!stderr(&o).contains("panicked"), "{}", stderr(&o));
        assert_all_or_nothing(d, &o, &format!("gap {gap_ms} ms"));
    }
}

#[test]
fn a_signal_while_starting_up_ends_in_a_defined_state() {
    // Early enough, the signal lands before the handler is installed (the default
    // action kills the process, nothing written); later, during the model load or
    // the first iterations, the run stops at once and saves its drawing.
    let mut saw = (0, 0);
    for delay_ms in [0u64, 100, 300, 1000, 2500] {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let child = start_long(d, "s");
        std::thread::sleep(Duration::from_millis(delay_ms));
        send(&child, "-TERM");
        let o = child.wait_with_output().unwrap();
        let what = format!("SIGTERM at +{delay_ms} ms");
        match (o.status.code(), o.status.signal()) {
            (Some(143), _) => {
                assert_eq!(names(d), ["s.json", "s.png", "s.svg"], "{what}: {}", stderr(&o));
                saw.1 += 1;
            }
            (None, Some(15)) => {
                assert!(names(d).is_empty(), "{what}: killed, yet wrote {:?}", names(d));
                saw.0 += 1;
            }
            other => panic!("{what}: ended with {other:?}: {}", stderr(&o)),
        }
        assert_all_or_nothing(d, &o, &what);
    }
    assert!(saw.1 > 0, "no signal was handled (killed {} times)", saw.0);
}

/// A tmpfs of `kib` KiB mounted on a fresh directory, unmounted when dropped.
struct SmallDisk {
    dir: tempfile::TempDir,
}

impl SmallDisk {
    fn new(kib: u32) -> SmallDisk {
        let dir = tempfile::tempdir().unwrap();
        let o = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={kib}k"), "tmpfs"])
            .arg(dir.path())
            .output()
            .unwrap();
        assert!(o.status.success(), "mounting a tmpfs (the tests run as root): {}", stderr(&o));
        SmallDisk { dir }
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.dir.path()).status();
    }
}

#[test]
fn a_full_disk_fails_with_one_line_and_keeps_the_earlier_drawing() {
    let disk = SmallDisk::new(64);
    let d = disk.dir.path();
    let m = tiny();
    let quick = ["a red star", "--model", &m, "--strokes", "64", "--iters", "2", "--augs", "1"];
    let o = clipdraw()
        .current_dir(d)
        .args(quick)
        .args(["-o", "d", "--png-size", "64"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let before: Vec<Vec<u8>> =
        ["d.svg", "d.png", "d.json"].iter().map(|f| std::fs::read(d.join(f)).unwrap()).collect();
    // A 4096 px PNG does not fit in what is left: overwriting fails as a whole.
    let o = clipdraw()
        .current_dir(d)
        .args(quick)
        .args(["-o", "d", "--png-size", "4096", "--force", "--seed", "1"])
        .output()
        .unwrap();
    assert_clean_error(&o, "the disk is full");
    no_temporary_files(d);
    for (f, old) in ["d.svg", "d.png", "d.json"].iter().zip(&before) {
        assert_eq!(&std::fs::read(d.join(f)).unwrap(), old, "{f} changed");
    }
    // A new stem: nothing of it appears.
    let o = clipdraw()
        .current_dir(d)
        .args(quick)
        .args(["-o", "e", "--png-size", "4096"])
        .output()
        .unwrap();
    assert_clean_error(&o, "the disk is full");
    assert_eq!(names(d), ["d.json", "d.png", "d.svg"]);
}

#[test]
fn a_file_size_limit_fails_with_one_line_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let m = tiny();
    // ulimit -f counts 1024-byte blocks: 32 KiB, less than a 4096 px PNG.
    let o = run_limited(
        d,
        "-f 32",
        &[
            "a red star",
            "--model",
            &m,
            "--strokes",
            "64",
            "--iters",
            "2",
            "--png-size",
            "4096",
            "-o",
            "f",
        ],
    );
    assert_clean_error(&o, "the file-size limit (ulimit -f) was reached");
    assert!(names(d).is_empty(), "{:?}", names(d));
}

#[test]
fn two_processes_writing_one_stem_one_wins_and_nothing_mixes() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (a, b) = race(d, &["--iters", "20"]);
    let (winner, loser, prompt) = match (a.status.success(), b.status.success()) {
        (true, false) => (&a, &b, "a red star"),
        (false, true) => (&b, &a, "a blue circle"),
        other => panic!("expected one winner, got {other:?}: {} / {}", stderr(&a), stderr(&b)),
    };
    assert!(winner.status.success());
    let err = stderr(loser);
    assert!(err.contains("appeared while drawing") || err.contains("already exists"), "{err}");
    assert_eq!(loser.status.code(), Some(2), "{err}");
    assert_one_run(d, prompt);
}

/// Two drawings of stem `same` in `d`, "a red star" and "a blue circle", started
/// together; their outputs once both have ended.
fn race(d: &Path, extra: &[&str]) -> (Output, Output) {
    let m = tiny();
    let spawn = |prompt: &str| {
        clipdraw()
            .current_dir(d)
            .args([prompt, "--model", &m, "--strokes", "16", "--augs", "1", "-o", "same"])
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (a, b) = (spawn("a red star"), spawn("a blue circle"));
    (a.wait_with_output().unwrap(), b.wait_with_output().unwrap())
}

/// The three files of stem `same` in `d` come from one run, of `prompt`.
fn assert_one_run(d: &Path, prompt: &str) {
    no_temporary_files(d);
    assert_eq!(names(d), ["same.json", "same.png", "same.svg"]);
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(d.join("same.json")).unwrap()).unwrap();
    assert_eq!(json["prompt"], prompt);
    let svg = std::fs::read_to_string(d.join("same.svg")).unwrap();
    assert!(svg.contains(&format!("\"prompt\":\"{prompt}\"")), "the SVG is another run's");
    // The PNG is resvg's rendering of this SVG.
    let png = resvg::tiny_skia::Pixmap::load_png(d.join("same.png")).unwrap();
    let tree = usvg::Tree::from_str(&svg, &usvg::Options::default()).unwrap();
    let scale = png.width() as f32 / tree.size().width();
    let mut again = resvg::tiny_skia::Pixmap::new(png.width(), png.height()).unwrap();
    resvg::render(
        &tree,
        resvg::tiny_skia::Transform::from_scale(scale, scale),
        &mut again.as_mut(),
    );
    let diff = png.data().iter().zip(again.data()).filter(|(x, y)| x != y).count();
    assert!(diff * 100 < png.data().len(), "the PNG is another run's ({diff} bytes differ)");
}

#[test]
fn two_forced_processes_writing_one_stem_leave_one_runs_files() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    for round in 0..3 {
        let (a, b) = race(d, &["--iters", "10", "--force"]);
        assert!(a.status.success() && b.status.success(), "{} / {}", stderr(&a), stderr(&b));
        let json: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(d.join("same.json")).unwrap()).unwrap();
        let prompt = json["prompt"].as_str().unwrap().to_string();
        assert!(["a red star", "a blue circle"].contains(&prompt.as_str()), "round {round}");
        assert_one_run(d, &prompt);
    }
}

#[test]
fn rendering_beyond_the_memory_left_is_refused_instead_of_aborting() {
    // A failed allocation in Rust aborts the process, so `render` checks its
    // estimate first, against an address-space limit too.
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let m = tiny();
    let o = clipdraw()
        .current_dir(d)
        .args([
            "a red star",
            "--model",
            &m,
            "--strokes",
            "8",
            "--iters",
            "1",
            "--augs",
            "1",
            "-o",
            "s",
        ])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let o = run_limited(d, "-v 6000000", &["render", "s.svg", "-o", "big.png", "--size", "16384"]);
    assert_clean_error(&o, "rendering s.svg at 16384x16384 pixels would need about");
    assert!(!d.join("big.png").exists());
}

#[test]
fn an_svg_that_makes_resvg_panic_is_an_error() {
    // tiny-skia 0.12 (under resvg) indexes out of bounds on this path's extreme
    // vertical extent (linebender/tiny-skia PR #180); clipdraw panicked with it.
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    std::fs::copy(root.join("fuzz/corpus/svg/crash-tiny-skia-extreme-y.svg"), d.join("y.svg"))
        .unwrap();
    let o = clipdraw()
        .current_dir(d)
        .args(["score", "y.svg", "a cat", "--model", &tiny()])
        .output()
        .unwrap();
    assert_clean_error(&o, "y.svg: resvg cannot render it (range start index");
}
