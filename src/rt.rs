//! Runtime-neutral, shard-local primitives the sans-I/O core uses: a one-shot slot, a
//! cancellation token, outbound message queues and the [`Host`] trait through which the core
//! asks its runtime for time and for cross-session effects. All of it is `!Send` on purpose:
//! it lives on one shard.

use futures_lite::future::BoxedLocal;
use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

/// A single-value channel between two tasks of one shard.
pub fn oneshot<T>() -> (OneshotSender<T>, OneshotReceiver<T>) {
    let slot = Rc::new(OneshotSlot {
        value: RefCell::new(None),
        waker: RefCell::new(None),
        sender_gone: Cell::new(false),
    });
    (OneshotSender(slot.clone()), OneshotReceiver(slot))
}

struct OneshotSlot<T> {
    value: RefCell<Option<T>>,
    waker: RefCell<Option<Waker>>,
    sender_gone: Cell<bool>,
}

/// Sending half of [`oneshot`].
pub struct OneshotSender<T>(Rc<OneshotSlot<T>>);
/// Receiving half of [`oneshot`]; resolves to `None` when the sender is dropped unsent.
pub struct OneshotReceiver<T>(Rc<OneshotSlot<T>>);

impl<T> OneshotSender<T> {
    /// Delivers the value and wakes the receiver.
    pub fn send(self, value: T) {
        *self.0.value.borrow_mut() = Some(value);
        // Drop runs next and wakes the receiver.
    }
}

impl<T> Drop for OneshotSender<T> {
    fn drop(&mut self) {
        self.0.sender_gone.set(true);
        if let Some(w) = self.0.waker.borrow_mut().take() {
            w.wake();
        }
    }
}

impl<T> Future for OneshotReceiver<T> {
    type Output = Option<T>;
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<T>> {
        if let Some(v) = self.0.value.borrow_mut().take() {
            return Poll::Ready(Some(v));
        }
        if self.0.sender_gone.get() {
            return Poll::Ready(None);
        }
        *self.0.waker.borrow_mut() = Some(cx.waker().clone());
        Poll::Pending
    }
}

/// A cancellation flag that tasks can poll or await.
#[derive(Clone, Default)]
pub struct CancelToken(Rc<CancelState>);

/// Waiters are kept in slots that each waiting future owns and frees when dropped, so
/// registering and deregistering cost O(1) however many tasks wait on one token (a shard's
/// shutdown token has one waiter per connection).
#[derive(Default)]
struct CancelState {
    cancelled: Cell<bool>,
    slots: RefCell<Vec<Option<Waker>>>,
    free: RefCell<Vec<usize>>,
}

impl CancelToken {
    /// A fresh, uncancelled token.
    pub fn new() -> Self {
        Self::default()
    }
    /// Cancels and wakes every waiter.
    pub fn cancel(&self) {
        self.0.cancelled.set(true);
        let wakers: Vec<Waker> = self
            .0
            .slots
            .borrow_mut()
            .iter_mut()
            .filter_map(Option::take)
            .collect();
        for w in wakers {
            w.wake();
        }
    }
    /// Whether [`cancel`](Self::cancel) was called.
    pub fn is_cancelled(&self) -> bool {
        self.0.cancelled.get()
    }
    /// Resolves once cancelled.
    pub fn cancelled(&self) -> Cancelled {
        Cancelled {
            token: self.clone(),
            slot: None,
        }
    }
}

/// The future of [`CancelToken::cancelled`].
pub struct Cancelled {
    token: CancelToken,
    slot: Option<usize>,
}

impl Future for Cancelled {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.token.is_cancelled() {
            return Poll::Ready(());
        }
        let state = self.token.0.clone();
        let mut slots = state.slots.borrow_mut();
        match self.slot {
            Some(i) => {
                let slot = &mut slots[i];
                if !slot.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                    *slot = Some(cx.waker().clone());
                }
            }
            None => {
                let i = match state.free.borrow_mut().pop() {
                    Some(i) => {
                        slots[i] = Some(cx.waker().clone());
                        i
                    }
                    None => {
                        slots.push(Some(cx.waker().clone()));
                        slots.len() - 1
                    }
                };
                self.slot = Some(i);
            }
        }
        Poll::Pending
    }
}

impl Drop for Cancelled {
    fn drop(&mut self) {
        if let Some(i) = self.slot.take() {
            let state = &self.token.0;
            if let Some(slot) = state.slots.borrow_mut().get_mut(i) {
                *slot = None;
            }
            state.free.borrow_mut().push(i);
        }
    }
}

/// One encoded message on its way to a peer: owned, or shared by many receivers (a
/// notification fanned out to every subscriber is encoded once).
#[derive(Clone, Debug)]
pub enum OutMsg {
    /// Owned bytes.
    Owned(Vec<u8>),
    /// Bytes shared between several queues.
    Shared(Rc<[u8]>),
}

impl OutMsg {
    /// The bytes.
    pub fn as_bytes(&self) -> &[u8] {
        match self {
            OutMsg::Owned(v) => v,
            OutMsg::Shared(s) => s,
        }
    }
}

/// Why an outbound message was not queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// The queue is at its configured bound.
    #[error("outbound queue full")]
    Full,
    /// The connection is closed.
    #[error("connection closed")]
    Closed,
}

/// Where a session's outgoing messages go.
pub trait Outbound {
    /// Queues one message, or says why not.
    fn send(&self, msg: OutMsg) -> Result<(), SendError>;
}

/// A bounded outbound queue drained by one writer task.
pub struct OutQueue {
    inner: RefCell<OutQueueInner>,
    messages_max: usize,
    bytes_max: usize,
    /// The shard's metrics, whose queue-depth gauges follow this queue (sum over queues).
    metrics: Option<Rc<crate::metrics::LocalMetrics>>,
}

struct OutQueueInner {
    queue: VecDeque<OutMsg>,
    bytes: usize,
    closed: bool,
    overflowed: bool,
    writer: Option<Waker>,
    space_waiters: Vec<Waker>,
    close_waiters: Vec<Waker>,
}

impl OutQueue {
    /// A queue bounded by messages and bytes.
    pub fn new(messages_max: usize, bytes_max: usize) -> Rc<Self> {
        Self::build(messages_max, bytes_max, None)
    }

    /// A queue bounded by messages and bytes whose depth and sent messages count in
    /// `metrics` (`ringmcp_outbound_queue_messages`, `..._bytes`, `ringmcp_messages_sent_total`).
    pub fn counted(
        messages_max: usize,
        bytes_max: usize,
        metrics: Rc<crate::metrics::LocalMetrics>,
    ) -> Rc<Self> {
        Self::build(messages_max, bytes_max, Some(metrics))
    }

    fn build(
        messages_max: usize,
        bytes_max: usize,
        metrics: Option<Rc<crate::metrics::LocalMetrics>>,
    ) -> Rc<Self> {
        Rc::new(OutQueue {
            inner: RefCell::new(OutQueueInner {
                queue: VecDeque::new(),
                bytes: 0,
                closed: false,
                overflowed: false,
                writer: None,
                space_waiters: Vec::new(),
                close_waiters: Vec::new(),
            }),
            messages_max,
            bytes_max,
            metrics,
        })
    }

    /// Follows a change of this queue's depth in the shard's gauges.
    fn count_depth(&self, messages: i64, bytes: i64) {
        if let Some(m) = &self.metrics {
            let s = m.stats();
            s.outbound_messages.add(messages);
            s.outbound_bytes.add(bytes);
        }
    }

    /// Takes every queued message (the writer's side); waits while empty and open. Returns
    /// an empty vector once closed and drained.
    pub fn drain(&self) -> impl Future<Output = VecDeque<OutMsg>> + '_ {
        std::future::poll_fn(move |cx| {
            let mut inner = self.inner.borrow_mut();
            if !inner.queue.is_empty() {
                self.count_depth(-(inner.queue.len() as i64), -(inner.bytes as i64));
                inner.bytes = 0;
                // Taken whole: an idle connection's queue keeps no capacity.
                let out = std::mem::take(&mut inner.queue);
                for w in inner.space_waiters.drain(..) {
                    w.wake();
                }
                return Poll::Ready(out);
            }
            if inner.closed {
                return Poll::Ready(VecDeque::new());
            }
            inner.writer = Some(cx.waker().clone());
            Poll::Pending
        })
    }

    /// Resolves when the queue is below half of both bounds (or closed): the reader side
    /// waits on this before taking more requests, which is how a slow reader throttles
    /// itself instead of growing our memory.
    pub fn has_room(&self) -> impl Future<Output = ()> + '_ {
        std::future::poll_fn(move |cx| {
            let mut inner = self.inner.borrow_mut();
            if inner.closed
                || (inner.queue.len() * 2 < self.messages_max && inner.bytes * 2 < self.bytes_max)
            {
                return Poll::Ready(());
            }
            if !inner.space_waiters.iter().any(|w| w.will_wake(cx.waker())) {
                inner.space_waiters.push(cx.waker().clone());
            }
            Poll::Pending
        })
    }

    /// Closes the queue: the writer drains what is left and stops.
    pub fn close(&self) {
        self.inner.borrow_mut().mark_closed();
    }

    /// Resolves once the queue is closed (by [`close`](Self::close), an overflow, or a
    /// failed write).
    pub fn closed(&self) -> impl Future<Output = ()> + '_ {
        std::future::poll_fn(move |cx| {
            let mut inner = self.inner.borrow_mut();
            if inner.closed {
                return Poll::Ready(());
            }
            if !inner.close_waiters.iter().any(|w| w.will_wake(cx.waker())) {
                // Usually the connection's reader alone: room for one, not Vec's four.
                inner.close_waiters.reserve_exact(1);
                inner.close_waiters.push(cx.waker().clone());
            }
            Poll::Pending
        })
    }

    /// Whether the queue is closed.
    pub fn is_closed(&self) -> bool {
        self.inner.borrow().closed
    }

    /// Whether a message was refused because the queue was full; the connection closes then.
    pub fn overflowed(&self) -> bool {
        self.inner.borrow().overflowed
    }

    /// Messages queued now.
    pub fn len(&self) -> usize {
        self.inner.borrow().queue.len()
    }

    /// Whether nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Drop for OutQueue {
    fn drop(&mut self) {
        // Whatever was never written leaves the shard's gauges with the queue.
        let inner = self.inner.get_mut();
        let (messages, bytes) = (inner.queue.len() as i64, inner.bytes as i64);
        self.count_depth(-messages, -bytes);
    }
}

impl OutQueueInner {
    fn mark_closed(&mut self) {
        self.closed = true;
        if let Some(w) = self.writer.take() {
            w.wake();
        }
        for w in self
            .space_waiters
            .drain(..)
            .chain(self.close_waiters.drain(..))
        {
            w.wake();
        }
    }
}

impl Outbound for OutQueue {
    fn send(&self, msg: OutMsg) -> Result<(), SendError> {
        let mut inner = self.inner.borrow_mut();
        if inner.closed {
            return Err(SendError::Closed);
        }
        let len = msg.as_bytes().len();
        if inner.queue.len() >= self.messages_max || inner.bytes + len > self.bytes_max {
            // A peer that does not read its messages cannot make us buffer without bound:
            // the connection is closed (its writer flushes what was queued first).
            inner.overflowed = true;
            inner.mark_closed();
            return Err(SendError::Full);
        }
        inner.bytes += len;
        inner.queue.push_back(msg);
        self.count_depth(1, len as i64);
        if let Some(m) = &self.metrics {
            m.stats().messages_sent.inc();
        }
        if let Some(w) = inner.writer.take() {
            w.wake();
        }
        Ok(())
    }
}

/// What the sans-I/O core needs from the runtime around it: time, and effects that reach
/// beyond one session (the registry partition and the mesh).
pub trait Host {
    /// Resolves after `d`.
    fn sleep(&self, d: Duration) -> BoxedLocal<()>;
    /// Registers an initialized session (bound to `server`) in the shard's registry
    /// partition, so that notifications can be routed to it.
    fn register(&self, session: &ringmcp_shards::SessionId, server: &str) -> Result<(), String>;
    /// Records that `session` wants `notifications/resources/updated` for `uri` of `server`.
    fn subscribe(
        &self,
        session: &ringmcp_shards::SessionId,
        server: &str,
        uri: &str,
    ) -> Result<(), String>;
    /// Drops a subscription; unknown ones are ignored.
    fn unsubscribe(&self, session: &ringmcp_shards::SessionId, server: &str, uri: &str);
    /// Sends `notifications/resources/updated` for `uri` to every subscriber on every shard.
    fn resource_updated(&self, server: &str, uri: &str);
    /// Sends a list_changed notification (`method`) to every session of `server` on every
    /// shard.
    fn list_changed(&self, server: &str, method: &str);
    /// The time now, for the core's time-based state (circuit breakers, timeouts).
    fn now(&self) -> std::time::Instant {
        std::time::Instant::now()
    }
    /// Counts a refusal in the shard's metrics (`ringmcp_rejections_total{reason}`); a host
    /// without metrics ignores it.
    fn reject(&self, why: crate::metrics::Reject) {
        let _ = why;
    }
    /// A request with `method` arrived (`None`: a message that could not be read as a
    /// request). The core finishes the probe when the answer is queued, or drops it when
    /// the request ends without one; the host's metrics count the request, its answer or
    /// error code, and its latency. A host without metrics returns `None`; the host owns
    /// the clock, so the core stays free of it.
    fn request_probe(&self, method: Option<&str>) -> Option<crate::metrics::RequestProbe> {
        let _ = method;
        None
    }
    /// Counts one JSON-RPC message received from the client
    /// (`ringmcp_messages_received_total`); a host without metrics ignores it.
    fn message_received(&self) {}
}

/// For test hosts: the [`Host`] methods of a host with no registry and no one to notify
/// (registering and subscribing succeed, notices go nowhere).
#[cfg(test)]
macro_rules! host_without_registry {
    () => {
        fn register(&self, _: &ringmcp_shards::SessionId, _: &str) -> Result<(), String> {
            Ok(())
        }
        fn subscribe(&self, _: &ringmcp_shards::SessionId, _: &str, _: &str) -> Result<(), String> {
            Ok(())
        }
        fn unsubscribe(&self, _: &ringmcp_shards::SessionId, _: &str, _: &str) {}
        fn resource_updated(&self, _: &str, _: &str) {}
        fn list_changed(&self, _: &str, _: &str) {}
    };
}
#[cfg(test)]
pub(crate) use host_without_registry;

#[cfg(test)]
mod tests {
    use super::*;
    use futures_lite::future::block_on;

    #[test]
    fn oneshot_delivers_and_reports_drop() {
        let (tx, rx) = oneshot::<u32>();
        tx.send(5);
        assert_eq!(block_on(rx), Some(5));
        let (tx, rx) = oneshot::<u32>();
        drop(tx);
        assert_eq!(block_on(rx), None);
    }

    #[test]
    fn cancel_token_wakes() {
        let t = CancelToken::new();
        let t2 = t.clone();
        t2.cancel();
        block_on(t.cancelled());
        assert!(t.is_cancelled());
    }

    #[test]
    fn cancel_waiters_reuse_their_slots() {
        let t = CancelToken::new();
        for _ in 0..1000 {
            let mut f = t.cancelled();
            assert!(block_on(futures_lite::future::poll_once(&mut f)).is_none());
        }
        assert_eq!(t.0.slots.borrow().len(), 1);
        let mut a = t.cancelled();
        let mut b = t.cancelled();
        assert!(block_on(futures_lite::future::poll_once(&mut a)).is_none());
        assert!(block_on(futures_lite::future::poll_once(&mut b)).is_none());
        assert_eq!(t.0.slots.borrow().len(), 2);
        t.cancel();
        assert!(block_on(futures_lite::future::poll_once(&mut a)).is_some());
    }

    #[test]
    fn a_counted_queue_keeps_the_shard_gauges() {
        let all = std::sync::Arc::new(crate::metrics::Metrics::new(1));
        let local = crate::metrics::LocalMetrics::new(all.clone(), 0);
        let s = all.shard(0);
        let a = OutQueue::counted(10, 100, local.clone());
        let b = OutQueue::counted(10, 100, local);
        a.send(OutMsg::Owned(b"abc".to_vec())).unwrap();
        a.send(OutMsg::Owned(b"de".to_vec())).unwrap();
        b.send(OutMsg::Owned(b"f".to_vec())).unwrap();
        assert_eq!((s.outbound_messages.get(), s.outbound_bytes.get()), (3, 6));
        assert_eq!(block_on(a.drain()).len(), 2);
        assert_eq!((s.outbound_messages.get(), s.outbound_bytes.get()), (1, 1));
        // A queue dropped with messages in it takes them out of the gauges.
        drop(b);
        assert_eq!((s.outbound_messages.get(), s.outbound_bytes.get()), (0, 0));
        assert_eq!(s.messages_sent.get(), 3);
    }

    #[test]
    fn out_queue_bounds_and_closes_on_overflow() {
        let q = OutQueue::new(2, 100);
        q.send(OutMsg::Owned(b"a".to_vec())).unwrap();
        q.send(OutMsg::Owned(b"b".to_vec())).unwrap();
        assert_eq!(q.send(OutMsg::Owned(b"c".to_vec())), Err(SendError::Full));
        assert!(q.overflowed() && q.is_closed());
        let drained = block_on(q.drain());
        assert_eq!(drained.len(), 2);
        assert!(block_on(q.drain()).is_empty());
        let q = OutQueue::new(10, 4);
        assert_eq!(
            q.send(OutMsg::Owned(b"12345".to_vec())),
            Err(SendError::Full)
        );
    }
}
