//! Configuration: the TOML file (`--config`), its defaults, and validation. Every limit is
//! named with its unit; `ringmcp config --print-default` prints [`DEFAULT_TOML`], which parses
//! to exactly [`Config::default()`] (a unit test keeps the two in step).

use serde::Deserialize;
use std::net::SocketAddr;
use std::path::Path;

/// The commented default configuration file.
pub const DEFAULT_TOML: &str = r#"# ringmcp configuration. Every key is optional; the values below are the defaults.
# Flags given to `ringmcp serve` override the file.

[server]
# Number of shards (one glommio executor pinned per core). 0 = every online core.
shards = 0
# Built-in MCP servers hosted by this process ("demo", "conformance").
servers = ["demo", "conformance"]
# The server a TCP or stdio client talks to unless told otherwise.
default_server = "demo"
# error, warn, info, debug or trace. Logs go to stderr.
log_level = "info"
# On SIGINT/SIGTERM: stop accepting, let in-flight requests finish for up to this long,
# then close every connection.
shutdown_grace_ms = 5000
# Concurrent connections this host is expected to hold. `ringmcp serve` checks at start that
# the host can (RLIMIT_NOFILE, fs.nr_open, fs.file-max, io_uring, locked memory, and that
# limits.connections_per_shard_max x shards reaches it) and refuses to start when it cannot
# (`serve --allow-unready-host` turns that into a warning). `ringmcp check-host` prints every
# check with its fix. 0 checks only what any start needs (kernel, io_uring, locked memory).
connections_target = 10000

[tcp]
# Newline-delimited JSON-RPC over TCP. Every shard binds this address with SO_REUSEPORT.
enabled = true
listen = "127.0.0.1:7070"
# A connection whose client takes none of what is written to it for this long (it stopped
# reading; its outbound queue stays full) is reset, dropping what is queued (counted as
# outbound_queue_full).
write_timeout_ms = 30000
# More TCP listeners, each serving one named server instead of server.default_server:
# [tcp.listeners]
# conformance = "127.0.0.1:7071"

[limits]
# Largest JSON-RPC message (one line on TCP and stdio). Longer lines get an error and the
# connection is closed.
max_message_bytes = 4194304
# A connection with no incoming message and no request in flight for this long is closed.
# 0 disables the idle timeout.
idle_timeout_ms = 300000
# A TCP message (line) whose first bytes arrived must be complete within this long, however
# slowly its bytes trickle in; otherwise the peer gets a -32600 error line and the
# connection closes (counted as slow_peer). 0 disables it (the idle timeout still applies).
message_read_timeout_ms = 60000
# Connections one shard holds at once; beyond it a new connection gets a -32001 error line
# (HTTP: 503 with Retry-After) and is closed (counted as connections_per_shard).
connections_per_shard_max = 50000
# Connections one shard holds from one source address; beyond it the same refusal, reason
# connections_per_source. 0 = unlimited (the default: clients behind a NAT or a load
# balancer share one address).
connections_per_source_max = 0
# New connections one shard takes per second, and in a burst; beyond it a new connection
# gets a -32005 error line with data.retryAfterMs (HTTP: 429 with Retry-After) and is closed
# (counted as accept_rate). 0 = unlimited; a burst of 0 = one second's worth.
accept_rate_per_shard = 10000
accept_burst_per_shard = 10000
# Sessions one shard's registry partition holds.
sessions_per_shard_max = 100000
# Messages and bytes queued for one connection's writer. While the queue is over half full
# the connection's reads pause (backpressure: its client waits for its answers); a message
# that does not fit closes the connection after what is queued is written (counted as
# outbound_queue_full); a client that reads nothing is reset after tcp.write_timeout_ms.
outbound_queue_messages_max = 1024
outbound_queue_bytes_max = 8388608
# Requests of one session being handled at once; more are answered with error -32001
# (data.reason session_in_flight; HTTP: 429 with Retry-After).
session_in_flight_requests_max = 256
# Requests whose handlers run at once on one shard (every session and stateless request);
# a request that would start one more is answered with error -32006 and data.retryAfterMs
# without starting (HTTP: 503 with Retry-After; counted as shard_in_flight).
shard_in_flight_requests_max = 32768
# Message rates (token buckets: a rate per second and a burst; 0 = unlimited; a burst of 0 =
# one second's worth). A request over a rate is answered with error -32005 and
# data.retryAfterMs; a notification over it is dropped; both are counted (reasons
# connection_message_rate, shard_message_rate, session_tool_rate). Over HTTP a POST whose
# every message is refused gets 429 with Retry-After.
# Messages one connection sends (TCP, stdio: each JSON-RPC message; HTTP: each request).
messages_per_connection_per_s = 50000
messages_per_connection_burst = 50000
# Messages one shard takes from all its clients. 0 by default: what a shard can take depends
# on the host and the tools; shard_in_flight_requests_max bounds the work at once.
messages_per_shard_per_s = 0
messages_per_shard_burst = 0
# tools/call requests of one session (not applied to the stateless revision, which has no
# session). 0 by default: what a tool can take depends on the tool.
tool_calls_per_session_per_s = 0
tool_calls_per_session_burst = 0
# Resource subscriptions held by one session.
subscriptions_per_session_max = 1024
# Distinct subscription topics one shard holds.
topics_per_shard_max = 100000
# Elements in one JSON-RPC batch (revision 2025-03-26 only).
batch_messages_max = 64
# Server-to-client requests (sampling, elicitation, roots) one session may have outstanding,
# and how long a tool waits for the client's answer.
client_requests_in_flight_max = 16
client_request_timeout_ms = 60000
# A tool call still running this long after it started, or after its last progress report
# (a handler calling Ctx::progress is working), is cancelled: its handler's cancellation
# fires and the caller gets error -32008 with data.timeoutMs (counted as tool_timeout, and as
# a failure by the circuit breakers). 0 = no timeout.
tool_call_timeout_ms = 60000
# Items per page of tools/list, resources/list, resources/templates/list, prompts/list.
page_size = 100
# Capacity (messages) of each channel of the cross-shard mesh.
mesh_channel_capacity = 1024
# Messages waiting for room in the mesh channel to one shard; past it they are dropped
# (and logged).
mesh_pending_messages_max = 65536

[http]
# Streamable HTTP (and the legacy HTTP+SSE transport) on every shard, SO_REUSEPORT.
# Endpoints: /mcp (default server), /mcp/{server}; legacy: /mcp/{server}/sse + /messages.
enabled = true
listen = "127.0.0.1:8080"
# Request head and body bounds: a larger head gets 431, a larger body 413.
max_head_bytes = 16384
max_body_bytes = 4194304
# A request head that has not fully arrived this long after its first byte gets 408, then
# the connection closes (counted as slow_peer). Before the first byte of a request the
# connection waits limits.idle_timeout_ms, then closes without a word.
header_read_timeout_ms = 10000
# A request body (Content-Length or chunked) that has not fully arrived this long after its
# head gets 408, then the connection closes (counted as slow_peer).
body_read_timeout_ms = 60000
# A response, or a batch of SSE events, that the client has not taken off the socket within
# this long closes the connection (counted as slow_peer; sse_lagging when the stream had
# already fallen exchange_events_max events behind).
write_timeout_ms = 30000
# Comment lines sent on an SSE stream with nothing else to say.
sse_keepalive_ms = 15000
# The `retry` (ms) announced to 2025-11-25 clients in an SSE stream's priming event.
sse_retry_ms = 1000
# Events each SSE stream keeps for clients that resume with Last-Event-ID (a client that
# resumes from an older event misses what was dropped). Less than exchange_events_max.
sse_replay_events_max = 256
# Response streams a session keeps (running ones and the latest finished ones).
streams_per_session_max = 64
# Events queued for one HTTP response that its client has not read yet; past it the
# stream is cut off: once the client takes what was written, it gets a last event
# `event: error` whose data says why and names the last event id it received, and the
# connection closes (counted as sse_lagging). The client resumes with a GET carrying
# Last-Event-ID, from the stream's replay buffer (sse_replay_events_max).
exchange_events_max = 4096
# An HTTP session with no request and no open standalone stream for this long is ended.
session_idle_timeout_ms = 1800000
# DNS-rebinding protection. Empty lists: when listening on loopback only loopback Host
# and Origin names pass (anything else gets 403); otherwise list the names clients use.
allowed_hosts = []
allowed_origins = []
# The stateless revision (2026-07-28) answers a request that needs the client's input
# (elicitation, sampling, roots) with `input_required` and a `requestState` the client
# echoes on its retry. The state is sealed with HMAC-SHA256 under this key (64 to 128 hex
# digits), so any shard, or any node with the same key, can verify it and a tampered or
# foreign state is refused. Empty: a random key is generated at start, which serves one
# process; a deployment of several nodes behind one address must configure the same key
# on every node (e.g. `openssl rand -hex 32`).
request_state_key = ""
# How long a sealed requestState stays valid.
request_state_ttl_ms = 3600000
# How a session-revision POST (2025-03-26 .. 2025-11-25) whose every request admission
# control refused ([limits] rates -32005, the shard's requests in flight -32006, the
# session's requests in flight -32001) is answered. false: 200 OK, the JSON-RPC error of
# each request (its id, data.reason, data.retryAfterMs) as an application/json body, and a
# Retry-After header (seconds); SDK clients treat any other status as a transport failure
# and tear the whole session down, while a JSON-RPC error fails only that one call.
# true: 429 (rates, the session's requests in flight) or 503 (the shard's requests in
# flight) with the same body and Retry-After. A POST of refused notifications only, the
# per-connection message rate, refusals at accept and the stateless revision 2026-07-28
# always answer 429/503.
overload_http_status = false

[admin]
# The admin listener, served by shard 0 only (a plain bind, not spread with SO_REUSEPORT):
# GET /metrics (Prometheus text format 0.0.4), GET /health (the health zones as JSON; 503
# when the process is red) and GET /ready (200 once every shard listens, 503 before and
# once shutdown begins). Anything else gets 404 (unknown path) or 405 (not GET).
# An address held by another process (the old instance during a hand-over) is retried
# every second, with a warning; any other bind error stops the start.
enabled = true
listen = "127.0.0.1:9090"
# Admin connections open at once; past it a new one gets 503 and is closed.
connections_max = 16
# How long GET /metrics waits for every shard's latency histogram (they come over the
# mesh); a shard that has not answered by then is left out of the latency summary, and
# ringmcp_latency_shards_merged says how many were merged.
snapshot_timeout_ms = 1000

[zones]
# Health zones: green, yellow, orange, red. Every shard evaluates itself each interval_ms
# over that interval; its zone is the worst of the zones of its error ratio, p95 latency,
# connections and queued messages. The process zone is the worst shard's, or that of the
# process's resident memory if worse. Every transition is logged (warn when worse, info
# when better); GET /health shows the zones and the figures that decided them and
# answers 503 while the process is red (a load balancer stops sending new clients);
# nothing is refused because of a zone.
interval_ms = 1000
# Each list holds the bounds where yellow, orange and red begin: a figure at or above
# the first bound is yellow, the second orange, the third red, below the first green.
# Error answers per answered request in the interval (0.05 %, 0.1 %, 1 %).
error_ratio = [0.0005, 0.001, 0.01]
# An interval with fewer answered requests than this is not judged on its error ratio
# (too few answers to be a ratio).
error_ratio_min_responses = 100
# p95 latency of the requests answered in the interval (arrival at the session to the
# answer queued), ms.
latency_p95_ms = [100, 500, 2000]
# Open connections of a shard as a share of limits.connections_per_shard_max.
connections_ratio = [0.7, 0.85, 0.95]
# Messages queued on a shard: outbound queues, HTTP responses not yet written, mesh.
queue_depth = [10000, 50000, 250000]
# Resident memory of the process (judged for the process, not per shard), bytes:
# 8, 12 and 16 GiB.
memory_bytes = [8589934592, 12884901888, 17179869184]

[breaker]
# Circuit breakers: one per hosted server and one per tool, on every shard. Each shard's
# breakers see only that shard's calls and trip on their own (no shared state between
# cores; a tool that fails does so on every shard, so each trips within a few calls).
# A failure is a tools/call whose handler returned a JSON-RPC error (other than one that
# blames the caller: -32600, -32602, -32003, -32021, -32004), panicked, or ran past
# limits.tool_call_timeout_ms. A tool result with isError: true is the tool's answer, not a
# failure. While a breaker is open, calls are answered at once with -32007 and
# data.retryAfterMs (counted as circuit_open).
enabled = true
# The sliding window (kept as ten buckets) over which the error ratio is taken.
window_ms = 30000
# Calls the window must hold before a breaker may open.
min_calls = 20
# The failed share of those calls that opens the breaker (more than 0, at most 1).
error_ratio = 0.5
# How long an open breaker refuses calls before it half-opens.
open_ms = 5000
# Calls a half-open breaker lets through; one failing reopens it, all succeeding close it.
# Other calls meanwhile get -32007.
half_open_probes = 3
"#;

/// Why a configuration was refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// File path.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// TOML syntax error, unknown key or wrong type; the message names the key.
    #[error("invalid config: {0}")]
    Parse(String),
    /// A value out of its allowed range.
    #[error("invalid config: {key}: {reason}")]
    Invalid {
        /// Dotted key, e.g. `limits.page_size`.
        key: &'static str,
        /// What is wrong.
        reason: String,
    },
}

/// The whole configuration.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// `[server]`
    pub server: ServerSection,
    /// `[tcp]`
    pub tcp: TcpSection,
    /// `[limits]`
    pub limits: Limits,
    /// `[http]`
    pub http: HttpSection,
    /// `[admin]`
    pub admin: AdminSection,
    /// `[zones]`
    pub zones: ZonesSection,
    /// `[breaker]`
    pub breaker: BreakerSection,
}

/// `[breaker]`: see [`DEFAULT_TOML`] for what each key means.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
#[allow(missing_docs)]
pub struct BreakerSection {
    pub enabled: bool,
    pub window_ms: u64,
    pub min_calls: u32,
    pub error_ratio: f64,
    pub open_ms: u64,
    pub half_open_probes: u32,
}

impl Default for BreakerSection {
    fn default() -> Self {
        BreakerSection {
            enabled: true,
            window_ms: 30_000,
            min_calls: 20,
            error_ratio: 0.5,
            open_ms: 5000,
            half_open_probes: 3,
        }
    }
}

impl BreakerSection {
    /// The breakers' settings; `None` when they are disabled.
    pub fn settings(&self) -> Option<crate::breaker::BreakerConfig> {
        self.enabled.then(|| crate::breaker::BreakerConfig {
            window: std::time::Duration::from_millis(self.window_ms),
            min_calls: self.min_calls,
            error_ratio: self.error_ratio,
            open: std::time::Duration::from_millis(self.open_ms),
            half_open_probes: self.half_open_probes,
        })
    }
}

/// `[admin]`: see [`DEFAULT_TOML`] for what each key means.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
#[allow(missing_docs)]
pub struct AdminSection {
    pub enabled: bool,
    pub listen: SocketAddr,
    pub connections_max: usize,
    pub snapshot_timeout_ms: u64,
}

impl Default for AdminSection {
    fn default() -> Self {
        AdminSection {
            enabled: true,
            listen: SocketAddr::from(([127, 0, 0, 1], 9090)),
            connections_max: 16,
            snapshot_timeout_ms: 1000,
        }
    }
}

/// `[zones]`: see [`DEFAULT_TOML`] for what each key means; [`crate::zones`] evaluates
/// them. Each list holds the bounds where yellow, orange and red begin.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
#[allow(missing_docs)]
pub struct ZonesSection {
    pub interval_ms: u64,
    pub error_ratio: [f64; 3],
    pub error_ratio_min_responses: u64,
    pub latency_p95_ms: [u64; 3],
    pub connections_ratio: [f64; 3],
    pub queue_depth: [u64; 3],
    pub memory_bytes: [u64; 3],
}

impl Default for ZonesSection {
    fn default() -> Self {
        ZonesSection {
            interval_ms: 1000,
            error_ratio: [0.0005, 0.001, 0.01],
            error_ratio_min_responses: 100,
            latency_p95_ms: [100, 500, 2000],
            connections_ratio: [0.7, 0.85, 0.95],
            queue_depth: [10_000, 50_000, 250_000],
            memory_bytes: [8 << 30, 12 << 30, 16 << 30],
        }
    }
}

impl ZonesSection {
    fn validate(&self) -> Result<(), ConfigError> {
        fn ascending<T: PartialOrd + Copy + std::fmt::Debug>(
            key: &'static str,
            b: &[T; 3],
            low: T,
            high: Option<T>,
        ) -> Result<(), ConfigError> {
            let in_range = b.iter().all(|v| *v > low && high.is_none_or(|h| *v <= h));
            if !(in_range && b[0] <= b[1] && b[1] <= b[2]) {
                let range = match high {
                    Some(h) => format!("more than {low:?} and at most {h:?}"),
                    None => format!("more than {low:?}"),
                };
                return Err(ConfigError::Invalid {
                    key,
                    reason: format!(
                        "the bounds where yellow, orange and red begin must be ascending and each {range}, got {b:?}"
                    ),
                });
            }
            Ok(())
        }
        if !(10..=3_600_000).contains(&self.interval_ms) {
            return Err(ConfigError::Invalid {
                key: "zones.interval_ms",
                reason: "must be at least 10 and at most 3600000 (an hour)".into(),
            });
        }
        ascending("zones.error_ratio", &self.error_ratio, 0.0, Some(1.0))?;
        ascending(
            "zones.latency_p95_ms",
            &self.latency_p95_ms,
            0,
            Some(MS_MAX),
        )?;
        ascending(
            "zones.connections_ratio",
            &self.connections_ratio,
            0.0,
            Some(1.0),
        )?;
        ascending("zones.queue_depth", &self.queue_depth, 0, None)?;
        ascending("zones.memory_bytes", &self.memory_bytes, 0, None)?;
        Ok(())
    }
}

/// `[http]`: see [`DEFAULT_TOML`] for what each key means.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
#[allow(missing_docs)]
pub struct HttpSection {
    pub enabled: bool,
    pub listen: SocketAddr,
    pub max_head_bytes: usize,
    pub max_body_bytes: usize,
    pub header_read_timeout_ms: u64,
    pub body_read_timeout_ms: u64,
    pub write_timeout_ms: u64,
    pub sse_keepalive_ms: u64,
    pub sse_retry_ms: u64,
    pub sse_replay_events_max: usize,
    pub streams_per_session_max: usize,
    pub exchange_events_max: usize,
    pub session_idle_timeout_ms: u64,
    pub allowed_hosts: Vec<String>,
    pub allowed_origins: Vec<String>,
    pub request_state_key: String,
    pub request_state_ttl_ms: u64,
    pub overload_http_status: bool,
}

impl Default for HttpSection {
    fn default() -> Self {
        HttpSection {
            enabled: true,
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            max_head_bytes: 16 << 10,
            max_body_bytes: 4 << 20,
            header_read_timeout_ms: 10_000,
            body_read_timeout_ms: 60_000,
            write_timeout_ms: 30_000,
            sse_keepalive_ms: 15_000,
            sse_retry_ms: 1000,
            sse_replay_events_max: 256,
            streams_per_session_max: 64,
            exchange_events_max: 4096,
            session_idle_timeout_ms: 1_800_000,
            allowed_hosts: Vec::new(),
            allowed_origins: Vec::new(),
            request_state_key: String::new(),
            request_state_ttl_ms: 3_600_000,
            overload_http_status: false,
        }
    }
}

/// `[server]`
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerSection {
    /// Shards; 0 = online cores.
    pub shards: usize,
    /// Hosted built-in servers.
    pub servers: Vec<String>,
    /// Server for TCP/stdio clients.
    pub default_server: String,
    /// Log level.
    pub log_level: String,
    /// Shutdown grace period.
    pub shutdown_grace_ms: u64,
    /// Concurrent connections the host must be able to hold (checked at start).
    pub connections_target: usize,
}

/// `[tcp]`
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TcpSection {
    /// Whether the TCP listener runs.
    pub enabled: bool,
    /// Listen address (serves `server.default_server`).
    pub listen: SocketAddr,
    /// Extra listeners: server name -> address.
    pub listeners: std::collections::BTreeMap<String, SocketAddr>,
    /// How long a connection may take nothing of what is written to it.
    pub write_timeout_ms: u64,
}

/// `[limits]`: every bound of the server; see [`DEFAULT_TOML`] for what each means.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
#[allow(missing_docs)]
pub struct Limits {
    pub max_message_bytes: usize,
    pub idle_timeout_ms: u64,
    pub message_read_timeout_ms: u64,
    pub connections_per_shard_max: usize,
    pub connections_per_source_max: usize,
    pub accept_rate_per_shard: u64,
    pub accept_burst_per_shard: u64,
    pub sessions_per_shard_max: usize,
    pub outbound_queue_messages_max: usize,
    pub outbound_queue_bytes_max: usize,
    pub session_in_flight_requests_max: usize,
    pub shard_in_flight_requests_max: usize,
    pub messages_per_connection_per_s: u64,
    pub messages_per_connection_burst: u64,
    pub messages_per_shard_per_s: u64,
    pub messages_per_shard_burst: u64,
    pub tool_calls_per_session_per_s: u64,
    pub tool_calls_per_session_burst: u64,
    pub subscriptions_per_session_max: usize,
    pub topics_per_shard_max: usize,
    pub batch_messages_max: usize,
    pub client_requests_in_flight_max: usize,
    pub client_request_timeout_ms: u64,
    pub tool_call_timeout_ms: u64,
    pub page_size: usize,
    pub mesh_channel_capacity: usize,
    pub mesh_pending_messages_max: usize,
}

impl Default for ServerSection {
    fn default() -> Self {
        ServerSection {
            shards: 0,
            servers: vec!["demo".into(), "conformance".into()],
            default_server: "demo".into(),
            log_level: "info".into(),
            shutdown_grace_ms: 5000,
            connections_target: 10_000,
        }
    }
}

impl Default for TcpSection {
    fn default() -> Self {
        TcpSection {
            enabled: true,
            listen: SocketAddr::from(([127, 0, 0, 1], 7070)),
            listeners: Default::default(),
            write_timeout_ms: 30_000,
        }
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_message_bytes: 4 << 20,
            idle_timeout_ms: 300_000,
            message_read_timeout_ms: 60_000,
            connections_per_shard_max: 50_000,
            connections_per_source_max: 0,
            accept_rate_per_shard: 10_000,
            accept_burst_per_shard: 10_000,
            sessions_per_shard_max: 100_000,
            outbound_queue_messages_max: 1024,
            outbound_queue_bytes_max: 8 << 20,
            session_in_flight_requests_max: 256,
            shard_in_flight_requests_max: 32_768,
            messages_per_connection_per_s: 50_000,
            messages_per_connection_burst: 50_000,
            messages_per_shard_per_s: 0,
            messages_per_shard_burst: 0,
            tool_calls_per_session_per_s: 0,
            tool_calls_per_session_burst: 0,
            subscriptions_per_session_max: 1024,
            topics_per_shard_max: 100_000,
            batch_messages_max: 64,
            client_requests_in_flight_max: 16,
            client_request_timeout_ms: 60_000,
            tool_call_timeout_ms: 60_000,
            page_size: 100,
            mesh_channel_capacity: 1024,
            mesh_pending_messages_max: 65_536,
        }
    }
}

/// The longest duration a timeout key accepts (a year, in ms): timeouts are added to the
/// clock, which must not overflow.
pub const MS_MAX: u64 = 365 * 86_400_000;

/// Names of the built-in servers.
pub const BUILTIN_SERVERS: &[&str] = &["demo", "conformance"];

impl Config {
    /// Parses and validates TOML text.
    pub fn from_toml(text: &str) -> Result<Config, ConfigError> {
        let cfg: Config = toml::from_str(text).map_err(|e| ConfigError::Parse(e.to_string()))?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Reads, parses and validates a file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::from_toml(&text)
    }

    /// Checks ranges and cross-field rules.
    pub fn validate(&self) -> Result<(), ConfigError> {
        fn positive(key: &'static str, v: usize) -> Result<(), ConfigError> {
            if v == 0 {
                return Err(ConfigError::Invalid {
                    key,
                    reason: "must be at least 1".into(),
                });
            }
            Ok(())
        }
        /// A duration in ms: at least 1, and small enough to add to an `Instant` (a year).
        fn positive_ms(key: &'static str, v: u64) -> Result<(), ConfigError> {
            if v == 0 || v > MS_MAX {
                return Err(ConfigError::Invalid {
                    key,
                    reason: format!("must be at least 1 and at most {MS_MAX} (a year)"),
                });
            }
            Ok(())
        }
        if self.limits.message_read_timeout_ms > MS_MAX || self.limits.tool_call_timeout_ms > MS_MAX
        {
            return Err(ConfigError::Invalid {
                key: "limits",
                reason: format!(
                    "message_read_timeout_ms and tool_call_timeout_ms must be at most {MS_MAX} (a year; 0 disables them)"
                ),
            });
        }
        let l = &self.limits;
        positive("limits.max_message_bytes", l.max_message_bytes)?;
        positive(
            "limits.connections_per_shard_max",
            l.connections_per_shard_max,
        )?;
        positive("limits.sessions_per_shard_max", l.sessions_per_shard_max)?;
        positive(
            "limits.outbound_queue_messages_max",
            l.outbound_queue_messages_max,
        )?;
        positive(
            "limits.outbound_queue_bytes_max",
            l.outbound_queue_bytes_max,
        )?;
        positive(
            "limits.session_in_flight_requests_max",
            l.session_in_flight_requests_max,
        )?;
        positive("limits.batch_messages_max", l.batch_messages_max)?;
        positive("limits.page_size", l.page_size)?;
        positive("limits.mesh_channel_capacity", l.mesh_channel_capacity)?;
        positive(
            "limits.mesh_pending_messages_max",
            l.mesh_pending_messages_max,
        )?;
        positive(
            "limits.shard_in_flight_requests_max",
            l.shard_in_flight_requests_max,
        )?;
        // Rates and bursts: 0 means unlimited (a rate) or one second's worth (a burst).
        for (key, v) in [
            ("limits.accept_rate_per_shard", l.accept_rate_per_shard),
            ("limits.accept_burst_per_shard", l.accept_burst_per_shard),
            (
                "limits.messages_per_connection_per_s",
                l.messages_per_connection_per_s,
            ),
            (
                "limits.messages_per_connection_burst",
                l.messages_per_connection_burst,
            ),
            (
                "limits.messages_per_shard_per_s",
                l.messages_per_shard_per_s,
            ),
            (
                "limits.messages_per_shard_burst",
                l.messages_per_shard_burst,
            ),
            (
                "limits.tool_calls_per_session_per_s",
                l.tool_calls_per_session_per_s,
            ),
            (
                "limits.tool_calls_per_session_burst",
                l.tool_calls_per_session_burst,
            ),
        ] {
            if v > crate::limits::RATE_PER_S_MAX {
                return Err(ConfigError::Invalid {
                    key,
                    reason: format!("must be at most {}", crate::limits::RATE_PER_S_MAX),
                });
            }
        }
        positive_ms("tcp.write_timeout_ms", self.tcp.write_timeout_ms)?;
        let h = &self.http;
        positive("http.max_head_bytes", h.max_head_bytes)?;
        positive("http.max_body_bytes", h.max_body_bytes)?;
        positive("http.sse_replay_events_max", h.sse_replay_events_max)?;
        positive("http.streams_per_session_max", h.streams_per_session_max)?;
        positive("http.exchange_events_max", h.exchange_events_max)?;
        if h.header_read_timeout_ms == 0
            || h.sse_keepalive_ms == 0
            || h.session_idle_timeout_ms == 0
        {
            return Err(ConfigError::Invalid {
                key: "http",
                reason: "header_read_timeout_ms, sse_keepalive_ms and session_idle_timeout_ms must be at least 1".into(),
            });
        }
        positive_ms("http.body_read_timeout_ms", h.body_read_timeout_ms)?;
        if h.exchange_events_max <= h.sse_replay_events_max {
            return Err(ConfigError::Invalid {
                key: "http.exchange_events_max",
                reason: format!(
                    "must be more than http.sse_replay_events_max ({}): a client resuming with Last-Event-ID is sent up to that many events at once",
                    h.sse_replay_events_max
                ),
            });
        }
        positive_ms("http.write_timeout_ms", h.write_timeout_ms)?;
        let b = &self.breaker;
        if b.window_ms < crate::breaker::BUCKETS as u64 {
            return Err(ConfigError::Invalid {
                key: "breaker.window_ms",
                reason: format!(
                    "must be at least {} (the window is kept as that many buckets of at least 1 ms)",
                    crate::breaker::BUCKETS
                ),
            });
        }
        positive("breaker.min_calls", b.min_calls as usize)?;
        if !(b.error_ratio > 0.0 && b.error_ratio <= 1.0) {
            return Err(ConfigError::Invalid {
                key: "breaker.error_ratio",
                reason: format!("must be more than 0 and at most 1, got {}", b.error_ratio),
            });
        }
        positive_ms("breaker.open_ms", b.open_ms)?;
        positive("breaker.half_open_probes", b.half_open_probes as usize)?;
        if !h.request_state_key.is_empty() {
            crate::mcp::request_state::StateKey::from_hex(&h.request_state_key).map_err(
                |reason| ConfigError::Invalid {
                    key: "http.request_state_key",
                    reason,
                },
            )?;
        }
        if h.request_state_ttl_ms == 0 {
            return Err(ConfigError::Invalid {
                key: "http.request_state_ttl_ms",
                reason: "must be at least 1".into(),
            });
        }
        if h.enabled
            && self.tcp.enabled
            && h.listen.port() != 0
            && (h.listen == self.tcp.listen || self.tcp.listeners.values().any(|a| *a == h.listen))
        {
            return Err(ConfigError::Invalid {
                key: "http.listen",
                reason: format!("{} is also a TCP listener", h.listen),
            });
        }
        positive("limits.topics_per_shard_max", l.topics_per_shard_max)?;
        if l.max_message_bytes > 1 << 30 {
            return Err(ConfigError::Invalid {
                key: "limits.max_message_bytes",
                reason: "must be at most 1073741824 (1 GiB)".into(),
            });
        }
        if l.outbound_queue_bytes_max < l.max_message_bytes {
            return Err(ConfigError::Invalid {
                key: "limits.outbound_queue_bytes_max",
                reason: format!(
                    "must be at least limits.max_message_bytes ({}) so one reply always fits",
                    l.max_message_bytes
                ),
            });
        }
        if l.client_request_timeout_ms == 0 {
            return Err(ConfigError::Invalid {
                key: "limits.client_request_timeout_ms",
                reason: "must be at least 1".into(),
            });
        }
        self.zones.validate()?;
        let a = &self.admin;
        positive("admin.connections_max", a.connections_max)?;
        if a.snapshot_timeout_ms == 0 || a.snapshot_timeout_ms > 60_000 {
            return Err(ConfigError::Invalid {
                key: "admin.snapshot_timeout_ms",
                reason: "must be at least 1 and at most 60000".into(),
            });
        }
        if a.enabled && a.listen.port() != 0 {
            let taken = (self.tcp.enabled
                && (a.listen == self.tcp.listen
                    || self.tcp.listeners.values().any(|l| *l == a.listen)))
                || (h.enabled && a.listen == h.listen);
            if taken {
                return Err(ConfigError::Invalid {
                    key: "admin.listen",
                    reason: format!("{} is also an MCP listener", a.listen),
                });
            }
        }
        if self.server.servers.is_empty() {
            return Err(ConfigError::Invalid {
                key: "server.servers",
                reason: "host at least one server".into(),
            });
        }
        for s in &self.server.servers {
            if !BUILTIN_SERVERS.contains(&s.as_str()) {
                return Err(ConfigError::Invalid {
                    key: "server.servers",
                    reason: format!(
                        "unknown server {s:?}; built-in servers are {}",
                        BUILTIN_SERVERS.join(", ")
                    ),
                });
            }
        }
        if !self.server.servers.contains(&self.server.default_server) {
            return Err(ConfigError::Invalid {
                key: "server.default_server",
                reason: format!(
                    "{:?} is not one of server.servers ({})",
                    self.server.default_server,
                    self.server.servers.join(", ")
                ),
            });
        }
        for (server, addr) in &self.tcp.listeners {
            if !self.server.servers.contains(server) {
                return Err(ConfigError::Invalid {
                    key: "tcp.listeners",
                    reason: format!("{server:?} is not one of server.servers"),
                });
            }
            if *addr == self.tcp.listen
                || self
                    .tcp
                    .listeners
                    .iter()
                    .any(|(s, a)| a == addr && s != server)
            {
                return Err(ConfigError::Invalid {
                    key: "tcp.listeners",
                    reason: format!("{addr} is used by more than one listener"),
                });
            }
        }
        if !["error", "warn", "info", "debug", "trace"].contains(&self.server.log_level.as_str()) {
            return Err(ConfigError::Invalid {
                key: "server.log_level",
                reason: format!(
                    "{:?} is not one of error, warn, info, debug, trace",
                    self.server.log_level
                ),
            });
        }
        Ok(())
    }

    /// Fills an empty `http.request_state_key` with a random key. Called once before the
    /// shards start, so that every shard of the process seals and opens request states
    /// with the same key. Returns whether a key was generated.
    pub fn ensure_request_state_key(&mut self) -> Result<bool, ConfigError> {
        if !self.http.request_state_key.is_empty() {
            return Ok(false);
        }
        let key = crate::mcp::request_state::StateKey::generate().map_err(|reason| {
            ConfigError::Invalid {
                key: "http.request_state_key",
                reason,
            }
        })?;
        self.http.request_state_key = key.to_hex();
        Ok(true)
    }

    /// The key that seals `requestState` (see [`Config::ensure_request_state_key`]).
    pub fn request_state_key(&self) -> Result<crate::mcp::request_state::StateKey, ConfigError> {
        crate::mcp::request_state::StateKey::from_hex(&self.http.request_state_key).map_err(
            |reason| ConfigError::Invalid {
                key: "http.request_state_key",
                reason,
            },
        )
    }

    /// The number of shards to start: the configured count, or the online cores for 0.
    pub fn effective_shards(&self) -> usize {
        if self.server.shards > 0 {
            self.server.shards
        } else {
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_file_is_the_default_config() {
        assert_eq!(Config::from_toml(DEFAULT_TOML).unwrap(), Config::default());
        assert_eq!(Config::from_toml("").unwrap(), Config::default());
    }

    #[test]
    fn unknown_key_is_named() {
        let e = Config::from_toml("[limits]\nmax_mesage_bytes = 3\n").unwrap_err();
        assert!(e.to_string().contains("max_mesage_bytes"), "{e}");
    }

    #[test]
    fn wrong_type_is_named() {
        let e = Config::from_toml("[limits]\npage_size = \"ten\"\n").unwrap_err();
        assert!(e.to_string().contains("page_size"), "{e}");
    }

    #[test]
    fn request_state_key() {
        let e = Config::from_toml("[http]\nrequest_state_key = \"abcd\"\n").unwrap_err();
        assert!(e.to_string().contains("http.request_state_key"), "{e}");
        let hex = "ab".repeat(32);
        let cfg = Config::from_toml(&format!("[http]\nrequest_state_key = \"{hex}\"\n")).unwrap();
        assert!(cfg.request_state_key().is_ok());
        let mut cfg = Config::default();
        assert!(cfg.request_state_key().is_err());
        assert!(cfg.ensure_request_state_key().unwrap());
        let generated = cfg.http.request_state_key.clone();
        assert!(cfg.request_state_key().is_ok());
        assert!(!cfg.ensure_request_state_key().unwrap());
        assert_eq!(cfg.http.request_state_key, generated);
        cfg.validate().unwrap();
    }

    #[test]
    fn zone_bounds_and_admin_are_checked() {
        for (toml, key) in [
            (
                "[zones]\nerror_ratio = [0.1, 0.01, 0.5]\n",
                "zones.error_ratio",
            ),
            (
                "[zones]\nerror_ratio = [0.1, 0.2, 1.5]\n",
                "zones.error_ratio",
            ),
            (
                "[zones]\nconnections_ratio = [0, 0.5, 0.9]\n",
                "zones.connections_ratio",
            ),
            ("[zones]\nqueue_depth = [10, 5, 20]\n", "zones.queue_depth"),
            (
                "[zones]\nlatency_p95_ms = [0, 1, 2]\n",
                "zones.latency_p95_ms",
            ),
            ("[zones]\nmemory_bytes = [3, 2, 1]\n", "zones.memory_bytes"),
            ("[zones]\ninterval_ms = 0\n", "zones.interval_ms"),
            ("[admin]\nconnections_max = 0\n", "admin.connections_max"),
            (
                "[admin]\nsnapshot_timeout_ms = 0\n",
                "admin.snapshot_timeout_ms",
            ),
            ("[admin]\nlisten = \"127.0.0.1:8080\"\n", "admin.listen"),
            ("[admin]\nlisten = \"127.0.0.1:7070\"\n", "admin.listen"),
        ] {
            let e = Config::from_toml(toml).unwrap_err();
            assert!(e.to_string().contains(key), "{toml}: {e}");
        }
        // Equal bounds skip a zone; a disabled admin listener may share nothing.
        Config::from_toml("[zones]\nerror_ratio = [0.5, 0.5, 1]\n").unwrap();
        Config::from_toml("[admin]\nenabled = false\nlisten = \"127.0.0.1:8080\"\n").unwrap();
    }

    #[test]
    fn breaker_and_timeout_keys_are_range_checked() {
        for (toml, key) in [
            ("[breaker]\nwindow_ms = 9\n", "breaker.window_ms"),
            ("[breaker]\nmin_calls = 0\n", "breaker.min_calls"),
            ("[breaker]\nerror_ratio = 0.0\n", "breaker.error_ratio"),
            ("[breaker]\nerror_ratio = 1.5\n", "breaker.error_ratio"),
            ("[breaker]\nerror_ratio = nan\n", "breaker.error_ratio"),
            ("[breaker]\nopen_ms = 0\n", "breaker.open_ms"),
            (
                "[breaker]\nhalf_open_probes = 0\n",
                "breaker.half_open_probes",
            ),
            (
                "[http]\nbody_read_timeout_ms = 0\n",
                "http.body_read_timeout_ms",
            ),
            ("[http]\nwrite_timeout_ms = 0\n", "http.write_timeout_ms"),
            (
                "[http]\nexchange_events_max = 256\nsse_replay_events_max = 256\n",
                "http.exchange_events_max",
            ),
            (
                "[limits]\ntool_call_timeout_ms = 99999999999\n",
                "tool_call_timeout_ms",
            ),
            (
                "[limits]\nmessage_read_timeout_ms = 99999999999\n",
                "message_read_timeout_ms",
            ),
        ] {
            let e = Config::from_toml(toml).unwrap_err();
            assert!(e.to_string().contains(key), "{toml}: {e}");
        }
        let cfg = Config::from_toml(
            "[breaker]\nenabled = false\n[limits]\ntool_call_timeout_ms = 0\nmessage_read_timeout_ms = 0\n",
        )
        .unwrap();
        assert_eq!(cfg.breaker.settings(), None);
        let b = Config::default().breaker.settings().unwrap();
        assert_eq!((b.min_calls, b.half_open_probes), (20, 3));
        assert_eq!(b.error_ratio, 0.5);
    }

    #[test]
    fn range_errors_name_the_key() {
        let e = Config::from_toml("[limits]\npage_size = 0\n").unwrap_err();
        assert!(e.to_string().contains("limits.page_size"), "{e}");
        let e = Config::from_toml("[server]\ndefault_server = \"nope\"\n").unwrap_err();
        assert!(e.to_string().contains("server.default_server"), "{e}");
        let e = Config::from_toml("[server]\nservers = [\"x\"]\n").unwrap_err();
        assert!(e.to_string().contains("server.servers"), "{e}");
    }

    #[test]
    fn admission_keys_are_range_checked() {
        for (text, key) in [
            (
                "[limits]\nshard_in_flight_requests_max = 0\n",
                "limits.shard_in_flight_requests_max",
            ),
            (
                "[limits]\nmessages_per_shard_per_s = 1000000001\n",
                "limits.messages_per_shard_per_s",
            ),
            (
                "[limits]\naccept_burst_per_shard = 1000000001\n",
                "limits.accept_burst_per_shard",
            ),
            ("[tcp]\nwrite_timeout_ms = 0\n", "tcp.write_timeout_ms"),
        ] {
            let e = Config::from_toml(text).unwrap_err();
            assert!(e.to_string().contains(key), "{e}");
        }
        // 0 turns a rate off; the per-source cap may be off too.
        let cfg = Config::from_toml(
            "[limits]\naccept_rate_per_shard = 0\nmessages_per_connection_per_s = 0\nconnections_per_source_max = 0\n",
        )
        .unwrap();
        assert_eq!(cfg.limits.accept_rate_per_shard, 0);
    }
}
