//! Streamable HTTP for the session revisions (2025-03-26 .. 2025-11-25), and the legacy
//! HTTP+SSE transport of 2024-11-05, on the shard that owns the session.
//!
//! A session belongs to `shard_for(id)`: it is minted on the shard that received its
//! `initialize`, so that shard owns it. A POST, GET or DELETE for it that arrives on another
//! shard is forwarded over the mesh ([`super::HttpMsg::Forward`]); the owner answers with
//! events sent back to the exchange waiting on the connection's shard.
//!
//! Streams and resumability: every response stream of a session has a number (0 is the
//! standalone GET stream, 1.. the POST streams) and every event an id `<stream>-<seq>`. Each
//! stream keeps its last `http.sse_replay_events_max` events; a GET with `Last-Event-ID`
//! replays what followed that event and, if the stream is still live, continues it.

use super::exchange::{ReplyEvent, ReplyTo};
use super::{HttpShared, Response};
use crate::jsonrpc::{self, code, ErrorObject, Frame, Message};
use crate::limits::Overload;
use crate::mcp::{Reply, Session};
use crate::rt::{OutMsg, Outbound, SendError};
use crate::runtime::{ConnHost, Shard};
use crate::server::SessionCore;
use ringmcp_shards::SessionId;
use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::rc::{Rc, Weak};
use std::time::Instant;

/// What a forwarded or local request asks of a session.
#[derive(Debug, Clone)]
pub enum SessionOp {
    /// POST of one message or batch.
    Post {
        /// The body.
        body: Vec<u8>,
    },
    /// GET: open (or resume) a stream.
    Get {
        /// `Last-Event-ID`, if any.
        last_event_id: Option<String>,
    },
    /// DELETE: end the session.
    Delete,
}

/// One recorded event: sequence number, message, whether it ended the stream.
type Replayed = (u64, Rc<[u8]>, bool);

/// One numbered stream of a session with its replay buffer.
pub struct EventStream {
    /// Stream number (0 = standalone GET stream).
    pub number: u64,
    shard: Weak<Shard>,
    target: RefCell<Option<ReplyTo>>,
    replay: RefCell<VecDeque<Replayed>>,
    next_seq: Cell<u64>,
    done: Cell<bool>,
    replay_max: usize,
}

impl EventStream {
    fn new(number: u64, shard: &Rc<Shard>, target: Option<ReplyTo>, replay_max: usize) -> Rc<Self> {
        Rc::new(EventStream {
            number,
            shard: Rc::downgrade(shard),
            target: RefCell::new(target),
            replay: RefCell::new(VecDeque::new()),
            next_seq: Cell::new(1),
            done: Cell::new(false),
            replay_max,
        })
    }

    fn event_id(&self, seq: u64) -> String {
        format!("{}-{}", self.number, seq)
    }

    /// Records and forwards one message; `last` ends the stream.
    ///
    /// A stream whose first message is its last is answered as a plain JSON response
    /// (see the HTTP connection): no event id reaches the client, so there is nothing it
    /// could resume and the message is not kept for replay.
    pub fn emit(&self, msg: OutMsg, last: bool) {
        let seq = self.next_seq.get();
        self.next_seq.set(seq + 1);
        let resumable = !(last && seq == 1);
        if resumable {
            let mut r = self.replay.borrow_mut();
            if r.len() >= self.replay_max {
                r.pop_front();
            }
            let kept = match &msg {
                OutMsg::Shared(s) => s.clone(),
                OutMsg::Owned(v) => Rc::from(v.as_slice()),
            };
            r.push_back((seq, kept, last));
        }
        if last {
            self.done.set(true);
        }
        let target = self.target.borrow().clone();
        if let (Some(t), Some(shard)) = (target, self.shard.upgrade()) {
            let ev = ReplyEvent::Message {
                event_id: resumable.then(|| self.event_id(seq)),
                bytes: match msg {
                    OutMsg::Owned(v) => v,
                    OutMsg::Shared(s) => s.to_vec(),
                },
                last,
            };
            if !t.send(&shard, ev) {
                // The client went away; later events wait in the replay buffer.
                self.target.borrow_mut().take();
            }
        }
    }

    /// Ends the stream without a message (a cancelled request).
    pub fn end(&self) {
        self.done.set(true);
        if let (Some(t), Some(shard)) = (self.target.borrow_mut().take(), self.shard.upgrade()) {
            t.send(&shard, ReplyEvent::End);
        }
    }

    /// Attaches a (new) receiver after replaying the events after `after_seq`.
    fn resume(&self, to: ReplyTo, after_seq: u64, shard: &Rc<Shard>) {
        for (seq, bytes, last) in self.replay.borrow().iter() {
            if *seq > after_seq {
                to.send(
                    shard,
                    ReplyEvent::Message {
                        event_id: Some(self.event_id(*seq)),
                        bytes: bytes.to_vec(),
                        last: *last,
                    },
                );
            }
        }
        if self.done.get() {
            let ended_with_message = self.replay.borrow().back().is_some_and(|(_, _, l)| *l);
            if !ended_with_message {
                to.send(shard, ReplyEvent::End);
            }
        } else {
            *self.target.borrow_mut() = Some(to);
        }
    }

    fn detach(&self, addr: (usize, u64), here: usize) {
        let mut t = self.target.borrow_mut();
        if t.as_ref().is_some_and(|t| t.addr(here) == addr) {
            t.take();
        }
    }

    fn has_live_target(&self) -> bool {
        self.target.borrow().as_ref().is_some_and(|t| !t.is_gone())
    }
}

/// The session's own outbound (stream 0): where resource updates, list changes and, in the
/// legacy transport, every answer go.
struct SessionOutbound(Rc<EventStream>);

impl Outbound for SessionOutbound {
    fn send(&self, msg: OutMsg) -> Result<(), SendError> {
        self.0.emit(msg, false);
        Ok(())
    }
}

/// A request stream's outbound: progress, logs and server-to-client requests of the
/// requests that came in one POST.
struct StreamOutbound(Rc<EventStream>);

impl Outbound for StreamOutbound {
    fn send(&self, msg: OutMsg) -> Result<(), SendError> {
        self.0.emit(msg, false);
        Ok(())
    }
}

/// One HTTP session on its owner shard.
pub struct HttpSession {
    /// The id.
    pub id: SessionId,
    /// The hosted server it belongs to: only its endpoint knows the session.
    pub server: String,
    /// The legacy HTTP+SSE transport (every message on the GET stream).
    pub legacy: bool,
    session: RefCell<Session>,
    standalone: Rc<EventStream>,
    streams: RefCell<VecDeque<Rc<EventStream>>>,
    next_stream: Cell<u64>,
    last_active: Cell<Instant>,
}

impl HttpSession {
    /// Seconds-resolution idleness check for the sweeper.
    pub fn idle_since(&self) -> Instant {
        self.last_active.get()
    }

    /// Whether a client holds the standalone stream open.
    pub fn has_listener(&self) -> bool {
        self.standalone.has_live_target()
    }

    /// Refuses new requests from now on (-32004); running ones go on.
    pub fn begin_shutdown(&self) {
        self.session.borrow_mut().begin_shutdown();
    }

    /// Requests running now.
    pub fn in_flight(&self) -> usize {
        self.session.borrow().in_flight()
    }

    /// The negotiated revision.
    pub fn revision(&self) -> crate::mcp::Revision {
        self.session.borrow().core().revision()
    }

    /// Stops sending to the receiver at `addr` (shard, exchange): its client went away.
    pub fn detach(&self, addr: (usize, u64)) {
        let here = self
            .standalone
            .shard
            .upgrade()
            .map_or(usize::MAX, |s| s.index);
        self.standalone.detach(addr, here);
        for st in self.streams.borrow().iter() {
            st.detach(addr, here);
        }
    }

    fn close(&self) {
        let s = self.session.borrow();
        s.cancel_all();
        self.standalone.end();
        for st in self.streams.borrow().iter() {
            if !st.done.get() {
                st.end();
            }
        }
    }
}

/// Creates a session on this shard (its id routes here) and answers its `initialize`, or
/// a legacy session for a GET on the legacy SSE endpoint. Returns the session and, for
/// Streamable HTTP, the initialize answer.
pub fn create(
    shard: &Rc<Shard>,
    http: &HttpShared,
    server: &str,
    legacy: bool,
) -> Result<Rc<HttpSession>, ErrorObject> {
    let srv = shard
        .servers
        .get(server)
        .cloned()
        .ok_or_else(|| ErrorObject::invalid_params(format!("no server named {server:?}")))?;
    if http.sessions.borrow().len() >= shard.config.limits.sessions_per_shard_max {
        return Err(ErrorObject::new(
            code::LIMIT_EXCEEDED,
            format!(
                "session limit reached (sessions_per_shard_max = {})",
                shard.config.limits.sessions_per_shard_max
            ),
        ));
    }
    let id = shard
        .mint_session_id()
        .map_err(|e| ErrorObject::internal(e.to_string()))?;
    let replay_max = shard.config.http.sse_replay_events_max;
    let standalone = EventStream::new(0, shard, None, replay_max);
    let out: Rc<dyn Outbound> = Rc::new(SessionOutbound(standalone.clone()));
    let host = ConnHost::new(shard.clone(), out.clone());
    let core = SessionCore::new(id, srv, out, host, shard.core_limits());
    let s = Rc::new(HttpSession {
        id,
        server: server.to_string(),
        legacy,
        session: RefCell::new({
            let mut session = Session::new(core);
            // Its messages may arrive over several connections, each metered on its own
            // (`super::respond`); the session meters the shard's rate and its tool calls.
            session.set_gate(shard.gate.session_gate(false));
            session
        }),
        standalone,
        streams: RefCell::new(VecDeque::new()),
        next_stream: Cell::new(1),
        last_active: Cell::new(Instant::now()),
    });
    http.sessions.borrow_mut().insert(id, s.clone());
    Ok(s)
}

/// Removes a session: cancels its requests, ends its streams, drops it from the registry.
pub fn remove(shard: &Rc<Shard>, http: &HttpShared, id: &SessionId) -> bool {
    let Some(s) = http.sessions.borrow_mut().remove(id) else {
        return false;
    };
    s.close();
    shard.unregister_session(id);
    true
}

fn full(status: u16, body: Vec<u8>) -> ReplyEvent {
    ReplyEvent::Full {
        status,
        headers: Vec::new(),
        body,
    }
}

/// A final answer: `status` with a JSON-RPC error body (invalid request) saying `message`.
fn error_reply(status: u16, message: impl Into<String>) -> ReplyEvent {
    full(
        status,
        rpc_error_body(&ErrorObject::new(code::INVALID_REQUEST, message)),
    )
}

/// The answer to a POST whose every message admission control refused: `body` (the
/// refusals as JSON-RPC errors) with `Retry-After`, under the status [`refusal_status`] picks.
fn overload_reply(
    shard: &Shard,
    why: &Overload,
    answers_requests: bool,
    body: Vec<u8>,
) -> ReplyEvent {
    ReplyEvent::Full {
        status: refusal_status(shard, why, answers_requests),
        headers: vec![("Retry-After".into(), why.retry_after_s().to_string())],
        body,
    }
}

/// The HTTP status of a refused POST. When the body answers requests, 200 unless
/// `http.overload_http_status`: SDK clients fail the whole transport on any other status,
/// while a JSON-RPC error for the request's id fails only that call (the `Retry-After`
/// header still carries the advice). Refused notifications have no id to answer, so the
/// status is the only answer they get: the overload's own.
fn refusal_status(shard: &Shard, why: &Overload, answers_requests: bool) -> u16 {
    if answers_requests && !shard.config.http.overload_http_status {
        200
    } else {
        why.http_status()
    }
}

fn rpc_error_body(error: &ErrorObject) -> Vec<u8> {
    jsonrpc::encode_error(None, error)
}

/// Runs one operation on a session this shard owns, answering through `reply`. A session
/// is found only at the endpoint of its own `server`.
pub fn apply(
    shard: &Rc<Shard>,
    http: &HttpShared,
    id: SessionId,
    server: &str,
    op: SessionOp,
    reply: ReplyTo,
) {
    let found = http.sessions.borrow().get(&id).cloned();
    let Some(s) = found.filter(|s| s.server == server) else {
        reply.send(
            shard,
            error_reply(404, "session not found (unknown or ended Mcp-Session-Id)"),
        );
        return;
    };
    s.last_active.set(Instant::now());
    match op {
        SessionOp::Delete => {
            remove(shard, http, &id);
            reply.send(shard, full(200, Vec::new()));
        }
        SessionOp::Get { last_event_id } => get(shard, &s, last_event_id, reply),
        SessionOp::Post { mut body } => post(shard, &s, &mut body, reply),
    }
}

fn get(shard: &Rc<Shard>, s: &Rc<HttpSession>, last_event_id: Option<String>, reply: ReplyTo) {
    let resume = last_event_id.as_deref().and_then(|l| {
        let (stream, seq) = l.split_once('-')?;
        Some((stream.parse::<u64>().ok()?, seq.parse::<u64>().ok()?))
    });
    match resume {
        Some((n, seq)) if n != 0 => {
            let stream = s.streams.borrow().iter().find(|st| st.number == n).cloned();
            match stream {
                Some(st) => {
                    reply.send(shard, ReplyEvent::Open);
                    st.resume(reply, seq, shard)
                }
                None => {
                    reply.send(
                        shard,
                        error_reply(
                            404,
                            format!("no stream to resume for Last-Event-ID {n}-{seq}"),
                        ),
                    );
                }
            }
        }
        _ => {
            if s.standalone.has_live_target() {
                reply.send(
                    shard,
                    error_reply(409, "this session already has a standalone SSE stream open"),
                );
                return;
            }
            // Without Last-Event-ID nothing is replayed: the stream starts now.
            let after = resume.map_or(u64::MAX, |(_, q)| q);
            reply.send(shard, ReplyEvent::Open);
            s.standalone.resume(reply, after, shard);
        }
    }
}

fn post(shard: &Rc<Shard>, s: &Rc<HttpSession>, body: &mut [u8], reply: ReplyTo) {
    if !s.legacy {
        // Over a message rate the POST is refused before its body is parsed.
        let shed = s.session.borrow_mut().shed(body);
        if let Some((why, answer)) = shed {
            let (answers_request, body) = match answer {
                Some(b) => (true, b),
                None => (false, rpc_error_body(&why.to_error())),
            };
            reply.send(shard, overload_reply(shard, &why, answers_request, body));
            return;
        }
    }
    let batch_max = shard.config.limits.batch_messages_max;
    let frame = match jsonrpc::parse_frame(body, batch_max) {
        Ok(f) => f,
        Err(e) => {
            let error = e.to_error();
            shard.stats().messages_received.inc();
            shard.request_probe(None).finish(Some(error.code));
            reply.send(shard, full(400, rpc_error_body(&error)));
            return;
        }
    };
    let has_request = match &frame {
        Frame::Single(Ok(Message::Request { .. })) => true,
        Frame::Single(_) => false,
        Frame::Batch(items) => items
            .iter()
            .any(|m| matches!(m, Ok(Message::Request { .. }))),
    };
    if s.legacy {
        // Legacy transport: every answer goes on the session's SSE stream; the POST only
        // says it was accepted.
        let reply_msg = s.session.borrow_mut().on_parsed(frame, None);
        let reply_msg = reply_msg.settle();
        let out = s.standalone.clone();
        match reply_msg {
            Reply::None => {}
            Reply::Now(b) => out.emit(OutMsg::Owned(b), false),
            Reply::Later(fut) => {
                glommio::spawn_local(async move {
                    if let Some(b) = fut.await {
                        out.emit(OutMsg::Owned(b), false);
                    }
                })
                .detach();
            }
        }
        reply.send(shard, full(202, Vec::new()));
        return;
    }
    if !has_request {
        let (r, refused) = {
            let mut session = s.session.borrow_mut();
            let r = session.on_parsed(frame, None);
            (r, session.take_refusal())
        };
        if let Some(why) = refused {
            reply.send(
                shard,
                overload_reply(shard, &why, false, rpc_error_body(&why.to_error())),
            );
            return;
        }
        match r {
            Reply::Now(b) => reply.send(shard, full(400, b)),
            _ => reply.send(shard, full(202, Vec::new())),
        };
        return;
    }
    let number = s.next_stream.get();
    s.next_stream.set(number + 1);
    let stream = EventStream::new(
        number,
        shard,
        Some(reply),
        shard.config.http.sse_replay_events_max,
    );
    {
        let mut streams = s.streams.borrow_mut();
        // A finished stream with nothing to replay (answered as plain JSON) is of no more use.
        streams.retain(|st| !(st.done.get() && st.replay.borrow().is_empty()));
        // Keep the streams still running and the most recent finished ones.
        let keep = shard.config.http.streams_per_session_max;
        while streams.len() >= keep {
            match streams.iter().position(|st| st.done.get()) {
                Some(i) => {
                    streams.remove(i);
                }
                None => break,
            }
        }
        streams.push_back(stream.clone());
    }
    let out: Rc<dyn Outbound> = Rc::new(StreamOutbound(stream.clone()));
    let (r, refused) = {
        let mut session = s.session.borrow_mut();
        let r = session.on_parsed(frame, Some(out));
        (r, session.take_refusal())
    };
    let r = match (refused, r) {
        (Some(why), Reply::Now(errors)) => {
            // Nothing of the POST was admitted: an HTTP answer that says so, and no stream.
            s.streams.borrow_mut().retain(|st| !Rc::ptr_eq(st, &stream));
            stream.done.set(true);
            let to = stream.target.borrow_mut().take();
            if let Some(to) = to {
                to.send(shard, overload_reply(shard, &why, true, errors));
            }
            return;
        }
        (_, r) => r.settle(),
    };
    match r {
        Reply::None => stream.end(),
        Reply::Now(b) => stream.emit(OutMsg::Owned(b), true),
        Reply::Later(fut) => {
            glommio::spawn_local(async move {
                match fut.await {
                    Some(b) => stream.emit(OutMsg::Owned(b), true),
                    None => stream.end(),
                }
            })
            .detach();
        }
    }
}

/// Handles the first POST of a session (no `Mcp-Session-Id`): it must be `initialize`.
/// Returns the answer body and the new session id, or the whole HTTP answer when no session
/// was made.
pub fn initialize(
    shard: &Rc<Shard>,
    http: &HttpShared,
    server: &str,
    body: &mut [u8],
) -> Result<(Vec<u8>, SessionId), Response> {
    let frame =
        jsonrpc::parse_frame(body, shard.config.limits.batch_messages_max).map_err(|e| {
            let e = e.to_error();
            shard.stats().messages_received.inc();
            shard.request_probe(None).finish(Some(e.code));
            http_reply(400, Vec::new(), rpc_error_body(&e))
        })?;
    let is_init = matches!(&frame, Frame::Single(Ok(Message::Request { method, .. })) if method == "initialize");
    if !is_init {
        return Err(Response::error(
            400,
            "missing Mcp-Session-Id header (only initialize may come without one)",
        ));
    }
    // The session limit frees when a session ends: no clock can say when, so the fixed hint.
    let s = create(shard, http, server, false).map_err(|e| {
        let retry_s = crate::limits::BUSY_RETRY_AFTER_MS.div_ceil(1000);
        http_reply(
            503,
            vec![("Retry-After".into(), retry_s.to_string())],
            rpc_error_body(&e),
        )
    })?;
    let (reply, refused) = {
        let mut session = s.session.borrow_mut();
        let r = session.on_parsed(frame, None);
        (r, session.take_refusal())
    };
    let bytes = match reply {
        Reply::Now(b) => b,
        _ => Vec::new(),
    };
    if !s.session.borrow().is_initialized() {
        remove(shard, http, &s.id);
        return Err(match refused {
            Some(why) => http_reply(
                refusal_status(shard, &why, true),
                vec![("Retry-After".into(), why.retry_after_s().to_string())],
                bytes,
            ),
            None => http_reply(200, Vec::new(), bytes),
        });
    }
    Ok((bytes, s.id))
}

fn http_reply(status: u16, headers: Vec<(String, String)>, body: Vec<u8>) -> Response {
    Response::Full {
        status,
        headers,
        body,
    }
}

/// The legacy `endpoint` event data for a session.
pub fn legacy_endpoint(base: &str, id: &SessionId) -> String {
    format!("{base}/messages?sessionId={id}")
}

/// The JSON-RPC error body of an HTTP-level error.
pub fn error_json(message: &str) -> Vec<u8> {
    rpc_error_body(&ErrorObject::new(code::INVALID_REQUEST, message))
}
