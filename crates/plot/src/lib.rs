//! Pictures for makemore: line charts and labelled scatter plots, as PNG or SVG, drawn with
//! [plotters](https://docs.rs/plotters) and an embedded font (DejaVu Sans), so text renders
//! on machines that have no system fonts. Files are written atomically (temp file, rename).
//!
//! ```
//! use makemore_plot::{line_chart, Chart, ImageFormat, Line};
//!
//! let dir = tempfile::tempdir().unwrap();
//! let path = dir.path().join("loss.svg");
//! let chart = Chart {
//!     title: "loss",
//!     x_label: "step",
//!     y_label: "loss",
//!     lines: vec![Line { label: "train".into(), points: vec![(0.0, 3.3), (1.0, 2.5), (2.0, 2.2)], dots: false }],
//! };
//! line_chart(&chart, &path, ImageFormat::Svg).unwrap();
//! assert!(std::fs::read_to_string(&path).unwrap().contains("<svg"));
//! ```

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use std::path::{Path, PathBuf};

mod pca;
pub use pca::pca_2d;

/// What can go wrong while drawing.
#[derive(Debug, thiserror::Error)]
pub enum PlotError {
    /// There was no finite point to draw.
    #[error("nothing to plot")]
    Empty,
    /// The embedded font did not load.
    #[error("the embedded font does not load")]
    Font,
    /// The drawing library failed.
    #[error("cannot draw {path}: {reason}")]
    Draw {
        /// The picture being drawn.
        path: PathBuf,
        /// What failed.
        reason: String,
    },
    /// A file or directory could not be written.
    #[error("cannot write {path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The operating-system error.
        source: std::io::Error,
    },
}

type Result<T, E = PlotError> = std::result::Result<T, E>;

/// A drawing error without its path yet.
struct DrawError(String);

fn draw_err(e: impl std::fmt::Display) -> DrawError {
    DrawError(e.to_string())
}

const FONT: &[u8] = include_bytes!("../assets/DejaVuSans.ttf");
const SIZE: (u32, u32) = (900, 600);

/// Picture file format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageFormat {
    /// PNG bitmap.
    Png,
    /// SVG vector drawing.
    Svg,
}

impl ImageFormat {
    /// The file extension.
    pub fn ext(self) -> &'static str {
        match self {
            ImageFormat::Png => "png",
            ImageFormat::Svg => "svg",
        }
    }
}

/// One named line of a chart.
pub struct Line {
    /// Legend label.
    pub label: String,
    /// Points `(x, y)`.
    pub points: Vec<(f64, f64)>,
    /// Draw as dots instead of a line.
    pub dots: bool,
}

/// A chart with axes labels and one or more lines.
pub struct Chart<'a> {
    /// Title above the plot.
    pub title: &'a str,
    /// x-axis label.
    pub x_label: &'a str,
    /// y-axis label.
    pub y_label: &'a str,
    /// The lines.
    pub lines: Vec<Line>,
}

fn register_font() -> Result<()> {
    plotters::style::register_font("sans-serif", FontStyle::Normal, FONT)
        .map_err(|_| PlotError::Font)
}

/// `((x_min, x_max), (y_min, y_max))`.
type Bounds = ((f64, f64), (f64, f64));

fn bounds(points: impl Iterator<Item = (f64, f64)>) -> Result<Bounds, DrawError> {
    let (mut x0, mut x1, mut y0, mut y1) = (
        f64::INFINITY,
        f64::NEG_INFINITY,
        f64::INFINITY,
        f64::NEG_INFINITY,
    );
    for (x, y) in points.filter(|(x, y)| x.is_finite() && y.is_finite()) {
        x0 = x0.min(x);
        x1 = x1.max(x);
        y0 = y0.min(y);
        y1 = y1.max(y);
    }
    if !x0.is_finite() {
        return Err(DrawError("nothing to plot".into()));
    }
    let pad = |lo: f64, hi: f64| {
        let d = ((hi - lo) * 0.05).max(1e-6);
        (lo - d, hi + d)
    };
    Ok((pad(x0, x1), pad(y0, y1)))
}

/// Tick labels with as many decimals as the axis span needs (steps print as integers).
fn tick_formatter(span: f64) -> impl Fn(&f64) -> String {
    let decimals = if span >= 50.0 {
        0
    } else {
        (2.0 - span.log10().floor()).clamp(1.0, 6.0) as usize
    };
    move |v: &f64| format!("{v:.decimals$}")
}

/// What to draw.
enum Figure<'a> {
    Lines(&'a Chart<'a>),
    Scatter {
        title: &'a str,
        x_label: &'a str,
        y_label: &'a str,
        points: &'a [(f64, f64, String)],
    },
}

/// Draws `chart` into `path` in `format`, atomically (temp file, then rename).
pub fn line_chart(chart: &Chart<'_>, path: &Path, format: ImageFormat) -> Result<()> {
    save(&Figure::Lines(chart), path, format)
}

/// Draws labelled points (say, characters at their 2-D embedding positions).
pub fn labelled_scatter(
    title: &str,
    x_label: &str,
    y_label: &str,
    points: &[(f64, f64, String)],
    path: &Path,
    format: ImageFormat,
) -> Result<()> {
    save(
        &Figure::Scatter {
            title,
            x_label,
            y_label,
            points,
        },
        path,
        format,
    )
}

fn save(figure: &Figure<'_>, path: &Path, format: ImageFormat) -> Result<()> {
    register_font()?;
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(|source| PlotError::Io {
            path: parent.to_path_buf(),
            source,
        })?;
    }
    // A unique temp name beside the target that keeps the real extension: the PNG encoder
    // picks the format from it.
    let tmp = makemore_io::temp_beside(&path.with_extension(format.ext()), true)
        .map_err(|source| PlotError::Io {
            path: path.to_path_buf(),
            source,
        })?
        .into_temp_path();
    let result = match format {
        ImageFormat::Svg => render(SVGBackend::new(&tmp, SIZE).into_drawing_area(), figure),
        ImageFormat::Png => render(BitMapBackend::new(&tmp, SIZE).into_drawing_area(), figure),
    };
    if let Err(DrawError(reason)) = result {
        if reason == "nothing to plot" {
            return Err(PlotError::Empty);
        }
        return Err(PlotError::Draw {
            path: path.to_path_buf(),
            reason,
        });
    }
    tmp.persist(path)
        .map_err(|e| e.error)
        .and_then(|()| {
            let dir = path.parent().filter(|p| !p.as_os_str().is_empty());
            makemore_io::sync_dir(dir.unwrap_or(Path::new(".")))
        })
        .map_err(|source| PlotError::Io {
            path: path.to_path_buf(),
            source,
        })
}

fn render<DB: DrawingBackend>(
    root: DrawingArea<DB, Shift>,
    figure: &Figure<'_>,
) -> Result<(), DrawError>
where
    DB::ErrorType: 'static,
{
    root.fill(&WHITE).map_err(draw_err)?;
    let (title, x_label, y_label) = match figure {
        Figure::Lines(c) => (c.title, c.x_label, c.y_label),
        Figure::Scatter {
            title,
            x_label,
            y_label,
            ..
        } => (*title, *x_label, *y_label),
    };
    let all: Vec<(f64, f64)> = match figure {
        Figure::Lines(c) => c
            .lines
            .iter()
            .flat_map(|l| l.points.iter().copied())
            .collect(),
        Figure::Scatter { points, .. } => points.iter().map(|(x, y, _)| (*x, *y)).collect(),
    };
    let ((x0, x1), (y0, y1)) = bounds(all.into_iter())?;
    let mut ctx = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 26))
        .margin(15)
        .x_label_area_size(50)
        .y_label_area_size(70)
        .build_cartesian_2d(x0..x1, y0..y1)
        .map_err(draw_err)?;
    let x_fmt = tick_formatter(x1 - x0);
    let y_fmt = tick_formatter(y1 - y0);
    ctx.configure_mesh()
        .x_label_formatter(&x_fmt)
        .y_label_formatter(&y_fmt)
        .x_desc(x_label)
        .y_desc(y_label)
        .label_style(("sans-serif", 16))
        .axis_desc_style(("sans-serif", 18))
        .draw()
        .map_err(draw_err)?;
    match figure {
        Figure::Lines(chart) => {
            let colors = [BLUE, RED, GREEN, MAGENTA, CYAN, BLACK];
            for (i, line) in chart.lines.iter().enumerate() {
                let color = colors[i % colors.len()];
                let pts = line
                    .points
                    .iter()
                    .copied()
                    .filter(|(x, y)| x.is_finite() && y.is_finite());
                let series = if line.dots {
                    ctx.draw_series(pts.map(|p| Circle::new(p, 4, color.filled())))
                } else {
                    ctx.draw_series(LineSeries::new(pts, color.stroke_width(2)))
                }
                .map_err(draw_err)?;
                series.label(line.label.clone()).legend(move |(x, y)| {
                    Rectangle::new([(x, y - 4), (x + 16, y + 4)], color.filled())
                });
            }
            if chart.lines.len() > 1 {
                ctx.configure_series_labels()
                    .position(SeriesLabelPosition::UpperRight)
                    .label_font(("sans-serif", 16))
                    .background_style(WHITE.mix(0.85))
                    .border_style(BLACK)
                    .draw()
                    .map_err(draw_err)?;
            }
        }
        Figure::Scatter { points, .. } => {
            ctx.draw_series(points.iter().map(|(x, y, label)| {
                EmptyElement::at((*x, *y))
                    + Circle::new((0, 0), 13, RGBColor(70, 110, 200).mix(0.75).filled())
                    + Text::new(
                        label.clone(),
                        (0, 0),
                        ("sans-serif", 20)
                            .into_font()
                            .color(&WHITE)
                            .pos(Pos::new(HPos::Center, VPos::Center)),
                    )
            }))
            .map_err(draw_err)?;
        }
    }
    root.present().map_err(draw_err)?;
    Ok(())
}
