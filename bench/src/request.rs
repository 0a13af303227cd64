//! The bytes the generator sends, rendered from templates built once per worker: only
//! the id (and, for HTTP, the Content-Length and the session id) change per request, so
//! a request costs a few `extend_from_slice` into the connection's reused send buffer
//! and no allocation.
//!
//! - TCP: `initialize` (id 0) and `notifications/initialized` once per connection, then
//!   one `tools/call` line per request.
//! - Streamable HTTP with sessions: `initialize` (id 0) POST, then
//!   `notifications/initialized` and every call with `Mcp-Session-Id` and
//!   `MCP-Protocol-Version: 2025-11-25`.
//! - Stateless HTTP (2026-07-28): every call carries `MCP-Protocol-Version: 2026-07-28`,
//!   `Mcp-Method`, `Mcp-Name` and the `_meta` fields the revision requires.

use crate::config::{Target, Transport};
use base64::Engine as _;

/// The session revision used over TCP and session HTTP.
pub const SESSION_REVISION: &str = "2025-11-25";
/// The stateless revision.
pub const STATELESS_REVISION: &str = "2026-07-28";
/// The id of `initialize`; request ids start at 1.
pub const INIT_ID: u64 = 0;
/// The id of `resources/subscribe` in subscribe mode (which sends no calls, so no
/// request id is ever reused).
pub const SUBSCRIBE_ID: u64 = 1;

const CLIENT_INFO: &str = r#"{"name":"ringmcp-load","version":"0.1.0"}"#;

/// Renders requests for one target.
#[derive(Debug, Clone)]
pub struct Encoder {
    transport: Transport,
    /// `{"jsonrpc":"2.0","id":`
    body_prefix: Vec<u8>,
    /// `,"method":"tools/call","params":{...}}`
    body_suffix: Vec<u8>,
    /// HTTP: the request line and fixed headers of a call, up to the variable ones.
    head: Vec<u8>,
    /// HTTP: the request line and fixed headers of `initialize`.
    init_head: Vec<u8>,
    /// The `initialize` body (HTTP) or both handshake lines (TCP).
    init_body: Vec<u8>,
    /// The `notifications/initialized` body.
    initialized_body: Vec<u8>,
    /// Subscribe mode: the `resources/subscribe` body (a line over TCP).
    subscribe_body: Vec<u8>,
    /// Subscribe mode, HTTP: the `GET` of the standalone SSE stream, up to the session id.
    listen_head: Vec<u8>,
}

impl Encoder {
    /// Templates for calling `tool` with `arguments` (a JSON object, checked by
    /// [`crate::config::RunConfig::validate`]).
    pub fn new(target: &Target, tool: &str, arguments: &str) -> Encoder {
        let tool_json = serde_json::Value::String(tool.to_string()).to_string();
        let body_prefix = br#"{"jsonrpc":"2.0","id":"#.to_vec();
        let mut body_suffix = format!(
            r#","method":"tools/call","params":{{"name":{tool_json},"arguments":{arguments}"#
        );
        if target.transport == Transport::HttpStateless {
            body_suffix.push_str(&format!(
                r#","_meta":{{"io.modelcontextprotocol/protocolVersion":"{STATELESS_REVISION}","io.modelcontextprotocol/clientInfo":{CLIENT_INFO},"io.modelcontextprotocol/clientCapabilities":{{}}}}"#
            ));
        }
        body_suffix.push_str("}}");
        let host = format!("Host: {}\r\n", target.addr);
        let common = format!(
            "POST {} HTTP/1.1\r\n{host}Accept: application/json, text/event-stream\r\nContent-Type: application/json\r\n",
            target.path
        );
        let head = match target.transport {
            Transport::Tcp => String::new(),
            Transport::Http => format!("{common}MCP-Protocol-Version: {SESSION_REVISION}\r\n"),
            Transport::HttpStateless => format!(
                "{common}MCP-Protocol-Version: {STATELESS_REVISION}\r\nMcp-Method: tools/call\r\nMcp-Name: {}\r\n",
                header_value(tool)
            ),
        };
        let init = format!(
            r#"{{"jsonrpc":"2.0","id":{INIT_ID},"method":"initialize","params":{{"protocolVersion":"{SESSION_REVISION}","capabilities":{{}},"clientInfo":{CLIENT_INFO}}}}}"#
        );
        let initialized = r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#;
        let init_body = match target.transport {
            Transport::Tcp => format!("{init}\n{initialized}\n"),
            _ => init,
        };
        let listen_head = format!(
            "GET {} HTTP/1.1\r\n{host}Accept: text/event-stream\r\nMCP-Protocol-Version: {SESSION_REVISION}\r\n",
            target.path
        );
        Encoder {
            transport: target.transport,
            body_prefix,
            body_suffix: body_suffix.into_bytes(),
            head: head.into_bytes(),
            init_head: common.into_bytes(),
            init_body: init_body.into_bytes(),
            initialized_body: initialized.as_bytes().to_vec(),
            subscribe_body: Vec::new(),
            listen_head: listen_head.into_bytes(),
        }
    }

    /// The same encoder, also able to render `resources/subscribe` for `uri`.
    pub fn with_subscribe(mut self, uri: &str) -> Encoder {
        let uri_json = serde_json::Value::String(uri.to_string()).to_string();
        let mut body = format!(
            r#"{{"jsonrpc":"2.0","id":{SUBSCRIBE_ID},"method":"resources/subscribe","params":{{"uri":{uri_json}}}}}"#
        )
        .into_bytes();
        if !self.transport.is_http() {
            body.push(b'\n');
        }
        self.subscribe_body = body;
        self
    }

    /// Appends `resources/subscribe` (id [`SUBSCRIBE_ID`]): a line over TCP, a POST with
    /// `session` over HTTP. Renders nothing unless built [`Encoder::with_subscribe`].
    pub fn push_subscribe(&self, out: &mut Vec<u8>, session: &[u8]) {
        if self.subscribe_body.is_empty() {
            return;
        }
        if self.transport.is_http() {
            out.extend_from_slice(&self.head);
            push_session(out, Some(session));
            push_content_length(out, self.subscribe_body.len());
        }
        out.extend_from_slice(&self.subscribe_body);
    }

    /// Appends the `GET` that opens the standalone SSE stream of HTTP session `session`.
    pub fn push_listen(&self, out: &mut Vec<u8>, session: &[u8]) {
        out.extend_from_slice(&self.listen_head);
        push_session(out, Some(session));
        out.extend_from_slice(b"\r\n");
    }

    /// Appends one `tools/call` with `id`; `session` is the HTTP session id.
    pub fn push_call(&self, out: &mut Vec<u8>, id: u64, session: Option<&[u8]>) {
        let mut digits = itoa::Buffer::new();
        let id = digits.format(id).as_bytes();
        let body_len = self.body_prefix.len() + id.len() + self.body_suffix.len();
        if self.transport.is_http() {
            out.extend_from_slice(&self.head);
            push_session(out, session);
            push_content_length(out, body_len);
        }
        out.extend_from_slice(&self.body_prefix);
        out.extend_from_slice(id);
        out.extend_from_slice(&self.body_suffix);
        if !self.transport.is_http() {
            out.push(b'\n');
        }
    }

    /// Appends the opening handshake: TCP `initialize` + `notifications/initialized`
    /// lines, or the HTTP `initialize` POST. Stateless HTTP has none.
    pub fn push_initialize(&self, out: &mut Vec<u8>) {
        match self.transport {
            Transport::Tcp => out.extend_from_slice(&self.init_body),
            Transport::Http => {
                out.extend_from_slice(&self.init_head);
                push_content_length(out, self.init_body.len());
                out.extend_from_slice(&self.init_body);
            }
            Transport::HttpStateless => {}
        }
    }

    /// Appends the HTTP `notifications/initialized` POST of a session.
    pub fn push_initialized(&self, out: &mut Vec<u8>, session: &[u8]) {
        out.extend_from_slice(&self.head);
        push_session(out, Some(session));
        push_content_length(out, self.initialized_body.len());
        out.extend_from_slice(&self.initialized_body);
    }

    /// Bytes of one call (with a 32-byte session id), for sizing buffers.
    pub fn call_len_hint(&self) -> usize {
        self.head.len() + self.body_prefix.len() + self.body_suffix.len() + 96
    }
}

fn push_session(out: &mut Vec<u8>, session: Option<&[u8]>) {
    if let Some(s) = session {
        out.extend_from_slice(b"Mcp-Session-Id: ");
        out.extend_from_slice(s);
        out.extend_from_slice(b"\r\n");
    }
}

fn push_content_length(out: &mut Vec<u8>, n: usize) {
    let mut digits = itoa::Buffer::new();
    out.extend_from_slice(b"Content-Length: ");
    out.extend_from_slice(digits.format(n).as_bytes());
    out.extend_from_slice(b"\r\n\r\n");
}

/// A header value as is when it is plain visible ASCII without edge spaces, else
/// `=?base64?…?=` (how 2026-07-28 clients send other names).
pub fn header_value(v: &str) -> String {
    let plain = !v.is_empty()
        && v.bytes().all(|b| (0x20..0x7f).contains(&b))
        && !v.starts_with(' ')
        && !v.ends_with(' ')
        && !v.starts_with("=?");
    if plain {
        v.to_string()
    } else {
        format!(
            "=?base64?{}?=",
            base64::engine::general_purpose::STANDARD.encode(v.as_bytes())
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(url: &str) -> Target {
        Target::parse(url).unwrap()
    }

    #[test]
    fn tcp_lines() {
        let e = Encoder::new(&target("tcp://127.0.0.1:7070"), "echo", r#"{"text":"hi"}"#);
        let mut out = Vec::new();
        e.push_initialize(&mut out);
        e.push_call(&mut out, 42, None);
        let text = String::from_utf8(out).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3);
        let call: serde_json::Value = serde_json::from_str(lines[2]).unwrap();
        assert_eq!(call["id"], 42);
        assert_eq!(call["method"], "tools/call");
        assert_eq!(call["params"]["name"], "echo");
        assert_eq!(call["params"]["arguments"]["text"], "hi");
        let init: serde_json::Value = serde_json::from_str(lines[0]).unwrap();
        assert_eq!(init["method"], "initialize");
        assert_eq!(init["id"], 0);
        assert!(text.ends_with('\n'));
    }

    /// Parses a request we rendered with the server-side reading of HTTP: head,
    /// Content-Length, body.
    fn parse_request(buf: &[u8]) -> (Vec<(String, String)>, serde_json::Value, usize) {
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut req = httparse::Request::new(&mut headers);
        let httparse::Status::Complete(n) = req.parse(buf).unwrap() else {
            panic!("incomplete")
        };
        let hs: Vec<(String, String)> = req
            .headers
            .iter()
            .map(|h| {
                (
                    h.name.to_string(),
                    String::from_utf8(h.value.to_vec()).unwrap(),
                )
            })
            .collect();
        let len: usize = hs
            .iter()
            .find(|(k, _)| k == "Content-Length")
            .unwrap()
            .1
            .parse()
            .unwrap();
        let body = serde_json::from_slice(&buf[n..n + len]).unwrap();
        (hs, body, n + len)
    }

    #[test]
    fn http_session_requests() {
        let e = Encoder::new(
            &target("http://127.0.0.1:8080/mcp/demo"),
            "echo",
            r#"{"text":"x"}"#,
        );
        let mut out = Vec::new();
        e.push_initialize(&mut out);
        let (hs, body, n) = parse_request(&out);
        assert_eq!(n, out.len());
        assert_eq!(body["method"], "initialize");
        assert!(hs.iter().all(|(k, _)| k != "Mcp-Session-Id"));
        assert!(out.starts_with(b"POST /mcp/demo HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n"));
        out.clear();
        e.push_initialized(&mut out, b"abc");
        e.push_call(&mut out, 1_000_000, Some(b"abc"));
        let (hs, body, n) = parse_request(&out);
        assert_eq!(body["method"], "notifications/initialized");
        assert!(hs.contains(&("Mcp-Session-Id".into(), "abc".into())));
        let (hs, body, m) = parse_request(&out[n..]);
        assert_eq!(n + m, out.len());
        assert_eq!(body["id"], 1_000_000);
        assert!(hs.contains(&("MCP-Protocol-Version".into(), "2025-11-25".into())));
        assert!(hs.contains(&(
            "Accept".into(),
            "application/json, text/event-stream".into()
        )));
        assert!(hs.contains(&("Content-Type".into(), "application/json".into())));
    }

    #[test]
    fn subscribe_and_listen() {
        let e = Encoder::new(&target("tcp://127.0.0.1:7070"), "echo", "{}")
            .with_subscribe("demo://\"q\"");
        let mut out = Vec::new();
        e.push_subscribe(&mut out, b"");
        assert!(out.ends_with(b"\n"));
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["id"], SUBSCRIBE_ID);
        assert_eq!(v["method"], "resources/subscribe");
        assert_eq!(v["params"]["uri"], "demo://\"q\"");
        // Without with_subscribe nothing is rendered.
        let plain = Encoder::new(&target("tcp://127.0.0.1:7070"), "echo", "{}");
        let mut none = Vec::new();
        plain.push_subscribe(&mut none, b"");
        assert!(none.is_empty());

        let e = Encoder::new(&target("http://127.0.0.1:8080/mcp/demo"), "echo", "{}")
            .with_subscribe("demo://counter");
        let mut out = Vec::new();
        e.push_subscribe(&mut out, b"sid");
        let (hs, body, n) = parse_request(&out);
        assert_eq!(n, out.len());
        assert_eq!(body["method"], "resources/subscribe");
        assert!(hs.contains(&("Mcp-Session-Id".into(), "sid".into())));
        out.clear();
        e.push_listen(&mut out, b"sid");
        let mut headers = [httparse::EMPTY_HEADER; 16];
        let mut req = httparse::Request::new(&mut headers);
        assert_eq!(
            req.parse(&out).unwrap(),
            httparse::Status::Complete(out.len())
        );
        assert_eq!(req.method, Some("GET"));
        assert_eq!(req.path, Some("/mcp/demo"));
        let h = |name: &str| {
            req.headers
                .iter()
                .find(|h| h.name == name)
                .map(|h| String::from_utf8_lossy(h.value).to_string())
        };
        assert_eq!(h("Accept").as_deref(), Some("text/event-stream"));
        assert_eq!(h("Mcp-Session-Id").as_deref(), Some("sid"));
        assert_eq!(h("MCP-Protocol-Version").as_deref(), Some(SESSION_REVISION));
    }

    #[test]
    fn stateless_requests() {
        let e = Encoder::new(&target("http-stateless://127.0.0.1:8080"), "échо", r#"{}"#);
        let mut out = Vec::new();
        e.push_initialize(&mut out);
        assert!(out.is_empty());
        e.push_call(&mut out, 5, None);
        let (hs, body, _) = parse_request(&out);
        assert!(hs.contains(&("MCP-Protocol-Version".into(), "2026-07-28".into())));
        assert!(hs.contains(&("Mcp-Method".into(), "tools/call".into())));
        let name = &hs.iter().find(|(k, _)| k == "Mcp-Name").unwrap().1;
        assert!(name.starts_with("=?base64?"));
        let meta = &body["params"]["_meta"];
        assert_eq!(
            meta["io.modelcontextprotocol/protocolVersion"],
            "2026-07-28"
        );
        assert_eq!(
            meta["io.modelcontextprotocol/clientInfo"]["name"],
            "ringmcp-load"
        );
        assert!(meta["io.modelcontextprotocol/clientCapabilities"].is_object());
        assert_eq!(body["params"]["name"], "échо");
        assert_eq!(header_value("echo"), "echo");
    }
}
