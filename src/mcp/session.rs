//! The session state machine for the session-based revisions (2024-11-05 .. 2025-11-25):
//! lifecycle (initialize, notifications/initialized), request tracking and cancellation,
//! batches, routing of the client's responses to our requests. Sans-I/O: it takes a frame's
//! bytes and returns bytes now or a future that yields bytes; the transport runs the future
//! on its shard and writes what comes out.

use crate::jsonrpc::{self, code, ErrorObject, Frame, Id, Invalid, Message};
use crate::mcp::dispatch::{dispatch, Dispatched, Request};
use crate::mcp::revision::Revision;
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
        }
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

    /// Handles one frame (one line on TCP/stdio). The buffer is parsed in place.
    pub fn on_frame(&mut self, buf: &mut [u8]) -> Reply {
        match jsonrpc::parse_frame(buf, self.core.limits.batch_max) {
            Ok(f) => self.on_parsed(f, None),
            Err(e) => Reply::Now(jsonrpc::encode_error(None, &e.to_error())),
        }
    }

    /// Handles an already parsed frame. `out`, when given, receives the messages the
    /// frame's requests emit before their results (progress, logs, server-to-client
    /// requests): on Streamable HTTP, the stream of the POST that carried them.
    pub fn on_parsed(&mut self, frame: Frame, out: Option<Rc<dyn Outbound>>) -> Reply {
        self.request_out = out;
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
            return Reply::Now(jsonrpc::encode_error(
                None,
                &ErrorObject::new(code::INVALID_REQUEST, why),
            ));
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
        let msg = match item {
            Ok(m) => m,
            Err(inv) => {
                return Item::Now(jsonrpc::encode_error(
                    inv.id.as_ref(),
                    &ErrorObject::new(
                        code::INVALID_REQUEST,
                        format!("invalid request: {}", inv.reason),
                    ),
                ))
            }
        };
        match msg {
            Message::Notification { method, params } => {
                self.on_notification(&method, params);
                Item::None
            }
            Message::Response { id, outcome } => {
                if !self.core.complete_client_request(&id, outcome) {
                    tracing::debug!(session = %self.core.id, %id, "response to no request of ours dropped");
                }
                Item::None
            }
            Message::Request { id, method, params } => {
                self.on_request(id, &method, params, in_batch)
            }
        }
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
        if self.in_flight.borrow().len() >= self.core.limits.in_flight_max {
            return err(ErrorObject::new(
                code::LIMIT_EXCEEDED,
                format!(
                    "too many requests in flight on this session (session_in_flight_requests_max = {})",
                    self.core.limits.in_flight_max
                ),
            ));
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
        *self.core.client_capabilities.borrow_mut() = capabilities;
        *self.core.client_info.borrow_mut() = p.get("clientInfo").cloned().unwrap_or(Value::Null);
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
}

impl Drop for InFlightGuard {
    fn drop(&mut self) {
        self.map.borrow_mut().remove(&self.id);
    }
}

enum Item {
    None,
    Now(Vec<u8>),
    Later(BoxedLocal<Option<Vec<u8>>>),
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
