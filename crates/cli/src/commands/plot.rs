//! `makemore plot loss|embeddings`.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use makemore_model::FusedAutodiff;
use makemore_train::Checkpoint;

use crate::backend::{dispatch, BackendChoice, WithBackend};

use makemore_plot::{labelled_scatter, line_chart, Chart, ImageFormat, Line};

/// Picture format, as a command-line value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum FormatArg {
    /// PNG bitmap.
    Png,
    /// SVG vector drawing.
    Svg,
}

impl From<FormatArg> for ImageFormat {
    fn from(f: FormatArg) -> Self {
        match f {
            FormatArg::Png => ImageFormat::Png,
            FormatArg::Svg => ImageFormat::Svg,
        }
    }
}

/// `makemore plot ...`
#[derive(Debug, Subcommand)]
pub enum PlotCommand {
    /// log10 loss against step: smoothed minibatch loss and the dev evaluations.
    Loss(PlotArgs),
    /// Each character at its 2-D embedding (PCA to 2-D when the embedding is larger).
    Embeddings(PlotArgs),
}

/// Options shared by the plots.
#[derive(Debug, Args)]
pub struct PlotArgs {
    /// Checkpoint directory (a run's --out).
    #[arg(long, value_name = "DIR")]
    pub checkpoint: PathBuf,
    /// Output file (default: DIR/loss.png or DIR/embeddings.png).
    #[arg(long, short, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Picture format.
    #[arg(long, value_enum, default_value_t = FormatArg::Png)]
    pub format: FormatArg,
    /// Moving-average window (steps) for the minibatch loss.
    #[arg(long, default_value_t = 1000)]
    pub smooth: usize,
}

/// Runs a `plot` verb.
pub fn run(cmd: PlotCommand) -> Result<()> {
    match cmd {
        PlotCommand::Loss(args) => loss(args),
        PlotCommand::Embeddings(args) => embeddings(args),
    }
}

fn out_path(args: &PlotArgs, stem: &str) -> PathBuf {
    args.out.clone().unwrap_or_else(|| {
        args.checkpoint
            .join(format!("{stem}.{}", ImageFormat::from(args.format).ext()))
    })
}

fn loss(args: PlotArgs) -> Result<()> {
    let ckpt = Checkpoint::open(&args.checkpoint).context("cannot plot")?;
    let path = ckpt.dir.join(makemore_train::METRICS_FILE);
    let rows = makemore_train::read_metrics(&path)?;
    let steps: Vec<(f64, f64)> = rows.iter().map(|r| (r.step as f64, r.loss)).collect();
    let mut dev: Vec<(f64, f64)> = rows
        .iter()
        .filter_map(|r| Some((r.step as f64, r.dev_loss?.log10())))
        .collect();
    if steps.is_empty() {
        bail!("{} has no steps yet", path.display());
    }
    let window = args.smooth.clamp(1, steps.len());
    let smoothed: Vec<(f64, f64)> = steps
        .chunks(window)
        .map(|c| {
            (
                c[c.len() / 2].0,
                (c.iter().map(|p| p.1).sum::<f64>() / c.len() as f64).log10(),
            )
        })
        .collect();
    if let (Some(train), Some(dev_loss)) = (ckpt.state.train_loss, ckpt.state.dev_loss) {
        dev.push((ckpt.state.step as f64, dev_loss.log10()));
        println!("final train loss {train:.4}, dev loss {dev_loss:.4}");
    }
    let mut lines = vec![Line {
        label: format!("minibatch loss, mean of {window} steps"),
        points: smoothed,
        dots: false,
    }];
    if !dev.is_empty() {
        lines.push(Line {
            label: "dev loss (full split)".into(),
            points: dev,
            dots: true,
        });
    }
    let out = out_path(&args, "loss");
    let chart = Chart {
        title: "training loss",
        x_label: "step",
        y_label: "log10(loss)",
        lines,
    };
    line_chart(&chart, &out, args.format.into())?;
    println!("wrote {}", out.display());
    Ok(())
}

fn embeddings(args: PlotArgs) -> Result<()> {
    let ckpt = Checkpoint::open(&args.checkpoint).context("cannot plot")?;
    let table = dispatch(BackendChoice::default(), EmbeddingTable(&ckpt))?;
    let dims = table.first().map_or(0, Vec::len);
    let (coords, x_label, y_label) = if dims == 2 {
        (
            table.iter().map(|r| (r[0], r[1])).collect::<Vec<_>>(),
            "embedding dimension 0".to_string(),
            "embedding dimension 1".to_string(),
        )
    } else if dims == 1 {
        (
            table.iter().map(|r| (r[0], 0.0)).collect(),
            "embedding dimension 0".into(),
            "(1-D embedding)".into(),
        )
    } else {
        let (coords, explained) = makemore_plot::pca_2d(&table);
        (
            coords,
            format!(
                "principal component 1 ({:.0}% of variance)",
                explained.0 * 100.0
            ),
            format!(
                "principal component 2 ({:.0}% of variance)",
                explained.1 * 100.0
            ),
        )
    };
    let points: Vec<(f64, f64, String)> = coords
        .into_iter()
        .zip(ckpt.vocab.chars())
        .map(|((x, y), c)| (x, y, c.to_string()))
        .collect();
    let title = format!("character embeddings ({dims}-D)");
    let out = out_path(&args, "embeddings");
    labelled_scatter(
        &title,
        &x_label,
        &y_label,
        &points,
        &out,
        args.format.into(),
    )?;
    println!("wrote {}", out.display());
    Ok(())
}

/// Reads a checkpoint's embedding table on this build's default backend.
struct EmbeddingTable<'a>(&'a Checkpoint);

impl WithBackend for EmbeddingTable<'_> {
    type Output = Vec<Vec<f64>>;

    fn run<B: FusedAutodiff>(self, device: B::Device, _device_name: &str) -> Result<Self::Output> {
        let model = self.0.load_model::<B::InnerBackend>(&device)?;
        Ok(model
            .embedding_table()
            .map_err(anyhow::Error::msg)?
            .into_iter()
            .map(|row| row.into_iter().map(f64::from).collect())
            .collect())
    }
}
