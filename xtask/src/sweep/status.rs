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
    AtRung(u64),
    Interrupted(u64),
    Pending,
}

fn standing(plan: &Plan, records: &Records, run: &Run) -> Standing {
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
        return Standing::Running(format!("{step}{who}"));
    }
    match records.final_of(run.id()) {
        Some(r) if r.status == Status::Ok => return Standing::Ok,
        Some(r) if r.status == Status::Stopped => {
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
    let all: Vec<(&Run, Standing)> = plan
        .runs
        .iter()
        .map(|r| (r, standing(plan, &records, r)))
        .collect();
    let count = |f: fn(&Standing) -> bool| all.iter().filter(|(_, s)| f(s)).count();
    println!(
        "sweep {} ({} runs) in {}",
        plan.grid_path.display(),
        plan.runs.len(),
        plan.out.display()
    );
    println!(
        "done {} (finished {}, stopped by halving {}), running {}, failed {}, pending {} (at a rung {}, interrupted {}, not started {})",
        count(|s| matches!(s, Standing::Ok | Standing::Stopped(_))),
        count(|s| matches!(s, Standing::Ok)),
        count(|s| matches!(s, Standing::Stopped(_))),
        count(|s| matches!(s, Standing::Running(_))),
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
