//! Exchanges: the connection side of one HTTP response that is produced elsewhere (by a
//! handler on this shard, or by the shard that owns the session, over the mesh). The
//! producer pushes [`ReplyEvent`]s; the HTTP connection pulls them and writes a JSON body or
//! an SSE stream.

use crate::metrics::{LocalMetrics, RequestProbe};
use crate::rt::{OutMsg, Outbound, SendError};
use crate::runtime::{MeshMsg, Shard};
use std::cell::{Cell, OnceCell, RefCell};
use std::collections::VecDeque;
use std::rc::Rc;
use std::task::{Poll, Waker};

/// One piece of a response, as produced.
#[derive(Debug, Clone)]
pub enum ReplyEvent {
    /// A whole response; ends the exchange.
    Full {
        /// Status code.
        status: u16,
        /// Extra headers.
        headers: Vec<(String, String)>,
        /// Body.
        body: Vec<u8>,
    },
    /// One JSON-RPC message. `last` ends the exchange.
    Message {
        /// SSE event id, when the stream is resumable.
        event_id: Option<String>,
        /// The encoded message.
        bytes: Vec<u8>,
        /// Whether this is the response that ends the stream.
        last: bool,
    },
    /// A raw SSE event (`event:` name and data), e.g. the legacy `endpoint` event.
    Named {
        /// Event name.
        event: String,
        /// Data line.
        data: String,
    },
    /// Start the SSE stream now (a GET that the owner accepted).
    Open,
    /// The stream ends without a final message.
    End,
}

impl ReplyEvent {
    /// Whether the exchange ends with this event.
    pub fn is_final(&self) -> bool {
        matches!(
            self,
            ReplyEvent::Full { .. } | ReplyEvent::End | ReplyEvent::Message { last: true, .. }
        )
    }
}

/// The connection side of a response in the making.
pub struct Exchange {
    queue: RefCell<VecDeque<ReplyEvent>>,
    waker: RefCell<Option<Waker>>,
    /// The consumer (HTTP connection) is gone or stopped reading.
    closed: Cell<bool>,
    /// The producer waiting in [`Exchange::closed`], if any.
    close_waker: RefCell<Option<Waker>>,
    /// Closed because the consumer fell `events_max` events behind.
    lagged: Cell<bool>,
    events_max: usize,
    /// This exchange's key in the shard's table (for events arriving over the mesh).
    pub key: u64,
    /// The shard's metrics: queued events and messages sent count there.
    metrics: OnceCell<Rc<LocalMetrics>>,
    /// The request whose answer ends this exchange (stateless requests), finished when
    /// its final event is queued.
    probe: RefCell<Option<RequestProbe>>,
}

impl Exchange {
    /// A new exchange holding at most `events_max` undelivered events.
    pub fn new(key: u64, events_max: usize) -> Rc<Self> {
        Rc::new(Exchange {
            queue: RefCell::new(VecDeque::new()),
            waker: RefCell::new(None),
            closed: Cell::new(false),
            close_waker: RefCell::new(None),
            lagged: Cell::new(false),
            events_max,
            key,
            metrics: OnceCell::new(),
            probe: RefCell::new(None),
        })
    }

    /// A new exchange whose queued events and messages count in the shard's `metrics`
    /// (`ringmcp_http_exchange_events`, `ringmcp_messages_sent_total`).
    pub fn counted(key: u64, events_max: usize, metrics: Rc<LocalMetrics>) -> Rc<Self> {
        let x = Self::new(key, events_max);
        let _ = x.metrics.set(metrics);
        x
    }

    /// Measures the request this exchange answers: `probe` is finished with the final
    /// event, or counts the request as unanswered if the exchange ends without one.
    pub fn observe(&self, probe: RequestProbe) {
        *self.probe.borrow_mut() = Some(probe);
    }

    /// Follows `n` events queued (or taken, negative) in the shard's gauge.
    fn count_events(&self, n: i64) {
        if let Some(m) = self.metrics.get() {
            m.stats().exchange_events.add(n);
        }
    }

    /// Queues an event. False when the consumer is gone, or when it fell `events_max`
    /// events behind (then the exchange is closed: a client that does not read cannot make
    /// the server buffer without bound).
    pub fn push(&self, ev: ReplyEvent) -> bool {
        if self.closed.get() {
            return false;
        }
        let mut q = self.queue.borrow_mut();
        if q.len() >= self.events_max && !ev.is_final() {
            drop(q);
            self.lagged.set(true);
            self.close();
            return false;
        }
        self.count_events(1);
        if let Some(m) = self.metrics.get() {
            if matches!(&ev, ReplyEvent::Message { .. })
                || matches!(&ev, ReplyEvent::Full { body, .. } if !body.is_empty())
            {
                m.stats().messages_sent.inc();
            }
        }
        if ev.is_final() {
            if let Some(probe) = self.probe.borrow_mut().take() {
                match &ev {
                    ReplyEvent::Full { body, .. } => probe.finish_encoded(body),
                    ReplyEvent::Message { bytes, .. } => probe.finish_encoded(bytes),
                    // Ended without an answer: the probe counts that when dropped.
                    _ => drop(probe),
                }
            }
        }
        q.push_back(ev);
        drop(q);
        if let Some(w) = self.waker.borrow_mut().take() {
            w.wake();
        }
        true
    }

    /// The next event; `None` once closed and drained.
    pub async fn next(&self) -> Option<ReplyEvent> {
        std::future::poll_fn(|cx| {
            if let Some(ev) = self.queue.borrow_mut().pop_front() {
                self.count_events(-1);
                return Poll::Ready(Some(ev));
            }
            if self.closed.get() {
                return Poll::Ready(None);
            }
            *self.waker.borrow_mut() = Some(cx.waker().clone());
            Poll::Pending
        })
        .await
    }

    /// Marks the consumer gone.
    pub fn close(&self) {
        self.closed.set(true);
        let dropped = self.queue.borrow().len() as i64;
        self.count_events(-dropped);
        self.queue.borrow_mut().clear();
        if let Some(w) = self.waker.borrow_mut().take() {
            w.wake();
        }
        if let Some(w) = self.close_waker.borrow_mut().take() {
            w.wake();
        }
    }

    /// Resolves once the consumer is gone: a producer that streams until the client
    /// leaves (a stateless `subscriptions/listen`) waits on this. One waiter at a time.
    pub fn closed(&self) -> impl std::future::Future<Output = ()> + '_ {
        std::future::poll_fn(|cx| {
            if self.closed.get() {
                return Poll::Ready(());
            }
            *self.close_waker.borrow_mut() = Some(cx.waker().clone());
            Poll::Pending
        })
    }

    /// Whether the consumer is gone.
    pub fn is_closed(&self) -> bool {
        self.closed.get()
    }

    /// Whether the exchange was closed because its consumer fell `events_max` events
    /// behind (the connection then tells its client so, see `http::conn`).
    pub fn lagged(&self) -> bool {
        self.lagged.get()
    }
}

impl Drop for Exchange {
    fn drop(&mut self) {
        // Events never taken leave the shard's gauge with the exchange.
        let left = self.queue.get_mut().len() as i64;
        self.count_events(-left);
    }
}

/// Where the owner of a stream sends its events: an exchange on this shard, or one on
/// another shard (over the mesh).
#[derive(Clone)]
pub enum ReplyTo {
    /// On this shard.
    Local(Rc<Exchange>),
    /// On another shard.
    Remote {
        /// The shard holding the connection.
        shard: usize,
        /// The exchange's key there.
        exchange: u64,
    },
}

impl ReplyTo {
    /// Sends an event; false when it is known not to arrive (a closed local exchange).
    pub fn send(&self, shard: &Rc<Shard>, ev: ReplyEvent) -> bool {
        match self {
            ReplyTo::Local(x) => x.push(ev),
            ReplyTo::Remote {
                shard: to,
                exchange,
            } => {
                shard.mesh_send(
                    *to,
                    MeshMsg::Http(super::HttpMsg::Event {
                        exchange: *exchange,
                        event: ev,
                    }),
                );
                true
            }
        }
    }

    /// Whether the receiver is known to be gone.
    pub fn is_gone(&self) -> bool {
        match self {
            ReplyTo::Local(x) => x.is_closed(),
            ReplyTo::Remote { .. } => false,
        }
    }

    /// Identifies the receiver: (shard, exchange key).
    pub fn addr(&self, here: usize) -> (usize, u64) {
        match self {
            ReplyTo::Local(x) => (here, x.key),
            ReplyTo::Remote { shard, exchange } => (*shard, *exchange),
        }
    }
}

/// An [`Outbound`] that turns each message into a non-final event of one exchange.
pub struct ExchangeOut {
    /// The shard (for remote sends).
    pub shard: Rc<Shard>,
    /// Where events go.
    pub to: ReplyTo,
}

impl Outbound for ExchangeOut {
    fn send(&self, msg: OutMsg) -> Result<(), SendError> {
        let ok = self.to.send(
            &self.shard,
            ReplyEvent::Message {
                event_id: None,
                bytes: msg.as_bytes().to_vec(),
                last: false,
            },
        );
        if ok {
            Ok(())
        } else {
            Err(SendError::Closed)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jsonrpc::{encode_error, ErrorObject, Id};
    use crate::metrics::{code_index, LocalMetrics, Method, Metrics};
    use futures_lite::future::block_on;
    use std::sync::Arc;

    fn message(bytes: Vec<u8>, last: bool) -> ReplyEvent {
        ReplyEvent::Message {
            event_id: None,
            bytes,
            last,
        }
    }

    #[test]
    fn a_counted_exchange_keeps_the_gauge_and_finishes_its_probe() {
        let all = Arc::new(Metrics::new(1));
        let local = LocalMetrics::new(all.clone(), 0);
        let s = all.shard(0);
        let x = Exchange::counted(1, 8, local.clone());
        x.observe(local.probe(Method::ToolsCall));
        assert!(x.push(message(b"{}".to_vec(), false)));
        assert_eq!((s.exchange_events.get(), s.responses.get()), (1, 0));
        let err = encode_error(Some(&Id::Num(1)), &ErrorObject::new(-32602, "bad"));
        assert!(x.push(message(err, true)));
        assert_eq!(s.exchange_events.get(), 2);
        assert_eq!(s.messages_sent.get(), 2);
        assert_eq!(s.responses.get(), 1);
        assert_eq!(
            s.errors[Method::ToolsCall as usize][code_index(-32602)].get(),
            1
        );
        assert!(block_on(x.next()).is_some());
        assert_eq!(s.exchange_events.get(), 1);
        x.close();
        assert_eq!(s.exchange_events.get(), 0);

        // An exchange that ends without its answer: the request counts as unanswered.
        let y = Exchange::counted(2, 8, local.clone());
        y.observe(local.probe(Method::ToolsCall));
        assert!(y.push(message(b"{}".to_vec(), false)));
        drop(y);
        assert_eq!((s.exchange_events.get(), s.cancelled.get()), (0, 1));
        assert_eq!(s.in_flight.get(), 0);
    }
}
