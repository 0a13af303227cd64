//! Running a whole load: spread the connections over worker threads and, past the
//! per-process open-file limit, over worker processes; watch them (progress bar, the
//! server's CPU time and RSS sampled exactly at the measured window's edges); merge what
//! they measured into a [`RunReport`].
//!
//! Connection `g` goes to process `g % P` and, within it, to thread `(g / P) % T`, so
//! every prefix of connections (what a step makes active) is spread evenly. A worker
//! process is this executable re-run as `ringmcp-load worker`: it reads a [`WorkerJob`]
//! (JSON) on stdin, prints progress lines and then one result line (JSON, histograms
//! V2-deflate-base64) on stdout. Every process starts from the same `CLOCK_MONOTONIC`
//! instant, so open-loop schedules line up across processes.
//!
//! Subscribe mode: the workers' progress (threads: shared counters; processes: their
//! progress lines) says how many connections are subscribed; the watcher fires the
//! updates ([`crate::fanout::Trigger`]) once all are, and the notification instants the
//! workers return become the report's fan-out figures.

use crate::clock::{now_ns, sleep_until};
use crate::config::{ConfigError, RunConfig};
use crate::engine::{self, Live, Plan};
use crate::fanout::{self, Fired, Trigger};
use crate::hgrm;
use crate::report::{ConnReport, Latency, RunReport, ServerUsage, StepReport, ThreadCpu, Topology};
use crate::schedule::{self, Segment};
use crate::stats::{ErrorKind, Stats, StatsWire};
use crate::sys::{self, CpuSample, Machine};
use serde::{Deserialize, Serialize};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

/// File descriptors kept free in each process beyond its connections.
const FD_RESERVE: u64 = 128;
/// Time given to threads (or processes) to start before t0.
const START_THREADS_NS: u64 = 100_000_000;
const START_PROCESSES_NS: u64 = 500_000_000;
/// Longest line a worker process may print (its result, histograms included).
const WORKER_LINE_BYTES_MAX: u64 = 64 << 20;
/// How often the watcher wakes (progress, progress lines of worker processes).
const TICK_NS: u64 = 200_000_000;
/// Runs at least this long get a progress bar.
const PROGRESS_MIN_MS: u64 = 2_000;

/// Errors that prevent a report.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// The configuration is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A worker failed.
    #[error("worker: {0}")]
    Worker(String),
    /// Starting a worker process failed.
    #[error("worker process: {0}")]
    Process(String),
}

/// How connections are spread.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    /// Processes.
    pub processes: usize,
    /// Threads per process.
    pub threads: usize,
    /// CPUs to pin to, round-robin.
    pub cpus: Vec<usize>,
    /// Connections one process may hold.
    pub per_process_max: usize,
}

impl Layout {
    /// Plans the spread for `cfg` under an open-file limit of `nofile` on `online` cores.
    pub fn plan(cfg: &RunConfig, nofile: u64, online: usize) -> Result<Layout, ConfigError> {
        let n = cfg.max_connections();
        let threads_total = if cfg.threads == 0 {
            online.max(1)
        } else {
            cfg.threads
        };
        let reserve = FD_RESERVE + 2 * threads_total as u64;
        let per_process_max = nofile.saturating_sub(reserve).max(1) as usize;
        let need = n.div_ceil(per_process_max).max(1);
        let processes = if cfg.processes == 0 {
            need
        } else if cfg.processes < need {
            return Err(ConfigError::Bound(format!(
                "{n} connections need at least {need} processes under an open-file limit of {nofile}"
            )));
        } else {
            cfg.processes
        };
        if processes > crate::config::PROCESSES_MAX {
            return Err(ConfigError::Bound(format!(
                "{n} connections need {processes} processes, more than {}",
                crate::config::PROCESSES_MAX
            )));
        }
        let per_process = n.div_ceil(processes);
        let threads = threads_total
            .div_ceil(processes)
            .clamp(1, per_process.max(1));
        let cpus = if cfg.cpus.is_empty() {
            (0..online.max(1)).collect()
        } else {
            cfg.cpus.clone()
        };
        Ok(Layout {
            processes,
            threads,
            cpus,
            per_process_max,
        })
    }

    /// The connections of thread `t` of process `p` out of `n`.
    pub fn conns_of(&self, n: usize, p: usize, t: usize) -> Vec<usize> {
        (p..n)
            .step_by(self.processes)
            .filter(|g| (g / self.processes) % self.threads == t)
            .collect()
    }

    /// The CPU of thread `t` of process `p`.
    pub fn cpu_of(&self, p: usize, t: usize) -> Option<usize> {
        if self.cpus.is_empty() {
            return None;
        }
        Some(self.cpus[(p * self.threads + t) % self.cpus.len()])
    }
}

/// What a worker process is asked to do (stdin, JSON).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WorkerJob {
    /// The run.
    pub cfg: RunConfig,
    /// This process's index.
    pub process: usize,
    /// The spread.
    pub processes: usize,
    /// Threads per process.
    pub threads: usize,
    /// CPUs, round-robin.
    pub cpus: Vec<usize>,
    /// Connections per process bound.
    pub per_process_max: usize,
    /// The run's start, absolute CLOCK_MONOTONIC ns.
    pub t0_ns: u64,
}

/// What a worker process prints (stdout, one JSON per line).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WorkerMsg {
    /// Live totals.
    Progress {
        /// OK responses.
        ok: u64,
        /// Errors.
        errors: u64,
        /// Requests sent.
        sent: u64,
        /// Connections open.
        open: u64,
    },
    /// The final result.
    Result(Box<StatsWire>),
    /// A failure.
    Error(String),
}

#[derive(Default)]
struct Totals {
    ok: u64,
    errors: u64,
    sent: u64,
    open: u64,
}

/// Watches the run: progress bar and the server's CPU/RSS at the window edges.
struct Monitor {
    measure_start: u64,
    run_end: u64,
    pids: Vec<u32>,
    cpu_start: Option<CpuSample>,
    cpu_end: Option<CpuSample>,
    rss_start: Option<u64>,
    rss_end: Option<u64>,
    sampled_start: bool,
    sampled_end: bool,
    bar: Option<indicatif::ProgressBar>,
    t0: u64,
    last: (u64, u64),
}

impl Monitor {
    fn new(cfg: &RunConfig, t0: u64, segs: &[Segment]) -> Monitor {
        let total_ms = schedule::end_ns(segs) / 1_000_000;
        let bar = (cfg.progress && total_ms >= PROGRESS_MIN_MS).then(|| {
            let b = indicatif::ProgressBar::new(total_ms);
            let style = indicatif::ProgressStyle::with_template(
                "{spinner} [{elapsed_precise}] {bar:20} {percent:>3}% {msg}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar());
            b.set_style(style);
            b
        });
        Monitor {
            measure_start: t0 + schedule::measure_start_ns(segs),
            run_end: t0 + schedule::end_ns(segs),
            pids: cfg.server_pids.clone(),
            cpu_start: None,
            cpu_end: None,
            rss_start: None,
            rss_end: None,
            sampled_start: false,
            sampled_end: false,
            bar,
            t0,
            last: (t0, 0),
        }
    }

    /// When to wake next: the next tick, or a window edge if sooner.
    fn next_wake(&self, now: u64) -> u64 {
        let mut next = now + TICK_NS;
        if !self.sampled_start && self.measure_start > now {
            next = next.min(self.measure_start);
        }
        if !self.sampled_end && self.run_end > now {
            next = next.min(self.run_end);
        }
        next
    }

    fn tick(&mut self, now: u64, t: &Totals) {
        if !self.sampled_start && now >= self.measure_start {
            self.sampled_start = true;
            if !self.pids.is_empty() {
                self.cpu_start = sys::cpu_sample_all(&self.pids);
                self.rss_start = sys::vm_rss_kib_all(&self.pids);
            }
        }
        if !self.sampled_end && now >= self.run_end {
            self.sampled_end = true;
            if !self.pids.is_empty() {
                self.cpu_end = sys::cpu_sample_all(&self.pids);
                self.rss_end = sys::vm_rss_kib_all(&self.pids);
            }
        }
        if let Some(b) = &self.bar {
            let (last_t, last_ok) = self.last;
            let dt = now.saturating_sub(last_t);
            if dt >= TICK_NS / 2 {
                let rate = t.ok.saturating_sub(last_ok) as f64 * 1e9 / dt as f64;
                self.last = (now, t.ok);
                let phase = if now < self.measure_start {
                    "warm-up"
                } else if now < self.run_end {
                    "measuring"
                } else {
                    "draining"
                };
                b.set_position(now.saturating_sub(self.t0) / 1_000_000);
                b.set_message(format!(
                    "{phase} {} ok/s {} sent {} err {} conns",
                    crate::report::group(rate.round() as u64),
                    crate::report::group(t.sent),
                    crate::report::group(t.errors),
                    crate::report::group(t.open)
                ));
            }
        }
    }

    fn finish(&self) {
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
    }
}

/// Runs `cfg` to its end and reports. Call it from any thread; it blocks for the run.
pub fn run(cfg: &RunConfig) -> Result<RunReport, BenchError> {
    cfg.validate()?;
    let mut cfg = cfg.clone();
    if let Some(addrs) = auto_source_addrs(&cfg, sys::ephemeral_ports()) {
        cfg.source_addrs = addrs;
    }
    let cfg = &cfg;
    let machine = Machine::read();
    let nofile = sys::raise_nofile_limit();
    let layout = Layout::plan(cfg, nofile, machine.cores)?;
    let segs = schedule::segments(cfg);
    let started_at_unix_s = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64());
    let rss_before = (!cfg.server_pids.is_empty())
        .then(|| sys::vm_rss_kib_all(&cfg.server_pids))
        .flatten();
    let cpu_before = sys::self_cpu_s();
    let stats = if layout.processes == 1 {
        let t0 = now_ns() + START_THREADS_NS;
        let mut mon = Monitor::new(cfg, t0, &segs);
        let mut trigger = new_trigger(cfg, t0, &segs);
        let res = run_threads(cfg, &segs, &layout, 0, t0, |t| {
            let now = now_ns();
            mon.tick(now, t);
            let wake = mon.next_wake(now);
            match trigger.as_mut() {
                Some(tr) => wake.min(tr.tick(now, t.open)),
                None => wake,
            }
        });
        mon.finish();
        let stats = res?;
        let fired = trigger.map(|t| t.finish(now_ns(), 0)).unwrap_or_default();
        (stats, mon, fired)
    } else {
        run_processes(cfg, &segs, &layout)?
    };
    let (mut stats, mon, fired) = stats;
    let client_cpu_s = sys::self_cpu_s() - cpu_before;
    let fanout = cfg.subscribe.as_ref().map(|sub| {
        let mut notified = std::mem::take(&mut stats.notified);
        let f = fanout::fan_out(
            sub,
            &fired,
            &mut notified,
            stats.notify_extra,
            cfg.max_connections() as u64,
            mon.measure_start,
        );
        // Never dropped: every subscriber that did not see an update is an error.
        stats
            .unattributed
            .add(ErrorKind::NotificationMissed, f.missed);
        stats
            .unattributed
            .add(ErrorKind::TriggerFailed, f.trigger_errors);
        f
    });
    Ok(build_report(
        cfg,
        machine,
        started_at_unix_s,
        &segs,
        &layout,
        nofile,
        &stats,
        &mon,
        rss_before,
        client_cpu_s,
        fanout,
    ))
}

/// Subscribe mode's trigger for a run starting at `t0`.
fn new_trigger(cfg: &RunConfig, t0: u64, segs: &[Segment]) -> Option<Trigger> {
    cfg.subscribe.as_ref().map(|s| {
        Trigger::new(
            s,
            &cfg.target,
            &cfg.server_pids,
            cfg.max_connections() as u64,
            t0,
            t0 + schedule::end_ns(segs),
        )
    })
}

/// Source addresses for a run that gives none but needs more connections than one
/// source address has ephemeral ports towards one server port (90 % of `ports`):
/// 127.0.0.1 up to 127.0.0.k.
pub fn auto_source_addrs(cfg: &RunConfig, ports: u64) -> Option<Vec<Ipv4Addr>> {
    if !cfg.source_addrs.is_empty() {
        return None;
    }
    let usable = (ports * 9 / 10).max(1);
    let n = cfg.max_connections() as u64;
    if n <= usable {
        return None;
    }
    let k = n.div_ceil(usable).min(254);
    Some((1..=k).map(|i| Ipv4Addr::new(127, 0, 0, i as u8)).collect())
}

/// Runs the threads of process `process`; `tick` is called from this thread while they
/// run and answers when to call it next.
fn run_threads(
    cfg: &RunConfig,
    segs: &[Segment],
    layout: &Layout,
    process: usize,
    t0: u64,
    mut tick: impl FnMut(&Totals) -> u64,
) -> Result<Stats, BenchError> {
    let n = cfg.max_connections();
    let lives: Vec<Live> = (0..layout.threads).map(|_| Live::default()).collect();
    let finished = AtomicUsize::new(0);
    let results: Vec<Result<Stats, String>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..layout.threads)
            .map(|t| {
                let plan = Plan {
                    worker: process * layout.threads + t,
                    conns: layout.conns_of(n, process, t),
                    cpu: layout.cpu_of(process, t),
                    t0_ns: t0,
                };
                let live = &lives[t];
                let finished = &finished;
                std::thread::Builder::new()
                    .name(format!("load-{}", plan.worker))
                    .spawn_scoped(s, move || {
                        let r =
                            engine::run_worker(cfg, segs, &plan, live).map_err(|e| e.to_string());
                        finished.fetch_add(1, Ordering::Release);
                        r
                    })
            })
            .collect();
        let spawned = handles.iter().filter(|h| h.is_ok()).count();
        // Bounded: every worker stops by itself at its hard deadline.
        while finished.load(Ordering::Acquire) < spawned {
            let mut tot = Totals::default();
            for l in &lives {
                tot.ok += l.ok.load(Ordering::Relaxed);
                tot.errors += l.errors.load(Ordering::Relaxed);
                tot.sent += l.sent.load(Ordering::Relaxed);
                tot.open += l.open.load(Ordering::Relaxed);
            }
            let wake = tick(&tot);
            sleep_until(wake.min(now_ns() + TICK_NS));
        }
        handles
            .into_iter()
            .map(|h| match h {
                Ok(h) => h
                    .join()
                    .unwrap_or_else(|_| Err("worker thread panicked".into())),
                Err(e) => Err(format!("spawning a worker thread: {e}")),
            })
            .collect()
    });
    let mut stats = Stats::new(cfg.effective_steps().len());
    for r in results {
        stats.merge(&r.map_err(BenchError::Worker)?);
    }
    Ok(stats)
}

fn worker_exe(cfg: &RunConfig) -> Result<PathBuf, BenchError> {
    if let Some(p) = &cfg.worker_exe {
        return Ok(p.clone());
    }
    let me = std::env::current_exe().map_err(|e| BenchError::Process(e.to_string()))?;
    if me.file_name().is_some_and(|n| n == "ringmcp-load") {
        return Ok(me);
    }
    // Next to this executable, or one level up (test binaries live in target/*/deps).
    let dir = me.parent();
    for d in [dir, dir.and_then(|d| d.parent())].into_iter().flatten() {
        let sibling = d.join("ringmcp-load");
        if sibling.exists() {
            return Ok(sibling);
        }
    }
    Err(BenchError::Process(
        "this run needs worker processes: set RunConfig::worker_exe to the ringmcp-load binary"
            .into(),
    ))
}

struct ChildState {
    ok: AtomicU64,
    errors: AtomicU64,
    sent: AtomicU64,
    open: AtomicU64,
    done: AtomicBool,
    result: Mutex<Option<Result<Stats, String>>>,
}

fn run_processes(
    cfg: &RunConfig,
    segs: &[Segment],
    layout: &Layout,
) -> Result<(Stats, Monitor, Vec<Fired>), BenchError> {
    let exe = worker_exe(cfg)?;
    let t0 = now_ns() + START_PROCESSES_NS;
    let mut children = Vec::with_capacity(layout.processes);
    let states: Vec<Arc<ChildState>> = (0..layout.processes)
        .map(|_| {
            Arc::new(ChildState {
                ok: AtomicU64::new(0),
                errors: AtomicU64::new(0),
                sent: AtomicU64::new(0),
                open: AtomicU64::new(0),
                done: AtomicBool::new(false),
                result: Mutex::new(None),
            })
        })
        .collect();
    let mut readers = Vec::with_capacity(layout.processes);
    for (p, state) in states.iter().enumerate() {
        let job = WorkerJob {
            cfg: cfg.clone(),
            process: p,
            processes: layout.processes,
            threads: layout.threads,
            cpus: layout.cpus.clone(),
            per_process_max: layout.per_process_max,
            t0_ns: t0,
        };
        let mut child = Command::new(&exe)
            .arg("worker")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| BenchError::Process(format!("{}: {e}", exe.display())))?;
        let job = serde_json::to_vec(&job).map_err(|e| BenchError::Process(e.to_string()))?;
        if let Some(mut stdin) = child.stdin.take() {
            stdin
                .write_all(&job)
                .map_err(|e| BenchError::Process(format!("writing the job: {e}")))?;
        }
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| BenchError::Process("no stdout".into()))?;
        let st = state.clone();
        readers.push(std::thread::spawn(move || read_child(stdout, &st)));
        children.push(child);
    }
    let mut mon = Monitor::new(cfg, t0, segs);
    let mut trigger = new_trigger(cfg, t0, segs);
    // Bounded: children stop by themselves at their hard deadline (and a dead child
    // closes its stdout, which ends its reader).
    while !states.iter().all(|s| s.done.load(Ordering::Acquire)) {
        let mut tot = Totals::default();
        for s in &states {
            tot.ok += s.ok.load(Ordering::Relaxed);
            tot.errors += s.errors.load(Ordering::Relaxed);
            tot.sent += s.sent.load(Ordering::Relaxed);
            tot.open += s.open.load(Ordering::Relaxed);
        }
        let now = now_ns();
        mon.tick(now, &tot);
        let mut wake = mon.next_wake(now);
        if let Some(tr) = trigger.as_mut() {
            wake = wake.min(tr.tick(now, tot.open));
        }
        sleep_until(wake);
    }
    mon.tick(now_ns(), &Totals::default());
    mon.finish();
    for r in readers {
        let _ = r.join();
    }
    for mut c in children {
        let _ = c.wait();
    }
    let mut stats = Stats::new(cfg.effective_steps().len());
    for (p, s) in states.iter().enumerate() {
        let r = s
            .result
            .lock()
            .map_err(|_| BenchError::Worker("result lock poisoned".into()))?
            .take()
            .unwrap_or_else(|| Err("exited without a result".into()));
        stats.merge(&r.map_err(|e| BenchError::Worker(format!("process {p}: {e}")))?);
    }
    let fired = trigger.map(|t| t.finish(now_ns(), 0)).unwrap_or_default();
    Ok((stats, mon, fired))
}

fn read_child(stdout: std::process::ChildStdout, st: &ChildState) {
    let mut r = BufReader::new(stdout);
    let mut line = String::new();
    // Bounded by the child's output, which ends when it exits.
    loop {
        line.clear();
        match (&mut r).take(WORKER_LINE_BYTES_MAX).read_line(&mut line) {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
        match serde_json::from_str::<WorkerMsg>(line.trim_end()) {
            Ok(WorkerMsg::Progress {
                ok,
                errors,
                sent,
                open,
            }) => {
                st.ok.store(ok, Ordering::Relaxed);
                st.errors.store(errors, Ordering::Relaxed);
                st.sent.store(sent, Ordering::Relaxed);
                st.open.store(open, Ordering::Relaxed);
            }
            Ok(WorkerMsg::Result(w)) => {
                let r = Stats::from_wire(&w);
                if let Ok(mut g) = st.result.lock() {
                    *g = Some(r);
                }
            }
            Ok(WorkerMsg::Error(e)) => {
                if let Ok(mut g) = st.result.lock() {
                    *g = Some(Err(e));
                }
            }
            Err(_) => {}
        }
    }
    st.done.store(true, Ordering::Release);
}

/// The `worker` subcommand: runs one process's share of a run described on stdin and
/// prints progress and the result on stdout. Answers the exit code.
pub fn worker_main() -> i32 {
    let mut input = String::new();
    let out = std::io::stdout();
    let emit = |m: &WorkerMsg| {
        if let Ok(s) = serde_json::to_string(m) {
            let mut o = out.lock();
            let _ = writeln!(o, "{s}");
            let _ = o.flush();
        }
    };
    if let Err(e) = std::io::stdin()
        .take(WORKER_LINE_BYTES_MAX)
        .read_to_string(&mut input)
    {
        emit(&WorkerMsg::Error(format!("reading the job: {e}")));
        return 2;
    }
    let job: WorkerJob = match serde_json::from_str(&input) {
        Ok(j) => j,
        Err(e) => {
            emit(&WorkerMsg::Error(format!("bad job: {e}")));
            return 2;
        }
    };
    if let Err(e) = job.cfg.validate() {
        emit(&WorkerMsg::Error(e.to_string()));
        return 2;
    }
    sys::raise_nofile_limit();
    let segs = schedule::segments(&job.cfg);
    let layout = Layout {
        processes: job.processes,
        threads: job.threads,
        cpus: job.cpus.clone(),
        per_process_max: job.per_process_max,
    };
    let res = run_threads(&job.cfg, &segs, &layout, job.process, job.t0_ns, |t| {
        emit(&WorkerMsg::Progress {
            ok: t.ok,
            errors: t.errors,
            sent: t.sent,
            open: t.open,
        });
        now_ns() + TICK_NS
    });
    match res.map_err(|e| e.to_string()).and_then(|s| s.to_wire()) {
        Ok(w) => {
            emit(&WorkerMsg::Result(Box::new(w)));
            0
        }
        Err(e) => {
            emit(&WorkerMsg::Error(e));
            1
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn build_report(
    cfg: &RunConfig,
    machine: Machine,
    started_at_unix_s: f64,
    segs: &[Segment],
    layout: &Layout,
    nofile: u64,
    stats: &Stats,
    mon: &Monitor,
    rss_before: Option<u64>,
    client_cpu_s: f64,
    fanout: Option<fanout::FanoutReport>,
) -> RunReport {
    let measured: Vec<&Segment> = segs.iter().filter(|s| s.recorded()).collect();
    let measure_start = schedule::measure_start_ns(segs);
    let duration_s = measured
        .iter()
        .map(|s| (s.end_ns - s.start_ns) as f64 / 1e9)
        .sum::<f64>();
    let total = stats.total();
    let steps: Vec<StepReport> = measured
        .iter()
        .zip(&stats.steps)
        .enumerate()
        .map(|(i, (seg, st))| {
            let d = (seg.end_ns - seg.start_ns) as f64 / 1e9;
            StepReport {
                index: i,
                connections: seg.connections,
                rate: seg.rate,
                start_s: (seg.start_ns - measure_start) as f64 / 1e9,
                duration_s: d,
                sent: st.sent,
                unsent: st.unsent,
                withdrawn: st.withdrawn,
                ok: st.ok,
                ok_arrived: st.ok_arrived,
                throughput_ok_per_s: st.ok_arrived as f64 / d.max(1e-9),
                latency: Latency::of(&st.latency),
                errors: st.errors.labelled(),
                request_errors: st.requests.labelled(),
                histogram: hgrm::encode(&st.latency).unwrap_or_default(),
            }
        })
        .collect();
    let server = (!cfg.server_pids.is_empty()).then(|| {
        let ticks = sys::clock_ticks();
        let (cpu_s, threads) = match (&mon.cpu_start, &mon.cpu_end) {
            (Some(a), Some(b)) => {
                let cpu = b.total_ticks.saturating_sub(a.total_ticks) as f64 / ticks;
                let threads = b
                    .threads
                    .iter()
                    .map(|(tid, name, t1)| {
                        let t0 = a
                            .threads
                            .iter()
                            .find(|(t, _, _)| t == tid)
                            .map_or(0, |(_, _, t)| *t);
                        ThreadCpu {
                            tid: *tid,
                            name: name.clone(),
                            cpu_s: t1.saturating_sub(t0) as f64 / ticks,
                        }
                    })
                    .filter(|t| t.cpu_s > 0.0)
                    .collect();
                (Some(cpu), threads)
            }
            _ => (None, Vec::new()),
        };
        ServerUsage {
            pids: cfg.server_pids.clone(),
            cpu_s,
            cores_used: cpu_s.map(|c| c / duration_s.max(1e-9)),
            ok_per_cpu_s: cpu_s.and_then(|c| (c > 0.0).then(|| total.ok_arrived as f64 / c)),
            threads,
            rss_kib_before: rss_before,
            rss_kib_measure_start: mon.rss_start,
            rss_kib_after: mon.rss_end,
        }
    });
    let mode = if cfg.subscribe.is_some() {
        "subscribe"
    } else if cfg.steps.len() > 1 {
        "stepped"
    } else if cfg.is_open_loop() {
        "open-loop"
    } else {
        "closed-loop"
    };
    let first = cfg.effective_steps().first().cloned();
    RunReport {
        command_line: cfg
            .command_line
            .clone()
            .unwrap_or_else(|| "(library call)".into()),
        machine,
        started_at_unix_s,
        target: cfg.target.url(),
        transport: cfg.target.transport,
        mode: mode.into(),
        connections: cfg.max_connections(),
        pipeline: cfg.pipeline,
        rate: first.and_then(|s| s.rate),
        tool: cfg.tool.clone(),
        warmup_s: cfg.warmup_ms as f64 / 1e3,
        duration_s,
        topology: Topology {
            processes: layout.processes,
            threads_per_process: layout.threads,
            cpus: layout.cpus.clone(),
            source_addrs: cfg.source_addrs.iter().map(|a| a.to_string()).collect(),
            nofile_limit: nofile,
            connections_per_process_max: layout.per_process_max,
        },
        sent: total.sent,
        ok: total.ok,
        ok_arrived: total.ok_arrived,
        errors_total: total.errors.total(),
        throughput_ok_per_s: total.ok_arrived as f64 / duration_s.max(1e-9),
        latency: Latency::of(&total.latency),
        send_lag: cfg.is_open_loop().then(|| Latency::of(&stats.send_lag)),
        errors: total.errors.labelled(),
        conns: ConnReport {
            target: cfg.max_connections(),
            made: stats.conns.made,
            failed: stats.conns.failed,
            closed_by_peer: stats.conns.closed_by_peer,
            timed_out: stats.conns.timed_out,
            refused: stats.conns.refused.clone(),
            peak_open: stats.conns.peak_open,
            handshake: Latency::of(&stats.handshake),
            loops: stats.conns.loops,
            cqes: stats.conns.cqes,
        },
        server,
        client_cpu_s,
        steps,
        histogram: hgrm::encode(&total.latency).unwrap_or_default(),
        fanout,
        config: cfg.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_spreads_prefixes_evenly() {
        let cfg = RunConfig {
            connections: 30_000,
            threads: 2,
            ..RunConfig::default()
        };
        let l = Layout::plan(&cfg, 20_000, 2).unwrap();
        assert_eq!(l.processes, 2);
        assert_eq!(l.threads, 1);
        assert!(l.per_process_max < 20_000);
        let a = l.conns_of(30_000, 0, 0);
        let b = l.conns_of(30_000, 1, 0);
        assert_eq!(a.len() + b.len(), 30_000);
        assert_eq!(&a[..3], &[0, 2, 4]);
        assert_eq!(l.cpu_of(1, 0), Some(1));

        let cfg = RunConfig {
            connections: 64,
            threads: 2,
            ..RunConfig::default()
        };
        let l = Layout::plan(&cfg, 20_000, 2).unwrap();
        assert_eq!((l.processes, l.threads), (1, 2));
        // The first 5 connections (a ramp's first step) land on both threads.
        let t0: Vec<usize> = l
            .conns_of(64, 0, 0)
            .into_iter()
            .filter(|&g| g < 5)
            .collect();
        assert_eq!(t0, vec![0, 2, 4]);

        let cfg = RunConfig {
            connections: 30_000,
            processes: 1,
            ..RunConfig::default()
        };
        assert!(Layout::plan(&cfg, 20_000, 2).is_err());
    }

    #[test]
    fn source_addresses_cover_the_port_range() {
        let mut cfg = RunConfig {
            connections: 60_000,
            ..RunConfig::default()
        };
        let a = auto_source_addrs(&cfg, 28_232).unwrap();
        assert_eq!(a.len(), 3);
        assert_eq!(a[2], Ipv4Addr::new(127, 0, 0, 3));
        cfg.connections = 1_000;
        assert_eq!(auto_source_addrs(&cfg, 28_232), None);
    }
}
