//! Which part of a job list this process draws: `--shard I/N`, a Slurm array task,
//! or a Kubernetes Indexed Job's completion index. Job k belongs to shard k mod N,
//! so every shard sees the whole list (and checks it) and draws its own part.

use anyhow::{anyhow, bail, Result};

/// Shard `index` of `count`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shard {
    pub index: usize,
    pub count: usize,
}

impl Shard {
    pub const ALL: Shard = Shard { index: 0, count: 1 };

    /// Whether job number `k` (0-based, in list order) is this shard's.
    pub fn owns(&self, k: usize) -> bool {
        k % self.count == self.index
    }
}

impl std::str::FromStr for Shard {
    type Err = anyhow::Error;

    /// `I/N` with 0 <= I < N.
    fn from_str(s: &str) -> Result<Shard> {
        let (i, n) =
            s.split_once('/').ok_or_else(|| anyhow!("expected I/N such as 0/4, got {s:?}"))?;
        let num = |t: &str| -> Result<usize> {
            t.trim().parse().map_err(|_| anyhow!("expected I/N with whole numbers, got {s:?}"))
        };
        check(num(i)?, num(n)?, s)
    }
}

fn check(index: usize, count: usize, what: &str) -> Result<Shard> {
    if count == 0 {
        bail!("{what}: the shard count must be at least 1");
    }
    if index >= count {
        bail!("{what}: shard {index} does not exist among {count} (shards are 0..{count})");
    }
    Ok(Shard { index, count })
}

/// The shard to draw: `shard` if given; else a Slurm array task
/// (`SLURM_ARRAY_TASK_ID` − `SLURM_ARRAY_TASK_MIN` of `SLURM_ARRAY_TASK_COUNT`);
/// else `JOB_COMPLETION_INDEX` of `shards` (Kubernetes); else everything.
/// `env` reads a variable (the process environment, or a test's).
pub fn resolve(
    shard: Option<Shard>,
    shards: Option<usize>,
    env: impl Fn(&str) -> Option<String>,
) -> Result<Shard> {
    if let Some(s) = shard {
        return Ok(s);
    }
    let var = |name: &str| -> Result<Option<usize>> {
        match env(name) {
            None => Ok(None),
            Some(v) => v
                .trim()
                .parse()
                .map(Some)
                .map_err(|_| anyhow!("{name}={v:?} is not a whole number")),
        }
    };
    if let Some(id) = var("SLURM_ARRAY_TASK_ID")? {
        let min = var("SLURM_ARRAY_TASK_MIN")?.unwrap_or(0);
        let count = var("SLURM_ARRAY_TASK_COUNT")?.ok_or_else(|| {
            anyhow!("SLURM_ARRAY_TASK_ID is set but SLURM_ARRAY_TASK_COUNT is not")
        })?;
        let index = id.checked_sub(min).ok_or_else(|| {
            anyhow!("SLURM_ARRAY_TASK_ID={id} is below SLURM_ARRAY_TASK_MIN={min}")
        })?;
        let what = format!("SLURM_ARRAY_TASK_ID={id} (MIN {min}, COUNT {count}; arrays must be contiguous, e.g. --array=0-3)");
        return check(index, count, &what);
    }
    match (var("JOB_COMPLETION_INDEX")?, shards) {
        (Some(index), Some(count)) => check(index, count, &format!("JOB_COMPLETION_INDEX={index} with --shards {count}")),
        (Some(_), None) => bail!("JOB_COMPLETION_INDEX is set: give the job's completions as --shards N"),
        (None, Some(n)) => bail!("--shards {n} needs JOB_COMPLETION_INDEX (a Kubernetes Indexed Job); use --shard I/{n} elsewhere"),
        (None, None) => Ok(Shard::ALL),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env<'a>(vars: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |k| vars.iter().find(|(n, _)| *n == k).map(|(_, v)| v.to_string())
    }

    #[test]
    fn shards_parse_and_own_every_nth_job() {
        let s: Shard = "1/3".parse().unwrap();
        assert_eq!(s, Shard { index: 1, count: 3 });
        let owned: Vec<usize> = (0..8).filter(|&k| s.owns(k)).collect();
        assert_eq!(owned, [1, 4, 7]);
        for bad in ["3/3", "1", "a/2", "0/0", "-1/2"] {
            assert!(bad.parse::<Shard>().is_err(), "{bad}");
        }
    }

    #[test]
    fn the_environment_picks_the_shard() {
        let slurm = [
            ("SLURM_ARRAY_TASK_ID", "6"),
            ("SLURM_ARRAY_TASK_MIN", "5"),
            ("SLURM_ARRAY_TASK_COUNT", "3"),
        ];
        assert_eq!(resolve(None, None, env(&slurm)).unwrap(), Shard { index: 1, count: 3 });
        // An explicit --shard wins over the environment.
        let s = Shard { index: 0, count: 2 };
        assert_eq!(resolve(Some(s), None, env(&slurm)).unwrap(), s);
        let k8s = [("JOB_COMPLETION_INDEX", "2")];
        assert_eq!(resolve(None, Some(4), env(&k8s)).unwrap(), Shard { index: 2, count: 4 });
        assert_eq!(resolve(None, None, env(&[])).unwrap(), Shard::ALL);
        for (vars, shards, needle) in [
            (vec![("SLURM_ARRAY_TASK_ID", "x")], None, "not a whole number"),
            (vec![("SLURM_ARRAY_TASK_ID", "1")], None, "SLURM_ARRAY_TASK_COUNT is not"),
            (
                vec![("SLURM_ARRAY_TASK_ID", "4"), ("SLURM_ARRAY_TASK_COUNT", "4")],
                None,
                "does not exist",
            ),
            (vec![("JOB_COMPLETION_INDEX", "1")], None, "--shards N"),
            (vec![], Some(2), "needs JOB_COMPLETION_INDEX"),
        ] {
            let e = resolve(None, shards, env(&vars)).unwrap_err().to_string();
            assert!(e.contains(needle), "{vars:?}: {e}");
        }
    }
}
