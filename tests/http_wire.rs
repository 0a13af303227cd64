//! Wire-level tests of Streamable HTTP (`ringmcp serve`, `/mcp` and `/mcp/{server}`): the
//! session lifecycle, JSON and SSE responses, resumption, the GET stream, the legacy
//! HTTP+SSE transport, and every error status a client can provoke. Requests are exact bytes
//! over `std::net::TcpStream` (tests/common/http.rs); each test starts its own server.

mod common;

use common::http::*;
use common::*;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

/// How long a test waits for the server to notice a client that went away.
const FREE_WINDOW: Duration = Duration::from_secs(5);

fn server() -> Server {
    Server::start(1, &[])
}

fn init(s: &Server, revision: &str) -> McpSession {
    McpSession::initialize(s.http_port, "/mcp", revision)
}

/// POSTs a ping to `path` with `headers` over a new connection.
fn post_ping(s: &Server, path: &str, headers: &[(&str, &str)]) -> Response {
    Http::connect(s.http_port).request("POST", path, headers, Some(PING))
}

fn progress_values(msgs: &[Value]) -> Vec<f64> {
    msgs.iter()
        .map(|m| {
            assert_eq!(m["method"], "notifications/progress", "{m}");
            m["params"]["progress"].as_f64().expect("progress value")
        })
        .collect()
}

// ---------------------------------------------------------------------------------------
// Lifecycle and responses
// ---------------------------------------------------------------------------------------

#[test]
fn initialize_mints_a_session_id_for_each_revision() {
    let s = server();
    let mut ids = Vec::new();
    for rev in &REVISIONS[1..] {
        let mut c = Http::connect(s.http_port);
        let body = initialize_body(rev);
        let r = c.request("POST", "/mcp", &post_headers(None, None), Some(&body));
        assert_eq!(r.status(), 200, "{r:?}");
        assert_eq!(r.header("content-type"), Some("application/json"));
        let id = r
            .header("mcp-session-id")
            .expect("Mcp-Session-Id")
            .to_string();
        assert!(
            id.len() >= 16 && id.bytes().all(|b| (0x21..=0x7e).contains(&b)),
            "session id {id:?}"
        );
        let msg = r.json();
        assert_eq!(msg["jsonrpc"], "2.0");
        assert_eq!(msg["id"], 0);
        assert_eq!(msg["result"]["protocolVersion"], *rev);
        assert_eq!(msg["result"]["serverInfo"]["name"], "demo");
        assert!(
            !r.head.closes(),
            "initialize must keep the connection: {r:?}"
        );
        ids.push(id);
    }
    let mut unique = ids.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), ids.len(), "session ids repeat: {ids:?}");

    // /mcp/{server} reaches that server.
    let c = McpSession::initialize(s.http_port, "/mcp/conformance", LATEST);
    assert_ne!(c.init["serverInfo"]["name"], "demo", "{}", c.init);
    let d = McpSession::initialize(s.http_port, "/mcp/demo", LATEST);
    assert_eq!(d.init["serverInfo"]["name"], "demo");
}

#[test]
fn tools_call_is_answered_with_a_json_body() {
    let s = server();
    let mut m = init(&s, LATEST);
    let mut c = Http::connect(s.http_port);
    let (id, msg) = m.req(
        "tools/call",
        json!({"name": "add", "arguments": {"a": 2, "b": 40}}),
    );
    let r = m.post_on(&mut c, &msg);
    assert_eq!(r.status(), 200, "{r:?}");
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(
        r.header("content-length")
            .map(|l| l.parse::<usize>().unwrap()),
        Some(r.body.len())
    );
    let v = r.json();
    assert_eq!(v["id"], id);
    assert_eq!(text(&v["result"]), "42");
    assert_eq!(v["result"]["structuredContent"]["sum"].as_f64(), Some(42.0));
    assert_eq!(
        text(&m.call_on(
            &mut c,
            "tools/call",
            json!({"name": "echo", "arguments": {"text": "héllo ✓"}})
        )),
        "héllo ✓"
    );
    let tools = m.call_on(&mut c, "tools/list", json!({}));
    assert!(
        tools["tools"].as_array().is_some_and(|t| t.len() >= 13),
        "{tools}"
    );
    assert_eq!(m.call_on(&mut c, "ping", json!({})), json!({}));
}

#[test]
fn long_task_with_a_progress_token_streams_sse_with_a_priming_event() {
    let s = server();
    let mut m = init(&s, LATEST);
    let mut c = Http::connect(s.http_port);
    let (id, msg) = m.req("tools/call", long_task(4, 20, "tok-1"));
    let r = m.post_on(&mut c, &msg);
    assert_eq!(r.status(), 200, "{r:?}");
    assert_eq!(r.header("content-type"), Some("text/event-stream"));
    assert_eq!(r.header("transfer-encoding"), Some("chunked"));
    let events = r.events();
    assert_eq!(events.len(), 6, "priming + 4 progress + result: {events:?}");
    // The priming event (2025-11-25): an id, empty data, a retry hint.
    let priming = &events[0];
    assert!(priming.data.is_empty(), "{priming:?}");
    assert!(
        priming.retry.is_some(),
        "priming event without retry: {priming:?}"
    );
    let (stream, seq0) = priming.id_parts();
    assert_eq!(seq0, 0, "{priming:?}");
    for (i, ev) in events[1..].iter().enumerate() {
        assert_eq!(ev.event, None, "{ev:?}");
        assert_eq!(
            ev.id_parts(),
            (stream, i as u64 + 1),
            "event ids are <stream>-<seq>"
        );
    }
    let msgs: Vec<Value> = events[1..].iter().map(SseEvent::json).collect();
    assert_eq!(progress_values(&msgs[..4]), [1.0, 2.0, 3.0, 4.0]);
    for p in &msgs[..4] {
        assert_eq!(p["params"]["progressToken"], "tok-1");
        assert_eq!(p["params"]["total"].as_f64(), Some(4.0));
    }
    assert_eq!(msgs[4]["id"], id);
    assert_eq!(text(&msgs[4]["result"]), "completed 4 steps");
    // The connection carries the next request after the stream's last chunk.
    assert_eq!(
        text(&m.call_on(
            &mut c,
            "tools/call",
            json!({"name": "echo", "arguments": {"text": "after"}})
        )),
        "after"
    );

    // Under 2025-06-18 there is no priming event: the first event is the first progress.
    let mut old = init(&s, "2025-06-18");
    let (_, msg) = old.req("tools/call", long_task(2, 10, 7));
    let r = old.post(&msg);
    let events = r.events();
    assert_eq!(events.len(), 3, "{events:?}");
    assert!(
        events.iter().all(|e| !e.data.is_empty() && e.id.is_some()),
        "{events:?}"
    );
    assert_eq!(events[0].json()["params"]["progressToken"], 7);
    assert_eq!(events[0].id_parts().1, 1);

    // Without a progress token the same tool answers with a JSON body.
    let (_, msg) = m.req(
        "tools/call",
        json!({"name": "long_task", "arguments": {"steps": 2, "interval_ms": 1}}),
    );
    let r = m.post(&msg);
    assert_eq!(r.header("content-type"), Some("application/json"), "{r:?}");
    assert_eq!(text(&r.json()["result"]), "completed 2 steps");
}

#[test]
fn notifications_are_accepted_with_202() {
    let s = server();
    let m = init(&s, LATEST);
    for msg in [
        json!({"jsonrpc": "2.0", "method": "notifications/roots/list_changed"}),
        json!({"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": 99}}),
        json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
    ] {
        let r = m.post(&msg);
        assert_eq!(r.status(), 202, "{msg}: {r:?}");
        assert!(r.body.is_empty(), "{}", r.text());
        assert_eq!(r.header("content-length"), Some("0"));
    }
}

#[test]
fn batch_under_2025_03_26_is_answered_as_an_array() {
    let s = server();
    let mut m = init(&s, "2025-03-26");
    let batch = json!([
        {"jsonrpc": "2.0", "id": "a", "method": "tools/call", "params": {"name": "add", "arguments": {"a": 1, "b": 2}}},
        {"jsonrpc": "2.0", "method": "notifications/roots/list_changed"},
        {"jsonrpc": "2.0", "id": "b", "method": "tools/call", "params": {"name": "echo", "arguments": {"text": "two"}}},
    ]);
    let r = m.post(&batch);
    assert_eq!(r.status(), 200, "{r:?}");
    let v = r.json();
    let items = v.as_array().unwrap_or_else(|| panic!("not an array: {v}"));
    assert_eq!(items.len(), 2, "{v}");
    let by_id = |id: &str| {
        items
            .iter()
            .find(|i| i["id"] == id)
            .unwrap_or_else(|| panic!("no {id} in {v}"))
    };
    assert_eq!(text(&by_id("a")["result"]), "3");
    assert_eq!(text(&by_id("b")["result"]), "two");
    // A batch of notifications only is accepted like one notification.
    let r = m.post(&json!([{"jsonrpc": "2.0", "method": "notifications/roots/list_changed"}]));
    assert_eq!(r.status(), 202, "{r:?}");
    // The session still answers single requests.
    assert_eq!(text(&m.tool("echo", json!({"text": "x"}))), "x");
}

#[test]
fn delete_ends_the_session() {
    let s = server();
    let mut m = init(&s, LATEST);
    assert_eq!(text(&m.tool("echo", json!({"text": "x"}))), "x");
    assert_eq!(m.delete(), 200);
    let (_, ping) = m.req("ping", json!({}));
    let r = m.post(&ping);
    assert_eq!(r.status(), 404, "{r:?}");
    let mut c = Http::connect(s.http_port);
    let h = m.open_get(&mut c, None);
    assert_eq!(h.status, 404, "{h:?}");
    c.body(&h);
    assert_eq!(m.delete(), 404, "a second DELETE");
}

// ---------------------------------------------------------------------------------------
// Error statuses
// ---------------------------------------------------------------------------------------

#[test]
fn missing_session_id_is_400() {
    let s = server();
    let _m = init(&s, LATEST);
    let mut c = Http::connect(s.http_port);
    let body = br#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#;
    let r = c.request(
        "POST",
        "/mcp",
        &post_headers(None, Some(LATEST)),
        Some(body),
    );
    assert_eq!(r.status(), 400, "{r:?}");
    assert!(
        r.json()["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "{}",
        r.text()
    );
    let r = c.request("GET", "/mcp", &[("Accept", "text/event-stream")], None);
    assert_eq!(r.status(), 400, "GET without a session: {r:?}");
    let r = c.request("DELETE", "/mcp", &[], None);
    assert_eq!(r.status(), 400, "DELETE without a session: {r:?}");
}

#[test]
fn malformed_json_is_400_with_a_parse_error() {
    let s = server();
    let m = init(&s, LATEST);
    let mut c = Http::connect(s.http_port);
    let bad = br#"{"jsonrpc":"2.0","id":1,"method":"#;
    let r = c.request("POST", "/mcp", &m.headers(), Some(bad));
    assert_eq!(r.status(), 400, "{r:?}");
    assert_eq!(r.rpc_error_code(), Some(-32700), "{}", r.text());
    assert_eq!(r.json()["id"], Value::Null);
    // Without a session (the initialize path) too.
    let r = c.request("POST", "/mcp", &post_headers(None, None), Some(b"not json"));
    assert_eq!(r.status(), 400, "{r:?}");
    assert_eq!(r.rpc_error_code(), Some(-32700), "{}", r.text());
}

#[test]
fn foreign_host_and_origin_are_403() {
    let s = server();
    let m = init(&s, LATEST);
    let body = initialize_body(LATEST);
    let mut c = Http::connect(s.http_port);
    let mut h = post_headers(None, None);
    h.push(("Host", "evil.example.com"));
    let r = c.request("POST", "/mcp", &h, Some(&body));
    assert_eq!(r.status(), 403, "{r:?}");
    assert!(r.header("mcp-session-id").is_none());

    let port_host = format!("evil.example.com:{}", s.http_port);
    let mut h = m.headers();
    h.push(("Host", &port_host));
    let r = post_ping(&s, "/mcp", &h);
    assert_eq!(r.status(), 403, "{r:?}");

    let mut h = post_headers(None, None);
    h.push(("Origin", "http://evil.example.com"));
    let r = Http::connect(s.http_port).request("POST", "/mcp", &h, Some(&body));
    assert_eq!(r.status(), 403, "{r:?}");

    // A loopback origin passes.
    let origin = format!("http://localhost:{}", s.http_port);
    let mut h = post_headers(None, None);
    h.push(("Origin", &origin));
    let r = Http::connect(s.http_port).request("POST", "/mcp", &h, Some(&body));
    assert_eq!(r.status(), 200, "{r:?}");
}

#[test]
fn unknown_session_and_unknown_path_are_404() {
    let s = server();
    let m = init(&s, LATEST);
    for id in ["00000000000000000000000000000000", "not-a-session-id"] {
        let r = post_ping(&s, "/mcp", &post_headers(Some(id), Some(LATEST)));
        assert_eq!(r.status(), 404, "session {id}: {r:?}");
        let r = Http::connect(s.http_port).request(
            "GET",
            "/mcp",
            &[("Accept", "text/event-stream"), ("Mcp-Session-Id", id)],
            None,
        );
        assert_eq!(r.status(), 404, "GET session {id}: {r:?}");
    }
    for path in ["/", "/nope", "/mcp/no-such-server", "/mcp/demo/extra/parts"] {
        let r = post_ping(&s, path, &m.headers());
        assert_eq!(r.status(), 404, "{path}: {r:?}");
        assert!(!r.json()["error"].is_null(), "{}", r.text());
    }
}

#[test]
fn put_is_405_with_allow() {
    let s = server();
    let m = init(&s, LATEST);
    let r = Http::connect(s.http_port).request("PUT", "/mcp", &m.headers(), Some(b"{}"));
    assert_eq!(r.status(), 405, "{r:?}");
    let allow = r.header("allow").expect("Allow header");
    let mut methods: Vec<&str> = allow.split(',').map(str::trim).collect();
    methods.sort();
    assert_eq!(methods, ["DELETE", "GET", "POST"], "{allow}");
    let r = Http::connect(s.http_port).request("PATCH", "/mcp/demo", &m.headers(), Some(b"{}"));
    assert_eq!(r.status(), 405, "{r:?}");
    assert!(r.header("allow").is_some());
}

#[test]
fn accept_without_event_stream_is_406() {
    let s = server();
    let m = init(&s, LATEST);
    let body = initialize_body(LATEST);
    let r = Http::connect(s.http_port).request(
        "POST",
        "/mcp",
        &[
            ("Accept", "application/json"),
            ("Content-Type", "application/json"),
        ],
        Some(&body),
    );
    assert_eq!(r.status(), 406, "{r:?}");
    let r = post_ping(
        &s,
        "/mcp",
        &[
            ("Accept", "text/event-stream"),
            ("Content-Type", "application/json"),
            ("Mcp-Session-Id", &m.id),
        ],
    );
    assert_eq!(r.status(), 406, "{r:?}");
    let r = Http::connect(s.http_port).request(
        "GET",
        "/mcp",
        &[("Accept", "application/json"), ("Mcp-Session-Id", &m.id)],
        None,
    );
    assert_eq!(r.status(), 406, "GET: {r:?}");
}

#[test]
fn slow_request_head_is_408() {
    let s = Server::start(1, &["--set", "http.header_read_timeout_ms=300"]);
    let mut c = Http::connect(s.http_port);
    c.send_raw(b"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: appl");
    let head = c
        .try_head(READ_TIMEOUT)
        .unwrap_or_else(|e| panic!("no 408 for a slow head: {e:?}"));
    assert_eq!(head.status, 408, "{head:?}");
    assert!(head.closes(), "a 408 closes the connection: {head:?}");
    c.body(&head);
    c.expect_closed(READ_TIMEOUT);
    // A prompt client on another connection is unaffected.
    let m = init(&s, LATEST);
    assert_eq!(m.clone().call("ping", json!({})), json!({}));
}

#[test]
fn second_concurrent_get_stream_is_409() {
    let s = server();
    let m = init(&s, LATEST);
    let mut first = Http::connect(s.http_port);
    let h = m.open_get(&mut first, None);
    assert_eq!(h.status, 200, "{h:?}");
    assert!(h.is_sse(), "{h:?}");
    let mut second = Http::connect(s.http_port);
    let h2 = m.open_get(&mut second, None);
    assert_eq!(h2.status, 409, "{h2:?}");
    let body = second.body(&h2);
    assert!(!body.is_empty());
    // The first stream is still the session's: it gets what the session is told.
    let mut m2 = m.clone();
    m2.tool("toggle_extra_tool", json!({}));
    let (_, v) = first.message();
    assert_eq!(v["method"], "notifications/tools/list_changed", "{v}");
}

#[test]
fn oversized_bodies_are_413() {
    let s = Server::start(1, &["--set", "http.max_body_bytes=1024"]);
    let m = init(&s, LATEST);
    // Content-Length above the bound: refused from the head alone.
    let mut c = Http::connect(s.http_port);
    let mut head = request_bytes(s.http_port, "POST", "/mcp", &m.headers(), None);
    head.truncate(head.len() - 2);
    head.extend_from_slice(b"Content-Length: 100000\r\n\r\n");
    c.send_raw(&head);
    let r = c.response();
    assert_eq!(r.status(), 413, "{r:?}");
    assert!(r.head.closes());
    c.expect_closed(READ_TIMEOUT);

    // A chunked body growing past the bound: refused at the chunk that crosses it.
    let mut c = Http::connect(s.http_port);
    let mut h = m.headers();
    h.push(("Transfer-Encoding", "chunked"));
    let mut bytes = request_bytes(s.http_port, "POST", "/mcp", &h, None);
    let part = vec![b' '; 512];
    for _ in 0..2 {
        bytes.extend_from_slice(b"200\r\n");
        bytes.extend_from_slice(&part);
        bytes.extend_from_slice(b"\r\n");
    }
    bytes.extend_from_slice(b"200\r\n");
    c.send_raw(&bytes);
    let r = c.response();
    assert_eq!(r.status(), 413, "{r:?}");
    c.expect_closed(READ_TIMEOUT);

    // A body of exactly the bound is fine.
    let mut msg = serde_json::to_vec(&json!({"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"text":"x"}}})).unwrap();
    msg.resize(1024, b' ');
    let r = Http::connect(s.http_port).request("POST", "/mcp", &m.headers(), Some(&msg));
    assert_eq!(r.status(), 200, "{r:?}");
}

#[test]
fn wrong_content_type_is_415() {
    let s = server();
    let m = init(&s, LATEST);
    for ct in ["text/plain", "application/x-www-form-urlencoded"] {
        let h = [
            ("Accept", ACCEPT_BOTH),
            ("Content-Type", ct),
            ("Mcp-Session-Id", m.id.as_str()),
        ];
        let r = post_ping(&s, "/mcp", &h);
        assert_eq!(r.status(), 415, "{ct}: {r:?}");
    }
    // Parameters after the media type are fine.
    let h = [
        ("Accept", ACCEPT_BOTH),
        ("Content-Type", "application/json; charset=utf-8"),
        ("Mcp-Session-Id", m.id.as_str()),
    ];
    let r = post_ping(&s, "/mcp", &h);
    assert_eq!(r.status(), 200, "{r:?}");
}

#[test]
fn huge_header_block_is_431() {
    let s = Server::start(1, &["--set", "http.max_head_bytes=4096"]);
    let m = init(&s, LATEST);
    let big = "x".repeat(6000);
    let mut h = m.headers();
    h.push(("X-Padding", &big));
    let mut c = Http::connect(s.http_port);
    let r = c.request("POST", "/mcp", &h, Some(PING));
    assert_eq!(r.status(), 431, "{r:?}");
    c.expect_closed(READ_TIMEOUT);
    // Too many header fields as well.
    let names: Vec<String> = (0..80).map(|i| format!("X-H{i}")).collect();
    let mut h = m.headers();
    h.extend(names.iter().map(|n| (n.as_str(), "1")));
    let r = post_ping(&s, "/mcp", &h);
    assert_eq!(r.status(), 431, "{r:?}");
    // Just under the bound is served.
    let pad = "y".repeat(3000);
    let mut h = m.headers();
    h.push(("X-Padding", &pad));
    let r = post_ping(&s, "/mcp", &h);
    assert_eq!(r.status(), 200, "{r:?}");
}

// ---------------------------------------------------------------------------------------
// HTTP/1.1 connection handling
// ---------------------------------------------------------------------------------------

#[test]
fn pipelined_requests_are_answered_in_order() {
    let s = server();
    let m = init(&s, LATEST);
    let msgs = [
        json!({"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"sleep_ms","arguments":{"ms":200}}}),
        json!({"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"echo","arguments":{"text":"second"}}}),
        json!({"jsonrpc":"2.0","method":"notifications/roots/list_changed"}),
        json!({"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"long_task","arguments":{"steps":2,"interval_ms":10},"_meta":{"progressToken":"p"}}}),
        json!({"jsonrpc":"2.0","id":4,"method":"tools/call","params":{"name":"add","arguments":{"a":1,"b":1}}}),
    ];
    let mut bytes = Vec::new();
    for msg in &msgs {
        let body = serde_json::to_vec(msg).unwrap();
        bytes.extend(request_bytes(
            s.http_port,
            "POST",
            "/mcp",
            &m.headers(),
            Some(&body),
        ));
    }
    let mut c = Http::connect(s.http_port);
    c.send_raw(&bytes);
    let r1 = c.response();
    assert_eq!(text(&r1.json()["result"]), "slept 200 ms");
    let r2 = c.response();
    assert_eq!(r2.json()["id"], 2);
    assert_eq!(text(&r2.json()["result"]), "second");
    let r3 = c.response();
    assert_eq!(r3.status(), 202, "{r3:?}");
    let r4 = c.response();
    let m4 = r4.messages();
    assert_eq!(progress_values(&m4[..2]), [1.0, 2.0]);
    assert_eq!(m4[2]["id"], 3);
    let r5 = c.response();
    assert_eq!(r5.json()["id"], 4);
    assert_eq!(text(&r5.json()["result"]), "2");
}

#[test]
fn chunked_request_body_is_accepted() {
    let s = server();
    let m = init(&s, LATEST);
    let body = serde_json::to_vec(&json!({"jsonrpc":"2.0","id":5,"method":"tools/call","params":{"name":"echo","arguments":{"text":"in three chunks"}}})).unwrap();
    let mut h = m.headers();
    h.push(("Transfer-Encoding", "chunked"));
    let mut c = Http::connect(s.http_port);
    c.send_raw(&request_bytes(s.http_port, "POST", "/mcp", &h, None));
    let (a, rest) = body.split_at(10);
    let (b, d) = rest.split_at(25);
    for (i, part) in [a, b, d].into_iter().enumerate() {
        let mut chunk = if i == 1 {
            format!("{:X};ext=1\r\n", part.len()).into_bytes()
        } else {
            format!("{:x}\r\n", part.len()).into_bytes()
        };
        chunk.extend_from_slice(part);
        chunk.extend_from_slice(b"\r\n");
        c.send_raw(&chunk);
        std::thread::sleep(Duration::from_millis(20));
    }
    c.send_raw(b"0\r\n\r\n");
    let r = c.response();
    assert_eq!(r.status(), 200, "{r:?}");
    assert_eq!(r.json()["id"], 5);
    assert_eq!(text(&r.json()["result"]), "in three chunks");
    // The connection goes on after a chunked body.
    let mut m = m;
    assert_eq!(m.call_on(&mut c, "ping", json!({})), json!({}));
}

#[test]
fn keep_alive_connection_carries_many_requests() {
    let s = server();
    let mut c = Http::connect(s.http_port);
    let mut m = McpSession::initialize_on(&mut c, "/mcp", LATEST);
    for i in 0..20 {
        let r = m.call_on(
            &mut c,
            "tools/call",
            json!({"name": "add", "arguments": {"a": i, "b": 1}}),
        );
        assert_eq!(text(&r), (i + 1).to_string());
    }
    let (resp, progress) = m.request_on(&mut c, "tools/call", long_task(2, 1, 1));
    assert_eq!(progress.len(), 2);
    assert_eq!(text(&resp["result"]), "completed 2 steps");
    assert_eq!(m.call_on(&mut c, "ping", json!({})), json!({}));
    // Connection: close is honoured: the server answers, says so and closes.
    let mut h = m.headers();
    h.push(("Connection", "close"));
    let r = c.request(
        "POST",
        "/mcp",
        &h,
        Some(br#"{"jsonrpc":"2.0","id":99,"method":"ping"}"#),
    );
    assert_eq!(r.status(), 200);
    assert!(r.head.closes(), "{r:?}");
    c.expect_closed(READ_TIMEOUT);
}

// ---------------------------------------------------------------------------------------
// Streams: resumption, disconnects, the GET stream
// ---------------------------------------------------------------------------------------

#[test]
fn last_event_id_resumes_a_dropped_post_stream() {
    let s = server();
    let mut m = init(&s, LATEST);
    let steps = 8;
    let mut c = Http::connect(s.http_port);
    let (id, msg) = m.req("tools/call", long_task(steps, 60, "resume-me"));
    m.post_stream_on(&mut c, &msg);
    let priming = c.event();
    assert!(priming.data.is_empty(), "{priming:?}");
    let (stream, _) = priming.id_parts();
    let mut last_id = String::new();
    for want in 1..=2 {
        let (ev, v) = c.message();
        assert_eq!(v["params"]["progress"].as_f64(), Some(want as f64), "{v}");
        last_id = ev.id.clone().expect("event id");
    }
    assert_eq!(last_id, format!("{stream}-2"));
    c.abort();

    let mut g = Http::connect(s.http_port);
    let h = m.open_get(&mut g, Some(&last_id));
    assert_eq!(h.status, 200, "{h:?}");
    assert!(h.is_sse());
    let rest = g.rest_of_stream();
    let data: Vec<&SseEvent> = rest.iter().filter(|e| !e.data.is_empty()).collect();
    let msgs: Vec<Value> = data.iter().map(|e| e.json()).collect();
    let (result, progress) = msgs.split_last().expect("events after resuming");
    assert_eq!(
        progress_values(progress),
        (3..=steps).map(|v| v as f64).collect::<Vec<_>>(),
        "every event after {last_id}, once, in order"
    );
    for (i, e) in data.iter().enumerate() {
        assert_eq!(e.id_parts(), (stream, i as u64 + 3), "{e:?}");
    }
    assert_eq!(result["id"], id);
    assert_eq!(text(&result["result"]), format!("completed {steps} steps"));

    // Resuming a finished stream replays its tail and ends.
    let mut g = Http::connect(s.http_port);
    let h = m.open_get(&mut g, Some(&format!("{stream}-{steps}")));
    assert_eq!(h.status, 200, "{h:?}");
    let tail = g.rest_of_stream();
    assert_eq!(tail.len(), 1, "{tail:?}");
    assert_eq!(tail[0].json()["id"], id);
    // An id for a stream that never existed is a 404.
    let r = Http::connect(s.http_port).request(
        "GET",
        "/mcp",
        &[
            ("Accept", "text/event-stream"),
            ("Mcp-Session-Id", &m.id),
            ("Last-Event-ID", "9999-1"),
        ],
        None,
    );
    assert_eq!(r.status(), 404, "{r:?}");
}

#[test]
fn client_leaving_a_stream_frees_it_and_the_server_keeps_serving() {
    let s = server();
    let mut m = init(&s, LATEST);
    // The GET stream: a client that goes away frees it for the next GET.
    let mut g = Http::connect(s.http_port);
    assert_eq!(m.open_get(&mut g, None).status, 200);
    g.abort();
    let mut g2 = m.get_once_freed(
        || Http::connect(s.http_port),
        None,
        FREE_WINDOW,
        &format!("the stream of a client that left was still held after {FREE_WINDOW:?}"),
    );
    m.tool("toggle_extra_tool", json!({}));
    let (_, v) = g2.message();
    assert_eq!(v["method"], "notifications/tools/list_changed");

    // A POST stream whose client leaves mid-stream: the task runs on, the server serves.
    let mut c = Http::connect(s.http_port);
    let (_, msg) = m.req("tools/call", long_task(50, 20, 1));
    m.post_stream_on(&mut c, &msg);
    c.message();
    c.abort();
    for i in 0..5 {
        assert_eq!(text(&m.tool("add", json!({"a": i, "b": 0}))), i.to_string());
    }
    let other = init(&s, "2025-06-18");
    assert_eq!(other.clone().call("ping", json!({})), json!({}));
}

#[test]
fn resource_subscription_updates_arrive_on_the_get_stream() {
    let s = server();
    let mut m = init(&s, LATEST);
    assert_eq!(
        m.call("resources/subscribe", json!({"uri": "demo://counter"})),
        json!({})
    );
    let mut g = Http::connect(s.http_port);
    let h = m.open_get(&mut g, None);
    assert_eq!(h.status, 200, "{h:?}");
    assert!(h.is_sse(), "{h:?}");

    // From the same session on another connection, then from another session.
    let r = m.tool("increment_counter", json!({"by": 2}));
    let after_first = r["structuredContent"]["value"].as_u64().expect("value");
    let (ev, v) = g.message();
    assert_eq!(v["method"], "notifications/resources/updated", "{v}");
    assert_eq!(v["params"]["uri"], "demo://counter");
    let (stream, _) = ev.id_parts();
    assert_eq!(stream, 0, "the standalone stream is stream 0: {ev:?}");

    let mut other = init(&s, "2025-06-18");
    other.tool("increment_counter", json!({}));
    let (_, v) = g.message();
    assert_eq!(v["method"], "notifications/resources/updated", "{v}");
    let read = m.call("resources/read", json!({"uri": "demo://counter"}));
    assert_eq!(read["contents"][0]["text"], (after_first + 1).to_string());

    // After unsubscribing, list changes still arrive but counter updates do not.
    assert_eq!(
        m.call("resources/unsubscribe", json!({"uri": "demo://counter"})),
        json!({})
    );
    other.tool("increment_counter", json!({}));
    other.tool("toggle_extra_tool", json!({}));
    let (_, v) = g.message();
    assert_eq!(v["method"], "notifications/tools/list_changed", "{v}");
}

// ---------------------------------------------------------------------------------------
// Legacy HTTP+SSE (2024-11-05)
// ---------------------------------------------------------------------------------------

#[test]
fn legacy_sse_transport_answers_on_the_event_stream() {
    let s = server();
    let (mut g, h) = open_event_stream(s.http_port, "/mcp/demo/sse");
    assert_eq!(h.status, 200, "{h:?}");
    assert!(h.is_sse(), "{h:?}");
    let endpoint = g.event();
    assert_eq!(endpoint.event.as_deref(), Some("endpoint"), "{endpoint:?}");
    let url = endpoint.data.clone();
    let session = url
        .strip_prefix("/mcp/demo/messages?sessionId=")
        .unwrap_or_else(|| panic!("endpoint {url:?}"));
    assert!(!session.is_empty());

    let post = |body: &Value| {
        let body = serde_json::to_vec(body).unwrap();
        legacy_post(&mut Http::connect(s.http_port), &url, &body)
    };
    let r = post(
        &json!({"jsonrpc":"2.0","id":1,"method":"initialize","params":{
        "protocolVersion":"2024-11-05","capabilities":{},"clientInfo":{"name":"legacy","version":"0"}}}),
    );
    assert_eq!(r.status(), 202, "{r:?}");
    let (_, v) = g.message();
    assert_eq!(v["id"], 1, "{v}");
    assert_eq!(v["result"]["protocolVersion"], "2024-11-05");
    assert_eq!(
        post(&json!({"jsonrpc":"2.0","method":"notifications/initialized"})).status(),
        202
    );

    let r = post(
        &json!({"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"add","arguments":{"a":20,"b":22}}}),
    );
    assert_eq!(r.status(), 202, "{r:?}");
    let (ev, v) = g.message();
    assert_eq!(ev.event, None, "answers are plain `message` events: {ev:?}");
    assert_eq!(v["id"], 2, "{v}");
    assert_eq!(text(&v["result"]), "42");

    let r = post(
        &json!({"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"long_task","arguments":{"steps":2,"interval_ms":5},"_meta":{"progressToken":"lp"}}}),
    );
    assert_eq!(r.status(), 202);
    let msgs: Vec<Value> = (0..3).map(|_| g.message().1).collect();
    assert_eq!(progress_values(&msgs[..2]), [1.0, 2.0]);
    assert_eq!(msgs[2]["id"], 3);

    // The default server's legacy endpoint is /sse, posting to /messages.
    let (mut g2, h) = open_event_stream(s.http_port, "/sse");
    assert_eq!(h.status, 200);
    let ep = g2.event();
    assert_eq!(ep.event.as_deref(), Some("endpoint"));
    assert!(ep.data.starts_with("/messages?sessionId="), "{ep:?}");
    // Unknown legacy sessions are 404; a missing one 400.
    let r = legacy_post(
        &mut Http::connect(s.http_port),
        "/mcp/demo/messages?sessionId=00000000000000000000000000000000",
        PING,
    );
    assert_eq!(r.status(), 404, "{r:?}");
    let r = legacy_post(&mut Http::connect(s.http_port), "/mcp/demo/messages", PING);
    assert_eq!(r.status(), 400, "{r:?}");
}

// ---------------------------------------------------------------------------------------
// Session end, expiry and limits
// ---------------------------------------------------------------------------------------

#[test]
fn delete_ends_open_streams() {
    let s = server();
    let mut m = init(&s, LATEST);
    let mut g = Http::connect(s.http_port);
    assert_eq!(m.open_get(&mut g, None).status, 200);
    let mut p = Http::connect(s.http_port);
    let (_, msg) = m.req("tools/call", long_task(500, 20, 1));
    m.post_stream_on(&mut p, &msg);
    p.message();
    assert_eq!(m.delete(), 200);
    // Both streams end (the last chunk arrives), neither hangs.
    g.rest_of_stream();
    let rest = p.rest_of_stream();
    assert!(
        rest.len() < 500,
        "the task ran on after DELETE: {} events",
        rest.len()
    );
}

#[test]
fn idle_sessions_expire_but_listening_ones_stay() {
    let s = Server::start(1, &["--set", "http.session_idle_timeout_ms=300"]);
    let idle = init(&s, LATEST);
    let mut listening = init(&s, LATEST);
    let mut g = Http::connect(s.http_port);
    assert_eq!(listening.open_get(&mut g, None).status, 200);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let r = idle.post(&json!({"jsonrpc": "2.0", "id": 1, "method": "ping"}));
        if r.status() == 404 {
            break;
        }
        assert_eq!(r.status(), 200, "{r:?}");
        assert!(
            Instant::now() < deadline,
            "an idle session outlived its timeout by far"
        );
        // Polling keeps the session busy: wait longer than the timeout between polls.
        std::thread::sleep(Duration::from_millis(400));
    }
    assert_eq!(listening.call("ping", json!({})), json!({}));
}

#[test]
fn connection_limit_is_503_with_retry_after() {
    let s = Server::start(
        1,
        &[
            "--set",
            "limits.connections_per_shard_max=2",
            "--set",
            "server.connections_target=2",
        ],
    );
    let mut a = Http::connect(s.http_port);
    let mut m = McpSession::initialize_on(&mut a, "/mcp", LATEST);
    let mut b = Http::connect(s.http_port);
    assert_eq!(m.call_on(&mut b, "ping", json!({})), json!({}));
    let mut third = Http::connect(s.http_port);
    let h = third
        .try_head(READ_TIMEOUT)
        .unwrap_or_else(|e| panic!("no refusal for the third connection: {e:?}"));
    assert_eq!(h.status, 503, "{h:?}");
    assert!(h.header("retry-after").is_some(), "{h:?}");
    third.body(&h);
    // The two held connections still work.
    assert_eq!(m.call_on(&mut a, "ping", json!({})), json!({}));
    assert_eq!(m.call_on(&mut b, "ping", json!({})), json!({}));
}

#[test]
fn a_session_is_found_only_at_its_own_endpoint() {
    let s = server();
    let mut demo = init(&s, LATEST);
    // /mcp serves the default server, which is demo: the same session under both paths.
    let mut at_demo = demo.clone();
    at_demo.path = "/mcp/demo".into();
    assert_eq!(at_demo.call("ping", json!({})), json!({}));
    // Under another server's endpoint the session does not exist.
    let mut elsewhere = demo.clone();
    elsewhere.path = "/mcp/conformance".into();
    let r = elsewhere.post(&json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}));
    assert_eq!(r.status(), 404, "{r:?}");
    let mut g = Http::connect(s.http_port);
    let h = elsewhere.open_get(&mut g, None);
    assert_eq!(h.status, 404, "{h:?}");
    g.body(&h);
    assert_eq!(elsewhere.delete(), 404);
    // Nothing happened to it at home.
    assert_eq!(demo.call("ping", json!({})), json!({}));
    let conf = McpSession::initialize(s.http_port, "/mcp/conformance", LATEST);
    let mut conf_at_default = conf.clone();
    conf_at_default.path = "/mcp".into();
    let r = conf_at_default.post(&json!({"jsonrpc": "2.0", "id": 1, "method": "ping"}));
    assert_eq!(r.status(), 404, "{r:?}");

    // The legacy transport too: a demo session posted to the conformance messages endpoint.
    let (mut lg, h) = open_event_stream(s.http_port, "/mcp/demo/sse");
    assert_eq!(h.status, 200);
    let endpoint = lg.event().data;
    let wrong = endpoint.replace("/mcp/demo/", "/mcp/conformance/");
    let r = legacy_post(&mut Http::connect(s.http_port), &wrong, PING);
    assert_eq!(r.status(), 404, "{wrong}: {r:?}");
}

#[test]
fn unsupported_protocol_version_header_is_400() {
    let s = server();
    let m = init(&s, LATEST);
    let h = post_headers(Some(&m.id), Some("1999-01-01"));
    let r = post_ping(&s, "/mcp", &h);
    assert_eq!(r.status(), 400, "{r:?}");
    assert!(r.text().contains("1999-01-01"), "{}", r.text());
    // Every session revision is accepted in the header.
    for rev in &REVISIONS[1..] {
        let h = post_headers(Some(&m.id), Some(rev));
        let r = post_ping(&s, "/mcp", &h);
        assert_eq!(r.status(), 200, "{rev}: {r:?}");
    }
}

#[test]
fn expect_100_continue_is_honoured() {
    let s = server();
    let m = init(&s, LATEST);
    let body = br#"{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"echo","arguments":{"text":"after 100"}}}"#;
    let mut h = m.headers();
    h.push(("Expect", "100-continue"));
    let mut bytes = request_bytes(s.http_port, "POST", "/mcp", &h, Some(body));
    bytes.truncate(bytes.len() - body.len());
    let mut c = Http::connect(s.http_port);
    c.send_raw(&bytes);
    let interim = c.head();
    assert_eq!(interim.status, 100, "{interim:?}");
    c.send_raw(body);
    let r = c.response();
    assert_eq!(r.status(), 200, "{r:?}");
    assert_eq!(text(&r.json()["result"]), "after 100");
}

#[test]
fn large_bodies_round_trip() {
    let s = server();
    let mut m = init(&s, LATEST);
    let big: String = (0..(1 << 20))
        .map(|i| (b'a' + (i % 26) as u8) as char)
        .collect();
    let mut c = Http::connect(s.http_port);
    let r = m.call_on(
        &mut c,
        "tools/call",
        json!({"name": "echo", "arguments": {"text": big}}),
    );
    assert_eq!(text(&r).len(), big.len());
    assert!(text(&r) == big, "the 1 MiB echo came back altered");
    // And the connection is still in step.
    assert_eq!(m.call_on(&mut c, "ping", json!({})), json!({}));
}

#[test]
fn request_pipelined_while_a_stream_runs_waits_its_turn() {
    let s = server();
    let mut m = init(&s, LATEST);
    let mut c = Http::connect(s.http_port);
    let (id, msg) = m.req("tools/call", long_task(5, 30, 1));
    m.post_stream_on(&mut c, &msg);
    let (_, first) = c.message();
    assert_eq!(first["params"]["progress"].as_f64(), Some(1.0));
    // The next request arrives while the stream is still running.
    let (id2, msg2) = m.req(
        "tools/call",
        json!({"name": "echo", "arguments": {"text": "next"}}),
    );
    m.send_on(&mut c, &msg2);
    let rest = c.rest_messages();
    assert_eq!(progress_values(&rest[..4]), [2.0, 3.0, 4.0, 5.0]);
    assert_eq!(rest[4]["id"], id);
    let r = c.response();
    assert_eq!(r.json()["id"], id2);
    assert_eq!(text(&r.json()["result"]), "next");
}
