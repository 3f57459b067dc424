//! The record of a drawing: what was asked, with which model, how it ended and what
//! it scored. It is written into the SVG's `<metadata>` (as JSON) and as the JSON
//! sidecar, and read back from either, so a drawing can be re-run, continued or
//! skipped by a batch.
//!
//! The SVG carries the record without the run's device, timings and output paths:
//! those differ between runs of the same drawing, and the same seed on the CPU must
//! give a byte-identical SVG. The sidecar carries everything.

use std::path::PathBuf;

use anyhow::{anyhow, bail, Result};
use serde::{Deserialize, Deserializer, Serialize};

use crate::optimize::{Ending, Timings};
use crate::request::{Representation, Settings};

/// What `tool` says in every record clipdraw writes.
pub const TOOL: &str = "clipdraw";

/// Which model made a drawing.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ModelRecord {
    /// The model's architecture name (its metadata), e.g. `ViT-B-32`.
    pub architecture: String,
    /// Its pretrained tag; `None` for random-init or self-trained models.
    pub pretrained: Option<String>,
    /// The model file's name, or `built-in`.
    pub file: String,
}

/// A file a drawing came from: its path as given and the SHA-256 of its bytes, so
/// a chain of continuations can be traced and checked.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileRef {
    pub path: String,
    /// Lower-case hex.
    pub sha256: String,
}

impl FileRef {
    /// `path` with the digest of `bytes` (its contents).
    pub fn of(path: &std::path::Path, bytes: &[u8]) -> FileRef {
        use sha2::Digest;
        let digest = sha2::Sha256::digest(bytes);
        let sha256 = digest.iter().map(|b| format!("{b:02x}")).collect();
        FileRef { path: path.display().to_string(), sha256 }
    }
}

/// How long a run took: the whole drawing, and per iteration by part.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunTimings {
    pub wall_s: f64,
    pub per_iteration: Timings,
}

/// The record of one drawing.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// Always [`TOOL`].
    pub tool: String,
    /// The clipdraw version that made the drawing.
    pub version: String,
    pub prompt: String,
    pub negative_prompts: Vec<String>,
    pub seed: u64,
    pub representation: Representation,
    /// Strokes in the drawing; `None` for the pixel representation.
    pub strokes: Option<i64>,
    pub settings: Settings,
    pub model: ModelRecord,
    pub iterations_done: u32,
    pub ending: Ending,
    pub interrupted: bool,
    /// Mean cosine similarity to the prompt over `final_score_augmentations`
    /// augmentations of the final drawing (NaN, written as null, if unknown).
    #[serde(deserialize_with = "nan_if_null")]
    pub final_score: f64,
    pub final_score_augmentations: u32,
    /// What identifies the job that made the drawing (`clipdraw batch`): a hash of
    /// prompt, negatives, representation, strokes, settings, seed and model, so a
    /// rerun recognises finished work. `None` for single drawings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fingerprint: Option<String>,
    /// The libtorch device, e.g. `Cpu` or `Cuda(0)` (sidecar only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device: Option<String>,
    /// Sidecar only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timings: Option<RunTimings>,
    /// The files written for this drawing (sidecar only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outputs: Option<Vec<PathBuf>>,
    /// The drawing this one started from (`--init`, `continue`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<FileRef>,
    /// The first this many strokes were frozen: exactly the parent's.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub frozen_strokes: i64,
    /// The picture under the strokes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub background: Option<FileRef>,
    /// The time limit asked for, in seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_limit_s: Option<f64>,
}

fn is_zero(v: &i64) -> bool {
    *v == 0
}

fn nan_if_null<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    Ok(Option::<f64>::deserialize(d)?.unwrap_or(f64::NAN))
}

impl Record {
    /// The part of the record that is the same for every run of the same drawing:
    /// without device, timings and outputs (what the SVG carries).
    pub fn portable(&self) -> Record {
        Record { device: None, timings: None, outputs: None, ..self.clone() }
    }

    /// The record as one line of JSON.
    pub fn to_json(&self) -> Result<String> {
        Ok(serde_json::to_string(self)?)
    }

    /// Reads a record from JSON text (a sidecar, or an SVG's metadata).
    pub fn from_json(text: &str) -> Result<Record> {
        let record: Record =
            serde_json::from_str(text).map_err(|e| anyhow!("not a clipdraw record: {e}"))?;
        if record.tool != TOOL {
            bail!("not a clipdraw record: its tool is {:?}", record.tool);
        }
        Ok(record)
    }

    /// Reads the record back from a clipdraw SVG's `<metadata>` element.
    pub fn from_svg(svg: &str) -> Result<Record> {
        let doc = crate::svg::parse_xml(svg)?;
        let mut last_err = None;
        for node in doc.descendants().filter(|n| n.has_tag_name("metadata")) {
            let text: String = node
                .children()
                .filter(|c| c.is_text())
                .filter_map(|c| c.text())
                .collect::<String>();
            let text = text.trim();
            if !text.starts_with('{') {
                continue;
            }
            match Record::from_json(text) {
                Ok(r) => return Ok(r),
                Err(e) => last_err = Some(e),
            }
        }
        Err(last_err.unwrap_or_else(|| anyhow!("the SVG has no clipdraw record in its <metadata>")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn example() -> Record {
        Record {
            tool: TOOL.into(),
            version: "0.1.0".into(),
            prompt: "a cat & a <dog>".into(),
            negative_prompts: vec!["blurry".into()],
            seed: 7,
            representation: Representation::Strokes,
            strokes: Some(16),
            settings: Settings { seed: 7, ..Settings::default() },
            model: ModelRecord {
                architecture: "x".into(),
                pretrained: None,
                file: "built-in".into(),
            },
            iterations_done: 250,
            ending: Ending::Finished,
            interrupted: false,
            final_score: 0.5,
            final_score_augmentations: 32,
            fingerprint: Some("fnv1a64:0123456789abcdef".into()),
            device: Some("Cpu".into()),
            timings: Some(RunTimings { wall_s: 1.0, per_iteration: Timings::default() }),
            outputs: Some(vec!["a.svg".into()]),
            parent: None,
            frozen_strokes: 0,
            background: None,
            time_limit_s: None,
        }
    }

    #[test]
    fn numbers_read_back_exactly_however_many_digits_they_have() {
        // Found by fuzzing (fuzz/corpus/record/crash-float-roundtrip.json): without
        // serde_json's float_roundtrip, 17 digits read as a neighbouring double.
        let mut r = example();
        r.final_score = 1.0497924536466599;
        let text = r.to_json().unwrap().replace("1.0497924536466599", "1.04979245364665985");
        let back = Record::from_json(&text).unwrap();
        assert_eq!(back.final_score.to_bits(), 1.04979245364665985f64.to_bits());
        assert_eq!(Record::from_json(&back.to_json().unwrap()).unwrap(), back);
    }

    #[test]
    fn json_round_trip_keeps_everything() {
        let r = example();
        assert_eq!(Record::from_json(&r.to_json().unwrap()).unwrap(), r);
        let p = r.portable();
        assert!(p.device.is_none() && p.timings.is_none() && p.outputs.is_none());
        let text = p.to_json().unwrap();
        assert!(!text.contains("timings") && !text.contains("outputs"), "{text}");
        assert_eq!(Record::from_json(&text).unwrap(), p);
    }

    #[test]
    fn file_refs_carry_the_sha256_of_the_bytes() {
        // FIPS 180-2's test vector for "abc".
        let f = FileRef::of(std::path::Path::new("a/b.svg"), b"abc");
        assert_eq!(f.sha256, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
        assert_eq!(f.path, "a/b.svg");
        let mut r = example();
        r.parent = Some(f);
        r.frozen_strokes = 3;
        assert_eq!(Record::from_json(&r.to_json().unwrap()).unwrap(), r);
        // Records without the new fields still read.
        assert!(!example().to_json().unwrap().contains("parent"));
    }

    #[test]
    fn a_null_score_reads_as_nan() {
        let mut r = example();
        r.final_score = f64::NAN;
        let text = r.to_json().unwrap();
        assert!(text.contains("\"final_score\":null"), "{text}");
        assert!(Record::from_json(&text).unwrap().final_score.is_nan());
    }

    #[test]
    fn foreign_json_and_svgs_without_records_are_refused() {
        let e = Record::from_json(r#"{"tool": "other"}"#).unwrap_err().to_string();
        assert!(e.contains("not a clipdraw record"), "{e}");
        let mut v = serde_json::to_value(example()).unwrap();
        v["tool"] = "inkscape".into();
        let e = Record::from_json(&v.to_string()).unwrap_err().to_string();
        assert!(e.contains("\"inkscape\""), "{e}");
        let svg = r#"<svg xmlns="http://www.w3.org/2000/svg"><metadata>hello</metadata></svg>"#;
        let e = Record::from_svg(svg).unwrap_err().to_string();
        assert!(e.contains("no clipdraw record"), "{e}");
        assert!(Record::from_svg("<svg").unwrap_err().to_string().contains("not a readable"));
    }
}
