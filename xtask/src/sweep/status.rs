//! `cargo xtask sweep GRID --status`: where every run of a sweep stands, from its records,
//! its run directory and who holds its locks; and the sweep's Slurm jobs, where there are.

use std::process::Command;

use anyhow::Result;
use makemore_io::Lock;

use super::plan::{Plan, Run};
use super::records::{Records, Status};
use crate::makemore::{self, RunDir};

/// Where one run stands.
#[derive(Debug, PartialEq)]
enum Standing {
    Ok,
    Stopped(u64),
    Failed(String),
    Running(String),
    /// Failed, and being trained again (or about to be, by a live sweep): who, the error.
    Retrying(String, String),
    AtRung(u64),
    Interrupted(u64),
    Pending,
}

fn standing(plan: &Plan, records: &Records, run: &Run, sweep_live: bool) -> Standing {
    // The run's latest record is a failure that has not settled it: it will be tried again.
    let failed = records
        .0
        .iter()
        .rev()
        .find(|r| r.id == run.id())
        .filter(|r| r.status == Status::Failed && r.stopped_at.is_none());
    let failure = failed.map(|r| r.error.clone().unwrap_or_default());
    let holder = Lock::holder(&plan.claim_path(run.id()))
        .ok()
        .flatten()
        .or_else(|| {
            Lock::holder(&plan.run_dir(run.id()).join(".lock"))
                .ok()
                .flatten()
        });
    if let Some(who) = holder {
        let step = makemore::run_state(&plan.run_dir(run.id()))
            .map(|s| format!("step {}, ", s.step))
            .unwrap_or_default();
        return match failure {
            Some(e) => Standing::Retrying(format!("{step}{who}"), e),
            None => Standing::Running(format!("{step}{who}")),
        };
    }
    // A failure at a rung is retried at once by the sweep that trained it.
    let rung_failure = failed.and_then(|r| r.rung);
    if let (Some(e), Some(rung), true) = (&failure, rung_failure, sweep_live) {
        if !records.reported_at_rung(run.id(), rung) {
            return Standing::Retrying(format!("to rung {rung}, queued"), e.clone());
        }
    }
    match records.final_of(run.id()) {
        Some(r) if r.status == Status::Ok => return Standing::Ok,
        Some(r) if r.status == Status::Stopped || r.stopped_at.is_some() => {
            return Standing::Stopped(r.stopped_at.unwrap_or(0))
        }
        Some(r) => return Standing::Failed(r.error.clone().unwrap_or_default()),
        None => {}
    }
    if let Some(rung) = records
        .0
        .iter()
        .filter(|r| r.id == run.id() && r.status == Status::Rung)
        .filter_map(|r| r.rung)
        .max()
    {
        return Standing::AtRung(rung);
    }
    match makemore::run_dir(&plan.run_dir(run.id())) {
        RunDir::Unfinished(Some(s)) | RunDir::Finished(s) => Standing::Interrupted(s.step),
        RunDir::Damaged(why) => Standing::Failed(why),
        _ => Standing::Pending,
    }
}

/// Prints the sweep's state.
pub fn print(plan: &Plan) -> Result<()> {
    let records = Records::read(&plan.out)?;
    let sweep_live = sweep_running(plan);
    let all: Vec<(&Run, Standing)> = plan
        .runs
        .iter()
        .map(|r| (r, standing(plan, &records, r, sweep_live)))
        .collect();
    let count = |f: fn(&Standing) -> bool| all.iter().filter(|(_, s)| f(s)).count();
    println!(
        "sweep {} ({} runs) in {}",
        plan.grid_path.display(),
        plan.runs.len() + plan.to_propose(),
        plan.out.display()
    );
    if plan.to_propose() > 0 {
        println!(
            "TPE: {} proposed so far; {} more to come, each generation once the runs before it have ended",
            plan.runs.len(),
            plan.to_propose()
        );
    }
    println!(
        "done {} (finished {}, stopped by halving {}), running {}, failed {}, pending {} (at a rung {}, interrupted {}, not started {})",
        count(|s| matches!(s, Standing::Ok | Standing::Stopped(_))),
        count(|s| matches!(s, Standing::Ok)),
        count(|s| matches!(s, Standing::Stopped(_))),
        count(|s| matches!(s, Standing::Running(_) | Standing::Retrying(..))),
        count(|s| matches!(s, Standing::Failed(_))),
        count(|s| matches!(s, Standing::AtRung(_) | Standing::Interrupted(_) | Standing::Pending)),
        count(|s| matches!(s, Standing::AtRung(_))),
        count(|s| matches!(s, Standing::Interrupted(_))),
        count(|s| matches!(s, Standing::Pending)),
    );
    for (run, s) in &all {
        let what = match s {
            Standing::Ok => {
                let dev = records.final_of(run.id()).and_then(|r| r.dev_loss);
                format!("finished, dev {:.4}", dev.unwrap_or(f64::NAN))
            }
            Standing::Stopped(at) => format!("stopped at rung {at}"),
            Standing::Failed(e) => format!("FAILED: {e}"),
            Standing::Running(who) => format!("running ({who})"),
            Standing::Retrying(who, e) => format!("retrying ({who}) after a failure: {e}"),
            Standing::AtRung(r) => format!("waiting at rung {r}"),
            Standing::Interrupted(step) => format!("interrupted at step {step}"),
            Standing::Pending => "not started".into(),
        };
        println!(
            "  {} [{}] {}: {what}",
            run.id(),
            run.index,
            run.spec.label()
        );
    }
    print_slurm_jobs(plan);
    Ok(())
}

/// True when some sweep process holds a results file of the directory.
fn sweep_running(plan: &Plan) -> bool {
    let Ok(entries) = std::fs::read_dir(&plan.out) else {
        return false;
    };
    entries.filter_map(Result::ok).any(|e| {
        e.file_name()
            .to_str()
            .is_some_and(|n| n.starts_with("results") && n.ends_with(".jsonl.lock"))
            && matches!(Lock::holder(&e.path()), Ok(Some(_)))
    })
}

/// `squeue` for the jobs that `--slurm` submitted into this sweep directory, if any.
fn print_slurm_jobs(plan: &Plan) {
    let Ok(jobs) = std::fs::read_to_string(plan.out.join("slurm").join("jobs")) else {
        return;
    };
    let ids: Vec<&str> = jobs.split_whitespace().collect();
    if ids.is_empty() {
        return;
    }
    let out = Command::new("squeue")
        .args(["-h", "-o", "%i %T %M %R", "-j", &ids.join(",")])
        .output();
    match out {
        Ok(o) if o.status.success() => {
            let text = String::from_utf8_lossy(&o.stdout);
            if text.trim().is_empty() {
                println!("Slurm jobs {}: none in the queue any more", ids.join(", "));
            } else {
                println!("Slurm jobs (squeue: id, state, time, reason or node):");
                for line in text.lines() {
                    println!("  {line}");
                }
            }
        }
        Ok(o) => println!(
            "Slurm jobs {}: squeue failed: {}",
            ids.join(", "),
            String::from_utf8_lossy(&o.stderr).trim()
        ),
        Err(_) => println!(
            "Slurm jobs {}: squeue is not on the PATH here",
            ids.join(", ")
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sweep::records::{Appender, Record};

    #[test]
    fn a_failed_run_being_trained_again_shows_as_retrying() {
        let dir = tempfile::tempdir().unwrap();
        let plan = Plan::for_test(
            dir.path(),
            "[axes]\nsteps = [1]\n",
            serde_json::json!({"steps": 1}),
        );
        let out = plan.out.clone();
        let run = &plan.runs[0];
        let failed = Record {
            error: Some("out of memory".into()),
            ..Record::for_test(run.id(), Status::Failed, None, None)
        };
        Appender::open(&plan.results_path())
            .unwrap()
            .append(&failed)
            .unwrap();
        let records = Records::read(&out).unwrap();
        assert!(matches!(
            standing(&plan, &records, run, false),
            Standing::Failed(_)
        ));
        // Failed at a rung once: queued for its retry while a sweep is live, else waiting
        // for the next start.
        let at_rung = Records(vec![Record {
            rung: Some(10),
            ..failed.clone()
        }]);
        let alone = standing(&plan, &at_rung, run, false);
        assert!(
            matches!(alone, Standing::Interrupted(_) | Standing::Pending),
            "{alone:?}"
        );
        assert!(matches!(
            standing(&plan, &at_rung, run, true),
            Standing::Retrying(..)
        ));
        // A sweep process claims it to train it again. (Nothing is asserted after the claim
        // is dropped: a process that another test forks at that moment may hold the lock
        // until it execs.)
        let mut claim = Lock::try_exclusive(&plan.claim_path(run.id())).unwrap();
        claim.claim().unwrap();
        match standing(&plan, &records, run, true) {
            Standing::Retrying(_, e) => assert_eq!(e, "out of memory"),
            other => panic!("{other:?}"),
        }
        drop(claim);
    }
}
