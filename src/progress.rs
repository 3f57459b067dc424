//! What `clipdraw batch` shows while it runs, and how it is stopped: progress bars
//! on a terminal, one JSON line per written drawing with `--json`, nothing
//! otherwise (stop signals are `clipdraw::signals`).

use std::io::IsTerminal;

use clipdraw::batch::{Job, Progress};
use clipdraw::output::OutputPaths;
use clipdraw::Record;
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};

/// Bars and JSON lines for a batch.
pub struct BatchProgress {
    multi: MultiProgress,
    overall: ProgressBar,
    current: Vec<ProgressBar>,
    json: bool,
    visible: bool,
}

impl BatchProgress {
    pub fn new(quiet: bool, json: bool) -> Self {
        // Drawn on stderr, so shown only when stderr is a terminal.
        let visible = !quiet && std::io::stderr().is_terminal();
        let multi = MultiProgress::new();
        if !visible {
            multi.set_draw_target(indicatif::ProgressDrawTarget::hidden());
        }
        let overall = multi.add(ProgressBar::new(0));
        if let Ok(style) =
            ProgressStyle::with_template("jobs {bar:30.green/white} {pos}/{len} ETA {eta} {msg}")
        {
            overall.set_style(style.progress_chars("=> "));
        }
        Self { multi, overall, current: Vec::new(), json, visible }
    }

    pub fn finish(&self) {
        self.overall.finish_and_clear();
        let _ = self.multi.clear();
    }
}

impl Progress for BatchProgress {
    fn begin(&mut self, total: usize, done: usize) {
        self.overall.set_length(total as u64);
        self.overall.set_position(done as u64);
        self.overall.reset_eta();
        if done > 0 {
            self.overall.set_message(format!("({done} already done)"));
        }
    }

    fn group(&mut self, jobs: &[&Job], from: u32, iters: u32) {
        for bar in self.current.drain(..) {
            bar.finish_and_clear();
            self.multi.remove(&bar);
        }
        if !self.visible {
            return;
        }
        for job in jobs {
            let bar = self.multi.add(ProgressBar::new(iters as u64));
            if let Ok(style) = ProgressStyle::with_template(
                "{bar:30.cyan/blue} {pos}/{len} {prefix} {msg} {per_sec}",
            ) {
                bar.set_style(style.progress_chars("=> "));
            }
            bar.set_prefix(job.stem.clone());
            bar.set_position(from as u64);
            self.current.push(bar);
        }
    }

    fn step(&mut self, iter: u32, scores: &[f64]) {
        for (bar, s) in self.current.iter().zip(scores) {
            bar.set_position(iter as u64);
            bar.set_message(format!("similarity {s:.4}"));
        }
    }

    fn written(&mut self, job: &Job, record: &Record, paths: &OutputPaths) {
        if record.ending != clipdraw::optimize::Ending::Interrupted {
            self.overall.inc(1);
        }
        if self.json {
            let line = serde_json::json!({
                "stem": job.stem, "job": job.origin, "prompt": record.prompt, "seed": record.seed,
                "svg": record.strokes.map(|_| &paths.svg), "png": paths.png, "json": paths.json,
                "final_score": record.final_score, "iterations_done": record.iterations_done,
                "ending": record.ending,
            });
            self.multi.suspend(|| println!("{line}"));
        }
    }
}
