//! Admission control, sans-I/O (time is always an argument): the token bucket, the shard's
//! gate (new connections, connections per source address, the shard's message rate, requests
//! in flight on the shard) and the per-session gate a session asks before it handles a
//! message. Every refusal is an [`Overload`] that names its reason, counts itself once in
//! `ringmcp_rejections_total{reason=...}` and says what the peer is told: a JSON-RPC error
//! (code, `data.reason`, `data.retryAfterMs`) and, over HTTP, the status and `Retry-After`.
//!
//! All state is shard-local (`Rc`, `Cell`, `RefCell`): each shard admits on its own.

use crate::config::Limits;
use crate::jsonrpc::{code, ErrorObject};
use crate::metrics::Reject;
use serde_json::json;
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::net::IpAddr;
use std::rc::Rc;
use std::time::{Duration, Instant};

/// The `retryAfterMs` (and `Retry-After: 1`) of a refusal that no clock can time: a cap or an
/// in-flight bound frees when other connections or requests end.
pub const BUSY_RETRY_AFTER_MS: u64 = 1000;

/// Rates are at most this many per second (one every nanosecond).
pub const RATE_PER_S_MAX: u64 = 1_000_000_000;

/// A token bucket of `burst` tokens refilled at `rate_per_s`, one token per admitted event.
///
/// Kept as the instant at which the bucket will be full again (the generic cell rate
/// algorithm, equivalent to a token bucket): one timestamp of state, integer arithmetic, no
/// refill loop.
#[derive(Debug, Clone)]
pub struct TokenBucket {
    /// Time one token takes to come back.
    interval: Duration,
    /// How far ahead of `now` the full-again instant may run: `interval * (burst - 1)`.
    tolerance: Duration,
    /// When the bucket is full again (`None`: full since it was made).
    full_at: Option<Instant>,
}

impl TokenBucket {
    /// A full bucket; `None` when `rate_per_s` is 0 (unlimited). `burst` 0 means one second's
    /// worth (`rate_per_s`).
    pub fn new(rate_per_s: u64, burst: u64) -> Option<TokenBucket> {
        if rate_per_s == 0 {
            return None;
        }
        let rate = rate_per_s.min(RATE_PER_S_MAX);
        let burst = if burst == 0 { rate } else { burst };
        let interval = Duration::from_nanos((1_000_000_000 / rate).max(1));
        let tolerance = interval.saturating_mul(u32::try_from(burst - 1).unwrap_or(u32::MAX));
        Some(TokenBucket {
            interval,
            tolerance,
            full_at: None,
        })
    }

    /// Takes one token at `now`, or says how long until one is there.
    pub fn try_take(&mut self, now: Instant) -> Result<(), Duration> {
        if let Some(wait) = self.wait(now) {
            return Err(wait);
        }
        self.full_at = Some(self.full_at.map_or(now, |t| t.max(now)) + self.interval);
        Ok(())
    }

    /// How long until a token is there at `now`; `None` when one is there now. Nothing is
    /// taken.
    pub fn wait(&self, now: Instant) -> Option<Duration> {
        let ahead = self
            .full_at
            .map_or(Duration::ZERO, |t| t.saturating_duration_since(now));
        (ahead > self.tolerance).then(|| ahead - self.tolerance)
    }

    /// Whether a token is there at `now` (nothing is taken).
    pub fn has_token(&self, now: Instant) -> bool {
        self.wait(now).is_none()
    }
}

/// Why a connection, message or request was refused, with what the peer needs to know.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Overload {
    /// `limits.connections_per_shard_max` reached at accept.
    ConnectionsPerShard {
        /// The bound.
        max: usize,
    },
    /// `limits.connections_per_source_max` reached at accept.
    ConnectionsPerSource {
        /// The bound.
        max: usize,
    },
    /// `limits.accept_rate_per_shard` exceeded.
    AcceptRate {
        /// Until the next connection would be taken.
        retry_after: Duration,
    },
    /// `limits.messages_per_connection_per_s` exceeded.
    ConnectionMessageRate {
        /// Until the next message would be taken.
        retry_after: Duration,
    },
    /// `limits.messages_per_shard_per_s` exceeded.
    ShardMessageRate {
        /// Until the next message would be taken.
        retry_after: Duration,
    },
    /// `limits.tool_calls_per_session_per_s` exceeded.
    SessionToolRate {
        /// Until the next tool call would be taken.
        retry_after: Duration,
    },
    /// `limits.shard_in_flight_requests_max` reached.
    ShardInFlight {
        /// The bound.
        max: usize,
    },
    /// `limits.session_in_flight_requests_max` reached.
    SessionInFlight {
        /// The bound.
        max: usize,
    },
}

/// Appends `n` in decimal.
fn push_decimal(out: &mut Vec<u8>, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[i..]);
}

impl Overload {
    /// The metrics reason, also sent as `data.reason`.
    pub fn reject(&self) -> Reject {
        match self {
            Overload::ConnectionsPerShard { .. } => Reject::ConnectionsPerShard,
            Overload::ConnectionsPerSource { .. } => Reject::ConnectionsPerSource,
            Overload::AcceptRate { .. } => Reject::AcceptRate,
            Overload::ConnectionMessageRate { .. } => Reject::ConnectionMessageRate,
            Overload::ShardMessageRate { .. } => Reject::ShardMessageRate,
            Overload::SessionToolRate { .. } => Reject::SessionToolRate,
            Overload::ShardInFlight { .. } => Reject::ShardInFlight,
            Overload::SessionInFlight { .. } => Reject::SessionInFlight,
        }
    }

    /// `data.reason`: the `reason` label of `ringmcp_rejections_total`.
    pub fn reason(&self) -> &'static str {
        self.reject().label()
    }

    /// The JSON-RPC error code: -32001 for a configured cap the peer itself filled, -32005
    /// for a rate, -32006 when the shard is overloaded.
    pub fn code(&self) -> i64 {
        match self {
            Overload::ConnectionsPerShard { .. }
            | Overload::ConnectionsPerSource { .. }
            | Overload::SessionInFlight { .. } => code::LIMIT_EXCEEDED,
            Overload::AcceptRate { .. }
            | Overload::ConnectionMessageRate { .. }
            | Overload::ShardMessageRate { .. }
            | Overload::SessionToolRate { .. } => code::RATE_LIMITED,
            Overload::ShardInFlight { .. } => code::OVERLOADED,
        }
    }

    /// The HTTP status: 429 when the peer sent too much (rates, its session's requests in
    /// flight), 503 when the server is full (connection caps, the shard's requests in
    /// flight).
    pub fn http_status(&self) -> u16 {
        match self {
            Overload::AcceptRate { .. }
            | Overload::ConnectionMessageRate { .. }
            | Overload::ShardMessageRate { .. }
            | Overload::SessionToolRate { .. }
            | Overload::SessionInFlight { .. } => 429,
            Overload::ConnectionsPerShard { .. }
            | Overload::ConnectionsPerSource { .. }
            | Overload::ShardInFlight { .. } => 503,
        }
    }

    /// `data.retryAfterMs`: when a rate's next token is there (rounded up), else
    /// [`BUSY_RETRY_AFTER_MS`].
    pub fn retry_after_ms(&self) -> u64 {
        match self {
            Overload::AcceptRate { retry_after }
            | Overload::ConnectionMessageRate { retry_after }
            | Overload::ShardMessageRate { retry_after }
            | Overload::SessionToolRate { retry_after } => {
                u64::try_from(retry_after.as_nanos().div_ceil(1_000_000))
                    .unwrap_or(u64::MAX)
                    .max(1)
            }
            _ => BUSY_RETRY_AFTER_MS,
        }
    }

    /// The HTTP `Retry-After` value (whole seconds, at least 1). Rates are at least 1 per
    /// second, so a token is never more than a second away and this is always 1.
    pub fn retry_after_s(&self) -> u64 {
        self.retry_after_ms().div_ceil(1000).max(1)
    }

    /// The error message.
    pub fn message(&self) -> String {
        let mut out = Vec::with_capacity(128);
        self.write_message(&mut out);
        // Written from ASCII text and decimal digits only.
        String::from_utf8(out).unwrap_or_default()
    }

    /// Appends the error message: ASCII with nothing JSON would escape, so it may be written
    /// between quotes as it is.
    fn write_message(&self, out: &mut Vec<u8>) {
        let ms = self.retry_after_ms();
        match self {
            Overload::ConnectionsPerShard { max } => {
                out.extend_from_slice(b"connection limit reached (connections_per_shard_max = ");
                push_decimal(out, *max as u64);
                out.push(b')');
            }
            Overload::ConnectionsPerSource { max } => {
                out.extend_from_slice(
                    b"too many connections from this address (connections_per_source_max = ",
                );
                push_decimal(out, *max as u64);
                out.push(b')');
            }
            Overload::SessionInFlight { max } => {
                out.extend_from_slice(b"too many requests in flight on this session (session_in_flight_requests_max = ");
                push_decimal(out, *max as u64);
                out.push(b')');
            }
            Overload::ShardInFlight { max } => {
                out.extend_from_slice(b"overloaded: ");
                push_decimal(out, *max as u64);
                out.extend_from_slice(b" requests in flight on this shard (shard_in_flight_requests_max); the request was not started, retry in ");
                push_decimal(out, ms);
                out.extend_from_slice(b" ms");
            }
            Overload::AcceptRate { .. }
            | Overload::ConnectionMessageRate { .. }
            | Overload::ShardMessageRate { .. }
            | Overload::SessionToolRate { .. } => {
                let what = match self {
                    Overload::AcceptRate { .. } => {
                        "rate limited: too many new connections (accept_rate_per_shard)"
                    }
                    Overload::ConnectionMessageRate { .. } => {
                        "rate limited: too many messages on this connection (messages_per_connection_per_s)"
                    }
                    Overload::ShardMessageRate { .. } => {
                        "rate limited: the server takes no more messages now (messages_per_shard_per_s)"
                    }
                    _ => {
                        "rate limited: too many tool calls in this session (tool_calls_per_session_per_s)"
                    }
                };
                out.extend_from_slice(what.as_bytes());
                out.extend_from_slice(b"; retry in ");
                push_decimal(out, ms);
                out.extend_from_slice(b" ms");
            }
        }
    }

    /// The JSON-RPC error object, with `data: {"reason", "retryAfterMs"}`.
    pub fn to_error(&self) -> ErrorObject {
        ErrorObject::new(self.code(), self.message()).with_data(json!({
            "reason": self.reason(),
            "retryAfterMs": self.retry_after_ms(),
        }))
    }

    /// The error response refusing the request whose id token, as sent, is `raw_id` (what
    /// [`crate::jsonrpc::skim`] found): the bytes [`crate::jsonrpc::encode_error`] gives for
    /// the parsed id and [`Self::to_error`], written straight out with no `Value` built.
    pub fn encode_for_raw_id(&self, raw_id: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(256 + raw_id.len());
        out.extend_from_slice(br#"{"jsonrpc":"2.0","id":"#);
        out.extend_from_slice(raw_id);
        out.extend_from_slice(br#","error":{"code":"#);
        if self.code() < 0 {
            out.push(b'-');
        }
        push_decimal(&mut out, self.code().unsigned_abs());
        out.extend_from_slice(br#","message":""#);
        self.write_message(&mut out);
        out.extend_from_slice(br#"","data":{"reason":""#);
        out.extend_from_slice(self.reason().as_bytes());
        out.extend_from_slice(br#"","retryAfterMs":"#);
        push_decimal(&mut out, self.retry_after_ms());
        out.extend_from_slice(b"}}}");
        out
    }
}

/// Where a shard's refusals are counted (the shard's `reject` counters).
pub type CountReject = Box<dyn Fn(Reject)>;

/// The numbers the gates use, from `[limits]`.
#[derive(Debug, Clone, Copy)]
struct GateLimits {
    connections_per_shard_max: usize,
    connections_per_source_max: usize,
    messages_per_connection_per_s: u64,
    messages_per_connection_burst: u64,
    tool_calls_per_session_per_s: u64,
    tool_calls_per_session_burst: u64,
    shard_in_flight_requests_max: usize,
    session_in_flight_requests_max: usize,
}

/// One shard's admission state: shared (`Rc`) by its accept loops and every session on it.
pub struct ShardGate {
    limits: GateLimits,
    accept: RefCell<Option<TokenBucket>>,
    messages: RefCell<Option<TokenBucket>>,
    in_flight: Cell<usize>,
    /// Connections admitted and not yet closed.
    open: Cell<usize>,
    /// Open connections by source address; an entry goes when its count reaches zero, so
    /// the map holds at most `connections_per_shard_max` entries.
    sources: RefCell<HashMap<IpAddr, u32>>,
    count: CountReject,
}

impl ShardGate {
    /// The gate of one shard; `count` records each refusal.
    pub fn new(l: &Limits, count: CountReject) -> Rc<ShardGate> {
        Rc::new(ShardGate {
            limits: GateLimits {
                connections_per_shard_max: l.connections_per_shard_max,
                connections_per_source_max: l.connections_per_source_max,
                messages_per_connection_per_s: l.messages_per_connection_per_s,
                messages_per_connection_burst: l.messages_per_connection_burst,
                tool_calls_per_session_per_s: l.tool_calls_per_session_per_s,
                tool_calls_per_session_burst: l.tool_calls_per_session_burst,
                shard_in_flight_requests_max: l.shard_in_flight_requests_max,
                session_in_flight_requests_max: l.session_in_flight_requests_max,
            },
            accept: RefCell::new(TokenBucket::new(
                l.accept_rate_per_shard,
                l.accept_burst_per_shard,
            )),
            messages: RefCell::new(TokenBucket::new(
                l.messages_per_shard_per_s,
                l.messages_per_shard_burst,
            )),
            in_flight: Cell::new(0),
            open: Cell::new(0),
            sources: RefCell::new(HashMap::new()),
            count,
        })
    }

    /// Counts a refusal and hands it back.
    pub fn refuse(&self, o: Overload) -> Overload {
        (self.count)(o.reject());
        o
    }

    /// Whether connections are counted by source address (the accept loop asks the socket
    /// for its peer only then).
    pub fn tracks_sources(&self) -> bool {
        self.limits.connections_per_source_max > 0
    }

    /// Decides on a connection just accepted from `source` (given when
    /// [`tracks_sources`](Self::tracks_sources)): the shard's cap, then the source's, then the
    /// accept rate (a connection refused by a cap takes no token; `now` is called only when
    /// there is an accept rate). The connection counts against the caps until its ticket
    /// drops: counted here, at accept, so a burst of connections accepted before any of them
    /// runs cannot overshoot.
    pub fn admit_connection(
        self: &Rc<Self>,
        source: Option<IpAddr>,
        now: impl FnOnce() -> Instant,
    ) -> Result<ConnTicket, Overload> {
        let l = &self.limits;
        if self.open.get() >= l.connections_per_shard_max {
            return Err(self.refuse(Overload::ConnectionsPerShard {
                max: l.connections_per_shard_max,
            }));
        }
        let source = source.filter(|_| self.tracks_sources());
        if let Some(ip) = source {
            let held = self.sources.borrow().get(&ip).copied().unwrap_or(0);
            if held as usize >= l.connections_per_source_max {
                return Err(self.refuse(Overload::ConnectionsPerSource {
                    max: l.connections_per_source_max,
                }));
            }
        }
        if let Some(b) = self.accept.borrow_mut().as_mut() {
            b.try_take(now())
                .map_err(|retry_after| self.refuse(Overload::AcceptRate { retry_after }))?;
        }
        self.open.set(self.open.get() + 1);
        if let Some(ip) = source {
            *self.sources.borrow_mut().entry(ip).or_insert(0) += 1;
        }
        Ok(ConnTicket {
            gate: self.clone(),
            source,
        })
    }

    /// Connections admitted and not yet closed.
    pub fn connections_open(&self) -> usize {
        self.open.get()
    }

    /// Source addresses with connections open now.
    pub fn sources_open(&self) -> usize {
        self.sources.borrow().len()
    }

    /// A connection's own message bucket (`None`: unlimited).
    pub fn connection_bucket(&self) -> Option<TokenBucket> {
        TokenBucket::new(
            self.limits.messages_per_connection_per_s,
            self.limits.messages_per_connection_burst,
        )
    }

    /// Admits one message of a connection whose messages are metered before they are parsed
    /// (HTTP: each request), against its own bucket only; the shard's rate applies where the
    /// message is handled.
    pub fn connection_message(
        &self,
        bucket: &mut TokenBucket,
        now: Instant,
    ) -> Result<(), Overload> {
        bucket
            .try_take(now)
            .map_err(|retry_after| self.refuse(Overload::ConnectionMessageRate { retry_after }))
    }

    /// Admits one incoming message: the connection's bucket (when given), then the shard's.
    /// `now` is called only when there is a bucket to ask.
    pub fn message(
        &self,
        connection: Option<&mut TokenBucket>,
        now: impl FnOnce() -> Instant,
    ) -> Result<(), Overload> {
        let mut shard = self.messages.borrow_mut();
        if connection.is_none() && shard.is_none() {
            return Ok(());
        }
        let now = now();
        if let Some(b) = connection {
            b.try_take(now).map_err(|retry_after| {
                self.refuse(Overload::ConnectionMessageRate { retry_after })
            })?;
        }
        if let Some(b) = shard.as_mut() {
            b.try_take(now)
                .map_err(|retry_after| self.refuse(Overload::ShardMessageRate { retry_after }))?;
        }
        Ok(())
    }

    /// What [`message`](Self::message) would refuse a message with now, as it would ask the
    /// buckets (the connection's, when given, then the shard's); nothing is taken nor counted
    /// (count it with [`refuse`](Self::refuse)). `now` is called only when there is a bucket
    /// to ask.
    pub fn message_refusal(
        &self,
        connection: Option<&TokenBucket>,
        now: impl FnOnce() -> Instant,
    ) -> Option<Overload> {
        let shard = self.messages.borrow();
        if connection.is_none() && shard.is_none() {
            return None;
        }
        let now = now();
        if let Some(retry_after) = connection.and_then(|b| b.wait(now)) {
            return Some(Overload::ConnectionMessageRate { retry_after });
        }
        let retry_after = shard.as_ref()?.wait(now)?;
        Some(Overload::ShardMessageRate { retry_after })
    }

    /// Whether one more request may start its handler on this shard.
    pub fn room(&self) -> Result<(), Overload> {
        let max = self.limits.shard_in_flight_requests_max;
        if self.in_flight.get() >= max {
            return Err(self.refuse(Overload::ShardInFlight { max }));
        }
        Ok(())
    }

    /// Counts a request in flight on this shard until the ticket drops.
    pub fn enter(self: &Rc<Self>) -> InFlight {
        self.in_flight.set(self.in_flight.get() + 1);
        InFlight(self.clone())
    }

    /// Requests in flight on this shard now.
    pub fn in_flight(&self) -> usize {
        self.in_flight.get()
    }

    /// The gate of a new session. `per_connection`: the session is its connection's only one
    /// (TCP, stdio), so it meters the connection's messages too; HTTP meters those per
    /// HTTP connection instead.
    pub fn session_gate(self: &Rc<Self>, per_connection: bool) -> SessionGate {
        SessionGate {
            shard: self.clone(),
            messages: if per_connection {
                self.connection_bucket()
            } else {
                None
            },
            tool_calls: TokenBucket::new(
                self.limits.tool_calls_per_session_per_s,
                self.limits.tool_calls_per_session_burst,
            ),
        }
    }
}

/// One admitted connection, counted against the shard's and its source's caps until it
/// drops.
pub struct ConnTicket {
    gate: Rc<ShardGate>,
    source: Option<IpAddr>,
}

impl Drop for ConnTicket {
    fn drop(&mut self) {
        let g = &self.gate;
        g.open.set(g.open.get().saturating_sub(1));
        if let Some(ip) = self.source {
            let mut sources = g.sources.borrow_mut();
            if let Some(n) = sources.get_mut(&ip) {
                *n -= 1;
                if *n == 0 {
                    sources.remove(&ip);
                }
            }
        }
    }
}

/// One request counted in flight on its shard; uncounted on drop (however the request ends).
pub struct InFlight(Rc<ShardGate>);

impl Drop for InFlight {
    fn drop(&mut self) {
        let n = self.0.in_flight.get();
        debug_assert!(n > 0, "in-flight count underflow");
        self.0.in_flight.set(n.saturating_sub(1));
    }
}

/// What a session asks before it handles a message: its connection's and its shard's message
/// rates, its own tool-call rate, and the shard's in-flight bound.
pub struct SessionGate {
    shard: Rc<ShardGate>,
    messages: Option<TokenBucket>,
    tool_calls: Option<TokenBucket>,
}

impl SessionGate {
    /// Admits one incoming request or notification (`now` is called only when a rate is
    /// configured).
    pub fn message(&mut self, now: impl FnOnce() -> Instant) -> Result<(), Overload> {
        self.shard.message(self.messages.as_mut(), now)
    }

    /// What [`message`](Self::message) would refuse a message with now; nothing is taken nor
    /// counted (`now` is called only when a rate is configured).
    pub fn message_refusal(&self, now: impl FnOnce() -> Instant) -> Option<Overload> {
        self.shard.message_refusal(self.messages.as_ref(), now)
    }

    /// Counts a refusal of this session's (see [`ShardGate::refuse`]).
    pub fn refuse(&self, o: Overload) -> Overload {
        self.shard.refuse(o)
    }

    /// Admits one `tools/call`.
    pub fn tool_call(&mut self, now: impl FnOnce() -> Instant) -> Result<(), Overload> {
        match self.tool_calls.as_mut() {
            None => Ok(()),
            Some(b) => b.try_take(now()).map_err(|retry_after| {
                self.shard.refuse(Overload::SessionToolRate { retry_after })
            }),
        }
    }

    /// The refusal of a request over `limits.session_in_flight_requests_max` (counted).
    pub fn session_full(&self) -> Overload {
        self.shard.refuse(Overload::SessionInFlight {
            max: self.shard.limits.session_in_flight_requests_max,
        })
    }

    /// Whether one more request may start its handler on the shard.
    pub fn room(&self) -> Result<(), Overload> {
        self.shard.room()
    }

    /// Counts a request in flight on the shard until the ticket drops.
    pub fn enter(&self) -> InFlight {
        self.shard.enter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn has_token_says_what_try_take_would_do_and_takes_nothing() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(10, 2).expect("a rate");
        for _ in 0..2 {
            assert!(b.has_token(t0));
            assert!(b.has_token(t0), "nothing taken by asking");
            assert_eq!(b.try_take(t0), Ok(()));
        }
        assert!(!b.has_token(t0));
        assert!(b.try_take(t0).is_err());
        let later = t0 + Duration::from_millis(100);
        assert!(b.has_token(later));
        assert_eq!(b.try_take(later), Ok(()));
    }

    #[test]
    fn a_refusal_written_for_a_raw_id_is_the_encoded_error() {
        let t = Duration::from_micros(2_500);
        let all = [
            Overload::ConnectionsPerShard { max: 500 },
            Overload::ConnectionsPerSource { max: 7 },
            Overload::AcceptRate { retry_after: t },
            Overload::ConnectionMessageRate { retry_after: t },
            Overload::ShardMessageRate {
                retry_after: Duration::from_secs(1),
            },
            Overload::SessionToolRate { retry_after: t },
            Overload::ShardInFlight { max: 32_768 },
            Overload::SessionInFlight { max: 256 },
        ];
        for o in all {
            for (raw, id) in [
                ("42", crate::jsonrpc::Id::Num(42)),
                ("-1", crate::jsonrpc::Id::Num(-1)),
                (r#""a b""#, crate::jsonrpc::Id::Str("a b".into())),
            ] {
                assert_eq!(
                    String::from_utf8_lossy(&o.encode_for_raw_id(raw.as_bytes())),
                    String::from_utf8_lossy(&crate::jsonrpc::encode_error(
                        Some(&id),
                        &o.to_error()
                    )),
                    "{o:?}"
                );
            }
        }
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn bucket_takes_its_burst_then_refills_at_its_rate() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(10, 3).expect("limited");
        for _ in 0..3 {
            assert_eq!(b.try_take(t0), Ok(()));
        }
        // Empty: the next token is one interval (100 ms) away.
        assert_eq!(b.try_take(t0), Err(ms(100)));
        assert_eq!(b.try_take(t0 + ms(40)), Err(ms(60)));
        assert_eq!(b.try_take(t0 + ms(100)), Ok(()));
        assert_eq!(b.try_take(t0 + ms(100)), Err(ms(100)));
        // A long pause refills to the burst, never beyond.
        let later = t0 + Duration::from_secs(60);
        for _ in 0..3 {
            assert_eq!(b.try_take(later), Ok(()));
        }
        assert!(b.try_take(later).is_err());
    }

    #[test]
    fn bucket_sustains_exactly_its_rate() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(1000, 1).expect("limited");
        let taken = (0..10_000u64)
            .filter(|i| b.try_take(t0 + Duration::from_micros(i * 100)).is_ok())
            .count();
        // 10,000 tries over one second at 1,000/s with no burst.
        assert_eq!(taken, 1000);
    }

    #[test]
    fn bucket_zero_rate_is_unlimited_and_zero_burst_is_one_second() {
        assert!(TokenBucket::new(0, 5).is_none());
        let t0 = Instant::now();
        let mut b = TokenBucket::new(4, 0).expect("limited");
        assert_eq!((0..10).filter(|_| b.try_take(t0).is_ok()).count(), 4);
    }

    #[test]
    fn bucket_handles_time_going_nowhere_and_extreme_rates() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(u64::MAX, u64::MAX).expect("limited");
        for _ in 0..1000 {
            assert!(b.try_take(t0).is_ok());
        }
        let mut b = TokenBucket::new(1, 1).expect("limited");
        assert!(b.try_take(t0 + ms(5)).is_ok());
        // An earlier `now` than seen before (two clocks read out of order) is no refill.
        assert_eq!(b.try_take(t0), Err(ms(1005)));
    }

    #[test]
    fn overload_answers() {
        let o = Overload::SessionToolRate {
            retry_after: Duration::from_micros(1500),
        };
        let e = o.to_error();
        assert_eq!(e.code, code::RATE_LIMITED);
        assert_eq!(
            e.data,
            Some(json!({"reason": "session_tool_rate", "retryAfterMs": 2}))
        );
        assert!(e.message.contains("tool_calls_per_session_per_s"), "{e:?}");
        assert_eq!((o.http_status(), o.retry_after_s()), (429, 1));
        let o = Overload::ShardInFlight { max: 7 };
        assert_eq!(
            (o.code(), o.http_status(), o.retry_after_ms()),
            (code::OVERLOADED, 503, BUSY_RETRY_AFTER_MS)
        );
        let o = Overload::ConnectionsPerSource { max: 2 };
        assert_eq!((o.code(), o.http_status()), (code::LIMIT_EXCEEDED, 503));
        assert_eq!(
            o.to_error().data.unwrap()["reason"],
            "connections_per_source"
        );
        let o = Overload::SessionInFlight { max: 2 };
        assert_eq!((o.code(), o.http_status()), (code::LIMIT_EXCEEDED, 429));
        assert!(o.message().contains("session_in_flight_requests_max = 2"));
    }

    fn gate(l: Limits) -> (Rc<ShardGate>, Rc<RefCell<Vec<Reject>>>) {
        let seen = Rc::new(RefCell::new(Vec::new()));
        let s = seen.clone();
        (
            ShardGate::new(&l, Box::new(move |r| s.borrow_mut().push(r))),
            seen,
        )
    }

    #[test]
    fn accept_checks_caps_then_rate_and_frees_sources() {
        let (g, seen) = gate(Limits {
            connections_per_shard_max: 3,
            connections_per_source_max: 2,
            accept_rate_per_shard: 1,
            accept_burst_per_shard: 3,
            ..Limits::default()
        });
        let t0 = Instant::now();
        let now = || t0;
        let a: IpAddr = [10, 0, 0, 1].into();
        let b: IpAddr = [10, 0, 0, 2].into();
        let mut tickets = Vec::new();
        for _ in 0..2 {
            tickets.push(g.admit_connection(Some(a), now).expect("admitted"));
        }
        assert_eq!(
            g.admit_connection(Some(a), now).err(),
            Some(Overload::ConnectionsPerSource { max: 2 })
        );
        tickets.push(g.admit_connection(Some(b), now).expect("another source"));
        assert_eq!(g.connections_open(), 3);
        assert_eq!(
            g.admit_connection(Some(b), now).err(),
            Some(Overload::ConnectionsPerShard { max: 3 })
        );
        // The burst of 3 is spent; caps refused without taking tokens.
        tickets.pop();
        assert_eq!(
            g.admit_connection(Some(b), now).err(),
            Some(Overload::AcceptRate {
                retry_after: Duration::from_secs(1)
            })
        );
        assert_eq!((g.sources_open(), g.connections_open()), (1, 2));
        tickets.clear();
        assert_eq!(
            (g.sources_open(), g.connections_open()),
            (0, 0),
            "entries go at zero"
        );
        assert_eq!(
            *seen.borrow(),
            [
                Reject::ConnectionsPerSource,
                Reject::ConnectionsPerShard,
                Reject::AcceptRate
            ]
        );
    }

    #[test]
    fn session_gate_meters_connection_shard_and_tool_calls() {
        let (g, seen) = gate(Limits {
            messages_per_connection_per_s: 1,
            messages_per_connection_burst: 2,
            messages_per_shard_per_s: 1,
            messages_per_shard_burst: 3,
            tool_calls_per_session_per_s: 1,
            tool_calls_per_session_burst: 1,
            ..Limits::default()
        });
        let t0 = Instant::now();
        let mut a = g.session_gate(true);
        let mut b = g.session_gate(true);
        let mut http = g.session_gate(false);
        let now = || t0;
        assert!(a.message(now).is_ok() && a.message(now).is_ok());
        assert_eq!(
            a.message(now).unwrap_err().reject(),
            Reject::ConnectionMessageRate
        );
        assert!(b.message(now).is_ok());
        // The shard's burst of 3 is spent by a twice and b once.
        assert_eq!(
            b.message(now).unwrap_err().reject(),
            Reject::ShardMessageRate
        );
        assert_eq!(
            http.message(now).unwrap_err().reject(),
            Reject::ShardMessageRate
        );
        assert!(http.tool_call(now).is_ok());
        assert_eq!(
            http.tool_call(now).unwrap_err().reject(),
            Reject::SessionToolRate
        );
        assert_eq!(seen.borrow().len(), 4);
        // Without any rate nothing reads the clock.
        let (g, _) = gate(Limits {
            messages_per_connection_per_s: 0,
            ..Limits::default()
        });
        let mut free = g.session_gate(true);
        assert!(free.message(|| unreachable!("no rate: no clock")).is_ok());
        assert!(free.tool_call(|| unreachable!("no rate: no clock")).is_ok());
    }

    #[test]
    fn in_flight_is_bounded_and_released_on_drop() {
        let (g, seen) = gate(Limits {
            shard_in_flight_requests_max: 2,
            ..Limits::default()
        });
        let s = g.session_gate(false);
        let one = s.enter();
        assert!(s.room().is_ok());
        let two = g.enter();
        assert_eq!(s.room(), Err(Overload::ShardInFlight { max: 2 }));
        drop(one);
        assert_eq!(g.in_flight(), 1);
        assert!(s.room().is_ok());
        drop(two);
        assert_eq!(g.in_flight(), 0);
        assert_eq!(*seen.borrow(), [Reject::ShardInFlight]);
    }
}
