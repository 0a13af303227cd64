//! The session state machine for the session-based revisions (2024-11-05 .. 2025-11-25):
//! lifecycle (initialize, notifications/initialized), request tracking and cancellation,
//! batches, routing of the client's responses to our requests. Sans-I/O: it takes a frame's
//! bytes and returns bytes now or a future that yields bytes; the transport runs the future
//! on its shard and writes what comes out.

use crate::jsonrpc::{self, code, ErrorObject, Frame, Id, Invalid, Message};
use crate::limits::{InFlight, Overload, SessionGate};
use crate::mcp::dispatch::{dispatch, Dispatched, Request};
use crate::mcp::revision::Revision;
use crate::metrics::RequestProbe;
use crate::rt::{CancelToken, Outbound};
use crate::server::{Ctx, SessionCore};
use futures_lite::future::BoxedLocal;
use futures_lite::FutureExt;
use serde_json::{json, Map, Value};
use std::cell::RefCell;
use std::collections::HashMap;
use std::panic::AssertUnwindSafe;
use std::rc::Rc;
use std::task::Poll;

/// What the transport does with a frame.
pub enum Reply {
    /// Nothing to send (notifications, responses, cancelled requests).
    None,
    /// Send these bytes now.
    Now(Vec<u8>),
    /// Run this future on the shard and send its bytes, if any, when it ends.
    Later(BoxedLocal<Option<Vec<u8>>>),
}

impl Reply {
    /// Polls a `Later` reply once, so a handler that finishes without waiting (most tool
    /// calls) is answered without spawning a task. Call it after releasing any borrow of
    /// the session: the handler runs here. A future still pending keeps working when it is
    /// spawned: its next poll registers the task's waker, replacing this no-op one.
    pub fn settle(self) -> Reply {
        match self {
            Reply::Later(mut fut) => {
                let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
                match fut.as_mut().poll(&mut cx) {
                    std::task::Poll::Ready(Some(b)) => Reply::Now(b),
                    std::task::Poll::Ready(None) => Reply::None,
                    std::task::Poll::Pending => Reply::Later(fut),
                }
            }
            other => other,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Waiting for `initialize`.
    New,
    /// `initialize` answered; `ready` once `notifications/initialized` arrived.
    Initialized { ready: bool },
}

/// One client session.
pub struct Session {
    core: Rc<SessionCore>,
    state: State,
    in_flight: Rc<RefCell<HashMap<Id, CancelToken>>>,
    shutting_down: bool,
    /// Set only while [`Session::on_parsed`] runs.
    request_out: Option<Rc<dyn Outbound>>,
    /// Admission control (rates, the shard's in-flight bound); `None` admits everything.
    gate: Option<SessionGate>,
    /// Messages of the frame being handled, and those admission control refused.
    frame_messages: usize,
    frame_refused: usize,
    frame_refusal: Option<Overload>,
}

impl Session {
    /// A session waiting for `initialize`.
    pub fn new(core: Rc<SessionCore>) -> Self {
        Session {
            core,
            state: State::New,
            in_flight: Rc::new(RefCell::new(HashMap::new())),
            shutting_down: false,
            request_out: None,
            gate: None,
            frame_messages: 0,
            frame_refused: 0,
            frame_refusal: None,
        }
    }

    /// Puts the session's messages under admission control (see [`crate::limits`]).
    pub fn set_gate(&mut self, gate: SessionGate) {
        self.gate = Some(gate);
    }

    /// Why admission control refused every message of the last frame, if it did (then a
    /// transport that can say so answers with the overload's HTTP status and Retry-After).
    pub fn take_refusal(&mut self) -> Option<Overload> {
        let all = self.frame_messages > 0 && self.frame_refused == self.frame_messages;
        self.frame_refusal.take().filter(|_| all)
    }

    /// The shared core.
    pub fn core(&self) -> &Rc<SessionCore> {
        &self.core
    }

    /// Whether `initialize` has been answered.
    pub fn is_initialized(&self) -> bool {
        matches!(self.state, State::Initialized { .. })
    }

    /// Requests being handled now.
    pub fn in_flight(&self) -> usize {
        self.in_flight.borrow().len()
    }

    /// From now on new requests are refused with -32004; running ones go on.
    pub fn begin_shutdown(&mut self) {
        self.shutting_down = true;
    }

    /// Cancels every running request (the connection is closing).
    pub fn cancel_all(&self) {
        let tokens: Vec<CancelToken> = self.in_flight.borrow().values().cloned().collect();
        for t in tokens {
            t.cancel();
        }
    }

    /// Refusal before parsing. When the message rates have no token left for it, a frame
    /// that is one request or notification ([`jsonrpc::skim`]) is refused here, for a
    /// fraction of what serving it costs: `Some` is the refusal and, for a request, its
    /// encoded error response (a refused notification gets none). `None`: go on and parse;
    /// the message is metered then, as every other. Frames the skim leaves alone (batches,
    /// responses, anything unusual) and sessions shutting down are never refused here.
    pub fn shed(&mut self, buf: &[u8]) -> Option<(Overload, Option<Vec<u8>>)> {
        if self.shutting_down {
            return None;
        }
        // Only a message about to be refused pays for the skim.
        let host = &self.core.host;
        let gate = self.gate.as_ref()?;
        let why = gate.message_refusal(|| host.now())?;
        let skimmed = jsonrpc::skim(buf)?;
        let why = gate.refuse(why);
        // What on_parsed would have set for this one-message frame.
        (self.frame_messages, self.frame_refused) = (1, 1);
        self.frame_refusal = Some(why);
        host.message_received();
        let answer = skimmed.id.map(|raw_id| {
            if let Some(p) = host.request_probe(Some(skimmed.method)) {
                p.finish(Some(why.code()));
            }
            why.encode_for_raw_id(raw_id)
        });
        Some((why, answer))
    }

    /// Handles one frame (one line on TCP/stdio). The buffer is parsed in place.
    pub fn on_frame(&mut self, buf: &mut [u8]) -> Reply {
        if let Some((_, answer)) = self.shed(buf) {
            return answer.map_or(Reply::None, Reply::Now);
        }
        match jsonrpc::parse_frame(buf, self.core.limits.batch_max) {
            Ok(f) => self.on_parsed(f, None),
            Err(e) => {
                self.core.host.message_received();
                let probe = self.core.host.request_probe(None);
                match observed(probe, Item::Now(jsonrpc::encode_error(None, &e.to_error()))) {
                    Item::Now(b) => Reply::Now(b),
                    _ => Reply::None,
                }
            }
        }
    }

    /// Handles an already parsed frame. `out`, when given, receives the messages the
    /// frame's requests emit before their results (progress, logs, server-to-client
    /// requests): on Streamable HTTP, the stream of the POST that carried them.
    pub fn on_parsed(&mut self, frame: Frame, out: Option<Rc<dyn Outbound>>) -> Reply {
        self.request_out = out;
        self.frame_messages = 0;
        self.frame_refused = 0;
        self.frame_refusal = None;
        let reply = self.on_parsed_inner(frame);
        self.request_out = None;
        reply
    }

    fn on_parsed_inner(&mut self, frame: Frame) -> Reply {
        match frame {
            Frame::Single(item) => match self.on_item(item, false) {
                Item::None => Reply::None,
                Item::Now(b) => Reply::Now(b),
                Item::Later(f) => Reply::Later(f),
            },
            Frame::Batch(items) => self.on_batch(items),
        }
    }

    fn on_batch(&mut self, items: Vec<Result<Message, Invalid>>) -> Reply {
        let rev = self.core.revision();
        if !self.is_initialized() || !rev.allows_batch() {
            let why = if self.is_initialized() {
                format!(
                    "JSON-RPC batches are not part of revision {} (only 2025-03-26)",
                    rev.as_str()
                )
            } else {
                "JSON-RPC batches are accepted only after initialize, under revision 2025-03-26"
                    .to_string()
            };
            self.core.host.message_received();
            let probe = self.core.host.request_probe(None);
            let refused = Item::Now(jsonrpc::encode_error(
                None,
                &ErrorObject::new(code::INVALID_REQUEST, why),
            ));
            return match observed(probe, refused) {
                Item::Now(b) => Reply::Now(b),
                _ => Reply::None,
            };
        }
        let outs: Vec<Item> = items.into_iter().map(|m| self.on_item(m, true)).collect();
        if outs.iter().all(|o| matches!(o, Item::None)) {
            return Reply::None;
        }
        if !outs.iter().any(|o| matches!(o, Item::Later(_))) {
            let parts: Vec<Vec<u8>> = outs
                .into_iter()
                .filter_map(|o| match o {
                    Item::Now(b) => Some(b),
                    _ => None,
                })
                .collect();
            return Reply::Now(jsonrpc::encode_batch(&parts));
        }
        Reply::Later(Box::pin(async move {
            let parts: Vec<Vec<u8>> = join_all(outs).await.into_iter().flatten().collect();
            (!parts.is_empty()).then(|| jsonrpc::encode_batch(&parts))
        }))
    }

    fn on_item(&mut self, item: Result<Message, Invalid>, in_batch: bool) -> Item {
        self.core.host.message_received();
        self.frame_messages += 1;
        let msg = match item {
            Ok(m) => m,
            Err(inv) => {
                let probe = self.core.host.request_probe(None);
                return observed(
                    probe,
                    Item::Now(jsonrpc::encode_error(
                        inv.id.as_ref(),
                        &ErrorObject::new(
                            code::INVALID_REQUEST,
                            format!("invalid request: {}", inv.reason),
                        ),
                    )),
                );
            }
        };
        match msg {
            Message::Notification { method, params } => {
                // Over a rate a notification is dropped (and counted): there is no one to
                // answer.
                if self.admit_message().is_ok() {
                    self.on_notification(&method, params);
                }
                Item::None
            }
            Message::Response { id, outcome } => {
                if !self.core.complete_client_request(&id, outcome) {
                    tracing::debug!(session = %self.core.id, %id, "response to no request of ours dropped");
                }
                Item::None
            }
            Message::Request { id, method, params } => {
                let probe = self.core.host.request_probe(Some(&method));
                observed(probe, self.on_request(id, &method, params, in_batch))
            }
        }
    }

    /// Admits one request or notification under the message rates (responses answer our
    /// own requests, which their own bound limits, and are not metered).
    fn admit_message(&mut self) -> Result<(), Overload> {
        let Some(gate) = self.gate.as_mut() else {
            return Ok(());
        };
        let host = &self.core.host;
        gate.message(|| host.now()).map_err(|o| self.refused(o))
    }

    /// Records a refusal of the current message by admission control.
    fn refused(&mut self, o: Overload) -> Overload {
        self.frame_refused += 1;
        self.frame_refusal = Some(o);
        o
    }

    fn on_notification(&mut self, method: &str, params: Option<Value>) {
        match method {
            "notifications/initialized" => {
                if let State::Initialized { ready } = &mut self.state {
                    *ready = true;
                }
            }
            "notifications/cancelled" => {
                let id = params
                    .as_ref()
                    .and_then(|p| p.get("requestId"))
                    .and_then(Id::from_value);
                if let Some(id) = id {
                    if let Some(token) = self.in_flight.borrow().get(&id) {
                        tracing::debug!(session = %self.core.id, %id, "request cancelled by the client");
                        token.cancel();
                    }
                }
            }
            other => {
                tracing::trace!(session = %self.core.id, method = other, "notification ignored");
            }
        }
    }

    fn on_request(&mut self, id: Id, method: &str, params: Option<Value>, in_batch: bool) -> Item {
        let err = |e: ErrorObject| Item::Now(jsonrpc::encode_error(Some(&id), &e));
        if self.shutting_down {
            return err(ErrorObject::new(
                code::SHUTTING_DOWN,
                "server is shutting down",
            ));
        }
        if let Err(o) = self.admit_message() {
            return err(o.to_error());
        }
        if method == "initialize" {
            if in_batch {
                return err(ErrorObject::new(
                    code::INVALID_REQUEST,
                    "initialize must not be part of a JSON-RPC batch",
                ));
            }
            return match self.initialize(params) {
                Ok(v) => Item::Now(jsonrpc::encode_result(&id, &v)),
                Err(e) => err(e),
            };
        }
        if !self.is_initialized() && method != "ping" {
            return err(ErrorObject::new(
                code::INVALID_REQUEST,
                format!("session not initialized: send initialize before {method}"),
            ));
        }
        let params = match jsonrpc::params_object(params) {
            Ok(p) => p,
            Err(e) => return err(e),
        };
        if self.in_flight.borrow().contains_key(&id) {
            return err(ErrorObject::new(
                code::INVALID_REQUEST,
                format!("request id {id} is already in flight"),
            ));
        }
        if method == "tools/call" {
            if let Some(gate) = self.gate.as_mut() {
                let host = &self.core.host;
                if let Err(o) = gate.tool_call(|| host.now()) {
                    return err(self.refused(o).to_error());
                }
            }
        }
        if self.in_flight.borrow().len() >= self.core.limits.in_flight_max {
            let o = match &self.gate {
                Some(g) => g.session_full(),
                None => Overload::SessionInFlight {
                    max: self.core.limits.in_flight_max,
                },
            };
            return err(self.refused(o).to_error());
        }
        // The shard's bound is checked before the handler exists, so a refused request has
        // not started anything (its breaker included): safe to retry.
        if let Some(Err(o)) = self.gate.as_ref().map(SessionGate::room) {
            return err(self.refused(o).to_error());
        }
        let progress_token = params
            .get("_meta")
            .and_then(|m| m.get("progressToken"))
            .filter(|t| t.is_string() || t.is_number())
            .cloned();
        let token = CancelToken::new();
        let mut ctx = Ctx::new(self.core.clone(), progress_token, token.clone());
        if let Some(out) = &self.request_out {
            ctx = ctx.with_out(out.clone());
        }
        let req = Request {
            core: &self.core,
            params,
            ctx,
        };
        match dispatch(req, method) {
            Dispatched::Ready(Ok(v)) => Item::Now(jsonrpc::encode_result(&id, &v)),
            Dispatched::Ready(Err(e)) => err(e),
            Dispatched::Pending(fut) => {
                self.in_flight
                    .borrow_mut()
                    .insert(id.clone(), token.clone());
                let guard = InFlightGuard {
                    map: self.in_flight.clone(),
                    id: id.clone(),
                    _shard: self.gate.as_ref().map(SessionGate::enter),
                };
                let method = method.to_string();
                let session = self.core.id;
                Item::Later(Box::pin(async move {
                    let _guard = guard;
                    let run = async { Some(AssertUnwindSafe(fut).catch_unwind().await) };
                    let cancelled = async {
                        token.cancelled().await;
                        None
                    };
                    match run.or(cancelled).await {
                        // Cancelled: the client asked us not to answer. `or` polls the
                        // handler first, so a handler that wakes in the same turn as the
                        // cancellation can still finish (long_task returns "cancelled after
                        // N steps"); its answer is dropped as well.
                        None => None,
                        Some(_) if token.is_cancelled() => None,
                        Some(Ok(Ok(v))) => Some(jsonrpc::encode_result(&id, &v)),
                        Some(Ok(Err(e))) => Some(jsonrpc::encode_error(Some(&id), &e)),
                        Some(Err(panic)) => {
                            let what = panic
                                .downcast_ref::<&str>()
                                .map(|s| s.to_string())
                                .or_else(|| panic.downcast_ref::<String>().cloned())
                                .unwrap_or_else(|| "unknown panic".into());
                            tracing::error!(%session, %method, "handler panicked: {what}");
                            Some(jsonrpc::encode_error(
                                Some(&id),
                                &ErrorObject::internal(format!(
                                    "internal error: the {method} handler failed"
                                )),
                            ))
                        }
                    }
                }))
            }
        }
    }

    fn initialize(&mut self, params: Option<Value>) -> Result<Value, ErrorObject> {
        if self.is_initialized() {
            return Err(ErrorObject::new(
                code::INVALID_REQUEST,
                "session already initialized",
            ));
        }
        let p = jsonrpc::params_object(params)?;
        let requested = p
            .get("protocolVersion")
            .and_then(Value::as_str)
            .ok_or_else(|| {
                ErrorObject::invalid_params("params.protocolVersion (string) is required")
            })?;
        let capabilities = match p.get("capabilities") {
            None => json!({}),
            Some(Value::Object(c)) => Value::Object(c.clone()),
            Some(_) => {
                return Err(ErrorObject::invalid_params(
                    "params.capabilities must be an object",
                ))
            }
        };
        let rev = Revision::negotiate(requested);
        let server = &self.core.server;
        self.core
            .host
            .register(&self.core.id, &server.name)
            .map_err(|why| ErrorObject::new(code::LIMIT_EXCEEDED, why))?;
        self.core.revision.set(rev);
        self.core.client_capabilities.set(&capabilities);
        self.core
            .client_info
            .set(p.get("clientInfo").unwrap_or(&Value::Null));
        self.state = State::Initialized { ready: false };
        Ok(initialize_result(&self.core, rev))
    }
}

/// The `initialize` result: negotiated revision, capabilities, server info, instructions.
pub fn initialize_result(core: &SessionCore, rev: Revision) -> Value {
    let server = &core.server;
    let mut result = Map::new();
    result.insert("protocolVersion".into(), json!(rev.as_str()));
    result.insert("capabilities".into(), server_capabilities(rev));
    result.insert(
        "serverInfo".into(),
        crate::mcp::methods::discover::server_info(server, rev),
    );
    if let Some(i) = &server.instructions {
        result.insert("instructions".into(), json!(i));
    }
    // Which shard holds the session: operators and tests use it to see where the kernel's
    // SO_REUSEPORT spread put a connection.
    result.insert(
        "_meta".into(),
        json!({"ringmcp/shard": core.limits.shard, "ringmcp/session": core.id.to_string()}),
    );
    Value::Object(result)
}

/// What every ringmcp server offers.
pub fn server_capabilities(rev: Revision) -> Value {
    let mut caps = json!({
        "tools": {"listChanged": true},
        "resources": {"subscribe": true, "listChanged": true},
        "prompts": {"listChanged": true},
        "logging": {},
    });
    if rev.has_annotations_and_audio() {
        caps["completions"] = json!({});
    }
    caps
}

/// Removes a request from the in-flight map however its future ends (answered, cancelled,
/// or dropped because the connection closed).
struct InFlightGuard {
    map: Rc<RefCell<HashMap<Id, CancelToken>>>,
    id: Id,
    /// The request's place in the shard's in-flight count.
    _shard: Option<InFlight>,
}

impl Drop for InFlightGuard {
    fn drop(&mut self) {
        let mut map = self.map.borrow_mut();
        map.remove(&self.id);
        if map.is_empty() {
            // An idle session keeps no table (a few hundred bytes each, times every idle
            // connection); the next request allocates it again.
            map.shrink_to_fit();
        }
    }
}

enum Item {
    None,
    Now(Vec<u8>),
    Later(BoxedLocal<Option<Vec<u8>>>),
}

/// Hands the answer of a request to its metrics probe when it is ready: now, or when the
/// handler's future yields it (a future that yields nothing, or is dropped, leaves the
/// probe unfinished: a request without an answer).
fn observed(probe: Option<RequestProbe>, item: Item) -> Item {
    let Some(probe) = probe else {
        return item;
    };
    match item {
        Item::Now(bytes) => {
            probe.finish_encoded(&bytes);
            Item::Now(bytes)
        }
        Item::Later(fut) => Item::Later(Box::pin(async move {
            let bytes = fut.await;
            if let Some(b) = &bytes {
                probe.finish_encoded(b);
            }
            bytes
        })),
        Item::None => Item::None,
    }
}

/// Runs the items of a batch concurrently and returns their outputs in order.
async fn join_all(items: Vec<Item>) -> Vec<Option<Vec<u8>>> {
    let mut outs: Vec<Option<Vec<u8>>> = Vec::with_capacity(items.len());
    let mut futs: Vec<Option<BoxedLocal<Option<Vec<u8>>>>> = Vec::with_capacity(items.len());
    for it in items {
        match it {
            Item::None => {
                outs.push(None);
                futs.push(None);
            }
            Item::Now(b) => {
                outs.push(Some(b));
                futs.push(None);
            }
            Item::Later(f) => {
                outs.push(None);
                futs.push(Some(f));
            }
        }
    }
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (i, slot) in futs.iter_mut().enumerate() {
            if let Some(f) = slot {
                match f.as_mut().poll(cx) {
                    Poll::Ready(v) => {
                        outs[i] = v;
                        *slot = None;
                    }
                    Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            Poll::Pending
        } else {
            Poll::Ready(())
        }
    })
    .await;
    outs
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Limits;
    use crate::limits::ShardGate;
    use crate::metrics::Reject;
    use crate::rt::{Host, OutMsg, SendError};
    use crate::server::{CoreLimits, McpServer, Tool, ToolOutput};
    use ringmcp_shards::SessionId;
    use std::cell::Cell;
    use std::time::{Duration, Instant};

    /// A host whose clock moves only when a test moves it, and whose sleeps never end (a
    /// tool that sleeps stays in flight until its future is dropped).
    struct Clock(Cell<Instant>);

    impl Outbound for Clock {
        fn send(&self, _: OutMsg) -> Result<(), SendError> {
            Ok(())
        }
    }

    impl Host for Clock {
        fn sleep(&self, _: Duration) -> BoxedLocal<()> {
            Box::pin(futures_lite::future::pending())
        }
        crate::rt::host_without_registry!();
        fn now(&self) -> Instant {
            self.0.get()
        }
    }

    struct Fixture {
        session: Session,
        clock: Rc<Clock>,
        gate: Rc<ShardGate>,
        refused: Rc<RefCell<Vec<Reject>>>,
    }

    fn fixture(l: Limits) -> Fixture {
        let clock = Rc::new(Clock(Cell::new(Instant::now())));
        let server = Rc::new(McpServer::new("s", "1").tool(Tool::new(
            "wait",
            "sleeps until dropped",
            json!({"type": "object"}),
            |_, ctx| async move {
                ctx.sleep(Duration::from_secs(1)).await;
                Ok(ToolOutput::text("woke"))
            },
        )));
        let limits = CoreLimits {
            in_flight_max: 8,
            client_requests_max: 1,
            client_request_timeout: Duration::from_secs(1),
            page_size: 10,
            batch_max: 8,
            shard: 0,
            tool_call_timeout: None,
            breaker: None,
        };
        let core = SessionCore::new(
            SessionId::from_bytes([3; 16]),
            server,
            clock.clone(),
            clock.clone(),
            limits,
        );
        let refused = Rc::new(RefCell::new(Vec::new()));
        let r = refused.clone();
        let gate = ShardGate::new(&l, Box::new(move |why| r.borrow_mut().push(why)));
        let mut session = Session::new(core);
        session.set_gate(gate.session_gate(true));
        let mut f = Fixture {
            session,
            clock,
            gate,
            refused,
        };
        let init = json!({"jsonrpc": "2.0", "id": 0, "method": "initialize",
            "params": {"protocolVersion": "2025-03-26", "capabilities": {}}});
        assert!(matches!(f.feed(&init), Reply::Now(_)));
        f.feed(&json!({"jsonrpc": "2.0", "method": "notifications/initialized"}));
        f
    }

    impl Fixture {
        fn feed(&mut self, v: &Value) -> Reply {
            let mut bytes = serde_json::to_vec(v).expect("encode");
            self.session.on_frame(&mut bytes)
        }

        /// Feeds a request answered at once and returns the answer.
        fn now(&mut self, v: &Value) -> Value {
            match self.feed(v) {
                Reply::Now(b) => serde_json::from_slice(&b).expect("JSON"),
                _ => panic!("no immediate answer to {v}"),
            }
        }
    }

    fn ping(id: i64) -> Value {
        json!({"jsonrpc": "2.0", "id": id, "method": "ping"})
    }

    fn wait(id: i64) -> Value {
        json!({"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": {"name": "wait"}})
    }

    #[test]
    fn a_message_is_metered_once_whether_refused_before_or_after_its_parse() {
        // initialize and notifications/initialized take two of the four.
        let mut f = fixture(Limits {
            messages_per_connection_per_s: 1,
            messages_per_connection_burst: 4,
            ..Limits::default()
        });
        let escaped =
            |id: i64| format!(r#"{{"jsonrpc":"2.0","id":{id},"method":"p\u0069ng"}}"#).into_bytes();
        let answer = |r: Reply| match r {
            Reply::Now(b) => serde_json::from_slice::<Value>(&b).expect("JSON"),
            _ => panic!("no answer"),
        };
        // With tokens to spare, messages are parsed, then metered: one token each.
        assert_eq!(f.now(&ping(1))["result"], json!({}));
        let ok = answer(f.session.on_frame(&mut escaped(2)));
        assert_eq!(ok["result"], json!({}), "{ok}");
        // None left: refused from the skim, and (an escaped method, which the skim leaves
        // alone) after the parse.
        let e = f.now(&ping(3));
        assert_eq!(e["error"]["code"], code::RATE_LIMITED, "{e}");
        let e = answer(f.session.on_frame(&mut escaped(4)));
        assert_eq!(
            (e["id"].as_i64(), e["error"]["code"].as_i64()),
            (Some(4), Some(code::RATE_LIMITED)),
            "{e}"
        );
        assert_eq!(f.refused.borrow().len(), 2);
    }

    #[test]
    fn a_request_refused_before_its_parse_gets_the_answer_the_parse_would_give() {
        let mut f = fixture(Limits {
            messages_per_connection_per_s: 1,
            messages_per_connection_burst: 2,
            ..Limits::default()
        });
        for id in [json!(7), json!(-12), json!("req-1")] {
            let msg = json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
                "params": {"name": "wait", "arguments": {"text": "} ] \" {"}}});
            let Reply::Now(fast) = f.feed(&msg) else {
                panic!("no refusal for {msg}");
            };
            let why = f.session.take_refusal().expect("refused");
            let parsed = Id::from_value(&id).expect("id");
            assert_eq!(
                String::from_utf8_lossy(&fast),
                String::from_utf8_lossy(&jsonrpc::encode_error(Some(&parsed), &why.to_error()))
            );
        }
        // A notification over the rate is dropped, as after a parse.
        let note = json!({"jsonrpc": "2.0", "method": "notifications/progress", "params": {}});
        assert!(matches!(f.feed(&note), Reply::None));
        assert!(f.session.take_refusal().is_some());
    }

    #[test]
    fn over_a_rate_requests_are_refused_and_notifications_dropped() {
        // initialize and notifications/initialized take two of the three.
        let mut f = fixture(Limits {
            messages_per_connection_per_s: 1,
            messages_per_connection_burst: 3,
            ..Limits::default()
        });
        assert_eq!(f.session.take_refusal(), None);
        // A batch of which one message is admitted: answered in full, not refused as a
        // whole.
        let batch = f.now(&json!([ping(1), ping(2)]));
        assert_eq!(batch[0]["result"], json!({}), "{batch}");
        assert_eq!(batch[1]["error"]["code"], code::RATE_LIMITED, "{batch}");
        assert_eq!(
            batch[1]["error"]["data"]["reason"],
            "connection_message_rate"
        );
        assert_eq!(batch[1]["error"]["data"]["retryAfterMs"], 1000);
        assert_eq!(f.session.take_refusal(), None);
        let e = f.now(&ping(3));
        assert_eq!(
            (e["id"].as_i64(), e["error"]["code"].as_i64()),
            (Some(3), Some(code::RATE_LIMITED))
        );
        assert_eq!(
            f.session.take_refusal().map(|o| o.reject()),
            Some(Reject::ConnectionMessageRate)
        );
        assert!(matches!(
            f.feed(
                &json!({"jsonrpc": "2.0", "method": "notifications/cancelled",
                "params": {"requestId": 9}})
            ),
            Reply::None
        ));
        assert!(
            f.session.take_refusal().is_some(),
            "a dropped notification is refused"
        );
        assert_eq!(f.refused.borrow().len(), 3);
        // A second later the bucket holds a token again.
        f.clock.0.set(f.clock.0.get() + Duration::from_secs(1));
        assert_eq!(f.now(&ping(4))["result"], json!({}));
    }

    #[test]
    fn a_running_request_holds_its_place_on_the_shard_until_it_ends() {
        let mut f = fixture(Limits {
            shard_in_flight_requests_max: 1,
            ..Limits::default()
        });
        let Reply::Later(running) = f.feed(&wait(1)) else {
            panic!("the tool waits");
        };
        assert_eq!(f.gate.in_flight(), 1);
        for r in [wait(2), ping(3)] {
            let e = f.now(&r);
            assert_eq!(e["error"]["code"], code::OVERLOADED, "{e}");
            assert_eq!(e["error"]["data"]["reason"], "shard_in_flight");
            assert_eq!(f.session.take_refusal().map(|o| o.http_status()), Some(503));
        }
        assert_eq!(f.session.in_flight(), 1, "refused requests never started");
        // However the request ends (here: its connection goes), its place is freed.
        drop(running);
        assert_eq!((f.gate.in_flight(), f.session.in_flight()), (0, 0));
        assert_eq!(f.now(&ping(4))["result"], json!({}));
        assert_eq!(
            *f.refused.borrow(),
            [Reject::ShardInFlight, Reject::ShardInFlight]
        );
    }

    #[test]
    fn tool_calls_have_their_own_rate() {
        let mut f = fixture(Limits {
            tool_calls_per_session_per_s: 1,
            tool_calls_per_session_burst: 1,
            ..Limits::default()
        });
        assert!(matches!(f.feed(&wait(1)), Reply::Later(_)));
        let e = f.now(&wait(2));
        assert_eq!(e["error"]["code"], code::RATE_LIMITED, "{e}");
        assert_eq!(e["error"]["data"]["reason"], "session_tool_rate");
        // Other requests are not tool calls.
        assert_eq!(f.now(&ping(3))["result"], json!({}));
    }
}
