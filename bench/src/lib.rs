//! `ringmcp-bench`: the load generator behind `ringmcp-load`, usable in-process by the
//! benchmark scenarios.
//!
//! An honest generator for MCP servers: raw io_uring (one ring per pinned worker
//! thread, multishot receives into provided buffers, batched submissions, no async
//! runtime), closed loop or open loop with latency measured from each request's
//! *intended* send time (no coordinated omission), HdrHistogram percentiles, connections
//! spread over threads, processes and source addresses, and the server's CPU time per
//! OK response read from /proc.
//!
//! ```no_run
//! use ringmcp_bench::{run, RunConfig, Target};
//! let cfg = RunConfig {
//!     target: Target::parse("http://127.0.0.1:8080/mcp").unwrap(),
//!     connections: 25,
//!     rate: Some(2_500.0),
//!     duration_ms: 10_000,
//!     ..RunConfig::default()
//! };
//! let report = run(&cfg).unwrap();
//! println!("{}", report.render());
//! ```
//!
//! Modules, from the bottom up: [`clock`], [`config`], [`schedule`] (the run's timeline
//! and open-loop arithmetic), [`request`] (what is sent), [`http`] and [`jsonrpc`] (what
//! is read), [`stats`] and [`hgrm`] (what is counted), [`engine`] (the io_uring worker),
//! [`run`] (threads, processes, monitoring), [`fanout`] (subscribe mode's trigger and
//! fan-out figures), [`report`], [`sys`] (/proc and limits).
//! [`peers`] starts the servers measured side by side; [`scenarios`] runs the seed's
//! scenarios against a ringmcp it starts, and writes the results report; [`plot`] draws
//! its SVG plots.

pub mod clock;
pub mod config;
pub mod engine;
pub mod fanout;
pub mod hgrm;
pub mod http;
pub mod jsonrpc;
pub mod peers;
pub mod plot;
pub mod report;
pub mod request;
pub mod run;
pub mod scenarios;
pub mod schedule;
pub mod stats;
pub mod sys;

pub use config::{RunConfig, Step, Target, Transport};
pub use report::RunReport;
pub use run::{run, worker_main, BenchError};
