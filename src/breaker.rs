//! Circuit breakers, sans-I/O: a [`Breaker`] is told the time with every question, so it is
//! tested without clocks, and it holds no lock: each shard keeps its own breakers (one per
//! hosted server, one per tool, see [`crate::server`]) and never shares them.
//!
//! The states, for one breaker:
//! - **closed**: calls go through; their outcomes are counted in a sliding window of
//!   `window_ms`, kept as [`BUCKETS`] buckets (so the window slides in steps of a tenth of
//!   it, and its memory is fixed). When the window holds at least `min_calls` outcomes and
//!   the failed share reaches `error_ratio`, the breaker opens.
//! - **open** for `open_ms`: every call is refused at once (the caller gets -32007 with
//!   `retryAfterMs`), so a failing tool stops taking the shard's time and the callers learn
//!   it without waiting for their own timeouts.
//! - **half-open**: the first call after `open_ms` finds the breaker half-open, which admits
//!   `half_open_probes` calls and refuses the rest. One probe failing opens it again for
//!   another `open_ms`; all of them succeeding close it, with an empty window.
//!
//! A call is admitted with a [`Ticket`] and its outcome is given back through it:
//! [`Outcome::Failure`], [`Outcome::Success`], or [`Outcome::Neutral`] (the caller's own
//! mistake, which says nothing of the tool's health). A ticket dropped without an outcome
//! (the client cancelled, the connection closed) is neutral too, so a probe that never
//! finishes cannot hold the breaker half-open. Outcomes of calls admitted before the
//! breaker last changed state are ignored: a slow call admitted while closed says nothing
//! about the probes of a later half-open period.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::{Duration, Instant};

/// The window is kept as this many buckets of `window_ms / BUCKETS` each.
pub const BUCKETS: usize = 10;
const _: () = assert!(BUCKETS >= 2);

/// The settings of the `[breaker]` section, as the breakers use them.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BreakerConfig {
    /// The sliding window the error ratio is taken over.
    pub window: Duration,
    /// Outcomes the window must hold before the breaker may open.
    pub min_calls: u32,
    /// The failed share of the window's outcomes that opens the breaker (0 < r <= 1).
    pub error_ratio: f64,
    /// How long the breaker stays open.
    pub open: Duration,
    /// Calls admitted while half-open; all must succeed for the breaker to close.
    pub half_open_probes: u32,
}

impl BreakerConfig {
    fn bucket_ms(&self) -> u64 {
        let window_ms = u64::try_from(self.window.as_millis()).unwrap_or(u64::MAX);
        window_ms.div_ceil(BUCKETS as u64).max(1)
    }
}

/// How one admitted call ended, as far as the breaker is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The call was served (a tool result, including one with `isError: true`).
    Success,
    /// The server side failed: a handler error, a panic, a timeout.
    Failure,
    /// Says nothing about the tool's health (the caller's mistake, a cancelled call).
    Neutral,
}

/// The state of a breaker, for logs and tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Calls go through and are counted.
    Closed,
    /// Calls are refused until the instant given.
    Open {
        /// When the breaker turns half-open.
        until: Instant,
    },
    /// `admitted` probes are out; `succeeded` of them came back successful.
    HalfOpen {
        /// Probes admitted and not yet finished or abandoned, plus those finished.
        admitted: u32,
        /// Probes that succeeded.
        succeeded: u32,
    },
}

/// A change of state worth logging.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    /// Closed -> open: `failures` of the window's `calls` failed.
    Opened {
        /// Failed calls in the window.
        failures: u32,
        /// Calls in the window.
        calls: u32,
    },
    /// Half-open -> open: a probe failed.
    Reopened,
    /// Half-open -> closed: every probe succeeded.
    Closed,
}

#[derive(Debug, Clone, Copy, Default)]
struct Bucket {
    /// Which bucket of time (ms since the breaker's origin / bucket_ms) the counts are for.
    slot: u64,
    calls: u32,
    failures: u32,
}

/// One circuit breaker (see the module documentation).
#[derive(Debug)]
pub struct Breaker {
    state: State,
    /// Bumped on every change of state; tickets of an older generation are ignored.
    generation: u64,
    origin: Option<Instant>,
    buckets: [Bucket; BUCKETS],
}

impl Default for Breaker {
    fn default() -> Self {
        Self::new()
    }
}

impl Breaker {
    /// A closed breaker with an empty window.
    pub fn new() -> Self {
        Breaker {
            state: State::Closed,
            generation: 0,
            origin: None,
            buckets: [Bucket::default(); BUCKETS],
        }
    }

    /// The current state (an open breaker whose time is up still says open until the
    /// next [`admit`](Self::admit)).
    pub fn state(&self) -> State {
        self.state
    }

    /// Whether a call may go through now. `Ok` carries the call's generation and whether
    /// it is a half-open probe; `Err` how long (ms, at least 1) until the breaker may admit
    /// calls again.
    pub fn admit(&mut self, now: Instant, cfg: &BreakerConfig) -> Result<Admitted, u64> {
        if let State::Open { until } = self.state {
            if now < until {
                return Err(ms_until(now, until));
            }
            self.change(State::HalfOpen {
                admitted: 0,
                succeeded: 0,
            });
        }
        match &mut self.state {
            State::Closed => Ok(Admitted {
                generation: self.generation,
                probe: false,
            }),
            State::HalfOpen { admitted, .. } => {
                if *admitted >= cfg.half_open_probes {
                    // The probes are out; the next decision comes when they finish, at the
                    // latest one open period from now if one of them fails.
                    return Err(ms(cfg.open).max(1));
                }
                *admitted += 1;
                Ok(Admitted {
                    generation: self.generation,
                    probe: true,
                })
            }
            State::Open { .. } => unreachable!("an open breaker past its time turned half-open"),
        }
    }

    /// Records how an admitted call ended; returns the change of state it caused, if any.
    pub fn record(
        &mut self,
        call: Admitted,
        outcome: Outcome,
        now: Instant,
        cfg: &BreakerConfig,
    ) -> Option<Transition> {
        if call.generation != self.generation {
            return None;
        }
        match (&mut self.state, outcome) {
            (State::Closed, Outcome::Neutral) => None,
            (State::Closed, _) => {
                let failed = outcome == Outcome::Failure;
                let (calls, failures) = self.count(now, failed, cfg);
                let tripped = failed
                    && calls >= cfg.min_calls
                    && f64::from(failures) >= cfg.error_ratio * f64::from(calls);
                if !tripped {
                    return None;
                }
                self.change(State::Open {
                    until: now + cfg.open,
                });
                Some(Transition::Opened { failures, calls })
            }
            (State::HalfOpen { admitted, .. }, Outcome::Neutral) => {
                debug_assert!(call.probe && *admitted > 0);
                *admitted = admitted.saturating_sub(1);
                None
            }
            (State::HalfOpen { .. }, Outcome::Failure) => {
                self.change(State::Open {
                    until: now + cfg.open,
                });
                Some(Transition::Reopened)
            }
            (State::HalfOpen { succeeded, .. }, Outcome::Success) => {
                *succeeded += 1;
                if *succeeded < cfg.half_open_probes {
                    return None;
                }
                self.change(State::Closed);
                Some(Transition::Closed)
            }
            // Nothing is admitted while open; a ticket of this generation cannot exist.
            (State::Open { .. }, _) => None,
        }
    }

    fn change(&mut self, to: State) {
        self.state = to;
        self.generation += 1;
        self.buckets = [Bucket::default(); BUCKETS];
    }

    /// Adds one outcome to the window at `now`; returns the window's (calls, failures).
    fn count(&mut self, now: Instant, failed: bool, cfg: &BreakerConfig) -> (u32, u32) {
        let origin = *self.origin.get_or_insert(now);
        let elapsed_ms =
            u64::try_from(now.saturating_duration_since(origin).as_millis()).unwrap_or(u64::MAX);
        let slot = elapsed_ms / cfg.bucket_ms();
        let b = &mut self.buckets[(slot % BUCKETS as u64) as usize];
        if b.slot != slot || b.calls == 0 {
            *b = Bucket {
                slot,
                calls: 0,
                failures: 0,
            };
        }
        b.calls = b.calls.saturating_add(1);
        b.failures = b.failures.saturating_add(u32::from(failed));
        self.buckets
            .iter()
            .filter(|b| b.calls > 0 && b.slot <= slot && slot - b.slot < BUCKETS as u64)
            .fold((0u32, 0u32), |(c, f), b| {
                (c.saturating_add(b.calls), f.saturating_add(b.failures))
            })
    }
}

/// What [`Breaker::admit`] gives an admitted call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Admitted {
    generation: u64,
    probe: bool,
}

impl Admitted {
    /// Whether the call is a half-open probe.
    pub fn is_probe(&self) -> bool {
        self.probe
    }
}

/// One shard's breaker as the request path holds it.
pub type SharedBreaker = Rc<RefCell<Breaker>>;

/// An admitted call: give its outcome with [`finish`](Self::finish); dropped unfinished,
/// it counts as [`Outcome::Neutral`].
#[derive(Debug)]
pub struct Ticket {
    breaker: SharedBreaker,
    call: Admitted,
    cfg: BreakerConfig,
    done: bool,
}

impl Ticket {
    /// Asks `breaker` whether a call may go through now (see [`Breaker::admit`]).
    pub fn admit(
        breaker: &SharedBreaker,
        now: Instant,
        cfg: &BreakerConfig,
    ) -> Result<Ticket, u64> {
        let call = breaker.borrow_mut().admit(now, cfg)?;
        Ok(Ticket {
            breaker: breaker.clone(),
            call,
            cfg: *cfg,
            done: false,
        })
    }

    /// Records the call's outcome; returns the change of state it caused, if any.
    pub fn finish(mut self, outcome: Outcome, now: Instant) -> Option<Transition> {
        self.done = true;
        self.breaker
            .borrow_mut()
            .record(self.call, outcome, now, &self.cfg)
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        if !self.done {
            // No time is needed for a neutral outcome: it is never counted in the window.
            let now = Instant::now();
            if let Ok(mut b) = self.breaker.try_borrow_mut() {
                b.record(self.call, Outcome::Neutral, now, &self.cfg);
            }
        }
    }
}

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// Milliseconds from `now` to `until`, rounded up so that a caller waiting that long finds
/// the time up.
fn ms_until(now: Instant, until: Instant) -> u64 {
    let d = until.saturating_duration_since(now);
    let whole = ms(d);
    let rounded = if d > Duration::from_millis(whole) {
        whole.saturating_add(1)
    } else {
        whole
    };
    rounded.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> BreakerConfig {
        BreakerConfig {
            window: Duration::from_millis(1000),
            min_calls: 4,
            error_ratio: 0.5,
            open: Duration::from_millis(500),
            half_open_probes: 2,
        }
    }

    fn ms_after(t0: Instant, ms: u64) -> Instant {
        t0 + Duration::from_millis(ms)
    }

    /// Admits and finishes one call at `now`.
    fn call(b: &mut Breaker, now: Instant, outcome: Outcome) -> Result<Option<Transition>, u64> {
        let c = cfg();
        let a = b.admit(now, &c)?;
        Ok(b.record(a, outcome, now, &c))
    }

    #[test]
    fn opens_only_with_enough_calls_and_enough_failures() {
        let t0 = Instant::now();
        let mut b = Breaker::new();
        // Three failures: below min_calls.
        for i in 0..3 {
            assert_eq!(call(&mut b, ms_after(t0, i), Outcome::Failure), Ok(None));
        }
        assert_eq!(b.state(), State::Closed);
        // The fourth reaches min_calls with 100 % failures.
        assert_eq!(
            call(&mut b, ms_after(t0, 3), Outcome::Failure),
            Ok(Some(Transition::Opened {
                failures: 4,
                calls: 4
            }))
        );
        assert!(matches!(b.state(), State::Open { .. }));

        // Successes keep the ratio below the threshold: 3 failures of 7 stays closed, the
        // failure that makes it 4 of 8 (= 0.5) opens.
        let mut b = Breaker::new();
        for i in 0..4 {
            call(&mut b, ms_after(t0, i), Outcome::Success).unwrap();
        }
        for i in 0..3 {
            assert_eq!(
                call(&mut b, ms_after(t0, 10 + i), Outcome::Failure),
                Ok(None)
            );
        }
        assert_eq!(
            call(&mut b, ms_after(t0, 20), Outcome::Failure),
            Ok(Some(Transition::Opened {
                failures: 4,
                calls: 8
            }))
        );
    }

    #[test]
    fn neutral_outcomes_are_not_counted() {
        let t0 = Instant::now();
        let mut b = Breaker::new();
        for i in 0..10 {
            call(&mut b, ms_after(t0, i), Outcome::Neutral).unwrap();
        }
        for i in 0..3 {
            assert_eq!(
                call(&mut b, ms_after(t0, 20 + i), Outcome::Failure),
                Ok(None)
            );
        }
        assert_eq!(b.state(), State::Closed);
    }

    #[test]
    fn old_outcomes_slide_out_of_the_window() {
        let t0 = Instant::now();
        let mut b = Breaker::new();
        for i in 0..3 {
            call(&mut b, ms_after(t0, i), Outcome::Failure).unwrap();
        }
        // A window (1000 ms) later those three are gone: three more are not enough.
        for i in 0..3 {
            assert_eq!(
                call(&mut b, ms_after(t0, 1200 + i), Outcome::Failure),
                Ok(None)
            );
        }
        assert_eq!(b.state(), State::Closed);
        // Within the window they add up.
        assert!(matches!(
            call(&mut b, ms_after(t0, 1300), Outcome::Failure),
            Ok(Some(Transition::Opened { calls: 4, .. }))
        ));
    }

    #[test]
    fn open_refuses_then_half_opens_and_closes_on_successful_probes() {
        let t0 = Instant::now();
        let c = cfg();
        let mut b = Breaker::new();
        for i in 0..4 {
            call(&mut b, ms_after(t0, i), Outcome::Failure).unwrap();
        }
        // Opened at t0+3 for 500 ms.
        assert_eq!(b.admit(ms_after(t0, 3), &c), Err(500));
        assert_eq!(b.admit(ms_after(t0, 400), &c), Err(103));
        assert_eq!(b.admit(ms_after(t0, 502), &c), Err(1));
        // Half-open at t0+503: two probes, then refusals.
        let p1 = b.admit(ms_after(t0, 503), &c).unwrap();
        let p2 = b.admit(ms_after(t0, 503), &c).unwrap();
        assert!(p1.is_probe() && p2.is_probe());
        assert_eq!(b.admit(ms_after(t0, 504), &c), Err(500));
        assert_eq!(b.record(p1, Outcome::Success, ms_after(t0, 510), &c), None);
        assert!(matches!(b.state(), State::HalfOpen { succeeded: 1, .. }));
        assert_eq!(
            b.record(p2, Outcome::Success, ms_after(t0, 520), &c),
            Some(Transition::Closed)
        );
        assert_eq!(b.state(), State::Closed);
        // Closed with an empty window: three failures do not reopen it.
        for i in 0..3 {
            assert_eq!(
                call(&mut b, ms_after(t0, 530 + i), Outcome::Failure),
                Ok(None)
            );
        }
    }

    #[test]
    fn a_failed_probe_reopens_and_late_outcomes_are_ignored() {
        let t0 = Instant::now();
        let c = cfg();
        let mut b = Breaker::new();
        // A slow call admitted while closed.
        let slow = b.admit(t0, &c).unwrap();
        for i in 0..4 {
            call(&mut b, ms_after(t0, i), Outcome::Failure).unwrap();
        }
        let p1 = b.admit(ms_after(t0, 600), &c).unwrap();
        // The slow call's success is not a probe's.
        assert_eq!(
            b.record(slow, Outcome::Success, ms_after(t0, 601), &c),
            None
        );
        assert!(matches!(
            b.state(),
            State::HalfOpen {
                admitted: 1,
                succeeded: 0
            }
        ));
        assert_eq!(
            b.record(p1, Outcome::Failure, ms_after(t0, 700), &c),
            Some(Transition::Reopened)
        );
        assert_eq!(b.admit(ms_after(t0, 700), &c), Err(500));
        assert_eq!(b.admit(ms_after(t0, 1199), &c), Err(1));
        assert!(b.admit(ms_after(t0, 1200), &c).is_ok());
    }

    #[test]
    fn an_abandoned_probe_frees_its_slot() {
        let t0 = Instant::now();
        let c = cfg();
        let shared: SharedBreaker = Rc::new(RefCell::new(Breaker::new()));
        for i in 0..4 {
            let t = Ticket::admit(&shared, ms_after(t0, i), &c).unwrap();
            t.finish(Outcome::Failure, ms_after(t0, i));
        }
        let now = ms_after(t0, 600);
        let p1 = Ticket::admit(&shared, now, &c).unwrap();
        let p2 = Ticket::admit(&shared, now, &c).unwrap();
        assert!(Ticket::admit(&shared, now, &c).is_err());
        // A probe whose client went away: dropped without an outcome.
        drop(p1);
        let p3 = Ticket::admit(&shared, now, &c).unwrap();
        assert_eq!(p2.finish(Outcome::Success, now), None);
        assert_eq!(p3.finish(Outcome::Success, now), Some(Transition::Closed));
        assert_eq!(shared.borrow().state(), State::Closed);
    }

    #[test]
    fn one_probe_and_a_ratio_of_one() {
        let t0 = Instant::now();
        let c = BreakerConfig {
            min_calls: 1,
            error_ratio: 1.0,
            half_open_probes: 1,
            ..cfg()
        };
        let mut b = Breaker::new();
        let a = b.admit(t0, &c).unwrap();
        assert_eq!(b.record(a, Outcome::Success, t0, &c), None);
        let a = b.admit(t0, &c).unwrap();
        // 1 failure of 2 calls is below a ratio of 1.
        assert_eq!(b.record(a, Outcome::Failure, t0, &c), None);
        let mut b = Breaker::new();
        let a = b.admit(t0, &c).unwrap();
        assert_eq!(
            b.record(a, Outcome::Failure, t0, &c),
            Some(Transition::Opened {
                failures: 1,
                calls: 1
            })
        );
        let p = b.admit(ms_after(t0, 500), &c).unwrap();
        assert_eq!(
            b.record(p, Outcome::Success, ms_after(t0, 501), &c),
            Some(Transition::Closed)
        );
    }
}
