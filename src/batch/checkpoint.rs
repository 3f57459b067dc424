//! Checkpoints: one file per job, `DIR/.checkpoints/STEM.ckpt`, holding a
//! [`LoopState`] of one drawing and the fingerprint of the job it belongs to.
//!
//! Format: the line `clipdraw-checkpoint 1`, a little-endian u64 header length, a
//! JSON header (fingerprint, iteration, RNG position, tensor shapes), then each
//! tensor's f32 values, little-endian, in header order. Raw bits, so that a resumed
//! run continues from exactly the numbers it stopped with. Written atomically
//! (a temporary file, then a rename): a kill mid-write leaves the previous one.

use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use tch::{Kind, Tensor};

use crate::optimize::LoopState;

const MAGIC: &[u8] = b"clipdraw-checkpoint 1\n";

/// Where the checkpoint of `stem` lives in the batch directory `dir`.
pub fn path(dir: &Path, stem: &str) -> PathBuf {
    dir.join(".checkpoints").join(format!("{stem}.ckpt"))
}

#[derive(serde::Serialize, serde::Deserialize)]
struct Header {
    fingerprint: String,
    iter: u32,
    /// u128 as a decimal string: JSON numbers stop being exact at 2⁵³.
    rng_word_pos: Vec<String>,
    /// Shapes of params, then Adam m, then Adam v.
    shapes: Vec<Vec<i64>>,
}

/// A checkpoint as read back.
pub struct Checkpoint {
    pub fingerprint: String,
    pub state: LoopState,
}

fn tensors(state: &LoopState) -> impl Iterator<Item = &Tensor> {
    state.params.iter().chain(&state.adam_m).chain(&state.adam_v)
}

/// Writes `state` (one drawing) for the job with `fingerprint` to `path`, atomically.
pub fn write(path: &Path, fingerprint: &str, state: &LoopState) -> Result<()> {
    let header = Header {
        fingerprint: fingerprint.to_string(),
        iter: state.iter,
        rng_word_pos: state.rng_word_pos.iter().map(u128::to_string).collect(),
        shapes: tensors(state).map(Tensor::size).collect(),
    };
    let head = serde_json::to_vec(&header)?;
    let mut bytes = Vec::from(MAGIC);
    bytes.extend((head.len() as u64).to_le_bytes());
    bytes.extend(head);
    for t in tensors(state) {
        let t = t.f_to_device(tch::Device::Cpu)?.f_to_kind(Kind::Float)?.f_contiguous()?;
        let n = t.numel();
        let mut v = vec![0f32; n];
        t.f_copy_data(&mut v, n)?;
        bytes.extend(v.iter().flat_map(|x| x.to_le_bytes()));
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("cannot make the checkpoint directory {}", dir.display()))?;
    }
    crate::output::write_atomic(path, &bytes, true)
}

/// Reads the checkpoint at `path`; `None` if there is none.
pub fn read(path: &Path) -> Result<Option<Checkpoint>> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => bail!("cannot read the checkpoint {}: {e}", path.display()),
    };
    parse(&bytes).map(Some).with_context(|| format!("the checkpoint {} is damaged", path.display()))
}

/// A checkpoint file's bytes, checked.
pub fn parse(bytes: &[u8]) -> Result<Checkpoint> {
    let rest =
        bytes.strip_prefix(MAGIC).ok_or_else(|| anyhow!("it is not a clipdraw checkpoint"))?;
    let (len, rest) = rest.split_at_checked(8).ok_or_else(|| anyhow!("it is cut short"))?;
    let len = u64::from_le_bytes(len.try_into()?) as usize;
    let (head, mut data) = rest.split_at_checked(len).ok_or_else(|| anyhow!("it is cut short"))?;
    let header: Header = serde_json::from_slice(head)?;
    let rng_word_pos = header
        .rng_word_pos
        .iter()
        .map(|s| s.parse::<u128>().map_err(|_| anyhow!("bad RNG position {s:?}")))
        .collect::<Result<Vec<_>>>()?;
    let mut all = Vec::with_capacity(header.shapes.len());
    for shape in &header.shapes {
        // Checked: a damaged header can hold negative or enormous dimensions.
        let need = shape
            .iter()
            .try_fold(4usize, |acc, &d| usize::try_from(d).ok().and_then(|d| acc.checked_mul(d)))
            .ok_or_else(|| anyhow!("it has an impossible tensor shape {shape:?}"))?;
        let (raw, more) = data.split_at_checked(need).ok_or_else(|| anyhow!("it is cut short"))?;
        data = more;
        let v: Vec<f32> =
            raw.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
        all.push(Tensor::from_slice(&v).f_view(shape.as_slice())?);
    }
    if !data.is_empty() || all.len() % 3 != 0 {
        bail!("it has {} bytes too many or a wrong tensor count", data.len());
    }
    let k = all.len() / 3;
    let adam_v = all.split_off(2 * k);
    let adam_m = all.split_off(k);
    let state = LoopState { iter: header.iter, rng_word_pos, params: all, adam_m, adam_v };
    Ok(Checkpoint { fingerprint: header.fingerprint, state })
}

/// Drawing `i` of a batched state, as a state of one drawing.
pub fn select(state: &LoopState, i: usize) -> Result<LoopState> {
    let one = |t: &Tensor| -> Result<Tensor> { Ok(t.f_narrow(0, i as i64, 1)?.f_contiguous()?) };
    Ok(LoopState {
        iter: state.iter,
        rng_word_pos: vec![state.rng_word_pos[i]],
        params: state.params.iter().map(one).collect::<Result<_>>()?,
        adam_m: state.adam_m.iter().map(one).collect::<Result<_>>()?,
        adam_v: state.adam_v.iter().map(one).collect::<Result<_>>()?,
    })
}

/// States of single drawings at one iteration joined into one batched state.
pub fn join(states: &[LoopState]) -> Result<LoopState> {
    let Some(first) = states.first() else { bail!("no states to join") };
    if states.iter().any(|s| s.iter != first.iter) {
        bail!("states joined into a batch must be at one iteration");
    }
    let cat = |f: &dyn Fn(&LoopState) -> &Vec<Tensor>| -> Result<Vec<Tensor>> {
        (0..f(first).len())
            .map(|k| {
                let parts: Vec<&Tensor> = states.iter().map(|s| &f(s)[k]).collect();
                Ok(Tensor::f_cat(&parts, 0)?)
            })
            .collect()
    };
    Ok(LoopState {
        iter: first.iter,
        rng_word_pos: states.iter().flat_map(|s| s.rng_word_pos.iter().copied()).collect(),
        params: cat(&|s| &s.params)?,
        adam_m: cat(&|s| &s.adam_m)?,
        adam_v: cat(&|s| &s.adam_v)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_checkpoint_reads_back_bit_for_bit() {
        let dir = tempfile::tempdir().unwrap();
        let p = path(dir.path(), "a-s0");
        let t = |v: &[f32]| Tensor::from_slice(v).view([1, v.len() as i64]);
        let state = LoopState {
            iter: 7,
            rng_word_pos: vec![u128::MAX - 3],
            params: vec![t(&[0.1, -0.0, f32::MIN_POSITIVE]), t(&[3.5])],
            adam_m: vec![t(&[1e-30, 2.0, 3.0]), t(&[4.0])],
            adam_v: vec![t(&[5.0, 6.0, 7.0]), t(&[8.0])],
        };
        write(&p, "fp", &state).unwrap();
        let back = read(&p).unwrap().unwrap();
        assert_eq!(back.fingerprint, "fp");
        assert_eq!(back.state.iter, 7);
        assert_eq!(back.state.rng_word_pos, state.rng_word_pos);
        for (a, b) in tensors(&state).zip(tensors(&back.state)) {
            let bits = |x: &Tensor| -> Vec<u32> {
                Vec::<f32>::try_from(x.flatten(0, -1))
                    .unwrap()
                    .iter()
                    .map(|v| v.to_bits())
                    .collect()
            };
            assert_eq!(bits(a), bits(b));
            assert_eq!(a.size(), b.size());
        }
        assert!(read(&path(dir.path(), "none")).unwrap().is_none());
        // A file cut short is refused with its name, not read as a shorter state.
        let bytes = std::fs::read(&p).unwrap();
        std::fs::write(&p, &bytes[..bytes.len() - 2]).unwrap();
        let e = format!("{:#}", read(&p).err().unwrap());
        assert!(e.contains("a-s0.ckpt") && e.contains("cut short"), "{e}");
    }

    #[test]
    fn impossible_shapes_are_refused_not_overflowed() {
        // Found by fuzzing (fuzz/corpus/checkpoint/crash-shape-overflow.ckpt): the
        // element count was a plain product of the header's dimensions.
        let header = |shapes: &str| {
            let head =
                format!(r#"{{"fingerprint":"f","iter":1,"rng_word_pos":["0"],"shapes":{shapes}}}"#);
            let mut b = MAGIC.to_vec();
            b.extend((head.len() as u64).to_le_bytes());
            b.extend(head.as_bytes());
            b.extend([0u8; 16]);
            b
        };
        for shapes in ["[[-1]]", "[[4611686018427387904,4]]", "[[9223372036854775807,2,2]]"] {
            let e = format!("{:#}", parse(&header(shapes)).err().unwrap());
            assert!(e.contains("impossible tensor shape"), "{shapes}: {e}");
        }
        // A real shape still reads: 1 x 4 floats, three times (params, m, v)... as
        // far as the data goes, which is cut short here.
        let e = format!("{:#}", parse(&header("[[1,4],[1,4],[1,4]]")).err().unwrap());
        assert!(e.contains("cut short"), "{e}");
    }
}
