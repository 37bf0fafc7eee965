//! plot: SVG charts from the CSV files the experiments write.
//!
//! `plot bars  --csv F --label COL --values A,B,.. [--low A_MIN,.. --high A_MAX,..] --title T --ylabel Y --out F.svg`
//!   one group of bars per row (named by COL), one bar per value column;
//!   with --low/--high, a whisker from low to high on each bar (the spread of repeated runs).
//! `plot lines --csv F --x COL --values A,B,.. --title T --ylabel Y [--xlabel X] --out F.svg`
//!   one line per value column against COL (a Unix timestamp becomes seconds from the first row).
//! Legends read `--names` (one per value column); without it, column names are
//! made readable (`p999_us` -> `p99.9`, `cpu0_pct` -> `CPU 0`), since readers
//! should not have to decode CSV headers. Empty cells are skipped (a process
//! that exited leaves its columns empty).

use std::collections::HashMap;
use std::error::Error;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use plotters::prelude::*;

#[derive(Parser)]
#[command(name = "plot", about = "Draw experiment CSV files as SVG charts")]
struct Args {
    #[command(subcommand)]
    kind: Kind,
}

#[derive(Subcommand)]
enum Kind {
    /// Grouped bars: one group per row.
    Bars {
        #[command(flatten)]
        common: Common,
        /// Column naming each group.
        #[arg(long)]
        label: String,
        /// Columns with the lowest value of each --values column (whisker start).
        #[arg(long, value_delimiter = ',', requires = "high")]
        low: Vec<String>,
        /// Columns with the highest value of each --values column (whisker end).
        #[arg(long, value_delimiter = ',', requires = "low")]
        high: Vec<String>,
    },
    /// Lines over an x column.
    Lines {
        #[command(flatten)]
        common: Common,
        /// The x column.
        #[arg(long)]
        x: String,
        /// Name of the x axis (default: "seconds" for timestamps, else the column).
        #[arg(long)]
        xlabel: Option<String>,
    },
}

#[derive(clap::Args)]
struct Common {
    #[arg(long)]
    csv: PathBuf,
    /// Comma-separated value columns.
    #[arg(long, value_delimiter = ',')]
    values: Vec<String>,
    /// Legend names, one per value column, in order.
    #[arg(long, value_delimiter = ',')]
    names: Vec<String>,
    #[arg(long, default_value = "")]
    title: String,
    #[arg(long, default_value = "")]
    ylabel: String,
    #[arg(long)]
    out: PathBuf,
}

struct Table {
    header: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    fn read(path: &PathBuf) -> Result<Table, Box<dyn Error>> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let mut lines = text.lines().filter(|l| !l.trim().is_empty());
        let header: Vec<String> = lines.next().ok_or("empty CSV")?.split(',').map(|s| s.trim().to_string()).collect();
        let rows = lines.map(|l| l.split(',').map(|s| s.trim().to_string()).collect()).collect();
        Ok(Table { header, rows })
    }

    fn col(&self, name: &str) -> Result<usize, Box<dyn Error>> {
        self.header
            .iter()
            .position(|h| h == name)
            .ok_or_else(|| format!("no column \"{name}\" (have: {})", self.header.join(", ")).into())
    }

    fn number(&self, row: usize, col: usize) -> Option<f64> {
        self.rows.get(row)?.get(col)?.parse().ok()
    }
}

/// Largest number in the given columns (0 when there is none).
fn max_value(t: &Table, cols: &[usize]) -> f64 {
    (0..t.rows.len()).flat_map(|r| cols.iter().filter_map(move |&k| t.number(r, k))).fold(0.0, f64::max)
}

fn main() -> ExitCode {
    match run(Args::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: Args) -> Result<(), Box<dyn Error>> {
    match args.kind {
        Kind::Bars { common, label, low, high } => bars(&common, &label, (&low, &high)),
        Kind::Lines { common, x, xlabel } => lines(&common, &x, xlabel.as_deref()),
    }
}

/// An axis tick: whole numbers from 100 up (`12000`, not `12000.0`).
fn tick(v: f64) -> String {
    if v.abs() >= 100.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.2}").trim_end_matches('0').trim_end_matches('.').to_string()
    }
}

/// A readable legend name for CSV column `col`.
fn human(col: &str) -> String {
    let base = ["_us", "_ms", "_pct", "_mbs", "_kib", "_s"].iter().find_map(|u| col.strip_suffix(u)).unwrap_or(col);
    let words: Vec<String> = base
        .split('_')
        .map(|w| match w {
            "p999" => "p99.9".to_string(),
            "rps" => "requests/s".to_string(),
            w if w.starts_with("cpu") && w[3..].chars().all(|c| c.is_ascii_digit()) && w.len() > 3 => {
                format!("CPU {}", &w[3..])
            }
            w if w.starts_with("server") && w.len() > 6 => format!("backend {}", &w[6..]),
            w if w.starts_with("host") && w.len() > 4 => format!("host {}", &w[4..]),
            w => w.to_string(),
        })
        .collect();
    words.join(" ")
}

impl Common {
    /// The legend name of value column `i`.
    fn name(&self, i: usize) -> Result<String, Box<dyn Error>> {
        if self.names.is_empty() {
            return Ok(human(&self.values[i]));
        }
        if self.names.len() != self.values.len() {
            let (n, v) = (self.names.len(), self.values.len());
            return Err(format!("--names has {n} names for {v} --values columns").into());
        }
        Ok(self.names[i].clone())
    }
}

fn bars(c: &Common, label: &str, (low, high): (&[String], &[String])) -> Result<(), Box<dyn Error>> {
    let t = Table::read(&c.csv)?;
    let lc = t.col(label)?;
    let cols: Vec<usize> = c.values.iter().map(|v| t.col(v)).collect::<Result<_, _>>()?;
    if (!low.is_empty() || !high.is_empty()) && (low.len() != cols.len() || high.len() != cols.len()) {
        return Err(format!("--low and --high need one column each per --values column ({})", cols.len()).into());
    }
    let lows: Vec<usize> = low.iter().map(|v| t.col(v)).collect::<Result<_, _>>()?;
    let highs: Vec<usize> = high.iter().map(|v| t.col(v)).collect::<Result<_, _>>()?;
    let n = t.rows.len();
    if n == 0 {
        return Err("no rows to plot".into());
    }
    let labels: Vec<String> = t.rows.iter().map(|r| r.get(lc).cloned().unwrap_or_default()).collect();
    let ymax = max_value(&t, &cols).max(max_value(&t, &highs));
    // Horizontal bars: the group names sit on the y axis, where they read easily.
    let root =
        SVGBackend::new(&c.out, (900, 120 + (20 * cols.len().max(1) as u32 + 14) * n as u32)).into_drawing_area();
    root.fill(&WHITE)?;
    let label_width = labels.iter().map(|l| l.len() as u32 * 8 + 20).max().unwrap_or(60);
    let mut chart = ChartBuilder::on(&root)
        .caption(&c.title, ("sans-serif", 20))
        .margin(15)
        .x_label_area_size(45)
        .y_label_area_size(label_width)
        .build_cartesian_2d(0f64..(ymax * 1.1).max(1e-9), -0.5f64..(n as f64 - 0.5))?;
    // Row 0 at the top.
    let names: HashMap<i64, String> = labels.iter().enumerate().map(|(i, l)| ((n - 1 - i) as i64, l.clone())).collect();
    chart
        .configure_mesh()
        .disable_y_mesh()
        .y_labels(n)
        .y_label_formatter(&|y| {
            let i = y.round();
            if (y - i).abs() < 1e-6 { names.get(&(i as i64)).cloned().unwrap_or_default() } else { String::new() }
        })
        .y_label_style(("sans-serif", 14))
        .x_label_formatter(&|v| tick(*v))
        .x_desc(&c.ylabel)
        .draw()?;
    let height = 0.8 / cols.len() as f64;
    for (s, &k) in cols.iter().enumerate() {
        let color = Palette99::pick(s).to_rgba();
        let bars: Vec<_> = (0..n)
            .filter_map(|r| {
                let v = t.number(r, k)?;
                let y0 = (n - 1 - r) as f64 + 0.4 - (s as f64 + 1.0) * height;
                Some(Rectangle::new([(0.0, y0), (v, y0 + height * 0.92)], color.filled()))
            })
            .collect();
        chart
            .draw_series(bars)?
            .label(c.name(s)?)
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 12, y + 5)], color.filled()));
        if let (Some(&lo), Some(&hi)) = (lows.get(s), highs.get(s)) {
            // Whisker at the bar's middle, with end caps: the min-max of the rounds.
            let whiskers: Vec<_> = (0..n)
                .filter_map(|r| {
                    let (a, b) = (t.number(r, lo)?, t.number(r, hi)?);
                    let y = (n - 1 - r) as f64 + 0.4 - (s as f64 + 0.5) * height;
                    let cap = height * 0.3;
                    Some(vec![
                        PathElement::new(vec![(a, y), (b, y)], BLACK.stroke_width(2)),
                        PathElement::new(vec![(a, y - cap), (a, y + cap)], BLACK.stroke_width(2)),
                        PathElement::new(vec![(b, y - cap), (b, y + cap)], BLACK.stroke_width(2)),
                    ])
                })
                .flatten()
                .collect();
            chart.draw_series(whiskers)?;
        }
    }
    // One series needs a legend too when whiskers need explaining.
    if cols.len() > 1 || !lows.is_empty() {
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::LowerRight)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .draw()?;
    }
    root.present()?;
    Ok(())
}

fn lines(c: &Common, x: &str, xlabel: Option<&str>) -> Result<(), Box<dyn Error>> {
    let t = Table::read(&c.csv)?;
    let xc = t.col(x)?;
    let cols: Vec<usize> = c.values.iter().map(|v| t.col(v)).collect::<Result<_, _>>()?;
    let xs: Vec<Option<f64>> = (0..t.rows.len()).map(|r| t.number(r, xc)).collect();
    let x0 = xs.iter().flatten().copied().fold(f64::INFINITY, f64::min);
    let x0 = if x0 > 1e9 { x0 } else { 0.0 }; // timestamps become seconds from the start
    let xmax = xs.iter().flatten().map(|v| v - x0).fold(0.0, f64::max);
    let ymax = max_value(&t, &cols);
    let root = SVGBackend::new(&c.out, (900, 480)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(&c.title, ("sans-serif", 20))
        .margin(15)
        .x_label_area_size(45)
        .y_label_area_size(70)
        .build_cartesian_2d(0f64..xmax.max(1e-9), 0f64..(ymax * 1.1).max(1e-9))?;
    let xdesc = xlabel.map(str::to_string).unwrap_or_else(|| if x0 > 0.0 { "seconds".into() } else { human(x) });
    chart.configure_mesh().x_desc(xdesc).y_desc(&c.ylabel).y_label_formatter(&|v| tick(*v)).draw()?;
    for (s, &k) in cols.iter().enumerate() {
        let color = Palette99::pick(s).to_rgba();
        let points: Vec<(f64, f64)> = (0..t.rows.len()).filter_map(|r| Some((xs[r]? - x0, t.number(r, k)?))).collect();
        chart
            .draw_series(LineSeries::new(points, color.stroke_width(2)))?
            .label(c.name(s)?)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 14, y)], color.stroke_width(2)));
    }
    chart.configure_series_labels().background_style(WHITE.mix(0.8)).border_style(BLACK).draw()?;
    root.present()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::human;

    #[test]
    fn column_names_become_legend_names() {
        assert_eq!(human("p999_us"), "p99.9");
        assert_eq!(human("p50_us"), "p50");
        assert_eq!(human("cpu1_pct"), "CPU 1");
        assert_eq!(human("total_pct"), "total");
        assert_eq!(human("host2_server1"), "host 2 backend 1");
        assert_eq!(human("upload_mbs"), "upload");
        assert_eq!(human("share_1ms"), "share 1ms");
    }
}
