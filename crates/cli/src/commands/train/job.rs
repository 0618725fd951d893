//! The training run of `makemore train` on the chosen backend, and what it prints.

use std::path::PathBuf;

use anyhow::Result;
use makemore_model::FusedAutodiff;
use makemore_train::{
    prepare, sample, Checkpoint, RunLock, SampleOptions, TrainEvent, Trained, Trainer,
    TrainingConfig,
};
use serde::Serialize;

use super::TrainArgs;
use crate::backend::WithBackend;
use crate::{corpus, progress};

#[derive(Debug, Serialize)]
struct Summary {
    checkpoint: String,
    params: usize,
    steps: u64,
    interrupted: bool,
    finished: bool,
    train_loss: f64,
    dev_loss: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    ema_dev_loss: Option<f64>,
    train_secs: f64,
    samples: Vec<String>,
}

pub(super) struct TrainJob {
    pub(super) args: TrainArgs,
    pub(super) config: TrainingConfig,
    pub(super) dir: PathBuf,
    pub(super) resume: Option<Checkpoint>,
    /// The run directory's lock, held from before any file in it changes.
    pub(super) lock: RunLock,
    /// The corpus file (`None`: the built-in corpus).
    pub(super) data: Option<PathBuf>,
    pub(super) words: Vec<String>,
}

impl WithBackend for TrainJob {
    type Output = ();

    fn run<B: FusedAutodiff>(self, device: B::Device, _device_name: &str) -> Result<()> {
        let TrainJob {
            args,
            mut config,
            dir,
            resume,
            lock,
            data: data_path,
            words,
        } = self;
        let data = prepare(words, &config)?;
        config = makemore_train::sized_config(&config, &data)?;
        let signals = makemore_io::StopSignal::install()?;
        let start = resume.as_ref().map_or(0, |c| c.state.step);
        let bar = progress::steps_bar(config.steps, start, args.quiet || args.json);
        let mut on_event = |e: &TrainEvent| {
            match e {
            // After the trainer's checks of the data, config and checkpoint: a refused run
            // prints only its error.
            TrainEvent::Start { params, .. } if !args.json => bar.suspend(|| {
                eprintln!(
                    "training {params} parameters on {} ({}) -> {}",
                    corpus::describe(data_path.as_ref()),
                    match &data.train {
                        makemore_data::Tokens::Windows(_) => format!(
                            "{} train / {} dev examples",
                            data.train.len(),
                            data.dev.len()
                        ),
                        makemore_data::Tokens::Sequences(s) => format!(
                            "{} train / {} dev words of up to {} characters",
                            data.train.len(),
                            data.dev.len(),
                            s.seq_len() - 1
                        ),
                    },
                    dir.display()
                )
            }),
            TrainEvent::Teacher { train_loss, weight } if !args.json => bar.suspend(|| {
                eprintln!(
                    "distilling from {} (its loss on the training words {train_loss:.4}; weight {weight})",
                    config
                        .distill
                        .as_ref()
                        .map_or(String::new(), |d| d.teacher.display().to_string())
                )
            }),
            TrainEvent::Step { step, loss, .. } if step.is_multiple_of(100) => {
                bar.set_position(*step);
                bar.set_message(format!("loss {loss:.4}"));
            }
            TrainEvent::Eval {
                step,
                dev_loss,
                ema_dev_loss,
            } => bar.println(match ema_dev_loss {
                Some(ema) => format!("step {step:>7}  dev loss {dev_loss:.4}  ema {ema:.4}"),
                None => format!("step {step:>7}  dev loss {dev_loss:.4}"),
            }),
            _ => {}
        }
        };
        let mut trainer = Trainer::new(&data, &config, &dir)
            .lock(lock)
            .stop(signals.flag())
            .on_event(&mut on_event);
        if let Some(ckpt) = resume {
            trainer = trainer.resume(ckpt);
        }
        if let Some(step) = args.until {
            trainer = trainer.until(step);
        }
        if let Some(path) = &data_path {
            trainer = trainer.corpus_path(path);
        }
        if let Some(d) = config
            .distill
            .as_ref()
            .filter(|_| !(args.quiet || args.json))
        {
            // Scored before the first step: seconds per member on the CPU.
            eprintln!(
                "scoring the teacher {} on the training words",
                d.teacher.display()
            );
        }
        let trained = trainer.fit::<B>(&device);
        bar.finish_and_clear();
        let Trained { model, summary } = trained?;
        let options = SampleOptions {
            n: args.samples,
            ..SampleOptions::default()
        };
        let samples = if args.samples > 0 {
            sample(
                &model,
                &data.vocab,
                config.model.block_size,
                Some(&data.split),
                &options,
                &device,
            )?
        } else {
            Vec::new()
        };
        let out = Summary {
            checkpoint: dir.display().to_string(),
            params: summary.params,
            steps: summary.steps_done,
            interrupted: summary.interrupted,
            finished: summary.finished,
            train_loss: summary.train_loss,
            dev_loss: summary.dev_loss,
            ema_dev_loss: summary.ema_dev_loss,
            train_secs: summary.train_secs,
            samples: samples.iter().map(|s| s.word.clone()).collect(),
        };
        // A run stopped by a signal exits with 128 + the signal once it has said so.
        let interrupted = summary
            .interrupted
            .then(|| {
                signals
                    .exit_code()
                    .map(|exit_code| crate::Interrupted { exit_code })
            })
            .flatten();
        if args.json {
            println!("{}", serde_json::to_string(&out)?);
            return interrupted.map_or(Ok(()), |i| Err(i.into()));
        }
        if !summary.finished {
            println!(
                "{} at step {} (checkpoint saved); continue with: makemore train --resume {}",
                match signals.name().filter(|_| summary.interrupted) {
                    Some(name) => format!("interrupted by {name}"),
                    None => "stopped".into(),
                },
                summary.steps_done,
                dir.display()
            );
        }
        println!("parameters   {}", summary.params);
        println!(
            "steps        {} in {:.1} s ({:.0} steps/s)",
            summary.steps_done,
            summary.train_secs,
            summary.steps_done as f64 / summary.train_secs.max(1e-9)
        );
        println!("train loss   {:.4}", summary.train_loss);
        match summary.dev_loss {
            Some(d) => println!("dev loss     {d:.4}"),
            None => println!("dev loss     n/a (empty dev split)"),
        }
        if let Some(d) = summary.ema_dev_loss {
            println!(
                "ema dev loss {d:.4} ({})",
                dir.join(makemore_train::EMA_DIR).display()
            );
        }
        println!("checkpoint   {}", dir.display());
        if !samples.is_empty() {
            println!("samples:");
            for s in samples {
                println!("  {:<20} {}", s.word, s.origin.label());
            }
        }
        interrupted.map_or(Ok(()), |i| Err(i.into()))
    }
}
