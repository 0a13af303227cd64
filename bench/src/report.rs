//! What a run reports: [`RunReport`] (serde, written by `--json`), its text rendering
//! (printed after every run), and the latency summary of a histogram.

use crate::config::{RunConfig, Transport};
use crate::hgrm;
use crate::sys::Machine;
use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// Percentiles of a latency histogram, microseconds.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Latency {
    /// Values recorded.
    pub count: u64,
    /// Smallest.
    pub min_us: u64,
    /// Median.
    pub p50_us: u64,
    /// 90th percentile.
    pub p90_us: u64,
    /// 99th percentile.
    pub p99_us: u64,
    /// 99.9th percentile.
    pub p999_us: u64,
    /// Largest.
    pub max_us: u64,
    /// Mean.
    pub mean_us: f64,
    /// Standard deviation.
    pub stdev_us: f64,
}

impl Latency {
    /// Summarizes a histogram.
    pub fn of(h: &Histogram<u64>) -> Latency {
        if h.is_empty() {
            return Latency::default();
        }
        Latency {
            count: h.len(),
            min_us: h.min(),
            p50_us: h.value_at_quantile(0.50),
            p90_us: h.value_at_quantile(0.90),
            p99_us: h.value_at_quantile(0.99),
            p999_us: h.value_at_quantile(0.999),
            max_us: h.max(),
            mean_us: h.mean(),
            stdev_us: h.stdev(),
        }
    }
}

/// One step of the run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepReport {
    /// Index.
    pub index: usize,
    /// Active connections.
    pub connections: usize,
    /// Aggregate open-loop rate; `None` for closed loop.
    pub rate: Option<f64>,
    /// Start, seconds after the warm-up.
    pub start_s: f64,
    /// Length.
    pub duration_s: f64,
    /// Requests sent.
    pub sent: u64,
    /// Open loop: requests intended in the step and never sent by the end of the run
    /// (also in `errors` as incomplete-at-end). `sent + unsent` is what the step offered.
    #[serde(default)]
    pub unsent: u64,
    /// Open loop: requests intended for connections given up after an overload refusal
    /// (`--drop-refused`): not offered.
    #[serde(default)]
    pub withdrawn: u64,
    /// OK responses to the step's requests (whenever they arrived).
    pub ok: u64,
    /// OK responses that arrived during the step (to requests of any step).
    pub ok_arrived: u64,
    /// `ok_arrived` per second.
    pub throughput_ok_per_s: f64,
    /// Latency of OK responses to the step's requests.
    pub latency: Latency,
    /// Errors by kind.
    pub errors: BTreeMap<String, u64>,
    /// How the step's requests that were not OK ended, by kind: error answers and losses
    /// (no connection-level errors). `sent + unsent = ok + the sum of these`.
    #[serde(default)]
    pub request_errors: BTreeMap<String, u64>,
    /// The step's latency histogram, HdrHistogram V2 deflate base64.
    pub histogram: String,
}

/// Connections of the run.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ConnReport {
    /// Connections asked for (the most over all steps).
    pub target: usize,
    /// Connections made (connect + handshake), reconnects included.
    pub made: u64,
    /// Attempts that failed.
    pub failed: u64,
    /// Closed by the server.
    pub closed_by_peer: u64,
    /// Closed by us after a request timeout.
    pub timed_out: u64,
    /// Attempts whose handshake the server refused with an overload answer, by answer
    /// (also counted in `failed`).
    #[serde(default)]
    pub refused: BTreeMap<String, u64>,
    /// Most open at once (sum of the workers' peaks).
    pub peak_open: u64,
    /// Connect + handshake time.
    pub handshake: Latency,
    /// Event-loop passes of the generator (each one io_uring_enter).
    pub loops: u64,
    /// Completions the generator reaped.
    pub cqes: u64,
}

/// CPU time of one server thread over the measured window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ThreadCpu {
    /// Thread id.
    pub tid: u32,
    /// Thread name.
    pub name: String,
    /// CPU seconds (user + system).
    pub cpu_s: f64,
}

/// The server's resource use, read from /proc.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ServerUsage {
    /// Its pids (usually one).
    pub pids: Vec<u32>,
    /// CPU seconds (user + system, all threads) over the measured window.
    pub cpu_s: Option<f64>,
    /// `cpu_s` over the window length.
    pub cores_used: Option<f64>,
    /// OK responses that arrived in the window per server CPU-second in it.
    pub ok_per_cpu_s: Option<f64>,
    /// Per thread, over the same window (threads that used any CPU).
    pub threads: Vec<ThreadCpu>,
    /// VmRSS before the run opened any connection, KiB.
    pub rss_kib_before: Option<u64>,
    /// VmRSS when the measurement started, KiB.
    pub rss_kib_measure_start: Option<u64>,
    /// VmRSS when the measurement ended (connections still open), KiB.
    pub rss_kib_after: Option<u64>,
}

/// How the load was spread.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Topology {
    /// Worker processes (1: the threads ran in this process).
    pub processes: usize,
    /// Worker threads per process, each with its own ring.
    pub threads_per_process: usize,
    /// CPUs the threads were pinned to, round-robin.
    pub cpus: Vec<usize>,
    /// Source addresses, round-robin over connections.
    pub source_addrs: Vec<String>,
    /// RLIMIT_NOFILE of a process.
    pub nofile_limit: u64,
    /// Connections one process may hold under it.
    pub connections_per_process_max: usize,
}

/// Everything a run measured.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunReport {
    /// The exact command line (or "library" when called in-process).
    pub command_line: String,
    /// The machine.
    pub machine: Machine,
    /// When it started (Unix seconds).
    pub started_at_unix_s: f64,
    /// The target URL.
    pub target: String,
    /// The transport.
    pub transport: Transport,
    /// `closed-loop`, `open-loop` or `stepped`.
    pub mode: String,
    /// Connections (most over the steps).
    pub connections: usize,
    /// Pipeline depth.
    pub pipeline: u32,
    /// Aggregate open-loop rate (single-step runs).
    pub rate: Option<f64>,
    /// Tool called.
    pub tool: String,
    /// Warm-up length, excluded from everything below.
    pub warmup_s: f64,
    /// Measured length.
    pub duration_s: f64,
    /// How the load was spread.
    pub topology: Topology,
    /// Requests sent in the measured window.
    pub sent: u64,
    /// OK responses to them (some may have arrived in the drain after the window).
    pub ok: u64,
    /// OK responses that arrived inside the measured window.
    pub ok_arrived: u64,
    /// Errors (all kinds).
    pub errors_total: u64,
    /// OK responses that arrived inside the window, per second of window.
    pub throughput_ok_per_s: f64,
    /// Latency of OK responses (open loop: from the intended send time).
    pub latency: Latency,
    /// Open loop: how late requests were written after their intended instant.
    pub send_lag: Option<Latency>,
    /// Errors by kind.
    pub errors: BTreeMap<String, u64>,
    /// Connections.
    pub conns: ConnReport,
    /// The server's CPU and memory (with `--server-pid`).
    pub server: Option<ServerUsage>,
    /// CPU seconds the load generator used (all processes), for the cost of measuring.
    pub client_cpu_s: f64,
    /// Per step.
    pub steps: Vec<StepReport>,
    /// The measured latency histogram, HdrHistogram V2 deflate base64.
    pub histogram: String,
    /// Subscribe mode: each update's fan-out to the subscribers.
    #[serde(default)]
    pub fanout: Option<crate::fanout::FanoutReport>,
    /// The configuration.
    pub config: RunConfig,
}

impl RunReport {
    /// The `.hgrm` percentile distribution of the whole measurement, in milliseconds
    /// (recorded in microseconds, printed like wrk2).
    pub fn hgrm(&self) -> Result<String, String> {
        Ok(hgrm::percentile_distribution(
            &hgrm::decode(&self.histogram)?,
            1000.0,
        ))
    }

    /// The human-readable report.
    pub fn render(&self) -> String {
        let mut o = String::new();
        let m = &self.machine;
        let _ = writeln!(o, "ringmcp-load report");
        let _ = writeln!(o, "  command     {}", self.command_line);
        let _ = writeln!(
            o,
            "  machine     {} cores, {}, Linux {}, {} MiB RAM",
            m.cores,
            m.model,
            m.kernel,
            m.mem_total_kib / 1024
        );
        match &self.fanout {
            Some(f) => {
                let _ = writeln!(
                    o,
                    "  target      {} (subscribers of {}; updates by {})",
                    self.target, f.uri, f.trigger_tool
                );
            }
            None => {
                let _ = writeln!(o, "  target      {} (tool {})", self.target, self.tool);
            }
        }
        let mode = match (self.mode.as_str(), self.rate) {
            ("open-loop", Some(r)) => format!(
                "open loop at {} req/s over {} connections ({}/s each), pipeline {}; latency from intended send time",
                group(r.round() as u64),
                group(self.connections as u64),
                per_conn(r / self.connections.max(1) as f64),
                self.pipeline
            ),
            ("subscribe", _) => format!(
                "subscribe: {} connections subscribe and only listen",
                group(self.connections as u64)
            ),
            ("closed-loop", _) => format!(
                "closed loop, {} connections, pipeline {}",
                group(self.connections as u64),
                self.pipeline
            ),
            _ => format!("{} steps, up to {} connections", self.steps.len(), self.connections),
        };
        let _ = writeln!(o, "  mode        {mode}");
        let t = &self.topology;
        let _ = writeln!(
            o,
            "  generator   {} process{} x {} thread{} (one io_uring each), cpus {:?}, source {}; {:.2} CPU-s used, {} loop passes, {:.1} completions each",
            t.processes,
            if t.processes == 1 { "" } else { "es" },
            t.threads_per_process,
            if t.threads_per_process == 1 { "" } else { "s" },
            t.cpus,
            if t.source_addrs.is_empty() {
                "kernel's choice".to_string()
            } else if t.source_addrs.len() == 1 {
                t.source_addrs[0].clone()
            } else {
                format!("{}..{} ({})", t.source_addrs[0], t.source_addrs[t.source_addrs.len() - 1], t.source_addrs.len())
            },
            self.client_cpu_s,
            group(self.conns.loops),
            self.conns.cqes as f64 / self.conns.loops.max(1) as f64
        );
        let _ = writeln!(
            o,
            "  duration    {:.2} s measured after {:.2} s warm-up",
            self.duration_s, self.warmup_s
        );
        let _ = writeln!(
            o,
            "  throughput  {} ok/s ({} OK responses arrived in the window; {} requests belong to it, {} of them answered OK)",
            group(self.throughput_ok_per_s.round() as u64),
            group(self.ok_arrived),
            group(self.sent),
            group(self.ok)
        );
        let l = &self.latency;
        let _ = writeln!(
            o,
            "  latency     p50 {}  p90 {}  p99 {}  p99.9 {}  max {}  (mean {}, {} samples)",
            us(l.p50_us),
            us(l.p90_us),
            us(l.p99_us),
            us(l.p999_us),
            us(l.max_us),
            us(l.mean_us.round() as u64),
            group(l.count)
        );
        if let Some(lag) = &self.send_lag {
            let _ = writeln!(
                o,
                "  send lag    p50 {}  p99 {}  max {}  (written after the intended instant: generator wake-up + queueing on the connection)",
                us(lag.p50_us),
                us(lag.p99_us),
                us(lag.max_us)
            );
        }
        let errors = if self.errors.is_empty() {
            "none".to_string()
        } else {
            self.errors
                .iter()
                .map(|(k, v)| format!("{k} {}", group(*v)))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let _ = writeln!(o, "  errors      {errors}");
        let c = &self.conns;
        let refused = if c.refused.is_empty() {
            String::new()
        } else {
            format!(
                " (refused: {})",
                c.refused
                    .iter()
                    .map(|(k, v)| format!("{k} {}", group(*v)))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        };
        let _ = writeln!(
            o,
            "  connections {} target, {} made, {} failed{refused}, {} closed by server, {} timed out, peak {} open; handshake p50 {} p99 {}",
            group(c.target as u64),
            group(c.made),
            group(c.failed),
            group(c.closed_by_peer),
            group(c.timed_out),
            group(c.peak_open),
            us(c.handshake.p50_us),
            us(c.handshake.p99_us)
        );
        if self.mode != "subscribe" && self.mode != "closed-loop" {
            let unsent: u64 = self.steps.iter().map(|s| s.unsent).sum();
            let withdrawn: u64 = self.steps.iter().map(|s| s.withdrawn).sum();
            let mut answers = 0;
            let mut lost = 0;
            for s in &self.steps {
                for (k, v) in &s.request_errors {
                    if crate::stats::label_is_answer(k) {
                        answers += v;
                    } else {
                        lost += v;
                    }
                }
            }
            let _ = writeln!(
                o,
                "  requests    {} offered = {} sent + {} never sent; {} OK, {} error answers, {} lost (timeout, closed, never answered or sent){}",
                group(self.sent + unsent),
                group(self.sent),
                group(unsent),
                group(self.ok),
                group(answers),
                group(lost),
                if withdrawn > 0 {
                    format!("; {} withdrawn with refused connections", group(withdrawn))
                } else {
                    String::new()
                }
            );
        }
        if let Some(s) = &self.server {
            let rss =
                |v: Option<u64>| v.map_or("?".into(), |k| format!("{:.1} MiB", k as f64 / 1024.0));
            match (s.cpu_s, s.cores_used, s.ok_per_cpu_s) {
                (Some(cpu), Some(cores), per) => {
                    let _ = writeln!(
                        o,
                        "  server      pid {}: {:.2} CPU-s in the window ({:.2} cores) -> {} ok per server CPU-second",
                        pids(&s.pids),
                        cpu,
                        cores,
                        per.map_or("?".into(), |p| group(p.round() as u64))
                    );
                }
                _ => {
                    let _ = writeln!(
                        o,
                        "  server      pid {}: CPU time not readable",
                        pids(&s.pids)
                    );
                }
            }
            let busy: Vec<String> = s
                .threads
                .iter()
                .filter(|t| t.cpu_s >= 0.01)
                .map(|t| format!("{}[{}] {:.2}", t.name, t.tid, t.cpu_s))
                .collect();
            if !busy.is_empty() {
                let _ = writeln!(o, "  server thr  {}", busy.join(", "));
            }
            let _ = writeln!(
                o,
                "  server RSS  {} before, {} at measure start, {} at end",
                rss(s.rss_kib_before),
                rss(s.rss_kib_measure_start),
                rss(s.rss_kib_after)
            );
        }
        if let Some(f) = &self.fanout {
            let _ = writeln!(
                o,
                "  fan-out     {} update{} of {} ({}) to {} subscribers, each timed from its {} call's write to each subscriber's notifications/resources/updated; timeout {}",
                f.updates.len(),
                if f.updates.len() == 1 { "" } else { "s" },
                f.uri,
                f.trigger_tool,
                group(f.subscribers),
                f.trigger_tool,
                format_args!("{} ms", group(f.timeout_ms))
            );
            for u in &f.updates {
                let call = match (&u.error, u.call_us) {
                    (Some(e), _) => format!("call failed: {e}"),
                    (None, Some(c)) => format!("call {}", us(c)),
                    (None, None) => "call ?".into(),
                };
                let _ = writeln!(
                    o,
                    "              update {:>2} at {:+.2}s: {} of {} notified ({} subscribed at the call), {} missed; p50 {}  p99 {}  max {}  ({call})",
                    u.index,
                    u.at_s,
                    group(u.received),
                    group(f.subscribers),
                    group(u.subscribed_at_trigger),
                    group(u.missed),
                    us(u.latency.p50_us),
                    us(u.latency.p99_us),
                    us(u.latency.max_us)
                );
            }
            let l = &f.latency;
            let _ = writeln!(
                o,
                "              all updates: p50 {}  p99 {}  max {}; {} received, {} missed, {} late, {} duplicate, {} before the first call, {} unrecorded",
                us(l.p50_us),
                us(l.p99_us),
                us(l.max_us),
                group(f.received),
                group(f.missed),
                group(f.late),
                group(f.duplicates),
                group(f.unmatched),
                group(f.unrecorded)
            );
        }
        if self.steps.len() > 1 {
            let _ = writeln!(
                o,
                "  steps       {:>4} {:>7} {:>10} {:>10} {:>9} {:>9} {:>9} {:>9} {:>8}",
                "#", "conns", "rate", "ok/s", "p50", "p90", "p99", "max", "errors"
            );
            for s in &self.steps {
                let errs: u64 = s.errors.values().sum();
                let _ = writeln!(
                    o,
                    "              {:>4} {:>7} {:>10} {:>10} {:>9} {:>9} {:>9} {:>9} {:>8}",
                    s.index,
                    s.connections,
                    s.rate.map_or("closed".into(), |r| group(r.round() as u64)),
                    group(s.throughput_ok_per_s.round() as u64),
                    us(s.latency.p50_us),
                    us(s.latency.p90_us),
                    us(s.latency.p99_us),
                    us(s.latency.max_us),
                    group(errs)
                );
            }
        }
        o
    }
}

fn per_conn(r: f64) -> String {
    if r >= 10.0 {
        format!("{r:.0}")
    } else if r >= 0.1 {
        format!("{r:.2}")
    } else {
        format!("{r:.4}")
    }
}

fn pids(p: &[u32]) -> String {
    p.iter().map(u32::to_string).collect::<Vec<_>>().join("+")
}

/// Microseconds, printed in the unit that reads best.
pub fn us(v: u64) -> String {
    if v >= 10_000_000 {
        format!("{:.1}s", v as f64 / 1e6)
    } else if v >= 10_000 {
        format!("{:.1}ms", v as f64 / 1e3)
    } else if v >= 1_000 {
        format!("{:.2}ms", v as f64 / 1e3)
    } else {
        format!("{v}us")
    }
}

/// An integer with thousands separators.
pub fn group(v: u64) -> String {
    let s = v.to_string();
    let mut out = String::with_capacity(s.len() + s.len() / 3);
    for (i, ch) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(ch);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formatting() {
        assert_eq!(group(0), "0");
        assert_eq!(group(1234567), "1,234,567");
        assert_eq!(us(999), "999us");
        assert_eq!(us(1_500), "1.50ms");
        assert_eq!(us(85_000), "85.0ms");
        assert_eq!(us(12_000_000), "12.0s");
    }

    #[test]
    fn latency_summary() {
        let mut h = hgrm::new_histogram();
        for v in 1..=1000u64 {
            h.record(v).unwrap();
        }
        let l = Latency::of(&h);
        assert_eq!(l.count, 1000);
        assert_eq!(l.p50_us, 500);
        assert_eq!(l.p99_us, 990);
        assert_eq!(l.max_us, 1000);
        assert_eq!(Latency::of(&hgrm::new_histogram()), Latency::default());
    }
}
