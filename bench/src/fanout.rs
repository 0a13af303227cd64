//! Subscribe mode, the parent's side: when to trigger the updates ([`Trigger`]), the
//! trigger call itself ([`fire`]: a short-lived blocking client of its own, so the call
//! shares nothing with the subscribers), and the fan-out figures ([`fan_out`]): for each
//! update, the time from the instant its call was written to the instant each
//! subscriber saw `notifications/resources/updated`.
//!
//! Every instant is `CLOCK_MONOTONIC` ([`crate::clock`]), one clock for the parent and
//! every worker process on the machine. A notification belongs to the update whose call
//! was written last before it, and counts only within `notify_timeout_ms` of that call
//! (at most the update interval, so the windows never overlap). A subscriber that has no
//! notification in an update's window missed it: missing subscribers are counted as
//! errors, never left out of the figures.

use crate::clock::now_ns;
use crate::config::{Subscribe, Target, Transport};
use crate::jsonrpc::{self, Reply, RpcId};
use crate::report::Latency;
use crate::request::{Encoder, INIT_ID};
use crate::{hgrm, http};
use serde::{Deserialize, Serialize};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// Request id of the trigger call.
const CALL_ID: u64 = 1;
/// Longest the trigger client waits for one answer.
const TRIGGER_IO_TIMEOUT_MS: u64 = 10_000;
/// Largest answer the trigger client reads.
const TRIGGER_RESPONSE_BYTES_MAX: usize = 1 << 20;

/// One trigger call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Fired {
    /// `CLOCK_MONOTONIC` ns just before the call was written (or the attempt started,
    /// when it failed before).
    pub t0_ns: u64,
    /// Connections subscribed, as the workers last reported before the call.
    pub subscribed: u64,
    /// The server's RSS (KiB, summed over its pids) read just before the call, if known.
    #[serde(default)]
    pub server_rss_kib: Option<u64>,
    /// From `t0_ns` to the call's answer, µs (`None` when the call failed).
    pub answered_us: Option<u64>,
    /// Why the call failed.
    pub error: Option<String>,
}

/// When to fire: the first update once every connection is subscribed (or when the
/// run's window would otherwise be too short for every update), the next ones
/// `update_interval_ms` after the previous call.
#[derive(Debug)]
pub struct Trigger {
    sub: Subscribe,
    target: Target,
    server_pids: Vec<u32>,
    expected: u64,
    latest_start_ns: u64,
    next_at: Option<u64>,
    /// The calls made so far.
    pub fired: Vec<Fired>,
}

impl Trigger {
    /// The trigger of a run against `target` (whose processes are `server_pids`, for
    /// their RSS before each call) whose `expected` connections start at `t0_ns` and are
    /// closed at `run_end_ns` (both absolute).
    pub fn new(
        sub: &Subscribe,
        target: &Target,
        server_pids: &[u32],
        expected: u64,
        t0_ns: u64,
        run_end_ns: u64,
    ) -> Trigger {
        // One interval of slack past the updates' span (which validation guarantees the
        // measured window holds), for the calls' own time.
        let need_ns = (sub.span_ms() + sub.update_interval_ms).saturating_mul(1_000_000);
        Trigger {
            sub: sub.clone(),
            target: target.clone(),
            server_pids: server_pids.to_vec(),
            expected,
            latest_start_ns: run_end_ns.saturating_sub(need_ns).max(t0_ns),
            next_at: None,
            fired: Vec::with_capacity(sub.updates as usize),
        }
    }

    /// Whether every update has been fired.
    pub fn done(&self) -> bool {
        self.fired.len() >= self.sub.updates as usize
    }

    /// The calls, once the run is over: an update the run ended before is reported as a
    /// failed call at `now` (so its subscribers count as missed, not left out).
    pub fn finish(mut self, now: u64, subscribed: u64) -> Vec<Fired> {
        while !self.done() {
            self.fired.push(Fired {
                t0_ns: now,
                subscribed,
                server_rss_kib: None,
                answered_us: None,
                error: Some("not triggered: the run ended first".into()),
            });
        }
        self.fired
    }

    /// Fires the update that is due at `now`, given `subscribed` connections (blocks for
    /// the call, at most the client's timeouts); answers when to be called next
    /// (`u64::MAX` once done).
    pub fn tick(&mut self, now: u64, subscribed: u64) -> u64 {
        if self.done() {
            return u64::MAX;
        }
        let at = match self.next_at {
            Some(at) => at,
            None if subscribed >= self.expected || now >= self.latest_start_ns => {
                self.next_at = Some(now);
                now
            }
            None => return self.latest_start_ns,
        };
        if now < at {
            return at;
        }
        let rss = (!self.server_pids.is_empty())
            .then(|| crate::sys::vm_rss_kib_all(&self.server_pids))
            .flatten();
        let mut f = fire(&self.target, &self.sub, subscribed);
        f.server_rss_kib = rss;
        let next = f.t0_ns + self.sub.update_interval_ms.saturating_mul(1_000_000);
        self.fired.push(f);
        self.next_at = Some(next);
        if self.done() {
            u64::MAX
        } else {
            next
        }
    }
}

/// Calls the trigger tool on a connection of its own (TCP: initialize, initialized, the
/// call; HTTP: the same as three POSTs of one session) and says when the call was
/// written and whether it succeeded.
pub fn fire(target: &Target, sub: &Subscribe, subscribed: u64) -> Fired {
    let mut t0 = now_ns();
    match call(target, sub, &mut t0) {
        Ok(done) => Fired {
            t0_ns: t0,
            subscribed,
            server_rss_kib: None,
            answered_us: Some(done.saturating_sub(t0) / 1000),
            error: None,
        },
        Err(e) => Fired {
            t0_ns: t0,
            subscribed,
            server_rss_kib: None,
            answered_us: None,
            error: Some(e),
        },
    }
}

/// What the trigger client read: status (0 over TCP), session id, the JSON-RPC reply.
struct Answer {
    status: u16,
    session: Vec<u8>,
    reply: Option<Reply>,
}

struct Client {
    s: TcpStream,
    rx: Vec<u8>,
    scratch: Vec<u8>,
    data: Vec<u8>,
    deadline: u64,
}

impl Client {
    fn connect(target: &Target) -> Result<Client, String> {
        let timeout = Duration::from_millis(TRIGGER_IO_TIMEOUT_MS);
        let s = TcpStream::connect_timeout(&SocketAddr::V4(target.addr), timeout)
            .map_err(|e| format!("connect: {e}"))?;
        let _ = s.set_nodelay(true);
        s.set_read_timeout(Some(timeout))
            .and_then(|_| s.set_write_timeout(Some(timeout)))
            .map_err(|e| format!("socket: {e}"))?;
        Ok(Client {
            s,
            rx: Vec::new(),
            scratch: Vec::new(),
            data: Vec::new(),
            deadline: 0,
        })
    }

    fn send(&mut self, bytes: &[u8]) -> Result<(), String> {
        self.deadline = now_ns() + TRIGGER_IO_TIMEOUT_MS * 1_000_000;
        self.s.write_all(bytes).map_err(|e| format!("write: {e}"))
    }

    fn read_more(&mut self) -> Result<(), String> {
        if now_ns() >= self.deadline {
            return Err("no answer in time".into());
        }
        if self.rx.len() > TRIGGER_RESPONSE_BYTES_MAX {
            return Err("answer too large".into());
        }
        let mut buf = [0u8; 16 * 1024];
        match self.s.read(&mut buf) {
            Ok(0) => Err("connection closed by the server".into()),
            Ok(n) => {
                self.rx.extend_from_slice(&buf[..n]);
                Ok(())
            }
            Err(e) => Err(format!("read: {e}")),
        }
    }

    /// The next line that answers a request (notifications are skipped).
    fn line_answer(&mut self) -> Result<Answer, String> {
        // Bounded by the deadline and the answer size (`read_more`).
        loop {
            while let Some(nl) = memchr::memchr(b'\n', &self.rx) {
                let line: Vec<u8> = self.rx.drain(..=nl).collect();
                let line = line.trim_ascii();
                if line.is_empty() {
                    continue;
                }
                match jsonrpc::classify(line).map_err(|e| e.to_string())? {
                    Reply::Other => {}
                    r => {
                        return Ok(Answer {
                            status: 0,
                            session: Vec::new(),
                            reply: Some(r),
                        })
                    }
                }
            }
            self.read_more()?;
        }
    }

    /// The next whole HTTP response (informational ones skipped).
    fn http_answer(&mut self) -> Result<Answer, String> {
        // Bounded by the deadline and the answer size (`read_more`).
        loop {
            let framed =
                http::frame_response(&self.rx, &mut self.scratch, TRIGGER_RESPONSE_BYTES_MAX)
                    .map_err(|e| e.to_string())?;
            let Some(f) = framed else {
                self.read_more()?;
                continue;
            };
            let status = f.head.status;
            let session = f
                .head
                .session_id
                .clone()
                .map(|r| self.rx[r].to_vec())
                .unwrap_or_default();
            let body: Vec<u8> = match &f.body {
                http::Body::Input(r) => self.rx[r.clone()].to_vec(),
                http::Body::Scratch => self.scratch.clone(),
            };
            self.rx.drain(..f.consumed);
            if (100..200).contains(&status) {
                continue;
            }
            let reply = if f.head.sse {
                let mut found = None;
                http::sse_events(&body, &mut self.data, |d| match jsonrpc::classify(d) {
                    Ok(Reply::Other) => true,
                    Ok(r) => {
                        found = Some(r);
                        false
                    }
                    Err(_) => false,
                });
                found
            } else if body.is_empty() {
                None
            } else {
                Some(jsonrpc::classify(&body).map_err(|e| e.to_string())?)
            };
            return Ok(Answer {
                status,
                session,
                reply,
            });
        }
    }
}

/// Checks that `a` is a successful answer to request `id`.
fn expect_result(a: &Answer, id: u64, what: &str) -> Result<(), String> {
    match a.reply {
        Some(Reply::Result {
            id: Some(RpcId::Num(got)),
            tool_error: false,
        }) if got == id => Ok(()),
        Some(Reply::Result {
            tool_error: true, ..
        }) => Err(format!("{what}: the tool answered isError")),
        Some(Reply::Error { code, .. }) => Err(format!("{what}: JSON-RPC error {code}")),
        _ if a.status != 0 && a.status != 200 => Err(format!("{what}: HTTP {}", a.status)),
        _ => Err(format!("{what}: unexpected answer")),
    }
}

/// The trigger call; sets `t0` just before writing it and answers when its answer came.
fn call(target: &Target, sub: &Subscribe, t0: &mut u64) -> Result<u64, String> {
    let enc = Encoder::new(target, &sub.trigger_tool, &sub.trigger_arguments);
    let mut c = Client::connect(target)?;
    let mut out = Vec::new();
    match target.transport {
        Transport::Tcp => {
            enc.push_initialize(&mut out);
            c.send(&out)?;
            expect_result(&c.line_answer()?, INIT_ID, "initialize")?;
            out.clear();
            enc.push_call(&mut out, CALL_ID, None);
            *t0 = now_ns();
            c.send(&out)?;
            expect_result(&c.line_answer()?, CALL_ID, "tools/call")?;
        }
        Transport::Http => {
            enc.push_initialize(&mut out);
            c.send(&out)?;
            let a = c.http_answer()?;
            expect_result(&a, INIT_ID, "initialize")?;
            if a.session.is_empty() {
                return Err("initialize: no Mcp-Session-Id".into());
            }
            out.clear();
            enc.push_initialized(&mut out, &a.session);
            c.send(&out)?;
            let b = c.http_answer()?;
            if b.status != 202 && b.status != 200 {
                return Err(format!("notifications/initialized: HTTP {}", b.status));
            }
            out.clear();
            enc.push_call(&mut out, CALL_ID, Some(&a.session));
            *t0 = now_ns();
            c.send(&out)?;
            expect_result(&c.http_answer()?, CALL_ID, "tools/call")?;
        }
        Transport::HttpStateless => {
            enc.push_call(&mut out, CALL_ID, None);
            *t0 = now_ns();
            c.send(&out)?;
            expect_result(&c.http_answer()?, CALL_ID, "tools/call")?;
        }
    }
    Ok(now_ns())
}

/// One update's fan-out.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UpdateReport {
    /// 1-based.
    pub index: usize,
    /// When its call was written, seconds after the measurement's start (negative: in
    /// the warm-up).
    pub at_s: f64,
    /// Connections subscribed when it was triggered (as last reported by the workers).
    pub subscribed_at_trigger: u64,
    /// The server's RSS just before its call, KiB (with `--server-pid`).
    #[serde(default)]
    pub server_rss_kib: Option<u64>,
    /// The trigger call's own round trip, µs (`None`: it failed).
    pub call_us: Option<u64>,
    /// Why the trigger call failed.
    pub error: Option<String>,
    /// Subscribers that saw it within the timeout.
    pub received: u64,
    /// Subscribers that did not (errors).
    pub missed: u64,
    /// From the call's write to each subscriber's notification.
    pub latency: Latency,
    /// That latency's histogram, HdrHistogram V2 deflate base64.
    pub histogram: String,
}

/// What subscribe mode measured.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FanoutReport {
    /// The subscribed resource.
    pub uri: String,
    /// The trigger tool.
    pub trigger_tool: String,
    /// Subscribers expected: every connection of the run.
    pub subscribers: u64,
    /// A notification counts within this long of its update's call.
    pub timeout_ms: u64,
    /// Per update.
    pub updates: Vec<UpdateReport>,
    /// Notifications that reached a subscriber in time, all updates.
    pub received: u64,
    /// Subscriber-updates without one (errors), all updates.
    pub missed: u64,
    /// Notifications that came after their update's timeout.
    pub late: u64,
    /// Second notifications of one update on one connection.
    pub duplicates: u64,
    /// Notifications before the first call.
    pub unmatched: u64,
    /// Notifications counted but not recorded (past the per-connection bound).
    pub unrecorded: u64,
    /// Trigger calls that failed.
    pub trigger_errors: u64,
    /// Latency over every update.
    pub latency: Latency,
    /// Its histogram, HdrHistogram V2 deflate base64.
    pub histogram: String,
}

/// The fan-out figures: `notified` holds (connection, instant) of every notification
/// the workers recorded (sorted here), `fired` the calls in order, `subscribers` how many
/// connections should have seen each update, `measure_start_ns` the measurement's start.
pub fn fan_out(
    sub: &Subscribe,
    fired: &[Fired],
    notified: &mut [(u32, u64)],
    unrecorded: u64,
    subscribers: u64,
    measure_start_ns: u64,
) -> FanoutReport {
    let timeout_ns = sub.notify_timeout_ms.saturating_mul(1_000_000);
    let mut hists: Vec<_> = fired.iter().map(|_| hgrm::new_histogram()).collect();
    let mut all = hgrm::new_histogram();
    let (mut late, mut duplicates, mut unmatched) = (0u64, 0u64, 0u64);
    notified.sort_unstable();
    let mut seen = vec![false; fired.len()];
    let mut cur: Option<u32> = None;
    for &(g, t) in notified.iter() {
        if cur != Some(g) {
            cur = Some(g);
            seen.iter_mut().for_each(|s| *s = false);
        }
        // The last call written before the notification (calls are in time order).
        let k = fired.partition_point(|f| f.t0_ns <= t);
        if k == 0 {
            unmatched += 1;
            continue;
        }
        let k = k - 1;
        let dt = t - fired[k].t0_ns;
        if dt >= timeout_ns {
            late += 1;
        } else if seen[k] {
            duplicates += 1;
        } else {
            seen[k] = true;
            let us = (dt / 1000).max(1);
            hists[k].saturating_record(us);
            all.saturating_record(us);
        }
    }
    let updates: Vec<UpdateReport> = fired
        .iter()
        .zip(&hists)
        .enumerate()
        .map(|(i, (f, h))| UpdateReport {
            index: i + 1,
            at_s: (f.t0_ns as f64 - measure_start_ns as f64) / 1e9,
            subscribed_at_trigger: f.subscribed,
            server_rss_kib: f.server_rss_kib,
            call_us: f.answered_us,
            error: f.error.clone(),
            received: h.len(),
            missed: subscribers.saturating_sub(h.len()),
            latency: Latency::of(h),
            histogram: hgrm::encode(h).unwrap_or_default(),
        })
        .collect();
    FanoutReport {
        uri: sub.uri.clone(),
        trigger_tool: sub.trigger_tool.clone(),
        subscribers,
        timeout_ms: sub.notify_timeout_ms,
        received: updates.iter().map(|u| u.received).sum(),
        missed: updates.iter().map(|u| u.missed).sum(),
        late,
        duplicates,
        unmatched,
        unrecorded,
        trigger_errors: fired.iter().filter(|f| f.error.is_some()).count() as u64,
        latency: Latency::of(&all),
        histogram: hgrm::encode(&all).unwrap_or_default(),
        updates,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fired(t0s: &[u64]) -> Vec<Fired> {
        t0s.iter()
            .map(|&t0_ns| Fired {
                t0_ns,
                subscribed: 3,
                server_rss_kib: None,
                answered_us: Some(100),
                error: None,
            })
            .collect()
    }

    const MS: u64 = 1_000_000;

    #[test]
    fn notifications_are_matched_to_updates_and_misses_counted() {
        let sub = Subscribe {
            updates: 2,
            update_interval_ms: 1_000,
            notify_timeout_ms: 500,
            ..Subscribe::default()
        };
        let base = 10_000 * MS;
        let f = fired(&[base, base + 1_000 * MS]);
        // Connection 0 sees both (2 ms, 3 ms), with a duplicate of the first; connection 1
        // sees the first at 40 ms and the second only after its timeout; connection 2
        // sees nothing but one notification from before the first call.
        let mut n = vec![
            (0, base + 1_000 * MS + 3 * MS),
            (1, base + 40 * MS),
            (0, base + 2 * MS),
            (0, base + 5 * MS),
            (1, base + 1_000 * MS + 600 * MS),
            (2, base - MS),
        ];
        let r = fan_out(&sub, &f, &mut n, 4, 3, base - 2_000 * MS);
        assert_eq!(r.subscribers, 3);
        assert_eq!(r.updates.len(), 2);
        let (u1, u2) = (&r.updates[0], &r.updates[1]);
        assert_eq!((u1.received, u1.missed), (2, 1));
        assert_eq!((u2.received, u2.missed), (1, 2));
        assert!(u1.latency.max_us >= 39_900 && u1.latency.max_us <= 40_100);
        assert!(u1.latency.min_us >= 1_990 && u1.latency.min_us <= 2_010);
        assert!(u2.latency.max_us >= 2_990 && u2.latency.max_us <= 3_010);
        assert!((u1.at_s - 2.0).abs() < 1e-9);
        assert_eq!((r.received, r.missed), (3, 3));
        assert_eq!(
            (r.late, r.duplicates, r.unmatched, r.unrecorded),
            (1, 1, 1, 4)
        );
        assert_eq!(r.latency.count, 3);
        assert_eq!(r.trigger_errors, 0);
    }

    #[test]
    fn a_failed_trigger_is_reported_and_nobody_is_dropped() {
        let sub = Subscribe {
            updates: 1,
            ..Subscribe::default()
        };
        let mut f = fired(&[5 * MS]);
        f[0].error = Some("connect: refused".into());
        f[0].answered_us = None;
        let r = fan_out(&sub, &f, &mut [], 0, 50, 0);
        assert_eq!(r.trigger_errors, 1);
        assert_eq!(r.updates[0].missed, 50);
        assert_eq!(r.missed, 50);
        assert_eq!(r.updates[0].latency, Latency::default());
    }

    #[test]
    fn trigger_waits_for_every_subscriber_or_the_latest_start() {
        let sub = Subscribe {
            updates: 2,
            update_interval_ms: 1_000,
            notify_timeout_ms: 1_000,
            ..Subscribe::default()
        };
        // A port nothing listens on: the calls fail fast, and are still recorded.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .unwrap();
        let target = Target::parse(&format!("tcp://127.0.0.1:{port}")).unwrap();
        let t0 = now_ns();
        let end = t0 + 10_000 * MS;
        let mut t = Trigger::new(&sub, &target, &[], 10, t0, end);
        // 10 - (1 + 1 + 1) s: the latest first call.
        let latest = end - 3_000 * MS;
        assert_eq!(t.tick(t0, 9), latest);
        assert!(t.fired.is_empty());
        // All subscribed: the first call goes now, the next an interval later.
        let now = now_ns();
        let next = t.tick(now, 10);
        assert_eq!(t.fired.len(), 1);
        assert!(t.fired[0].error.is_some());
        assert_eq!(next, t.fired[0].t0_ns + 1_000 * MS);
        assert_eq!(t.tick(next - 1, 10), next);
        assert_eq!(t.tick(next, 3), u64::MAX);
        assert!(t.done());
        assert_eq!(t.fired[1].subscribed, 3);
        // A run that ends before its updates still reports every one of them.
        let mut t = Trigger::new(&sub, &target, &[], 10, t0, end);
        t.tick(t0, 0);
        let fired = t.finish(end, 4);
        assert_eq!(fired.len(), 2);
        assert!(fired.iter().all(|f| f.error.is_some() && f.subscribed == 4));
        let r = fan_out(&sub, &fired, &mut [], 0, 10, t0);
        assert_eq!((r.missed, r.trigger_errors), (20, 2));
    }
}
