//! HTTP transports: Streamable HTTP (session revisions and the stateless 2026-07-28
//! revision) and the legacy HTTP+SSE transport of 2024-11-05, served by an HTTP/1.1 server
//! on every shard ([`conn`]).
//!
//! Endpoints: `/mcp` for the default server and `/mcp/{server}` for each hosted one; the
//! legacy transport at `/mcp/{server}/sse` (GET) and `/mcp/{server}/messages` (POST), and
//! `/sse`, `/messages` for the default server.

pub mod conn;
pub mod exchange;
pub mod parse;
pub mod security;
pub mod stateless;
pub mod streamable;

use crate::limits::{Overload, TokenBucket};
use crate::mcp::Revision;
use crate::runtime::{MeshMsg, Shard};
use exchange::{Exchange, ReplyEvent, ReplyTo};
use parse::RequestHead;
use ringmcp_shards::{shard_for, SessionId};
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;
use std::time::{Duration, Instant};
use streamable::{HttpSession, SessionOp};

/// The stateless revision's wire name.
pub const STATELESS_REVISION: &str = "2026-07-28";

/// Cross-shard HTTP traffic.
#[derive(Debug, Clone)]
pub enum HttpMsg {
    /// A request for a session the receiving shard owns.
    Forward {
        /// The session.
        session: SessionId,
        /// The hosted server whose endpoint the request came to (a session answers only at
        /// its own).
        server: String,
        /// What the client asked.
        op: SessionOp,
        /// The shard holding the client's connection.
        reply_shard: usize,
        /// The exchange there.
        reply_exchange: u64,
    },
    /// An event for an exchange on the receiving shard.
    Event {
        /// The exchange key.
        exchange: u64,
        /// The event.
        event: ReplyEvent,
    },
    /// The client of a forwarded stream went away: the owner stops sending to it.
    Detached {
        /// The session.
        session: SessionId,
        /// The shard that held the connection.
        shard: usize,
        /// The exchange key there.
        exchange: u64,
    },
}

/// One shard's HTTP state: the sessions it owns and the exchanges waiting for answers
/// from other shards.
#[derive(Default)]
pub struct HttpShared {
    /// Sessions whose id routes to this shard.
    pub sessions: RefCell<HashMap<SessionId, Rc<HttpSession>>>,
    exchanges: RefCell<HashMap<u64, Rc<Exchange>>>,
    next_exchange: Cell<u64>,
}

impl HttpShared {
    /// A new exchange, registered so that events from other shards find it.
    pub fn new_exchange(&self, shard: &Shard, register: bool) -> Rc<Exchange> {
        let key = self.next_exchange.get();
        self.next_exchange.set(key + 1);
        let x = Exchange::counted(
            key,
            shard.config.http.exchange_events_max,
            shard.local_metrics.clone(),
        );
        if register {
            self.exchanges.borrow_mut().insert(key, x.clone());
        }
        x
    }

    /// Forgets a registered exchange.
    pub fn drop_exchange(&self, key: u64) {
        self.exchanges.borrow_mut().remove(&key);
    }
}

/// Handles HTTP traffic from another shard.
pub fn on_mesh(shard: &Rc<Shard>, msg: HttpMsg) {
    let http = &shard.http;
    match msg {
        HttpMsg::Forward {
            session,
            server,
            op,
            reply_shard,
            reply_exchange,
        } => {
            debug_assert_eq!(shard_for(session.as_bytes(), shard.count), shard.index);
            let reply = ReplyTo::Remote {
                shard: reply_shard,
                exchange: reply_exchange,
            };
            streamable::apply(shard, http, session, &server, op, reply);
        }
        HttpMsg::Event { exchange, event } => {
            let x = http.exchanges.borrow().get(&exchange).cloned();
            if let Some(x) = x {
                x.push(event);
            }
        }
        HttpMsg::Detached {
            session,
            shard: from,
            exchange,
        } => {
            if let Some(s) = http.sessions.borrow().get(&session) {
                s.detach((from, exchange));
            }
        }
    }
}

/// What the connection writes back.
pub enum Response {
    /// A complete response.
    Full {
        /// Status.
        status: u16,
        /// Extra headers.
        headers: Vec<(String, String)>,
        /// Body (JSON when non-empty).
        body: Vec<u8>,
    },
    /// A response produced through an exchange: JSON if the first event is the final
    /// message, else SSE.
    Exchange {
        /// The exchange.
        exchange: Rc<Exchange>,
        /// Extra headers.
        headers: Vec<(String, String)>,
        /// Send a priming event (id, empty data, retry) first when the response is SSE
        /// (revision 2025-11-25 and later).
        priming: bool,
        /// For a forwarded request: the owner shard and session, told when the client goes.
        forwarded: Option<(usize, SessionId)>,
    },
}

impl Response {
    /// The answer to a request admission control refused: the overload's status with
    /// `Retry-After`, and its JSON-RPC error (for the request `id`, when known) as the body.
    pub fn overload(id: Option<&crate::jsonrpc::Id>, why: &Overload) -> Response {
        Response::Full {
            status: why.http_status(),
            headers: vec![("Retry-After".into(), why.retry_after_s().to_string())],
            body: crate::jsonrpc::encode_error(id, &why.to_error()),
        }
    }

    /// A full response with a JSON-RPC error body.
    pub fn error(status: u16, message: &str) -> Response {
        Response::Full {
            status,
            headers: Vec::new(),
            body: streamable::error_json(message),
        }
    }

    /// A response produced through `exchange`, with no extra headers.
    pub fn exchange(
        exchange: Rc<Exchange>,
        priming: bool,
        forwarded: Option<(usize, SessionId)>,
    ) -> Response {
        Response::Exchange {
            exchange,
            headers: Vec::new(),
            priming,
            forwarded,
        }
    }
}

enum Route {
    Mcp(String),
    LegacySse(String),
    LegacyMessages(String),
}

fn route(shard: &Shard, path: &str) -> Option<Route> {
    let default = &shard.config.server.default_server;
    let hosted = |name: &str| shard.servers.contains_key(name).then(|| name.to_string());
    let path = path.trim_end_matches('/');
    match path {
        "/mcp" => return Some(Route::Mcp(default.clone())),
        "/sse" => return Some(Route::LegacySse(default.clone())),
        "/messages" => return Some(Route::LegacyMessages(default.clone())),
        _ => {}
    }
    let rest = path.strip_prefix("/mcp/")?;
    match rest.split_once('/') {
        None => hosted(rest).map(Route::Mcp),
        Some((name, "sse")) => hosted(name).map(Route::LegacySse),
        Some((name, "messages")) => hosted(name).map(Route::LegacyMessages),
        Some(_) => None,
    }
}

fn accepts(head: &RequestHead, mime: &str) -> bool {
    head.header("accept")
        .is_some_and(|a| media_list_accepts(a.as_bytes(), mime.as_bytes()))
}

/// Whether a media-range list (an `Accept` value) admits `mime`: an exact type (any case),
/// `*/*`, or `type/*`. Parameters after `;` are ignored.
fn media_list_accepts(list: &[u8], mime: &[u8]) -> bool {
    list.split(|&b| b == b',').any(|range| {
        let t = range
            .split(|&b| b == b';')
            .next()
            .unwrap_or(&[])
            .trim_ascii();
        t.eq_ignore_ascii_case(mime)
            || t == b"*/*"
            || (t.ends_with(b"/*")
                && mime.len() >= t.len() - 1
                && mime[..t.len() - 1].eq_ignore_ascii_case(&t[..t.len() - 1]))
    })
}

/// Answers one request. `rate` is the connection's message bucket: over HTTP every request
/// is one message of its connection (a session's messages may arrive over several).
pub async fn respond(
    shard: &Rc<Shard>,
    head: &RequestHead,
    body: Vec<u8>,
    rate: Option<&mut TokenBucket>,
) -> Response {
    if let Some(rate) = rate {
        if let Err(why) = shard.gate.connection_message(rate, Instant::now()) {
            return Response::overload(None, &why);
        }
    }
    if let Err(resp) = security::check(shard, head) {
        return resp;
    }
    let Some(route) = route(shard, &head.path) else {
        return Response::error(404, &format!("no MCP endpoint at {}", head.path));
    };
    match route {
        Route::Mcp(server) => mcp_endpoint(shard, head, body, &server).await,
        Route::LegacySse(server) => legacy_sse(shard, head, &server),
        Route::LegacyMessages(server) => legacy_messages(shard, head, body, &server),
    }
}

/// What every POST to an MCP endpoint must say about media types: it accepts both JSON and
/// SSE (406 otherwise) and sends JSON (415 otherwise).
fn check_post_media(head: &RequestHead) -> Result<(), Response> {
    if !(accepts(head, "application/json") && accepts(head, "text/event-stream")) {
        return Err(Response::error(
            406,
            "Accept must list both application/json and text/event-stream",
        ));
    }
    let ct = head.header("content-type").unwrap_or("");
    if !ct
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .eq_ignore_ascii_case("application/json")
    {
        return Err(Response::error(
            415,
            "Content-Type must be application/json",
        ));
    }
    Ok(())
}

fn method_not_allowed(allow: &str) -> Response {
    let mut r = Response::error(405, &format!("method not allowed; use {allow}"));
    if let Response::Full { headers, .. } = &mut r {
        headers.push(("Allow".into(), allow.into()));
    }
    r
}

async fn mcp_endpoint(
    shard: &Rc<Shard>,
    head: &RequestHead,
    body: Vec<u8>,
    server: &str,
) -> Response {
    if stateless::routes_here(head, &body) {
        return stateless::handle(shard, head, body, server).await;
    }
    let version = head.header("mcp-protocol-version");
    if let Some(v) = version {
        if Revision::parse(v).is_none() {
            return Response::error(
                400,
                &format!(
                    "unsupported MCP-Protocol-Version {v:?}; supported: 2024-11-05, 2025-03-26, 2025-06-18, 2025-11-25, {STATELESS_REVISION}"
                ),
            );
        }
    }
    let session_header = head.header("mcp-session-id");
    match head.method.as_str() {
        "POST" => {
            if let Err(resp) = check_post_media(head) {
                return resp;
            }
            match session_header {
                None => {
                    let mut body = body;
                    match streamable::initialize(shard, &shard.http, server, &mut body) {
                        Ok((bytes, id)) => Response::Full {
                            status: 200,
                            headers: vec![("Mcp-Session-Id".into(), id.to_string())],
                            body: bytes,
                        },
                        Err(answer) => answer,
                    }
                }
                Some(id) => {
                    let priming = version.and_then(Revision::parse) >= Some(Revision::V2025_11_25);
                    to_session(shard, id, server, SessionOp::Post { body }, priming)
                }
            }
        }
        "GET" => {
            if !accepts(head, "text/event-stream") {
                return Response::error(406, "Accept must list text/event-stream");
            }
            let Some(id) = session_header else {
                return Response::error(400, "missing Mcp-Session-Id header");
            };
            let last = head.header("last-event-id").map(str::to_string);
            to_session(
                shard,
                id,
                server,
                SessionOp::Get {
                    last_event_id: last,
                },
                false,
            )
        }
        "DELETE" => {
            let Some(id) = session_header else {
                return Response::error(400, "missing Mcp-Session-Id header");
            };
            to_session(shard, id, server, SessionOp::Delete, false)
        }
        _ => method_not_allowed("GET, POST, DELETE"),
    }
}

/// Sends an operation to the session's owner shard (this one or another) and returns the
/// exchange its answer arrives on.
fn to_session(shard: &Rc<Shard>, id: &str, server: &str, op: SessionOp, priming: bool) -> Response {
    let Ok(id) = id.parse::<SessionId>() else {
        return Response::error(404, "session not found (malformed Mcp-Session-Id)");
    };
    let owner = shard_for(id.as_bytes(), shard.count);
    if owner == shard.index {
        let x = shard.http.new_exchange(shard, false);
        streamable::apply(
            shard,
            &shard.http,
            id,
            server,
            op,
            ReplyTo::Local(x.clone()),
        );
        return Response::exchange(x, priming, None);
    }
    let x = shard.http.new_exchange(shard, true);
    shard.mesh_send(
        owner,
        MeshMsg::Http(HttpMsg::Forward {
            session: id,
            server: server.to_string(),
            op,
            reply_shard: shard.index,
            reply_exchange: x.key,
        }),
    );
    Response::exchange(x, priming, Some((owner, id)))
}

fn legacy_sse(shard: &Rc<Shard>, head: &RequestHead, server: &str) -> Response {
    if head.method != "GET" {
        return method_not_allowed("GET");
    }
    let s = match streamable::create(shard, &shard.http, server, true) {
        Ok(s) => s,
        Err(e) => return Response::error(503, &e.message),
    };
    let base = head
        .path
        .trim_end_matches('/')
        .trim_end_matches("/sse")
        .to_string();
    let x = shard.http.new_exchange(shard, false);
    // The owner (this shard) opens the stream, then the client learns where to POST.
    streamable::apply(
        shard,
        &shard.http,
        s.id,
        server,
        SessionOp::Get {
            last_event_id: None,
        },
        ReplyTo::Local(x.clone()),
    );
    x.push(ReplyEvent::Named {
        event: "endpoint".into(),
        data: streamable::legacy_endpoint(&base, &s.id),
    });
    Response::exchange(x, false, None)
}

fn legacy_messages(shard: &Rc<Shard>, head: &RequestHead, body: Vec<u8>, server: &str) -> Response {
    if head.method != "POST" {
        return method_not_allowed("POST");
    }
    let Some(id) = head.query_param("sessionId").map(str::to_string) else {
        return Response::error(400, "missing sessionId query parameter");
    };
    to_session(shard, &id, server, SessionOp::Post { body }, false)
}

/// Ends sessions idle for longer than `http.session_idle_timeout_ms` (a client holding
/// the standalone stream open is not idle). Runs until shutdown.
pub async fn sweep_sessions(shard: Rc<Shard>) {
    let idle = Duration::from_millis(shard.config.http.session_idle_timeout_ms);
    let period = (idle / 4).clamp(Duration::from_millis(100), Duration::from_secs(10));
    loop {
        let stop = async {
            shard.shutdown.cancelled().await;
            true
        };
        let tick = async {
            glommio::timer::sleep(period).await;
            false
        };
        if futures_lite::future::or(stop, tick).await {
            break;
        }
        let now = Instant::now();
        let expired: Vec<SessionId> = shard
            .http
            .sessions
            .borrow()
            .values()
            .filter(|s| !s.has_listener() && now.duration_since(s.idle_since()) > idle)
            .map(|s| s.id)
            .collect();
        for id in expired {
            tracing::debug!(session = %id, "http session expired");
            streamable::remove(&shard, &shard.http, &id);
        }
    }
    // Shutdown: no new requests; those in flight run for up to the grace period; then every
    // session's streams end so their connections can close.
    let sessions: Vec<Rc<HttpSession>> = shard.http.sessions.borrow().values().cloned().collect();
    for s in &sessions {
        s.begin_shutdown();
    }
    let deadline = Instant::now() + Duration::from_millis(shard.config.server.shutdown_grace_ms);
    while sessions.iter().any(|s| s.in_flight() > 0) && Instant::now() < deadline {
        glommio::timer::sleep(Duration::from_millis(10)).await;
    }
    drop(sessions);
    let ids: Vec<SessionId> = shard.http.sessions.borrow().keys().copied().collect();
    for id in ids {
        streamable::remove(&shard, &shard.http, &id);
    }
}

#[cfg(test)]
mod tests {
    use super::media_list_accepts;

    #[test]
    fn accept_lists() {
        let ok = |list: &str, mime: &str| media_list_accepts(list.as_bytes(), mime.as_bytes());
        assert!(ok(
            "application/json, text/event-stream",
            "text/event-stream"
        ));
        assert!(ok(
            "application/json;q=0.9,text/event-stream",
            "application/json"
        ));
        assert!(ok("Application/JSON", "application/json"));
        assert!(ok("*/*", "text/event-stream"));
        assert!(ok("text/*", "text/event-stream"));
        assert!(!ok("text/*", "application/json"));
        assert!(!ok("application/jsonl", "application/json"));
        assert!(!ok("", "application/json"));
    }
}
