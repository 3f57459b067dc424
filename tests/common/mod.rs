//! Shared by the integration tests: where the Python-made fixtures live.

#![allow(dead_code)]

use std::path::PathBuf;

/// The fixture directory made by scripts/make_test_fixtures.py (scripts/test.sh
/// makes it and sets CLIPDRAW_FIXTURES). A missing directory fails the test loudly.
pub fn fixtures() -> PathBuf {
    let dir = std::env::var_os("CLIPDRAW_FIXTURES").map(PathBuf::from).unwrap_or_else(|| {
        panic!("CLIPDRAW_FIXTURES is not set: run the test suite with scripts/test.sh")
    });
    assert!(
        dir.join("tiny.pt").is_file(),
        "{} has no tiny.pt; rerun scripts/test.sh",
        dir.display()
    );
    dir
}

pub fn fixture(name: &str) -> PathBuf {
    fixtures().join(name)
}

/// The `clipdraw` binary built for this test run (`CLIPDRAW_TEST_BIN` names a copy
/// of it instead, for when a target directory is shared between checkouts and
/// another build may replace the binary while the tests run).
pub fn clipdraw() -> std::process::Command {
    let bin = std::env::var_os("CLIPDRAW_TEST_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_clipdraw")));
    let mut c = std::process::Command::new(bin);
    c.env_remove("CLIPDRAW_MODEL");
    c
}

/// A 224 px background of four flat quadrants (red, green, blue, yellow), so that
/// resampling cannot blur it far from their borders.
pub fn quadrants() -> image::RgbImage {
    image::RgbImage::from_fn(224, 224, |x, y| match (x < 112, y < 112) {
        (true, true) => image::Rgb([200, 30, 30]),
        (false, true) => image::Rgb([30, 160, 60]),
        (true, false) => image::Rgb([20, 40, 220]),
        (false, false) => image::Rgb([240, 220, 40]),
    })
}
