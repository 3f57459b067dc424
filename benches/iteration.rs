//! Where one CLIPDraw iteration spends its time, measured in one run.
//!
//!   scripts/bench.sh iteration            (or: cargo bench --bench iteration)
//!
//! Model: CLIPDRAW_BENCH_MODEL, default ~/.cache/clipdraw/models/ViT-B-32-random.pt
//! (scripts/bench.sh exports it). Device: CLIPDRAW_BENCH_DEVICE (auto). Reports per
//! iteration: the CLIP part (encode_image forward + backward to its input) and
//! everything else (rasterizer forward + backward, augmentation forward + backward,
//! Adam and clamps), for a freshly initialised and a grown 256-stroke drawing, then
//! the peak memory of a default run.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result};
use clipdraw::augment::{self, Augmentation};
use clipdraw::device::{self, sync, DeviceRequest};
use clipdraw::raster;
use clipdraw::scene::{Canvas, Scene};
use clipdraw::{ClipModel, Control, DrawRequest};
use rand::SeedableRng;
use tch::{Kind, Tensor};

const STROKES: i64 = 256;
const AUGS: usize = 8;
const REPS: usize = 4;

#[derive(Default, Clone, Copy)]
struct Parts {
    raster_fwd: f64,
    aug_fwd: f64,
    clip: f64,
    rest_bwd: f64,
    step: f64,
}

impl Parts {
    fn other(&self) -> f64 {
        self.raster_fwd + self.aug_fwd + self.rest_bwd + self.step
    }
    fn total(&self) -> f64 {
        self.other() + self.clip
    }
}

fn one_iteration(
    model: &ClipModel,
    scene: &mut Scene,
    text: &Tensor,
    rng: &mut rand_chacha::ChaCha8Rng,
) -> Result<Parts> {
    let mut p = Parts::default();
    let size = model.info().image_size;
    scene.set_requires_grad(true);
    let t0 = Instant::now();
    let img = raster::rasterize(scene)?;
    sync(img.device());
    let t1 = Instant::now();
    let augs: Vec<Augmentation> = (0..AUGS)
        .map(|_| Augmentation::random(rng, scene.canvas.height, scene.canvas.width))
        .collect();
    let batch = augment::apply(&img, &augs, size)?;
    sync(batch.device());
    let t2 = Instant::now();
    // The CLIP part alone (normalise, encode, unit length, loss): a leaf cut at the
    // model's input. This dissects one iteration; the loop itself is clipdraw::draw.
    let leaf = batch.detach().set_requires_grad(true);
    let feats = model.embed_images(&leaf)?;
    let loss = -feats.matmul(&text.transpose(0, 1)).sum(Kind::Float);
    loss.backward();
    let g = leaf.grad();
    sync(g.device());
    let t3 = Instant::now();
    // d(sum(batch · g))/d(scene) is the vector-Jacobian product with g.
    (&batch * &g).sum(Kind::Float).backward();
    sync(scene.device());
    let t4 = Instant::now();
    {
        let _guard = tch::no_grad_guard();
        for t in [&mut scene.points, &mut scene.widths, &mut scene.colors] {
            let upd = t.grad().sign() * 0.01; // an Adam-sized elementwise update
            let _ = t.f_sub_(&upd)?;
            let _ = t.grad().f_zero_()?;
        }
        scene.clamp_(1.0, 50.0)?;
    }
    sync(scene.device());
    let t5 = Instant::now();
    p.raster_fwd = (t1 - t0).as_secs_f64();
    p.aug_fwd = (t2 - t1).as_secs_f64();
    p.clip = (t3 - t2).as_secs_f64();
    p.rest_bwd = (t4 - t3).as_secs_f64();
    p.step = (t5 - t4).as_secs_f64();
    Ok(p)
}

fn measure(model: &ClipModel, mut scene: Scene, text: &Tensor) -> Result<Parts> {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
    one_iteration(model, &mut scene, text, &mut rng)?; // warm-up
    let mut sum = Parts::default();
    for _ in 0..REPS {
        let p = one_iteration(model, &mut scene, text, &mut rng)?;
        sum.raster_fwd += p.raster_fwd / REPS as f64;
        sum.aug_fwd += p.aug_fwd / REPS as f64;
        sum.clip += p.clip / REPS as f64;
        sum.rest_bwd += p.rest_bwd / REPS as f64;
        sum.step += p.step / REPS as f64;
    }
    Ok(sum)
}

fn peak_rss_bytes() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let l = s.lines().find(|l| l.starts_with("VmHWM:"))?;
    Some(l.split_whitespace().nth(1)?.parse::<u64>().ok()? * 1024)
}

fn main() -> Result<()> {
    let model_path =
        std::env::var_os("CLIPDRAW_BENCH_MODEL").map(PathBuf::from).unwrap_or_else(|| {
            PathBuf::from(std::env::var("HOME").unwrap_or_default())
                .join(".cache/clipdraw/models/ViT-B-32-random.pt")
        });
    let req: DeviceRequest =
        std::env::var("CLIPDRAW_BENCH_DEVICE").unwrap_or("auto".into()).parse()?;
    let dev = device::resolve(req)?.device;
    let model = ClipModel::load(&model_path, dev).with_context(|| {
        "benchmark model (export one with scripts/export_clip.py --random-init)"
    })?;
    let text = model.embed_prompts(&["a drawing of a cat"])?;
    let s = model.info().image_size;
    let canvas = Canvas { width: s, height: s };
    println!(
        "model {} on {dev:?}, {STROKES} strokes, {AUGS} augmentations, {s} px, mean of {REPS} iterations (after 1 warm-up)\n",
        model.info().architecture
    );
    println!("| drawing | total s/it | CLIP fwd+bwd | raster fwd | aug fwd | raster+aug bwd | step | everything else | else / CLIP |");
    println!("| --- | --- | --- | --- | --- | --- | --- | --- | --- |");
    for (name, scene) in [
        ("init", Scene::random(1, STROKES, canvas, 0, dev)?),
        ("grown", Scene::grown(1, STROKES, canvas, 0, dev)?),
    ] {
        let p = measure(&model, scene, &text)?;
        println!(
            "| {name} | {:.3} | {:.3} | {:.3} | {:.3} | {:.3} | {:.3} | {:.3} | {:.0} % |",
            p.total(),
            p.clip,
            p.raster_fwd,
            p.aug_fwd,
            p.rest_bwd,
            p.step,
            p.other(),
            100.0 * p.other() / p.clip
        );
    }

    // A default drawing through the library's entry point, for its memory peak.
    let iters =
        std::env::var("CLIPDRAW_BENCH_ITERS").ok().and_then(|v| v.parse().ok()).unwrap_or(5);
    let mut request = DrawRequest::new("a drawing of a cat");
    request.strokes = STROKES;
    request.settings.iters = iters;
    let drawing = clipdraw::draw(&model, &request, |_| Control::Continue)?;
    let per = drawing.record.timings.as_ref().map_or(f64::NAN, |t| t.per_iteration.total_s);
    println!(
        "\ndefault loop: {iters} iterations, {per:.3} s/it ({:.2} it/s); peak RSS of this process {:.2} GiB",
        1.0 / per,
        peak_rss_bytes().unwrap_or(0) as f64 / (1u64 << 30) as f64
    );
    if dev.is_cuda() {
        println!("(GPU memory is not in RSS; see nvidia-smi)");
    }
    Ok(())
}
