//! The servers the benchmark measures side by side (`just bench-peers`): ringmcp and three
//! peers, each serving the same `echo` tool over Streamable HTTP at `/mcp` with stateful
//! sessions (bench/peers/README.md says what "the same" covers):
//!
//! * [`Peer::Ringmcp`]: `ringmcp serve` from a given binary.
//! * [`Peer::Rmcp`]: `ringmcp-peer-rmcp` (bench/peers/rmcp_echo.rs), the official Rust SDK.
//! * [`Peer::PythonSdk`]: bench/peers/python/server.py, the official Python SDK (FastMCP),
//!   in a virtualenv built from bench/peers/python/requirements.txt.
//! * [`Peer::TypeScriptSdk`]: bench/peers/typescript/server.mjs, the official TypeScript SDK,
//!   installed with `npm ci` from bench/peers/typescript/package-lock.json.
//!
//! [`start`] installs what a peer needs into a work directory (once: an installation is
//! reused while its marker matches what it was built from), starts it on a port, waits until
//! it answers an `initialize` over HTTP, and hands back a [`PeerProcess`]: its PID (for
//! CPU time and RSS from /proc), its address, its log; dropping it kills the process. The
//! scripts and pins are compiled into this crate, so the binary needs no source tree.
//!
//! Responses come as `application/json` from every peer but one: rmcp 3.11 answers a
//! request in a session with `text/event-stream` only (one `data:` event per response; see
//! [`Peer::framing`]).

use std::fmt;
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::str::FromStr;
use std::time::{Duration, Instant};

/// The Python peer's script (written into the work directory at every start).
const PYTHON_SERVER: &str = include_str!("../peers/python/server.py");
/// The Python peer's pins; a change rebuilds its virtualenv.
const PYTHON_REQUIREMENTS: &str = include_str!("../peers/python/requirements.txt");
/// The TypeScript peer's script (written into the work directory at every start).
const TS_SERVER: &str = include_str!("../peers/typescript/server.mjs");
/// The TypeScript peer's manifest and lockfile; a change reinstalls it.
const TS_PACKAGE_JSON: &str = include_str!("../peers/typescript/package.json");
const TS_PACKAGE_LOCK: &str = include_str!("../peers/typescript/package-lock.json");

/// The MCP revision the readiness check's `initialize` asks for; every peer speaks it.
pub const PROTOCOL_VERSION: &str = "2025-11-25";
/// The path every peer serves MCP on.
pub const MCP_PATH: &str = "/mcp";

/// What to install when python3 or its venv module is missing.
const PYTHON_HINT: &str = "install Python 3.10 or newer with its venv module \
     (Debian/Ubuntu: apt-get install -y python3 python3-venv), with access to PyPI; \
     RINGMCP_PYTHON may name another interpreter";
/// What to install when node or npm is missing.
const NODE_HINT: &str = "install Node.js 18 or newer with npm \
     (Debian/Ubuntu: apt-get install -y nodejs npm), with access to the npm registry; \
     RINGMCP_NODE and RINGMCP_NPM may name other binaries";

/// A server the benchmark can start.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Peer {
    /// ringmcp itself (`ringmcp serve`, the demo server).
    Ringmcp,
    /// The official Rust SDK, crate `rmcp` (binary `ringmcp-peer-rmcp`).
    Rmcp,
    /// The official Python SDK, PyPI `mcp` (FastMCP on uvicorn).
    PythonSdk,
    /// The official TypeScript SDK, npm `@modelcontextprotocol/sdk` (on express).
    TypeScriptSdk,
}

/// How a peer frames the response to a request inside a session.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Framing {
    /// `Content-Type: application/json`, the JSON-RPC message is the body.
    Json,
    /// `Content-Type: text/event-stream`: the JSON-RPC message is the `data:` of one event
    /// (rmcp in a session; with `--stock`, after an empty priming event).
    Sse,
}

impl Peer {
    /// Every peer, ringmcp first (the report's reference).
    pub const ALL: [Peer; 4] = [
        Peer::Ringmcp,
        Peer::Rmcp,
        Peer::PythonSdk,
        Peer::TypeScriptSdk,
    ];

    /// A short name for command lines, file names and reports.
    pub fn name(self) -> &'static str {
        match self {
            Peer::Ringmcp => "ringmcp",
            Peer::Rmcp => "rmcp",
            Peer::PythonSdk => "python-sdk",
            Peer::TypeScriptSdk => "typescript-sdk",
        }
    }

    /// The `serverInfo.name` its `initialize` answers with: the readiness check requires it,
    /// so a stale server on the same port is never mistaken for the one just started.
    pub fn server_name(self) -> &'static str {
        match self {
            Peer::Ringmcp => "demo",
            Peer::Rmcp => "rmcp-echo",
            Peer::PythonSdk => "python-sdk-echo",
            Peer::TypeScriptSdk => "typescript-sdk-echo",
        }
    }

    /// How it frames a response inside a session (as started by [`start`]).
    pub fn framing(self) -> Framing {
        match self {
            Peer::Rmcp => Framing::Sse,
            _ => Framing::Json,
        }
    }
}

impl fmt::Display for Peer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Peer {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Peer::ALL
            .into_iter()
            .find(|p| p.name() == s)
            .ok_or_else(|| {
                let names: Vec<_> = Peer::ALL.iter().map(|p| p.name()).collect();
                format!("unknown peer {s:?}; one of {}", names.join(", "))
            })
    }
}

/// How [`start_with`] starts a peer. `Default` finds the binaries next to the running one.
#[derive(Clone, Debug)]
pub struct StartOptions {
    /// The `ringmcp` binary (default: `RINGMCP_BIN`, else next to the running binary).
    pub ringmcp_bin: PathBuf,
    /// The `ringmcp-peer-rmcp` binary (default: `RINGMCP_PEER_RMCP_BIN`, else next to the
    /// running binary).
    pub rmcp_bin: PathBuf,
    /// The address to listen on (default 127.0.0.1).
    pub host: IpAddr,
    /// ringmcp's `--shards` and rmcp's `--threads` (default: each one's own, every online
    /// core). The Python and TypeScript peers run one event loop whatever this says.
    pub threads: Option<usize>,
    /// ringmcp's TCP port (it always listens on TCP too); default: the HTTP port + 1.
    pub ringmcp_tcp_port: Option<u16>,
    /// ringmcp's admin listener port (/metrics, /health, /ready); default: an ephemeral
    /// port, which [`PeerProcess::admin_addr`] then does not know.
    pub ringmcp_admin_port: Option<u16>,
    /// CPUs the started process may run on (its affinity mask, set between fork and exec);
    /// default: wherever this process may run. ringmcp pins its shards round robin to the
    /// CPUs of its mask, so `Some(vec![cpu])` with `--shards 1` runs its one shard there.
    pub cpus: Option<Vec<usize>>,
    /// Appended to the peer's command line (e.g. `--stateless-json` for rmcp).
    pub extra_args: Vec<String>,
    /// The longest an installation (venv + pip, npm ci) may take.
    pub install_timeout: Duration,
    /// The longest a started peer may take to answer `initialize`.
    pub ready_timeout: Duration,
}

impl Default for StartOptions {
    fn default() -> Self {
        StartOptions {
            ringmcp_bin: binary_path("RINGMCP_BIN", "ringmcp"),
            rmcp_bin: binary_path("RINGMCP_PEER_RMCP_BIN", "ringmcp-peer-rmcp"),
            host: IpAddr::V4(Ipv4Addr::LOCALHOST),
            threads: None,
            ringmcp_tcp_port: None,
            ringmcp_admin_port: None,
            cpus: None,
            extra_args: Vec::new(),
            install_timeout: Duration::from_secs(900),
            ready_timeout: Duration::from_secs(30),
        }
    }
}

/// `$env_var` if set, else `name` in the running binary's directory (for a test binary in
/// `target/<profile>/deps`, in `target/<profile>`).
fn binary_path(env_var: &str, name: &str) -> PathBuf {
    if let Some(path) = std::env::var_os(env_var) {
        return PathBuf::from(path);
    }
    let dir = std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(Path::to_path_buf))
        .map(|dir| {
            if dir.file_name().is_some_and(|n| n == "deps") {
                dir.parent().map(Path::to_path_buf).unwrap_or(dir)
            } else {
                dir
            }
        })
        .unwrap_or_default();
    dir.join(name)
}

/// A running peer. Dropping it kills the process (SIGKILL) and reaps it.
#[derive(Debug)]
pub struct PeerProcess {
    peer: Peer,
    child: Child,
    addr: SocketAddr,
    tcp_addr: Option<SocketAddr>,
    admin_addr: Option<SocketAddr>,
    command_line: String,
    log: PathBuf,
    server_version: String,
}

impl PeerProcess {
    /// Which peer this is.
    pub fn peer(&self) -> Peer {
        self.peer
    }

    /// The PID of the server process itself (never a wrapper: node and the venv's python
    /// are started directly), for /proc/PID/stat and /proc/PID/status.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The HTTP address; MCP is at [`MCP_PATH`].
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://ADDR/mcp`.
    pub fn url(&self) -> String {
        format!("http://{}{MCP_PATH}", self.addr)
    }

    /// ringmcp's newline-delimited JSON-RPC TCP listener (None for the other peers).
    pub fn tcp_addr(&self) -> Option<SocketAddr> {
        self.tcp_addr
    }

    /// ringmcp's admin listener, when its port was given
    /// ([`StartOptions::ringmcp_admin_port`]).
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin_addr
    }

    /// The command it was started with, for the report.
    pub fn command_line(&self) -> &str {
        &self.command_line
    }

    /// Where its stdout and stderr go.
    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// `serverInfo.version` from its `initialize` answer: the SDK's version for rmcp
    /// (`3.11.0`), the Python SDK (`1.30.0`) and the TypeScript SDK (`1.32.2`); ringmcp's own.
    pub fn server_version(&self) -> &str {
        &self.server_version
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Kills the process and reaps it.
    pub fn stop(mut self) -> io::Result<ExitStatus> {
        self.kill_and_reap()
    }

    fn kill_and_reap(&mut self) -> io::Result<ExitStatus> {
        if let Some(status) = self.child.try_wait()? {
            return Ok(status);
        }
        // Fails only when it has exited meanwhile; wait() then reaps it all the same.
        let _ = self.child.kill();
        self.child.wait()
    }
}

impl Drop for PeerProcess {
    fn drop(&mut self) {
        let _ = self.kill_and_reap();
    }
}

/// Installs (if need be) and starts `peer` on `127.0.0.1:port` with the default
/// [`StartOptions`], using `work_dir` for installations and logs.
pub fn start(peer: Peer, port: u16, work_dir: &Path) -> io::Result<PeerProcess> {
    start_with(peer, port, work_dir, &StartOptions::default())
}

/// Installs (if need be) and starts `peer` on `opts.host:port`, and waits until it answers
/// an `initialize` (then ends that session). Fails when the port is taken, when the peer
/// exits or does not answer within `opts.ready_timeout`, with the end of its log.
pub fn start_with(
    peer: Peer,
    port: u16,
    work_dir: &Path,
    opts: &StartOptions,
) -> io::Result<PeerProcess> {
    fs::create_dir_all(work_dir)
        .map_err(|e| annotate(e, format!("cannot create {}", work_dir.display())))?;
    let addr = SocketAddr::new(opts.host, port);
    let mut tcp_addr = None;
    let mut admin_addr = None;
    let mut cmd = match peer {
        Peer::Ringmcp => {
            let tcp_port = match opts.ringmcp_tcp_port {
                Some(p) => p,
                None => port.checked_add(1).ok_or_else(|| {
                    other(format!("no TCP port after {port}: set ringmcp_tcp_port"))
                })?,
            };
            let tcp = SocketAddr::new(opts.host, tcp_port);
            ensure_port_free(tcp)?;
            tcp_addr = Some(tcp);
            let admin = SocketAddr::new(opts.host, opts.ringmcp_admin_port.unwrap_or(0));
            if admin.port() != 0 {
                ensure_port_free(admin)?;
                admin_addr = Some(admin);
            }
            let mut cmd = Command::new(existing(&opts.ringmcp_bin, "RINGMCP_BIN")?);
            cmd.arg("serve")
                .arg("--listen")
                .arg(tcp.to_string())
                .arg("--http-listen")
                .arg(addr.to_string())
                // The admin listener binds without SO_REUSEPORT; an ephemeral port (unless
                // one is given) keeps a benchmark from colliding with a server already
                // running on this host.
                .arg("--admin-listen")
                .arg(admin.to_string())
                // The peers have no such gate; a host short of the configured connection
                // target still runs the comparison (the check is logged as warnings).
                .arg("--allow-unready-host");
            if let Some(n) = opts.threads {
                cmd.arg("--shards").arg(n.to_string());
            }
            cmd
        }
        Peer::Rmcp => {
            let mut cmd = Command::new(existing(&opts.rmcp_bin, "RINGMCP_PEER_RMCP_BIN")?);
            cmd.arg("--listen").arg(addr.to_string());
            if let Some(n) = opts.threads {
                cmd.arg("--threads").arg(n.to_string());
            }
            cmd
        }
        Peer::PythonSdk => {
            let venv = install_python(work_dir, opts.install_timeout)?;
            let script = venv.join("server.py");
            write_if_changed(&script, PYTHON_SERVER)?;
            let mut cmd = Command::new(venv_python(&venv));
            cmd.arg(&script)
                .arg("--host")
                .arg(opts.host.to_string())
                .arg("--port")
                .arg(port.to_string())
                .env("PYTHONUNBUFFERED", "1")
                .env("PYTHONDONTWRITEBYTECODE", "1");
            cmd
        }
        Peer::TypeScriptSdk => {
            let dir = install_typescript(work_dir, opts.install_timeout)?;
            let script = dir.join("server.mjs");
            write_if_changed(&script, TS_SERVER)?;
            let (node, _) = tool("RINGMCP_NODE", "node", NODE_HINT)?;
            let mut cmd = Command::new(node);
            cmd.arg(&script)
                .arg("--host")
                .arg(opts.host.to_string())
                .arg("--port")
                .arg(port.to_string())
                .current_dir(&dir)
                .env("NODE_ENV", "production");
            cmd
        }
    };
    cmd.args(&opts.extra_args);
    ensure_port_free(addr)?;
    if let Some(cpus) = &opts.cpus {
        pin_to(&mut cmd, cpus)?;
    }

    let log = work_dir.join(format!("{}-{port}.log", peer.name()));
    let file = File::create(&log).map_err(|e| annotate(e, format!("{}", log.display())))?;
    let command_line = describe_command(&cmd);
    let child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::from(file.try_clone()?))
        .stderr(Stdio::from(file))
        .spawn()
        .map_err(|e| annotate(e, format!("cannot start {peer} ({command_line})")))?;
    let mut process = PeerProcess {
        peer,
        child,
        addr,
        tcp_addr,
        admin_addr,
        command_line,
        log,
        server_version: String::new(),
    };
    process.server_version = wait_ready(&mut process, opts.ready_timeout)?;
    Ok(process)
}

/// Makes `cmd` start with the affinity mask `cpus` (sched_setaffinity between fork and
/// exec: no `taskset` needed). Fails on an empty list or a CPU the mask cannot hold.
fn pin_to(cmd: &mut Command, cpus: &[usize]) -> io::Result<()> {
    use std::os::unix::process::CommandExt as _;
    let bits = 8 * std::mem::size_of::<libc::cpu_set_t>();
    if cpus.is_empty() || cpus.iter().any(|&c| c >= bits) {
        return Err(other(format!(
            "cannot pin to CPUs {cpus:?}: need 1 or more CPUs below {bits}"
        )));
    }
    // Built before the fork: the hook only makes the system call.
    // SAFETY: cpu_set_t is plain data, all zeroes is the empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    for &c in cpus {
        // SAFETY: c < the set's size in bits (checked above).
        unsafe { libc::CPU_SET(c, &mut set) };
    }
    // SAFETY: the hook runs in the child between fork and exec and only calls
    // sched_setaffinity (async-signal-safe) on a set built before the fork.
    unsafe {
        cmd.pre_exec(move || {
            if libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) == 0 {
                Ok(())
            } else {
                Err(io::Error::last_os_error())
            }
        });
    }
    Ok(())
}

/// Installs what `peer` needs into `work_dir` without starting it (a no-op for ringmcp and
/// rmcp), so that a benchmark can install everything before it times anything.
pub fn install(peer: Peer, work_dir: &Path, opts: &StartOptions) -> io::Result<()> {
    fs::create_dir_all(work_dir)?;
    match peer {
        Peer::Ringmcp | Peer::Rmcp => Ok(()),
        Peer::PythonSdk => install_python(work_dir, opts.install_timeout).map(drop),
        Peer::TypeScriptSdk => install_typescript(work_dir, opts.install_timeout).map(drop),
    }
}

/// Polls with `initialize` until the peer answers as itself; returns its `serverInfo.version`.
fn wait_ready(process: &mut PeerProcess, limit: Duration) -> io::Result<String> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = process.child.try_wait()? {
            return Err(other(format!(
                "{} exited ({status}) before answering initialize on {}; {}",
                process.peer,
                process.addr,
                log_tail(&process.log)
            )));
        }
        let last_error = match probe(process.peer, process.addr) {
            Ok(version) => return Ok(version),
            Err(e) => e,
        };
        if Instant::now() >= deadline {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!(
                    "{} did not answer initialize on {} within {limit:?} (last: {last_error}); {}",
                    process.peer,
                    process.addr,
                    log_tail(&process.log)
                ),
            ));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// One `initialize`; on success ends the session it opened (so that readiness leaves no
/// session behind to count in a per-session memory figure) and returns the server version.
fn probe(peer: Peer, addr: SocketAddr) -> io::Result<String> {
    let timeout = Duration::from_secs(5);
    let body = format!(
        r#"{{"jsonrpc":"2.0","id":1,"method":"initialize","params":{{"protocolVersion":"{PROTOCOL_VERSION}","capabilities":{{}},"clientInfo":{{"name":"ringmcp-bench","version":"{}"}}}}}}"#,
        env!("CARGO_PKG_VERSION")
    );
    let resp = http_request(addr, "POST", MCP_PATH, &[], Some(&body), timeout)?;
    if resp.status != 200 {
        return Err(other(format!(
            "initialize: HTTP {} {}",
            resp.status,
            String::from_utf8_lossy(&resp.body)
        )));
    }
    let message = resp
        .jsonrpc_message()
        .ok_or_else(|| other("initialize: no JSON-RPC message in the response"))?;
    let value: serde_json::Value = serde_json::from_str(message)
        .map_err(|e| other(format!("initialize: bad JSON ({e}): {message}")))?;
    let info = &value["result"]["serverInfo"];
    let name = info["name"].as_str().unwrap_or_default();
    if name != peer.server_name() {
        return Err(other(format!(
            "initialize: answered by {name:?}, not {:?} (another server on this port?)",
            peer.server_name()
        )));
    }
    let version = info["version"].as_str().unwrap_or_default().to_string();
    if let Some(session) = resp.header("mcp-session-id") {
        let headers = [
            ("Mcp-Session-Id", session),
            ("MCP-Protocol-Version", PROTOCOL_VERSION),
        ];
        // Best effort: a peer that refuses DELETE keeps one idle session, nothing worse.
        let _ = http_request(addr, "DELETE", MCP_PATH, &headers, None, timeout);
    }
    Ok(version)
}

/// An HTTP response, read whole.
#[derive(Debug, Clone)]
pub struct HttpResponse {
    /// The status code.
    pub status: u16,
    /// The headers, names lowercased, in order.
    pub headers: Vec<(String, String)>,
    /// The body, de-chunked.
    pub body: Vec<u8>,
}

impl HttpResponse {
    /// Parses one response from the start of `raw`: None while it is incomplete (a body
    /// with neither a length nor chunking is complete only at end of stream).
    pub fn parse(raw: &[u8]) -> io::Result<Option<HttpResponse>> {
        parse_response(raw, false)
    }

    /// The first header named `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The JSON-RPC message in the body: the body itself for `application/json`, the data
    /// of the first event with non-empty data for `text/event-stream`.
    pub fn jsonrpc_message(&self) -> Option<&str> {
        let body = std::str::from_utf8(&self.body).ok()?;
        let sse = self
            .header("content-type")
            .is_some_and(|ct| ct.trim_start().starts_with("text/event-stream"));
        if !sse {
            let trimmed = body.trim();
            return (!trimmed.is_empty()).then_some(trimmed);
        }
        // Events are separated by blank lines; one data line per event is all these
        // servers send, so the first non-empty `data:` line is the message.
        body.lines()
            .filter_map(|line| line.strip_prefix("data:"))
            .map(str::trim)
            .find(|data| !data.is_empty())
    }
}

/// One HTTP/1.1 request on a connection of its own (`Connection: close`) with `Content-Type:
/// application/json` and `Accept: application/json, text/event-stream`, plus `headers`;
/// reads the whole response within `timeout`. Enough for readiness checks and smoke tests,
/// not for load.
pub fn http_request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&str>,
    timeout: Duration,
) -> io::Result<HttpResponse> {
    let deadline = Instant::now() + timeout;
    let mut stream = TcpStream::connect_timeout(&addr, timeout)?;
    stream.set_nodelay(true)?;
    stream.set_write_timeout(Some(timeout))?;
    let body = body.unwrap_or("");
    let mut request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
         Accept: application/json, text/event-stream\r\nConnection: close\r\n\
         Content-Length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    request.push_str(body);
    stream.write_all(request.as_bytes())?;

    let mut raw = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("{method} {path}: no complete response within {timeout:?}"),
            ));
        }
        stream.set_read_timeout(Some(left))?;
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                raw.extend_from_slice(&buf[..n]);
                // A server may keep the connection open despite `Connection: close`; stop
                // as soon as the response is complete.
                if let Some(resp) = parse_response(&raw, false)? {
                    return Ok(resp);
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    parse_response(&raw, true)?.ok_or_else(|| {
        other(format!(
            "{method} {path}: the connection closed mid-response"
        ))
    })
}

/// Parses a response from `raw`: None while incomplete. With `eof`, a body without length
/// or chunking ends where the bytes do.
fn parse_response(raw: &[u8], eof: bool) -> io::Result<Option<HttpResponse>> {
    let Some(head_end) = find(raw, b"\r\n\r\n") else {
        return Ok(None);
    };
    let head =
        std::str::from_utf8(&raw[..head_end]).map_err(|_| other("response head is not UTF-8"))?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse::<u16>().ok())
        .ok_or_else(|| other(format!("bad status line {status_line:?}")))?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let rest = &raw[head_end + 4..];
    let get = |name: &str| {
        headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    };
    let chunked = get("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked"));
    let body = if chunked {
        match dechunk(rest)? {
            Some(body) => body,
            None => return Ok(None),
        }
    } else if let Some(len) = get("content-length") {
        let len: usize = len
            .parse()
            .map_err(|_| other(format!("bad Content-Length {len:?}")))?;
        if rest.len() < len {
            return Ok(None);
        }
        rest[..len].to_vec()
    } else if status == 204 || status == 304 || (100..200).contains(&status) {
        Vec::new()
    } else if eof {
        rest.to_vec()
    } else {
        return Ok(None);
    };
    Ok(Some(HttpResponse {
        status,
        headers,
        body,
    }))
}

/// Decodes a chunked body; None while the last chunk has not arrived.
fn dechunk(mut data: &[u8]) -> io::Result<Option<Vec<u8>>> {
    let mut body = Vec::new();
    loop {
        let Some(line_end) = find(data, b"\r\n") else {
            return Ok(None);
        };
        let size_field =
            std::str::from_utf8(&data[..line_end]).map_err(|_| other("bad chunk size line"))?;
        let size_hex = size_field.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size_hex, 16)
            .map_err(|_| other(format!("bad chunk size {size_hex:?}")))?;
        data = &data[line_end + 2..];
        if size == 0 {
            // Trailers end with an empty line; they are not needed, and a server that
            // closes right after the last chunk has sent everything that matters.
            return Ok(Some(body));
        }
        if data.len() < size + 2 {
            return Ok(None);
        }
        body.extend_from_slice(&data[..size]);
        data = &data[size + 2..];
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Fails when something already accepts connections on `addr`: a stale server there could
/// answer the readiness check in place of the one being started. (A connection attempt, not
/// a bind: a bind test also fails on a port whose closed connections linger in TIME-WAIT,
/// which the servers themselves, with SO_REUSEADDR or SO_REUSEPORT, bind regardless.)
fn ensure_port_free(addr: SocketAddr) -> io::Result<()> {
    match TcpStream::connect_timeout(&addr, Duration::from_secs(1)) {
        Ok(_) => Err(io::Error::new(
            io::ErrorKind::AddrInUse,
            format!("something already listens on {addr}"),
        )),
        Err(_) => Ok(()),
    }
}

// --- installations -----------------------------------------------------------------------

const MARKER: &str = ".ringmcp-bench-install";

/// The virtualenv with the Python peer's pins: `work_dir/python-sdk-venv`, rebuilt when the
/// requirements or the interpreter change.
fn install_python(work_dir: &Path, limit: Duration) -> io::Result<PathBuf> {
    let venv = work_dir.join("python-sdk-venv");
    with_lock(&work_dir.join("python-sdk-venv.lock"), limit, || {
        let (base, version) = tool("RINGMCP_PYTHON", "python3", PYTHON_HINT)?;
        let fingerprint = format!(
            "requirements fnv1a64 {:016x}\ninterpreter {base} {version}\n",
            fnv1a64(PYTHON_REQUIREMENTS.as_bytes())
        );
        let pinned = pinned_python("mcp")?;
        let marker = venv.join(MARKER);
        if fs::read_to_string(&marker).ok().as_deref() == Some(fingerprint.as_str())
            && installed_python_version(&venv, "mcp").as_deref() == Some(pinned.as_str())
        {
            return Ok(venv.clone());
        }
        eprintln!(
            "installing the Python SDK peer (mcp=={pinned}) into {} (once; reused while its marker matches)",
            venv.display()
        );
        let started = Instant::now();
        if venv.exists() {
            fs::remove_dir_all(&venv)
                .map_err(|e| annotate(e, format!("cannot remove stale {}", venv.display())))?;
        }
        let log = work_dir.join("python-sdk-install.log");
        run_logged(
            Command::new(&base).args(["-m", "venv"]).arg(&venv),
            &log,
            limit,
            PYTHON_HINT,
        )?;
        let requirements = venv.join("requirements.txt");
        fs::write(&requirements, PYTHON_REQUIREMENTS)?;
        run_logged(
            Command::new(venv_python(&venv))
                .args([
                    "-m",
                    "pip",
                    "install",
                    "--disable-pip-version-check",
                    "--no-input",
                    "-q",
                    "-r",
                ])
                .arg(&requirements),
            &log,
            limit.saturating_sub(started.elapsed()),
            PYTHON_HINT,
        )?;
        let installed = installed_python_version(&venv, "mcp");
        if installed.as_deref() != Some(pinned.as_str()) {
            return Err(other(format!(
                "pip finished, yet {} has mcp {installed:?}, not {pinned}; see {}",
                venv.display(),
                log.display()
            )));
        }
        fs::write(&marker, fingerprint)?;
        eprintln!(
            "installed {} in {:.1}s",
            venv.display(),
            started.elapsed().as_secs_f64()
        );
        Ok(venv.clone())
    })
}

fn venv_python(venv: &Path) -> PathBuf {
    venv.join("bin").join("python")
}

/// `package==X` from the Python peer's requirements.
fn pinned_python(package: &str) -> io::Result<String> {
    let prefix = format!("{package}==");
    PYTHON_REQUIREMENTS
        .lines()
        .map(str::trim)
        .find_map(|l| l.strip_prefix(prefix.as_str()))
        .map(|v| v.split_whitespace().next().unwrap_or_default().to_string())
        .ok_or_else(|| {
            other(format!(
                "bench/peers/python/requirements.txt does not pin {package}"
            ))
        })
}

fn installed_python_version(venv: &Path, package: &str) -> Option<String> {
    let out = Command::new(venv_python(venv))
        .args([
            "-c",
            "import sys, importlib.metadata as m; print(m.version(sys.argv[1]))",
            package,
        ])
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// `npm ci` of the TypeScript peer's lockfile: `work_dir/typescript-sdk`, reinstalled when
/// package.json or the lockfile change.
fn install_typescript(work_dir: &Path, limit: Duration) -> io::Result<PathBuf> {
    let dir = work_dir.join("typescript-sdk");
    with_lock(&work_dir.join("typescript-sdk.lock"), limit, || {
        let fingerprint = format!(
            "package.json fnv1a64 {:016x}\npackage-lock.json fnv1a64 {:016x}\n",
            fnv1a64(TS_PACKAGE_JSON.as_bytes()),
            fnv1a64(TS_PACKAGE_LOCK.as_bytes())
        );
        let pinned = pinned_npm("@modelcontextprotocol/sdk")?;
        let marker = dir.join(MARKER);
        if fs::read_to_string(&marker).ok().as_deref() == Some(fingerprint.as_str())
            && installed_npm_version(&dir, "@modelcontextprotocol/sdk").as_deref()
                == Some(pinned.as_str())
        {
            return Ok(dir.clone());
        }
        let (npm, npm_version) = tool("RINGMCP_NPM", "npm", NODE_HINT)?;
        eprintln!(
            "installing the TypeScript SDK peer (@modelcontextprotocol/sdk@{pinned}) into {} \
             with npm {npm_version} (once; reused while its marker matches)",
            dir.display()
        );
        let started = Instant::now();
        if dir.exists() {
            fs::remove_dir_all(&dir)
                .map_err(|e| annotate(e, format!("cannot remove stale {}", dir.display())))?;
        }
        fs::create_dir_all(&dir)?;
        fs::write(dir.join("package.json"), TS_PACKAGE_JSON)?;
        fs::write(dir.join("package-lock.json"), TS_PACKAGE_LOCK)?;
        let log = work_dir.join("typescript-sdk-install.log");
        run_logged(
            Command::new(&npm)
                .args(["ci", "--no-audit", "--no-fund", "--no-update-notifier"])
                .current_dir(&dir),
            &log,
            limit,
            NODE_HINT,
        )?;
        let installed = installed_npm_version(&dir, "@modelcontextprotocol/sdk");
        if installed.as_deref() != Some(pinned.as_str()) {
            return Err(other(format!(
                "npm ci finished, yet {} has @modelcontextprotocol/sdk {installed:?}, not {pinned}",
                dir.display()
            )));
        }
        fs::write(&marker, fingerprint)?;
        eprintln!(
            "installed {} in {:.1}s",
            dir.display(),
            started.elapsed().as_secs_f64()
        );
        Ok(dir.clone())
    })
}

/// The exact version package.json pins `package` to.
fn pinned_npm(package: &str) -> io::Result<String> {
    let v: serde_json::Value = serde_json::from_str(TS_PACKAGE_JSON)
        .map_err(|e| other(format!("bench/peers/typescript/package.json: {e}")))?;
    v["dependencies"][package]
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| {
            other(format!(
                "bench/peers/typescript/package.json does not pin {package}"
            ))
        })
}

fn installed_npm_version(dir: &Path, package: &str) -> Option<String> {
    let path = dir.join("node_modules").join(package).join("package.json");
    let v: serde_json::Value = serde_json::from_str(&fs::read_to_string(path).ok()?).ok()?;
    v["version"].as_str().map(str::to_string)
}

/// Runs an installation step with its output appended to `log`, killed after `limit`;
/// fails, with the log's end and `hint`, unless it exits 0.
fn run_logged(cmd: &mut Command, log: &Path, limit: Duration, hint: &str) -> io::Result<()> {
    let file = File::options().create(true).append(true).open(log)?;
    let what = describe_command(cmd);
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::from(file.try_clone()?))
        .stderr(Stdio::from(file))
        .spawn()
        .map_err(|e| annotate(e, format!("cannot run {what}; {hint}")))?;
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!(
                    "{what} ran past {limit:?} and was killed; {}",
                    log_tail(log)
                ),
            ));
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    if status.success() {
        Ok(())
    } else {
        Err(other(format!(
            "{what} failed ({status}); {hint}; {}",
            log_tail(log)
        )))
    }
}

/// A program (from `env_var`, else `default`) and the first line of its `--version`.
fn tool(env_var: &str, default: &str, hint: &str) -> io::Result<(String, String)> {
    let program = std::env::var(env_var).unwrap_or_else(|_| default.to_string());
    let out = Command::new(&program)
        .arg("--version")
        .stdin(Stdio::null())
        .output()
        .map_err(|e| annotate(e, format!("`{program}` could not be run; {hint}")))?;
    if !out.status.success() {
        return Err(other(format!(
            "`{program} --version` failed ({}); {hint}",
            out.status
        )));
    }
    // Python 2 and some builds print the version on stderr.
    let text = if out.stdout.is_empty() {
        out.stderr
    } else {
        out.stdout
    };
    let version = String::from_utf8_lossy(&text)
        .lines()
        .next()
        .unwrap_or_default()
        .trim()
        .to_string();
    Ok((program, version))
}

/// Runs `f` holding an exclusive flock(2) on `path`, so that two benchmark processes sharing
/// a work directory never install into the same place at once; waits at most `limit`.
fn with_lock<T>(path: &Path, limit: Duration, f: impl FnOnce() -> io::Result<T>) -> io::Result<T> {
    use std::os::fd::AsRawFd;
    let file = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .map_err(|e| annotate(e, format!("cannot open lock file {}", path.display())))?;
    let deadline = Instant::now() + limit;
    loop {
        // SAFETY: flock(2) on a descriptor that `file` owns for the whole call.
        let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        if rc == 0 {
            break;
        }
        let err = io::Error::last_os_error();
        if err.raw_os_error() != Some(libc::EWOULDBLOCK) {
            return Err(annotate(err, format!("flock {}", path.display())));
        }
        if Instant::now() >= deadline {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("{} stayed locked for {limit:?}", path.display()),
            ));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    // The lock goes with the descriptor when `file` drops, after `f`.
    let out = f();
    drop(file);
    out
}

fn write_if_changed(path: &Path, contents: &str) -> io::Result<()> {
    if fs::read_to_string(path).ok().as_deref() == Some(contents) {
        return Ok(());
    }
    fs::write(path, contents).map_err(|e| annotate(e, format!("cannot write {}", path.display())))
}

/// FNV-1a, 64 bits: stable across Rust releases, so a marker outlives the toolchain.
fn fnv1a64(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

fn existing(path: &Path, env_var: &str) -> io::Result<PathBuf> {
    if path.is_file() {
        Ok(path.to_path_buf())
    } else {
        Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!(
                "{} not found: build it (`cargo build --release --workspace --bins`) or name it with {env_var}",
                path.display()
            ),
        ))
    }
}

fn describe_command(cmd: &Command) -> String {
    let mut parts = vec![cmd.get_program().to_string_lossy().into_owned()];
    parts.extend(cmd.get_args().map(|a| a.to_string_lossy().into_owned()));
    parts.join(" ")
}

/// The last lines of a log, for an error message.
fn log_tail(log: &Path) -> String {
    let text = fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    let tail = lines[lines.len().saturating_sub(20)..].join("\n");
    if tail.is_empty() {
        format!("its log {} is empty", log.display())
    } else {
        format!("the end of its log {}:\n{tail}", log.display())
    }
}

fn other(msg: impl Into<String>) -> io::Error {
    io::Error::other(msg.into())
}

fn annotate(e: io::Error, context: String) -> io::Error {
    io::Error::new(e.kind(), format!("{context}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_started_process_runs_on_the_cpus_given() {
        let cpu = *crate::sys::allowed_cpus().last().unwrap();
        let mut cmd = Command::new("sleep");
        cmd.arg("10");
        pin_to(&mut cmd, &[cpu]).unwrap();
        let mut child = cmd.spawn().unwrap();
        let status = fs::read_to_string(format!("/proc/{}/status", child.id())).unwrap();
        let _ = child.kill();
        let _ = child.wait();
        let allowed = status
            .lines()
            .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
            .unwrap()
            .trim();
        assert_eq!(allowed, cpu.to_string());
        assert!(pin_to(&mut Command::new("true"), &[]).is_err());
        assert!(pin_to(&mut Command::new("true"), &[1 << 20]).is_err());
    }

    fn response(raw: &str) -> Option<HttpResponse> {
        parse_response(raw.as_bytes(), false).expect("parses")
    }

    #[test]
    fn json_body_with_content_length() {
        let r = response(
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nMcp-Session-Id: abc\r\n\
             Content-Length: 7\r\n\r\n{\"a\":1}",
        )
        .expect("complete");
        assert_eq!(r.status, 200);
        assert_eq!(r.header("mcp-session-id"), Some("abc"));
        assert_eq!(r.jsonrpc_message(), Some("{\"a\":1}"));
    }

    #[test]
    fn incomplete_until_the_last_chunk() {
        let head = "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n";
        let event = "data: \nid: 0\nretry: 3000\n\ndata: {\"x\":2}\nid: 0/1\n\n";
        let chunk = format!("{:x}\r\n{event}\r\n", event.len());
        assert!(response(&format!("{head}{chunk}")).is_none());
        let r = response(&format!("{head}{chunk}0\r\n\r\n")).expect("complete");
        assert_eq!(r.jsonrpc_message(), Some("{\"x\":2}"));
    }

    #[test]
    fn peer_names_round_trip() {
        for p in Peer::ALL {
            assert_eq!(p.name().parse::<Peer>(), Ok(p));
        }
        assert!("nope".parse::<Peer>().is_err());
    }

    #[test]
    fn pins_are_readable() {
        assert_eq!(pinned_python("mcp").expect("pinned"), "1.30.0");
        assert_eq!(
            pinned_npm("@modelcontextprotocol/sdk").expect("pinned"),
            "1.32.2"
        );
    }
}
