//! The HTTP/1.1 server of one shard: accept loop, keep-alive connections, pipelined
//! requests answered in order (one at a time), bounded heads (431) and bodies (413), head
//! and body read timeouts (408), a write timeout for clients that do not read, `TCP_NODELAY`,
//! and response writing: JSON bodies with Content-Length, SSE streams with chunked transfer
//! coding, keep-alive comments on idle streams, and a last `event: error` for a stream whose
//! client fell too far behind.

use super::exchange::{Exchange, ReplyEvent};
use super::parse::{parse_head, BodyKind, ChunkedDecoder, HttpError, RequestHead};
use super::{respond, HttpMsg, Response};
use crate::metrics::Reject;
use crate::metrics::Transport;
use crate::runtime::{MeshMsg, Shard};
use crate::transport::tcp::{
    accept_until_shutdown, read_append, shutdown_now, wait_for_connections, write_all, ConnCount,
};
use futures_lite::FutureExt;
use glommio::net::{TcpListener, TcpStream};
use std::cell::RefCell;
use std::future::Future;
use std::io::{self, Write as _};
use std::pin::Pin;
use std::rc::Rc;
use std::task::Poll;
use std::time::{Duration, Instant};

/// Binds the HTTP listener on this shard (SO_REUSEPORT, like every listener).
pub fn bind(shard: &Shard) -> anyhow::Result<TcpListener> {
    let addr = shard.config.http.listen;
    TcpListener::bind(addr).map_err(|e| anyhow::anyhow!("cannot listen on {addr} (http): {e}"))
}

/// Accepts HTTP connections until shutdown.
pub async fn serve(shard: Rc<Shard>, listener: TcpListener) {
    glommio::spawn_local(super::sweep_sessions(shard.clone())).detach();
    accept_until_shutdown(
        &shard,
        listener,
        "http accept",
        |why| {
            full_response(
                why.http_status(),
                &[("Retry-After".into(), why.retry_after_s().to_string())],
                &crate::jsonrpc::encode_error(None, &why.to_error()),
                false,
            )
        },
        |stream| handle(shard.clone(), stream),
    )
    .await;
    // Let the connections finish what they were asked (sessions drain in
    // `sweep_sessions`).
    wait_for_connections(&shard).await;
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        202 => "Accepted",
        204 => "No Content",
        400 => "Bad Request",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        406 => "Not Acceptable",
        408 => "Request Timeout",
        409 => "Conflict",
        413 => "Content Too Large",
        415 => "Unsupported Media Type",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        503 => "Service Unavailable",
        505 => "HTTP Version Not Supported",
        _ => "Status",
    }
}

/// A complete response with a JSON (or empty) body.
fn full_response(
    status: u16,
    headers: &[(String, String)],
    body: &[u8],
    keep_alive: bool,
) -> Vec<u8> {
    let mut out = Vec::with_capacity(160 + body.len());
    // Writing into a Vec cannot fail.
    let _ = write!(out, "HTTP/1.1 {status} {}\r\n", reason(status));
    if !body.is_empty() {
        out.extend_from_slice(b"Content-Type: application/json\r\n");
    }
    let _ = write!(out, "Content-Length: {}\r\n", body.len());
    if !keep_alive {
        out.extend_from_slice(b"Connection: close\r\n");
    }
    push_headers(&mut out, headers);
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(body);
    out
}

fn sse_head(headers: &[(String, String)]) -> Vec<u8> {
    let mut out = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\nTransfer-Encoding: chunked\r\n".to_vec();
    push_headers(&mut out, headers);
    out.extend_from_slice(b"\r\n");
    out
}

fn push_headers(out: &mut Vec<u8>, headers: &[(String, String)]) {
    for (k, v) in headers {
        out.extend_from_slice(k.as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(v.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
}

/// Appends `data` as one chunk.
fn chunk(out: &mut Vec<u8>, data: &[u8]) {
    if data.is_empty() {
        return;
    }
    let _ = write!(out, "{:x}\r\n", data.len());
    out.extend_from_slice(data);
    out.extend_from_slice(b"\r\n");
}

fn sse_event(id: Option<&str>, event: Option<&str>, data: &[u8]) -> Vec<u8> {
    let mut e = Vec::with_capacity(data.len() + 32);
    if let Some(id) = id {
        e.extend_from_slice(format!("id: {id}\n").as_bytes());
    }
    if let Some(ev) = event {
        e.extend_from_slice(format!("event: {ev}\n").as_bytes());
    }
    e.extend_from_slice(b"data: ");
    e.extend_from_slice(data);
    e.extend_from_slice(b"\n\n");
    e
}

/// The bytes read from a connection and not yet used. Requests are cut from the front by
/// moving `start` on; the used bytes are dropped only before the next read, so a burst of
/// pipelined requests costs one move of what is left per read, not one per request (which
/// made the burst quadratic: callgrind put 60 % of a refused pipelined POST in memmove).
#[derive(Default)]
struct InBuf {
    buf: Vec<u8>,
    start: usize,
}

impl InBuf {
    fn data(&self) -> &[u8] {
        &self.buf[self.start..]
    }

    fn len(&self) -> usize {
        self.buf.len() - self.start
    }

    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Drops the first `n` bytes (at most [`len`](Self::len)).
    fn consume(&mut self, n: usize) {
        self.start = (self.start + n).min(self.buf.len());
        if self.start == self.buf.len() {
            self.buf.clear();
            self.start = 0;
        }
    }

    /// Takes the first `n` bytes (at most [`len`](Self::len)) as a vector of their own.
    fn take(&mut self, n: usize) -> Vec<u8> {
        let v = self.data()[..n.min(self.len())].to_vec();
        self.consume(n);
        v
    }

    /// The vector to read more into, the used bytes dropped first.
    fn for_read(&mut self) -> &mut Vec<u8> {
        if self.start > 0 {
            self.buf.drain(..self.start);
            self.start = 0;
        }
        &mut self.buf
    }
}

enum HeadOutcome {
    Head(RequestHead),
    Closed,
    /// No byte of a request arrived within the idle timeout.
    Idle,
    Reject(HttpError),
}

/// Reads a request head: waits up to the idle timeout for its first byte, then up to
/// `http.header_read_timeout_ms` for the rest (a slow head gets 408).
async fn read_head(shard: &Rc<Shard>, st: &RefCell<TcpStream>, inbuf: &mut InBuf) -> HeadOutcome {
    let http = &shard.config.http;
    let idle = Duration::from_millis(shard.config.limits.idle_timeout_ms.max(1));
    let header_timeout = Duration::from_millis(http.header_read_timeout_ms);
    let mut started: Option<Instant> = (!inbuf.is_empty()).then(Instant::now);
    loop {
        match parse_head(inbuf.data(), http.max_head_bytes, http.max_body_bytes) {
            Ok(Some((head, n))) => {
                inbuf.consume(n);
                return HeadOutcome::Head(head);
            }
            Ok(None) => {}
            Err(e) => return HeadOutcome::Reject(e),
        }
        let wait = match started {
            None if shard.config.limits.idle_timeout_ms == 0 => Duration::from_secs(86_400 * 365),
            None => idle,
            Some(t) => header_timeout.saturating_sub(t.elapsed()),
        };
        match read_with(shard, st, inbuf, wait).await {
            Read::Data => {
                started.get_or_insert_with(Instant::now);
            }
            Read::Eof | Read::Stop => return HeadOutcome::Closed,
            Read::Timeout if started.is_some() => {
                return HeadOutcome::Reject(HttpError::new(
                    408,
                    "request head not received in time",
                ))
            }
            Read::Timeout => return HeadOutcome::Idle,
        }
    }
}

enum Read {
    Data,
    Eof,
    Timeout,
    Stop,
}

async fn read_with(
    shard: &Rc<Shard>,
    st: &RefCell<TcpStream>,
    inbuf: &mut InBuf,
    wait: Duration,
) -> Read {
    let read = async {
        match read_append(st, inbuf.for_read()).await {
            Ok(0) | Err(_) => Read::Eof,
            Ok(n) => {
                shard.stats().bytes_received[Transport::Http as usize].add(n as u64);
                Read::Data
            }
        }
    };
    read.or(async {
        glommio::timer::sleep(wait).await;
        Read::Timeout
    })
    .or(async {
        shard.shutdown.cancelled().await;
        Read::Stop
    })
    .await
}

/// Reads the body the head announced.
async fn read_body(
    shard: &Rc<Shard>,
    st: &RefCell<TcpStream>,
    inbuf: &mut InBuf,
    kind: BodyKind,
) -> Result<Vec<u8>, HttpError> {
    let http = &shard.config.http;
    // The whole body must arrive within http.body_read_timeout_ms, however it trickles in;
    // the clock starts at the first read that waits (a body that came with its head costs
    // no clock reading).
    let mut deadline = None;
    match kind {
        BodyKind::None => Ok(Vec::new()),
        BodyKind::Length(n) => {
            while inbuf.len() < n {
                read_more_body(shard, st, inbuf, &mut deadline).await?;
            }
            Ok(inbuf.take(n))
        }
        BodyKind::Chunked => {
            let mut dec = ChunkedDecoder::new(http.max_body_bytes);
            let mut body = Vec::new();
            loop {
                let used = dec.decode(inbuf.data(), &mut body)?;
                inbuf.consume(used);
                if dec.is_done() {
                    return Ok(body);
                }
                read_more_body(shard, st, inbuf, &mut deadline).await?;
            }
        }
    }
}

/// Reads more of a request body into `inbuf`: a body that stops arriving is a 408, one cut
/// short by the client (or shutdown) a 400.
async fn read_more_body(
    shard: &Rc<Shard>,
    st: &RefCell<TcpStream>,
    inbuf: &mut InBuf,
    deadline: &mut Option<Instant>,
) -> Result<(), HttpError> {
    let limit = Duration::from_millis(shard.config.http.body_read_timeout_ms);
    let deadline = *deadline.get_or_insert_with(|| Instant::now() + limit);
    let wait = deadline.saturating_duration_since(Instant::now());
    match read_with(shard, st, inbuf, wait).await {
        Read::Data => Ok(()),
        Read::Timeout => Err(HttpError::new(408, "request body not received in time")),
        Read::Eof | Read::Stop => Err(HttpError::new(400, "connection closed mid-body")),
    }
}

/// Answers a request the connection cannot go on from (the connection closes after it).
/// A 408 is a slow peer's.
async fn reject(shard: &Rc<Shard>, st: &RefCell<TcpStream>, e: &HttpError) {
    let on_timeout = if e.status == 408 {
        shard.stats().reject(Reject::SlowPeer);
        OnTimeout::Counted
    } else {
        OnTimeout::SlowPeer
    };
    let body = super::streamable::error_json(&e.reason);
    write_timed(
        shard,
        st,
        &full_response(e.status, &[], &body, false),
        on_timeout,
    )
    .await;
}

/// What a write that times out counts as.
#[derive(Clone, Copy)]
enum OnTimeout<'a> {
    /// `slow_peer`.
    SlowPeer,
    /// `sse_lagging` if the stream's exchange had fallen behind, else `slow_peer`.
    Stream(&'a Exchange),
    /// Nothing: the peer was counted already.
    Counted,
}

/// Writes `buf`, giving up after `http.write_timeout_ms`: a client that does not take what
/// it asked for cannot hold its connection (or an SSE stream's exchange) forever. Returns
/// false when the connection cannot go on; a timeout is counted as `on_timeout` says. The
/// timer is armed only when the socket does not take everything at once.
async fn write_timed(
    shard: &Rc<Shard>,
    st: &RefCell<TcpStream>,
    buf: &[u8],
    on_timeout: OnTimeout<'_>,
) -> bool {
    let mut write = std::pin::pin!(write_all(st, buf));
    let mut timer: Option<Pin<Box<dyn Future<Output = ()>>>> = None;
    let limit = Duration::from_millis(shard.config.http.write_timeout_ms);
    let written = std::future::poll_fn(|cx| {
        if let Poll::Ready(r) = write.as_mut().poll(cx) {
            return Poll::Ready(Some(r));
        }
        let t = timer.get_or_insert_with(|| Box::pin(glommio::timer::sleep(limit)));
        t.as_mut().poll(cx).map(|()| None)
    })
    .await;
    match written {
        Some(r) => r.is_ok(),
        None => {
            let why = match on_timeout {
                OnTimeout::Stream(x) if x.lagged() => Some(Reject::SseLagging),
                OnTimeout::Stream(_) | OnTimeout::SlowPeer => Some(Reject::SlowPeer),
                OnTimeout::Counted => None,
            };
            if let Some(why) = why {
                shard.stats().reject(why);
            }
            tracing::debug!(
                shard = shard.index,
                "the client took nothing for http.write_timeout_ms: closing"
            );
            false
        }
    }
}

/// The last event of an SSE stream whose client fell `events_max` events behind: why it
/// ends, and the last event id the client was sent (its `Last-Event-ID` to resume from).
fn lagging_event(last_event_id: Option<&str>, events_max: usize) -> Vec<u8> {
    let data = serde_json::json!({
        "reason": "sse_lagging",
        "message": format!("this stream fell more than http.exchange_events_max ({events_max}) events behind its reader and is closed; resume with a GET carrying Last-Event-ID"),
        "lastEventId": last_event_id,
    });
    sse_event(None, Some("error"), data.to_string().as_bytes())
}

async fn handle(shard: Rc<Shard>, stream: TcpStream) {
    let _count = ConnCount::new(shard.clone(), Transport::Http);
    let _ = stream.set_nodelay(true);
    let st = RefCell::new(stream);
    let mut inbuf = InBuf::default();
    // This connection's message rate (limits.messages_per_connection_per_s).
    let mut rate = shard.gate.connection_bucket();
    // Whether a request head ever arrived on this connection.
    let mut served = false;
    loop {
        let head = match read_head(&shard, &st, &mut inbuf).await {
            HeadOutcome::Head(h) => h,
            HeadOutcome::Closed => break,
            HeadOutcome::Idle => {
                // Connected and never asked anything (a half-open or abandoned client); one
                // that went quiet after its requests is not slow, only done.
                if !served {
                    shard.stats().reject(Reject::SlowPeer);
                }
                break;
            }
            HeadOutcome::Reject(e) => {
                reject(&shard, &st, &e).await;
                break;
            }
        };
        served = true;
        let expects_continue = head
            .header("expect")
            .is_some_and(|e| e.eq_ignore_ascii_case("100-continue"))
            && head.body != BodyKind::None;
        let continued = b"HTTP/1.1 100 Continue\r\n\r\n";
        if expects_continue && !write_timed(&shard, &st, continued, OnTimeout::SlowPeer).await {
            break;
        }
        let body = match read_body(&shard, &st, &mut inbuf, head.body).await {
            Ok(b) => b,
            Err(e) => {
                reject(&shard, &st, &e).await;
                break;
            }
        };
        let keep_alive = head.keep_alive && !shard.shutdown.is_cancelled();
        let resp = respond(&shard, &head, body, rate.as_mut()).await;
        let ok = match resp {
            Response::Full {
                status,
                headers,
                body,
            } => {
                let bytes = full_response(status, &headers, &body, keep_alive);
                let stats = shard.stats();
                stats.bytes_sent[Transport::Http as usize].add(bytes.len() as u64);
                if !body.is_empty() {
                    stats.messages_sent.inc();
                }
                write_timed(&shard, &st, &bytes, OnTimeout::SlowPeer).await
            }
            Response::Exchange {
                exchange,
                headers,
                priming,
                forwarded,
            } => {
                let ok = stream_exchange(
                    &shard, &st, &mut inbuf, &exchange, &headers, priming, keep_alive,
                )
                .await;
                shard.http.drop_exchange(exchange.key);
                // The client hung up, or fell so far behind that the exchange was closed:
                // either way the owner must stop sending to it.
                if !ok || exchange.is_closed() {
                    exchange.close();
                    if let Some((owner, session)) = forwarded {
                        shard.mesh_send(
                            owner,
                            MeshMsg::Http(HttpMsg::Detached {
                                session,
                                shard: shard.index,
                                exchange: exchange.key,
                            }),
                        );
                    }
                }
                ok
            }
        };
        if !ok || !keep_alive {
            break;
        }
    }
    shutdown_now(&st.borrow());
}

enum StreamStep {
    Event(Option<ReplyEvent>),
    KeepAlive,
    Peer(io::Result<usize>),
}

/// Writes the answer an exchange produces. Returns whether the connection can carry
/// another request.
async fn stream_exchange(
    shard: &Rc<Shard>,
    st: &RefCell<TcpStream>,
    inbuf: &mut InBuf,
    x: &Rc<Exchange>,
    headers: &[(String, String)],
    priming: bool,
    keep_alive: bool,
) -> bool {
    let http = &shard.config.http;
    let keepalive = Duration::from_millis(http.sse_keepalive_ms.max(1));
    let inbuf_cap = http.max_head_bytes + http.max_body_bytes;
    let mut sse = false;
    // The id of the last event written: where a client cut off for lagging resumes.
    let mut last_event_id: Option<String> = None;
    loop {
        let next = async { StreamStep::Event(x.next().await) };
        let step = if sse {
            let ka = async {
                glommio::timer::sleep(keepalive).await;
                StreamStep::KeepAlive
            };
            if inbuf.len() < inbuf_cap {
                // Watch the socket while streaming: a client that hangs up frees the stream
                // at once; pipelined bytes wait in the input buffer.
                let peer = async { StreamStep::Peer(read_append(st, inbuf.for_read()).await) };
                next.or(ka).or(peer).await
            } else {
                next.or(ka).await
            }
        } else {
            next.await
        };
        let mut out = Vec::new();
        let mut done = false;
        match step {
            StreamStep::Peer(Ok(0)) | StreamStep::Peer(Err(_)) => return false,
            StreamStep::Peer(Ok(_)) => continue,
            StreamStep::KeepAlive => chunk(&mut out, b": keep-alive\n\n"),
            StreamStep::Event(None) => {
                // The producer dropped the exchange without a final event.
                if !sse {
                    out = full_response(
                        500,
                        &[],
                        &super::streamable::error_json("stream ended"),
                        false,
                    );
                    write_timed(shard, st, &out, OnTimeout::SlowPeer).await;
                    return false;
                }
                if x.lagged() {
                    // The client fell exchange_events_max events behind: say so as the
                    // stream's last event, then close (it resumes with Last-Event-ID).
                    let events_max = http.exchange_events_max;
                    chunk(
                        &mut out,
                        &lagging_event(last_event_id.as_deref(), events_max),
                    );
                    out.extend_from_slice(b"0\r\n\r\n");
                    shard.stats().reject(Reject::SseLagging);
                    write_timed(shard, st, &out, OnTimeout::Counted).await;
                    return false;
                }
                out.extend_from_slice(b"0\r\n\r\n");
                done = true;
            }
            StreamStep::Event(Some(ev)) => match ev {
                ReplyEvent::Full {
                    status,
                    headers: extra,
                    body,
                } => {
                    if sse {
                        out.extend_from_slice(b"0\r\n\r\n");
                    } else {
                        let mut h = headers.to_vec();
                        h.extend(extra);
                        out = full_response(status, &h, &body, keep_alive);
                    }
                    done = true;
                }
                ReplyEvent::Message {
                    bytes, last: true, ..
                } if !sse => {
                    out = full_response(200, headers, &bytes, keep_alive);
                    done = true;
                }
                ReplyEvent::End if !sse => {
                    out = full_response(202, headers, &[], keep_alive);
                    done = true;
                }
                ReplyEvent::End => {
                    out.extend_from_slice(b"0\r\n\r\n");
                    done = true;
                }
                ReplyEvent::Open => {
                    if !sse {
                        out = sse_head(headers);
                        sse = true;
                    }
                }
                ReplyEvent::Message {
                    event_id,
                    bytes,
                    last,
                } => {
                    if !sse {
                        out = sse_head(headers);
                        sse = true;
                        if priming {
                            if let Some(stream) = event_id
                                .as_deref()
                                .and_then(|i| i.split_once('-'))
                                .map(|(s, _)| s)
                            {
                                let mut p = format!("id: {stream}-0\n").into_bytes();
                                p.extend_from_slice(
                                    format!("retry: {}\ndata: \n\n", http.sse_retry_ms).as_bytes(),
                                );
                                chunk(&mut out, &p);
                            }
                        }
                    }
                    chunk(&mut out, &sse_event(event_id.as_deref(), None, &bytes));
                    if event_id.is_some() {
                        last_event_id = event_id;
                    }
                    if last {
                        out.extend_from_slice(b"0\r\n\r\n");
                        done = true;
                    }
                }
                ReplyEvent::Named { event, data } => {
                    if !sse {
                        out = sse_head(headers);
                        sse = true;
                    }
                    chunk(&mut out, &sse_event(None, Some(&event), data.as_bytes()));
                }
            },
        }
        if !write_timed(shard, st, &out, OnTimeout::Stream(x)).await {
            return false;
        }
        shard.stats().bytes_sent[Transport::Http as usize].add(out.len() as u64);
        if done {
            return true;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::InBuf;

    #[test]
    fn an_input_buffer_gives_its_bytes_in_order_and_moves_only_before_a_read() {
        let mut b = InBuf::default();
        b.for_read().extend_from_slice(b"HEAD1body1HEAD2bo");
        assert_eq!(b.data(), b"HEAD1body1HEAD2bo");
        b.consume(5);
        assert_eq!(b.take(5), b"body1");
        assert_eq!(
            (b.data(), b.start),
            (&b"HEAD2bo"[..], 10),
            "nothing moved yet"
        );
        b.consume(5);
        // A read appends after what is left, which moves to the front first.
        b.for_read().extend_from_slice(b"dy2");
        assert_eq!((b.data(), b.start), (&b"body2"[..], 0));
        // Taking more than there is takes what there is; emptied, it starts over.
        assert_eq!(b.take(99), b"body2");
        assert!(b.is_empty());
        assert_eq!((b.buf.len(), b.start), (0, 0));
    }
}
