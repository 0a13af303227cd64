//! Process metrics, in two parts:
//!
//! - [`ShardMetrics`]: counters and gauges, each an atomic on its own cache line, written
//!   only by their shard with relaxed ordering (no lock, no false sharing) and read by
//!   whoever renders them (the admin listener on shard 0, [`crate::admin`]), which sums them.
//! - [`LocalMetrics`]: what cannot be an atomic, the request latency HdrHistogram. It stays
//!   shard-local (`RefCell`, `!Send`); when `/metrics` is read, shard 0 asks every shard over
//!   the mesh for a copy and merges the copies ([`crate::admin`]). The request path never
//!   waits for a reader and nothing is locked.
//!
//! [`Metrics`] is created once per process before the shards start and shared (`Arc`); each
//! shard writes its own [`ShardMetrics`] (`Metrics::shard(index)`). Label sets are fixed
//! ([`Transport`], [`Method`], [`ERROR_CODES`], [`Reject`]), so a client cannot grow them.

use crossbeam_utils::CachePadded;
use hdrhistogram::Histogram;
use std::cell::RefCell;
use std::rc::Rc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

/// Why a connection, message or request was refused. Each reason has its own counter and is
/// rendered as `ringmcp_rejections_total{reason="..."}`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(usize)]
pub enum Reject {
    /// `limits.connections_per_shard_max` reached at accept.
    ConnectionsPerShard,
    /// The per-source-address connection cap reached at accept.
    ConnectionsPerSource,
    /// The per-shard accept-rate limit.
    AcceptRate,
    /// The per-connection message-rate token bucket.
    ConnectionMessageRate,
    /// The per-shard message-rate limit.
    ShardMessageRate,
    /// The per-session tool-call rate limit.
    SessionToolRate,
    /// Requests in flight on the shard at its bound.
    ShardInFlight,
    /// Requests in flight in one session at its bound.
    SessionInFlight,
    /// A connection's outbound queue full (messages or bytes).
    OutboundQueueFull,
    /// A circuit breaker open for the server or the tool.
    CircuitOpen,
    /// A tool call that ran past its timeout.
    ToolTimeout,
    /// A message to another shard dropped because the mesh queue was full.
    MeshFull,
    /// An SSE stream closed because its client stayed behind.
    SseLagging,
    /// A slow or hostile peer timed out (head, body, idle).
    SlowPeer,
}

impl Reject {
    /// Every reason, in counter order.
    pub const ALL: [Reject; 14] = [
        Reject::ConnectionsPerShard,
        Reject::ConnectionsPerSource,
        Reject::AcceptRate,
        Reject::ConnectionMessageRate,
        Reject::ShardMessageRate,
        Reject::SessionToolRate,
        Reject::ShardInFlight,
        Reject::SessionInFlight,
        Reject::OutboundQueueFull,
        Reject::CircuitOpen,
        Reject::ToolTimeout,
        Reject::MeshFull,
        Reject::SseLagging,
        Reject::SlowPeer,
    ];

    /// The label value in `/metrics`.
    pub fn label(self) -> &'static str {
        match self {
            Reject::ConnectionsPerShard => "connections_per_shard",
            Reject::ConnectionsPerSource => "connections_per_source",
            Reject::AcceptRate => "accept_rate",
            Reject::ConnectionMessageRate => "connection_message_rate",
            Reject::ShardMessageRate => "shard_message_rate",
            Reject::SessionToolRate => "session_tool_rate",
            Reject::ShardInFlight => "shard_in_flight",
            Reject::SessionInFlight => "session_in_flight",
            Reject::OutboundQueueFull => "outbound_queue_full",
            Reject::CircuitOpen => "circuit_open",
            Reject::ToolTimeout => "tool_timeout",
            Reject::MeshFull => "mesh_full",
            Reject::SseLagging => "sse_lagging",
            Reject::SlowPeer => "slow_peer",
        }
    }
}

/// The transport of a connection: the `transport` label. (`ringmcp stdio` serves one
/// session and no admin listener, so it has no label.)
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(usize)]
pub enum Transport {
    /// Newline-delimited JSON-RPC over TCP.
    Tcp,
    /// Streamable HTTP (and the legacy HTTP+SSE transport).
    Http,
}

impl Transport {
    /// Every transport, in counter order.
    pub const ALL: [Transport; 2] = [Transport::Tcp, Transport::Http];
    /// Number of transports.
    pub const COUNT: usize = Self::ALL.len();

    /// The label value.
    pub fn label(self) -> &'static str {
        match self {
            Transport::Tcp => "tcp",
            Transport::Http => "http",
        }
    }
}

/// The `method` label of a request: the MCP methods a client may call, `other` for any
/// other name (so that clients cannot grow the label set) and `invalid` for a message that
/// could not be read as a request (unparseable JSON, an invalid request object, a stateless
/// request refused at admission).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(usize)]
#[allow(missing_docs)]
pub enum Method {
    Initialize,
    Ping,
    ToolsList,
    ToolsCall,
    ResourcesList,
    ResourcesTemplatesList,
    ResourcesRead,
    ResourcesSubscribe,
    ResourcesUnsubscribe,
    PromptsList,
    PromptsGet,
    LoggingSetLevel,
    CompletionComplete,
    ServerDiscover,
    SubscriptionsListen,
    Other,
    Invalid,
}

impl Method {
    /// Every label, in counter order.
    pub const ALL: [Method; 17] = [
        Method::Initialize,
        Method::Ping,
        Method::ToolsList,
        Method::ToolsCall,
        Method::ResourcesList,
        Method::ResourcesTemplatesList,
        Method::ResourcesRead,
        Method::ResourcesSubscribe,
        Method::ResourcesUnsubscribe,
        Method::PromptsList,
        Method::PromptsGet,
        Method::LoggingSetLevel,
        Method::CompletionComplete,
        Method::ServerDiscover,
        Method::SubscriptionsListen,
        Method::Other,
        Method::Invalid,
    ];
    /// Number of labels.
    pub const COUNT: usize = Self::ALL.len();

    /// The label of a request's method; `None` is a message that was not a readable request.
    pub fn of(name: Option<&str>) -> Method {
        let Some(name) = name else {
            return Method::Invalid;
        };
        Method::ALL[..Method::Other as usize]
            .iter()
            .copied()
            .find(|m| m.label() == name)
            .unwrap_or(Method::Other)
    }

    /// The label value (the method name for the known ones).
    pub fn label(self) -> &'static str {
        match self {
            Method::Initialize => "initialize",
            Method::Ping => "ping",
            Method::ToolsList => "tools/list",
            Method::ToolsCall => "tools/call",
            Method::ResourcesList => "resources/list",
            Method::ResourcesTemplatesList => "resources/templates/list",
            Method::ResourcesRead => "resources/read",
            Method::ResourcesSubscribe => "resources/subscribe",
            Method::ResourcesUnsubscribe => "resources/unsubscribe",
            Method::PromptsList => "prompts/list",
            Method::PromptsGet => "prompts/get",
            Method::LoggingSetLevel => "logging/setLevel",
            Method::CompletionComplete => "completion/complete",
            Method::ServerDiscover => "server/discover",
            Method::SubscriptionsListen => "subscriptions/listen",
            Method::Other => "other",
            Method::Invalid => "invalid",
        }
    }
}

/// The JSON-RPC error codes with a `code` label of their own (every code ringmcp sends);
/// any other code a handler returns is counted as `other`.
pub const ERROR_CODES: [i64; 16] = {
    use crate::jsonrpc::code::*;
    [
        PARSE_ERROR,
        INVALID_REQUEST,
        METHOD_NOT_FOUND,
        INVALID_PARAMS,
        INTERNAL_ERROR,
        LIMIT_EXCEEDED,
        RESOURCE_NOT_FOUND,
        CLIENT_REQUEST_FAILED,
        SHUTTING_DOWN,
        RATE_LIMITED,
        OVERLOADED,
        CIRCUIT_OPEN,
        TOOL_TIMEOUT,
        HEADER_MISMATCH,
        MISSING_REQUIRED_CLIENT_CAPABILITY,
        UNSUPPORTED_PROTOCOL_VERSION,
    ]
};
/// Number of `code` labels: the known codes and `other`.
pub const CODE_LABELS: usize = ERROR_CODES.len() + 1;

/// The counter index of an error code (`ERROR_CODES.len()` for `other`).
pub fn code_index(code: i64) -> usize {
    ERROR_CODES
        .iter()
        .position(|c| *c == code)
        .unwrap_or(ERROR_CODES.len())
}

/// The `code` label value of a counter index.
pub fn code_label(index: usize) -> String {
    ERROR_CODES
        .get(index)
        .map_or_else(|| "other".to_string(), |c| c.to_string())
}

/// A counter on its own cache line.
#[derive(Default, Debug)]
pub struct Counter(CachePadded<AtomicU64>);

impl Counter {
    /// Adds `n` (only the owning shard writes).
    #[inline]
    pub fn add(&self, n: u64) {
        // One writer (the owning shard): a plain load and store, no locked instruction on
        // the request path. Readers on other threads see a recent value.
        let v = self.0.load(Ordering::Relaxed);
        self.0.store(v.wrapping_add(n), Ordering::Relaxed);
    }
    /// Adds one.
    #[inline]
    pub fn inc(&self) {
        self.add(1);
    }
    /// The current value.
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// A gauge (a value that goes up and down) on its own cache line, written only by its shard.
#[derive(Default, Debug)]
pub struct Gauge(CachePadded<AtomicI64>);

impl Gauge {
    /// Adds `n` (negative to subtract).
    #[inline]
    pub fn add(&self, n: i64) {
        // One writer, as for Counter.
        let v = self.0.load(Ordering::Relaxed);
        self.0.store(v.wrapping_add(n), Ordering::Relaxed);
    }
    /// Sets the value.
    #[inline]
    pub fn set(&self, v: i64) {
        self.0.store(v, Ordering::Relaxed);
    }
    /// The current value, never below zero (a reader may see one side of a pair of updates).
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed).max(0) as u64
    }
}

/// What a shard's last zone evaluation saw ([`crate::zones`]); written by the shard once
/// per `zones.interval_ms`, read by `/health`.
#[derive(Default, Debug)]
pub struct WindowFigures {
    /// Requests answered in the window.
    pub responses: Gauge,
    /// Of which with an error.
    pub errors: Gauge,
    /// p95 request latency in the window, microseconds (0 without requests).
    pub latency_p95_us: Gauge,
    /// Open connections at the end of the window.
    pub connections: Gauge,
    /// Queued messages at the end of the window.
    pub queue_depth: Gauge,
    /// The zone (0 green .. 3 red).
    pub zone: Gauge,
    /// Evaluations done so far.
    pub evaluations: Counter,
}

/// One shard's counters and gauges.
#[derive(Default, Debug)]
pub struct ShardMetrics {
    /// Refusals by [`Reject`] reason (index = `reason as usize`).
    pub rejections: [Counter; Reject::ALL.len()],
    /// Connections accepted and served, by [`Transport`] (refused ones are rejections).
    pub connections_accepted: [Counter; Transport::COUNT],
    /// Connections closed, by [`Transport`].
    pub connections_closed: [Counter; Transport::COUNT],
    /// MCP sessions registered (an `initialize` answered).
    pub sessions_opened: Counter,
    /// MCP sessions ended.
    pub sessions_closed: Counter,
    /// JSON-RPC messages received (batch elements one by one; an unreadable frame is one).
    pub messages_received: Counter,
    /// JSON-RPC messages queued for clients.
    pub messages_sent: Counter,
    /// Bytes read from client sockets, by [`Transport`].
    pub bytes_received: [Counter; Transport::COUNT],
    /// Bytes written to client sockets, by [`Transport`].
    pub bytes_sent: [Counter; Transport::COUNT],
    /// Requests by [`Method`].
    pub requests: [Counter; Method::COUNT],
    /// Requests answered (result or error).
    pub responses: Counter,
    /// Error answers by [`Method`] and code ([`code_index`]).
    pub errors: [[Counter; CODE_LABELS]; Method::COUNT],
    /// Error answers, all methods and codes.
    pub errors_all: Counter,
    /// Requests that ended without an answer (cancelled, or the client went away).
    pub cancelled: Counter,
    /// Sum of the latencies of answered requests, microseconds.
    pub latency_sum_us: Counter,
    /// Requests being handled now.
    pub in_flight: Gauge,
    /// Messages waiting in the outbound queues of this shard's TCP and stdio connections.
    pub outbound_messages: Gauge,
    /// Bytes waiting in those queues.
    pub outbound_bytes: Gauge,
    /// Events waiting in this shard's HTTP exchanges (responses not yet written).
    pub exchange_events: Gauge,
    /// Messages sent to other shards.
    pub mesh_sent: Counter,
    /// Messages received from other shards.
    pub mesh_received: Counter,
    /// Messages to other shards dropped (pending queue full, or the peer gone).
    pub mesh_dropped: Counter,
    /// Messages waiting for room in a mesh channel.
    pub mesh_pending: Gauge,
    /// The last zone evaluation.
    pub window: WindowFigures,
    /// 1 once the shard has bound its listeners.
    pub listening: Gauge,
    /// 1 once the shard's transports have stopped (shutdown).
    pub stopped: Gauge,
}

impl ShardMetrics {
    /// Counts one refusal.
    #[inline]
    pub fn reject(&self, why: Reject) {
        self.rejections[why as usize].inc();
    }

    /// Open connections of one transport.
    pub fn connections_open(&self, t: Transport) -> u64 {
        let i = t as usize;
        self.connections_accepted[i]
            .get()
            .saturating_sub(self.connections_closed[i].get())
    }

    /// Open connections of every transport.
    pub fn connections_open_all(&self) -> u64 {
        Transport::ALL
            .iter()
            .map(|t| self.connections_open(*t))
            .sum()
    }

    /// Sessions open now.
    pub fn sessions_open(&self) -> u64 {
        self.sessions_opened
            .get()
            .saturating_sub(self.sessions_closed.get())
    }

    /// Messages queued on this shard: outbound queues, HTTP exchanges and the mesh.
    pub fn queue_depth(&self) -> u64 {
        self.outbound_messages.get() + self.exchange_events.get() + self.mesh_pending.get()
    }
}

/// Process-wide figures, written only by shard 0 (once per zone interval).
#[derive(Default, Debug)]
pub struct ProcessMetrics {
    /// The process zone (0 green .. 3 red).
    pub zone: Gauge,
    /// Resident set size at the last evaluation, bytes.
    pub rss_bytes: Gauge,
    /// Evaluations done so far.
    pub evaluations: Counter,
}

/// Every shard's metrics.
#[derive(Debug)]
pub struct Metrics {
    shards: Vec<ShardMetrics>,
    /// Process-wide figures.
    pub process: ProcessMetrics,
}

impl Metrics {
    /// Metrics for `shards` shards.
    pub fn new(shards: usize) -> Metrics {
        Metrics {
            shards: (0..shards.max(1))
                .map(|_| ShardMetrics::default())
                .collect(),
            process: ProcessMetrics::default(),
        }
    }
    /// Shard `index`'s counters.
    pub fn shard(&self, index: usize) -> &ShardMetrics {
        &self.shards[index]
    }
    /// Every shard's counters, by index.
    pub fn shards(&self) -> &[ShardMetrics] {
        &self.shards
    }
}

/// Largest latency the histograms resolve (longer requests count as this long): one hour.
pub const LATENCY_MAX_US: u64 = 3_600_000_000;
/// Significant figures of the latency histograms: quantiles within 1 %, 26 KiB per
/// histogram.
pub const LATENCY_SIGFIG: u8 = 2;

/// An empty request latency histogram (microseconds).
pub fn latency_histogram() -> Histogram<u64> {
    // The bounds are constants that hdrhistogram accepts (1 <= low, high >= 2 * low,
    // sigfig <= 5); a unit test builds one.
    Histogram::new_with_bounds(1, LATENCY_MAX_US, LATENCY_SIGFIG)
        .expect("constant histogram bounds are valid")
}

/// What the zone evaluation takes from the latency of one window.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WindowLatency {
    /// Requests measured in the window.
    pub count: u64,
    /// Their p95, microseconds (0 without requests).
    pub p95_us: u64,
}

/// One shard's metrics as the shard itself holds them: its [`ShardMetrics`] and its latency
/// histograms, which are not atomic and never leave the shard except as copies.
pub struct LocalMetrics {
    all: Arc<Metrics>,
    index: usize,
    /// Requests measured before the current window.
    latency: RefCell<Histogram<u64>>,
    /// Requests measured in the current zone window.
    window: RefCell<Histogram<u64>>,
}

impl LocalMetrics {
    /// Shard `index`'s local metrics.
    pub fn new(all: Arc<Metrics>, index: usize) -> Rc<LocalMetrics> {
        Rc::new(LocalMetrics {
            all,
            index,
            latency: RefCell::new(latency_histogram()),
            window: RefCell::new(latency_histogram()),
        })
    }

    /// This shard's counters.
    #[inline]
    pub fn stats(&self) -> &ShardMetrics {
        self.all.shard(self.index)
    }

    /// Every shard's counters.
    pub fn all(&self) -> &Arc<Metrics> {
        &self.all
    }

    /// Starts measuring a request: counts it by method and as in flight.
    pub fn probe(self: &Rc<Self>, method: Method) -> RequestProbe {
        let s = self.stats();
        s.requests[method as usize].inc();
        s.in_flight.add(1);
        RequestProbe {
            local: self.clone(),
            method,
            started: Instant::now(),
            finished: false,
        }
    }

    /// Every latency measured so far (a copy).
    pub fn latency_snapshot(&self) -> Histogram<u64> {
        let mut h = self.latency.borrow().clone();
        // Same bounds on both sides: adding cannot fail.
        let _ = h.add(&*self.window.borrow());
        h
    }

    /// Ends the current window: returns its figures and starts a new one.
    pub fn close_window(&self) -> WindowLatency {
        let mut w = self.window.borrow_mut();
        let figures = WindowLatency {
            count: w.len(),
            p95_us: if w.is_empty() {
                0
            } else {
                w.value_at_quantile(0.95)
            },
        };
        let _ = self.latency.borrow_mut().add(&*w);
        w.reset();
        figures
    }
}

/// One request being measured, from its arrival at the session to its answer being queued.
/// Dropped without [`finish`](Self::finish), it counts as cancelled (no answer).
pub struct RequestProbe {
    local: Rc<LocalMetrics>,
    method: Method,
    started: Instant,
    finished: bool,
}

impl RequestProbe {
    /// The request was answered: with a result (`error` = `None`) or an error code.
    pub fn finish(mut self, error: Option<i64>) {
        self.finished = true;
        let us = u64::try_from(self.started.elapsed().as_micros()).unwrap_or(u64::MAX);
        let s = self.local.stats();
        s.responses.inc();
        if let Some(code) = error {
            s.errors[self.method as usize][code_index(code)].inc();
            s.errors_all.inc();
        }
        s.latency_sum_us.add(us);
        s.in_flight.add(-1);
        self.local.window.borrow_mut().saturating_record(us.max(1));
    }

    /// The request was answered with `response`, an encoded JSON-RPC response
    /// ([`crate::jsonrpc::encoded_error_code`] tells an error from a result).
    pub fn finish_encoded(self, response: &[u8]) {
        self.finish(crate::jsonrpc::encoded_error_code(response));
    }
}

impl Drop for RequestProbe {
    fn drop(&mut self) {
        if !self.finished {
            let s = self.local.stats();
            s.cancelled.inc();
            s.in_flight.add(-1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_index_their_counters() {
        let m = Metrics::new(2);
        for (i, r) in Reject::ALL.iter().enumerate() {
            assert_eq!(*r as usize, i);
        }
        m.shard(1).reject(Reject::CircuitOpen);
        m.shard(1).reject(Reject::CircuitOpen);
        assert_eq!(m.shard(1).rejections[Reject::CircuitOpen as usize].get(), 2);
        assert_eq!(m.shard(0).rejections[Reject::CircuitOpen as usize].get(), 0);
    }

    #[test]
    fn label_sets_are_fixed() {
        for (i, m) in Method::ALL.iter().enumerate() {
            assert_eq!(*m as usize, i);
        }
        for (i, t) in Transport::ALL.iter().enumerate() {
            assert_eq!(*t as usize, i);
        }
        assert_eq!(Method::of(Some("tools/call")), Method::ToolsCall);
        assert_eq!(Method::of(Some("server/discover")), Method::ServerDiscover);
        // A client's own names never become labels.
        assert_eq!(Method::of(Some("no/such")), Method::Other);
        assert_eq!(Method::of(Some("other")), Method::Other);
        assert_eq!(Method::of(Some("invalid")), Method::Other);
        assert_eq!(Method::of(None), Method::Invalid);
        assert_eq!(code_label(code_index(-32601)), "-32601");
        assert_eq!(code_index(-1), ERROR_CODES.len());
        assert_eq!(code_label(code_index(-1)), "other");
    }

    #[test]
    fn probes_count_answers_errors_and_cancellations() {
        let all = Arc::new(Metrics::new(2));
        let local = LocalMetrics::new(all.clone(), 1);
        let p = local.probe(Method::ToolsCall);
        assert_eq!(all.shard(1).in_flight.get(), 1);
        p.finish(None);
        local.probe(Method::Other).finish(Some(-32601));
        local.probe(Method::Invalid).finish(Some(-12345));
        drop(local.probe(Method::Ping));
        let s = all.shard(1);
        assert_eq!(s.requests[Method::ToolsCall as usize].get(), 1);
        assert_eq!(s.requests[Method::Ping as usize].get(), 1);
        assert_eq!(s.responses.get(), 3);
        assert_eq!(s.errors_all.get(), 2);
        assert_eq!(
            s.errors[Method::Other as usize][code_index(-32601)].get(),
            1
        );
        assert_eq!(
            s.errors[Method::Invalid as usize][ERROR_CODES.len()].get(),
            1
        );
        assert_eq!(s.cancelled.get(), 1);
        assert_eq!(s.in_flight.get(), 0);
        assert_eq!(all.shard(0).responses.get(), 0);
        // Three answers measured, all in the open window; closing it keeps them in the
        // snapshot and starts an empty window.
        assert_eq!(local.latency_snapshot().len(), 3);
        let w = local.close_window();
        assert_eq!(w.count, 3);
        assert!(w.p95_us >= 1);
        assert_eq!(local.close_window(), WindowLatency::default());
        assert_eq!(local.latency_snapshot().len(), 3);
    }

    #[test]
    fn latency_histogram_bounds() {
        let mut h = latency_histogram();
        h.saturating_record(u64::MAX);
        assert_eq!(h.len(), 1);
        assert!(h.max() >= LATENCY_MAX_US);
    }
}
