//! Process metrics: per-shard counters written only by their shard (each on its own cache
//! line, relaxed atomics, so no lock and no false sharing) and read by whoever renders them.
//!
//! [`Metrics`] is created once per process before the shards start and shared (`Arc`); each
//! shard writes its own [`ShardMetrics`] (`Metrics::shard(index)`).

use crossbeam_utils::CachePadded;
use std::sync::atomic::{AtomicU64, Ordering};

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

/// A counter on its own cache line.
#[derive(Default, Debug)]
pub struct Counter(CachePadded<AtomicU64>);

impl Counter {
    /// Adds `n` (only the owning shard writes).
    #[inline]
    pub fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
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

/// One shard's counters.
#[derive(Default, Debug)]
pub struct ShardMetrics {
    /// Refusals by [`Reject`] reason (index = `reason as usize`).
    pub rejections: [Counter; Reject::ALL.len()],
}

impl ShardMetrics {
    /// Counts one refusal.
    #[inline]
    pub fn reject(&self, why: Reject) {
        self.rejections[why as usize].inc();
    }
}

/// Every shard's metrics.
#[derive(Debug)]
pub struct Metrics {
    shards: Vec<ShardMetrics>,
}

impl Metrics {
    /// Metrics for `shards` shards.
    pub fn new(shards: usize) -> Metrics {
        Metrics {
            shards: (0..shards.max(1))
                .map(|_| ShardMetrics::default())
                .collect(),
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
}
