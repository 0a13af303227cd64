//! The admin listener (`[admin]`): `/metrics` in the Prometheus text format, `/health` with
//! the zones, `/ready`. Each test starts `ringmcp serve --shards 2` (tests/common), speaks
//! TCP and Streamable HTTP to it, and reads the admin endpoints as a scraper or a load
//! balancer would. Nothing here is timed: waits are bounded polls.

mod common;

use common::http::*;
use common::*;
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long a test waits for a zone evaluation or a shutdown to show.
const SETTLE: Duration = Duration::from_secs(15);

fn get(port: u16, path: &str) -> Response {
    Http::connect(port).request("GET", path, &[], None)
}

// ---------------------------------------------------------------------------------------
// A small parser of the Prometheus text exposition format 0.0.4, strict enough to catch
// what a scraper would reject.

/// One series: name and labels (sorted).
type Key = (String, BTreeMap<String, String>);

#[derive(Debug, Default)]
struct Exposition {
    /// Family name -> type.
    types: HashMap<String, String>,
    samples: BTreeMap<Key, f64>,
}

impl Exposition {
    fn parse(text: &str) -> Exposition {
        let mut x = Exposition::default();
        let mut helped: HashMap<String, bool> = HashMap::new();
        assert!(
            text.ends_with('\n'),
            "the exposition must end with a newline"
        );
        for (n, line) in text.lines().enumerate() {
            let at = |what: &str| format!("line {}: {what}: {line:?}", n + 1);
            if let Some(rest) = line.strip_prefix("# HELP ") {
                let (name, help) = rest
                    .split_once(' ')
                    .unwrap_or_else(|| panic!("{}", at("HELP without text")));
                assert!(valid_name(name), "{}", at("bad metric name"));
                assert!(!help.trim().is_empty(), "{}", at("empty HELP"));
                assert!(
                    helped.insert(name.to_string(), true).is_none(),
                    "{}",
                    at("second HELP")
                );
                continue;
            }
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let (name, kind) = rest
                    .split_once(' ')
                    .unwrap_or_else(|| panic!("{}", at("TYPE without type")));
                assert!(
                    ["counter", "gauge", "summary", "histogram", "untyped"].contains(&kind),
                    "{}",
                    at("unknown type")
                );
                assert!(helped.contains_key(name), "{}", at("TYPE before HELP"));
                assert!(
                    x.types.insert(name.to_string(), kind.to_string()).is_none(),
                    "{}",
                    at("second TYPE")
                );
                if kind == "counter" {
                    assert!(name.ends_with("_total"), "{}", at("counter without _total"));
                }
                continue;
            }
            assert!(!line.starts_with('#'), "{}", at("unknown comment"));
            assert!(!line.is_empty(), "{}", at("empty line"));
            let (series, value) = line
                .rsplit_once(' ')
                .unwrap_or_else(|| panic!("{}", at("no value")));
            let value: f64 = match value {
                "NaN" => f64::NAN,
                "+Inf" => f64::INFINITY,
                "-Inf" => f64::NEG_INFINITY,
                v => v.parse().unwrap_or_else(|_| panic!("{}", at("bad value"))),
            };
            let (name, labels) = match series.split_once('{') {
                None => (series.to_string(), BTreeMap::new()),
                Some((name, rest)) => {
                    let body = rest
                        .strip_suffix('}')
                        .unwrap_or_else(|| panic!("{}", at("unclosed labels")));
                    (
                        name.to_string(),
                        parse_labels(body).unwrap_or_else(|e| panic!("{}", at(&e))),
                    )
                }
            };
            assert!(valid_name(&name), "{}", at("bad metric name"));
            // The family a sample belongs to was declared before it.
            let family = ["_sum", "_count"]
                .iter()
                .find_map(|s| {
                    name.strip_suffix(s)
                        .filter(|base| x.types.get(*base).is_some_and(|t| t == "summary"))
                })
                .unwrap_or(&name)
                .to_string();
            let kind = x
                .types
                .get(&family)
                .unwrap_or_else(|| panic!("{}", at("sample before its TYPE")));
            if kind == "summary" && family == name {
                assert!(
                    labels.contains_key("quantile"),
                    "{}",
                    at("summary sample without quantile")
                );
            }
            assert!(
                x.samples.insert((name, labels), value).is_none(),
                "{}",
                at("duplicate series")
            );
        }
        x
    }

    /// The value of a series; missing is `None`.
    fn get(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let labels = labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        self.samples.get(&(name.to_string(), labels)).copied()
    }

    /// The value of a series that must exist.
    fn value(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.get(name, labels)
            .unwrap_or_else(|| panic!("no series {name}{labels:?}"))
    }

    fn kind(&self, family: &str) -> &str {
        self.types
            .get(family)
            .unwrap_or_else(|| panic!("no family {family}"))
    }
}

fn valid_name(n: &str) -> bool {
    let mut chars = n.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

fn parse_labels(body: &str) -> Result<BTreeMap<String, String>, String> {
    let mut out = BTreeMap::new();
    let mut rest = body;
    while !rest.is_empty() {
        let (name, after) = rest.split_once("=\"").ok_or("label without =\"")?;
        if !valid_name(name) || name.starts_with("__") {
            return Err(format!("bad label name {name:?}"));
        }
        let mut value = String::new();
        let mut chars = after.char_indices();
        let end = loop {
            match chars.next().ok_or("unterminated label value")? {
                (_, '\\') => match chars.next().ok_or("dangling escape")?.1 {
                    'n' => value.push('\n'),
                    c @ ('\\' | '"') => value.push(c),
                    c => return Err(format!("bad escape \\{c}")),
                },
                (i, '"') => break i,
                (_, c) => value.push(c),
            }
        };
        if out.insert(name.to_string(), value).is_some() {
            return Err(format!("label {name} twice"));
        }
        rest = &after[end + 1..];
        rest = match rest.strip_prefix(',') {
            Some(r) => r,
            None if rest.is_empty() => rest,
            None => return Err(format!("junk after a label: {rest:?}")),
        };
    }
    Ok(out)
}

fn scrape(s: &Server) -> Exposition {
    let r = get(s.admin_port, "/metrics");
    assert_eq!(r.status(), 200, "{r:?}");
    assert_eq!(
        r.header("content-type"),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    Exposition::parse(&r.text())
}

#[test]
fn the_exposition_parser_rejects_what_a_scraper_would() {
    let ok = "# HELP a_total x\n# TYPE a_total counter\na_total{shard=\"0\",m=\"a\\\"b\"} 3\n";
    let x = Exposition::parse(ok);
    assert_eq!(x.value("a_total", &[("shard", "0"), ("m", "a\"b")]), 3.0);
    for bad in [
        "a_total 1\n",                              // no TYPE
        "# HELP a x\n# TYPE a counter\na 1\n",      // counter without _total
        "# HELP a x\n# TYPE a gauge\na{b=\"1} 2\n", // unterminated
        "# HELP a x\n# TYPE a gauge\na 1\na 2\n",   // duplicate
        "# HELP a x\n# TYPE a gauge\na one\n",      // bad value
        "# HELP a x\n# TYPE a summary\na 1\n",      // quantile missing
        "# HELP a x\n# TYPE a gauge\na 1",          // no final newline
    ] {
        let r = std::panic::catch_unwind(|| Exposition::parse(bad));
        assert!(r.is_err(), "accepted {bad:?}");
    }
}

// ---------------------------------------------------------------------------------------

/// Bytes of one JSON line as the TCP client sends it.
fn line_len(v: &Value) -> f64 {
    (serde_json::to_vec(v).unwrap().len() + 1) as f64
}

/// How much series should move between two scrapes; what is counted on a shard counts in
/// `shard="all"` as well.
#[derive(Default)]
struct Moves(BTreeMap<(String, Vec<(String, String)>), f64>);

impl Moves {
    fn add(&mut self, name: &str, labels: &[(&str, &str)], n: f64) {
        let mut with_all = vec![labels.to_vec()];
        if labels.iter().any(|(k, v)| *k == "shard" && *v != "all") {
            with_all.push(
                labels
                    .iter()
                    .map(|(k, v)| (*k, if *k == "shard" { "all" } else { *v }))
                    .collect(),
            );
        }
        for l in with_all {
            let l = l
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            *self.0.entry((name.to_string(), l)).or_insert(0.0) += n;
        }
    }

    /// Checks every expected move (a series absent before counts from 0).
    fn check(&self, before: &Exposition, after: &Exposition) {
        for ((name, labels), n) in &self.0 {
            let l: Vec<(&str, &str)> = labels
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            let was = before.get(name, &l).unwrap_or(0.0);
            let now = after.value(name, &l);
            assert_eq!(now - was, *n, "{name}{l:?}: {was} -> {now}");
        }
    }
}

#[test]
fn metrics_count_tcp_and_http_traffic_on_the_right_labels() {
    let s = Server::start(2, &[]);
    let before = scrape(&s);
    assert_eq!(before.value("ringmcp_shards", &[]), 2.0);
    assert_eq!(before.value("ringmcp_ready", &[]), 1.0);
    for (family, kind) in [
        ("ringmcp_requests_total", "counter"),
        ("ringmcp_errors_total", "counter"),
        ("ringmcp_connections_open", "gauge"),
        ("ringmcp_request_duration_seconds", "summary"),
        ("ringmcp_rejections_total", "counter"),
        ("ringmcp_zone", "gauge"),
        ("ringmcp_mesh_messages_sent_total", "counter"),
        ("ringmcp_outbound_queue_messages", "gauge"),
        ("ringmcp_shard_resident_memory_bytes", "gauge"),
    ] {
        assert_eq!(before.kind(family), kind, "{family}");
    }
    let mut moves = Moves::default();

    // TCP: a session with a good request, a call, an unknown method, bad JSON and an
    // invalid request object.
    let mut c = s.connect();
    let init = c.initialize(LATEST);
    let tcp_shard = init["_meta"]["ringmcp/shard"].as_u64().unwrap().to_string();
    let t = tcp_shard.as_str();
    c.call("tools/list", json!({}));
    c.tool("echo", json!({"text": "hi"}));
    assert_eq!(c.call_err("no/such", json!({})), -32601);
    c.send_raw(b"{this is not json\n");
    assert_eq!(error_code(&c.recv()), Some(-32700));
    c.send(&json!({"jsonrpc": "2.0", "id": 99}));
    assert_eq!(error_code(&c.recv()), Some(-32600));
    // The bytes the client wrote, as the harness encodes them.
    let mut tcp_bytes = 0.0;
    for (id, method, params) in [
        (
            1,
            "initialize",
            json!({"protocolVersion": LATEST, "capabilities": {},
                   "clientInfo": {"name": "ringmcp-tests", "version": "0"}}),
        ),
        (2, "tools/list", json!({})),
        (
            3,
            "tools/call",
            json!({"name": "echo", "arguments": {"text": "hi"}}),
        ),
        (4, "no/such", json!({})),
    ] {
        tcp_bytes +=
            line_len(&json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}));
    }
    tcp_bytes +=
        line_len(&json!({"jsonrpc": "2.0", "method": "notifications/initialized", "params": {}}));
    tcp_bytes += b"{this is not json\n".len() as f64;
    tcp_bytes += line_len(&json!({"jsonrpc": "2.0", "id": 99}));
    for m in ["initialize", "tools/list", "tools/call", "other"] {
        moves.add(
            "ringmcp_requests_total",
            &[("shard", t), ("method", m)],
            1.0,
        );
    }
    moves.add(
        "ringmcp_requests_total",
        &[("shard", t), ("method", "invalid")],
        2.0,
    );
    moves.add("ringmcp_responses_total", &[("shard", t)], 6.0);
    for (method, code) in [
        ("other", "-32601"),
        ("invalid", "-32700"),
        ("invalid", "-32600"),
    ] {
        moves.add(
            "ringmcp_errors_total",
            &[("shard", t), ("method", method), ("code", code)],
            1.0,
        );
    }
    moves.add("ringmcp_sessions_opened_total", &[("shard", t)], 1.0);
    moves.add("ringmcp_messages_received_total", &[("shard", t)], 7.0);
    moves.add("ringmcp_messages_sent_total", &[("shard", t)], 6.0);
    moves.add(
        "ringmcp_connections_accepted_total",
        &[("shard", t), ("transport", "tcp")],
        1.0,
    );
    moves.add(
        "ringmcp_bytes_received_total",
        &[("shard", t), ("transport", "tcp")],
        tcp_bytes,
    );

    // Streamable HTTP on one keep-alive connection: a session, which lives on the shard
    // that received its initialize (the connection's), an unknown method, a body that is
    // not JSON.
    let mut conn = Http::connect(s.http_port);
    let mut session = McpSession::initialize_on(&mut conn, "/mcp", LATEST);
    let http_shard = session.shard().to_string();
    let h = http_shard.as_str();
    session.call_on(&mut conn, "tools/list", json!({}));
    let (resp, _) = session.request_on(&mut conn, "no/such", json!({}));
    assert_eq!(error_code(&resp), Some(-32601));
    let r = conn.request("POST", "/mcp", &session.headers(), Some(b"{nope"));
    assert_eq!(
        (r.status(), r.rpc_error_code()),
        (400, Some(-32700)),
        "{r:?}"
    );
    for m in ["initialize", "tools/list", "other", "invalid"] {
        moves.add(
            "ringmcp_requests_total",
            &[("shard", h), ("method", m)],
            1.0,
        );
    }
    moves.add("ringmcp_responses_total", &[("shard", h)], 4.0);
    for (method, code) in [("other", "-32601"), ("invalid", "-32700")] {
        moves.add(
            "ringmcp_errors_total",
            &[("shard", h), ("method", method), ("code", code)],
            1.0,
        );
    }
    moves.add("ringmcp_sessions_opened_total", &[("shard", h)], 1.0);
    moves.add("ringmcp_messages_received_total", &[("shard", h)], 5.0);
    // initialize, tools/list, no/such, the parse error (the 202 of the notification
    // carries no message).
    moves.add("ringmcp_messages_sent_total", &[("shard", h)], 4.0);
    moves.add(
        "ringmcp_connections_accepted_total",
        &[("shard", h), ("transport", "http")],
        1.0,
    );

    let mid = scrape(&s);
    moves.check(&before, &mid);
    // Still connected: one TCP and one HTTP keep-alive connection, two sessions.
    for (shard, transport) in [(t, "tcp"), ("all", "tcp"), (h, "http"), ("all", "http")] {
        assert_eq!(
            mid.value(
                "ringmcp_connections_open",
                &[("shard", shard), ("transport", transport)]
            ),
            1.0,
            "{shard} {transport}"
        );
    }
    assert_eq!(mid.value("ringmcp_sessions_open", &[("shard", "all")]), 2.0);

    // The stateless revision, over new connections (whichever shard the kernel picks): a
    // request answered, and one refused at admission (its Mcp-Method header disagrees
    // with the body).
    let meta = json!({"io.modelcontextprotocol/protocolVersion": "2026-07-28",
        "io.modelcontextprotocol/clientCapabilities": {},
        "io.modelcontextprotocol/clientInfo": {"name": "t", "version": "0"}});
    let body = serde_json::to_vec(&json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list",
        "params": {"_meta": meta}}))
    .unwrap();
    let mut headers = post_headers(None, Some("2026-07-28"));
    headers.push(("Mcp-Method", "tools/list"));
    let r = Http::connect(s.http_port).request("POST", "/mcp", &headers, Some(&body));
    assert_eq!(r.status(), 200, "{r:?}");
    assert!(r.json()["result"]["tools"].is_array(), "{r:?}");
    let mut headers = post_headers(None, Some("2026-07-28"));
    headers.push(("Mcp-Method", "prompts/list"));
    let r = Http::connect(s.http_port).request("POST", "/mcp", &headers, Some(&body));
    assert_eq!(
        (r.status(), r.rpc_error_code()),
        (400, Some(-32020)),
        "{r:?}"
    );
    let mut moves = Moves::default();
    let all = ("shard", "all");
    moves.add(
        "ringmcp_requests_total",
        &[all, ("method", "tools/list")],
        1.0,
    );
    moves.add("ringmcp_requests_total", &[all, ("method", "invalid")], 1.0);
    moves.add(
        "ringmcp_errors_total",
        &[all, ("method", "invalid"), ("code", "-32020")],
        1.0,
    );
    moves.add("ringmcp_responses_total", &[all], 2.0);
    moves.add("ringmcp_messages_received_total", &[all], 2.0);
    moves.add("ringmcp_messages_sent_total", &[all], 2.0);
    moves.add(
        "ringmcp_connections_accepted_total",
        &[all, ("transport", "http")],
        2.0,
    );

    let after = scrape(&s);
    moves.check(&mid, &after);
    // Every answer was measured; both shards' histograms were merged.
    assert_eq!(after.value("ringmcp_latency_shards_merged", &[]), 2.0);
    for shard in ["0", "1", "all"] {
        assert_eq!(
            after.value(
                "ringmcp_request_duration_seconds_count",
                &[("shard", shard)]
            ),
            after.value("ringmcp_responses_total", &[("shard", shard)]),
            "shard {shard}"
        );
    }
    let q = |q: &str| {
        after.value(
            "ringmcp_request_duration_seconds",
            &[("shard", "all"), ("quantile", q)],
        )
    };
    assert!(
        q("0.5") > 0.0 && q("0.5") <= q("0.999"),
        "{} {}",
        q("0.5"),
        q("0.999")
    );
    assert_eq!(after.value("ringmcp_requests_in_flight", &[all]), 0.0);
    // Asking shard 1 for its histogram is mesh traffic.
    assert!(after.value("ringmcp_mesh_messages_sent_total", &[("shard", "0")]) >= 1.0);
    assert!(after.value("ringmcp_process_resident_memory_bytes", &[]) > 0.0);
    assert_eq!(after.value("ringmcp_zone", &[all]), 0.0);
    // shard="all" is the sum of the shards, for every counter and gauge with a shard label.
    for ((name, labels), v) in &after.samples {
        if labels.get("shard").map(String::as_str) != Some("all")
            || name == "ringmcp_zone"
            || name.starts_with("ringmcp_request_duration_seconds")
        {
            continue;
        }
        let sum: f64 = ["0", "1"]
            .iter()
            .map(|sh| {
                let mut l = labels.clone();
                l.insert("shard".into(), sh.to_string());
                after
                    .samples
                    .get(&(name.clone(), l))
                    .copied()
                    .unwrap_or(0.0)
            })
            .sum();
        assert_eq!(sum, *v, "{name}{labels:?}");
    }

    // Closing the TCP connection ends its session.
    drop(c);
    let deadline = Instant::now() + SETTLE;
    loop {
        let x = scrape(&s);
        let closed = x.value(
            "ringmcp_connections_closed_total",
            &[("shard", t), ("transport", "tcp")],
        );
        let sessions = x.value("ringmcp_sessions_closed_total", &[("shard", t)]);
        if closed == 1.0 && sessions == 1.0 {
            let open = [("shard", "all"), ("transport", "tcp")];
            assert_eq!(x.value("ringmcp_connections_open", &open), 0.0);
            assert_eq!(x.value("ringmcp_sessions_open", &[all]), 1.0);
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the closed connection was not counted"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Sends requests over one TCP session until stopped: in mode 0 one unknown method to
/// two pings, in mode 1 only unknown methods.
fn error_traffic(
    s: &Server,
    mode: Arc<AtomicU8>,
    stop: Arc<AtomicBool>,
) -> std::thread::JoinHandle<u64> {
    let (mut c, _) = s.session(LATEST);
    std::thread::spawn(move || {
        let mut rounds = 0;
        while !stop.load(Ordering::Relaxed) {
            let all_errors = mode.load(Ordering::Relaxed) == 1;
            let mut ids = Vec::new();
            for i in 0..30 {
                let method = if all_errors || i % 3 == 0 {
                    "no/such"
                } else {
                    "ping"
                };
                ids.push(c.send_request(method, json!({})));
            }
            for id in ids {
                c.response(&json!(id));
            }
            rounds += 1;
        }
        rounds
    })
}

/// Polls `/health` until `want` holds; returns the last status and document.
fn wait_health(s: &Server, what: &str, want: impl Fn(u16, &Value) -> bool) -> (u16, Value) {
    let deadline = Instant::now() + SETTLE;
    loop {
        let r = get(s.admin_port, "/health");
        assert_eq!(r.header("content-type"), Some("application/json"));
        let doc = r.json();
        if want(r.status(), &doc) {
            return (r.status(), doc);
        }
        assert!(
            Instant::now() < deadline,
            "waiting for {what}; last /health: {doc}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn health_follows_the_error_ratio_through_the_zones() {
    let s = Server::start(
        2,
        &[
            "--set",
            "zones.interval_ms=200",
            "--set",
            "zones.error_ratio=[0.1, 0.2, 0.5]",
            "--set",
            "zones.error_ratio_min_responses=10",
        ],
    );
    let (status, doc) = wait_health(&s, "a first evaluation", |_, d| {
        d["process"]["evaluations"].as_u64() > Some(0)
    });
    assert_eq!(status, 200, "{doc}");
    assert_eq!(doc["zone"], "green", "{doc}");
    assert_eq!(doc["ready"], true, "{doc}");
    assert_eq!(doc["shards"].as_array().map(Vec::len), Some(2), "{doc}");
    assert_eq!(
        doc["thresholds"]["error_ratio"],
        json!([0.1, 0.2, 0.5]),
        "{doc}"
    );
    for sh in doc["shards"].as_array().unwrap() {
        assert_eq!(sh["zone"], "green", "{doc}");
        for figure in ["error_ratio", "latency_p95", "connections", "queue_depth"] {
            assert_eq!(sh["zones"][figure], "green", "{figure}: {doc}");
        }
    }

    // One error in three: orange (0.2 <= 1/3 < 0.5), and still 200.
    let mode = Arc::new(AtomicU8::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let traffic = error_traffic(&s, mode.clone(), stop.clone());
    let (status, doc) = wait_health(&s, "orange", |_, d| d["zone"] == "orange");
    assert_eq!(status, 200, "{doc}");
    let shard = doc["shards"]
        .as_array()
        .unwrap()
        .iter()
        .find(|sh| sh["zone"] == "orange")
        .unwrap_or_else(|| panic!("no orange shard: {doc}"))
        .clone();
    assert_eq!(shard["decided_by"], json!(["error_ratio"]), "{doc}");
    let ratio = shard["figures"]["error_ratio"].as_f64().unwrap();
    assert!((0.2..0.5).contains(&ratio), "{doc}");

    // Nothing but errors: red, and /health answers 503.
    mode.store(1, Ordering::Relaxed);
    let (status, doc) = wait_health(&s, "red", |_, d| d["zone"] == "red");
    assert_eq!(status, 503, "{doc}");
    assert_eq!(doc["process"]["zone"], "red", "{doc}");
    let x = scrape(&s);
    assert_eq!(x.value("ringmcp_zone", &[("shard", "all")]), 3.0);

    // The traffic stops: the windows empty out and the process is green again.
    stop.store(true, Ordering::Relaxed);
    assert!(traffic.join().unwrap() > 0);
    let (status, _) = wait_health(&s, "green again", |_, d| d["zone"] == "green");
    assert_eq!(status, 200);
    let log = s.stderr();
    for needle in [
        "shard health zone worse",
        "to=\"red\"",
        "process health zone worse",
        "process health zone better",
    ] {
        assert!(log.contains(needle), "no {needle:?} in the log:\n{log}");
    }
}

#[test]
fn ready_not_found_and_method_not_allowed() {
    let mut s = Server::start(2, &[]);
    let r = get(s.admin_port, "/ready");
    assert_eq!((r.status(), r.text()), (200, "ready\n".to_string()));
    let r = get(s.admin_port, "/nothing-here");
    assert_eq!(r.status(), 404, "{r:?}");
    let r = Http::connect(s.admin_port).request("POST", "/metrics", &[], Some(b"x"));
    assert_eq!((r.status(), r.header("allow")), (405, Some("GET")), "{r:?}");
    let r = Http::connect(s.admin_port).request("DELETE", "/health", &[], None);
    assert_eq!((r.status(), r.header("allow")), (405, Some("GET")), "{r:?}");
    // Keep-alive: three requests on one connection.
    let mut conn = Http::connect(s.admin_port);
    for path in ["/ready", "/health", "/metrics"] {
        assert_eq!(conn.request("GET", path, &[], None).status(), 200, "{path}");
    }

    // Shutdown with a request in flight: /ready says 503 while it drains.
    let (mut c, _) = s.session(LATEST);
    let id = c.send_request(
        "tools/call",
        json!({"name": "sleep_ms", "arguments": {"ms": 3000}}),
    );
    c.sync();
    s.sigterm();
    let deadline = Instant::now() + SETTLE;
    let r = loop {
        let r = get(s.admin_port, "/ready");
        if r.status() == 503 {
            break r;
        }
        assert!(Instant::now() < deadline, "/ready stayed {r:?}");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(r.text(), "not ready: shutting down\n");
    let resp = c.response(&json!(id));
    assert_eq!(text(&resp["result"]), "slept 3000 ms");
    let status = s
        .wait_exit(SETTLE)
        .expect("ringmcp did not exit after SIGTERM");
    assert_eq!(status.code(), Some(0), "{status}");
}
