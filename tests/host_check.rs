//! `ringmcp check-host` and the start-up check of `ringmcp serve`, run on this machine: the
//! report must show the process's real RLIMIT_NOFILE, and a connection count the limit cannot
//! hold must fail (check-host exits non-zero, serve refuses to start) with the fix named.

mod common;

use common::{read_lines, serve_on_any_port, sigterm_child, wait_timeout, Spawned};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_ringmcp");

/// The descriptors ringmcp reserves besides connections with one shard and one listener
/// (hostcheck: 64 + shards x (16 + listeners)).
const RESERVE_ONE_SHARD: u64 = 64 + 16 + 1;

fn nofile() -> (u64, u64) {
    let mut r = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `r` is a valid rlimit for getrlimit to fill.
    assert_eq!(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) }, 0);
    (r.rlim_cur, r.rlim_max)
}

fn fmt_limit(v: u64) -> String {
    if v == libc::RLIM_INFINITY {
        "unlimited".into()
    } else {
        v.to_string()
    }
}

fn check_host(args: &[&str]) -> (ExitStatus, String, String) {
    let out = Command::new(BIN)
        .arg("check-host")
        .args(args)
        .output()
        .expect("run ringmcp check-host");
    (
        out.status,
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The report line of one check: "<status> <name> <found>".
fn line_of<'a>(report: &'a str, name: &str) -> &'a str {
    report
        .lines()
        .find(|l| l.split_whitespace().nth(1) == Some(name))
        .unwrap_or_else(|| panic!("no {name} line in:\n{report}"))
}

#[test]
fn check_host_reports_the_real_open_file_limit() {
    let (soft, hard) = nofile();
    let (status, out, err) = check_host(&["--shards", "1", "--connections", "1000"]);
    let line = line_of(&out, "RLIMIT_NOFILE");
    assert!(
        line.contains(&format!(
            "soft {}, hard {}",
            fmt_limit(soft),
            fmt_limit(hard)
        )),
        "RLIMIT_NOFILE is soft {soft}, hard {hard}; the report says:\n{line}"
    );
    // Every check prints what ringmcp needs; each failing or tunable one prints a fix.
    for name in [
        "kernel",
        "io_uring",
        "fs.nr_open",
        "fs.file-max",
        "RLIMIT_MEMLOCK",
        "net.core.somaxconn",
        "net.ipv4.tcp_mem",
        "CPUs",
    ] {
        line_of(&out, name);
    }
    assert!(out.contains(&format!("needs: >= {}", 1000 + RESERVE_ONE_SHARD)));
    if hard >= 1000 + RESERVE_ONE_SHARD {
        assert!(status.success(), "{out}\n{err}");
        assert!(
            out.contains("READY: this host can hold 1000 connections"),
            "{out}"
        );
    }
}

#[test]
fn check_host_fails_honestly_for_100k_connections() {
    let (_, hard) = nofile();
    let (status, out, err) = check_host(&["--shards", "1", "--connections", "100000"]);
    let line = line_of(&out, "RLIMIT_NOFILE");
    if hard >= 100_000 + RESERVE_ONE_SHARD {
        // A host that really can (not this development box: 20,000 here).
        assert!(line.starts_with("ok"), "{line}");
        return;
    }
    assert!(
        !status.success(),
        "exit 0 for 100000 connections with RLIMIT_NOFILE {hard}:\n{out}"
    );
    assert!(line.starts_with("FAIL"), "{line}");
    assert!(
        out.contains("LimitNOFILE=1048576"),
        "the fix is not named:\n{out}"
    );
    assert!(out.contains("NOT READY for 100000 connections"), "{out}");
    assert!(err.contains("RLIMIT_NOFILE"), "{err}");
}

#[test]
fn check_host_reads_the_target_from_the_config() {
    let (_, hard) = nofile();
    let (status, out, _) =
        check_host(&["--shards", "1", "--set", "server.connections_target=100000"]);
    assert!(out.contains("hold 100000 concurrent connections"), "{out}");
    assert_eq!(
        status.success(),
        hard >= 100_000 + RESERVE_ONE_SHARD,
        "{out}"
    );
}

#[test]
fn serve_refuses_a_connection_target_the_host_cannot_hold() {
    let (_, hard) = nofile();
    if hard >= 100_000 + RESERVE_ONE_SHARD {
        eprintln!("skipped: RLIMIT_NOFILE {hard} holds 100000 connections on this host");
        return;
    }
    let mut child = Spawned::spawn(
        serve_on_any_port(1)
            .args(["--set", "server.connections_target=100000"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped()),
    );
    let status = wait_timeout(&mut child, Duration::from_secs(20));
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
    assert_eq!(status.code(), Some(1), "{err}");
    assert!(
        err.contains("this host cannot hold server.connections_target = 100000 connections"),
        "{err}"
    );
    assert!(err.contains("RLIMIT_NOFILE"), "{err}");
    assert!(err.contains("--allow-unready-host"), "{err}");
    assert!(!err.contains("listening on"), "it started anyway:\n{err}");
}

#[test]
fn serve_starts_on_an_unready_host_when_allowed() {
    let mut child = Spawned::spawn(
        serve_on_any_port(1)
            .args(["--set", "server.connections_target=100000000"])
            .arg("--allow-unready-host")
            .stdout(Stdio::null())
            .stderr(Stdio::piped()),
    );
    let (rx, _) = read_lines(child.stderr.take().unwrap());
    let mut log = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !log.iter().any(|l: &String| l.contains("listening on")) {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) => log.push(line),
            Err(_) => {
                let _ = child.kill();
                panic!("ringmcp did not start:\n{}", log.join("\n"));
            }
        }
    }
    sigterm_child(&child);
    let status = wait_timeout(&mut child, Duration::from_secs(20));
    assert!(status.success(), "{}", log.join("\n"));
    let log = log.join("\n");
    assert!(
        log.contains("starting anyway (--allow-unready-host)"),
        "{log}"
    );
    assert!(log.contains("RLIMIT_NOFILE"), "{log}");
}
