//! Rasterizer cost: forward + backward of `rasterize` and a scalar loss, 224×224,
//! for 16–1024 strokes, on an init scene (DESIGN.md: 1 px, short strokes) and a
//! grown one (`Scene::grown`: 10–30 px, long strokes). All figures come from one
//! run, so compare ratios, not absolute times across runs (DESIGN.md section 4).
//!
//! The yardstick is measured in the same run: `--model FILE` times a clipdraw model's
//! `encode_image` forward + backward at batch 8 (the CLIP floor, DESIGN.md section
//! 4); without it, a matrix-multiply workload of ViT-B/32's batch-8 forward +
//! backward FLOPs (≈ 105 GFLOP; a lower bound on the real model's time, so the
//! ratios it gives err high).
//!
//! `cargo bench --bench raster` (CPU), `-- --device cuda` for the GPU,
//! `-- --strokes 16,256` to choose sizes, `-- --model FILE`.

use std::time::Instant;

use anyhow::{bail, Result};
use clipdraw::raster::rasterize_with_stats;
use clipdraw::scene::{Canvas, Scene};
use tch::{Device, Kind, Tensor};

struct Timing {
    forward_ms: f64,
    backward_ms: f64,
    fragments: usize,
}

fn sync(device: Device) {
    if let Device::Cuda(i) = device {
        tch::Cuda::synchronize(i as i64);
    }
}

/// Median over `reps` calls (after one warm-up) of forward and backward times.
fn time(scene: &mut Scene, weights: &Tensor, reps: usize) -> Result<Timing> {
    scene.set_requires_grad(true);
    let mut fwd = Vec::new();
    let mut bwd = Vec::new();
    let mut fragments = 0;
    for rep in 0..=reps {
        for t in [&mut scene.points, &mut scene.widths, &mut scene.colors] {
            t.zero_grad();
        }
        sync(scene.device());
        let t0 = Instant::now();
        let (image, stats) = rasterize_with_stats(scene)?;
        let loss = image.f_mul(weights)?.f_sum(Kind::Float)?;
        sync(scene.device());
        let t1 = Instant::now();
        loss.backward();
        sync(scene.device());
        let t2 = Instant::now();
        fragments = stats.fragments;
        if rep > 0 {
            fwd.push((t1 - t0).as_secs_f64() * 1e3);
            bwd.push((t2 - t1).as_secs_f64() * 1e3);
        }
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(|a, b| a.total_cmp(b));
        v[v.len() / 2]
    };
    Ok(Timing { forward_ms: median(&mut fwd), backward_ms: median(&mut bwd), fragments })
}

/// Median seconds of `f` over `reps` calls after one warm-up.
fn median_secs(device: Device, reps: usize, mut f: impl FnMut() -> Result<()>) -> Result<f64> {
    f()?;
    let mut v = Vec::new();
    for _ in 0..reps {
        sync(device);
        let t = Instant::now();
        f()?;
        sync(device);
        v.push(t.elapsed().as_secs_f64());
    }
    v.sort_by(|a, b| a.total_cmp(b));
    Ok(v[v.len() / 2])
}

/// Seconds of the CLIP floor: the model's encode_image fwd+bwd at batch 8, or an
/// sgemm workload with ViT-B/32's FLOPs for it.
fn yardstick(device: Device, model: Option<&str>) -> Result<(f64, String)> {
    if let Some(path) = model {
        let clip = clipdraw::model::ClipModel::load(std::path::Path::new(path), device)?;
        let size = clip.info().image_size;
        let secs = median_secs(device, 3, || {
            let x =
                Tensor::f_rand([8, 3, size, size], (Kind::Float, device))?.set_requires_grad(true);
            clip.encode_image(&x)?.f_sum(Kind::Float)?.backward();
            Ok(())
        })?;
        return Ok((secs, format!("{} encode_image fwd+bwd, batch 8", clip.info().architecture)));
    }
    // 56 products of (400×768)·(768×3072): 105.7 GFLOP.
    let x = Tensor::f_randn([400, 768], (Kind::Float, device))?;
    let w = Tensor::f_randn([768, 3072], (Kind::Float, device))?;
    let secs = median_secs(device, 3, || {
        for _ in 0..56 {
            let _ = x.f_matmul(&w)?;
        }
        Ok(())
    })?;
    Ok((secs, "sgemm with ViT-B/32 batch-8 fwd+bwd FLOPs (105 GFLOP)".to_string()))
}

pub fn main() -> Result<()> {
    let mut device = Device::Cpu;
    let mut model: Option<String> = None;
    let mut sizes = vec![16i64, 64, 256, 1024];
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--device" => {
                device = match args.next().as_deref() {
                    Some("cpu") => Device::Cpu,
                    Some("cuda") => Device::Cuda(0),
                    other => bail!("--device {other:?}: expected cpu or cuda"),
                }
            }
            "--strokes" => {
                let list = args.next().unwrap_or_default();
                sizes = list.split(',').map(|s| s.trim().parse()).collect::<Result<_, _>>()?;
            }
            "--model" => model = args.next(),
            "--bench" | "--ignored" | "--nocapture" => {} // passed by cargo bench / test runners
            other => bail!("unknown argument {other:?} (use --device cpu|cuda, --strokes 16,64)"),
        }
    }
    let canvas = Canvas::new(224, 224)?;
    let weights = Tensor::f_randn([1, 3, 224, 224], (Kind::Float, device))?;
    println!(
        "rasterize forward + backward, 224x224, {device:?}, {} threads",
        tch::get_num_threads()
    );
    let (clip_secs, what) = yardstick(device, model.as_deref())?;
    println!("yardstick: {:.0} ms ({what})", clip_secs * 1e3);
    println!(
        "{:>7} | {:>9} {:>9} {:>9} {:>6} {:>9} | {:>9} {:>9} {:>9} {:>6} {:>9}",
        "strokes",
        "init fwd",
        "bwd",
        "total",
        "%yard",
        "frags",
        "grown fwd",
        "bwd",
        "total",
        "%yard",
        "frags"
    );
    for &s in &sizes {
        let reps = if s >= 1024 { 3 } else { 5 };
        let mut init = Scene::random(1, s, canvas, 1, device)?;
        let mut grown = Scene::grown(1, s, canvas, 1, device)?;
        let a = time(&mut init, &weights, reps)?;
        let b = time(&mut grown, &weights, reps)?;
        let pct = |t: &Timing| (t.forward_ms + t.backward_ms) / (clip_secs * 1e3) * 100.0;
        println!(
            "{:>7} | {:>7.1}ms {:>7.1}ms {:>7.1}ms {:>5.1}% {:>9} | {:>7.1}ms {:>7.1}ms {:>7.1}ms {:>5.1}% {:>9}",
            s,
            a.forward_ms,
            a.backward_ms,
            a.forward_ms + a.backward_ms,
            pct(&a),
            a.fragments,
            b.forward_ms,
            b.backward_ms,
            b.forward_ms + b.backward_ms,
            pct(&b),
            b.fragments
        );
    }
    Ok(())
}
