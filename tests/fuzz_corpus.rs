//! Replays every committed fuzz input (fuzz/corpus/TARGET/*: the seeds and every
//! crash a fuzzing run found; fuzz/slow/TARGET/*: inputs that once took seconds,
//! kept out of the fuzzers' seeds because they would slow every run to a crawl)
//! through the target's body, on the stable toolchain, so that CI guards what the
//! fuzzers found without fuzzing (scripts/fuzz.sh).

use std::path::Path;

#[test]
fn every_committed_fuzz_input_replays_without_a_panic() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    let mut replayed = Vec::new();
    for (name, body) in clipdraw::fuzz::TARGETS {
        assert!(
            root.join("fuzz_targets").join(format!("{name}.rs")).is_file(),
            "target {name} has no fuzz/fuzz_targets/{name}.rs"
        );
        let dir = root.join("corpus").join(name);
        let mut inputs: Vec<_> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|e| e.unwrap().path())
            .collect();
        if let Ok(slow) = std::fs::read_dir(root.join("slow").join(name)) {
            inputs.extend(slow.map(|e| e.unwrap().path()));
        }
        inputs.sort();
        assert!(!inputs.is_empty(), "{} has no inputs", dir.display());
        for input in &inputs {
            let data = std::fs::read(input).unwrap();
            let result = std::panic::catch_unwind(|| body(&data));
            assert!(result.is_ok(), "{name}: {} panics", input.display());
        }
        replayed.push(format!("{name}: {}", inputs.len()));
    }
    // Every target directory belongs to a target in TARGETS.
    let dirs = std::fs::read_dir(root.join("fuzz_targets")).unwrap().count();
    assert_eq!(dirs, clipdraw::fuzz::TARGETS.len(), "a fuzz target is missing from TARGETS");
    eprintln!("replayed {}", replayed.join(", "));
}
