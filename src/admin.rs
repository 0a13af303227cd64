//! The admin listener and the health zones' clock.
//!
//! The listener (`[admin]`, default 127.0.0.1:9090) runs on shard 0 only, on a socket bound
//! without SO_REUSEPORT, and speaks a small HTTP/1.1 (heads parsed by
//! [`crate::transport::http::parse`], keep-alive, no bodies):
//! - `GET /metrics`: the Prometheus text exposition format 0.0.4. Counters and gauges are
//!   read from every shard's [`ShardMetrics`] (atomics each shard alone writes) and shown
//!   per shard (`shard="0"`, ...) and for the process (`shard="all"`, their sum). Latency
//!   histograms are not atomic and stay on their shards: shard 0 sends every other shard a
//!   [`MetricsMsg::Request`] over the mesh and each answers with a copy of its histogram
//!   ([`MetricsMsg::Reply`]); shard 0 merges the copies that arrive within
//!   `admin.snapshot_timeout_ms` into the process summary. No lock, and the request path
//!   never waits for a reader.
//! - `GET /health`: the zones ([`crate::zones`]) of the process and of each shard, with the
//!   figures that decided them; 503 while the process is red.
//!
//! Any other path is 404, any other method 405. A request with a body is answered and the
//! connection closed.
//! - `GET /ready`: 200 once every shard listens, 503 before that and once shutdown begins.
//!
//! [`evaluate_zones`] runs on every shard: each `zones.interval_ms` it ends the shard's
//! window (counter deltas, the window's latency histogram), evaluates the shard, publishes
//! the figures in its [`ShardMetrics`], logs a transition; shard 0 then evaluates the
//! process.

use crate::config::Config;
use crate::metrics::{
    code_label, Method, Reject, ShardMetrics, Transport, CODE_LABELS, ERROR_CODES,
};
use crate::runtime::{MeshMsg, Shard};
use crate::transport::http::parse::{parse_head, BodyKind, HttpError, RequestHead};
use crate::transport::tcp::{read_append, shutdown_now, write_all};
use crate::zones::{evaluate_process, evaluate_shard, ShardFigures, Zone};
use futures_lite::FutureExt;
use glommio::net::{TcpListener, TcpStream};
use hdrhistogram::Histogram;
use serde_json::{json, Value};
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::fmt::Write as _;
use std::os::fd::{FromRawFd, IntoRawFd};
use std::rc::Rc;
use std::task::{Poll, Waker};
use std::time::{Duration, Instant};

/// The quantiles of the latency summary.
pub const QUANTILES: [f64; 5] = [0.5, 0.9, 0.95, 0.99, 0.999];

/// Metrics traffic between shards.
#[derive(Debug, Clone)]
pub enum MetricsMsg {
    /// Shard 0 asks for the receiver's latency histogram.
    Request {
        /// Which collection the answer belongs to.
        id: u64,
    },
    /// A shard's latency histogram: every request it measured so far.
    Reply {
        /// The collection.
        id: u64,
        /// The copy.
        latency: Box<Histogram<u64>>,
    },
}

/// Shard 0's admin state: open admin connections and the collections of latency histograms
/// in progress (one per `/metrics` being answered, so at most `admin.connections_max`).
#[derive(Default)]
pub struct AdminShared {
    connections: Cell<usize>,
    next_collection: Cell<u64>,
    collections: RefCell<HashMap<u64, Rc<Collection>>>,
}

/// The histograms of one `/metrics`, by shard, as they arrive.
struct Collection {
    latency: RefCell<Vec<Option<Histogram<u64>>>>,
    waker: RefCell<Option<Waker>>,
}

impl Collection {
    fn complete(&self) -> bool {
        self.latency.borrow().iter().all(Option::is_some)
    }
}

/// Handles metrics traffic from shard `from`.
pub fn on_mesh(shard: &Rc<Shard>, from: usize, msg: MetricsMsg) {
    match msg {
        MetricsMsg::Request { id } => {
            let latency = Box::new(shard.local_metrics.latency_snapshot());
            shard.mesh_send(from, MeshMsg::Metrics(MetricsMsg::Reply { id, latency }));
        }
        MetricsMsg::Reply { id, latency } => {
            // A reply after its collection timed out finds nothing: dropped.
            let c = shard.admin.collections.borrow().get(&id).cloned();
            if let Some(c) = c {
                if let Some(slot) = c.latency.borrow_mut().get_mut(from) {
                    *slot = Some(*latency);
                }
                if let Some(w) = c.waker.borrow_mut().take() {
                    w.wake();
                }
            }
        }
    }
}

/// Every shard's latency histogram: this shard's own, the others' over the mesh; `None` for
/// a shard that did not answer within `admin.snapshot_timeout_ms`.
async fn latency_histograms(shard: &Rc<Shard>) -> Vec<Option<Histogram<u64>>> {
    let mut latency: Vec<Option<Histogram<u64>>> = vec![None; shard.count];
    latency[shard.index] = Some(shard.local_metrics.latency_snapshot());
    if shard.count == 1 {
        return latency;
    }
    let id = shard.admin.next_collection.get();
    shard.admin.next_collection.set(id.wrapping_add(1));
    let c = Rc::new(Collection {
        latency: RefCell::new(latency),
        waker: RefCell::new(None),
    });
    shard.admin.collections.borrow_mut().insert(id, c.clone());
    for to in (0..shard.count).filter(|&to| to != shard.index) {
        shard.mesh_send(to, MeshMsg::Metrics(MetricsMsg::Request { id }));
    }
    let timeout = Duration::from_millis(shard.config.admin.snapshot_timeout_ms);
    let all = std::future::poll_fn(|cx| {
        if c.complete() {
            return Poll::Ready(());
        }
        *c.waker.borrow_mut() = Some(cx.waker().clone());
        Poll::Pending
    });
    all.or(glommio::timer::sleep(timeout)).await;
    shard.admin.collections.borrow_mut().remove(&id);
    c.latency.take()
}

/// The process's resident set size, from `/proc/self/statm`.
pub fn process_rss_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    Some(pages * u64::try_from(page).ok().filter(|p| *p > 0)?)
}

/// Whether the process is ready: every shard listens and shutdown has not begun.
fn readiness(shard: &Shard) -> Result<(), String> {
    if shard.shutdown.is_cancelled() {
        return Err("shutting down".into());
    }
    let listening = shard
        .metrics
        .shards()
        .iter()
        .filter(|s| s.listening.get() == 1)
        .count();
    if listening < shard.count {
        return Err(format!("{listening} of {} shards listening", shard.count));
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Zones

/// Logs a zone transition with its figures: a warning when it got worse, info when better
/// (`tracing` takes the level as a constant, so one macro writes both calls).
macro_rules! log_zone_change {
    ($worse:expr, $worse_msg:literal, $better_msg:literal, $($field:tt)*) => {
        if $worse {
            tracing::warn!($($field)* $worse_msg);
        } else {
            tracing::info!($($field)* $better_msg);
        }
    };
}

/// Evaluates this shard's zone every `zones.interval_ms` (and, on shard 0, the process's)
/// until the shard stops. See the module docs.
pub async fn evaluate_zones(shard: Rc<Shard>) {
    let zones = &shard.config.zones;
    let period = Duration::from_millis(zones.interval_ms);
    let connections_max = shard.config.limits.connections_per_shard_max;
    let stats = shard.stats();
    let (mut responses, mut errors) = (stats.responses.get(), stats.errors_all.get());
    let mut zone = Zone::Green;
    let mut process_zone = Zone::Green;
    loop {
        glommio::timer::sleep(period).await;
        let (r, e) = (stats.responses.get(), stats.errors_all.get());
        let latency = shard.local_metrics.close_window();
        let figures = ShardFigures {
            responses: r - responses,
            errors: e - errors,
            latency_p95_us: latency.p95_us,
            connections: stats.connections_open_all(),
            queue_depth: stats.queue_depth(),
        };
        (responses, errors) = (r, e);
        let eval = evaluate_shard(zones, connections_max, &figures);
        publish(stats, &figures, eval.zone);
        if eval.zone != zone {
            let error_ratio = figures.error_ratio();
            let latency_p95_ms = figures.latency_p95_us as f64 / 1000.0;
            let decided_by = eval.decided_by().join(",");
            let (from, to) = (zone.label(), eval.zone.label());
            log_zone_change!(
                eval.zone > zone,
                "shard health zone worse",
                "shard health zone better",
                shard = shard.index,
                from,
                to,
                decided_by,
                responses = figures.responses,
                errors = figures.errors,
                error_ratio,
                latency_p95_ms,
                connections = figures.connections,
                queue_depth = figures.queue_depth,
            );
            zone = eval.zone;
        }
        if shard.index == 0 {
            let shard_zones: Vec<Zone> = shard
                .metrics
                .shards()
                .iter()
                .map(|s| Zone::from_gauge(s.window.zone.get()))
                .collect();
            let rss = process_rss_bytes().unwrap_or(0);
            let p = evaluate_process(zones, &shard_zones, rss);
            let process = &shard.metrics.process;
            process.rss_bytes.set(rss as i64);
            process.zone.set(p.zone.gauge() as i64);
            process.evaluations.inc();
            if p.zone != process_zone {
                let (from, to) = (process_zone.label(), p.zone.label());
                let worst_shard = p.worst_shard.map(|(i, _)| i);
                let memory = p.memory.label();
                log_zone_change!(
                    p.zone > process_zone,
                    "process health zone worse",
                    "process health zone better",
                    from,
                    to,
                    ?worst_shard,
                    memory,
                    rss_bytes = rss,
                );
                process_zone = p.zone;
            }
        }
    }
}

fn publish(stats: &ShardMetrics, f: &ShardFigures, zone: Zone) {
    let w = &stats.window;
    let g = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
    w.responses.set(g(f.responses));
    w.errors.set(g(f.errors));
    w.latency_p95_us.set(g(f.latency_p95_us));
    w.connections.set(g(f.connections));
    w.queue_depth.set(g(f.queue_depth));
    w.zone.set(g(zone.gauge()));
    w.evaluations.inc();
}

/// The published figures of a shard's last window.
fn published(s: &ShardMetrics) -> ShardFigures {
    let w = &s.window;
    ShardFigures {
        responses: w.responses.get(),
        errors: w.errors.get(),
        latency_p95_us: w.latency_p95_us.get(),
        connections: w.connections.get(),
        queue_depth: w.queue_depth.get(),
    }
}

/// The `/health` document and whether the process is red.
fn health(shard: &Shard) -> (Value, bool) {
    let cfg = &shard.config;
    let z = &cfg.zones;
    let connections_max = cfg.limits.connections_per_shard_max;
    let mut shards = Vec::with_capacity(shard.count);
    for (i, s) in shard.metrics.shards().iter().enumerate() {
        let f = published(s);
        let e = evaluate_shard(z, connections_max, &f);
        shards.push(json!({
            "shard": i,
            "zone": Zone::from_gauge(s.window.zone.get()).label(),
            "decided_by": e.decided_by(),
            "evaluations": s.window.evaluations.get(),
            "figures": {
                "responses": f.responses,
                "errors": f.errors,
                "error_ratio": f.error_ratio(),
                "latency_p95_ms": f.latency_p95_us as f64 / 1000.0,
                "connections": f.connections,
                "connections_ratio": f.connections as f64 / connections_max.max(1) as f64,
                "queue_depth": f.queue_depth,
            },
            "zones": {
                "error_ratio": e.error_ratio.label(),
                "latency_p95": e.latency_p95.label(),
                "connections": e.connections.label(),
                "queue_depth": e.queue_depth.label(),
            },
        }));
    }
    let process = &shard.metrics.process;
    let zone = Zone::from_gauge(process.zone.get());
    let rss = process.rss_bytes.get();
    let doc = json!({
        "zone": zone.label(),
        "ready": readiness(shard).is_ok(),
        "interval_ms": z.interval_ms,
        "process": {
            "zone": zone.label(),
            "evaluations": process.evaluations.get(),
            "rss_bytes": rss,
            "memory_zone": crate::zones::zone_of(rss, &z.memory_bytes).label(),
        },
        "shards": shards,
        "thresholds": {
            "error_ratio": z.error_ratio,
            "error_ratio_min_responses": z.error_ratio_min_responses,
            "latency_p95_ms": z.latency_p95_ms,
            "connections_ratio": z.connections_ratio,
            "connections_per_shard_max": connections_max,
            "queue_depth": z.queue_depth,
            "memory_bytes": z.memory_bytes,
        },
    });
    (doc, zone == Zone::Red)
}

// ---------------------------------------------------------------------------------------
// Prometheus text

/// Builds an exposition in the Prometheus text format 0.0.4.
struct Exposition<'a> {
    out: String,
    shards: &'a [ShardMetrics],
}

impl<'a> Exposition<'a> {
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.out, "# HELP {name} {help}\n# TYPE {name} {kind}");
    }

    fn sample(&mut self, name: &str, labels: &str, value: impl std::fmt::Display) {
        if labels.is_empty() {
            let _ = writeln!(self.out, "{name} {value}");
        } else {
            let _ = writeln!(self.out, "{name}{{{labels}}} {value}");
        }
    }

    /// One sample per shard and one for the process (`shard="all"`, the sum); `labels` are
    /// the other labels, already rendered (`,name="value"...`).
    fn per_shard(&mut self, name: &str, labels: &str, value: impl Fn(&ShardMetrics) -> u64) {
        let mut total = 0u64;
        for (i, s) in self.shards.iter().enumerate() {
            let v = value(s);
            total = total.saturating_add(v);
            self.sample(name, &format!("shard=\"{i}\"{labels}"), v);
        }
        self.sample(name, &format!("shard=\"all\"{labels}"), total);
    }

    /// A whole family of per-shard series with no other label.
    fn simple(&mut self, name: &str, kind: &str, help: &str, value: impl Fn(&ShardMetrics) -> u64) {
        self.family(name, kind, help);
        self.per_shard(name, "", value);
    }

    /// A per-shard family with a `transport` label.
    fn by_transport(
        &mut self,
        name: &str,
        kind: &str,
        help: &str,
        value: impl Fn(&ShardMetrics, Transport) -> u64,
    ) {
        self.family(name, kind, help);
        for t in Transport::ALL {
            self.per_shard(name, &format!(",transport=\"{}\"", t.label()), |s| {
                value(s, t)
            });
        }
    }

    /// A latency summary (seconds) from a histogram in microseconds.
    fn summary(&mut self, shard_label: &str, h: &Histogram<u64>, sum_us: u64) {
        let name = "ringmcp_request_duration_seconds";
        for q in QUANTILES {
            let labels = format!("shard=\"{shard_label}\",quantile=\"{q}\"");
            if h.is_empty() {
                self.sample(name, &labels, "NaN");
            } else {
                self.sample(name, &labels, seconds(h.value_at_quantile(q)));
            }
        }
        let labels = format!("shard=\"{shard_label}\"");
        self.sample(&format!("{name}_sum"), &labels, seconds(sum_us));
        self.sample(&format!("{name}_count"), &labels, h.len());
    }
}

fn seconds(us: u64) -> f64 {
    us as f64 / 1e6
}

/// Escapes a label value (backslash, double quote, newline).
fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Renders `/metrics`.
async fn metrics_text(shard: &Rc<Shard>) -> String {
    let latency = latency_histograms(shard).await;
    let rss = process_rss_bytes().unwrap_or(0);
    render(shard, &latency, rss)
}

/// The exposition, from every shard's counters, the latency histograms that arrived, and
/// the process's resident memory.
fn render(shard: &Shard, latency: &[Option<Histogram<u64>>], rss: u64) -> String {
    let shards = shard.metrics.shards();
    let mut x = Exposition {
        out: String::with_capacity(32 << 10),
        shards,
    };
    x.family(
        "ringmcp_shards",
        "gauge",
        "Shards (one glommio executor pinned per core).",
    );
    x.sample("ringmcp_shards", "", shards.len());
    x.family(
        "ringmcp_ready",
        "gauge",
        "1 when every shard listens and the process is not shutting down (GET /ready).",
    );
    x.sample("ringmcp_ready", "", u8::from(readiness(shard).is_ok()));

    x.by_transport(
        "ringmcp_connections_accepted_total",
        "counter",
        "Connections accepted and served (connections refused at a limit count in ringmcp_rejections_total).",
        |s, t| s.connections_accepted[t as usize].get(),
    );
    x.by_transport(
        "ringmcp_connections_closed_total",
        "counter",
        "Connections closed.",
        |s, t| s.connections_closed[t as usize].get(),
    );
    x.by_transport(
        "ringmcp_connections_open",
        "gauge",
        "Connections open now (bounded per shard by limits.connections_per_shard_max).",
        |s, t| s.connections_open(t),
    );
    x.simple(
        "ringmcp_sessions_opened_total",
        "counter",
        "MCP sessions opened (initialize answered and the session registered).",
        |s| s.sessions_opened.get(),
    );
    x.simple(
        "ringmcp_sessions_closed_total",
        "counter",
        "MCP sessions ended (connection closed, DELETE, idle expiry).",
        |s| s.sessions_closed.get(),
    );
    x.simple(
        "ringmcp_sessions_open",
        "gauge",
        "MCP sessions open now (bounded per shard by limits.sessions_per_shard_max).",
        |s| s.sessions_open(),
    );
    x.simple(
        "ringmcp_messages_received_total",
        "counter",
        "JSON-RPC messages received (batch elements one by one; an unreadable frame counts one).",
        |s| s.messages_received.get(),
    );
    x.simple(
        "ringmcp_messages_sent_total",
        "counter",
        "JSON-RPC messages queued for clients (responses, notifications, server requests).",
        |s| s.messages_sent.get(),
    );
    x.by_transport(
        "ringmcp_bytes_received_total",
        "counter",
        "Bytes read from client sockets.",
        |s, t| s.bytes_received[t as usize].get(),
    );
    x.by_transport(
        "ringmcp_bytes_sent_total",
        "counter",
        "Bytes written to client sockets (responses and streams; not the short error answers of refused connections).",
        |s, t| s.bytes_sent[t as usize].get(),
    );

    x.family(
        "ringmcp_requests_total",
        "counter",
        "JSON-RPC requests by method (known MCP methods; other = any other name; invalid = a message that could not be read as a request).",
    );
    for m in Method::ALL {
        let labels = format!(",method=\"{}\"", escape(m.label()));
        x.per_shard("ringmcp_requests_total", &labels, |s| {
            s.requests[m as usize].get()
        });
    }
    x.simple(
        "ringmcp_responses_total",
        "counter",
        "Requests answered, with a result or an error.",
        |s| s.responses.get(),
    );
    x.family(
        "ringmcp_errors_total",
        "counter",
        "Error answers by method and JSON-RPC error code (other = a code not listed in docs/protocol.md); a method/code pair appears once it has counted.",
    );
    for m in Method::ALL {
        for c in 0..CODE_LABELS {
            let seen = shards.iter().any(|s| s.errors[m as usize][c].get() > 0);
            if seen {
                let labels = format!(
                    ",method=\"{}\",code=\"{}\"",
                    escape(m.label()),
                    code_label(c)
                );
                x.per_shard("ringmcp_errors_total", &labels, |s| {
                    s.errors[m as usize][c].get()
                });
            }
        }
    }
    debug_assert_eq!(CODE_LABELS, ERROR_CODES.len() + 1);
    x.simple(
        "ringmcp_requests_cancelled_total",
        "counter",
        "Requests that ended without an answer (cancelled by the client, or the client went away).",
        |s| s.cancelled.get(),
    );
    x.simple(
        "ringmcp_requests_in_flight",
        "gauge",
        "Requests being handled now.",
        |s| s.in_flight.get(),
    );

    x.family(
        "ringmcp_request_duration_seconds",
        "summary",
        "Request latency, from the request's arrival at the session to its answer being queued (answered requests). Quantiles from per-shard HdrHistograms (2 significant figures); shard=\"all\" merges the shards that answered in time.",
    );
    let mut merged = crate::metrics::latency_histogram();
    let mut merged_sum = 0u64;
    let mut merged_count = 0usize;
    for (i, h) in latency.iter().enumerate() {
        if let Some(h) = h {
            let sum = shards[i].latency_sum_us.get();
            x.summary(&i.to_string(), h, sum);
            // Same bounds on both sides: adding cannot fail.
            let _ = merged.add(h);
            merged_sum = merged_sum.saturating_add(sum);
            merged_count += 1;
        }
    }
    x.summary("all", &merged, merged_sum);
    x.family(
        "ringmcp_latency_shards_merged",
        "gauge",
        "Shards whose latency histogram reached this scrape within admin.snapshot_timeout_ms.",
    );
    x.sample("ringmcp_latency_shards_merged", "", merged_count);

    x.family(
        "ringmcp_rejections_total",
        "counter",
        "Connections, messages or requests refused, by reason (docs/operations.md lists what the peer sees).",
    );
    for r in Reject::ALL {
        let labels = format!(",reason=\"{}\"", r.label());
        x.per_shard("ringmcp_rejections_total", &labels, |s| {
            s.rejections[r as usize].get()
        });
    }

    x.simple(
        "ringmcp_outbound_queue_messages",
        "gauge",
        "Messages waiting in the outbound queues of TCP connections (sum over connections).",
        |s| s.outbound_messages.get(),
    );
    x.simple(
        "ringmcp_outbound_queue_bytes",
        "gauge",
        "Bytes waiting in the outbound queues of TCP connections (sum over connections).",
        |s| s.outbound_bytes.get(),
    );
    x.simple(
        "ringmcp_http_exchange_events",
        "gauge",
        "Events (messages, SSE events) waiting to be written to HTTP clients (sum over responses).",
        |s| s.exchange_events.get(),
    );
    x.simple(
        "ringmcp_mesh_pending_messages",
        "gauge",
        "Messages to other shards waiting for room in a mesh channel (bounded per peer by limits.mesh_pending_messages_max).",
        |s| s.mesh_pending.get(),
    );
    x.simple(
        "ringmcp_mesh_messages_sent_total",
        "counter",
        "Messages sent to other shards.",
        |s| s.mesh_sent.get(),
    );
    x.simple(
        "ringmcp_mesh_messages_received_total",
        "counter",
        "Messages received from other shards.",
        |s| s.mesh_received.get(),
    );
    x.simple(
        "ringmcp_mesh_messages_dropped_total",
        "counter",
        "Messages to other shards dropped (pending queue full, or the peer stopped).",
        |s| s.mesh_dropped.get(),
    );

    x.family(
        "ringmcp_process_resident_memory_bytes",
        "gauge",
        "Resident memory of the process (/proc/self/statm).",
    );
    x.sample("ringmcp_process_resident_memory_bytes", "", rss);
    x.family(
        "ringmcp_shard_resident_memory_bytes",
        "gauge",
        "A shard's share of the process's resident memory, apportioned by its share of open connections (evenly while none is open): an estimate, shards share one heap.",
    );
    let open: Vec<u64> = shards.iter().map(|s| s.connections_open_all()).collect();
    let total: u64 = open.iter().sum();
    for (i, o) in open.iter().enumerate() {
        let share = if total == 0 {
            rss / shards.len().max(1) as u64
        } else {
            (rss as u128 * *o as u128 / total as u128) as u64
        };
        x.sample(
            "ringmcp_shard_resident_memory_bytes",
            &format!("shard=\"{i}\""),
            share,
        );
    }

    x.family(
        "ringmcp_zone",
        "gauge",
        "Health zone at the last evaluation: 0 green, 1 yellow, 2 orange, 3 red (shard=\"all\": the process, the worst shard or its memory).",
    );
    for (i, s) in shards.iter().enumerate() {
        x.sample(
            "ringmcp_zone",
            &format!("shard=\"{i}\""),
            s.window.zone.get(),
        );
    }
    x.sample(
        "ringmcp_zone",
        "shard=\"all\"",
        shard.metrics.process.zone.get(),
    );
    x.out
}

// ---------------------------------------------------------------------------------------
// The listener

/// How often the admin listener retries an address another process holds.
const REBIND_EVERY: Duration = Duration::from_secs(1);

/// Binds the admin listener: a plain bind (no SO_REUSEPORT), so that one process answers
/// for the address and scrapes are never split between processes.
fn bind(config: &Config) -> std::io::Result<TcpListener> {
    let std = std::net::TcpListener::bind(config.admin.listen)?;
    // SAFETY: the descriptor is a bound, listening TCP socket that we own and hand over.
    Ok(unsafe { TcpListener::from_raw_fd(std.into_raw_fd()) })
}

/// Starts the admin listener on this shard (shard 0) and returns its task; dropping the
/// task closes it. An address in use by another process (the old instance during a
/// hand-over, vm-tuning/systemd/ringmcp@.service) is retried every second until it is
/// free, with a warning; any other bind error stops the start.
pub fn start(shard: &Rc<Shard>) -> anyhow::Result<glommio::Task<()>> {
    let addr = shard.config.admin.listen;
    let first = match bind(&shard.config) {
        Ok(l) => Some(l),
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => {
            tracing::warn!(
                "admin listener: {addr} is in use by another process; retrying every {}s",
                REBIND_EVERY.as_secs()
            );
            None
        }
        Err(e) => anyhow::bail!("cannot listen on {addr} (admin): {e}"),
    };
    let shard = shard.clone();
    Ok(glommio::spawn_local(async move {
        let listener = match first {
            Some(l) => l,
            None => loop {
                glommio::timer::sleep(REBIND_EVERY).await;
                match bind(&shard.config) {
                    Ok(l) => break l,
                    Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => continue,
                    Err(e) => {
                        tracing::error!("admin listener: cannot listen on {addr}: {e}");
                        return;
                    }
                }
            },
        };
        serve(shard, listener).await
    }))
}

struct AdminCount(Rc<Shard>);

impl AdminCount {
    fn new(shard: Rc<Shard>) -> AdminCount {
        let c = &shard.admin.connections;
        c.set(c.get() + 1);
        AdminCount(shard)
    }
}

impl Drop for AdminCount {
    fn drop(&mut self) {
        let c = &self.0.admin.connections;
        c.set(c.get() - 1);
    }
}

/// Serves the admin listener until its task is dropped (after [`linger`]). At
/// `admin.connections_max` open connections a new one gets 503.
async fn serve(shard: Rc<Shard>, listener: TcpListener) {
    if let Ok(addr) = listener.local_addr() {
        tracing::info!("admin listener on http://{addr} (/metrics, /health, /ready)");
    }
    let max = shard.config.admin.connections_max;
    loop {
        let stream = match listener.accept().await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!("admin accept failed: {e}");
                glommio::timer::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        if shard.admin.connections.get() >= max {
            let answer = response(
                503,
                "text/plain; charset=utf-8",
                format!("too many admin connections (admin.connections_max = {max})\n").as_bytes(),
                false,
            );
            glommio::spawn_local(async move {
                let st = RefCell::new(stream);
                let _ = write_all(&st, &answer)
                    .or(async {
                        glommio::timer::sleep(Duration::from_millis(100)).await;
                        Ok(())
                    })
                    .await;
                shutdown_now(&st.borrow());
            })
            .detach();
            continue;
        }
        glommio::spawn_local(connection(shard.clone(), stream)).detach();
    }
}

/// After shard 0's transports stopped: keeps the admin listener up (answering `/ready`
/// with 503) until every shard has stopped, for at most the shutdown grace period and a
/// second.
pub async fn linger(shard: &Shard) {
    let deadline = Instant::now()
        + Duration::from_millis(shard.config.server.shutdown_grace_ms)
        + Duration::from_secs(1);
    while Instant::now() < deadline && shard.metrics.shards().iter().any(|s| s.stopped.get() == 0) {
        glommio::timer::sleep(Duration::from_millis(10)).await;
    }
}

/// Reads one request head: `Ok(None)` when the peer closes or stays silent (between
/// requests) for `http.header_read_timeout_ms`; a head begun and not finished in that
/// time is a 408.
async fn read_head(
    shard: &Shard,
    st: &RefCell<TcpStream>,
    inbuf: &mut Vec<u8>,
) -> Result<Option<RequestHead>, HttpError> {
    let http = &shard.config.http;
    let deadline = Instant::now() + Duration::from_millis(http.header_read_timeout_ms);
    loop {
        if let Some((head, n)) = parse_head(inbuf, http.max_head_bytes, http.max_body_bytes)? {
            inbuf.drain(..n);
            return Ok(Some(head));
        }
        let wait = deadline.saturating_duration_since(Instant::now());
        let read = async { Some(read_append(st, inbuf).await) };
        let timeout = async {
            glommio::timer::sleep(wait).await;
            None
        };
        match read.or(timeout).await {
            Some(Ok(0)) | Some(Err(_)) => return Ok(None),
            Some(Ok(_)) => {}
            None if inbuf.is_empty() => return Ok(None),
            None => return Err(HttpError::new(408, "request head not received in time")),
        }
    }
}

async fn connection(shard: Rc<Shard>, stream: TcpStream) {
    let _count = AdminCount::new(shard.clone());
    let st = RefCell::new(stream);
    let mut inbuf = Vec::new();
    loop {
        let head = match read_head(&shard, &st, &mut inbuf).await {
            Ok(Some(h)) => h,
            Ok(None) => break,
            Err(e) => {
                let body = format!("{}\n", e.reason);
                let _ = write_all(
                    &st,
                    &response(
                        e.status,
                        "text/plain; charset=utf-8",
                        body.as_bytes(),
                        false,
                    ),
                )
                .await;
                break;
            }
        };
        // Admin requests carry no body: one that has a body is answered, and the
        // connection closes rather than read it.
        let keep_alive =
            head.keep_alive && matches!(head.body, BodyKind::None | BodyKind::Length(0));
        let (status, content_type, body) = answer(&shard, &head).await;
        let mut bytes = response(status, content_type, &body, keep_alive);
        if status == 405 {
            // The Allow header goes before the blank line that ends the head.
            let at = bytes.windows(4).position(|w| w == b"\r\n\r\n").unwrap_or(0);
            bytes.splice(at + 2..at + 2, b"Allow: GET\r\n".iter().copied());
        }
        if write_all(&st, &bytes).await.is_err() || !keep_alive {
            break;
        }
    }
    shutdown_now(&st.borrow());
}

/// Status, content type and body for one request.
async fn answer(shard: &Rc<Shard>, head: &RequestHead) -> (u16, &'static str, Vec<u8>) {
    const TEXT: &str = "text/plain; charset=utf-8";
    let path = head.path.as_str();
    if !matches!(path, "/metrics" | "/health" | "/ready") {
        return (
            404,
            TEXT,
            format!("no such endpoint {path:?}; try /metrics, /health or /ready\n").into_bytes(),
        );
    }
    if head.method != "GET" {
        return (405, TEXT, b"use GET\n".to_vec());
    }
    match path {
        "/metrics" => (
            200,
            "text/plain; version=0.0.4; charset=utf-8",
            metrics_text(shard).await.into_bytes(),
        ),
        "/health" => {
            let (doc, red) = health(shard);
            let mut body = serde_json::to_vec_pretty(&doc).unwrap_or_default();
            body.push(b'\n');
            (if red { 503 } else { 200 }, "application/json", body)
        }
        _ => match readiness(shard) {
            Ok(()) => (200, TEXT, b"ready\n".to_vec()),
            Err(why) => (503, TEXT, format!("not ready: {why}\n").into_bytes()),
        },
    }
}

fn response(status: u16, content_type: &str, body: &[u8], keep_alive: bool) -> Vec<u8> {
    let reason = match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        413 => "Content Too Large",
        431 => "Request Header Fields Too Large",
        501 => "Not Implemented",
        503 => "Service Unavailable",
        505 => "HTTP Version Not Supported",
        _ => "Status",
    };
    let head = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nCache-Control: no-store\r\n{}\r\n",
        body.len(),
        if keep_alive { "" } else { "Connection: close\r\n" }
    );
    let mut out = Vec::with_capacity(head.len() + body.len());
    out.extend_from_slice(head.as_bytes());
    out.extend_from_slice(body);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn responses_are_framed() {
        let r = response(200, "text/plain", b"ok\n", true);
        let text = String::from_utf8(r).unwrap();
        assert!(text.starts_with("HTTP/1.1 200 OK\r\n"), "{text}");
        assert!(text.contains("Content-Length: 3\r\n"), "{text}");
        assert!(!text.contains("Connection: close"), "{text}");
        assert!(text.ends_with("\r\n\r\nok\n"), "{text}");
        let r = String::from_utf8(response(503, "text/plain", b"", false)).unwrap();
        assert!(r.contains("Connection: close\r\n\r\n"), "{r}");
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape(r#"a"b\c"#), r#"a\"b\\c"#);
        assert_eq!(escape("x\ny"), "x\\ny");
    }

    #[test]
    fn rss_is_read() {
        assert!(process_rss_bytes().is_some_and(|b| b > 0));
    }
}
