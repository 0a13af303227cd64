//! `resources/list`, `resources/templates/list`, `resources/read`, `resources/subscribe`
//! and `resources/unsubscribe`.

use super::{cacheable, list_result, page, CacheScope};
use crate::jsonrpc::{code, ErrorObject};
use crate::mcp::dispatch::{Dispatched, Request};
use crate::mcp::revision::Revision;
use crate::server::McpServer;
use serde_json::{json, Value};

/// `resources/list`.
pub fn list(req: Request<'_>) -> Result<Value, ErrorObject> {
    let rev = req.core.revision();
    let resources = &req.core.server.resources;
    let (range, next) = page(&req.params, resources.len(), req.core.limits.page_size)?;
    let items = resources[range].iter().map(|r| r.describe(rev)).collect();
    Ok(cacheable(
        rev,
        list_result("resources", items, next),
        CacheScope::Public,
    ))
}

/// `resources/templates/list`.
pub fn templates_list(req: Request<'_>) -> Result<Value, ErrorObject> {
    let rev = req.core.revision();
    let templates = &req.core.server.templates;
    let (range, next) = page(&req.params, templates.len(), req.core.limits.page_size)?;
    let items = templates[range].iter().map(|t| t.describe()).collect();
    Ok(cacheable(
        rev,
        list_result("resourceTemplates", items, next),
        CacheScope::Public,
    ))
}

fn uri_param(req: &Request<'_>) -> Result<String, ErrorObject> {
    req.params
        .get("uri")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .ok_or_else(|| ErrorObject::invalid_params("params.uri (string) is required"))
}

fn not_found(rev: Revision, uri: &str) -> ErrorObject {
    // SEP-2164 (2026-07-28): an unknown URI is a bad parameter like any other.
    let code = if rev.resource_not_found_is_invalid_params() {
        code::INVALID_PARAMS
    } else {
        code::RESOURCE_NOT_FOUND
    };
    ErrorObject::new(code, format!("Resource not found: {uri}")).with_data(json!({"uri": uri}))
}

/// Whether `uri` names a resource of `server` (static or through a template).
pub fn exists(server: &McpServer, uri: &str) -> bool {
    server.resources.iter().any(|r| r.uri == uri)
        || server.templates.iter().any(|t| t.matches(uri).is_some())
}

/// `resources/read`: a static resource, else the first template that matches.
pub fn read(req: Request<'_>) -> Dispatched {
    let uri = match uri_param(&req) {
        Ok(u) => u,
        Err(e) => return Dispatched::Ready(Err(e)),
    };
    let rev = req.core.revision();
    let server = &req.core.server;
    let fut = if let Some(r) = server.resources.iter().find(|r| r.uri == uri) {
        (r.read)(uri, req.ctx)
    } else if let Some((t, vars)) = server
        .templates
        .iter()
        .find_map(|t| t.matches(&uri).map(|v| (t, v)))
    {
        (t.read)(uri, vars, req.ctx)
    } else {
        return Dispatched::Ready(Err(not_found(rev, &uri)));
    };
    Dispatched::Pending(Box::pin(async move {
        let contents = fut.await?;
        let result = json!({"contents": contents.iter().map(|c| c.to_json()).collect::<Vec<_>>()});
        Ok(cacheable(rev, result, CacheScope::Private))
    }))
}

/// `resources/subscribe`: registers the session in its shard's registry partition.
pub fn subscribe(req: Request<'_>) -> Result<Value, ErrorObject> {
    let uri = uri_param(&req)?;
    if !exists(&req.core.server, &uri) {
        return Err(not_found(req.core.revision(), &uri));
    }
    req.core
        .host
        .subscribe(&req.core.id, &req.core.server.name, &uri)
        .map_err(|why| ErrorObject::new(code::LIMIT_EXCEEDED, why))?;
    Ok(json!({}))
}

/// `resources/unsubscribe`.
pub fn unsubscribe(req: Request<'_>) -> Result<Value, ErrorObject> {
    let uri = uri_param(&req)?;
    req.core
        .host
        .unsubscribe(&req.core.id, &req.core.server.name, &uri);
    Ok(json!({}))
}
