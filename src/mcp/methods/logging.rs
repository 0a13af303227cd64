//! `logging/setLevel`: the minimum level of `notifications/message` this session receives.

use crate::jsonrpc::ErrorObject;
use crate::mcp::dispatch::Request;
use crate::server::LogLevel;
use serde_json::{json, Value};

/// `logging/setLevel`.
pub fn set_level(req: Request<'_>) -> Result<Value, ErrorObject> {
    let level = req
        .params
        .get("level")
        .and_then(Value::as_str)
        .and_then(LogLevel::parse)
        .ok_or_else(|| {
            ErrorObject::invalid_params(
                "params.level must be one of debug, info, notice, warning, error, critical, alert, emergency",
            )
        })?;
    req.core.log_level.set(Some(level));
    Ok(json!({}))
}
