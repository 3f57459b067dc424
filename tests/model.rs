//! The loader against real TorchScript files made by scripts/export_clip.py.

mod common;

use clipdraw::model::ClipModel;
use tch::{Device, Kind, Tensor};

fn expected() -> serde_json::Value {
    let text = std::fs::read_to_string(common::fixture("tiny_expected.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn matrix(v: &serde_json::Value) -> Vec<Vec<f64>> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|r| r.as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect())
        .collect()
}

fn max_abs_diff(t: &Tensor, want: &[Vec<f64>]) -> f64 {
    let got: Vec<Vec<f64>> = Vec::<Vec<f64>>::try_from(t.to_kind(Kind::Double)).unwrap();
    assert_eq!(got.len(), want.len(), "row count");
    got.iter()
        .zip(want)
        .flat_map(|(g, w)| {
            assert_eq!(g.len(), w.len(), "row length");
            g.iter().zip(w).map(|(a, b)| (a - b).abs())
        })
        .fold(0.0, f64::max)
}

/// Same formula as scripts/make_test_fixtures.py's `fixture_image`.
fn fixture_images(b: i64, s: i64) -> Tensor {
    let mut v = Vec::with_capacity((b * 3 * s * s) as usize);
    for bi in 0..b {
        for c in 0..3 {
            for i in 0..s {
                for j in 0..s {
                    let x = (0.05 * (i + 1) as f64 * (c + 1) as f64
                        + 0.07 * (j + 1) as f64 * (bi + 1) as f64)
                        .sin();
                    v.push(x as f32);
                }
            }
        }
    }
    Tensor::from_slice(&v).view([b, 3, s, s])
}

#[test]
fn loads_the_tiny_model_and_reads_its_metadata() {
    let m = ClipModel::load(&common::fixture("tiny.pt"), Device::Cpu).unwrap();
    let info = m.info();
    assert_eq!(info.architecture, "clipdraw-test-tiny");
    assert_eq!((info.image_size, info.context_length, info.embed_dim), (224, 77, 64));
    assert_eq!(info.pretrained, None);
    assert!((info.mean[0] - 0.48145466).abs() < 1e-7);
}

#[test]
fn embeddings_match_python() {
    let m = ClipModel::load(&common::fixture("tiny.pt"), Device::Cpu).unwrap();
    let exp = expected();
    // Tokens: the Rust tokenizer (reading the merges inside the file) gives
    // open_clip's ids for the same prompts.
    let prompts: Vec<String> = exp["prompts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_str().unwrap().to_string())
        .collect();
    let want_tokens = matrix(&exp["tokens"]);
    for (p, want) in prompts.iter().zip(&want_tokens) {
        let got: Vec<f64> = m.tokenize(p).ids.iter().map(|&i| i as f64).collect();
        assert_eq!(&got, want, "tokens of {p:?}");
    }
    let ids: Vec<i64> = prompts.iter().flat_map(|p| m.tokenize(p).ids).collect();
    let tokens = Tensor::from_slice(&ids).view([prompts.len() as i64, 77]);
    let text = tch::no_grad(|| m.encode_text(&tokens)).unwrap();
    let d = max_abs_diff(&text, &matrix(&exp["text_embeddings"]));
    assert!(d <= 1e-4, "text embeddings differ from Python's by {d}");

    let images = fixture_images(2, 224);
    let image = tch::no_grad(|| m.encode_image(&images)).unwrap();
    let d = max_abs_diff(&image, &matrix(&exp["image_embeddings"]));
    assert!(d <= 1e-4, "image embeddings differ from Python's by {d}");
}

#[test]
fn parameters_are_frozen_and_gradients_reach_the_input() {
    let m = ClipModel::load(&common::fixture("tiny.pt"), Device::Cpu).unwrap();
    let x = fixture_images(1, 224).set_requires_grad(true);
    let e = m.encode_image(&x).unwrap();
    e.square().sum(Kind::Float).backward();
    let g = x.grad().abs().sum(Kind::Float).double_value(&[]);
    assert!(g.is_finite() && g > 0.0, "input gradient {g}");
}

#[test]
fn wrong_shapes_are_refused_with_the_shape_named() {
    let m = ClipModel::load(&common::fixture("tiny.pt"), Device::Cpu).unwrap();
    let err =
        m.encode_image(&Tensor::zeros([1, 3, 100, 100], (Kind::Float, Device::Cpu))).unwrap_err();
    assert!(err.to_string().contains("[1, 3, 100, 100]"), "{err}");
    let err = m.encode_text(&Tensor::zeros([1, 10], (Kind::Int64, Device::Cpu))).unwrap_err();
    assert!(err.to_string().contains("[1, 10]"), "{err}");
}

#[test]
fn every_broken_file_gets_a_one_line_error_naming_path_and_problem() {
    let cases = [
        ("broken_not_archive.pt", "not a zip"),
        ("broken_truncated.pt", "truncated"),
        ("broken_no_metadata.pt", "no metadata() method"),
        ("broken_no_encode_text.pt", "no encode_text() method"),
        ("broken_not_json.pt", "metadata is not valid"),
        ("broken_missing_field.pt", "embed_dim"),
        ("broken_wrong_format.pt", "format"),
        ("broken_image_size.pt", "(1, 3, 160, 160)"),
        ("broken_context_length.pt", "(1, 64) tokens"),
        ("broken_embed_dim.pt", "expected [1, 32]"),
        ("broken_bad_merges.pt", "BPE merges"),
        ("does_not_exist.pt", "does not exist"),
    ];
    for (name, needle) in cases {
        let path = common::fixtures().join(name);
        let err = ClipModel::load(&path, Device::Cpu).unwrap_err();
        let msg = format!("{err:#}");
        assert!(msg.contains(needle), "{name}: {msg}");
        assert!(msg.contains(name), "{name}: message does not name the file: {msg}");
        assert!(!msg.contains('\n'), "{name}: message is not one line: {msg}");
    }
    let err = ClipModel::load(&common::fixtures(), Device::Cpu).unwrap_err();
    assert!(format!("{err:#}").contains("is a directory"));
}

#[test]
fn cuda_loading_matches_cpu_when_a_gpu_exists() {
    // On machines without CUDA this checks the error instead.
    let path = common::fixture("tiny.pt");
    if tch::Cuda::device_count() == 0 {
        let err = clipdraw::device::resolve(clipdraw::device::DeviceRequest::Cuda(0)).unwrap_err();
        assert!(err.to_string().contains("no CUDA device"));
        return;
    }
    let cpu = ClipModel::load(&path, Device::Cpu).unwrap();
    let gpu = ClipModel::load(&path, Device::Cuda(0)).unwrap();
    let x = fixture_images(2, 224);
    let a = tch::no_grad(|| cpu.encode_image(&x)).unwrap();
    let b = tch::no_grad(|| gpu.encode_image(&x.to_device(Device::Cuda(0))))
        .unwrap()
        .to_device(Device::Cpu);
    let d = (a - b).abs().max().double_value(&[]);
    assert!(d < 1e-3, "CUDA and CPU embeddings differ by {d}");
}
