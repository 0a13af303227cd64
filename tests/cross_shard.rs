//! Cross-shard delivery over TCP: with two shards, the kernel's SO_REUSEPORT spread puts
//! sessions on both; resource updates and list_changed notifications raised on one shard
//! must reach the sessions of every shard.

mod common;

use common::*;
use serde_json::json;
use std::collections::HashSet;

const SHARDS: u64 = 2;
/// Connections opened at first.
const CONNECTIONS: usize = 40;
/// Upper bound when the kernel keeps putting connections on one shard.
const CONNECTIONS_MAX: usize = 200;

struct Session {
    client: Client,
    shard: u64,
}

/// Opens and initializes connections until there are at least [`CONNECTIONS`] and every
/// shard holds at least two sessions (bounded by [`CONNECTIONS_MAX`]).
fn sessions_on_every_shard(s: &Server) -> Vec<Session> {
    let mut out: Vec<Session> = Vec::new();
    let mut ids = HashSet::new();
    loop {
        let per_shard: Vec<usize> = (0..SHARDS)
            .map(|k| out.iter().filter(|x| x.shard == k).count())
            .collect();
        if out.len() >= CONNECTIONS && per_shard.iter().all(|&n| n >= 2) {
            return out;
        }
        assert!(
            out.len() < CONNECTIONS_MAX,
            "after {CONNECTIONS_MAX} connections the shards hold {per_shard:?} sessions"
        );
        let rev = REVISIONS[out.len() % REVISIONS.len()];
        let (client, r) = s.session(rev);
        assert_eq!(r["protocolVersion"], rev);
        let shard = r["_meta"]["ringmcp/shard"]
            .as_u64()
            .unwrap_or_else(|| panic!("no shard in {r}"));
        assert!(shard < SHARDS, "{r}");
        let sid = r["_meta"]["ringmcp/session"]
            .as_str()
            .expect("session id")
            .to_string();
        assert!(ids.insert(sid.clone()), "session id {sid} given twice");
        out.push(Session { client, shard });
    }
}

/// The index of the first session on `shard`.
fn first_on(sessions: &[Session], shard: u64) -> usize {
    sessions
        .iter()
        .position(|x| x.shard == shard)
        .expect("a session on the shard")
}

#[test]
fn resource_updates_reach_subscribers_on_every_shard() {
    let s = Server::start(SHARDS as usize, &[]);
    let mut sessions = sessions_on_every_shard(&s);
    // The last session of each shard stays unsubscribed.
    let bystanders: HashSet<usize> = (0..SHARDS)
        .map(|k| {
            sessions
                .iter()
                .rposition(|x| x.shard == k)
                .expect("a session on the shard")
        })
        .collect();
    for (i, x) in sessions.iter_mut().enumerate() {
        if !bystanders.contains(&i) {
            let r = x
                .client
                .call("resources/subscribe", json!({"uri": "demo://counter"}));
            assert_eq!(r, json!({}));
        }
    }

    let mut expected_value = 0;
    for caller_shard in 0..SHARDS {
        let caller = first_on(&sessions, caller_shard);
        let r = sessions[caller]
            .client
            .tool("increment_counter", json!({"by": 2}));
        expected_value += 2;
        assert_eq!(text(&r), expected_value.to_string());
        for (i, x) in sessions.iter_mut().enumerate() {
            if bystanders.contains(&i) {
                continue;
            }
            let n = x.client.wait_method("notifications/resources/updated");
            assert_eq!(
                n,
                json!({"jsonrpc": "2.0", "method": "notifications/resources/updated",
                       "params": {"uri": "demo://counter"}}),
                "session {i} on shard {}",
                x.shard
            );
        }
        // Every shard has delivered the update to its subscribers by now, so anything meant
        // for a bystander would be queued before the answer to its ping.
        for &i in &bystanders {
            let x = &mut sessions[i];
            x.client.sync();
            assert!(
                x.client
                    .take_method("notifications/resources/updated")
                    .is_empty(),
                "an unsubscribed session on shard {} was notified",
                x.shard
            );
        }
        // Exactly one update per increment.
        for x in sessions.iter_mut() {
            x.client.sync();
            assert!(
                x.client
                    .take_method("notifications/resources/updated")
                    .is_empty(),
                "duplicate update on shard {}",
                x.shard
            );
        }
    }

    // Closed connections leave the registry; the others still hear updates.
    let mut kept = Vec::new();
    for (i, x) in sessions.into_iter().enumerate() {
        if i % 2 == 0 && !bystanders.contains(&i) {
            drop(x);
        } else {
            kept.push((i, x));
        }
    }
    let caller = kept
        .iter()
        .position(|(i, _)| bystanders.contains(i))
        .expect("a bystander");
    kept[caller].1.client.tool("increment_counter", json!({}));
    for (i, x) in kept.iter_mut() {
        if !bystanders.contains(i) {
            let n = x.client.wait_method("notifications/resources/updated");
            assert_eq!(n["params"]["uri"], "demo://counter");
        }
    }
    let r = kept[0]
        .1
        .client
        .call("resources/read", json!({"uri": "demo://counter"}));
    assert_eq!(r["contents"][0]["text"], (expected_value + 1).to_string());
}

#[test]
fn list_changed_reaches_sessions_on_every_shard() {
    let s = Server::start(SHARDS as usize, &[]);
    let mut sessions = sessions_on_every_shard(&s);
    for (round, caller_shard) in [0, 1].into_iter().enumerate() {
        let enabled = round == 0;
        let caller = first_on(&sessions, caller_shard);
        let r = sessions[caller].client.tool("toggle_extra_tool", json!({}));
        assert_eq!(
            text(&r),
            if enabled {
                "extra_echo enabled"
            } else {
                "extra_echo disabled"
            }
        );
        for (i, x) in sessions.iter_mut().enumerate() {
            let n = x.client.wait_method("notifications/tools/list_changed");
            assert_eq!(
                n,
                json!({"jsonrpc": "2.0", "method": "notifications/tools/list_changed", "params": {}}),
                "session {i} on shard {}",
                x.shard
            );
        }
        // The tool list changed on every shard.
        for k in 0..SHARDS {
            let i = first_on(&sessions, k);
            let tools = names(
                &sessions[i].client.call("tools/list", json!({}))["tools"],
                "name",
            );
            assert_eq!(
                tools.contains(&"extra_echo".to_string()),
                enabled,
                "shard {k}: {tools:?}"
            );
        }
        for x in sessions.iter_mut() {
            x.client.sync();
            assert!(
                x.client
                    .take_method("notifications/tools/list_changed")
                    .is_empty(),
                "duplicate list_changed on shard {}",
                x.shard
            );
        }
    }
}
