//! The seed's scenarios (`ringmcp-load scenario NAME`), each against a ringmcp server it
//! starts itself (through [`crate::peers`]) on free loopback ports:
//!
//! * `baseline`: 25 connections x 100 msg/s open loop (2,500/s) of `tools/call echo`.
//! * `flood`: connections ramp up in steps (5 .. 10,000, as far as the server's open-file
//!   limit allows), 50 msg/s each, then back down; latency per step and recovery.
//! * `bombing`: 20 connections each offering 10,000 msg/s (200,000/s aggregate), reported
//!   second by second (rate, latency, errors, server RSS), then a recovery step at the
//!   baseline rate.
//! * `saturate`: closed loop at 1, 16, 64 and 256 connections: throughput, latency and OK
//!   responses per server CPU-second.
//! * `hold`: as many initialized sessions as the server's open-file limit allows (minus a
//!   reserve), nearly idle; server RSS per connection.
//!
//! Every run writes its [`RunReport`] as JSON and one `.hgrm` file per step; every scenario
//! writes a [`ScenarioSummary`] (`<scenario>-<transport>.summary.json`) that
//! [`render_markdown`] turns into docs/benchmarks/results.md.

use crate::config::{echo_arguments, RunConfig, Step, Target, Transport};
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
    /// Closed loop at 1, 16, 64, 256 connections.
    Saturate,
    /// As many idle sessions as the server may hold.
    Hold,
}

impl Scenario {
    /// Every scenario, in the order `all` runs them.
    pub const ALL: [Scenario; 5] = [
        Scenario::Baseline,
        Scenario::Saturate,
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
                    "unknown scenario {s:?}; one of baseline, flood, bombing, saturate, hold, all"
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

/// One row of a scenario's table.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Row {
    /// What the row is (a step, a phase).
    pub label: String,
    /// Connections asked for.
    pub connections: usize,
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
    /// The run's JSON file (relative to the output directory).
    pub json: String,
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
    fn step_rows(&self, label: impl Fn(usize) -> String) -> Vec<Row> {
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
                    connections: s.connections,
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
            connections: r.connections,
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
            rows.extend(m.step_rows(|i| format!("up {}", i + 1)));
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
                rows.extend(r.step_rows(|i| format!("recovery {}", i + 1)));
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
            rows.extend(m.step_rows(|i| format!("second {}", i + 1)));
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
            rows.push(r.whole_row("recovery, 25 x 100/s".into()));
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
            notes.push("closed loop, one request in flight per connection; the generator shares the machine's cores with the server".into());
        }
        Scenario::Hold => {
            let n = server_cap.max(1);
            let rss_idle = sys::vm_rss_kib(pid);
            let m = measure(
                "run",
                RunConfig {
                    connections: n,
                    // Nearly idle: one call per second over every connection, so each
                    // session is initialized and then only held.
                    rate: Some(1.0),
                    duration_ms: ms(15_000.0, o.scale, 3_000),
                    // Opening ~20,000 sessions takes several seconds on two cores.
                    warmup_ms: ms(10_000.0, o.scale, 8_000),
                    timeout_ms: 30_000,
                    connect_timeout_ms: 10_000,
                    ..base.clone()
                },
            )?;
            let mut row = m.whole_row(format!("{} sessions held", group(n as u64)));
            let peak = m.report.conns.peak_open;
            let top = m.rss.iter().map(|(_, k)| *k).max();
            if let (Some(idle), Some(top)) = (rss_idle, top) {
                if peak > 0 {
                    row.rss_bytes_per_conn =
                        Some(top.saturating_sub(idle) as f64 * 1024.0 / peak as f64);
                }
                notes.push(format!(
                    "server RSS {:.1} MiB idle, {:.1} MiB at most while holding {} connections",
                    idle as f64 / 1024.0,
                    top as f64 / 1024.0,
                    group(peak)
                ));
            }
            notes.push(format!(
                "connections = the server's open-file limit {} minus a reserve of {FD_RESERVE}; the generator spreads them over processes and source addresses as its own limits require",
                group(server_nofile as u64)
            ));
            notes.push("subscribing every session to demo://counter and timing one update's fan-out is left for later (the generator only sends tools/call)".into());
            rows.push(row);
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
        "{:<22} {:>7} {:>10} {:>10} {:>9} {:>9} {:>9} {:>9} {:>9} {:>12} {:>9}  errors",
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
            "{label:<22} {conns:>7} {offered:>10} {ok:>10} {p50:>9} {p95:>9} {p99:>9} {max:>9} {cpu:>9} {ok_cpu:>12} {rss:>9}  {errors}",
        );
        if let Some(b) = r.rss_bytes_per_conn {
            let _ = writeln!(
                o,
                "{:<22} server RSS per connection: {:.0} bytes ({} open at the peak)",
                "",
                b,
                group(r.peak_open.unwrap_or(0))
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
/// example's JSON if given.
pub fn render_markdown(
    summaries: &[ScenarioSummary],
    registry: Option<&serde_json::Value>,
    commands: &[String],
) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "# Benchmark results\n");
    let _ = writeln!(
        o,
        "Generated by `ringmcp-load report` from the JSON the scenarios wrote; every figure below was measured by the commands listed. Latency is measured from each request's intended send time (open loop) and is the HdrHistogram percentile. The load generator shares the machine's cores with the server.\n"
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

/// What `just bench-peers` measures of one server: `baseline` and `saturate` at 64
/// connections, both over Streamable HTTP with sessions.
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
    /// (RSS while 64 sessions are busy - RSS idle) / 64, bytes.
    pub rss_bytes_per_session: Option<f64>,
}

/// Runs `baseline` and `saturate` at 64 connections against each peer over Streamable
/// HTTP; a peer that cannot be installed or started is reported and skipped.
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
        let idle = sys::vm_rss_kib(pid);
        let s = one(
            "saturate64",
            RunConfig {
                connections: 64,
                duration_ms: ms(10_000.0, o.scale, 1_000),
                ..base.clone()
            },
        )?;
        let top = s.rss.iter().map(|(_, k)| *k).max();
        let fig = PeerFigures {
            peer: peer.name().into(),
            version: server.server_version().into(),
            command: server.command_line().into(),
            baseline: b.whole_row("baseline".into()),
            saturate64: s.whole_row("saturate 64".into()),
            rss_bytes_per_session: match (idle, top) {
                (Some(i), Some(t)) => Some(t.saturating_sub(i) as f64 * 1024.0 / 64.0),
                _ => None,
            },
        };
        eprintln!(
            "{peer}: baseline p50 {} p99 {}; saturate64 {} ok/s, p99 {}, {} ok per server CPU-s",
            us(fig.baseline.p50_us),
            us(fig.baseline.p99_us),
            group(fig.saturate64.ok_per_s.round() as u64),
            us(fig.saturate64.p99_us),
            fig.saturate64
                .ok_per_server_cpu_s
                .map_or("-".into(), |v| group(v.round() as u64))
        );
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
    let _ = writeln!(o, "Every server serves the same `echo` tool over Streamable HTTP with sessions; each figure is followed by its ratio to ringmcp's (x1.00 = equal). `baseline`: 25 connections x 100/s open loop. `saturate 64`: closed loop, 64 connections. Memory per session: (server RSS while 64 sessions are busy - RSS idle) / 64.\n");
    let _ = writeln!(o, "| server | version | baseline p50 | baseline p99 | saturate 64 ok/s | saturate 64 p99 | ok per server CPU-s | memory per session |");
    let _ = writeln!(o, "|---|---|---:|---:|---:|---:|---:|---:|");
    let r = figs.iter().find(|f| f.peer == "ringmcp");
    let ratio = |v: f64, base: Option<f64>| match base {
        Some(b) if b > 0.0 => format!(" (x{:.2})", v / b),
        _ => String::new(),
    };
    for f in figs {
        let b = &f.baseline;
        let s = &f.saturate64;
        let _ = writeln!(
            o,
            "| {} | {} | {}{} | {}{} | {}{} | {}{} | {} | {} |",
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
            f.rss_bytes_per_session.map_or("-".into(), |v| format!(
                "{:.1} KiB{}",
                v / 1024.0,
                ratio(v, r.and_then(|r| r.rss_bytes_per_session))
            )),
        );
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
        assert_eq!(Scenario::parse_list("all").unwrap().len(), 5);
        assert_eq!(
            Scenario::parse_list("flood").unwrap(),
            vec![Scenario::Flood]
        );
        assert!(Scenario::parse_list("x").is_err());
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
        );
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
            rss_bytes_per_session: Some(2048.0),
        }];
        assert!(render_peers_markdown(&figs, "x").contains("(x1.00)"));
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
