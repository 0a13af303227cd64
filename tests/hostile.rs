//! Slow and hostile peers against a real `ringmcp serve`: a request head trickled in
//! (slowloris), bodies that never end, a TCP message that never ends, an SSE client that
//! stops reading, one that never reads, and thousands of connections that send nothing.
//! Each must be timed out or cut off, counted at `/metrics`, and must not keep another
//! client from being served. Timeouts are set small with `--set`; every wait for the server
//! to act is bounded by ten times the timeout or more.

mod common;

use common::http::{long_task, request_bytes, Http, McpSession, ReadErr, SseEvent};
use common::*;
use serde_json::{json, Value};
use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

/// How long a trickling peer keeps trickling before the test gives up on the server.
const TEN_TIMEOUTS: Duration = Duration::from_secs(10);
/// Between two trickled bytes: well inside every timeout, so only a deadline for the whole
/// head, body or message can stop the peer.
const TRICKLE: Duration = Duration::from_millis(100);

/// A client on the side is served: a TCP session answers, and an HTTP session answers.
fn others_are_served(s: &Server) {
    let (mut c, _) = s.session(LATEST);
    assert_eq!(text(&c.tool("echo", json!({"text": "side"}))), "side");
    let mut m = McpSession::initialize(s.http_port, "/mcp", LATEST);
    assert_eq!(m.call("ping", json!({})), json!({}));
}

/// Trickles `bytes` (one every [`TRICKLE`], then `filler` forever) into `c` until a
/// response head arrives; checks the side clients once on the way. Returns the head.
fn trickle_until_answered(
    s: &Server,
    c: &mut Http,
    bytes: &[u8],
    filler: &[u8],
) -> common::http::Head {
    let deadline = Instant::now() + TEN_TIMEOUTS;
    let mut sent = 0usize;
    let mut checked = false;
    loop {
        let next: &[u8] = match bytes.get(sent) {
            Some(b) => std::slice::from_ref(b),
            None => filler,
        };
        // The server may have answered and closed already: then writes fail, reads tell.
        let _ = c.try_send_raw(next);
        sent += 1;
        match c.try_head(TRICKLE) {
            Ok(h) => return h,
            Err(ReadErr::Timeout) => {}
            Err(ReadErr::Closed) => panic!("closed without an answer after {sent} bytes"),
        }
        if !checked && sent > 5 {
            others_are_served(s);
            checked = true;
        }
        assert!(
            Instant::now() < deadline,
            "still reading after {TEN_TIMEOUTS:?} of trickling"
        );
    }
}

fn assert_408_then_closed(c: &mut Http, h: &common::http::Head) {
    assert_eq!(h.status, 408, "{h:?}");
    assert!(h.closes(), "408 must close the connection: {h:?}");
    let body = c.body(h);
    let v: Value = serde_json::from_slice(&body).expect("a JSON error body");
    assert!(v["error"]["message"].is_string(), "{v}");
    c.expect_closed(READ_TIMEOUT);
}

#[test]
fn a_slowloris_head_gets_408_and_the_connection_closes() {
    let s = Server::start(1, &["--set", "http.header_read_timeout_ms=1000"]);
    let mut c = Http::connect(s.http_port);
    let head = format!("POST /mcp HTTP/1.1\r\nHost: 127.0.0.1:{}\r\n", s.http_port);
    // Header lines that never end the head, one byte at a time.
    let h = trickle_until_answered(&s, &mut c, head.as_bytes(), b"X");
    assert_408_then_closed(&mut c, &h);
    assert_eq!(rejections(&s, "slow_peer"), 1);
    others_are_served(&s);
}

#[test]
fn bodies_that_never_end_get_408_and_the_connection_closes() {
    let s = Server::start(1, &["--set", "http.body_read_timeout_ms=1000"]);
    let m = McpSession::initialize(s.http_port, "/mcp", LATEST);
    let mut session_headers = String::new();
    for (k, v) in m.headers() {
        session_headers.push_str(&format!("{k}: {v}\r\n"));
    }
    let host = format!("Host: 127.0.0.1:{}\r\n", s.http_port);

    // A Content-Length larger than what is sent, the rest trickled forever.
    let mut c = Http::connect(s.http_port);
    let head =
        format!("POST /mcp HTTP/1.1\r\n{host}{session_headers}Content-Length: 100000\r\n\r\n");
    c.send_raw(head.as_bytes());
    let h = trickle_until_answered(&s, &mut c, b"{\"jsonrpc\":", b" ");
    assert_408_then_closed(&mut c, &h);

    // A chunked body whose chunks keep coming and whose last chunk never does.
    let mut c = Http::connect(s.http_port);
    let head =
        format!("POST /mcp HTTP/1.1\r\n{host}{session_headers}Transfer-Encoding: chunked\r\n\r\n");
    c.send_raw(head.as_bytes());
    c.send_raw(b"b\r\n{\"jsonrpc\":\r\n");
    let h = trickle_until_answered(&s, &mut c, b"", b"1\r\n \r\n");
    assert_408_then_closed(&mut c, &h);

    assert_eq!(rejections(&s, "slow_peer"), 2);
    others_are_served(&s);
}

#[test]
fn a_tcp_message_that_never_ends_is_cut_off_with_an_error() {
    let s = Server::start(1, &["--set", "limits.message_read_timeout_ms=1000"]);
    // Half a line, then one more byte now and then: the idle timeout (5 min) never fires,
    // the message deadline does.
    let (mut c, _) = s.session(LATEST);
    c.send_raw(br#"{"jsonrpc":"2.0","id":7,"method":"#);
    let mut raw = c.raw_stream();
    let deadline = Instant::now() + TEN_TIMEOUTS;
    let mut checked = false;
    let seen = loop {
        let _ = raw.write_all(b" ");
        match c.recv_wire(TRICKLE) {
            Recv::Msg(v) => break v,
            Recv::Timeout => {}
            Recv::Closed => panic!("closed without an error line"),
        }
        if !checked {
            others_are_served(&s);
            checked = true;
        }
        assert!(Instant::now() < deadline, "the message was never cut off");
    };
    assert_eq!(error_code(&seen), Some(-32600), "{seen}");
    assert!(
        seen["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("message_read_timeout_ms")),
        "{seen}"
    );
    assert!(c.expect_closed(READ_TIMEOUT).is_empty());

    // Half a line and then nothing at all: the same deadline.
    let (mut c, _) = s.session(LATEST);
    c.send_raw(br#"{"jsonrpc":"2.0","#);
    let seen = c.expect_closed(TEN_TIMEOUTS);
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(error_code(&seen[0]), Some(-32600), "{seen:?}");
    assert_eq!(rejections(&s, "slow_peer"), 2);
    others_are_served(&s);
}

/// A progress token of 1500 bytes: every progress notification echoes it, which makes
/// 10,000 steps about 15 MB, more than the kernel buffers between a client that does not
/// read and the server (here: a 4 MiB send buffer, `net.ipv4.tcp_wmem`, and the client's
/// small receive window).
fn big_token(tag: &str) -> String {
    format!("{tag}-{}", "x".repeat(1500))
}

/// A client on a [`small_window`] connection.
fn small_window_http(port: u16) -> Http {
    Http::from_stream(small_window(port), port)
}

/// A connection to 127.0.0.1:`port` whose receive buffer is as small as the kernel allows,
/// so that what the client does not read backs up into the server at once.
fn small_window(port: u16) -> TcpStream {
    use std::os::fd::FromRawFd;
    let len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
    let addr = libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: port.to_be(),
        sin_addr: libc::in_addr {
            s_addr: u32::from(std::net::Ipv4Addr::LOCALHOST).to_be(),
        },
        sin_zero: [0; 8],
    };
    // SAFETY: socket(2), setsockopt(2) and connect(2) on a descriptor owned here (by the
    // TcpStream from the start); the pointers outlive the calls.
    let stream = unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
        assert!(fd >= 0, "socket: {}", std::io::Error::last_os_error());
        let stream = TcpStream::from_raw_fd(fd);
        let size: libc::c_int = 4096;
        let rc = libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_RCVBUF,
            &size as *const libc::c_int as *const libc::c_void,
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
        assert_eq!(rc, 0, "SO_RCVBUF: {}", std::io::Error::last_os_error());
        let rc = libc::connect(fd, &addr as *const _ as *const libc::sockaddr, len);
        assert_eq!(rc, 0, "connect: {}", std::io::Error::last_os_error());
        stream
    };
    stream
}

/// The events of the stream whose head was read, up to its end or the connection's.
fn read_events(c: &mut Http) -> (Vec<SseEvent>, bool) {
    let mut out = Vec::new();
    loop {
        match c.try_event(READ_TIMEOUT) {
            Ok(Some(ev)) => out.push(ev),
            Ok(None) => return (out, true),
            Err(ReadErr::Closed) => return (out, false),
            Err(ReadErr::Timeout) => panic!("the stream stalled after {} events", out.len()),
        }
    }
}

/// What the replay buffer keeps of a stream (`http.sse_replay_events_max` in these tests).
const REPLAY: u64 = 200;

/// Resumes the stream after `last_id` on a new connection. A stream of `steps` progress
/// events and the result keeps its last [`REPLAY`] events: those after `last_id` come
/// once, in order, and end with the call's result (what fell out of the buffer is lost,
/// and a client that fell that far behind knows it from the ids).
fn resume_to_the_end(s: &Server, m: &McpSession, last_id: &str, steps: u64, call_id: i64) {
    let (stream, seq) = last_id.split_once('-').expect("<stream>-<seq>");
    let (stream, seq): (u64, u64) = (stream.parse().unwrap(), seq.parse().unwrap());
    let mut g = Http::connect(s.http_port);
    let h = m.open_get(&mut g, Some(last_id));
    assert_eq!(h.status, 200, "{h:?}");
    let rest: Vec<SseEvent> = g
        .rest_of_stream()
        .into_iter()
        .filter(|e| !e.data.is_empty())
        .collect();
    let (last, progress) = rest.split_last().expect("events after resuming");
    // The result is event steps + 1; the buffer holds the REPLAY events up to it.
    let first = (seq + 1).max(steps + 2 - REPLAY);
    assert_eq!(
        progress.len() as u64,
        steps + 1 - first,
        "{:?}",
        progress.first()
    );
    for (i, e) in progress.iter().enumerate() {
        let want = first + i as u64;
        assert_eq!(e.id_parts(), (stream, want), "{e:?}");
        assert_eq!(e.json()["params"]["progress"].as_f64(), Some(want as f64));
    }
    assert_eq!(last.id_parts(), (stream, steps + 1), "{last:?}");
    let result = last.json();
    assert_eq!(result["id"], call_id, "{result}");
    assert_eq!(text(&result["result"]), format!("completed {steps} steps"));
}

#[test]
fn an_sse_client_that_falls_behind_gets_a_last_error_event_and_resumes() {
    let s = Server::start(
        1,
        &[
            "--set",
            "http.exchange_events_max=256",
            "--set",
            "http.sse_replay_events_max=200",
        ],
    );
    let mut m = McpSession::initialize(s.http_port, "/mcp", LATEST);
    let steps = 10_000;
    let mut c = small_window_http(s.http_port);
    let (id, msg) = m.req("tools/call", long_task(steps, 0, big_token("lag")));
    m.send_on(&mut c, &msg);
    // The task reports its 10,000 steps at once; the client reads nothing meanwhile.
    std::thread::sleep(Duration::from_secs(3));
    others_are_served(&s);
    let h = c.head();
    assert!(h.is_sse(), "{h:?}");
    let (events, ended) = read_events(&mut c);
    assert!(ended, "the stream ends with its last chunk");
    let (last, before) = events.split_last().expect("events");
    assert_eq!(last.event.as_deref(), Some("error"), "{last:?}");
    let why = last.json();
    assert_eq!(why["reason"], "sse_lagging", "{why}");
    let last_id = why["lastEventId"]
        .as_str()
        .expect("lastEventId")
        .to_string();
    let delivered: Vec<&SseEvent> = before.iter().filter(|e| !e.data.is_empty()).collect();
    assert!(
        (delivered.len() as u64) < steps,
        "the client got everything, nothing was cut off"
    );
    assert_eq!(
        delivered.last().and_then(|e| e.id.as_deref()),
        Some(last_id.as_str()),
        "lastEventId names the last event delivered"
    );
    c.expect_closed(READ_TIMEOUT);
    assert_eq!(rejections(&s, "sse_lagging"), 1);

    resume_to_the_end(&s, &m, &last_id, steps, id);
    others_are_served(&s);
}

#[test]
fn an_sse_client_that_never_reads_is_cut_off_and_can_resume() {
    let s = Server::start(
        1,
        &[
            "--set",
            "http.exchange_events_max=256",
            "--set",
            "http.sse_replay_events_max=200",
            "--set",
            "http.write_timeout_ms=500",
        ],
    );
    let mut m = McpSession::initialize(s.http_port, "/mcp", LATEST);
    let steps = 10_000;
    let mut c = small_window_http(s.http_port);
    let (id, msg) = m.req("tools/call", long_task(steps, 0, big_token("stuck")));
    m.send_on(&mut c, &msg);
    // Ten write timeouts without reading a byte.
    std::thread::sleep(Duration::from_secs(5));
    others_are_served(&s);
    // Cut off once: by the lag event if it still fit in the socket's buffer, else by the
    // write timeout.
    assert_eq!(rejections(&s, "sse_lagging"), 1);
    let h = c.head();
    assert!(h.is_sse(), "{h:?}");
    let (events, ended) = read_events(&mut c);
    let results = events
        .iter()
        .filter(|e| e.data.contains("completed"))
        .count();
    assert_eq!(results, 0, "the result never reached this connection");
    if ended {
        assert_eq!(
            events.last().and_then(|e| e.event.as_deref()),
            Some("error")
        );
    }
    let last_id = events
        .iter()
        .rev()
        .find(|e| e.event.is_none() && !e.data.is_empty())
        .and_then(|e| e.id.clone())
        .expect("some events arrived before the cut");
    c.expect_closed(READ_TIMEOUT);
    resume_to_the_end(&s, &m, &last_id, steps, id);
}

#[test]
fn an_http_client_that_never_reads_its_responses_is_closed_by_the_write_timeout() {
    let s = Server::start(1, &["--set", "http.write_timeout_ms=500"]);
    let m = McpSession::initialize(s.http_port, "/mcp", LATEST);
    let raw = small_window(s.http_port);
    let mut reader = raw.try_clone().expect("clone");
    let mut c = Http::from_stream(raw, s.http_port);
    // Ten pipelined requests for 1 MB answers each: far more than the socket buffers hold
    // while the client reads nothing.
    let big = "y".repeat(1 << 20);
    for i in 0..10 {
        let msg = json!({"jsonrpc": "2.0", "id": i, "method": "tools/call",
                         "params": {"name": "echo", "arguments": {"text": big}}});
        let body = serde_json::to_vec(&msg).expect("encode");
        let bytes = request_bytes(s.http_port, "POST", "/mcp", &m.headers(), Some(&body));
        // Once the server stops reading (it is stuck writing to us), and then closes, our
        // own writes stall and fail: that is the point.
        if c.try_send_raw(&bytes).is_err() {
            break;
        }
    }
    let deadline = Instant::now() + TEN_TIMEOUTS;
    while rejections(&s, "slow_peer") == 0 {
        assert!(Instant::now() < deadline, "the write never timed out");
        std::thread::sleep(Duration::from_millis(100));
    }
    others_are_served(&s);
    // What made it into the buffers, then the close: not all ten answers.
    let mut got = Vec::new();
    reader
        .set_read_timeout(Some(READ_TIMEOUT))
        .expect("read timeout");
    let mut chunk = vec![0u8; 1 << 16];
    loop {
        match reader.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => got.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == ErrorKind::ConnectionReset => break,
            Err(e) => panic!(
                "the connection was left open ({e}) after {} bytes",
                got.len()
            ),
        }
    }
    let answered = got.windows(15).filter(|w| w == b"HTTP/1.1 200 OK").count();
    assert!(
        (1..10).contains(&answered),
        "{answered} answers began: the write timeout should have cut them"
    );
    assert_eq!(rejections(&s, "slow_peer"), 1);
}

#[test]
fn thousands_of_connections_that_send_nothing_are_closed_by_the_idle_timeout() {
    let s = Server::start(2, &["--set", "limits.idle_timeout_ms=1000"]);
    let mut silent: Vec<TcpStream> = Vec::with_capacity(2000);
    for i in 0..2000 {
        let port = if i % 2 == 0 { s.port } else { s.http_port };
        let addr = ([127, 0, 0, 1], port).into();
        silent.push(TcpStream::connect_timeout(&addr, READ_TIMEOUT).expect("connect"));
    }
    // Served while the silent ones are held (as long as the first of them are still
    // open, which the check below confirms by their closing later).
    others_are_served(&s);
    // Each silent connection is closed by the server: EOF (or a reset) within ten idle
    // timeouts of the last connect.
    let deadline = Instant::now() + TEN_TIMEOUTS + Duration::from_secs(10);
    for (i, c) in silent.iter_mut().enumerate() {
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(!left.is_zero(), "connection {i} still open");
        c.set_read_timeout(Some(left)).expect("read timeout");
        let mut b = [0u8; 64];
        match c.read(&mut b) {
            Ok(0) => {}
            Err(e) if matches!(e.kind(), ErrorKind::ConnectionReset) => {}
            Ok(n) => panic!("connection {i} got {n} bytes: {:?}", &b[..n]),
            Err(e) => panic!("connection {i} was not closed: {e}"),
        }
    }
    assert_eq!(rejections(&s, "slow_peer"), 2000);
    others_are_served(&s);
}
