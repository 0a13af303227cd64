//! A small HTTP/1.1 client for the Streamable HTTP tests, over plain `std::net::TcpStream`:
//! requests are written as exact bytes, responses are read with Content-Length or chunked
//! framing, and SSE streams are read event by event. Every read is bounded by a deadline, so
//! a server that stops answering fails the test instead of hanging it.

use super::READ_TIMEOUT;
use serde_json::{json, Value};
use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::time::{Duration, Instant};

/// What a POST to a Streamable HTTP endpoint must accept.
pub const ACCEPT_BOTH: &str = "application/json, text/event-stream";
/// A ping request (id 1), as a body.
pub const PING: &[u8] = br#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#;

/// Why a bounded read stopped without what it waited for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadErr {
    /// Nothing (complete) arrived before the deadline.
    Timeout,
    /// The server closed the connection (EOF or reset).
    Closed,
}

/// A response's status line and headers.
#[derive(Debug, Clone)]
pub struct Head {
    /// Status code.
    pub status: u16,
    /// Headers in order, names lowercased.
    pub headers: Vec<(String, String)>,
}

impl Head {
    /// The first value of a header (any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The media type of the body, lowercased, without parameters.
    pub fn content_type(&self) -> String {
        self.header("content-type")
            .unwrap_or("")
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase()
    }

    /// Whether the body is an SSE stream.
    pub fn is_sse(&self) -> bool {
        self.content_type() == "text/event-stream"
    }

    fn is_chunked(&self) -> bool {
        self.header("transfer-encoding")
            .is_some_and(|v| v.eq_ignore_ascii_case("chunked"))
    }

    /// Whether the server announced it closes the connection after this response.
    pub fn closes(&self) -> bool {
        self.header("connection")
            .is_some_and(|v| v.eq_ignore_ascii_case("close"))
    }
}

/// One server-sent event.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SseEvent {
    /// `id:`
    pub id: Option<String>,
    /// `event:` (absent means `message`).
    pub event: Option<String>,
    /// The `data:` lines, joined with `\n`.
    pub data: String,
    /// `retry:`
    pub retry: Option<u64>,
}

impl SseEvent {
    /// The data as JSON; fails the test when it is not.
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.data)
            .unwrap_or_else(|e| panic!("SSE event data is not JSON ({e}): {self:?}"))
    }

    /// The `<stream>` and `<seq>` of an id `<stream>-<seq>`.
    pub fn id_parts(&self) -> (u64, u64) {
        let id = self
            .id
            .as_deref()
            .unwrap_or_else(|| panic!("event without id: {self:?}"));
        let (s, q) = id
            .split_once('-')
            .unwrap_or_else(|| panic!("event id {id:?} is not <stream>-<seq>"));
        (
            s.parse().unwrap_or_else(|_| panic!("bad stream in {id:?}")),
            q.parse().unwrap_or_else(|_| panic!("bad seq in {id:?}")),
        )
    }
}

/// A complete response.
#[derive(Clone)]
pub struct Response {
    /// Status and headers.
    pub head: Head,
    /// The body (for SSE: the decoded stream up to its end).
    pub body: Vec<u8>,
}

impl std::fmt::Debug for Response {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        const SHOWN: usize = 2000;
        let text = self.text();
        let body = match text.char_indices().nth(SHOWN) {
            Some((i, _)) => format!("{}… ({} bytes)", &text[..i], self.body.len()),
            None => text,
        };
        f.debug_struct("Response")
            .field("status", &self.head.status)
            .field("headers", &self.head.headers)
            .field("body", &body)
            .finish()
    }
}

impl Response {
    /// Status code.
    pub fn status(&self) -> u16 {
        self.head.status
    }

    /// A header's value.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.head.header(name)
    }

    /// The body as text (lossy), for messages.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body as JSON; fails the test when the body is not JSON.
    pub fn json(&self) -> Value {
        assert_eq!(
            self.head.content_type(),
            "application/json",
            "expected a JSON response: {self:?}"
        );
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("response body is not JSON ({e}): {}", self.text()))
    }

    /// The SSE events of the body (comments dropped).
    pub fn events(&self) -> Vec<SseEvent> {
        assert!(self.head.is_sse(), "expected an SSE response: {self:?}");
        let mut buf = self.body.clone();
        let mut out = Vec::new();
        while let Some(ev) = take_event(&mut buf) {
            out.push(ev);
        }
        assert!(
            buf.iter().all(|b| b.is_ascii_whitespace()),
            "SSE body ends in an incomplete event: {:?}",
            String::from_utf8_lossy(&buf)
        );
        out
    }

    /// The JSON-RPC messages of the response: the JSON body, or the SSE events that carry
    /// data (a priming event carries none).
    pub fn messages(&self) -> Vec<Value> {
        if self.head.is_sse() {
            self.events()
                .iter()
                .filter(|e| !e.data.is_empty())
                .map(SseEvent::json)
                .collect()
        } else {
            vec![self.json()]
        }
    }

    /// The JSON-RPC error code in a JSON body.
    pub fn rpc_error_code(&self) -> Option<i64> {
        self.json()
            .get("error")
            .and_then(|e| e.get("code"))
            .and_then(Value::as_i64)
    }
}

/// Removes and parses the first complete SSE event in `buf` (skipping comment-only blocks).
fn take_event(buf: &mut Vec<u8>) -> Option<SseEvent> {
    loop {
        let end = buf.windows(2).position(|w| w == b"\n\n")?;
        let block: Vec<u8> = buf.drain(..end + 2).collect();
        let block = String::from_utf8(block).expect("SSE stream is UTF-8");
        let mut ev = SseEvent::default();
        let mut data: Vec<&str> = Vec::new();
        let mut fields = 0;
        for line in block.lines() {
            if line.is_empty() || line.starts_with(':') {
                continue;
            }
            let (name, value) = line.split_once(':').unwrap_or((line, ""));
            let value = value.strip_prefix(' ').unwrap_or(value);
            fields += 1;
            match name {
                "id" => ev.id = Some(value.to_string()),
                "event" => ev.event = Some(value.to_string()),
                "data" => data.push(value),
                "retry" => {
                    ev.retry = Some(
                        value
                            .parse()
                            .unwrap_or_else(|_| panic!("retry field is not a number: {line:?}")),
                    )
                }
                other => panic!("unknown SSE field {other:?} in {block:?}"),
            }
        }
        if fields == 0 {
            continue;
        }
        ev.data = data.join("\n");
        return Some(ev);
    }
}

/// Where the reader stands in the body of the current response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Body {
    /// No response head read yet, or the body was consumed.
    Idle,
    /// A chunked body: decoding chunks.
    Chunked,
    /// A chunked body whose last chunk was read.
    Ended,
}

/// One client connection.
pub struct Http {
    stream: TcpStream,
    /// The server's port.
    pub port: u16,
    buf: Vec<u8>,
    decoded: Vec<u8>,
    body: Body,
}

impl Http {
    /// Connects to 127.0.0.1:`port` (bounded by [`READ_TIMEOUT`]).
    pub fn connect(port: u16) -> Http {
        let addr = ([127, 0, 0, 1], port).into();
        let stream = TcpStream::connect_timeout(&addr, READ_TIMEOUT).expect("connect");
        Http::from_stream(stream, port)
    }

    /// Connects to 127.0.0.1:`port` from the local address `source` (see
    /// [`super::connect_from`]).
    pub fn connect_from(source: std::net::Ipv4Addr, port: u16) -> Http {
        let stream = super::connect_from(
            source,
            std::net::SocketAddrV4::new([127, 0, 0, 1].into(), port),
        );
        Http::from_stream(stream, port)
    }

    /// A client over a stream the caller connected to 127.0.0.1:`port` (e.g. with socket
    /// options [`connect`](Self::connect) does not set).
    pub fn from_stream(stream: TcpStream, port: u16) -> Http {
        stream.set_nodelay(true).expect("nodelay");
        stream
            .set_write_timeout(Some(READ_TIMEOUT))
            .expect("write timeout");
        Http {
            stream,
            port,
            buf: Vec::new(),
            decoded: Vec::new(),
            body: Body::Idle,
        }
    }

    /// The client's local port (tells one connection from another).
    pub fn local_port(&self) -> u16 {
        self.stream.local_addr().expect("local addr").port()
    }

    /// Writes raw bytes.
    pub fn send_raw(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).expect("write to server");
        self.stream.flush().expect("flush");
    }

    /// Writes raw bytes; the server may have closed already.
    pub fn try_send_raw(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.stream.write_all(bytes)
    }

    /// Writes one request with `Host: 127.0.0.1:PORT`, the given headers and, when `body`
    /// is not `None`, `Content-Length` and the body.
    pub fn send(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<&[u8]>,
    ) {
        let bytes = request_bytes(self.port, method, path, headers, body);
        self.send_raw(&bytes);
    }

    /// Sends a request and reads the whole response.
    pub fn request(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<&[u8]>,
    ) -> Response {
        self.send(method, path, headers, body);
        self.response()
    }

    /// Closes both directions at once (a client that goes away).
    pub fn abort(self) {
        let _ = self.stream.shutdown(Shutdown::Both);
    }

    fn fill(&mut self, deadline: Instant) -> Result<(), ReadErr> {
        let now = Instant::now();
        if now >= deadline {
            return Err(ReadErr::Timeout);
        }
        self.stream
            .set_read_timeout(Some(deadline - now))
            .expect("read timeout");
        let mut chunk = [0u8; 16384];
        loop {
            return match self.stream.read(&mut chunk) {
                Ok(0) => Err(ReadErr::Closed),
                Ok(n) => {
                    self.buf.extend_from_slice(&chunk[..n]);
                    Ok(())
                }
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    Err(ReadErr::Timeout)
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e)
                    if matches!(
                        e.kind(),
                        ErrorKind::ConnectionReset | ErrorKind::ConnectionAborted
                    ) =>
                {
                    Err(ReadErr::Closed)
                }
                Err(e) => panic!("read from server failed: {e}"),
            };
        }
    }

    /// Reads a response head, waiting at most `timeout`.
    pub fn try_head(&mut self, timeout: Duration) -> Result<Head, ReadErr> {
        assert!(
            self.body == Body::Idle && self.decoded.is_empty(),
            "the previous response's body was not read"
        );
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(end) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                let raw: Vec<u8> = self.buf.drain(..end + 4).collect();
                let text = String::from_utf8(raw).expect("response head is UTF-8");
                let mut lines = text.split("\r\n");
                let status_line = lines.next().unwrap_or("");
                let mut parts = status_line.splitn(3, ' ');
                assert_eq!(
                    parts.next(),
                    Some("HTTP/1.1"),
                    "bad status line {status_line:?}"
                );
                let status = parts
                    .next()
                    .and_then(|s| s.parse().ok())
                    .unwrap_or_else(|| panic!("bad status line {status_line:?}"));
                let headers = lines
                    .filter(|l| !l.is_empty())
                    .map(|l| {
                        let (n, v) = l
                            .split_once(':')
                            .unwrap_or_else(|| panic!("bad header line {l:?}"));
                        (n.trim().to_ascii_lowercase(), v.trim().to_string())
                    })
                    .collect();
                let head = Head { status, headers };
                if head.is_chunked() {
                    self.body = Body::Chunked;
                }
                return Ok(head);
            }
            self.fill(deadline)?;
        }
    }

    /// Reads a response head; fails the test on timeout or close.
    pub fn head(&mut self) -> Head {
        self.try_head(READ_TIMEOUT)
            .unwrap_or_else(|e| panic!("expected a response head, got {e:?}"))
    }

    /// Reads the body `head` announced (a chunked one up to its last chunk).
    pub fn body(&mut self, head: &Head) -> Vec<u8> {
        if head.is_chunked() {
            loop {
                match self.decode_chunk(Instant::now() + READ_TIMEOUT) {
                    Ok(true) => {}
                    Ok(false) => break,
                    Err(e) => panic!(
                        "chunked body cut short ({e:?}) after {:?}",
                        String::from_utf8_lossy(&self.decoded)
                    ),
                }
            }
            self.body = Body::Idle;
            return std::mem::take(&mut self.decoded);
        }
        let n: usize = head
            .header("content-length")
            .map(|v| v.parse().expect("content-length"))
            .unwrap_or_else(|| panic!("response without length or chunking: {head:?}"));
        let deadline = Instant::now() + READ_TIMEOUT;
        while self.buf.len() < n {
            if let Err(e) = self.fill(deadline) {
                panic!("body cut short ({e:?}): {} of {n} bytes", self.buf.len());
            }
        }
        self.buf.drain(..n).collect()
    }

    /// Reads a whole response.
    pub fn response(&mut self) -> Response {
        let head = self.head();
        let body = self.body(&head);
        Response { head, body }
    }

    /// Decodes one chunk into `decoded`. `Ok(true)`: a data chunk; `Ok(false)`: the last
    /// chunk (the body ended).
    fn decode_chunk(&mut self, deadline: Instant) -> Result<bool, ReadErr> {
        match self.body {
            Body::Ended => return Ok(false),
            Body::Idle => panic!("no chunked body is being read"),
            Body::Chunked => {}
        }
        loop {
            if let Some(nl) = self.buf.windows(2).position(|w| w == b"\r\n") {
                let line = std::str::from_utf8(&self.buf[..nl]).expect("chunk size line");
                let size = usize::from_str_radix(line.split(';').next().unwrap_or("").trim(), 16)
                    .unwrap_or_else(|_| panic!("bad chunk size line {line:?}"));
                if size == 0 {
                    // Our server sends no trailers: the last chunk is "0\r\n\r\n".
                    if self.buf.len() >= nl + 4 {
                        assert_eq!(&self.buf[nl..nl + 4], b"\r\n\r\n", "bad last chunk");
                        self.buf.drain(..nl + 4);
                        self.body = Body::Ended;
                        return Ok(false);
                    }
                } else if self.buf.len() >= nl + 2 + size + 2 {
                    let start = nl + 2;
                    assert_eq!(
                        &self.buf[start + size..start + size + 2],
                        b"\r\n",
                        "chunk data not followed by CRLF"
                    );
                    self.decoded
                        .extend_from_slice(&self.buf[start..start + size]);
                    self.buf.drain(..start + size + 2);
                    return Ok(true);
                }
            }
            self.fill(deadline)?;
        }
    }

    /// The next event of the SSE stream whose head was read, waiting at most `timeout`.
    /// `Ok(None)`: the stream ended (the server sent the last chunk).
    pub fn try_event(&mut self, timeout: Duration) -> Result<Option<SseEvent>, ReadErr> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(ev) = take_event(&mut self.decoded) {
                return Ok(Some(ev));
            }
            if !self.decode_chunk(deadline)? {
                assert!(
                    self.decoded.iter().all(|b| b.is_ascii_whitespace()),
                    "SSE stream ended inside an event: {:?}",
                    String::from_utf8_lossy(&self.decoded)
                );
                self.decoded.clear();
                self.body = Body::Idle;
                return Ok(None);
            }
        }
    }

    /// The next SSE event; fails the test on timeout, close or the end of the stream.
    pub fn event(&mut self) -> SseEvent {
        match self.try_event(READ_TIMEOUT) {
            Ok(Some(ev)) => ev,
            other => panic!("expected an SSE event, got {other:?}"),
        }
    }

    /// The next SSE event that carries data (skips priming events), as JSON.
    pub fn message(&mut self) -> (SseEvent, Value) {
        loop {
            let ev = self.event();
            if !ev.data.is_empty() {
                let v = ev.json();
                return (ev, v);
            }
        }
    }

    /// Reads the rest of the SSE stream up to its end.
    pub fn rest_of_stream(&mut self) -> Vec<SseEvent> {
        let mut out = Vec::new();
        loop {
            match self.try_event(READ_TIMEOUT) {
                Ok(Some(ev)) => out.push(ev),
                Ok(None) => return out,
                Err(e) => panic!("SSE stream broke off ({e:?}) after {out:?}"),
            }
        }
    }

    /// The JSON-RPC messages in the rest of the SSE stream (events without data skipped).
    pub fn rest_messages(&mut self) -> Vec<Value> {
        self.rest_of_stream()
            .iter()
            .filter(|e| !e.data.is_empty())
            .map(SseEvent::json)
            .collect()
    }

    /// Waits (bounded by `timeout`) for the server to close the connection. Fails the test
    /// if anything arrives or the connection stays open.
    pub fn expect_closed(&mut self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            match self.fill(deadline) {
                Err(ReadErr::Closed) => {
                    assert!(
                        self.buf.is_empty(),
                        "unexpected bytes before close: {:?}",
                        String::from_utf8_lossy(&self.buf)
                    );
                    return;
                }
                Err(ReadErr::Timeout) => {
                    panic!("the server did not close the connection within {timeout:?}")
                }
                Ok(()) => {}
            }
        }
    }
}

/// Opens an event stream with a plain GET of `path` (the legacy HTTP+SSE transport) on a new
/// connection; returns the connection and the response head.
pub fn open_event_stream(port: u16, path: &str) -> (Http, Head) {
    let mut c = Http::connect(port);
    c.send("GET", path, &[("Accept", "text/event-stream")], None);
    let h = c.head();
    (c, h)
}

/// POSTs `body` to a legacy messages endpoint (`url`, as its `endpoint` event named it) on
/// `conn`.
pub fn legacy_post(conn: &mut Http, url: &str, body: &[u8]) -> Response {
    conn.request(
        "POST",
        url,
        &[("Content-Type", "application/json")],
        Some(body),
    )
}

/// `tools/call` params of `long_task` with a progress token: the answer is an SSE stream of
/// `steps` progress notifications, `interval_ms` apart, then the result.
pub fn long_task(steps: u64, interval_ms: u64, token: impl Into<Value>) -> Value {
    let token: Value = token.into();
    json!({"name": "long_task", "arguments": {"steps": steps, "interval_ms": interval_ms},
           "_meta": {"progressToken": token}})
}

/// The exact bytes of one request.
pub fn request_bytes(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&[u8]>,
) -> Vec<u8> {
    let mut out = format!("{method} {path} HTTP/1.1\r\n").into_bytes();
    if !headers.iter().any(|(n, _)| n.eq_ignore_ascii_case("host")) {
        out.extend_from_slice(format!("Host: 127.0.0.1:{port}\r\n").as_bytes());
    }
    for (n, v) in headers {
        out.extend_from_slice(format!("{n}: {v}\r\n").as_bytes());
    }
    if let Some(b) = body {
        out.extend_from_slice(format!("Content-Length: {}\r\n\r\n", b.len()).as_bytes());
        out.extend_from_slice(b);
    } else {
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// The headers of a POST with a JSON body to a Streamable HTTP endpoint.
pub fn post_headers<'a>(
    session: Option<&'a str>,
    revision: Option<&'a str>,
) -> Vec<(&'a str, &'a str)> {
    let mut h = vec![
        ("Accept", ACCEPT_BOTH),
        ("Content-Type", "application/json"),
    ];
    if let Some(s) = session {
        h.push(("Mcp-Session-Id", s));
    }
    if let Some(r) = revision {
        h.push(("MCP-Protocol-Version", r));
    }
    h
}

/// An `initialize` request body.
pub fn initialize_body(revision: &str) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "jsonrpc": "2.0",
        "id": 0,
        "method": "initialize",
        "params": {
            "protocolVersion": revision,
            "capabilities": {},
            "clientInfo": {"name": "ringmcp-http-tests", "version": "0"}
        }
    }))
    .expect("encode")
}

/// One Streamable HTTP session, as a client holds it: the endpoint, the session id and the
/// negotiated revision. Requests go over whatever connection the caller passes, or over a
/// new one each time.
#[derive(Debug, Clone)]
pub struct McpSession {
    /// The server's HTTP port.
    pub port: u16,
    /// The endpoint path, e.g. `/mcp`.
    pub path: String,
    /// `Mcp-Session-Id`.
    pub id: String,
    /// The negotiated revision.
    pub revision: String,
    /// The initialize result.
    pub init: Value,
    next_id: i64,
}

impl McpSession {
    /// Initializes a session over `conn` (POST initialize, then POST
    /// notifications/initialized, both checked).
    pub fn initialize_on(conn: &mut Http, path: &str, revision: &str) -> McpSession {
        let body = initialize_body(revision);
        let r = conn.request("POST", path, &post_headers(None, None), Some(&body));
        assert_eq!(r.status(), 200, "initialize: {r:?}");
        let id = r
            .header("mcp-session-id")
            .unwrap_or_else(|| panic!("initialize answered without Mcp-Session-Id: {r:?}"))
            .to_string();
        assert!(
            !id.is_empty() && id.bytes().all(|b| (0x21..=0x7e).contains(&b)),
            "Mcp-Session-Id must be visible ASCII: {id:?}"
        );
        let msg = r.json();
        assert_eq!(msg["id"], 0, "{msg}");
        let init = msg["result"].clone();
        assert_eq!(init["protocolVersion"], revision, "{msg}");
        let s = McpSession {
            port: conn.port,
            path: path.to_string(),
            id,
            revision: revision.to_string(),
            init,
            next_id: 1,
        };
        let r = s.post_on(
            conn,
            &json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
        );
        assert_eq!(r.status(), 202, "initialized notification: {r:?}");
        assert!(r.body.is_empty(), "202 with a body: {}", r.text());
        s
    }

    /// Initializes a session over a new connection.
    pub fn initialize(port: u16, path: &str, revision: &str) -> McpSession {
        Self::initialize_on(&mut Http::connect(port), path, revision)
    }

    /// The shard that owns the session (from the initialize result's `_meta`).
    pub fn shard(&self) -> u64 {
        self.init["_meta"]["ringmcp/shard"]
            .as_u64()
            .unwrap_or_else(|| panic!("no ringmcp/shard in {}", self.init))
    }

    /// A fresh request id.
    pub fn next_id(&mut self) -> i64 {
        self.next_id += 1;
        self.next_id
    }

    /// A request message with a fresh id.
    pub fn req(&mut self, method: &str, params: Value) -> (i64, Value) {
        let id = self.next_id();
        (
            id,
            json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}),
        )
    }

    /// The headers every POST of this session carries.
    pub fn headers(&self) -> Vec<(&str, &str)> {
        post_headers(Some(&self.id), Some(&self.revision))
    }

    /// The headers of a GET stream request of this session.
    pub fn get_headers(&self) -> Vec<(&str, &str)> {
        vec![
            ("Accept", "text/event-stream"),
            ("Mcp-Session-Id", &self.id),
            ("MCP-Protocol-Version", &self.revision),
        ]
    }

    /// Writes a POST of `msg` on `conn` without reading the answer.
    pub fn send_on(&self, conn: &mut Http, msg: &Value) {
        let body = serde_json::to_vec(msg).expect("encode");
        conn.send("POST", &self.path, &self.headers(), Some(&body));
    }

    /// POSTs `msg` on `conn` and reads the whole response.
    pub fn post_on(&self, conn: &mut Http, msg: &Value) -> Response {
        self.send_on(conn, msg);
        conn.response()
    }

    /// POSTs `msg` on `conn` and reads the head of the answer, which must be an SSE stream
    /// (the caller reads its events).
    pub fn post_stream_on(&self, conn: &mut Http, msg: &Value) {
        self.send_on(conn, msg);
        let h = conn.head();
        assert!(h.is_sse(), "expected an SSE stream: {h:?}");
    }

    /// POSTs `msg` over a new connection.
    pub fn post(&self, msg: &Value) -> Response {
        self.post_on(&mut Http::connect(self.port), msg)
    }

    /// Sends a request on `conn` and returns the JSON-RPC response (from a JSON body or at
    /// the end of an SSE stream) and the messages that came before it on the stream.
    pub fn request_on(
        &mut self,
        conn: &mut Http,
        method: &str,
        params: Value,
    ) -> (Value, Vec<Value>) {
        let (id, msg) = self.req(method, params);
        let r = self.post_on(conn, &msg);
        assert_eq!(r.status(), 200, "{method}: {r:?}");
        let mut msgs = r.messages();
        let last = msgs
            .pop()
            .unwrap_or_else(|| panic!("{method}: no message in {r:?}"));
        assert_eq!(
            last["id"], id,
            "{method}: the stream must end with its response: {last}"
        );
        (last, msgs)
    }

    /// Sends a request on `conn` and returns its result; fails on an error response.
    pub fn call_on(&mut self, conn: &mut Http, method: &str, params: Value) -> Value {
        let (resp, _) = self.request_on(conn, method, params);
        assert!(resp.get("error").is_none(), "{method} failed: {resp}");
        resp["result"].clone()
    }

    /// Like [`call_on`](Self::call_on), over a new connection.
    pub fn call(&mut self, method: &str, params: Value) -> Value {
        self.call_on(&mut Http::connect(self.port), method, params)
    }

    /// `tools/call`, over a new connection.
    pub fn tool(&mut self, name: &str, arguments: Value) -> Value {
        self.call("tools/call", json!({"name": name, "arguments": arguments}))
    }

    /// Opens the standalone GET stream on `conn`; returns the response head (the caller
    /// checks the status, reads events or the body).
    pub fn open_get(&self, conn: &mut Http, last_event_id: Option<&str>) -> Head {
        let mut h = self.get_headers();
        if let Some(l) = last_event_id {
            h.push(("Last-Event-ID", l));
        }
        conn.send("GET", &self.path, &h, None);
        conn.head()
    }

    /// Opens the standalone GET stream over a connection from `connect`, retrying (bounded by
    /// `within`) while the server still holds the stream of a client that left (409).
    /// `what` names the wait in the failure message.
    pub fn get_once_freed(
        &self,
        mut connect: impl FnMut() -> Http,
        last_event_id: Option<&str>,
        within: Duration,
        what: &str,
    ) -> Http {
        let deadline = Instant::now() + within;
        loop {
            let mut g = connect();
            let h = self.open_get(&mut g, last_event_id);
            if h.status == 200 {
                return g;
            }
            assert_eq!(h.status, 409, "{h:?}");
            g.body(&h);
            assert!(Instant::now() < deadline, "{what}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// DELETEs the session over a new connection; returns the status.
    pub fn delete(&self) -> u16 {
        let mut c = Http::connect(self.port);
        let h = [("Mcp-Session-Id", self.id.as_str())];
        let r = c.request("DELETE", &self.path, &h, None);
        r.status()
    }
}

/// The shard a connection landed on: initialize a throwaway session on it (the shard that
/// receives an initialize owns the new session and says so in `_meta`), then end it.
pub fn shard_of(conn: &mut Http, path: &str) -> u64 {
    let body = initialize_body(super::LATEST);
    let r = conn.request("POST", path, &post_headers(None, None), Some(&body));
    assert_eq!(r.status(), 200, "probe initialize: {r:?}");
    let id = r
        .header("mcp-session-id")
        .expect("probe session id")
        .to_string();
    let shard = r.json()["result"]["_meta"]["ringmcp/shard"]
        .as_u64()
        .expect("ringmcp/shard");
    let d = conn.request("DELETE", path, &[("Mcp-Session-Id", &id)], None);
    assert_eq!(d.status(), 200, "probe delete: {d:?}");
    shard
}
