//! The stateless 2026-07-28 revision over Streamable HTTP.
//!
//! Every request is one POST that stands alone: no `initialize`, no session id. The
//! request's `params._meta` names the revision, the client's capabilities, its identity
//! and the log level it wants ([`crate::mcp::meta`]); the request is handled on the shard
//! that received it (nothing is forwarded) through a per-request
//! [`SessionCore`](crate::server::SessionCore) and the same method handlers as the session
//! revisions ([`crate::mcp::dispatch`]).
//!
//! Admission, in order ([`admit`]): one JSON-RPC request (a notification is accepted with
//! 202); a `_meta` with its required fields (400, -32602); an `MCP-Protocol-Version` header
//! equal to the `_meta` revision and `Mcp-Method`/`Mcp-Name` headers equal to the body
//! (400, -32020); a revision we serve (400, -32022 with `data.supported`). Unknown and
//! removed methods are 404 with -32601; GET and DELETE are 405.
//!
//! Answers: a result or error with nothing before it is a JSON body; progress and log
//! notifications of the request go first on the response stream, which then is SSE.
//! A handler that asks the client for input is answered `input_required` with a sealed
//! `requestState` ([`crate::mcp::input`], [`crate::mcp::request_state`]).
//! `subscriptions/listen` holds its response open as an SSE stream: acknowledged first,
//! then the list-changed and resource-updated notifications it asked for, fed by the
//! shard's registry partition where the stream is registered for as long as it lasts.
//!
//! Bounds: requests whose handlers run at once on a shard by
//! `limits.shard_in_flight_requests_max` (503, -32006), messages by the shard's rate
//! `limits.messages_per_shard_per_s` (429, -32005; each HTTP request also counts against its
//! connection's `limits.messages_per_connection_per_s`). A connection carries one request at
//! a time, so open listen streams per shard are bounded by
//! `limits.connections_per_shard_max` (and listen
//! registrations by `limits.sessions_per_shard_max`); events a client has not read yet by
//! `http.exchange_events_max`; inputs asked at once by
//! `limits.client_requests_in_flight_max`; URIs per listen stream by
//! `limits.subscriptions_per_session_max`.

use super::exchange::{Exchange, ReplyEvent};
use super::parse::RequestHead;
use super::{Response, STATELESS_REVISION};
use crate::jsonrpc::{self, code, ErrorObject, Frame, Id, Message};
use crate::limits::InFlight;
use crate::mcp::dispatch::{dispatch, Dispatched, Request};
use crate::mcp::input::{self, InputRound, Outcome};
use crate::mcp::meta::{RequestMeta, SERVER_INFO, SUBSCRIPTION_ID};
use crate::mcp::methods::discover::server_info;
use crate::mcp::methods::resources;
use crate::mcp::request_state::Binding;
use crate::mcp::Revision;
use crate::rt::{CancelToken, OutMsg, Outbound, SendError};
use crate::runtime::{ConnHost, Shard};
use crate::server::{Ctx, McpServer, SessionCore};
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use futures_lite::FutureExt;
use ringmcp_shards::partition::topic_key;
use ringmcp_shards::SessionId;
use serde_json::{json, Map, Value};
use std::cell::Cell;
use std::panic::AssertUnwindSafe;
use std::rc::Rc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// The `_meta` key whose presence marks a body as a stateless request.
const META_VERSION_KEY: &[u8] = b"\"io.modelcontextprotocol/protocolVersion\"";

/// Whether a request to an MCP endpoint belongs to the stateless revision: it says so in
/// `MCP-Protocol-Version`; or, without a session id, it is a POST that names a revision
/// we do not know (answered -32022 here) or carries a per-request `_meta` revision and is
/// not an `initialize`.
pub fn routes_here(head: &RequestHead, body: &[u8]) -> bool {
    let version = head.header("mcp-protocol-version").map(str::trim);
    if version == Some(STATELESS_REVISION) {
        return true;
    }
    if head.header("mcp-session-id").is_some() || head.method != "POST" {
        return false;
    }
    match version {
        Some(v) if Revision::parse(v).is_none() => true,
        _ => looks_stateless(body),
    }
}

/// Whether a POST body carries a per-request `_meta` revision and is not an `initialize`
/// (a byte search: the body is parsed once, by whoever handles it).
pub fn looks_stateless(body: &[u8]) -> bool {
    let has = |needle: &[u8]| body.windows(needle.len()).any(|w| w == needle);
    has(META_VERSION_KEY) && !has(b"\"initialize\"")
}

/// The routing headers of a stateless request, values trimmed.
#[derive(Debug, Clone, Copy, Default)]
pub struct RoutingHeaders<'a> {
    /// `MCP-Protocol-Version`.
    pub protocol_version: Option<&'a str>,
    /// `Mcp-Method`.
    pub method: Option<&'a str>,
    /// `Mcp-Name`.
    pub name: Option<&'a str>,
}

impl<'a> RoutingHeaders<'a> {
    /// Reads them from a request head.
    pub fn of(head: &'a RequestHead) -> Self {
        RoutingHeaders {
            protocol_version: head.header("mcp-protocol-version").map(str::trim),
            method: head.header("mcp-method").map(str::trim),
            name: head.header("mcp-name").map(str::trim),
        }
    }
}

/// A request admitted for dispatch.
#[derive(Debug)]
pub struct Admitted {
    /// JSON-RPC id.
    pub id: Id,
    /// Method.
    pub method: String,
    /// Params (with `_meta`).
    pub params: Map<String, Value>,
    /// The parsed `_meta`.
    pub meta: RequestMeta,
    /// The revision it names.
    pub revision: Revision,
}

/// What [`admit`] decided.
#[derive(Debug)]
pub enum Admission {
    /// Dispatch it.
    Request(Box<Admitted>),
    /// A notification or a batch of them: 202, nothing to answer.
    Accepted,
    /// Refused: HTTP status, the id to echo, the error.
    Refused(u16, Option<Id>, ErrorObject),
}

/// Checks one parsed body against its headers (see the module docs for the order).
pub fn admit(headers: &RoutingHeaders<'_>, frame: Frame) -> Admission {
    let refuse = |id: Option<Id>, e: ErrorObject| Admission::Refused(status_for(e.code), id, e);
    let message = match frame {
        Frame::Batch(items) => {
            if items
                .iter()
                .all(|m| matches!(m, Ok(Message::Notification { .. })))
            {
                return Admission::Accepted;
            }
            return refuse(
                None,
                ErrorObject::new(
                    code::INVALID_REQUEST,
                    "JSON-RPC batches are not part of revision 2026-07-28: send one request per POST",
                ),
            );
        }
        Frame::Single(Err(inv)) => {
            return refuse(
                inv.id,
                ErrorObject::new(
                    code::INVALID_REQUEST,
                    format!("invalid request: {}", inv.reason),
                ),
            )
        }
        Frame::Single(Ok(m)) => m,
    };
    let (id, method, params) = match message {
        Message::Request { id, method, params } => (id, method, params),
        Message::Notification { .. } => return Admission::Accepted,
        Message::Response { id, .. } => {
            return refuse(
                Some(id),
                ErrorObject::new(
                    code::INVALID_REQUEST,
                    "revision 2026-07-28 sends no requests to the client, so there is no response to post",
                ),
            )
        }
    };
    let params = match jsonrpc::params_object(params) {
        Ok(p) => p,
        Err(e) => return refuse(Some(id), e),
    };
    let meta = match RequestMeta::parse(&params) {
        Ok(m) => m,
        Err(e) => return refuse(Some(id), e),
    };
    if let Err(e) = check_headers(headers, &method, &params, &meta) {
        return refuse(Some(id), e);
    }
    let revision = match meta.revision() {
        Ok(r) => r,
        Err(e) => return refuse(Some(id), e),
    };
    Admission::Request(Box::new(Admitted {
        id,
        method,
        params,
        meta,
        revision,
    }))
}

fn header_mismatch(message: String) -> ErrorObject {
    ErrorObject::new(code::HEADER_MISMATCH, message)
}

/// `MCP-Protocol-Version` must equal the `_meta` revision, `Mcp-Method` the method, and
/// `Mcp-Name` the tool or prompt name or the resource URI when the body has one. Names
/// compare exactly (case matters); a value may be `=?base64?…?=` encoded.
pub fn check_headers(
    headers: &RoutingHeaders<'_>,
    method: &str,
    params: &Map<String, Value>,
    meta: &RequestMeta,
) -> Result<(), ErrorObject> {
    match headers.protocol_version {
        None => {
            return Err(header_mismatch(format!(
                "missing MCP-Protocol-Version header (the request's _meta names {})",
                meta.protocol_version
            )))
        }
        Some(v) if v != meta.protocol_version => {
            return Err(header_mismatch(format!(
                "MCP-Protocol-Version header {v:?} does not match _meta protocolVersion {:?}",
                meta.protocol_version
            )))
        }
        Some(_) => {}
    }
    match headers.method {
        None => return Err(header_mismatch("missing Mcp-Method header".into())),
        Some(m) if m != method => {
            return Err(header_mismatch(format!(
                "Mcp-Method header {m:?} does not match the body's method {method:?}"
            )))
        }
        Some(_) => {}
    }
    let field = match method {
        "tools/call" | "prompts/get" => "name",
        "resources/read" => "uri",
        _ => return Ok(()),
    };
    let Some(want) = params.get(field).and_then(Value::as_str) else {
        // The handler reports the missing field.
        return Ok(());
    };
    let Some(raw) = headers.name else {
        return Err(header_mismatch(format!(
            "missing Mcp-Name header (params.{field} is {want:?})"
        )));
    };
    let got = decode_header_value(raw).ok_or_else(|| {
        header_mismatch(format!(
            "Mcp-Name header {raw:?} is not valid =?base64?…?= encoding"
        ))
    })?;
    if got != want {
        return Err(header_mismatch(format!(
            "Mcp-Name header {got:?} does not match params.{field} {want:?}"
        )));
    }
    Ok(())
}

/// A header value as sent, or decoded from `=?base64?<standard base64>?=` (how clients
/// send values that are not plain ASCII). `None` when the encoding is broken.
fn decode_header_value(raw: &str) -> Option<String> {
    match raw
        .strip_prefix("=?base64?")
        .and_then(|r| r.strip_suffix("?="))
    {
        Some(b64) => String::from_utf8(STANDARD.decode(b64).ok()?).ok(),
        None => Some(raw.to_string()),
    }
}

/// The HTTP status a JSON-RPC error is sent with.
pub fn status_for(error_code: i64) -> u16 {
    match error_code {
        code::METHOD_NOT_FOUND => 404,
        code::PARSE_ERROR
        | code::INVALID_REQUEST
        | code::INVALID_PARAMS
        | code::HEADER_MISMATCH
        | code::MISSING_REQUIRED_CLIENT_CAPABILITY
        | code::UNSUPPORTED_PROTOCOL_VERSION => 400,
        code::LIMIT_EXCEEDED | code::RATE_LIMITED => 429,
        code::SHUTTING_DOWN | code::OVERLOADED => 503,
        code::INTERNAL_ERROR => 500,
        _ => 200,
    }
}

fn error_response(id: Option<&Id>, e: &ErrorObject) -> Response {
    let status = status_for(e.code);
    let mut headers = Vec::new();
    if matches!(status, 429 | 503) {
        headers.push(("Retry-After".to_string(), "1".to_string()));
    }
    Response::Full {
        status,
        headers,
        body: jsonrpc::encode_error(id, e),
    }
}

fn now_unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Answers one stateless request.
pub async fn handle(
    shard: &Rc<Shard>,
    head: &RequestHead,
    body: Vec<u8>,
    server: &str,
) -> Response {
    if head.method != "POST" {
        // No session, so no standalone GET stream (subscriptions/listen replaces it) and
        // nothing to DELETE.
        return super::method_not_allowed("POST");
    }
    if let Err(resp) = super::check_post_media(head) {
        return resp;
    }
    let mut body = body;
    shard.stats().messages_received.inc();
    // With no token left in the shard's message rate, a single request or notification is
    // refused from a skim of its top level, before the parse (see Session::shed).
    if let Some(why) = shard.gate.message_refusal(None, Instant::now) {
        if let Some(k) = jsonrpc::skim(&body) {
            let why = shard.gate.refuse(why);
            let body = match k.id {
                Some(raw) => {
                    shard.request_probe(Some(k.method)).finish(Some(why.code()));
                    why.encode_for_raw_id(raw)
                }
                None => jsonrpc::encode_error(None, &why.to_error()),
            };
            return Response::Full {
                status: why.http_status(),
                headers: vec![("Retry-After".into(), why.retry_after_s().to_string())],
                body,
            };
        }
    }
    let frame = match jsonrpc::parse_frame(&mut body, shard.config.limits.batch_messages_max) {
        Ok(f) => f,
        Err(e) => {
            let e = e.to_error();
            shard.request_probe(None).finish(Some(e.code));
            return error_response(None, &e);
        }
    };
    let a = match admit(&RoutingHeaders::of(head), frame) {
        Admission::Request(a) => *a,
        Admission::Accepted => {
            // A notification over the shard's rate is refused, not silently dropped: over
            // HTTP there is an answer to say so.
            if let Err(why) = shard.gate.message(None, Instant::now) {
                return Response::overload(None, &why);
            }
            return Response::Full {
                status: 202,
                headers: Vec::new(),
                body: Vec::new(),
            };
        }
        Admission::Refused(_, id, e) => {
            shard.request_probe(None).finish(Some(e.code));
            return error_response(id.as_ref(), &e);
        }
    };
    let probe = shard.request_probe(Some(&a.method));
    let listening = a.method == "subscriptions/listen";
    match admitted(shard, a, server) {
        Response::Full {
            status,
            headers,
            body,
        } => {
            probe.finish_encoded(&body);
            Response::Full {
                status,
                headers,
                body,
            }
        }
        Response::Exchange {
            exchange,
            headers,
            priming,
            forwarded,
        } => {
            if listening {
                // Answered by the acknowledgement, already queued; the stream lasts.
                probe.finish(None);
            } else {
                exchange.observe(probe);
            }
            Response::Exchange {
                exchange,
                headers,
                priming,
                forwarded,
            }
        }
    }
}

/// Answers an admitted request.
fn admitted(shard: &Rc<Shard>, a: Admitted, server: &str) -> Response {
    if shard.shutdown.is_cancelled() {
        return error_response(
            Some(&a.id),
            &ErrorObject::new(code::SHUTTING_DOWN, "server is shutting down"),
        );
    }
    if let Err(why) = shard.gate.message(None, Instant::now) {
        return Response::overload(Some(&a.id), &why);
    }
    let Some(srv) = shard.servers.get(server).cloned() else {
        return error_response(
            Some(&a.id),
            &ErrorObject::new(
                code::METHOD_NOT_FOUND,
                format!("no server named {server:?}"),
            ),
        );
    };
    if a.method == "subscriptions/listen" {
        return listen(shard, srv, a);
    }
    request(shard, srv, a)
}

thread_local! {
    /// Numbers the per-request cores of this shard (their ids only label logs).
    static NEXT_REQUEST: Cell<u64> = const { Cell::new(0) };
}

fn request_core_id(shard: &Shard) -> SessionId {
    let n = NEXT_REQUEST.with(|c| {
        let n = c.get();
        c.set(n.wrapping_add(1));
        n
    });
    let mut bytes = [0u8; 16];
    bytes[..8].copy_from_slice(&(shard.index as u64).to_be_bytes());
    bytes[8..].copy_from_slice(&n.to_be_bytes());
    SessionId::from_bytes(bytes)
}

/// The messages a request sends before its answer (progress, logs): non-final events of
/// its exchange, which turn the response into an SSE stream.
struct StreamOut {
    exchange: Rc<Exchange>,
    sent: Cell<bool>,
}

impl Outbound for StreamOut {
    fn send(&self, msg: OutMsg) -> Result<(), SendError> {
        let ok = self.exchange.push(ReplyEvent::Message {
            event_id: None,
            bytes: msg.as_bytes().to_vec(),
            last: false,
        });
        if ok {
            self.sent.set(true);
            Ok(())
        } else {
            Err(SendError::Closed)
        }
    }
}

/// Runs one request (other than `subscriptions/listen`) through the method table.
fn request(shard: &Rc<Shard>, srv: Rc<McpServer>, a: Admitted) -> Response {
    let Admitted {
        id,
        method,
        params,
        meta,
        revision,
    } = a;
    // Checked before anything of the request runs, so a refused request is safe to retry.
    if let Err(why) = shard.gate.room() {
        return Response::overload(Some(&id), &why);
    }
    let now_ms = now_unix_ms();
    let name = match method.as_str() {
        "tools/call" | "prompts/get" => params.get("name"),
        "resources/read" => params.get("uri"),
        _ => None,
    }
    .and_then(Value::as_str)
    .unwrap_or("")
    .to_string();
    // As the handlers see them: absent arguments are no arguments.
    let arguments = match params.get("arguments") {
        None | Some(Value::Null) => json!({}),
        Some(a) => a.clone(),
    };
    let binding = Binding {
        server: &srv.name,
        method: &method,
        name: &name,
        arguments: &arguments,
    };
    let answers = match prior_answers(shard, &binding, &params, now_ms) {
        Ok(a) => a,
        Err(e) => return error_response(Some(&id), &e),
    };
    let limits = shard.core_limits();
    let round = InputRound::new(answers, limits.client_requests_max);
    let x = shard.http.new_exchange(shard, false);
    let out = Rc::new(StreamOut {
        exchange: x.clone(),
        sent: Cell::new(false),
    });
    let host = ConnHost::new(shard.clone(), out.clone());
    let core = SessionCore::stateless(
        request_core_id(shard),
        srv,
        out.clone(),
        host,
        limits,
        revision,
        &meta,
    );
    let cancel = CancelToken::new();
    let ctx = Ctx::new(core.clone(), meta.progress_token.clone(), cancel.clone())
        .with_input(round.clone());
    let req = Request {
        core: &core,
        params,
        ctx,
    };
    let fut = match dispatch(req, &method) {
        Dispatched::Ready(Ok(v)) => {
            return Response::Full {
                status: 200,
                headers: Vec::new(),
                body: jsonrpc::encode_result(&id, &v),
            }
        }
        Dispatched::Ready(Err(e)) => return error_response(Some(&id), &e),
        Dispatched::Pending(fut) => fut,
    };
    glommio::spawn_local(drive(
        shard.clone(),
        x.clone(),
        out,
        Pending {
            id,
            method,
            name,
            arguments,
            server: core.server.clone(),
            revision,
            _in_flight: shard.gate.enter(),
        },
        fut,
        round,
        cancel,
    ))
    .detach();
    Response::exchange(x, false, None)
}

/// What the task answering a running request needs to know about it.
struct Pending {
    id: Id,
    method: String,
    name: String,
    arguments: Value,
    server: Rc<McpServer>,
    revision: Revision,
    /// The request's place in the shard's in-flight count, freed when the task ends.
    _in_flight: InFlight,
}

impl Pending {
    fn binding(&self) -> Binding<'_> {
        Binding {
            server: &self.server.name,
            method: &self.method,
            name: &self.name,
            arguments: &self.arguments,
        }
    }
}

/// Runs a handler to its answer, or to the input it needs, and sends that as the last
/// event of the request's exchange. Stops (dropping the handler) if the client goes away.
async fn drive(
    shard: Rc<Shard>,
    exchange: Rc<Exchange>,
    out: Rc<StreamOut>,
    p: Pending,
    fut: futures_lite::future::BoxedLocal<Result<Value, ErrorObject>>,
    round: Rc<InputRound>,
    cancel: CancelToken,
) {
    let method = p.method.clone();
    let guarded: futures_lite::future::BoxedLocal<Result<Value, ErrorObject>> =
        Box::pin(async move {
            match AssertUnwindSafe(fut).catch_unwind().await {
                Ok(r) => r,
                Err(panic) => {
                    let what = panic
                        .downcast_ref::<&str>()
                        .map(|s| s.to_string())
                        .or_else(|| panic.downcast_ref::<String>().cloned())
                        .unwrap_or_else(|| "unknown panic".into());
                    tracing::error!(%method, "handler panicked: {what}");
                    Err(ErrorObject::internal(format!(
                        "internal error: the {method} handler failed"
                    )))
                }
            }
        });
    let run = async { Some(input::run(guarded, round).await) };
    let gone = async {
        exchange.closed().await;
        None
    };
    let Some(outcome) = run.or(gone).await else {
        // The client went away; the handler was dropped with the race.
        cancel.cancel();
        return;
    };
    let result = match outcome {
        Outcome::Complete(r) => r,
        Outcome::InputRequired(ir) => match shard.config.request_state_key() {
            Ok(key) => {
                let mut result = ir.to_result(&key, &p.binding(), now_unix_ms());
                result["_meta"] = json!({SERVER_INFO: server_info(&p.server, p.revision)});
                Ok(result)
            }
            Err(e) => Err(ErrorObject::internal(format!(
                "cannot ask the client for input: {e}"
            ))),
        },
    };
    let event = match result {
        Ok(v) => ReplyEvent::Message {
            event_id: None,
            bytes: jsonrpc::encode_result(&p.id, &v),
            last: true,
        },
        // Nothing went out yet: the error gets its own status.
        Err(e) if !out.sent.get() => ReplyEvent::Full {
            status: status_for(e.code),
            headers: Vec::new(),
            body: jsonrpc::encode_error(Some(&p.id), &e),
        },
        Err(e) => ReplyEvent::Message {
            event_id: None,
            bytes: jsonrpc::encode_error(Some(&p.id), &e),
            last: true,
        },
    };
    exchange.push(event);
}

/// The answers a retried request brings: those of earlier rounds, sealed in
/// `requestState` (verified first: a tampered, foreign or expired state is refused), and
/// this round's `inputResponses`.
fn prior_answers(
    shard: &Shard,
    binding: &Binding<'_>,
    params: &Map<String, Value>,
    now_ms: u64,
) -> Result<Map<String, Value>, ErrorObject> {
    let mut answers = match params.get("requestState") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::String(token)) => {
            let key = shard
                .config
                .request_state_key()
                .map_err(|e| ErrorObject::internal(format!("cannot verify requestState: {e}")))?;
            let ttl = shard.config.http.request_state_ttl_ms;
            crate::mcp::request_state::open(&key, token, binding, now_ms, ttl)
                .map_err(|e| e.to_error())?
        }
        Some(_) => return Err(ErrorObject::invalid_params("requestState must be a string")),
    };
    match params.get("inputResponses") {
        None | Some(Value::Null) => {}
        Some(Value::Object(responses)) => {
            for (k, v) in responses {
                answers.entry(k.clone()).or_insert_with(|| v.clone());
            }
        }
        Some(_) => {
            return Err(ErrorObject::invalid_params(
                "inputResponses must be an object keyed like the inputRequests it answers",
            ))
        }
    }
    Ok(answers)
}

/// The notifications one `subscriptions/listen` stream asked for and was granted.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct ListenFilter {
    /// `notifications/tools/list_changed`.
    pub tools: bool,
    /// `notifications/prompts/list_changed`.
    pub prompts: bool,
    /// `notifications/resources/list_changed`.
    pub resources: bool,
    /// `notifications/resources/updated` for these URIs.
    pub uris: Vec<String>,
}

impl ListenFilter {
    /// Reads `params.notifications`, granting what `server` has: list changes always, and
    /// updates of the URIs that name one of its resources. At most `uris_max` URIs.
    pub fn parse(
        params: &Map<String, Value>,
        server: &McpServer,
        uris_max: usize,
    ) -> Result<ListenFilter, ErrorObject> {
        let Some(Value::Object(n)) = params.get("notifications") else {
            return Err(ErrorObject::invalid_params(
                "params.notifications (object) is required: say which notifications to send",
            ));
        };
        let flag = |k: &str| n.get(k) == Some(&Value::Bool(true));
        let mut uris = Vec::new();
        match n.get("resourceSubscriptions") {
            None | Some(Value::Null) => {}
            Some(Value::Array(list)) => {
                if list.len() > uris_max {
                    return Err(ErrorObject::invalid_params(format!(
                        "at most {uris_max} resourceSubscriptions per stream (limits.subscriptions_per_session_max)"
                    )));
                }
                for u in list {
                    let Some(u) = u.as_str() else {
                        return Err(ErrorObject::invalid_params(
                            "resourceSubscriptions must be an array of URIs",
                        ));
                    };
                    if resources::exists(server, u) && !uris.iter().any(|x| x == u) {
                        uris.push(u.to_string());
                    }
                }
            }
            Some(_) => {
                return Err(ErrorObject::invalid_params(
                    "resourceSubscriptions must be an array of URIs",
                ))
            }
        }
        Ok(ListenFilter {
            tools: flag("toolsListChanged"),
            prompts: flag("promptsListChanged"),
            resources: flag("resourcesListChanged"),
            uris,
        })
    }

    /// The `notifications` object of the acknowledgement: what will be sent.
    pub fn granted(&self) -> Value {
        let mut m = Map::new();
        if self.tools {
            m.insert("toolsListChanged".into(), json!(true));
        }
        if self.prompts {
            m.insert("promptsListChanged".into(), json!(true));
        }
        if self.resources {
            m.insert("resourcesListChanged".into(), json!(true));
        }
        if !self.uris.is_empty() {
            m.insert("resourceSubscriptions".into(), json!(self.uris));
        }
        Value::Object(m)
    }

    /// Whether a notification (method, params) passes the filter.
    pub fn wants(&self, method: &str, params: &Value) -> bool {
        match method {
            "notifications/tools/list_changed" => self.tools,
            "notifications/prompts/list_changed" => self.prompts,
            "notifications/resources/list_changed" => self.resources,
            "notifications/resources/updated" => params
                .get("uri")
                .and_then(Value::as_str)
                .is_some_and(|u| self.uris.iter().any(|x| x == u)),
            _ => false,
        }
    }
}

/// One open `subscriptions/listen` stream as the registry partition sees it: the sink of
/// an ephemeral registration. It passes what the filter wants, tagged with the
/// subscription id, to the stream's exchange.
pub struct ListenSink {
    exchange: Rc<Exchange>,
    filter: ListenFilter,
    subscription: Id,
}

impl ListenSink {
    /// The `notifications/subscriptions/acknowledged` message that opens the stream.
    pub fn acknowledgement(&self) -> Vec<u8> {
        jsonrpc::encode_notification(
            "notifications/subscriptions/acknowledged",
            &json!({
                "_meta": {SUBSCRIPTION_ID: self.subscription.to_value()},
                "notifications": self.filter.granted(),
            }),
        )
    }
}

impl Outbound for ListenSink {
    fn send(&self, msg: OutMsg) -> Result<(), SendError> {
        if self.exchange.is_closed() {
            return Err(SendError::Closed);
        }
        let Ok(Value::Object(mut n)) = serde_json::from_slice::<Value>(msg.as_bytes()) else {
            return Ok(());
        };
        let method = n
            .get("method")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let mut params = match n.remove("params") {
            Some(Value::Object(p)) => p,
            _ => Map::new(),
        };
        if !self.filter.wants(&method, &Value::Object(params.clone())) {
            return Ok(());
        }
        let meta = params.entry("_meta").or_insert_with(|| json!({}));
        if let Value::Object(meta) = meta {
            meta.insert(SUBSCRIPTION_ID.into(), self.subscription.to_value());
        }
        let bytes = jsonrpc::encode_notification(&method, &Value::Object(params));
        if self.exchange.push(ReplyEvent::Message {
            event_id: None,
            bytes,
            last: false,
        }) {
            Ok(())
        } else {
            Err(SendError::Closed)
        }
    }
}

/// `subscriptions/listen`: registers the stream in this shard's registry partition (list
/// changes of the server reach every shard's partition; resource updates reach the
/// subscribers of their topic), acknowledges, and holds the response open until the
/// client leaves or the server shuts down (then it ends with the listen result).
fn listen(shard: &Rc<Shard>, srv: Rc<McpServer>, a: Admitted) -> Response {
    let uris_max = shard.config.limits.subscriptions_per_session_max;
    let filter = match ListenFilter::parse(&a.params, &srv, uris_max) {
        Ok(f) => f,
        Err(e) => return error_response(Some(&a.id), &e),
    };
    let registration = match shard.mint_session_id() {
        Ok(id) => id,
        Err(e) => return error_response(Some(&a.id), &ErrorObject::internal(e.to_string())),
    };
    let x = shard.http.new_exchange(shard, false);
    let sink = Rc::new(ListenSink {
        exchange: x.clone(),
        filter,
        subscription: a.id.clone(),
    });
    {
        let mut partition = shard.partition.borrow_mut();
        let registered = partition
            .register(registration, &srv.name, sink.clone() as Rc<dyn Outbound>)
            .map_err(|e| format!("cannot open the stream: {e}"))
            .and_then(|()| {
                sink.filter.uris.iter().try_for_each(|u| {
                    partition
                        .subscribe(&registration, &topic_key(&srv.name, u))
                        .map(|_| ())
                        .map_err(|e| format!("cannot subscribe to {u}: {e}"))
                })
            });
        if let Err(why) = registered {
            partition.remove(&registration);
            return error_response(Some(&a.id), &ErrorObject::new(code::LIMIT_EXCEEDED, why));
        }
    }
    // Registered before the client sees the acknowledgement: a change it triggers after
    // reading it reaches this stream.
    x.push(ReplyEvent::Message {
        event_id: None,
        bytes: sink.acknowledgement(),
        last: false,
    });
    let shard2 = shard.clone();
    let exchange = x.clone();
    let id = a.id;
    let info = server_info(&srv, a.revision);
    glommio::spawn_local(async move {
        let shutdown = async {
            shard2.shutdown.cancelled().await;
            true
        };
        let gone = async {
            exchange.closed().await;
            false
        };
        if gone.or(shutdown).await {
            // A graceful end: the listen request's result closes the stream.
            let result = json!({
                "resultType": "complete",
                "_meta": {SUBSCRIPTION_ID: id.to_value(), SERVER_INFO: info},
            });
            exchange.push(ReplyEvent::Message {
                event_id: None,
                bytes: jsonrpc::encode_result(&id, &result),
                last: true,
            });
        }
        shard2.partition.borrow_mut().remove(&registration);
        drop(sink);
    })
    .detach();
    Response::exchange(x, false, None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mcp::meta::{CLIENT_CAPABILITIES, PROTOCOL_VERSION};
    use crate::server::{Resource, ToolOutput};

    fn head(method: &str, headers: &[(&str, &str)]) -> RequestHead {
        RequestHead::new(method, "/mcp", headers)
    }

    fn body(method: &str, params: Value) -> Vec<u8> {
        serde_json::to_vec(&json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}))
            .unwrap()
    }

    fn meta(version: &str) -> Value {
        json!({PROTOCOL_VERSION: version, CLIENT_CAPABILITIES: {}})
    }

    fn frame(method: &str, params: Value) -> Frame {
        let mut b = body(method, params);
        jsonrpc::parse_frame(&mut b, 8).unwrap()
    }

    fn headers<'a>(version: &'a str, method: &'a str, name: Option<&'a str>) -> RoutingHeaders<'a> {
        RoutingHeaders {
            protocol_version: Some(version),
            method: Some(method),
            name,
        }
    }

    fn refused(a: Admission) -> (u16, Option<Id>, i64) {
        match a {
            Admission::Refused(status, id, e) => (status, id, e.code),
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    #[test]
    fn routing() {
        let stateless = body("tools/list", json!({"_meta": meta("2026-07-28")}));
        let init = body("initialize", json!({"protocolVersion": "2025-11-25"}));
        let v26 = [("mcp-protocol-version", "2026-07-28")];
        assert!(routes_here(&head("POST", &v26), &init));
        assert!(routes_here(&head("GET", &v26), b""));
        assert!(routes_here(&head("DELETE", &v26), b""));
        assert!(routes_here(&head("POST", &[]), &stateless));
        assert!(!routes_here(&head("POST", &[]), &init));
        // An unknown revision without a session: answered here (-32022 or what precedes it).
        assert!(routes_here(
            &head("POST", &[("mcp-protocol-version", "v999.0.0")]),
            b"{}"
        ));
        // Session traffic stays with the session transport.
        let session = [
            ("mcp-session-id", "abc"),
            ("mcp-protocol-version", "2025-11-25"),
        ];
        assert!(!routes_here(&head("POST", &session), &stateless));
        assert!(!routes_here(&head("GET", &[]), b""));
        assert!(!routes_here(
            &head("POST", &[("mcp-protocol-version", "2025-03-26")]),
            &init
        ));
    }

    #[test]
    fn admits_a_conformant_request() {
        let params = json!({"name": "t", "arguments": {}, "_meta": meta("2026-07-28")});
        let a = admit(
            &headers("2026-07-28", "tools/call", Some("t")),
            frame("tools/call", params),
        );
        let Admission::Request(a) = a else {
            panic!("admitted: {a:?}")
        };
        assert_eq!(
            (a.id, a.method.as_str(), a.revision),
            (Id::Num(1), "tools/call", Revision::V2026_07_28)
        );
        assert_eq!(a.params["name"], "t");
    }

    #[test]
    fn meta_is_checked_before_headers_and_headers_before_the_revision() {
        let h = headers("2026-07-28", "server/discover", None);
        assert_eq!(
            refused(admit(&h, frame("server/discover", json!({})))),
            (400, Some(Id::Num(1)), -32602)
        );
        let no_version = json!({"_meta": {CLIENT_CAPABILITIES: {}}});
        assert_eq!(
            refused(admit(&h, frame("server/discover", no_version))).2,
            -32602
        );
        // _meta names v999 but the header says 2026-07-28: a mismatch, not an unsupported revision.
        let v999 = json!({"_meta": meta("v999.0.0")});
        assert_eq!(
            refused(admit(&h, frame("server/discover", v999.clone()))),
            (400, Some(Id::Num(1)), -32020)
        );
        // Both say v999: unsupported.
        let h999 = headers("v999.0.0", "server/discover", None);
        let Admission::Refused(400, _, e) = admit(&h999, frame("server/discover", v999)) else {
            panic!("refused")
        };
        assert_eq!(e.code, -32022);
        assert_eq!(e.data.unwrap()["requested"], "v999.0.0");
    }

    #[test]
    fn routing_headers_must_match_the_body() {
        let m = meta("2026-07-28");
        let call = |hs: RoutingHeaders<'_>| {
            admit(
                &hs,
                frame("tools/call", json!({"name": "echo", "_meta": m.clone()})),
            )
        };
        let missing_version = RoutingHeaders {
            protocol_version: None,
            ..headers("", "tools/call", Some("echo"))
        };
        for hs in [
            missing_version,
            headers("2026-07-28", "tools/list", Some("echo")),
            headers("2026-07-28", "TOOLS/CALL", Some("echo")),
            RoutingHeaders {
                method: None,
                ..headers("2026-07-28", "", Some("echo"))
            },
            headers("2026-07-28", "tools/call", Some("wrong_tool")),
            headers("2026-07-28", "tools/call", None),
            headers("2026-07-28", "tools/call", Some("=?base64?!!!?=")),
        ] {
            assert_eq!(refused(call(hs)).0, 400, "{hs:?}");
            assert_eq!(refused(call(hs)).2, -32020, "{hs:?}");
        }
        // Base64-encoded names decode; resources/read compares the URI.
        assert!(matches!(
            call(headers(
                "2026-07-28",
                "tools/call",
                Some("=?base64?ZWNobw==?=")
            )),
            Admission::Request(_)
        ));
        let read = frame(
            "resources/read",
            json!({"uri": "test://a", "_meta": m.clone()}),
        );
        assert!(matches!(
            admit(
                &headers("2026-07-28", "resources/read", Some("test://a")),
                read
            ),
            Admission::Request(_)
        ));
        let read = frame("resources/read", json!({"uri": "test://a", "_meta": m}));
        assert_eq!(
            refused(admit(
                &headers("2026-07-28", "resources/read", Some("test://b")),
                read
            ))
            .2,
            -32020
        );
    }

    #[test]
    fn trimmed_header_values_from_a_head() {
        let h = head(
            "POST",
            &[
                ("mcp-protocol-version", " 2026-07-28 "),
                ("mcp-method", "tools/call"),
                ("mcp-name", "  echo  "),
            ],
        );
        let r = RoutingHeaders::of(&h);
        assert_eq!(
            (r.protocol_version, r.method, r.name),
            (Some("2026-07-28"), Some("tools/call"), Some("echo"))
        );
    }

    #[test]
    fn notifications_batches_and_responses() {
        let h = headers("2026-07-28", "notifications/cancelled", None);
        let mut b = br#"{"jsonrpc":"2.0","method":"notifications/cancelled","params":{}}"#.to_vec();
        assert!(matches!(
            admit(&h, jsonrpc::parse_frame(&mut b, 8).unwrap()),
            Admission::Accepted
        ));
        let mut b = br#"[{"jsonrpc":"2.0","id":1,"method":"tools/list"}]"#.to_vec();
        assert_eq!(
            refused(admit(&h, jsonrpc::parse_frame(&mut b, 8).unwrap())),
            (400, None, -32600)
        );
        let mut b = br#"{"jsonrpc":"2.0","id":4,"result":{}}"#.to_vec();
        assert_eq!(
            refused(admit(&h, jsonrpc::parse_frame(&mut b, 8).unwrap())),
            (400, Some(Id::Num(4)), -32600)
        );
    }

    #[test]
    fn statuses() {
        assert_eq!(status_for(code::METHOD_NOT_FOUND), 404);
        for c in [-32700, -32600, -32602, -32020, -32021, -32022] {
            assert_eq!(status_for(c), 400, "{c}");
        }
        assert_eq!(status_for(code::SHUTTING_DOWN), 503);
        assert_eq!(status_for(code::INTERNAL_ERROR), 500);
        assert_eq!(status_for(code::CLIENT_REQUEST_FAILED), 200);
    }

    fn server() -> McpServer {
        McpServer::new("s", "1")
            .resource(Resource::fixed_text("test://r", "r", "text/plain", "x"))
            .tool(crate::server::Tool::new(
                "t",
                "d",
                json!({"type": "object"}),
                |_, _| async { Ok(ToolOutput::text("x")) },
            ))
    }

    #[test]
    fn listen_filter_grants_what_exists() {
        let p = json!({"notifications": {
            "toolsListChanged": true, "promptsListChanged": false,
            "resourceSubscriptions": ["test://r", "test://missing", "test://r"]
        }});
        let f = ListenFilter::parse(p.as_object().unwrap(), &server(), 8).unwrap();
        assert_eq!(
            f.granted(),
            json!({"toolsListChanged": true, "resourceSubscriptions": ["test://r"]})
        );
        assert!(f.wants("notifications/tools/list_changed", &json!({})));
        assert!(!f.wants("notifications/prompts/list_changed", &json!({})));
        assert!(f.wants(
            "notifications/resources/updated",
            &json!({"uri": "test://r"})
        ));
        assert!(!f.wants(
            "notifications/resources/updated",
            &json!({"uri": "test://x"})
        ));
        assert!(!f.wants("notifications/message", &json!({})));
        for bad in [
            json!({}),
            json!({"notifications": 1}),
            json!({"notifications": {"resourceSubscriptions": "x"}}),
        ] {
            assert_eq!(
                ListenFilter::parse(bad.as_object().unwrap(), &server(), 8)
                    .unwrap_err()
                    .code,
                -32602
            );
        }
        let many = json!({"notifications": {"resourceSubscriptions": ["a", "b", "c"]}});
        assert!(ListenFilter::parse(many.as_object().unwrap(), &server(), 2).is_err());
    }

    #[test]
    fn listen_sink_filters_and_tags() {
        let x = Exchange::new(0, 8);
        let sink = ListenSink {
            exchange: x.clone(),
            filter: ListenFilter {
                prompts: true,
                uris: vec!["test://r".into()],
                ..Default::default()
            },
            subscription: Id::Str("L".into()),
        };
        let ack: Value = serde_json::from_slice(&sink.acknowledgement()).unwrap();
        assert_eq!(ack["method"], "notifications/subscriptions/acknowledged");
        assert_eq!(ack["params"]["_meta"][SUBSCRIPTION_ID], "L");
        let send = |m: &str, p: Value| {
            sink.send(OutMsg::Owned(jsonrpc::encode_notification(m, &p)))
                .unwrap()
        };
        send("notifications/tools/list_changed", json!({}));
        send("notifications/prompts/list_changed", json!({}));
        send(
            "notifications/resources/updated",
            json!({"uri": "test://other"}),
        );
        send(
            "notifications/resources/updated",
            json!({"uri": "test://r"}),
        );
        let mut got = Vec::new();
        while let Some(Some(ReplyEvent::Message {
            bytes, last: false, ..
        })) = futures_lite::future::block_on(futures_lite::future::poll_once(x.next()))
        {
            got.push(serde_json::from_slice::<Value>(&bytes).unwrap());
        }
        assert_eq!(
            got,
            [
                json!({"jsonrpc": "2.0", "method": "notifications/prompts/list_changed", "params": {"_meta": {SUBSCRIPTION_ID: "L"}}}),
                json!({"jsonrpc": "2.0", "method": "notifications/resources/updated", "params": {"uri": "test://r", "_meta": {SUBSCRIPTION_ID: "L"}}}),
            ]
        );
        x.close();
        assert_eq!(
            sink.send(OutMsg::Owned(jsonrpc::encode_notification(
                "notifications/prompts/list_changed",
                &json!({})
            ))),
            Err(SendError::Closed)
        );
    }
}
