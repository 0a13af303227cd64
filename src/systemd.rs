//! systemd integration without libsystemd: the `sd_notify` protocol (`READY=1`, `STATUS=`,
//! `WATCHDOG=1`, `STOPPING=1`: one datagram to the unix socket named by `$NOTIFY_SOCKET`)
//! and a watchdog that pings only while every shard is alive.
//!
//! Liveness: each shard bumps its own heartbeat counter from a glommio timer task
//! ([`ServiceManager::start_heartbeat`]). A supervisor thread pings `WATCHDOG=1` every half
//! `$WATCHDOG_USEC` only if every counter moved since the last ping, so a shard stuck in a
//! handler that never yields stops the pings and systemd restarts the service. The counters
//! are per-shard atomics padded to a cache line: no lock, no shared write.
//!
//! Everything here is a no-op when `$NOTIFY_SOCKET` is unset (not started by systemd, or a
//! unit without `Type=notify`).

use crate::runtime::StopFlag;
use crossbeam_utils::CachePadded;
use std::io;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How often the supervisor thread looks at the stop flag (for `STOPPING=1`) and at the
/// watchdog deadline.
const SUPERVISOR_TICK: Duration = Duration::from_millis(100);

/// Heartbeats per watchdog ping: a shard beats this many times between two pings, so one
/// late timer does not cost a ping.
const BEATS_PER_PING: u32 = 4;
const _: () = assert!(
    BEATS_PER_PING >= 2,
    "a shard must beat more than once per ping"
);

/// A connection to the service manager's notification socket, or nothing.
pub struct Notifier {
    target: Option<(UnixDatagram, SocketAddr)>,
}

impl Notifier {
    /// A notifier that sends nothing.
    pub fn disabled() -> Notifier {
        Notifier { target: None }
    }

    /// The socket `$NOTIFY_SOCKET` names, or a disabled notifier when it is unset. A name
    /// that starts with `@` is an abstract socket; anything else is a file system path.
    pub fn from_env() -> io::Result<Notifier> {
        match std::env::var_os("NOTIFY_SOCKET") {
            None => Ok(Notifier::disabled()),
            Some(name) => {
                let name = name.into_string().map_err(|_| {
                    io::Error::new(io::ErrorKind::InvalidInput, "NOTIFY_SOCKET is not UTF-8")
                })?;
                Notifier::to_socket(&name)
            }
        }
    }

    /// A notifier sending to the socket called `name` (`@abstract` or a path).
    pub fn to_socket(name: &str) -> io::Result<Notifier> {
        let addr = if let Some(abstract_name) = name.strip_prefix('@') {
            use std::os::linux::net::SocketAddrExt as _;
            SocketAddr::from_abstract_name(abstract_name.as_bytes())?
        } else if name.starts_with('/') {
            SocketAddr::from_pathname(name)?
        } else {
            // systemd 254 also hands out `vsock:` addresses (for virtual machines).
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                format!(
                    "NOTIFY_SOCKET={name:?}: only unix sockets (a path or @name) are supported"
                ),
            ));
        };
        Ok(Notifier {
            target: Some((UnixDatagram::unbound()?, addr)),
        })
    }

    /// Whether notifications go anywhere.
    pub fn is_enabled(&self) -> bool {
        self.target.is_some()
    }

    /// Sends one notification: newline-separated `KEY=VALUE` assignments.
    pub fn notify(&self, state: &str) -> io::Result<()> {
        match &self.target {
            None => Ok(()),
            Some((socket, addr)) => socket.send_to_addr(state.as_bytes(), addr).map(|_| ()),
        }
    }
}

/// The watchdog interval systemd expects pings within (`WatchdogSec=`), from
/// `$WATCHDOG_USEC`; `None` when it is unset, zero, or meant for another process
/// (`$WATCHDOG_PID`).
pub fn watchdog_interval() -> Option<Duration> {
    if let Ok(pid) = std::env::var("WATCHDOG_PID") {
        if pid.trim().parse::<u32>().ok() != Some(std::process::id()) {
            return None;
        }
    }
    let usec: u64 = std::env::var("WATCHDOG_USEC").ok()?.trim().parse().ok()?;
    (usec > 0).then(|| Duration::from_micros(usec))
}

/// One heartbeat counter per shard, each on its own cache line. Each shard writes only its
/// own counter; the supervisor thread only reads.
pub struct Heartbeats {
    beats: Box<[CachePadded<AtomicU64>]>,
}

impl Heartbeats {
    /// Counters for `shards` shards, all at zero.
    pub fn new(shards: usize) -> Heartbeats {
        Heartbeats {
            beats: (0..shards)
                .map(|_| CachePadded::new(AtomicU64::new(0)))
                .collect(),
        }
    }

    /// Records that `shard` is alive.
    pub fn beat(&self, shard: usize) {
        if let Some(b) = self.beats.get(shard) {
            b.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Copies every counter into `out` (which has one slot per shard).
    pub fn read_into(&self, out: &mut [u64]) {
        debug_assert_eq!(out.len(), self.beats.len());
        for (o, b) in out.iter_mut().zip(self.beats.iter()) {
            *o = b.load(Ordering::Relaxed);
        }
    }
}

/// The shards whose counter did not move between `before` and `now`.
pub fn stalled_shards(before: &[u64], now: &[u64]) -> Vec<usize> {
    before
        .iter()
        .zip(now)
        .enumerate()
        .filter(|(_, (b, n))| b == n)
        .map(|(i, _)| i)
        .collect()
}

/// Everything `ringmcp serve` tells systemd: readiness, status, stopping, watchdog pings.
pub struct ServiceManager {
    notifier: Notifier,
    heartbeats: Heartbeats,
    watchdog: Option<Duration>,
    ready_sent: AtomicBool,
    stopping_sent: AtomicBool,
}

impl ServiceManager {
    /// Reads `$NOTIFY_SOCKET` and `$WATCHDOG_USEC` for a process of `shards` shards. A
    /// notification socket that cannot be used is logged and ignored: the service still runs
    /// (systemd then reports the start as timed out, which names the problem).
    pub fn from_env(shards: usize) -> Arc<ServiceManager> {
        let notifier = Notifier::from_env().unwrap_or_else(|e| {
            tracing::warn!("cannot use NOTIFY_SOCKET: {e}; systemd will not hear from ringmcp");
            Notifier::disabled()
        });
        let watchdog = if notifier.is_enabled() {
            watchdog_interval()
        } else {
            None
        };
        Arc::new(ServiceManager::new(notifier, watchdog, shards))
    }

    /// A manager with an explicit notifier and watchdog interval.
    pub fn new(notifier: Notifier, watchdog: Option<Duration>, shards: usize) -> ServiceManager {
        ServiceManager {
            notifier,
            heartbeats: Heartbeats::new(shards),
            watchdog,
            ready_sent: AtomicBool::new(false),
            stopping_sent: AtomicBool::new(false),
        }
    }

    /// How often a shard should beat, when a watchdog is armed.
    pub fn heartbeat_period(&self) -> Option<Duration> {
        self.watchdog.map(|w| w / 2 / BEATS_PER_PING)
    }

    fn send(&self, state: &str) {
        if let Err(e) = self.notifier.notify(state) {
            tracing::warn!(
                "sd_notify {:?} failed: {e}",
                state.lines().next().unwrap_or("")
            );
        }
    }

    /// Tells systemd the service is ready (call once every shard listens). Sent once.
    pub fn ready(&self, status: &str) {
        if !self.ready_sent.swap(true, Ordering::AcqRel) {
            self.send(&format!("READY=1\nSTATUS={status}"));
        }
    }

    /// Tells systemd the service is stopping. Sent once: by the supervisor thread when the
    /// stop flag rises, or at the latest when the shards have stopped.
    pub fn stopping(&self) {
        if !self.stopping_sent.swap(true, Ordering::AcqRel) {
            self.send("STOPPING=1\nSTATUS=draining connections");
        }
    }

    /// Starts `shard`'s heartbeat: a timer task on the calling shard's executor. Call it from
    /// the shard itself; a no-op without a watchdog.
    pub fn start_heartbeat(self: &Arc<Self>, shard: usize) {
        let Some(period) = self.heartbeat_period() else {
            return;
        };
        let me = self.clone();
        glommio::spawn_local(async move {
            // Ends with the executor: a shard's executor stops when its main future returns.
            loop {
                me.heartbeats.beat(shard);
                glommio::timer::sleep(period).await;
            }
        })
        .detach();
    }

    /// Starts the supervisor thread: `STOPPING=1` once `stop` is raised, and `WATCHDOG=1`
    /// every half watchdog interval while every shard's heartbeat advances. Nothing is started
    /// when systemd is not listening.
    pub fn spawn_supervisor(self: &Arc<Self>, stop: StopFlag) -> io::Result<()> {
        if !self.notifier.is_enabled() {
            return Ok(());
        }
        let me = self.clone();
        std::thread::Builder::new()
            .name("ringmcp-systemd".into())
            .spawn(move || me.supervise(stop))?;
        Ok(())
    }

    fn supervise(&self, stop: StopFlag) {
        let shards = self.heartbeats.beats.len();
        let mut last = vec![0u64; shards];
        let mut now_beats = vec![0u64; shards];
        let ping_every = self.watchdog.map(|w| w / 2);
        let mut next_ping = Instant::now() + ping_every.unwrap_or(SUPERVISOR_TICK);
        let mut warned = false;
        loop {
            std::thread::sleep(SUPERVISOR_TICK);
            let stopping = stop.is_raised();
            if stopping {
                self.stopping();
            }
            let Some(every) = ping_every else {
                if stopping {
                    return;
                }
                continue;
            };
            if Instant::now() < next_ping {
                continue;
            }
            self.heartbeats.read_into(&mut now_beats);
            let stalled = stalled_shards(&last, &now_beats);
            if stalled.is_empty() {
                self.send("WATCHDOG=1");
                last.copy_from_slice(&now_beats);
                next_ping = Instant::now() + every;
                warned = false;
            } else {
                // Keep the old snapshot: a shard counts as alive again only once it beats.
                if !warned && self.ready_sent.load(Ordering::Acquire) {
                    tracing::warn!(
                        ?stalled,
                        "shards did not beat: withholding the watchdog ping"
                    );
                    warned = true;
                }
                next_ping = Instant::now() + SUPERVISOR_TICK;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn recv_string(sock: &UnixDatagram) -> String {
        let mut buf = [0u8; 512];
        let n = sock.recv(&mut buf).unwrap();
        String::from_utf8(buf[..n].to_vec()).unwrap()
    }

    #[test]
    fn notifies_a_path_socket() {
        let path = std::env::temp_dir().join(format!("ringmcp-notify-{}.sock", std::process::id()));
        let _ = std::fs::remove_file(&path);
        let server = UnixDatagram::bind(&path).unwrap();
        let n = Notifier::to_socket(path.to_str().unwrap()).unwrap();
        assert!(n.is_enabled());
        n.notify("READY=1").unwrap();
        assert_eq!(recv_string(&server), "READY=1");
        std::fs::remove_file(&path).unwrap();
    }

    #[test]
    fn notifies_an_abstract_socket() {
        use std::os::linux::net::SocketAddrExt as _;
        let name = format!("ringmcp-notify-test-{}", std::process::id());
        let addr = SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
        let server = UnixDatagram::bind_addr(&addr).unwrap();
        let n = Notifier::to_socket(&format!("@{name}")).unwrap();
        n.notify("WATCHDOG=1").unwrap();
        assert_eq!(recv_string(&server), "WATCHDOG=1");
    }

    #[test]
    fn unsupported_addresses_are_refused_and_disabled_sends_nothing() {
        assert!(Notifier::to_socket("vsock:2:1234").is_err());
        let n = Notifier::disabled();
        assert!(!n.is_enabled());
        n.notify("READY=1").unwrap();
    }

    #[test]
    fn ready_is_sent_once() {
        let name = format!("ringmcp-ready-test-{}", std::process::id());
        use std::os::linux::net::SocketAddrExt as _;
        let server =
            UnixDatagram::bind_addr(&SocketAddr::from_abstract_name(name.as_bytes()).unwrap())
                .unwrap();
        server.set_nonblocking(true).unwrap();
        let sm = ServiceManager::new(Notifier::to_socket(&format!("@{name}")).unwrap(), None, 2);
        sm.ready("listening");
        sm.ready("listening");
        assert_eq!(recv_string(&server), "READY=1\nSTATUS=listening");
        assert!(
            server.recv(&mut [0u8; 64]).is_err(),
            "a second READY=1 was sent"
        );
    }

    #[test]
    fn a_shard_that_does_not_beat_is_reported() {
        let hb = Heartbeats::new(3);
        let mut before = vec![0; 3];
        let mut now = vec![0; 3];
        hb.read_into(&mut before);
        hb.beat(0);
        hb.beat(2);
        hb.beat(7); // out of range: ignored
        hb.read_into(&mut now);
        assert_eq!(stalled_shards(&before, &now), vec![1]);
        hb.beat(1);
        hb.read_into(&mut now);
        assert!(stalled_shards(&before, &now).is_empty());
    }

    #[test]
    fn heartbeat_is_faster_than_the_ping() {
        let sm = ServiceManager::new(Notifier::disabled(), Some(Duration::from_secs(10)), 1);
        assert_eq!(sm.heartbeat_period(), Some(Duration::from_millis(1250)));
        let sm = ServiceManager::new(Notifier::disabled(), None, 1);
        assert_eq!(sm.heartbeat_period(), None);
    }
}
