//! Stroke constraints and frozen strokes: [`Constrained`] wraps a scene for the
//! optimisation loop when a drawing has a palette, fixed opacity, frozen strokes
//! or a background; plain drawings optimise the bare [`Scene`] as before.
//!
//! Palette: each stroke holds K logits, one per palette colour; its colour is
//! `softmax(logits / τ) · palette`, so gradients reach every choice. τ falls
//! geometrically from [`TAU_START`] to [`TAU_END`] over the run, which turns the
//! mixture into (nearly) one colour per stroke while CLIP still judges it; at the
//! end every stroke is snapped to its most likely colour, so the written SVG uses
//! palette colours only. Logits start from the stroke's initial colour (the nearer
//! a palette colour, the likelier), so a random init still starts varied.
//!
//! Shapes (the legend in `lib.rs`): `N` = 1 drawing, `S` strokes, `P` = 10 points;
//! `K` palette colours.

use anyhow::{bail, Result};
use tch::{Kind, Tensor};

use crate::optimize::Trainable;
use crate::raster;
use crate::request::Settings;
use crate::scene::Scene;

/// Palette temperature at the first and the last iteration.
pub const TAU_START: f64 = 1.0;
pub const TAU_END: f64 = 0.02;
/// Adam learning rate of the palette logits.
pub const LR_LOGITS: f64 = 0.1;
/// Initial logits are −this × the squared RGB distance to each palette colour.
const LOGIT_SHARPNESS: f64 = 8.0;

/// Which colours strokes may take.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ColorRule {
    /// Any RGB colour (CLIPDraw).
    #[default]
    Any,
    /// Black only.
    Black,
    /// One of these `#rrggbb` colours per stroke.
    Palette(Vec<String>),
}

impl ColorRule {
    pub fn is_any(&self) -> bool {
        *self == ColorRule::Any
    }

    /// The palette's colours as RGB in [0, 1]; `None` for any colour.
    pub fn palette(&self) -> Result<Option<Vec<[f32; 3]>>> {
        match self {
            ColorRule::Any => Ok(None),
            ColorRule::Black => Ok(Some(vec![[0.0; 3]])),
            ColorRule::Palette(v) => {
                if v.is_empty() {
                    bail!("the palette is empty");
                }
                v.iter().map(|s| parse_hex(s)).collect::<Result<Vec<_>>>().map(Some)
            }
        }
    }

    pub fn check(&self) -> Result<()> {
        self.palette().map(|_| ())
    }

    /// `any`, `black`, or comma-separated `#rrggbb` (or `#rgb`) colours.
    pub fn parse(s: &str) -> Result<ColorRule> {
        match s.trim() {
            "any" => return Ok(ColorRule::Any),
            "black" => return Ok(ColorRule::Black),
            _ => {}
        }
        let mut colors = Vec::new();
        for entry in s.split(',') {
            let [r, g, b] = parse_hex(entry.trim())?;
            let hex = |c: f32| (c * 255.0).round() as u8;
            colors.push(format!("#{:02x}{:02x}{:02x}", hex(r), hex(g), hex(b)));
        }
        Ok(ColorRule::Palette(colors))
    }
}

fn parse_hex(entry: &str) -> Result<[f32; 3]> {
    let bad = || {
        anyhow::anyhow!(
            "palette entry {entry:?} is not a colour: expected #rrggbb or #rgb (or any, black)"
        )
    };
    let hex = entry.strip_prefix('#').ok_or_else(bad)?;
    if !hex.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(bad());
    }
    let digits: Vec<u8> = match hex.len() {
        6 => {
            (0..3).map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16)).collect::<Result<_, _>>()
        }
        3 => hex.chars().map(|c| u8::from_str_radix(&format!("{c}{c}"), 16)).collect(),
        _ => return Err(bad()),
    }
    .map_err(|_| bad())?;
    Ok([digits[0] as f32 / 255.0, digits[1] as f32 / 255.0, digits[2] as f32 / 255.0])
}

/// Whether strokes keep their own opacity.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OpacityRule {
    /// Opacity is optimised like the colour (CLIPDraw).
    #[default]
    Free,
    /// Every stroke is fully opaque.
    Opaque,
}

impl OpacityRule {
    pub fn is_free(&self) -> bool {
        *self == OpacityRule::Free
    }
}

/// A scene with its constraints, as the loop optimises it.
pub struct Constrained {
    /// The live strokes. With a palette, the RGB of unfrozen strokes shows the
    /// current mixture (kept up to date after each step, for previews).
    pub scene: Scene,
    /// The first `frozen` strokes never change.
    frozen: i64,
    /// Their points, widths and colours, restored after every step.
    keep: Option<(Tensor, Tensor, Tensor)>,
    /// (K, 3) palette colours, and (1, S, K) logits.
    palette: Option<(Tensor, Tensor)>,
    opaque: bool,
    /// (1, 3, H, W) on the scene's device.
    background: Option<Tensor>,
    /// Palette temperature of the next render.
    tau: f64,
}

impl Constrained {
    /// `scene` (N = 1) with its first `frozen` strokes fixed, under `settings`'
    /// colour and opacity rules, over `background` ((1, 3, H, W)) if any. Unfrozen
    /// widths start inside the width range.
    pub fn new(
        mut scene: Scene,
        frozen: i64,
        settings: &Settings,
        background: Option<Tensor>,
    ) -> Result<Self> {
        let (n, s) = scene.check()?;
        if n != 1 || !(0..=s).contains(&frozen) {
            bail!("cannot freeze {frozen} of {s} strokes in {n} drawings (one drawing only)");
        }
        let free = s - frozen;
        let _guard = tch::no_grad_guard();
        let rows = |t: &Tensor| -> Result<Tensor> { Ok(t.f_narrow(1, frozen, free)?) };
        let _ = rows(&scene.widths)?.f_clamp_(settings.min_width_px, settings.max_width_px)?;
        let opaque = settings.opacity == OpacityRule::Opaque;
        if opaque {
            let _ = rows(&scene.colors)?.f_narrow(2, 3, 1)?.f_fill_(1.0)?;
        }
        let keep = if frozen > 0 {
            let head =
                |t: &Tensor| -> Result<Tensor> { Ok(t.f_narrow(1, 0, frozen)?.f_detach_copy()?) };
            Some((head(&scene.points)?, head(&scene.widths)?, head(&scene.colors)?))
        } else {
            None
        };
        let dev = scene.device();
        let palette = match settings.colors.palette()? {
            None => None,
            Some(p) => {
                let k = p.len() as i64;
                let flat: Vec<f32> = p.iter().flatten().copied().collect();
                let pal = Tensor::f_from_slice(&flat)?.f_view([k, 3])?.f_to_device(dev)?; // (K, 3)
                let rgb = scene.colors.f_narrow(2, 0, 3)?.f_unsqueeze(2)?; // (1, S, 1, 3)
                let dist = rgb.f_sub(&pal.f_view([1, 1, k, 3])?)?.f_square()?.f_sum_dim_intlist(
                    3,
                    false,
                    Kind::Float,
                )?; // (1, S, K)
                Some((pal, dist.f_mul_scalar(-LOGIT_SHARPNESS)?.f_contiguous()?))
            }
        };
        scene.set_requires_grad(false);
        let mut c = Self { scene, frozen, keep, palette, opaque, background, tau: TAU_START };
        c.show_mixture()?;
        Ok(c)
    }

    /// (1, S, 3): the colours strokes are drawn with at temperature `tau`.
    fn rgb(&self, tau: f64) -> Result<Tensor> {
        let own = self.scene.colors.f_narrow(2, 0, 3)?; // (1, S, 3)
        let Some((pal, logits)) = &self.palette else { return Ok(own) };
        let weights = logits.f_div_scalar(tau)?.f_softmax(2, Kind::Float)?; // (1, S, K)
        let mix = weights.f_matmul(pal)?; // (1, S, 3)
        let s = self.scene.num_strokes();
        let free = mix.f_narrow(1, self.frozen, s - self.frozen)?;
        Ok(Tensor::f_cat(&[own.f_narrow(1, 0, self.frozen)?, free], 1)?)
    }

    /// Writes the current mixture into the scene's unfrozen RGB (no grad).
    fn show_mixture(&mut self) -> Result<()> {
        if self.palette.is_none() {
            return Ok(());
        }
        let _guard = tch::no_grad_guard();
        let rgb = self.rgb(self.tau)?;
        let _ = self.scene.colors.f_narrow(2, 0, 3)?.f_copy_(&rgb)?;
        Ok(())
    }

    /// The final strokes: palette colours snapped to each stroke's likeliest one,
    /// frozen strokes exactly as they came.
    pub fn finish(mut self) -> Result<Scene> {
        let _guard = tch::no_grad_guard();
        self.scene.set_requires_grad(false);
        if let Some((pal, logits)) = &self.palette {
            let pick = logits.f_argmax(2, false)?; // (1, S)
            let snapped = pal.f_index_select(0, &pick.f_flatten(0, -1)?)?.f_unsqueeze(0)?; // (1, S, 3)
            let s = self.scene.num_strokes();
            let free = snapped.f_narrow(1, self.frozen, s - self.frozen)?;
            let _ = self
                .scene
                .colors
                .f_narrow(1, self.frozen, s - self.frozen)?
                .f_narrow(2, 0, 3)?
                .f_copy_(&free)?;
        }
        self.restore()?;
        Ok(self.scene)
    }

    /// Puts the frozen strokes back and the unfrozen opacities to 1 if opaque.
    fn restore(&mut self) -> Result<()> {
        let s = self.scene.num_strokes();
        if self.opaque {
            let _ = self
                .scene
                .colors
                .f_narrow(1, self.frozen, s - self.frozen)?
                .f_narrow(2, 3, 1)?
                .f_fill_(1.0)?;
        }
        if let Some((p, w, c)) = &self.keep {
            let _ = self.scene.points.f_narrow(1, 0, self.frozen)?.f_copy_(p)?;
            let _ = self.scene.widths.f_narrow(1, 0, self.frozen)?.f_copy_(w)?;
            let _ = self.scene.colors.f_narrow(1, 0, self.frozen)?.f_copy_(c)?;
        }
        Ok(())
    }
}

impl Trainable for Constrained {
    fn size(&self) -> (i64, i64) {
        (self.scene.canvas.height, self.scene.canvas.width)
    }

    fn render(&self) -> Result<Tensor> {
        let alpha = self.scene.colors.f_narrow(2, 3, 1)?; // (1, S, 1)
        let colors = Tensor::f_cat(&[self.rgb(self.tau)?, alpha], 2)?; // (1, S, 4)
        let drawn = Scene::new(
            self.scene.canvas,
            self.scene.points.shallow_clone(),
            self.scene.segments.shallow_clone(),
            self.scene.widths.shallow_clone(),
            colors,
        )?;
        match &self.background {
            Some(bg) => raster::rasterize_over(&drawn, bg),
            None => raster::rasterize(&drawn),
        }
    }

    fn params(&self) -> Vec<&Tensor> {
        let mut params = vec![&self.scene.points, &self.scene.widths, &self.scene.colors];
        if let Some((_, logits)) = &self.palette {
            params.push(logits);
        }
        params
    }

    fn params_mut(&mut self, settings: &Settings, t: u32) -> Vec<(&mut Tensor, f64)> {
        // The loop asks for the parameters right before each step (iteration t,
        // 0-based): the temperature follows, and the next render uses it.
        let f = t as f64 / settings.iters.saturating_sub(1).max(1) as f64;
        self.tau = TAU_START * (TAU_END / TAU_START).powf(f.min(1.0));
        // Frozen rows get no gradient, so Adam's moments for them stay 0 and its
        // update is exactly 0; `clamp_` restores them anyway, so nothing can drift.
        let frozen = self.frozen;
        let mut params = vec![
            (&mut self.scene.points, settings.lr_points_at(t)),
            (&mut self.scene.widths, settings.lr_width),
            (&mut self.scene.colors, settings.lr_color),
        ];
        if let Some((_, logits)) = &mut self.palette {
            params.push((logits, LR_LOGITS));
        }
        if frozen > 0 {
            for (p, _) in &params {
                let g = p.grad();
                if g.defined() {
                    if let Ok(mut head) = g.f_narrow(1, 0, frozen) {
                        let _ = head.f_zero_();
                    }
                }
            }
        }
        params
    }

    fn clamp_(&mut self, settings: &Settings) -> Result<()> {
        self.scene.clamp_(settings.min_width_px, settings.max_width_px)?;
        let _guard = tch::no_grad_guard();
        self.restore()?;
        self.show_mixture()
    }

    fn set_requires_grad(&mut self, on: bool) {
        self.scene.set_requires_grad(on);
        if let Some((_, logits)) = &mut self.palette {
            *logits = logits.detach().set_requires_grad(on);
        }
    }

    fn snapshot(&self) -> Result<Self> {
        let copy = |t: &Tensor| t.f_detach_copy();
        let keep = match &self.keep {
            Some((p, w, c)) => Some((copy(p)?, copy(w)?, copy(c)?)),
            None => None,
        };
        let palette = match &self.palette {
            Some((p, l)) => Some((copy(p)?, copy(l)?)),
            None => None,
        };
        Ok(Self {
            scene: Trainable::snapshot(&self.scene)?,
            frozen: self.frozen,
            keep,
            palette,
            opaque: self.opaque,
            background: self.background.as_ref().map(Tensor::shallow_clone),
            tau: self.tau,
        })
    }

    fn all_finite(&self) -> Result<bool> {
        let logits_ok = match &self.palette {
            Some((_, l)) => l.f_isfinite()?.f_all()?.f_int64_value(&[])? != 0,
            None => true,
        };
        Ok(logits_ok && self.scene.all_finite()?)
    }

    fn scene(&self) -> Option<&Scene> {
        Some(&self.scene)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colour_rules_parse_and_name_the_bad_entry() {
        assert_eq!(ColorRule::parse("any").unwrap(), ColorRule::Any);
        assert_eq!(ColorRule::parse("black").unwrap().palette().unwrap(), Some(vec![[0.0; 3]]));
        let p = ColorRule::parse("#FF0000, #0f0").unwrap();
        assert_eq!(p, ColorRule::Palette(vec!["#ff0000".into(), "#00ff00".into()]));
        for (bad, needle) in [
            ("#ff0000,#12345", "\"#12345\""),
            ("red", "\"red\""),
            ("#ggg", "\"#ggg\""),
            ("#fff,", "\"\""),
        ] {
            let e = ColorRule::parse(bad).unwrap_err().to_string();
            assert!(e.contains(needle), "{bad}: {e}");
        }
    }
}
