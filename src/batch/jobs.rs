//! Job lists: a text file (one prompt per line), JSONL (one object per line, the
//! keys named like the draw flags) or stdin, turned into checked jobs with stable,
//! unique, readable output stems. Every line is checked before any drawing starts;
//! errors name the file and line.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;

use anyhow::{anyhow, bail, Result};
use serde_json::Value;

use crate::request::{self, DrawRequest, Representation, Settings};

/// One drawing of a batch.
#[derive(Debug)]
pub struct Job {
    /// Where it came from, for messages: `jobs.jsonl:3`.
    pub origin: String,
    pub request: DrawRequest,
    /// The output stem in the batch's directory: `DIR/STEM.svg`, `.png`, `.json`.
    pub stem: String,
    /// Whether the stem's first part was given (`name`) rather than made from the prompt.
    named: bool,
}

/// What every job starts from: the flags of `clipdraw batch`.
#[derive(Debug, Clone)]
pub struct Defaults {
    pub negatives: Vec<String>,
    pub representation: Representation,
    pub strokes: i64,
    pub settings: Settings,
    /// `--seeds`: each job without its own `seed`/`seeds` becomes one job per seed.
    pub seeds: Option<Vec<u64>>,
}

impl Default for Defaults {
    fn default() -> Self {
        let r = DrawRequest::new("x");
        Self {
            negatives: r.negatives,
            representation: r.representation,
            strokes: r.strokes,
            settings: r.settings,
            seeds: None,
        }
    }
}

/// The keys a JSONL job may have: the draw flags' names (`_` may stand for `-`),
/// plus `prompt`, `name` and `negatives`.
pub const KEYS: &[&str] = &[
    "prompt",
    "name",
    "seed",
    "seeds",
    "negative",
    "negatives",
    "negative-weight",
    "strokes",
    "representation",
    "iters",
    "augs",
    "max-width",
    "lr-points",
    "lr-width",
    "lr-color",
];

/// The most jobs one job list may come to, after `seeds` ranges are expanded.
pub const MAX_JOBS: usize = 100_000;

/// Reads and checks the job list at `path` (`-` is stdin) with `defaults`.
pub fn load(path: &Path, defaults: &Defaults) -> Result<Vec<Job>> {
    let (label, text) = if path.as_os_str() == "-" {
        let mut s = String::new();
        std::io::stdin()
            .read_to_string(&mut s)
            .map_err(|e| anyhow!("cannot read the job list from stdin: {e}"))?;
        ("stdin".to_string(), s)
    } else {
        let s = std::fs::read_to_string(path)
            .map_err(|e| anyhow!("cannot read the job list {}: {e}", path.display()))?;
        (path.display().to_string(), s)
    };
    parse(&label, &text, defaults)
}

/// Parses a job list's text; `label` names it in messages.
pub fn parse(label: &str, text: &str, defaults: &Defaults) -> Result<Vec<Job>> {
    let mut jobs = Vec::new();
    let free = request::available_memory();
    for (i, line) in text.lines().enumerate() {
        let origin = format!("{label}:{}", i + 1);
        let trimmed = line.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let expanded = if trimmed.starts_with('{') {
            json_job(trimmed, defaults, free)
        } else {
            text_job(trimmed, defaults)
        };
        let expanded = expanded.map_err(|e| anyhow!("{origin}: {e}"))?;
        if jobs.len() + expanded.len() > MAX_JOBS {
            bail!("{origin}: the job list {label} comes to more than {MAX_JOBS} jobs; split it");
        }
        for (request, name) in expanded {
            request.check_within(free).map_err(|e| anyhow!("{origin}: {e}"))?;
            let stem = match &name {
                Some(n) => format!("{n}-s{}", request.settings.seed),
                None => crate::output::stem_from_prompt(&request.prompt, request.settings.seed),
            };
            jobs.push(Job { origin: origin.clone(), request, stem, named: name.is_some() });
        }
    }
    if jobs.is_empty() {
        bail!("the job list {label} has no jobs (one prompt per line, or JSONL objects)");
    }
    disambiguate(&mut jobs)?;
    Ok(jobs)
}

fn base(prompt: &str, defaults: &Defaults) -> DrawRequest {
    DrawRequest {
        prompt: prompt.to_string(),
        negatives: defaults.negatives.clone(),
        representation: defaults.representation,
        strokes: defaults.strokes,
        settings: defaults.settings.clone(),
        ..DrawRequest::new("")
    }
}

/// The request for `seed` of a job.
fn with_seed(r: &DrawRequest, seed: u64) -> DrawRequest {
    DrawRequest {
        prompt: r.prompt.clone(),
        negatives: r.negatives.clone(),
        representation: r.representation,
        strokes: r.strokes,
        settings: Settings { seed, ..r.settings.clone() },
        ..DrawRequest::new("")
    }
}

fn expand(r: DrawRequest, seeds: Option<&[u64]>) -> Vec<DrawRequest> {
    match seeds {
        Some(seeds) => seeds.iter().map(|&s| with_seed(&r, s)).collect(),
        None => vec![r],
    }
}

fn text_job(prompt: &str, defaults: &Defaults) -> Result<Vec<(DrawRequest, Option<String>)>> {
    request::check_prompt(prompt)?;
    let r = base(prompt, defaults);
    Ok(expand(r, defaults.seeds.as_deref()).into_iter().map(|r| (r, None)).collect())
}

fn json_job(
    line: &str,
    defaults: &Defaults,
    free: Option<u64>,
) -> Result<Vec<(DrawRequest, Option<String>)>> {
    let value: Value =
        serde_json::from_str(line).map_err(|e| anyhow!("not a valid JSON object: {e}"))?;
    let Value::Object(map) = value else { bail!("expected a JSON object") };
    let mut fields = BTreeMap::new();
    for (key, v) in map {
        let norm = key.replace('_', "-");
        if !KEYS.contains(&norm.as_str()) {
            bail!("unknown key {key:?}; did you mean {:?}?", nearest(&norm, KEYS));
        }
        if fields.insert(norm.clone(), v).is_some() {
            bail!("the key {norm:?} is given twice");
        }
    }
    let prompt = match fields.remove("prompt") {
        Some(Value::String(p)) => p,
        Some(other) => bail!("\"prompt\" must be a string, got {other}"),
        None => bail!("the job has no \"prompt\""),
    };
    request::check_prompt(&prompt)?;
    let mut r = base(&prompt, defaults);
    let mut name = None;
    let mut seeds = defaults.seeds.clone();
    for (key, v) in fields {
        let k = key.as_str();
        match k {
            "name" => name = Some(stem_name(&string(k, &v)?)?),
            "seed" => {
                r.settings.seed = whole(k, &v)?;
                seeds = None;
            }
            "seeds" => {
                seeds = Some(match &v {
                    Value::String(s) => request::parse_seeds(s)?,
                    Value::Array(a) => a.iter().map(|x| whole(k, x)).collect::<Result<_>>()?,
                    other => {
                        bail!("\"seeds\" must be a range such as \"0..4\" or a list, got {other}")
                    }
                })
            }
            "negative" | "negatives" => {
                r.negatives = match &v {
                    Value::String(s) => vec![s.clone()],
                    Value::Array(a) => a.iter().map(|x| string(k, x)).collect::<Result<_>>()?,
                    other => bail!("{k:?} must be a string or a list of strings, got {other}"),
                }
            }
            "negative-weight" => r.settings.negative_weight = number(k, &v)?,
            "strokes" => r.strokes = whole(k, &v)? as i64,
            "representation" => {
                r.representation = match string(k, &v)?.as_str() {
                    "strokes" => Representation::Strokes,
                    "pixels" => Representation::Pixels,
                    other => {
                        bail!("\"representation\" must be \"strokes\" or \"pixels\", got {other:?}")
                    }
                }
            }
            "iters" => r.settings.iters = small(k, &v)?,
            "augs" => r.settings.augs = small(k, &v)?,
            "max-width" => r.settings.max_width_px = number(k, &v)?,
            "lr-points" => r.settings.lr_points = number(k, &v)?,
            "lr-width" => r.settings.lr_width = number(k, &v)?,
            "lr-color" => r.settings.lr_color = number(k, &v)?,
            _ => unreachable!("every key in KEYS is handled"),
        }
    }
    // Strokes are checked here, not only by DrawRequest::check, so that a huge count
    // names the key.
    request::check_strokes_within(r.strokes, free).map_err(|e| anyhow!("\"strokes\": {e}"))?;
    if r.settings.max_width_px < 1.0 {
        bail!("\"max-width\" must be at least 1 pixel, got {}", r.settings.max_width_px);
    }
    Ok(expand(r, seeds.as_deref()).into_iter().map(|r| (r, name.clone())).collect())
}

fn string(key: &str, v: &Value) -> Result<String> {
    match v {
        Value::String(s) => Ok(s.clone()),
        other => bail!("{key:?} must be a string, got {other}"),
    }
}

fn whole(key: &str, v: &Value) -> Result<u64> {
    v.as_u64().ok_or_else(|| anyhow!("{key:?} must be a whole number >= 0, got {v}"))
}

fn small(key: &str, v: &Value) -> Result<u32> {
    u32::try_from(whole(key, v)?).map_err(|_| anyhow!("{key:?} is too large: {v}"))
}

fn number(key: &str, v: &Value) -> Result<f64> {
    v.as_f64().ok_or_else(|| anyhow!("{key:?} must be a number, got {v}"))
}

/// A job's `name` becomes the start of file names: letters, digits, `.`, `_`, `-`.
fn stem_name(name: &str) -> Result<String> {
    let ok = !name.is_empty()
        && !name.starts_with('.')
        && name.chars().count() <= 100
        && name.chars().all(|c| c.is_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if !ok {
        bail!("\"name\" {name:?} is not a usable file name (letters, digits, '.', '_', '-'; not starting with '.')");
    }
    Ok(name.to_string())
}

/// The known word closest to `word` by edit distance.
pub fn nearest<'a>(word: &str, known: &[&'a str]) -> &'a str {
    known.iter().copied().min_by_key(|k| edit_distance(word, k)).unwrap_or("prompt")
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, &cb) in b.iter().enumerate() {
            cur[j + 1] = (prev[j] + usize::from(ca != cb)).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

/// What tells two jobs apart, model aside: the fingerprint's input without the model.
pub fn job_key(r: &DrawRequest) -> Value {
    serde_json::json!({
        "prompt": r.prompt,
        "negatives": r.negatives,
        "representation": r.representation,
        "strokes": (r.representation == Representation::Strokes).then_some(r.strokes),
        "settings": r.settings,
    })
}

/// FNV-1a, 64 bits: a stable hash that needs no dependency (not for security).
pub fn fnv1a64(bytes: &[u8]) -> u64 {
    bytes
        .iter()
        .fold(0xcbf2_9ce4_8422_2325u64, |h, &b| (h ^ b as u64).wrapping_mul(0x0100_0000_01b3))
}

/// Makes stems unique: jobs that would share one get a short hash of their settings
/// appended (so the stem depends only on the job, not on its position). Two jobs
/// that are the same drawing, or named jobs that collide, are errors.
fn disambiguate(jobs: &mut [Job]) -> Result<()> {
    let mut by_stem: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    for (i, j) in jobs.iter().enumerate() {
        by_stem.entry(j.stem.clone()).or_default().push(i);
    }
    for (stem, group) in by_stem.into_iter().filter(|(_, g)| g.len() > 1) {
        let (a, b) = (&jobs[group[0]], &jobs[group[1]]);
        if group.iter().any(|&i| jobs[i].named) {
            bail!(
                "{} and {} have the same output stem {stem:?}; give them different names",
                a.origin,
                b.origin
            );
        }
        let mut keys = BTreeMap::new();
        for &i in &group {
            let key = job_key(&jobs[i].request).to_string();
            if let Some(&other) = keys.get(&key) {
                let o: &Job = &jobs[other];
                bail!(
                    "{} and {} are the same drawing (output stem {stem:?})",
                    o.origin,
                    jobs[i].origin
                );
            }
            keys.insert(key.clone(), i);
            jobs[i].stem = format!("{stem}-{:06x}", fnv1a64(key.as_bytes()) >> 40);
        }
    }
    let mut seen = BTreeMap::new();
    for j in jobs.iter() {
        if let Some(o) = seen.insert(j.stem.clone(), j.origin.clone()) {
            bail!("{o} and {} have the same output stem {:?}", j.origin, j.stem);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_ok(text: &str) -> Vec<Job> {
        parse("jobs", text, &Defaults::default()).unwrap()
    }

    fn parse_err(text: &str) -> String {
        parse("jobs", text, &Defaults::default()).unwrap_err().to_string()
    }

    #[test]
    fn text_and_jsonl_lines_mix_and_comments_skip() {
        let jobs = parse_ok("# prompts\n\na red star\n{\"prompt\": \"a blue circle\", \"seed\": 4, \"iters\": 9, \"negative_weight\": 0.5}\n");
        assert_eq!(jobs.len(), 2);
        assert_eq!(jobs[0].stem, "a-red-star-s0");
        assert_eq!(jobs[0].origin, "jobs:3");
        assert_eq!(jobs[1].stem, "a-blue-circle-s4");
        assert_eq!(jobs[1].request.settings.iters, 9);
        assert_eq!(jobs[1].request.settings.negative_weight, 0.5);
        assert_eq!(jobs[1].request.settings.augs, Settings::default().augs);
    }

    #[test]
    fn seeds_expand_unless_a_job_has_its_own() {
        let d = Defaults { seeds: Some(vec![0, 1, 2]), ..Defaults::default() };
        let jobs = parse("j", "a star\n{\"prompt\": \"a heart\", \"seed\": 9}\n{\"prompt\": \"a line\", \"seeds\": \"5..=6\", \"name\": \"ln\"}", &d).unwrap();
        let stems: Vec<&str> = jobs.iter().map(|j| j.stem.as_str()).collect();
        assert_eq!(stems, ["a-star-s0", "a-star-s1", "a-star-s2", "a-heart-s9", "ln-s5", "ln-s6"]);
    }

    #[test]
    fn colliding_stems_get_a_stable_disambiguator() {
        let text = "{\"prompt\": \"a star\", \"strokes\": 16}\n{\"prompt\": \"a star!\", \"strokes\": 32}\n";
        let a = parse_ok(text);
        assert_ne!(a[0].stem, a[1].stem);
        assert!(a[0].stem.starts_with("a-star-s0-") && a[0].stem.len() == "a-star-s0-".len() + 6);
        // The same job gets the same stem whatever else is in the list.
        let b = parse_ok(&format!("a circle\n{text}"));
        assert_eq!(a[0].stem, b[1].stem);
        assert_eq!(a[1].stem, b[2].stem);
    }

    #[test]
    fn a_list_may_come_to_at_most_max_jobs() {
        let line =
            |n: usize| format!("{{\"prompt\": \"a star\", \"seeds\": \"{n}..{}\"}}\n", n + 50_000);
        assert_eq!(parse_ok(&(line(0) + &line(50_000))).len(), MAX_JOBS);
        let e = parse_err(&(line(0) + &line(50_000) + "a heart"));
        assert!(e.starts_with("jobs:3: the job list jobs comes to more than 100000 jobs"), "{e}");
    }

    #[test]
    fn bad_lines_name_the_file_and_line() {
        for (text, line, needle) in [
            ("a star\n{\"prompt\": ", "jobs:2", "not a valid JSON"),
            ("{\"seed\": 1}", "jobs:1", "no \"prompt\""),
            ("{\"prompt\": \"  \"}", "jobs:1", "prompt is empty"),
            ("{\"prompt\": \"x\", \"strokse\": 3}", "jobs:1", "did you mean \"strokes\""),
            ("{\"prompt\": \"x\", \"lr_colour\": 3}", "jobs:1", "did you mean \"lr-color\""),
            ("{\"prompt\": \"x\", \"iters\": 0}", "jobs:1", "iterations must be between"),
            ("{\"prompt\": \"x\", \"augs\": 5000}", "jobs:1", "augmentations"),
            ("{\"prompt\": \"x\", \"strokes\": 0}", "jobs:1", "at least 1"),
            ("{\"prompt\": \"x\", \"seed\": -1}", "jobs:1", "whole number"),
            ("{\"prompt\": \"x\", \"name\": \"../up\"}", "jobs:1", "file name"),
            ("a star\na star", "jobs:1 and jobs:2", "same drawing"),
            (
                "{\"prompt\": \"a\", \"name\": \"n\"}\n{\"prompt\": \"b\", \"name\": \"n\"}",
                "jobs:1 and jobs:2",
                "same output stem",
            ),
        ] {
            let e = parse_err(text);
            assert!(e.starts_with(line) && e.contains(needle), "{text:?}: {e}");
        }
        assert!(parse_err("# nothing\n\n").contains("no jobs"));
    }
}
