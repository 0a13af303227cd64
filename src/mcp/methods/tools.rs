//! `tools/list` and `tools/call`.

use super::{cacheable, list_result, page, CacheScope};
use crate::jsonrpc::ErrorObject;
use crate::mcp::dispatch::{Dispatched, Request};
use crate::schema;
use crate::server::ToolOutput;
use serde_json::{Map, Value};

/// `tools/list`: the visible tools, one page at a time.
pub fn list(req: Request<'_>) -> Result<Value, ErrorObject> {
    let rev = req.core.revision();
    let visible: Vec<_> = req
        .core
        .server
        .tools
        .iter()
        .filter(|t| t.is_visible())
        .collect();
    let (range, next) = page(&req.params, visible.len(), req.core.limits.page_size)?;
    let items = visible[range].iter().map(|t| t.describe(rev)).collect();
    Ok(cacheable(
        rev,
        list_result("tools", items, next),
        CacheScope::Public,
    ))
}

/// `tools/call`: checks the arguments against the tool's input schema, then runs its handler.
pub fn call(req: Request<'_>) -> Dispatched {
    let rev = req.core.revision();
    let name = match req.params.get("name") {
        Some(Value::String(n)) => n.clone(),
        _ => {
            return Dispatched::Ready(Err(ErrorObject::invalid_params(
                "params.name (string) is required",
            )))
        }
    };
    let args = match req.params.get("arguments") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(m)) => m.clone(),
        Some(_) => {
            return Dispatched::Ready(Err(ErrorObject::invalid_params(
                "params.arguments must be an object",
            )))
        }
    };
    let Some(tool) = req.core.server.find_tool(&name) else {
        return Dispatched::Ready(Err(ErrorObject::invalid_params(format!(
            "Unknown tool: {name}"
        ))));
    };
    if let Err(why) = schema::check(&tool.input_schema, &Value::Object(args.clone())) {
        let msg = format!("invalid arguments for tool {name}: {why}");
        return Dispatched::Ready(if rev.validation_errors_as_tool_results() {
            Ok(ToolOutput::error(msg).to_json(rev))
        } else {
            Err(ErrorObject::invalid_params(msg))
        });
    }
    let fut = (tool.handler)(args, req.ctx);
    Dispatched::Pending(Box::pin(
        async move { fut.await.map(|out| out.to_json(rev)) },
    ))
}
