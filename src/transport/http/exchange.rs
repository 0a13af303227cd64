//! Exchanges: the connection side of one HTTP response that is produced elsewhere (by a
//! handler on this shard, or by the shard that owns the session, over the mesh). The
//! producer pushes [`ReplyEvent`]s; the HTTP connection pulls them and writes a JSON body or
//! an SSE stream.

use crate::rt::{OutMsg, Outbound, SendError};
use crate::runtime::{MeshMsg, Shard};
use std::cell::{Cell, RefCell};
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
    events_max: usize,
    /// This exchange's key in the shard's table (for events arriving over the mesh).
    pub key: u64,
}

impl Exchange {
    /// A new exchange holding at most `events_max` undelivered events.
    pub fn new(key: u64, events_max: usize) -> Rc<Self> {
        Rc::new(Exchange {
            queue: RefCell::new(VecDeque::new()),
            waker: RefCell::new(None),
            closed: Cell::new(false),
            close_waker: RefCell::new(None),
            events_max,
            key,
        })
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
            self.close();
            return false;
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
