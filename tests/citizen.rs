//! clipdraw as a command-line citizen: installed on PATH with its man page and
//! completions (and removed again without a trace), an honest --version, log levels
//! and colour that follow the flags, NO_COLOR and the terminal.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_clipdraw");

fn install_script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scripts/install.sh")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).to_string()
}

fn ok(o: &Output) -> String {
    assert!(o.status.success(), "status {:?}: {}{}", o.status, text(&o.stdout), text(&o.stderr));
    text(&o.stdout)
}

/// Every path under `root` with its kind, sorted: what "as it was" means.
fn listing(root: &Path) -> Vec<String> {
    fn walk(dir: &Path, root: &Path, out: &mut Vec<String>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            let rel = p.strip_prefix(root).unwrap().display().to_string();
            if p.is_dir() {
                out.push(format!("{rel}/"));
                walk(&p, root, out);
            } else {
                out.push(format!("{rel} {}", std::fs::read(&p).unwrap().len()));
            }
        }
    }
    let mut out = Vec::new();
    walk(root, root, &mut out);
    out.sort();
    out
}

/// The installed command, run from `cwd` with nothing in its environment but PATH.
fn installed(prefix: &Path, cwd: &Path, args: &[&str]) -> Output {
    Command::new("clipdraw")
        .env_clear()
        .env("PATH", format!("{}/bin:/usr/bin:/bin", prefix.display()))
        .current_dir(cwd)
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn install_use_and_uninstall_leave_the_prefix_as_it_was() {
    let prefix = tempfile::tempdir().unwrap();
    let p = prefix.path();
    // Things that were there before and must survive.
    std::fs::create_dir_all(p.join("bin")).unwrap();
    std::fs::write(p.join("bin/other-tool"), b"#!/bin/sh\n").unwrap();
    std::fs::create_dir_all(p.join("share/man/man1")).unwrap();
    let before = listing(p);

    let install =
        || Command::new(install_script()).arg(p).env("CLIPDRAW_BIN", BIN).output().unwrap();
    let o = install();
    ok(&o);
    assert!(text(&o.stderr).contains("share/bash-completion/completions/clipdraw"));

    let elsewhere = tempfile::tempdir().unwrap();
    let version = ok(&installed(p, elsewhere.path(), &["--version"]));
    let lines: Vec<&str> = version.lines().collect();
    assert_eq!(lines[0], format!("clipdraw {}", env!("CARGO_PKG_VERSION")), "{version}");
    assert!(lines[1].starts_with("libtorch 2.11.0") && lines[1].contains("loaded from"));
    assert!(lines[2].starts_with("CUDA: ") && lines[3].starts_with("built-in model: "));

    // A small drawing with the built-in model, in another directory.
    let printed = ok(&installed(
        p,
        elsewhere.path(),
        &["a red star", "--strokes", "8", "--iters", "2", "--augs", "1", "-q"],
    ));
    assert_eq!(printed.lines().count(), 3, "{printed}");
    assert!(elsewhere.path().join("a-red-star-s0.svg").is_file());

    // The man page renders with man itself.
    let man = Command::new("man")
        .args(["-l", p.join("share/man/man1/clipdraw.1").to_str().unwrap()])
        .env("MANPAGER", "cat")
        .env("MANWIDTH", "80")
        .output()
        .unwrap();
    let page = ok(&man);
    assert!(page.contains("clipdraw") && page.contains("--strokes") && page.contains("SYNOPSIS"));

    // bash registers the completion from the generated script.
    let bash = Command::new("bash")
        .args(["-c", "source <(clipdraw completions bash) && complete -p clipdraw"])
        .env("PATH", format!("{}/bin:/usr/bin:/bin", p.display()))
        .output()
        .unwrap();
    assert!(ok(&bash).contains("-F _clipdraw clipdraw"));
    for shell in ["zsh", "fish"] {
        assert!(!ok(&installed(p, elsewhere.path(), &["completions", shell])).is_empty());
    }

    // Re-installing replaces, and uninstalling removes exactly what was added.
    ok(&install());
    let o = Command::new(install_script()).args(["--uninstall"]).arg(p).output().unwrap();
    ok(&o);
    assert_eq!(listing(p), before);
    let again = Command::new(install_script()).args(["--uninstall"]).arg(p).output().unwrap();
    assert_eq!(again.status.code(), Some(2), "{}", text(&again.stderr));
}

/// `clipdraw ARGS` in a pseudo-terminal (util-linux `script`), so that stderr is
/// a terminal; returns everything it wrote.
fn in_a_terminal(args: &str, env: &[(&str, &str)]) -> String {
    let mut c = Command::new("script");
    c.args(["-qec", &format!("{BIN} {args}"), "/dev/null"]).env_remove("NO_COLOR");
    for (k, v) in env {
        c.env(k, v);
    }
    text(&c.output().unwrap().stdout)
}

#[test]
fn colour_follows_the_terminal_no_color_and_the_flag() {
    let long = "cat ".repeat(100);
    let tok = format!("tokenize '{long}'");
    // On a terminal the warning label is coloured ...
    let tty = in_a_terminal(&tok, &[("TERM", "xterm")]);
    assert!(tty.contains("warning") && tty.contains("\x1b["), "{tty:?}");
    // ... but not with NO_COLOR, nor with --color never.
    let no_color = in_a_terminal(&tok, &[("TERM", "xterm"), ("NO_COLOR", "1")]);
    assert!(no_color.contains("warning") && !no_color.contains('\x1b'), "{no_color:?}");
    let never = in_a_terminal(&format!("{tok} --color never"), &[("TERM", "xterm")]);
    assert!(never.contains("warning") && !never.contains('\x1b'), "{never:?}");
    // Into a pipe: plain by default, coloured when asked.
    let piped = Command::new(BIN).args(["tokenize", &long]).output().unwrap();
    assert!(!text(&piped.stderr).contains('\x1b'));
    let always = Command::new(BIN).args(["tokenize", &long, "--color", "always"]).output().unwrap();
    assert!(text(&always.stderr).contains("\x1b[1;33mwarning:"), "{}", text(&always.stderr));
    // Errors from clap follow --color too.
    let e = Command::new(BIN).args(["x", "--strokess", "1", "--color=always"]).output().unwrap();
    assert!(text(&e.stderr).starts_with("clipdraw: \x1b[1;31merror:"), "{}", text(&e.stderr));
}

#[test]
fn levels_say_less_with_q_and_more_with_v() {
    let dir = tempfile::tempdir().unwrap();
    let draw = |extra: &[&str]| {
        let mut args =
            vec!["a red star", "--strokes", "6", "--iters", "3", "--augs", "1", "--force"];
        args.extend(extra);
        let o = Command::new(BIN).current_dir(dir.path()).args(&args).output().unwrap();
        ok(&o);
        text(&o.stderr)
    };
    let normal = draw(&[]);
    assert!(normal.contains("note: no CUDA device") || tch::Cuda::device_count() > 0, "{normal}");
    assert!(!normal.contains("settings"), "{normal}");
    let quiet = draw(&["-q"]);
    assert!(quiet.is_empty(), "{quiet}");
    let verbose = draw(&["-v"]);
    assert!(verbose.contains("settings {\"iters\":3,\"augs\":1"), "{verbose}");
    assert!(verbose.contains("model built-in (clipdraw-tiny") && verbose.contains("per iteration"));
    assert!(!verbose.contains("iteration 2/3"), "{verbose}");
    let debug = draw(&["-vv"]);
    for k in 1..=3 {
        assert!(debug.contains(&format!("iteration {k}/3: similarity")), "{debug}");
    }
}
