//! `clipdraw batch` and `clipdraw gallery`: the real binary with the built-in model,
//! in temporary directories. The oracle for resuming is an uninterrupted run of the
//! same job, compared byte for byte.

mod common;

use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Output, Stdio};
use std::time::{Duration, Instant};

use common::clipdraw;

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).to_string()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).to_string()
}

/// `clipdraw batch JOBS -o DIR` with small drawings, plus `extra`.
fn batch_args<'a>(jobs: &'a str, dir: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut v =
        vec!["batch", jobs, "-o", dir, "--strokes", "12", "--iters", "6", "--augs", "2", "-q"];
    v.extend(extra);
    v
}

fn run_in(dir: &Path, args: &[&str]) -> Output {
    clipdraw().current_dir(dir).args(args).output().expect("the binary runs")
}

fn ok(o: Output) -> Output {
    assert!(o.status.success(), "exit {:?}: {}", o.status.code(), stderr(&o));
    o
}

/// A user-facing failure: exit 2, one `clipdraw: error:` line, no panic.
fn assert_clean_error(o: &Output, needle: &str) {
    let err = stderr(o);
    assert_eq!(o.status.code(), Some(2), "exit status; stderr: {err}");
    assert_eq!(err.trim_end().lines().count(), 1, "not one line: {err}");
    assert!(err.starts_with("clipdraw: error: "), "{err}");
    assert!(err.contains(needle), "expected {needle:?} in: {err}");
    assert!(!err.contains("panicked"), "{err}");
}

fn json_lines(o: &Output) -> Vec<serde_json::Value> {
    stdout(o).lines().map(|l| serde_json::from_str(l).expect("a JSON line")).collect()
}

fn stems(lines: &[serde_json::Value]) -> BTreeSet<String> {
    lines.iter().map(|v| v["stem"].as_str().unwrap().to_string()).collect()
}

fn write(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap();
}

fn manifest(dir: &Path) -> Vec<serde_json::Value> {
    let text = std::fs::read_to_string(dir.join("manifest.jsonl")).unwrap();
    text.lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

const MIXED: &str = "# a job list\na red star\n\n{\"prompt\": \"a blue circle\", \"seed\": 7, \"iters\": 4}\n{\"prompt\": \"a red star\", \"strokes\": 8, \"name\": \"small-star\"}\n";

#[test]
fn a_batch_writes_every_job_and_a_second_run_draws_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    // The job list comes on stdin; --seeds expands the jobs without their own seed.
    let mut child = clipdraw()
        .current_dir(tmp.path())
        .args(batch_args("-", "out", &["--seeds", "0..2", "--json"]))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(MIXED.as_bytes()).unwrap();
    let o = ok(child.wait_with_output().unwrap());
    let lines = json_lines(&o);
    let want: BTreeSet<String> =
        ["a-red-star-s0", "a-red-star-s1", "a-blue-circle-s7", "small-star-s0", "small-star-s1"]
            .map(String::from)
            .into();
    assert_eq!(stems(&lines), want);
    assert_eq!(lines.len(), 5, "one line per job: {}", stdout(&o));
    let out = tmp.path().join("out");
    for stem in &want {
        for ext in ["svg", "png", "json"] {
            assert!(out.join(format!("{stem}.{ext}")).is_file(), "{stem}.{ext}");
        }
        let record = clipdraw::Record::from_json(
            &std::fs::read_to_string(out.join(format!("{stem}.json"))).unwrap(),
        )
        .unwrap();
        assert!(record.fingerprint.as_deref().unwrap().starts_with("fnv1a64:"));
        assert_eq!(record.ending, clipdraw::optimize::Ending::Finished);
    }
    let blue = clipdraw::Record::from_json(
        &std::fs::read_to_string(out.join("a-blue-circle-s7.json")).unwrap(),
    )
    .unwrap();
    assert_eq!((blue.seed, blue.iterations_done, blue.strokes), (7, 4, Some(12)));
    let small = clipdraw::Record::from_svg(
        &std::fs::read_to_string(out.join("small-star-s1.svg")).unwrap(),
    )
    .unwrap();
    assert_eq!((small.seed, small.strokes), (1, Some(8)));
    // Finished jobs leave no checkpoints behind.
    assert_eq!(std::fs::read_dir(out.join(".checkpoints")).map(|d| d.count()).unwrap_or(0), 0);
    assert_eq!(manifest(&out).len(), 5);

    // The same command again draws nothing and touches no drawing.
    let jobs = tmp.path().join("jobs.txt");
    write(&jobs, MIXED);
    let before: Vec<(PathBuf, std::time::SystemTime)> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "svg" || e == "json"))
        .map(|p| (p.clone(), std::fs::metadata(&p).unwrap().modified().unwrap()))
        .collect();
    let again =
        ok(run_in(tmp.path(), &batch_args("jobs.txt", "out", &["--seeds", "0..2", "--json"])));
    assert!(stdout(&again).is_empty(), "drew again: {}", stdout(&again));
    for (p, t) in before {
        assert_eq!(
            std::fs::metadata(&p).unwrap().modified().unwrap(),
            t,
            "{} was rewritten",
            p.display()
        );
    }

    // Other settings for an existing drawing are refused, naming job and setting.
    let o = run_in(
        tmp.path(),
        &batch_args("jobs.txt", "out", &["--seeds", "0..2", "--lr-color", "0.02"]),
    );
    assert_clean_error(&o, "lr-color is 0.01 there and 0.02 in this job");
    assert!(stderr(&o).contains("a-red-star-s0 (jobs.txt:2)"), "{}", stderr(&o));
}

/// Starts a batch of one job that runs long enough to be killed midway.
fn long_job(dir: &Path, out: &str, every: &str) -> Child {
    clipdraw()
        .current_dir(dir)
        .args([
            "batch",
            "one.txt",
            "-o",
            out,
            "--strokes",
            "24",
            "--iters",
            "80",
            "--augs",
            "2",
            "-q",
        ])
        .args(["--checkpoint-every", every])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Waits until `path` exists (the first checkpoint); panics after a minute.
fn wait_for(path: &Path) {
    let t0 = Instant::now();
    while !path.exists() {
        assert!(t0.elapsed() < Duration::from_secs(60), "{} never appeared", path.display());
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Milliseconds in 0..max, different on every run (no RNG crate needed).
fn random_ms(max: u64) -> u64 {
    let nanos =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos();
    (nanos as u64 * 2654435761) % max
}

#[test]
fn killed_or_terminated_jobs_resume_to_the_byte_identical_svg() {
    let tmp = tempfile::tempdir().unwrap();
    write(&tmp.path().join("one.txt"), "a red star on the left\n");
    let svg = |out: &str| tmp.path().join(out).join("a-red-star-on-the-left-s0.svg");
    let ckpt = |out: &str| tmp.path().join(out).join(".checkpoints/a-red-star-on-the-left-s0.ckpt");
    let sidecar = |out: &str| tmp.path().join(out).join("a-red-star-on-the-left-s0.json");
    let t0 = Instant::now();
    let reference = long_job(tmp.path(), "ref", "25").wait_with_output().unwrap();
    assert!(reference.status.success(), "{}", stderr(&reference));
    // Kills land within the first 40 % of a run's length after its first
    // checkpoint, so that they come before the end on a fast machine too.
    let window_ms = (t0.elapsed().as_millis() as u64 * 2 / 5).max(50);
    let want = std::fs::read(svg("ref")).unwrap();

    // SIGKILL at a random moment after the first checkpoint: every 5 iterations, and
    // every iteration (so that the kill likely lands in a checkpoint write).
    for (out, every) in [("kill5", "5"), ("kill1", "1")] {
        // The machine's speed changes under load: when a run outpaces the kill,
        // start afresh with half the window (the kill must land mid-run in the end).
        let mut window = window_ms;
        let ms = loop {
            let _ = std::fs::remove_dir_all(tmp.path().join(out));
            let mut child = long_job(tmp.path(), out, every);
            wait_for(&ckpt(out));
            let ms = random_ms(window);
            std::thread::sleep(Duration::from_millis(ms));
            child.kill().unwrap();
            let status = child.wait().unwrap();
            if !status.success() && !sidecar(out).exists() {
                break ms;
            }
            assert!(window > 50, "{out}: the job kept finishing before the kill");
            window /= 2;
        };
        let it = clipdraw::batch::checkpoint::read(&ckpt(out)).unwrap().unwrap().state.iter;
        eprintln!(
            "{out}: killed at +{ms} ms after the first checkpoint; resuming from iteration {it}"
        );
        let o = long_job(tmp.path(), out, every).wait_with_output().unwrap();
        assert!(o.status.success(), "{}", stderr(&o));
        assert!(
            std::fs::read(svg(out)).unwrap() == want,
            "{out}: the resumed SVG differs from the uninterrupted one"
        );
        assert!(!ckpt(out).exists(), "a finished job keeps its checkpoint");
    }

    // SIGTERM: exit 143, the drawing so far marked interrupted, and a checkpoint.
    // As above, a run that outpaces the signal starts afresh with half the window.
    let mut window = window_ms;
    let o = loop {
        let _ = std::fs::remove_dir_all(tmp.path().join("term"));
        let child = long_job(tmp.path(), "term", "5");
        wait_for(&ckpt("term"));
        std::thread::sleep(Duration::from_millis(random_ms(window)));
        let term = std::process::Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .unwrap();
        assert!(term.success());
        let o = child.wait_with_output().unwrap();
        if o.status.code() != Some(0) {
            break o;
        }
        assert!(window > 50, "the job kept finishing before SIGTERM");
        window /= 2;
    };
    assert_eq!(o.status.code(), Some(143), "{}", stderr(&o));
    let record =
        clipdraw::Record::from_json(&std::fs::read_to_string(sidecar("term")).unwrap()).unwrap();
    assert_eq!(record.ending, clipdraw::optimize::Ending::Interrupted);
    let saved = clipdraw::batch::checkpoint::read(&ckpt("term")).unwrap().unwrap().state;
    assert_eq!(saved.iter, record.iterations_done, "the checkpoint is of the drawing written");
    assert!(saved.iter < 80);
    let index = std::fs::read_to_string(tmp.path().join("term/index.html")).unwrap();
    assert!(index.contains(&format!("interrupted at {}/80", saved.iter)), "{index}");
    let o = long_job(tmp.path(), "term", "5").wait_with_output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(std::fs::read(svg("term")).unwrap() == want, "the resumed SVG differs after SIGTERM");
}

#[test]
fn two_concurrent_shards_draw_every_job_exactly_once() {
    let tmp = tempfile::tempdir().unwrap();
    let prompts: Vec<String> = (0..6).map(|i| format!("a red star number {i}")).collect();
    write(&tmp.path().join("jobs.txt"), &prompts.join("\n"));
    let spawn = |shard: &str| {
        clipdraw()
            .current_dir(tmp.path())
            .args(batch_args("jobs.txt", "out", &["--json", "--shard", shard]))
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (a, b) = (spawn("0/2"), spawn("1/2"));
    let (a, b) = (ok(a.wait_with_output().unwrap()), ok(b.wait_with_output().unwrap()));
    let (sa, sb) = (stems(&json_lines(&a)), stems(&json_lines(&b)));
    let all: BTreeSet<String> =
        prompts.iter().map(|p| clipdraw::output::stem_from_prompt(p, 0)).collect();
    let even: BTreeSet<String> =
        prompts.iter().step_by(2).map(|p| clipdraw::output::stem_from_prompt(p, 0)).collect();
    assert_eq!(sa, even, "shard 0/2 draws jobs 0, 2, 4");
    assert!(sa.is_disjoint(&sb));
    assert_eq!(&sa | &sb, all);
    assert_eq!(json_lines(&a).len() + json_lines(&b).len(), 6, "each job once");
    // Whichever shard finished last rebuilt the gallery with every drawing.
    let m = manifest(&tmp.path().join("out"));
    assert_eq!(
        m.iter().map(|v| v["stem"].as_str().unwrap().to_string()).collect::<BTreeSet<_>>(),
        all
    );
    // No temporary files are left behind.
    let leftovers: Vec<_> = std::fs::read_dir(tmp.path().join("out"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .filter(|n| n.contains(".tmp-"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");

    // The shard can come from Slurm's array variables or a Kubernetes index.
    let o = ok(clipdraw()
        .current_dir(tmp.path())
        .args(batch_args("jobs.txt", "slurm", &["--json"]))
        .env("SLURM_ARRAY_TASK_ID", "11")
        .env("SLURM_ARRAY_TASK_MIN", "10")
        .env("SLURM_ARRAY_TASK_COUNT", "3")
        .output()
        .unwrap());
    let want: BTreeSet<String> =
        [1, 4].iter().map(|&i| clipdraw::output::stem_from_prompt(&prompts[i], 0)).collect();
    assert_eq!(stems(&json_lines(&o)), want);
    let o = ok(clipdraw()
        .current_dir(tmp.path())
        .args(batch_args("jobs.txt", "k8s", &["--json", "--shards", "6"]))
        .env("JOB_COMPLETION_INDEX", "5")
        .output()
        .unwrap());
    assert_eq!(stems(&json_lines(&o)), [clipdraw::output::stem_from_prompt(&prompts[5], 0)].into());
}

#[test]
fn gallery_rebuilds_the_same_index_from_the_sidecars() {
    let tmp = tempfile::tempdir().unwrap();
    write(&tmp.path().join("jobs.txt"), "a red star\na blue circle\n");
    ok(run_in(tmp.path(), &batch_args("jobs.txt", "out", &["--seeds", "0..3"])));
    let out = tmp.path().join("out");
    let (index, man) = (
        std::fs::read(out.join("index.html")).unwrap(),
        std::fs::read(out.join("manifest.jsonl")).unwrap(),
    );
    std::fs::remove_file(out.join("index.html")).unwrap();
    std::fs::remove_file(out.join("manifest.jsonl")).unwrap();
    let o = ok(run_in(tmp.path(), &["gallery", "out"]));
    assert_eq!(stdout(&o).trim(), "out/index.html");
    assert!(std::fs::read(out.join("index.html")).unwrap() == index, "another index");
    assert!(std::fs::read(out.join("manifest.jsonl")).unwrap() == man, "another manifest");

    // Sorted by prompt, then score, best first; every drawing linked with its thumbnail.
    let m = manifest(&out);
    assert_eq!(m.len(), 6);
    for w in m.windows(2) {
        let (p0, p1) = (w[0]["prompt"].as_str().unwrap(), w[1]["prompt"].as_str().unwrap());
        assert!(p0 < p1 || (p0 == p1 && w[0]["score"].as_f64() >= w[1]["score"].as_f64()), "{w:?}");
    }
    let html = String::from_utf8(index).unwrap();
    for v in &m {
        let stem = v["stem"].as_str().unwrap();
        assert!(
            html.contains(&format!("href=\"{stem}.svg\""))
                && html.contains(&format!("src=\"{stem}.png\"")),
            "{stem}"
        );
        assert!(html.contains(&format!("score {:.4}", v["score"].as_f64().unwrap())));
    }
    assert!(html.find("a blue circle").unwrap() < html.find("a red star").unwrap());
    assert_clean_error(&run_in(tmp.path(), &["gallery", "nope"]), "nope is not a directory");
}

#[test]
fn every_bad_batch_input_fails_cleanly_and_draws_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    write(&tmp.path().join("afile"), "");
    // (job list, extra flags, environment, expected message)
    type Case<'a> = (&'a str, Vec<&'a str>, Vec<(&'a str, &'a str)>, &'a str);
    let cases: Vec<Case> = vec![
        ("a star\n{\"prompt\": \"x\",", vec![], vec![], "jobs.txt:2: not a valid JSON object"),
        ("{\"seed\": 3}", vec![], vec![], "jobs.txt:1: the job has no \"prompt\""),
        ("{\"prompt\": \" \"}", vec![], vec![], "jobs.txt:1: the prompt is empty"),
        (
            "{\"prompt\": \"x\", \"itres\": 3}",
            vec![],
            vec![],
            "jobs.txt:1: unknown key \"itres\"; did you mean \"iters\"?",
        ),
        (
            "{\"prompt\": \"x\", \"augs\": 99999}",
            vec![],
            vec![],
            "jobs.txt:1: augmentations must be between 0 and 1024",
        ),
        ("a star\nok\na star", vec![], vec![], "jobs.txt:1 and jobs.txt:3 are the same drawing"),
        ("# only a comment\n", vec![], vec![], "has no jobs"),
        ("a star", vec!["-o", "afile/out"], vec![], "afile/out"),
        ("a star", vec!["--shard", "2/2"], vec![], "shard 2 does not exist among 2"),
        ("a star", vec!["--shard", "1of2"], vec![], "expected I/N"),
        (
            "a star",
            vec![],
            vec![("SLURM_ARRAY_TASK_ID", "three")],
            "SLURM_ARRAY_TASK_ID=\"three\" is not a whole number",
        ),
        (
            "a star",
            vec!["--batch-size", "1024", "--strokes", "2000"],
            vec![],
            "--batch-size 1024 would need about",
        ),
        ("a star", vec!["--seeds", "3..3"], vec![], "empty range"),
    ];
    for (jobs, extra, env, needle) in cases {
        let case = tempfile::tempdir_in(tmp.path()).unwrap();
        write(&case.path().join("jobs.txt"), jobs);
        std::fs::write(case.path().join("afile"), "").unwrap();
        let mut args = vec!["batch", "jobs.txt", "--iters", "1", "--augs", "1"];
        if !extra.contains(&"--strokes") {
            args.extend(["--strokes", "4"]);
        }
        if !extra.contains(&"-o") {
            args.extend(["-o", "out"]);
        }
        args.extend(&extra);
        let mut cmd = clipdraw();
        cmd.current_dir(case.path()).args(&args);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let o = cmd.output().unwrap();
        assert_clean_error(&o, needle);
        assert!(!case.path().join("out").exists(), "{needle}: an output directory was made");
    }
    // A missing job list names the file.
    assert_clean_error(&run_in(tmp.path(), &["batch", "missing.txt", "-o", "out"]), "missing.txt");
}

/// The numbers of two SVGs' paths, pairwise.
fn numbers(svg: &str) -> Vec<f64> {
    svg.lines()
        .filter(|l| l.starts_with("<path"))
        .flat_map(|l| {
            l.split(|c: char| c.is_whitespace() || c == '"')
                .filter_map(|t| t.parse::<f64>().ok())
                .collect::<Vec<_>>()
        })
        .collect()
}

#[test]
fn a_drawing_barely_depends_on_its_batch_mates() {
    // What the docs claim: batched drawings equal their batch-size-1 runs up to
    // floating-point summation order (not bit for bit), and a batch resumed as the
    // same batch is exact.
    let tmp = tempfile::tempdir().unwrap();
    write(
        &tmp.path().join("jobs.txt"),
        "a red star\na blue circle\n{\"prompt\": \"a green heart\", \"seed\": 5}\n",
    );
    let args =
        |out: &'static str, n: &'static str| batch_args("jobs.txt", out, &["--batch-size", n]);
    ok(run_in(tmp.path(), &args("b1", "1")));
    ok(run_in(tmp.path(), &args("b3", "3")));
    let mut worst = 0.0f64;
    for stem in ["a-red-star-s0", "a-blue-circle-s0", "a-green-heart-s5"] {
        let read = |d: &str| {
            std::fs::read_to_string(tmp.path().join(d).join(format!("{stem}.svg"))).unwrap()
        };
        let (a, b) = (numbers(&read("b1")), numbers(&read("b3")));
        assert_eq!(a.len(), b.len(), "{stem}");
        assert!(a.len() > 12 * 4, "{stem}: too few numbers");
        for (x, y) in a.iter().zip(&b) {
            worst = worst.max((x - y).abs());
        }
        // Each drawing is its own seed's drawing, not the batch's: the batch run of
        // job 3 (seed 5) is far from job 1's (seed 0) drawing.
    }
    eprintln!("largest difference between batch sizes 1 and 3: {worst}");
    assert!(worst <= 0.05, "batch-mates changed a drawing by {worst}");
    let red = |d: &str| {
        numbers(&std::fs::read_to_string(tmp.path().join(d).join("a-red-star-s0.svg")).unwrap())
    };
    let green =
        numbers(&std::fs::read_to_string(tmp.path().join("b3/a-green-heart-s5.svg")).unwrap());
    assert!(
        red("b3").iter().zip(&green).any(|(x, y)| (x - y).abs() > 1.0),
        "drawings of a batch are copies"
    );
}

#[test]
fn the_single_draw_takes_seeds_too() {
    let tmp = tempfile::tempdir().unwrap();
    let o = ok(run_in(
        tmp.path(),
        &["a red star", "--seeds", "3..=4", "--strokes", "6", "--iters", "2", "--augs", "1", "-q"],
    ));
    assert_eq!(stdout(&o).lines().count(), 6, "{}", stdout(&o));
    for seed in [3, 4] {
        let r = clipdraw::Record::from_svg(
            &std::fs::read_to_string(tmp.path().join(format!("a-red-star-s{seed}.svg"))).unwrap(),
        )
        .unwrap();
        assert_eq!(r.seed, seed);
    }
    assert!(!tmp.path().join("a-red-star-s5.svg").exists());
    // Every target is checked before the first drawing.
    let o = run_in(
        tmp.path(),
        &["a red star", "--seeds", "2..5", "--strokes", "6", "--iters", "2", "-q"],
    );
    assert_clean_error(&o, "a-red-star-s3.svg already exists");
    assert!(!tmp.path().join("a-red-star-s2.svg").exists());
}

#[test]
fn bars_show_on_a_terminal_and_nothing_but_a_summary_otherwise() {
    let tmp = tempfile::tempdir().unwrap();
    write(&tmp.path().join("jobs.txt"), "a red star\na blue circle\n");
    // Not a terminal: no bars, one summary line.
    let o = ok(run_in(
        tmp.path(),
        &["batch", "jobs.txt", "-o", "plain", "--strokes", "6", "--iters", "2", "--augs", "1"],
    ));
    let err = stderr(&o);
    assert_eq!(err.lines().count(), 1, "{err:?}");
    assert!(
        err.starts_with("clipdraw: note: 2 drawn, 0 already done") && !err.contains('\u{1b}'),
        "{err:?}"
    );
    assert!(stdout(&o).is_empty());

    // A terminal (tmux, on a server of its own): the overall bar and the drawing's bar.
    let bin = std::env::var("CLIPDRAW_TEST_BIN")
        .unwrap_or_else(|_| env!("CARGO_BIN_EXE_clipdraw").to_string());
    let socket = format!("clipdraw-test-{}", std::process::id());
    let tmux = |args: &[&str]| {
        std::process::Command::new("tmux").args(["-L", &socket]).args(args).output().unwrap()
    };
    let line = format!(
        "cd {} && {bin} batch jobs.txt -o term --strokes 24 --iters 400 --augs 2; sleep 60",
        tmp.path().display()
    );
    let o = tmux(&["new-session", "-d", "-x", "160", "-y", "20", &line]);
    assert!(o.status.success(), "tmux: {}", stderr(&o));
    let t0 = Instant::now();
    let mut screen = String::new();
    while t0.elapsed() < Duration::from_secs(120) {
        screen = String::from_utf8_lossy(&tmux(&["capture-pane", "-p"]).stdout).to_string();
        if screen.contains("jobs ")
            && screen.contains("0/2")
            && screen.contains("a-red-star-s0")
            && screen.contains("/400")
            && screen.contains("similarity")
        {
            break;
        }
        std::thread::sleep(Duration::from_millis(300));
    }
    let _ = tmux(&["kill-server"]);
    assert!(screen.contains("jobs ") && screen.contains("0/2"), "no overall bar:\n{screen}");
    assert!(
        screen.contains("a-red-star-s0")
            && screen.contains("/400")
            && screen.contains("similarity"),
        "no drawing bar:\n{screen}"
    );
}
