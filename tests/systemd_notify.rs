//! `ringmcp serve` under a service manager: with `$NOTIFY_SOCKET` and `$WATCHDOG_USEC` set,
//! it sends READY=1 once it listens, WATCHDOG=1 while its shards run, and STOPPING=1 on
//! SIGTERM, then exits 0. The test plays systemd's part with a unix datagram socket.

mod common;

use common::{read_lines, serve_on_any_port, sigterm_child, wait_timeout, Spawned};
use std::os::unix::net::UnixDatagram;
use std::process::Stdio;
use std::time::{Duration, Instant};

fn recv(sock: &UnixDatagram, until: Instant) -> Option<String> {
    let left = until.saturating_duration_since(Instant::now());
    sock.set_read_timeout(Some(left.max(Duration::from_millis(1))))
        .unwrap();
    let mut buf = [0u8; 1024];
    let n = sock.recv(&mut buf).ok()?;
    Some(String::from_utf8_lossy(&buf[..n]).into_owned())
}

#[test]
fn serve_notifies_ready_watchdog_and_stopping() {
    let path = std::env::temp_dir().join(format!("ringmcp-notify-it-{}.sock", std::process::id()));
    let _ = std::fs::remove_file(&path);
    let sock = UnixDatagram::bind(&path).expect("bind the notify socket");
    let mut child = Spawned::spawn(
        serve_on_any_port(2)
            .env("NOTIFY_SOCKET", &path)
            // 400 ms: a ping every 200 ms, a heartbeat every 50 ms.
            .env("WATCHDOG_USEC", "400000")
            .env_remove("WATCHDOG_PID")
            .stdout(Stdio::null())
            .stderr(Stdio::null()),
    );

    let deadline = Instant::now() + Duration::from_secs(20);
    let mut got = Vec::new();
    // READY=1 first, then at least two watchdog pings.
    while got.iter().filter(|m: &&String| *m == "WATCHDOG=1").count() < 2 {
        match recv(&sock, deadline) {
            Some(m) => got.push(m),
            None => {
                let _ = child.kill();
                panic!("no READY=1 and two WATCHDOG=1 within 20 s; got {got:?}");
            }
        }
    }
    assert!(
        got[0].starts_with("READY=1\nSTATUS=listening on 127.0.0.1:0 (tcp), http://127.0.0.1:0/mcp (http), http://127.0.0.1:0/metrics (admin), 2 shards"),
        "{got:?}"
    );

    sigterm_child(&child);
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut stopping = false;
    while let Some(m) = recv(&sock, deadline) {
        if m.starts_with("STOPPING=1") {
            stopping = true;
            break;
        }
    }
    let status = wait_timeout(&mut child, Duration::from_secs(20));
    let _ = std::fs::remove_file(&path);
    assert!(stopping, "no STOPPING=1 after SIGTERM");
    assert!(status.success(), "{status:?}");
}

#[test]
fn serve_without_notify_socket_runs_as_before() {
    // No NOTIFY_SOCKET: nothing is sent, the process starts and stops as it always did.
    let mut child = Spawned::spawn(
        serve_on_any_port(1)
            .env_remove("NOTIFY_SOCKET")
            .env("WATCHDOG_USEC", "1000")
            .stdout(Stdio::null())
            .stderr(Stdio::piped()),
    );
    let (rx, reader) = read_lines(child.stderr.take().unwrap());
    let mut log = String::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !log.contains("listening on") {
        match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok(line) => {
                log.push_str(&line);
                log.push('\n');
            }
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("ringmcp did not start within 20 s:\n{log}");
            }
        }
    }
    sigterm_child(&child);
    let status = wait_timeout(&mut child, Duration::from_secs(20));
    reader.join().unwrap();
    log.extend(rx.try_iter().map(|l| l + "\n"));
    assert!(status.success(), "{log}");
    assert!(!log.contains("sd_notify"), "{log}");
    assert!(!log.contains("NOTIFY_SOCKET"), "{log}");
}
