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
# Connections one shard holds at once; beyond it new connections are refused with an error.
connections_per_shard_max = 50000
# Sessions one shard's registry partition holds.
sessions_per_shard_max = 100000
# Messages and bytes queued for one connection's writer. A connection whose client does not
# read and whose queue fills is closed with an error (responses are throttled first by
# pausing reads from that connection).
outbound_queue_messages_max = 1024
outbound_queue_bytes_max = 8388608
# Requests of one session being handled at once; more are answered with error -32001.
session_in_flight_requests_max = 256
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
# A request head that has not fully arrived this long after its first byte gets 408.
header_read_timeout_ms = 10000
# Comment lines sent on an SSE stream with nothing else to say.
sse_keepalive_ms = 15000
# The `retry` (ms) announced to 2025-11-25 clients in an SSE stream's priming event.
sse_retry_ms = 1000
# Events each SSE stream keeps for clients that resume with Last-Event-ID.
sse_replay_events_max = 256
# Response streams a session keeps (running ones and the latest finished ones).
streams_per_session_max = 64
# Events queued for one HTTP response that its client has not read yet; past it the
# response is closed.
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
}

impl Default for HttpSection {
    fn default() -> Self {
        HttpSection {
            enabled: true,
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            max_head_bytes: 16 << 10,
            max_body_bytes: 4 << 20,
            header_read_timeout_ms: 10_000,
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
}

/// `[limits]`: every bound of the server; see [`DEFAULT_TOML`] for what each means.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
#[allow(missing_docs)]
pub struct Limits {
    pub max_message_bytes: usize,
    pub idle_timeout_ms: u64,
    pub connections_per_shard_max: usize,
    pub sessions_per_shard_max: usize,
    pub outbound_queue_messages_max: usize,
    pub outbound_queue_bytes_max: usize,
    pub session_in_flight_requests_max: usize,
    pub subscriptions_per_session_max: usize,
    pub topics_per_shard_max: usize,
    pub batch_messages_max: usize,
    pub client_requests_in_flight_max: usize,
    pub client_request_timeout_ms: u64,
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
        }
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_message_bytes: 4 << 20,
            idle_timeout_ms: 300_000,
            connections_per_shard_max: 50_000,
            sessions_per_shard_max: 100_000,
            outbound_queue_messages_max: 1024,
            outbound_queue_bytes_max: 8 << 20,
            session_in_flight_requests_max: 256,
            subscriptions_per_session_max: 1024,
            topics_per_shard_max: 100_000,
            batch_messages_max: 64,
            client_requests_in_flight_max: 16,
            client_request_timeout_ms: 60_000,
            page_size: 100,
            mesh_channel_capacity: 1024,
            mesh_pending_messages_max: 65_536,
        }
    }
}

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
    fn range_errors_name_the_key() {
        let e = Config::from_toml("[limits]\npage_size = 0\n").unwrap_err();
        assert!(e.to_string().contains("limits.page_size"), "{e}");
        let e = Config::from_toml("[server]\ndefault_server = \"nope\"\n").unwrap_err();
        assert!(e.to_string().contains("server.default_server"), "{e}");
        let e = Config::from_toml("[server]\nservers = [\"x\"]\n").unwrap_err();
        assert!(e.to_string().contains("server.servers"), "{e}");
    }
}
