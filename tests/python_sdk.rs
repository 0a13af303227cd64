//! The official MCP Python SDK client (PyPI `mcp`) driving `ringmcp stdio`, and `ringmcp
//! serve` over Streamable HTTP and the legacy HTTP+SSE transport; plus two raw stdio checks
//! that need nothing but std.
//!
//! The SDK tests keep a virtualenv at `target/py-sdk-venv` (next to the profile directory of
//! the ringmcp binary under test), built with `python3 -m venv` and `pip install -r
//! tests/python/requirements.txt`, and reuses it while its marker file matches the
//! requirements and the interpreter. It never skips: without python3, the venv module or
//! access to PyPI it fails and says what to install. `RINGMCP_PYTHON` may name another
//! interpreter than `python3`.

mod common;

use common::external::{
    describe, fnv1a64, marker_matches, remove_stale, run_client_checks, run_logged, target_dir,
    with_file_lock, write_marker,
};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{mpsc, OnceLock};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_ringmcp");
/// Also makes cargo rebuild this test when the requirements change.
const REQUIREMENTS: &str = include_str!("python/requirements.txt");
const REQUIREMENTS_PATH: &str =
    concat!(env!("CARGO_MANIFEST_DIR"), "/tests/python/requirements.txt");
const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/python/stdio_client.py");
const HTTP_SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/python/http_client.py");
const LIMITS_SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/python/limits_client.py");
/// One tool call per second per session, no burst: the second call in a row is refused.
const TOOL_RATE_ARGS: [&str; 4] = [
    "--set",
    "limits.tool_calls_per_session_per_s=1",
    "--set",
    "limits.tool_calls_per_session_burst=1",
];
const MARKER: &str = ".ringmcp-requirements";
const INSTALL_HINT: &str = "install Python 3.10 or newer with its venv module \
     (Debian/Ubuntu: apt-get install -y python3 python3-venv), with access to PyPI";

const INITIALIZE: &str = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"python_sdk.rs","version":"0"}}}"#;
const INITIALIZED: &str = r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#;

#[test]
fn official_python_sdk_client_drives_stdio() {
    let python = venv_python(&ensure_venv());
    let output = run_python_client(
        &python,
        SCRIPT,
        ("RINGMCP_BIN", BIN.to_string()),
        "py-sdk-stdio-client",
        "the Python SDK client",
    );
    eprintln!("{}", output.trim_end());
}

/// Streamable HTTP (with two shards, so the SDK's connections reach both) and the legacy
/// HTTP+SSE transport, each driven by the SDK's own client transport.
#[test]
fn official_python_sdk_client_drives_streamable_http() {
    let python = venv_python(&ensure_venv());
    let server = common::Server::start(2, &[]);
    let output = run_python_client(
        &python,
        HTTP_SCRIPT,
        (
            "RINGMCP_HTTP_BASE",
            format!("http://127.0.0.1:{}", server.http_port),
        ),
        "py-sdk-http-client",
        "the Python SDK HTTP client",
    );
    eprintln!(
        "{}",
        output
            .lines()
            .filter(|l| !l.starts_with("INFO "))
            .collect::<Vec<_>>()
            .join("\n")
    );
}

/// A rate-limited `tools/call` reaches the SDK's caller as an `McpError` with code -32005,
/// the reason in its message and `data.retryAfterMs`; after that wait the next call passes.
/// Over stdio, over Streamable HTTP (the refused POST is answered 200 with the JSON-RPC error
/// and `Retry-After`, so the SDK keeps its transport and session: a 429 would tear both down),
/// and over the legacy HTTP+SSE transport (answers on the event stream).
#[test]
fn official_python_sdk_client_sees_a_rate_limit_as_an_mcp_error() {
    let python = venv_python(&ensure_venv());
    let server = common::Server::start(1, &TOOL_RATE_ARGS);
    let output = run_client_checks(
        Command::new(&python)
            .arg(LIMITS_SCRIPT)
            .env("RINGMCP_BIN", BIN)
            .env("RINGMCP_ARGS", TOOL_RATE_ARGS.join(" "))
            .env(
                "RINGMCP_HTTP_BASE",
                format!("http://127.0.0.1:{}", server.http_port),
            )
            .env("PYTHONUNBUFFERED", "1")
            .env("PYTHONDONTWRITEBYTECODE", "1"),
        "py-sdk-limits-client",
        Duration::from_secs(120),
        "the Python SDK client under rate limits",
    );
    eprintln!(
        "{}",
        output
            .lines()
            .filter(|l| !l.starts_with("INFO "))
            .collect::<Vec<_>>()
            .join("\n")
    );
}

/// Runs one of the SDK client scripts with the venv's interpreter and `env` set; it must pass
/// its checks. Returns its output.
fn run_python_client(
    python: &Path,
    script: &str,
    env: (&str, String),
    log_name: &str,
    client: &str,
) -> String {
    run_client_checks(
        Command::new(python)
            .arg(script)
            .env(env.0, env.1)
            .env("PYTHONUNBUFFERED", "1")
            .env("PYTHONDONTWRITEBYTECODE", "1"),
        log_name,
        Duration::from_secs(120),
        client,
    )
}

/// The smoke test the README's stdio section implies: piped requests, stdin closing while a
/// request is still running; every response arrives, stdout holds only JSON-RPC lines, exit 0.
#[test]
fn stdio_answers_requests_in_flight_when_stdin_closes() {
    let mut child = Command::new(BIN)
        .arg("stdio")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn ringmcp stdio");
    let mut stdin = child.stdin.take().unwrap();
    for line in [
        INITIALIZE,
        INITIALIZED,
        r#"{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"sleep_ms","arguments":{"ms":300}}}"#,
        r#"{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"echo","arguments":{"text":"hi"}}}"#,
    ] {
        writeln!(stdin, "{line}").unwrap();
    }
    drop(stdin);
    let waiter = std::thread::spawn(move || child.wait_with_output());
    let deadline = Instant::now() + Duration::from_secs(20);
    while !waiter.is_finished() {
        assert!(
            Instant::now() < deadline,
            "ringmcp stdio did not exit within 20s of stdin closing"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let out = waiter.join().unwrap().expect("wait for ringmcp stdio");
    let stdout = String::from_utf8(out.stdout).expect("stdout is UTF-8");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "ringmcp stdio exited with {}; stderr:\n{stderr}",
        out.status
    );
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(
        lines.len(),
        3,
        "three responses expected on stdout:\n{stdout}\nstderr:\n{stderr}"
    );
    for line in &lines {
        assert!(
            line.starts_with(r#"{"jsonrpc":"2.0","#) && line.ends_with('}'),
            "a stdout line that is not JSON-RPC: {line}"
        );
    }
    assert!(
        lines[0].starts_with(r#"{"jsonrpc":"2.0","id":1,"result":{"protocolVersion":"2025-06-18""#),
        "{}",
        lines[0]
    );
    let echo = r#"{"jsonrpc":"2.0","id":3,"result":{"content":[{"type":"text","text":"hi"}]}}"#;
    let slept =
        r#"{"jsonrpc":"2.0","id":2,"result":{"content":[{"type":"text","text":"slept 300 ms"}]}}"#;
    assert_eq!(lines[1..], [echo, slept], "responses after initialize");
}

/// An interactive client keeps stdin open and waits for each response before it writes
/// again: responses must be written while stdin is still open.
#[test]
fn stdio_answers_while_stdin_stays_open() {
    let mut child = Command::new(BIN)
        .arg("stdio")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn ringmcp stdio");
    let mut stdin = child.stdin.take().unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut exchange = |request: &str, want_prefix: &str| {
        writeln!(stdin, "{request}").unwrap();
        stdin.flush().unwrap();
        match rx.recv_timeout(Duration::from_secs(10)) {
            Ok(Ok(line)) => assert!(
                line.starts_with(want_prefix),
                "expected {want_prefix}…, got {line}"
            ),
            other => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("no response within 10s while stdin stays open ({other:?}) to {request}");
            }
        }
    };
    exchange(
        INITIALIZE,
        r#"{"jsonrpc":"2.0","id":1,"result":{"protocolVersion":"2025-06-18""#,
    );
    for id in 2..5 {
        // The first call follows the initialized notification, which gets no answer.
        let before = if id == 2 {
            format!("{INITIALIZED}\n")
        } else {
            String::new()
        };
        exchange(
            &format!(
                r#"{before}{{"jsonrpc":"2.0","id":{id},"method":"tools/call","params":{{"name":"echo","arguments":{{"text":"n{id}"}}}}}}"#
            ),
            &format!(
                r#"{{"jsonrpc":"2.0","id":{id},"result":{{"content":[{{"type":"text","text":"n{id}"}}]}}}}"#
            ),
        );
    }
    drop(stdin);
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("ringmcp stdio did not exit within 20s of stdin closing");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    assert!(status.success(), "ringmcp stdio exited with {status}");
}

/// The virtualenv with the pinned SDK, built at most once per test process (the tests of
/// this file run in parallel threads) and by one test process at a time (a debug and a
/// release run share it).
fn ensure_venv() -> PathBuf {
    static VENV: OnceLock<PathBuf> = OnceLock::new();
    VENV.get_or_init(|| {
        let lock = target_dir().join("py-sdk-venv.lock");
        with_file_lock(&lock, Duration::from_secs(1300), build_venv)
    })
    .clone()
}

/// The virtualenv: reused while its marker matches, else built anew.
fn build_venv() -> PathBuf {
    let base = base_python();
    let version = python_version(&base);
    let venv = target_dir().join("py-sdk-venv");
    let fingerprint = format!(
        "requirements fnv1a64 {:016x}\ninterpreter {base} {version}\n",
        fnv1a64(REQUIREMENTS.as_bytes())
    );
    let pinned = pinned_mcp_version();
    let marker = venv.join(MARKER);
    if marker_matches(&marker, &fingerprint)
        && installed_mcp_version(&venv).as_deref() == Some(pinned.as_str())
    {
        return venv;
    }

    eprintln!(
        "building {} with mcp=={pinned} (once; reused while {MARKER} matches)",
        venv.display()
    );
    remove_stale(&venv);
    let log = target_dir().join("py-sdk-venv-install.log");
    let (status, output) = run_logged(
        Command::new(&base).args(["-m", "venv"]).arg(&venv),
        &log,
        Duration::from_secs(300),
    )
    .unwrap_or_else(|e| panic!("could not run {base}: {e}; {INSTALL_HINT}"));
    assert!(
        status.is_some_and(|s| s.success()),
        "`{base} -m venv {}` failed ({}): the venv module or ensurepip is missing; {INSTALL_HINT}.\n{output}",
        venv.display(),
        describe(status)
    );
    let python = venv_python(&venv);
    let (status, output) = run_logged(
        Command::new(&python)
            .args([
                "-m",
                "pip",
                "install",
                "--disable-pip-version-check",
                "--no-input",
                "-q",
                "-r",
            ])
            .arg(REQUIREMENTS_PATH),
        &log,
        Duration::from_secs(900),
    )
    .unwrap_or_else(|e| panic!("could not run {}: {e}", python.display()));
    assert!(
        status.is_some_and(|s| s.success()),
        "`pip install -r tests/python/requirements.txt` into {} failed ({}); it needs pip and access to \
         PyPI; {INSTALL_HINT}.\n{output}",
        venv.display(),
        describe(status)
    );
    let installed = installed_mcp_version(&venv);
    assert_eq!(
        installed.as_deref(),
        Some(pinned.as_str()),
        "pip installed, yet the venv does not report mcp=={pinned}"
    );
    write_marker(&marker, &fingerprint);
    venv
}

/// The interpreter the venv is made from; fails when there is none, or it is too old.
fn base_python() -> String {
    std::env::var("RINGMCP_PYTHON").unwrap_or_else(|_| "python3".into())
}

fn python_version(python: &str) -> String {
    let out = Command::new(python)
        .args(["-c", "import sys; print('%d.%d.%d' % sys.version_info[:3])"])
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("`{python}` could not be run ({e}): {INSTALL_HINT}"));
    assert!(
        out.status.success(),
        "`{python}` failed ({}): {INSTALL_HINT}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let version = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let mut parts = version.split('.').map(|p| p.parse::<u32>().unwrap_or(0));
    let (major, minor) = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
    assert!(
        (major, minor) >= (3, 10),
        "`{python}` is Python {version}; the MCP SDK needs 3.10 or newer: {INSTALL_HINT}"
    );
    version
}

/// `mcp==X` from the requirements file.
fn pinned_mcp_version() -> String {
    REQUIREMENTS
        .lines()
        .map(str::trim)
        .find_map(|l| l.strip_prefix("mcp=="))
        .map(|v| v.split_whitespace().next().unwrap_or("").to_string())
        .expect("tests/python/requirements.txt must pin mcp==<version>")
}

fn installed_mcp_version(venv: &Path) -> Option<String> {
    let out = Command::new(venv_python(venv))
        .args([
            "-c",
            "import importlib.metadata as m; print(m.version('mcp'))",
        ])
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

fn venv_python(venv: &Path) -> PathBuf {
    venv.join("bin").join("python")
}
