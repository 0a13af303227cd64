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
        let Some(body) = read_http_request(&mut r) else {
            return;
        };
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

/// ringmcp's answer to a connection over `connections_per_shard_max`.
const REFUSAL_LINE: &str = r#"{"jsonrpc":"2.0","id":null,"error":{"code":-32001,"message":"connection limit reached","data":{"reason":"connections_per_shard","retryAfterMs":1000}}}"#;

/// Answers every call over TCP, OK for even ids and -32005 (a rate limit) for odd ones.
fn serve_tcp_shedding(s: TcpStream) {
    let mut w = s.try_clone().unwrap();
    for line in BufReader::new(s).lines() {
        let Ok(line) = line else { return };
        let Some(id) = id_of(&line) else { continue };
        let out = if id.parse::<u64>().unwrap() % 2 == 1 {
            format!(
                r#"{{"jsonrpc":"2.0","id":{id},"error":{{"code":-32005,"message":"rate","data":{{"reason":"shard_message_rate","retryAfterMs":1}}}}}}"#
            )
        } else {
            reply(&id)
        };
        if w.write_all((out + "\n").as_bytes()).is_err() {
            return;
        }
    }
}

/// Reads one request (a line, or an HTTP head and its body), so that closing afterwards
/// sends a FIN rather than a reset.
fn read_one_request(r: &mut BufReader<TcpStream>, http: bool) {
    if http {
        let _ = read_http_request(r);
    } else {
        let _ = r.read_line(&mut String::new());
    }
}

/// Reads one HTTP request's head and body: the body, or `None` when the stream ends first.
fn read_http_request(r: &mut BufReader<TcpStream>) -> Option<Vec<u8>> {
    let mut line = String::new();
    let mut len = 0usize;
    loop {
        line.clear();
        if r.read_line(&mut line).unwrap_or(0) == 0 {
            return None;
        }
        if line == "\r\n" {
            break;
        }
        if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
            len = v.trim().parse().unwrap();
        }
    }
    let mut body = vec![0u8; len];
    r.read_exact(&mut body).ok()?;
    Some(body)
}

/// A server that admits its first `admit` connections (served by `serve`) and refuses
/// every later one as ringmcp does past `connections_per_shard_max`: TCP, one JSON-RPC
/// error line with `data.reason`; HTTP, 503 with Retry-After; then it closes.
fn capped_server(admit: usize, http: bool, serve: fn(TcpStream)) -> std::net::SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    thread::spawn(move || {
        for (i, s) in l.incoming().flatten().enumerate() {
            if i < admit {
                thread::spawn(move || serve(s));
                continue;
            }
            thread::spawn(move || {
                let mut w = s.try_clone().unwrap();
                read_one_request(&mut BufReader::new(s), http);
                let answer = if http {
                    "HTTP/1.1 503 Service Unavailable\r\nRetry-After: 1\r\nConnection: close\r\nContent-Length: 0\r\n\r\n".to_string()
                } else {
                    format!("{REFUSAL_LINE}\n")
                };
                let _ = w.write_all(answer.as_bytes());
            });
        }
    });
    addr
}

#[test]
fn refused_connections_leave_the_run_and_every_request_is_accounted_for() {
    for (url, label, serve) in [
        ("tcp", "jsonrpc:-32001", serve_tcp_shedding as fn(TcpStream)),
        ("http", "http:503", serve_http as fn(TcpStream)),
    ] {
        let http = url == "http";
        let addr = capped_server(2, http, serve);
        let path = if http { "/mcp" } else { "" };
        let mut cfg = config(format!("{url}://{addr}{path}"));
        cfg.connections = 6;
        cfg.rate = Some(300.0);
        cfg.duration_ms = 500;
        cfg.drop_refused = true;
        let r = run(&cfg).unwrap();
        // Two admitted; four refused once each and never reopened.
        assert_eq!(r.conns.made, 2, "{url}: {}", r.render());
        assert_eq!(
            r.conns.refused.get(label),
            Some(&4),
            "{url}: {}",
            r.render()
        );
        assert_eq!(r.conns.failed, 4, "{url}: {}", r.render());
        // 300/s for 0.5 s = 150 slots, 25 per connection: the refused connections' 100
        // are withdrawn, the admitted ones' 50 offered; no refusal is an error.
        let offered: u64 = r.steps.iter().map(|s| s.sent + s.unsent).sum();
        let withdrawn: u64 = r.steps.iter().map(|s| s.withdrawn).sum();
        assert_eq!((offered, withdrawn), (50, 100), "{url}: {}", r.render());
        assert!(!r.errors.contains_key(label), "{url}: {:?}", r.errors);
        // Every offered request ends exactly once: OK or one of the request outcomes.
        for s in &r.steps {
            let ended: u64 = s.ok + s.request_errors.values().sum::<u64>();
            assert_eq!(s.sent + s.unsent, ended, "{url}: {s:?}");
        }
        if http {
            assert_eq!(r.errors_total, 0, "{url}: {:?}", r.errors);
        } else {
            // The shedding server answers half of the calls with -32005: explicit
            // answers, counted as requests, never lost.
            let shed: u64 = r
                .steps
                .iter()
                .map(|s| s.request_errors["jsonrpc:-32005"])
                .sum();
            assert!(shed > 0);
            assert_eq!(r.errors.len(), 1, "{url}: {:?}", r.errors);
            assert_eq!(r.errors["jsonrpc:-32005"], shed);
            assert_eq!(r.ok + shed, 50, "{url}: {}", r.render());
        }

        // Without --drop-refused a refused connection is an error and is reopened.
        cfg.drop_refused = false;
        let addr = capped_server(2, http, serve);
        cfg.target = Target::parse(&format!("{url}://{addr}{path}")).unwrap();
        let r = run(&cfg).unwrap();
        let refused = r.conns.refused.get(label).copied().unwrap_or(0);
        assert!(refused > 4, "{url}: {}", r.render());
        assert!(
            r.errors.get(label).copied().unwrap_or(0) > 0,
            "{url}: {:?}",
            r.errors
        );
        assert_eq!(r.steps.iter().map(|s| s.withdrawn).sum::<u64>(), 0);
    }
}

/// Answers `initialize` (id 0) and nothing else.
fn serve_tcp_silent(s: TcpStream) {
    let mut w = s.try_clone().unwrap();
    for line in BufReader::new(s).lines() {
        let Ok(line) = line else { return };
        if id_of(&line).as_deref() == Some("0")
            && w.write_all((reply("0") + "\n").as_bytes()).is_err()
        {
            return;
        }
    }
}

#[test]
fn requests_a_full_window_holds_back_are_counted_never_dropped() {
    let tcp = server(serve_tcp_silent);
    let mut cfg = config(format!("tcp://{tcp}"));
    cfg.connections = 1;
    cfg.threads = 1;
    cfg.rate = Some(200.0);
    cfg.duration_ms = 500;
    cfg.pipeline = 2;
    cfg.timeout_ms = 200;
    cfg.warmup_ms = 0;
    let r = run(&cfg).unwrap();
    // 200/s for 0.5 s: 100 requests intended. Two at a time go out and time out; the
    // rest wait behind them and are still owed at the end: counted, not dropped.
    let s = &r.steps[0];
    assert_eq!(s.sent + s.unsent, 100, "{}", r.render());
    assert!(s.unsent > 0 && s.sent > 0, "{}", r.render());
    assert_eq!(s.ok, 0);
    assert!(s.request_errors["incomplete-at-end"] >= s.unsent);
    assert!(
        s.request_errors.contains_key("timeout"),
        "{:?}",
        s.request_errors
    );
    assert_eq!(
        s.request_errors.values().sum::<u64>(),
        100,
        "{:?}",
        s.request_errors
    );
}
