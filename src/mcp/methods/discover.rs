//! `server/discover` (stateless revisions): the protocol revisions served per request, the
//! server's capabilities and identity. It replaces what `initialize` told a session.

use super::{cacheable, CacheScope};
use crate::jsonrpc::ErrorObject;
use crate::mcp::dispatch::Request;
use crate::mcp::meta::SERVER_INFO;
use crate::mcp::revision::Revision;
use crate::mcp::session::server_capabilities;
use crate::server::McpServer;
use serde_json::{json, Map, Value};

/// `server/discover`.
pub fn discover(req: Request<'_>) -> Result<Value, ErrorObject> {
    let rev = req.core.revision();
    let server = &req.core.server;
    let supported: Vec<&str> = Revision::STATELESS.iter().map(|r| r.as_str()).collect();
    let mut m = Map::new();
    m.insert("supportedVersions".into(), json!(supported));
    m.insert("capabilities".into(), server_capabilities(rev));
    if let Some(i) = &server.instructions {
        m.insert("instructions".into(), json!(i));
    }
    let mut meta = Map::new();
    meta.insert(SERVER_INFO.into(), server_info(server, rev));
    m.insert("_meta".into(), Value::Object(meta));
    Ok(cacheable(rev, Value::Object(m), CacheScope::Public))
}

/// The server's `Implementation` object (`name`, `version`, and `title` where the
/// revision has titles).
pub fn server_info(server: &McpServer, rev: Revision) -> Value {
    let mut info = Map::new();
    info.insert("name".into(), json!(server.name));
    info.insert("version".into(), json!(server.version));
    if rev.has_structured_output() {
        if let Some(t) = &server.title {
            info.insert("title".into(), json!(t));
        }
    }
    Value::Object(info)
}
