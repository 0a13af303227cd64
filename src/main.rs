//! The `ringmcp` binary: `serve`, `stdio`, `config` and `check-host`.

use anyhow::Context as _;
use clap::{Args, Parser, Subcommand};
use ringmcp::admin;
use ringmcp::config::{Config, DEFAULT_TOML};
use ringmcp::hostcheck;
use ringmcp::runtime::{run_shards, ShardMain, StopFlag};
use ringmcp::server::ServerFactory;
use ringmcp::systemd::ServiceManager;
use ringmcp::transport::{http, stdio, tcp};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "ringmcp",
    version,
    about = "A thread-per-core MCP server host on io_uring"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve MCP over TCP on every shard.
    Serve(ServeArgs),
    /// Serve one MCP session on stdin/stdout.
    Stdio(StdioArgs),
    /// Print or check configuration.
    Config(ConfigArgs),
    /// Check that this host can hold the configured connections; print each check with its
    /// fix. Exits 0 only when the host is ready.
    CheckHost(CheckHostArgs),
}

#[derive(Args)]
struct Common {
    /// TOML configuration file (see `ringmcp config --print-default`).
    #[arg(long, short = 'c')]
    config: Option<PathBuf>,
    /// Log level: error, warn, info, debug or trace (overrides server.log_level).
    #[arg(long)]
    log_level: Option<String>,
    /// Set any configuration key, e.g. `--set limits.page_size=10` (repeatable; applied
    /// after the file, before the dedicated flags).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    set: Vec<String>,
}

#[derive(Args)]
struct ServeArgs {
    #[command(flatten)]
    common: Common,
    /// Number of shards (0 = every online core).
    #[arg(long)]
    shards: Option<usize>,
    /// TCP listen address (overrides tcp.listen).
    #[arg(long)]
    listen: Option<std::net::SocketAddr>,
    /// HTTP listen address (overrides http.listen).
    #[arg(long)]
    http_listen: Option<std::net::SocketAddr>,
    /// Admin listen address for /metrics, /health, /ready (overrides admin.listen).
    #[arg(long)]
    admin_listen: Option<std::net::SocketAddr>,
    /// Start even when the host cannot hold server.connections_target connections (the
    /// failed checks are logged as warnings).
    #[arg(long)]
    allow_unready_host: bool,
}

#[derive(Args)]
struct CheckHostArgs {
    #[command(flatten)]
    common: Common,
    /// Connections to check for (overrides server.connections_target).
    #[arg(long)]
    connections: Option<u64>,
    /// Number of shards (0 = every allowed core; overrides server.shards).
    #[arg(long)]
    shards: Option<usize>,
    /// Also fail on settings worth tuning, not only on what blocks the connection count.
    #[arg(long)]
    strict: bool,
}

#[derive(Args)]
struct StdioArgs {
    #[command(flatten)]
    common: Common,
    /// Hosted server to talk to (default: server.default_server).
    #[arg(long)]
    server: Option<String>,
}

#[derive(Args)]
struct ConfigArgs {
    /// Print the commented default configuration.
    #[arg(long)]
    print_default: bool,
    /// Check a configuration file and print the effective configuration.
    #[arg(long, value_name = "FILE")]
    check: Option<PathBuf>,
}

fn main() {
    let cli = Cli::parse();
    let code = match run(cli) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("ringmcp: {e:#}");
            1
        }
    };
    std::process::exit(code);
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Config(args) => {
            if args.print_default {
                print!("{DEFAULT_TOML}");
                return Ok(());
            }
            if let Some(path) = args.check {
                let cfg = Config::load(&path)?;
                println!("{path:?}: valid ({} shards)", cfg.effective_shards());
                return Ok(());
            }
            anyhow::bail!("nothing to do: use --print-default or --check FILE")
        }
        Command::Serve(args) => {
            let mut cfg = load_config(&args.common)?;
            if let Some(n) = args.shards {
                cfg.server.shards = n;
            }
            if let Some(l) = args.listen {
                cfg.tcp.listen = l;
            }
            if let Some(l) = args.http_listen {
                cfg.http.listen = l;
            }
            if let Some(l) = args.admin_listen {
                cfg.admin.listen = l;
            }
            cfg.validate()?;
            init_logging(&cfg.server.log_level);
            hostcheck::check_at_start(&cfg, args.allow_unready_host)?;
            serve(cfg)
        }
        Command::CheckHost(args) => {
            let cfg = load_config(&args.common)?;
            let demand = hostcheck::Demand::from_config(&cfg, args.connections, args.shards);
            let report = hostcheck::check(&demand);
            print!("{}", report.render());
            let tune = report.tunables().count();
            if !report.is_ready() {
                anyhow::bail!("{}", report.summary());
            }
            if args.strict && tune > 0 {
                anyhow::bail!("{tune} setting(s) to tune (--strict)");
            }
            Ok(())
        }
        Command::Stdio(args) => {
            let mut cfg = load_config(&args.common)?;
            if let Some(s) = args.server {
                cfg.server.default_server = s;
            }
            cfg.validate()?;
            init_logging(&cfg.server.log_level);
            run_stdio(cfg)
        }
    }
}

/// The file (or the defaults), then `--set` keys, then `--log-level`.
fn load_config(c: &Common) -> anyhow::Result<Config> {
    let text = match &c.config {
        Some(p) => std::fs::read_to_string(p)
            .with_context(|| format!("cannot read config file {}", p.display()))?,
        None => String::new(),
    };
    let mut table: toml::Table = text
        .parse()
        .map_err(|e| anyhow::anyhow!("invalid config: {e}"))?;
    for kv in &c.set {
        let (key, value) = kv
            .split_once('=')
            .ok_or_else(|| anyhow::anyhow!("--set {kv:?}: expected KEY=VALUE"))?;
        let path: Vec<&str> = key.split('.').collect();
        if path.len() < 2 || path.iter().any(|p| p.is_empty()) {
            anyhow::bail!("--set {kv:?}: expected SECTION.KEY=VALUE");
        }
        // A value that is not TOML (a bare word) is taken as a string.
        let parsed: toml::Value = format!("v = {value}")
            .parse::<toml::Table>()
            .ok()
            .and_then(|mut t| t.remove("v"))
            .unwrap_or_else(|| toml::Value::String(value.to_string()));
        let (last, parents) = path.split_last().expect("checked: at least two parts");
        let mut node = &mut table;
        for p in parents {
            node = node
                .entry(p.to_string())
                .or_insert_with(|| toml::Value::Table(toml::Table::new()))
                .as_table_mut()
                .ok_or_else(|| anyhow::anyhow!("--set {kv:?}: {p} is not a section"))?;
        }
        node.insert(last.to_string(), parsed);
    }
    let mut cfg = Config::from_toml(&table.to_string())?;
    if let Some(level) = &c.log_level {
        cfg.server.log_level = level.clone();
    }
    Ok(cfg)
}

fn init_logging(level: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("RINGMCP_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(format!("ringmcp={level},warn")));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false)
        .init();
    // A panicking handler is caught and answered with -32603; log it as one line rather
    // than the default multi-line report.
    std::panic::set_hook(Box::new(|info| {
        let thread = std::thread::current();
        tracing::error!(thread = thread.name().unwrap_or("?"), "panic: {info}");
    }));
}

fn factories(cfg: &Config) -> anyhow::Result<Vec<(String, ServerFactory)>> {
    cfg.server
        .servers
        .iter()
        .map(|name| {
            ringmcp::builtin::factory(name)
                .map(|f| (name.clone(), f))
                .ok_or_else(|| anyhow::anyhow!("unknown built-in server {name:?}"))
        })
        .collect()
}

fn serve(mut cfg: Config) -> anyhow::Result<()> {
    let shards = cfg.effective_shards();
    // One key for every shard of this process: generated here, before the shards start.
    if cfg.http.enabled && cfg.ensure_request_state_key()? {
        tracing::info!(
            "http.request_state_key is not set: generated a random key for this process; \
             a deployment of several nodes must configure the same key on every node, or a \
             requestState issued by one node is refused by the others"
        );
    }
    let cfg = Arc::new(cfg);
    let stop = StopFlag::default();
    stop.on_signals()?;
    let systemd = ServiceManager::from_env(shards);
    systemd.spawn_supervisor(stop.clone())?;
    let ready = Arc::new(AtomicUsize::new(0));
    let tcp_enabled = cfg.tcp.enabled;
    let http_enabled = cfg.http.enabled;
    let admin_enabled = cfg.admin.enabled;
    let mut endpoints = Vec::new();
    if tcp_enabled {
        endpoints.push(format!("{} (tcp)", cfg.tcp.listen));
        endpoints.extend(cfg.tcp.listeners.values().map(|a| format!("{a} (tcp)")));
    }
    if http_enabled {
        endpoints.push(format!("http://{}/mcp (http)", cfg.http.listen));
    }
    if admin_enabled {
        endpoints.push(format!("http://{}/metrics (admin)", cfg.admin.listen));
    }
    let endpoints = endpoints.join(", ");
    let shard_systemd = systemd.clone();
    let main: ShardMain = Arc::new(move |shard| {
        let ready = ready.clone();
        let systemd = shard_systemd.clone();
        let endpoints = endpoints.clone();
        Box::pin(async move {
            let tcp_listeners = if tcp_enabled {
                Some(tcp::bind(&shard)?)
            } else {
                None
            };
            let http_listener = if http_enabled {
                Some(http::conn::bind(&shard)?)
            } else {
                None
            };
            // The admin listener: shard 0 only.
            let admin_task = if admin_enabled && shard.index == 0 {
                Some(admin::start(&shard)?)
            } else {
                None
            };
            shard.stats().listening.set(1);
            systemd.start_heartbeat(shard.index);
            if ready.fetch_add(1, Ordering::AcqRel) + 1 == shard.count {
                tracing::info!(
                    shards = shard.count,
                    "ringmcp {} listening on {endpoints}",
                    env!("CARGO_PKG_VERSION")
                );
                // Readiness: every shard has bound its listeners.
                systemd.ready(&format!("listening on {endpoints}, {} shards", shard.count));
            }
            let http_task =
                http_listener.map(|l| glommio::spawn_local(http::conn::serve(shard.clone(), l)));
            let result = match tcp_listeners {
                Some(l) => tcp::serve_all(shard.clone(), l).await,
                None => {
                    shard.shutdown.cancelled().await;
                    Ok(())
                }
            };
            if let Some(t) = http_task {
                t.await;
            }
            shard.stats().stopped.set(1);
            if let Some(t) = admin_task {
                // /ready answers 503 until every shard has drained.
                admin::linger(&shard).await;
                drop(t);
            }
            result
        })
    });
    let result = run_shards(cfg.clone(), shards, factories(&cfg)?, stop, main);
    systemd.stopping();
    result?;
    tracing::info!("stopped");
    Ok(())
}

fn run_stdio(cfg: Config) -> anyhow::Result<()> {
    let cfg = Arc::new(cfg);
    let stop = StopFlag::default();
    stop.on_signals()?;
    let server = cfg.server.default_server.clone();
    let main: ShardMain = Arc::new(move |shard| {
        let server = server.clone();
        Box::pin(async move { stdio::serve(shard, server).await })
    });
    run_shards(cfg.clone(), 1, factories(&cfg)?, stop, main)
}
