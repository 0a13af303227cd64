//! Test harness for the integration tests: starts the real `ringmcp serve` binary on free
//! 127.0.0.1 ports and talks newline-delimited JSON-RPC to it over plain
//! `std::net::TcpStream`s, exactly as a user would ([`http`] does the same for Streamable
//! HTTP; [`external`] runs the SDK clients and the conformance suite). Every wait is bounded,
//! so a test that goes wrong fails instead of hanging.

#![allow(dead_code)] // each test binary uses a different part of the harness

pub mod external;
pub mod http;

use serde_json::{json, Value};
use std::collections::{HashSet, VecDeque};
use std::fs::File;
use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Mutex};
use std::time::{Duration, Instant};

/// The longest any single read waits before the test fails.
pub const READ_TIMEOUT: Duration = Duration::from_secs(5);
/// How long the server may take to start listening.
pub const START_TIMEOUT: Duration = Duration::from_secs(10);
/// The revisions ringmcp negotiates, oldest first.
pub const REVISIONS: [&str; 4] = ["2024-11-05", "2025-03-26", "2025-06-18", "2025-11-25"];
/// The newest revision (answered to an unknown one).
pub const LATEST: &str = "2025-11-25";

/// Ports handed out in this test process: SO_REUSEPORT would let two servers share one
/// port, so a port is never given to two servers of the same test binary.
static USED_PORTS: Mutex<Option<HashSet<u16>>> = Mutex::new(None);
static SERVER_SEQ: AtomicUsize = AtomicUsize::new(0);

fn free_port() -> u16 {
    for _ in 0..100 {
        let port = match TcpListener::bind("127.0.0.1:0") {
            Ok(l) => l.local_addr().expect("local_addr").port(),
            Err(_) => {
                std::thread::sleep(Duration::from_millis(10));
                continue;
            }
        };
        let mut used = USED_PORTS.lock().unwrap_or_else(|e| e.into_inner());
        if used.get_or_insert_with(HashSet::new).insert(port) {
            return port;
        }
    }
    panic!("no free port found");
}

/// A running `ringmcp serve`; killed when dropped.
pub struct Server {
    child: Option<Child>,
    /// The port it listens on (127.0.0.1).
    pub port: u16,
    /// Its Streamable HTTP port (127.0.0.1).
    pub http_port: u16,
    /// Its admin port (127.0.0.1): /metrics, /health, /ready.
    pub admin_port: u16,
    /// Where its stderr goes.
    pub stderr_path: PathBuf,
    exit: Option<ExitStatus>,
}

impl Server {
    /// Starts `ringmcp serve --shards N --listen 127.0.0.1:PORT <extra...>` and waits until
    /// every shard listens. A port that turns out to be taken is replaced by another.
    pub fn start(shards: usize, extra: &[&str]) -> Server {
        let mut last_err = String::new();
        for _attempt in 0..5 {
            let port = free_port();
            let http_port = free_port();
            let admin_port = free_port();
            let seq = SERVER_SEQ.fetch_add(1, Ordering::Relaxed);
            let stderr_path = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!(
                "ringmcp-test-{}-{seq}-{port}.stderr",
                std::process::id()
            ));
            let stderr = File::create(&stderr_path).expect("create stderr file");
            let child = Command::new(env!("CARGO_BIN_EXE_ringmcp"))
                .arg("serve")
                .arg("--shards")
                .arg(shards.to_string())
                .arg("--listen")
                .arg(format!("127.0.0.1:{port}"))
                .arg("--http-listen")
                .arg(format!("127.0.0.1:{http_port}"))
                .arg("--admin-listen")
                .arg(format!("127.0.0.1:{admin_port}"))
                .args(extra)
                .env_remove("RINGMCP_LOG")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::from(stderr))
                .spawn()
                .expect("spawn ringmcp");
            let mut server = Server {
                child: Some(child),
                port,
                http_port,
                admin_port,
                stderr_path,
                exit: None,
            };
            match server.wait_ready(extra) {
                Ok(()) => return server,
                Err(e) => {
                    last_err = e;
                    server.kill();
                }
            }
        }
        panic!("ringmcp did not start: {last_err}");
    }

    fn wait_ready(&mut self, extra: &[&str]) -> Result<(), String> {
        // The server logs "listening on" (at info level, the default) once every shard has
        // bound the port. With a quieter log level, a connection probe has to do.
        let quiet = extra.iter().any(|a| a.starts_with("--log-level"));
        let deadline = Instant::now() + START_TIMEOUT;
        while Instant::now() < deadline {
            if let Some(status) = self.try_exit() {
                return Err(format!("exited with {status}: {}", self.stderr()));
            }
            if quiet {
                if TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                    return Ok(());
                }
            } else if self.stderr().contains("listening on") {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        Err(format!(
            "not listening after {START_TIMEOUT:?}: {}",
            self.stderr()
        ))
    }

    /// The address clients connect to.
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// A new connection.
    pub fn connect(&self) -> Client {
        Client::connect(&self.addr())
    }

    /// A new connection that is already initialized under `revision`.
    pub fn session(&self, revision: &str) -> (Client, Value) {
        let mut c = self.connect();
        let r = c.initialize(revision);
        (c, r)
    }

    /// What the server wrote to stderr so far.
    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr_path).unwrap_or_default()
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("server running").id()
    }

    /// Sends SIGTERM.
    pub fn sigterm(&self) {
        let pid = self.pid() as libc::pid_t;
        // SAFETY: plain kill(2) on our own child, which has not been reaped yet.
        let rc = unsafe { libc::kill(pid, libc::SIGTERM) };
        assert_eq!(rc, 0, "kill(SIGTERM) failed");
    }

    fn try_exit(&mut self) -> Option<ExitStatus> {
        if self.exit.is_none() {
            if let Some(child) = self.child.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    self.exit = Some(status);
                }
            }
        }
        self.exit
    }

    /// Waits (bounded) for the process to exit and returns its status, or `None` if it is
    /// still running at the deadline.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(s) = self.try_exit() {
                return Some(s);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            if self.exit.is_none() {
                let _ = child.kill();
            }
            let _ = child.wait();
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking() {
            eprintln!(
                "---- ringmcp stderr ({}) ----\n{}",
                self.stderr_path.display(),
                self.stderr()
            );
        } else {
            let _ = std::fs::remove_file(&self.stderr_path);
        }
    }
}

/// What one bounded read produced.
#[derive(Debug)]
pub enum Recv {
    /// One complete line, parsed as JSON.
    Msg(Value),
    /// Nothing arrived in time.
    Timeout,
    /// The server closed the connection (EOF or reset).
    Closed,
}

/// One TCP connection speaking newline-delimited JSON-RPC.
pub struct Client {
    stream: TcpStream,
    buf: Vec<u8>,
    next_id: i64,
    /// Messages read while waiting for something else, in arrival order; later waits look
    /// here first.
    pub inbox: VecDeque<Value>,
}

impl Client {
    /// Connects (bounded by [`READ_TIMEOUT`]).
    pub fn connect(addr: &str) -> Client {
        let sa = addr.parse().expect("socket address");
        let stream = TcpStream::connect_timeout(&sa, READ_TIMEOUT).expect("connect");
        Client::from_stream(stream)
    }

    fn from_stream(stream: TcpStream) -> Client {
        stream.set_nodelay(true).expect("nodelay");
        stream
            .set_write_timeout(Some(READ_TIMEOUT))
            .expect("write timeout");
        Client {
            stream,
            buf: Vec::new(),
            next_id: 1,
            inbox: VecDeque::new(),
        }
    }

    /// Connects to `addr` from the local address `source` (another loopback address, say,
    /// to look like another client host).
    pub fn connect_from(source: std::net::Ipv4Addr, addr: &str) -> Client {
        let stream = connect_from(source, addr.parse().expect("socket address"));
        Client::from_stream(stream)
    }

    /// A fresh request id.
    pub fn next_id(&mut self) -> i64 {
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    /// Writes raw bytes.
    pub fn send_raw(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).expect("write to server");
    }

    /// Writes raw bytes; tolerates a server that already closed.
    pub fn try_send_raw(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.stream.write_all(bytes)
    }

    /// Writes one JSON value as a line.
    pub fn send(&mut self, v: &Value) {
        let mut bytes = serde_json::to_vec(v).expect("encode");
        bytes.push(b'\n');
        self.send_raw(&bytes);
    }

    /// Sends a request and returns its id.
    pub fn send_request(&mut self, method: &str, params: Value) -> i64 {
        let id = self.next_id();
        self.send(&json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}));
        id
    }

    /// Sends a notification.
    pub fn notify(&mut self, method: &str, params: Value) {
        self.send(&json!({"jsonrpc": "2.0", "method": method, "params": params}));
    }

    /// Reads the next line from the wire (not the inbox), waiting at most `timeout`.
    pub fn recv_wire(&mut self, timeout: Duration) -> Recv {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(nl) = self.buf.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = self.buf.drain(..=nl).collect();
                let line = &line[..line.len() - 1];
                let v: Value = serde_json::from_slice(line).unwrap_or_else(|e| {
                    panic!(
                        "server sent a line that is not JSON ({e}): {:?}",
                        String::from_utf8_lossy(line)
                    )
                });
                return Recv::Msg(v);
            }
            let now = Instant::now();
            if now >= deadline {
                return Recv::Timeout;
            }
            self.stream
                .set_read_timeout(Some(deadline - now))
                .expect("read timeout");
            let mut chunk = [0u8; 16384];
            match self.stream.read(&mut chunk) {
                Ok(0) => {
                    assert!(
                        self.buf.is_empty(),
                        "connection closed in the middle of a line: {:?}",
                        String::from_utf8_lossy(&self.buf)
                    );
                    return Recv::Closed;
                }
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    return Recv::Timeout
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e)
                    if matches!(
                        e.kind(),
                        ErrorKind::ConnectionReset | ErrorKind::ConnectionAborted
                    ) =>
                {
                    return Recv::Closed
                }
                Err(e) => panic!("read from server failed: {e}"),
            }
        }
    }

    /// The next message: from the inbox if any, else from the wire within `timeout`.
    pub fn recv_timeout(&mut self, timeout: Duration) -> Recv {
        match self.inbox.pop_front() {
            Some(v) => Recv::Msg(v),
            None => self.recv_wire(timeout),
        }
    }

    /// The next message; fails the test on timeout or close.
    pub fn recv(&mut self) -> Value {
        match self.recv_timeout(READ_TIMEOUT) {
            Recv::Msg(v) => v,
            other => panic!("expected a message from the server, got {other:?}"),
        }
    }

    /// Reads until the response with `id` arrives; returns it with every other message seen
    /// meanwhile (notifications, server requests, other responses), in order. Those others
    /// are not kept in the inbox.
    pub fn response_with_others(&mut self, id: &Value) -> (Value, Vec<Value>) {
        let mut others = Vec::new();
        loop {
            let msg = self.recv();
            if is_response(&msg) && &msg["id"] == id {
                return (msg, others);
            }
            others.push(msg);
        }
    }

    /// Reads until the response with `id` arrives; other messages stay in the inbox.
    pub fn response(&mut self, id: &Value) -> Value {
        let (resp, others) = self.response_with_others(id);
        for o in others.into_iter().rev() {
            self.inbox.push_front(o);
        }
        resp
    }

    /// Reads until a message satisfies `pred` (looking at the inbox first); the others stay
    /// in the inbox. Fails the test after [`READ_TIMEOUT`].
    pub fn wait_for(&mut self, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
        if let Some(i) = self.inbox.iter().position(&pred) {
            return self.inbox.remove(i).expect("index in range");
        }
        let deadline = Instant::now() + READ_TIMEOUT;
        let mut skipped = Vec::new();
        let found = loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.recv_wire(left) {
                Recv::Msg(v) if pred(&v) => break v,
                Recv::Msg(v) => skipped.push(v),
                other => panic!("waiting for {what}: got {other:?}; saw meanwhile {skipped:?}"),
            }
        };
        self.inbox.extend(skipped);
        found
    }

    /// Waits for a notification (or server request) with `method`.
    pub fn wait_method(&mut self, method: &str) -> Value {
        self.wait_for(method, |v| v["method"] == method)
    }

    /// Removes and returns every inbox message with `method`.
    pub fn take_method(&mut self, method: &str) -> Vec<Value> {
        let (hit, keep): (Vec<Value>, Vec<Value>) =
            self.inbox.drain(..).partition(|v| v["method"] == method);
        self.inbox = keep.into();
        hit
    }

    /// Sends a request and returns its response (the whole message).
    pub fn request(&mut self, method: &str, params: Value) -> Value {
        let id = self.send_request(method, params);
        self.response(&json!(id))
    }

    /// Sends a request and returns its `result`; fails the test on an error response.
    pub fn call(&mut self, method: &str, params: Value) -> Value {
        let resp = self.request(method, params);
        assert!(resp.get("error").is_none(), "{method} failed: {resp}");
        resp["result"].clone()
    }

    /// Sends a request that must fail and returns its error code (the response's id is
    /// checked too).
    pub fn call_err(&mut self, method: &str, params: Value) -> i64 {
        let id = self.send_request(method, params);
        let resp = self.response(&json!(id));
        error_code(&resp)
            .unwrap_or_else(|| panic!("{method} should have failed but answered {resp}"))
    }

    /// `tools/call` returning the result.
    pub fn tool(&mut self, name: &str, arguments: Value) -> Value {
        self.call("tools/call", json!({"name": name, "arguments": arguments}))
    }

    /// Sends `initialize` (no client capabilities) and `notifications/initialized`; returns
    /// the initialize result.
    pub fn initialize(&mut self, revision: &str) -> Value {
        self.initialize_with(revision, json!({}))
    }

    /// Like [`initialize`](Self::initialize) with client capabilities.
    pub fn initialize_with(&mut self, revision: &str, capabilities: Value) -> Value {
        let result = self.call(
            "initialize",
            json!({
                "protocolVersion": revision,
                "capabilities": capabilities,
                "clientInfo": {"name": "ringmcp-tests", "version": "0"}
            }),
        );
        self.notify("notifications/initialized", json!({}));
        result
    }

    /// Round-trips a ping: afterwards everything the server queued for this connection
    /// before it read the ping is in the inbox.
    pub fn sync(&mut self) {
        let r = self.call("ping", json!({}));
        assert_eq!(r, json!({}));
    }

    /// Waits (bounded by `timeout`) for the server to close the connection; messages that
    /// arrive first are returned.
    pub fn expect_closed(&mut self, timeout: Duration) -> Vec<Value> {
        let deadline = Instant::now() + timeout;
        let mut seen: Vec<Value> = self.inbox.drain(..).collect();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.recv_wire(left) {
                Recv::Closed => return seen,
                Recv::Msg(v) => seen.push(v),
                Recv::Timeout => {
                    panic!(
                        "the server did not close the connection within {timeout:?}; saw {seen:?}"
                    )
                }
            }
        }
    }

    /// Reads everything arriving during `d` (inbox first); the connection must stay open.
    pub fn collect_for(&mut self, d: Duration) -> Vec<Value> {
        let deadline = Instant::now() + d;
        let mut seen: Vec<Value> = self.inbox.drain(..).collect();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return seen;
            }
            match self.recv_wire(left) {
                Recv::Msg(v) => seen.push(v),
                Recv::Timeout => return seen,
                Recv::Closed => panic!("connection closed unexpectedly; saw {seen:?}"),
            }
        }
    }

    /// Another handle on the connection's socket, for tests that write or read it raw.
    pub fn raw_stream(&self) -> TcpStream {
        self.stream.try_clone().expect("clone the socket")
    }

    /// Closes our side for writing (the server sees EOF).
    pub fn shutdown_write(&self) {
        let _ = self.stream.shutdown(Shutdown::Write);
    }
}

/// A TCP connection to `to` from the local address `source` (bound before connecting, which
/// `std` cannot do). Fails the test when it cannot connect.
pub fn connect_from(source: std::net::Ipv4Addr, to: std::net::SocketAddrV4) -> TcpStream {
    use std::os::fd::FromRawFd;
    fn sockaddr(a: std::net::SocketAddrV4) -> libc::sockaddr_in {
        libc::sockaddr_in {
            sin_family: libc::AF_INET as libc::sa_family_t,
            sin_port: a.port().to_be(),
            sin_addr: libc::in_addr {
                s_addr: u32::from(*a.ip()).to_be(),
            },
            sin_zero: [0; 8],
        }
    }
    let len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
    // SAFETY: plain socket(2), bind(2), connect(2) on a descriptor this function owns; the
    // addresses are valid sockaddr_in values that outlive the calls.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
        assert!(fd >= 0, "socket: {}", std::io::Error::last_os_error());
        let stream = TcpStream::from_raw_fd(fd);
        let local = sockaddr(std::net::SocketAddrV4::new(source, 0));
        let rc = libc::bind(fd, &local as *const _ as *const libc::sockaddr, len);
        assert_eq!(rc, 0, "bind {source}: {}", std::io::Error::last_os_error());
        let remote = sockaddr(to);
        let rc = libc::connect(fd, &remote as *const _ as *const libc::sockaddr, len);
        assert_eq!(
            rc,
            0,
            "connect {to} from {source}: {}",
            std::io::Error::last_os_error()
        );
        stream
    }
}

/// `ringmcp_rejections_total{shard="all",reason=...}` from the server's admin listener.
pub fn rejections(s: &Server, reason: &str) -> u64 {
    let r = http::Http::connect(s.admin_port).request("GET", "/metrics", &[], None);
    assert_eq!(r.status(), 200, "{r:?}");
    let want = format!("reason=\"{reason}\"");
    r.text()
        .lines()
        .filter(|l| l.starts_with("ringmcp_rejections_total{"))
        .filter(|l| l.contains("shard=\"all\"") && l.contains(&want))
        .map(|l| {
            let v = l.rsplit(' ').next().unwrap_or("");
            v.parse::<f64>()
                .unwrap_or_else(|_| panic!("bad sample {l:?}")) as u64
        })
        .next()
        .unwrap_or_else(|| panic!("no rejections_total for {reason} in:\n{}", r.text()))
}

/// Whether `msg` is a response (it has an id and a result or error, and no method).
pub fn is_response(msg: &Value) -> bool {
    msg.get("method").is_none()
        && msg.get("id").is_some()
        && (msg.get("result").is_some() || msg.get("error").is_some())
}

/// The error code of an error response.
pub fn error_code(resp: &Value) -> Option<i64> {
    resp.get("error")
        .and_then(|e| e.get("code"))
        .and_then(Value::as_i64)
}

/// Asserts that `resp` is a well-formed JSON-RPC error response with `id` and `code`.
pub fn assert_error(resp: &Value, id: &Value, code: i64) {
    assert_eq!(resp["jsonrpc"], "2.0", "{resp}");
    assert_eq!(&resp["id"], id, "wrong id in {resp}");
    assert!(resp.get("result").is_none(), "{resp}");
    assert_eq!(error_code(resp), Some(code), "wrong error in {resp}");
    assert!(
        resp["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "error without message: {resp}"
    );
}

/// The texts of a tool result's text content blocks.
pub fn texts(result: &Value) -> Vec<String> {
    result["content"]
        .as_array()
        .unwrap_or_else(|| panic!("no content array in {result}"))
        .iter()
        .filter(|c| c["type"] == "text")
        .map(|c| c["text"].as_str().expect("text").to_string())
        .collect()
}

/// The single text of a tool result.
pub fn text(result: &Value) -> String {
    let t = texts(result);
    assert_eq!(t.len(), 1, "expected one text block in {result}");
    t.into_iter().next().expect("one text")
}

/// The names in a list of tools (or prompts, or resources by `key`).
pub fn names(items: &Value, key: &str) -> Vec<String> {
    items
        .as_array()
        .unwrap_or_else(|| panic!("not an array: {items}"))
        .iter()
        .map(|t| t[key].as_str().expect("name").to_string())
        .collect()
}

/// `ringmcp serve --shards N` with every listener on port 0 (the kernel picks): for tests
/// that run the process themselves and never connect to it.
pub fn serve_on_any_port(shards: usize) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ringmcp"));
    cmd.arg("serve")
        .arg("--shards")
        .arg(shards.to_string())
        .args(["--listen", "127.0.0.1:0", "--http-listen", "127.0.0.1:0"])
        .args(["--admin-listen", "127.0.0.1:0"]);
    cmd
}

/// A spawned `ringmcp` that is killed when dropped, so a failing assertion never leaves a
/// server running. Derefs to the [`Child`].
pub struct Spawned(pub Child);

impl Spawned {
    /// Spawns `cmd`, failing the test if it cannot start.
    pub fn spawn(cmd: &mut Command) -> Spawned {
        Spawned(cmd.spawn().expect("start ringmcp serve"))
    }
}

impl std::ops::Deref for Spawned {
    type Target = Child;
    fn deref(&self) -> &Child {
        &self.0
    }
}

impl std::ops::DerefMut for Spawned {
    fn deref_mut(&mut self) -> &mut Child {
        &mut self.0
    }
}

impl Drop for Spawned {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// Sends SIGTERM to a child process (which may have exited already).
pub fn sigterm_child(child: &Child) {
    // SAFETY: plain kill(2) on our own child process.
    unsafe {
        libc::kill(child.id() as libc::pid_t, libc::SIGTERM);
    }
}

/// The lines `from` yields, read on a thread of their own: a bounded wait for a line is a
/// `recv_timeout`. The thread ends at the end of the stream.
pub fn read_lines(
    from: impl Read + Send + 'static,
) -> (mpsc::Receiver<String>, std::thread::JoinHandle<()>) {
    let (tx, rx) = mpsc::channel();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(from).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    (rx, reader)
}

/// Waits for a child process to exit; kills it and fails the test after `limit`.
pub fn wait_timeout(child: &mut Child, limit: Duration) -> ExitStatus {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().expect("wait for ringmcp") {
            return status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("ringmcp did not exit within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}
