//! Admission control end to end, each limit set tiny with `--set`: connections per shard and
//! per source address, the accept rate, message rates per connection and per shard, tool
//! calls per session, requests in flight per shard and per session, and a TCP client that
//! never reads. Each test checks the exact answer a peer gets (JSON-RPC code and
//! `data.reason` / `data.retryAfterMs`, or HTTP status and `Retry-After`), the rejection
//! counter at `/metrics`, and that the other connections are still served.
//!
//! Over Streamable HTTP with a session, refused requests are answered 200 with their
//! JSON-RPC errors and `Retry-After` (SDK clients fail the whole transport on 429/503), or
//! 429/503 with `http.overload_http_status = true`.

mod common;

use common::http::{initialize_body, post_headers, Http, McpSession};
use common::*;
use serde_json::{json, Value};
use std::io::{ErrorKind, Write};
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

/// `--set` arguments for `kvs`.
fn sets<'a>(kvs: &[&'a str]) -> Vec<&'a str> {
    kvs.iter().flat_map(|kv| ["--set", kv]).collect()
}

/// Checks an admission control error response: `code`, `data.reason` and a
/// `data.retryAfterMs` within a second (a rate's next token, or the fixed hint of a bound);
/// returns the latter.
fn assert_refusal(resp: &Value, id: &Value, code: i64, reason: &str) -> u64 {
    assert_error(resp, id, code);
    let data = &resp["error"]["data"];
    assert_eq!(data["reason"], reason, "{resp}");
    let ms = data["retryAfterMs"]
        .as_u64()
        .unwrap_or_else(|| panic!("no data.retryAfterMs in {resp}"));
    assert!(
        (1..=1000).contains(&ms),
        "retryAfterMs out of range: {resp}"
    );
    ms
}

/// Checks an HTTP refusal: `status`, `Retry-After: 1`, and a JSON-RPC error body (JSON) for
/// `id`.
fn assert_http_refusal(
    r: &common::http::Response,
    status: u16,
    id: &Value,
    code: i64,
    reason: &str,
) {
    assert_eq!(r.status(), status, "{r:?}");
    assert_eq!(r.header("retry-after"), Some("1"), "{r:?}");
    assert_eq!(r.head.content_type(), "application/json", "{r:?}");
    assert_refusal(&r.json(), id, code, reason);
}

/// Sends `n` pings at once and returns their responses in order.
fn pings(c: &mut Client, n: usize) -> Vec<(i64, Value)> {
    let ids: Vec<i64> = (0..n).map(|_| c.send_request("ping", json!({}))).collect();
    ids.into_iter()
        .map(|id| (id, c.response(&json!(id))))
        .collect()
}

/// The TCP refusal a connection gets at accept: one error line, then the close.
fn refused_at_accept(c: &mut Client) -> Value {
    let seen = c.expect_closed(READ_TIMEOUT);
    assert_eq!(seen.len(), 1, "one error line, then close: {seen:?}");
    seen.into_iter().next().expect("one message")
}

fn echo(c: &mut Client, text: &str) {
    assert_eq!(common::text(&c.tool("echo", json!({"text": text}))), text);
}

// ---------------------------------------------------------------------------------------
// At accept
// ---------------------------------------------------------------------------------------

#[test]
fn connections_per_shard_are_capped_over_tcp_and_http_together() {
    let s = Server::start(
        1,
        &sets(&[
            "limits.connections_per_shard_max=2",
            "server.connections_target=2",
        ]),
    );
    let (mut a, _) = s.session(LATEST);
    let (mut b, _) = s.session(LATEST);
    let mut third = s.connect();
    let e = refused_at_accept(&mut third);
    assert_refusal(&e, &Value::Null, -32001, "connections_per_shard");
    assert!(
        e["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("connections_per_shard_max = 2")),
        "{e}"
    );
    // The cap counts the shard's connections of every transport.
    let mut h = Http::connect(s.http_port);
    let r = h.response();
    assert_http_refusal(&r, 503, &Value::Null, -32001, "connections_per_shard");
    assert!(r.head.closes(), "{r:?}");
    a.sync();
    b.sync();
    assert_eq!(rejections(&s, "connections_per_shard"), 2);

    // A connection that goes makes room (noticed asynchronously: retry, bounded).
    drop(a);
    let deadline = Instant::now() + READ_TIMEOUT;
    loop {
        let mut h = Http::connect(s.http_port);
        h.send(
            "POST",
            "/mcp",
            &post_headers(None, None),
            Some(&initialize_body(LATEST)),
        );
        match h.try_head(READ_TIMEOUT) {
            Ok(head) if head.status == 200 => {
                h.body(&head);
                break;
            }
            Ok(head) => {
                assert_eq!(head.status, 503, "{head:?}");
                h.body(&head);
            }
            Err(e) => panic!("no answer: {e:?}"),
        }
        assert!(
            Instant::now() < deadline,
            "no room after a connection closed"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    b.sync();
}

#[test]
fn connections_per_source_address_are_capped() {
    let s = Server::start(1, &sets(&["limits.connections_per_source_max=2"]));
    let here = Ipv4Addr::new(127, 0, 0, 1);
    let (mut a, _) = s.session(LATEST);
    let mut b = Client::connect_from(here, &s.addr());
    b.initialize(LATEST);
    let mut third = Client::connect_from(here, &s.addr());
    let e = refused_at_accept(&mut third);
    assert_refusal(&e, &Value::Null, -32001, "connections_per_source");
    let mut h = Http::connect_from(here, s.http_port);
    assert_http_refusal(
        &h.response(),
        503,
        &Value::Null,
        -32001,
        "connections_per_source",
    );

    // Other addresses are not held back by this one.
    let mut other = Client::connect_from(Ipv4Addr::new(127, 0, 0, 2), &s.addr());
    other.initialize(LATEST);
    echo(&mut other, "from another address");
    let mut oh = Http::connect_from(Ipv4Addr::new(127, 0, 0, 3), s.http_port);
    let mut m = McpSession::initialize_on(&mut oh, "/mcp", LATEST);
    assert_eq!(m.call_on(&mut oh, "ping", json!({})), json!({}));
    a.sync();
    b.sync();
    assert_eq!(rejections(&s, "connections_per_source"), 2);

    // When one of the address's connections closes, the address has room again.
    drop(b);
    let deadline = Instant::now() + READ_TIMEOUT;
    loop {
        let mut c = Client::connect_from(here, &s.addr());
        let id = c.next_id();
        let _ = c.try_send_raw(
            format!("{{\"jsonrpc\":\"2.0\",\"id\":{id},\"method\":\"ping\"}}\n").as_bytes(),
        );
        match c.recv_timeout(READ_TIMEOUT) {
            Recv::Msg(m) if m["id"] == id => break,
            Recv::Msg(m) => {
                assert_refusal(&m, &Value::Null, -32001, "connections_per_source");
            }
            Recv::Closed => {}
            Recv::Timeout => panic!("no answer and no refusal"),
        }
        assert!(
            Instant::now() < deadline,
            "the address has no room after a close"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    a.sync();
}

#[test]
fn the_accept_rate_refuses_connections_beyond_it() {
    let s = Server::start(
        1,
        &sets(&[
            "limits.accept_rate_per_shard=1",
            "limits.accept_burst_per_shard=1",
        ]),
    );
    let (mut a, _) = s.session(LATEST);
    // One new connection per second: of a quick series, all but about one a second are
    // refused.
    let mut refusal = None;
    for _ in 0..20 {
        let mut c = s.connect();
        let id = c.next_id();
        let _ = c.try_send_raw(
            format!("{{\"jsonrpc\":\"2.0\",\"id\":{id},\"method\":\"ping\"}}\n").as_bytes(),
        );
        match c.recv_timeout(READ_TIMEOUT) {
            Recv::Msg(m) if m["id"] == id => continue,
            Recv::Msg(m) => {
                assert!(matches!(c.recv_timeout(READ_TIMEOUT), Recv::Closed));
                refusal = Some(m);
                break;
            }
            other => panic!("no answer and no refusal: {other:?}"),
        }
    }
    let e = refusal.expect("a quick series of connections must meet the accept rate");
    assert_refusal(&e, &Value::Null, -32005, "accept_rate");
    // HTTP shares the shard's accept rate: 429 with Retry-After.
    let mut status = None;
    for _ in 0..20 {
        let mut h = Http::connect(s.http_port);
        h.send(
            "POST",
            "/mcp",
            &post_headers(None, None),
            Some(&initialize_body(LATEST)),
        );
        let head = h.try_head(READ_TIMEOUT).expect("an answer");
        let body = h.body(&head);
        if head.status == 429 {
            status = Some(common::http::Response { head, body });
            break;
        }
        assert_eq!(head.status, 200, "{head:?}");
    }
    let r = status.expect("a quick series of HTTP connections must meet the accept rate");
    assert_http_refusal(&r, 429, &Value::Null, -32005, "accept_rate");
    assert!(rejections(&s, "accept_rate") >= 2);
    // The connection that got in is served throughout.
    echo(&mut a, "still served");
}

// ---------------------------------------------------------------------------------------
// Message rates
// ---------------------------------------------------------------------------------------

#[test]
fn the_message_rate_of_a_tcp_connection() {
    let s = Server::start(
        1,
        &sets(&[
            "limits.messages_per_connection_per_s=1",
            "limits.messages_per_connection_burst=4",
        ]),
    );
    // initialize and notifications/initialized take two of the four.
    let (mut a, _) = s.session(LATEST);
    let answers = pings(&mut a, 8);
    let mut refused = 0;
    let mut wait = 0;
    for (i, (id, resp)) in answers.iter().enumerate() {
        if resp.get("result").is_some() {
            assert!(refused == 0, "a ping answered after a refusal: {answers:?}");
            continue;
        }
        assert!(i >= 2, "the burst admits two pings: {answers:?}");
        wait = assert_refusal(resp, &json!(id), -32005, "connection_message_rate");
        refused += 1;
    }
    assert!(refused >= 4, "{answers:?}");
    assert_eq!(rejections(&s, "connection_message_rate"), refused);
    // Another connection has its own bucket.
    let (mut b, _) = s.session(LATEST);
    assert!(pings(&mut b, 2)
        .iter()
        .all(|(_, r)| r.get("result").is_some()));
    // The refused connection stays open and is served again once it waited as told.
    std::thread::sleep(Duration::from_millis(wait + 20));
    a.sync();
}

#[test]
fn the_message_rate_of_an_http_connection() {
    let s = Server::start(
        1,
        &sets(&[
            "limits.messages_per_connection_per_s=1",
            "limits.messages_per_connection_burst=3",
        ]),
    );
    // initialize and notifications/initialized take two requests of this connection.
    let mut conn = Http::connect(s.http_port);
    let mut m = McpSession::initialize_on(&mut conn, "/mcp", LATEST);
    assert_eq!(m.call_on(&mut conn, "ping", json!({})), json!({}));
    let (_, msg) = m.req("ping", json!({}));
    let r = m.post_on(&mut conn, &msg);
    // Refused before its body is read as JSON-RPC: the error has no id.
    assert_http_refusal(&r, 429, &Value::Null, -32005, "connection_message_rate");
    let wait = r.json()["error"]["data"]["retryAfterMs"].as_u64().unwrap();
    assert_eq!(rejections(&s, "connection_message_rate"), 1);
    // The session is served on another connection meanwhile, and this one stays open.
    assert_eq!(m.call("ping", json!({})), json!({}));
    std::thread::sleep(Duration::from_millis(wait + 20));
    assert_eq!(m.call_on(&mut conn, "ping", json!({})), json!({}));
}

#[test]
fn the_message_rate_of_a_shard_covers_all_its_connections() {
    let s = Server::start(
        1,
        &sets(&[
            "limits.messages_per_shard_per_s=1",
            "limits.messages_per_shard_burst=8",
        ]),
    );
    // Three sessions: six messages of the shard's eight.
    let (mut a, _) = s.session(LATEST);
    let (mut b, _) = s.session(LATEST);
    let mut m = McpSession::initialize(s.http_port, "/mcp", LATEST);
    let answers = pings(&mut b, 6);
    assert!(answers[0].1.get("result").is_some(), "{answers:?}");
    let (id, last) = answers.last().expect("answers");
    assert_refusal(last, &json!(id), -32005, "shard_message_rate");
    // The shard's bucket is empty for every connection on it.
    let id = a.send_request("ping", json!({}));
    let wait = assert_refusal(
        &a.response(&json!(id)),
        &json!(id),
        -32005,
        "shard_message_rate",
    );
    // Over Streamable HTTP with a session, a POST whose request is refused gets 200 with
    // the request's error and Retry-After; so does an initialize that would start one.
    let (id, msg) = m.req("ping", json!({}));
    assert_http_refusal(&m.post(&msg), 200, &json!(id), -32005, "shard_message_rate");
    let mut conn = Http::connect(s.http_port);
    let r = conn.request(
        "POST",
        "/mcp",
        &post_headers(None, None),
        Some(&initialize_body(LATEST)),
    );
    assert_http_refusal(&r, 200, &json!(0), -32005, "shard_message_rate");
    assert_eq!(r.header("mcp-session-id"), None, "{r:?}");
    // A POST of notifications only has no request to answer: 429, the error without an id.
    let r = m.post(&json!({"jsonrpc": "2.0", "method": "notifications/roots/list_changed"}));
    assert_http_refusal(&r, 429, &Value::Null, -32005, "shard_message_rate");
    // The stateless revision answers with the error's own status.
    let body = serde_json::to_vec(&json!({"jsonrpc": "2.0", "id": 7, "method": "tools/list",
        "params": {"_meta": {"io.modelcontextprotocol/protocolVersion": "2026-07-28",
            "io.modelcontextprotocol/clientCapabilities": {},
            "io.modelcontextprotocol/clientInfo": {"name": "t", "version": "0"}}}}))
    .unwrap();
    let mut headers = post_headers(None, Some("2026-07-28"));
    headers.push(("Mcp-Method", "tools/list"));
    let r = conn.request("POST", "/mcp", &headers, Some(&body));
    assert_http_refusal(&r, 429, &json!(7), -32005, "shard_message_rate");
    assert!(rejections(&s, "shard_message_rate") >= 6);
    // Both connections stay open and are served again once they waited; so is the HTTP
    // session.
    std::thread::sleep(Duration::from_millis(wait + 20));
    a.sync();
    std::thread::sleep(Duration::from_millis(1000));
    b.sync();
    std::thread::sleep(Duration::from_millis(1000));
    assert_eq!(m.call("ping", json!({})), json!({}));
}

#[test]
fn tool_calls_per_session_are_rate_limited() {
    let s = Server::start(
        1,
        &sets(&[
            "limits.tool_calls_per_session_per_s=1",
            "limits.tool_calls_per_session_burst=2",
        ]),
    );
    let (mut a, _) = s.session(LATEST);
    let ids: Vec<i64> = (0..4)
        .map(|i| {
            a.send_request(
                "tools/call",
                json!({"name": "echo", "arguments": {"text": format!("{i}")}}),
            )
        })
        .collect();
    let answers: Vec<Value> = ids.iter().map(|id| a.response(&json!(id))).collect();
    let refused_a = answers.iter().filter(|r| r.get("error").is_some()).count() as u64;
    assert_eq!(common::text(&answers[0]["result"]), "0");
    assert_eq!(common::text(&answers[1]["result"]), "1");
    let wait = assert_refusal(&answers[3], &json!(ids[3]), -32005, "session_tool_rate");
    assert!(
        answers[3]["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("tool_calls_per_session_per_s")),
        "{}",
        answers[3]
    );
    // Other requests of the session are not tool calls; another session has its own rate.
    a.sync();
    let (mut b, _) = s.session(LATEST);
    echo(&mut b, "b");
    echo(&mut b, "b");

    // Over Streamable HTTP the refused POST is a 200 carrying the error for its request, and
    // Retry-After.
    let mut conn = Http::connect(s.http_port);
    let mut m = McpSession::initialize_on(&mut conn, "/mcp", LATEST);
    for i in 0..2 {
        m.call_on(
            &mut conn,
            "tools/call",
            json!({"name": "echo", "arguments": {"text": format!("{i}")}}),
        );
    }
    let (id, msg) = m.req(
        "tools/call",
        json!({"name": "echo", "arguments": {"text": "x"}}),
    );
    let r = m.post_on(&mut conn, &msg);
    assert_http_refusal(&r, 200, &json!(id), -32005, "session_tool_rate");
    assert_eq!(m.call_on(&mut conn, "ping", json!({})), json!({}));
    assert_eq!(rejections(&s, "session_tool_rate"), refused_a + 1);

    std::thread::sleep(Duration::from_millis(wait + 20));
    echo(&mut a, "again");
}

#[test]
fn overload_http_status_answers_refused_session_posts_429() {
    let s = Server::start(
        1,
        &sets(&[
            "http.overload_http_status=true",
            "limits.tool_calls_per_session_per_s=1",
            "limits.tool_calls_per_session_burst=1",
            "limits.session_in_flight_requests_max=1",
        ]),
    );
    let mut m = McpSession::initialize(s.http_port, "/mcp", LATEST);
    // A sleep takes the session's one tool call token and holds its one request slot.
    let (held, msg) = m.req(
        "tools/call",
        json!({"name": "sleep_ms", "arguments": {"ms": 1500}}),
    );
    let mut holder = Http::connect(s.http_port);
    m.send_on(&mut holder, &msg);
    // The sleep's POST travels on its own connection: until it runs, a ping passes.
    let deadline = Instant::now() + READ_TIMEOUT;
    let r = loop {
        let (id, ping) = m.req("ping", json!({}));
        let r = m.post(&ping);
        if r.json().get("error").is_some() {
            break (id, r);
        }
        assert!(
            Instant::now() < deadline,
            "the sleep never held the session"
        );
        std::thread::sleep(Duration::from_millis(10));
    };
    assert_http_refusal(&r.1, 429, &json!(r.0), -32001, "session_in_flight");
    let (id, msg) = m.req(
        "tools/call",
        json!({"name": "echo", "arguments": {"text": "x"}}),
    );
    assert_http_refusal(&m.post(&msg), 429, &json!(id), -32005, "session_tool_rate");
    assert_eq!(rejections(&s, "session_in_flight"), 1);
    assert_eq!(rejections(&s, "session_tool_rate"), 1);
    // The held call finishes on its connection; after it (more than a second) the session's
    // tool calls pass again.
    let r = holder.response();
    assert_eq!(r.status(), 200, "{r:?}");
    let last = r.messages().pop().expect("the sleep's answer");
    assert_eq!(last["id"], held, "{last}");
    assert_eq!(common::text(&last["result"]), "slept 1500 ms");
    let out = m.call(
        "tools/call",
        json!({"name": "echo", "arguments": {"text": "again"}}),
    );
    assert_eq!(out["content"][0]["text"], "again");
}

// ---------------------------------------------------------------------------------------
// Requests in flight
// ---------------------------------------------------------------------------------------

#[test]
fn requests_in_flight_are_bounded_per_shard_and_per_session() {
    let s = Server::start(
        1,
        &sets(&[
            "limits.shard_in_flight_requests_max=2",
            "limits.session_in_flight_requests_max=1",
        ]),
    );
    let sleep = |ms: u64| json!({"name": "sleep_ms", "arguments": {"ms": ms}});
    // a and c hold the shard's two slots.
    let (mut a, _) = s.session(LATEST);
    let (mut c, _) = s.session(LATEST);
    let held_a = a.send_request("tools/call", sleep(3000));
    let held_c = c.send_request("tools/call", sleep(3000));
    // a's next request meets its session's bound first.
    let id = a.send_request("tools/call", sleep(1));
    let e = a.response(&json!(id));
    assert_refusal(&e, &json!(id), -32001, "session_in_flight");
    assert!(
        e["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("session_in_flight_requests_max = 1")),
        "{e}"
    );
    // So does c's, which says its sleep holds the shard's other slot: b is refused with
    // -32006, nothing of its request started.
    let id = c.send_request("ping", json!({}));
    assert_refusal(
        &c.response(&json!(id)),
        &json!(id),
        -32001,
        "session_in_flight",
    );
    let (mut b, _) = s.session(LATEST);
    let id = b.send_request("tools/call", sleep(1));
    let e = b.response(&json!(id));
    let wait = assert_refusal(&e, &json!(id), -32006, "shard_in_flight");
    assert_eq!(wait, 1000);
    assert!(
        e["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("shard_in_flight_requests_max")),
        "{e}"
    );
    // Over HTTP: 200 with the error and Retry-After for a session, 503 with Retry-After
    // for a stateless request.
    let mut m = McpSession::initialize(s.http_port, "/mcp", LATEST);
    let (id, msg) = m.req("tools/call", sleep(1));
    assert_http_refusal(&m.post(&msg), 200, &json!(id), -32006, "shard_in_flight");
    let body = serde_json::to_vec(&json!({"jsonrpc": "2.0", "id": 9, "method": "tools/call",
        "params": {"name": "sleep_ms", "arguments": {"ms": 1},
            "_meta": {"io.modelcontextprotocol/protocolVersion": "2026-07-28",
                "io.modelcontextprotocol/clientCapabilities": {},
                "io.modelcontextprotocol/clientInfo": {"name": "t", "version": "0"}}}}))
    .unwrap();
    let mut headers = post_headers(None, Some("2026-07-28"));
    headers.extend([("Mcp-Method", "tools/call"), ("Mcp-Name", "sleep_ms")]);
    let r = Http::connect(s.http_port).request("POST", "/mcp", &headers, Some(&body));
    assert_http_refusal(&r, 503, &json!(9), -32006, "shard_in_flight");
    assert_eq!(rejections(&s, "shard_in_flight"), 3);
    assert_eq!(rejections(&s, "session_in_flight"), 2);

    // The held requests finish; then everyone is served again, on the same connections.
    assert_eq!(
        common::text(&a.response(&json!(held_a))["result"]),
        "slept 3000 ms"
    );
    assert_eq!(
        common::text(&c.response(&json!(held_c))["result"]),
        "slept 3000 ms"
    );
    assert_eq!(
        common::text(&b.tool("sleep_ms", json!({"ms": 1}))),
        "slept 1 ms"
    );
    assert_eq!(
        m.call("tools/call", sleep(1))["content"][0]["text"],
        "slept 1 ms"
    );
    a.sync();
}

// ---------------------------------------------------------------------------------------
// A client that never reads
// ---------------------------------------------------------------------------------------

#[test]
fn a_tcp_client_that_never_reads_is_cut_off_and_the_rest_are_served() {
    let s = Server::start(
        1,
        &sets(&[
            "tcp.write_timeout_ms=300",
            "limits.max_message_bytes=131072",
            "limits.outbound_queue_messages_max=16",
            "limits.outbound_queue_bytes_max=262144",
        ]),
    );
    let (mut reader, _) = s.session(LATEST);
    let (hog, _) = s.session(LATEST);
    // Requests whose answers are 60 KB each, written as fast as the server takes them and
    // never read: the server's queue, its socket buffer and ours fill, then it stops reading
    // (backpressure), then it gives up on the connection.
    let text = "x".repeat(60_000);
    let mut wire = Vec::new();
    for id in 0..2000 {
        let req = json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
            "params": {"name": "echo", "arguments": {"text": text}}});
        wire.extend_from_slice(&serde_json::to_vec(&req).unwrap());
        wire.push(b'\n');
    }
    let mut stream = hog.raw_stream();
    stream
        .set_write_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut at = 0;
    let mut tries = 0u64;
    let cut_off = loop {
        tries += 1;
        assert!(
            Instant::now() < deadline,
            "the server still holds a client that has read nothing (wrote {at} bytes)"
        );
        if at == wire.len() {
            // Everything was taken without the server ever stopping: not what this test
            // is about.
            panic!("the server read 120 MB from a client that reads nothing");
        }
        match stream.write(&wire[at..]) {
            Ok(n) => at += n,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => break e,
        }
        // Meanwhile another client is served.
        if tries.is_multiple_of(10) {
            reader.sync();
        }
    };
    assert!(
        matches!(
            cut_off.kind(),
            ErrorKind::ConnectionReset | ErrorKind::BrokenPipe | ErrorKind::ConnectionAborted
        ),
        "{cut_off:?}"
    );
    assert!(rejections(&s, "outbound_queue_full") >= 1);
    echo(&mut reader, "served after the hog was cut off");
    let (mut fresh, _) = s.session(LATEST);
    echo(&mut fresh, "new clients too");
}
