//! One module per MCP method family, plus the pagination helper they share.

pub mod completion;
pub mod discover;
pub mod logging;
pub mod prompts;
pub mod resources;
pub mod tools;

use crate::jsonrpc::ErrorObject;
use crate::mcp::revision::Revision;
use serde_json::{json, Map, Value};

/// `ttlMs` of list and read results and of `server/discover` (2026-07-28). Zero: the
/// client should fetch again when it needs the answer, because tools, prompts and
/// resources may change at any time (clients holding a `subscriptions/listen` stream learn
/// of changes as they happen and may cache until then).
pub const RESULT_TTL_MS: u64 = 0;

/// Who may share a cached result (`cacheScope`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheScope {
    /// The same for every client of the server (lists, discovery).
    Public,
    /// Only for the client that asked (resource contents, which a handler may compute per
    /// caller).
    Private,
}

/// Adds the caching hints `ttlMs` and `cacheScope` when the revision has them.
pub fn cacheable(rev: Revision, mut result: Value, scope: CacheScope) -> Value {
    if rev.has_cache_hints() {
        if let Value::Object(m) = &mut result {
            m.insert("ttlMs".into(), json!(RESULT_TTL_MS));
            let scope = match scope {
                CacheScope::Public => "public",
                CacheScope::Private => "private",
            };
            m.insert("cacheScope".into(), json!(scope));
        }
    }
    result
}

/// Cuts one page out of `len` items: returns the index range and the next cursor. The
/// cursor is opaque to clients; it encodes the offset of the next page.
pub fn page(
    params: &Map<String, Value>,
    len: usize,
    page_size: usize,
) -> Result<(std::ops::Range<usize>, Option<String>), ErrorObject> {
    let start = match params.get("cursor") {
        None | Some(Value::Null) => 0,
        Some(Value::String(c)) => decode_cursor(c)
            .filter(|&o| o <= len)
            .ok_or_else(|| ErrorObject::invalid_params(format!("invalid cursor: {c:?}")))?,
        Some(_) => return Err(ErrorObject::invalid_params("cursor must be a string")),
    };
    let end = start.saturating_add(page_size).min(len);
    let next = (end < len).then(|| encode_cursor(end));
    Ok((start..end, next))
}

fn encode_cursor(offset: usize) -> String {
    format!("rmc1.{offset:x}")
}

fn decode_cursor(c: &str) -> Option<usize> {
    usize::from_str_radix(c.strip_prefix("rmc1.")?, 16).ok()
}

/// Builds `{ <key>: items, nextCursor? }`.
pub fn list_result(key: &str, items: Vec<Value>, next: Option<String>) -> Value {
    let mut m = Map::new();
    m.insert(key.into(), Value::Array(items));
    if let Some(n) = next {
        m.insert("nextCursor".into(), Value::String(n));
    }
    Value::Object(m)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn pages_walk_to_the_end() {
        let mut params = Map::new();
        let mut seen = 0;
        let mut pages = 0;
        loop {
            let (r, next) = page(&params, 7, 3).unwrap();
            seen += r.len();
            pages += 1;
            match next {
                Some(c) => {
                    params.insert("cursor".into(), json!(c));
                }
                None => break,
            }
        }
        assert_eq!((seen, pages), (7, 3));
    }

    #[test]
    fn cache_hints_follow_the_revision() {
        let v = cacheable(
            Revision::V2026_07_28,
            json!({"tools": []}),
            CacheScope::Public,
        );
        assert_eq!(v, json!({"tools": [], "ttlMs": 0, "cacheScope": "public"}));
        let v = cacheable(
            Revision::V2025_11_25,
            json!({"tools": []}),
            CacheScope::Public,
        );
        assert_eq!(v, json!({"tools": []}));
    }

    #[test]
    fn bad_cursors_are_invalid_params() {
        for c in [json!("nope"), json!("rmc1.zz"), json!("rmc1.ff"), json!(5)] {
            let mut p = Map::new();
            p.insert("cursor".into(), c);
            assert_eq!(page(&p, 3, 2).unwrap_err().code, -32602);
        }
    }
}
