//! `clipdraw batch`: many drawings from a job list into one directory, resumable to
//! the iteration, sharded across processes, several drawings per forward pass.
//!
//! - [`jobs`]: job lists (text, JSONL, stdin) into checked jobs with unique stems.
//! - [`run`]: what is done, what to resume, drawing in batches, writing results.
//! - [`checkpoint`]: one job's loop state on disk, written atomically.
//! - [`shard`]: which jobs this process draws (`--shard`, Slurm, Kubernetes).
//! - [`gallery`]: `index.html` and `manifest.jsonl`, rebuilt from the sidecars.
//!
//! The JSON sidecars in the directory are the source of truth: a job is finished
//! when its sidecar carries its fingerprint and did not end interrupted; the
//! gallery and manifest are rebuilt from the sidecars alone.
//!
//! Determinism: at batch size 1 on the CPU, a job killed at any moment and resumed
//! ends with the byte-identical SVG of an uninterrupted run. At batch size N the
//! drawings of a batch share kernels whose summation order depends on the whole
//! batch (the rasterizer's compositing, the model's matrix products), so a drawing's
//! numbers can differ from its batch-size-1 run in the last bits, and after many
//! iterations by more; a resume is still exact when it resumes the same batch, which
//! a rerun of the same command does.

pub mod checkpoint;
pub mod gallery;
pub mod jobs;
pub mod run;
pub mod shard;

pub use jobs::{Defaults, Job};
pub use run::{run, Options, Progress, Summary};
pub use shard::Shard;
