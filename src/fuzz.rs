//! The bodies of the fuzz targets (`fuzz/fuzz_targets/*.rs`, cargo-fuzz): one per
//! parser that takes outside input. `tests/fuzz_corpus.rs` replays every committed
//! corpus input through the same functions on the stable toolchain.
//!
//! Each takes any bytes, and panics only where a guarantee is broken: a parser
//! may refuse the input with an error, but never panic, and what it accepts must be
//! sound (ids in range, finite coordinates, a record that reads back the same).

use std::path::Path;
use std::sync::OnceLock;

use tch::Device;

use crate::background::{self, Background};
use crate::batch::jobs::{self, Defaults};
use crate::record::Record;
use crate::scene::Canvas;
use crate::tokenizer::Tokenizer;

/// The targets by name, as `fuzz/fuzz_targets/NAME.rs` and `fuzz/corpus/NAME/`.
pub const TARGETS: &[(&str, fn(&[u8]))] = &[
    ("svg", svg),
    ("image", image),
    ("tokenizer", tokenizer),
    ("jobs", jobs),
    ("record", record),
    ("model_metadata", model_metadata),
    ("checkpoint", checkpoint),
];

/// SVG import as `--init`, `render`, `score` and `--background` read it.
pub fn svg(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(scene) = crate::svg::from_svg(text, Device::Cpu) {
        let strokes = scene.strokes().expect("an imported scene gives back its strokes");
        assert!(!strokes.is_empty(), "an imported scene has strokes");
        for st in &strokes {
            assert!(st.points.iter().flatten().all(|v| v.is_finite()), "non-finite point");
        }
    }
    // `score`'s image path (rendered at the document's size: only small documents
    // here, for speed; tests/hostile.rs covers the size limit), and a background at
    // a small canvas.
    let small = crate::svg::parse_tree(text)
        .is_ok_and(|t| t.size().width().max(t.size().height()) <= 256.0);
    if small {
        let _ = crate::output::image_from_bytes(data, Path::new("fuzz.svg"), true);
    }
    let canvas = Canvas::new(32, 24).expect("a valid canvas");
    let _ = Background::from_bytes(
        Path::new("fuzz.svg"),
        data.to_vec(),
        background::Format::Svg,
        canvas,
    );
}

/// PNG and JPEG decoding as `score` and `--background` read them.
pub fn image(data: &[u8]) {
    if let Ok(img) = crate::output::decode_image(data) {
        let (w, h) = img.dimensions();
        assert!(w.max(h) <= crate::request::MAX_IMAGE_PX, "an oversized image was decoded");
    }
    let _ = crate::output::image_from_bytes(data, Path::new("fuzz.png"), false);
    if let Some(format) = background::sniff(data) {
        let canvas = Canvas::new(32, 24).expect("a valid canvas");
        if let Ok(bg) = Background::from_bytes(Path::new("fuzz"), data.to_vec(), format, canvas) {
            assert_eq!(bg.rgb.len(), 32 * 24 * 3, "a background fills its canvas");
        }
    }
}

fn clip_tokenizer() -> &'static Tokenizer {
    static TOKENIZER: OnceLock<Tokenizer> = OnceLock::new();
    TOKENIZER.get_or_init(|| Tokenizer::clip().expect("the built-in merges load"))
}

/// The tokenizer: any text gives ids in range, framed by the start and end tokens.
pub fn tokenizer(data: &[u8]) {
    let tok = clip_tokenizer();
    let text = String::from_utf8_lossy(data);
    let vocab = tok.vocab_size() as i64;
    let ids = tok.encode(&text);
    assert!(ids.iter().all(|&i| (0..vocab).contains(&i)), "an id out of range");
    let t = tok.tokenize(&text, 77);
    assert_eq!(t.ids.len(), 77, "the context is padded to its length");
    assert_eq!(t.ids[0], vocab - 2, "the start token comes first");
    assert!(t.ids.contains(&(vocab - 1)), "the end token is present");
    assert!(tok.decode(&ids).is_ok(), "encoded ids decode");
}

/// Job lists, as text (one prompt a line) and as JSON lines.
pub fn jobs(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let defaults = Defaults::default();
    for label in ["fuzz.txt", "fuzz.jsonl"] {
        if let Ok(jobs) = jobs::parse(label, text, &defaults) {
            assert!(jobs.len() <= jobs::MAX_JOBS, "a job list keeps to its limit");
            let free = crate::request::available_memory();
            for j in &jobs {
                assert!(j.request.check_within(free).is_ok(), "an accepted job is a valid request");
            }
        }
    }
}

/// A clipdraw record, in an SVG's metadata and as a JSON sidecar; what is read
/// writes back and reads again the same.
pub fn record(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    for r in [Record::from_json(text), Record::from_svg(text)].into_iter().flatten() {
        let json = r.to_json().expect("a record read is written");
        let again = Record::from_json(&json).expect("a record written reads back");
        assert_eq!(again.to_json().expect("written again"), json, "the record changed");
    }
}

/// A model file's metadata JSON.
pub fn model_metadata(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(info) = crate::model::parse_info(text) {
        assert!(info.image_size > 0 && info.embed_dim > 0, "accepted sizes are positive");
    }
}

/// A batch checkpoint file.
pub fn checkpoint(data: &[u8]) {
    let _ = crate::batch::checkpoint::parse(data);
}
