//! The rmcp peer (`ringmcp-peer-rmcp`) answers as the benchmark expects: initialize opens a
//! session, notifications/initialized is accepted, tools/call echo returns the text it was
//! given; all on one keep-alive connection, as the load generator uses it. Then the same
//! through `peers::start_with` (readiness, PID, kill on drop). Only std networking, every
//! wait bounded. The Python and TypeScript peers need PyPI and npm and are exercised by
//! `just bench-peers`, not here.

use ringmcp_bench::peers::{self, HttpResponse, Peer, StartOptions, PROTOCOL_VERSION};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_ringmcp-peer-rmcp");
const TIMEOUT: Duration = Duration::from_secs(10);

const INITIALIZE: &str = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"peers_smoke","version":"0"}}}"#;
const INITIALIZED: &str = r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#;
const ECHO: &str = r#"{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"echo","arguments":{"text":"héllo, \"peers\""}}}"#;

/// A port nothing listens on right now.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind an ephemeral port")
        .port()
}

/// Kills the child when the test ends, however it ends.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts the binary and waits (bounded) for its `listening on ADDR` line.
fn spawn_rmcp_peer(port: u16) -> (KillOnDrop, SocketAddr) {
    let mut child = Command::new(BIN)
        .args(["--listen", &format!("127.0.0.1:{port}"), "--threads", "1"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start ringmcp-peer-rmcp");
    let stdout = child.stdout.take().expect("piped stdout");
    let child = KillOnDrop(child);
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = BufReader::new(stdout).read_line(&mut line);
        let _ = tx.send(line);
    });
    let line = rx
        .recv_timeout(TIMEOUT)
        .expect("ringmcp-peer-rmcp printed nothing within the timeout");
    let addr = line
        .strip_prefix("listening on ")
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"));
    (child, addr)
}

/// Sends one request on `stream` and reads its whole response (bounded).
fn exchange(
    stream: &mut TcpStream,
    addr: SocketAddr,
    body: &str,
    session: Option<&str>,
) -> HttpResponse {
    let mut req = format!(
        "POST /mcp HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
         Accept: application/json, text/event-stream\r\nContent-Length: {}\r\n",
        body.len()
    );
    if let Some(id) = session {
        req.push_str(&format!(
            "Mcp-Session-Id: {id}\r\nMCP-Protocol-Version: {PROTOCOL_VERSION}\r\n"
        ));
    }
    req.push_str("\r\n");
    req.push_str(body);
    stream.write_all(req.as_bytes()).expect("send request");
    let deadline = Instant::now() + TIMEOUT;
    let mut raw = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        if let Some(resp) = HttpResponse::parse(&raw).expect("well-formed response") {
            return resp;
        }
        assert!(
            Instant::now() < deadline,
            "no complete response within {TIMEOUT:?}; got {:?}",
            String::from_utf8_lossy(&raw)
        );
        let n = stream.read(&mut buf).expect("read response");
        assert!(
            n > 0,
            "connection closed mid-response: {:?}",
            String::from_utf8_lossy(&raw)
        );
        raw.extend_from_slice(&buf[..n]);
    }
}

fn message(resp: &HttpResponse) -> serde_json::Value {
    let text = resp.jsonrpc_message().unwrap_or_else(|| {
        panic!(
            "no JSON-RPC message in {:?}",
            String::from_utf8_lossy(&resp.body)
        )
    });
    serde_json::from_str(text).unwrap_or_else(|e| panic!("bad JSON ({e}): {text}"))
}

#[test]
fn rmcp_peer_initializes_and_echoes_on_one_connection() {
    let (_child, addr) = spawn_rmcp_peer(free_port());
    let mut stream = TcpStream::connect_timeout(&addr, TIMEOUT).expect("connect");
    stream
        .set_read_timeout(Some(TIMEOUT))
        .expect("read timeout");
    stream
        .set_write_timeout(Some(TIMEOUT))
        .expect("write timeout");

    let init = exchange(&mut stream, addr, INITIALIZE, None);
    assert_eq!(init.status, 200, "initialize: {init:?}");
    let session = init
        .header("mcp-session-id")
        .expect("initialize opens a session")
        .to_string();
    let init = message(&init);
    assert_eq!(init["id"], 1);
    assert_eq!(init["result"]["serverInfo"]["name"], "rmcp-echo");
    assert!(
        init["result"]["capabilities"]["tools"].is_object(),
        "{init}"
    );

    let ack = exchange(&mut stream, addr, INITIALIZED, Some(&session));
    assert_eq!(ack.status, 202, "notifications/initialized: {ack:?}");

    let call = exchange(&mut stream, addr, ECHO, Some(&session));
    assert_eq!(call.status, 200, "tools/call: {call:?}");
    assert!(
        call.header("content-type")
            .is_some_and(|ct| ct.starts_with("text/event-stream")),
        "rmcp answers in a session with SSE: {call:?}"
    );
    let call = message(&call);
    assert_eq!(call["id"], 2);
    assert_eq!(
        call["result"]["content"],
        serde_json::json!([{"type": "text", "text": "héllo, \"peers\""}]),
        "{call}"
    );
    assert_ne!(call["result"]["isError"], true, "{call}");
}

fn work_dir(name: &str) -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("{name}-{}", std::process::id()))
}

#[test]
fn start_with_waits_for_rmcp_and_kills_it_on_drop() {
    let dir = work_dir("peers-smoke");
    let opts = StartOptions {
        rmcp_bin: PathBuf::from(BIN),
        threads: Some(1),
        ready_timeout: TIMEOUT,
        ..StartOptions::default()
    };
    // A free port can be taken again before the peer binds it (tests run in parallel and
    // the kernel hands ephemeral ports out again): take another one then.
    let (port, peer) = (0..5)
        .find_map(|_| {
            let port = free_port();
            match peers::start_with(Peer::Rmcp, port, &dir, &opts) {
                Ok(p) => Some((port, p)),
                Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => None,
                Err(e) => panic!("start the rmcp peer: {e:?}"),
            }
        })
        .expect("start the rmcp peer on a free port");
    let pid = peer.pid();
    let proc_dir = PathBuf::from(format!("/proc/{pid}"));
    assert!(proc_dir.exists(), "pid {pid} is running");
    assert_eq!(peer.addr(), SocketAddr::from(([127, 0, 0, 1], port)));
    assert!(
        peer.server_version().starts_with("3."),
        "serverInfo.version is rmcp's: {:?}",
        peer.server_version()
    );

    // A fresh session on the module's own one-shot client.
    let init = peers::http_request(peer.addr(), "POST", "/mcp", &[], Some(INITIALIZE), TIMEOUT)
        .expect("initialize");
    let session = init
        .header("mcp-session-id")
        .expect("session id")
        .to_string();
    let headers = [
        ("Mcp-Session-Id", session.as_str()),
        ("MCP-Protocol-Version", PROTOCOL_VERSION),
    ];
    let ack = peers::http_request(
        peer.addr(),
        "POST",
        "/mcp",
        &headers,
        Some(INITIALIZED),
        TIMEOUT,
    )
    .expect("initialized");
    assert_eq!(ack.status, 202);
    let call = peers::http_request(peer.addr(), "POST", "/mcp", &headers, Some(ECHO), TIMEOUT)
        .expect("tools/call");
    assert_eq!(
        message(&call)["result"]["content"][0]["text"],
        "héllo, \"peers\""
    );

    drop(peer);
    assert!(!proc_dir.exists(), "pid {pid} was killed and reaped");
    let _ = std::fs::remove_dir_all(&dir);
}
