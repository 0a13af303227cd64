//! Wire-level tests of `ringmcp serve` over TCP: every method of the demo server, the
//! lifecycle, server-to-client requests, batches, malformed input, limits and shutdown.
//! Each test starts its own server process on its own port.

mod common;

use common::*;
use serde_json::{json, Value};
use std::collections::{BTreeSet, HashSet};
use std::time::{Duration, Instant};

const DEMO_TOOLS: [&str; 14] = [
    "echo",
    "add",
    "sleep_ms",
    "compute",
    "long_task",
    "increment_counter",
    "toggle_extra_tool",
    "log",
    "content_kinds",
    "fail",
    "panic",
    "sample",
    "elicit_name",
    "list_roots",
];

const PNG_1X1: &str =
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAQAAAC1HAwCAAAAC0lEQVR42mNkYAAAAAYAAjCB0C8AAAAASUVORK5CYII=";

fn server() -> Server {
    Server::start(1, &[])
}

fn set(kv: &str) -> [&str; 2] {
    ["--set", kv]
}

/// The given connection still answers, and so does a brand-new one.
fn assert_alive(server: &Server, c: &mut Client) {
    c.sync();
    let (mut other, _) = server.session(LATEST);
    assert_eq!(
        text(&other.tool("echo", json!({"text": "still here"}))),
        "still here"
    );
}

fn tool_by_name<'a>(tools: &'a Value, name: &str) -> &'a Value {
    tools
        .as_array()
        .expect("tools array")
        .iter()
        .find(|t| t["name"] == name)
        .unwrap_or_else(|| panic!("tool {name} not listed in {tools}"))
}

// ---------------------------------------------------------------------------------------
// Lifecycle
// ---------------------------------------------------------------------------------------

#[test]
fn initialize_negotiates_each_known_revision() {
    let s = server();
    let mut sessions = HashSet::new();
    for rev in REVISIONS {
        let (mut c, r) = s.session(rev);
        assert_eq!(r["protocolVersion"], rev, "{r}");
        assert_eq!(r["serverInfo"]["name"], "demo");
        assert!(r["serverInfo"]["version"].is_string());
        // Titles arrived in 2025-06-18.
        assert_eq!(
            r["serverInfo"].get("title").is_some(),
            rev >= "2025-06-18",
            "{rev}: {r}"
        );
        let caps = &r["capabilities"];
        assert_eq!(caps["tools"], json!({"listChanged": true}));
        assert_eq!(
            caps["resources"],
            json!({"subscribe": true, "listChanged": true})
        );
        assert_eq!(caps["prompts"], json!({"listChanged": true}));
        assert_eq!(caps["logging"], json!({}));
        assert_eq!(
            caps.get("completions").is_some(),
            rev >= "2025-03-26",
            "{rev}"
        );
        assert!(r["instructions"].as_str().is_some_and(|i| !i.is_empty()));
        assert_eq!(r["_meta"]["ringmcp/shard"], 0);
        let sid = r["_meta"]["ringmcp/session"].as_str().expect("session id");
        assert!(!sid.is_empty());
        assert!(sessions.insert(sid.to_string()), "session id reused: {sid}");
        c.sync();
    }
}

#[test]
fn initialize_with_unknown_revision_answers_the_latest() {
    let s = server();
    for asked in ["1999-01-01", "2026-07-28", "not-a-date"] {
        let (mut c, r) = s.session(asked);
        assert_eq!(r["protocolVersion"], LATEST, "asked {asked}");
        c.sync();
    }
}

#[test]
fn initialize_twice_is_an_invalid_request() {
    let s = server();
    let (mut c, _) = s.session("2025-06-18");
    let id = c.send_request(
        "initialize",
        json!({"protocolVersion": "2025-06-18", "capabilities": {}}),
    );
    let resp = c.response(&json!(id));
    assert_error(&resp, &json!(id), -32600);
    // The first session is untouched.
    assert_eq!(text(&c.tool("echo", json!({"text": "x"}))), "x");
}

#[test]
fn initialize_without_protocol_version_is_invalid_params() {
    let s = server();
    let mut c = s.connect();
    let id = c.send_request("initialize", json!({"capabilities": {}}));
    assert_error(&c.response(&json!(id)), &json!(id), -32602);
    let id = c.send_request("initialize", json!({"protocolVersion": 20250618}));
    assert_error(&c.response(&json!(id)), &json!(id), -32602);
    // Still uninitialized: a proper initialize works now.
    let r = c.initialize("2025-03-26");
    assert_eq!(r["protocolVersion"], "2025-03-26");
}

#[test]
fn ping_before_and_after_initialize() {
    let s = server();
    let mut c = s.connect();
    c.send_raw(b"{\"jsonrpc\":\"2.0\",\"id\":\"p1\",\"method\":\"ping\"}\n");
    assert_eq!(
        c.recv(),
        json!({"jsonrpc": "2.0", "id": "p1", "result": {}})
    );
    c.initialize(LATEST);
    c.send_raw(b"{\"jsonrpc\":\"2.0\",\"id\":7,\"method\":\"ping\",\"params\":{}}\n");
    assert_eq!(c.recv(), json!({"jsonrpc": "2.0", "id": 7, "result": {}}));
}

#[test]
fn request_before_initialize_is_an_invalid_request() {
    let s = server();
    let mut c = s.connect();
    for method in ["tools/list", "tools/call", "resources/read", "prompts/list"] {
        let id = c.send_request(method, json!({}));
        assert_error(&c.response(&json!(id)), &json!(id), -32600);
    }
    // Notifications before initialize are ignored silently; then initialize works.
    c.notify("notifications/initialized", json!({}));
    let r = c.initialize(LATEST);
    assert_eq!(r["protocolVersion"], LATEST);
    assert!(c.call("tools/list", json!({}))["tools"].is_array());
}

// ---------------------------------------------------------------------------------------
// tools/list and tools/call
// ---------------------------------------------------------------------------------------

#[test]
fn tools_list_shape_follows_the_revision() {
    let s = server();
    for rev in REVISIONS {
        let (mut c, _) = s.session(rev);
        let r = c.call("tools/list", json!({}));
        assert!(r.get("nextCursor").is_none(), "{r}");
        let tools = &r["tools"];
        let listed: BTreeSet<String> = names(tools, "name").into_iter().collect();
        let expected: BTreeSet<String> = DEMO_TOOLS.iter().map(|s| s.to_string()).collect();
        assert_eq!(listed, expected, "{rev}");
        for t in tools.as_array().unwrap() {
            assert_eq!(t["inputSchema"]["type"], "object", "{t}");
            assert!(t["description"].is_string(), "{t}");
        }
        let add = tool_by_name(tools, "add");
        let modern = rev >= "2025-06-18";
        assert_eq!(add.get("outputSchema").is_some(), modern, "{rev}: {add}");
        assert_eq!(add.get("title").is_some(), modern, "{rev}: {add}");
        assert_eq!(
            add.get("annotations").is_some(),
            rev >= "2025-03-26",
            "{rev}: {add}"
        );
        if modern {
            assert_eq!(add["outputSchema"]["properties"]["sum"]["type"], "number");
            assert_eq!(add["title"], "Add two numbers");
        }
    }
}

#[test]
fn tools_list_paginates_with_cursors() {
    let s = Server::start(1, &set("limits.page_size=3"));
    let (mut c, _) = s.session(LATEST);
    let mut all = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let params = match &cursor {
            Some(cur) => json!({"cursor": cur}),
            None => json!({}),
        };
        let r = c.call("tools/list", params);
        let page = names(&r["tools"], "name");
        assert!(!page.is_empty() && page.len() <= 3, "page {pages}: {r}");
        all.extend(page);
        pages += 1;
        assert!(pages <= 10, "too many pages");
        match r.get("nextCursor") {
            Some(Value::String(next)) => cursor = Some(next.clone()),
            None => break,
            Some(other) => panic!("nextCursor must be a string: {other}"),
        }
    }
    assert_eq!(pages, DEMO_TOOLS.len().div_ceil(3));
    let unique: BTreeSet<_> = all.iter().cloned().collect();
    assert_eq!(unique.len(), all.len(), "a tool listed twice: {all:?}");
    let expected: BTreeSet<String> = DEMO_TOOLS.iter().map(|s| s.to_string()).collect();
    assert_eq!(unique, expected);

    // Other lists page the same way.
    let r = c.call("resources/list", json!({}));
    assert_eq!(r["resources"].as_array().unwrap().len(), 3);
    assert!(r.get("nextCursor").is_none());
    let r = c.call("prompts/list", json!({}));
    assert_eq!(r["prompts"].as_array().unwrap().len(), 2);

    // Invalid cursors.
    for bad in [
        json!("nope"),
        json!("rmc1.zzz"),
        json!("rmc1.ffff"),
        json!(5),
        json!({}),
    ] {
        for method in [
            "tools/list",
            "resources/list",
            "prompts/list",
            "resources/templates/list",
        ] {
            let code = c.call_err(method, json!({"cursor": bad}));
            assert_eq!(code, -32602, "{method} with cursor {bad}");
        }
    }
}

#[test]
fn tools_call_echo() {
    let s = server();
    for rev in REVISIONS {
        let (mut c, _) = s.session(rev);
        let id = c.send_request(
            "tools/call",
            json!({"name": "echo", "arguments": {"text": "hello, wire"}}),
        );
        assert_eq!(
            c.recv(),
            json!({"jsonrpc": "2.0", "id": id, "result": {"content": [{"type": "text", "text": "hello, wire"}]}})
        );
    }
}

#[test]
fn echo_keeps_unicode_and_escapes_intact() {
    let s = server();
    let (mut c, _) = s.session(LATEST);
    for t in [
        "héllo wörld",
        "日本語のテキスト",
        "emoji 😀👍🏽",
        "quotes \" and \\ backslash",
        "control \u{0001}\t\n\r chars",
        "",
    ] {
        assert_eq!(text(&c.tool("echo", json!({"text": t}))), t);
    }
    // Escaped forms on the wire, including a surrogate pair.
    c.send_raw(
        br#"{"jsonrpc":"2.0","id":"u","method":"tools/call","params":{"name":"echo","arguments":{"text":"\u00e9\ud83d\ude00\n"}}}
"#,
    );
    let resp = c.recv();
    assert_eq!(resp["id"], "u");
    assert_eq!(text(&resp["result"]), "é😀\n");
}

#[test]
fn tools_call_add_has_structured_content_from_2025_06_18() {
    let s = server();
    for rev in REVISIONS {
        let (mut c, _) = s.session(rev);
        let r = c.tool("add", json!({"a": 2, "b": 3.5}));
        assert_eq!(text(&r), "5.5", "{rev}");
        assert!(r.get("isError").is_none(), "{r}");
        if rev >= "2025-06-18" {
            assert_eq!(
                r["structuredContent"]["sum"].as_f64(),
                Some(5.5),
                "{rev}: {r}"
            );
        } else {
            assert!(r.get("structuredContent").is_none(), "{rev}: {r}");
        }
        let r = c.tool("add", json!({"a": -1, "b": 1}));
        assert_eq!(text(&r), "0");
    }
}

#[test]
fn tools_call_sleep_ms() {
    let s = server();
    let (mut c, _) = s.session(LATEST);
    let r = c.tool("sleep_ms", json!({"ms": 30}));
    assert_eq!(text(&r), "slept 30 ms");
    // A sleeping request does not hold up the others on the same connection.
    let slow = c.send_request(
        "tools/call",
        json!({"name": "sleep_ms", "arguments": {"ms": 400}}),
    );
    let fast = c.send_request(
        "tools/call",
        json!({"name": "echo", "arguments": {"text": "first"}}),
    );
    let first = c.recv();
    assert_eq!(first["id"], fast, "{first}");
    let second = c.recv();
    assert_eq!(second["id"], slow, "{second}");
    assert_eq!(text(&second["result"]), "slept 400 ms");
}

#[test]
fn long_task_reports_increasing_progress_before_its_result() {
    let s = server();
    let (mut c, _) = s.session(LATEST);
    let id = c.send_request(
        "tools/call",
        json!({"name": "long_task", "arguments": {"steps": 5, "interval_ms": 10},
               "_meta": {"progressToken": "tok-1"}}),
    );
    let (resp, others) = c.response_with_others(&json!(id));
    assert_eq!(text(&resp["result"]), "completed 5 steps");
    assert_eq!(others.len(), 5, "{others:?}");
    let mut last = 0.0;
    for n in &others {
        assert_eq!(n["method"], "notifications/progress", "{n}");
        assert!(n.get("id").is_none(), "{n}");
        let p = &n["params"];
        assert_eq!(p["progressToken"], "tok-1");
        let progress = p["progress"].as_f64().expect("progress");
        assert!(progress > last, "progress not increasing: {others:?}");
        last = progress;
        assert_eq!(p["total"].as_f64(), Some(5.0));
        assert!(p["message"].is_string());
    }
    assert_eq!(last, 5.0);

    // A numeric token is echoed as a number; no token, no progress.
    let id = c.send_request(
        "tools/call",
        json!({"name": "long_task", "arguments": {"steps": 2, "interval_ms": 1},
               "_meta": {"progressToken": 42}}),
    );
    let (_, others) = c.response_with_others(&json!(id));
    assert_eq!(others.len(), 2);
    assert!(others.iter().all(|n| n["params"]["progressToken"] == 42));
    let id = c.send_request(
        "tools/call",
        json!({"name": "long_task", "arguments": {"steps": 3, "interval_ms": 1}}),
    );
    let (resp, others) = c.response_with_others(&json!(id));
    assert_eq!(text(&resp["result"]), "completed 3 steps");
    assert!(others.is_empty(), "progress without a token: {others:?}");
}

#[test]
fn progress_burst_does_not_disconnect_a_reading_client() {
    // With interval_ms 0 the handler sleeps for zero time between steps. A zero sleep must
    // still yield to the shard, or the writer never runs and the outbound queue
    // (outbound_queue_messages_max = 1024) overflows although the client reads everything.
    let s = server();
    let (mut c, _) = s.session(LATEST);
    let id = c.send_request(
        "tools/call",
        json!({"name": "long_task", "arguments": {"steps": 3000, "interval_ms": 0},
               "_meta": {"progressToken": "burst"}}),
    );
    let mut progress = 0;
    loop {
        match c.recv_timeout(READ_TIMEOUT) {
            Recv::Msg(m) if is_response(&m) && m["id"] == id => {
                assert_eq!(text(&m["result"]), "completed 3000 steps");
                break;
            }
            Recv::Msg(m) => {
                assert_eq!(m["method"], "notifications/progress", "{m}");
                progress += 1;
            }
            other => panic!("{other:?} after {progress} progress notifications"),
        }
    }
    assert_eq!(progress, 3000);
}

#[test]
fn content_kinds_follow_the_revision() {
    let s = server();
    for rev in ["2025-03-26", "2025-06-18", "2025-11-25"] {
        let (mut c, _) = s.session(rev);
        let r = c.tool("content_kinds", json!({}));
        let content = r["content"].as_array().expect("content");
        let kinds: Vec<&str> = content
            .iter()
            .map(|b| b["type"].as_str().unwrap())
            .collect();
        let modern = rev >= "2025-06-18";
        let last = if modern { "resource_link" } else { "text" };
        assert_eq!(kinds, ["text", "image", "audio", "resource", last], "{rev}");
        assert_eq!(content[1]["mimeType"], "image/png");
        assert_eq!(content[1]["data"], PNG_1X1);
        assert_eq!(content[2]["mimeType"], "audio/wav");
        assert!(content[2]["data"].as_str().is_some_and(|d| !d.is_empty()));
        assert_eq!(content[3]["resource"]["uri"], "demo://readme");
        assert_eq!(content[3]["resource"]["mimeType"], "text/plain");
        assert!(content[3]["resource"]["text"].is_string());
        if modern {
            assert_eq!(content[4]["uri"], "demo://counter");
            assert_eq!(content[4]["name"], "counter");
            assert_eq!(content[4]["mimeType"], "text/plain");
        } else {
            assert!(content[4]["text"]
                .as_str()
                .unwrap()
                .contains("demo://counter"));
        }
    }
    // 2024-11-05 knows neither audio nor resource links: the link is downgraded to text.
    let (mut c, _) = s.session("2024-11-05");
    let r = c.tool("content_kinds", json!({}));
    let content = r["content"].as_array().expect("content");
    assert_eq!(content.first().unwrap()["type"], "text");
    assert!(content.iter().all(|b| b["type"] != "resource_link"), "{r}");
    assert!(content
        .iter()
        .any(|b| b["type"] == "text" && b["text"].as_str().unwrap().contains("demo://counter")));
}

#[test]
fn content_kinds_has_no_audio_under_2024_11_05() {
    let s = server();
    let (mut c, _) = s.session("2024-11-05");
    let r = c.tool("content_kinds", json!({}));
    for b in r["content"].as_array().expect("content") {
        assert!(
            ["text", "image", "resource"].contains(&b["type"].as_str().unwrap()),
            "not a 2024-11-05 content type: {b}"
        );
    }
}

#[test]
fn fail_tool_is_an_error_result_not_a_protocol_error() {
    let s = server();
    let (mut c, _) = s.session(LATEST);
    let id = c.send_request("tools/call", json!({"name": "fail", "arguments": {}}));
    assert_eq!(
        c.recv(),
        json!({"jsonrpc": "2.0", "id": id, "result": {
            "content": [{"type": "text", "text": "this tool always fails"}], "isError": true}})
    );
}

#[test]
fn panicking_tool_is_an_internal_error_and_everything_keeps_working() {
    let s = server();
    let (mut a, _) = s.session(LATEST);
    let (mut b, _) = s.session("2025-03-26");
    for _ in 0..3 {
        let id = a.send_request("tools/call", json!({"name": "panic", "arguments": {}}));
        assert_error(&a.response(&json!(id)), &json!(id), -32603);
    }
    assert_eq!(text(&a.tool("echo", json!({"text": "a"}))), "a");
    assert_eq!(text(&b.tool("echo", json!({"text": "b"}))), "b");
    assert_alive(&s, &mut a);
    assert!(s.stderr().contains("panicked"));
}

#[test]
fn unknown_tool_is_invalid_params() {
    let s = server();
    let (mut c, _) = s.session(LATEST);
    for params in [
        json!({"name": "no_such_tool", "arguments": {}}),
        json!({"name": "extra_echo", "arguments": {"text": "hidden"}}),
        json!({"arguments": {}}),
        json!({"name": 5}),
        json!({"name": "echo", "arguments": [1]}),
    ] {
        let id = c.send_request("tools/call", params.clone());
        assert_error(&c.response(&json!(id)), &json!(id), -32602);
    }
    c.sync();
}

#[test]
fn wrong_argument_types_by_revision() {
    let s = server();
    let bad_calls = [
        json!({"name": "add", "arguments": {"a": "one", "b": 2}}),
        json!({"name": "add", "arguments": {"a": 1}}),
        json!({"name": "echo", "arguments": {"text": 5}}),
        json!({"name": "sleep_ms", "arguments": {"ms": -1}}),
        json!({"name": "log", "arguments": {"level": "loud", "message": "x"}}),
    ];
    for rev in ["2024-11-05", "2025-06-18"] {
        let (mut c, _) = s.session(rev);
        for call in &bad_calls {
            let id = c.send_request("tools/call", call.clone());
            let resp = c.response(&json!(id));
            assert_error(&resp, &json!(id), -32602);
        }
    }
    // Since 2025-11-25 a validation failure is a tool result with isError, so the model can
    // correct itself.
    let (mut c, _) = s.session("2025-11-25");
    for call in &bad_calls {
        let r = c.call("tools/call", call.clone());
        assert_eq!(r["isError"], true, "{call}: {r}");
        assert!(text(&r).contains("invalid arguments"), "{r}");
    }
}

#[test]
fn cancelled_request_is_never_answered_and_its_progress_stops() {
    let s = server();
    let (mut c, _) = s.session(LATEST);
    let id = c.send_request(
        "tools/call",
        json!({"name": "long_task", "arguments": {"steps": 500, "interval_ms": 20},
               "_meta": {"progressToken": "cancel-me"}}),
    );
    for _ in 0..2 {
        let n = c.wait_method("notifications/progress");
        assert_eq!(n["params"]["progressToken"], "cancel-me");
    }
    c.inbox.clear();
    c.notify(
        "notifications/cancelled",
        json!({"requestId": id, "reason": "test"}),
    );
    let cancelled_at = Instant::now();
    let ping = c.send_request("ping", json!({}));
    let (pong, before) = c.response_with_others(&json!(ping));
    assert_eq!(pong["result"], json!({}));
    // Anything after the pong was sent after the server processed the cancellation.
    let after = c.collect_for(Duration::from_millis(300).saturating_sub(cancelled_at.elapsed()));
    let after = [after, c.collect_for(Duration::from_millis(100))].concat();
    for m in before.iter().chain(&after) {
        assert!(
            !(is_response(m) && m["id"] == id),
            "the cancelled request was answered: {m}"
        );
    }
    let raced = before
        .iter()
        .filter(|m| m["method"] == "notifications/progress")
        .count();
    assert!(
        raced <= 1,
        "progress kept coming after the cancel: {before:?}"
    );
    assert!(
        after.is_empty(),
        "messages after the cancellation was processed: {after:?}"
    );
    // The session goes on, and the id may be reused.
    assert_eq!(text(&c.tool("echo", json!({"text": "after"}))), "after");
}

#[test]
fn cancellation_racing_a_step_is_never_answered() {
    // long_task checks for cancellation after each step: a cancellation processed in the
    // same turn as a step's timer used to let the handler finish and its answer go out.
    let s = server();
    let (mut c, _) = s.session(LATEST);
    for round in 0..60 {
        let interval = 2 + round % 3;
        let id = c.send_request(
            "tools/call",
            json!({"name": "long_task", "arguments": {"steps": 1000, "interval_ms": interval},
                   "_meta": {"progressToken": round}}),
        );
        c.wait_method("notifications/progress");
        // Aim the cancellation at the next step's timer, at varying offsets.
        std::thread::sleep(Duration::from_micros(interval * 1000 - (round % 8) * 125));
        c.notify("notifications/cancelled", json!({"requestId": id}));
        // Two round trips: the cancelled task has run (and ended) before the second one.
        c.sync();
        c.sync();
        for m in c.inbox.drain(..) {
            assert!(
                m["method"] == "notifications/progress",
                "round {round}: the cancelled request was answered: {m}"
            );
        }
        c.sync();
        assert!(c.inbox.is_empty(), "round {round}: {:?}", c.inbox);
    }
}

#[test]
fn cancellation_is_per_session_and_unknown_ids_are_ignored() {
    let s = server();
    let (mut a, _) = s.session(LATEST);
    let (mut b, _) = s.session(LATEST);
    let task = json!({"name": "long_task", "arguments": {"steps": 3, "interval_ms": 30}});
    let id_a = a.send_request("tools/call", task.clone());
    let id_b = b.send_request("tools/call", task);
    assert_eq!(id_a, id_b, "both sessions use the same request id");
    // Cancelling on `a` leaves `b`'s request alone; cancelling unknown ids does nothing.
    a.notify("notifications/cancelled", json!({"requestId": id_a}));
    b.notify("notifications/cancelled", json!({"requestId": 999}));
    b.notify("notifications/cancelled", json!({"requestId": "nope"}));
    b.notify("notifications/cancelled", json!({}));
    let resp = b.response(&json!(id_b));
    assert_eq!(text(&resp["result"]), "completed 3 steps");
    // Long enough for `a`'s task to have finished had it not been cancelled.
    let late = a.collect_for(Duration::from_millis(300));
    assert!(late.is_empty(), "{late:?}");
    a.sync();
}

// ---------------------------------------------------------------------------------------
// Resources
// ---------------------------------------------------------------------------------------

#[test]
fn resources_list_templates_and_read() {
    let s = server();
    let (mut c, _) = s.session(LATEST);
    let r = c.call("resources/list", json!({}));
    let res = r["resources"].as_array().expect("resources");
    let uris: Vec<&str> = res.iter().map(|r| r["uri"].as_str().unwrap()).collect();
    assert_eq!(uris, ["demo://counter", "demo://readme", "demo://logo"]);
    assert_eq!(res[0]["name"], "counter");
    assert_eq!(res[0]["mimeType"], "text/plain");
    assert_eq!(res[2]["mimeType"], "image/png");

    let r = c.call("resources/templates/list", json!({}));
    let t = r["resourceTemplates"].as_array().expect("templates");
    assert_eq!(t.len(), 1);
    assert_eq!(t[0]["uriTemplate"], "demo://items/{id}");
    assert_eq!(t[0]["name"], "item");
    assert_eq!(t[0]["mimeType"], "application/json");

    let r = c.call("resources/read", json!({"uri": "demo://counter"}));
    assert_eq!(
        r,
        json!({"contents": [{"uri": "demo://counter", "mimeType": "text/plain", "text": "0"}]})
    );
    let r = c.call("resources/read", json!({"uri": "demo://readme"}));
    assert!(r["contents"][0]["text"]
        .as_str()
        .unwrap()
        .starts_with("ringmcp demo server"));
    let r = c.call("resources/read", json!({"uri": "demo://logo"}));
    assert_eq!(
        r,
        json!({"contents": [{"uri": "demo://logo", "mimeType": "image/png", "blob": PNG_1X1}]})
    );
    let r = c.call("resources/read", json!({"uri": "demo://items/alpha"}));
    let item = &r["contents"][0];
    assert_eq!(item["uri"], "demo://items/alpha");
    assert_eq!(item["mimeType"], "application/json");
    let body: Value = serde_json::from_str(item["text"].as_str().unwrap()).unwrap();
    assert_eq!(body, json!({"id": "alpha", "name": "item alpha"}));

    for uri in [
        "demo://nope",
        "demo://items/",
        "demo://items/a/b",
        "other://counter",
    ] {
        let id = c.send_request("resources/read", json!({"uri": uri}));
        let resp = c.response(&json!(id));
        assert_error(&resp, &json!(id), -32002);
        assert_eq!(resp["error"]["data"]["uri"], uri);
    }
    assert_eq!(c.call_err("resources/read", json!({})), -32602);
    assert_eq!(c.call_err("resources/read", json!({"uri": 3})), -32602);
    assert_eq!(
        c.call_err("resources/subscribe", json!({"uri": "demo://nope"})),
        -32002
    );
}

#[test]
fn resource_subscription_notifies_until_unsubscribed() {
    let s = server();
    let (mut sub, _) = s.session(LATEST);
    let (mut other, _) = s.session("2025-03-26");
    assert_eq!(
        sub.call("resources/subscribe", json!({"uri": "demo://counter"})),
        json!({})
    );
    // The subscriber's own increment.
    let r = sub.tool("increment_counter", json!({}));
    assert_eq!(text(&r), "1");
    assert_eq!(r["structuredContent"], json!({"value": 1}));
    let n = sub.wait_method("notifications/resources/updated");
    assert_eq!(
        n,
        json!({"jsonrpc": "2.0", "method": "notifications/resources/updated", "params": {"uri": "demo://counter"}})
    );
    // Someone else's increment.
    let r = other.tool("increment_counter", json!({"by": 5}));
    assert_eq!(text(&r), "6");
    assert!(r.get("structuredContent").is_none());
    let n = sub.wait_method("notifications/resources/updated");
    assert_eq!(n["params"]["uri"], "demo://counter");
    // The non-subscriber heard nothing.
    other.sync();
    assert!(
        other
            .take_method("notifications/resources/updated")
            .is_empty(),
        "a non-subscriber was notified"
    );
    let r = sub.call("resources/read", json!({"uri": "demo://counter"}));
    assert_eq!(r["contents"][0]["text"], "6");

    // Subscribing twice is harmless; unsubscribing stops the updates.
    sub.call("resources/subscribe", json!({"uri": "demo://counter"}));
    assert_eq!(
        sub.call("resources/unsubscribe", json!({"uri": "demo://counter"})),
        json!({})
    );
    other.tool("increment_counter", json!({}));
    // With one shard the update (if any) is queued before `other` gets its answer, so a
    // ping round trip on `sub` would bring it in.
    sub.sync();
    assert!(
        sub.take_method("notifications/resources/updated")
            .is_empty(),
        "updates after unsubscribe"
    );
    // Unsubscribing from something never subscribed is fine.
    assert_eq!(
        sub.call("resources/unsubscribe", json!({"uri": "demo://readme"})),
        json!({})
    );
}

// ---------------------------------------------------------------------------------------
// Prompts
// ---------------------------------------------------------------------------------------

#[test]
fn prompts_list_and_get() {
    let s = server();
    let (mut c, _) = s.session(LATEST);
    let r = c.call("prompts/list", json!({}));
    let prompts = r["prompts"].as_array().expect("prompts");
    assert_eq!(names(&r["prompts"], "name"), ["greet", "summarize"]);
    assert_eq!(
        prompts[0]["arguments"],
        json!([
            {"name": "name", "description": "Who to greet", "required": true},
            {"name": "style", "description": "casual, formal or pirate", "required": false}
        ])
    );

    let r = c.call(
        "prompts/get",
        json!({"name": "greet", "arguments": {"name": "Ada", "style": "pirate"}}),
    );
    assert_eq!(
        r,
        json!({"description": "A pirate greeting", "messages": [
            {"role": "user", "content": {"type": "text", "text": "Please greet Ada like a pirate."}}]})
    );
    let r = c.call(
        "prompts/get",
        json!({"name": "greet", "arguments": {"name": "Bo"}}),
    );
    assert_eq!(r["messages"][0]["content"]["text"], "Please say hi to Bo.");
    let r = c.call(
        "prompts/get",
        json!({"name": "summarize", "arguments": {"text": "abc"}}),
    );
    let msgs = r["messages"].as_array().unwrap();
    assert_eq!(msgs.len(), 2);
    assert_eq!(msgs[0]["content"]["text"], "Summarize this:\nabc");
    assert_eq!(msgs[1]["content"]["type"], "resource");
    assert_eq!(msgs[1]["content"]["resource"]["uri"], "demo://readme");

    for params in [
        json!({"name": "greet", "arguments": {"style": "formal"}}),
        json!({"name": "greet"}),
        json!({"name": "greet", "arguments": {"name": 5}}),
        json!({"name": "greet", "arguments": "Ada"}),
        json!({"name": "no_such_prompt", "arguments": {}}),
        json!({}),
    ] {
        let id = c.send_request("prompts/get", params);
        assert_error(&c.response(&json!(id)), &json!(id), -32602);
    }
}

// ---------------------------------------------------------------------------------------
// Logging and completion
// ---------------------------------------------------------------------------------------

#[test]
fn logging_set_level_filters_messages() {
    let s = server();
    let (mut c, _) = s.session(LATEST);
    for bad in [json!({"level": "verbose"}), json!({"level": 3}), json!({})] {
        let id = c.send_request("logging/setLevel", bad);
        assert_error(&c.response(&json!(id)), &json!(id), -32602);
    }
    // Default: everything passes.
    let id = c.send_request(
        "tools/call",
        json!({"name": "log", "arguments": {"level": "info", "message": "hello log"}}),
    );
    let (resp, others) = c.response_with_others(&json!(id));
    assert_eq!(text(&resp["result"]), "logged");
    assert_eq!(
        others,
        vec![json!({"jsonrpc": "2.0", "method": "notifications/message",
                     "params": {"level": "info", "logger": "demo", "data": "hello log"}})]
    );

    assert_eq!(
        c.call("logging/setLevel", json!({"level": "error"})),
        json!({})
    );
    for (level, passes) in [
        ("debug", false),
        ("info", false),
        ("warning", false),
        ("error", true),
        ("critical", true),
        ("emergency", true),
    ] {
        let id = c.send_request(
            "tools/call",
            json!({"name": "log", "arguments": {"level": level, "message": format!("at {level}")}}),
        );
        let (resp, others) = c.response_with_others(&json!(id));
        assert_eq!(text(&resp["result"]), "logged");
        if passes {
            assert_eq!(others.len(), 1, "{level}: {others:?}");
            assert_eq!(others[0]["method"], "notifications/message");
            assert_eq!(others[0]["params"]["level"], level);
            assert_eq!(others[0]["params"]["data"], format!("at {level}"));
        } else {
            assert!(others.is_empty(), "{level} passed the filter: {others:?}");
        }
    }
}

#[test]
fn completion_for_prompt_and_template_arguments() {
    let s = server();
    let (mut c, _) = s.session(LATEST);
    let complete = |c: &mut Client, reference: Value, name: &str, value: &str| {
        c.call(
            "completion/complete",
            json!({"ref": reference, "argument": {"name": name, "value": value}}),
        )
    };
    let greet = json!({"type": "ref/prompt", "name": "greet"});
    assert_eq!(
        complete(&mut c, greet.clone(), "style", "f"),
        json!({"completion": {"values": ["formal"], "total": 1, "hasMore": false}})
    );
    assert_eq!(
        complete(&mut c, greet.clone(), "style", "")["completion"]["values"],
        json!(["casual", "formal", "pirate"])
    );
    assert_eq!(
        complete(&mut c, greet.clone(), "style", "zzz")["completion"],
        json!({"values": [], "total": 0, "hasMore": false})
    );
    assert_eq!(
        complete(&mut c, greet.clone(), "name", "a")["completion"]["values"],
        json!(["Ada", "Alan"])
    );
    let items = json!({"type": "ref/resource", "uri": "demo://items/{id}"});
    assert_eq!(
        complete(&mut c, items.clone(), "id", "g"),
        json!({"completion": {"values": ["gamma"], "total": 1, "hasMore": false}})
    );
    assert_eq!(
        complete(&mut c, items.clone(), "id", "")["completion"]["total"],
        5
    );
    for params in [
        json!({"ref": {"type": "ref/prompt", "name": "nope"}, "argument": {"name": "x", "value": ""}}),
        json!({"ref": greet, "argument": {"name": "colour", "value": ""}}),
        json!({"ref": {"type": "ref/resource", "uri": "demo://nope/{x}"}, "argument": {"name": "x", "value": ""}}),
        json!({"ref": {"type": "ref/other"}, "argument": {"name": "x", "value": ""}}),
        json!({"ref": items, "argument": {"name": "id"}}),
        json!({"argument": {"name": "id", "value": ""}}),
    ] {
        let id = c.send_request("completion/complete", params);
        assert_error(&c.response(&json!(id)), &json!(id), -32602);
    }
}

// ---------------------------------------------------------------------------------------
// Server-to-client requests
// ---------------------------------------------------------------------------------------

fn client_with_all_capabilities(s: &Server) -> Client {
    let mut c = s.connect();
    c.initialize_with(
        "2025-06-18",
        json!({"sampling": {}, "elicitation": {}, "roots": {"listChanged": true}}),
    );
    c
}

/// Waits for the server's request `method`, checks its shape and returns it.
fn server_request(c: &mut Client, method: &str) -> Value {
    let req = c.wait_method(method);
    assert_eq!(req["jsonrpc"], "2.0");
    assert!(req["id"].is_string() || req["id"].is_i64(), "{req}");
    req
}

#[test]
fn sampling_request_round_trip() {
    let s = server();
    let mut c = client_with_all_capabilities(&s);
    let id = c.send_request(
        "tools/call",
        json!({"name": "sample", "arguments": {"prompt": "say hi", "max_tokens": 7}}),
    );
    let req = server_request(&mut c, "sampling/createMessage");
    assert_eq!(
        req["params"],
        json!({"messages": [{"role": "user", "content": {"type": "text", "text": "say hi"}}], "maxTokens": 7})
    );
    let answer = json!({"role": "assistant", "content": {"type": "text", "text": "hi there"},
                        "model": "test-model", "stopReason": "endTurn"});
    c.send(&json!({"jsonrpc": "2.0", "id": req["id"], "result": answer}));
    let resp = c.response(&json!(id));
    assert_eq!(text(&resp["result"]), "the model said: hi there");
    assert_eq!(resp["result"]["structuredContent"], answer);
}

#[test]
fn elicitation_request_round_trip() {
    let s = server();
    let mut c = client_with_all_capabilities(&s);
    let id = c.send_request(
        "tools/call",
        json!({"name": "elicit_name", "arguments": {}}),
    );
    let req = server_request(&mut c, "elicitation/create");
    assert_eq!(req["params"]["message"], "What is your name?");
    assert_eq!(req["params"]["requestedSchema"]["type"], "object");
    c.send(&json!({"jsonrpc": "2.0", "id": req["id"],
                   "result": {"action": "accept", "content": {"name": "Grace"}}}));
    assert_eq!(text(&c.response(&json!(id))["result"]), "hello, Grace");

    let id = c.send_request(
        "tools/call",
        json!({"name": "elicit_name", "arguments": {}}),
    );
    let req = server_request(&mut c, "elicitation/create");
    c.send(&json!({"jsonrpc": "2.0", "id": req["id"], "result": {"action": "decline"}}));
    assert_eq!(
        text(&c.response(&json!(id))["result"]),
        "no name given (decline)"
    );

    // The client answers with an error: the tool fails with -32003.
    let id = c.send_request(
        "tools/call",
        json!({"name": "elicit_name", "arguments": {}}),
    );
    let req = server_request(&mut c, "elicitation/create");
    c.send(&json!({"jsonrpc": "2.0", "id": req["id"],
                   "error": {"code": -1, "message": "user went away"}}));
    assert_error(&c.response(&json!(id)), &json!(id), -32003);
}

#[test]
fn elicitation_needs_revision_2025_06_18() {
    let s = server();
    let mut c = s.connect();
    c.initialize_with("2025-03-26", json!({"elicitation": {}, "sampling": {}}));
    let id = c.send_request(
        "tools/call",
        json!({"name": "elicit_name", "arguments": {}}),
    );
    // Refused without sending elicitation/create: the next message is the error itself.
    assert_error(&c.recv(), &json!(id), -32003);
}

#[test]
fn roots_request_round_trip() {
    let s = server();
    let mut c = client_with_all_capabilities(&s);
    let id = c.send_request("tools/call", json!({"name": "list_roots", "arguments": {}}));
    let req = server_request(&mut c, "roots/list");
    let roots = json!({"roots": [{"uri": "file:///a", "name": "a"}, {"uri": "file:///b"}]});
    c.send(&json!({"jsonrpc": "2.0", "id": req["id"], "result": roots}));
    let resp = c.response(&json!(id));
    assert_eq!(text(&resp["result"]), "2 roots");
    assert_eq!(resp["result"]["structuredContent"], roots);
}

#[test]
fn server_requests_need_the_client_capability() {
    let s = server();
    let (mut c, _) = s.session("2025-06-18");
    for (tool, args) in [
        ("sample", json!({"prompt": "x"})),
        ("elicit_name", json!({})),
        ("list_roots", json!({})),
    ] {
        let id = c.send_request("tools/call", json!({"name": tool, "arguments": args}));
        let (resp, others) = c.response_with_others(&json!(id));
        assert_error(&resp, &json!(id), -32003);
        assert!(others.is_empty(), "a request was sent anyway: {others:?}");
    }
}

#[test]
fn unanswered_server_request_times_out() {
    let s = Server::start(1, &set("limits.client_request_timeout_ms=300"));
    let mut c = client_with_all_capabilities(&s);
    let id = c.send_request(
        "tools/call",
        json!({"name": "sample", "arguments": {"prompt": "x"}}),
    );
    let req = server_request(&mut c, "sampling/createMessage");
    let resp = c.response(&json!(id));
    assert_error(&resp, &json!(id), -32003);
    assert!(
        resp["error"]["message"]
            .as_str()
            .unwrap()
            .contains("did not answer"),
        "{resp}"
    );
    // A late answer is dropped quietly; the session goes on.
    c.send(
        &json!({"jsonrpc": "2.0", "id": req["id"], "result": {"role": "assistant",
        "content": {"type": "text", "text": "late"}, "model": "m"}}),
    );
    // And an answer to a request never made, too.
    c.send(&json!({"jsonrpc": "2.0", "id": "never-sent", "result": {}}));
    c.sync();
    assert!(c.inbox.is_empty(), "{:?}", c.inbox);
}

// ---------------------------------------------------------------------------------------
// list_changed
// ---------------------------------------------------------------------------------------

#[test]
fn list_changed_reaches_every_session() {
    let s = server();
    let (mut a, _) = s.session(LATEST);
    let (mut b, _) = s.session("2024-11-05");
    let mut uninitialized = s.connect();
    let listed = |c: &mut Client| names(&c.call("tools/list", json!({}))["tools"], "name");
    assert!(!listed(&mut a).contains(&"extra_echo".to_string()));

    assert_eq!(
        text(&a.tool("toggle_extra_tool", json!({}))),
        "extra_echo enabled"
    );
    for c in [&mut a, &mut b] {
        let n = c.wait_method("notifications/tools/list_changed");
        assert_eq!(
            n,
            json!({"jsonrpc": "2.0", "method": "notifications/tools/list_changed", "params": {}})
        );
        let tools = listed(c);
        assert!(tools.contains(&"extra_echo".to_string()), "{tools:?}");
        assert_eq!(text(&c.tool("extra_echo", json!({"text": "xx"}))), "xx");
    }
    // A connection that never initialized is not a session and hears nothing.
    uninitialized.sync();
    assert!(uninitialized.inbox.is_empty(), "{:?}", uninitialized.inbox);

    assert_eq!(
        text(&b.tool("toggle_extra_tool", json!({}))),
        "extra_echo disabled"
    );
    for c in [&mut a, &mut b] {
        c.wait_method("notifications/tools/list_changed");
        assert!(!listed(c).contains(&"extra_echo".to_string()));
        assert_eq!(
            c.call_err(
                "tools/call",
                json!({"name": "extra_echo", "arguments": {"text": "x"}})
            ),
            -32602
        );
    }
}

// ---------------------------------------------------------------------------------------
// Batches
// ---------------------------------------------------------------------------------------

#[test]
fn batch_is_answered_as_an_array_under_2025_03_26() {
    let s = server();
    let (mut c, _) = s.session("2025-03-26");
    c.send_raw(
        br#"[{"jsonrpc":"2.0","id":10,"method":"tools/call","params":{"name":"sleep_ms","arguments":{"ms":20}}},{"jsonrpc":"2.0","id":"b","method":"tools/call","params":{"name":"echo","arguments":{"text":"in a batch"}}},{"jsonrpc":"2.0","method":"notifications/initialized"}]
"#,
    );
    let resp = c.recv();
    let items = resp
        .as_array()
        .unwrap_or_else(|| panic!("not an array: {resp}"));
    assert_eq!(items.len(), 2, "{resp}");
    let ids: HashSet<String> = items.iter().map(|i| i["id"].to_string()).collect();
    assert_eq!(ids, HashSet::from(["10".to_string(), "\"b\"".to_string()]));
    for i in items {
        assert_eq!(i["jsonrpc"], "2.0");
        if i["id"] == "b" {
            assert_eq!(text(&i["result"]), "in a batch");
        } else {
            assert_eq!(text(&i["result"]), "slept 20 ms");
        }
    }

    // Invalid elements are answered inside the batch; a batch of notifications gets nothing.
    c.send_raw(br#"[{"jsonrpc":"2.0","id":20,"method":"ping"},5,{"jsonrpc":"2.0","id":21,"method":"nope"},{"jsonrpc":"2.0","id":22,"method":"initialize","params":{"protocolVersion":"2025-03-26"}}]
"#);
    let resp = c.recv();
    let items = resp
        .as_array()
        .unwrap_or_else(|| panic!("not an array: {resp}"));
    assert_eq!(items.len(), 4, "{resp}");
    let by_id = |id: Value| items.iter().find(|i| i["id"] == id).cloned();
    assert_eq!(by_id(json!(20)).unwrap()["result"], json!({}));
    assert_error(&by_id(Value::Null).unwrap(), &Value::Null, -32600);
    assert_error(&by_id(json!(21)).unwrap(), &json!(21), -32601);
    assert_error(&by_id(json!(22)).unwrap(), &json!(22), -32600);

    c.send_raw(
        br#"[{"jsonrpc":"2.0","method":"notifications/initialized"}]
"#,
    );
    c.sync();
    assert!(c.inbox.is_empty(), "{:?}", c.inbox);
}

#[test]
fn batch_is_rejected_outside_2025_03_26() {
    let s = server();
    let batch =
        br#"[{"jsonrpc":"2.0","id":1,"method":"ping"},{"jsonrpc":"2.0","id":2,"method":"ping"}]
"#;
    for rev in ["2024-11-05", "2025-06-18", "2025-11-25"] {
        let (mut c, _) = s.session(rev);
        c.send_raw(batch);
        assert_error(&c.recv(), &Value::Null, -32600);
        c.sync();
    }
    // Before initialize, too.
    let mut c = s.connect();
    c.send_raw(batch);
    assert_error(&c.recv(), &Value::Null, -32600);
    c.initialize("2025-03-26");
}

#[test]
fn empty_batch_is_an_invalid_request() {
    let s = server();
    let mut c = s.connect();
    c.send_raw(b"[]\n");
    assert_error(&c.recv(), &Value::Null, -32600);
    c.initialize("2025-03-26");
    c.send_raw(b"[ ]\n");
    assert_error(&c.recv(), &Value::Null, -32600);
    assert_alive(&s, &mut c);
}

// ---------------------------------------------------------------------------------------
// Malformed input
// ---------------------------------------------------------------------------------------

#[test]
fn malformed_messages_get_exact_errors_and_the_connection_survives() {
    let s = server();
    let (mut c, _) = s.session(LATEST);
    let (mut other, _) = s.session(LATEST);
    let cases: Vec<(&[u8], Value, i64)> = vec![
        // Not JSON.
        (b"{nope", Value::Null, -32700),
        (
            b"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\"",
            Value::Null,
            -32700,
        ),
        (b"\x00\x01", Value::Null, -32700),
        // Not UTF-8.
        (
            b"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"\xff\xfe\"}",
            Value::Null,
            -32700,
        ),
        (b"\"\xc3\x28\"", Value::Null, -32700),
        // Not a JSON-RPC message.
        (b"42", Value::Null, -32600),
        (b"\"ping\"", Value::Null, -32600),
        (b"null", Value::Null, -32600),
        (b"{}", Value::Null, -32600),
        (
            b"{\"jsonrpc\":\"1.0\",\"id\":3,\"method\":\"ping\"}",
            json!(3),
            -32600,
        ),
        (b"{\"id\":4,\"method\":\"ping\"}", json!(4), -32600),
        (
            b"{\"jsonrpc\":2.0,\"id\":5,\"method\":\"ping\"}",
            json!(5),
            -32600,
        ),
        (
            b"{\"jsonrpc\":\"2.0\",\"id\":{},\"method\":\"ping\"}",
            Value::Null,
            -32600,
        ),
        (
            b"{\"jsonrpc\":\"2.0\",\"id\":[1],\"method\":\"ping\"}",
            Value::Null,
            -32600,
        ),
        (
            b"{\"jsonrpc\":\"2.0\",\"id\":true,\"method\":\"ping\"}",
            Value::Null,
            -32600,
        ),
        (
            b"{\"jsonrpc\":\"2.0\",\"id\":1.5,\"method\":\"ping\"}",
            Value::Null,
            -32600,
        ),
        (
            b"{\"jsonrpc\":\"2.0\",\"id\":null,\"method\":\"ping\"}",
            Value::Null,
            -32600,
        ),
        (
            b"{\"jsonrpc\":\"2.0\",\"id\":6,\"method\":7}",
            json!(6),
            -32600,
        ),
        (
            b"{\"jsonrpc\":\"2.0\",\"id\":7,\"method\":\"ping\",\"params\":3}",
            json!(7),
            -32600,
        ),
        (
            b"{\"jsonrpc\":\"2.0\",\"id\":8,\"method\":\"ping\",\"params\":\"x\"}",
            json!(8),
            -32600,
        ),
        // Unknown method.
        (
            b"{\"jsonrpc\":\"2.0\",\"id\":9,\"method\":\"no/such/method\"}",
            json!(9),
            -32601,
        ),
        (
            b"{\"jsonrpc\":\"2.0\",\"id\":\"s\",\"method\":\"tools/lists\"}",
            json!("s"),
            -32601,
        ),
        // Params that are not an object.
        (
            b"{\"jsonrpc\":\"2.0\",\"id\":10,\"method\":\"tools/list\",\"params\":[1,2]}",
            json!(10),
            -32602,
        ),
        (
            b"{\"jsonrpc\":\"2.0\",\"id\":11,\"method\":\"tools/call\",\"params\":[\"echo\"]}",
            json!(11),
            -32602,
        ),
    ];
    for (bytes, id, code) in cases {
        let mut line = bytes.to_vec();
        line.push(b'\n');
        c.send_raw(&line);
        let resp = c.recv();
        assert_error(&resp, &id, code);
        assert_eq!(
            resp.as_object().unwrap().len(),
            3,
            "extra members in {resp} for {:?}",
            String::from_utf8_lossy(bytes)
        );
        // The same connection and another one both still work.
        c.sync();
        other.sync();
    }
    // Blank lines and CRLF line ends are fine.
    c.send_raw(b"\n\r\n   \n{\"jsonrpc\":\"2.0\",\"id\":\"crlf\",\"method\":\"ping\"}\r\n");
    assert_eq!(
        c.recv(),
        json!({"jsonrpc": "2.0", "id": "crlf", "result": {}})
    );
    // Messages split across writes and several in one write.
    c.send_raw(b"{\"jsonrpc\":\"2.0\",\"id\":100,");
    std::thread::sleep(Duration::from_millis(20));
    c.send_raw(b"\"method\":\"ping\"}\n{\"jsonrpc\":\"2.0\",\"id\":101,\"method\":\"ping\"}\n");
    assert_eq!(c.recv()["id"], 100);
    assert_eq!(c.recv()["id"], 101);
    // A request id already in flight is refused; the first one still completes.
    let dup = r#"{"jsonrpc":"2.0","id":"dup","method":"tools/call","params":{"name":"sleep_ms","arguments":{"ms":200}}}
"#;
    c.send_raw(dup.as_bytes());
    c.send_raw(dup.as_bytes());
    let first = c.recv();
    assert_error(&first, &json!("dup"), -32600);
    let second = c.recv();
    assert_eq!(text(&second["result"]), "slept 200 ms");
    assert_alive(&s, &mut c);
}

#[test]
fn too_long_line_gets_an_error_and_the_connection_is_closed() {
    let s = Server::start(1, &set("limits.max_message_bytes=1024"));
    let (mut c, _) = s.session(LATEST);
    // Up to the limit is fine.
    let text_900 = "x".repeat(900);
    let r = c.tool("echo", json!({"text": text_900}));
    assert_eq!(text(&r), text_900);

    let mut long = format!(
        "{{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{{\"name\":\"echo\",\"arguments\":{{\"text\":\"{}\"}}}}}}",
        "y".repeat(2000)
    )
    .into_bytes();
    long.push(b'\n');
    c.send_raw(&long);
    let seen = c.expect_closed(READ_TIMEOUT);
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_error(&seen[0], &Value::Null, -32600);
    assert!(seen[0]["error"]["message"]
        .as_str()
        .unwrap()
        .contains("max_message_bytes"));

    // A long line without any newline is cut off as well.
    let (mut c2, _) = s.session(LATEST);
    let _ = c2.try_send_raw(&vec![b'z'; 4096]);
    let seen = c2.expect_closed(READ_TIMEOUT);
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_error(&seen[0], &Value::Null, -32600);

    // Other connections are unaffected.
    let (mut c3, _) = s.session(LATEST);
    assert_eq!(text(&c3.tool("echo", json!({"text": "ok"}))), "ok");
}

// ---------------------------------------------------------------------------------------
// Limits and shutdown
// ---------------------------------------------------------------------------------------

#[test]
fn idle_connection_is_closed() {
    let s = Server::start(1, &set("limits.idle_timeout_ms=300"));
    let (mut idle, _) = s.session(LATEST);
    let seen = idle.expect_closed(READ_TIMEOUT);
    assert!(seen.is_empty(), "{seen:?}");
    // A connection never initialized, too.
    let mut bare = s.connect();
    assert!(bare.expect_closed(READ_TIMEOUT).is_empty());
    // A request running longer than the idle timeout keeps the connection open until it is
    // answered.
    let (mut busy, _) = s.session(LATEST);
    let id = busy.send_request(
        "tools/call",
        json!({"name": "sleep_ms", "arguments": {"ms": 700}}),
    );
    let resp = busy.response(&json!(id));
    assert_eq!(text(&resp["result"]), "slept 700 ms");
    assert!(busy.expect_closed(READ_TIMEOUT).is_empty());
    // The server still takes new connections.
    let (mut fresh, _) = s.session(LATEST);
    fresh.sync();
}

#[test]
fn connection_limit_refuses_the_third_connection() {
    // The start-up host check refuses a connection ceiling below server.connections_target,
    // so the target comes down with the limit.
    let s = Server::start(
        1,
        &[
            "--set",
            "limits.connections_per_shard_max=2",
            "--set",
            "server.connections_target=2",
        ],
    );
    let (mut a, _) = s.session(LATEST);
    let (mut b, _) = s.session(LATEST);
    let mut third = s.connect();
    let seen = third.expect_closed(READ_TIMEOUT);
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_error(&seen[0], &Value::Null, -32001);
    a.sync();
    b.sync();

    // Once a connection goes away there is room again (the server notices the close
    // asynchronously, so retry for a bounded time).
    drop(a);
    let deadline = Instant::now() + READ_TIMEOUT;
    loop {
        let mut c = s.connect();
        let id = c.next_id();
        // A refused connection may already be shut down by the server: ignore write errors.
        let _ = c.try_send_raw(
            format!("{{\"jsonrpc\":\"2.0\",\"id\":{id},\"method\":\"ping\"}}\n").as_bytes(),
        );
        match c.recv_timeout(READ_TIMEOUT) {
            Recv::Msg(m) if m["id"] == id => break,
            Recv::Msg(m) => assert_error(&m, &Value::Null, -32001),
            Recv::Closed => {}
            Recv::Timeout => panic!("no answer and no refusal"),
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
fn configured_limits_are_answered_with_their_codes() {
    let s = Server::start(
        1,
        &[
            "--set",
            "limits.sessions_per_shard_max=1",
            "--set",
            "limits.session_in_flight_requests_max=2",
            "--set",
            "limits.subscriptions_per_session_max=1",
            "--set",
            "limits.batch_messages_max=2",
            "--set",
            "limits.client_requests_in_flight_max=1",
        ],
    );
    let mut a = s.connect();
    a.initialize_with("2025-03-26", json!({"sampling": {}}));

    // sessions_per_shard_max: a second session is refused, its connection stays usable.
    let mut b = s.connect();
    let id = b.send_request(
        "initialize",
        json!({"protocolVersion": LATEST, "capabilities": {}}),
    );
    assert_error(&b.response(&json!(id)), &json!(id), -32001);
    b.sync();
    assert_eq!(
        b.call_err("tools/list", json!({})),
        -32600,
        "b is not initialized"
    );

    // subscriptions_per_session_max.
    a.call("resources/subscribe", json!({"uri": "demo://counter"}));
    assert_eq!(
        a.call_err("resources/subscribe", json!({"uri": "demo://readme"})),
        -32001
    );

    // batch_messages_max (2025-03-26 takes batches).
    a.send_raw(br#"[{"jsonrpc":"2.0","id":"x1","method":"ping"},{"jsonrpc":"2.0","id":"x2","method":"ping"},{"jsonrpc":"2.0","id":"x3","method":"ping"}]
"#);
    assert_error(&a.recv(), &Value::Null, -32600);

    // client_requests_in_flight_max: the second sample fails while the first waits.
    let first = a.send_request(
        "tools/call",
        json!({"name": "sample", "arguments": {"prompt": "1"}}),
    );
    let req = a.wait_method("sampling/createMessage");
    let second = a.send_request(
        "tools/call",
        json!({"name": "sample", "arguments": {"prompt": "2"}}),
    );
    assert_error(&a.response(&json!(second)), &json!(second), -32001);
    // session_in_flight_requests_max: `first` and one sleep are in flight; a third waits
    // for nothing and is refused.
    let sleep = a.send_request(
        "tools/call",
        json!({"name": "sleep_ms", "arguments": {"ms": 300}}),
    );
    let third = a.send_request(
        "tools/call",
        json!({"name": "echo", "arguments": {"text": "x"}}),
    );
    assert_error(&a.response(&json!(third)), &json!(third), -32001);
    a.send(
        &json!({"jsonrpc": "2.0", "id": req["id"], "result": {"role": "assistant",
        "content": {"type": "text", "text": "one"}, "model": "m"}}),
    );
    assert_eq!(
        text(&a.response(&json!(first))["result"]),
        "the model said: one"
    );
    assert_eq!(text(&a.response(&json!(sleep))["result"]), "slept 300 ms");
    assert_eq!(
        text(&a.tool("echo", json!({"text": "room again"}))),
        "room again"
    );

    // Closing `a` frees its session slot (the server notices asynchronously).
    drop(a);
    let deadline = Instant::now() + READ_TIMEOUT;
    loop {
        let id = b.send_request(
            "initialize",
            json!({"protocolVersion": LATEST, "capabilities": {}}),
        );
        let resp = b.response(&json!(id));
        if resp.get("result").is_some() {
            break;
        }
        assert_error(&resp, &json!(id), -32001);
        assert!(
            Instant::now() < deadline,
            "the closed session still holds its slot"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    b.sync();
}

#[test]
fn sigterm_lets_in_flight_requests_finish_then_exits_zero() {
    let mut s = server();
    let (mut c, _) = s.session(LATEST);
    let (mut idle, _) = s.session(LATEST);
    let id = c.send_request(
        "tools/call",
        json!({"name": "long_task", "arguments": {"steps": 3, "interval_ms": 100},
               "_meta": {"progressToken": "t"}}),
    );
    c.wait_method("notifications/progress");
    s.sigterm();
    let resp = c.response(&json!(id));
    assert_eq!(text(&resp["result"]), "completed 3 steps");
    let rest = c.expect_closed(Duration::from_secs(10));
    assert!(
        rest.iter().all(|m| m["method"] == "notifications/progress"),
        "{rest:?}"
    );
    assert!(idle.expect_closed(Duration::from_secs(10)).is_empty());
    let status = s
        .wait_exit(Duration::from_secs(10))
        .expect("ringmcp did not exit after SIGTERM");
    assert_eq!(status.code(), Some(0), "{status}");
}

#[test]
fn client_eof_still_gets_the_answers_it_asked_for() {
    let s = server();
    let (mut c, _) = s.session(LATEST);
    let slow = c.send_request(
        "tools/call",
        json!({"name": "sleep_ms", "arguments": {"ms": 200}}),
    );
    let fast = c.send_request("ping", json!({}));
    c.shutdown_write();
    let seen = c.expect_closed(READ_TIMEOUT);
    let ids: Vec<&Value> = seen.iter().map(|m| &m["id"]).collect();
    assert_eq!(ids, [&json!(fast), &json!(slow)], "{seen:?}");
    assert_eq!(text(&seen[1]["result"]), "slept 200 ms");
}
