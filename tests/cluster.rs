//! `clipdraw batch` under real cluster tools: a single-node Slurm cluster started
//! here (munge and the Slurm daemons run by hand, DESIGN.md section 6) running
//! `examples/slurm-array.sh`, and GNU parallel. Each checks that every job is drawn
//! exactly once, and that a task stopped mid-drawing and started again ends with
//! the byte-identical SVG of an uninterrupted run.

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use common::clipdraw;

fn bin() -> PathBuf {
    std::env::var_os("CLIPDRAW_TEST_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_clipdraw")))
}

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

fn must(cmd: &mut Command) -> String {
    let o = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(o.status.success(), "{cmd:?} failed: {}", text(&o));
    String::from_utf8_lossy(&o.stdout).to_string()
}

fn wait_until(what: &str, secs: u64, mut done: impl FnMut() -> bool) {
    let t0 = Instant::now();
    while !done() {
        assert!(t0.elapsed() < Duration::from_secs(secs), "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The stems in the JSON lines of `text` (other lines skipped).
fn stems_in(text: &str) -> Vec<String> {
    text.lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|v| v["stem"].as_str().map(String::from))
        .collect()
}

const STEMS4: [&str; 4] =
    ["a-red-star-s0", "a-blue-circle-s0", "a-green-heart-s0", "a-black-line-s0"];
const JOBS4: &str = "a red star\na blue circle\na green heart\na black line\n";
const LONG: [&str; 8] =
    ["--strokes", "24", "--iters", "200", "--augs", "2", "--checkpoint-every", "5"];
const LONG_STEM: &str = "a-red-star-on-the-left-s0";

/// An uninterrupted run of the long job in `dir/ref`: the oracle, and how long it took.
fn reference(dir: &Path) -> (Vec<u8>, Duration) {
    let t0 = Instant::now();
    std::fs::write(dir.join("one.txt"), "a red star on the left\n").unwrap();
    let o = clipdraw()
        .current_dir(dir)
        .args(["batch", "one.txt", "-o", "ref", "-q"])
        .args(LONG)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    (std::fs::read(dir.join("ref").join(format!("{LONG_STEM}.svg"))).unwrap(), t0.elapsed())
}

/// A Slurm cluster of one node, its files in a temporary directory; stopped on drop.
struct Cluster {
    dir: tempfile::TempDir,
    conf: PathBuf,
}

impl Cluster {
    fn start() -> Cluster {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let munge = d.join("munge");
        std::fs::create_dir(&munge).unwrap();
        must(Command::new("chmod").arg("755").arg(&munge));
        let key = munge.join("munge.key");
        must(Command::new("mungekey").arg("--create").arg(format!("--keyfile={}", key.display())));
        must(Command::new("chmod").arg("600").arg(&key));
        let socket = munge.join("munge.socket.2");
        must(
            Command::new("munged")
                .arg(format!("--key-file={}", key.display()))
                .arg(format!("--socket={}", socket.display()))
                .arg(format!("--pid-file={}", d.join("munged.pid").display()))
                .arg(format!("--log-file={}", d.join("munged.log").display()))
                .arg(format!("--seed-file={}", munge.join("munge.seed").display())),
        );
        let host = must(Command::new("hostname").arg("-s")).trim().to_string();
        let node = must(Command::new("slurmd").arg("-C"));
        let node = node
            .lines()
            .find(|l| l.starts_with("NodeName="))
            .expect("slurmd -C prints the node")
            .to_string();
        let p = |name: &str| d.join(name).display().to_string();
        for sub in ["state", "spool"] {
            std::fs::create_dir(d.join(sub)).unwrap();
        }
        let conf = d.join("slurm.conf");
        std::fs::write(
            &conf,
            format!(
                "ClusterName=clipdrawtest\nSlurmctldHost={host}\nSlurmUser=root\nSlurmdUser=root\n\
                 AuthType=auth/munge\nAuthInfo=socket={socket}\nCredType=cred/munge\n\
                 ProctrackType=proctrack/pgid\nTaskPlugin=task/none\nJobAcctGatherType=jobacct_gather/none\n\
                 AccountingStorageType=accounting_storage/none\nSelectType=select/cons_tres\n\
                 SelectTypeParameters=CR_Core\nReturnToService=2\nKillWait=5\nMpiDefault=none\n\
                 StateSaveLocation={state}\nSlurmdSpoolDir={spool}\nSlurmctldPidFile={cpid}\n\
                 SlurmdPidFile={dpid}\nSlurmctldLogFile={clog}\nSlurmdLogFile={dlog}\n\
                 {node} State=UNKNOWN\nPartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP\n",
                socket = socket.display(),
                state = p("state"),
                spool = p("spool"),
                cpid = p("slurmctld.pid"),
                dpid = p("slurmd.pid"),
                clog = p("slurmctld.log"),
                dlog = p("slurmd.log"),
            ),
        )
        .unwrap();
        let cluster = Cluster { dir, conf };
        must(Command::new("slurmctld").arg("-f").arg(&cluster.conf));
        must(Command::new("slurmd").arg("-f").arg(&cluster.conf));
        wait_until("the node to be idle", 60, || {
            cluster
                .cmd("sinfo")
                .args(["-h", "-o", "%T"])
                .output()
                .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "idle")
        });
        cluster
    }

    fn cmd(&self, prog: &str) -> Command {
        let mut c = Command::new(prog);
        c.env("SLURM_CONF", &self.conf);
        c
    }

    /// Submits the example array script with `args`; returns the job id.
    fn submit(&self, workdir: &Path, array: &str, args: &[&str]) -> String {
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("examples/slurm-array.sh");
        let out = must(
            self.cmd("sbatch")
                .args(["--parsable", &format!("--array={array}"), "--output=slurm-%A_%a.out"])
                .arg(format!("--chdir={}", workdir.display()))
                .arg(script)
                .args(args)
                .env("CLIPDRAW", bin()),
        );
        out.trim().split(';').next().unwrap().to_string()
    }

    fn wait_gone(&self, id: &str) {
        wait_until(&format!("job {id} to end"), 600, || {
            let o = self.cmd("squeue").args(["-h", "-j", id]).output().unwrap();
            o.status.success() && String::from_utf8_lossy(&o.stdout).trim().is_empty()
        });
    }

    /// Every task log of job `id`, concatenated.
    fn logs(&self, workdir: &Path, id: &str) -> String {
        let mut all = String::new();
        for e in std::fs::read_dir(workdir).unwrap() {
            let name = e.unwrap().file_name().to_string_lossy().to_string();
            if name.starts_with(&format!("slurm-{id}_")) {
                all += &std::fs::read_to_string(workdir.join(&name)).unwrap();
            }
        }
        all
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        // Only the daemons this test started, by the ids in their pid files.
        for name in ["slurmd.pid", "slurmctld.pid", "munged.pid"] {
            if let Ok(pid) = std::fs::read_to_string(self.dir.path().join(name)) {
                let _ = Command::new("kill").arg(pid.trim()).status();
            }
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

#[test]
fn a_slurm_array_draws_every_job_once_and_a_cancelled_task_resumes_exactly() {
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    let (want, _) = reference(w);
    let cluster = Cluster::start();

    std::fs::write(w.join("jobs.txt"), JOBS4).unwrap();
    let id = cluster.submit(
        w,
        "0-1",
        &["jobs.txt", "out", "--strokes", "12", "--iters", "6", "--augs", "2", "-q", "--json"],
    );
    cluster.wait_gone(&id);
    let logs = cluster.logs(w, &id);
    let drawn = stems_in(&logs);
    assert_eq!(drawn.len(), 4, "each job once: {logs}");
    assert_eq!(
        drawn.iter().cloned().collect::<BTreeSet<_>>(),
        STEMS4.map(String::from).into(),
        "{logs}"
    );
    for stem in STEMS4 {
        assert!(w.join("out").join(format!("{stem}.json")).is_file(), "{stem}: {logs}");
    }
    let manifest = std::fs::read_to_string(w.join("out/manifest.jsonl")).unwrap();
    assert_eq!(manifest.lines().count(), 4);

    // scancel mid-drawing: SIGTERM reaches clipdraw through the script's exec.
    let ckpt = w.join("long/.checkpoints").join(format!("{LONG_STEM}.ckpt"));
    let mut args = vec!["one.txt", "long", "-q"];
    args.extend(LONG);
    let id = cluster.submit(w, "0-0", &args);
    wait_until("the first checkpoint", 300, || ckpt.exists());
    must(cluster.cmd("scancel").arg(&id));
    cluster.wait_gone(&id);
    let logs = cluster.logs(w, &id);
    assert!(logs.contains("clipdraw: stopped"), "clipdraw did not stop on its own: {logs}");
    let sidecar =
        std::fs::read_to_string(w.join("long").join(format!("{LONG_STEM}.json"))).unwrap();
    let record = clipdraw::Record::from_json(&sidecar).unwrap();
    assert_eq!(
        record.ending,
        clipdraw::optimize::Ending::Interrupted,
        "cancelled after the job finished"
    );
    assert!(ckpt.exists());

    let id = cluster.submit(w, "0-0", &args);
    cluster.wait_gone(&id);
    let got = std::fs::read(w.join("long").join(format!("{LONG_STEM}.svg"))).unwrap();
    assert!(
        got == want,
        "the resubmitted task's SVG differs from the uninterrupted one: {}",
        cluster.logs(w, &id)
    );
    assert!(!ckpt.exists());
}

#[test]
fn gnu_parallel_draws_every_job_once_and_a_timed_out_shard_resumes_exactly() {
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    std::fs::write(w.join("jobs.txt"), JOBS4).unwrap();
    // The README's line: one clipdraw per shard, as many at a time as -j says.
    let o = Command::new("parallel")
        .current_dir(w)
        .args(["-j", "2", "--halt", "now,fail=1"])
        .arg(bin())
        .args([
            "batch",
            "jobs.txt",
            "-o",
            "out",
            "--strokes",
            "12",
            "--iters",
            "6",
            "--augs",
            "2",
            "-q",
            "--json",
        ])
        .args(["--shard", "{}/2", ":::", "0", "1"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    let drawn = stems_in(&String::from_utf8_lossy(&o.stdout));
    assert_eq!(drawn.len(), 4, "{}", text(&o));
    assert_eq!(drawn.into_iter().collect::<BTreeSet<_>>(), STEMS4.map(String::from).into());

    // parallel's --timeout sends TERM (then KILL) to a shard still drawing; the same
    // line again resumes it.
    let (want, took) = reference(w);
    // Half of an uninterrupted run: past the model load, well before the end.
    let mut timeout_s = (took.as_secs_f64() / 2.0).max(1.0);
    let line = |timeout: Option<&str>| {
        let mut c = Command::new("parallel");
        c.current_dir(w).args(["-j", "1"]);
        if let Some(t) = timeout {
            c.args(["--timeout", t, "--termseq", "TERM,20000,KILL,25"]);
        }
        c.arg(bin())
            .args(["batch", "one.txt", "-o", "long", "-q"])
            .args(LONG)
            .args(["--shard", "{}/1", ":::", "0"]);
        c.output().unwrap()
    };
    let ckpt = w.join("long/.checkpoints").join(format!("{LONG_STEM}.ckpt"));
    // The other cluster test shares the cores, so a run can go twice as fast as the
    // reference did: when it finishes within the timeout, start afresh with half.
    loop {
        let o = line(Some(&format!("{timeout_s:.1}")));
        if !o.status.success() {
            break;
        }
        assert!(timeout_s > 0.3, "the shard kept finishing within the timeout: {}", text(&o));
        timeout_s /= 2.0;
        std::fs::remove_dir_all(w.join("long")).unwrap();
    }
    let sidecar =
        std::fs::read_to_string(w.join("long").join(format!("{LONG_STEM}.json"))).unwrap();
    assert_eq!(
        clipdraw::Record::from_json(&sidecar).unwrap().ending,
        clipdraw::optimize::Ending::Interrupted
    );
    assert!(ckpt.exists());
    let o = line(None);
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        std::fs::read(w.join("long").join(format!("{LONG_STEM}.svg"))).unwrap() == want,
        "resumed SVG differs"
    );
}
