//! The load generator's subscribe mode (what `ringmcp-load scenario hold` runs) against the
//! real `ringmcp serve --shards 2`: 50 connections subscribe to `demo://counter` (over TCP
//! on the session; over Streamable HTTP with `resources/subscribe` and then the session's
//! standalone `GET` stream), the generator calls `increment_counter` on a connection of
//! its own, and every subscriber must see every update. Counts only, no timing: the
//! notification timeout is a second for a fan-out to 50 local sockets.

mod common;

use common::Server;
use ringmcp_bench::config::Subscribe;
use ringmcp_bench::{run, RunConfig, RunReport, Target};

const CONNECTIONS: usize = 50;
const UPDATES: u32 = 2;

fn subscribe_run(url: &str, uri: &str) -> RunReport {
    let sub = Subscribe {
        uri: uri.into(),
        updates: UPDATES,
        update_interval_ms: 1_000,
        notify_timeout_ms: 1_000,
        ..Subscribe::default()
    };
    let cfg = RunConfig {
        target: Target::parse(url).expect("target"),
        connections: CONNECTIONS,
        warmup_ms: 500,
        // Room for the connections to subscribe before the updates must start.
        duration_ms: sub.span_ms() + sub.update_interval_ms + 2_000,
        threads: 2,
        subscribe: Some(sub),
        ..RunConfig::default()
    };
    run(&cfg).expect("the run completes")
}

#[test]
fn every_subscriber_sees_every_update_over_tcp_and_http() {
    let server = Server::start(2, &[]);
    for url in [
        format!("tcp://127.0.0.1:{}", server.port),
        format!("http://127.0.0.1:{}/mcp", server.http_port),
    ] {
        let r = subscribe_run(&url, "demo://counter");
        let text = r.render();
        let f = r.fanout.as_ref().expect("a fan-out report");
        assert_eq!(r.conns.made, CONNECTIONS as u64, "{url}: {text}");
        assert_eq!(r.conns.failed, 0, "{url}: {text}");
        assert_eq!(f.subscribers, CONNECTIONS as u64, "{url}");
        assert_eq!(f.updates.len(), UPDATES as usize, "{url}: {text}");
        for u in &f.updates {
            assert_eq!(u.error, None, "{url}: {text}");
            assert_eq!(u.subscribed_at_trigger, CONNECTIONS as u64, "{url}: {text}");
            assert_eq!(u.received, CONNECTIONS as u64, "{url}: {text}");
            assert_eq!(u.missed, 0, "{url}: {text}");
            assert_eq!(u.latency.count, CONNECTIONS as u64, "{url}: {text}");
        }
        assert_eq!(
            (f.late, f.duplicates, f.unmatched, f.unrecorded),
            (0, 0, 0, 0),
            "{url}: {text}"
        );
        assert_eq!(r.errors_total, 0, "{url}: {text}");
        // No calls from the subscribers: only the handshake and the subscription.
        assert_eq!(r.sent, 0, "{url}: {text}");
    }
}

#[test]
fn subscribers_of_another_resource_count_as_missed() {
    // demo://readme exists and may be subscribed to, but increment_counter only updates
    // demo://counter: every subscriber misses every update, and each miss is an error.
    let server = Server::start(2, &[]);
    for url in [
        format!("tcp://127.0.0.1:{}", server.port),
        format!("http://127.0.0.1:{}/mcp", server.http_port),
    ] {
        let r = subscribe_run(&url, "demo://readme");
        let text = r.render();
        let f = r.fanout.as_ref().expect("a fan-out report");
        assert_eq!(r.conns.made, CONNECTIONS as u64, "{url}: {text}");
        assert_eq!(f.received, 0, "{url}: {text}");
        let missed = CONNECTIONS as u64 * u64::from(UPDATES);
        assert_eq!(f.missed, missed, "{url}: {text}");
        assert_eq!(r.errors["notification-missed"], missed, "{url}: {text}");
        assert!(f.updates.iter().all(|u| u.error.is_none()), "{url}: {text}");
    }
}
