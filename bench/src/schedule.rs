//! The run's timeline and the open-loop schedule, as pure arithmetic (no clock inside:
//! times are nanosecond offsets from the run's start `t0`).
//!
//! A run is a list of [`Segment`]s: the warm-up (recorded nowhere), then one per step.
//! In a segment, connections `0..connections` are active. Under open loop the segment's
//! aggregate `rate` is spread over its active connections so that the merged send
//! instants are exactly evenly spaced: request `k` of connection `g` is intended at
//! `start + (g + k * n) / rate` seconds (`n` active connections), the `(g + k*n)`-th
//! slot of the aggregate sequence. Its latency is measured from that intended instant
//! whatever happens to the connection (wrk2's rule, so there is no coordinated omission):
//! a request that could not be sent on time waits in the schedule, never skipped.
//!
//! Because the active set of a segment is always a prefix `0..n`, ramping connections
//! up or down keeps the aggregate evenly spaced in every step. Connection `g` opens at
//! `g / connect_rate` seconds ([`planned_connect_ns`]); its schedule in a segment starts
//! at the first slot not before that instant, so a slow connect ramp does not count as
//! latency, but a slow *actual* connect does.

use crate::config::RunConfig;

/// The `step` of the warm-up segment.
pub const WARMUP_STEP: u16 = u16::MAX;

/// A stretch of the run with one connection count and one rate.
#[derive(Clone, Debug, PartialEq)]
pub struct Segment {
    /// Start, ns from t0.
    pub start_ns: u64,
    /// End (exclusive), ns from t0.
    pub end_ns: u64,
    /// Active connections: `0..connections`.
    pub connections: usize,
    /// Aggregate open-loop rate (requests/s); `None` is closed loop.
    pub rate: Option<f64>,
    /// Step index, or [`WARMUP_STEP`].
    pub step: u16,
}

impl Segment {
    /// Whether the segment is measured (not the warm-up).
    pub fn recorded(&self) -> bool {
        self.step != WARMUP_STEP
    }
}

/// The segments of a run: the warm-up (with the first step's shape) and the steps.
pub fn segments(cfg: &RunConfig) -> Vec<Segment> {
    let steps = cfg.effective_steps();
    let mut out = Vec::with_capacity(steps.len() + 1);
    let mut t = 0u64;
    if cfg.warmup_ms > 0 {
        if let Some(first) = steps.first() {
            let end = cfg.warmup_ms.saturating_mul(1_000_000);
            out.push(Segment {
                start_ns: 0,
                end_ns: end,
                connections: first.connections,
                rate: first.rate,
                step: WARMUP_STEP,
            });
            t = end;
        }
    }
    for (i, s) in steps.iter().enumerate() {
        let end = t.saturating_add(s.duration_ms.saturating_mul(1_000_000));
        out.push(Segment {
            start_ns: t,
            end_ns: end,
            connections: s.connections,
            rate: s.rate,
            // Bounded by config::STEPS_MAX (64), far below WARMUP_STEP.
            step: i as u16,
        });
        t = end;
    }
    out
}

/// Where the measurement starts (the end of the warm-up).
pub fn measure_start_ns(segs: &[Segment]) -> u64 {
    segs.iter().find(|s| s.recorded()).map_or(0, |s| s.start_ns)
}

/// Where the run ends.
pub fn end_ns(segs: &[Segment]) -> u64 {
    segs.last().map_or(0, |s| s.end_ns)
}

/// The segment containing `t`, if any.
pub fn segment_at(segs: &[Segment], t: u64) -> Option<usize> {
    segs.iter().position(|s| s.start_ns <= t && t < s.end_ns)
}

/// Whether connection `g` is active at `t`.
pub fn active_at(segs: &[Segment], g: usize, t: u64) -> bool {
    segment_at(segs, t).is_some_and(|i| g < segs[i].connections)
}

/// The first instant at or after `t` at which connection `g` is active.
pub fn next_active(segs: &[Segment], g: usize, t: u64) -> Option<u64> {
    segs.iter()
        .filter(|s| s.end_ns > t && g < s.connections)
        .map(|s| s.start_ns.max(t))
        .next()
}

/// When connection `g` is planned to open, ns from t0 (0 without a connect rate).
pub fn planned_connect_ns(g: usize, connect_rate: Option<f64>) -> u64 {
    match connect_rate {
        Some(r) if r > 0.0 => (g as f64 * 1e9 / r) as u64,
        _ => 0,
    }
}

/// Intended send instant (ns from t0) of request `k` of connection `g` in an open-loop
/// segment. The caller ensures `seg.rate` is set and `g < seg.connections`.
pub fn intended_ns(seg: &Segment, g: usize, k: u64) -> u64 {
    let rate = seg.rate.unwrap_or(1.0);
    let slot = g as f64 + k as f64 * seg.connections.max(1) as f64;
    seg.start_ns.saturating_add((slot * 1e9 / rate) as u64)
}

/// The first `k` whose intended instant is at or after `t`.
pub fn first_k_at_or_after(seg: &Segment, g: usize, t: u64) -> u64 {
    if t <= seg.start_ns {
        return 0;
    }
    let rate = seg.rate.unwrap_or(1.0);
    let n = seg.connections.max(1) as f64;
    let x = ((t - seg.start_ns) as f64 * rate / 1e9 - g as f64) / n;
    let mut k = if x <= 0.0 { 0 } else { x.ceil() as u64 };
    // The float estimate is off by at most one slot; settle it exactly (bounded).
    for _ in 0..4 {
        if k > 0 && intended_ns(seg, g, k - 1) >= t {
            k -= 1;
        } else {
            break;
        }
    }
    for _ in 0..4 {
        if intended_ns(seg, g, k) < t {
            k += 1;
        } else {
            break;
        }
    }
    k
}

/// Requests `k' >= k` of connection `g` intended before `t` (clamped to the segment).
pub fn count_before(seg: &Segment, g: usize, k: u64, t: u64) -> u64 {
    first_k_at_or_after(seg, g, t.min(seg.end_ns)).saturating_sub(k)
}

/// The position of one connection in the open-loop schedule: the next request it owes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cursor {
    /// Segment index (`segs.len()` when the schedule is exhausted).
    pub seg: usize,
    /// Request index within the segment.
    pub k: u64,
    /// Nothing is scheduled before this instant (the planned connect).
    pub not_before_ns: u64,
}

impl Cursor {
    /// The cursor of connection `g` at the start of the run.
    pub fn new(segs: &[Segment], g: usize, not_before_ns: u64) -> Cursor {
        let mut c = Cursor {
            seg: 0,
            k: 0,
            not_before_ns,
        };
        c.enter(segs, g, 0);
        c
    }

    /// Positions on the first existing request from segment `from` on (bounded by the
    /// number of segments).
    fn enter(&mut self, segs: &[Segment], g: usize, from: usize) {
        self.seg = from;
        while self.seg < segs.len() {
            let s = &segs[self.seg];
            if s.rate.is_some() && g < s.connections {
                self.k = first_k_at_or_after(s, g, s.start_ns.max(self.not_before_ns));
                if intended_ns(s, g, self.k) < s.end_ns {
                    return;
                }
            }
            self.seg += 1;
        }
        self.k = 0;
    }

    /// The next request owed: its intended instant and step; `None` when the schedule
    /// is exhausted.
    pub fn due(&self, segs: &[Segment], g: usize) -> Option<(u64, u16)> {
        let s = segs.get(self.seg)?;
        Some((intended_ns(s, g, self.k), s.step))
    }

    /// Moves past the request [`Cursor::due`] returned.
    pub fn advance(&mut self, segs: &[Segment], g: usize) {
        let Some(s) = segs.get(self.seg) else {
            return;
        };
        self.k += 1;
        if intended_ns(s, g, self.k) >= s.end_ns {
            self.enter(segs, g, self.seg + 1);
        }
    }

    /// Calls `f(step, count)` for the requests still owed that were intended before
    /// `t` (what a run that ends at `t` leaves unsent), per segment.
    pub fn for_each_owed_before(
        &self,
        segs: &[Segment],
        g: usize,
        t: u64,
        mut f: impl FnMut(u16, u64),
    ) {
        let mut c = *self;
        while let Some(s) = segs.get(c.seg) {
            if s.start_ns >= t {
                break;
            }
            let n = count_before(s, g, c.k, t);
            if n > 0 {
                f(s.step, n);
            }
            c.enter(segs, g, c.seg + 1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Step;

    fn seg(start_ms: u64, end_ms: u64, n: usize, rate: f64, step: u16) -> Segment {
        Segment {
            start_ns: start_ms * 1_000_000,
            end_ns: end_ms * 1_000_000,
            connections: n,
            rate: Some(rate),
            step,
        }
    }

    #[test]
    fn aggregate_is_evenly_spaced() {
        // The seed's baseline: 25 connections sharing 2,500 requests/s.
        let s = seg(0, 1_000, 25, 2_500.0, 0);
        let mut all: Vec<u64> = (0..25)
            .flat_map(|g| {
                let s = &s;
                (0..100).map(move |k| intended_ns(s, g, k))
            })
            .collect();
        all.sort_unstable();
        assert_eq!(all.len(), 2_500);
        for (i, t) in all.iter().enumerate() {
            // Slot i at i * 400 us, exact to a nanosecond of float rounding.
            let want = i as u64 * 400_000;
            assert!(t.abs_diff(want) <= 1, "slot {i}: {t} vs {want}");
        }
        // Each connection runs at 100/s.
        assert_eq!(intended_ns(&s, 3, 1) - intended_ns(&s, 3, 0), 10_000_000);
    }

    #[test]
    fn first_k_is_exact() {
        let s = seg(5, 10_000, 7, 1_234.5, 0);
        for g in [0usize, 3, 6] {
            for t in (0..10_000_000_000u64).step_by(7_777_777) {
                let k = first_k_at_or_after(&s, g, t);
                assert!(intended_ns(&s, g, k) >= t);
                if k > 0 {
                    assert!(intended_ns(&s, g, k - 1) < t);
                }
            }
        }
    }

    #[test]
    fn cursor_walks_steps_and_ramps() {
        // Warm-up with 2 connections, then 4 connections, then 1.
        let segs = vec![
            seg(0, 100, 2, 20.0, WARMUP_STEP),
            seg(100, 200, 4, 80.0, 0),
            seg(200, 300, 1, 10.0, 1),
        ];
        // Connection 3 is active only in step 0: 2 requests (at 100 + 37.5 and 87.5 ms).
        let mut c = Cursor::new(&segs, 3, 0);
        assert_eq!(c.due(&segs, 3), Some((137_500_000, 0)));
        c.advance(&segs, 3);
        assert_eq!(c.due(&segs, 3), Some((187_500_000, 0)));
        c.advance(&segs, 3);
        assert_eq!(c.due(&segs, 3), None);
        // Connection 0 everywhere: 1 in warm-up (slots 50 ms apart, every 2nd is its),
        // 2 in step 0, 1 in step 1.
        let mut c = Cursor::new(&segs, 0, 0);
        let mut per_step = std::collections::BTreeMap::new();
        let mut last = 0;
        for _ in 0..100 {
            let Some((t, step)) = c.due(&segs, 0) else {
                break;
            };
            assert!(t >= last);
            last = t;
            *per_step.entry(step).or_insert(0) += 1;
            c.advance(&segs, 0);
        }
        assert_eq!(per_step[&WARMUP_STEP], 1);
        assert_eq!(per_step[&0], 2);
        assert_eq!(per_step[&1], 1);
    }

    #[test]
    fn planned_connect_shifts_the_first_request() {
        let segs = vec![seg(0, 1_000, 10, 1_000.0, 0)];
        // Connection 5 opens at 500 ms (10 connections/s): its first slot is the first
        // at or after it, 505 ms (5 + k*10 ms).
        let not_before = planned_connect_ns(5, Some(10.0));
        assert_eq!(not_before, 500_000_000);
        let c = Cursor::new(&segs, 5, not_before);
        assert_eq!(c.due(&segs, 5), Some((505_000_000, 0)));
    }

    #[test]
    fn owed_requests_are_counted_per_step() {
        let segs = vec![seg(0, 100, 1, 100.0, 0), seg(100, 200, 1, 50.0, 1)];
        let c = Cursor::new(&segs, 0, 0);
        let mut owed = Vec::new();
        c.for_each_owed_before(&segs, 0, 150_000_000, |s, n| owed.push((s, n)));
        // 10 in step 0 (every 10 ms), 3 in step 1 (100, 120, 140 ms).
        assert_eq!(owed, vec![(0, 10), (1, 3)]);
    }

    #[test]
    fn segments_of_a_config() {
        let cfg = RunConfig {
            warmup_ms: 1_000,
            steps: vec![
                Step {
                    connections: 5,
                    duration_ms: 2_000,
                    rate: Some(250.0),
                },
                Step {
                    connections: 10,
                    duration_ms: 3_000,
                    rate: None,
                },
            ],
            ..RunConfig::default()
        };
        let segs = segments(&cfg);
        assert_eq!(segs.len(), 3);
        assert_eq!(segs[0].step, WARMUP_STEP);
        assert_eq!(segs[0].connections, 5);
        assert_eq!(measure_start_ns(&segs), 1_000_000_000);
        assert_eq!(end_ns(&segs), 6_000_000_000);
        assert_eq!(segment_at(&segs, 3_500_000_000), Some(2));
        assert!(active_at(&segs, 7, 3_500_000_000));
        assert!(!active_at(&segs, 7, 1_500_000_000));
        assert_eq!(next_active(&segs, 7, 0), Some(3_000_000_000));
        assert_eq!(next_active(&segs, 70, 0), None);
    }
}
