//! One client connection's protocol state, sans-I/O: what to send next (handshake,
//! then requests under the closed- or open-loop rule) and what the received bytes mean
//! (lines or HTTP responses, matched to the requests in flight by id). The worker
//! ([`super::Worker`]) owns the sockets and the ring; this module only reads bytes,
//! writes into the connection's send buffer and updates the stats.
//!
//! Subscribe mode ([`crate::config::Subscribe`]): after the handshake the connection
//! sends `resources/subscribe` and, over HTTP, then opens the session's standalone SSE
//! stream with a `GET` (the connection is the stream's from then on: its body is read
//! chunk by chunk and event by event as it arrives, never as one response). The
//! connection is ready once subscribed (and streaming); from then on it sends nothing and
//! records the instant of every `notifications/resources/updated` for the URI.

use super::Ctx;
use crate::config::Transport;
use crate::http::{self, Body};
use crate::jsonrpc::{self, Reply, RpcId};
use crate::request::{INIT_ID, SUBSCRIBE_ID};
use crate::schedule::{self, Cursor};
use crate::stats::ErrorKind;
use std::net::Ipv4Addr;
use std::os::fd::RawFd;

/// A receive buffer kept for a partial message shrinks back when idle above this.
const RX_KEEP_BYTES: usize = 64 * 1024;

/// Where a connection is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// No socket (not started yet, between attempts, or ramped down).
    Idle,
    /// Connect submitted.
    Connecting,
    /// Waiting for the answer to `initialize` (TCP, HTTP).
    Initializing,
    /// HTTP: waiting for the 202 to `notifications/initialized`.
    Initialized,
    /// Subscribe mode: waiting for the answer to `resources/subscribe`.
    Subscribing,
    /// Subscribe mode, HTTP: waiting for the head of the standalone SSE stream.
    Opening,
    /// Requests flow.
    Ready,
    /// Closed by us; waiting for its ops in flight to complete before reuse.
    Closing,
}

/// One request in flight.
#[derive(Debug, Clone, Copy, Default)]
pub struct Slot {
    /// Its id (0: free; request ids start at 1).
    pub id: u64,
    /// Latency origin, absolute ns: the send time (closed loop) or the intended send
    /// time (open loop).
    pub start_ns: u64,
    /// The step it counts in.
    pub step: u16,
}

/// How and why a connection is being closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Close {
    /// An error counted once, now.
    pub count: Option<ErrorKind>,
    /// What each request still in flight counts as.
    pub outstanding: ErrorKind,
    /// The connection never became ready (counts as a failed connection).
    pub failed_attempt: bool,
    /// The server closed it.
    pub by_peer: bool,
    /// The server refused the handshake with an overload answer (see
    /// [`crate::config::RunConfig::drop_refused`]).
    pub refused: bool,
}

impl Close {
    /// A response we could not use: count it, close, reconnect after a back-off.
    pub fn bad(kind: ErrorKind) -> Close {
        Close {
            count: Some(kind),
            outstanding: ErrorKind::Closed,
            failed_attempt: false,
            by_peer: false,
            refused: false,
        }
    }

    /// The handshake was refused; an overload answer ([`ErrorKind::is_overload`]) makes it
    /// a refusal.
    pub fn handshake(kind: ErrorKind) -> Close {
        Close {
            count: Some(kind),
            outstanding: ErrorKind::Closed,
            failed_attempt: true,
            by_peer: false,
            refused: kind.is_overload(),
        }
    }

    /// The handshake was refused with a JSON-RPC error: a refusal when the server said
    /// which limit refused it (`data.reason`) or the code is an overload code.
    pub fn handshake_error(code: i64, reason: bool) -> Close {
        let c = Close::handshake(ErrorKind::JsonRpc(code));
        Close {
            refused: c.refused || reason,
            ..c
        }
    }

    /// The server closed the connection (EOF or `Connection: close`).
    pub fn peer() -> Close {
        Close {
            count: None,
            outstanding: ErrorKind::Closed,
            failed_attempt: false,
            by_peer: true,
            refused: false,
        }
    }
}

/// One connection.
pub struct Conn {
    /// Index in the worker's connection table.
    pub idx: u32,
    /// Global connection index (its place in the schedule and the address plan).
    pub g: usize,
    /// Socket, -1 when none.
    pub fd: RawFd,
    /// Generation, bumped at every close so late completions are recognised.
    pub gen: u32,
    /// Life state.
    pub state: State,
    /// io_uring operations in flight on this slot (any generation).
    pub ops: u8,
    /// A multishot receive is armed.
    pub recv_armed: bool,
    /// A send is in flight (`tx` belongs to the kernel until it completes).
    pub send_inflight: bool,
    /// Bytes of `tx` already sent.
    pub sent_off: usize,
    /// Bytes to send; reused across requests.
    pub tx: Vec<u8>,
    /// Received bytes of an incomplete message; empty most of the time.
    pub rx: Vec<u8>,
    /// HTTP session id.
    pub session: Vec<u8>,
    /// HTTP: `notifications/initialized` is still to be rendered.
    pub initialized_pending: bool,
    /// Subscribe mode: `resources/subscribe` is still to be rendered.
    pub subscribe_pending: bool,
    /// Subscribe mode, HTTP: the `GET` of the standalone stream is still to be rendered.
    pub listen_pending: bool,
    /// Subscribe mode, HTTP: the received bytes are the standalone stream's chunked body.
    pub streaming: bool,
    /// The stream's decoded SSE text not yet ended by a blank line; empty between events.
    pub sse_buf: Vec<u8>,
    /// Notifications recorded for this connection (bounded by `Ctx::notify_per_conn_max`).
    pub notified: u16,
    /// Next request id.
    pub next_id: u64,
    /// Requests in flight.
    pub inflight: u32,
    /// In-flight requests by `id & mask` (length a power of two >= pipeline).
    pub slots: Box<[Slot]>,
    /// Last response (or first request) instant; the request timeout counts from it.
    pub last_progress_ns: u64,
    /// Open-loop position.
    pub cursor: Cursor,
    /// Pending timer (absolute ns), 0 for none.
    pub timer_due: u64,
    /// Queued for a flush.
    pub dirty: bool,
    /// Waiting for a connect slot.
    pub queued: bool,
    /// When the current attempt started.
    pub attempt_ns: u64,
    /// Back-off before the next attempt after a failure.
    pub backoff_ns: u64,
    /// When to reconnect once Closing ends.
    pub reconnect_at: u64,
    /// Source address.
    pub src: Option<Ipv4Addr>,
    /// Planned connect instant, ns from t0.
    pub planned_ns: u64,
    /// Refused with an overload answer and given up for the rest of the run
    /// ([`crate::config::RunConfig::drop_refused`]).
    pub dropped: bool,
}

impl Conn {
    /// A connection that has not started.
    pub fn new(
        idx: u32,
        g: usize,
        pipeline: u32,
        cursor: Cursor,
        src: Option<Ipv4Addr>,
        planned_ns: u64,
    ) -> Conn {
        let cap = (pipeline as usize).next_power_of_two();
        Conn {
            idx,
            g,
            fd: -1,
            gen: 0,
            state: State::Idle,
            ops: 0,
            recv_armed: false,
            send_inflight: false,
            sent_off: 0,
            tx: Vec::new(),
            rx: Vec::new(),
            session: Vec::new(),
            initialized_pending: false,
            subscribe_pending: false,
            listen_pending: false,
            streaming: false,
            sse_buf: Vec::new(),
            notified: 0,
            next_id: 1,
            inflight: 0,
            slots: vec![Slot::default(); cap].into_boxed_slice(),
            last_progress_ns: 0,
            cursor,
            timer_due: 0,
            dirty: false,
            queued: false,
            attempt_ns: 0,
            backoff_ns: 0,
            reconnect_at: 0,
            src,
            planned_ns,
            dropped: false,
        }
    }

    fn mask(&self) -> u64 {
        self.slots.len() as u64 - 1
    }

    /// Whether the connection may send (established and past the handshake).
    pub fn is_open(&self) -> bool {
        matches!(
            self.state,
            State::Initializing
                | State::Initialized
                | State::Subscribing
                | State::Opening
                | State::Ready
        )
    }

    /// Whether the connection waits for an answer to its handshake (a timeout applies).
    pub fn in_handshake(&self) -> bool {
        matches!(
            self.state,
            State::Initializing | State::Initialized | State::Subscribing | State::Opening
        )
    }

    /// Forgets what belonged to the connection's socket (its session, a stream, renders
    /// pending), keeping what belongs to its place in the run (`notified`).
    pub fn reset_session(&mut self) {
        self.rx.clear();
        self.session.clear();
        self.initialized_pending = false;
        self.subscribe_pending = false;
        self.listen_pending = false;
        self.streaming = false;
        self.sse_buf = Vec::new();
    }

    /// Open-loop requests owed and already due at `now`.
    pub fn owes_due(&self, ctx: &Ctx, now: u64) -> bool {
        self.cursor
            .due(&ctx.segs, self.g)
            .is_some_and(|(t, _)| ctx.t0 + t <= now)
    }

    /// Frees every slot, calling `f(step)` for each request that was in flight.
    pub fn drain_slots(&mut self, mut f: impl FnMut(u16)) {
        if self.inflight == 0 {
            return;
        }
        for s in self.slots.iter_mut() {
            if s.id != 0 {
                f(s.step);
                *s = Slot::default();
            }
        }
        self.inflight = 0;
    }

    /// Starts the handshake on a fresh connection; answers whether it is ready at once.
    pub fn start(&mut self, ctx: &mut Ctx, now: u64) -> bool {
        self.tx.clear();
        self.sent_off = 0;
        self.reset_session();
        self.last_progress_ns = now;
        match ctx.transport {
            Transport::Tcp | Transport::Http => {
                ctx.encoder.push_initialize(&mut self.tx);
                self.state = State::Initializing;
                false
            }
            Transport::HttpStateless => true,
        }
    }

    /// Renders what is due now into `tx`: the rest of the handshake, or the requests
    /// the loop rule allows. Called only while no send is in flight.
    pub fn fill(&mut self, ctx: &mut Ctx, now: u64) {
        if self.initialized_pending {
            self.initialized_pending = false;
            ctx.encoder.push_initialized(&mut self.tx, &self.session);
        }
        if self.subscribe_pending {
            self.subscribe_pending = false;
            ctx.encoder.push_subscribe(&mut self.tx, &self.session);
        }
        if self.listen_pending {
            self.listen_pending = false;
            ctx.encoder.push_listen(&mut self.tx, &self.session);
        }
        // A subscriber only listens.
        if self.state != State::Ready || ctx.subscribe.is_some() {
            return;
        }
        let rel = now.saturating_sub(ctx.t0);
        let pipeline = ctx.pipeline;
        // Open loop: every request already due, oldest first, while there is room.
        // Bounded by the pipeline depth.
        while self.inflight < pipeline {
            let Some((t_rel, step)) = self.cursor.due(&ctx.segs, self.g) else {
                break;
            };
            let due = ctx.t0 + t_rel;
            if due > now {
                ctx.set_timer(self, due);
                break;
            }
            if !self.push_request(ctx, now, due, step) {
                break;
            }
            self.cursor.advance(&ctx.segs, self.g);
        }
        // Closed loop: keep the pipeline full while the current step runs it.
        let Some(i) = schedule::segment_at(&ctx.segs, rel) else {
            return;
        };
        let seg = &ctx.segs[i];
        if seg.rate.is_some() || self.g >= seg.connections {
            return;
        }
        let step = seg.step;
        while self.inflight < pipeline {
            if !self.push_request(ctx, now, now, step) {
                break;
            }
        }
    }

    /// Renders one request with latency origin `start_ns`; false when its slot is still
    /// taken (an older request is outstanding, out of order).
    fn push_request(&mut self, ctx: &mut Ctx, now: u64, start_ns: u64, step: u16) -> bool {
        let id = self.next_id;
        let mask = self.mask();
        let slot = &mut self.slots[(id & mask) as usize];
        if slot.id != 0 {
            return false;
        }
        *slot = Slot { id, start_ns, step };
        self.next_id += 1;
        if self.inflight == 0 {
            self.last_progress_ns = now;
        }
        self.inflight += 1;
        let session = (!self.session.is_empty()).then_some(&self.session[..]);
        ctx.encoder.push_call(&mut self.tx, id, session);
        ctx.stats.step_mut(step).sent += 1;
        ctx.live_sent += 1;
        if start_ns < now && step != schedule::WARMUP_STEP {
            ctx.stats
                .send_lag
                .saturating_record((now - start_ns + 500) / 1000);
        }
        true
    }

    /// Settles request `id` with `outcome` (`None` = OK).
    fn complete(&mut self, ctx: &mut Ctx, id: u64, outcome: Option<ErrorKind>, now: u64) {
        let mask = self.mask();
        let slot = &mut self.slots[(id & mask) as usize];
        if slot.id != id || id == 0 {
            let step = ctx.step_at(now);
            ctx.error(step, ErrorKind::UnexpectedId);
            return;
        }
        let s = *slot;
        *slot = Slot::default();
        self.inflight -= 1;
        self.last_progress_ns = now;
        ctx.mark_dirty(self);
        match outcome {
            None => ctx.ok(s.step, now.saturating_sub(s.start_ns), now),
            Some(kind) => ctx.request_error(s.step, kind),
        }
    }

    /// The handshake is done: subscribe (subscribe mode) or be ready. Answers whether the
    /// connection is ready now.
    fn handshake_done(&mut self, ctx: &mut Ctx, now: u64) -> bool {
        if ctx.subscribe.is_some() {
            self.state = State::Subscribing;
            // Rendered by `fill`, when the send buffer is ours again.
            self.subscribe_pending = true;
            self.last_progress_ns = now;
            ctx.mark_dirty(self);
            false
        } else {
            self.state = State::Ready;
            true
        }
    }

    /// Records the instant of `msg` if it is the update this connection subscribed to;
    /// answers whether it was.
    fn on_notification(&mut self, ctx: &mut Ctx, msg: &[u8], now: u64) -> bool {
        let Some(uri) = &ctx.subscribe else {
            return false;
        };
        if !jsonrpc::is_resource_updated(msg, uri) {
            return false;
        }
        if self.notified < ctx.notify_per_conn_max {
            self.notified += 1;
            // g < CONNECTIONS_MAX (1,000,000), which fits u32.
            ctx.stats.notified.push((self.g as u32, now));
        } else {
            ctx.stats.notify_extra += 1;
        }
        true
    }

    /// Reads the standalone stream's chunked SSE body as far as it has arrived: every
    /// complete event is looked at, a partial chunk or event waits for more bytes.
    /// Answers the bytes of `buf` used.
    fn read_stream(&mut self, ctx: &mut Ctx, buf: &[u8], now: u64) -> Result<usize, Close> {
        let mut text = std::mem::take(&mut self.sse_buf);
        let (used, ended) = http::dechunk_stream(buf, &mut text, ctx.max_response_bytes)
            .map_err(|_| Close::bad(ErrorKind::BadResponse))?;
        let mut data = std::mem::take(&mut ctx.sse_data);
        let mut bad = false;
        let done = http::sse_stream(&text, &mut data, |d| {
            if self.on_notification(ctx, d, now) {
                return true;
            }
            // Other messages are not ours to act on, but must be JSON-RPC.
            bad = jsonrpc::classify(d).is_err();
            !bad
        });
        ctx.sse_data = data;
        if bad {
            return Err(Close::bad(ErrorKind::BadResponse));
        }
        text.drain(..done);
        if !text.is_empty() {
            self.sse_buf = text;
        }
        if ended {
            // The server ended the stream (shutdown, session gone): start over.
            return Err(Close::peer());
        }
        Ok(used)
    }

    /// Feeds received bytes. `Ok(true)` when the connection just became ready.
    pub fn on_data(&mut self, ctx: &mut Ctx, data: &[u8], now: u64) -> Result<bool, Close> {
        let mut became_ready = false;
        let mut parse = |c: &mut Conn, ctx: &mut Ctx, buf: &[u8]| -> Result<usize, Close> {
            if ctx.transport.is_http() {
                c.parse_http(ctx, buf, now, &mut became_ready)
            } else {
                c.parse_lines(ctx, buf, now, &mut became_ready)
            }
        };
        if self.rx.is_empty() {
            let used = parse(self, ctx, data)?;
            if used < data.len() {
                self.rx.extend_from_slice(&data[used..]);
            }
        } else {
            self.rx.extend_from_slice(data);
            let rx = std::mem::take(&mut self.rx);
            let res = parse(self, ctx, &rx);
            self.rx = rx;
            let used = res?;
            self.rx.drain(..used);
        }
        if self.rx.len() > ctx.max_response_bytes {
            return Err(Close::bad(ErrorKind::BadResponse));
        }
        if self.rx.is_empty() && self.rx.capacity() > RX_KEEP_BYTES {
            self.rx = Vec::new();
        }
        Ok(became_ready)
    }

    /// Newline-delimited JSON-RPC: handles every complete line, answers bytes used.
    fn parse_lines(
        &mut self,
        ctx: &mut Ctx,
        buf: &[u8],
        now: u64,
        became_ready: &mut bool,
    ) -> Result<usize, Close> {
        let mut pos = 0;
        // Each pass consumes one line.
        while let Some(nl) = memchr::memchr(b'\n', &buf[pos..]) {
            let mut line = &buf[pos..pos + nl];
            pos += nl + 1;
            if line.last() == Some(&b'\r') {
                line = &line[..line.len() - 1];
            }
            if line.is_empty() {
                continue;
            }
            if self.state == State::Ready && self.on_notification(ctx, line, now) {
                continue;
            }
            let reply = jsonrpc::classify(line).map_err(|_| Close::bad(ErrorKind::BadResponse))?;
            match self.state {
                State::Initializing => match reply {
                    Reply::Other => {}
                    Reply::Result {
                        id: Some(RpcId::Num(INIT_ID)),
                        ..
                    } => {
                        if self.handshake_done(ctx, now) {
                            *became_ready = true;
                        }
                    }
                    Reply::Error { code, reason, .. } => {
                        return Err(Close::handshake_error(code, reason))
                    }
                    Reply::Result { .. } => return Err(Close::handshake(ErrorKind::Handshake)),
                },
                State::Subscribing => match reply {
                    Reply::Other => {}
                    Reply::Result {
                        id: Some(RpcId::Num(SUBSCRIBE_ID)),
                        ..
                    } => {
                        self.state = State::Ready;
                        *became_ready = true;
                    }
                    Reply::Error { code, .. } => {
                        return Err(Close::handshake(ErrorKind::JsonRpc(code)))
                    }
                    Reply::Result { .. } => return Err(Close::handshake(ErrorKind::Handshake)),
                },
                State::Ready => match reply {
                    Reply::Other => {}
                    Reply::Result {
                        id: Some(RpcId::Num(id)),
                        tool_error,
                    } => self.complete(ctx, id, tool_error.then_some(ErrorKind::ToolError), now),
                    Reply::Error {
                        id: Some(RpcId::Num(id)),
                        code,
                        ..
                    } => self.complete(ctx, id, Some(ErrorKind::JsonRpc(code)), now),
                    Reply::Error { code, .. } => {
                        // An error with a null id (e.g. a line the server could not
                        // parse) answers no request of ours; its request times out.
                        let step = ctx.step_at(now);
                        ctx.error(step, ErrorKind::JsonRpc(code));
                    }
                    Reply::Result { .. } => {
                        let step = ctx.step_at(now);
                        ctx.error(step, ErrorKind::UnexpectedId);
                    }
                },
                _ => {}
            }
        }
        Ok(pos)
    }

    /// HTTP/1.1: handles every complete response, answers bytes used.
    fn parse_http(
        &mut self,
        ctx: &mut Ctx,
        buf: &[u8],
        now: u64,
        became_ready: &mut bool,
    ) -> Result<usize, Close> {
        let mut pos = 0;
        // Each pass consumes one whole response (at least its head), or ends the loop.
        loop {
            if self.streaming {
                pos += self.read_stream(ctx, &buf[pos..], now)?;
                break;
            }
            if self.state == State::Opening {
                // The stream's body never ends: take its head alone. An error answer is
                // framed whole below, for its status and JSON-RPC code.
                let info = match http::response_head(&buf[pos..], ctx.max_response_bytes) {
                    Ok(None) => break,
                    Ok(Some(i)) => i,
                    Err(_) => return Err(Close::bad(ErrorKind::BadResponse)),
                };
                if info.head.status == 200 {
                    if !(info.head.sse && info.chunked) {
                        return Err(Close::handshake(ErrorKind::Handshake));
                    }
                    pos += info.len;
                    self.streaming = true;
                    self.state = State::Ready;
                    *became_ready = true;
                    continue;
                }
            }
            let framed =
                match http::frame_response(&buf[pos..], &mut ctx.scratch, ctx.max_response_bytes) {
                    Ok(None) => break,
                    Ok(Some(f)) => f,
                    Err(_) => return Err(Close::bad(ErrorKind::BadResponse)),
                };
            let base = pos;
            pos += framed.consumed;
            let status = framed.head.status;
            if (100..200).contains(&status) {
                continue;
            }
            // The JSON-RPC message of the body: the whole JSON body, or the first
            // response event of an SSE stream (notifications before it are skipped).
            let reply: Option<Result<Reply, ()>> = {
                let Ctx {
                    scratch, sse_data, ..
                } = &mut *ctx;
                let body: &[u8] = match &framed.body {
                    Body::Input(r) => &buf[base + r.start..base + r.end],
                    Body::Scratch => &scratch[..],
                };
                if framed.head.sse {
                    let mut found = None;
                    http::sse_events(body, sse_data, |d| match jsonrpc::classify(d) {
                        Ok(Reply::Other) => true,
                        Ok(r) => {
                            found = Some(Ok(r));
                            false
                        }
                        Err(_) => {
                            found = Some(Err(()));
                            false
                        }
                    });
                    found
                } else if body.is_empty() {
                    None
                } else {
                    Some(jsonrpc::classify(body).map_err(|_| ()))
                }
            };
            match self.state {
                State::Initializing => {
                    let session = framed
                        .head
                        .session_id
                        .as_ref()
                        .map(|r| &buf[base + r.start..base + r.end]);
                    match (status, reply, session) {
                        (
                            200,
                            Some(Ok(Reply::Result {
                                id: Some(RpcId::Num(INIT_ID)),
                                ..
                            })),
                            Some(sid),
                        ) if !sid.is_empty() && sid.len() <= 256 => {
                            self.session.clear();
                            self.session.extend_from_slice(sid);
                            // Rendered by `fill`, when the send buffer is ours again.
                            self.initialized_pending = true;
                            self.state = State::Initialized;
                            self.last_progress_ns = now;
                            ctx.mark_dirty(self);
                        }
                        (200, Some(Ok(Reply::Error { code, reason, .. })), _) => {
                            return Err(Close::handshake_error(code, reason))
                        }
                        (200, _, _) => return Err(Close::handshake(ErrorKind::Handshake)),
                        (s, r, _) => return Err(Close::handshake(http_error(s, r))),
                    }
                }
                State::Initialized => {
                    if status != 202 && status != 200 {
                        return Err(Close::handshake(ErrorKind::Http(status)));
                    }
                    if self.handshake_done(ctx, now) {
                        *became_ready = true;
                    }
                }
                State::Subscribing => match (status, reply) {
                    (
                        200,
                        Some(Ok(Reply::Result {
                            id: Some(RpcId::Num(SUBSCRIBE_ID)),
                            ..
                        })),
                    ) => {
                        self.state = State::Opening;
                        self.listen_pending = true;
                        self.last_progress_ns = now;
                        ctx.mark_dirty(self);
                    }
                    (200, Some(Ok(Reply::Error { code, .. }))) => {
                        return Err(Close::handshake(ErrorKind::JsonRpc(code)))
                    }
                    (200, _) => return Err(Close::handshake(ErrorKind::Handshake)),
                    (s, r) => return Err(Close::handshake(http_error(s, r))),
                },
                State::Opening => return Err(Close::handshake(http_error(status, reply))),
                State::Ready => {
                    if self.inflight == 0 {
                        let step = ctx.step_at(now);
                        ctx.error(step, ErrorKind::UnexpectedId);
                    } else {
                        // HTTP/1.1 answers in order: this is the oldest request.
                        let oldest = self.next_id - u64::from(self.inflight);
                        let outcome = match (status, reply) {
                            (200, Some(Ok(Reply::Result { id, tool_error }))) => {
                                if id != Some(RpcId::Num(oldest)) {
                                    Some(ErrorKind::UnexpectedId)
                                } else if tool_error {
                                    Some(ErrorKind::ToolError)
                                } else {
                                    None
                                }
                            }
                            (200, Some(Ok(Reply::Error { code, .. }))) => {
                                Some(ErrorKind::JsonRpc(code))
                            }
                            (200, _) => Some(ErrorKind::BadResponse),
                            (s, r) => Some(http_error(s, r)),
                        };
                        self.complete(ctx, oldest, outcome, now);
                    }
                }
                _ => {}
            }
            if framed.head.close {
                return Err(Close::peer());
            }
        }
        Ok(pos)
    }
}

/// The error kind of a non-200 response: its status, with the JSON-RPC code of its
/// body when it has one.
fn http_error(status: u16, reply: Option<Result<Reply, ()>>) -> ErrorKind {
    match reply {
        Some(Ok(Reply::Error { code, .. })) => {
            ErrorKind::HttpRpc(status, i32::try_from(code).unwrap_or(i32::MIN))
        }
        _ => ErrorKind::Http(status),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{RunConfig, Target};
    use crate::schedule::segments;

    const T0: u64 = 1_000_000_000;

    /// A closed-loop context (warm-up 0, one 10 s step) and a connection that is past its
    /// connect, at t0 + 1 s.
    fn setup(url: &str, pipeline: u32) -> (Ctx, Conn, u64) {
        let cfg = RunConfig {
            target: Target::parse(url).unwrap(),
            connections: 1,
            warmup_ms: 0,
            pipeline,
            ..RunConfig::default()
        };
        let segs = segments(&cfg);
        let ctx = Ctx::new(&cfg, &segs, T0, 1);
        let c = Conn::new(0, 0, pipeline, Cursor::new(&segs, 0, 0), None, 0);
        (ctx, c, T0 + 1_000_000_000)
    }

    fn sent_ids(c: &Conn) -> Vec<u64> {
        String::from_utf8_lossy(&c.tx)
            .split(r#""id":"#)
            .skip(1)
            .map(|r| {
                r.split(|ch: char| !ch.is_ascii_digit())
                    .next()
                    .unwrap()
                    .parse()
                    .unwrap()
            })
            .collect()
    }

    fn line(id: u64) -> String {
        format!("{{\"jsonrpc\":\"2.0\",\"id\":{id},\"result\":{{\"content\":[]}}}}\n")
    }

    #[test]
    fn tcp_handshake_then_pipelined_calls_matched_by_id() {
        let (mut ctx, mut c, now) = setup("tcp://127.0.0.1:7070", 4);
        assert!(!c.start(&mut ctx, now));
        assert_eq!(c.state, State::Initializing);
        c.tx.clear();
        // Notifications before the answer are skipped; the answer makes it ready.
        let init = concat!(
            r#"{"jsonrpc":"2.0","method":"notifications/message","params":{}}"#,
            "\n",
            r#"{"jsonrpc":"2.0","id":0,"result":{"protocolVersion":"2025-11-25"}}"#,
            "\n"
        );
        assert_eq!(c.on_data(&mut ctx, init.as_bytes(), now), Ok(true));
        c.fill(&mut ctx, now);
        assert_eq!(sent_ids(&c), vec![1, 2, 3, 4]);
        assert_eq!(c.inflight, 4);
        c.tx.clear();
        // Out of order, split across reads at every byte, one unknown id, one error.
        let replies = [
            line(3),
            line(1),
            line(99),
            r#"{"jsonrpc":"2.0","id":2,"error":{"code":-32001,"message":"busy"}}"#.to_string()
                + "\n",
        ]
        .concat();
        for b in replies.as_bytes() {
            assert_eq!(
                c.on_data(&mut ctx, std::slice::from_ref(b), now + 500_000),
                Ok(false)
            );
        }
        assert_eq!(c.inflight, 1);
        assert!(c.rx.is_empty());
        let step = &ctx.stats.steps[0];
        assert_eq!(step.ok, 2);
        assert_eq!(step.ok_arrived, 2);
        assert_eq!(step.sent, 4);
        // Latency: 500 us from the send instant.
        assert_eq!(step.latency.max(), step.latency.highest_equivalent(500));
        let e = step.errors.labelled();
        assert_eq!(e["unexpected-id"], 1);
        assert_eq!(e["jsonrpc:-32001"], 1);
        // A second answer to an id already settled is unexpected too.
        c.on_data(&mut ctx, line(3).as_bytes(), now).unwrap();
        assert_eq!(ctx.stats.steps[0].errors.labelled()["unexpected-id"], 2);
        // The pipeline refills up to 4 in flight: 5, 6, 7.
        c.fill(&mut ctx, now);
        assert_eq!(sent_ids(&c), vec![5, 6, 7]);
        // Garbage closes the connection.
        assert_eq!(
            c.on_data(&mut ctx, b"not json\n", now),
            Err(Close::bad(ErrorKind::BadResponse))
        );
    }

    #[test]
    fn tcp_refused_initialize() {
        let (mut ctx, mut c, now) = setup("tcp://127.0.0.1:7070", 1);
        c.start(&mut ctx, now);
        let r = c.on_data(
            &mut ctx,
            b"{\"jsonrpc\":\"2.0\",\"id\":0,\"error\":{\"code\":-32001,\"message\":\"full\"}}\n",
            now,
        );
        assert_eq!(r, Err(Close::handshake(ErrorKind::JsonRpc(-32001))));
    }

    fn http(status: &str, headers: &str, body: &str) -> String {
        format!(
            "HTTP/1.1 {status}\r\n{headers}Content-Length: {}\r\n\r\n{body}",
            body.len()
        )
    }

    #[test]
    fn http_session_handshake_and_in_order_answers() {
        let (mut ctx, mut c, now) = setup("http://127.0.0.1:8080/mcp", 2);
        assert!(!c.start(&mut ctx, now));
        assert!(c.tx.starts_with(b"POST /mcp HTTP/1.1\r\n"));
        c.tx.clear();
        let init = http(
            "200 OK",
            "Content-Type: application/json\r\nMcp-Session-Id: s3ss10n\r\n",
            r#"{"jsonrpc":"2.0","id":0,"result":{}}"#,
        );
        assert_eq!(c.on_data(&mut ctx, init.as_bytes(), now), Ok(false));
        assert_eq!(c.state, State::Initialized);
        assert_eq!(c.session, b"s3ss10n");
        c.fill(&mut ctx, now);
        let text = String::from_utf8(c.tx.clone()).unwrap();
        assert!(text.contains("notifications/initialized"));
        assert!(text.contains("Mcp-Session-Id: s3ss10n\r\n"));
        c.tx.clear();
        assert_eq!(
            c.on_data(&mut ctx, http("202 Accepted", "", "").as_bytes(), now),
            Ok(true)
        );
        c.fill(&mut ctx, now);
        assert_eq!(sent_ids(&c), vec![1, 2]);
        assert!(String::from_utf8_lossy(&c.tx).contains("Mcp-Session-Id: s3ss10n"));
        c.tx.clear();
        // An SSE answer (chunked, with a priming event and a progress notification)
        // for id 1, then a 503 for id 2, in one read.
        let sse = "id: 1-0\nretry: 1000\ndata: \n\nid: 1-1\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\",\"params\":{}}\n\nid: 1-2\ndata: {\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{\"content\":[]}}\n\n";
        let chunked = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n{sse}\r\n0\r\n\r\n",
            sse.len()
        );
        let busy = http(
            "503 Service Unavailable",
            "Retry-After: 1\r\n",
            r#"{"jsonrpc":"2.0","id":2,"error":{"code":-32001,"message":"full"}}"#,
        );
        let both = chunked + &busy;
        assert_eq!(c.on_data(&mut ctx, both.as_bytes(), now), Ok(false));
        assert_eq!(c.inflight, 0);
        assert_eq!(ctx.stats.steps[0].ok, 1);
        assert_eq!(
            ctx.stats.steps[0].errors.labelled()["http:503:jsonrpc:-32001"],
            1
        );
        // An answer with the wrong id settles the oldest request as unexpected-id.
        c.fill(&mut ctx, now);
        assert_eq!(sent_ids(&c), vec![3, 4]);
        let wrong = http("200 OK", "", &line(7));
        c.on_data(&mut ctx, wrong.as_bytes(), now).unwrap();
        assert_eq!(c.inflight, 1);
        assert_eq!(ctx.stats.steps[0].errors.labelled()["unexpected-id"], 1);
        // Connection: close ends the connection after the answer.
        let bye = http("200 OK", "Connection: close\r\n", &line(4));
        assert_eq!(c.on_data(&mut ctx, bye.as_bytes(), now), Err(Close::peer()));
        assert_eq!(ctx.stats.steps[0].ok, 2);
    }

    #[test]
    fn stateless_is_ready_at_once() {
        let (mut ctx, mut c, now) = setup("http-stateless://127.0.0.1:8080/mcp", 1);
        assert!(c.start(&mut ctx, now));
        assert!(c.tx.is_empty());
        c.state = State::Ready;
        c.fill(&mut ctx, now);
        let text = String::from_utf8(c.tx.clone()).unwrap();
        assert!(text.contains("Mcp-Method: tools/call\r\n"));
        assert!(text.contains("io.modelcontextprotocol/protocolVersion"));
    }

    #[test]
    fn open_loop_latency_counts_from_the_intended_instant() {
        let cfg = RunConfig {
            target: Target::parse("tcp://127.0.0.1:7070").unwrap(),
            connections: 1,
            warmup_ms: 0,
            duration_ms: 1_000,
            rate: Some(100.0),
            ..RunConfig::default()
        };
        let segs = segments(&cfg);
        let mut ctx = Ctx::new(&cfg, &segs, T0, 1);
        let mut c = Conn::new(0, 0, 1, Cursor::new(&segs, 0, 0), None, 0);
        c.state = State::Ready;
        // 35 ms late: request 0 (due at 0 ms) goes now, 1..3 are due but the pipeline
        // (1) is full, and they queue.
        let now = T0 + 35_000_000;
        c.fill(&mut ctx, now);
        assert_eq!(sent_ids(&c), vec![1]);
        assert_eq!(ctx.heap.len(), 0);
        c.tx.clear();
        // Answered 1 ms later: latency 36 ms from the intended instant.
        c.on_data(&mut ctx, line(1).as_bytes(), now + 1_000_000)
            .unwrap();
        let h = &ctx.stats.steps[0].latency;
        assert_eq!(h.max(), h.highest_equivalent(36_000));
        // The next due request (intended 10 ms) goes at once, and after the backlog a
        // timer waits for the one at 40 ms.
        let now = now + 1_000_000;
        c.fill(&mut ctx, now);
        assert_eq!(sent_ids(&c), vec![2]);
        c.tx.clear();
        for id in 2..=4 {
            c.on_data(&mut ctx, line(id).as_bytes(), now).unwrap();
            c.fill(&mut ctx, now);
            c.tx.clear();
        }
        assert_eq!(c.timer_due, T0 + 40_000_000);
        assert_eq!(ctx.stats.send_lag.len(), 4);
    }

    const UPDATED: &str = r#"{"jsonrpc":"2.0","method":"notifications/resources/updated","params":{"uri":"demo://counter"}}"#;

    /// A subscribe-mode context (2 updates) and connection 7, past its connect.
    fn setup_subscribe(url: &str) -> (Ctx, Conn, u64) {
        let cfg = RunConfig {
            target: Target::parse(url).unwrap(),
            connections: 8,
            warmup_ms: 0,
            subscribe: Some(crate::config::Subscribe {
                updates: 2,
                ..crate::config::Subscribe::default()
            }),
            ..RunConfig::default()
        };
        cfg.validate().unwrap();
        let segs = segments(&cfg);
        let ctx = Ctx::new(&cfg, &segs, T0, 1);
        let c = Conn::new(0, 7, 1, Cursor::new(&segs, 7, 0), None, 0);
        (ctx, c, T0 + 1_000_000_000)
    }

    /// Feeds `bytes` one at a time; answers how many feeds made the connection ready.
    fn feed_bytewise(c: &mut Conn, ctx: &mut Ctx, bytes: &[u8], now: u64) -> usize {
        let mut ready = 0;
        for b in bytes {
            if c.on_data(ctx, std::slice::from_ref(b), now).unwrap() {
                ready += 1;
            }
        }
        ready
    }

    #[test]
    fn tcp_subscriber_subscribes_then_records_updates_split_across_reads() {
        let (mut ctx, mut c, now) = setup_subscribe("tcp://127.0.0.1:7070");
        assert!(!c.start(&mut ctx, now));
        c.tx.clear();
        let init = "{\"jsonrpc\":\"2.0\",\"id\":0,\"result\":{}}\n";
        assert_eq!(c.on_data(&mut ctx, init.as_bytes(), now), Ok(false));
        assert_eq!(c.state, State::Subscribing);
        assert_eq!(ctx.dirty, vec![0]);
        c.fill(&mut ctx, now);
        let sub: serde_json::Value =
            serde_json::from_slice(c.tx.strip_suffix(b"\n").unwrap()).unwrap();
        assert_eq!(sub["method"], "resources/subscribe");
        assert_eq!(sub["id"], SUBSCRIBE_ID);
        assert_eq!(sub["params"]["uri"], "demo://counter");
        c.tx.clear();
        let ok = "{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{}}\n";
        assert_eq!(feed_bytewise(&mut c, &mut ctx, ok.as_bytes(), now), 1);
        assert_eq!(c.state, State::Ready);
        // A subscriber sends nothing more.
        c.fill(&mut ctx, now);
        assert!(c.tx.is_empty());
        assert_eq!(c.inflight, 0);
        // The update, split at every byte, among other notifications.
        let other = r#"{"jsonrpc":"2.0","method":"notifications/resources/updated","params":{"uri":"demo://other"}}"#;
        let listed = r#"{"jsonrpc":"2.0","method":"notifications/resources/list_changed"}"#;
        let lines = format!("{listed}\n{UPDATED}\r\n{other}\n");
        assert_eq!(
            feed_bytewise(&mut c, &mut ctx, lines.as_bytes(), now + 5),
            0
        );
        assert_eq!(ctx.stats.notified, vec![(7, now + 5)]);
        assert!(c.rx.is_empty());
        // Per connection, at most updates + NOTIFY_SLACK are recorded; more are counted.
        let many = format!("{UPDATED}\n").repeat(20);
        c.on_data(&mut ctx, many.as_bytes(), now + 9).unwrap();
        assert_eq!(
            ctx.stats.notified.len(),
            2 + super::super::NOTIFY_SLACK as usize
        );
        assert_eq!(ctx.stats.notify_extra, 3);
        assert_eq!(ctx.stats.total().errors.total(), 0);
        assert_eq!(
            c.on_data(&mut ctx, b"{not json\n", now),
            Err(Close::bad(ErrorKind::BadResponse))
        );
    }

    #[test]
    fn tcp_refused_subscription_is_a_handshake_error() {
        let (mut ctx, mut c, now) = setup_subscribe("tcp://127.0.0.1:7070");
        c.start(&mut ctx, now);
        c.on_data(
            &mut ctx,
            b"{\"jsonrpc\":\"2.0\",\"id\":0,\"result\":{}}\n",
            now,
        )
        .unwrap();
        let r = c.on_data(
            &mut ctx,
            b"{\"jsonrpc\":\"2.0\",\"id\":1,\"error\":{\"code\":-32002,\"message\":\"no such resource\"}}\n",
            now,
        );
        assert_eq!(r, Err(Close::handshake(ErrorKind::JsonRpc(-32002))));
        assert!(c.in_handshake());
    }

    fn chunk(data: &str) -> String {
        format!("{:x}\r\n{data}\r\n", data.len())
    }

    /// An HTTP subscriber up to its `GET`, with session `s1`.
    fn http_subscriber() -> (Ctx, Conn, u64) {
        let (mut ctx, mut c, now) = setup_subscribe("http://127.0.0.1:8080/mcp");
        c.start(&mut ctx, now);
        c.tx.clear();
        let init = http(
            "200 OK",
            "Content-Type: application/json\r\nMcp-Session-Id: s1\r\n",
            r#"{"jsonrpc":"2.0","id":0,"result":{}}"#,
        );
        assert_eq!(c.on_data(&mut ctx, init.as_bytes(), now), Ok(false));
        c.fill(&mut ctx, now);
        c.tx.clear();
        assert_eq!(
            c.on_data(&mut ctx, http("202 Accepted", "", "").as_bytes(), now),
            Ok(false)
        );
        assert_eq!(c.state, State::Subscribing);
        c.fill(&mut ctx, now);
        let text = String::from_utf8(c.tx.clone()).unwrap();
        assert!(text.starts_with("POST /mcp HTTP/1.1\r\n"), "{text}");
        assert!(text.contains("Mcp-Session-Id: s1\r\n"));
        assert!(
            text.contains(r#""method":"resources/subscribe","params":{"uri":"demo://counter"}"#)
        );
        c.tx.clear();
        let ok = http(
            "200 OK",
            "Content-Type: application/json\r\n",
            r#"{"jsonrpc":"2.0","id":1,"result":{}}"#,
        );
        assert_eq!(c.on_data(&mut ctx, ok.as_bytes(), now), Ok(false));
        assert_eq!(c.state, State::Opening);
        c.fill(&mut ctx, now);
        let text = String::from_utf8(c.tx.clone()).unwrap();
        assert_eq!(
            text,
            "GET /mcp HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nAccept: text/event-stream\r\nMCP-Protocol-Version: 2025-11-25\r\nMcp-Session-Id: s1\r\n\r\n"
        );
        c.tx.clear();
        (ctx, c, now)
    }

    #[test]
    fn http_subscriber_reads_its_standalone_stream_event_by_event() {
        let (mut ctx, mut c, now) = http_subscriber();
        let other = r#"{"jsonrpc":"2.0","method":"notifications/tools/list_changed"}"#;
        // Split where JSON allows whitespace: the data lines are joined by a newline.
        let (half1, half2) = UPDATED.split_at(UPDATED.find(r#""method""#).unwrap());
        let stream = [
            "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\nTransfer-Encoding: chunked\r\n\r\n".to_string(),
            chunk(": keep-alive\n\n"),
            chunk(&format!("id: 0-1\ndata: {UPDATED}\n\n")),
            chunk(&format!("id: 0-2\ndata: {other}\n\n")),
            // One event over two chunks, its data over two lines.
            chunk(&format!("id: 0-3\r\ndata: {half1}\r\n")),
            chunk(&format!("data: {half2}\r\n\r\n")),
        ]
        .concat();
        // Every split of the bytes: ready once, two updates seen, nothing left over.
        assert_eq!(
            feed_bytewise(&mut c, &mut ctx, stream.as_bytes(), now + 3),
            1
        );
        assert_eq!(c.state, State::Ready);
        assert!(c.streaming);
        assert_eq!(ctx.stats.notified, vec![(7, now + 3), (7, now + 3)]);
        assert!(c.rx.is_empty() && c.sse_buf.is_empty());
        c.fill(&mut ctx, now);
        assert!(c.tx.is_empty());
        // The same in one read, after which the server ends the stream.
        let (mut ctx, mut c, now) = http_subscriber();
        let all = stream + &chunk(&format!("data: {UPDATED}\n\n")) + "0\r\n\r\n";
        assert_eq!(c.on_data(&mut ctx, all.as_bytes(), now), Err(Close::peer()));
        assert_eq!(ctx.stats.notified.len(), 3);
        assert_eq!(ctx.stats.total().errors.total(), 0);
    }

    #[test]
    fn http_subscriber_errors() {
        // A refused stream: its status and JSON-RPC code.
        let (mut ctx, mut c, now) = http_subscriber();
        let conflict = http(
            "409 Conflict",
            "Content-Type: application/json\r\n",
            r#"{"jsonrpc":"2.0","id":null,"error":{"code":-32600,"message":"already open"}}"#,
        );
        assert_eq!(
            c.on_data(&mut ctx, conflict.as_bytes(), now),
            Err(Close::handshake(ErrorKind::HttpRpc(409, -32600)))
        );
        // A 200 that is not an event stream.
        let (mut ctx, mut c, now) = http_subscriber();
        let json = http("200 OK", "Content-Type: application/json\r\n", "{}");
        assert_eq!(
            c.on_data(&mut ctx, json.as_bytes(), now),
            Err(Close::handshake(ErrorKind::Handshake))
        );
        // Malformed chunks and events that are not JSON-RPC.
        let head = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n";
        for bad in ["zz\r\nabc\r\n".to_string(), chunk("data: nope\n\n")] {
            let (mut ctx, mut c, now) = http_subscriber();
            let bytes = format!("{head}{bad}");
            assert_eq!(
                c.on_data(&mut ctx, bytes.as_bytes(), now),
                Err(Close::bad(ErrorKind::BadResponse)),
                "{bad:?}"
            );
        }
        // A refused subscription.
        let (mut ctx, mut c, now) = setup_subscribe("http://127.0.0.1:8080/mcp");
        c.start(&mut ctx, now);
        c.state = State::Subscribing;
        c.session = b"s1".to_vec();
        let refused = http(
            "200 OK",
            "Content-Type: application/json\r\n",
            r#"{"jsonrpc":"2.0","id":1,"error":{"code":-32002,"message":"unknown"}}"#,
        );
        assert_eq!(
            c.on_data(&mut ctx, refused.as_bytes(), now),
            Err(Close::handshake(ErrorKind::JsonRpc(-32002)))
        );
    }
}
