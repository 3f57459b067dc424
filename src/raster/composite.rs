//! The differentiable stage: from the plan and the scene's tensors to the image,
//! on the scene's device. Alpha is the stroke's opacity, times the coverage for
//! edge fragments; fragments are composited "over" white with the transmittance
//! above each taken from a cumulative sum of log(1 − α).

use anyhow::Result;
use tch::{Kind, Tensor};

use super::coverage::coverage;
use super::plan::Plan;
use crate::scene::{Scene, POINTS_PER_STROKE};

/// Alpha is capped just below 1 so that log(1 − α) stays finite.
const MAX_ALPHA: f64 = 1.0 - 1e-6;

/// (N, 3, H, W) from the scene's tensors and its plan; N = `n` drawings of S = `s`
/// strokes; over white, or over `background` ((1, 3, H, W) in the scene's dtype,
/// on its device, the same for every drawing).
pub(super) fn render(
    scene: &Scene,
    plan: &Plan,
    n: i64,
    s: i64,
    background: Option<&Tensor>,
) -> Result<Tensor> {
    let dev = scene.device();
    let kind = scene.points.f_kind()?;
    let (h, w) = (scene.canvas.height, scene.canvas.width);
    let ints = |v: &[i64]| -> Result<Tensor> { Ok(Tensor::f_from_slice(v)?.f_to_device(dev)?) };
    let floats = |v: &[f64]| -> Result<Tensor> {
        let t = if kind == Kind::Float {
            Tensor::f_from_slice(&v.iter().map(|&x| x as f32).collect::<Vec<f32>>())?
        } else {
            Tensor::f_from_slice(v)?
        };
        Ok(t.f_to_device(dev)?)
    };
    let npix = n * h * w;
    let g = plan.fragments as i64;
    // (3, N·H·W), channel-major like the paint below.
    let bg_flat = match background {
        Some(b) => Some(
            b.f_expand([n, 3, h, w], false)?
                .f_permute([1, 0, 2, 3])?
                .f_contiguous()?
                .f_view([3, npix])?,
        ),
        None => None,
    };
    if g == 0 {
        let white = match background {
            Some(b) => b.f_expand([n, 3, h, w], false)?.f_contiguous()?,
            None => Tensor::f_ones([n, 3, h, w], (kind, dev))?,
        };
        // Nothing covers any pixel; keep the graph so callers can still backward.
        let mut zero = scene.points.f_sum(kind)?.f_mul_scalar(0.0)?;
        for t in [&scene.widths, &scene.colors] {
            zero = zero.f_add(&t.f_sum(kind)?.f_mul_scalar(0.0)?)?;
        }
        return Ok(white.f_add(&zero)?);
    }
    let colors = scene.colors.f_reshape([n * s, 4])?; // (N·S, 4)

    // Alpha: the stroke's opacity deep inside it, coverage·opacity near its edges.
    let opacity = colors.f_select(1, 3)?.f_clamp(0.0, MAX_ALPHA)?; // (N·S)
    let frag_stroke = plan.frag_stroke.f_to_device(dev)?;
    let mut alpha = opacity.f_index_select(0, &frag_stroke)?; // (G)
    let nedge = plan.edge_pos.len() as i64;
    if nedge > 0 {
        let nsample = (plan.sample_weights.len() / 4) as i64;
        let pts = scene.points.f_reshape([n * s * POINTS_PER_STROKE, 2])?; // (N·S·P, 2)
        let ctrl = pts.f_index_select(0, &ints(&plan.sample_ctrl)?)?.f_view([nsample, 4, 2])?; // (L, 4, 2)
        let wts = floats(&plan.sample_weights)?.f_view([nsample, 4, 1])?; // (L, 4, 1)
        let samples = ctrl.f_mul(&wts)?.f_sum_dim_intlist(1, false, kind)?; // (L, 2)
                                                                            // Each row: a sample and the next, i.e. a piece's [A, B].
        let (from, to) =
            (samples.f_narrow(0, 0, nsample - 1)?, samples.f_narrow(0, 1, nsample - 1)?);
        let pairs = Tensor::f_cat(&[from, to], 1)?; // (L−1, 4)
        let ab = pairs.f_index_select(0, &ints(&plan.edge_sample)?)?; // (F, 4)
        let coef = floats(&plan.edge_coef)?.f_view([nedge, 4])?; // (F, 4)
        let dist =
            floats(&plan.edge_cp)?.f_sub(&ab.f_mul(&coef)?.f_sum_dim_intlist(1, false, kind)?)?; // (F)
        let edge_stroke = ints(&plan.edge_stroke)?;
        let half_w =
            scene.widths.f_reshape([n * s])?.f_mul_scalar(0.5)?.f_index_select(0, &edge_stroke)?; // (F)
        let edge_alpha = coverage(&half_w, &dist, plan.has_thin)?
            .f_clamp(0.0, 1.0)?
            .f_mul(&opacity.f_index_select(0, &edge_stroke)?)?; // (F)
        alpha = alpha.f_index_put(&[Some(ints(&plan.edge_pos)?)], &edge_alpha, false)?;
    }

    // Transmittance above each fragment from a cumulative sum of log(1 − α) in f64
    // (in f32 the running sum over all pixels would lose digits).
    let log_t = alpha.f_neg()?.f_log1p()?.f_to_kind(Kind::Double)?; // (G)
    let cum = log_t.f_cumsum(0, Kind::Double)?; // (G)
    let cum_end = cum.f_index_select(0, &plan.frag_run_end.f_to_device(dev)?)?; // (G)
    let above = cum_end.f_sub(&cum)?.f_exp()?.f_to_kind(kind)?; // (G)

    // Over white, a pixel is 1 + Σ_i α_i·above_i·(c_i − 1): the weights α_i·above_i
    // sum to 1 − Π(1 − α), so the background needs no term of its own. Channel-major
    // layouts keep every big op contiguous, forward and backward.
    let frag_pixel = plan.frag_pixel.f_to_device(dev)?;
    let pixel = frag_pixel.f_expand([3, g], false)?; // (3, G)
    let image = match &bg_flat {
        None => {
            let tint =
                colors.f_narrow(1, 0, 3)?.f_sub_scalar(1.0)?.f_transpose(0, 1)?.f_contiguous()?; // (3, N·S)
            let paint = tint.f_index_select(1, &frag_stroke)?.f_mul(&alpha.f_mul(&above)?)?; // (3, G)
            Tensor::f_zeros([3, npix], (kind, dev))?
                .f_scatter_add(1, &pixel, &paint)?
                .f_add_scalar(1.0)? // (3, N·H·W)
        }
        Some(bg) => {
            // Over a background B the same sum is B + Σ_i α_i·above_i·(c_i − B): the
            // tint belongs to the fragment's pixel, not to the stroke alone.
            let rgb = colors.f_narrow(1, 0, 3)?.f_transpose(0, 1)?.f_contiguous()?; // (3, N·S)
            let tint =
                rgb.f_index_select(1, &frag_stroke)?.f_sub(&bg.f_index_select(1, &frag_pixel)?)?; // (3, G)
            let paint = tint.f_mul(&alpha.f_mul(&above)?)?; // (3, G)
            bg.f_scatter_add(1, &pixel, &paint)? // (3, N·H·W)
        }
    };
    Ok(image
        .f_view([3, n, h, w])?
        .f_permute([1, 0, 2, 3])? // (N, 3, H, W)
        .f_contiguous()?)
}

#[cfg(test)]
mod tests {
    use tch::{Device, Kind, Tensor};

    use crate::raster::rasterize;
    use crate::raster::testutil::{line, pixels, scene_of};
    use crate::scene::{Canvas, Scene};

    #[test]
    fn a_stroke_over_itself_is_not_darker_and_order_matters() {
        let c = Canvas::new(24, 24).unwrap();
        // Out along y = 12 and back: the stroke covers its band twice.
        let cp = [
            [4.0, 12.0],
            [10.0, 12.0],
            [14.0, 12.0],
            [20.0, 12.0],
            [14.0, 12.0],
            [10.0, 12.0],
            [4.0, 12.0],
        ];
        let half = scene_of(c, &[(&cp, 4.0, [0.0, 0.0, 0.0, 0.5])], Kind::Double);
        let img = pixels(&rasterize(&half).unwrap());
        assert!((img[12 * 24 + 12] - 0.5).abs() < 1e-6, "got {}", img[12 * 24 + 12]);

        let red = line(2.0, 12.0, 22.0, 12.0);
        let blue = line(12.0, 2.0, 12.0, 22.0);
        let rb = scene_of(
            c,
            &[(&red, 6.0, [1.0, 0.0, 0.0, 1.0]), (&blue, 6.0, [0.0, 0.0, 1.0, 0.5])],
            Kind::Double,
        );
        let img = pixels(&rasterize(&rb).unwrap());
        let px = |ch: usize| img[ch * 576 + 12 * 24 + 12];
        // Blue at half opacity over opaque red.
        assert!((px(0) - 0.5).abs() < 1e-5 && px(1).abs() < 1e-5 && (px(2) - 0.5).abs() < 1e-5);
    }

    #[test]
    fn over_a_background_the_tint_is_per_pixel() {
        let c = Canvas::new(24, 24).unwrap();
        let seg = line(2.0, 12.0, 22.0, 12.0);
        let scene = scene_of(c, &[(&seg, 6.0, [1.0, 0.0, 0.0, 0.5])], Kind::Double);
        // Over constant white, the background path agrees with the white one.
        let white = Tensor::ones([1, 3, 24, 24], (Kind::Double, Device::Cpu));
        let a = rasterize(&scene).unwrap();
        let b = crate::raster::rasterize_over(&scene, &white).unwrap();
        assert!((a - &b).abs().max().double_value(&[]) < 1e-12);
        // Over a blue-green gradient: half red over B is (B + red) / 2, and B elsewhere.
        let bg = Tensor::linspace(0.0, 1.0, 24, (Kind::Double, Device::Cpu))
            .view([1, 1, 1, 24])
            .expand([1, 3, 24, 24], false)
            * Tensor::from_slice(&[0.0f64, 0.6, 1.0]).view([1, 3, 1, 1]);
        let img = pixels(&crate::raster::rasterize_over(&scene, &bg).unwrap());
        let bgv = pixels(&bg);
        for ch in 0..3 {
            let i = ch * 576 + 12 * 24 + 12;
            let want = (bgv[i] + [1.0, 0.0, 0.0][ch]) / 2.0;
            assert!((img[i] - want).abs() < 1e-6, "channel {ch}: {} vs {want}", img[i]);
            let far = ch * 576 + 2 * 24 + 5;
            assert_eq!(img[far], bgv[far], "far from the stroke the background shows");
        }
    }

    #[test]
    fn batches_render_like_single_drawings() {
        let c = Canvas::new(40, 30).unwrap();
        let scene = Scene::grown(3, 6, c, 5, Device::Cpu).unwrap();
        let all = rasterize(&scene).unwrap();
        assert_eq!(all.size(), vec![3, 3, 30, 40]);
        for d in 0..3 {
            let one = rasterize(&scene.select(d).unwrap()).unwrap();
            let diff = (all.narrow(0, d, 1) - one).abs().max().double_value(&[]);
            assert!(diff < 1e-6, "drawing {d} differs by {diff}");
        }
    }

    /// Σ image·weights, the scalar the gradient checks differentiate.
    fn loss(scene: &Scene, weights: &Tensor) -> Tensor {
        (rasterize(scene).unwrap() * weights).sum(Kind::Double)
    }

    #[test]
    fn gradients_match_finite_differences() {
        let c = Canvas::new(20, 16).unwrap();
        let mut worst = 0.0f64;
        for seed in 0..3u64 {
            let base = if seed == 0 {
                Scene::random(1, 3, c, 11, Device::Cpu)
            } else {
                Scene::grown(1, 3, c, seed, Device::Cpu)
            };
            let mut scene = base.unwrap().to_kind(Kind::Double).unwrap();
            if seed == 0 {
                // Init strokes are 1 px; make one thin (0.6 px) and one 3 px.
                scene.widths = Tensor::from_slice(&[1.0f64, 0.6, 3.0]).view([1, 3]);
            } else {
                scene.widths = scene.widths.shallow_clone() * 0.3;
            }
            scene.colors = scene.colors.shallow_clone().clamp(0.2, 0.9);
            let weights = Tensor::randn([1, 3, 16, 20], (Kind::Double, Device::Cpu));
            scene.set_requires_grad(true);
            let l = loss(&scene, &weights);
            l.backward();
            for (name, param) in
                [("points", &scene.points), ("widths", &scene.widths), ("colors", &scene.colors)]
            {
                let grad = pixels(&param.grad());
                let flat = pixels(param);
                let mut fd = vec![0.0; flat.len()];
                let eps = 1e-5;
                for i in 0..flat.len() {
                    let eval = |delta: f64| {
                        let mut v = flat.clone();
                        v[i] += delta;
                        let t = Tensor::from_slice(&v).view(param.size().as_slice());
                        let s2 = Scene {
                            canvas: c,
                            points: if name == "points" {
                                t.shallow_clone()
                            } else {
                                scene.points.detach()
                            },
                            segments: scene.segments.shallow_clone(),
                            widths: if name == "widths" {
                                t.shallow_clone()
                            } else {
                                scene.widths.detach()
                            },
                            colors: if name == "colors" {
                                t.shallow_clone()
                            } else {
                                scene.colors.detach()
                            },
                        };
                        loss(&s2, &weights).double_value(&[])
                    };
                    fd[i] = (eval(eps) - eval(-eps)) / (2.0 * eps);
                }
                let norm = fd.iter().map(|v| v * v).sum::<f64>().sqrt().max(1e-9);
                let err =
                    grad.iter().zip(&fd).map(|(a, b)| (a - b).powi(2)).sum::<f64>().sqrt() / norm;
                worst = worst.max(err);
                assert!(err < 1e-4, "seed {seed}: {name} gradient off by {err:.2e} (relative L2)");
            }
        }
        eprintln!("gradient check: worst relative L2 error {worst:.2e}");
    }

    #[test]
    fn strokes_off_canvas_leave_it_white_and_differentiable() {
        let c = Canvas::new(8, 8).unwrap();
        let seg = line(-50.0, -50.0, -40.0, -45.0);
        let mut scene = scene_of(c, &[(&seg, 2.0, [0.0, 0.0, 0.0, 1.0])], Kind::Float);
        scene.set_requires_grad(true);
        let img = rasterize(&scene).unwrap();
        assert!(pixels(&img).iter().all(|&v| v == 1.0));
        img.sum(Kind::Float).backward();
        assert!(pixels(&scene.points.grad()).iter().all(|&v| v == 0.0));
    }
}
