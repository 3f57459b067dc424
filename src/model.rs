//! Loading clipdraw model files: TorchScript CLIP bundles (DESIGN.md section 3).
//!
//! Shapes (the legend in `lib.rs`): `B` images or prompts in a batch, `V` the model's
//! square input side, `C` context length, `E` embedding size.

use std::io::Read;
use std::path::Path;

use anyhow::{anyhow, bail, Context, Result};
use serde::Deserialize;
use tch::{CModule, Device, IValue, Kind, Tensor};

use crate::tokenizer::{Tokenized, Tokenizer};

/// The `format` every clipdraw model file declares in its metadata.
pub const FORMAT: &str = "clipdraw-model";
/// The newest metadata layout this build reads.
pub const FORMAT_VERSION: u32 = 1;
/// How records name the built-in model.
pub const BUILTIN_NAME: &str = "built-in";
/// The built-in model: a small CLIP-style model trained on drawings of simple
/// shapes by scripts/train_tiny_clip.py (docs/tiny-model.md says what it knows).
static BUILTIN_MODEL: &[u8] = include_bytes!("../assets/clipdraw-tiny.pt");

/// What a model file says about itself (its `metadata()` JSON).
#[derive(Clone, Debug, Deserialize, serde::Serialize)]
pub struct ModelInfo {
    pub format: String,
    pub format_version: u32,
    /// open_clip architecture name, e.g. `ViT-B-32`.
    pub architecture: String,
    /// open_clip pretrained tag; `None` for random-init or self-trained models.
    #[serde(default)]
    pub pretrained: Option<String>,
    /// Side of the square input image, in pixels.
    pub image_size: i64,
    /// Token sequence length that `encode_text` takes.
    pub context_length: i64,
    /// Embedding size `E` of both towers.
    pub embed_dim: i64,
    #[serde(default = "default_vocab")]
    pub vocab_size: i64,
    /// Per-channel normalisation, applied as `(x - mean) / std` to RGB in [0, 1].
    pub mean: Vec<f64>,
    pub std: Vec<f64>,
    /// Words the model was trained on, for models that know only a few (the
    /// built-in one); `None` for real CLIPs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub known_words: Option<Vec<String>>,
    /// Everyday things the model was trained on, by category (the built-in model
    /// lists them; `clipdraw info` prints them); `None` for real CLIPs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub concepts: Option<std::collections::BTreeMap<String, Vec<String>>>,
}

fn default_vocab() -> i64 {
    49408
}

impl ModelInfo {
    fn validate(&self) -> Result<()> {
        if self.format != FORMAT {
            bail!("metadata format is {:?}, expected {FORMAT:?}", self.format);
        }
        if self.format_version == 0 || self.format_version > FORMAT_VERSION {
            bail!(
                "metadata format_version {} is not supported (this clipdraw reads 1 to {FORMAT_VERSION})",
                self.format_version
            );
        }
        if !(16..=4096).contains(&self.image_size) {
            bail!("metadata image_size {} is out of range 16..=4096", self.image_size);
        }
        if !(3..=4096).contains(&self.context_length) {
            bail!("metadata context_length {} is out of range 3..=4096", self.context_length);
        }
        if !(1..=65536).contains(&self.embed_dim) {
            bail!("metadata embed_dim {} is out of range 1..=65536", self.embed_dim);
        }
        if self.mean.len() != 3 || self.std.len() != 3 {
            bail!(
                "metadata mean/std have {}/{} values, expected 3 each (RGB)",
                self.mean.len(),
                self.std.len()
            );
        }
        if self.mean.iter().chain(&self.std).any(|v| !v.is_finite())
            || self.std.iter().any(|&s| s <= 0.0)
        {
            bail!("metadata mean {:?} / std {:?} must be finite with std > 0", self.mean, self.std);
        }
        Ok(())
    }
}

/// The built-in model's metadata, read from the embedded file without loading it
/// (fast: for `--version`), and the file's size in bytes.
///
/// TorchScript pickles the module's `meta_json` attribute as a BINUNICODE string
/// (opcode `X`, a 4-byte little-endian length, the UTF-8 text) in the archive's
/// uncompressed `data.pkl`; this finds it after the attribute's name.
pub fn builtin_info() -> Result<(ModelInfo, usize)> {
    let bytes = BUILTIN_MODEL;
    let name = b"meta_json";
    let at = bytes
        .windows(name.len())
        .position(|w| w == name)
        .ok_or_else(|| anyhow!("the built-in model has no meta_json attribute"))?;
    let rest = &bytes[at + name.len()..];
    // The attribute's name is followed by a memo opcode, then the value.
    let x =
        rest.iter().take(16).position(|&b| b == b'X').ok_or_else(|| {
            anyhow!("the built-in model's meta_json is not stored as a plain string")
        })?;
    let len_bytes: [u8; 4] = rest
        .get(x + 1..x + 5)
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| anyhow!("the built-in model's meta_json is cut off"))?;
    let len = u32::from_le_bytes(len_bytes) as usize;
    let text = rest
        .get(x + 5..x + 5 + len)
        .ok_or_else(|| anyhow!("the built-in model's meta_json is cut off"))?;
    let info: ModelInfo =
        serde_json::from_slice(text).map_err(|e| anyhow!("built-in metadata: {e}"))?;
    info.validate()?;
    Ok((info, bytes.len()))
}

/// A frozen CLIP model on one device, with its tokenizer.
pub struct ClipModel {
    module: CModule,
    info: ModelInfo,
    /// The file name, [`BUILTIN_NAME`], or `in-memory` (what records name it).
    name: String,
    tokenizer: Tokenizer,
    device: Device,
    mean: Tensor, // (1, 3, 1, 1)
    std: Tensor,  // (1, 3, 1, 1)
}

impl std::fmt::Debug for ClipModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClipModel")
            .field("name", &self.name)
            .field("info", &self.info)
            .field("device", &self.device)
            .finish()
    }
}

/// Reduces a libtorch error (which carries a C++ backtrace) to its first line.
pub fn torch_msg(e: &tch::TchError) -> String {
    let s = e.to_string();
    let line = s
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty() && !l.starts_with("Exception raised from"))
        .unwrap_or("unknown libtorch error");
    let line = line.strip_prefix("Internal torch error: ").unwrap_or(line);
    line.trim_end_matches(':').to_string()
}

/// Checks the zip container before libtorch sees it, so the common ways a file is
/// wrong get a plain message instead of a C++ exception.
fn check_archive(bytes_head: &[u8], bytes_tail: &[u8]) -> Result<()> {
    if bytes_head.len() < 4 || &bytes_head[..4] != b"PK\x03\x04" {
        bail!("not a TorchScript archive (it is not a zip file)");
    }
    // The end-of-central-directory record sits in the last 22 + 65535 bytes.
    if !bytes_tail.windows(4).any(|w| w == b"PK\x05\x06") {
        bail!("truncated or damaged TorchScript archive (no zip end record)");
    }
    Ok(())
}

impl ClipModel {
    /// Loads, validates and freezes the model file at `path` on `device`.
    pub fn load(path: &Path, device: Device) -> Result<Self> {
        let mut model =
            Self::load_inner(path, device).with_context(|| format!("model {}", path.display()))?;
        model.name = path
            .file_name()
            .map_or_else(|| path.display().to_string(), |n| n.to_string_lossy().to_string());
        Ok(model)
    }

    /// The built-in model (embedded in the binary) on `device`.
    pub fn builtin(device: Device) -> Result<Self> {
        let mut model =
            Self::from_bytes(BUILTIN_MODEL, device).context("cannot load the built-in model")?;
        model.name = BUILTIN_NAME.to_string();
        Ok(model)
    }

    /// The model file at `path`, or the built-in model when there is none.
    pub fn load_or_builtin(path: Option<&Path>, device: Device) -> Result<Self> {
        match path {
            Some(p) => Self::load(p, device).context("cannot load CLIP model"),
            None => Self::builtin(device),
        }
    }

    fn load_inner(path: &Path, device: Device) -> Result<Self> {
        let meta = std::fs::metadata(path).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => anyhow!("file does not exist"),
            _ => anyhow!("cannot read file: {e}"),
        })?;
        if meta.is_dir() {
            bail!("is a directory, not a model file");
        }
        let mut bytes = Vec::with_capacity(meta.len() as usize);
        std::fs::File::open(path)
            .and_then(|mut f| f.read_to_end(&mut bytes))
            .map_err(|e| anyhow!("cannot read file: {e}"))?;
        Self::from_bytes(&bytes, device)
    }

    /// Loads a model file held in memory (e.g. one embedded in the binary).
    pub fn from_bytes(bytes: &[u8], device: Device) -> Result<Self> {
        let tail = &bytes[bytes.len().saturating_sub(22 + 65535)..];
        check_archive(bytes, tail)?;
        let mut cursor = std::io::Cursor::new(bytes);
        let mut module = CModule::load_data_on_device(&mut cursor, device)
            .map_err(|e| anyhow!("libtorch cannot load it: {}", torch_msg(&e)))?;
        module.f_set_eval().map_err(|e| anyhow!("cannot set eval mode: {}", torch_msg(&e)))?;
        for (_, p) in module
            .named_parameters()
            .map_err(|e| anyhow!("cannot list parameters: {}", torch_msg(&e)))?
        {
            // Frozen: CLIP judges the drawing; only the strokes learn.
            let _ = p.set_requires_grad(false);
        }

        let info = read_info(&module)?;
        let tokenizer = read_tokenizer(&module)?;
        let channels = |v: &[f64]| -> Result<Tensor> {
            Ok(Tensor::from_slice(v)
                .f_to_kind(Kind::Float)?
                .f_view([1, 3, 1, 1])?
                .f_to_device(device)?)
        };
        let (mean, std) = (channels(&info.mean)?, channels(&info.std)?);
        let name = "in-memory".to_string();
        let model = Self { module, info, name, tokenizer, device, mean, std };
        model.probe()?;
        Ok(model)
    }

    /// Runs both towers once at the sizes the metadata promises.
    fn probe(&self) -> Result<()> {
        let _guard = tch::no_grad_guard();
        let (s, c, e) = (self.info.image_size, self.info.context_length, self.info.embed_dim);
        let x = Tensor::f_zeros([1, 3, s, s], (Kind::Float, self.device))?;
        let out = self.call("encode_image", &x).map_err(|err| {
            anyhow!(
                "encode_image does not accept (1, 3, {s}, {s}) images as the metadata says: {err}"
            )
        })?;
        if out.size() != [1, e] {
            bail!(
                "encode_image returns shape {:?} for one image, expected [1, {e}] (embed_dim)",
                out.size()
            );
        }
        let probe = self.tokenizer.tokenize("a drawing", c as usize);
        let tokens = Tensor::from_slice(&probe.ids).f_view([1, c])?.f_to_device(self.device)?;
        let out = self.call("encode_text", &tokens).map_err(|err| {
            anyhow!("encode_text does not accept (1, {c}) tokens as the metadata says: {err}")
        })?;
        if out.size() != [1, e] {
            bail!(
                "encode_text returns shape {:?} for one prompt, expected [1, {e}] (embed_dim)",
                out.size()
            );
        }
        Ok(())
    }

    fn call(&self, method: &str, x: &Tensor) -> Result<Tensor> {
        self.module.method_ts(method, &[x]).map_err(|e| {
            let msg = torch_msg(&e);
            if msg.contains("not defined") || msg.contains("does not have a method") {
                anyhow!("the file has no {method}() method")
            } else {
                anyhow!("{method} failed: {msg}")
            }
        })
    }

    /// What the model file says about itself.
    pub fn info(&self) -> &ModelInfo {
        &self.info
    }

    pub fn device(&self) -> Device {
        self.device
    }

    /// What records call the model: its file name, `built-in` or `in-memory`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The words of `prompt` (cleaned and lower-cased as CLIP does) that the model
    /// never saw; empty when the model does not list its known words.
    pub fn unknown_words(&self, prompt: &str) -> Vec<String> {
        let Some(known) = &self.info.known_words else { return Vec::new() };
        let known: std::collections::HashSet<&str> = known.iter().map(String::as_str).collect();
        let clean = crate::tokenizer::clean_lower(prompt);
        let mut out: Vec<String> = Vec::new();
        for word in clean.split(|c: char| !c.is_alphanumeric()).filter(|w| !w.is_empty()) {
            if !known.contains(word) && !out.iter().any(|w| w == word) {
                out.push(word.to_string());
            }
        }
        out
    }

    /// Tokenizes `prompt` to the model's context length.
    pub fn tokenize(&self, prompt: &str) -> Tokenized {
        self.tokenizer.tokenize(prompt, self.info.context_length as usize)
    }

    /// CLIP normalisation of RGB images in [0, 1]: `(x - mean) / std`.
    ///
    /// `images`: (B, 3, V, V) float on the model's device.
    pub fn normalize(&self, images: &Tensor) -> Result<Tensor> {
        Ok(images.f_sub(&self.mean)?.f_div(&self.std)?)
    }

    /// Image embeddings, unnormalised.
    ///
    /// `images`: (B, 3, V, V) float32, already CLIP-normalised; returns (B, E).
    /// Differentiable with respect to `images`.
    pub fn encode_image(&self, images: &Tensor) -> Result<Tensor> {
        let s = self.info.image_size;
        match images.size().as_slice() {
            &[_, 3, h, w] if h == s && w == s => {}
            other => bail!("images have shape {other:?}, expected [B, 3, {s}, {s}] (B images of the model's input size)"),
        }
        if images.kind() != Kind::Float {
            bail!("images have dtype {:?}, expected Float", images.kind());
        }
        self.call("encode_image", images)
    }

    /// Text embeddings, unnormalised.
    ///
    /// `tokens`: (B, C) int64 CLIP BPE ids; returns (B, E).
    pub fn encode_text(&self, tokens: &Tensor) -> Result<Tensor> {
        let c = self.info.context_length;
        match tokens.size().as_slice() {
            &[_, n] if n == c => {}
            other => bail!("tokens have shape {other:?}, expected [B, {c}]"),
        }
        self.call("encode_text", tokens)
    }

    /// Unit-length image embeddings of RGB images in [0, 1]: normalise, encode, scale
    /// to unit length. `images`: (B, 3, V, V) float; returns (B, E), differentiable.
    pub fn embed_images(&self, images: &Tensor) -> Result<Tensor> {
        unit(&self.encode_image(&self.normalize(images)?)?)
    }

    /// Unit-length text embeddings of `prompts`: (B, E) on the model's device.
    pub fn embed_prompts(&self, prompts: &[&str]) -> Result<Tensor> {
        let c = self.info.context_length;
        let mut ids = Vec::with_capacity(prompts.len() * c as usize);
        for p in prompts {
            ids.extend(self.tokenize(p).ids);
        }
        let tokens =
            Tensor::from_slice(&ids).f_view([prompts.len() as i64, c])?.f_to_device(self.device)?;
        let _guard = tch::no_grad_guard();
        unit(&self.encode_text(&tokens)?)
    }
}

/// Rows scaled to unit length: (B, E) → (B, E).
pub fn unit(x: &Tensor) -> Result<Tensor> {
    let norm = x.f_norm_scalaropt_dim(2, [-1i64].as_slice(), true)?.f_clamp_min(1e-12)?;
    Ok(x.f_div(&norm)?)
}

fn read_info(module: &CModule) -> Result<ModelInfo> {
    let value = module.method_is::<IValue>("metadata", &[]).map_err(|e| {
        let msg = torch_msg(&e);
        if msg.contains("not defined") {
            anyhow!("the file has no metadata() method; is it a clipdraw model file? (make one with scripts/export_clip.py)")
        } else {
            anyhow!("metadata() failed: {msg}")
        }
    })?;
    let IValue::String(json) = value else {
        bail!("metadata() returned {value:?}, expected a JSON string");
    };
    parse_info(&json)
}

/// A model file's metadata (the JSON its `metadata()` returns), checked.
pub fn parse_info(json: &str) -> Result<ModelInfo> {
    let info: ModelInfo =
        serde_json::from_str(json).map_err(|e| anyhow!("metadata is not valid: {e}"))?;
    info.validate().map_err(|e| anyhow!("metadata is inconsistent: {e}"))?;
    Ok(info)
}

fn read_tokenizer(module: &CModule) -> Result<Tokenizer> {
    let value = module.method_is::<IValue>("bpe_merges_gz", &[]).map_err(|e| {
        let msg = torch_msg(&e);
        if msg.contains("not defined") {
            anyhow!("the file has no bpe_merges_gz() method (the BPE merges are missing)")
        } else {
            anyhow!("bpe_merges_gz() failed: {msg}")
        }
    })?;
    let IValue::Tensor(t) = value else {
        bail!("bpe_merges_gz() returned {value:?}, expected a uint8 tensor");
    };
    if t.kind() != Kind::Uint8 || t.dim() != 1 {
        bail!(
            "bpe_merges_gz() returned a {:?} tensor of shape {:?}, expected 1-D uint8",
            t.kind(),
            t.size()
        );
    }
    let t = t
        .f_to_device(Device::Cpu)
        .map_err(|e| anyhow!("cannot read BPE merges: {}", torch_msg(&e)))?;
    let n = t.numel();
    let mut gz = vec![0u8; n];
    t.f_copy_data(&mut gz, n).map_err(|e| anyhow!("cannot read BPE merges: {}", torch_msg(&e)))?;
    Tokenizer::from_merges_gz(&gz).map_err(|e| anyhow!("BPE merges are broken: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fast_built_in_metadata_is_what_loading_gives() {
        let (fast, size) = builtin_info().unwrap();
        let loaded = ClipModel::builtin(Device::Cpu).unwrap();
        assert_eq!(
            serde_json::to_value(&fast).unwrap(),
            serde_json::to_value(loaded.info()).unwrap()
        );
        assert_eq!(size, BUILTIN_MODEL.len());
        assert_eq!(loaded.name(), BUILTIN_NAME);
    }

    #[test]
    fn archive_check_names_the_problem() {
        let e = check_archive(b"hello world", b"hello world").unwrap_err().to_string();
        assert!(e.contains("not a zip"), "{e}");
        let e = check_archive(b"PK\x03\x04rest", b"PK\x03\x04rest").unwrap_err().to_string();
        assert!(e.contains("truncated"), "{e}");
        assert!(check_archive(b"PK\x03\x04", b"..PK\x05\x06..").is_ok());
    }

    #[test]
    fn metadata_validation_catches_bad_values() {
        let good = ModelInfo {
            format: FORMAT.into(),
            format_version: 1,
            architecture: "x".into(),
            pretrained: None,
            image_size: 224,
            context_length: 77,
            embed_dim: 512,
            vocab_size: 49408,
            mean: vec![0.5; 3],
            std: vec![0.25; 3],
            known_words: None,
            concepts: None,
        };
        assert!(good.validate().is_ok());
        let mut bad = good.clone();
        bad.std = vec![0.0; 3];
        assert!(bad.validate().unwrap_err().to_string().contains("std"));
        let mut bad = good.clone();
        bad.mean = vec![0.5; 2];
        assert!(bad.validate().unwrap_err().to_string().contains("3 each"));
        let mut bad = good.clone();
        bad.image_size = 0;
        assert!(bad.validate().unwrap_err().to_string().contains("image_size 0"));
        let mut bad = good;
        bad.format_version = 9;
        assert!(bad.validate().unwrap_err().to_string().contains("format_version 9"));
    }
}
