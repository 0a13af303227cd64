//! `ringmcp-load`: the load generator's command line. `run` drives one load against an
//! MCP server on this machine and prints (and optionally writes) its report; `worker`
//! (hidden) is how `run` re-executes itself to spread connections over processes.
//! The engine is the `ringmcp_bench` library.

use clap::{Args, Parser, Subcommand};
use ringmcp_bench::config::{
    echo_arguments, parse_cpu_list, parse_duration_ms, parse_source_addrs, RunConfig, Step,
    Subscribe, Target,
};
use std::path::PathBuf;

#[derive(Parser)]
#[command(
    name = "ringmcp-load",
    version,
    about = "io_uring load generator for MCP servers (closed and open loop, HdrHistogram latency)"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Drive load against a server and report throughput, latency and errors.
    Run(Box<RunArgs>),
    /// Run a seed scenario (or all) against a ringmcp server started for it.
    Scenario(ScenarioArgs),
    /// Baseline, saturate (64 connections) and memory per idle session (2,000 held) against
    /// ringmcp and each peer over Streamable HTTP, with ratios to ringmcp, as markdown.
    Peers(PeersArgs),
    /// Write the markdown results report from the scenarios' JSON summaries, with SVG plots
    /// in `plots/` beside it.
    Report(ReportArgs),
    /// Run one worker process's share of a load (used by `run`; reads its job on stdin).
    #[command(hide = true)]
    Worker,
}

#[derive(Args)]
struct RunArgs {
    /// tcp://HOST:PORT, http://HOST:PORT/mcp[/SERVER] or http-stateless://HOST:PORT/mcp[/SERVER]
    /// (HOST in 127.0.0.0/8 or localhost).
    target: String,
    /// Connections (closed loop: each keeps --pipeline requests in flight).
    #[arg(short = 'c', long, default_value_t = 64)]
    connections: usize,
    /// Measured duration (e.g. 10s, 500ms, 2m).
    #[arg(short = 'd', long, default_value = "10s")]
    duration: String,
    /// Warm-up before the measurement, excluded from every figure.
    #[arg(long, default_value = "1s")]
    warmup: String,
    /// Open loop: this many requests per second over all connections, latency measured
    /// from each request's intended send time. Without it: closed loop.
    #[arg(short = 'r', long)]
    rate: Option<f64>,
    /// Requests in flight per connection.
    #[arg(long, default_value_t = 1)]
    pipeline: u32,
    /// A connection waiting this long for a response counts its requests as timeouts
    /// and reconnects; also bounds the drain after the run.
    #[arg(long, default_value = "5s")]
    timeout: String,
    /// TCP connect timeout (an io_uring linked timeout).
    #[arg(long, default_value = "3s")]
    connect_timeout: String,
    /// Open at most this many connections per second (a ramp); default: as fast as the
    /// kernel goes, 256 connecting at once per thread.
    #[arg(long)]
    connect_rate: Option<f64>,
    /// Worker threads in total (0 = every online core).
    #[arg(short = 't', long, default_value_t = 0)]
    threads: usize,
    /// Worker processes (0 = as many as the open-file limit requires).
    #[arg(long, default_value_t = 0)]
    processes: usize,
    /// CPUs to pin worker threads to, e.g. 1 or 0-3 (default: every online core).
    #[arg(long)]
    cpus: Option<String>,
    /// Source addresses, round-robin over connections, e.g. 127.0.0.1-127.0.0.8 (default:
    /// the kernel's choice, or enough 127.0.0.x for the ephemeral port range).
    #[arg(long)]
    source_addrs: Option<String>,
    /// Tool to call.
    #[arg(long, default_value = "echo")]
    tool: String,
    /// Tool arguments (a JSON object). Default: {"text": <payload-bytes x "x">}.
    #[arg(long)]
    arguments: Option<String>,
    /// Length of the default echo text.
    #[arg(long, default_value_t = 64)]
    payload_bytes: usize,
    /// A step CONNECTIONS:DURATION[:RATE] (repeatable; replaces -c/-d/-r): connections
    /// ramp up or down at each step, each step is reported on its own.
    #[arg(long = "step", value_name = "CONNS:DURATION[:RATE]")]
    steps: Vec<String>,
    /// Largest response a connection buffers.
    #[arg(long, default_value_t = 1 << 20)]
    max_response_bytes: usize,
    /// The server's pid: report its CPU time over the measured window (and per thread),
    /// OK responses per server CPU-second, and its RSS (repeatable: summed over
    /// several server processes).
    #[arg(long = "server-pid", value_name = "PID")]
    server_pids: Vec<u32>,
    /// Write the report as JSON.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Write the latency percentile distribution (HdrHistogram .hgrm text, milliseconds).
    #[arg(long)]
    hgrm: Option<PathBuf>,
    /// Subscribe mode: every connection subscribes to this resource after its handshake
    /// (over HTTP it then holds the session's standalone SSE stream open) and only
    /// listens; once all are subscribed, --trigger-tool is called --updates times and the
    /// report gives each update's fan-out latency to the subscribers. No calls otherwise,
    /// so no --rate or --step.
    #[arg(long, value_name = "URI")]
    subscribe: Option<String>,
    /// Subscribe mode: updates to trigger.
    #[arg(long, default_value_t = 5)]
    updates: u32,
    /// Subscribe mode: time between two trigger calls.
    #[arg(long, default_value = "1s")]
    update_interval: String,
    /// Subscribe mode: a subscriber without the update this long after its trigger call
    /// counts as missed (at most --update-interval).
    #[arg(long, default_value = "1s")]
    notify_timeout: String,
    /// Subscribe mode: the tool that changes the resource.
    #[arg(long, default_value = "increment_counter")]
    trigger_tool: String,
    /// Subscribe mode: the trigger tool's arguments (a JSON object).
    #[arg(long, default_value = "{}")]
    trigger_arguments: String,
    /// A connection whose handshake is refused with an overload answer (JSON-RPC error with
    /// data.reason or code -32001/-32005/-32006; HTTP 429 or 503) is counted as refused and
    /// not reopened; its share of the open-loop schedule is not offered. Default: it counts
    /// as an error and is reopened after a back-off.
    #[arg(long)]
    drop_refused: bool,
    /// No progress bar.
    #[arg(short = 'q', long)]
    quiet: bool,
}

#[derive(Args)]
struct ScenarioArgs {
    /// baseline, flood, flood-cap, bombing, saturate, sweep, hold or all.
    name: String,
    /// The ringmcp binary (default: `ringmcp` next to this binary, or RINGMCP_BIN).
    #[arg(long)]
    server_bin: Option<PathBuf>,
    /// Multiplies every duration (1 = the seed's durations).
    #[arg(long, default_value_t = 1.0)]
    scale: f64,
    /// tcp or http (Streamable HTTP, a session per connection).
    #[arg(long, default_value = "tcp")]
    transport: String,
    /// Where the JSON reports, .hgrm files, summaries and server logs go.
    #[arg(long, default_value = "target/bench")]
    out_dir: PathBuf,
    /// The server's --shards (default: every online core).
    #[arg(long)]
    shards: Option<usize>,
    /// bombing: call `echo` (64 bytes of text) instead of `compute` (100 us of CPU per call),
    /// so that the loopback transport, not the work, sets the capacity.
    #[arg(long)]
    bombing_echo: bool,
    /// No progress bars and no per-run reports (the scenario tables only).
    #[arg(short = 'q', long)]
    quiet: bool,
}

#[derive(Args)]
struct PeersArgs {
    /// Peers to measure (default: ringmcp, rmcp, python-sdk, typescript-sdk).
    #[arg(long = "peer")]
    peers: Vec<String>,
    /// The ringmcp binary (default: `ringmcp` next to this binary, or RINGMCP_BIN).
    #[arg(long)]
    server_bin: Option<PathBuf>,
    /// Multiplies every duration (1 = 30 s baseline, 10 s saturate, 20 s to open the idle
    /// sessions and 10 s holding them).
    #[arg(long, default_value_t = 1.0)]
    scale: f64,
    /// Where the JSON reports and peer installations go.
    #[arg(long, default_value = "target/bench/peers")]
    out_dir: PathBuf,
    /// The markdown file to write.
    #[arg(long, default_value = "docs/benchmarks/peers.md")]
    out: PathBuf,
    /// No progress bars.
    #[arg(short = 'q', long)]
    quiet: bool,
}

fn peers(a: &PeersArgs) -> anyhow::Result<()> {
    use ringmcp_bench::peers::Peer;
    use ringmcp_bench::scenarios::{render_peers_markdown, run_peers, ScenarioOptions};
    let list: Vec<Peer> = if a.peers.is_empty() {
        Peer::ALL.to_vec()
    } else {
        a.peers
            .iter()
            .map(|p| p.parse())
            .collect::<Result<_, String>>()
            .map_err(anyhow::Error::msg)?
    };
    let command_line = ringmcp_bench::sys::shell_join(&std::env::args().collect::<Vec<_>>());
    let o = ScenarioOptions {
        server_bin: server_bin(&a.server_bin),
        scale: a.scale,
        transport: ringmcp_bench::Transport::Http,
        out_dir: a.out_dir.clone(),
        shards: None,
        quiet: a.quiet,
        command_line: command_line.clone(),
        bombing_echo: false,
    };
    let figs = run_peers(&o, &list)?;
    let text = render_peers_markdown(&figs, &command_line);
    print!("{text}");
    write_out(&a.out, &text)?;
    Ok(())
}

#[derive(Args)]
struct ReportArgs {
    /// A directory of `*.summary.json` (repeatable).
    #[arg(long = "in", required = true)]
    dirs: Vec<PathBuf>,
    /// The markdown file to write; the plots go to `plots/` in its directory.
    #[arg(long)]
    out: PathBuf,
    /// The registry example's JSON (shards/examples/registry_bench.rs --json), if any.
    #[arg(long)]
    registry: Option<PathBuf>,
    /// A command that produced the figures, listed in the report (repeatable).
    #[arg(long = "command")]
    commands: Vec<String>,
}

/// The server binary given, else the default ringmcp binary.
fn server_bin(given: &Option<PathBuf>) -> PathBuf {
    given
        .clone()
        .unwrap_or_else(|| ringmcp_bench::peers::StartOptions::default().ringmcp_bin)
}

/// Writes `text` to `out`, creating its parent directory first.
fn write_out(out: &std::path::Path, text: &str) -> anyhow::Result<()> {
    if let Some(dir) = out.parent() {
        if !dir.as_os_str().is_empty() {
            std::fs::create_dir_all(dir)?;
        }
    }
    std::fs::write(out, text).map_err(|e| anyhow::anyhow!("writing {}: {e}", out.display()))?;
    Ok(())
}

fn scenario(a: &ScenarioArgs) -> anyhow::Result<()> {
    use ringmcp_bench::scenarios::{run_scenarios, Scenario, ScenarioOptions};
    let list = Scenario::parse_list(&a.name).map_err(anyhow::Error::msg)?;
    let transport = match a.transport.as_str() {
        "tcp" => ringmcp_bench::Transport::Tcp,
        "http" => ringmcp_bench::Transport::Http,
        other => anyhow::bail!("--transport must be tcp or http, not {other:?}"),
    };
    let o = ScenarioOptions {
        server_bin: server_bin(&a.server_bin),
        scale: a.scale,
        transport,
        out_dir: a.out_dir.clone(),
        shards: a.shards,
        quiet: a.quiet,
        command_line: ringmcp_bench::sys::shell_join(&std::env::args().collect::<Vec<_>>()),
        bombing_echo: a.bombing_echo,
    };
    run_scenarios(&list, &o)?;
    Ok(())
}

fn report(a: &ReportArgs) -> anyhow::Result<()> {
    use ringmcp_bench::scenarios::{read_summaries, render_markdown};
    let summaries = read_summaries(&a.dirs)?;
    anyhow::ensure!(!summaries.is_empty(), "no *.summary.json in {:?}", a.dirs);
    let registry = match &a.registry {
        Some(p) if p.exists() => Some(serde_json::from_str::<serde_json::Value>(
            &std::fs::read_to_string(p)?,
        )?),
        _ => None,
    };
    let plots_dir = a
        .out
        .parent()
        .unwrap_or(std::path::Path::new(""))
        .join("plots");
    let plots = ringmcp_bench::plot::write_plots(&summaries, &plots_dir)?;
    let links: Vec<(String, String)> = plots
        .iter()
        .map(|(chart, path)| {
            eprintln!("wrote {}", path.display());
            (chart.alt.clone(), format!("plots/{}", chart.file))
        })
        .collect();
    let text = render_markdown(&summaries, registry.as_ref(), &a.commands, &links);
    write_out(&a.out, &text)?;
    eprintln!("wrote {}", a.out.display());
    Ok(())
}

fn config(a: &RunArgs) -> anyhow::Result<RunConfig> {
    let steps = a
        .steps
        .iter()
        .map(|s| Step::parse(s))
        .collect::<Result<Vec<_>, _>>()?;
    let connections = if steps.is_empty() {
        a.connections
    } else {
        steps.iter().map(|s| s.connections).max().unwrap_or(0)
    };
    Ok(RunConfig {
        target: Target::parse(&a.target)?,
        connections,
        duration_ms: parse_duration_ms(&a.duration)?,
        warmup_ms: parse_duration_ms(&a.warmup)?,
        rate: a.rate,
        steps,
        pipeline: a.pipeline,
        timeout_ms: parse_duration_ms(&a.timeout)?,
        connect_timeout_ms: parse_duration_ms(&a.connect_timeout)?,
        connect_rate: a.connect_rate,
        threads: a.threads,
        processes: a.processes,
        cpus: match &a.cpus {
            Some(c) => parse_cpu_list(c)?,
            None => Vec::new(),
        },
        source_addrs: match &a.source_addrs {
            Some(s) => parse_source_addrs(s)?,
            None => Vec::new(),
        },
        tool: a.tool.clone(),
        arguments: a
            .arguments
            .clone()
            .unwrap_or_else(|| echo_arguments(a.payload_bytes)),
        max_response_bytes: a.max_response_bytes,
        server_pids: a.server_pids.clone(),
        progress: !a.quiet,
        command_line: Some(ringmcp_bench::sys::shell_join(
            &std::env::args().collect::<Vec<_>>(),
        )),
        worker_exe: None,
        drop_refused: a.drop_refused,
        subscribe: match &a.subscribe {
            Some(uri) => Some(Subscribe {
                uri: uri.clone(),
                trigger_tool: a.trigger_tool.clone(),
                trigger_arguments: a.trigger_arguments.clone(),
                updates: a.updates,
                update_interval_ms: parse_duration_ms(&a.update_interval)?,
                notify_timeout_ms: parse_duration_ms(&a.notify_timeout)?,
            }),
            None => None,
        },
    })
}

fn run(a: &RunArgs) -> anyhow::Result<()> {
    let cfg = config(a)?;
    let report = ringmcp_bench::run(&cfg)?;
    print!("{}", report.render());
    if let Some(path) = &a.json {
        let text = serde_json::to_string_pretty(&report)?;
        std::fs::write(path, text + "\n")
            .map_err(|e| anyhow::anyhow!("writing {}: {e}", path.display()))?;
    }
    if let Some(path) = &a.hgrm {
        let text = report.hgrm().map_err(anyhow::Error::msg)?;
        std::fs::write(path, text)
            .map_err(|e| anyhow::anyhow!("writing {}: {e}", path.display()))?;
    }
    Ok(())
}

fn exit_code(r: anyhow::Result<()>) -> i32 {
    match r {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("ringmcp-load: {e:#}");
            1
        }
    }
}

fn main() {
    let cli = Cli::parse();
    let code = match cli.command {
        Command::Worker => ringmcp_bench::worker_main(),
        Command::Run(a) => exit_code(run(&a)),
        Command::Scenario(a) => exit_code(scenario(&a)),
        Command::Report(a) => exit_code(report(&a)),
        Command::Peers(a) => exit_code(peers(&a)),
    };
    std::process::exit(code);
}
