//! `prompts/list` and `prompts/get`.

use super::{cacheable, list_result, page, CacheScope};
use crate::jsonrpc::ErrorObject;
use crate::mcp::dispatch::{Dispatched, Request};
use serde_json::{Map, Value};

/// `prompts/list`.
pub fn list(req: Request<'_>) -> Result<Value, ErrorObject> {
    let rev = req.core.revision();
    let prompts = &req.core.server.prompts;
    let (range, next) = page(&req.params, prompts.len(), req.core.limits.page_size)?;
    let items = prompts[range].iter().map(|p| p.describe(rev)).collect();
    Ok(cacheable(
        rev,
        list_result("prompts", items, next),
        CacheScope::Public,
    ))
}

/// `prompts/get`: checks required arguments, then renders the prompt.
pub fn get(req: Request<'_>) -> Dispatched {
    let rev = req.core.revision();
    let Some(name) = req.params.get("name").and_then(Value::as_str) else {
        return Dispatched::Ready(Err(ErrorObject::invalid_params(
            "params.name (string) is required",
        )));
    };
    let Some(prompt) = req.core.server.prompts.iter().find(|p| p.name == name) else {
        return Dispatched::Ready(Err(ErrorObject::invalid_params(format!(
            "Unknown prompt: {name}"
        ))));
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
    for a in &prompt.arguments {
        match args.get(&a.name) {
            None if a.required => {
                return Dispatched::Ready(Err(ErrorObject::invalid_params(format!(
                    "prompt {name}: missing required argument {:?}",
                    a.name
                ))))
            }
            Some(v) if !v.is_string() => {
                return Dispatched::Ready(Err(ErrorObject::invalid_params(format!(
                    "prompt {name}: argument {:?} must be a string",
                    a.name
                ))))
            }
            _ => {}
        }
    }
    let fut = (prompt.get)(args, req.ctx);
    Dispatched::Pending(Box::pin(async move { fut.await.map(|o| o.to_json(rev)) }))
}
