//! The library in a few lines: one drawing with the built-in model, written as SVG.
//!
//!   cargo run --release --example draw -- "a red star on the left" star.svg [ITERS]

use anyhow::{Context, Result};
use clipdraw::{ClipModel, Control, DrawRequest};

fn main() -> Result<()> {
    let mut args = std::env::args().skip(1);
    let prompt = args.next().unwrap_or_else(|| "a red star on the left".into());
    let out = args.next().unwrap_or_else(|| "star.svg".into());
    let iters: u32 = args.next().map_or(Ok(100), |s| s.parse()).context("ITERS")?;

    let model = ClipModel::builtin(tch::Device::Cpu)?;
    let mut request = DrawRequest::new(prompt);
    request.strokes = 64;
    request.settings.iters = iters;

    let drawing = clipdraw::draw(&model, &request, |step| {
        if step.iter % 25 == 0 || step.iter == step.iters {
            eprintln!("step {}/{}: similarity {:.3}", step.iter, step.iters, step.score);
        }
        Control::Continue
    })?;
    let svg = drawing.svg()?.context("strokes always give an SVG")?;
    std::fs::write(&out, svg).with_context(|| format!("cannot write {out}"))?;
    println!("{out}: score {:.3}", drawing.record.final_score);
    Ok(())
}
