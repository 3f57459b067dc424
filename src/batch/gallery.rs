//! `DIR/index.html` and `DIR/manifest.jsonl`, rebuilt from the JSON sidecars (the
//! source of truth) and nothing else, so that any process can rebuild them at any
//! time and get the same files. Rebuilds hold a lock on `DIR/.clipdraw.lock`: the
//! last shard to finish rebuilds after every other shard's sidecars are written.

use std::path::Path;

use anyhow::{anyhow, Context, Result};

use crate::optimize::Ending;
use crate::output::write_atomic;
use crate::record::Record;

/// One drawing found in the directory.
pub struct Entry {
    pub stem: String,
    pub record: Record,
}

/// Every clipdraw sidecar in `dir` (other JSON files are not drawings and are
/// skipped), sorted by prompt, then score (best first), then stem.
pub fn entries(dir: &Path) -> Result<Vec<Entry>> {
    let mut out = Vec::new();
    let list = std::fs::read_dir(dir)
        .map_err(|e| anyhow!("cannot read the directory {}: {e}", dir.display()))?;
    for item in list {
        let path = item?.path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if name.starts_with('.') || path.extension().and_then(|e| e.to_str()) != Some("json") {
            continue;
        }
        let Ok(text) = std::fs::read_to_string(&path) else { continue };
        let Ok(record) = Record::from_json(&text) else { continue };
        let stem = name.trim_end_matches(".json").to_string();
        out.push(Entry { stem, record });
    }
    out.sort_by(|a, b| {
        let score = |e: &Entry| {
            if e.record.final_score.is_nan() {
                f64::NEG_INFINITY
            } else {
                e.record.final_score
            }
        };
        a.record
            .prompt
            .cmp(&b.record.prompt)
            .then(score(b).total_cmp(&score(a)))
            .then(a.stem.cmp(&b.stem))
    });
    Ok(out)
}

/// Rebuilds `index.html` and `manifest.jsonl` in `dir`; returns how many drawings
/// they list.
pub fn rebuild(dir: &Path) -> Result<usize> {
    let lock_path = dir.join(".clipdraw.lock");
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .with_context(|| format!("cannot open {}", lock_path.display()))?;
    lock.lock().with_context(|| format!("cannot lock {}", lock_path.display()))?;
    let entries = entries(dir)?;
    write_atomic(&dir.join("manifest.jsonl"), manifest(&entries)?.as_bytes(), true)?;
    write_atomic(&dir.join("index.html"), html(&entries).as_bytes(), true)?;
    Ok(entries.len())
}

fn has_svg(r: &Record) -> bool {
    r.strokes.is_some()
}

/// One JSON line per drawing, in gallery order; paths relative to the directory.
pub fn manifest(entries: &[Entry]) -> Result<String> {
    let mut out = String::new();
    for e in entries {
        let r = &e.record;
        let line = serde_json::json!({
            "stem": e.stem, "prompt": r.prompt, "seed": r.seed, "score": r.final_score,
            "ending": r.ending, "iterations_done": r.iterations_done, "iters": r.settings.iters,
            "fingerprint": r.fingerprint,
            "svg": has_svg(r).then(|| format!("{}.svg", e.stem)),
            "png": format!("{}.png", e.stem), "json": format!("{}.json", e.stem),
        });
        out.push_str(&serde_json::to_string(&line)?);
        out.push('\n');
    }
    Ok(out)
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// A file name as a relative URL: everything but unreserved ASCII percent-encoded,
/// so that stems with spaces, `#` or non-ASCII letters still link from disk.
fn href(name: &str) -> String {
    name.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// A plain HTML page that opens from disk: a grid of thumbnails (the PNGs), each
/// with prompt, seed and score, linking to the SVG (the PNG for pixel drawings).
pub fn html(entries: &[Entry]) -> String {
    let mut cards = String::new();
    for e in entries {
        let r = &e.record;
        let png = href(&format!("{}.png", e.stem));
        let target = if has_svg(r) { href(&format!("{}.svg", e.stem)) } else { png.clone() };
        let score = if r.final_score.is_nan() {
            "–".to_string()
        } else {
            format!("{:.4}", r.final_score)
        };
        let state = match r.ending {
            Ending::Finished => String::new(),
            Ending::Interrupted => {
                format!(" · interrupted at {}/{}", r.iterations_done, r.settings.iters)
            }
            Ending::NonFinite => format!(" · diverged at {}", r.iterations_done + 1),
            Ending::TimeLimit => format!(" · time limit at {}", r.iterations_done),
            Ending::OutOfMemory => format!(" · out of memory at {}", r.iterations_done + 1),
        };
        cards.push_str(&format!(
            "<figure><a href=\"{target}\"><img src=\"{png}\" width=\"192\" height=\"192\" alt=\"{alt}\"></a>\
             <figcaption><b>{prompt}</b><br>seed {seed} · score {score}{state}</figcaption></figure>\n",
            alt = esc(&r.prompt),
            prompt = esc(&r.prompt),
            seed = r.seed,
        ));
    }
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>clipdraw: {n} drawings</title>\n\
         <style>body{{font-family:sans-serif;margin:1em}}main{{display:flex;flex-wrap:wrap;gap:12px}}\
         figure{{margin:0;width:192px}}img{{border:1px solid #ccc;background:#fff}}\
         figcaption{{font-size:13px;overflow-wrap:anywhere}}</style></head>\n\
         <body><h1>{n} drawings</h1>\n<main>\n{cards}</main></body></html>\n",
        n = entries.len()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_are_escaped_for_disk() {
        assert_eq!(href("a b#c-s0.svg"), "a%20b%23c-s0.svg");
        assert_eq!(href("自-s1.png"), "%E8%87%AA-s1.png");
        assert_eq!(esc("<a & \"b\">"), "&lt;a &amp; &quot;b&quot;&gt;");
    }
}
