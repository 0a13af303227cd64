//! Health zones, sans-I/O: green, yellow, orange, red, from the figures of one evaluation
//! window and the thresholds of `[zones]`.
//!
//! Each shard evaluates itself every `zones.interval_ms` over that interval (deltas of its
//! counters, the latency histogram of the window; [`crate::runtime`] runs the tick): error
//! ratio, p95 latency, open connections as a share of `limits.connections_per_shard_max`,
//! queued messages. A shard's zone is the worst of its figures' zones. The process zone is
//! the worst shard's zone or the zone of the process's resident memory, whichever is worse
//! (memory is judged for the process only: shards share one heap). `/health` shows both and
//! answers 503 when the process is red; every transition is logged.

use crate::config::ZonesSection;

/// A health zone, from best to worst.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Zone {
    /// Every figure below its first bound.
    Green,
    /// At least one figure at or above its first bound.
    Yellow,
    /// At least one figure at or above its second bound.
    Orange,
    /// At least one figure at or above its third bound: `/health` answers 503.
    Red,
}

impl Zone {
    /// Every zone, best first (index = gauge value).
    pub const ALL: [Zone; 4] = [Zone::Green, Zone::Yellow, Zone::Orange, Zone::Red];

    /// The name in `/health` and in logs.
    pub fn label(self) -> &'static str {
        match self {
            Zone::Green => "green",
            Zone::Yellow => "yellow",
            Zone::Orange => "orange",
            Zone::Red => "red",
        }
    }

    /// The zone of a gauge value (0 green .. 3 red; larger is red).
    pub fn from_gauge(v: u64) -> Zone {
        Zone::ALL[(v as usize).min(3)]
    }

    /// The gauge value.
    pub fn gauge(self) -> u64 {
        self as u64
    }
}

/// The zone of `value` given the bounds where yellow, orange and red begin.
pub fn zone_of<T: PartialOrd>(value: T, bounds: &[T; 3]) -> Zone {
    if value >= bounds[2] {
        Zone::Red
    } else if value >= bounds[1] {
        Zone::Orange
    } else if value >= bounds[0] {
        Zone::Yellow
    } else {
        Zone::Green
    }
}

/// What a shard measured over one window.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ShardFigures {
    /// Requests answered in the window.
    pub responses: u64,
    /// Of which with an error.
    pub errors: u64,
    /// p95 latency of the requests answered in the window, microseconds.
    pub latency_p95_us: u64,
    /// Open connections at the end of the window.
    pub connections: u64,
    /// Queued messages at the end of the window.
    pub queue_depth: u64,
}

impl ShardFigures {
    /// Errors per answered request (0 without answers).
    pub fn error_ratio(&self) -> f64 {
        if self.responses == 0 {
            0.0
        } else {
            self.errors as f64 / self.responses as f64
        }
    }
}

/// A shard's evaluation: each figure's zone and the worst of them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ShardEvaluation {
    /// The shard's zone: the worst figure's.
    pub zone: Zone,
    /// Error ratio (green when the window has fewer than
    /// `zones.error_ratio_min_responses` answers).
    pub error_ratio: Zone,
    /// p95 latency.
    pub latency_p95: Zone,
    /// Open connections as a share of `limits.connections_per_shard_max`.
    pub connections: Zone,
    /// Queued messages.
    pub queue_depth: Zone,
}

impl ShardEvaluation {
    /// The figures that put the shard in its zone (empty when green).
    pub fn decided_by(&self) -> Vec<&'static str> {
        if self.zone == Zone::Green {
            return Vec::new();
        }
        [
            ("error_ratio", self.error_ratio),
            ("latency_p95", self.latency_p95),
            ("connections", self.connections),
            ("queue_depth", self.queue_depth),
        ]
        .into_iter()
        .filter(|(_, z)| *z == self.zone)
        .map(|(n, _)| n)
        .collect()
    }
}

/// Evaluates one shard's window. `connections_max` is `limits.connections_per_shard_max`.
pub fn evaluate_shard(
    t: &ZonesSection,
    connections_max: usize,
    f: &ShardFigures,
) -> ShardEvaluation {
    let error_ratio = if f.responses < t.error_ratio_min_responses {
        Zone::Green
    } else {
        zone_of(f.error_ratio(), &t.error_ratio)
    };
    let latency_p95 = zone_of(f.latency_p95_us, &t.latency_p95_ms.map(|ms| ms * 1000));
    let connections = zone_of(
        f.connections as f64 / connections_max.max(1) as f64,
        &t.connections_ratio,
    );
    let queue_depth = zone_of(f.queue_depth, &t.queue_depth);
    let zone = error_ratio
        .max(latency_p95)
        .max(connections)
        .max(queue_depth);
    ShardEvaluation {
        zone,
        error_ratio,
        latency_p95,
        connections,
        queue_depth,
    }
}

/// The process's evaluation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProcessEvaluation {
    /// The process zone: the worse of the worst shard's and memory's.
    pub zone: Zone,
    /// The worst shard (the first of equals), if any.
    pub worst_shard: Option<(usize, Zone)>,
    /// The zone of the process's resident memory.
    pub memory: Zone,
}

/// Evaluates the process from its shards' zones and its resident memory.
pub fn evaluate_process(t: &ZonesSection, shards: &[Zone], rss_bytes: u64) -> ProcessEvaluation {
    let worst_shard =
        shards
            .iter()
            .copied()
            .enumerate()
            .fold(None, |worst: Option<(usize, Zone)>, (i, z)| match worst {
                Some((_, w)) if w >= z => worst,
                _ => Some((i, z)),
            });
    let memory = zone_of(rss_bytes, &t.memory_bytes);
    let zone = worst_shard.map_or(Zone::Green, |(_, z)| z).max(memory);
    ProcessEvaluation {
        zone,
        worst_shard,
        memory,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t() -> ZonesSection {
        ZonesSection {
            error_ratio_min_responses: 10,
            ..ZonesSection::default()
        }
    }

    fn errors(responses: u64, errors: u64) -> ShardFigures {
        ShardFigures {
            responses,
            errors,
            ..ShardFigures::default()
        }
    }

    #[test]
    fn the_seed_error_bounds() {
        // green < 0.05 %, yellow < 0.1 %, orange < 1 %, red above.
        let t = t();
        let zone = |r, e| evaluate_shard(&t, 100, &errors(r, e)).zone;
        assert_eq!(zone(100_000, 0), Zone::Green);
        assert_eq!(zone(100_000, 49), Zone::Green);
        assert_eq!(zone(100_000, 50), Zone::Yellow);
        assert_eq!(zone(100_000, 99), Zone::Yellow);
        assert_eq!(zone(100_000, 100), Zone::Orange);
        assert_eq!(zone(100_000, 999), Zone::Orange);
        assert_eq!(zone(100_000, 1000), Zone::Red);
        assert_eq!(zone(10, 10), Zone::Red);
        // Too few answers to be a ratio.
        assert_eq!(zone(9, 9), Zone::Green);
        assert_eq!(zone(0, 0), Zone::Green);
    }

    #[test]
    fn every_figure_counts_and_the_worst_decides() {
        let t = t();
        let e = evaluate_shard(
            &t,
            1000,
            &ShardFigures {
                responses: 5,
                errors: 5,
                latency_p95_us: 600_000,
                connections: 900,
                queue_depth: 10,
            },
        );
        assert_eq!(e.error_ratio, Zone::Green);
        assert_eq!(e.latency_p95, Zone::Orange);
        assert_eq!(e.connections, Zone::Orange);
        assert_eq!(e.queue_depth, Zone::Green);
        assert_eq!(e.zone, Zone::Orange);
        assert_eq!(e.decided_by(), vec!["latency_p95", "connections"]);
        let e = evaluate_shard(
            &t,
            1000,
            &ShardFigures {
                queue_depth: t.queue_depth[2],
                ..ShardFigures::default()
            },
        );
        assert_eq!((e.zone, e.decided_by()), (Zone::Red, vec!["queue_depth"]));
        let e = evaluate_shard(&t, 1000, &ShardFigures::default());
        assert_eq!((e.zone, e.decided_by()), (Zone::Green, vec![]));
    }

    #[test]
    fn the_process_is_its_worst_shard_or_its_memory() {
        let t = t();
        let p = evaluate_process(&t, &[Zone::Green, Zone::Orange, Zone::Orange], 0);
        assert_eq!(p.zone, Zone::Orange);
        assert_eq!(p.worst_shard, Some((1, Zone::Orange)));
        assert_eq!(p.memory, Zone::Green);
        let p = evaluate_process(&t, &[Zone::Green], t.memory_bytes[2]);
        assert_eq!((p.zone, p.memory), (Zone::Red, Zone::Red));
        let p = evaluate_process(&t, &[], 0);
        assert_eq!((p.zone, p.worst_shard), (Zone::Green, None));
    }

    #[test]
    fn gauge_values() {
        for z in Zone::ALL {
            assert_eq!(Zone::from_gauge(z.gauge()), z);
        }
        assert_eq!(Zone::from_gauge(99), Zone::Red);
        assert_eq!(zone_of(5u64, &[1, 5, 9]), Zone::Orange);
    }
}
