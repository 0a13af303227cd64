//! The seed's scenarios (`ringmcp-load scenario NAME`), each against a ringmcp server it
//! starts itself (through [`crate::peers`]) on free loopback ports:
//!
//! * `baseline`: 25 connections x 100 msg/s open loop (2,500/s) of `tools/call echo`.
//! * `flood`: connections ramp up in steps (5 .. 10,000, as far as the server's open-file
//!   limit allows), 50 msg/s each, then back down; latency per step and recovery.
//! * `bombing`: 20 connections each offering 10,000 msg/s (200,000/s aggregate), reported
//!   second by second (rate, latency, errors, server RSS), then a recovery step at the
//!   baseline rate.
//! * `saturate`: closed loop at 1, 16, 64 and 256 connections, then 64 connections with
//!   [`SATURATE_PIPELINE`] requests in flight each: throughput, latency and OK responses per
//!   server CPU-second.
//! * `sweep`: open loop at 64 connections, one run per offered rate of [`SWEEP_RATES`]:
//!   achieved rate and latency against offered load (where the knee is).
//! * `hold`: as many sessions as the server's open-file limit allows (minus a reserve),
//!   each subscribed to `demo://counter` and only listening; server RSS per connection,
//!   then 5 counter updates and how long each took to reach every subscriber.
//!
//! Every run writes its [`RunReport`] as JSON and one `.hgrm` file per step; every scenario
//! writes a [`ScenarioSummary`] (`<scenario>-<transport>.summary.json`) that
//! [`render_markdown`] turns into docs/benchmarks/results.md.

use crate::config::{echo_arguments, RunConfig, Step, Subscribe, Target, Transport};
use crate::peers::{self, Peer, PeerProcess, StartOptions};
use crate::report::{group, us, RunReport};
use crate::sys::{self, Machine};
use crate::{hgrm, run};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::{Ipv4Addr, TcpListener};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Connections of the flood ramp, in order (capped by the server's open-file limit).
pub const FLOOD_STEPS: [usize; 12] = [
    5, 30, 60, 120, 180, 240, 350, 500, 1_000, 2_000, 5_000, 10_000,
];
/// Per-connection rate of the flood (msg/s).
pub const FLOOD_PER_CONN: f64 = 50.0;
/// Baseline: connections and aggregate rate.
pub const BASELINE_CONNS: usize = 25;
/// Baseline aggregate rate (msg/s).
pub const BASELINE_RATE: f64 = 2_500.0;
/// Bombing: connections and per-connection offered rate.
pub const BOMBING_CONNS: usize = 20;
/// Bombing per-connection offered rate (msg/s).
pub const BOMBING_PER_CONN: f64 = 10_000.0;
/// Saturate: closed-loop connection counts.
pub const SATURATE_CONNS: [usize; 4] = [1, 16, 64, 256];
/// Saturate, pipelined: requests in flight per connection. Chosen among 8, 16 and 32 as
/// the depth with the most OK responses per server CPU-second over TCP on the 2-core
/// development box (64 connections, 4 s runs; 64, bombing's depth, added little more and
/// doubled the median latency).
pub const SATURATE_PIPELINE: u32 = 32;
/// Saturate, pipelined: connections.
pub const SATURATE_PIPELINE_CONNS: usize = 64;
/// Sweep: connections, fixed over every offered rate.
pub const SWEEP_CONNS: usize = 64;
/// Sweep: offered aggregate rates (msg/s), one open-loop run each, lowest first.
pub const SWEEP_RATES: [f64; 6] = [
    10_000.0, 25_000.0, 50_000.0, 100_000.0, 150_000.0, 200_000.0,
];
/// Sweep: requests a connection may have in flight, so that the generator can offer the
/// top rate over 64 connections (as `bombing` does over 20).
pub const SWEEP_PIPELINE: u32 = 64;
/// Peers: idle initialized sessions held for the memory-per-session figure, the same for
/// every peer (well inside the 20,000 open files a process may have here).
pub const PEER_IDLE_SESSIONS: usize = 2_000;
/// File descriptors the server keeps for itself (listeners, rings, eventfds, logs) when
/// `hold` and `flood` size their connection counts.
pub const FD_RESERVE: usize = 256;

/// A scenario.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Scenario {
    /// 2,500 msg/s over 25 connections.
    Baseline,
    /// Connection ramp at 50 msg/s each.
    Flood,
    /// 200,000 msg/s offered over 20 connections.
    Bombing,
    /// Closed loop at 1, 16, 64, 256 connections, then pipelined at 64.
    Saturate,
    /// Open loop at 64 connections over a range of offered rates.
    Sweep,
    /// As many subscribed sessions as the server may hold, and the fan-out of their updates.
    Hold,
}

impl Scenario {
    /// Every scenario, in the order `all` runs them.
    pub const ALL: [Scenario; 6] = [
        Scenario::Baseline,
        Scenario::Saturate,
        Scenario::Sweep,
        Scenario::Bombing,
        Scenario::Flood,
        Scenario::Hold,
    ];

    /// Its name on the command line and in file names.
    pub fn name(self) -> &'static str {
        match self {
            Scenario::Baseline => "baseline",
            Scenario::Flood => "flood",
            Scenario::Bombing => "bombing",
            Scenario::Saturate => "saturate",
            Scenario::Sweep => "sweep",
            Scenario::Hold => "hold",
        }
    }

    /// Reads a name; `all` gives every scenario.
    pub fn parse_list(s: &str) -> Result<Vec<Scenario>, String> {
        if s == "all" {
            return Ok(Scenario::ALL.to_vec());
        }
        Scenario::ALL
            .into_iter()
            .find(|x| x.name() == s)
            .map(|x| vec![x])
            .ok_or_else(|| {
                format!(
                    "unknown scenario {s:?}; one of baseline, flood, bombing, saturate, sweep, hold, all"
                )
            })
    }
}

/// How scenarios run.
#[derive(Clone, Debug)]
pub struct ScenarioOptions {
    /// The `ringmcp` binary.
    pub server_bin: PathBuf,
    /// Multiplies every duration (1.0 = the seed's durations).
    pub scale: f64,
    /// TCP or HTTP (Streamable HTTP with sessions).
    pub transport: Transport,
    /// Where JSON, .hgrm and summaries go (and the server's log).
    pub out_dir: PathBuf,
    /// The server's `--shards` (default: every online core).
    pub shards: Option<usize>,
    /// No progress bars.
    pub quiet: bool,
    /// The command line that asked for the scenarios (for the report).
    pub command_line: String,
}

/// What a row stands for, so that the plots can pick their points without reading labels.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Phase {
    /// A whole load run: a saturate level, a sweep rate, the baseline, a whole ramp or a
    /// whole bombing.
    #[default]
    Run,
    /// One step of a stepped run: a flood level, a second of bombing.
    Step,
    /// A run or step after an overload, showing how the server recovers.
    Recovery,
}

fn pipeline_one() -> u32 {
    1
}

/// One row of a scenario's table.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Row {
    /// What the row is (a step, a phase).
    pub label: String,
    /// What kind of row it is.
    #[serde(default)]
    pub phase: Phase,
    /// Connections asked for.
    pub connections: usize,
    /// Requests in flight per connection (closed loop) or allowed in flight (open loop).
    #[serde(default = "pipeline_one")]
    pub pipeline: u32,
    /// Connections open at the peak (hold).
    pub peak_open: Option<u64>,
    /// Offered aggregate rate (None: closed loop).
    pub offered_per_s: Option<f64>,
    /// OK responses per second.
    pub ok_per_s: f64,
    /// Latency percentiles (µs) from the intended send time.
    pub p50_us: u64,
    /// 95th percentile.
    pub p95_us: u64,
    /// 99th percentile.
    pub p99_us: u64,
    /// Largest.
    pub max_us: u64,
    /// Errors by kind.
    pub errors: BTreeMap<String, u64>,
    /// Server CPU seconds over the measured window (whole runs only).
    pub server_cpu_s: Option<f64>,
    /// OK responses per server CPU-second (whole runs only).
    pub ok_per_server_cpu_s: Option<f64>,
    /// Server RSS (KiB): the largest sample within the row's window.
    pub server_rss_kib: Option<u64>,
    /// Server RSS growth per open connection (hold), bytes.
    pub rss_bytes_per_conn: Option<f64>,
    /// Subscribers that saw the update in time (hold's fan-out rows; the latency columns
    /// are then the update's fan-out latency).
    #[serde(default)]
    pub fanout_notified: Option<u64>,
    /// The run's JSON file (relative to the output directory).
    pub json: String,
}

impl Default for Row {
    fn default() -> Row {
        Row {
            label: String::new(),
            phase: Phase::Run,
            connections: 0,
            pipeline: 1,
            peak_open: None,
            offered_per_s: None,
            ok_per_s: 0.0,
            p50_us: 0,
            p95_us: 0,
            p99_us: 0,
            max_us: 0,
            errors: BTreeMap::new(),
            server_cpu_s: None,
            ok_per_server_cpu_s: None,
            server_rss_kib: None,
            rss_bytes_per_conn: None,
            fanout_notified: None,
            json: String::new(),
        }
    }
}

/// What one scenario measured, written as `<scenario>-<transport>.summary.json`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ScenarioSummary {
    /// The scenario.
    pub scenario: Scenario,
    /// The transport.
    pub transport: Transport,
    /// The duration multiplier.
    pub scale: f64,
    /// Unix time at its start.
    pub started_at_unix_s: f64,
    /// The machine.
    pub machine: Machine,
    /// `git rev-parse HEAD` of the working directory, if any.
    pub commit: Option<String>,
    /// The command that ran it.
    pub command_line: String,
    /// The server's command line and version.
    pub server_command: String,
    /// `serverInfo.version`.
    pub server_version: String,
    /// Every load run's exact configuration as a `ringmcp-load run` command line.
    pub run_commands: Vec<String>,
    /// The table.
    pub rows: Vec<Row>,
    /// Remarks (limits met, parts left out).
    pub notes: Vec<String>,
}

/// A free TCP port on 127.0.0.1 (bound, then released).
fn free_port() -> std::io::Result<u16> {
    let l = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
    Ok(l.local_addr()?.port())
}

/// Starts a ringmcp server on free ports.
fn start_server(o: &ScenarioOptions) -> anyhow::Result<PeerProcess> {
    let mut last = None;
    for _ in 0..5 {
        let http = free_port()?;
        let tcp = free_port()?;
        if http == tcp {
            continue;
        }
        let opts = StartOptions {
            ringmcp_bin: o.server_bin.clone(),
            threads: Some(o.shards.unwrap_or_else(sys::online_cpus)),
            ringmcp_tcp_port: Some(tcp),
            ..StartOptions::default()
        };
        match peers::start_with(Peer::Ringmcp, http, &o.out_dir.join("servers"), &opts) {
            Ok(p) => return Ok(p),
            Err(e) => last = Some(e),
        }
    }
    Err(anyhow::anyhow!(
        "cannot start ringmcp: {}",
        last.map_or("no free ports".into(), |e| e.to_string())
    ))
}

fn target_of(server: &PeerProcess, t: Transport) -> anyhow::Result<Target> {
    let url = match t {
        Transport::Tcp => format!(
            "tcp://{}",
            server
                .tcp_addr()
                .ok_or_else(|| anyhow::anyhow!("ringmcp has no TCP address"))?
        ),
        Transport::Http => server.url(),
        Transport::HttpStateless => format!("http-stateless://{}/mcp", server.addr()),
    };
    Ok(Target::parse(&url)?)
}

/// The soft open-file limit of a process, from /proc/PID/limits.
pub fn process_nofile(pid: u32) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/limits")).ok()?;
    parse_limits_nofile(&text)
}

/// The soft "Max open files" of a /proc/PID/limits text.
pub fn parse_limits_nofile(text: &str) -> Option<u64> {
    let line = text.lines().find(|l| l.starts_with("Max open files"))?;
    line["Max open files".len()..]
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// The `ringmcp-load run` command line that reproduces `cfg` against the same server.
pub fn run_command(cfg: &RunConfig) -> String {
    let mut a = vec![
        "ringmcp-load".to_string(),
        "run".into(),
        cfg.target.url(),
        "--warmup".into(),
        format!("{}ms", cfg.warmup_ms),
        "--pipeline".into(),
        cfg.pipeline.to_string(),
        "--timeout".into(),
        format!("{}ms", cfg.timeout_ms),
    ];
    for s in &cfg.steps {
        a.push("--step".into());
        a.push(match s.rate {
            Some(r) => format!("{}:{}ms:{}", s.connections, s.duration_ms, r),
            None => format!("{}:{}ms", s.connections, s.duration_ms),
        });
    }
    if cfg.steps.is_empty() {
        a.push("-c".into());
        a.push(cfg.connections.to_string());
        a.push("-d".into());
        a.push(format!("{}ms", cfg.duration_ms));
        if let Some(r) = cfg.rate {
            a.push("-r".into());
            a.push(r.to_string());
        }
    }
    for p in &cfg.server_pids {
        a.push("--server-pid".into());
        a.push(p.to_string());
    }
    if let Some(s) = &cfg.subscribe {
        a.extend([
            "--subscribe".into(),
            s.uri.clone(),
            "--updates".into(),
            s.updates.to_string(),
            "--update-interval".into(),
            format!("{}ms", s.update_interval_ms),
            "--notify-timeout".into(),
            format!("{}ms", s.notify_timeout_ms),
            "--trigger-tool".into(),
            s.trigger_tool.clone(),
            "--trigger-arguments".into(),
            s.trigger_arguments.clone(),
        ]);
    }
    sys::shell_join(&a)
}

/// Server RSS samples (seconds since the run began, KiB), taken every 100 ms on a thread.
struct RssSampler {
    stop: Arc<AtomicBool>,
    handle: std::thread::JoinHandle<Vec<(f64, u64)>>,
}

impl RssSampler {
    fn start(pid: u32) -> RssSampler {
        let stop = Arc::new(AtomicBool::new(false));
        let s = stop.clone();
        let handle = std::thread::spawn(move || {
            let mut out = Vec::new();
            while !s.load(Ordering::Relaxed) {
                if let Some(k) = sys::vm_rss_kib(pid) {
                    out.push((unix_now(), k));
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            out
        });
        RssSampler { stop, handle }
    }

    fn finish(self) -> Vec<(f64, u64)> {
        self.stop.store(true, Ordering::Relaxed);
        self.handle.join().unwrap_or_default()
    }
}

fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// One load run inside a scenario: its report and the server RSS samples taken meanwhile.
struct Measured {
    report: RunReport,
    rss: Vec<(f64, u64)>,
    json: String,
}

impl Measured {
    /// The largest RSS sample between `from_s` and `to_s` (seconds after the measurement's
    /// start, i.e. after the warm-up).
    fn rss_max(&self, from_s: f64, to_s: f64) -> Option<u64> {
        let t0 = self.report.started_at_unix_s + self.report.warmup_s;
        self.rss
            .iter()
            .filter(|(t, _)| *t - t0 >= from_s && *t - t0 < to_s)
            .map(|(_, k)| *k)
            .max()
    }

    /// One row per step.
    fn step_rows(&self, phase: Phase, label: impl Fn(usize) -> String) -> Vec<Row> {
        self.report
            .steps
            .iter()
            .map(|s| {
                let p95 = hgrm::decode(&s.histogram)
                    .ok()
                    .filter(|h| !h.is_empty())
                    .map_or(0, |h| h.value_at_quantile(0.95));
                Row {
                    label: label(s.index),
                    phase,
                    connections: s.connections,
                    pipeline: self.report.pipeline,
                    offered_per_s: s.rate,
                    ok_per_s: s.throughput_ok_per_s,
                    p50_us: s.latency.p50_us,
                    p95_us: p95,
                    p99_us: s.latency.p99_us,
                    max_us: s.latency.max_us,
                    errors: s.errors.clone(),
                    server_rss_kib: self.rss_max(s.start_s, s.start_s + s.duration_s),
                    json: self.json.clone(),
                    ..Row::default()
                }
            })
            .collect()
    }

    /// One row for the whole run (with the server's CPU time).
    fn whole_row(&self, label: String) -> Row {
        let r = &self.report;
        let p95 = hgrm::decode(&r.histogram)
            .ok()
            .filter(|h| !h.is_empty())
            .map_or(0, |h| h.value_at_quantile(0.95));
        Row {
            label,
            phase: Phase::Run,
            connections: r.connections,
            pipeline: r.pipeline,
            peak_open: Some(r.conns.peak_open),
            // A stepped run offers several rates: give the average over the run.
            offered_per_s: if r.steps.len() > 1 {
                r.steps
                    .iter()
                    .map(|s| s.rate.map(|x| x * s.duration_s))
                    .sum::<Option<f64>>()
                    .map(|sent| sent / r.duration_s.max(1e-9))
            } else {
                r.rate
            },
            ok_per_s: r.throughput_ok_per_s,
            p50_us: r.latency.p50_us,
            p95_us: p95,
            p99_us: r.latency.p99_us,
            max_us: r.latency.max_us,
            errors: r.errors.clone(),
            server_cpu_s: r.server.as_ref().and_then(|s| s.cpu_s),
            ok_per_server_cpu_s: r.server.as_ref().and_then(|s| s.ok_per_cpu_s),
            server_rss_kib: self.rss_max(0.0, r.duration_s + 1.0),
            rss_bytes_per_conn: None,
            fanout_notified: None,
            json: self.json.clone(),
        }
    }
}

/// Runs scenarios one after the other (a fresh server for each), printing and writing
/// their results; returns the summaries.
pub fn run_scenarios(
    list: &[Scenario],
    o: &ScenarioOptions,
) -> anyhow::Result<Vec<ScenarioSummary>> {
    anyhow::ensure!(
        o.scale.is_finite() && o.scale > 0.0 && o.scale <= 100.0,
        "--scale must be above 0 and at most 100"
    );
    anyhow::ensure!(
        o.transport != Transport::HttpStateless,
        "scenarios run over tcp or http"
    );
    std::fs::create_dir_all(&o.out_dir)?;
    let mut out = Vec::new();
    for &s in list {
        eprintln!(
            "== scenario {} over {} (scale {}) ==",
            s.name(),
            o.transport.scheme(),
            o.scale
        );
        let summary = run_one(s, o)?;
        print!("{}", render_table(&summary));
        let path = o.out_dir.join(format!(
            "{}-{}.summary.json",
            s.name(),
            o.transport.scheme()
        ));
        std::fs::write(&path, serde_json::to_string_pretty(&summary)? + "\n")
            .map_err(|e| anyhow::anyhow!("writing {}: {e}", path.display()))?;
        out.push(summary);
    }
    Ok(out)
}

fn ms(base_ms: f64, scale: f64, min_ms: u64) -> u64 {
    ((base_ms * scale).round() as u64).max(min_ms)
}

fn run_one(s: Scenario, o: &ScenarioOptions) -> anyhow::Result<ScenarioSummary> {
    let server = start_server(o)?;
    let pid = server.pid();
    let target = target_of(&server, o.transport)?;
    let server_nofile = process_nofile(pid).unwrap_or(1024) as usize;
    let server_cap = server_nofile.saturating_sub(FD_RESERVE);
    let mut notes = Vec::new();
    let mut rows = Vec::new();
    let mut run_commands = Vec::new();
    let prefix = format!("{}-{}", s.name(), o.transport.scheme());
    let base = RunConfig {
        target,
        warmup_ms: 1_000,
        server_pids: vec![pid],
        progress: !o.quiet,
        arguments: echo_arguments(64),
        ..RunConfig::default()
    };
    let mut measure = |tag: &str, cfg: RunConfig| -> anyhow::Result<Measured> {
        let mut cfg = cfg;
        let cmd = run_command(&cfg);
        cfg.command_line = Some(format!("{}  [{tag}: {cmd}]", o.command_line));
        run_commands.push(cmd);
        let sampler = RssSampler::start(pid);
        let res = run(&cfg);
        let rss = sampler.finish();
        let report = res?;
        if !o.quiet {
            eprint!("{}", report.render());
        }
        let json = format!("{prefix}-{tag}.json");
        std::fs::write(
            o.out_dir.join(&json),
            serde_json::to_string_pretty(&report)? + "\n",
        )?;
        for st in &report.steps {
            if let Ok(h) = hgrm::decode(&st.histogram) {
                std::fs::write(
                    o.out_dir
                        .join(format!("{prefix}-{tag}-step{}.hgrm", st.index)),
                    hgrm::percentile_distribution(&h, 1000.0),
                )?;
            }
        }
        Ok(Measured { report, rss, json })
    };
    match s {
        Scenario::Baseline => {
            let m = measure(
                "run",
                RunConfig {
                    connections: BASELINE_CONNS,
                    rate: Some(BASELINE_RATE),
                    duration_ms: ms(30_000.0, o.scale, 1_000),
                    ..base.clone()
                },
            )?;
            rows.push(m.whole_row("25 x 100/s".into()));
        }
        Scenario::Flood => {
            let step_ms = ms(10_000.0, o.scale, 1_000);
            let mut up: Vec<usize> = FLOOD_STEPS
                .iter()
                .copied()
                .filter(|&c| c <= server_cap)
                .collect();
            let skipped: Vec<String> = FLOOD_STEPS
                .iter()
                .filter(|&&c| c > server_cap)
                .map(|c| group(*c as u64))
                .collect();
            if skipped.is_empty() {
                notes.push(format!(
                    "every step up to {} connections fits the server's open-file limit ({} minus a reserve of {FD_RESERVE})",
                    group(*FLOOD_STEPS.last().unwrap_or(&0) as u64),
                    group(server_nofile as u64)
                ));
            } else {
                notes.push(format!(
                    "steps {} left out: the server's open-file limit is {} (minus a reserve of {FD_RESERVE})",
                    skipped.join(", "),
                    group(server_nofile as u64)
                ));
            }
            if up.is_empty() {
                up.push(5);
            }
            let steps: Vec<Step> = up
                .iter()
                .map(|&c| Step {
                    connections: c,
                    duration_ms: step_ms,
                    rate: Some(c as f64 * FLOOD_PER_CONN),
                })
                .collect();
            let top = *up.last().unwrap_or(&5);
            let n_up = up.len();
            let m = measure(
                "ramp",
                RunConfig {
                    connections: top,
                    steps,
                    timeout_ms: 10_000,
                    ..base.clone()
                },
            )?;
            rows.extend(m.step_rows(Phase::Step, |i| format!("up {}", i + 1)));
            rows.push(m.whole_row(format!("whole ramp ({n_up} steps)")));
            // Recovery: a fresh generator (no requests left queued from the overload) steps
            // down right after the ramp, so what it sees is the server's own recovery.
            let down: Vec<Step> = [top / 10, 25]
                .into_iter()
                .filter(|&c| c > 0 && c < top)
                .map(|c| Step {
                    connections: c,
                    duration_ms: step_ms,
                    rate: Some(c as f64 * FLOOD_PER_CONN),
                })
                .collect();
            if !down.is_empty() {
                let r = measure(
                    "recovery",
                    RunConfig {
                        connections: down.iter().map(|s| s.connections).max().unwrap_or(25),
                        steps: down,
                        warmup_ms: 0,
                        timeout_ms: 10_000,
                        ..base.clone()
                    },
                )?;
                rows.extend(r.step_rows(Phase::Recovery, |i| format!("recovery {}", i + 1)));
            }
            notes.push("the ramp's open-loop requests that the server could not absorb queue in the generator (latency counts from their intended send time; those never answered by the end of the ramp count as incomplete-at-end); the recovery steps run from a fresh generator right after the ramp".into());
        }
        Scenario::Bombing => {
            let secs = ((20.0 * o.scale).round() as usize).clamp(2, 60);
            let steps: Vec<Step> = (0..secs)
                .map(|_| Step {
                    connections: BOMBING_CONNS,
                    duration_ms: 1_000,
                    rate: Some(BOMBING_CONNS as f64 * BOMBING_PER_CONN),
                })
                .collect();
            let m = measure(
                "run",
                RunConfig {
                    connections: BOMBING_CONNS,
                    steps,
                    pipeline: 64,
                    timeout_ms: 10_000,
                    ..base.clone()
                },
            )?;
            rows.extend(m.step_rows(Phase::Step, |i| format!("second {}", i + 1)));
            rows.push(m.whole_row("whole bombing".into()));
            // Recovery: a fresh generator at the baseline's load right after, so requests
            // the bombing left queued in the generator do not count against the server.
            let r = measure(
                "recovery",
                RunConfig {
                    connections: BASELINE_CONNS,
                    rate: Some(BASELINE_RATE),
                    duration_ms: ms(10_000.0, o.scale, 2_000),
                    warmup_ms: 0,
                    ..base.clone()
                },
            )?;
            let mut row = r.whole_row("recovery, 25 x 100/s".into());
            row.phase = Phase::Recovery;
            rows.push(row);
            notes.push(
                "each bombing connection keeps up to 64 requests in flight (pipeline 64); latency counts from each request's intended send time, so what the server cannot absorb shows as latency (and, at the end, as incomplete-at-end); the recovery row is a fresh generator at the baseline's 2,500/s started right after".into(),
            );
        }
        Scenario::Saturate => {
            for &c in &SATURATE_CONNS {
                let m = measure(
                    &format!("c{c}"),
                    RunConfig {
                        connections: c,
                        rate: None,
                        duration_ms: ms(10_000.0, o.scale, 1_000),
                        ..base.clone()
                    },
                )?;
                rows.push(m.whole_row(format!("closed loop, {c} conns")));
            }
            let (c, p) = (SATURATE_PIPELINE_CONNS, SATURATE_PIPELINE);
            let m = measure(
                &format!("c{c}-p{p}"),
                RunConfig {
                    connections: c,
                    rate: None,
                    pipeline: p,
                    duration_ms: ms(10_000.0, o.scale, 1_000),
                    ..base.clone()
                },
            )?;
            rows.push(m.whole_row(format!("pipelined {p} x {c} conns")));
            notes.push("closed loop, one request in flight per connection; the generator shares the machine's cores with the server".into());
            notes.push(format!(
                "the pipelined row keeps {p} requests in flight on each of {c} connections (over HTTP, HTTP/1.1 pipelining: the server answers each connection's requests in order); depth {p} is the one of 8, 16 and 32 that gave the most OK responses per server CPU-second over TCP when it was chosen (bench/src/scenarios.rs, SATURATE_PIPELINE)"
            ));
        }
        Scenario::Sweep => {
            for &rate in &SWEEP_RATES {
                let m = measure(
                    &format!("r{}", rate.round() as u64),
                    RunConfig {
                        connections: SWEEP_CONNS,
                        rate: Some(rate),
                        pipeline: SWEEP_PIPELINE,
                        // 8 s at scale 1: six rates over two transports keep `just bench`
                        // (scale 0.5) within 10 minutes.
                        duration_ms: ms(8_000.0, o.scale, 1_000),
                        timeout_ms: 10_000,
                        ..base.clone()
                    },
                )?;
                rows.push(m.whole_row(format!("offered {}/s", group(rate.round() as u64))));
            }
            notes.push(format!(
                "open loop at {SWEEP_CONNS} connections, one fresh run (its own connections and 1 s warm-up) per offered rate, lowest first; each connection may have up to {SWEEP_PIPELINE} requests in flight so that the generator can offer the top rate; latency counts from each request's intended send time, so a rate the server cannot sustain shows as latency growing through the run (and as incomplete-at-end)"
            ));
        }
        Scenario::Hold => {
            let n = server_cap.max(1);
            let rss_idle = sys::vm_rss_kib(pid);
            let sub = Subscribe::default();
            let m = measure(
                "run",
                RunConfig {
                    connections: n,
                    // Every session subscribes to demo://counter, then only listens (over
                    // HTTP on its standalone SSE stream) until the updates.
                    rate: None,
                    subscribe: Some(sub.clone()),
                    // The updates and their timeouts fit in the measured window, and the
                    // sessions get 5 s past the warm-up to subscribe before the first
                    // update must go (the generator fires it once all have subscribed;
                    // on a busy machine opening them takes longer).
                    duration_ms: ms(15_000.0, o.scale, 3_000)
                        .max(sub.span_ms() + sub.update_interval_ms + 5_000),
                    // Opening ~20,000 sessions takes several seconds on two cores.
                    warmup_ms: ms(10_000.0, o.scale, 8_000),
                    timeout_ms: 30_000,
                    connect_timeout_ms: 10_000,
                    ..base.clone()
                },
            )?;
            let mut row = m.whole_row(format!("{} sessions held", group(n as u64)));
            // The sessions send no calls (not a closed loop).
            row.offered_per_s = Some(0.0);
            let peak = m.report.conns.peak_open;
            let fanout = m.report.fanout.clone().unwrap_or_default();
            // The sessions' own footprint: the RSS read just before the first update's call
            // (the fan-out's transient buffers come after), else the largest of the run.
            let held = fanout.updates.first().and_then(|u| u.server_rss_kib);
            let top = m.rss.iter().map(|(_, k)| *k).max();
            if let (Some(idle), Some(held)) = (rss_idle, held.or(top)) {
                if peak > 0 {
                    row.rss_bytes_per_conn =
                        Some(held.saturating_sub(idle) as f64 * 1024.0 / peak as f64);
                }
                notes.push(format!(
                    "server RSS {:.1} MiB idle, {:.1} MiB holding {} subscribed connections before the first update, {:.1} MiB at most over the run",
                    idle as f64 / 1024.0,
                    held as f64 / 1024.0,
                    group(peak),
                    top.unwrap_or(held) as f64 / 1024.0
                ));
            }
            notes.push(format!(
                "connections = the server's open-file limit {} minus a reserve of {FD_RESERVE}; the generator spreads them over processes and source addresses as its own limits require",
                group(server_nofile as u64)
            ));
            rows.push(row);
            let fan_row = |label: String, l: &crate::report::Latency, hist: &str, missed: u64| {
                let p95 = hgrm::decode(hist)
                    .ok()
                    .filter(|h| !h.is_empty())
                    .map_or(0, |h| h.value_at_quantile(0.95));
                let mut errors = BTreeMap::new();
                if missed > 0 {
                    errors.insert("notification-missed".to_string(), missed);
                }
                Row {
                    label,
                    connections: fanout.subscribers as usize,
                    offered_per_s: Some(0.0),
                    p50_us: l.p50_us,
                    p95_us: p95,
                    p99_us: l.p99_us,
                    max_us: l.max_us,
                    errors,
                    json: m.json.clone(),
                    ..Row::default()
                }
            };
            for u in &fanout.updates {
                let mut r = fan_row(
                    format!("update {} fan-out", u.index),
                    &u.latency,
                    &u.histogram,
                    u.missed,
                );
                r.fanout_notified = Some(u.received);
                rows.push(r);
                if let Some(e) = &u.error {
                    notes.push(format!("update {}: the trigger call failed: {e}", u.index));
                }
            }
            if !fanout.updates.is_empty() {
                let mut r = fan_row(
                    "fan-out, all updates".into(),
                    &fanout.latency,
                    &fanout.histogram,
                    fanout.missed,
                );
                r.fanout_notified = Some(fanout.received);
                r.connections = (fanout.subscribers as usize) * fanout.updates.len();
                rows.push(r);
            }
            notes.push(format!(
                "fan-out: once every connection had subscribed to {} (TCP: resources/subscribe on the session; HTTP: resources/subscribe, then GET of the session's standalone SSE stream, held open), the generator called {} {} times, {} apart, each on a short-lived connection of its own; an update's latency runs from the instant the call was written to the instant a subscriber's connection read notifications/resources/updated (one CLOCK_MONOTONIC for every process); a subscriber without it within {} counts as notification-missed. {} late, {} duplicate notifications",
                fanout.uri,
                fanout.trigger_tool,
                fanout.updates.len(),
                format_args!("{} ms", group(sub.update_interval_ms)),
                format_args!("{} ms", group(fanout.timeout_ms)),
                group(fanout.late),
                group(fanout.duplicates)
            ));
        }
    }
    Ok(ScenarioSummary {
        scenario: s,
        transport: o.transport,
        scale: o.scale,
        started_at_unix_s: unix_now(),
        machine: Machine::read(),
        commit: git_commit(),
        command_line: o.command_line.clone(),
        server_command: server.command_line().to_string(),
        server_version: server.server_version().to_string(),
        run_commands,
        rows,
        notes,
    })
}

/// `git rev-parse --short HEAD` (with `-dirty` when the tree has changes), if git answers.
pub fn git_commit() -> Option<String> {
    let out = std::process::Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let mut c = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let dirty = std::process::Command::new("git")
        .args(["status", "--porcelain", "--untracked-files=no"])
        .output()
        .ok()
        .is_some_and(|o| !o.stdout.is_empty());
    if dirty {
        c.push_str("-dirty");
    }
    Some(c)
}

/// A row's cells as the text and markdown tables print them, in column order.
fn row_cells(r: &Row) -> [String; 12] {
    [
        r.label.clone(),
        group(r.connections as u64),
        rate_text(r.offered_per_s),
        group(r.ok_per_s.round() as u64),
        us(r.p50_us),
        us(r.p95_us),
        us(r.p99_us),
        us(r.max_us),
        opt_f(r.server_cpu_s, 2),
        r.ok_per_server_cpu_s
            .map_or("-".into(), |v| group(v.round() as u64)),
        mib(r.server_rss_kib),
        errors_text(&r.errors),
    ]
}

fn errors_text(e: &BTreeMap<String, u64>) -> String {
    if e.is_empty() {
        "0".into()
    } else {
        e.iter()
            .map(|(k, v)| format!("{k} {}", group(*v)))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

fn opt_f(v: Option<f64>, digits: usize) -> String {
    v.map_or("-".into(), |v| format!("{v:.digits$}"))
}

fn rate_text(r: Option<f64>) -> String {
    r.map_or("closed".into(), |r| group(r.round() as u64))
}

/// Bytes as KiB with one decimal.
fn kib(bytes: f64) -> String {
    format!("{:.1} KiB", bytes / 1024.0)
}

fn mib(k: Option<u64>) -> String {
    k.map_or("-".into(), |k| format!("{:.1}", k as f64 / 1024.0))
}

/// The plain-text table printed after a scenario.
pub fn render_table(s: &ScenarioSummary) -> String {
    let mut o = String::new();
    let _ = writeln!(
        o,
        "\n{} over {} — server: {}",
        s.scenario.name(),
        s.transport.scheme(),
        s.server_command
    );
    let _ = writeln!(
        o,
        "{:<24} {:>7} {:>10} {:>10} {:>9} {:>9} {:>9} {:>9} {:>9} {:>12} {:>9}  errors",
        "",
        "conns",
        "offered/s",
        "ok/s",
        "p50",
        "p95",
        "p99",
        "max",
        "srv CPU",
        "ok/srv-CPU-s",
        "RSS MiB"
    );
    for r in &s.rows {
        let [label, conns, offered, ok, p50, p95, p99, max, cpu, ok_cpu, rss, errors] =
            row_cells(r);
        let _ = writeln!(
            o,
            "{label:<24} {conns:>7} {offered:>10} {ok:>10} {p50:>9} {p95:>9} {p99:>9} {max:>9} {cpu:>9} {ok_cpu:>12} {rss:>9}  {errors}",
        );
        if let Some(b) = r.rss_bytes_per_conn {
            let _ = writeln!(
                o,
                "{:<24} server RSS per connection: {:.0} bytes ({} open at the peak)",
                "",
                b,
                group(r.peak_open.unwrap_or(0))
            );
        }
        if let Some(n) = r.fanout_notified {
            let _ = writeln!(
                o,
                "{:<24} notified {} of {} subscribers in time; latency = the call's write to each subscriber's notification",
                "",
                group(n),
                group(r.connections as u64)
            );
        }
    }
    for n in &s.notes {
        let _ = writeln!(o, "note: {n}");
    }
    o
}

/// Reads every `*.summary.json` under `dirs` (sorted by scenario order, then transport).
pub fn read_summaries(dirs: &[PathBuf]) -> anyhow::Result<Vec<ScenarioSummary>> {
    let mut out = Vec::new();
    for d in dirs {
        for e in std::fs::read_dir(d).map_err(|e| anyhow::anyhow!("{}: {e}", d.display()))? {
            let p = e?.path();
            if p.to_string_lossy().ends_with(".summary.json") {
                let text = std::fs::read_to_string(&p)?;
                out.push(
                    serde_json::from_str::<ScenarioSummary>(&text)
                        .map_err(|e| anyhow::anyhow!("{}: {e}", p.display()))?,
                );
            }
        }
    }
    let order = |s: &ScenarioSummary| Scenario::ALL.iter().position(|x| *x == s.scenario);
    out.sort_by_key(|s| (order(s), s.transport != Transport::Tcp));
    Ok(out)
}

/// The markdown report (docs/benchmarks/results.md) of the summaries, plus the registry
/// example's JSON if given, embedding `plots`: (alt text, path relative to the markdown).
pub fn render_markdown(
    summaries: &[ScenarioSummary],
    registry: Option<&serde_json::Value>,
    commands: &[String],
    plots: &[(String, String)],
) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "# Benchmark results\n");
    let _ = writeln!(
        o,
        "Generated by `ringmcp-load report` from the JSON the scenarios wrote; every figure below was measured by the commands listed. Latency is measured from each request's intended send time (open loop) and is the HdrHistogram percentile. The load generator shares the machine's cores with the server.\n"
    );
    let _ = writeln!(
        o,
        "Which of the benchmark's targets these figures meet and which they miss, by how much and why (with the profiles), is in [docs/benchmarks.md, Targets: met and missed](../benchmarks.md#targets-met-and-missed); a missed target stays the target.\n"
    );
    if let Some(first) = summaries.first() {
        let m = &first.machine;
        let _ = writeln!(
            o,
            "- date: {} (UTC, Unix {:.0})",
            utc_date(first.started_at_unix_s),
            first.started_at_unix_s
        );
        let _ = writeln!(
            o,
            "- machine: {} cores, {}, Linux {}, {} MiB RAM",
            m.cores,
            m.model,
            m.kernel,
            m.mem_total_kib / 1024
        );
        let _ = writeln!(
            o,
            "- commit: {}",
            first.commit.as_deref().unwrap_or("unknown")
        );
        let _ = writeln!(
            o,
            "- server: `{}` (version {})",
            first.server_command, first.server_version
        );
        let _ = writeln!(o, "- duration scale: {}", first.scale);
    }
    if !commands.is_empty() {
        let _ = writeln!(o, "\nCommands:\n\n```sh");
        for c in commands {
            let _ = writeln!(o, "{c}");
        }
        let _ = writeln!(o, "```");
    }
    if !plots.is_empty() {
        let _ = writeln!(
            o,
            "\n## Plots\n\nDrawn by `ringmcp-load report` from the tables below (docs/benchmarks.md says which rows each plot takes).\n"
        );
        let images: Vec<String> = plots
            .iter()
            .map(|(alt, path)| format!("![{alt}]({path})"))
            .collect();
        let _ = writeln!(o, "{}", images.join("\n\n"));
    }
    for s in summaries {
        let _ = writeln!(
            o,
            "\n## {} over {}\n",
            s.scenario.name(),
            s.transport.scheme()
        );
        let _ = writeln!(o, "`{}`\n", s.command_line);
        let _ = writeln!(
            o,
            "| | conns | offered/s | ok/s | p50 | p95 | p99 | max | server CPU-s | ok per server CPU-s | server RSS MiB | errors |"
        );
        let _ = writeln!(
            o,
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"
        );
        for r in &s.rows {
            let _ = writeln!(o, "| {} |", row_cells(r).join(" | "));
        }
        for r in &s.rows {
            if let Some(b) = r.rss_bytes_per_conn {
                let _ = writeln!(
                    o,
                    "\nServer RSS per held connection: **{:.0} bytes** ({} connections open at the peak).",
                    b,
                    group(r.peak_open.unwrap_or(0))
                );
            }
        }
        if !s.notes.is_empty() {
            let _ = writeln!(o);
            for n in &s.notes {
                let _ = writeln!(o, "- {n}");
            }
        }
        let _ = writeln!(o, "\n<details><summary>load runs</summary>\n\n```sh");
        for c in &s.run_commands {
            let _ = writeln!(o, "{c}");
        }
        let _ = writeln!(o, "```\n</details>");
    }
    if let Some(r) = registry {
        let _ = writeln!(o, "\n## registry (shards/examples/registry_bench.rs)\n");
        let _ = writeln!(o, "| figure | value |\n|---|---|");
        let mut flat = Vec::new();
        flatten("", r, &mut flat);
        for (k, v) in flat {
            let _ = writeln!(o, "| {k} | {v} |");
        }
    }
    o
}

fn flatten(prefix: &str, v: &serde_json::Value, out: &mut Vec<(String, String)>) {
    match v {
        serde_json::Value::Object(m) => {
            for (k, x) in m {
                let key = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                flatten(&key, x, out);
            }
        }
        serde_json::Value::Array(a) => {
            for (i, x) in a.iter().enumerate() {
                flatten(&format!("{prefix}[{i}]"), x, out);
            }
        }
        other => out.push((prefix.to_string(), other.to_string())),
    }
}

/// `YYYY-MM-DD HH:MM` (UTC) of a Unix time.
pub fn utc_date(unix_s: f64) -> String {
    let secs = unix_s.max(0.0) as i64;
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Civil from days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if m <= 2 { y + 1 } else { y };
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}",
        rem / 3_600,
        (rem % 3_600) / 60
    )
}

/// Memory per idle session: a server's RSS growth while it holds many initialized,
/// nearly idle sessions, per session.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct IdleSessions {
    /// Sessions asked for (the same for every peer).
    pub target: usize,
    /// Sessions opened: connections that completed `initialize` (and, over HTTP,
    /// `notifications/initialized`), reconnects included, so a session the server dropped
    /// and the generator reopened counts twice.
    pub opened: u64,
    /// Most connections open at once.
    pub peak_open: u64,
    /// Server RSS right before the first was opened, KiB.
    pub rss_kib_before: u64,
    /// Server RSS at the end of the measured window, every session still held, KiB.
    pub rss_kib_held: u64,
    /// `(rss_kib_held - rss_kib_before) / opened`, bytes.
    pub bytes_per_session: f64,
    /// Errors of the holding run by kind.
    pub errors: BTreeMap<String, u64>,
}

impl IdleSessions {
    /// The figure out of a holding run and the RSS read right before it; `None` when the
    /// run opened no session or no RSS could be read.
    fn of(m: &Measured, target: usize, rss_kib_before: Option<u64>) -> Option<IdleSessions> {
        let r = &m.report;
        let opened = r.conns.made;
        // The end of the window, not its peak: the buffers of the connection burst that
        // opened the sessions are freed (and returned by the allocator) a few seconds
        // later, and what stays is what holding the sessions costs.
        let t0 = r.started_at_unix_s + r.warmup_s;
        let held = r
            .server
            .as_ref()
            .and_then(|s| s.rss_kib_after)
            .or_else(|| {
                m.rss
                    .iter()
                    .rev()
                    .find(|(t, _)| *t - t0 <= r.duration_s)
                    .map(|(_, k)| *k)
            })?;
        let before = rss_kib_before?;
        (opened > 0).then(|| IdleSessions {
            target,
            opened,
            peak_open: r.conns.peak_open,
            rss_kib_before: before,
            rss_kib_held: held,
            bytes_per_session: held.saturating_sub(before) as f64 * 1024.0 / opened as f64,
            errors: r.errors.clone(),
        })
    }
}

/// What `just bench-peers` measures of one server, over Streamable HTTP with sessions:
/// `baseline`, `saturate` at 64 connections, and memory per idle session.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PeerFigures {
    /// The peer's name.
    pub peer: String,
    /// Its `serverInfo.version`.
    pub version: String,
    /// How it was started.
    pub command: String,
    /// 25 x 100/s open loop.
    pub baseline: Row,
    /// Closed loop, 64 connections.
    pub saturate64: Row,
    /// (largest RSS while 64 sessions are busy - RSS before) / 64, bytes: mostly the
    /// working buffers of a loaded server, not what a session costs.
    #[serde(alias = "rss_bytes_per_session")]
    pub rss_bytes_per_busy_session: Option<f64>,
    /// [`PEER_IDLE_SESSIONS`] initialized sessions held nearly idle.
    #[serde(default)]
    pub idle_sessions: Option<IdleSessions>,
    /// Remarks (a figure left out and why).
    #[serde(default)]
    pub notes: Vec<String>,
}

/// Runs `baseline` and `saturate` at 64 connections against each peer over Streamable
/// HTTP, then holds [`PEER_IDLE_SESSIONS`] idle sessions for the memory per session; a
/// peer that cannot be installed or started is reported and skipped.
pub fn run_peers(o: &ScenarioOptions, list: &[Peer]) -> anyhow::Result<Vec<PeerFigures>> {
    std::fs::create_dir_all(&o.out_dir)?;
    // Absolute: the TypeScript peer runs in its own directory and is given its script's path.
    let work = std::path::absolute(o.out_dir.join("peers-work"))?;
    let mut out = Vec::new();
    for &peer in list {
        eprintln!("== peer {peer} ==");
        let opts = StartOptions {
            ringmcp_bin: o.server_bin.clone(),
            threads: Some(o.shards.unwrap_or_else(sys::online_cpus)),
            ringmcp_tcp_port: Some(free_port()?),
            ..StartOptions::default()
        };
        let server = match peers::start_with(peer, free_port()?, &work, &opts) {
            Ok(p) => p,
            Err(e) => {
                eprintln!("{peer}: not measured: {e}");
                continue;
            }
        };
        let pid = server.pid();
        let base = RunConfig {
            target: Target::parse(&server.url())?,
            warmup_ms: 1_000,
            server_pids: vec![pid],
            progress: !o.quiet,
            command_line: Some(o.command_line.clone()),
            ..RunConfig::default()
        };
        let one = |tag: &str, cfg: RunConfig| -> anyhow::Result<Measured> {
            let sampler = RssSampler::start(pid);
            let res = run(&cfg);
            let rss = sampler.finish();
            let report = res?;
            let json = format!("peer-{peer}-{tag}.json");
            std::fs::write(
                o.out_dir.join(&json),
                serde_json::to_string_pretty(&report)? + "\n",
            )?;
            Ok(Measured { report, rss, json })
        };
        let b = one(
            "baseline",
            RunConfig {
                connections: BASELINE_CONNS,
                rate: Some(BASELINE_RATE),
                duration_ms: ms(30_000.0, o.scale, 1_000),
                ..base.clone()
            },
        )?;
        let before_saturate = sys::vm_rss_kib(pid);
        let s = one(
            "saturate64",
            RunConfig {
                connections: 64,
                duration_ms: ms(10_000.0, o.scale, 1_000),
                ..base.clone()
            },
        )?;
        let top = s.rss.iter().map(|(_, k)| *k).max();
        // Idle sessions last, so that the runs above see a server holding only their own.
        let mut notes = Vec::new();
        let n = PEER_IDLE_SESSIONS;
        let idle_sessions = match process_nofile(pid) {
            Some(limit) if (limit as usize) < n + FD_RESERVE => {
                notes.push(format!(
                    "memory per idle session not measured: its open-file limit ({}) is below {} sessions plus a reserve of {FD_RESERVE}",
                    group(limit),
                    group(n as u64)
                ));
                None
            }
            _ => {
                // Let the server return what saturate's buffers took before reading.
                std::thread::sleep(Duration::from_secs(2));
                let before = sys::vm_rss_kib(pid);
                let h = one(
                    "idle-sessions",
                    RunConfig {
                        connections: n,
                        // Nearly idle: one call per second over all of them, as `hold`.
                        rate: Some(1.0),
                        duration_ms: ms(10_000.0, o.scale, 3_000),
                        // Long enough for the slowest peer to open them all, and for the
                        // burst's buffers to be freed before the window ends.
                        warmup_ms: ms(20_000.0, o.scale, 10_000),
                        timeout_ms: 30_000,
                        connect_timeout_ms: 10_000,
                        ..base.clone()
                    },
                )?;
                let fig = IdleSessions::of(&h, n, before);
                match &fig {
                    None => notes.push(
                        "memory per idle session not measured: no session opened or no RSS read"
                            .into(),
                    ),
                    Some(f) if f.peak_open < n as u64 || f.opened != n as u64 => {
                        notes.push(format!(
                            "of {} idle sessions asked for, {} were opened and at most {} open at once (errors: {})",
                            group(n as u64),
                            group(f.opened),
                            group(f.peak_open),
                            errors_text(&f.errors)
                        ))
                    }
                    Some(_) => {}
                }
                fig
            }
        };
        let fig = PeerFigures {
            peer: peer.name().into(),
            version: server.server_version().into(),
            command: server.command_line().into(),
            baseline: b.whole_row("baseline".into()),
            saturate64: s.whole_row("saturate 64".into()),
            rss_bytes_per_busy_session: match (before_saturate, top) {
                (Some(i), Some(t)) => Some(t.saturating_sub(i) as f64 * 1024.0 / 64.0),
                _ => None,
            },
            idle_sessions,
            notes,
        };
        eprintln!(
            "{peer}: baseline p50 {} p99 {}; saturate64 {} ok/s, p99 {}, {} ok per server CPU-s; {} per idle session",
            us(fig.baseline.p50_us),
            us(fig.baseline.p99_us),
            group(fig.saturate64.ok_per_s.round() as u64),
            us(fig.saturate64.p99_us),
            fig.saturate64
                .ok_per_server_cpu_s
                .map_or("-".into(), |v| group(v.round() as u64)),
            fig.idle_sessions
                .as_ref()
                .map_or("-".into(), |i| kib(i.bytes_per_session))
        );
        for n in &fig.notes {
            eprintln!("{peer}: {n}");
        }
        out.push(fig);
    }
    std::fs::write(
        o.out_dir.join("peers.summary.json"),
        serde_json::to_string_pretty(&out)? + "\n",
    )?;
    Ok(out)
}

/// docs/benchmarks/peers.md: each peer's figures and their ratio to ringmcp's.
pub fn render_peers_markdown(figs: &[PeerFigures], command: &str) -> String {
    let mut o = String::new();
    let m = Machine::read();
    let _ = writeln!(o, "# ringmcp and its peers, side by side\n");
    let _ = writeln!(
        o,
        "- date: {} (UTC)\n- machine: {} cores, {}, Linux {}\n- commit: {}\n- command: `{command}`\n",
        utc_date(unix_now()),
        m.cores,
        m.model,
        m.kernel,
        git_commit().unwrap_or_else(|| "unknown".into())
    );
    let _ = writeln!(o, "Every server serves the same `echo` tool over Streamable HTTP with sessions; each figure is followed by its ratio to ringmcp's (x1.00 = equal). `baseline`: 25 connections x 100/s open loop. `saturate 64`: closed loop, 64 connections. Memory per idle session: after those runs, {} connections each open an initialized session and then stay nearly idle (one call per second over all of them); (server RSS with all of them held, read at the end of a window that starts at least 10 s after the first was opened - RSS right before they were opened) / sessions opened; the fixed cost of growing the server's tables and allocator is spread over those sessions, so a larger count gives a somewhat smaller figure. RSS growth under saturate 64: (largest RSS during `saturate 64` - RSS before it) / 64, which measures a loaded server's working buffers more than its sessions.\n", group(PEER_IDLE_SESSIONS as u64));
    let _ = writeln!(o, "| server | version | baseline p50 | baseline p99 | saturate 64 ok/s | saturate 64 p99 | ok per server CPU-s | memory per idle session | RSS growth under saturate 64, per session |");
    let _ = writeln!(o, "|---|---|---:|---:|---:|---:|---:|---:|---:|");
    let r = figs.iter().find(|f| f.peer == "ringmcp");
    let ratio = |v: f64, base: Option<f64>| match base {
        Some(b) if b > 0.0 => format!(" (x{:.2})", v / b),
        _ => String::new(),
    };
    let idle_of = |f: &PeerFigures| f.idle_sessions.as_ref().map(|i| i.bytes_per_session);
    for f in figs {
        let b = &f.baseline;
        let s = &f.saturate64;
        let _ = writeln!(
            o,
            "| {} | {} | {}{} | {}{} | {}{} | {}{} | {} | {} | {} |",
            f.peer,
            f.version,
            us(b.p50_us),
            ratio(b.p50_us as f64, r.map(|r| r.baseline.p50_us as f64)),
            us(b.p99_us),
            ratio(b.p99_us as f64, r.map(|r| r.baseline.p99_us as f64)),
            group(s.ok_per_s.round() as u64),
            ratio(s.ok_per_s, r.map(|r| r.saturate64.ok_per_s)),
            us(s.p99_us),
            ratio(s.p99_us as f64, r.map(|r| r.saturate64.p99_us as f64)),
            s.ok_per_server_cpu_s.map_or("-".into(), |v| format!(
                "{}{}",
                group(v.round() as u64),
                ratio(v, r.and_then(|r| r.saturate64.ok_per_server_cpu_s))
            )),
            idle_of(f).map_or("-".into(), |v| format!(
                "{}{}",
                kib(v),
                ratio(v, r.and_then(idle_of))
            )),
            f.rss_bytes_per_busy_session.map_or("-".into(), |v| format!(
                "{}{}",
                kib(v),
                ratio(v, r.and_then(|r| r.rss_bytes_per_busy_session))
            )),
        );
    }
    if figs.iter().any(|f| f.idle_sessions.is_some()) {
        let _ = writeln!(o, "\nIdle sessions held:\n");
        let _ = writeln!(o, "| server | sessions asked | opened | most open at once | RSS before MiB | RSS held MiB | per session | errors |");
        let _ = writeln!(o, "|---|---:|---:|---:|---:|---:|---:|---|");
        for f in figs {
            if let Some(i) = &f.idle_sessions {
                let _ = writeln!(
                    o,
                    "| {} | {} | {} | {} | {} | {} | {} | {} |",
                    f.peer,
                    group(i.target as u64),
                    group(i.opened),
                    group(i.peak_open),
                    mib(Some(i.rss_kib_before)),
                    mib(Some(i.rss_kib_held)),
                    kib(i.bytes_per_session),
                    errors_text(&i.errors)
                );
            }
        }
    }
    let notes: Vec<String> = figs
        .iter()
        .flat_map(|f| f.notes.iter().map(move |n| format!("- {}: {n}", f.peer)))
        .collect();
    if !notes.is_empty() {
        let _ = writeln!(o, "\n{}", notes.join("\n"));
    }
    let _ = writeln!(o, "\nStarted as:\n");
    for f in figs {
        let _ = writeln!(o, "- {}: `{}`", f.peer, f.command);
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(Scenario::parse_list("all").unwrap().len(), 6);
        assert_eq!(
            Scenario::parse_list("flood").unwrap(),
            vec![Scenario::Flood]
        );
        assert_eq!(
            Scenario::parse_list("sweep").unwrap(),
            vec![Scenario::Sweep]
        );
        assert!(Scenario::parse_list("all")
            .unwrap()
            .contains(&Scenario::Sweep));
        assert!(Scenario::parse_list("x").is_err());
        for s in Scenario::ALL {
            assert_eq!(Scenario::parse_list(s.name()).unwrap(), vec![s]);
        }
    }

    #[test]
    fn sweep_offers_rising_rates_within_the_generator_bounds() {
        assert!(SWEEP_RATES.windows(2).all(|w| w[0] < w[1]));
        let top = SWEEP_RATES[SWEEP_RATES.len() - 1];
        let cfg = RunConfig {
            connections: SWEEP_CONNS,
            rate: Some(top),
            pipeline: SWEEP_PIPELINE,
            ..RunConfig::default()
        };
        cfg.validate().unwrap();
        let pipelined = RunConfig {
            connections: SATURATE_PIPELINE_CONNS,
            pipeline: SATURATE_PIPELINE,
            ..RunConfig::default()
        };
        pipelined.validate().unwrap();
    }

    #[test]
    fn rows_without_phase_or_pipeline_read_as_whole_runs() {
        // Summaries written before rows had these fields still load.
        let r: Row = serde_json::from_str(
            r#"{"label":"x","connections":4,"peak_open":null,"offered_per_s":null,"ok_per_s":1.0,"p50_us":1,"p95_us":1,"p99_us":1,"max_us":1,"errors":{},"server_cpu_s":null,"ok_per_server_cpu_s":null,"server_rss_kib":null,"rss_bytes_per_conn":null,"json":"x.json"}"#,
        )
        .unwrap();
        assert_eq!((r.phase, r.pipeline), (Phase::Run, 1));
        let step = Row {
            phase: Phase::Recovery,
            pipeline: 64,
            ..Row::default()
        };
        let back: Row = serde_json::from_str(&serde_json::to_string(&step).unwrap()).unwrap();
        assert_eq!((back.phase, back.pipeline), (Phase::Recovery, 64));
    }

    #[test]
    fn limits_and_dates() {
        let text = "Limit                     Soft Limit           Hard Limit           Units     \nMax open files            20000                20000                files     \n";
        assert_eq!(parse_limits_nofile(text), Some(20_000));
        assert_eq!(utc_date(0.0), "1970-01-01 00:00");
        assert_eq!(utc_date(1_700_000_000.0), "2023-11-14 22:13");
    }

    #[test]
    fn markdown() {
        let row = Row {
            label: "25 x 100/s".into(),
            connections: 25,
            offered_per_s: Some(2_500.0),
            ok_per_s: 2_500.0,
            p50_us: 120,
            p99_us: 400,
            rss_bytes_per_conn: Some(4_000.0),
            peak_open: Some(25),
            ..Row::default()
        };
        let s = ScenarioSummary {
            scenario: Scenario::Baseline,
            transport: Transport::Tcp,
            scale: 0.5,
            started_at_unix_s: 0.0,
            machine: Machine::read(),
            commit: Some("abc".into()),
            command_line: "ringmcp-load scenario baseline".into(),
            server_command: "ringmcp serve".into(),
            server_version: "0.1.0".into(),
            run_commands: vec!["ringmcp-load run tcp://127.0.0.1:1".into()],
            rows: vec![row.clone()],
            notes: vec!["a note".into()],
        };
        let md = render_markdown(
            std::slice::from_ref(&s),
            Some(&serde_json::json!({"lookups": {"per_s": 1}})),
            &["just bench".into()],
            &[(
                "latency against connections".into(),
                "plots/latency-by-connections.svg".into(),
            )],
        );
        assert!(
            md.contains("![latency against connections](plots/latency-by-connections.svg)"),
            "{md}"
        );
        assert!(!render_markdown(std::slice::from_ref(&s), None, &[], &[]).contains("## Plots"));
        assert!(
            md.contains("| 25 x 100/s | 25 | 2,500 | 2,500 | 120us |"),
            "{md}"
        );
        assert!(md.contains("| lookups.per_s | 1 |"), "{md}");
        assert!(md.contains("4000 bytes"), "{md}");
        assert!(render_table(&s).contains("a note"));
        let figs = vec![PeerFigures {
            peer: "ringmcp".into(),
            version: "0.1.0".into(),
            command: "ringmcp serve".into(),
            baseline: row.clone(),
            saturate64: row,
            rss_bytes_per_busy_session: Some(2048.0),
            idle_sessions: Some(IdleSessions {
                target: 2_000,
                opened: 2_000,
                peak_open: 2_000,
                rss_kib_before: 30 * 1024,
                rss_kib_held: 40 * 1024,
                bytes_per_session: 10.0 * 1024.0 * 1024.0 / 2_000.0,
                errors: BTreeMap::new(),
            }),
            notes: vec!["a peer note".into()],
        }];
        let md = render_peers_markdown(&figs, "x");
        assert!(md.contains("(x1.00)"), "{md}");
        assert!(md.contains("| 5.1 KiB (x1.00) | 2.0 KiB (x1.00) |"), "{md}");
        assert!(
            md.contains("| ringmcp | 2,000 | 2,000 | 2,000 | 30.0 | 40.0 | 5.1 KiB | 0 |"),
            "{md}"
        );
        assert!(md.contains("- ringmcp: a peer note"), "{md}");
        // Written by an older version (one memory figure, under its old name).
        let old: PeerFigures = serde_json::from_value(serde_json::json!({
            "peer": "rmcp", "version": "1", "command": "c",
            "baseline": serde_json::to_value(&figs[0].baseline).unwrap(),
            "saturate64": serde_json::to_value(&figs[0].saturate64).unwrap(),
            "rss_bytes_per_session": 1024.0
        }))
        .unwrap();
        assert_eq!(old.rss_bytes_per_busy_session, Some(1024.0));
        assert_eq!(old.idle_sessions, None);
    }

    #[test]
    fn run_commands() {
        let cfg = RunConfig {
            steps: vec![Step::parse("5:1s:250").unwrap()],
            ..RunConfig::default()
        };
        let c = run_command(&cfg);
        assert!(c.contains("--step 5:1000ms:250"), "{c}");
    }
}
