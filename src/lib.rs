//! ringmcp: a thread-per-core Model Context Protocol server host on io_uring.
//!
//! Layers, from the wire inwards:
//! - [`runtime`]: the shard pool (one glommio executor pinned per core), listeners bound
//!   with SO_REUSEPORT, the channel mesh, shutdown.
//! - [`transport`]: newline-delimited JSON-RPC over TCP, and stdio.
//! - [`mcp`] and [`jsonrpc`]: the sans-I/O protocol core.
//! - [`server`]: the Rust API to define MCP servers; [`builtin`] holds the `demo` and
//!   `conformance` servers.
//! - [`breaker`]: the circuit breakers of hosted servers and tools (sans-I/O).
//! - [`config`]: the TOML configuration and its limits.
//! - [`limits`]: admission control (token buckets, connection caps, in-flight bounds) and
//!   the overload answers peers get (sans-I/O).
//! - [`hostcheck`]: whether the host can hold the configured connections (`check-host`).
//! - [`systemd`]: readiness, status and watchdog notifications to systemd.
//! - [`metrics`], [`zones`] and [`admin`]: per-shard counters and latency histograms, health
//!   zones, and the admin listener that serves `/metrics`, `/health` and `/ready`.

#![warn(missing_docs)]

pub mod admin;
pub mod breaker;
pub mod builtin;
pub mod config;
pub mod hostcheck;
pub mod jsonrpc;
pub mod limits;
pub mod mcp;
pub mod metrics;
pub mod rt;
pub mod runtime;
pub mod schema;
pub mod server;
pub mod systemd;
pub mod transport;
pub mod zones;
