//! What the workers count: per step, requests sent, OK responses, a latency histogram,
//! errors by kind and how every request that was not OK ended (an error answer or a loss);
//! per worker, connections made, failed, refused and closed and the connect+handshake time. Workers own their stats (no sharing on the hot path); the
//! parent merges them, across threads directly and across processes through
//! [`StatsWire`] (JSON with HdrHistograms V2-deflate-base64 encoded).

use crate::hgrm;
use crate::schedule::WARMUP_STEP;
use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Distinct error kinds kept per step; more are counted under `other`.
pub const ERROR_KINDS_MAX: usize = 128;

/// JSON-RPC error codes that say "overloaded, try later" (ringmcp: -32001 a connection or
/// in-flight limit, -32005 a rate limit, -32006 the shard's in-flight limit).
pub const OVERLOAD_CODES: [i64; 3] = [-32001, -32005, -32006];

/// HTTP statuses that say "overloaded, try later".
pub const OVERLOAD_STATUSES: [u16; 2] = [429, 503];

/// One kind of failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum ErrorKind {
    /// A JSON-RPC error response, by code.
    JsonRpc(i64),
    /// An HTTP status other than the expected one, by status.
    Http(u16),
    /// An HTTP status other than the expected one with a JSON-RPC error body.
    HttpRpc(u16, i32),
    /// A tools/call result with `isError: true`.
    ToolError,
    /// No response within the timeout.
    Timeout,
    /// The peer closed the connection with requests outstanding.
    Closed,
    /// A response we could not read (framing or JSON).
    BadResponse,
    /// A response to an id we did not send or already had an answer for.
    UnexpectedId,
    /// Connecting failed, by errno.
    Connect(i32),
    /// Connecting took longer than the connect timeout.
    ConnectTimeout,
    /// The MCP handshake (initialize) was refused or malformed.
    Handshake,
    /// A recv failed, by errno.
    Recv(i32),
    /// A send failed, by errno.
    Send(i32),
    /// Still unanswered (or, open loop, not even sent) when the run ended.
    Incomplete,
    /// Subscribe mode: a subscriber did not see an update within the timeout.
    NotificationMissed,
    /// Subscribe mode: the call that triggers an update failed.
    TriggerFailed,
    /// Past [`ERROR_KINDS_MAX`] distinct kinds.
    Other,
}

impl ErrorKind {
    /// An explicit "overloaded, try later" answer: a JSON-RPC error with one of
    /// [`OVERLOAD_CODES`], or an HTTP status of [`OVERLOAD_STATUSES`].
    pub fn is_overload(&self) -> bool {
        match *self {
            ErrorKind::JsonRpc(c) => OVERLOAD_CODES.contains(&c),
            ErrorKind::Http(s) => OVERLOAD_STATUSES.contains(&s),
            ErrorKind::HttpRpc(s, c) => {
                OVERLOAD_STATUSES.contains(&s) || OVERLOAD_CODES.contains(&i64::from(c))
            }
            _ => false,
        }
    }

    /// The server answered (an error response or an error status): the request was not
    /// lost, it was refused or failed explicitly.
    pub fn is_answer(&self) -> bool {
        matches!(
            self,
            ErrorKind::JsonRpc(_)
                | ErrorKind::Http(_)
                | ErrorKind::HttpRpc(..)
                | ErrorKind::ToolError
        )
    }

    /// The label used in reports and JSON.
    pub fn label(&self) -> String {
        match self {
            ErrorKind::JsonRpc(c) => format!("jsonrpc:{c}"),
            ErrorKind::Http(s) => format!("http:{s}"),
            ErrorKind::HttpRpc(s, c) => format!("http:{s}:jsonrpc:{c}"),
            ErrorKind::ToolError => "tool-error".into(),
            ErrorKind::Timeout => "timeout".into(),
            ErrorKind::Closed => "closed-by-peer".into(),
            ErrorKind::BadResponse => "bad-response".into(),
            ErrorKind::UnexpectedId => "unexpected-id".into(),
            ErrorKind::Connect(e) => format!("connect:{}", errno_name(*e)),
            ErrorKind::ConnectTimeout => "connect:timeout".into(),
            ErrorKind::Handshake => "handshake".into(),
            ErrorKind::Recv(e) => format!("recv:{}", errno_name(*e)),
            ErrorKind::Send(e) => format!("send:{}", errno_name(*e)),
            ErrorKind::Incomplete => "incomplete-at-end".into(),
            ErrorKind::NotificationMissed => "notification-missed".into(),
            ErrorKind::TriggerFailed => "trigger-failed".into(),
            ErrorKind::Other => "other".into(),
        }
    }
}

/// The answer kind (JSON-RPC error, HTTP status, tool error) a label names; `None` for
/// labels of other kinds. Reports key errors by label; this reads them back.
pub fn answer_of_label(label: &str) -> Option<ErrorKind> {
    if label == "tool-error" {
        return Some(ErrorKind::ToolError);
    }
    if let Some(c) = label.strip_prefix("jsonrpc:") {
        return c.parse().ok().map(ErrorKind::JsonRpc);
    }
    let rest = label.strip_prefix("http:")?;
    match rest.split_once(":jsonrpc:") {
        Some((s, c)) => Some(ErrorKind::HttpRpc(s.parse().ok()?, c.parse().ok()?)),
        None => rest.parse().ok().map(ErrorKind::Http),
    }
}

/// Whether a label names an error answer ([`ErrorKind::is_answer`]).
pub fn label_is_answer(label: &str) -> bool {
    answer_of_label(label).is_some()
}

/// Whether a label names an overload answer ([`ErrorKind::is_overload`]).
pub fn label_is_overload(label: &str) -> bool {
    answer_of_label(label).is_some_and(|k| k.is_overload())
}

/// A short name for the errnos a load generator meets.
pub fn errno_name(e: i32) -> String {
    let name = match e {
        libc::ECONNREFUSED => "ECONNREFUSED",
        libc::ECONNRESET => "ECONNRESET",
        libc::ETIMEDOUT => "ETIMEDOUT",
        libc::EPIPE => "EPIPE",
        libc::EMFILE => "EMFILE",
        libc::ENFILE => "ENFILE",
        libc::EADDRNOTAVAIL => "EADDRNOTAVAIL",
        libc::EADDRINUSE => "EADDRINUSE",
        libc::ENOBUFS => "ENOBUFS",
        libc::ENOMEM => "ENOMEM",
        libc::EAGAIN => "EAGAIN",
        libc::ECANCELED => "ECANCELED",
        libc::EINTR => "EINTR",
        libc::ENETUNREACH => "ENETUNREACH",
        libc::EHOSTUNREACH => "EHOSTUNREACH",
        libc::EINVAL => "EINVAL",
        _ => return format!("errno{e}"),
    };
    name.to_string()
}

/// Error counts by kind, bounded.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ErrorCounts {
    map: BTreeMap<ErrorKind, u64>,
    total: u64,
}

impl ErrorCounts {
    /// Counts `n` errors of `kind`.
    pub fn add(&mut self, kind: ErrorKind, n: u64) {
        if n == 0 {
            return;
        }
        self.total += n;
        let key = if self.map.len() >= ERROR_KINDS_MAX && !self.map.contains_key(&kind) {
            ErrorKind::Other
        } else {
            kind
        };
        *self.map.entry(key).or_insert(0) += n;
    }

    /// All errors.
    pub fn total(&self) -> u64 {
        self.total
    }

    /// By label.
    pub fn labelled(&self) -> BTreeMap<String, u64> {
        let mut out = BTreeMap::new();
        for (k, v) in &self.map {
            *out.entry(k.label()).or_insert(0) += v;
        }
        out
    }
}

/// What happened in one step (or the warm-up) on one worker.
///
/// Every request the open-loop schedule intends for a connection still in the run is
/// either written (`sent`) or still owed when the run ends (`unsent`), and every one of
/// those ends exactly once: OK (`ok`) or not (`requests`, by kind), so
/// `sent + unsent == ok + requests.total()` once the run is over.
#[derive(Debug, Clone)]
pub struct StepStats {
    /// Requests written to sockets.
    pub sent: u64,
    /// Open loop: requests the schedule intended in the step that were never written by
    /// the end of the run (a connection that could not send them: its window full, or
    /// not open). Also counted in `errors` and `requests` as incomplete-at-end.
    pub unsent: u64,
    /// Open loop: requests the schedule intended for connections that were refused with
    /// an overload answer and given up (`RunConfig::drop_refused`): not offered, no error.
    pub withdrawn: u64,
    /// OK responses (a result, not `isError`) to the requests started in the step,
    /// whenever they arrived.
    pub ok: u64,
    /// OK responses that arrived during the step (to requests of any step): the
    /// step's throughput.
    pub ok_arrived: u64,
    /// Latency of OK responses, microseconds (from the intended send time in open loop).
    pub latency: Histogram<u64>,
    /// Failures.
    pub errors: ErrorCounts,
    /// How the step's requests that were not OK ended, by kind: error answers (see
    /// [`ErrorKind::is_answer`]) and losses (timeout, closed, incomplete-at-end). Unlike
    /// `errors`, nothing that is not a request (a failed connect, a refused handshake).
    pub requests: ErrorCounts,
}

impl Default for StepStats {
    fn default() -> Self {
        StepStats {
            sent: 0,
            unsent: 0,
            withdrawn: 0,
            ok: 0,
            ok_arrived: 0,
            latency: hgrm::new_histogram(),
            errors: ErrorCounts::default(),
            requests: ErrorCounts::default(),
        }
    }
}

impl StepStats {
    /// Adds another worker's counts.
    pub fn merge(&mut self, o: &StepStats) {
        self.sent += o.sent;
        self.unsent += o.unsent;
        self.withdrawn += o.withdrawn;
        self.ok += o.ok;
        self.ok_arrived += o.ok_arrived;
        // Same bounds on both sides (both from hgrm::new_histogram), so this cannot fail.
        let _ = self.latency.add(&o.latency);
        for (k, v) in &o.errors.map {
            self.errors.add(*k, *v);
        }
        for (k, v) in &o.requests.map {
            self.requests.add(*k, *v);
        }
    }
}

/// Connection counters of a worker.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConnCounters {
    /// Connections that completed the TCP connect and the MCP handshake.
    pub made: u64,
    /// Attempts that failed (connect error, connect timeout, handshake refused).
    pub failed: u64,
    /// Established connections the server closed (or reset).
    pub closed_by_peer: u64,
    /// Connections closed by us after a request timeout.
    pub timed_out: u64,
    /// Connection attempts whose handshake the server refused with an overload answer
    /// ([`ErrorKind::is_overload`], or a JSON-RPC error carrying `data.reason`), by the
    /// answer's label; also counted in `failed`.
    #[serde(default)]
    pub refused: BTreeMap<String, u64>,
    /// The most connections open (made and not closed) at once, summed over workers.
    pub peak_open: u64,
    /// Passes of the workers' event loops (each ends in one io_uring_enter).
    pub loops: u64,
    /// Completions the workers reaped.
    pub cqes: u64,
}

impl ConnCounters {
    /// Adds another worker's counts (peaks add: workers run at the same time).
    pub fn merge(&mut self, o: &ConnCounters) {
        self.made += o.made;
        self.failed += o.failed;
        self.closed_by_peer += o.closed_by_peer;
        self.timed_out += o.timed_out;
        for (k, v) in &o.refused {
            *self.refused.entry(k.clone()).or_insert(0) += v;
        }
        self.peak_open += o.peak_open;
        self.loops += o.loops;
        self.cqes += o.cqes;
    }
}

/// Everything one worker (or one process, merged) measured.
#[derive(Debug, Clone)]
pub struct Stats {
    /// The warm-up.
    pub warmup: StepStats,
    /// One per step.
    pub steps: Vec<StepStats>,
    /// Connect + handshake time of connections made, microseconds.
    pub handshake: Histogram<u64>,
    /// Open loop, measured steps: how long after its intended instant each request was
    /// written, microseconds (the generator's own lateness plus queueing behind
    /// outstanding requests on its connection).
    pub send_lag: Histogram<u64>,
    /// Connection counters.
    pub conns: ConnCounters,
    /// Stats for errors that belong to no step (after the run).
    pub unattributed: ErrorCounts,
    /// Subscribe mode: (connection, `CLOCK_MONOTONIC` ns) of every update notification
    /// seen, at most `updates` + a few per connection.
    pub notified: Vec<(u32, u64)>,
    /// Subscribe mode: notifications past that bound (counted, not recorded).
    pub notify_extra: u64,
}

impl Stats {
    /// Empty stats for `steps` steps.
    pub fn new(steps: usize) -> Stats {
        Stats {
            warmup: StepStats::default(),
            steps: (0..steps).map(|_| StepStats::default()).collect(),
            handshake: hgrm::new_histogram(),
            send_lag: hgrm::new_histogram(),
            conns: ConnCounters::default(),
            unattributed: ErrorCounts::default(),
            notified: Vec::new(),
            notify_extra: 0,
        }
    }

    /// The stats of a step (`WARMUP_STEP` for the warm-up).
    pub fn step_mut(&mut self, step: u16) -> &mut StepStats {
        if step == WARMUP_STEP {
            return &mut self.warmup;
        }
        let i = usize::from(step);
        if i < self.steps.len() {
            &mut self.steps[i]
        } else {
            // Only reachable with a step index from another run's plan; keep the count.
            &mut self.warmup
        }
    }

    /// Counts an error in a step.
    pub fn error(&mut self, step: Option<u16>, kind: ErrorKind, n: u64) {
        match step {
            Some(s) => self.step_mut(s).errors.add(kind, n),
            None => self.unattributed.add(kind, n),
        }
    }

    /// Counts `n` requests of `step` that ended without an OK, as `kind` (both in the
    /// step's errors and in how its requests ended).
    pub fn request_error(&mut self, step: u16, kind: ErrorKind, n: u64) {
        let s = self.step_mut(step);
        s.errors.add(kind, n);
        s.requests.add(kind, n);
    }

    /// Adds another worker's stats.
    pub fn merge(&mut self, o: &Stats) {
        self.warmup.merge(&o.warmup);
        for (a, b) in self.steps.iter_mut().zip(&o.steps) {
            a.merge(b);
        }
        let _ = self.handshake.add(&o.handshake);
        let _ = self.send_lag.add(&o.send_lag);
        self.conns.merge(&o.conns);
        for (k, v) in &o.unattributed.map {
            self.unattributed.add(*k, *v);
        }
        self.notified.extend_from_slice(&o.notified);
        self.notify_extra += o.notify_extra;
    }

    /// The measured steps merged into one.
    pub fn total(&self) -> StepStats {
        let mut t = StepStats::default();
        for s in &self.steps {
            t.merge(s);
        }
        for (k, v) in &self.unattributed.map {
            t.errors.add(*k, *v);
        }
        t
    }

    /// For the wire.
    pub fn to_wire(&self) -> Result<StatsWire, String> {
        let step = |s: &StepStats| -> Result<StepWire, String> {
            Ok(StepWire {
                sent: s.sent,
                unsent: s.unsent,
                withdrawn: s.withdrawn,
                ok: s.ok,
                ok_arrived: s.ok_arrived,
                latency: hgrm::encode(&s.latency)?,
                errors: s
                    .errors
                    .map
                    .iter()
                    .map(|(k, v)| (KindWire::from(*k), *v))
                    .collect(),
                requests: s
                    .requests
                    .map
                    .iter()
                    .map(|(k, v)| (KindWire::from(*k), *v))
                    .collect(),
            })
        };
        Ok(StatsWire {
            warmup: step(&self.warmup)?,
            steps: self.steps.iter().map(step).collect::<Result<_, _>>()?,
            handshake: hgrm::encode(&self.handshake)?,
            send_lag: hgrm::encode(&self.send_lag)?,
            conns: self.conns.clone(),
            unattributed: self
                .unattributed
                .map
                .iter()
                .map(|(k, v)| (KindWire::from(*k), *v))
                .collect(),
            notified: self.notified.clone(),
            notify_extra: self.notify_extra,
        })
    }

    /// From the wire.
    pub fn from_wire(w: &StatsWire) -> Result<Stats, String> {
        let step = |s: &StepWire| -> Result<StepStats, String> {
            let mut errors = ErrorCounts::default();
            for (k, v) in &s.errors {
                errors.add(k.to_kind(), *v);
            }
            let mut requests = ErrorCounts::default();
            for (k, v) in &s.requests {
                requests.add(k.to_kind(), *v);
            }
            Ok(StepStats {
                sent: s.sent,
                unsent: s.unsent,
                withdrawn: s.withdrawn,
                ok: s.ok,
                ok_arrived: s.ok_arrived,
                latency: hgrm::decode(&s.latency)?,
                errors,
                requests,
            })
        };
        let mut unattributed = ErrorCounts::default();
        for (k, v) in &w.unattributed {
            unattributed.add(k.to_kind(), *v);
        }
        Ok(Stats {
            warmup: step(&w.warmup)?,
            steps: w.steps.iter().map(step).collect::<Result<_, _>>()?,
            handshake: hgrm::decode(&w.handshake)?,
            send_lag: hgrm::decode(&w.send_lag)?,
            conns: w.conns.clone(),
            unattributed,
            notified: w.notified.clone(),
            notify_extra: w.notify_extra,
        })
    }
}

/// An [`ErrorKind`] on the wire: a tag and a number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct KindWire(pub u8, pub i64);

impl From<ErrorKind> for KindWire {
    fn from(k: ErrorKind) -> Self {
        match k {
            ErrorKind::JsonRpc(c) => KindWire(0, c),
            ErrorKind::Http(s) => KindWire(1, i64::from(s)),
            ErrorKind::ToolError => KindWire(2, 0),
            ErrorKind::Timeout => KindWire(3, 0),
            ErrorKind::Closed => KindWire(4, 0),
            ErrorKind::BadResponse => KindWire(5, 0),
            ErrorKind::UnexpectedId => KindWire(6, 0),
            ErrorKind::Connect(e) => KindWire(7, i64::from(e)),
            ErrorKind::ConnectTimeout => KindWire(8, 0),
            ErrorKind::Handshake => KindWire(9, 0),
            ErrorKind::Recv(e) => KindWire(10, i64::from(e)),
            ErrorKind::Send(e) => KindWire(11, i64::from(e)),
            ErrorKind::Incomplete => KindWire(12, 0),
            ErrorKind::Other => KindWire(13, 0),
            ErrorKind::HttpRpc(s, c) => KindWire(14, (i64::from(s) << 32) | i64::from(c as u32)),
            ErrorKind::NotificationMissed => KindWire(15, 0),
            ErrorKind::TriggerFailed => KindWire(16, 0),
        }
    }
}

impl KindWire {
    fn to_kind(self) -> ErrorKind {
        let n32 = i32::try_from(self.1).unwrap_or(0);
        match self.0 {
            0 => ErrorKind::JsonRpc(self.1),
            1 => ErrorKind::Http(u16::try_from(self.1).unwrap_or(0)),
            2 => ErrorKind::ToolError,
            3 => ErrorKind::Timeout,
            4 => ErrorKind::Closed,
            5 => ErrorKind::BadResponse,
            6 => ErrorKind::UnexpectedId,
            7 => ErrorKind::Connect(n32),
            8 => ErrorKind::ConnectTimeout,
            9 => ErrorKind::Handshake,
            10 => ErrorKind::Recv(n32),
            11 => ErrorKind::Send(n32),
            12 => ErrorKind::Incomplete,
            14 => ErrorKind::HttpRpc(((self.1 >> 32) & 0xffff) as u16, self.1 as u32 as i32),
            15 => ErrorKind::NotificationMissed,
            16 => ErrorKind::TriggerFailed,
            _ => ErrorKind::Other,
        }
    }
}

/// One step on the wire.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StepWire {
    /// Requests sent.
    pub sent: u64,
    /// Requests owed and never sent.
    #[serde(default)]
    pub unsent: u64,
    /// Requests of connections given up after a refusal.
    #[serde(default)]
    pub withdrawn: u64,
    /// OK responses.
    pub ok: u64,
    /// OK responses that arrived in the step.
    pub ok_arrived: u64,
    /// Latency histogram, V2 deflate base64.
    pub latency: String,
    /// Errors.
    pub errors: Vec<(KindWire, u64)>,
    /// How the requests that were not OK ended.
    #[serde(default)]
    pub requests: Vec<(KindWire, u64)>,
}

/// [`Stats`] on the wire (a worker process's result).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StatsWire {
    /// The warm-up.
    pub warmup: StepWire,
    /// The steps.
    pub steps: Vec<StepWire>,
    /// Handshake histogram, V2 deflate base64.
    pub handshake: String,
    /// Send-lag histogram, V2 deflate base64.
    pub send_lag: String,
    /// Connection counters.
    pub conns: ConnCounters,
    /// Errors outside every step.
    pub unattributed: Vec<(KindWire, u64)>,
    /// Subscribe mode: (connection, instant) of every notification recorded.
    #[serde(default)]
    pub notified: Vec<(u32, u64)>,
    /// Subscribe mode: notifications counted past the recording bound.
    #[serde(default)]
    pub notify_extra: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_and_wire_round_trip() {
        let mut a = Stats::new(2);
        a.step_mut(0).ok = 3;
        a.step_mut(0).latency.record(100).unwrap();
        a.error(Some(1), ErrorKind::Http(503), 2);
        a.error(Some(WARMUP_STEP), ErrorKind::Timeout, 1);
        a.request_error(0, ErrorKind::JsonRpc(-32005), 2);
        a.step_mut(0).unsent = 1;
        a.step_mut(1).withdrawn = 7;
        a.conns.made = 5;
        a.conns.refused.insert("jsonrpc:-32001".into(), 3);
        let mut b = Stats::from_wire(&a.to_wire().unwrap()).unwrap();
        b.merge(&a);
        assert_eq!(b.steps[0].ok, 6);
        assert_eq!(b.steps[0].latency.len(), 2);
        assert_eq!(b.steps[1].errors.labelled()["http:503"], 4);
        assert_eq!(b.warmup.errors.total(), 2);
        assert_eq!(b.conns.made, 10);
        assert_eq!(b.conns.refused["jsonrpc:-32001"], 6);
        assert_eq!(b.steps[0].requests.labelled()["jsonrpc:-32005"], 4);
        assert_eq!(b.steps[0].errors.labelled()["jsonrpc:-32005"], 4);
        assert_eq!((b.steps[0].unsent, b.steps[1].withdrawn), (2, 14));
        let t = b.total();
        assert_eq!(t.ok, 6);
        assert_eq!(t.errors.total(), 8);
        assert_eq!(t.requests.total(), 4);
    }

    #[test]
    fn error_kinds_are_bounded() {
        let mut e = ErrorCounts::default();
        for c in 0..1000 {
            e.add(ErrorKind::JsonRpc(c), 1);
        }
        assert_eq!(e.total(), 1000);
        assert!(e.labelled().len() <= ERROR_KINDS_MAX + 1);
        assert!(e.labelled()["other"] > 0);
    }

    #[test]
    fn labels() {
        assert_eq!(
            ErrorKind::Connect(libc::ECONNREFUSED).label(),
            "connect:ECONNREFUSED"
        );
        assert_eq!(ErrorKind::JsonRpc(-32001).label(), "jsonrpc:-32001");
        assert_eq!(
            KindWire::from(ErrorKind::Recv(5)).to_kind(),
            ErrorKind::Recv(5)
        );
        for k in [ErrorKind::NotificationMissed, ErrorKind::TriggerFailed] {
            assert_eq!(KindWire::from(k).to_kind(), k);
        }
        assert_eq!(ErrorKind::NotificationMissed.label(), "notification-missed");
    }

    #[test]
    fn overload_answers() {
        for k in [
            ErrorKind::JsonRpc(-32005),
            ErrorKind::JsonRpc(-32006),
            ErrorKind::JsonRpc(-32001),
            ErrorKind::Http(429),
            ErrorKind::Http(503),
            ErrorKind::HttpRpc(503, -32001),
            ErrorKind::HttpRpc(200, -32005),
        ] {
            assert!(k.is_overload() && k.is_answer(), "{k:?}");
        }
        for k in [
            ErrorKind::JsonRpc(-32603),
            ErrorKind::Http(500),
            ErrorKind::HttpRpc(400, -32600),
            ErrorKind::Timeout,
            ErrorKind::Closed,
            ErrorKind::Incomplete,
        ] {
            assert!(!k.is_overload(), "{k:?}");
        }
        assert!(ErrorKind::ToolError.is_answer());
        // Labels read back.
        for k in [
            ErrorKind::JsonRpc(-32005),
            ErrorKind::Http(429),
            ErrorKind::HttpRpc(503, -32001),
            ErrorKind::HttpRpc(400, -32600),
            ErrorKind::ToolError,
        ] {
            assert_eq!(answer_of_label(&k.label()), Some(k));
            assert_eq!(label_is_overload(&k.label()), k.is_overload());
        }
        for k in [
            ErrorKind::Timeout,
            ErrorKind::Incomplete,
            ErrorKind::Connect(libc::ECONNREFUSED),
            ErrorKind::Closed,
        ] {
            assert!(!label_is_answer(&k.label()), "{k:?}");
        }
        for k in [
            ErrorKind::Timeout,
            ErrorKind::Closed,
            ErrorKind::Incomplete,
            ErrorKind::UnexpectedId,
            ErrorKind::BadResponse,
        ] {
            assert!(!k.is_answer(), "{k:?}");
        }
    }
}
