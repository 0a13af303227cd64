//! `ringmcp-peer-rmcp`: the benchmark's Rust peer. The official Rust MCP SDK (crate `rmcp`)
//! serving one tool, `echo`, with the same contract as ringmcp's demo `echo` (input
//! `{"text": string}`, one text content block with the same text back, annotations
//! readOnlyHint/idempotentHint true and openWorldHint false), over rmcp's Streamable HTTP
//! server (`StreamableHttpService` on axum, as rmcp's own examples mount it) at `/mcp`.
//!
//! ```text
//! ringmcp-peer-rmcp [--listen 127.0.0.1:8090] [--threads N] [--stateless-json] [--stock]
//! ```
//!
//! * `--threads N`: tokio worker threads (default: every online core, like ringmcp's shards).
//! * Default mode: stateful sessions (`Mcp-Session-Id`), like ringmcp. rmcp 3.11 answers a
//!   POST in a session with `text/event-stream` only: its `json_response` option applies to
//!   stateless mode alone (see bench/peers/README.md), so a client must read the one
//!   `data:` event of each response.
//! * `--stateless-json`: rmcp's stateless mode with `json_response`: `application/json`
//!   bodies, no session id, no server-side session state.
//! * By default two things that serve only the resumption of an SSE response stream are off:
//!   the priming event (`id:` + `retry:`) rmcp sends before each response, and rmcp's 60 s
//!   cache of every completed request's stream. ringmcp answers such a request with one
//!   `application/json` body, so it has no stream to prime or keep; rmcp without them does
//!   the same work for the same request. An idle session lives 30 minutes (rmcp: 5), as in
//!   ringmcp (`http.session_idle_timeout_ms`). `--stock` keeps rmcp's defaults for all three.
//!
//! It prints `listening on ADDR` on stdout once the socket is bound, and exits on SIGINT or
//! SIGTERM.

use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{CallToolResult, ContentBlock, Implementation, ServerCapabilities, ServerConfig};
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use rmcp::{schemars, tool, tool_handler, tool_router, ServerHandler};
use std::io::Write;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

/// How long an idle session lives: ringmcp's `http.session_idle_timeout_ms`.
const SESSION_IDLE_TIMEOUT: Duration = Duration::from_secs(30 * 60);

const USAGE: &str =
    "usage: ringmcp-peer-rmcp [--listen ADDR] [--threads N] [--stateless-json] [--stock]";

/// The arguments of `echo`.
#[derive(Debug, serde::Deserialize, schemars::JsonSchema)]
struct EchoArgs {
    /// Text to echo
    text: String,
}

/// The server: one value per session (rmcp's session factory clones it); the tool router
/// is built once and shared, so a session costs rmcp's own state and no copy of the router.
#[derive(Clone)]
struct EchoServer {
    tool_router: Arc<ToolRouter<EchoServer>>,
}

#[tool_router]
impl EchoServer {
    fn new() -> Self {
        Self {
            tool_router: Arc::new(Self::tool_router()),
        }
    }

    #[tool(
        description = "Returns the text it is given.",
        annotations(read_only_hint = true, idempotent_hint = true, open_world_hint = false)
    )]
    fn echo(&self, Parameters(EchoArgs { text }): Parameters<EchoArgs>) -> CallToolResult {
        CallToolResult::success(vec![ContentBlock::text(text)])
    }
}

#[tool_handler(router = self.tool_router)]
impl ServerHandler for EchoServer {
    fn get_info(&self) -> ServerConfig {
        // `from_build_env` is expanded inside rmcp: its version is rmcp's own.
        let rmcp = Implementation::from_build_env();
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(Implementation::new("rmcp-echo", rmcp.version))
    }
}

struct Options {
    listen: SocketAddr,
    threads: usize,
    stateless_json: bool,
    stock: bool,
}

fn parse_args() -> Result<Options, String> {
    let mut opts = Options {
        listen: SocketAddr::from(([127, 0, 0, 1], 8090)),
        threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
        stateless_json: false,
        stock: false,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--listen" => {
                let v = args.next().ok_or("--listen needs an address")?;
                opts.listen = v.parse().map_err(|e| format!("--listen {v}: {e}"))?;
            }
            "--threads" => {
                let v = args.next().ok_or("--threads needs a number")?;
                opts.threads = v.parse().map_err(|e| format!("--threads {v}: {e}"))?;
                if opts.threads == 0 {
                    return Err("--threads must be at least 1".into());
                }
            }
            "--stateless-json" => opts.stateless_json = true,
            "--stock" => opts.stock = true,
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    Ok(opts)
}

fn main() {
    let opts = match parse_args() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("ringmcp-peer-rmcp: {e}\n{USAGE}");
            std::process::exit(2);
        }
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(opts.threads)
        .enable_all()
        .build();
    let result = match runtime {
        Ok(rt) => rt.block_on(serve(&opts)),
        Err(e) => Err(e),
    };
    if let Err(e) = result {
        eprintln!("ringmcp-peer-rmcp: {e}");
        std::process::exit(1);
    }
}

async fn serve(opts: &Options) -> std::io::Result<()> {
    let mut config = StreamableHttpServerConfig::default()
        .with_legacy_session_mode(!opts.stateless_json)
        .with_json_response(opts.stateless_json);
    // rmcp checks the Host header against loopback names by default; a benchmark may also
    // listen on another local address.
    let ip = opts.listen.ip().to_string();
    if !config.allowed_hosts.contains(&ip) {
        config.allowed_hosts.push(ip);
    }
    let mut sessions = LocalSessionManager::default();
    if !opts.stock {
        config = config.with_sse_retry(None);
        sessions.session_config.sse_retry = None;
        sessions.session_config.completed_cache_ttl = Duration::ZERO;
        sessions.session_config.keep_alive = Some(SESSION_IDLE_TIMEOUT);
    }
    let shutdown = config.cancellation_token.clone();
    let prototype = EchoServer::new();
    let service =
        StreamableHttpService::new(move || Ok(prototype.clone()), Arc::new(sessions), config);
    let router = axum::Router::new().route_service("/mcp", service);

    let listener = tokio::net::TcpListener::bind(opts.listen).await?;
    let local = listener.local_addr()?;
    {
        let mut out = std::io::stdout().lock();
        writeln!(
            out,
            "listening on {local} (rmcp, {} threads, {}{})",
            opts.threads,
            if opts.stateless_json {
                "stateless, JSON responses"
            } else {
                "stateful sessions, SSE responses"
            },
            if opts.stock { ", stock settings" } else { "" }
        )?;
        out.flush()?;
    }
    let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
        // Responses go out as a header write and body writes; Nagle would hold them back.
        let _ = tcp.set_nodelay(true);
    });
    axum::serve(listener, router)
        .with_graceful_shutdown(async move {
            wait_for_signal().await;
            shutdown.cancel();
        })
        .await
}

async fn wait_for_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    match (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) {
        (Ok(mut int), Ok(mut term)) => {
            tokio::select! {
                _ = int.recv() => {}
                _ = term.recv() => {}
            }
        }
        // Without signal handlers the default disposition ends the process on either
        // signal, so there is nothing to wait for here.
        _ => std::future::pending().await,
    }
}
