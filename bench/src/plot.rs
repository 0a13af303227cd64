//! SVG plots of the scenario results, drawn by `ringmcp-load report` next to results.md.
//!
//! Two halves, tested apart: which rows become which points ([`latency_by_connections`],
//! [`latency_by_offered`], [`throughput_by_offered`], all plain data in a [`Chart`]), and
//! drawing a chart with plotters' SVG backend ([`render_svg`], [`write_plots`]). Latency
//! axes are in milliseconds and logarithmic (the figures span microseconds to seconds);
//! a chart with no point is not drawn.

use crate::config::Transport;
use crate::scenarios::{Phase, Row, Scenario, ScenarioSummary};
use crate::sys::Machine;
use plotters::coord::ranged1d::{AsRangedCoord, ValueFormatter};
use plotters::coord::Shift;
use plotters::prelude::*;
use std::path::{Path, PathBuf};

/// Width of every plot, pixels.
pub const WIDTH_PX: u32 = 960;
/// Height of every plot, pixels.
pub const HEIGHT_PX: u32 = 600;

/// What went wrong while drawing or writing a plot.
#[derive(Debug, thiserror::Error)]
pub enum PlotError {
    /// plotters refused to draw.
    #[error("drawing {0}: {1}")]
    Draw(String, String),
    /// The file could not be written.
    #[error("writing {0}: {1}")]
    Write(PathBuf, std::io::Error),
}

/// How a series marks its points.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Marker {
    /// A filled circle.
    Circle,
    /// A filled triangle.
    Triangle,
    /// An open square.
    Square,
    /// A cross.
    Cross,
}

/// How a series joins its points.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stroke {
    /// A solid line.
    Solid,
    /// A dashed line.
    Dashed,
    /// No line: points only.
    Points,
}

/// One named set of points (x ascending).
#[derive(Clone, Debug, PartialEq)]
pub struct Series {
    /// The legend's text.
    pub name: String,
    /// (x, y), sorted by x.
    pub points: Vec<(f64, f64)>,
    /// RGB.
    pub color: (u8, u8, u8),
    /// Point marker (none: a bare line).
    pub marker: Option<Marker>,
    /// Line between the points.
    pub stroke: Stroke,
}

/// One plot: what to draw and how to label it.
#[derive(Clone, Debug, PartialEq)]
pub struct Chart {
    /// File name (no directory), e.g. `latency-by-connections.svg`.
    pub file: &'static str,
    /// Alt text in the markdown.
    pub alt: String,
    /// The caption drawn on top.
    pub title: String,
    /// X axis description, with its unit.
    pub x_label: String,
    /// Y axis description, with its unit.
    pub y_label: String,
    /// Logarithmic x axis.
    pub x_log: bool,
    /// Logarithmic y axis.
    pub y_log: bool,
    /// The series, in legend order; only those with points.
    pub series: Vec<Series>,
}

impl Chart {
    /// Whether it has anything to draw (a reference line alone does not count).
    pub fn has_data(&self) -> bool {
        self.series
            .iter()
            .any(|s| s.marker.is_some() && !s.points.is_empty())
    }
}

const BLUE_RGB: (u8, u8, u8) = (31, 119, 180);
const ORANGE_RGB: (u8, u8, u8) = (230, 110, 0);
const GREEN_RGB: (u8, u8, u8) = (44, 160, 44);
const RED_RGB: (u8, u8, u8) = (214, 39, 40);
const PURPLE_RGB: (u8, u8, u8) = (148, 103, 189);
const BROWN_RGB: (u8, u8, u8) = (140, 86, 75);
const GREY_RGB: (u8, u8, u8) = (120, 120, 120);

fn transport_name(t: Transport) -> &'static str {
    match t {
        Transport::Tcp => "TCP",
        Transport::Http => "HTTP",
        Transport::HttpStateless => "HTTP stateless",
    }
}

/// "2 cores, Intel(R) Xeon(R) Processor, Linux 6.18.44" of the first summary.
fn machine_text(summaries: &[ScenarioSummary]) -> String {
    summaries.first().map_or_else(
        || "unknown machine".to_string(),
        |s| {
            let m: &Machine = &s.machine;
            format!("{} cores, {}, Linux {}", m.cores, m.model, m.kernel)
        },
    )
}

/// The transports present, TCP first.
fn transports(summaries: &[ScenarioSummary]) -> Vec<Transport> {
    let mut out: Vec<Transport> = Vec::new();
    for t in [Transport::Tcp, Transport::Http, Transport::HttpStateless] {
        if summaries.iter().any(|s| s.transport == t) {
            out.push(t);
        }
    }
    out
}

fn transports_text(summaries: &[ScenarioSummary]) -> String {
    transports(summaries)
        .into_iter()
        .map(transport_name)
        .collect::<Vec<_>>()
        .join(" and ")
}

/// The rows of `scenario` over `transport` that `keep` accepts.
fn rows(
    summaries: &[ScenarioSummary],
    scenario: Scenario,
    transport: Transport,
    keep: impl Fn(&Row) -> bool,
) -> Vec<&Row> {
    summaries
        .iter()
        .filter(|s| s.scenario == scenario && s.transport == transport)
        .flat_map(|s| s.rows.iter())
        .filter(|r| keep(r))
        .collect()
}

/// Points (x, latency in ms) with both coordinates above zero (a log axis has no zero),
/// sorted by x.
fn points(
    rows: &[&Row],
    x: impl Fn(&Row) -> Option<f64>,
    y_us: impl Fn(&Row) -> u64,
) -> Vec<(f64, f64)> {
    let mut out: Vec<(f64, f64)> = rows
        .iter()
        .filter_map(|r| Some((x(r)?, y_us(r) as f64 / 1000.0)))
        .filter(|(x, y)| *x > 0.0 && *y > 0.0 && x.is_finite())
        .collect();
    out.sort_by(|a, b| a.0.total_cmp(&b.0));
    out
}

fn series(
    name: String,
    points: Vec<(f64, f64)>,
    color: (u8, u8, u8),
    marker: Marker,
    stroke: Stroke,
) -> Series {
    Series {
        name,
        points,
        color,
        marker: Some(marker),
        stroke,
    }
}

/// p50 (solid, circles) and p99 (dashed, triangles) of the same rows; `Points` strokes
/// draw squares and crosses instead.
fn p50_p99(
    out: &mut Vec<Series>,
    what: &str,
    rows: &[&Row],
    x: impl Fn(&Row) -> Option<f64> + Copy,
    color: (u8, u8, u8),
    lines: bool,
) {
    let (m50, m99, s50, s99) = if lines {
        (
            Marker::Circle,
            Marker::Triangle,
            Stroke::Solid,
            Stroke::Dashed,
        )
    } else {
        (
            Marker::Square,
            Marker::Cross,
            Stroke::Points,
            Stroke::Points,
        )
    };
    let p50 = points(rows, x, |r| r.p50_us);
    let p99 = points(rows, x, |r| r.p99_us);
    if !p50.is_empty() {
        out.push(series(format!("{what} p50"), p50, color, m50, s50));
    }
    if !p99.is_empty() {
        out.push(series(format!("{what} p99"), p99, color, m99, s99));
    }
}

/// Latency p50/p99 against connections: `saturate`'s closed-loop rows with one request in
/// flight per connection (the pipelined rows have the same 64 connections and another
/// load, so they are left out) and `flood`'s ramp steps (50 msg/s per connection, open
/// loop), per transport.
pub fn latency_by_connections(summaries: &[ScenarioSummary]) -> Chart {
    let mut out = Vec::new();
    for t in transports(summaries) {
        let name = transport_name(t);
        let (c_sat, c_flood) = if t == Transport::Tcp {
            (BLUE_RGB, GREEN_RGB)
        } else {
            (ORANGE_RGB, RED_RGB)
        };
        let conns = |r: &Row| Some(r.connections as f64);
        let sat = rows(summaries, Scenario::Saturate, t, |r| {
            r.phase == Phase::Run && r.pipeline <= 1 && r.offered_per_s.is_none()
        });
        p50_p99(
            &mut out,
            &format!("{name} saturate (closed loop)"),
            &sat,
            conns,
            c_sat,
            true,
        );
        let flood = rows(summaries, Scenario::Flood, t, |r| r.phase == Phase::Step);
        p50_p99(
            &mut out,
            &format!("{name} flood (50 msg/s each)"),
            &flood,
            conns,
            c_flood,
            true,
        );
    }
    Chart {
        file: "latency-by-connections.svg",
        alt: "latency p50 and p99 against connections".into(),
        title: format!(
            "ringmcp latency against connections, {} ({})",
            transports_text(summaries),
            machine_text(summaries)
        ),
        x_label: "connections".into(),
        y_label: "latency (ms, from the intended send time)".into(),
        x_log: true,
        y_log: true,
        series: out,
    }
}

/// Latency p50/p99 against offered load: `sweep`'s rates as lines, and as loose points
/// the whole `baseline` run and the whole `bombing` run (their recovery runs are left
/// out), per transport.
pub fn latency_by_offered(summaries: &[ScenarioSummary]) -> Chart {
    let mut out = Vec::new();
    for t in transports(summaries) {
        let name = transport_name(t);
        let (c_sweep, c_other) = if t == Transport::Tcp {
            (BLUE_RGB, PURPLE_RGB)
        } else {
            (ORANGE_RGB, BROWN_RGB)
        };
        let offered = |r: &Row| r.offered_per_s;
        let sweep = rows(summaries, Scenario::Sweep, t, |r| r.phase == Phase::Run);
        p50_p99(
            &mut out,
            &format!("{name} sweep (64 conns)"),
            &sweep,
            offered,
            c_sweep,
            true,
        );
        let whole = |r: &Row| r.phase == Phase::Run;
        let mut others = rows(summaries, Scenario::Baseline, t, whole);
        others.extend(rows(summaries, Scenario::Bombing, t, whole));
        p50_p99(
            &mut out,
            &format!("{name} baseline, bombing"),
            &others,
            offered,
            c_other,
            false,
        );
    }
    Chart {
        file: "latency-by-offered-load.svg",
        alt: "latency p50 and p99 against offered load".into(),
        title: format!(
            "ringmcp latency against offered load, {} ({})",
            transports_text(summaries),
            machine_text(summaries)
        ),
        x_label: "offered load (msg/s, open loop)".into(),
        y_label: "latency (ms, from the intended send time)".into(),
        x_log: true,
        y_log: true,
        series: out,
    }
}

/// OK responses per second against offered load (`sweep`), per transport, with y = x
/// (every offered request answered) for reference.
pub fn throughput_by_offered(summaries: &[ScenarioSummary]) -> Chart {
    let mut out = Vec::new();
    let mut top: f64 = 0.0;
    for t in transports(summaries) {
        let mut pts: Vec<(f64, f64)> =
            rows(summaries, Scenario::Sweep, t, |r| r.phase == Phase::Run)
                .into_iter()
                .filter_map(|r| Some((r.offered_per_s?, r.ok_per_s)))
                .filter(|(x, y)| *x > 0.0 && x.is_finite() && y.is_finite())
                .collect();
        pts.sort_by(|a, b| a.0.total_cmp(&b.0));
        if pts.is_empty() {
            continue;
        }
        top = pts.iter().fold(top, |m, p| m.max(p.0).max(p.1));
        let color = if t == Transport::Tcp {
            BLUE_RGB
        } else {
            ORANGE_RGB
        };
        out.push(series(
            format!("{} sweep (64 conns)", transport_name(t)),
            pts,
            color,
            Marker::Circle,
            Stroke::Solid,
        ));
    }
    if top > 0.0 {
        out.push(Series {
            name: "y = x (every offered request answered)".into(),
            points: vec![(0.0, 0.0), (top, top)],
            color: GREY_RGB,
            marker: None,
            stroke: Stroke::Dashed,
        });
    }
    Chart {
        file: "throughput-by-offered-load.svg",
        alt: "OK responses per second against offered load".into(),
        title: format!(
            "ringmcp throughput against offered load, {} ({})",
            transports_text(summaries),
            machine_text(summaries)
        ),
        x_label: "offered load (msg/s, open loop)".into(),
        y_label: "OK responses (msg/s)".into(),
        x_log: false,
        y_log: false,
        series: out,
    }
}

/// Every chart `ringmcp-load report` draws, in the order results.md shows them.
pub fn charts(summaries: &[ScenarioSummary]) -> Vec<Chart> {
    vec![
        latency_by_connections(summaries),
        latency_by_offered(summaries),
        throughput_by_offered(summaries),
    ]
}

/// Bounds of a log axis snap to 1, 2, 3 or 5 times a power of ten, so that the data
/// fills the plot and the ends still fall on round numbers.
const LOG_STEPS: [f64; 4] = [1.0, 2.0, 3.0, 5.0];

/// Axis bounds around `values`: round numbers (see [`LOG_STEPS`]) 5 % beyond the data on a
/// log axis, 0 to the top plus 5 % on a linear one. `None` when there is no value.
fn axis_range(values: impl Iterator<Item = f64>, log: bool) -> Option<(f64, f64)> {
    let (lo, hi) = values
        .filter(|v| v.is_finite() && (!log || *v > 0.0))
        .fold(None, |acc: Option<(f64, f64)>, v| match acc {
            None => Some((v, v)),
            Some((a, b)) => Some((a.min(v), b.max(v))),
        })?;
    if log {
        let below = lo / 1.05;
        let decade = 10f64.powf(below.log10().floor());
        let lo = LOG_STEPS
            .iter()
            .rev()
            .map(|m| m * decade)
            .find(|v| *v <= below)
            .unwrap_or(decade);
        let above = hi * 1.05;
        let decade = 10f64.powf(above.log10().floor());
        let hi = LOG_STEPS
            .iter()
            .chain(std::iter::once(&10.0))
            .map(|m| m * decade)
            .find(|v| *v >= above)
            .unwrap_or(decade * 10.0);
        Some((lo, hi))
    } else {
        let hi = if hi > 0.0 { hi * 1.05 } else { 1.0 };
        Some((lo.min(0.0), hi))
    }
}

/// Every `m` x 10^k (m in `mults`) from `lo` to `hi` (both above zero), ascending.
pub fn log_ticks(lo: f64, hi: f64, mults: &[f64]) -> Vec<f64> {
    let mut out = Vec::new();
    if !(lo > 0.0 && hi >= lo && hi.is_finite()) {
        return out;
    }
    // Bounded: a plot spans a few decades, never more than 40.
    let first = lo.log10().floor() as i32;
    let last = (hi.log10().ceil() as i32).min(first + 40);
    for k in first..=last {
        for m in mults {
            // Rounded to 12 significant digits so that 0.1 x 3 prints as 0.3.
            let v = m * 10f64.powi(k);
            let v = format!("{v:.11e}").parse::<f64>().unwrap_or(v);
            if v >= lo * (1.0 - 1e-9) && v <= hi * (1.0 + 1e-9) {
                out.push(v);
            }
        }
    }
    out
}

/// A tick label: thousands separators from 1,000 up, at most three decimals below 1.
pub fn tick(v: f64) -> String {
    let a = v.abs();
    if a >= 1_000.0 {
        let s = crate::report::group(a.round() as u64);
        if v < 0.0 {
            format!("-{s}")
        } else {
            s
        }
    } else if a >= 10.0 || a == 0.0 {
        format!("{v:.0}")
    } else {
        let s = format!("{v:.3}");
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    }
}

/// The chart as an SVG document.
pub fn render_svg(c: &Chart) -> Result<String, PlotError> {
    let err = |e: &dyn std::fmt::Debug| PlotError::Draw(c.file.to_string(), format!("{e:?}"));
    let pts = || c.series.iter().flat_map(|s| s.points.iter().copied());
    let (x0, x1) = axis_range(pts().map(|p| p.0), c.x_log)
        .ok_or_else(|| PlotError::Draw(c.file.into(), "no point to draw".into()))?;
    let (y0, y1) = axis_range(pts().map(|p| p.1), c.y_log)
        .ok_or_else(|| PlotError::Draw(c.file.into(), "no point to draw".into()))?;
    let mut buf = String::new();
    {
        let root = SVGBackend::with_string(&mut buf, (WIDTH_PX, HEIGHT_PX)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| err(&e))?;
        // Log axes get their ticks from `log_ticks`: plotters' own label only the powers
        // of ten, too few when the data spans one or two decades.
        let log = |lo: f64, hi: f64| {
            (lo..hi)
                .log_scale()
                .with_key_points(log_ticks(lo, hi, &[1.0, 2.0, 5.0]))
                .with_light_points(log_ticks(
                    lo,
                    hi,
                    &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0],
                ))
        };
        match (c.x_log, c.y_log) {
            (true, true) => draw(&root, c, log(x0, x1), log(y0, y1)),
            (true, false) => draw(&root, c, log(x0, x1), y0..y1),
            (false, true) => draw(&root, c, x0..x1, log(y0, y1)),
            (false, false) => draw(&root, c, x0..x1, y0..y1),
        }
        .map_err(|e| err(&e))?;
        root.present().map_err(|e| err(&e))?;
    }
    Ok(buf)
}

type DrawErr = DrawingAreaErrorKind<std::io::Error>;

fn draw<X, Y>(
    root: &DrawingArea<SVGBackend<'_>, Shift>,
    c: &Chart,
    x: X,
    y: Y,
) -> Result<(), DrawErr>
where
    X: AsRangedCoord<Value = f64>,
    Y: AsRangedCoord<Value = f64>,
    X::CoordDescType: ValueFormatter<f64>,
    Y::CoordDescType: ValueFormatter<f64>,
{
    let mut chart = ChartBuilder::on(root)
        .caption(&c.title, ("sans-serif", 17))
        .margin(14)
        // Room for the last x tick's label, centred on the right edge.
        .margin_right(40)
        .x_label_area_size(50)
        .y_label_area_size(70)
        .build_cartesian_2d(x, y)?;
    let fmt = |v: &f64| tick(*v);
    chart
        .configure_mesh()
        .x_desc(c.x_label.as_str())
        .y_desc(c.y_label.as_str())
        .x_label_formatter(&fmt)
        .y_label_formatter(&fmt)
        .x_labels(12)
        .y_labels(12)
        .label_style(("sans-serif", 13))
        .axis_desc_style(("sans-serif", 14))
        .draw()?;
    for s in &c.series {
        let color = RGBColor(s.color.0, s.color.1, s.color.2);
        let line = color.stroke_width(2);
        let pts = s.points.iter().copied();
        // The legend's sample: the series' line (solid, two dashes or none), 24 pixels
        // wide, with its marker in the middle (drawn relative to the sample's anchor).
        let (a, b) = match s.stroke {
            Stroke::Solid => (vec![(0, 0), (24, 0)], vec![(24, 0)]),
            Stroke::Dashed => (vec![(0, 0), (9, 0)], vec![(15, 0), (24, 0)]),
            Stroke::Points => (vec![(12, 0)], vec![(12, 0)]),
        };
        let sample = move |(x, y): (i32, i32)| {
            EmptyElement::at((x, y))
                + PathElement::new(a.clone(), line)
                + PathElement::new(b.clone(), line)
        };
        let anno = match s.stroke {
            Stroke::Solid => Some(chart.draw_series(LineSeries::new(pts.clone(), line))?),
            Stroke::Dashed => {
                Some(chart.draw_series(DashedLineSeries::new(pts.clone(), 8, 5, line))?)
            }
            Stroke::Points => None,
        };
        let name = s.name.as_str();
        match s.marker {
            None => {
                if let Some(anno) = anno {
                    anno.label(name).legend(sample);
                }
            }
            Some(Marker::Circle) => {
                chart
                    .draw_series(pts.map(|p| Circle::new(p, 4, color.filled())))?
                    .label(name)
                    .legend(move |p| sample(p) + Circle::new((12, 0), 4, color.filled()));
            }
            Some(Marker::Triangle) => {
                chart
                    .draw_series(pts.map(|p| TriangleMarker::new(p, 5, color.filled())))?
                    .label(name)
                    .legend(move |p| sample(p) + TriangleMarker::new((12, 0), 5, color.filled()));
            }
            Some(Marker::Square) => {
                chart
                    .draw_series(
                        pts.map(|p| EmptyElement::at(p) + Rectangle::new([(-4, -4), (4, 4)], line)),
                    )?
                    .label(name)
                    .legend(move |p| sample(p) + Rectangle::new([(8, -4), (16, 4)], line));
            }
            Some(Marker::Cross) => {
                chart
                    .draw_series(pts.map(|p| Cross::new(p, 5, line)))?
                    .label(name)
                    .legend(move |p| sample(p) + Cross::new((12, 0), 5, line));
            }
        }
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK.mix(0.4))
        .label_font(("sans-serif", 13))
        .draw()?;
    Ok(())
}

/// Draws every chart that has data into `dir` (created if need be); returns the charts
/// written and their files.
pub fn write_plots(
    summaries: &[ScenarioSummary],
    dir: &Path,
) -> Result<Vec<(Chart, PathBuf)>, PlotError> {
    let mut out = Vec::new();
    for c in charts(summaries) {
        if !c.has_data() {
            continue;
        }
        let svg = render_svg(&c)?;
        std::fs::create_dir_all(dir).map_err(|e| PlotError::Write(dir.to_path_buf(), e))?;
        let path = dir.join(c.file);
        std::fs::write(&path, svg).map_err(|e| PlotError::Write(path.clone(), e))?;
        out.push((c, path));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys::Machine;

    fn machine() -> Machine {
        Machine {
            cores: 2,
            model: "Test CPU".into(),
            kernel: "6.18.0".into(),
            hostname: "box".into(),
            mem_total_kib: 1 << 20,
        }
    }

    fn row(label: &str, phase: Phase, conns: usize, offered: Option<f64>, p50: u64) -> Row {
        Row {
            label: label.into(),
            phase,
            connections: conns,
            offered_per_s: offered,
            ok_per_s: offered.unwrap_or(1_000.0) * 0.9,
            p50_us: p50,
            p95_us: p50 * 2,
            p99_us: p50 * 4,
            max_us: p50 * 8,
            ..Row::default()
        }
    }

    fn summary(scenario: Scenario, transport: Transport, rows: Vec<Row>) -> ScenarioSummary {
        ScenarioSummary {
            scenario,
            transport,
            scale: 0.5,
            started_at_unix_s: 0.0,
            machine: machine(),
            commit: None,
            command_line: String::new(),
            server_command: String::new(),
            server_version: String::new(),
            run_commands: Vec::new(),
            rows,
            notes: Vec::new(),
            accounting: Vec::new(),
        }
    }

    /// Every scenario the plots read, over TCP; HTTP has the sweep only.
    fn summaries() -> Vec<ScenarioSummary> {
        let mut pipelined = row("pipelined 32 x 64 conns", Phase::Run, 64, None, 4_000);
        pipelined.pipeline = 32;
        vec![
            summary(
                Scenario::Baseline,
                Transport::Tcp,
                vec![row("25 x 100/s", Phase::Run, 25, Some(2_500.0), 120)],
            ),
            summary(
                Scenario::Saturate,
                Transport::Tcp,
                vec![
                    row("closed loop, 16 conns", Phase::Run, 16, None, 150),
                    row("closed loop, 1 conns", Phase::Run, 1, None, 80),
                    pipelined,
                ],
            ),
            summary(
                Scenario::Sweep,
                Transport::Tcp,
                vec![
                    row("offered 50,000/s", Phase::Run, 64, Some(50_000.0), 400),
                    row("offered 10,000/s", Phase::Run, 64, Some(10_000.0), 150),
                ],
            ),
            summary(
                Scenario::Sweep,
                Transport::Http,
                vec![row("offered 10,000/s", Phase::Run, 64, Some(10_000.0), 200)],
            ),
            summary(
                Scenario::Bombing,
                Transport::Tcp,
                vec![
                    // The references: the measured capacity (closed loop) and the
                    // unloaded latency at the baseline's rate; neither is plotted.
                    row(
                        "capacity: closed loop, 20 x 64 in flight",
                        Phase::Reference,
                        20,
                        None,
                        900,
                    ),
                    row(
                        "unloaded: 25 x 100/s",
                        Phase::Reference,
                        25,
                        Some(2_500.0),
                        90,
                    ),
                    row("second 1", Phase::Step, 20, Some(200_000.0), 2_000),
                    row(
                        "whole bombing (2 s)",
                        Phase::Run,
                        20,
                        Some(200_000.0),
                        2_200,
                    ),
                    row("recovery 1", Phase::Recovery, 20, Some(2_500.0), 110),
                ],
            ),
            summary(
                Scenario::Flood,
                Transport::Tcp,
                vec![
                    row("up 1", Phase::Step, 5, Some(250.0), 200),
                    row("up 2", Phase::Step, 30, Some(1_500.0), 170),
                    // An empty step (no OK response) has no latency: left off a log axis.
                    row("up 3", Phase::Step, 60, Some(3_000.0), 0),
                    row("whole ramp (3 steps)", Phase::Run, 60, Some(1_583.0), 180),
                    row("recovery 1", Phase::Recovery, 6, Some(300.0), 150),
                ],
            ),
        ]
    }

    fn find<'a>(c: &'a Chart, name: &str) -> &'a Series {
        c.series
            .iter()
            .find(|s| s.name == name)
            .unwrap_or_else(|| panic!("no series {name:?} in {:?}", names(c)))
    }

    fn names(c: &Chart) -> Vec<&str> {
        c.series.iter().map(|s| s.name.as_str()).collect()
    }

    #[test]
    fn latency_by_connections_takes_closed_loop_saturate_and_flood_steps() {
        let c = latency_by_connections(&summaries());
        assert_eq!(
            names(&c),
            [
                "TCP saturate (closed loop) p50",
                "TCP saturate (closed loop) p99",
                "TCP flood (50 msg/s each) p50",
                "TCP flood (50 msg/s each) p99",
            ],
            "HTTP has no saturate nor flood rows here, so no HTTP series"
        );
        // The pipelined row is left out; sorted by connections; latency in ms.
        assert_eq!(
            find(&c, "TCP saturate (closed loop) p50").points,
            [(1.0, 0.08), (16.0, 0.15)]
        );
        assert_eq!(
            find(&c, "TCP saturate (closed loop) p99").points,
            [(1.0, 0.32), (16.0, 0.6)]
        );
        // Ramp steps only: no whole ramp, no recovery, no zero latency.
        assert_eq!(
            find(&c, "TCP flood (50 msg/s each) p50").points,
            [(5.0, 0.2), (30.0, 0.17)]
        );
        assert!(c.x_log && c.y_log);
        assert!(c.title.contains("TCP and HTTP"), "{}", c.title);
        assert!(
            c.title.contains("2 cores, Test CPU, Linux 6.18.0"),
            "{}",
            c.title
        );
        assert!(c.has_data());
    }

    #[test]
    fn latency_by_offered_takes_sweep_rates_baseline_and_whole_bombing() {
        let c = latency_by_offered(&summaries());
        assert_eq!(
            find(&c, "TCP sweep (64 conns) p50").points,
            [(10_000.0, 0.15), (50_000.0, 0.4)]
        );
        let loose = find(&c, "TCP baseline, bombing p99");
        // Baseline and the whole bombing; not its seconds, its recovery nor its references.
        assert_eq!(loose.points, [(2_500.0, 0.48), (200_000.0, 8.8)]);
        assert_eq!(loose.stroke, Stroke::Points);
        assert_eq!(
            find(&c, "HTTP sweep (64 conns) p99").points,
            [(10_000.0, 0.8)]
        );
        assert!(!names(&c).iter().any(|n| n.starts_with("HTTP baseline")));
    }

    #[test]
    fn throughput_by_offered_has_y_equals_x_over_the_data() {
        let c = throughput_by_offered(&summaries());
        assert_eq!(
            find(&c, "TCP sweep (64 conns)").points,
            [(10_000.0, 9_000.0), (50_000.0, 45_000.0)]
        );
        assert_eq!(
            find(&c, "HTTP sweep (64 conns)").points,
            [(10_000.0, 9_000.0)]
        );
        let id = find(&c, "y = x (every offered request answered)");
        assert_eq!(id.points, [(0.0, 0.0), (50_000.0, 50_000.0)]);
        assert_eq!(id.marker, None);
        assert!(!c.x_log && !c.y_log);
    }

    #[test]
    fn no_rows_no_chart() {
        let only_hold = vec![summary(
            Scenario::Hold,
            Transport::Tcp,
            vec![row("held", Phase::Run, 100, Some(1.0), 500)],
        )];
        for c in charts(&only_hold) {
            assert!(!c.has_data(), "{}", c.file);
            assert!(render_svg(&c).is_err());
        }
        let dir = std::env::temp_dir().join(format!("ringmcp-plot-none-{}", std::process::id()));
        assert!(write_plots(&only_hold, &dir).unwrap().is_empty());
        assert!(!dir.exists());
    }

    /// Element names open and closed in order (`<a>..</a>`, `<b/>`), comments and the
    /// XML declaration skipped: enough to catch a truncated or interleaved document.
    fn balanced(svg: &str) -> Result<usize, String> {
        let mut stack: Vec<String> = Vec::new();
        let mut elements = 0;
        let mut rest = svg;
        while let Some(i) = rest.find('<') {
            rest = &rest[i + 1..];
            let end = rest.find('>').ok_or("unclosed <")?;
            let tag = &rest[..end];
            rest = &rest[end + 1..];
            if tag.starts_with('?') || tag.starts_with('!') {
                continue;
            }
            if let Some(name) = tag.strip_prefix('/') {
                let open = stack.pop().ok_or(format!("</{name}> closes nothing"))?;
                if open != name.trim() {
                    return Err(format!("<{open}> closed by </{name}>"));
                }
            } else {
                elements += 1;
                let name = tag.split_whitespace().next().unwrap_or("").to_string();
                if !tag.ends_with('/') {
                    stack.push(name);
                }
            }
        }
        if stack.is_empty() {
            Ok(elements)
        } else {
            Err(format!("left open: {stack:?}"))
        }
    }

    #[test]
    fn svg_is_well_formed_and_shows_every_series() {
        let s = summaries();
        for c in charts(&s) {
            let svg = render_svg(&c).unwrap();
            assert!(svg.starts_with("<svg"), "{}", &svg[..svg.len().min(80)]);
            assert!(svg.trim_end().ends_with("</svg>"));
            let elements = balanced(&svg).unwrap_or_else(|e| panic!("{}: {e}", c.file));
            assert!(elements > 50, "{}: {elements} elements", c.file);
            for series in &c.series {
                assert!(svg.contains(&series.name), "{}: {}", c.file, series.name);
            }
            assert!(svg.contains(&c.x_label) && svg.contains(&c.y_label));
            assert!(svg.contains("Test CPU"), "title names the machine");
        }
        assert!(balanced("<svg><g></svg>").is_err());
        assert!(balanced("<svg><g/>").is_err());
    }

    #[test]
    fn plots_are_written_as_files() {
        let dir = std::env::temp_dir().join(format!("ringmcp-plot-{}", std::process::id()));
        let written = write_plots(&summaries(), &dir).unwrap();
        let files: Vec<&str> = written.iter().map(|(c, _)| c.file).collect();
        assert_eq!(
            files,
            [
                "latency-by-connections.svg",
                "latency-by-offered-load.svg",
                "throughput-by-offered-load.svg"
            ]
        );
        for (_, path) in &written {
            let text = std::fs::read_to_string(path).unwrap();
            assert!(text.starts_with("<svg"), "{}", path.display());
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn axes_and_ticks() {
        let near = |a: Option<(f64, f64)>, b: (f64, f64)| {
            let (x, y) = a.unwrap();
            assert!(
                (x - b.0).abs() < 1e-9 * b.0 && (y - b.1).abs() < 1e-9 * b.1,
                "{a:?} != {b:?}"
            );
        };
        near(axis_range([0.08, 0.6, 8.8].into_iter(), true), (0.05, 10.0));
        near(
            axis_range([2_500.0, 200_000.0].into_iter(), true),
            (2_000.0, 300_000.0),
        );
        near(axis_range([1.0].into_iter(), true), (0.5, 2.0));
        near(
            axis_range([1.0, 10_000.0].into_iter(), true),
            (0.5, 20_000.0),
        );
        assert_eq!(
            axis_range([0.0, 100.0].into_iter(), false),
            Some((0.0, 105.0))
        );
        assert_eq!(axis_range([-1.0, 0.0].into_iter(), true), None);
        assert_eq!(
            log_ticks(2_000.0, 300_000.0, &[1.0, 2.0, 5.0]),
            [2_000.0, 5_000.0, 10_000.0, 20_000.0, 50_000.0, 100_000.0, 200_000.0]
        );
        assert_eq!(log_ticks(0.05, 0.3, &[1.0, 2.0, 3.0]), [0.1, 0.2, 0.3]);
        assert!(log_ticks(0.0, 1.0, &[1.0]).is_empty());
        assert_eq!(tick(200_000.0), "200,000");
        assert_eq!(tick(50.0), "50");
        assert_eq!(tick(0.5), "0.5");
        assert_eq!(tick(0.001), "0.001");
        assert_eq!(tick(2.0), "2");
        assert_eq!(tick(0.0), "0");
    }
}
