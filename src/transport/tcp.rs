//! Newline-delimited JSON-RPC over TCP. Every shard binds the same address with
//! SO_REUSEPORT (glommio's listener sets it), so the kernel spreads connections over the
//! shards; a connection lives and dies on the shard that accepted it.
//!
//! Each connection has a reader (this module's loop) and a writer task draining the
//! connection's bounded outbound queue. The reader reads into the shard's scratch buffer,
//! so an idle connection holds no receive buffer of its own.

use crate::jsonrpc::{self, code};
use crate::limits::Overload;
use crate::metrics::Reject;
use crate::metrics::Transport;
use crate::runtime::Shard;
use crate::transport::conn::{too_long_message, Conn};
use crate::transport::lines::LineBuf;
use futures_lite::{AsyncRead, AsyncWrite, FutureExt};
use glommio::net::{TcpListener, TcpStream};
use std::cell::RefCell;
use std::future::Future;
use std::io;
use std::os::fd::AsRawFd;
use std::pin::Pin;
use std::rc::Rc;
use std::time::{Duration, Instant};

/// Bytes read from a socket at once (the shard's scratch buffer).
pub const READ_CHUNK_BYTES: usize = 64 << 10;
/// A writer keeps at most this much buffer between writes.
const WRITE_BUF_KEEP_BYTES: usize = 64 << 10;

thread_local! {
    // One scratch buffer per shard thread: reads copy out of it at once, so no connection
    // keeps a receive buffer while it is idle.
    static SCRATCH: RefCell<Box<[u8]>> = RefCell::new(vec![0u8; READ_CHUNK_BYTES].into_boxed_slice());
}

/// Binds every configured TCP listener on this shard: the main one (serving
/// `server.default_server`) and `tcp.listeners`. Called before the accept loops so that a
/// bind error stops start-up.
pub fn bind(shard: &Shard) -> anyhow::Result<Vec<(TcpListener, String)>> {
    let tcp = &shard.config.tcp;
    let main = (tcp.listen, shard.config.server.default_server.clone());
    let extra = tcp.listeners.iter().map(|(s, a)| (*a, s.clone()));
    std::iter::once(main)
        .chain(extra)
        .map(|(addr, server)| {
            TcpListener::bind(addr)
                .map(|l| (l, server))
                .map_err(|e| anyhow::anyhow!("cannot listen on {addr} (tcp): {e}"))
        })
        .collect()
}

/// Runs the accept loops of every listener until shutdown, then waits for the
/// connections to drain.
pub async fn serve_all(
    shard: Rc<Shard>,
    listeners: Vec<(TcpListener, String)>,
) -> anyhow::Result<()> {
    let loops: Vec<_> = listeners
        .into_iter()
        .map(|(l, server)| glommio::spawn_local(accept_loop(shard.clone(), l, server)))
        .collect();
    for l in loops {
        l.await;
    }
    // Connections drain on their own (they watch the same shutdown token).
    wait_for_connections(&shard).await;
    Ok(())
}

/// Accepts connections for `server` until shutdown.
async fn accept_loop(shard: Rc<Shard>, listener: TcpListener, server: String) {
    accept_until_shutdown(
        &shard,
        listener,
        "accept",
        |why| {
            let mut line = jsonrpc::encode_error(None, &why.to_error());
            line.push(b'\n');
            line
        },
        |stream| handle(shard.clone(), stream, server.clone()),
    )
    .await;
}

/// Accepts connections on `listener` until shutdown and spawns `serve` for each. A
/// connection the shard's admission control refuses (connections per shard, per source
/// address, accept rate: [`crate::limits::ShardGate::admit_connection`]) gets the bytes
/// `refusal(why)` returns instead (written for at most 100 ms) and is shut down. A failed
/// accept (EMFILE/ENFILE and friends) is logged as "`what` failed" and retried after a
/// pause.
pub(crate) async fn accept_until_shutdown<F>(
    shard: &Rc<Shard>,
    listener: TcpListener,
    what: &str,
    refusal: impl Fn(&Overload) -> Vec<u8>,
    mut serve: impl FnMut(TcpStream) -> F,
) where
    F: Future<Output = ()> + 'static,
{
    loop {
        let accepted = async { Some(listener.accept().await) }
            .or(async {
                shard.shutdown.cancelled().await;
                None
            })
            .await;
        let stream = match accepted {
            None => break,
            Some(Ok(s)) => s,
            Some(Err(e)) => {
                // Back off briefly instead of spinning.
                tracing::warn!(shard = shard.index, "{what} failed: {e}");
                glommio::timer::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        // The peer's address costs a syscall: asked only when sources are counted.
        let source = shard
            .gate
            .tracks_sources()
            .then(|| stream.peer_addr().ok().map(|a| a.ip().to_canonical()))
            .flatten();
        match shard.gate.admit_connection(source, Instant::now) {
            Ok(ticket) => {
                // Boxed: moved into the task as a pointer, the connection's future is stored
                // once (an async block that awaits a captured future keeps two copies).
                let served = Box::pin(serve(stream));
                glommio::spawn_local(async move {
                    let _ticket = ticket;
                    served.await
                })
                .detach();
            }
            Err(why) => {
                glommio::spawn_local(refuse(stream, refusal(&why))).detach();
            }
        }
    }
}

/// Waits for this shard's connections to close, a little longer than their grace period
/// (they drain on their own once shutdown begins).
pub(crate) async fn wait_for_connections(shard: &Shard) {
    let grace =
        Duration::from_millis(shard.config.server.shutdown_grace_ms) + Duration::from_secs(1);
    let deadline = std::time::Instant::now() + grace;
    while shard.connections.get() > 0 && std::time::Instant::now() < deadline {
        glommio::timer::sleep(Duration::from_millis(10)).await;
    }
}

/// Writes `answer` to a refused connection (for at most 100 ms) and shuts it down.
async fn refuse(stream: TcpStream, answer: Vec<u8>) {
    let stream = RefCell::new(stream);
    let _ = write_all(&stream, &answer)
        .or(async {
            glommio::timer::sleep(Duration::from_millis(100)).await;
            Ok(())
        })
        .await;
    shutdown_now(&stream.borrow());
}

pub(crate) struct ConnCount(Rc<Shard>, Transport);
impl ConnCount {
    /// Counts one connection of `transport` on `shard` until dropped (in the shard's limit
    /// and in its metrics).
    pub(crate) fn new(shard: Rc<Shard>, transport: Transport) -> Self {
        shard.connections.set(shard.connections.get() + 1);
        shard.stats().connections_accepted[transport as usize].inc();
        ConnCount(shard, transport)
    }
}
impl Drop for ConnCount {
    fn drop(&mut self) {
        self.0.connections.set(self.0.connections.get() - 1);
        self.0.stats().connections_closed[self.1 as usize].inc();
    }
}

enum Event {
    Data(usize),
    Eof,
    Idle,
    Stop,
    Failed(io::Error),
}

async fn handle(shard: Rc<Shard>, stream: TcpStream, server: String) {
    let _count = ConnCount::new(shard.clone(), Transport::Tcp);
    let _ = stream.set_nodelay(true);
    let peer = stream.peer_addr().ok();
    let mut conn = match Conn::open(&shard, &server) {
        Ok(c) => c,
        Err(e) => {
            tracing::error!("cannot open a session: {e:#}");
            return;
        }
    };
    let stream = Rc::new(RefCell::new(stream));
    let writer = glommio::spawn_local(write_loop(
        shard.clone(),
        stream.clone(),
        conn.out().clone(),
    ));
    tracing::debug!(shard = shard.index, ?peer, "connection open");
    read_loop(&shard, &stream, &mut conn).await;
    conn.drain(Duration::from_millis(shard.config.server.shutdown_grace_ms))
        .await;
    conn.close();
    if writer.await == Written::Stalled {
        // The client took nothing for tcp.write_timeout_ms: reset the connection, so that
        // neither its socket buffers nor a close that waits on them outlive it.
        abort_on_close(&stream.borrow());
    }
    shutdown_now(&stream.borrow());
    tracing::debug!(shard = shard.index, ?peer, "connection closed");
}

async fn read_loop(shard: &Rc<Shard>, stream: &Rc<RefCell<TcpStream>>, conn: &mut Conn) {
    let limits = &shard.config.limits;
    let mut lines = LineBuf::new(limits.max_message_bytes);
    let idle = (limits.idle_timeout_ms > 0).then(|| Duration::from_millis(limits.idle_timeout_ms));
    let message_max = (limits.message_read_timeout_ms > 0)
        .then(|| Duration::from_millis(limits.message_read_timeout_ms));
    // When the unfinished message in `lines` began, and whether a whole one ever arrived
    // (a peer that never sent one and times out is counted as slow).
    let mut partial_since: Option<Instant> = None;
    let mut framed = false;
    loop {
        // Backpressure: while the client does not read what we send, stop reading what it
        // sends. The wait still ends on shutdown, and on the idle timeout: a client that
        // reads nothing for that long is gone.
        let room = async {
            conn.out().has_room().await;
            true
        };
        let stopped = async {
            shard.shutdown.cancelled().await;
            false
        };
        let has_room = match idle {
            Some(d) => {
                room.or(stopped)
                    .or(async {
                        glommio::timer::sleep(d).await;
                        false
                    })
                    .await
            }
            None => room.or(stopped).await,
        };
        if !has_room || conn.out().is_closed() {
            break;
        }
        let out = conn.out().clone();
        let read = async { read_some(stream).await };
        let stop = async {
            shard.shutdown.cancelled().await;
            Event::Stop
        };
        let closed = async {
            out.closed().await;
            Event::Stop
        };
        // The idle timeout, or the end of the unfinished message's time if that comes first.
        let (wait, partial_due) = match (partial_since.zip(message_max), idle) {
            (Some((t, max)), idle) => {
                let left = max.saturating_sub(t.elapsed());
                match idle {
                    Some(d) if d < left => (Some(d), false),
                    _ => (Some(left), true),
                }
            }
            (None, idle) => (idle, false),
        };
        let event = match wait {
            Some(d) => {
                read.or(stop)
                    .or(closed)
                    .or(async {
                        glommio::timer::sleep(d).await;
                        Event::Idle
                    })
                    .await
            }
            None => read.or(stop).or(closed).await,
        };
        match event {
            Event::Data(n) => {
                shard.stats().bytes_received[Transport::Tcp as usize].add(n as u64);
                let result = SCRATCH.with(|s| {
                    let s = s.borrow();
                    lines.feed(&s[..n], |line| {
                        framed = true;
                        conn.on_frame(line)
                    })
                });
                if let Err(e) = result {
                    let (code, msg) = too_long_message(e.max);
                    conn.send_error(code, msg);
                    break;
                }
                partial_since = match partial_since {
                    Some(t) if lines.has_partial() => Some(t),
                    None if lines.has_partial() => Some(Instant::now()),
                    _ => None,
                };
            }
            Event::Eof => break,
            Event::Idle if partial_due => {
                shard.stats().reject(Reject::SlowPeer);
                tracing::debug!(shard = shard.index, "message read timeout: closing");
                conn.send_error(
                    code::INVALID_REQUEST,
                    format!(
                        "message not complete within limits.message_read_timeout_ms ({} ms); closing the connection",
                        limits.message_read_timeout_ms
                    ),
                );
                break;
            }
            Event::Idle => {
                if conn.in_flight() == 0 {
                    if !framed || lines.has_partial() {
                        shard.stats().reject(Reject::SlowPeer);
                    }
                    tracing::debug!(shard = shard.index, "idle timeout: closing");
                    break;
                }
            }
            Event::Stop => break,
            Event::Failed(e) => {
                tracing::debug!(shard = shard.index, "read failed: {e}");
                break;
            }
        }
    }
}

/// Shuts the socket down at once (a plain syscall: nothing to wait for); the descriptor is
/// closed when the stream drops.
pub(crate) fn shutdown_now(stream: &TcpStream) {
    // SAFETY: the descriptor belongs to `stream`, which outlives this call.
    unsafe {
        libc::shutdown(stream.as_raw_fd(), libc::SHUT_RDWR);
    }
}

/// Reads what the socket has (through the shard's scratch buffer) and appends it to
/// `dst`. `Ok(0)` is end of stream.
pub(crate) async fn read_append(
    stream: &RefCell<TcpStream>,
    dst: &mut Vec<u8>,
) -> io::Result<usize> {
    let n = std::future::poll_fn(|cx| {
        SCRATCH.with(|s| {
            let mut s = s.borrow_mut();
            let mut st = stream.borrow_mut();
            Pin::new(&mut *st).poll_read(cx, &mut s[..])
        })
    })
    .await?;
    SCRATCH.with(|s| dst.extend_from_slice(&s.borrow()[..n]));
    Ok(n)
}

async fn read_some(stream: &RefCell<TcpStream>) -> Event {
    let r = std::future::poll_fn(|cx| {
        SCRATCH.with(|s| {
            let mut s = s.borrow_mut();
            let mut st = stream.borrow_mut();
            Pin::new(&mut *st).poll_read(cx, &mut s[..])
        })
    })
    .await;
    match r {
        Ok(0) => Event::Eof,
        Ok(n) => Event::Data(n),
        Err(e) => Event::Failed(e),
    }
}

pub(crate) async fn write_all(stream: &RefCell<TcpStream>, mut buf: &[u8]) -> io::Result<()> {
    while !buf.is_empty() {
        let n = std::future::poll_fn(|cx| {
            let mut st = stream.borrow_mut();
            Pin::new(&mut *st).poll_write(cx, buf)
        })
        .await?;
        if n == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        buf = &buf[n..];
    }
    Ok(())
}

/// How a connection's writer ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Written {
    /// The queue closed and what it held was written, or the write failed.
    Done,
    /// The client took nothing of a write for `tcp.write_timeout_ms`.
    Stalled,
}

/// Writes all of `buf`; fails with `TimedOut` when the peer takes nothing of it for `stall`
/// (each byte it takes starts the wait anew, so a slow reader is not a stalled one).
async fn write_all_within(
    stream: &RefCell<TcpStream>,
    mut buf: &[u8],
    stall: Duration,
) -> io::Result<()> {
    while !buf.is_empty() {
        let n = {
            let rest = buf;
            let mut write = std::pin::pin!(std::future::poll_fn(move |cx| {
                let mut st = stream.borrow_mut();
                Pin::new(&mut *st).poll_write(cx, rest)
            }));
            // Most writes complete at once: the timer is armed only for one that waits.
            match futures_lite::future::poll_once(write.as_mut()).await {
                Some(r) => r?,
                None => {
                    write
                        .or(async {
                            glommio::timer::sleep(stall).await;
                            Err(io::ErrorKind::TimedOut.into())
                        })
                        .await?
                }
            }
        };
        if n == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        buf = &buf[n..];
    }
    Ok(())
}

/// Makes the socket's close a reset (SO_LINGER 0): what is unsent is dropped at once.
fn abort_on_close(stream: &TcpStream) {
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: setsockopt on the descriptor `stream` owns, with a valid `linger` value that
    // outlives the call.
    unsafe {
        libc::setsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            &linger as *const libc::linger as *const libc::c_void,
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        );
    }
}

async fn write_loop(
    shard: Rc<Shard>,
    stream: Rc<RefCell<TcpStream>>,
    out: Rc<crate::rt::OutQueue>,
) -> Written {
    let stall = Duration::from_millis(shard.config.tcp.write_timeout_ms);
    let mut written = Written::Done;
    let mut buf = Vec::new();
    loop {
        let msgs = out.drain().await;
        if msgs.is_empty() {
            break;
        }
        buf.clear();
        for m in &msgs {
            buf.extend_from_slice(m.as_bytes());
            buf.push(b'\n');
        }
        drop(msgs);
        // Boxed: the write (with its timer) lives only while writing, so an idle
        // connection's writer task is as small as its wait for the queue.
        if let Err(e) = Box::pin(write_all_within(&stream, &buf, stall)).await {
            if e.kind() == io::ErrorKind::TimedOut {
                // Closing the queue also ends the reader's backpressure wait.
                tracing::debug!("the client took nothing for tcp.write_timeout_ms: resetting");
                written = Written::Stalled;
            } else {
                tracing::debug!("write failed: {e}");
            }
            out.close();
            break;
        }
        shard.stats().bytes_sent[Transport::Tcp as usize].add(buf.len() as u64);
        // Keep the buffer only while more is queued: an idle connection holds none.
        if buf.capacity() > WRITE_BUF_KEEP_BYTES || out.is_empty() {
            buf = Vec::new();
        }
    }
    if out.overflowed() {
        tracing::warn!("a client stopped reading and its outbound queue filled: connection closed");
    }
    if out.overflowed() || written == Written::Stalled {
        shard.stats().reject(Reject::OutboundQueueFull);
    }
    written
}
