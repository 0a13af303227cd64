//! Streamable HTTP across shards: with `--shards 2`, SO_REUSEPORT spreads new connections
//! over both shards, while a session lives on the one shard that owns it. Requests that land
//! on the other shard are forwarded over the mesh, and their answers (JSON bodies and SSE
//! streams) come back. Each connection first asks which shard it reached (`shard_of`: an
//! initialize there says so in `_meta`), so the tests know both paths were taken.

mod common;

use common::http::*;
use common::*;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::time::Duration;

const SHARDS: usize = 2;
/// Requests sent at first.
const REQUESTS: usize = 40;
/// Upper bound when the kernel keeps putting connections on one shard.
const REQUESTS_MAX: usize = 200;

fn server() -> Server {
    Server::start(SHARDS, &[])
}

/// A new connection and the shard it landed on.
fn connection(s: &Server) -> (Http, u64) {
    let mut c = Http::connect(s.http_port);
    let shard = shard_of(&mut c, "/mcp");
    assert!(shard < SHARDS as u64, "shard {shard}");
    (c, shard)
}

/// A new connection on `want` (bounded tries).
fn connection_on(s: &Server, want: u64) -> Http {
    for _ in 0..100 {
        let (c, shard) = connection(s);
        if shard == want {
            return c;
        }
    }
    panic!("100 connections and none landed on shard {want}");
}

/// A session owned by `want` (bounded tries).
fn session_on(s: &Server, want: u64) -> McpSession {
    for _ in 0..100 {
        let m = McpSession::initialize(s.http_port, "/mcp", LATEST);
        if m.shard() == want {
            return m;
        }
        m.delete();
    }
    panic!("100 sessions and none owned by shard {want}");
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Kind {
    Add,
    Read,
    Prompt,
    Progress,
}

const KINDS: [Kind; 4] = [Kind::Add, Kind::Read, Kind::Prompt, Kind::Progress];

/// Sends one request of `kind` (numbered `i`) on `c` and checks the answer exactly.
fn check_request(m: &mut McpSession, c: &mut Http, kind: Kind, i: usize) {
    match kind {
        Kind::Add => {
            let r = m.call_on(
                c,
                "tools/call",
                json!({"name": "add", "arguments": {"a": i, "b": 1000}}),
            );
            assert_eq!(text(&r), (i + 1000).to_string(), "add #{i}: {r}");
            assert_eq!(
                r["structuredContent"]["sum"].as_f64(),
                Some((i + 1000) as f64)
            );
        }
        Kind::Read => {
            let ids = ["alpha", "beta", "gamma", "delta", "epsilon"];
            let id = ids[i % ids.len()];
            let uri = format!("demo://items/{id}");
            let r = m.call_on(c, "resources/read", json!({"uri": uri}));
            let contents = &r["contents"][0];
            assert_eq!(contents["uri"], uri, "{r}");
            let body: Value =
                serde_json::from_str(contents["text"].as_str().expect("text")).unwrap();
            assert_eq!(body, json!({"id": id, "name": format!("item {id}")}));
        }
        Kind::Prompt => {
            let name = format!("Ada{i}");
            let r = m.call_on(
                c,
                "prompts/get",
                json!({"name": "greet", "arguments": {"name": name, "style": "pirate"}}),
            );
            assert_eq!(
                r["messages"][0]["content"]["text"],
                format!("Please greet {name} like a pirate."),
                "{r}"
            );
        }
        Kind::Progress => {
            let token = format!("tok-{i}");
            let (id, msg) = m.req("tools/call", long_task(3, 5, token.as_str()));
            let r = m.post_on(c, &msg);
            assert_eq!(r.status(), 200, "{r:?}");
            let events = r.events();
            assert_eq!(events.len(), 5, "priming + 3 progress + result: {events:?}");
            assert!(events[0].data.is_empty());
            let (stream, _) = events[0].id_parts();
            for (k, ev) in events.iter().enumerate() {
                assert_eq!(ev.id_parts(), (stream, k as u64), "{ev:?}");
            }
            for (k, ev) in events[1..4].iter().enumerate() {
                let v = ev.json();
                assert_eq!(v["method"], "notifications/progress", "{v}");
                assert_eq!(v["params"]["progressToken"], token);
                assert_eq!(v["params"]["progress"].as_f64(), Some(k as f64 + 1.0));
            }
            let result = events[4].json();
            assert_eq!(result["id"], id);
            assert_eq!(text(&result["result"]), "completed 3 steps");
        }
    }
}

#[test]
fn one_session_over_many_connections_is_served_from_both_shards() {
    let s = server();
    let mut m = McpSession::initialize(s.http_port, "/mcp", LATEST);
    let owner = m.shard();
    let mut served: HashMap<(Kind, u64), usize> = HashMap::new();
    let mut i = 0;
    loop {
        let complete = KINDS
            .iter()
            .all(|k| (0..SHARDS as u64).all(|sh| served.contains_key(&(*k, sh))));
        if i >= REQUESTS && complete {
            break;
        }
        assert!(
            i < REQUESTS_MAX,
            "after {REQUESTS_MAX} connections not every request kind reached both shards: {served:?}"
        );
        let (mut c, shard) = connection(&s);
        let kind = KINDS[i % KINDS.len()];
        check_request(&mut m, &mut c, kind, i);
        *served.entry((kind, shard)).or_default() += 1;
        i += 1;
    }
    let forwarded: usize = served
        .iter()
        .filter(|((_, sh), _)| *sh != owner)
        .map(|(_, n)| n)
        .sum();
    assert!(forwarded > 0 && forwarded < i, "{served:?}");

    // Under another server's endpoint the session is unknown, from either shard.
    for shard in [owner, 1 - owner] {
        let mut c = connection_on(&s, shard);
        let h = post_headers(Some(&m.id), Some(LATEST));
        let r = c.request("POST", "/mcp/conformance", &h, Some(PING));
        assert_eq!(r.status(), 404, "via shard {shard}: {r:?}");
    }

    // DELETE from the shard that does not own the session: forwarded, and final everywhere.
    let mut c = connection_on(&s, 1 - owner);
    let r = c.request("DELETE", "/mcp", &[("Mcp-Session-Id", &m.id)], None);
    assert_eq!(r.status(), 200, "{r:?}");
    for shard in [owner, 1 - owner] {
        let mut c = connection_on(&s, shard);
        let (_, msg) = m.req("ping", json!({}));
        let r = m.post_on(&mut c, &msg);
        assert_eq!(r.status(), 404, "after DELETE, via shard {shard}: {r:?}");
    }
}

#[test]
fn get_stream_receives_notifications_triggered_on_either_shard() {
    let s = server();
    let mut m = McpSession::initialize(s.http_port, "/mcp", LATEST);
    let owner = m.shard();
    let mut other = session_on(&s, 1 - owner);
    assert_eq!(
        m.call("resources/subscribe", json!({"uri": "demo://counter"})),
        json!({})
    );

    // The GET stream goes over a connection on the shard that does not own the session.
    let mut g = connection_on(&s, 1 - owner);
    let h = m.open_get(&mut g, None);
    assert_eq!(h.status, 200, "{h:?}");
    assert!(h.is_sse());

    let mut triggered: HashMap<u64, usize> = HashMap::new();
    let mut last_id = String::new();
    for i in 0..REQUESTS_MAX {
        if i >= 8 && triggered.values().filter(|&&n| n >= 2).count() == SHARDS {
            break;
        }
        let (mut c, shard) = connection(&s);
        // Alternate the session that triggers and what it triggers.
        let who = if i % 2 == 0 { &mut m } else { &mut other };
        let (tool, want) = if i % 4 < 2 {
            ("increment_counter", "notifications/resources/updated")
        } else {
            ("toggle_extra_tool", "notifications/tools/list_changed")
        };
        who.call_on(&mut c, "tools/call", json!({"name": tool, "arguments": {}}));
        let (ev, v) = g.message();
        assert_eq!(v["method"], want, "after {tool} via shard {shard}: {v}");
        if want == "notifications/resources/updated" {
            assert_eq!(v["params"]["uri"], "demo://counter");
        }
        assert_eq!(ev.id_parts().0, 0, "{ev:?}");
        last_id = ev.id.clone().expect("id");
        *triggered.entry(shard).or_default() += 1;
    }
    assert_eq!(triggered.len(), SHARDS, "{triggered:?}");

    // The client leaves; what happens meanwhile is replayed to a GET with Last-Event-ID,
    // here over a connection on the owner shard.
    g.abort();
    other.tool("toggle_extra_tool", json!({}));
    m.tool("increment_counter", json!({"by": 3}));
    let mut g2 = m.get_once_freed(
        || connection_on(&s, owner),
        Some(&last_id),
        Duration::from_secs(5),
        "the forwarded stream was never freed",
    );
    // The two come from different shards: either order is right.
    let mut replayed: Vec<String> = (0..2)
        .map(|_| {
            g2.message().1["method"]
                .as_str()
                .expect("method")
                .to_string()
        })
        .collect();
    replayed.sort();
    assert_eq!(
        replayed,
        [
            "notifications/resources/updated",
            "notifications/tools/list_changed"
        ]
    );
}

#[test]
fn post_stream_dropped_on_one_shard_resumes_on_the_other() {
    let s = server();
    let mut m = McpSession::initialize(s.http_port, "/mcp", LATEST);
    let owner = m.shard();
    for (post_shard, get_shard) in [
        (1 - owner, owner),
        (owner, 1 - owner),
        (1 - owner, 1 - owner),
    ] {
        let mut c = connection_on(&s, post_shard);
        let (id, msg) = m.req("tools/call", long_task(6, 40, "x"));
        m.post_stream_on(&mut c, &msg);
        let (ev, v) = c.message();
        assert_eq!(v["params"]["progress"].as_f64(), Some(1.0), "{v}");
        let last = ev.id.clone().expect("id");
        c.abort();
        let mut g = connection_on(&s, get_shard);
        let h = m.open_get(&mut g, Some(&last));
        assert_eq!(h.status, 200, "{h:?}");
        let msgs = g.rest_messages();
        let progress: Vec<f64> = msgs[..msgs.len() - 1]
            .iter()
            .map(|p| p["params"]["progress"].as_f64().expect("progress"))
            .collect();
        assert_eq!(
            progress,
            [2.0, 3.0, 4.0, 5.0, 6.0],
            "POST via {post_shard}, GET via {get_shard}"
        );
        let result = msgs.last().expect("result");
        assert_eq!(result["id"], id);
        assert_eq!(text(&result["result"]), "completed 6 steps");
    }
}

#[test]
fn legacy_sse_session_takes_posts_from_both_shards() {
    let s = server();
    let (mut g, h) = open_event_stream(s.http_port, "/mcp/demo/sse");
    assert_eq!(h.status, 200);
    let endpoint = g.event();
    assert_eq!(endpoint.event.as_deref(), Some("endpoint"));
    let url = endpoint.data;
    let post = |c: &mut Http, body: Value| {
        let body = serde_json::to_vec(&body).unwrap();
        let r = legacy_post(c, &url, &body);
        assert_eq!(r.status(), 202, "{r:?}");
    };
    let (mut c, _) = connection(&s);
    post(
        &mut c,
        json!({"jsonrpc":"2.0","id":0,"method":"initialize","params":{
        "protocolVersion":"2024-11-05","capabilities":{},"clientInfo":{"name":"legacy","version":"0"}}}),
    );
    assert_eq!(g.message().1["result"]["protocolVersion"], "2024-11-05");
    post(
        &mut c,
        json!({"jsonrpc":"2.0","method":"notifications/initialized"}),
    );
    let mut seen = [0usize; SHARDS];
    for i in 1..REQUESTS_MAX {
        if i > 20 && seen.iter().all(|&n| n > 0) {
            break;
        }
        let (mut c, shard) = connection(&s);
        seen[shard as usize] += 1;
        post(
            &mut c,
            json!({"jsonrpc":"2.0","id":i,"method":"tools/call","params":{"name":"add","arguments":{"a":i,"b":i}}}),
        );
        let (_, v) = g.message();
        assert_eq!(v["id"], i, "{v}");
        assert_eq!(text(&v["result"]), (2 * i).to_string());
    }
    assert!(seen.iter().all(|&n| n > 0), "{seen:?}");
}
