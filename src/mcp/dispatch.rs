//! The method table: maps a request's method name to its handler. Which methods exist
//! depends on the revision (sessions or not); under the stateless revision every result is
//! stamped with `resultType` and the server's identity.

use crate::jsonrpc::{code, ErrorObject};
use crate::mcp::meta::SERVER_INFO;
use crate::mcp::methods::{completion, discover, logging, prompts, resources, tools};
use crate::server::{Ctx, SessionCore};
use futures_lite::future::BoxedLocal;
use serde_json::{json, Map, Value};
use std::rc::Rc;

/// A handled request: answered at once, or by a future running on the shard.
pub enum Dispatched {
    /// The result is ready.
    Ready(Result<Value, ErrorObject>),
    /// A handler is running; its output is the result.
    Pending(BoxedLocal<Result<Value, ErrorObject>>),
}

impl From<Result<Value, ErrorObject>> for Dispatched {
    fn from(r: Result<Value, ErrorObject>) -> Self {
        Dispatched::Ready(r)
    }
}

/// One request as the method handlers see it.
pub struct Request<'a> {
    /// The session (or per-request) state.
    pub core: &'a Rc<SessionCore>,
    /// Params as an object (absent params are `{}`).
    pub params: Map<String, Value>,
    /// The handler context for this request.
    pub ctx: Ctx,
}

/// Dispatches an MCP request other than `initialize` (which is lifecycle, see
/// [`crate::mcp::session`]) and, under the stateless revision, `subscriptions/listen`
/// (a stream the transport holds open).
pub fn dispatch(req: Request<'_>, method: &str) -> Dispatched {
    let rev = req.core.revision();
    if !rev.has_result_type() {
        return route(req, method);
    }
    let info = discover::server_info(&req.core.server, rev);
    match route(req, method) {
        Dispatched::Ready(r) => Dispatched::Ready(r.map(|v| stamp(v, info))),
        Dispatched::Pending(fut) => {
            Dispatched::Pending(Box::pin(async move { fut.await.map(|v| stamp(v, info)) }))
        }
    }
}

fn route(req: Request<'_>, method: &str) -> Dispatched {
    // Methods of the session lifecycle do not exist without sessions (2026-07-28): the
    // client names its level per request and subscribes on a subscriptions/listen stream.
    let sessions = req.core.revision().has_sessions();
    match method {
        "ping" if sessions => Dispatched::Ready(Ok(json!({}))),
        "server/discover" if !sessions => discover::discover(req).into(),
        "tools/list" => tools::list(req).into(),
        "tools/call" => tools::call(req),
        "resources/list" => resources::list(req).into(),
        "resources/templates/list" => resources::templates_list(req).into(),
        "resources/read" => resources::read(req),
        "resources/subscribe" if sessions => resources::subscribe(req).into(),
        "resources/unsubscribe" if sessions => resources::unsubscribe(req).into(),
        "prompts/list" => prompts::list(req).into(),
        "prompts/get" => prompts::get(req),
        "logging/setLevel" if sessions => logging::set_level(req).into(),
        "completion/complete" => completion::complete(req).into(),
        other => Dispatched::Ready(Err(ErrorObject::new(
            code::METHOD_NOT_FOUND,
            format!("method not found: {other}"),
        ))),
    }
}

/// A result of the stateless revision: `resultType` ("complete" unless the handler said
/// otherwise) and the server's identity in `_meta`.
fn stamp(mut result: Value, server_info: Value) -> Value {
    if let Value::Object(m) = &mut result {
        m.entry("resultType").or_insert_with(|| json!("complete"));
        if let Value::Object(meta) = m.entry("_meta").or_insert_with(|| json!({})) {
            meta.entry(SERVER_INFO).or_insert(server_info);
        }
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mcp::meta::{RequestMeta, CLIENT_CAPABILITIES, PROTOCOL_VERSION};
    use crate::mcp::revision::Revision;
    use crate::rt::{CancelToken, Host, OutMsg, Outbound, SendError};
    use crate::server::{CoreLimits, McpServer, Resource, Tool, ToolOutput};
    use futures_lite::future::block_on;
    use ringmcp_shards::SessionId;
    use std::time::Duration;

    struct Nowhere;
    impl Outbound for Nowhere {
        fn send(&self, _: OutMsg) -> Result<(), SendError> {
            Ok(())
        }
    }
    impl Host for Nowhere {
        fn sleep(&self, _: Duration) -> BoxedLocal<()> {
            Box::pin(async {})
        }
        crate::rt::host_without_registry!();
    }

    fn server() -> Rc<McpServer> {
        Rc::new(
            McpServer::new("s", "1.2")
                .resource(Resource::fixed_text("test://r", "r", "text/plain", "x"))
                .tool(Tool::new(
                    "t",
                    "d",
                    json!({"type": "object"}),
                    |_, _| async { Ok(ToolOutput::text("x")) },
                )),
        )
    }

    fn limits() -> CoreLimits {
        CoreLimits {
            in_flight_max: 4,
            client_requests_max: 4,
            client_request_timeout: Duration::from_secs(1),
            page_size: 10,
            batch_max: 4,
            shard: 0,
            tool_call_timeout: None,
            breaker: None,
        }
    }

    fn stateless_core() -> Rc<SessionCore> {
        let mut p = Map::new();
        p.insert(
            "_meta".into(),
            json!({PROTOCOL_VERSION: "2026-07-28", CLIENT_CAPABILITIES: {}}),
        );
        let meta = RequestMeta::parse(&p).unwrap();
        let n = Rc::new(Nowhere);
        SessionCore::stateless(
            SessionId::from_bytes([1; 16]),
            server(),
            n.clone(),
            n,
            limits(),
            Revision::V2026_07_28,
            &meta,
        )
    }

    fn session_core() -> Rc<SessionCore> {
        let n = Rc::new(Nowhere);
        SessionCore::new(
            SessionId::from_bytes([2; 16]),
            server(),
            n.clone(),
            n,
            limits(),
        )
    }

    fn call(core: &Rc<SessionCore>, method: &str, params: Value) -> Result<Value, ErrorObject> {
        let req = Request {
            core,
            params: params.as_object().cloned().unwrap_or_default(),
            ctx: Ctx::new(core.clone(), None, CancelToken::new()),
        };
        match dispatch(req, method) {
            Dispatched::Ready(r) => r,
            Dispatched::Pending(f) => block_on(f),
        }
    }

    #[test]
    fn the_stateless_method_table() {
        let core = stateless_core();
        for m in [
            "ping",
            "logging/setLevel",
            "resources/subscribe",
            "resources/unsubscribe",
            "initialize",
            "subscriptions/listen",
        ] {
            assert_eq!(
                call(&core, m, json!({})).unwrap_err().code,
                code::METHOD_NOT_FOUND,
                "{m}"
            );
        }
        let d = call(&core, "server/discover", json!({})).unwrap();
        assert_eq!(d["supportedVersions"], json!(["2026-07-28"]));
        assert_eq!(d["capabilities"]["tools"]["listChanged"], true);
        assert_eq!(
            d["_meta"][SERVER_INFO],
            json!({"name": "s", "version": "1.2"})
        );
        assert_eq!(
            (d["ttlMs"].as_u64(), d["resultType"].as_str()),
            (Some(0), Some("complete"))
        );
        for m in [
            "tools/list",
            "prompts/list",
            "resources/list",
            "resources/templates/list",
        ] {
            let r = call(&core, m, json!({})).unwrap();
            assert_eq!(r["resultType"], "complete", "{m}");
            assert_eq!(r["cacheScope"], "public", "{m}");
            assert!(r["ttlMs"].is_u64(), "{m}");
        }
        let r = call(&core, "resources/read", json!({"uri": "test://r"})).unwrap();
        assert_eq!(
            (r["cacheScope"].as_str(), r["resultType"].as_str()),
            (Some("private"), Some("complete"))
        );
        let r = call(&core, "tools/call", json!({"name": "t"})).unwrap();
        assert_eq!(r["resultType"], "complete");
        assert_eq!(r["_meta"][SERVER_INFO]["name"], "s");
        let e = call(&core, "resources/read", json!({"uri": "test://nope"})).unwrap_err();
        assert_eq!(
            (e.code, e.data),
            (code::INVALID_PARAMS, Some(json!({"uri": "test://nope"})))
        );
    }

    #[test]
    fn the_session_method_table_is_unchanged() {
        let core = session_core();
        assert_eq!(
            call(&core, "server/discover", json!({})).unwrap_err().code,
            code::METHOD_NOT_FOUND
        );
        assert_eq!(call(&core, "ping", json!({})).unwrap(), json!({}));
        let r = call(&core, "tools/list", json!({})).unwrap();
        assert!(r.get("resultType").is_none() && r.get("ttlMs").is_none());
        let r = call(&core, "tools/call", json!({"name": "t"})).unwrap();
        assert!(r.get("resultType").is_none() && r.get("_meta").is_none());
        let e = call(&core, "resources/read", json!({"uri": "test://nope"})).unwrap_err();
        assert_eq!(e.code, code::RESOURCE_NOT_FOUND);
    }
}
