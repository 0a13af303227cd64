//! What a run is asked to do: the target (transport, address, path), the load shape
//! (connections, closed or open loop, steps), the request, and every bound.
//!
//! [`RunConfig`] is plain data (serde), so the parent hands it unchanged to the worker
//! processes it starts. [`RunConfig::validate`] checks every bound before anything opens
//! a socket: the generator only ever talks to 127.0.0.0/8.

use serde::{Deserialize, Serialize};
use std::net::{Ipv4Addr, SocketAddrV4};
use std::path::PathBuf;

/// Most connections one run may hold (over all processes).
pub const CONNECTIONS_MAX: usize = 1_000_000;
/// Deepest pipeline (requests in flight per connection).
pub const PIPELINE_MAX: u32 = 1024;
/// Most steps in one run.
pub const STEPS_MAX: usize = 64;
/// Longest run (warm-up plus every step).
pub const RUN_MS_MAX: u64 = 24 * 3600 * 1000;
/// Most worker threads per process.
pub const THREADS_MAX: usize = 256;
/// Most worker processes.
pub const PROCESSES_MAX: usize = 64;
/// Most source addresses.
pub const SOURCE_ADDRS_MAX: usize = 256;
/// Highest aggregate open-loop rate (requests per second).
pub const RATE_MAX: f64 = 50_000_000.0;
/// Largest response (HTTP response or TCP line) a connection buffers.
pub const RESPONSE_BYTES_MAX: usize = 64 << 20;
/// Most updates one subscribe run triggers.
pub const UPDATES_MAX: u32 = 100;
/// Longest resource URI a subscribe run accepts.
pub const URI_BYTES_MAX: usize = 1024;

/// Errors in a configuration.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ConfigError {
    /// The target URL could not be read.
    #[error("bad target {0:?}: {1}")]
    Target(String, &'static str),
    /// An address outside 127.0.0.0/8.
    #[error(
        "{0} is not a loopback address (127.0.0.0/8): ringmcp-load only talks to this machine"
    )]
    NotLoopback(Ipv4Addr),
    /// A source address range that cannot be read.
    #[error("bad source address list {0:?} (want 127.0.0.1-127.0.0.8 or a comma list)")]
    SourceAddrs(String),
    /// A duration that cannot be read.
    #[error("bad duration {0:?} (want e.g. 500ms, 10s, 2m)")]
    Duration(String),
    /// A step that cannot be read.
    #[error("bad step {0:?} (want CONNECTIONS:DURATION[:RATE], e.g. 50:10s:2500)")]
    Step(String),
    /// The tool arguments are not a JSON object.
    #[error("--arguments must be a JSON object: {0}")]
    Arguments(String),
    /// A value out of its bounds.
    #[error("{0}")]
    Bound(String),
}

/// How requests reach the server.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Transport {
    /// Newline-delimited JSON-RPC over TCP: initialize once per connection, then calls.
    Tcp,
    /// Streamable HTTP with a session per connection (initialize, `Mcp-Session-Id`).
    Http,
    /// Streamable HTTP under the stateless 2026-07-28 revision: no initialize, `_meta`
    /// and routing headers on every request.
    HttpStateless,
}

impl Transport {
    /// The URL scheme that names it.
    pub fn scheme(self) -> &'static str {
        match self {
            Transport::Tcp => "tcp",
            Transport::Http => "http",
            Transport::HttpStateless => "http-stateless",
        }
    }

    /// Whether it speaks HTTP.
    pub fn is_http(self) -> bool {
        !matches!(self, Transport::Tcp)
    }
}

/// Where to send load: `tcp://HOST:PORT`, `http://HOST:PORT/mcp[/server]` or
/// `http-stateless://HOST:PORT/mcp[/server]`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Target {
    /// The transport.
    pub transport: Transport,
    /// The server address (loopback only).
    pub addr: SocketAddrV4,
    /// The HTTP path (`/mcp` by default); empty for TCP.
    pub path: String,
}

impl Target {
    /// Reads a target URL. The host is an IPv4 literal in 127.0.0.0/8 or `localhost`.
    pub fn parse(url: &str) -> Result<Target, ConfigError> {
        let bad = |why| ConfigError::Target(url.to_string(), why);
        let (scheme, rest) = url.split_once("://").ok_or_else(|| bad("missing scheme"))?;
        let transport = match scheme {
            "tcp" => Transport::Tcp,
            "http" => Transport::Http,
            "http-stateless" => Transport::HttpStateless,
            _ => return Err(bad("scheme must be tcp, http or http-stateless")),
        };
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, ""),
        };
        let (host, port) = authority
            .rsplit_once(':')
            .ok_or_else(|| bad("missing :PORT"))?;
        let port: u16 = port.parse().map_err(|_| bad("bad port"))?;
        if port == 0 {
            return Err(bad("port 0"));
        }
        let ip: Ipv4Addr = if host == "localhost" {
            Ipv4Addr::LOCALHOST
        } else {
            host.parse()
                .map_err(|_| bad("host must be an IPv4 literal or localhost"))?
        };
        if !ip.is_loopback() {
            return Err(ConfigError::NotLoopback(ip));
        }
        let path = match transport {
            Transport::Tcp => {
                if !path.is_empty() && path != "/" {
                    return Err(bad("a tcp target has no path"));
                }
                String::new()
            }
            Transport::Http | Transport::HttpStateless => {
                let p = if path.is_empty() { "/mcp" } else { path };
                if !p.starts_with("/mcp") || p.len() > 256 {
                    return Err(bad("the path must be /mcp or /mcp/SERVER"));
                }
                if !p
                    .bytes()
                    .all(|b| b.is_ascii_graphic() && b != b'?' && b != b'#')
                {
                    return Err(bad("the path must be plain ASCII without query"));
                }
                p.to_string()
            }
        };
        Ok(Target {
            transport,
            addr: SocketAddrV4::new(ip, port),
            path,
        })
    }

    /// The URL it was read from (normalized).
    pub fn url(&self) -> String {
        format!("{}://{}{}", self.transport.scheme(), self.addr, self.path)
    }
}

/// One step of a stepped run: from its start, `connections` connections are active
/// (connections past it are closed, missing ones opened) for `duration_ms`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Step {
    /// Active connections.
    pub connections: usize,
    /// How long the step lasts.
    pub duration_ms: u64,
    /// Aggregate open-loop rate (requests/s) spread over the active connections; `None`
    /// is closed loop.
    pub rate: Option<f64>,
}

impl Step {
    /// Reads `CONNECTIONS:DURATION[:RATE]`, e.g. `50:10s:2500`.
    pub fn parse(s: &str) -> Result<Step, ConfigError> {
        let bad = || ConfigError::Step(s.to_string());
        let mut parts = s.split(':');
        let connections = parts.next().and_then(|c| c.parse().ok()).ok_or_else(bad)?;
        let duration_ms = parse_duration_ms(parts.next().ok_or_else(bad)?).map_err(|_| bad())?;
        let rate = match parts.next() {
            None => None,
            Some(r) => Some(r.parse::<f64>().map_err(|_| bad())?),
        };
        if parts.next().is_some() {
            return Err(bad());
        }
        Ok(Step {
            connections,
            duration_ms,
            rate,
        })
    }
}

/// Everything one run needs. `Default` is a 10 s closed-loop run of 64 connections
/// against `tcp://127.0.0.1:7070` calling `echo`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunConfig {
    /// Where to send load.
    pub target: Target,
    /// Connections (the most over all steps when `steps` is set).
    pub connections: usize,
    /// Measured duration (ignored when `steps` is set: the steps are the measurement).
    pub duration_ms: u64,
    /// Warm-up before the measurement (excluded from every histogram and count).
    pub warmup_ms: u64,
    /// Open loop at this aggregate rate (requests/s over all connections); `None` is
    /// closed loop.
    pub rate: Option<f64>,
    /// Steps; empty means one step of `connections` for `duration_ms` at `rate`.
    pub steps: Vec<Step>,
    /// Requests in flight per connection (closed loop: kept full; open loop: the most a
    /// connection may have outstanding before due requests queue behind them).
    pub pipeline: u32,
    /// A connection with requests outstanding and no response for this long is counted
    /// as a timeout for each of them and reconnected. Also bounds the final drain.
    pub timeout_ms: u64,
    /// Connect (TCP handshake) timeout, as an io_uring linked timeout.
    pub connect_timeout_ms: u64,
    /// New connections per second over the whole run; `None` opens them as fast as
    /// the kernel accepts them (at most a bounded number connecting per thread).
    pub connect_rate: Option<f64>,
    /// Worker threads in total (0 = every online core).
    pub threads: usize,
    /// Worker processes (0 = as many as the open-file limit requires).
    pub processes: usize,
    /// CPUs to pin worker threads to, round-robin (empty = every online core).
    pub cpus: Vec<usize>,
    /// Source addresses, round-robin over connections (empty = the kernel's choice).
    pub source_addrs: Vec<Ipv4Addr>,
    /// Tool to call.
    pub tool: String,
    /// Tool arguments, a JSON object as text.
    pub arguments: String,
    /// Largest response a connection buffers.
    pub max_response_bytes: usize,
    /// The server's processes (usually one): their CPU time and RSS are read from
    /// /proc and summed.
    pub server_pids: Vec<u32>,
    /// Draw a progress bar on stderr for runs longer than two seconds.
    pub progress: bool,
    /// The command line to print in the report (the CLI sets it).
    pub command_line: Option<String>,
    /// The `ringmcp-load` executable used for worker processes (default: this
    /// executable when it is `ringmcp-load`, else `ringmcp-load` next to it).
    pub worker_exe: Option<PathBuf>,
    /// Subscribe mode: every connection subscribes to a resource and only listens; the
    /// parent triggers updates and the report says how long each took to reach every
    /// subscriber. `None`: connections call the tool.
    #[serde(default)]
    pub subscribe: Option<Subscribe>,
    /// A connection whose handshake the server refuses with an overload answer (a
    /// JSON-RPC error carrying `data.reason` or code -32001/-32005/-32006; over HTTP 429 or
    /// 503) is counted as refused and never reopened: it leaves the run, and its share of
    /// the open-loop schedule is not offered (counted as withdrawn, not as an error).
    /// Off: it is counted as an error and reopened after a back-off, as any failure.
    #[serde(default)]
    pub drop_refused: bool,
}

/// Subscribe mode. After its handshake each connection sends `resources/subscribe` for
/// `uri` (over HTTP it then opens the session's standalone SSE stream with `GET`) and
/// sends nothing else. Once every connection is subscribed, the parent calls
/// `trigger_tool` `updates` times, `update_interval_ms` apart, each time on a short-lived
/// connection of its own, and takes the instant just before writing the call; each
/// connection records when it sees `notifications/resources/updated` for `uri`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Subscribe {
    /// The resource every connection subscribes to.
    pub uri: String,
    /// The tool whose call changes the resource (and notifies its subscribers).
    pub trigger_tool: String,
    /// The trigger tool's arguments, a JSON object as text.
    pub trigger_arguments: String,
    /// Updates to trigger.
    pub updates: u32,
    /// Time from one trigger call to the next.
    pub update_interval_ms: u64,
    /// A subscriber that has not seen an update this long after its trigger call was
    /// written counts as missed (an error). At most `update_interval_ms`, so every
    /// notification belongs to exactly one update.
    pub notify_timeout_ms: u64,
}

impl Default for Subscribe {
    /// `demo://counter`, updated by `increment_counter`, 5 times a second apart, 1 s to
    /// arrive.
    fn default() -> Self {
        Subscribe {
            uri: "demo://counter".into(),
            trigger_tool: "increment_counter".into(),
            trigger_arguments: "{}".into(),
            updates: 5,
            update_interval_ms: 1_000,
            notify_timeout_ms: 1_000,
        }
    }
}

impl Subscribe {
    /// Time the updates need once they start: every interval but the last, plus the last
    /// one's timeout.
    pub fn span_ms(&self) -> u64 {
        u64::from(self.updates.saturating_sub(1))
            .saturating_mul(self.update_interval_ms)
            .saturating_add(self.notify_timeout_ms)
    }

    fn validate(&self, cfg: &RunConfig) -> Result<(), ConfigError> {
        let bound = |ok: bool, what: &str| {
            if ok {
                Ok(())
            } else {
                Err(ConfigError::Bound(what.to_string()))
            }
        };
        bound(
            !self.uri.is_empty()
                && self.uri.len() <= URI_BYTES_MAX
                && !self.uri.chars().any(char::is_control),
            "the subscribed URI must be 1 to 1024 printable characters",
        )?;
        bound(
            !self.trigger_tool.is_empty()
                && self.trigger_tool.len() <= 256
                && !self.trigger_tool.chars().any(char::is_control),
            "the trigger tool name must be 1 to 256 printable characters",
        )?;
        match serde_json::from_str::<serde_json::Value>(&self.trigger_arguments) {
            Ok(serde_json::Value::Object(_)) if self.trigger_arguments.len() <= 1 << 16 => {}
            _ => {
                return Err(ConfigError::Arguments(
                    "the trigger arguments must be a JSON object of at most 64 KiB".into(),
                ))
            }
        }
        bound(
            (1..=UPDATES_MAX).contains(&self.updates),
            "updates must be 1 to 100",
        )?;
        bound(
            (1..=600_000).contains(&self.update_interval_ms),
            "the update interval must be 1 ms to 10 minutes",
        )?;
        bound(
            (1..=self.update_interval_ms).contains(&self.notify_timeout_ms),
            "the notification timeout must be 1 ms to the update interval",
        )?;
        bound(
            cfg.target.transport != Transport::HttpStateless,
            "subscribe mode runs over tcp or http (sessions)",
        )?;
        bound(
            cfg.steps.is_empty() && cfg.rate.is_none(),
            "subscribe mode holds one set of connections and sends no calls: no --step, no --rate",
        )?;
        // The updates must fit in the measured window: the last one's timeout ends
        // before the run closes its connections.
        bound(
            cfg.duration_ms >= self.span_ms() + self.update_interval_ms,
            "subscribe mode needs a duration of at least updates x interval + timeout",
        )?;
        Ok(())
    }
}

impl Default for RunConfig {
    fn default() -> Self {
        RunConfig {
            target: Target {
                transport: Transport::Tcp,
                addr: SocketAddrV4::new(Ipv4Addr::LOCALHOST, 7070),
                path: String::new(),
            },
            connections: 64,
            duration_ms: 10_000,
            warmup_ms: 1_000,
            rate: None,
            steps: Vec::new(),
            pipeline: 1,
            timeout_ms: 5_000,
            connect_timeout_ms: 3_000,
            connect_rate: None,
            threads: 0,
            processes: 0,
            cpus: Vec::new(),
            source_addrs: Vec::new(),
            tool: "echo".to_string(),
            arguments: echo_arguments(64),
            max_response_bytes: 1 << 20,
            server_pids: Vec::new(),
            progress: false,
            command_line: None,
            worker_exe: None,
            subscribe: None,
            drop_refused: false,
        }
    }
}

/// `{"text":"xxx…"}` with `payload_bytes` characters: the default echo arguments.
pub fn echo_arguments(payload_bytes: usize) -> String {
    format!("{{\"text\":\"{}\"}}", "x".repeat(payload_bytes))
}

impl RunConfig {
    /// The steps the run goes through (one when `steps` is empty).
    pub fn effective_steps(&self) -> Vec<Step> {
        if self.steps.is_empty() {
            vec![Step {
                connections: self.connections,
                duration_ms: self.duration_ms,
                rate: self.rate,
            }]
        } else {
            self.steps.clone()
        }
    }

    /// Connections the run may hold at once: the most over its steps.
    pub fn max_connections(&self) -> usize {
        self.effective_steps()
            .iter()
            .map(|s| s.connections)
            .max()
            .unwrap_or(0)
    }

    /// Whether any step is open loop.
    pub fn is_open_loop(&self) -> bool {
        self.effective_steps().iter().any(|s| s.rate.is_some())
    }

    /// Checks every bound.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let bound = |ok: bool, what: String| {
            if ok {
                Ok(())
            } else {
                Err(ConfigError::Bound(what))
            }
        };
        if !self.target.addr.ip().is_loopback() {
            return Err(ConfigError::NotLoopback(*self.target.addr.ip()));
        }
        for a in &self.source_addrs {
            if !a.is_loopback() {
                return Err(ConfigError::NotLoopback(*a));
            }
        }
        bound(
            self.source_addrs.len() <= SOURCE_ADDRS_MAX,
            format!("at most {SOURCE_ADDRS_MAX} source addresses"),
        )?;
        let steps = self.effective_steps();
        bound(
            !steps.is_empty() && steps.len() <= STEPS_MAX,
            format!("1 to {STEPS_MAX} steps"),
        )?;
        let mut total_ms = self.warmup_ms;
        for s in &steps {
            bound(
                s.connections <= CONNECTIONS_MAX,
                format!("at most {CONNECTIONS_MAX} connections"),
            )?;
            bound(
                s.duration_ms > 0,
                "every step needs a duration above 0".into(),
            )?;
            if let Some(r) = s.rate {
                bound(
                    r.is_finite() && r > 0.0 && r <= RATE_MAX,
                    format!("rate must be above 0 and at most {RATE_MAX}"),
                )?;
            }
            total_ms = total_ms.saturating_add(s.duration_ms);
        }
        bound(self.max_connections() > 0, "at least one connection".into())?;
        bound(
            total_ms <= RUN_MS_MAX,
            "a run lasts at most 24 hours".into(),
        )?;
        bound(
            (1..=PIPELINE_MAX).contains(&self.pipeline),
            format!("pipeline must be 1 to {PIPELINE_MAX}"),
        )?;
        bound(
            (1..=3_600_000).contains(&self.timeout_ms),
            "timeout must be 1 ms to 1 hour".into(),
        )?;
        bound(
            (1..=600_000).contains(&self.connect_timeout_ms),
            "connect timeout must be 1 ms to 10 minutes".into(),
        )?;
        if let Some(r) = self.connect_rate {
            bound(
                r.is_finite() && r > 0.0 && r <= RATE_MAX,
                "connect rate must be above 0".into(),
            )?;
        }
        bound(
            self.threads <= THREADS_MAX,
            format!("at most {THREADS_MAX} threads"),
        )?;
        bound(
            self.processes <= PROCESSES_MAX,
            format!("at most {PROCESSES_MAX} processes"),
        )?;
        bound(
            (256..=RESPONSE_BYTES_MAX).contains(&self.max_response_bytes),
            format!("max response bytes must be 256 to {RESPONSE_BYTES_MAX}"),
        )?;
        bound(
            !self.tool.is_empty()
                && self.tool.len() <= 256
                && !self.tool.chars().any(char::is_control),
            "the tool name must be 1 to 256 printable characters".into(),
        )?;
        match serde_json::from_str::<serde_json::Value>(&self.arguments) {
            Ok(serde_json::Value::Object(_)) => {}
            Ok(_) => return Err(ConfigError::Arguments("not an object".into())),
            Err(e) => return Err(ConfigError::Arguments(e.to_string())),
        }
        bound(
            self.arguments.len() <= 1 << 20,
            "arguments above 1 MiB".into(),
        )?;
        if let Some(s) = &self.subscribe {
            s.validate(self)?;
        }
        Ok(())
    }
}

/// Reads `500ms`, `10s`, `2m`, `1h` or a bare number of seconds (`1.5`).
pub fn parse_duration_ms(s: &str) -> Result<u64, ConfigError> {
    let bad = || ConfigError::Duration(s.to_string());
    let s = s.trim();
    let (num, scale) = if let Some(n) = s.strip_suffix("ms") {
        (n, 1.0)
    } else if let Some(n) = s.strip_suffix('s') {
        (n, 1_000.0)
    } else if let Some(n) = s.strip_suffix('m') {
        (n, 60_000.0)
    } else if let Some(n) = s.strip_suffix('h') {
        (n, 3_600_000.0)
    } else {
        (s, 1_000.0)
    };
    let v: f64 = num.trim().parse().map_err(|_| bad())?;
    if !v.is_finite() || v < 0.0 || v * scale > RUN_MS_MAX as f64 {
        return Err(bad());
    }
    Ok((v * scale).round() as u64)
}

/// Reads source addresses: `127.0.0.1-127.0.0.8`, `127.0.0.2,127.0.0.3` or one address.
pub fn parse_source_addrs(s: &str) -> Result<Vec<Ipv4Addr>, ConfigError> {
    let bad = || ConfigError::SourceAddrs(s.to_string());
    let mut out = Vec::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        match part.split_once('-') {
            Some((a, b)) => {
                let a: Ipv4Addr = a.trim().parse().map_err(|_| bad())?;
                let b: Ipv4Addr = b.trim().parse().map_err(|_| bad())?;
                let (a, b) = (u32::from(a), u32::from(b));
                if b < a || (b - a) as usize >= SOURCE_ADDRS_MAX {
                    return Err(bad());
                }
                out.extend((a..=b).map(Ipv4Addr::from));
            }
            None => out.push(part.parse().map_err(|_| bad())?),
        }
        if out.len() > SOURCE_ADDRS_MAX {
            return Err(bad());
        }
    }
    if out.is_empty() {
        return Err(bad());
    }
    for a in &out {
        if !a.is_loopback() {
            return Err(ConfigError::NotLoopback(*a));
        }
    }
    Ok(out)
}

/// Reads a CPU list: `0,1`, `2-5`, `0,2-3`.
pub fn parse_cpu_list(s: &str) -> Result<Vec<usize>, ConfigError> {
    let bad = || ConfigError::Bound(format!("bad CPU list {s:?}"));
    let mut out = Vec::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        match part.split_once('-') {
            Some((a, b)) => {
                let a: usize = a.parse().map_err(|_| bad())?;
                let b: usize = b.parse().map_err(|_| bad())?;
                if b < a || b - a >= 4096 {
                    return Err(bad());
                }
                out.extend(a..=b);
            }
            None => out.push(part.parse().map_err(|_| bad())?),
        }
        if out.len() > 4096 {
            return Err(bad());
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets() {
        let t = Target::parse("tcp://127.0.0.1:7070").unwrap();
        assert_eq!(t.transport, Transport::Tcp);
        assert_eq!(t.addr.port(), 7070);
        assert_eq!(t.url(), "tcp://127.0.0.1:7070");
        let t = Target::parse("http://localhost:8080").unwrap();
        assert_eq!(t.path, "/mcp");
        let t = Target::parse("http-stateless://127.0.0.9:8080/mcp/conformance").unwrap();
        assert_eq!(t.transport, Transport::HttpStateless);
        assert_eq!(t.path, "/mcp/conformance");
        assert!(matches!(
            Target::parse("http://10.0.0.1:80/mcp"),
            Err(ConfigError::NotLoopback(_))
        ));
        assert!(Target::parse("udp://127.0.0.1:1").is_err());
        assert!(Target::parse("tcp://127.0.0.1:7070/x").is_err());
        assert!(Target::parse("http://127.0.0.1:8080/other").is_err());
        assert!(Target::parse("http://127.0.0.1/mcp").is_err());
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration_ms("500ms").unwrap(), 500);
        assert_eq!(parse_duration_ms("10s").unwrap(), 10_000);
        assert_eq!(parse_duration_ms("1.5").unwrap(), 1_500);
        assert_eq!(parse_duration_ms("2m").unwrap(), 120_000);
        assert!(parse_duration_ms("fast").is_err());
        assert!(parse_duration_ms("-1s").is_err());
    }

    #[test]
    fn source_addrs() {
        let a = parse_source_addrs("127.0.0.1-127.0.0.8").unwrap();
        assert_eq!(a.len(), 8);
        assert_eq!(a[7], Ipv4Addr::new(127, 0, 0, 8));
        assert_eq!(parse_source_addrs("127.0.0.2, 127.0.0.3").unwrap().len(), 2);
        assert!(parse_source_addrs("10.0.0.1").is_err());
        assert!(parse_source_addrs("127.0.0.9-127.0.0.1").is_err());
    }

    #[test]
    fn steps() {
        let s = Step::parse("50:10s:2500").unwrap();
        assert_eq!(s.connections, 50);
        assert_eq!(s.duration_ms, 10_000);
        assert_eq!(s.rate, Some(2500.0));
        assert_eq!(Step::parse("5:1s").unwrap().rate, None);
        assert!(Step::parse("5").is_err());
        assert!(Step::parse("5:1s:2:3").is_err());
    }

    #[test]
    fn subscribe_validation() {
        let mut c = RunConfig {
            subscribe: Some(Subscribe::default()),
            ..RunConfig::default()
        };
        assert_eq!(c.validate(), Ok(()));
        // 5 updates 1 s apart, 1 s timeout: 5 s of span plus an interval of slack.
        assert_eq!(Subscribe::default().span_ms(), 5_000);
        c.duration_ms = 5_999;
        assert!(c.validate().is_err());
        c.duration_ms = 6_000;
        assert_eq!(c.validate(), Ok(()));
        let bad = [
            Subscribe {
                uri: String::new(),
                ..Subscribe::default()
            },
            Subscribe {
                updates: 0,
                ..Subscribe::default()
            },
            Subscribe {
                updates: UPDATES_MAX + 1,
                ..Subscribe::default()
            },
            Subscribe {
                notify_timeout_ms: 1_001,
                ..Subscribe::default()
            },
            Subscribe {
                trigger_arguments: "[]".into(),
                ..Subscribe::default()
            },
            Subscribe {
                trigger_tool: "a\nb".into(),
                ..Subscribe::default()
            },
        ];
        for s in bad {
            let cfg = RunConfig {
                subscribe: Some(s.clone()),
                ..RunConfig::default()
            };
            assert!(cfg.validate().is_err(), "{s:?}");
        }
        // Subscribers send no calls: no rate, no steps; and no stateless transport.
        c.rate = Some(10.0);
        assert!(c.validate().is_err());
        c.rate = None;
        c.target = Target::parse("http-stateless://127.0.0.1:8080/mcp").unwrap();
        assert!(c.validate().is_err());
    }

    #[test]
    fn validation() {
        let mut c = RunConfig::default();
        assert_eq!(c.validate(), Ok(()));
        c.pipeline = 0;
        assert!(c.validate().is_err());
        c.pipeline = 1;
        c.arguments = "[1]".into();
        assert!(c.validate().is_err());
        c.arguments = "{}".into();
        c.rate = Some(0.0);
        assert!(c.validate().is_err());
        c.rate = Some(100.0);
        assert!(c.validate().is_ok());
        assert!(c.is_open_loop());
    }
}
