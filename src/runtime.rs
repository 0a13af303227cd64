//! The runtime: one glommio executor per shard, pinned to its core; the shard's state
//! ([`Shard`]); the channel mesh consumers; the [`Host`] implementation that connects the
//! sans-I/O core to the registry partition and the mesh; and shutdown.
//!
//! Nothing here is shared between shards except read-only configuration, the server
//! factories, and the shutdown flag the signal thread raises.

use crate::config::Config;
use crate::jsonrpc;
use crate::metrics::{LocalMetrics, Method, Metrics, RequestProbe, ShardMetrics};
use crate::rt::{CancelToken, Host, OutMsg, Outbound};
use crate::server::{CoreLimits, McpServer, ServerFactory};
use anyhow::Context as _;
use futures_lite::future::BoxedLocal;
use glommio::{LocalExecutorBuilder, Placement};
use ringmcp_shards::{mesh_builder, Mesh, Partition, PartitionLimits, SessionId, ShardMsg};
use serde_json::json;
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// How often a shard looks at the process-wide shutdown flag.
const SHUTDOWN_POLL: Duration = Duration::from_millis(50);

/// Registered io_uring memory per executor. ringmcp does no DMA file I/O, so it keeps this
/// small: RLIMIT_MEMLOCK is 8 MiB on many hosts (glommio registers it in each of its three
/// rings; see `hostcheck`).
pub const IO_MEMORY_BYTES: usize = 512 << 10;

/// What travels between shards.
#[derive(Debug, Clone)]
pub enum MeshMsg {
    /// Registry traffic: resource updates, list changes, messages for a session.
    Shard(ShardMsg),
    /// HTTP traffic: forwarded requests and their answers.
    Http(crate::transport::http::HttpMsg),
    /// Metrics traffic: shard 0 asking for, and receiving, latency histograms.
    Metrics(crate::admin::MetricsMsg),
}

/// The ordered queue of messages for one peer while its channel is full.
#[derive(Default)]
struct MeshQueue {
    queue: std::collections::VecDeque<MeshMsg>,
    pumping: bool,
}

/// Everything a shard owns.
pub struct Shard {
    /// This shard's index (its mesh peer id).
    pub index: usize,
    /// Number of shards.
    pub count: usize,
    /// The configuration.
    pub config: Arc<Config>,
    /// This shard's copy of every hosted server.
    pub servers: HashMap<String, Rc<McpServer>>,
    /// The registry partition: sessions whose id routes here, their bindings and
    /// subscriptions; each session's sink is its connection's outbound queue.
    pub partition: RefCell<Partition<Rc<dyn Outbound>>>,
    /// The mesh to the other shards (`None` with one shard).
    pub mesh: Option<Mesh<MeshMsg>>,
    /// Messages waiting for room in the mesh channel to each shard, in order.
    mesh_pending: Vec<RefCell<MeshQueue>>,
    /// HTTP sessions this shard owns and exchanges waiting for other shards.
    pub http: crate::transport::http::HttpShared,
    /// Fires when the process is asked to stop.
    pub shutdown: CancelToken,
    /// Open connections.
    pub connections: Cell<usize>,
    /// Admission control: accept rate, connections per source, the shard's message rate and
    /// its requests in flight (every session and accept loop of the shard shares it).
    pub gate: Rc<crate::limits::ShardGate>,
    /// Every shard's metrics (this shard writes only its own, [`Shard::stats`]).
    pub metrics: Arc<Metrics>,
    /// [`Shard::core_limits`], built on first use.
    core_limits: std::cell::OnceCell<Rc<CoreLimits>>,
    /// This shard's counters and its latency histograms (shard-local).
    pub local_metrics: Rc<LocalMetrics>,
    /// Metrics requests this shard (shard 0) is collecting answers for.
    pub admin: crate::admin::AdminShared,
}

impl Shard {
    /// Limits the session core enforces, from the configuration: built once per shard and
    /// shared by every session (one pointer per session instead of a copy).
    pub fn core_limits(&self) -> Rc<CoreLimits> {
        self.core_limits
            .get_or_init(|| Rc::new(self.build_core_limits()))
            .clone()
    }

    fn build_core_limits(&self) -> CoreLimits {
        let l = &self.config.limits;
        CoreLimits {
            in_flight_max: l.session_in_flight_requests_max,
            client_requests_max: l.client_requests_in_flight_max,
            client_request_timeout: Duration::from_millis(l.client_request_timeout_ms),
            page_size: l.page_size,
            batch_max: l.batch_messages_max,
            shard: self.index,
            tool_call_timeout: (l.tool_call_timeout_ms > 0)
                .then(|| Duration::from_millis(l.tool_call_timeout_ms)),
            breaker: self.config.breaker.settings(),
        }
    }

    /// This shard's counters.
    #[inline]
    pub fn stats(&self) -> &ShardMetrics {
        self.metrics.shard(self.index)
    }

    /// Starts measuring a request with `method` (`None`: a message that could not be read
    /// as a request); see [`RequestProbe`].
    pub fn request_probe(&self, method: Option<&str>) -> RequestProbe {
        self.local_metrics.probe(Method::of(method))
    }

    /// Takes a session out of the registry partition; counts it as closed if it was there.
    pub fn unregister_session(&self, id: &SessionId) -> bool {
        let removed = self.partition.borrow_mut().remove(id).is_some();
        if removed {
            self.stats().sessions_closed.inc();
        }
        removed
    }

    /// Mints a session id that routes to this shard.
    pub fn mint_session_id(&self) -> anyhow::Result<SessionId> {
        SessionId::mint(self.index, self.count).context("cannot mint a session id")
    }

    /// Delivers `bytes` to every local subscriber of `topic`. At debug level it logs how
    /// long queueing took and when the last subscriber's message was written.
    fn fan_out_topic(&self, topic: &str, bytes: Rc<[u8]>) {
        let started = std::time::Instant::now();
        let mut subscribers = 0usize;
        {
            let partition = self.partition.borrow();
            for (_, out) in partition.subscribers(topic) {
                let _ = out.send(OutMsg::Shared(bytes.clone()));
                subscribers += 1;
            }
        }
        if subscribers > 0 && tracing::enabled!(tracing::Level::DEBUG) {
            let queued_us = started.elapsed().as_micros() as u64;
            let shard = self.index;
            // The connections' writers were woken in order and run in that order. A new
            // task runs first, but one that wakes itself again goes behind them: after its
            // yield, this shard has written every message whose socket had room (what a
            // subscriber's notification needs; a full socket would wait longer).
            glommio::spawn_local(async move {
                futures_lite::future::yield_now().await;
                let written_us = started.elapsed().as_micros() as u64;
                tracing::debug!(
                    shard,
                    subscribers,
                    queued_us,
                    written_us,
                    "resource update fanned out"
                );
            })
            .detach();
        }
    }

    /// Delivers `bytes` to every local session of `server`.
    fn fan_out_server(&self, server: &str, bytes: Rc<[u8]>) {
        let partition = self.partition.borrow();
        for (_, out) in partition.sessions_of_server(server) {
            let _ = out.send(OutMsg::Shared(bytes.clone()));
        }
    }

    /// Handles a message from another shard.
    fn on_mesh(self: &Rc<Self>, from: usize, msg: MeshMsg) {
        self.stats().mesh_received.inc();
        match msg {
            MeshMsg::Shard(ShardMsg::Publish { topic, bytes }) => {
                self.fan_out_topic(&topic, bytes.into())
            }
            MeshMsg::Shard(ShardMsg::ServerBroadcast { server, bytes }) => {
                self.fan_out_server(&server, bytes.into())
            }
            MeshMsg::Shard(ShardMsg::Deliver { session, bytes }) => {
                debug_assert_eq!(
                    ringmcp_shards::shard_for(session.as_bytes(), self.count),
                    self.index
                );
                if let Some(out) = self.partition.borrow().lookup(&session) {
                    let _ = out.send(OutMsg::Owned(bytes));
                } else {
                    tracing::debug!(from, %session, "message for an unknown session dropped");
                }
            }
            MeshMsg::Http(m) => crate::transport::http::on_mesh(self, m),
            MeshMsg::Metrics(m) => crate::admin::on_mesh(self, from, m),
        }
    }

    /// Sends `msg` to shard `to` over the mesh, keeping the order of everything sent to
    /// that shard. When its channel is full the message waits in a per-peer queue bounded
    /// by `limits.mesh_pending_messages_max` and a task feeds the channel as it drains (the
    /// channel's backpressure); past the bound the message is dropped and logged.
    pub fn mesh_send(self: &Rc<Self>, to: usize, msg: MeshMsg) {
        let Some(mesh) = &self.mesh else {
            return;
        };
        debug_assert_ne!(to, self.index, "a local call never goes through the mesh");
        let stats = self.stats();
        let mut q = self.mesh_pending[to].borrow_mut();
        if !q.pumping && q.queue.is_empty() {
            match mesh.try_send_to(to, msg) {
                Ok(()) => {
                    stats.mesh_sent.inc();
                    return;
                }
                Err(e) if e.is_full() => {
                    q.queue.push_back(e.into_inner());
                }
                Err(_) => {
                    stats.mesh_dropped.inc();
                    tracing::debug!(to, "mesh channel closed: message dropped");
                    return;
                }
            }
        } else if q.queue.len() >= self.config.limits.mesh_pending_messages_max {
            stats.mesh_dropped.inc();
            stats.reject(crate::metrics::Reject::MeshFull);
            tracing::error!(
                to,
                "mesh queue full (limits.mesh_pending_messages_max): message dropped"
            );
            return;
        } else {
            q.queue.push_back(msg);
        }
        stats.mesh_pending.add(1);
        if !q.pumping {
            q.pumping = true;
            let me = self.clone();
            glommio::spawn_local(async move {
                let stats = me.stats();
                loop {
                    let next = me.mesh_pending[to].borrow_mut().queue.pop_front();
                    let Some(msg) = next else { break };
                    stats.mesh_pending.add(-1);
                    let Some(mesh) = &me.mesh else {
                        stats.mesh_dropped.inc();
                        break;
                    };
                    if mesh.send_to(to, msg).await.is_err() {
                        stats.mesh_dropped.inc();
                        break;
                    }
                    stats.mesh_sent.inc();
                }
                let mut q = me.mesh_pending[to].borrow_mut();
                q.pumping = false;
                let left = q.queue.len();
                q.queue.clear();
                stats.mesh_pending.add(-(left as i64));
                stats.mesh_dropped.add(left as u64);
            })
            .detach();
        }
    }

    /// Sends `msg` to every other shard.
    fn broadcast(self: &Rc<Self>, msg: ShardMsg) {
        for to in 0..self.count {
            if to != self.index {
                self.mesh_send(to, MeshMsg::Shard(msg.clone()));
            }
        }
    }
}

/// The [`Host`] of one connection: its shard and its outbound queue.
pub struct ConnHost {
    shard: Rc<Shard>,
    out: Rc<dyn Outbound>,
}

impl ConnHost {
    /// A host for a connection whose messages go to `out`.
    pub fn new(shard: Rc<Shard>, out: Rc<dyn Outbound>) -> Rc<Self> {
        Rc::new(ConnHost { shard, out })
    }
}

impl Host for ConnHost {
    fn sleep(&self, d: Duration) -> BoxedLocal<()> {
        // glommio's zero-length timer is ready at once; a handler sleeping zero in a loop
        // would then never let the shard's other tasks (its own connection's writer
        // included) run. Yield instead.
        if d.is_zero() {
            return Box::pin(futures_lite::future::yield_now());
        }
        Box::pin(glommio::timer::sleep(d))
    }

    fn register(&self, session: &SessionId, server: &str) -> Result<(), String> {
        self.shard
            .partition
            .borrow_mut()
            .register(*session, server, self.out.clone())
            .map_err(|e| format!("cannot register the session: {e}"))?;
        self.shard.stats().sessions_opened.inc();
        Ok(())
    }

    fn subscribe(&self, session: &SessionId, server: &str, uri: &str) -> Result<(), String> {
        let topic = ringmcp_shards::partition::topic_key(server, uri);
        self.shard
            .partition
            .borrow_mut()
            .subscribe(session, &topic)
            .map(|_| ())
            .map_err(|e| format!("cannot subscribe: {e}"))
    }

    fn unsubscribe(&self, session: &SessionId, server: &str, uri: &str) {
        let topic = ringmcp_shards::partition::topic_key(server, uri);
        self.shard
            .partition
            .borrow_mut()
            .unsubscribe(session, &topic);
    }

    fn resource_updated(&self, server: &str, uri: &str) {
        let topic = ringmcp_shards::partition::topic_key(server, uri);
        let bytes =
            jsonrpc::encode_notification("notifications/resources/updated", &json!({"uri": uri}));
        self.shard.broadcast(ShardMsg::Publish {
            topic: topic.clone(),
            bytes: bytes.clone(),
        });
        self.shard.fan_out_topic(&topic, bytes.into());
    }

    fn list_changed(&self, server: &str, method: &str) {
        let bytes = jsonrpc::encode_notification(method, &json!({}));
        self.shard.broadcast(ShardMsg::ServerBroadcast {
            server: server.to_string(),
            bytes: bytes.clone(),
        });
        self.shard.fan_out_server(server, bytes.into());
    }

    fn reject(&self, why: crate::metrics::Reject) {
        self.shard.stats().reject(why);
    }

    fn request_probe(&self, method: Option<&str>) -> Option<RequestProbe> {
        Some(self.shard.request_probe(method))
    }

    fn message_received(&self) {
        self.shard.stats().messages_received.inc();
    }
}

/// The process-wide stop flag, raised by SIGINT/SIGTERM.
#[derive(Clone, Default)]
pub struct StopFlag(Arc<AtomicBool>);

impl StopFlag {
    /// Raises the flag.
    pub fn raise(&self) {
        self.0.store(true, Ordering::Release);
    }
    /// Whether the flag is raised.
    pub fn is_raised(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }
    /// Raises the flag on SIGINT or SIGTERM (a thread waits for the signals).
    pub fn on_signals(&self) -> anyhow::Result<()> {
        let mut signals = signal_hook::iterator::Signals::new([
            signal_hook::consts::SIGINT,
            signal_hook::consts::SIGTERM,
        ])?;
        let flag = self.clone();
        std::thread::Builder::new()
            .name("ringmcp-signals".into())
            .spawn(move || {
                if let Some(sig) = signals.forever().next() {
                    tracing::info!(signal = sig, "stop requested: draining");
                    flag.raise();
                }
            })?;
        Ok(())
    }
}

/// The CPUs this process may run on (its affinity mask, which systemd's CPUAffinity sets).
pub fn allowed_cpus() -> Vec<usize> {
    // SAFETY: cpu_set_t is plain data; sched_getaffinity writes at most its size.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        if libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) == 0 {
            let cpus: Vec<usize> = (0..libc::CPU_SETSIZE as usize)
                .filter(|&c| libc::CPU_ISSET(c, &set))
                .collect();
            if !cpus.is_empty() {
                return cpus;
            }
        }
    }
    (0..std::thread::available_parallelism().map_or(1, |n| n.get())).collect()
}

/// What a shard runs once its state is built: the transports' accept loops.
pub type ShardMain = Arc<dyn Fn(Rc<Shard>) -> BoxedLocal<anyhow::Result<()>> + Send + Sync>;

/// Starts `shards` executors, each pinned to one allowed CPU (round robin), builds each
/// shard's state, runs `main` on every shard, and waits for all of them. `ready` counts
/// shards whose `main` reported readiness.
pub fn run_shards(
    config: Arc<Config>,
    shards: usize,
    factories: Vec<(String, ServerFactory)>,
    stop: StopFlag,
    main: ShardMain,
) -> anyhow::Result<()> {
    let cpus = allowed_cpus();
    let builder = mesh_builder::<MeshMsg>(shards, config.limits.mesh_channel_capacity);
    let failed = Arc::new(AtomicUsize::new(0));
    let metrics = Arc::new(Metrics::new(shards));
    let mut handles = Vec::with_capacity(shards);
    for i in 0..shards {
        let cpu = cpus[i % cpus.len()];
        let config = config.clone();
        let factories = factories.clone();
        let stop = stop.clone();
        let main = main.clone();
        let builder = builder.clone();
        let failed = failed.clone();
        let metrics = metrics.clone();
        let handle = LocalExecutorBuilder::new(Placement::Fixed(cpu))
            .name(&format!("ringmcp-shard-{i}"))
            .io_memory(IO_MEMORY_BYTES)
            .spawn(move || async move {
                let result = shard_main(
                    config,
                    shards,
                    factories,
                    stop.clone(),
                    builder,
                    main,
                    metrics,
                )
                .await;
                if let Err(e) = &result {
                    tracing::error!("shard failed: {e:#}");
                    failed.fetch_add(1, Ordering::Relaxed);
                    // One shard failing takes the process down cleanly.
                    stop.raise();
                }
                result
            })
            .map_err(|e| anyhow::anyhow!("cannot start shard {i} on cpu {cpu}: {e}"))?;
        handles.push(handle);
    }
    let mut first_err = None;
    for h in handles {
        match h.join() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                first_err.get_or_insert(e);
            }
            Err(e) => {
                first_err.get_or_insert(anyhow::anyhow!("shard executor failed: {e}"));
            }
        }
    }
    match first_err {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

async fn shard_main(
    config: Arc<Config>,
    shards: usize,
    factories: Vec<(String, ServerFactory)>,
    stop: StopFlag,
    builder: glommio::channels::channel_mesh::MeshBuilder<
        MeshMsg,
        glommio::channels::channel_mesh::Full,
    >,
    main: ShardMain,
    metrics: Arc<Metrics>,
) -> anyhow::Result<()> {
    let (index, mut mesh) = if shards > 1 {
        let mesh = Mesh::join(builder)
            .await
            .map_err(|e| anyhow::anyhow!("cannot join the shard mesh: {e}"))?;
        (mesh.shard(), Some(mesh))
    } else {
        (0, None)
    };
    let receivers = mesh
        .as_mut()
        .map(|m| m.take_receivers())
        .unwrap_or_default();
    let servers = factories
        .iter()
        .map(|(name, f)| (name.clone(), Rc::new(f())))
        .collect();
    let l = &config.limits;
    let partition = Partition::new(
        index,
        shards,
        PartitionLimits {
            sessions_max: l.sessions_per_shard_max,
            subscriptions_per_session_max: l.subscriptions_per_session_max,
            topics_max: l.topics_per_shard_max,
        },
    );
    let shard = Rc::new(Shard {
        index,
        count: shards,
        config: config.clone(),
        servers,
        partition: RefCell::new(partition),
        mesh,
        mesh_pending: (0..shards)
            .map(|_| RefCell::new(MeshQueue::default()))
            .collect(),
        http: Default::default(),
        shutdown: CancelToken::new(),
        connections: Cell::new(0),
        gate: {
            let m = metrics.clone();
            crate::limits::ShardGate::new(
                &config.limits,
                Box::new(move |why| m.shard(index).reject(why)),
            )
        },
        local_metrics: LocalMetrics::new(metrics.clone(), index),
        metrics,
        core_limits: Default::default(),
        admin: Default::default(),
    });
    // Health zones: this shard evaluates itself every zones.interval_ms.
    glommio::spawn_local(crate::admin::evaluate_zones(shard.clone())).detach();
    // Mesh consumers: one task per peer, feeding the shard.
    for (from, rx) in receivers {
        let s = shard.clone();
        glommio::spawn_local(async move {
            while let Some(msg) = rx.recv().await {
                s.on_mesh(from, msg);
            }
        })
        .detach();
    }
    // The shutdown watcher: turns the process-wide flag into this shard's token.
    {
        let s = shard.clone();
        glommio::spawn_local(async move {
            while !stop.is_raised() {
                glommio::timer::sleep(SHUTDOWN_POLL).await;
            }
            s.shutdown.cancel();
        })
        .detach();
    }
    tracing::debug!(shard = index, "shard started");
    let result = main(shard.clone()).await;
    if let Some(mesh) = &shard.mesh {
        mesh.close();
    }
    result
}
