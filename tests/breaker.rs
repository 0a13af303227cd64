//! The circuit breakers and the tool-call timeout, end to end: a real `ringmcp serve`, the
//! demo server's `fail` tool failing on demand (`mode`: error, panic, sleep, ok), small
//! thresholds set with `--set`. Breakers are per shard, so every test that counts on one
//! breaker runs its calls over one connection (one shard). Waits for an open breaker are
//! taken from its own `retryAfterMs`, and calls that must find it open come right after it
//! opened, far inside `open_ms`.

mod common;

use common::http::{long_task, Http, McpSession};
use common::*;
use serde_json::{json, Value};
use std::time::Duration;

/// -32007: the breaker of the server or the tool is open.
const CIRCUIT_OPEN: i64 = -32007;
/// -32008: the tool call ran past its timeout.
const TOOL_TIMEOUT: i64 = -32008;
const INTERNAL_ERROR: i64 = -32603;

/// A breaker opens after 4 calls of which half failed, stays open 3 s, then lets one probe
/// through.
const BREAKER: [&str; 10] = [
    "--set",
    "breaker.min_calls=4",
    "--set",
    "breaker.error_ratio=0.5",
    "--set",
    "breaker.open_ms=3000",
    "--set",
    "breaker.half_open_probes=1",
    "--set",
    "breaker.window_ms=600000",
];

fn fail(c: &mut Client, mode: &str) -> Value {
    let id = c.send_request(
        "tools/call",
        json!({"name": "fail", "arguments": {"mode": mode}}),
    );
    c.response(&json!(id))
}

fn echo(c: &mut Client) -> Value {
    let id = c.send_request(
        "tools/call",
        json!({"name": "echo", "arguments": {"text": "hi"}}),
    );
    c.response(&json!(id))
}

/// Checks a -32007 answer from the breaker of `scope` ("server" or "tool"); returns its
/// `retryAfterMs`.
fn assert_open(resp: &Value, scope: &str) -> u64 {
    assert_eq!(error_code(resp), Some(CIRCUIT_OPEN), "{resp}");
    let data = &resp["error"]["data"];
    assert_eq!(data["scope"], scope, "{resp}");
    assert_eq!(data["server"], "demo", "{resp}");
    let retry = data["retryAfterMs"]
        .as_u64()
        .unwrap_or_else(|| panic!("no retryAfterMs in {resp}"));
    assert!((1..=3000).contains(&retry), "{resp}");
    retry
}

/// Waits until an open breaker that said `retry_after_ms` lets a probe through.
fn wait_out(retry_after_ms: u64) {
    std::thread::sleep(Duration::from_millis(retry_after_ms + 50));
}

fn ok_text(resp: &Value) -> String {
    assert!(resp.get("error").is_none(), "{resp}");
    text(&resp["result"])
}

#[test]
fn a_failing_tool_opens_its_breaker_while_the_other_tools_work_then_a_probe_closes_it() {
    let s = Server::start(1, &BREAKER);
    let (mut c, _) = s.session(LATEST);
    // Tool results with isError: true are the tool's answers, not failures: ten of them
    // (past min_calls, all "failed" if they counted) leave the breakers closed.
    for _ in 0..10 {
        let r = fail(&mut c, "result");
        assert_eq!(r["result"]["isError"], true, "{r}");
    }
    for _ in 0..6 {
        assert_eq!(ok_text(&echo(&mut c)), "hi");
    }
    // They count as served calls, though: fail's breaker opens when failures reach half of
    // its calls, at the tenth.
    for _ in 0..9 {
        assert_eq!(error_code(&fail(&mut c, "error")), Some(INTERNAL_ERROR));
    }
    assert_eq!(
        fail(&mut c, "result")["result"]["isError"],
        true,
        "9 failures of 19 calls: still closed"
    );
    for _ in 0..2 {
        assert_eq!(error_code(&fail(&mut c, "error")), Some(INTERNAL_ERROR));
    }
    // 11 of 22 fail calls failed: its breaker is open; the server's saw 11 of 28 calls and
    // stays closed.
    let r = fail(&mut c, "ok");
    let retry = assert_open(&r, "tool");
    assert_eq!(r["error"]["data"]["tool"], "fail", "{r}");
    assert_eq!(ok_text(&echo(&mut c)), "hi", "another tool still works");
    let (mut other, _) = s.session("2025-03-26");
    assert_open(&fail(&mut other, "ok"), "tool");
    assert_eq!(ok_text(&echo(&mut other)), "hi");
    assert_eq!(rejections(&s, "circuit_open"), 2);

    wait_out(retry);
    // Half-open: the probe succeeds and the breaker closes, with an empty window: three
    // failures (below min_calls) do not open it again.
    assert_eq!(ok_text(&fail(&mut c, "ok")), "did not fail, as asked");
    for _ in 0..3 {
        assert_eq!(error_code(&fail(&mut c, "error")), Some(INTERNAL_ERROR));
    }
    assert_eq!(ok_text(&fail(&mut c, "ok")), "did not fail, as asked");
    assert!(
        s.stderr()
            .contains("circuit breaker opened for tool fail of server demo"),
        "{}",
        s.stderr()
    );
}

#[test]
fn when_every_call_fails_the_server_breaker_refuses_every_tool_and_a_failed_probe_reopens_it() {
    let s = Server::start(1, &BREAKER);
    let (mut c, _) = s.session(LATEST);
    for _ in 0..4 {
        assert_eq!(error_code(&fail(&mut c, "panic")), Some(INTERNAL_ERROR));
    }
    let retry = assert_open(&echo(&mut c), "server");
    assert_open(&fail(&mut c, "ok"), "server");
    assert!(s.stderr().contains("panicked"), "{}", s.stderr());

    wait_out(retry);
    // Both breakers are half-open; the probe fails: both open again.
    assert_eq!(error_code(&fail(&mut c, "error")), Some(INTERNAL_ERROR));
    let retry = assert_open(&echo(&mut c), "server");
    assert!(s.stderr().contains("reopened"), "{}", s.stderr());

    wait_out(retry);
    // The server's probe (echo) succeeds: the server's breaker closes, the tool's is still
    // half-open, and its own probe closes it.
    assert_eq!(ok_text(&echo(&mut c)), "hi");
    assert_eq!(ok_text(&fail(&mut c, "ok")), "did not fail, as asked");
    assert_eq!(ok_text(&echo(&mut c)), "hi");
    assert_eq!(ok_text(&fail(&mut c, "ok")), "did not fail, as asked");
}

#[test]
fn each_shard_trips_its_own_breakers() {
    let s = Server::start(2, &BREAKER);
    // One connection on each shard (the kernel spreads them; try until both are seen).
    let mut on: [Option<Client>; 2] = [None, None];
    for _ in 0..200 {
        let (c, init) = s.session(LATEST);
        let shard = init["_meta"]["ringmcp/shard"].as_u64().expect("shard") as usize;
        on[shard].get_or_insert(c);
        if on.iter().all(Option::is_some) {
            break;
        }
    }
    let [Some(mut a), Some(mut b)] = on else {
        panic!("200 connections all landed on one shard");
    };
    for _ in 0..4 {
        assert_eq!(error_code(&fail(&mut a, "error")), Some(INTERNAL_ERROR));
    }
    assert_open(&fail(&mut a, "ok"), "server");
    // The other shard's breakers saw none of it.
    assert_eq!(ok_text(&fail(&mut b, "ok")), "did not fail, as asked");
    assert_eq!(ok_text(&echo(&mut b)), "hi");
}

#[test]
fn a_call_past_its_timeout_gets_32008_and_progress_keeps_a_long_call_alive() {
    let s = Server::start(
        1,
        &[
            "--set",
            "limits.tool_call_timeout_ms=1000",
            "--set",
            "breaker.min_calls=1000",
        ],
    );
    let (mut c, _) = s.session(LATEST);
    let id = c.send_request(
        "tools/call",
        json!({"name": "fail", "arguments": {"mode": "sleep", "ms": 600000}}),
    );
    let r = c.response(&json!(id));
    assert_error(&r, &json!(id), TOOL_TIMEOUT);
    assert_eq!(r["error"]["data"], json!({"timeoutMs": 1000}), "{r}");
    assert_eq!(rejections(&s, "tool_timeout"), 1);
    // The connection goes on.
    assert_eq!(ok_text(&echo(&mut c)), "hi");
    // 25 steps of 100 ms: 2.5 s in all, far past the timeout, but never 1 s without a
    // progress report; with a progress token and without.
    let id = c.send_request(
        "tools/call",
        json!({"name": "long_task", "arguments": {"steps": 25, "interval_ms": 100},
               "_meta": {"progressToken": "p"}}),
    );
    let (resp, others) = c.response_with_others(&json!(id));
    assert_eq!(ok_text(&resp), "completed 25 steps");
    let progress = others
        .iter()
        .filter(|m| m["method"] == "notifications/progress")
        .count();
    assert_eq!(progress, 25);
    let r = c.tool("long_task", json!({"steps": 25, "interval_ms": 100}));
    assert_eq!(text(&r), "completed 25 steps");
    // A short sleep is not cut.
    assert_eq!(
        text(&c.tool("fail", json!({"mode": "sleep", "ms": 50}))),
        "slept 50 ms"
    );
    assert_eq!(rejections(&s, "tool_timeout"), 1);
}

#[test]
fn the_default_timeout_leaves_ordinary_long_tasks_alone_and_http_sees_32008() {
    // Defaults: a 60 s timeout; long_task with progress runs as before.
    let s = Server::start(1, &[]);
    let mut m = McpSession::initialize(s.http_port, "/mcp", LATEST);
    let mut conn = Http::connect(s.http_port);
    let (resp, progress) = m.request_on(&mut conn, "tools/call", long_task(10, 50, "t"));
    assert_eq!(text(&resp["result"]), "completed 10 steps");
    assert_eq!(progress.len(), 10);

    let s = Server::start(1, &["--set", "limits.tool_call_timeout_ms=500"]);
    let mut m = McpSession::initialize(s.http_port, "/mcp", LATEST);
    let (id, msg) = m.req(
        "tools/call",
        json!({"name": "sleep_ms", "arguments": {"ms": 600000}}),
    );
    let r = m.post(&msg);
    assert_eq!(r.status(), 200, "{r:?}");
    let resp = r.messages().pop().expect("an answer");
    assert_eq!(resp["id"], id, "{resp}");
    assert_eq!(error_code(&resp), Some(TOOL_TIMEOUT), "{resp}");
    assert_eq!(resp["error"]["data"]["timeoutMs"], 500, "{resp}");
}
