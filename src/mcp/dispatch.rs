//! The method table: maps a request's method name to its handler.

use crate::jsonrpc::{code, ErrorObject};
use crate::mcp::methods::{completion, logging, prompts, resources, tools};
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
/// [`crate::mcp::session`]).
pub fn dispatch(req: Request<'_>, method: &str) -> Dispatched {
    match method {
        "ping" => Dispatched::Ready(Ok(json!({}))),
        "tools/list" => tools::list(req).into(),
        "tools/call" => tools::call(req),
        "resources/list" => resources::list(req).into(),
        "resources/templates/list" => resources::templates_list(req).into(),
        "resources/read" => resources::read(req),
        "resources/subscribe" => resources::subscribe(req).into(),
        "resources/unsubscribe" => resources::unsubscribe(req).into(),
        "prompts/list" => prompts::list(req).into(),
        "prompts/get" => prompts::get(req),
        "logging/setLevel" => logging::set_level(req).into(),
        "completion/complete" => completion::complete(req).into(),
        other => Dispatched::Ready(Err(ErrorObject::new(
            code::METHOD_NOT_FOUND,
            format!("method not found: {other}"),
        ))),
    }
}
