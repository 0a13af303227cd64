//! The io_uring engine end to end against a tiny in-test MCP server (std threads, one per
//! connection) speaking newline-delimited JSON-RPC and Streamable HTTP: the handshake,
//! closed and open loop, and the counts a user reads in the report. No wall-clock
//! assertions: only what the schedule fixes exactly (an open loop of R req/s for D
//! seconds owes exactly R x D requests) and that nothing fails.

use ringmcp_bench::{run, RunConfig, Target};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::thread;

/// The `"id":N` of a request, as text.
fn id_of(msg: &str) -> Option<String> {
    let rest = msg.split(r#""id":"#).nth(1)?;
    Some(rest.chars().take_while(|c| c.is_ascii_digit()).collect())
}

fn reply(id: &str) -> String {
    format!(
        r#"{{"jsonrpc":"2.0","id":{id},"result":{{"content":[{{"type":"text","text":"ok"}}]}}}}"#
    )
}

fn serve_tcp(s: TcpStream) {
    let mut w = s.try_clone().unwrap();
    for line in BufReader::new(s).lines() {
        let Ok(line) = line else { return };
        if let Some(id) = id_of(&line) {
            if w.write_all((reply(&id) + "\n").as_bytes()).is_err() {
                return;
            }
        }
    }
}

fn serve_http(s: TcpStream) {
    let mut w = s.try_clone().unwrap();
    let mut r = BufReader::new(s);
    loop {
        let mut len = 0usize;
        let mut line = String::new();
        // Head.
        loop {
            line.clear();
            if r.read_line(&mut line).unwrap_or(0) == 0 {
                return;
            }
            if line == "\r\n" {
                break;
            }
            if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                len = v.trim().parse().unwrap();
            }
        }
        let mut body = vec![0u8; len];
        if r.read_exact(&mut body).is_err() {
            return;
        }
        let body = String::from_utf8(body).unwrap();
        let out = match id_of(&body) {
            None => "HTTP/1.1 202 Accepted\r\nContent-Length: 0\r\n\r\n".to_string(),
            Some(id) => {
                let b = reply(&id);
                format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nMcp-Session-Id: abc\r\nContent-Length: {}\r\n\r\n{b}",
                    b.len()
                )
            }
        };
        if w.write_all(out.as_bytes()).is_err() {
            return;
        }
    }
}

/// Starts a server on an ephemeral port; answers its address.
fn server(f: fn(TcpStream)) -> std::net::SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    thread::spawn(move || {
        for s in l.incoming().flatten() {
            thread::spawn(move || f(s));
        }
    });
    addr
}

fn config(url: String) -> RunConfig {
    RunConfig {
        target: Target::parse(&url).unwrap(),
        connections: 4,
        duration_ms: 300,
        warmup_ms: 100,
        threads: 2,
        ..RunConfig::default()
    }
}

#[test]
fn closed_loop_over_tcp_and_http() {
    let tcp = server(serve_tcp);
    let http = server(serve_http);
    for url in [format!("tcp://{tcp}"), format!("http://{http}/mcp")] {
        let r = run(&config(url.clone())).unwrap();
        assert!(r.ok > 0, "{url}: {}", r.render());
        assert_eq!(r.errors_total, 0, "{url}: {}", r.render());
        assert_eq!(r.conns.made, 4, "{url}");
        assert_eq!(r.conns.failed, 0, "{url}");
        assert_eq!(r.topology.threads_per_process, 2);
        assert!(r.latency.count > 0);
        assert!(r.hgrm().unwrap().contains("#[Max"));
    }
}

#[test]
fn open_loop_sends_exactly_what_the_schedule_owes() {
    let tcp = server(serve_tcp);
    let mut cfg = config(format!("tcp://{tcp}"));
    cfg.rate = Some(200.0);
    cfg.duration_ms = 500;
    let r = run(&cfg).unwrap();
    // 200/s for 0.5 s: 100 requests, all answered.
    assert_eq!(r.sent, 100, "{}", r.render());
    assert_eq!(r.ok, 100, "{}", r.render());
    assert_eq!(r.errors_total, 0);
    assert!(r.send_lag.is_some());
}

#[test]
fn refused_connections_are_counted() {
    // A port nothing listens on.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut cfg = config(format!("tcp://127.0.0.1:{port}"));
    cfg.connections = 2;
    let r = run(&cfg).unwrap();
    assert_eq!(r.conns.made, 0);
    assert!(r.conns.failed >= 2);
    assert!(
        r.errors.contains_key("connect:ECONNREFUSED"),
        "{:?}",
        r.errors
    );
}

#[test]
fn worker_processes_merge_into_one_report() {
    let tcp = server(serve_tcp);
    let mut cfg = config(format!("tcp://{tcp}"));
    cfg.processes = 2;
    cfg.threads = 2;
    cfg.connections = 6;
    cfg.rate = Some(300.0);
    cfg.worker_exe = Some(env!("CARGO_BIN_EXE_ringmcp-load").into());
    let r = run(&cfg).unwrap();
    assert_eq!(r.topology.processes, 2);
    assert_eq!(r.conns.made, 6, "{}", r.render());
    // 300/s for 0.3 s over both processes.
    assert_eq!(r.sent, 90, "{}", r.render());
    assert_eq!(r.ok, 90, "{}", r.render());
    assert_eq!(r.latency.count, 90);
}
