//! JSON-RPC 2.0 framing, sans-I/O: parse one incoming frame (a single message or a batch
//! array) with simd-json, classify it, and encode responses and error objects.
//!
//! Nothing here knows about MCP methods; the dispatcher in [`crate::mcp`] sits on top.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// JSON-RPC error codes used by ringmcp. The standard ones come from the JSON-RPC 2.0
/// specification; the server-defined range (-32000..=-32099) is documented in docs/protocol.md.
pub mod code {
    /// Invalid JSON was received (id is always null).
    pub const PARSE_ERROR: i64 = -32700;
    /// The JSON sent is not a valid request object.
    pub const INVALID_REQUEST: i64 = -32600;
    /// The method does not exist or is not available.
    pub const METHOD_NOT_FOUND: i64 = -32601;
    /// Invalid method parameters.
    pub const INVALID_PARAMS: i64 = -32602;
    /// Internal error (including a panicking handler).
    pub const INTERNAL_ERROR: i64 = -32603;
    /// MCP: a resource was not found (resources/read, subscribe).
    pub const RESOURCE_NOT_FOUND: i64 = -32002;
    /// ringmcp: a configured limit was reached (too many in-flight requests, subscriptions, ...).
    pub const LIMIT_EXCEEDED: i64 = -32001;
    /// ringmcp: a server-to-client request timed out or the client answered with an error.
    pub const CLIENT_REQUEST_FAILED: i64 = -32003;
    /// ringmcp: the server is shutting down and no longer takes requests.
    pub const SHUTTING_DOWN: i64 = -32004;
    /// ringmcp: a rate limit refused the message (`data.reason`, `data.retryAfterMs`).
    pub const RATE_LIMITED: i64 = -32005;
    /// ringmcp: the shard is overloaded (in-flight or queue bound reached; `data.reason`,
    /// `data.retryAfterMs`). Nothing of the request was done: it is safe to retry.
    pub const OVERLOADED: i64 = -32006;
    /// ringmcp: the circuit breaker of the server or tool is open (`data.retryAfterMs`).
    pub const CIRCUIT_OPEN: i64 = -32007;
    /// ringmcp: the tool call ran past its timeout and was cancelled (`data.timeoutMs`).
    pub const TOOL_TIMEOUT: i64 = -32008;
    /// MCP 2026-07-28: a routing header (`MCP-Protocol-Version`, `Mcp-Method`, `Mcp-Name`)
    /// is missing or disagrees with the body.
    pub const HEADER_MISMATCH: i64 = -32020;
    /// MCP 2026-07-28: serving the request needs a client capability the request's `_meta`
    /// did not declare (`data.requiredCapabilities`).
    pub const MISSING_REQUIRED_CLIENT_CAPABILITY: i64 = -32021;
    /// MCP 2026-07-28: the requested protocol revision is not served (`data.supported`,
    /// `data.requested`).
    pub const UNSUPPORTED_PROTOCOL_VERSION: i64 = -32022;
}

/// A request or response id: a string or an integer (JSON-RPC also allows null for errors
/// about unparseable requests, which is represented by `Option<Id>` where needed).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Id {
    /// Numeric id.
    Num(i64),
    /// String id.
    Str(String),
}

impl std::fmt::Display for Id {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Id::Num(n) => write!(f, "{n}"),
            Id::Str(s) => write!(f, "{s:?}"),
        }
    }
}

impl Id {
    /// Reads an id out of a JSON value (`requestId` in notifications/cancelled, for example).
    pub fn from_value(v: &Value) -> Option<Id> {
        match v {
            Value::Number(n) => n.as_i64().map(Id::Num),
            Value::String(s) => Some(Id::Str(s.clone())),
            _ => None,
        }
    }

    /// The id as a JSON value.
    pub fn to_value(&self) -> Value {
        match self {
            Id::Num(n) => Value::from(*n),
            Id::Str(s) => Value::from(s.as_str()),
        }
    }
}

/// A JSON-RPC error object.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorObject {
    /// Error code.
    pub code: i64,
    /// Short description.
    pub message: String,
    /// Optional structured detail.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data: Option<Value>,
}

impl ErrorObject {
    /// An error with a code and message.
    pub fn new(code: i64, message: impl Into<String>) -> Self {
        ErrorObject {
            code,
            message: message.into(),
            data: None,
        }
    }
    /// -32602 with a message.
    pub fn invalid_params(message: impl Into<String>) -> Self {
        Self::new(code::INVALID_PARAMS, message)
    }
    /// -32603 with a message.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(code::INTERNAL_ERROR, message)
    }
    /// Attaches `data`.
    pub fn with_data(mut self, data: Value) -> Self {
        self.data = Some(data);
        self
    }
}

/// One classified incoming message.
#[derive(Debug, Clone, PartialEq)]
pub enum Message {
    /// A request: expects a response.
    Request {
        /// Request id.
        id: Id,
        /// Method name.
        method: String,
        /// Params (object or array), if present.
        params: Option<Value>,
    },
    /// A notification: no response.
    Notification {
        /// Method name.
        method: String,
        /// Params, if present.
        params: Option<Value>,
    },
    /// A response to a request this side sent.
    Response {
        /// The id of our request.
        id: Id,
        /// `Ok(result)` or `Err(error)`.
        outcome: Result<Value, ErrorObject>,
    },
}

/// Why one array element or single message is not a valid JSON-RPC message; it is answered
/// with -32600 and the id when one could be read.
#[derive(Debug, Clone, PartialEq)]
pub struct Invalid {
    /// The id, when the message carried a usable one.
    pub id: Option<Id>,
    /// What was wrong.
    pub reason: String,
}

/// One parsed frame.
#[derive(Debug)]
pub enum Frame {
    /// A single message (or an invalid one).
    Single(Result<Message, Invalid>),
    /// A batch array: each element classified on its own. Never empty.
    Batch(Vec<Result<Message, Invalid>>),
}

/// Parse failures that make the whole frame unusable.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum FrameError {
    /// Not JSON, or not UTF-8.
    #[error("parse error: {0}")]
    Parse(String),
    /// An empty array `[]`.
    #[error("invalid request: empty batch")]
    EmptyBatch,
    /// A batch longer than the configured maximum.
    #[error("invalid request: batch of {len} messages exceeds batch_messages_max {max}")]
    BatchTooLong {
        /// Elements in the batch.
        len: usize,
        /// The configured maximum.
        max: usize,
    },
}

impl FrameError {
    /// The JSON-RPC error object this failure is answered with.
    pub fn to_error(&self) -> ErrorObject {
        match self {
            FrameError::Parse(_) => ErrorObject::new(code::PARSE_ERROR, self.to_string()),
            _ => ErrorObject::new(code::INVALID_REQUEST, self.to_string()),
        }
    }
}

/// Messages up to this size are parsed with the thread's reused simd-json buffers; a
/// larger one gets buffers of its own, so no thread keeps a large buffer after it.
const REUSED_BUFFERS_MAX_INPUT: usize = 64 << 10;

thread_local! {
    // simd-json's working buffers, reused across messages instead of allocated per parse.
    static PARSE_BUFFERS: std::cell::RefCell<simd_json::Buffers> =
        std::cell::RefCell::new(simd_json::Buffers::default());
}

/// Parses one frame in place (simd-json mutates the buffer). `batch_max` bounds batch length.
pub fn parse_frame(buf: &mut [u8], batch_max: usize) -> Result<Frame, FrameError> {
    let value: Value = if buf.len() <= REUSED_BUFFERS_MAX_INPUT {
        PARSE_BUFFERS.with(|b| simd_json::serde::from_slice_with_buffers(buf, &mut b.borrow_mut()))
    } else {
        simd_json::serde::from_slice(buf)
    }
    .map_err(|e| FrameError::Parse(e.to_string()))?;
    match value {
        Value::Array(items) => {
            if items.is_empty() {
                return Err(FrameError::EmptyBatch);
            }
            if items.len() > batch_max {
                return Err(FrameError::BatchTooLong {
                    len: items.len(),
                    max: batch_max,
                });
            }
            Ok(Frame::Batch(items.into_iter().map(classify).collect()))
        }
        other => Ok(Frame::Single(classify(other))),
    }
}

/// Classifies one JSON value as a JSON-RPC message.
pub fn classify(value: Value) -> Result<Message, Invalid> {
    let Value::Object(mut obj) = value else {
        return Err(Invalid {
            id: None,
            reason: "message must be a JSON object".into(),
        });
    };
    let raw_id = obj.remove("id");
    let id = match &raw_id {
        None => None,
        Some(v) => match Id::from_value(v) {
            Some(id) => Some(id),
            None if v.is_null() => None,
            None => {
                return Err(Invalid {
                    id: None,
                    reason: "id must be a string or an integer".into(),
                })
            }
        },
    };
    match obj.get("jsonrpc") {
        Some(Value::String(v)) if v == "2.0" => {}
        _ => {
            return Err(Invalid {
                id,
                reason: "jsonrpc must be \"2.0\"".into(),
            })
        }
    }
    if let Some(method) = obj.remove("method") {
        let Value::String(method) = method else {
            return Err(Invalid {
                id,
                reason: "method must be a string".into(),
            });
        };
        let params = obj.remove("params");
        if let Some(p) = &params {
            if !p.is_object() && !p.is_array() {
                return Err(Invalid {
                    id,
                    reason: "params must be an object or an array".into(),
                });
            }
        }
        return Ok(match (raw_id, id) {
            (None, _) => Message::Notification { method, params },
            (Some(_), Some(id)) => Message::Request { id, method, params },
            (Some(_), None) => {
                return Err(Invalid {
                    id: None,
                    reason: "request id must not be null".into(),
                })
            }
        });
    }
    let Some(id) = id else {
        return Err(Invalid {
            id: None,
            reason: "message has neither a method nor a response id".into(),
        });
    };
    match (obj.remove("result"), obj.remove("error")) {
        (Some(result), None) => Ok(Message::Response {
            id,
            outcome: Ok(result),
        }),
        (None, Some(err)) => match serde_json::from_value::<ErrorObject>(err) {
            Ok(e) => Ok(Message::Response {
                id,
                outcome: Err(e),
            }),
            Err(e) => Err(Invalid {
                id: Some(id),
                reason: format!("malformed error object: {e}"),
            }),
        },
        _ => Err(Invalid {
            id: Some(id),
            reason: "a response carries exactly one of result and error".into(),
        }),
    }
}

/// Encodes a success response.
pub fn encode_result(id: &Id, result: &Value) -> Vec<u8> {
    #[derive(Serialize)]
    struct Out<'a> {
        jsonrpc: &'static str,
        id: &'a Id,
        result: &'a Value,
    }
    to_vec(&Out {
        jsonrpc: "2.0",
        id,
        result,
    })
}

/// Encodes an error response; `id` is `None` when the request's id could not be read.
pub fn encode_error(id: Option<&Id>, error: &ErrorObject) -> Vec<u8> {
    #[derive(Serialize)]
    struct Out<'a> {
        jsonrpc: &'static str,
        id: Option<&'a Id>,
        error: &'a ErrorObject,
    }
    to_vec(&Out {
        jsonrpc: "2.0",
        id,
        error,
    })
}

/// The error code of a response encoded by [`encode_error`], or `None` for one encoded by
/// [`encode_result`] (or anything else): metrics tell answers apart without decoding them
/// again. It reads only the prefix both encoders write, `{"jsonrpc":"2.0","id":<id>,` and
/// then `"error":{"code":<n>` or `"result":`; nothing inside a result can be mistaken for it.
pub fn encoded_error_code(encoded: &[u8]) -> Option<i64> {
    let rest = encoded.strip_prefix(br#"{"jsonrpc":"2.0","id":"#)?;
    let rest = &rest[encoded_id_len(rest)?..];
    let rest = rest.strip_prefix(br#","error":{"code":"#)?;
    let end = rest
        .iter()
        .position(|b| !(b.is_ascii_digit() || *b == b'-'))
        .unwrap_or(rest.len());
    std::str::from_utf8(&rest[..end]).ok()?.parse().ok()
}

/// The length of the encoded id (`null`, an integer or a string) at the start of `b`.
fn encoded_id_len(b: &[u8]) -> Option<usize> {
    match b.first()? {
        b'"' => {
            let mut i = 1;
            while i < b.len() {
                match b[i] {
                    b'\\' => i += 2,
                    b'"' => return Some(i + 1),
                    _ => i += 1,
                }
            }
            None
        }
        b'n' => b.starts_with(b"null").then_some(4),
        _ => Some(
            b.iter()
                .position(|c| !(c.is_ascii_digit() || *c == b'-'))
                .unwrap_or(b.len()),
        ),
    }
}

/// Encodes a notification.
pub fn encode_notification(method: &str, params: &Value) -> Vec<u8> {
    #[derive(Serialize)]
    struct Out<'a> {
        jsonrpc: &'static str,
        method: &'a str,
        params: &'a Value,
    }
    to_vec(&Out {
        jsonrpc: "2.0",
        method,
        params,
    })
}

/// Encodes a request sent by this side.
pub fn encode_request(id: &Id, method: &str, params: &Value) -> Vec<u8> {
    #[derive(Serialize)]
    struct Out<'a> {
        jsonrpc: &'static str,
        id: &'a Id,
        method: &'a str,
        params: &'a Value,
    }
    to_vec(&Out {
        jsonrpc: "2.0",
        id,
        method,
        params,
    })
}

/// Joins already-encoded messages into one JSON array (a batch response).
pub fn encode_batch(parts: &[Vec<u8>]) -> Vec<u8> {
    let len = parts.iter().map(|p| p.len() + 1).sum::<usize>() + 2;
    let mut out = Vec::with_capacity(len);
    out.push(b'[');
    for (i, p) in parts.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(p);
    }
    out.push(b']');
    out
}

fn to_vec<T: Serialize>(v: &T) -> Vec<u8> {
    // Serializing a tree of `Value`s and plain structs into memory cannot fail: there is no
    // I/O and every map key is a string.
    serde_json::to_vec(v).unwrap_or_else(|_| {
        br#"{"jsonrpc":"2.0","id":null,"error":{"code":-32603,"message":"encoding failed"}}"#
            .to_vec()
    })
}

/// What [`skim`] finds at the top level of a request or notification, without parsing it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Skimmed<'a> {
    /// The `id` token as it was sent: an integer or a string without escapes, quotes kept.
    /// `None` when absent or null (a notification).
    pub id: Option<&'a [u8]>,
    /// The method name.
    pub method: &'a str,
}

/// Longest integer id [`skim`] takes (digits); longer ones take the full parse, which says
/// whether they fit an `i64`.
const SKIM_INT_ID_DIGITS_MAX: usize = 18;

/// Looks at the top level of a single-message frame just far enough to find its `id` and
/// `method`, building nothing: admission control refuses a message over its rate from this
/// look alone, so that refusing costs a fraction of serving. Anything it is not sure of (a
/// batch, a response, a key or method or string id with escapes, an id that is neither an
/// integer nor a string, a repeated key, a control character in a string, broken nesting,
/// bytes after the object) answers `None`, and the frame takes the full parse, which gives
/// the precise error. It stops reading a request once it has both its `id` and `method`;
/// values it skips before are checked for structure (strings end, brackets nest), not for
/// the rest of JSON's grammar: a message refused from a skim is not parsed.
pub fn skim(b: &[u8]) -> Option<Skimmed<'_>> {
    let mut i = skip_ws(b, 0);
    if b.get(i) != Some(&b'{') {
        return None;
    }
    i = skip_ws(b, i + 1);
    let (mut id, mut seen_id, mut method) = (None, false, None);
    loop {
        if b.get(i) != Some(&b'"') {
            return None;
        }
        let (key_end, escaped) = string_end(b, i)?;
        if escaped {
            return None;
        }
        let key = &b[i + 1..key_end - 1];
        i = skip_ws(b, key_end);
        if b.get(i) != Some(&b':') {
            return None;
        }
        i = skip_ws(b, i + 1);
        let value_end = value_end(b, i)?;
        let value = &b[i..value_end];
        match key {
            b"id" if !seen_id => {
                seen_id = true;
                id = skim_id(value)?;
            }
            b"method" if method.is_none() => {
                let (end, escaped) = string_end(value, 0)?;
                if escaped || end != value.len() {
                    return None;
                }
                method = Some(std::str::from_utf8(&value[1..end - 1]).ok()?);
            }
            b"id" | b"method" | b"result" | b"error" => return None,
            _ => {}
        }
        if let (true, Some(method)) = (seen_id, method) {
            // A request: what follows is not looked at (nor parsed, when it is refused).
            return Some(Skimmed { id, method });
        }
        i = skip_ws(b, value_end);
        match b.get(i)? {
            b',' => i = skip_ws(b, i + 1),
            b'}' => {
                i += 1;
                break;
            }
            _ => return None,
        }
    }
    if skip_ws(b, i) != b.len() {
        return None;
    }
    Some(Skimmed {
        id,
        method: method?,
    })
}

/// An id token [`skim`] can echo as sent: `Some(None)` for null, `None` for anything else
/// than an integer or a string without escapes.
fn skim_id(v: &[u8]) -> Option<Option<&[u8]>> {
    match v.first()? {
        b'"' => {
            let (end, escaped) = string_end(v, 0)?;
            (!escaped && end == v.len() && std::str::from_utf8(v).is_ok()).then_some(Some(v))
        }
        b'n' => (v == b"null").then_some(None),
        _ => {
            let digits = v.strip_prefix(b"-").unwrap_or(v);
            let ok = !digits.is_empty()
                && digits.len() <= SKIM_INT_ID_DIGITS_MAX
                && digits.iter().all(u8::is_ascii_digit)
                && (digits[0] != b'0' || digits.len() == 1);
            ok.then_some(Some(v))
        }
    }
}

fn skip_ws(b: &[u8], mut i: usize) -> usize {
    while i < b.len() && matches!(b[i], b' ' | b'\t' | b'\n' | b'\r') {
        i += 1;
    }
    i
}

/// The end (exclusive) of the JSON string opening at `b[i]`, and whether it has escapes.
fn string_end(b: &[u8], i: usize) -> Option<(usize, bool)> {
    if b.get(i) != Some(&b'"') {
        return None;
    }
    let (mut j, mut escaped) = (i + 1, false);
    while j < b.len() {
        match b[j] {
            b'"' => return Some((j + 1, escaped)),
            b'\\' => {
                escaped = true;
                j += 2;
            }
            c if c < 0x20 => return None,
            _ => j += 1,
        }
    }
    None
}

/// The end (exclusive) of the JSON value starting at `b[i]`: strings to their closing
/// quote, objects and arrays to their matching bracket, anything else up to a delimiter.
fn value_end(b: &[u8], i: usize) -> Option<usize> {
    match *b.get(i)? {
        b'"' => string_end(b, i).map(|(end, _)| end),
        b'{' | b'[' => {
            // The open brackets as bits, innermost lowest (1 = object): deeper than 64 is
            // left to the full parse.
            let (mut open, mut depth) = (0u64, 0u32);
            let mut j = i;
            while j < b.len() {
                match b[j] {
                    b'"' => {
                        j = string_end(b, j)?.0;
                        continue;
                    }
                    c @ (b'{' | b'[') => {
                        if depth == 64 {
                            return None;
                        }
                        open = (open << 1) | u64::from(c == b'{');
                        depth += 1;
                    }
                    c @ (b'}' | b']') => {
                        if depth == 0 || (open & 1 == 1) != (c == b'}') {
                            return None;
                        }
                        open >>= 1;
                        depth -= 1;
                    }
                    _ => {}
                }
                j += 1;
                if depth == 0 {
                    return Some(j);
                }
            }
            None
        }
        b',' | b'}' | b']' | b':' => None,
        _ => {
            let mut j = i;
            while j < b.len() && !matches!(b[j], b',' | b'}' | b']' | b' ' | b'\t' | b'\n' | b'\r')
            {
                j += 1;
            }
            Some(j)
        }
    }
}

/// Builds `{}` when params are absent; a convenience for handlers.
pub fn params_object(params: Option<Value>) -> Result<Map<String, Value>, ErrorObject> {
    match params {
        None | Some(Value::Null) => Ok(Map::new()),
        Some(Value::Object(m)) => Ok(m),
        Some(_) => Err(ErrorObject::invalid_params("params must be an object")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn skimmed(s: &str) -> Option<(Option<String>, String)> {
        skim(s.as_bytes()).map(|k| {
            (
                k.id.map(|id| String::from_utf8_lossy(id).into_owned()),
                k.method.to_string(),
            )
        })
    }

    #[test]
    fn skim_finds_id_and_method_at_the_top_level_only() {
        let some = |id: &str, m: &str| Some((Some(id.to_string()), m.to_string()));
        assert_eq!(
            skimmed(r#"{"jsonrpc":"2.0","id":12,"method":"tools/call","params":{"id":99}}"#),
            some("12", "tools/call")
        );
        // id after params, with nesting, brackets and escapes inside strings.
        assert_eq!(
            skimmed(
                r#" { "method" : "ping", "params": {"a": ["}", {"id": "x\"]"}], "b": -1.5e3},
                "id" : "r-1" } "#
            ),
            some(r#""r-1""#, "ping")
        );
        assert_eq!(skimmed(r#"{"id":-7,"method":"x"}"#), some("-7", "x"));
        // Notifications: no id, or a null one.
        assert_eq!(
            skimmed(r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#),
            Some((None, "notifications/initialized".into()))
        );
        assert_eq!(
            skimmed(r#"{"id":null,"method":"n"}"#),
            Some((None, "n".into()))
        );
    }

    #[test]
    fn skim_leaves_anything_unusual_to_the_parse() {
        for s in [
            r#"[{"jsonrpc":"2.0","id":1,"method":"ping"}]"#, // a batch
            r#"{"jsonrpc":"2.0","id":1,"result":{}}"#,       // a response
            r#"{"jsonrpc":"2.0","id":1}"#,                   // no method
            r#"{"id":1,"method":"p\u0069ng"}"#,              // escaped method
            r#"{"id":"a\"b","method":"ping"}"#,              // escaped string id
            r#"{"id":1.5,"method":"ping"}"#,                 // not an integer
            r#"{"id":01,"method":"ping"}"#,                  // leading zero
            r#"{"id":1234567890123456789,"method":"ping"}"#, // may not fit
            r#"{"id":true,"method":"ping"}"#,
            r#"{"id":{},"method":"ping"}"#,
            r#"{"method":"ping","method":"x","id":1}"#, // repeated key
            r#"{"method":"ping","params":{"a":[}],"id":1}"#, // broken nesting
            r#"{"method":"ping","params":"open"#,       // unterminated
            r#"{"method":"ping"} trailing"#,
            r#"{"error":{},"method":"ping","id":1}"#,
            "{\"method\":\"pi\nng\",\"id\":1}", // a control character
            "",
            "{}",
        ] {
            assert_eq!(skimmed(s), None, "{s}");
        }
        // Deeper than the skim follows.
        let deep = format!(
            r#"{{"method":"ping","params":{}{},"id":1}}"#,
            "[".repeat(65),
            "]".repeat(65)
        );
        assert_eq!(skimmed(&deep), None);
        let ok = format!(
            r#"{{"method":"ping","params":{}{},"id":1}}"#,
            "[".repeat(64),
            "]".repeat(64)
        );
        assert_eq!(skimmed(&ok), Some((Some("1".into()), "ping".into())));
    }

    fn parse(s: &str) -> Result<Frame, FrameError> {
        let mut b = s.as_bytes().to_vec();
        parse_frame(&mut b, 16)
    }

    #[test]
    fn classifies_request_notification_response() {
        let Frame::Single(Ok(Message::Request { id, method, .. })) =
            parse(r#"{"jsonrpc":"2.0","id":7,"method":"ping"}"#).unwrap()
        else {
            panic!("not a request")
        };
        assert_eq!((id, method.as_str()), (Id::Num(7), "ping"));
        assert!(matches!(
            parse(r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#).unwrap(),
            Frame::Single(Ok(Message::Notification { .. }))
        ));
        assert!(matches!(
            parse(r#"{"jsonrpc":"2.0","id":"a","result":{}}"#).unwrap(),
            Frame::Single(Ok(Message::Response { outcome: Ok(_), .. }))
        ));
        assert!(matches!(
            parse(r#"{"jsonrpc":"2.0","id":"a","error":{"code":1,"message":"x"}}"#).unwrap(),
            Frame::Single(Ok(Message::Response {
                outcome: Err(_),
                ..
            }))
        ));
    }

    #[test]
    fn rejects_bad_json_and_invalid_requests() {
        assert!(matches!(parse("{nope"), Err(FrameError::Parse(_))));
        let mut bad_utf8 = b"{\"jsonrpc\":\"2.0\",\"method\":\"\xff\xfe\"}".to_vec();
        assert!(matches!(
            parse_frame(&mut bad_utf8, 4),
            Err(FrameError::Parse(_))
        ));
        assert_eq!(parse("[]").unwrap_err(), FrameError::EmptyBatch);
        let Frame::Single(Err(inv)) = parse(r#"{"jsonrpc":"1.0","id":3,"method":"x"}"#).unwrap()
        else {
            panic!()
        };
        assert_eq!(inv.id, Some(Id::Num(3)));
        let Frame::Single(Err(_)) = parse(r#"{"jsonrpc":"2.0","id":3,"method":5}"#).unwrap() else {
            panic!()
        };
        let Frame::Single(Err(_)) = parse(r#"{"jsonrpc":"2.0","id":{},"method":"x"}"#).unwrap()
        else {
            panic!()
        };
        let Frame::Single(Err(_)) = parse("42").unwrap() else {
            panic!()
        };
        let Frame::Single(Err(_)) =
            parse(r#"{"jsonrpc":"2.0","id":1,"method":"x","params":3}"#).unwrap()
        else {
            panic!()
        };
    }

    #[test]
    fn batch_bounds() {
        let Frame::Batch(items) = parse(r#"[{"jsonrpc":"2.0","id":1,"method":"a"},5]"#).unwrap()
        else {
            panic!()
        };
        assert!(items[0].is_ok() && items[1].is_err());
        let mut long = format!("[{}]", vec!["1"; 17].join(",")).into_bytes();
        assert!(matches!(
            parse_frame(&mut long, 16),
            Err(FrameError::BatchTooLong { len: 17, max: 16 })
        ));
    }

    #[test]
    fn encodes() {
        let r = encode_result(&Id::Num(1), &serde_json::json!({"a":1}));
        assert_eq!(r, br#"{"jsonrpc":"2.0","id":1,"result":{"a":1}}"#);
        let e = encode_error(None, &ErrorObject::new(code::PARSE_ERROR, "bad"));
        assert_eq!(
            e,
            br#"{"jsonrpc":"2.0","id":null,"error":{"code":-32700,"message":"bad"}}"#
        );
        assert_eq!(encode_batch(&[b"1".to_vec(), b"2".to_vec()]), b"[1,2]");
    }

    #[test]
    fn error_codes_are_read_back_from_encoded_responses() {
        let ids = [
            None,
            Some(Id::Num(7)),
            Some(Id::Num(-3)),
            Some(Id::Str("x\\\",\"error\":{\"code\":1}".into())),
            Some(Id::Str(String::new())),
        ];
        for id in &ids {
            let e = encode_error(id.as_ref(), &ErrorObject::new(-32601, "nope"));
            assert_eq!(encoded_error_code(&e), Some(-32601), "{id:?}");
            if let Some(id) = id {
                // A result that looks like an error inside is still a result.
                let r = encode_result(id, &serde_json::json!({"error": {"code": 5}}));
                assert_eq!(encoded_error_code(&r), None, "{id:?}");
            }
        }
        assert_eq!(encoded_error_code(b"[]"), None);
        assert_eq!(encoded_error_code(b""), None);
        assert_eq!(
            encoded_error_code(br#"{"jsonrpc":"2.0","id":"unterminated"#),
            None
        );
    }
}
