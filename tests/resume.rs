//! Continuing a run from a saved loop state, through the library: stopped after
//! any iteration, saved to a checkpoint file and read back, a run ends with the
//! byte-identical SVG of an uninterrupted one, at batch size 1 and for a resumed
//! batch of 2. The oracle is the uninterrupted run itself.

use clipdraw::batch::checkpoint;
use clipdraw::optimize::LoopState;
use clipdraw::pipeline::draw_many;
use clipdraw::{ClipModel, Control, DrawRequest};
use tch::Device;

fn requests(seeds: &[u64]) -> Vec<DrawRequest> {
    seeds
        .iter()
        .map(|&s| {
            let mut r = DrawRequest::new(format!("a red star number {s}"));
            r.strokes = 10;
            r.settings.iters = 12;
            r.settings.augs = 2;
            r.settings.seed = s;
            r
        })
        .collect()
}

fn svgs(model: &ClipModel, reqs: &[DrawRequest], start: Option<&LoopState>) -> Vec<String> {
    let drawings = draw_many(model, reqs, start, |_| Control::Continue).unwrap();
    drawings.iter().map(|d| d.svg().unwrap().unwrap()).collect()
}

/// The state after iteration `k`, as it comes back from checkpoint files (one per
/// drawing, joined again as the batch runner does).
fn state_at(model: &ClipModel, reqs: &[DrawRequest], k: u32, dir: &std::path::Path) -> LoopState {
    let mut saved = None;
    let stopped = draw_many(model, reqs, None, |step| {
        if step.iter == k {
            saved = Some(step.state().unwrap());
            Control::Stop
        } else {
            Control::Continue
        }
    })
    .unwrap();
    assert_eq!(stopped[0].record.iterations_done, k);
    let state = saved.unwrap();
    let parts: Vec<LoopState> = (0..reqs.len())
        .map(|i| {
            let p = checkpoint::path(dir, &format!("job{i}"));
            checkpoint::write(&p, "fp", &checkpoint::select(&state, i).unwrap()).unwrap();
            checkpoint::read(&p).unwrap().unwrap().state
        })
        .collect();
    checkpoint::join(&parts).unwrap()
}

#[test]
fn a_run_resumed_after_any_iteration_ends_byte_identical() {
    let model = ClipModel::builtin(Device::Cpu).unwrap();
    let dir = tempfile::tempdir().unwrap();
    for (seeds, stops) in [(vec![3], vec![1, 7, 12]), (vec![0, 7], vec![5])] {
        let reqs = requests(&seeds);
        let want = svgs(&model, &reqs, None);
        for k in stops {
            let state = state_at(&model, &reqs, k, dir.path());
            assert_eq!(state.iter, k);
            assert!(
                svgs(&model, &reqs, Some(&state)) == want,
                "seeds {seeds:?}: resumed after {k} differs"
            );
        }
    }
}

#[test]
fn a_resume_that_loses_the_rng_position_or_adam_state_is_caught() {
    // Controls: the comparison above can fail. Without the augmentation RNG's
    // position, or with Adam's moments zeroed, the resumed drawing differs.
    let model = ClipModel::builtin(Device::Cpu).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let reqs = requests(&[3]);
    let want = svgs(&model, &reqs, None);
    let mut state = state_at(&model, &reqs, 6, dir.path());
    state.rng_word_pos = vec![0];
    assert!(svgs(&model, &reqs, Some(&state)) != want, "the RNG position does not matter?");
    let mut state = state_at(&model, &reqs, 6, dir.path());
    state.adam_m = state.adam_m.iter().map(|m| m.zeros_like()).collect();
    state.adam_v = state.adam_v.iter().map(|v| v.zeros_like()).collect();
    assert!(svgs(&model, &reqs, Some(&state)) != want, "Adam's state does not matter?");
}
