//! The seed's scenarios (`ringmcp-load scenario NAME`), each against a ringmcp server it
//! starts itself (through [`crate::peers`]) on free loopback ports:
//!
//! * `baseline`: 25 connections x 100 msg/s open loop (2,500/s) of `tools/call echo`.
//! * `flood`: connections ramp up in steps (5 .. 10,000, as far as the server's open-file
//!   limit allows), 50 msg/s each, then back down; latency per step and recovery.
//! * `flood-cap`: a server started with `limits.connections_per_shard_max` =
//!   [`FLOOD_CAP_PER_SHARD`] gets [`FLOOD_CAP_OVER`] times the connections it may hold,
//!   each offering [`FLOOD_CAP_PER_CONN`] msg/s open loop; refused connections are counted
//!   by answer and never reopened (`RunConfig::drop_refused`), and the admitted ones must
//!   see no error. The server's own count of refusals is read from its /metrics.
//! * `bombing`: overload at twice one shard's measured capacity. The server runs one
//!   shard pinned to the last allowed CPU and the generator the others (shared when there
//!   is one). Server A, with no message rate limit, measures the capacity C (closed loop,
//!   [`BOMBING_CONNS`] connections, [`BOMBING_CAPACITY_PIPELINE`] in flight each);
//!   server B admits [`BOMBING_ADMIT_FRACTION`] x C per second; against B, the unloaded
//!   latency (25 x 100/s), then one run of one-second steps at [`BOMBING_OVERLOAD`] x C
//!   followed by [`BOMBING_RECOVERY_STEPS`] one-second recovery steps at
//!   [`BOMBING_RECOVERY_RATE`] on the same connections. The summary accounts for every
//!   request of the overload ([`Accounting`]: OK, overload answers by code, other
//!   answers, missing) and states its verdicts: offered / capacity, missing, admitted p99
//!   / unloaded p99, RSS peak against a bound derived from the server's limits, and the
//!   first recovery second's p99.
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
use crate::report::{group, us, RunReport, StepReport};
use crate::stats::{label_is_answer, label_is_overload};
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
/// Bombing: connections of the capacity run and of the bombing.
pub const BOMBING_CONNS: usize = 20;
/// Bombing: the tool every request calls, and its arguments. `compute` keeps the shard's
/// CPU busy for `us` microseconds, so the work of a call, not the loopback transport, sets
/// the capacity: with `echo` one shard answers about 340K/s pipelined on this 2-core box,
/// and a generator on the other core cannot write twice that without its own send lag
/// (milliseconds) swamping the latencies the scenario is there to judge.
pub const BOMBING_TOOL: &str = "compute";
/// Bombing: microseconds of CPU per call (the `us` argument of [`BOMBING_TOOL`]).
pub const BOMBING_TOOL_US: u64 = 100;
/// Bombing: the share of the measured capacity the bombed server admits
/// (`limits.messages_per_shard_per_s` = round(this x capacity), burst
/// [`BOMBING_BURST_MS`] worth of
/// that). The operator's rule of thumb (docs/operations.md) is to admit about half of the
/// measured capacity, so that a shard keeps CPU to refuse the rest quickly.
pub const BOMBING_ADMIT_FRACTION: f64 = 0.5;
/// Bombing: the shard's burst, in milliseconds of its admitted rate. A burst is work that
/// queues at once: a long one is latency for every request behind it.
pub const BOMBING_BURST_MS: u64 = 10;
/// Bombing: the offered rate as a multiple of the measured capacity.
pub const BOMBING_OVERLOAD: f64 = 2.0;
/// Bombing: requests in flight per connection in the capacity run (closed loop).
pub const BOMBING_CAPACITY_PIPELINE: u32 = 64;
/// Bombing: requests a connection may have in flight while bombing, so that the window
/// is not what limits the offered rate (the server's default
/// `limits.session_in_flight_requests_max` is 256 too).
pub const BOMBING_PIPELINE: u32 = 256;
/// Bombing: one-second steps right after the overload, in the same run and over the same
/// connections, at [`BOMBING_RECOVERY_RATE`].
pub const BOMBING_RECOVERY_STEPS: usize = 3;
/// Bombing: the recovery steps' aggregate rate (the seed's baseline rate, msg/s).
pub const BOMBING_RECOVERY_RATE: f64 = 2_500.0;
/// Bombing: the target for admitted requests, p99 under overload / unloaded p99.
pub const BOMBING_P99_RATIO_MAX: f64 = 10.0;
/// flood-cap: the server's `limits.connections_per_shard_max`.
pub const FLOOD_CAP_PER_SHARD: usize = 500;
/// flood-cap: connections opened, as a multiple of what the server admits
/// ([`FLOOD_CAP_PER_SHARD`] x shards).
pub const FLOOD_CAP_OVER: usize = 3;
/// flood-cap: each connection's open-loop rate (msg/s).
pub const FLOOD_CAP_PER_CONN: f64 = 20.0;
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
    /// Three times `limits.connections_per_shard_max` connections at 20 msg/s each.
    FloodCap,
    /// Twice the measured capacity of one shard, offered over 20 connections.
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
    pub const ALL: [Scenario; 7] = [
        Scenario::Baseline,
        Scenario::Saturate,
        Scenario::Sweep,
        Scenario::Bombing,
        Scenario::Flood,
        Scenario::FloodCap,
        Scenario::Hold,
    ];

    /// Its name on the command line and in file names.
    pub fn name(self) -> &'static str {
        match self {
            Scenario::Baseline => "baseline",
            Scenario::Flood => "flood",
            Scenario::FloodCap => "flood-cap",
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
                    "unknown scenario {s:?}; one of baseline, flood, flood-cap, bombing, saturate, sweep, hold, all"
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
    /// `bombing` calls `echo` instead of [`BOMBING_TOOL`].
    pub bombing_echo: bool,
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
    /// A run other rows are judged against: `bombing`'s measured capacity and unloaded
    /// latency.
    Reference,
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
    /// Remarks (limits met, parts left out) and verdicts.
    pub notes: Vec<String>,
    /// Where every request of the overload went (`bombing`, `flood-cap`).
    #[serde(default)]
    pub accounting: Vec<Accounting>,
}

/// Where every request of some steps went: offered, OK, refused with an overload answer,
/// failed with another answer, or missing (no answer at all). The figures come from the
/// generator's counts; `missing` is what the offer leaves once every answer is taken away,
/// and `unaccounted` is the part of it that no loss counter explains (a generator bug if
/// ever nonzero).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Accounting {
    /// The steps it covers.
    pub label: String,
    /// Their length, seconds.
    pub duration_s: f64,
    /// Requests the open-loop schedule intended for the connections in the run: `sent`
    /// plus those still owed at its end.
    pub offered: u64,
    /// Requests written.
    pub sent: u64,
    /// OK responses.
    pub ok: u64,
    /// Overload answers by kind (JSON-RPC -32005, -32006, -32001; HTTP 429, 503).
    pub overload: BTreeMap<String, u64>,
    /// Other error answers by kind.
    pub other_errors: BTreeMap<String, u64>,
    /// `offered - ok - overload - other errors`: requests with no answer.
    pub missing: u64,
    /// Of those, by what the generator saw: timeout, incomplete-at-end (never answered
    /// or never sent by the end), closed-by-peer, ...
    pub missing_by_kind: BTreeMap<String, u64>,
    /// `missing` minus the kinds above (0 when every request is accounted for; negative
    /// would mean a request counted twice).
    pub unaccounted: i64,
    /// Requests of connections given up after an overload refusal: never offered.
    pub withdrawn: u64,
    /// Errors in those steps that are not requests (failed connects, refused handshakes).
    pub connection_errors: BTreeMap<String, u64>,
    /// Connections, when the steps push past a connection limit.
    pub connections: Option<ConnAccounting>,
}

/// What became of the connections of a run that pushes past a connection limit.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ConnAccounting {
    /// Connections the run opened (one per place in the schedule).
    pub asked: u64,
    /// Attempts: connections made plus attempts that failed.
    pub attempts: u64,
    /// Connections that completed the handshake (reconnects included).
    pub admitted: u64,
    /// Attempts refused with an overload answer, by answer.
    pub refused: BTreeMap<String, u64>,
    /// Attempts that failed otherwise (connect errors, timeouts, closed before an answer).
    pub failed_other: u64,
    /// The server's own count of the refusals (`ringmcp_rejections_total` for the
    /// limit's reason, from /metrics after the run), if read.
    pub server_rejections: Option<u64>,
    /// The reason that count is for.
    pub server_reason: String,
}

/// A free TCP port on 127.0.0.1 (bound, then released).
fn free_port() -> std::io::Result<u16> {
    let l = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
    Ok(l.local_addr()?.port())
}

/// How a scenario starts its server (beyond the free ports).
#[derive(Clone, Debug, Default)]
struct ServerSpec {
    /// `--shards` (default: the scenario's `--shards`, else every online core).
    shards: Option<usize>,
    /// Its affinity mask (default: this process's).
    cpus: Option<Vec<usize>>,
    /// `--set KEY=VALUE` pairs, in order.
    sets: Vec<(String, String)>,
    /// Listen for /metrics on a port of its own, known to [`PeerProcess::admin_addr`].
    admin: bool,
}

/// Starts a ringmcp server on free ports.
fn start_server(o: &ScenarioOptions, spec: &ServerSpec) -> anyhow::Result<PeerProcess> {
    let mut last = None;
    for _ in 0..5 {
        let http = free_port()?;
        let tcp = free_port()?;
        let admin = if spec.admin { Some(free_port()?) } else { None };
        if http == tcp || admin == Some(http) || admin == Some(tcp) {
            continue;
        }
        let opts = StartOptions {
            ringmcp_bin: o.server_bin.clone(),
            threads: Some(spec.shards.or(o.shards).unwrap_or_else(sys::online_cpus)),
            ringmcp_tcp_port: Some(tcp),
            ringmcp_admin_port: admin,
            cpus: spec.cpus.clone(),
            extra_args: spec
                .sets
                .iter()
                .flat_map(|(k, v)| ["--set".to_string(), format!("{k}={v}")])
                .collect(),
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
    if cfg.threads > 0 {
        a.push("--threads".into());
        a.push(cfg.threads.to_string());
    }
    if !cfg.cpus.is_empty() {
        a.push("--cpus".into());
        a.push(cpu_list(&cfg.cpus));
    }
    if cfg.drop_refused {
        a.push("--drop-refused".into());
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

    /// One row for steps `range` merged (latency from their merged histograms; no server
    /// CPU time, which is read for the whole run only).
    fn merged_row(&self, label: String, range: std::ops::Range<usize>) -> Row {
        let r = &self.report;
        let end = range.end.min(r.steps.len());
        let steps = &r.steps[range.start.min(end)..end];
        let mut h = hgrm::new_histogram();
        let mut errors = BTreeMap::new();
        for s in steps {
            if let Ok(x) = hgrm::decode(&s.histogram) {
                // Same bounds on both sides (hgrm::new_histogram), so this cannot fail.
                let _ = h.add(&x);
            }
            for (k, v) in &s.errors {
                *errors.entry(k.clone()).or_insert(0) += v;
            }
        }
        let dur: f64 = steps.iter().map(|s| s.duration_s).sum();
        let l = crate::report::Latency::of(&h);
        let (from, to) = match (steps.first(), steps.last()) {
            (Some(a), Some(b)) => (a.start_s, b.start_s + b.duration_s),
            _ => (0.0, 0.0),
        };
        Row {
            label,
            phase: Phase::Run,
            connections: steps.iter().map(|s| s.connections).max().unwrap_or(0),
            pipeline: r.pipeline,
            peak_open: Some(r.conns.peak_open),
            offered_per_s: steps
                .iter()
                .map(|s| s.rate.map(|x| x * s.duration_s))
                .sum::<Option<f64>>()
                .map(|n| n / dur.max(1e-9)),
            ok_per_s: steps.iter().map(|s| s.ok_arrived).sum::<u64>() as f64 / dur.max(1e-9),
            p50_us: l.p50_us,
            p95_us: if h.is_empty() {
                0
            } else {
                h.value_at_quantile(0.95)
            },
            p99_us: l.p99_us,
            max_us: l.max_us,
            errors,
            server_rss_kib: self.rss_max(from, to),
            json: self.json.clone(),
            ..Row::default()
        }
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

/// Writes what each load run of a scenario measured (its JSON report and per-step .hgrm)
/// and keeps the equivalent `ringmcp-load run` command lines.
struct Recorder<'a> {
    o: &'a ScenarioOptions,
    prefix: String,
    run_commands: Vec<String>,
}

impl Recorder<'_> {
    /// Runs `cfg` against the server `pid` (sampling its RSS), writes its report as
    /// `<scenario>-<transport>-<tag>.json`, and answers it.
    fn measure(&mut self, pid: u32, tag: &str, cfg: RunConfig) -> anyhow::Result<Measured> {
        let o = self.o;
        let prefix = &self.prefix;
        let mut cfg = cfg;
        let cmd = run_command(&cfg);
        cfg.command_line = Some(format!("{}  [{tag}: {cmd}]", o.command_line));
        self.run_commands.push(cmd);
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
    }
}

/// What a scenario's runner hands back for its summary.
struct Outcome {
    server_command: String,
    server_version: String,
    rows: Vec<Row>,
    notes: Vec<String>,
    accounting: Vec<Accounting>,
}

fn run_one(s: Scenario, o: &ScenarioOptions) -> anyhow::Result<ScenarioSummary> {
    let started_at_unix_s = unix_now();
    let mut rec = Recorder {
        o,
        prefix: format!("{}-{}", s.name(), o.transport.scheme()),
        run_commands: Vec::new(),
    };
    let out = match s {
        Scenario::Bombing => run_bombing(o, &mut rec)?,
        Scenario::FloodCap => run_flood_cap(o, &mut rec)?,
        _ => run_seed(s, o, &mut rec)?,
    };
    Ok(ScenarioSummary {
        scenario: s,
        transport: o.transport,
        scale: o.scale,
        started_at_unix_s,
        machine: Machine::read(),
        commit: git_commit(),
        command_line: o.command_line.clone(),
        server_command: out.server_command,
        server_version: out.server_version,
        run_commands: rec.run_commands,
        rows: out.rows,
        notes: out.notes,
        accounting: out.accounting,
    })
}

/// The scenarios that run against one ringmcp server with its default limits.
fn run_seed(s: Scenario, o: &ScenarioOptions, rec: &mut Recorder) -> anyhow::Result<Outcome> {
    let server = start_server(o, &ServerSpec::default())?;
    let pid = server.pid();
    let target = target_of(&server, o.transport)?;
    let server_nofile = process_nofile(pid).unwrap_or(1024) as usize;
    let server_cap = server_nofile.saturating_sub(FD_RESERVE);
    let mut notes = Vec::new();
    let mut rows = Vec::new();
    let base = RunConfig {
        target,
        warmup_ms: 1_000,
        server_pids: vec![pid],
        progress: !o.quiet,
        arguments: echo_arguments(64),
        ..RunConfig::default()
    };
    let mut measure = |tag: &str, cfg: RunConfig| rec.measure(pid, tag, cfg);
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
        Scenario::Bombing | Scenario::FloodCap => {
            anyhow::bail!("{} has a runner of its own", s.name())
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
    Ok(Outcome {
        server_command: server.command_line().to_string(),
        server_version: server.server_version().to_string(),
        rows,
        notes,
        accounting: Vec::new(),
    })
}

/// The limits a ringmcp binary starts with, as its own `ringmcp config --print-default`
/// states them (nothing copied into this crate): what the bombing's RSS bound and its
/// per-connection rate are derived from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerLimits {
    /// `limits.outbound_queue_bytes_max`.
    pub outbound_queue_bytes_max: u64,
    /// `limits.max_message_bytes`.
    pub max_message_bytes: u64,
    /// `limits.messages_per_connection_per_s`.
    pub messages_per_connection_per_s: u64,
    /// `limits.messages_per_connection_burst`.
    pub messages_per_connection_burst: u64,
}

impl ServerLimits {
    /// Reads them from a configuration's TOML text.
    pub fn parse(text: &str) -> anyhow::Result<ServerLimits> {
        let t: toml::Table = text
            .parse()
            .map_err(|e| anyhow::anyhow!("the default configuration is not TOML: {e}"))?;
        let limits = t
            .get("limits")
            .and_then(|v| v.as_table())
            .ok_or_else(|| anyhow::anyhow!("the default configuration has no [limits]"))?;
        let get = |k: &str| -> anyhow::Result<u64> {
            limits
                .get(k)
                .and_then(|v| v.as_integer())
                .and_then(|i| u64::try_from(i).ok())
                .ok_or_else(|| anyhow::anyhow!("limits.{k} is missing or not a count"))
        };
        Ok(ServerLimits {
            outbound_queue_bytes_max: get("outbound_queue_bytes_max")?,
            max_message_bytes: get("max_message_bytes")?,
            messages_per_connection_per_s: get("messages_per_connection_per_s")?,
            messages_per_connection_burst: get("messages_per_connection_burst")?,
        })
    }

    /// Asks `bin config --print-default`.
    pub fn of(bin: &std::path::Path) -> anyhow::Result<ServerLimits> {
        let out = std::process::Command::new(bin)
            .args(["config", "--print-default"])
            .output()
            .map_err(|e| anyhow::anyhow!("{} config --print-default: {e}", bin.display()))?;
        anyhow::ensure!(
            out.status.success(),
            "{} config --print-default: {}",
            bin.display(),
            out.status
        );
        ServerLimits::parse(&String::from_utf8_lossy(&out.stdout))
    }
}

/// The value of the sample `name{labels}` in a Prometheus text exposition (every label
/// given must match; the sample may carry more).
pub fn metric_value(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<u64> {
    text.lines().find_map(|line| {
        let rest = line.strip_prefix(name)?.strip_prefix('{')?;
        let (inside, value) = rest.split_once('}')?;
        let have: Vec<(&str, &str)> = inside
            .split(',')
            .filter_map(|kv| {
                let (k, v) = kv.split_once('=')?;
                Some((k.trim(), v.trim().strip_prefix('"')?.strip_suffix('"')?))
            })
            .collect();
        if !labels.iter().all(|l| have.contains(l)) {
            return None;
        }
        let v: f64 = value.split_whitespace().next()?.parse().ok()?;
        (v.is_finite() && v >= 0.0).then_some(v as u64)
    })
}

/// GET /metrics of an admin listener: the body, or `None` when it cannot be read.
fn scrape_metrics(addr: std::net::SocketAddr) -> Option<String> {
    let r = peers::http_request(addr, "GET", "/metrics", &[], None, Duration::from_secs(5)).ok()?;
    (r.status == 200).then(|| String::from_utf8_lossy(&r.body).into_owned())
}

/// Where the requests of `steps` went (see [`Accounting`]).
pub fn account(
    label: String,
    steps: &[StepReport],
    connections: Option<ConnAccounting>,
) -> Accounting {
    let mut a = Accounting {
        label,
        connections,
        ..Accounting::default()
    };
    for s in steps {
        a.duration_s += s.duration_s;
        a.offered += s.sent + s.unsent;
        a.sent += s.sent;
        a.ok += s.ok;
        a.withdrawn += s.withdrawn;
        for (k, v) in &s.request_errors {
            let into = if label_is_overload(k) {
                &mut a.overload
            } else if label_is_answer(k) {
                &mut a.other_errors
            } else {
                &mut a.missing_by_kind
            };
            *into.entry(k.clone()).or_insert(0) += v;
        }
        for (k, v) in &s.errors {
            let of_requests = s.request_errors.get(k).copied().unwrap_or(0);
            if *v > of_requests {
                *a.connection_errors.entry(k.clone()).or_insert(0) += v - of_requests;
            }
        }
    }
    let answered = a.ok + a.overload.values().sum::<u64>() + a.other_errors.values().sum::<u64>();
    a.missing = a.offered.saturating_sub(answered);
    a.unaccounted =
        a.offered as i64 - answered as i64 - a.missing_by_kind.values().sum::<u64>() as i64;
    a
}

/// The server's CPUs and the generator's, from the CPUs this process may use: with two or
/// more, the server gets the last and the generator the others; with one, they share it.
pub fn split_cpus(allowed: &[usize]) -> (Vec<usize>, Vec<usize>) {
    match allowed.split_last() {
        Some((&last, rest)) if !rest.is_empty() => (vec![last], rest.to_vec()),
        _ => (allowed.to_vec(), allowed.to_vec()),
    }
}

fn cpu_list(cpus: &[usize]) -> String {
    cpus.iter()
        .map(usize::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

/// `bombing`: one shard's capacity, then twice that offered to a server that admits half
/// of it, second by second, then the recovery in the same run.
fn run_bombing(o: &ScenarioOptions, rec: &mut Recorder) -> anyhow::Result<Outcome> {
    let mut notes = Vec::new();
    let mut rows = Vec::new();
    let (server_cpus, gen_cpus) = split_cpus(&sys::allowed_cpus());
    if server_cpus == gen_cpus {
        notes.push(format!(
            "only one CPU ({}): the server's one shard and the generator share it, so the generator's own work weighs on the capacity and on every latency below",
            cpu_list(&server_cpus)
        ));
    } else {
        notes.push(format!(
            "the server runs one shard (--shards 1) pinned to CPU {} (its affinity mask, set when it starts); the generator's threads are pinned to CPU {}, so the two never share a core",
            cpu_list(&server_cpus),
            cpu_list(&gen_cpus)
        ));
    }
    notes.push(if o.bombing_echo {
        "every request is tools/call echo with 64 bytes of text (--bombing-echo): the loopback transport, not the work, sets the capacity".to_string()
    } else {
        format!("every request is tools/call {BOMBING_TOOL} {{\"us\":{BOMBING_TOOL_US}}}: {BOMBING_TOOL_US} us of the shard's CPU per call, so the work sets the capacity")
    });
    let shard = |sets: Vec<(String, String)>| ServerSpec {
        shards: Some(1),
        cpus: Some(server_cpus.clone()),
        sets,
        admin: false,
    };
    let gen = |server: &PeerProcess| -> anyhow::Result<RunConfig> {
        Ok(RunConfig {
            target: target_of(server, o.transport)?,
            warmup_ms: 1_000,
            server_pids: vec![server.pid()],
            progress: !o.quiet,
            tool: if o.bombing_echo { "echo" } else { BOMBING_TOOL }.into(),
            arguments: if o.bombing_echo {
                echo_arguments(64)
            } else {
                format!(r#"{{"us":{BOMBING_TOOL_US}}}"#)
            },
            threads: gen_cpus.len(),
            cpus: gen_cpus.clone(),
            ..RunConfig::default()
        })
    };

    // Server A: no message rate limit; its closed-loop throughput is the capacity.
    let a = start_server(o, &shard(Vec::new()))?;
    let cap = rec.measure(
        a.pid(),
        "capacity",
        RunConfig {
            connections: BOMBING_CONNS,
            rate: None,
            pipeline: BOMBING_CAPACITY_PIPELINE,
            duration_ms: ms(10_000.0, o.scale, 1_000),
            ..gen(&a)?
        },
    )?;
    let a_command = a.command_line().to_string();
    drop(a);
    let capacity = cap.report.throughput_ok_per_s;
    let mut row = cap.whole_row("capacity (closed loop)".into());
    row.phase = Phase::Reference;
    rows.push(row);
    anyhow::ensure!(
        capacity >= 1.0,
        "the capacity run got no OK response (errors: {})",
        errors_text(&cap.report.errors)
    );

    // Server B: the same shard, admitting BOMBING_ADMIT_FRACTION of the capacity.
    let limits = ServerLimits::of(&o.server_bin)?;
    let admit = (capacity * BOMBING_ADMIT_FRACTION).round().max(1.0) as u64;
    let admit_burst = (admit * BOMBING_BURST_MS / 1000).max(1);
    let offered_rate = BOMBING_OVERLOAD * capacity;
    let per_conn = offered_rate / BOMBING_CONNS as f64;
    let conn_floor = (2.0 * per_conn).ceil() as u64;
    let conn_rate = limits.messages_per_connection_per_s.max(conn_floor);
    let conn_burst = limits.messages_per_connection_burst.max(conn_floor);
    let b = start_server(
        o,
        &shard(vec![
            ("limits.messages_per_shard_per_s".into(), admit.to_string()),
            (
                "limits.messages_per_shard_burst".into(),
                admit_burst.to_string(),
            ),
            (
                "limits.messages_per_connection_per_s".into(),
                conn_rate.to_string(),
            ),
            (
                "limits.messages_per_connection_burst".into(),
                conn_burst.to_string(),
            ),
        ]),
    )?;
    let pid = b.pid();
    let rss_start = sys::vm_rss_kib(pid);
    // In one-second steps: how far the unloaded p99 moves from one second to the next is
    // what the recovery seconds are judged against.
    let unloaded_secs = (ms(10_000.0, o.scale, 1_000) / 1_000).max(1) as usize;
    let unloaded = rec.measure(
        pid,
        "unloaded",
        RunConfig {
            connections: BASELINE_CONNS,
            steps: (0..unloaded_secs)
                .map(|_| Step {
                    connections: BASELINE_CONNS,
                    duration_ms: 1_000,
                    rate: Some(BASELINE_RATE),
                })
                .collect(),
            ..gen(&b)?
        },
    )?;
    let mut row = unloaded.whole_row(format!(
        "unloaded ({BASELINE_CONNS} x {}/s)",
        group((BASELINE_RATE / BASELINE_CONNS as f64).round() as u64)
    ));
    row.phase = Phase::Reference;
    rows.push(row);
    let p99_unloaded = unloaded.report.latency.p99_us;

    // One run: a second at the recovery rate while the connections open and shake hands
    // (as the seed warmed up before bombing), the bombing seconds, then the recovery
    // seconds on the same connections, so whatever the overload left queued (in the server
    // or the generator) shows there.
    let secs = ((20.0 * o.scale).round() as usize).clamp(2, 60);
    let mut steps = vec![Step {
        connections: BOMBING_CONNS,
        duration_ms: 1_000,
        rate: Some(BOMBING_RECOVERY_RATE),
    }];
    steps.extend((0..secs).map(|_| Step {
        connections: BOMBING_CONNS,
        duration_ms: 1_000,
        rate: Some(offered_rate),
    }));
    steps.extend((0..BOMBING_RECOVERY_STEPS).map(|_| Step {
        connections: BOMBING_CONNS,
        duration_ms: 1_000,
        rate: Some(BOMBING_RECOVERY_RATE),
    }));
    let m = rec.measure(
        pid,
        "bombing",
        RunConfig {
            connections: BOMBING_CONNS,
            steps,
            pipeline: BOMBING_PIPELINE,
            // The first step is the warm-up, reported on its own: none at 2x to hide.
            warmup_ms: 0,
            timeout_ms: 10_000,
            ..gen(&b)?
        },
    )?;
    let secs = secs.min(m.report.steps.len().saturating_sub(1));
    let mut step_rows = m.step_rows(Phase::Step, |i| match i {
        0 => format!("before ({}/s)", group(BOMBING_RECOVERY_RATE.round() as u64)),
        i if i <= secs => format!("second {i}"),
        i => format!("recovery {}", i - secs),
    });
    let mut recovery_rows = step_rows.split_off(secs + 1);
    if let Some(before) = step_rows.first_mut() {
        before.phase = Phase::Reference;
    }
    for r in &mut recovery_rows {
        r.phase = Phase::Recovery;
    }
    let per_second: Vec<String> = step_rows.iter().skip(1).map(|r| us(r.p99_us)).collect();
    rows.extend(step_rows);
    let whole = m.merged_row(format!("whole bombing ({secs} s)"), 1..secs + 1);
    let p99_admitted = whole.p99_us;
    rows.push(whole);
    let recovery1 = recovery_rows.first().map(|r| r.p99_us);
    rows.extend(recovery_rows);
    let acc = account(
        format!("bombing, seconds 1-{secs}"),
        &m.report.steps[1..secs + 1],
        None,
    );

    // Verdicts, every figure from the runs above.
    let dur = acc.duration_s.max(1e-9);
    let send_lag = m
        .report
        .send_lag
        .as_ref()
        .map_or("-".into(), |l| us(l.p99_us));
    notes.push(format!(
        "offered {}/s = {:.2} x capacity {}/s ({} requests over {secs} s on {BOMBING_CONNS} connections, up to {BOMBING_PIPELINE} in flight each; {}/s written, generator send lag p99 {send_lag})",
        group((acc.offered as f64 / dur).round() as u64),
        acc.offered as f64 / dur / capacity,
        group(capacity.round() as u64),
        group(acc.offered),
        group((acc.sent as f64 / dur).round() as u64),
    ));
    if (acc.sent as f64) < 0.9 * acc.offered as f64 {
        notes.push(format!(
            "the generator could not offer the schedule: it wrote {} of the {} requests intended ({:.0} %), so the overload the server saw was about {:.2} x its capacity, not {BOMBING_OVERLOAD:.0} x",
            group(acc.sent),
            group(acc.offered),
            100.0 * acc.sent as f64 / acc.offered.max(1) as f64,
            acc.sent as f64 / dur / capacity
        ));
    }
    notes.push(format!(
        "missing: {}{}{}",
        group(acc.missing),
        if acc.missing_by_kind.is_empty() {
            String::new()
        } else {
            format!(" ({})", errors_text(&acc.missing_by_kind))
        },
        if acc.unaccounted != 0 {
            format!("; unaccounted by any loss counter: {}", acc.unaccounted)
        } else {
            String::new()
        }
    ));
    let ratio = p99_admitted as f64 / p99_unloaded.max(1) as f64;
    notes.push(format!(
        "admitted p99 {} = {ratio:.1} x unloaded p99 {} (target < {BOMBING_P99_RATIO_MAX:.0}x: {}); p99 second by second: {}; the generator's own send lag (p99 {send_lag} over the run) is part of every latency",
        us(p99_admitted),
        us(p99_unloaded),
        if p99_admitted == 0 {
            "no OK response"
        } else if ratio < BOMBING_P99_RATIO_MAX {
            "met"
        } else {
            "missed"
        },
        per_second.join(", ")
    ));
    let peak = m.rss.iter().map(|(_, k)| *k).max();
    let mib_of = |b: u64| b as f64 / (1024.0 * 1024.0);
    match (rss_start, peak) {
        (Some(start), Some(peak)) => {
            let per_conn_bytes = limits.outbound_queue_bytes_max + limits.max_message_bytes;
            let bound_kib = start + BOMBING_CONNS as u64 * per_conn_bytes / 1024;
            notes.push(format!(
                "server RSS peak {:.1} MiB, bound {:.1} MiB = RSS at start {:.1} MiB + {BOMBING_CONNS} connections x (limits.outbound_queue_bytes_max {:.1} MiB + limits.max_message_bytes {:.1} MiB) ({})",
                peak as f64 / 1024.0,
                bound_kib as f64 / 1024.0,
                start as f64 / 1024.0,
                mib_of(limits.outbound_queue_bytes_max),
                mib_of(limits.max_message_bytes),
                if peak <= bound_kib { "within" } else { "over" }
            ));
        }
        _ => notes.push("server RSS not read: no bound checked".into()),
    }
    let unloaded_seconds: Vec<u64> = unloaded
        .report
        .steps
        .iter()
        .map(|s| s.latency.p99_us)
        .filter(|&p| p > 0)
        .collect();
    let worst_unloaded_second = unloaded_seconds.iter().copied().max().unwrap_or(0);
    match recovery1 {
        Some(c) if c > 0 => notes.push(format!(
            "recovery second 1 p99 {} vs unloaded p99 {} ({:.1} x); the unloaded run's own seconds have p99 {} (so a second-1 p99 up to {} is within what the unloaded server does: {})",
            us(c),
            us(p99_unloaded),
            c as f64 / p99_unloaded.max(1) as f64,
            unloaded_seconds
                .iter()
                .map(|&p| us(p))
                .collect::<Vec<_>>()
                .join(", "),
            us(worst_unloaded_second),
            if c <= worst_unloaded_second {
                "back to unloaded"
            } else {
                "not yet back"
            }
        )),
        _ => notes.push("recovery second 1: no OK response".into()),
    }
    notes.push(format!(
        "capacity: server A (`{a_command}`), same pinning, no message rate limit, closed loop over {BOMBING_CONNS} connections with {BOMBING_CAPACITY_PIPELINE} requests in flight each; server B (the one bombed, below) admits limits.messages_per_shard_per_s = round({BOMBING_ADMIT_FRACTION} x capacity) = {}/s with a burst of {} ({BOMBING_BURST_MS} ms worth: admitted work that may queue at once), and its limits.messages_per_connection_per_s / _burst are raised to {} / {} (at least 2 x the offered {}/s per connection, or the default when higher), so that only the shard limit sheds",
        group(admit),
        group(admit_burst),
        group(conn_rate),
        group(conn_burst),
        group(per_conn.round() as u64)
    ));
    notes.push(format!(
        "one run over {BOMBING_CONNS} connections: a second at {}/s while they open and shake hands (\"before\"), {secs} one-second steps at {BOMBING_OVERLOAD:.0} x capacity, then {BOMBING_RECOVERY_STEPS} one-second steps at {}/s on the same connections (recovery 1..{BOMBING_RECOVERY_STEPS}); latency counts from each request's intended send time and only OK responses have one; requests the overload left queued in the generator are written late and show in the recovery seconds; a request still owed or unanswered at the end counts as incomplete-at-end, one unanswered for 10 s as a timeout",
        group(BOMBING_RECOVERY_RATE as u64),
        group(BOMBING_RECOVERY_RATE as u64)
    ));
    Ok(Outcome {
        server_command: b.command_line().to_string(),
        server_version: b.server_version().to_string(),
        rows,
        notes,
        accounting: vec![acc],
    })
}

/// `flood-cap`: three times the connections the server admits, each at a slow open-loop
/// rate; refused connections stay refused.
fn run_flood_cap(o: &ScenarioOptions, rec: &mut Recorder) -> anyhow::Result<Outcome> {
    let mut notes = Vec::new();
    let shards = o.shards.unwrap_or_else(sys::online_cpus);
    let server = start_server(
        o,
        &ServerSpec {
            sets: vec![(
                "limits.connections_per_shard_max".into(),
                FLOOD_CAP_PER_SHARD.to_string(),
            )],
            admin: true,
            ..ServerSpec::default()
        },
    )?;
    let pid = server.pid();
    let server_nofile = process_nofile(pid).unwrap_or(1024) as usize;
    let server_cap = server_nofile.saturating_sub(FD_RESERVE);
    let want = FLOOD_CAP_OVER * FLOOD_CAP_PER_SHARD * shards;
    let n = want.min(server_cap).max(1);
    if n < want {
        notes.push(format!(
            "{} connections asked for, {} opened: the server's open-file limit is {} (minus a reserve of {FD_RESERVE})",
            group(want as u64),
            group(n as u64),
            group(server_nofile as u64)
        ));
    }
    let m = rec.measure(
        pid,
        "run",
        RunConfig {
            target: target_of(&server, o.transport)?,
            warmup_ms: 1_000,
            server_pids: vec![pid],
            progress: !o.quiet,
            arguments: echo_arguments(64),
            connections: n,
            rate: Some(n as f64 * FLOOD_CAP_PER_CONN),
            duration_ms: ms(10_000.0, o.scale, 2_000),
            timeout_ms: 10_000,
            drop_refused: true,
            ..RunConfig::default()
        },
    )?;
    let reason = "connections_per_shard";
    let server_rejections = server.admin_addr().and_then(scrape_metrics).and_then(|t| {
        metric_value(
            &t,
            "ringmcp_rejections_total",
            &[("shard", "all"), ("reason", reason)],
        )
    });
    let r = &m.report;
    let refused_total: u64 = r.conns.refused.values().sum();
    let conns = ConnAccounting {
        asked: n as u64,
        attempts: r.conns.made + r.conns.failed,
        admitted: r.conns.made,
        refused: r.conns.refused.clone(),
        failed_other: r.conns.failed.saturating_sub(refused_total),
        server_rejections,
        server_reason: reason.into(),
    };
    let acc = account(
        "requests on admitted connections".into(),
        &r.steps,
        Some(conns.clone()),
    );
    let dur = acc.duration_s.max(1e-9);
    let mut row = m.whole_row(format!(
        "{} conns x {}/s",
        group(n as u64),
        FLOOD_CAP_PER_CONN
    ));
    // What the admitted connections were offered (the refused ones were offered nothing).
    row.offered_per_s = Some(acc.offered as f64 / dur);
    note_connections(&mut notes, &conns, shards);
    let errors =
        acc.overload.values().sum::<u64>() + acc.other_errors.values().sum::<u64>() + acc.missing;
    notes.push(format!(
        "requests on admitted connections ({} msg/s each, open loop): offered {} ({}/s), OK {}, errors {} (target 0){}; p50 {}, p99 {}",
        FLOOD_CAP_PER_CONN,
        group(acc.offered),
        group((acc.offered as f64 / dur).round() as u64),
        group(acc.ok),
        group(errors),
        if errors > 0 {
            let mut all = acc.overload.clone();
            all.extend(acc.other_errors.clone());
            all.extend(acc.missing_by_kind.clone());
            format!(" ({})", errors_text(&all))
        } else {
            String::new()
        },
        us(row.p50_us),
        us(row.p99_us)
    ));
    if !acc.connection_errors.is_empty() {
        notes.push(format!(
            "connection errors other than the refusals, in the measured window: {}",
            errors_text(&acc.connection_errors)
        ));
    }
    notes.push(format!(
        "the server runs with --set limits.connections_per_shard_max={FLOOD_CAP_PER_SHARD} on {shards} shard{}; the generator opens {FLOOD_CAP_OVER} x that many connections at once (during the 1 s warm-up), each offering {FLOOD_CAP_PER_CONN} msg/s open loop; a connection whose handshake is refused with an overload answer (TCP: a JSON-RPC error line with data.reason or code -32001/-32005/-32006; HTTP: 503 or 429) is counted as refused and never reopened (ringmcp-load run --drop-refused), and its share of the schedule is not offered",
        if shards == 1 { "" } else { "s" }
    ));
    Ok(Outcome {
        server_command: server.command_line().to_string(),
        server_version: server.server_version().to_string(),
        rows: vec![row],
        notes,
        accounting: vec![acc],
    })
}

/// flood-cap's verdict on the connections.
fn note_connections(notes: &mut Vec<String>, c: &ConnAccounting, shards: usize) {
    let refused: u64 = c.refused.values().sum();
    notes.push(format!(
        "connections: {} asked ({FLOOD_CAP_OVER} x limits.connections_per_shard_max {FLOOD_CAP_PER_SHARD} x {shards} shard{}), {} attempts: {} admitted, {} refused{}, {} failed otherwise; the server counted {} refusals (ringmcp_rejections_total, reason {})",
        group(c.asked),
        if shards == 1 { "" } else { "s" },
        group(c.attempts),
        group(c.admitted),
        group(refused),
        if c.refused.is_empty() {
            String::new()
        } else {
            format!(" ({})", errors_text(&c.refused))
        },
        group(c.failed_other),
        c.server_rejections.map_or("?".into(), group),
        c.server_reason
    ));
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
    for a in &s.accounting {
        let [label, secs, offered, sent, ok, overload, other, missing, withdrawn] =
            accounting_cells(a);
        let _ = writeln!(
            o,
            "accounting, {label} ({secs} s): offered {offered}, sent {sent}, OK {ok}, overload answers {overload}, other error answers {other}, missing {missing}, withdrawn {withdrawn}"
        );
        if !a.connection_errors.is_empty() {
            let _ = writeln!(
                o,
                "  errors that are not requests: {}",
                errors_text(&a.connection_errors)
            );
        }
        if let Some(c) = &a.connections {
            let [asked, attempts, admitted, refused, failed, server] = connection_cells(c);
            let _ = writeln!(
                o,
                "  connections: asked {asked}, attempts {attempts}, admitted {admitted}, refused {refused}, failed otherwise {failed}, server's count of refusals {server}"
            );
        }
    }
    for n in &s.notes {
        let _ = writeln!(o, "note: {n}");
    }
    o
}

/// A total and its parts: `0`, or `12 (a 10, b 2)`.
fn total_and_parts(m: &BTreeMap<String, u64>) -> String {
    if m.is_empty() {
        "0".into()
    } else {
        format!("{} ({})", group(m.values().sum()), errors_text(m))
    }
}

/// An accounting's cells: label, seconds, offered, sent, OK, overload answers, other
/// error answers, missing, withdrawn.
fn accounting_cells(a: &Accounting) -> [String; 9] {
    let mut missing = if a.missing_by_kind.is_empty() {
        group(a.missing)
    } else {
        format!("{} ({})", group(a.missing), errors_text(&a.missing_by_kind))
    };
    if a.unaccounted != 0 {
        let _ = write!(missing, "; unaccounted {}", a.unaccounted);
    }
    [
        a.label.clone(),
        format!("{:.1}", a.duration_s),
        group(a.offered),
        group(a.sent),
        group(a.ok),
        total_and_parts(&a.overload),
        total_and_parts(&a.other_errors),
        missing,
        group(a.withdrawn),
    ]
}

/// A connection accounting's cells: asked, attempts, admitted, refused, failed otherwise,
/// the server's count.
fn connection_cells(c: &ConnAccounting) -> [String; 6] {
    [
        group(c.asked),
        group(c.attempts),
        group(c.admitted),
        total_and_parts(&c.refused),
        group(c.failed_other),
        c.server_rejections.map_or("-".into(), |v| {
            format!("{} ({})", group(v), c.server_reason)
        }),
    ]
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
        if !s.accounting.is_empty() {
            let _ = writeln!(
                o,
                "\nWhere every request went (offered = sent + still owed at the end; missing = offered - OK - answers):\n"
            );
            let _ = writeln!(o, "| requests of | seconds | offered | sent | OK | overload answers | other error answers | missing | withdrawn |");
            let _ = writeln!(o, "|---|---:|---:|---:|---:|---|---|---|---:|");
            for a in &s.accounting {
                let _ = writeln!(o, "| {} |", accounting_cells(a).join(" | "));
            }
            for a in &s.accounting {
                if let Some(c) = &a.connections {
                    let _ = writeln!(o, "\n| connections asked | attempts | admitted | refused | failed otherwise | server's count of refusals |");
                    let _ = writeln!(o, "|---:|---:|---:|---|---:|---|");
                    let _ = writeln!(o, "| {} |", connection_cells(c).join(" | "));
                }
                if !a.connection_errors.is_empty() {
                    let _ = writeln!(
                        o,
                        "\nErrors in {} that are not requests: {}.",
                        a.label,
                        errors_text(&a.connection_errors)
                    );
                }
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
        assert_eq!(Scenario::parse_list("all").unwrap().len(), 7);
        assert_eq!(
            Scenario::parse_list("flood-cap").unwrap(),
            vec![Scenario::FloodCap]
        );
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

    /// A baseline summary over TCP, without rows.
    fn summary() -> ScenarioSummary {
        ScenarioSummary {
            scenario: Scenario::Baseline,
            transport: Transport::Tcp,
            scale: 0.5,
            started_at_unix_s: 0.0,
            machine: Machine::read(),
            commit: None,
            command_line: "ringmcp-load scenario baseline".into(),
            server_command: "ringmcp serve".into(),
            server_version: "0.1.0".into(),
            run_commands: Vec::new(),
            rows: Vec::new(),
            notes: Vec::new(),
            accounting: Vec::new(),
        }
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
            accounting: Vec::new(),
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

    fn step(sent: u64, unsent: u64, ok: u64, requests: &[(&str, u64)]) -> StepReport {
        let request_errors: BTreeMap<String, u64> =
            requests.iter().map(|(k, v)| (k.to_string(), *v)).collect();
        let mut errors = request_errors.clone();
        // A refused reconnect: an error, not a request.
        errors.insert("connect:ECONNREFUSED".into(), 2);
        StepReport {
            index: 0,
            connections: 20,
            rate: Some(1_000.0),
            start_s: 0.0,
            duration_s: 1.0,
            sent,
            unsent,
            withdrawn: 0,
            ok,
            ok_arrived: ok,
            throughput_ok_per_s: ok as f64,
            latency: crate::report::Latency::default(),
            errors,
            request_errors,
            histogram: String::new(),
        }
    }

    #[test]
    fn accounting_splits_answers_from_losses() {
        let steps = [
            step(
                1_000,
                0,
                500,
                &[
                    ("jsonrpc:-32005", 480),
                    ("http:429", 5),
                    ("jsonrpc:-32603", 5),
                    ("timeout", 10),
                ],
            ),
            step(
                900,
                100,
                400,
                &[("http:503:jsonrpc:-32006", 490), ("incomplete-at-end", 110)],
            ),
        ];
        let a = account("x".into(), &steps, None);
        assert_eq!((a.offered, a.sent, a.ok), (2_000, 1_900, 900));
        assert_eq!(a.overload.values().sum::<u64>(), 975);
        assert_eq!(a.overload["http:503:jsonrpc:-32006"], 490);
        assert_eq!(a.other_errors["jsonrpc:-32603"], 5);
        // 2,000 - 900 OK - 975 overload - 5 other = 120: 10 timeouts + 110 incomplete.
        assert_eq!(a.missing, 120);
        assert_eq!(a.missing_by_kind["incomplete-at-end"], 110);
        assert_eq!(a.unaccounted, 0);
        assert_eq!(a.connection_errors["connect:ECONNREFUSED"], 4);
        // A request that vanished (counted nowhere) shows as unaccounted.
        let lost = [step(10, 0, 5, &[("jsonrpc:-32005", 4)])];
        let a = account("y".into(), &lost, None);
        assert_eq!((a.missing, a.unaccounted), (1, 1));
        let md = render_markdown(
            &[ScenarioSummary {
                accounting: vec![Accounting {
                    connections: Some(ConnAccounting {
                        asked: 3_000,
                        attempts: 3_000,
                        admitted: 1_000,
                        refused: [("jsonrpc:-32001".to_string(), 2_000)].into(),
                        failed_other: 0,
                        server_rejections: Some(2_000),
                        server_reason: "connections_per_shard".into(),
                    }),
                    ..a
                }],
                ..summary()
            }],
            None,
            &[],
            &[],
        );
        assert!(
            md.contains(
                "| y | 1.0 | 10 | 10 | 5 | 4 (jsonrpc:-32005 4) | 0 | 1; unaccounted 1 | 0 |"
            ),
            "{md}"
        );
        assert!(
            md.contains("| 3,000 | 3,000 | 1,000 | 2,000 (jsonrpc:-32001 2,000) | 0 | 2,000 (connections_per_shard) |"),
            "{md}"
        );
    }

    #[test]
    fn server_limits_and_metrics() {
        let toml = "[server]\nshards = 0\n\n[limits]\n# a comment\nmax_message_bytes = 4194304\noutbound_queue_bytes_max = 8388608\nmessages_per_connection_per_s = 50000\nmessages_per_connection_burst = 40000\n";
        assert_eq!(
            ServerLimits::parse(toml).unwrap(),
            ServerLimits {
                outbound_queue_bytes_max: 8 << 20,
                max_message_bytes: 4 << 20,
                messages_per_connection_per_s: 50_000,
                messages_per_connection_burst: 40_000,
            }
        );
        assert!(ServerLimits::parse("[limits]\nmax_message_bytes = -1\n").is_err());
        assert!(ServerLimits::parse("[server]\n").is_err());
        let text = "# HELP ringmcp_rejections_total x\n# TYPE ringmcp_rejections_total counter\nringmcp_rejections_total{shard=\"0\",reason=\"connections_per_shard\"} 7\nringmcp_rejections_total{shard=\"all\",reason=\"accept_rate\"} 1\nringmcp_rejections_total{shard=\"all\",reason=\"connections_per_shard\"} 12\n";
        let want = [("shard", "all"), ("reason", "connections_per_shard")];
        assert_eq!(
            metric_value(text, "ringmcp_rejections_total", &want),
            Some(12)
        );
        assert_eq!(
            metric_value(text, "ringmcp_rejections_total", &[("reason", "x")]),
            None
        );
        assert_eq!(metric_value(text, "ringmcp_rejections", &want), None);
    }

    #[test]
    fn server_and_generator_get_their_own_cpus() {
        assert_eq!(split_cpus(&[0, 1]), (vec![1], vec![0]));
        assert_eq!(split_cpus(&[0, 2, 5]), (vec![5], vec![0, 2]));
        // One CPU: shared.
        assert_eq!(split_cpus(&[3]), (vec![3], vec![3]));
    }

    #[test]
    fn run_commands() {
        let cfg = RunConfig {
            steps: vec![Step::parse("5:1s:250").unwrap()],
            ..RunConfig::default()
        };
        let c = run_command(&cfg);
        assert!(c.contains("--step 5:1000ms:250"), "{c}");
        assert!(
            !c.contains("--cpus") && !c.contains("--drop-refused"),
            "{c}"
        );
        let cfg = RunConfig {
            cpus: vec![0, 2],
            threads: 2,
            drop_refused: true,
            ..cfg
        };
        let c = run_command(&cfg);
        assert!(c.contains("--threads 2 --cpus 0,2 --drop-refused"), "{c}");
    }
}
