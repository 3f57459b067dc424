//! The examples build (cargo test builds them) and run as documented.

use std::path::PathBuf;
use std::process::Command;

/// target/<profile>/examples/<name>, next to this test's own deps directory.
fn example(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let profile_dir = exe.parent().and_then(|deps| deps.parent()).unwrap();
    let path = profile_dir.join("examples").join(name);
    assert!(path.is_file(), "{} is missing: cargo test builds examples", path.display());
    path
}

#[test]
fn the_draw_example_writes_an_svg_that_reads_back() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("star.svg");
    let o = Command::new(example("draw"))
        .args(["a red star on the left", out.to_str().unwrap(), "10"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert!(err.contains("step 10/10"), "{err}");
    let svg = std::fs::read_to_string(&out).unwrap();
    assert_eq!(svg.matches("<path").count(), 64);
    usvg::Tree::from_str(&svg, &usvg::Options::default()).unwrap();
    let record = clipdraw::Record::from_svg(&svg).unwrap();
    assert_eq!(record.prompt, "a red star on the left");
    assert_eq!(record.iterations_done, 10);
    assert!(String::from_utf8_lossy(&o.stdout).contains("star.svg: score"));
}
