//! clipdraw: text-to-drawing with CLIPDraw (Frans, Soros & Witkowski, NeurIPS 2022).
//!
//! Data flows one way: prompt → tokens → text features; scene → raster → augmented
//! batch → image features → loss → scene. The binary (`src/main.rs`) only parses
//! flags, dispatches and prints.

pub mod augment;
pub mod cli;
pub mod device;
pub mod model;
pub mod optimize;
pub mod output;
pub mod raster;
pub mod scene;
pub mod svg;
pub mod tokenizer;
