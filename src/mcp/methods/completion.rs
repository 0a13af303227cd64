//! `completion/complete`: argument completion for prompts and resource templates.

use crate::jsonrpc::ErrorObject;
use crate::mcp::dispatch::Request;
use serde_json::{json, Map, Value};

/// The most values one completion answer carries (the protocol's cap).
pub const VALUES_MAX: usize = 100;

/// `completion/complete`.
pub fn complete(req: Request<'_>) -> Result<Value, ErrorObject> {
    let p = &req.params;
    let reference = p
        .get("ref")
        .and_then(Value::as_object)
        .ok_or_else(|| ErrorObject::invalid_params("params.ref (object) is required"))?;
    let argument = p
        .get("argument")
        .and_then(Value::as_object)
        .ok_or_else(|| ErrorObject::invalid_params("params.argument (object) is required"))?;
    let arg_name = argument
        .get("name")
        .and_then(Value::as_str)
        .ok_or_else(|| ErrorObject::invalid_params("params.argument.name (string) is required"))?;
    let arg_value = argument
        .get("value")
        .and_then(Value::as_str)
        .ok_or_else(|| ErrorObject::invalid_params("params.argument.value (string) is required"))?;
    let empty = Map::new();
    let context = p
        .get("context")
        .and_then(|c| c.get("arguments"))
        .and_then(Value::as_object)
        .unwrap_or(&empty);
    let server = &req.core.server;
    let completer = match reference.get("type").and_then(Value::as_str) {
        Some("ref/prompt") => {
            let name = reference
                .get("name")
                .and_then(Value::as_str)
                .ok_or_else(|| ErrorObject::invalid_params("ref.name (string) is required"))?;
            let prompt = server
                .prompts
                .iter()
                .find(|pr| pr.name == name)
                .ok_or_else(|| ErrorObject::invalid_params(format!("Unknown prompt: {name}")))?;
            if !prompt.arguments.iter().any(|a| a.name == arg_name) {
                return Err(ErrorObject::invalid_params(format!(
                    "prompt {name} has no argument {arg_name:?}"
                )));
            }
            prompt.complete.clone()
        }
        Some("ref/resource") => {
            let uri = reference
                .get("uri")
                .and_then(Value::as_str)
                .ok_or_else(|| ErrorObject::invalid_params("ref.uri (string) is required"))?;
            let template = server
                .templates
                .iter()
                .find(|t| t.uri_template == uri)
                .ok_or_else(|| {
                    ErrorObject::invalid_params(format!("Unknown resource template: {uri}"))
                })?;
            template.complete.clone()
        }
        _ => {
            return Err(ErrorObject::invalid_params(
                "ref.type must be \"ref/prompt\" or \"ref/resource\"",
            ))
        }
    };
    let mut values = completer
        .map(|f| f(arg_name, arg_value, context))
        .unwrap_or_default();
    let total = values.len();
    values.truncate(VALUES_MAX);
    Ok(json!({"completion": {"values": values, "total": total, "hasMore": total > VALUES_MAX}}))
}
