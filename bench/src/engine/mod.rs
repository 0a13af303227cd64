//! The io_uring worker: one thread, pinned to one core, one ring, a share of the
//! connections. No async runtime: the loop reaps completions, fires due timers, renders
//! requests into each connection's reused send buffer, submits every new operation in
//! one `io_uring_enter`, and sleeps in that same call until the next completion or its
//! single absolute `Timeout` op.
//!
//! Per connection there is at most one connect (with a linked timeout), one multishot
//! receive drawing from the ring's provided buffers ([`bufring`]), and one send. Sockets
//! are ordinary non-blocking fds (bound to a source address first when asked), so a
//! process holds at most RLIMIT_NOFILE of them; the parent spreads more over processes.
//!
//! Time is `CLOCK_MONOTONIC` ([`crate::clock`]); the run's plan is [`crate::schedule`];
//! what a connection sends and how it reads replies is [`conn`].

pub mod bufring;
pub mod conn;

use crate::clock::{now_ns, sleep_until};
use crate::config::{RunConfig, Transport};
use crate::request::Encoder;
use crate::schedule::{self, Cursor, Segment};
use crate::stats::{ErrorKind, Stats};
use bufring::BufRing;
use conn::{Close, Conn, State};
use io_uring::{cqueue, opcode, squeue, types, IoUring};
use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicU64, Ordering};

/// Submission queue entries per ring.
const SQ_ENTRIES: u32 = 1024;
/// Completion queue entries per ring (the kernel keeps overflow, IORING_FEAT_NODROP).
const CQ_ENTRIES: u32 = 8192;
/// Receive buffer size.
const RECV_BUF_BYTES: usize = 4096;
/// Receive buffers per ring, at least and at most.
const RECV_BUFS_MIN: usize = 256;
const RECV_BUFS_MAX: usize = 4096;
/// Connects in flight per worker; more wait in a queue (bounded by its connections).
const CONNECTING_MAX: usize = 256;
/// How often timeouts and ramp-downs are checked (at most; a quarter of the request
/// timeout when that is shorter, and at every step boundary).
const HOUSEKEEPING_NS: u64 = 50_000_000;
/// Back-off after a failed attempt: first, and most.
const BACKOFF_MIN_NS: u64 = 100_000_000;
const BACKOFF_MAX_NS: u64 = 2_000_000_000;
/// How long teardown waits for operations in flight to complete.
const TEARDOWN_NS: u64 = 2_000_000_000;
/// Generations wrap at 24 bits (the user_data field).
const GEN_MASK: u32 = 0x00ff_ffff;
/// Subscribe mode: notifications recorded per connection beyond one per update (a
/// reconnected connection may see an update twice); more are only counted.
const NOTIFY_SLACK: u32 = 16;
const _: () = assert!(crate::config::UPDATES_MAX + NOTIFY_SLACK <= u16::MAX as u32);

const K_CONNECT: u64 = 1;
const K_LINK: u64 = 2;
const K_RECV: u64 = 3;
const K_SEND: u64 = 4;
const K_TIMER: u64 = 5;
const K_TIMER_UPDATE: u64 = 6;

fn ud(kind: u64, gen: u32, idx: u32) -> u64 {
    (kind << 56) | (u64::from(gen & GEN_MASK) << 32) | u64::from(idx)
}

fn ud_parts(ud: u64) -> (u64, u32, u32) {
    (ud >> 56, ((ud >> 32) as u32) & GEN_MASK, ud as u32)
}

/// Errors that stop a worker.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// Setting up or driving the ring failed.
    #[error("io_uring: {0}")]
    Ring(#[from] std::io::Error),
    /// The submission queue stayed full after a submit.
    #[error("io_uring submission queue full after submit")]
    SqFull,
}

/// What one worker thread does.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Global worker index (for messages).
    pub worker: usize,
    /// Global indices of its connections.
    pub conns: Vec<usize>,
    /// Core to pin to.
    pub cpu: Option<usize>,
    /// The run's start, absolute `CLOCK_MONOTONIC` ns.
    pub t0_ns: u64,
}

/// Live totals a worker publishes for the progress bar (one cache line each worker).
#[derive(Debug, Default)]
#[repr(align(128))]
pub struct Live {
    /// OK responses so far (warm-up included).
    pub ok: AtomicU64,
    /// Errors so far.
    pub errors: AtomicU64,
    /// Requests sent so far.
    pub sent: AtomicU64,
    /// Connections open now.
    pub open: AtomicU64,
}

/// What connection handling shares: the plan, the encoder, the stats, scratch space
/// and the queues of pending work. Separate from the ring and the buffers so the
/// protocol code can borrow it while reading a receive buffer.
pub struct Ctx {
    /// The run's start (absolute ns).
    pub t0: u64,
    /// The run's segments.
    pub segs: Vec<Segment>,
    /// The segment `step_at` found last.
    pub seg_hint: std::cell::Cell<usize>,
    /// End of the last segment, ns from t0.
    pub run_end_rel: u64,
    /// Transport.
    pub transport: Transport,
    /// Requests in flight per connection.
    pub pipeline: u32,
    /// Largest response buffered.
    pub max_response_bytes: usize,
    /// Request templates.
    pub encoder: Encoder,
    /// What this worker measured.
    pub stats: Stats,
    /// Dechunked bodies.
    pub scratch: Vec<u8>,
    /// SSE event data.
    pub sse_data: Vec<u8>,
    /// Connections to flush (deduplicated by `Conn::dirty`).
    pub dirty: Vec<u32>,
    /// Timers: (due, connection), stale entries skipped (see `Conn::timer_due`).
    pub heap: BinaryHeap<Reverse<(u64, u32)>>,
    /// Connections open (ready) now; in subscribe mode, subscribed (and streaming) now.
    pub open: u64,
    /// Subscribe mode: the subscribed URI.
    pub subscribe: Option<String>,
    /// Subscribe mode: notifications recorded per connection at most.
    pub notify_per_conn_max: u16,
    /// Connections refused with an overload answer leave the run (`RunConfig::drop_refused`).
    pub drop_refused: bool,
    /// Live totals.
    pub live_ok: u64,
    /// Live totals.
    pub live_err: u64,
    /// Live totals.
    pub live_sent: u64,
}

impl Ctx {
    /// The context of a worker of `conns` connections for run `cfg` starting at `t0`.
    pub fn new(cfg: &RunConfig, segs: &[Segment], t0: u64, conns: usize) -> Ctx {
        Ctx {
            t0,
            segs: segs.to_vec(),
            seg_hint: std::cell::Cell::new(0),
            run_end_rel: schedule::end_ns(segs),
            transport: cfg.target.transport,
            pipeline: cfg.pipeline,
            max_response_bytes: cfg.max_response_bytes,
            encoder: match &cfg.subscribe {
                Some(s) => {
                    Encoder::new(&cfg.target, &cfg.tool, &cfg.arguments).with_subscribe(&s.uri)
                }
                None => Encoder::new(&cfg.target, &cfg.tool, &cfg.arguments),
            },
            stats: Stats::new(cfg.effective_steps().len()),
            scratch: Vec::new(),
            sse_data: Vec::new(),
            dirty: Vec::with_capacity(conns),
            heap: BinaryHeap::with_capacity(conns + 16),
            open: 0,
            subscribe: cfg.subscribe.as_ref().map(|s| s.uri.clone()),
            // updates <= UPDATES_MAX: the sum fits u16 (asserted above).
            notify_per_conn_max: cfg
                .subscribe
                .as_ref()
                .map_or(0, |s| (s.updates + NOTIFY_SLACK) as u16),
            drop_refused: cfg.drop_refused,
            live_ok: 0,
            live_err: 0,
            live_sent: 0,
        }
    }

    /// The step running at absolute `now`, if any.
    pub fn step_at(&self, now: u64) -> Option<u16> {
        let rel = now.saturating_sub(self.t0);
        // Time only moves forward: the cached segment is almost always the one.
        let i = self.seg_hint.get();
        if let Some(s) = self.segs.get(i) {
            if s.start_ns <= rel && rel < s.end_ns {
                return Some(s.step);
            }
        }
        let i = schedule::segment_at(&self.segs, rel)?;
        self.seg_hint.set(i);
        Some(self.segs[i].step)
    }

    /// Counts an OK response to a request of `step` that arrived at `now`.
    pub fn ok(&mut self, step: u16, latency_ns: u64, now: u64) {
        let s = self.stats.step_mut(step);
        s.ok += 1;
        s.latency.saturating_record((latency_ns + 500) / 1000);
        if let Some(arrived) = self.step_at(now) {
            self.stats.step_mut(arrived).ok_arrived += 1;
        }
        self.live_ok += 1;
    }

    /// Counts an error.
    pub fn error(&mut self, step: Option<u16>, kind: ErrorKind) {
        self.stats.error(step, kind, 1);
        self.live_err += 1;
    }

    /// Counts a request of `step` that ended without an OK, as `kind`.
    pub fn request_error(&mut self, step: u16, kind: ErrorKind) {
        self.stats.request_error(step, kind, 1);
        self.live_err += 1;
    }

    /// Queues a flush of `c`.
    pub fn mark_dirty(&mut self, c: &mut Conn) {
        if !c.dirty {
            c.dirty = true;
            self.dirty.push(c.idx);
        }
    }

    /// Sets `c`'s timer to `due` (absolute ns).
    pub fn set_timer(&mut self, c: &mut Conn, due: u64) {
        if c.timer_due == due {
            return;
        }
        c.timer_due = due;
        self.heap.push(Reverse((due, c.idx)));
    }
}

/// Runs one worker to the end of the run; answers what it measured.
pub fn run_worker(
    cfg: &RunConfig,
    segs: &[Segment],
    plan: &Plan,
    live: &Live,
) -> Result<Stats, EngineError> {
    if let Some(cpu) = plan.cpu {
        // Pinning is best effort: a CPU outside the allowed set just leaves the thread
        // where the scheduler puts it.
        let _ = core_affinity::set_for_current(core_affinity::CoreId { id: cpu });
    }
    // Open-loop send instants are the point: no timer slack (the default is 50 us).
    // SAFETY: prctl(PR_SET_TIMERSLACK) only changes this thread's slack.
    unsafe { libc::prctl(libc::PR_SET_TIMERSLACK, 1 as libc::c_ulong) };
    let mut w = Worker::new(cfg, segs, plan, live)?;
    let res = w.run();
    w.teardown();
    res?;
    Ok(std::mem::replace(&mut w.ctx.stats, Stats::new(0)))
}

/// A worker. Field order matters: the ring is dropped before the buffers it uses.
struct Worker<'a> {
    ring: IoUring,
    bufs: Option<BufRing>,
    conns: Vec<Conn>,
    ctx: Ctx,
    live: &'a Live,
    dst: libc::sockaddr_in,
    connect_ts: types::Timespec,
    timer_ts: types::Timespec,
    update_ts: types::Timespec,
    timer_armed: Option<u64>,
    connecting: usize,
    connect_wait: VecDeque<u32>,
    cqes: Vec<(u64, i32, u32)>,
    spare_dirty: Vec<u32>,
    next_housekeeping: u64,
    timeout_ns: u64,
    housekeeping_ns: u64,
    run_end: u64,
    drain_end: u64,
    hard_stop: u64,
}

fn sockaddr(ip: Ipv4Addr, port: u16) -> libc::sockaddr_in {
    libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: port.to_be(),
        sin_addr: libc::in_addr {
            s_addr: u32::from_ne_bytes(ip.octets()),
        },
        sin_zero: [0; 8],
    }
}

fn timespec_abs(ns: u64) -> types::Timespec {
    types::Timespec::new()
        .sec(ns / 1_000_000_000)
        .nsec((ns % 1_000_000_000) as u32)
}

fn errno() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

fn set_opt(fd: i32, level: i32, name: i32, v: libc::c_int) -> i32 {
    // SAFETY: `v` is a live c_int and its size is passed.
    unsafe {
        libc::setsockopt(
            fd,
            level,
            name,
            (&v as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    }
}

fn build_ring() -> std::io::Result<IoUring> {
    // Single issuer + deferred task work: completions are processed only when this
    // thread waits, in one batch. Fall back for kernels without them.
    IoUring::builder()
        .setup_cqsize(CQ_ENTRIES)
        .setup_submit_all()
        .setup_single_issuer()
        .setup_defer_taskrun()
        .build(SQ_ENTRIES)
        .or_else(|_| {
            IoUring::builder()
                .setup_cqsize(CQ_ENTRIES)
                .build(SQ_ENTRIES)
        })
}

impl<'a> Worker<'a> {
    fn new(
        cfg: &RunConfig,
        segs: &[Segment],
        plan: &Plan,
        live: &'a Live,
    ) -> Result<Self, EngineError> {
        let ring = build_ring()?;
        let nbufs = (plan.conns.len() * 2)
            .clamp(RECV_BUFS_MIN, RECV_BUFS_MAX)
            .next_power_of_two();
        // nbufs <= RECV_BUFS_MAX (4096) fits u16.
        let bufs = BufRing::new(&ring, nbufs as u16, RECV_BUF_BYTES)?;
        let t0 = plan.t0_ns;
        let run_end_rel = schedule::end_ns(segs);
        let conns: Vec<Conn> = plan
            .conns
            .iter()
            .enumerate()
            .map(|(i, &g)| {
                let planned = schedule::planned_connect_ns(g, cfg.connect_rate);
                let src = if cfg.source_addrs.is_empty() {
                    None
                } else {
                    Some(cfg.source_addrs[g % cfg.source_addrs.len()])
                };
                // i < plan.conns.len() <= CONNECTIONS_MAX, which fits u32.
                Conn::new(
                    i as u32,
                    g,
                    cfg.pipeline,
                    Cursor::new(segs, g, planned),
                    src,
                    planned,
                )
            })
            .collect();
        let n = conns.len();
        let timeout_ns = cfg.timeout_ms.saturating_mul(1_000_000);
        let run_end = t0 + run_end_rel;
        let drain_end = run_end + timeout_ns;
        Ok(Worker {
            ring,
            bufs: Some(bufs),
            conns,
            ctx: Ctx::new(cfg, segs, t0, n),
            live,
            dst: sockaddr(*cfg.target.addr.ip(), cfg.target.addr.port()),
            connect_ts: types::Timespec::new()
                .sec(cfg.connect_timeout_ms / 1000)
                .nsec(((cfg.connect_timeout_ms % 1000) * 1_000_000) as u32),
            timer_ts: types::Timespec::new(),
            update_ts: types::Timespec::new(),
            timer_armed: None,
            connecting: 0,
            connect_wait: VecDeque::with_capacity(n.min(CONNECTING_MAX * 4)),
            cqes: Vec::with_capacity(CQ_ENTRIES as usize),
            spare_dirty: Vec::with_capacity(n),
            next_housekeeping: 0,
            timeout_ns,
            housekeeping_ns: (timeout_ns / 4).clamp(1_000_000, HOUSEKEEPING_NS),
            run_end,
            drain_end,
            hard_stop: drain_end + 1_000_000_000,
        })
    }

    /// Pushes one entry, submitting first when the queue is full.
    ///
    /// # Safety
    /// Every pointer in `e` must stay valid until its completion is reaped.
    unsafe fn push(&mut self, e: &squeue::Entry) -> Result<(), EngineError> {
        if self.ring.submission().push(e).is_err() {
            self.ring.submit()?;
            self.ring
                .submission()
                .push(e)
                .map_err(|_| EngineError::SqFull)?;
        }
        Ok(())
    }

    fn run(&mut self) -> Result<(), EngineError> {
        sleep_until(self.ctx.t0);
        for c in self.conns.iter_mut() {
            if let Some(t) = schedule::next_active(&self.ctx.segs, c.g, 0) {
                let at = self.ctx.t0 + t.max(c.planned_ns);
                self.ctx.set_timer(c, at);
            }
        }
        // Bounded by `hard_stop`: every pass either sleeps until a completion or the
        // armed timer (never past the next deadline) or finds work.
        loop {
            let now = now_ns();
            if now >= self.hard_stop {
                break;
            }
            self.reap(now)?;
            let now = now_ns();
            self.fire_timers(now)?;
            if now >= self.next_housekeeping {
                if self.housekeeping(now)? {
                    break;
                }
                let rel = now - self.ctx.t0;
                let boundary = self
                    .ctx
                    .segs
                    .iter()
                    .map(|s| s.end_ns)
                    .find(|&e| e > rel)
                    .map_or(u64::MAX, |e| self.ctx.t0 + e);
                self.next_housekeeping = (now + self.housekeeping_ns).min(boundary);
            }
            self.flush_dirty(now)?;
            if let Some(b) = &self.bufs {
                b.publish();
            }
            self.publish_live();
            self.ctx.stats.conns.loops += 1;
            let next = self.next_deadline();
            self.arm_timer(next)?;
            match self.ring.submit_and_wait(1) {
                Ok(_) => {}
                Err(e)
                    if matches!(
                        e.raw_os_error(),
                        Some(libc::EINTR) | Some(libc::EBUSY) | Some(libc::ETIME)
                    ) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }

    fn publish_live(&self) {
        self.live.ok.store(self.ctx.live_ok, Ordering::Relaxed);
        self.live.errors.store(self.ctx.live_err, Ordering::Relaxed);
        self.live.sent.store(self.ctx.live_sent, Ordering::Relaxed);
        self.live.open.store(self.ctx.open, Ordering::Relaxed);
    }

    fn next_deadline(&self) -> u64 {
        let mut next = self.next_housekeeping.min(self.hard_stop);
        if let Some(Reverse((due, _))) = self.ctx.heap.peek() {
            next = next.min(*due);
        }
        next
    }

    /// Keeps the ring's one absolute timer at or before `next`.
    fn arm_timer(&mut self, next: u64) -> Result<(), EngineError> {
        match self.timer_armed {
            Some(t) if t <= next => Ok(()),
            Some(_) => {
                self.update_ts = timespec_abs(next);
                let e = opcode::TimeoutUpdate::new(ud(K_TIMER, 0, 0), &self.update_ts)
                    .flags(types::TimeoutFlags::ABS)
                    .build()
                    .user_data(ud(K_TIMER_UPDATE, 0, 0));
                // SAFETY: the kernel copies the timespec when it prepares the entry,
                // which happens at the submit at the end of this loop pass; `update_ts`
                // is not touched before then.
                unsafe { self.push(&e)? };
                self.timer_armed = Some(next);
                Ok(())
            }
            None => {
                self.timer_ts = timespec_abs(next);
                let e = opcode::Timeout::new(&self.timer_ts)
                    .flags(types::TimeoutFlags::ABS)
                    .build()
                    .user_data(ud(K_TIMER, 0, 0));
                // SAFETY: as above, for `timer_ts`.
                unsafe { self.push(&e)? };
                self.timer_armed = Some(next);
                Ok(())
            }
        }
    }

    fn fire_timers(&mut self, now: u64) -> Result<(), EngineError> {
        // Each pass pops one entry, so this ends.
        while let Some(&Reverse((due, idx))) = self.ctx.heap.peek() {
            if due > now {
                break;
            }
            self.ctx.heap.pop();
            let c = &mut self.conns[idx as usize];
            if c.timer_due != due {
                continue;
            }
            c.timer_due = 0;
            match c.state {
                State::Idle => self.start_connect(idx, now)?,
                State::Ready => self.ctx.mark_dirty(c),
                _ => {}
            }
        }
        // Stale entries pile up only when timers are reset before they fire; rebuild
        // the heap from the live timers when it outgrows its bound.
        if self.ctx.heap.len() > self.conns.len() * 4 + 64 {
            self.ctx.heap.clear();
            for c in &self.conns {
                if c.timer_due != 0 {
                    self.ctx.heap.push(Reverse((c.timer_due, c.idx)));
                }
            }
        }
        Ok(())
    }

    fn start_connect(&mut self, idx: u32, now: u64) -> Result<(), EngineError> {
        let c = &mut self.conns[idx as usize];
        if c.state != State::Idle || c.queued || c.dropped || now >= self.run_end {
            return Ok(());
        }
        if self.connecting >= CONNECTING_MAX {
            c.queued = true;
            self.connect_wait.push_back(idx);
            return Ok(());
        }
        // SAFETY: plain socket(2).
        let fd = unsafe {
            libc::socket(
                libc::AF_INET,
                libc::SOCK_STREAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
                0,
            )
        };
        if fd < 0 {
            let e = errno();
            self.attempt_failed(idx, now, ErrorKind::Connect(e));
            return Ok(());
        }
        set_opt(fd, libc::IPPROTO_TCP, libc::TCP_NODELAY, 1);
        if let Some(src) = c.src {
            // Let connect pick the port per destination, so one source address serves
            // a full port range towards each server port.
            set_opt(fd, libc::IPPROTO_IP, libc::IP_BIND_ADDRESS_NO_PORT, 1);
            let sa = sockaddr(src, 0);
            // SAFETY: `sa` is a valid sockaddr_in and its size is passed.
            let r = unsafe {
                libc::bind(
                    fd,
                    (&sa as *const libc::sockaddr_in).cast(),
                    std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
                )
            };
            if r != 0 {
                let e = errno();
                // SAFETY: closing the socket we just opened.
                unsafe { libc::close(fd) };
                self.attempt_failed(idx, now, ErrorKind::Connect(e));
                return Ok(());
            }
        }
        let c = &mut self.conns[idx as usize];
        c.fd = fd;
        c.state = State::Connecting;
        c.attempt_ns = now;
        c.ops += 2;
        let gen = c.gen;
        self.connecting += 1;
        let connect = opcode::Connect::new(
            types::Fd(fd),
            (&self.dst as *const libc::sockaddr_in).cast(),
            std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
        )
        .build()
        .flags(squeue::Flags::IO_LINK)
        .user_data(ud(K_CONNECT, gen, idx));
        let link = opcode::LinkTimeout::new(&self.connect_ts)
            .build()
            .user_data(ud(K_LINK, gen, idx));
        {
            let sq = self.ring.submission();
            let room = sq.capacity() - sq.len();
            drop(sq);
            if room < 2 {
                self.ring.submit()?;
            }
        }
        // SAFETY: `dst` and `connect_ts` live as long as the worker, which outlives
        // every operation (teardown waits for them). The two entries go in together so
        // the link holds.
        unsafe {
            self.push(&connect)?;
            self.push(&link)?;
        }
        Ok(())
    }

    /// A connect that could not even be submitted.
    fn attempt_failed(&mut self, idx: u32, now: u64, kind: ErrorKind) {
        let step = self.ctx.step_at(now);
        self.ctx.error(step, kind);
        self.ctx.stats.conns.failed += 1;
        let c = &mut self.conns[idx as usize];
        c.backoff_ns = (c.backoff_ns * 2).clamp(BACKOFF_MIN_NS, BACKOFF_MAX_NS);
        c.reconnect_at = now + c.backoff_ns;
        self.schedule_reconnect(idx, now);
    }

    fn schedule_reconnect(&mut self, idx: u32, now: u64) {
        let c = &mut self.conns[idx as usize];
        let at = c.reconnect_at.max(now);
        if at >= self.run_end || c.dropped {
            return;
        }
        let rel = at - self.ctx.t0;
        if let Some(t) = schedule::next_active(&self.ctx.segs, c.g, rel) {
            let due = (self.ctx.t0 + t.max(c.planned_ns)).max(at);
            self.ctx.set_timer(c, due);
        }
    }

    fn pump_connect_wait(&mut self, now: u64) -> Result<(), EngineError> {
        // Bounded by the queue length.
        while self.connecting < CONNECTING_MAX {
            let Some(idx) = self.connect_wait.pop_front() else {
                break;
            };
            self.conns[idx as usize].queued = false;
            self.start_connect(idx, now)?;
        }
        Ok(())
    }

    fn reap(&mut self, mut now: u64) -> Result<(), EngineError> {
        self.cqes.clear();
        for cqe in self.ring.completion() {
            self.cqes.push((cqe.user_data(), cqe.result(), cqe.flags()));
        }
        self.ctx.stats.conns.cqes += self.cqes.len() as u64;
        let cqes = std::mem::take(&mut self.cqes);
        for (i, &(user_data, res, flags)) in cqes.iter().enumerate() {
            if i % 64 == 63 {
                now = now_ns();
            }
            self.on_cqe(user_data, res, flags, now)?;
        }
        self.cqes = cqes;
        self.pump_connect_wait(now)?;
        Ok(())
    }

    fn on_cqe(
        &mut self,
        user_data: u64,
        res: i32,
        flags: u32,
        now: u64,
    ) -> Result<(), EngineError> {
        let (kind, gen, idx) = ud_parts(user_data);
        match kind {
            K_TIMER => {
                self.timer_armed = None;
                return Ok(());
            }
            K_TIMER_UPDATE => {
                // The timer had already fired (its completion is on the way) or could not
                // be moved: arm a fresh one next pass. A second timer in flight only
                // costs one early wake-up.
                if res < 0 {
                    self.timer_armed = None;
                }
                return Ok(());
            }
            _ => {}
        }
        let Some(c) = self.conns.get_mut(idx as usize) else {
            return Ok(());
        };
        let current = c.gen == gen && c.fd >= 0;
        match kind {
            K_CONNECT => {
                c.ops = c.ops.saturating_sub(1);
                self.connecting = self.connecting.saturating_sub(1);
                if !current {
                    self.maybe_idle(idx, now);
                } else if res < 0 {
                    let kind = if res == -libc::ECANCELED {
                        ErrorKind::ConnectTimeout
                    } else {
                        ErrorKind::Connect(-res)
                    };
                    self.close(idx, now, Close::handshake(kind));
                } else {
                    self.on_connected(idx, now)?;
                }
            }
            K_LINK => {
                c.ops = c.ops.saturating_sub(1);
                self.maybe_idle(idx, now);
            }
            K_SEND => {
                c.ops = c.ops.saturating_sub(1);
                c.send_inflight = false;
                if !current {
                    self.maybe_idle(idx, now);
                } else if res < 0 {
                    let ready = c.state == State::Ready;
                    self.close(
                        idx,
                        now,
                        Close {
                            count: Some(ErrorKind::Send(-res)),
                            outstanding: ErrorKind::Closed,
                            failed_attempt: !ready,
                            by_peer: true,
                            refused: false,
                        },
                    );
                } else {
                    c.sent_off += res as usize;
                    if c.sent_off < c.tx.len() {
                        self.submit_send(idx)?;
                    } else {
                        c.tx.clear();
                        c.sent_off = 0;
                        self.ctx.mark_dirty(c);
                    }
                }
            }
            K_RECV => {
                let more = cqueue::more(flags);
                let bid = cqueue::buffer_select(flags);
                if !more {
                    c.ops = c.ops.saturating_sub(1);
                    if current {
                        c.recv_armed = false;
                    }
                }
                if current && res > 0 {
                    if let (Some(bid), Some(bufs)) = (bid, self.bufs.as_ref()) {
                        let data = bufs.buf(bid, res as usize);
                        match c.on_data(&mut self.ctx, data, now) {
                            Ok(true) => self.became_ready(idx, now),
                            Ok(false) => {}
                            Err(cl) => self.close(idx, now, cl),
                        }
                    }
                } else if current && res == 0 {
                    self.close(idx, now, Close::peer());
                } else if current && res < 0 && res != -libc::ENOBUFS {
                    let cl = Close {
                        count: Some(ErrorKind::Recv(-res)),
                        outstanding: ErrorKind::Closed,
                        failed_attempt: false,
                        by_peer: true,
                        refused: false,
                    };
                    self.close(idx, now, cl);
                }
                if let (Some(bid), Some(bufs)) = (bid, self.bufs.as_mut()) {
                    bufs.recycle(bid);
                }
                let c = &mut self.conns[idx as usize];
                if !more && c.gen == gen && c.fd >= 0 && !c.recv_armed {
                    // ENOBUFS or a multishot the kernel ended: arm it again.
                    self.arm_recv(idx)?;
                } else {
                    self.maybe_idle(idx, now);
                }
            }
            _ => {}
        }
        Ok(())
    }

    fn arm_recv(&mut self, idx: u32) -> Result<(), EngineError> {
        let c = &mut self.conns[idx as usize];
        c.ops += 1;
        c.recv_armed = true;
        let e = opcode::RecvMulti::new(types::Fd(c.fd), bufring::BGID)
            .build()
            .user_data(ud(K_RECV, c.gen, idx));
        // SAFETY: the receive writes only into provided buffers, which live until
        // teardown has seen every operation complete.
        unsafe { self.push(&e) }
    }

    fn submit_send(&mut self, idx: u32) -> Result<(), EngineError> {
        let c = &mut self.conns[idx as usize];
        debug_assert!(!c.send_inflight && c.sent_off < c.tx.len());
        let rest = &c.tx[c.sent_off..];
        // Send buffers are bounded by pipeline x request size, far below 4 GiB.
        let e = opcode::Send::new(types::Fd(c.fd), rest.as_ptr(), rest.len() as u32)
            .flags(libc::MSG_NOSIGNAL)
            .build()
            .user_data(ud(K_SEND, c.gen, idx));
        c.send_inflight = true;
        c.ops += 1;
        // SAFETY: `tx` is neither written nor reallocated while `send_inflight` (flush
        // skips the connection; a close only clears its length; reconnecting waits for
        // `ops` to reach 0), and it lives until teardown has seen the send complete.
        unsafe { self.push(&e) }
    }

    fn on_connected(&mut self, idx: u32, now: u64) -> Result<(), EngineError> {
        self.arm_recv(idx)?;
        let c = &mut self.conns[idx as usize];
        let ready = c.start(&mut self.ctx, now);
        if ready {
            self.became_ready(idx, now);
        } else {
            self.ctx.mark_dirty(c);
        }
        Ok(())
    }

    fn became_ready(&mut self, idx: u32, now: u64) {
        let c = &mut self.conns[idx as usize];
        c.state = State::Ready;
        c.backoff_ns = 0;
        c.last_progress_ns = now;
        let us = now.saturating_sub(c.attempt_ns) / 1000;
        self.ctx.stats.handshake.saturating_record(us.max(1));
        self.ctx.stats.conns.made += 1;
        self.ctx.open += 1;
        self.ctx.stats.conns.peak_open = self.ctx.stats.conns.peak_open.max(self.ctx.open);
        self.ctx.mark_dirty(c);
    }

    /// Closes a connection: its requests in flight count as `cl.outstanding`, the socket
    /// goes, and a reconnect is planned (after a back-off when something failed), unless
    /// the server refused it and refused connections leave the run.
    fn close(&mut self, idx: u32, now: u64, cl: Close) {
        let step_now = self.ctx.step_at(now);
        let c = &mut self.conns[idx as usize];
        let refused = cl.refused && cl.failed_attempt;
        if refused {
            if let Some(k) = cl.count {
                *self.ctx.stats.conns.refused.entry(k.label()).or_insert(0) += 1;
            }
            c.dropped = self.ctx.drop_refused;
        }
        if let Some(k) = cl.count {
            // A connection that leaves the run on its refusal is no error: it is counted
            // as refused, and its requests as withdrawn.
            if !c.dropped {
                self.ctx.error(step_now, k);
            }
        }
        let outstanding = cl.outstanding;
        let ctx = &mut self.ctx;
        c.drain_slots(|step| ctx.request_error(step, outstanding));
        let was_ready = c.state == State::Ready;
        if cl.failed_attempt || c.state == State::Connecting {
            ctx.stats.conns.failed += 1;
        }
        if was_ready {
            ctx.open = ctx.open.saturating_sub(1);
            if cl.by_peer {
                ctx.stats.conns.closed_by_peer += 1;
            }
        }
        if c.fd >= 0 {
            // shutdown first: operations in flight hold their own reference to the
            // socket, and shutdown makes them complete now.
            close_fd(&mut c.fd);
        }
        c.gen = (c.gen + 1) & GEN_MASK;
        c.tx.clear();
        c.sent_off = 0;
        c.reset_session();
        c.recv_armed = false;
        c.timer_due = 0;
        let failure = cl.count.is_some() || cl.failed_attempt || cl.by_peer;
        if failure {
            c.backoff_ns = (c.backoff_ns * 2).clamp(BACKOFF_MIN_NS, BACKOFF_MAX_NS);
            c.reconnect_at = now + c.backoff_ns;
        } else {
            c.reconnect_at = now;
        }
        c.state = State::Closing;
        self.maybe_idle(idx, now);
    }

    /// A closing connection whose operations have all completed becomes idle and is
    /// planned for its next attempt.
    fn maybe_idle(&mut self, idx: u32, now: u64) {
        let c = &mut self.conns[idx as usize];
        if c.state == State::Closing && c.ops == 0 {
            c.state = State::Idle;
            c.send_inflight = false;
            c.recv_armed = false;
            self.schedule_reconnect(idx, now);
        }
    }

    fn flush_dirty(&mut self, now: u64) -> Result<(), EngineError> {
        let mut list =
            std::mem::replace(&mut self.ctx.dirty, std::mem::take(&mut self.spare_dirty));
        for &idx in &list {
            let c = &mut self.conns[idx as usize];
            c.dirty = false;
            if c.fd < 0 || c.send_inflight || !c.is_open() {
                continue;
            }
            c.fill(&mut self.ctx, now);
            if !c.tx.is_empty() {
                c.sent_off = 0;
                self.submit_send(idx)?;
            }
        }
        list.clear();
        self.spare_dirty = list;
        Ok(())
    }

    /// Timeouts, ramp-downs and the end of the drain; answers true when the worker is
    /// done.
    fn housekeeping(&mut self, now: u64) -> Result<bool, EngineError> {
        if now >= self.drain_end {
            return Ok(true);
        }
        let rel = now - self.ctx.t0;
        let past_end = now >= self.run_end;
        let active_now = if past_end {
            0
        } else {
            schedule::segment_at(&self.ctx.segs, rel).map_or(0, |i| self.ctx.segs[i].connections)
        };
        let mut busy = false;
        for i in 0..self.conns.len() {
            let idx = i as u32;
            let c = &self.conns[i];
            let waiting = c.inflight > 0 || c.in_handshake();
            if waiting && now.saturating_sub(c.last_progress_ns) >= self.timeout_ns {
                let handshake = c.state != State::Ready;
                self.ctx.stats.conns.timed_out += 1;
                self.close(
                    idx,
                    now,
                    Close {
                        count: handshake.then_some(ErrorKind::Timeout),
                        outstanding: ErrorKind::Timeout,
                        failed_attempt: handshake,
                        by_peer: false,
                        refused: false,
                    },
                );
                continue;
            }
            if c.state == State::Ready
                && c.inflight == 0
                && c.g >= active_now
                && !c.owes_due(&self.ctx, now)
            {
                // Ramped down (or the run is over): close quietly.
                self.close(
                    idx,
                    now,
                    Close {
                        count: None,
                        outstanding: ErrorKind::Closed,
                        failed_attempt: false,
                        by_peer: false,
                        refused: false,
                    },
                );
                continue;
            }
            if past_end
                && (c.inflight > 0 || (c.state == State::Ready && c.owes_due(&self.ctx, now)))
            {
                busy = true;
            }
        }
        Ok(past_end && !busy)
    }

    /// Counts what the run leaves unfinished, closes every socket and waits (bounded)
    /// for the kernel to finish with the buffers.
    fn teardown(&mut self) {
        let run_end_rel = self.ctx.run_end_rel;
        for c in self.conns.iter_mut() {
            let ctx = &mut self.ctx;
            c.drain_slots(|step| ctx.request_error(step, ErrorKind::Incomplete));
            let dropped = c.dropped;
            c.cursor
                .for_each_owed_before(&ctx.segs, c.g, run_end_rel, |step, n| {
                    if dropped {
                        // Given up after a refusal: never offered.
                        ctx.stats.step_mut(step).withdrawn += n;
                    } else {
                        ctx.stats.step_mut(step).unsent += n;
                        ctx.stats.request_error(step, ErrorKind::Incomplete, n);
                    }
                });
            if c.fd >= 0 {
                close_fd(&mut c.fd);
                c.gen = (c.gen + 1) & GEN_MASK;
            }
        }
        self.ctx.open = 0;
        self.publish_live();
        let deadline = now_ns() + TEARDOWN_NS;
        // Bounded by `deadline`.
        loop {
            let pending: u64 = self.conns.iter().map(|c| u64::from(c.ops)).sum();
            if pending == 0 {
                break;
            }
            if now_ns() >= deadline {
                // Operations still in flight may write into the buffers: leak them
                // rather than free memory the kernel may use.
                std::mem::forget(self.bufs.take());
                for c in self.conns.iter_mut() {
                    std::mem::forget(std::mem::take(&mut c.tx));
                }
                break;
            }
            let ts = types::Timespec::new().nsec(50_000_000);
            let args = types::SubmitArgs::new().timespec(&ts);
            let _ = self.ring.submitter().submit_with_args(1, &args);
            self.cqes.clear();
            for cqe in self.ring.completion() {
                self.cqes.push((cqe.user_data(), cqe.result(), cqe.flags()));
            }
            for &(user_data, _, flags) in &self.cqes {
                let (kind, _, idx) = ud_parts(user_data);
                if let Some(c) = self.conns.get_mut(idx as usize) {
                    let done = match kind {
                        K_CONNECT | K_LINK | K_SEND => true,
                        K_RECV => !cqueue::more(flags),
                        _ => false,
                    };
                    if done {
                        c.ops = c.ops.saturating_sub(1);
                    }
                }
                if kind == K_RECV {
                    if let (Some(bid), Some(b)) = (cqueue::buffer_select(flags), self.bufs.as_mut())
                    {
                        b.recycle(bid);
                    }
                }
            }
            if let Some(b) = &self.bufs {
                b.publish();
            }
        }
    }
}

/// Shuts down and closes `fd` (which must be open and ours), then marks it closed
/// (-1). Shutdown comes first: operations in flight hold their own reference to the
/// socket, and shutdown makes them complete now.
fn close_fd(fd: &mut std::os::fd::RawFd) {
    // SAFETY: the fd is ours and closed once (set to -1 below).
    unsafe {
        libc::shutdown(*fd, libc::SHUT_RDWR);
        libc::close(*fd);
    }
    *fd = -1;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_data_round_trip() {
        let u = ud(K_RECV, 0x12_3456, 987_654);
        assert_eq!(ud_parts(u), (K_RECV, 0x12_3456, 987_654));
        let u = ud(K_SEND, GEN_MASK + 5, u32::MAX);
        assert_eq!(ud_parts(u), (K_SEND, 4, u32::MAX));
    }
}
