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
//! `cargo bench --bench raster` (CPU), `-- --device cuda` for the GPU, `-- --threads 1`,
//! `-- --strokes 16,256` to choose sizes, `-- --model FILE`.

use std::time::Instant;

use anyhow::{bail, Result};
use clipdraw::device::sync;
use clipdraw::raster::{plan_stats, rasterize_with_stats};
use clipdraw::scene::{Canvas, Scene};
use tch::{Device, Kind, Tensor};

struct Timing {
    /// Host plan alone (part of the forward time).
    plan_ms: f64,
    forward_ms: f64,
    backward_ms: f64,
    fragments: usize,
}

/// Median over `reps` calls (after one warm-up) of forward and backward times.
fn time(scene: &mut Scene, weights: &Tensor, reps: usize, with_plan: bool) -> Result<Timing> {
    scene.set_requires_grad(true);
    let mut plan = Vec::new();
    let mut fwd = Vec::new();
    let mut bwd = Vec::new();
    let mut fragments = 0;
    for rep in 0..=reps {
        if with_plan {
            let t = Instant::now();
            plan_stats(scene)?;
            plan.push(t.elapsed().as_secs_f64() * 1e3);
        }
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
    Ok(Timing {
        plan_ms: if with_plan { median(&mut plan) } else { f64::NAN },
        forward_ms: median(&mut fwd),
        backward_ms: median(&mut bwd),
        fragments,
    })
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
    let mut profile: Option<(String, usize)> = None;
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
            "--threads" => {
                let n: i32 = args.next().unwrap_or_default().parse()?;
                tch::set_num_threads(n);
            }
            // `--profile init:50` or `grown:50`: only that many fwd+bwd calls of the
            // first size (for perf / callgrind); `plan-init:50` etc. for the host plan.
            "--profile" => {
                let v = args.next().unwrap_or_default();
                let (what, reps) = v.split_once(':').unwrap_or((v.as_str(), "20"));
                profile = Some((what.to_string(), reps.parse()?));
            }
            "--bench" | "--ignored" | "--nocapture" => {} // passed by cargo bench / test runners
            other => bail!(
                "unknown argument {other:?} (use --device cpu|cuda, --strokes 16,64, \
                 --threads N, --model FILE, --profile init:20)"
            ),
        }
    }
    let canvas = Canvas::new(224, 224)?;
    let weights = Tensor::f_randn([1, 3, 224, 224], (Kind::Float, device))?;
    if let Some((what, reps)) = profile {
        let s = sizes[0];
        let mut scene = match what.trim_start_matches("plan-") {
            "init" => Scene::random(1, s, canvas, 1, device)?,
            "grown" => Scene::grown(1, s, canvas, 1, device)?,
            other => bail!("--profile {other:?}: expected init, grown, plan-init or plan-grown"),
        };
        let t = Instant::now();
        if what.starts_with("plan-") {
            for _ in 0..reps {
                plan_stats(&scene)?;
            }
        } else {
            time(&mut scene, &weights, reps.max(1) - 1, false)?;
        }
        let ms = t.elapsed().as_secs_f64() * 1e3 / reps as f64;
        println!("{what} x{reps}, {s} strokes: {ms:.1} ms each; {:?}", plan_stats(&scene)?);
        return Ok(());
    }
    println!(
        "rasterize forward (of which host plan) + backward, 224x224, {device:?}, {} threads",
        tch::get_num_threads()
    );
    let (clip_secs, what) = yardstick(device, model.as_deref())?;
    println!("yardstick: {:.0} ms ({what})", clip_secs * 1e3);
    println!(
        "{:>7} | {:>9} {:>7} {:>8} {:>8} {:>6} {:>8} | {:>9} {:>7} {:>8} {:>8} {:>6} {:>8}",
        "strokes",
        "init fwd",
        "(plan)",
        "bwd",
        "total",
        "%yard",
        "frags",
        "grown fwd",
        "(plan)",
        "bwd",
        "total",
        "%yard",
        "frags"
    );
    for &s in &sizes {
        let reps = if s >= 1024 { 3 } else { 5 };
        let mut init = Scene::random(1, s, canvas, 1, device)?;
        let mut grown = Scene::grown(1, s, canvas, 1, device)?;
        let a = time(&mut init, &weights, reps, true)?;
        let b = time(&mut grown, &weights, reps, true)?;
        let pct = |t: &Timing| (t.forward_ms + t.backward_ms) / (clip_secs * 1e3) * 100.0;
        let cols = |t: &Timing| {
            format!(
                "{:>7.1}ms {:>5.1}ms {:>6.1}ms {:>6.1}ms {:>5.1}% {:>8}",
                t.forward_ms,
                t.plan_ms,
                t.backward_ms,
                t.forward_ms + t.backward_ms,
                pct(t),
                t.fragments
            )
        };
        println!("{s:>7} | {} | {}", cols(&a), cols(&b));
    }
    Ok(())
}
