//! `clipdraw --version`: what the user is running. Fast: it reads the built-in
//! model's metadata without loading the model, and finds libtorch in this process's
//! own memory map rather than asking it to initialise.

use std::path::{Path, PathBuf};

/// The libtorch directory this process loaded `libtorch_cpu.so` from (Linux), or
/// the one the binary was linked against when the map cannot be read.
fn libtorch_dir() -> (Option<PathBuf>, &'static str) {
    let loaded = std::fs::read_to_string("/proc/self/maps").ok().and_then(|maps| {
        maps.lines()
            .filter_map(|l| l.split_whitespace().nth(5))
            .find(|p| Path::new(p).file_name().is_some_and(|n| n == "libtorch_cpu.so"))
            .and_then(|p| Path::new(p).parent().map(Path::to_path_buf))
    });
    match (loaded, option_env!("CLIPDRAW_LIBTORCH_LIB")) {
        (Some(dir), _) => (Some(dir), "loaded from"),
        (None, Some(dir)) => (Some(PathBuf::from(dir)), "linked against"),
        (None, None) => (None, ""),
    }
}

/// libtorch's version from the `torch/version.py` beside its `lib` directory (the
/// PyPI wheel's layout), if it is there.
fn libtorch_version(lib_dir: &Path) -> Option<String> {
    let text = std::fs::read_to_string(lib_dir.parent()?.join("version.py")).ok()?;
    let line = text.lines().find(|l| l.starts_with("__version__"))?;
    Some(line.split(['\'', '"']).nth(1)?.to_string())
}

/// The text after `clipdraw ` that `--version` prints: the version, then one line
/// each for libtorch, CUDA and the built-in model.
pub fn long_version() -> String {
    let mut out = env!("CARGO_PKG_VERSION").to_string();
    let (dir, how) = libtorch_dir();
    out.push_str(&match &dir {
        Some(d) => {
            let v = libtorch_version(d).unwrap_or_else(|| "(version unknown)".into());
            format!("\nlibtorch {v}, {how} {}", d.display())
        }
        None => "\nlibtorch: location unknown".to_string(),
    });
    out.push_str(&match tch::Cuda::device_count() {
        0 => "\nCUDA: not available (running on the CPU)".to_string(),
        1 => "\nCUDA: available, 1 device".to_string(),
        n => format!("\nCUDA: available, {n} devices"),
    });
    out.push_str(&match clipdraw::model::builtin_info() {
        Ok((info, bytes)) => format!(
            "\nbuilt-in model: {}, {:.1} MB ({} px input, {}-d embeddings)",
            info.architecture,
            bytes as f64 / 1e6,
            info.image_size,
            info.embed_dim
        ),
        Err(e) => format!("\nbuilt-in model: unreadable ({e})"),
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_version_names_libtorch_cuda_and_the_model() {
        let v = long_version();
        let lines: Vec<&str> = v.lines().collect();
        assert_eq!(lines.len(), 4, "{v}");
        assert_eq!(lines[0], env!("CARGO_PKG_VERSION"));
        // This test process links libtorch like the binary, so the map names it.
        assert!(
            lines[1].starts_with("libtorch 2.11.0") && lines[1].contains("loaded from /"),
            "{v}"
        );
        assert!(lines[2].starts_with("CUDA: "), "{v}");
        assert!(lines[3].starts_with("built-in model: clipdraw-tiny"), "{v}");
    }
}
