//! clipdraw: text-to-drawing with CLIPDraw (Frans, Soros & Witkowski, NeurIPS 2022).
//!
//! One call makes a drawing: [`draw`] takes a model and a [`DrawRequest`] and returns
//! a [`Drawing`] with its [`Record`]; [`output::write_drawing`] writes it as SVG, PNG
//! and JSON.
//!
//! ```no_run
//! # fn main() -> anyhow::Result<()> {
//! let model = clipdraw::ClipModel::builtin(tch::Device::Cpu)?;
//! let drawing = clipdraw::draw(&model, &clipdraw::DrawRequest::new("a red star"), |_| {
//!     clipdraw::Control::Continue
//! })?;
//! std::fs::write("star.svg", drawing.svg()?.unwrap_or_default())?;
//! # Ok(())
//! # }
//! ```
//!
//! Data flows one way: prompt → tokens → text features; scene → raster → augmented
//! batch → image features → loss → scene. Modules by stage:
//!
//! | module | job |
//! | --- | --- |
//! | [`request`] | what a drawing asks for, its settings and their limits |
//! | [`pipeline`] | [`draw`]: one drawing from request to record |
//! | [`record`] | the typed record, written into SVG and sidecar and read back |
//! | [`model`] | model files, the built-in model, image and text embeddings |
//! | [`tokenizer`] | CLIP's BPE tokenizer |
//! | [`scene`] | strokes as tensors: init, clamps, from and to plain strokes |
//! | [`init`] | where a drawing starts: initial SVGs, any canvas, length scaling |
//! | [`constraints`] | palettes, opacity, frozen strokes: what the loop may change |
//! | [`background`] | a fixed picture under the strokes |
//! | [`raster`] | the differentiable rasterizer |
//! | [`augment`] | perspective and crop augmentations on the device |
//! | [`optimize`] | the loop, Adam and the score |
//! | [`svg`] | scenes as SVG and back |
//! | [`output`] | atomic writes, PNG encoding, reading images |
//! | [`panics`] | panics in tch and resvg on hostile input, caught as errors |
//! | [`signals`] | SIGINT, SIGTERM and SIGHUP: stop, save, exit 128 + signal |
//! | [`device`] | choosing a device |
//! | [`watch`] | watching a run: terminal preview, preview PNG, timelapse, frames |
//! | [`batch`] | `clipdraw batch`: job lists, resuming, shards, the gallery |
//!
//! Shape letters mean the same in every module: `N` drawings, `S` strokes per
//! drawing, `P` = 10 control points per stroke, `H`×`W` canvas pixels (height
//! first), `D` augmentations per drawing, `B` images (or prompts) in a model batch,
//! `V` the model's square input side, `C` token context length, `E` embedding size,
//! `Q` negative prompts. The rasterizer adds its own: `L` curve samples, `M` line
//! pieces, `G` fragments, `F` edge fragments, `U` covered pixels.

pub mod augment;
pub mod background;
pub mod batch;
pub mod constraints;
pub mod device;
#[doc(hidden)]
pub mod fuzz;
pub mod init;
pub mod model;
pub mod optimize;
pub mod output;
pub mod panics;
pub mod pipeline;
pub mod raster;
pub mod record;
pub mod request;
pub mod scene;
pub mod signals;
pub mod svg;
pub mod tokenizer;
pub mod watch;

pub use model::ClipModel;
pub use optimize::{Control, Step};
pub use pipeline::{draw, Drawing};
pub use record::Record;
pub use request::{DrawRequest, Representation, Settings};
