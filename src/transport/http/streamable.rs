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
use super::HttpShared;
use crate::jsonrpc::{self, code, ErrorObject, Frame, Message};
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
    pub fn emit(&self, bytes: Rc<[u8]>, last: bool) {
        let seq = self.next_seq.get();
        self.next_seq.set(seq + 1);
        {
            let mut r = self.replay.borrow_mut();
            if r.len() >= self.replay_max {
                r.pop_front();
            }
            r.push_back((seq, bytes.clone(), last));
        }
        if last {
            self.done.set(true);
        }
        let target = self.target.borrow().clone();
        if let (Some(t), Some(shard)) = (target, self.shard.upgrade()) {
            let ev = ReplyEvent::Message {
                event_id: Some(self.event_id(seq)),
                bytes: bytes.to_vec(),
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
        self.0.emit(msg.as_bytes().into(), false);
        Ok(())
    }
}

/// A request stream's outbound: progress, logs and server-to-client requests of the
/// requests that came in one POST.
struct StreamOutbound(Rc<EventStream>);

impl Outbound for StreamOutbound {
    fn send(&self, msg: OutMsg) -> Result<(), SendError> {
        self.0.emit(msg.as_bytes().into(), false);
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
        session: RefCell::new(Session::new(core)),
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
    shard.partition.borrow_mut().remove(id);
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
    let batch_max = shard.config.limits.batch_messages_max;
    let frame = match jsonrpc::parse_frame(body, batch_max) {
        Ok(f) => f,
        Err(e) => {
            reply.send(shard, full(400, rpc_error_body(&e.to_error())));
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
        let out = s.standalone.clone();
        match reply_msg {
            Reply::None => {}
            Reply::Now(b) => out.emit(b.into(), false),
            Reply::Later(fut) => {
                glommio::spawn_local(async move {
                    if let Some(b) = fut.await {
                        out.emit(b.into(), false);
                    }
                })
                .detach();
            }
        }
        reply.send(shard, full(202, Vec::new()));
        return;
    }
    if !has_request {
        let r = s.session.borrow_mut().on_parsed(frame, None);
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
    let r = s.session.borrow_mut().on_parsed(frame, Some(out));
    match r {
        Reply::None => stream.end(),
        Reply::Now(b) => stream.emit(b.into(), true),
        Reply::Later(fut) => {
            glommio::spawn_local(async move {
                match fut.await {
                    Some(b) => stream.emit(b.into(), true),
                    None => stream.end(),
                }
            })
            .detach();
        }
    }
}

/// Handles the first POST of a session (no `Mcp-Session-Id`): it must be `initialize`.
/// Returns the answer body and the new session id.
pub fn initialize(
    shard: &Rc<Shard>,
    http: &HttpShared,
    server: &str,
    body: &mut [u8],
) -> Result<(Vec<u8>, SessionId), (u16, Vec<u8>)> {
    let frame = jsonrpc::parse_frame(body, shard.config.limits.batch_messages_max)
        .map_err(|e| (400, rpc_error_body(&e.to_error())))?;
    let is_init = matches!(&frame, Frame::Single(Ok(Message::Request { method, .. })) if method == "initialize");
    if !is_init {
        return Err((
            400,
            error_json("missing Mcp-Session-Id header (only initialize may come without one)"),
        ));
    }
    let s = create(shard, http, server, false).map_err(|e| (503, rpc_error_body(&e)))?;
    let reply = s.session.borrow_mut().on_parsed(frame, None);
    let bytes = match reply {
        Reply::Now(b) => b,
        _ => Vec::new(),
    };
    if !s.session.borrow().is_initialized() {
        remove(shard, http, &s.id);
        return Err((200, bytes));
    }
    Ok((bytes, s.id))
}

/// The legacy `endpoint` event data for a session.
pub fn legacy_endpoint(base: &str, id: &SessionId) -> String {
    format!("{base}/messages?sessionId={id}")
}

/// The JSON-RPC error body of an HTTP-level error.
pub fn error_json(message: &str) -> Vec<u8> {
    rpc_error_body(&ErrorObject::new(code::INVALID_REQUEST, message))
}
