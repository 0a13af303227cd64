//! The bounded cross-core channel mesh.
//!
//! Every shard (one glommio executor pinned to one core) has one bounded
//! single-producer/single-consumer channel to every other shard, built with
//! glommio's [`channel_mesh`](glommio::channels::channel_mesh) full mesh.
//! Nothing else crosses cores: shard-local state stays `!Send`, and the only
//! way to act on another shard's sessions is to send it a message.
//!
//! * [`mesh_builder`] creates the builder once; clone it once per executor.
//! * [`Mesh::join`], run on each executor, waits until every shard joined.
//! * [`Mesh::send_to`] awaits room (a full channel is backpressure: the
//!   caller waits; messages are never dropped and never panic),
//!   [`Mesh::try_send_to`] reports [`TrySendError::Full`] instead.
//! * [`Mesh::take_receivers`] / [`Mesh::spawn_consumers`] drain incoming
//!   channels.
//!
//! # Shard index
//!
//! glommio assigns each executor's position in the mesh (its *peer id*) at
//! join time, not from the CPU it is placed on. That peer id **is** the shard
//! index used by [`shard_for`](crate::shard_for),
//! [`SessionId::mint`](crate::SessionId::mint) and
//! [`Partition::new`](crate::Partition::new): [`Mesh::shard`] returns it, and
//! the application must build its partition from it, after joining.
//!
//! # Messages
//!
//! The mesh is generic over its message type `M` (owned and `Send`).
//! [`ShardMsg`] is the message type the application is expected to use; it
//! names the three remote operations so the cross-shard path is visible in
//! the types.

use std::fmt;
use std::rc::Rc;

use glommio::channels::channel_mesh::{Full, MeshBuilder, Receivers, Senders};
use glommio::channels::shared_channel::ConnectedReceiver;
use glommio::{GlommioError, ResourceType};
use thiserror::Error;

use crate::session_id::SessionId;

/// A cross-shard message: an operation the receiving shard performs on its
/// own partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ShardMsg {
    /// Deliver `bytes` to one session owned by the receiving shard.
    Deliver {
        /// The target session; routes to the receiving shard.
        session: SessionId,
        /// The encoded message.
        bytes: Vec<u8>,
    },
    /// Deliver `bytes` to every local subscriber of `topic`.
    Publish {
        /// The topic key (see [`topic_key`](crate::partition::topic_key)).
        topic: String,
        /// The encoded message.
        bytes: Vec<u8>,
    },
    /// Deliver `bytes` to every local session bound to `server`.
    ServerBroadcast {
        /// The server name.
        server: String,
        /// The encoded message.
        bytes: Vec<u8>,
    },
}

/// Why joining the mesh failed.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum MeshError {
    /// The builder was created for zero shards.
    #[error("a channel mesh needs at least one shard")]
    NoShards,
    /// glommio refused the join (for example: more executors joined than the
    /// builder was created for). The glommio error is kept as text because
    /// it is neither `Sync` nor `Clone`.
    #[error("joining the channel mesh failed: {reason}")]
    Join {
        /// glommio's error, rendered.
        reason: String,
    },
}

/// Why [`Mesh::try_send_to`] did not enqueue a message. Every variant hands
/// the message back.
#[derive(Error)]
pub enum TrySendError<M> {
    /// The channel to the peer is full; retry later or use
    /// [`Mesh::send_to`] to wait for room.
    #[error("channel to peer shard is full")]
    Full(M),
    /// The channel to the peer is closed (this mesh was
    /// [closed](Mesh::close), or the peer dropped its receiver).
    #[error("channel to peer shard is closed")]
    Closed(M),
    /// The target is this shard or out of range: a programming error, also
    /// caught by `debug_assert!`.
    #[error("not a peer shard")]
    InvalidShard(M),
}

impl<M> TrySendError<M> {
    /// The message that was not sent.
    pub fn into_inner(self) -> M {
        match self {
            TrySendError::Full(m) | TrySendError::Closed(m) | TrySendError::InvalidShard(m) => m,
        }
    }

    /// Whether the channel was full.
    pub fn is_full(&self) -> bool {
        matches!(self, TrySendError::Full(_))
    }

    /// Whether the channel was closed.
    pub fn is_closed(&self) -> bool {
        matches!(self, TrySendError::Closed(_))
    }
}

impl<M> fmt::Debug for TrySendError<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TrySendError::Full(_) => f.write_str("Full(..)"),
            TrySendError::Closed(_) => f.write_str("Closed(..)"),
            TrySendError::InvalidShard(_) => f.write_str("InvalidShard(..)"),
        }
    }
}

/// Creates the builder for a full mesh of `shards` executors, with
/// `channel_capacity` messages of buffer per directed pair of shards.
///
/// Create it once, clone it once per executor on the creating thread
/// *before* spawning the executors, and move one clone into each executor,
/// which then calls [`Mesh::join`]. (glommio's `MeshBuilder` is `Send` but
/// shares an `Rc` internally, so clone it on one thread only.)
///
/// `shards == 0` and `channel_capacity == 0` are programming errors
/// (`debug_assert!`); in release builds a zero capacity is raised to 1 and a
/// zero-shard builder fails at [`Mesh::join`].
pub fn mesh_builder<M: Send + 'static>(
    shards: usize,
    channel_capacity: usize,
) -> MeshBuilder<M, Full> {
    debug_assert!(shards > 0, "a channel mesh needs at least one shard");
    debug_assert!(channel_capacity > 0, "mesh channels must have capacity");
    MeshBuilder::full(shards, channel_capacity.max(1))
}

/// This shard's end of the channel mesh: one sender to and one receiver
/// from every other shard. Shard-local (`!Send`); share it between tasks
/// with an `Rc`.
pub struct Mesh<M: Send + 'static> {
    senders: Senders<M>,
    receivers: Receivers<M>,
}

impl<M: Send + 'static> fmt::Debug for Mesh<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Mesh")
            .field("shard", &self.shard())
            .field("shards", &self.shards())
            .finish()
    }
}

/// Recovers the message from a glommio channel error.
///
/// `ConnectedSender::send`/`try_send` only fail with `Closed` or
/// `WouldBlock`, both carrying the message; `Senders` adds an `IoError`
/// (which drops the message) only for a self or out-of-range index, which
/// [`Mesh`] rules out before calling. So any other variant is unreachable.
fn recover<M>(err: GlommioError<M>) -> TrySendError<M> {
    match err {
        GlommioError::WouldBlock(ResourceType::Channel(m)) => TrySendError::Full(m),
        GlommioError::Closed(ResourceType::Channel(m)) => TrySendError::Closed(m),
        other => unreachable!("glommio channel failed without returning the message: {other}"),
    }
}

impl<M: Send + 'static> Mesh<M> {
    /// Joins the mesh from the current executor and waits until every shard
    /// has joined.
    ///
    /// Must run inside a glommio executor, at most once per executor and
    /// builder (glommio panics on a second join from the same executor).
    ///
    /// # Errors
    ///
    /// [`MeshError::NoShards`] for a zero-shard builder, [`MeshError::Join`]
    /// if glommio refuses (e.g. the mesh already has all its peers).
    pub async fn join(builder: MeshBuilder<M, Full>) -> Result<Mesh<M>, MeshError> {
        if builder.nr_peers() == 0 {
            return Err(MeshError::NoShards);
        }
        let (senders, receivers) = builder.join().await.map_err(|e| MeshError::Join {
            reason: e.to_string(),
        })?;
        debug_assert_eq!(senders.peer_id(), receivers.peer_id());
        debug_assert_eq!(senders.nr_consumers(), receivers.nr_producers());
        debug_assert!(senders.peer_id() < senders.nr_consumers());
        Ok(Mesh { senders, receivers })
    }

    /// This shard's index: the glommio mesh peer id. Use it for
    /// [`Partition::new`](crate::Partition::new) and
    /// [`SessionId::mint`](crate::SessionId::mint).
    pub fn shard(&self) -> usize {
        self.senders.peer_id()
    }

    /// Number of shards in the mesh (including this one).
    pub fn shards(&self) -> usize {
        self.senders.nr_consumers()
    }

    /// The other shards' indices, ascending.
    pub fn peers(&self) -> impl Iterator<Item = usize> {
        let me = self.shard();
        (0..self.shards()).filter(move |&s| s != me)
    }

    /// Whether `shard` is another shard of this mesh.
    fn is_peer(&self, shard: usize) -> bool {
        shard < self.shards() && shard != self.shard()
    }

    /// Sends `msg` to `shard`, waiting while its channel is full.
    ///
    /// Returns the message back as `Err` if the channel is closed. Sending to
    /// this shard or to an out-of-range shard is a programming error (local
    /// work never goes through the mesh): `debug_assert!`, and `Err(msg)` in
    /// release builds.
    ///
    /// glommio 0.9 does not wake a sender blocked on a full channel when the
    /// *peer* drops its receiver; [`close`](Self::close) on this mesh does
    /// wake it (with `Err(msg)`), so call it at shutdown.
    pub async fn send_to(&self, shard: usize, msg: M) -> Result<(), M> {
        if !self.is_peer(shard) {
            debug_assert!(
                false,
                "send_to({shard}) from shard {} of {}: not a peer",
                self.shard(),
                self.shards()
            );
            return Err(msg);
        }
        self.senders
            .send_to(shard, msg)
            .await
            .map_err(|e| recover(e).into_inner())
    }

    /// Sends `msg` to `shard` if its channel has room, without waiting.
    ///
    /// # Errors
    ///
    /// [`TrySendError::Full`] if the channel is full,
    /// [`TrySendError::Closed`] if it is closed, and
    /// [`TrySendError::InvalidShard`] (after a `debug_assert!`) if `shard` is
    /// this shard or out of range. All of them return the message.
    pub fn try_send_to(&self, shard: usize, msg: M) -> Result<(), TrySendError<M>> {
        if !self.is_peer(shard) {
            debug_assert!(
                false,
                "try_send_to({shard}) from shard {} of {}: not a peer",
                self.shard(),
                self.shards()
            );
            return Err(TrySendError::InvalidShard(msg));
        }
        self.senders.try_send_to(shard, msg).map_err(recover)
    }

    /// Sends a copy of `msg` to every *other* shard and returns how many
    /// accepted it. Shards whose channel is closed (shutting down) are
    /// skipped.
    ///
    /// Peers with room are served first without waiting; only then does it
    /// wait, peer by peer, on the ones whose channel was full, so one slow
    /// shard does not delay delivery to the others.
    pub async fn broadcast(&self, msg: M) -> usize
    where
        M: Clone,
    {
        let mut accepted = 0;
        let mut waiting = Vec::new();
        for shard in self.peers() {
            match self
                .senders
                .try_send_to(shard, msg.clone())
                .map_err(recover)
            {
                Ok(()) => accepted += 1,
                Err(TrySendError::Full(m)) => waiting.push((shard, m)),
                Err(TrySendError::Closed(_) | TrySendError::InvalidShard(_)) => {}
            }
        }
        drop(msg);
        for (shard, m) in waiting {
            if self.senders.send_to(shard, m).await.is_ok() {
                accepted += 1;
            }
        }
        debug_assert!(accepted < self.shards());
        accepted
    }

    /// Takes the incoming channels, as `(from_shard, receiver)` pairs, so the
    /// application can run one consumer task per peer. A receiver yields
    /// `None` once its peer closed and it is drained. A second call returns
    /// an empty `Vec`.
    pub fn take_receivers(&mut self) -> Vec<(usize, ConnectedReceiver<M>)> {
        let receivers = self.receivers.streams();
        debug_assert!(receivers.iter().all(|(from, _)| self.is_peer(*from)));
        receivers
    }

    /// Takes the incoming channels (see [`take_receivers`]) and spawns one
    /// detached task per peer on the current executor and task queue, calling
    /// `handler(from_shard, msg)` for every message. Tasks end when their
    /// peer closes. Returns the number of tasks spawned (0 if the receivers
    /// were already taken).
    ///
    /// [`take_receivers`]: Self::take_receivers
    pub fn spawn_consumers<F>(&mut self, handler: F) -> usize
    where
        F: Fn(usize, M) + 'static,
    {
        let handler = Rc::new(handler);
        let receivers = self.take_receivers();
        let spawned = receivers.len();
        for (from, receiver) in receivers {
            let handler = Rc::clone(&handler);
            glommio::spawn_local(async move {
                while let Some(msg) = receiver.recv().await {
                    handler(from, msg);
                    // A busy peer can keep the channel non-empty forever;
                    // give other tasks their turn.
                    glommio::yield_if_needed().await;
                }
            })
            .detach();
        }
        spawned
    }

    /// Closes this shard's outgoing channels. Peers' consumers see the end
    /// of their stream once drained; pending and later sends from this shard
    /// fail with the message handed back. Incoming channels stay open until
    /// their receivers are dropped.
    pub fn close(&self) {
        self.senders.close();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::partition::{topic_key, Partition, PartitionLimits, Route};
    use crate::routing::shard_for;
    use std::cell::{Cell, RefCell};
    use std::future::Future;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::{Arc, OnceLock};
    use std::time::{Duration, Instant};

    use glommio::timer::{sleep, timeout};
    use glommio::{LocalExecutorBuilder, Placement};

    /// Upper bound for any wait in these tests.
    const DEADLINE: Duration = Duration::from_secs(20);

    /// Runs `body` on `shards` fresh executors sharing one mesh builder and
    /// returns their results (in spawn order, not shard order).
    fn run_shards<M, T, G, Fut>(shards: usize, capacity: usize, body: G) -> Vec<T>
    where
        M: Send + 'static,
        T: Send + 'static,
        G: FnOnce(MeshBuilder<M, Full>) -> Fut + Send + Clone + 'static,
        Fut: Future<Output = T> + 'static,
    {
        let builder = mesh_builder::<M>(shards, capacity);
        let clones: Vec<_> = (0..shards).map(|_| builder.clone()).collect();
        drop(builder);
        let handles: Vec<_> = clones
            .into_iter()
            .enumerate()
            .map(|(i, b)| {
                let body = body.clone();
                LocalExecutorBuilder::new(Placement::Unbound)
                    .name(&format!("mesh-test-{i}"))
                    .io_memory(1 << 20)
                    .spawn(move || body(b))
                    .expect("spawn executor")
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("executor failed"))
            .collect()
    }

    /// Joins with a deadline, so a failed peer cannot hang the test.
    async fn join_mesh<M: Send + 'static>(builder: MeshBuilder<M, Full>) -> Mesh<M> {
        timeout(DEADLINE, async { Ok(Mesh::join(builder).await) })
            .await
            .expect("mesh join timed out")
            .expect("mesh join failed")
    }

    /// Polls `cond` until it holds; panics after [`DEADLINE`].
    async fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
        let start = Instant::now();
        while !cond() {
            assert!(start.elapsed() < DEADLINE, "timed out waiting for {what}");
            sleep(Duration::from_millis(1)).await;
        }
    }

    /// Cross-thread rendezvous without blocking an executor thread.
    #[derive(Clone, Default)]
    struct Rendezvous(Arc<AtomicUsize>);

    impl Rendezvous {
        /// Marks one arrival.
        fn arrive(&self) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }

        /// Waits until `n` arrivals in total.
        async fn wait_for(&self, n: usize) {
            wait_until("rendezvous", || self.0.load(Ordering::SeqCst) >= n).await;
        }
    }

    #[test]
    fn shard_msg_is_send() {
        fn assert_send<T: Send + 'static>() {}
        assert_send::<ShardMsg>();
        fn assert_error<E: std::error::Error + Send + Sync + 'static>() {}
        assert_error::<MeshError>();
        assert_error::<TrySendError<ShardMsg>>();
    }

    #[test]
    fn try_send_error_accessors() {
        let e = TrySendError::Full(1);
        assert!(e.is_full() && !e.is_closed());
        assert_eq!(format!("{e:?}"), "Full(..)");
        assert_eq!(e.into_inner(), 1);
        let e = TrySendError::Closed(2);
        assert!(e.is_closed() && !e.is_full());
        assert_eq!(e.to_string(), "channel to peer shard is closed");
        assert_eq!(e.into_inner(), 2);
        assert_eq!(TrySendError::InvalidShard(3).into_inner(), 3);
    }

    #[test]
    fn single_shard_mesh_has_no_peers() {
        let out = run_shards::<u32, _, _, _>(1, 4, |b| async move {
            let mut mesh = join_mesh(b).await;
            assert_eq!(mesh.shard(), 0);
            assert_eq!(mesh.shards(), 1);
            assert_eq!(mesh.peers().count(), 0);
            assert_eq!(mesh.broadcast(7).await, 0);
            assert!(mesh.take_receivers().is_empty());
            assert_eq!(mesh.spawn_consumers(|_, _| {}), 0);
            assert!(format!("{mesh:?}").contains("shards: 1"));
            mesh.close();
            true
        });
        assert_eq!(out, vec![true]);
    }

    #[test]
    fn zero_shard_builder_is_rejected() {
        let out = LocalExecutorBuilder::new(Placement::Unbound)
            .io_memory(1 << 20)
            .spawn(|| async {
                // `mesh_builder` debug-asserts; go to glommio directly.
                let builder = MeshBuilder::<u32, Full>::full(0, 1);
                Mesh::join(builder).await.map(|_| ())
            })
            .expect("spawn")
            .join()
            .expect("executor");
        assert_eq!(out, Err(MeshError::NoShards));
    }

    #[test]
    fn sending_to_self_is_a_programming_error() {
        let result = LocalExecutorBuilder::new(Placement::Unbound)
            .io_memory(1 << 20)
            .spawn(|| async {
                let mesh = join_mesh(mesh_builder::<u32>(1, 1)).await;
                mesh.try_send_to(0, 1).map_err(|e| e.into_inner())
            })
            .expect("spawn")
            .join();
        if cfg!(debug_assertions) {
            assert!(result.is_err(), "debug_assert should have fired");
        } else {
            assert_eq!(result.expect("executor"), Err(1));
        }
    }

    #[test]
    fn two_shards_exchange_messages_in_order() {
        const N: usize = 500;
        // Capacity 4 < N: the senders must wait for room (backpressure).
        let shards = run_shards::<(usize, usize), _, _, _>(2, 4, |b| async move {
            let mut mesh = join_mesh(b).await;
            assert_eq!(mesh.shards(), 2);
            let me = mesh.shard();
            let other = 1 - me;
            assert_eq!(mesh.peers().collect::<Vec<_>>(), vec![other]);

            let mut receivers = mesh.take_receivers();
            assert!(mesh.take_receivers().is_empty());
            assert_eq!(receivers.len(), 1);
            let (from, receiver) = receivers.remove(0);
            assert_eq!(from, other);

            let mesh = Rc::new(mesh);
            let sender = glommio::spawn_local({
                let mesh = Rc::clone(&mesh);
                async move {
                    for i in 0..N {
                        assert_eq!(mesh.send_to(other, (me, i)).await, Ok(()));
                    }
                }
            });
            timeout(DEADLINE, async {
                for i in 0..N {
                    assert_eq!(receiver.recv().await, Some((other, i)));
                }
                Ok(())
            })
            .await
            .expect("receive timed out");
            timeout(DEADLINE, async {
                sender.await;
                Ok(())
            })
            .await
            .expect("send timed out");
            me
        });
        let mut shards = shards;
        shards.sort_unstable();
        assert_eq!(shards, vec![0, 1]);
    }

    #[test]
    fn spawn_consumers_and_broadcast_over_four_shards() {
        const SHARDS: usize = 4;
        const PER_PEER: usize = 50;
        let shards = run_shards::<(usize, usize), _, _, _>(SHARDS, 2, |b| async move {
            let mut mesh = join_mesh(b).await;
            let me = mesh.shard();
            let seen: Rc<RefCell<Vec<Vec<usize>>>> =
                Rc::new(RefCell::new(vec![Vec::new(); SHARDS]));
            let spawned = mesh.spawn_consumers({
                let seen = Rc::clone(&seen);
                move |from, (sender, i)| {
                    assert_eq!(from, sender);
                    seen.borrow_mut()[from].push(i);
                }
            });
            assert_eq!(spawned, SHARDS - 1);
            for i in 0..PER_PEER {
                assert_eq!(mesh.broadcast((me, i)).await, SHARDS - 1);
            }
            wait_until("all broadcasts", || {
                let seen = seen.borrow();
                (0..SHARDS).all(|s| s == me || seen[s].len() == PER_PEER)
            })
            .await;
            let seen = seen.borrow();
            for (s, got) in seen.iter().enumerate() {
                if s == me {
                    assert!(got.is_empty(), "received a message from self");
                } else {
                    assert_eq!(*got, (0..PER_PEER).collect::<Vec<_>>());
                }
            }
            me
        });
        let mut shards = shards;
        shards.sort_unstable();
        assert_eq!(shards, (0..SHARDS).collect::<Vec<_>>());
    }

    #[test]
    fn full_closed_and_close_unblocks_pending_send() {
        let phase = Rendezvous::default();
        run_shards::<u32, _, _, _>(2, 2, move |b| async move {
            let mut mesh = join_mesh(b).await;
            if mesh.shard() == 0 {
                // Drop incoming receivers: shard 1's sends to us are Closed.
                drop(mesh.take_receivers());
                phase.arrive(); // 1

                // Channel 0 -> 1 has capacity 2 and shard 1 is not consuming.
                assert!(mesh.try_send_to(1, 10).is_ok());
                assert!(mesh.try_send_to(1, 11).is_ok());
                match mesh.try_send_to(1, 12) {
                    Err(TrySendError::Full(12)) => {}
                    other => panic!("expected Full(12), got {other:?}"),
                }

                // A blocking send waits (backpressure) ...
                let mesh = Rc::new(mesh);
                let done: Rc<Cell<Option<Result<(), u32>>>> = Rc::default();
                glommio::spawn_local({
                    let (mesh, done) = (Rc::clone(&mesh), Rc::clone(&done));
                    async move { done.set(Some(mesh.send_to(1, 13).await)) }
                })
                .detach();
                sleep(Duration::from_millis(50)).await;
                assert_eq!(done.get(), None, "send_to should wait for room");

                // ... until close() hands the message back.
                mesh.close();
                wait_until("pending send to fail", || done.get().is_some()).await;
                assert_eq!(done.get(), Some(Err(13)));
                match mesh.try_send_to(1, 14) {
                    Err(TrySendError::Closed(14)) => {}
                    other => panic!("expected Closed(14), got {other:?}"),
                }
                assert_eq!(mesh.send_to(1, 15).await, Err(15));
                assert_eq!(mesh.broadcast(16).await, 0);
                phase.arrive(); // 2
            } else {
                phase.wait_for(1).await;
                match mesh.try_send_to(0, 20) {
                    Err(TrySendError::Closed(20)) => {}
                    other => panic!("expected Closed(20), got {other:?}"),
                }
                assert_eq!(mesh.send_to(0, 21).await, Err(21));

                phase.wait_for(2).await;
                // What was enqueued before close() is still delivered, then
                // the stream ends.
                let mut receivers = mesh.take_receivers();
                let (from, receiver) = receivers.remove(0);
                assert_eq!(from, 0);
                timeout(DEADLINE, async {
                    assert_eq!(receiver.recv().await, Some(10));
                    assert_eq!(receiver.recv().await, Some(11));
                    assert_eq!(receiver.recv().await, None);
                    Ok(())
                })
                .await
                .expect("drain timed out");
            }
        });
    }

    /// One session's outbound queue in the full-path test.
    type Sink = Rc<RefCell<Vec<Vec<u8>>>>;

    /// Applies a message to the local partition: the work a shard does for
    /// both local calls and messages from peers.
    fn apply(part: &Partition<Sink>, msg: &ShardMsg) {
        match msg {
            ShardMsg::Deliver { session, bytes } => match part.route(session) {
                Route::Local(sink) => sink.borrow_mut().push(bytes.clone()),
                Route::Remote(shard) => panic!("Deliver routed to shard {shard}"),
                Route::Unknown => {}
            },
            ShardMsg::Publish { topic, bytes } => {
                for (_, sink) in part.subscribers(topic) {
                    sink.borrow_mut().push(bytes.clone());
                }
            }
            ShardMsg::ServerBroadcast { server, bytes } => {
                for (_, sink) in part.sessions_of_server(server) {
                    sink.borrow_mut().push(bytes.clone());
                }
            }
        }
    }

    #[test]
    fn publish_reaches_subscribers_on_both_shards() {
        let directory: Arc<[OnceLock<Vec<SessionId>>; 2]> = Arc::default();
        let phase = Rendezvous::default();
        let topic = topic_key("fs", "file:///a");
        let outcomes = run_shards::<ShardMsg, _, _, _>(2, 2, move |b| async move {
            let mut mesh = join_mesh(b).await;
            let (me, shards) = (mesh.shard(), mesh.shards());
            let part: Rc<RefCell<Partition<Sink>>> = Rc::new(RefCell::new(Partition::new(
                me,
                shards,
                PartitionLimits {
                    sessions_max: 16,
                    subscriptions_per_session_max: 4,
                    topics_max: 16,
                },
            )));

            // Sessions 0 and 1 on "fs", 2 on "git"; 0 and 2 subscribe.
            let mut ids = Vec::new();
            let mut sinks = Vec::new();
            for server in ["fs", "fs", "git"] {
                let id = SessionId::mint(me, shards).expect("mint");
                assert_eq!(shard_for(id.as_bytes(), shards), me);
                let sink = Sink::default();
                part.borrow_mut()
                    .register(id, server, Rc::clone(&sink))
                    .expect("register");
                ids.push(id);
                sinks.push(sink);
            }
            for i in [0, 2] {
                assert_eq!(part.borrow_mut().subscribe(&ids[i], &topic), Ok(true));
            }
            mesh.spawn_consumers({
                let part = Rc::clone(&part);
                move |_, msg| apply(&part.borrow(), &msg)
            });
            directory[me].set(ids.clone()).expect("directory slot");
            phase.arrive();
            phase.wait_for(2).await;

            if me == 0 {
                let publish = ShardMsg::Publish {
                    topic: topic.clone(),
                    bytes: b"pub".to_vec(),
                };
                apply(&part.borrow(), &publish);
                assert_eq!(mesh.broadcast(publish).await, 1);

                // A Deliver for a session of shard 1 goes through the mesh.
                let remote = directory[1].get().expect("shard 1 ids")[1];
                let route = part.borrow().route(&remote).map_remote();
                assert_eq!(route, Some(1));
                let deliver = ShardMsg::Deliver {
                    session: remote,
                    bytes: b"dm".to_vec(),
                };
                assert_eq!(mesh.send_to(1, deliver).await, Ok(()));

                let git = ShardMsg::ServerBroadcast {
                    server: "git".into(),
                    bytes: b"git".to_vec(),
                };
                apply(&part.borrow(), &git);
                assert_eq!(mesh.broadcast(git).await, 1);
            } else {
                wait_until("remote deliveries", || {
                    sinks[1].borrow().len() == 1 && sinks[2].borrow().len() == 2
                })
                .await;
            }
            let got: Vec<Vec<Vec<u8>>> = sinks.iter().map(|s| s.borrow().clone()).collect();
            (me, got)
        });
        for (shard, got) in outcomes {
            let dm: Vec<Vec<u8>> = if shard == 1 {
                vec![b"dm".to_vec()]
            } else {
                vec![]
            };
            assert_eq!(got[0], vec![b"pub".to_vec()], "shard {shard} session 0");
            assert_eq!(got[1], dm, "shard {shard} session 1");
            assert_eq!(
                got[2],
                vec![b"pub".to_vec(), b"git".to_vec()],
                "shard {shard} session 2"
            );
        }
    }

    /// Test helper: the shard of a `Route::Remote`.
    trait RemoteShard {
        fn map_remote(self) -> Option<usize>;
    }

    impl<S> RemoteShard for Route<'_, S> {
        fn map_remote(self) -> Option<usize> {
            match self {
                Route::Remote(shard) => Some(shard),
                _ => None,
            }
        }
    }
}
