//! One shard's slice of the session registry.
//!
//! A [`Partition`] holds only the sessions whose id routes to its shard
//! ([`shard_for`]`(id) == shard`). It is plain single-threaded data: it is
//! owned by one executor, never shared across threads and never locked.
//! Everything another shard needs from it goes through the mesh as a
//! message.
//!
//! Per session it stores a caller-chosen *sink* `S` (typically an `Rc` to
//! the connection's outbound queue), the server the session is bound to and
//! the set of topics it subscribes to. Two reverse indices make fan-out
//! proportional to the audience rather than to the partition:
//!
//! * topic → subscribed sessions ([`Partition::subscribers`]);
//! * server → bound sessions ([`Partition::sessions_of_server`]).
//!
//! # Topics
//!
//! A topic is an opaque string to the partition. The application builds it
//! with [`topic_key`]`(server, name)`, i.e. `server + '\0' + name`, so that
//! the same resource name on two servers gives two topics. NUL cannot occur
//! in a server name taken from configuration or in a URI, so the encoding is
//! unambiguous.
//!
//! # Bounds
//!
//! Every map is bounded by [`PartitionLimits`]:
//!
//! * sessions ≤ `sessions_max`;
//! * server index entries ≤ sessions (an entry exists only while it has a
//!   session);
//! * topics ≤ `topics_max` (a topic exists only while it has a subscriber);
//! * subscriptions of one session ≤ `subscriptions_per_session_max`.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::rc::Rc;

use thiserror::Error;

use crate::routing::shard_for;
use crate::session_id::SessionId;

/// Builds the topic string for resource `name` on `server`:
/// `server + '\0' + name`.
pub fn topic_key(server: &str, name: &str) -> String {
    let mut key = String::with_capacity(server.len() + 1 + name.len());
    key.push_str(server);
    key.push('\0');
    key.push_str(name);
    key
}

/// Capacity limits of a [`Partition`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartitionLimits {
    /// Most sessions the partition holds at once.
    pub sessions_max: usize,
    /// Most topics one session may subscribe to.
    pub subscriptions_per_session_max: usize,
    /// Most distinct topics (with at least one subscriber) at once.
    pub topics_max: usize,
}

/// Why a registry operation was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum RegistryError {
    /// The partition already holds `sessions_max` sessions.
    #[error("partition full: {limit} sessions")]
    Full {
        /// The `sessions_max` limit.
        limit: usize,
    },
    /// The session is already registered.
    #[error("session already registered")]
    Duplicate,
    /// The session id routes to another shard.
    #[error("session routes to shard {expected}, but this is shard {actual}")]
    WrongShard {
        /// The shard the id routes to (`shard_for(id, shards)`).
        expected: usize,
        /// This partition's shard.
        actual: usize,
    },
    /// The session is not registered here.
    #[error("unknown session")]
    UnknownSession,
    /// The session already has `subscriptions_per_session_max` subscriptions.
    #[error("too many subscriptions for one session (limit {limit})")]
    TooManySubscriptions {
        /// The `subscriptions_per_session_max` limit.
        limit: usize,
    },
    /// The partition already tracks `topics_max` topics.
    #[error("too many topics (limit {limit})")]
    TooManyTopics {
        /// The `topics_max` limit.
        limit: usize,
    },
}

/// Where a session lives, from one partition's point of view.
pub enum Route<'a, S> {
    /// Registered in this partition; here is its sink.
    Local(&'a S),
    /// Owned by another shard (the value is its index); send it a message.
    Remote(usize),
    /// Would be owned by this shard, but is not registered (never was, or
    /// already removed).
    Unknown,
}

impl<S> Clone for Route<'_, S> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<S> Copy for Route<'_, S> {}

impl<S: fmt::Debug> fmt::Debug for Route<'_, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Route::Local(sink) => f.debug_tuple("Local").field(sink).finish(),
            Route::Remote(shard) => f.debug_tuple("Remote").field(shard).finish(),
            Route::Unknown => f.write_str("Unknown"),
        }
    }
}

impl<S: PartialEq> PartialEq for Route<'_, S> {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Route::Local(a), Route::Local(b)) => a == b,
            (Route::Remote(a), Route::Remote(b)) => a == b,
            (Route::Unknown, Route::Unknown) => true,
            _ => false,
        }
    }
}

/// What the partition stores per session.
struct SessionEntry<S> {
    sink: S,
    /// Interned: shares the allocation with the key of `Partition::servers`.
    server: Rc<str>,
    /// Interned: each shares the allocation with a key of `Partition::topics`.
    topics: HashSet<Rc<str>>,
}

/// One shard's slice of the registry. See the [module docs](self).
pub struct Partition<S> {
    shard: usize,
    shards: usize,
    limits: PartitionLimits,
    sessions: HashMap<SessionId, SessionEntry<S>>,
    /// topic → sessions subscribed to it. Never holds an empty set.
    topics: HashMap<Rc<str>, HashSet<SessionId>>,
    /// server → sessions bound to it. Never holds an empty set.
    servers: HashMap<Rc<str>, HashSet<SessionId>>,
    /// Total subscriptions: sum of `SessionEntry::topics` sizes.
    subscriptions: usize,
}

impl<S> fmt::Debug for Partition<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Partition")
            .field("shard", &self.shard)
            .field("shards", &self.shards)
            .field("limits", &self.limits)
            .field("sessions", &self.sessions.len())
            .field("topics", &self.topics.len())
            .field("servers", &self.servers.len())
            .field("subscriptions", &self.subscriptions)
            .finish()
    }
}

impl<S> Partition<S> {
    /// An empty partition for `shard` of `shards`.
    ///
    /// `shard < shards` is a programming error otherwise (checked by
    /// `debug_assert!`).
    pub fn new(shard: usize, shards: usize, limits: PartitionLimits) -> Self {
        debug_assert!(shards > 0, "a partition needs at least one shard");
        debug_assert!(shard < shards, "shard {shard} out of range 0..{shards}");
        Self {
            shard,
            shards,
            limits,
            sessions: HashMap::new(),
            topics: HashMap::new(),
            servers: HashMap::new(),
            subscriptions: 0,
        }
    }

    /// This partition's shard index.
    pub fn shard(&self) -> usize {
        self.shard
    }

    /// Total number of shards.
    pub fn shards(&self) -> usize {
        self.shards
    }

    /// The limits this partition was built with.
    pub fn limits(&self) -> PartitionLimits {
        self.limits
    }

    /// The shard `id` routes to.
    fn owner(&self, id: &SessionId) -> usize {
        shard_for(id.as_bytes(), self.shards)
    }

    /// Registers session `id`, bound to `server`, delivering to `sink`.
    ///
    /// # Errors
    ///
    /// * [`RegistryError::WrongShard`] if `id` routes to another shard;
    /// * [`RegistryError::Duplicate`] if `id` is already registered;
    /// * [`RegistryError::Full`] if `sessions_max` sessions are registered.
    pub fn register(&mut self, id: SessionId, server: &str, sink: S) -> Result<(), RegistryError> {
        let owner = self.owner(&id);
        if owner != self.shard {
            return Err(RegistryError::WrongShard {
                expected: owner,
                actual: self.shard,
            });
        }
        if self.sessions.contains_key(&id) {
            return Err(RegistryError::Duplicate);
        }
        if self.sessions.len() >= self.limits.sessions_max {
            return Err(RegistryError::Full {
                limit: self.limits.sessions_max,
            });
        }
        let server: Rc<str> = match self.servers.get_key_value(server) {
            Some((interned, _)) => Rc::clone(interned),
            None => Rc::from(server),
        };
        self.servers
            .entry(Rc::clone(&server))
            .or_default()
            .insert(id);
        self.sessions.insert(
            id,
            SessionEntry {
                sink,
                server,
                topics: HashSet::new(),
            },
        );
        debug_assert!(self.servers.len() <= self.sessions.len());
        Ok(())
    }

    /// Removes session `id` with its subscriptions and server binding, and
    /// returns its sink. `None` if it was not registered.
    pub fn remove(&mut self, id: &SessionId) -> Option<S> {
        let entry = self.sessions.remove(id)?;
        for topic in &entry.topics {
            remove_from_index(&mut self.topics, topic, id);
        }
        debug_assert!(self.subscriptions >= entry.topics.len());
        self.subscriptions -= entry.topics.len();
        remove_from_index(&mut self.servers, &entry.server, id);
        debug_assert!(self.servers.len() <= self.sessions.len());
        debug_assert!(self.topics.len() <= self.subscriptions);
        Some(entry.sink)
    }

    /// The sink of session `id`, if registered here.
    pub fn lookup(&self, id: &SessionId) -> Option<&S> {
        self.sessions.get(id).map(|entry| &entry.sink)
    }

    /// The server session `id` is bound to, if registered here.
    pub fn server_of(&self, id: &SessionId) -> Option<&str> {
        self.sessions.get(id).map(|entry| &*entry.server)
    }

    /// Whether session `id` is subscribed to `topic`.
    pub fn is_subscribed(&self, id: &SessionId, topic: &str) -> bool {
        self.sessions
            .get(id)
            .is_some_and(|entry| entry.topics.contains(topic))
    }

    /// Subscribes session `id` to `topic`. Returns `true` if the
    /// subscription is new, `false` if it already existed.
    ///
    /// # Errors
    ///
    /// * [`RegistryError::UnknownSession`] if `id` is not registered here;
    /// * [`RegistryError::TooManySubscriptions`] if the session is at
    ///   `subscriptions_per_session_max`;
    /// * [`RegistryError::TooManyTopics`] if `topic` is new and the partition
    ///   is at `topics_max`.
    pub fn subscribe(&mut self, id: &SessionId, topic: &str) -> Result<bool, RegistryError> {
        let entry = self
            .sessions
            .get_mut(id)
            .ok_or(RegistryError::UnknownSession)?;
        if entry.topics.contains(topic) {
            return Ok(false);
        }
        if entry.topics.len() >= self.limits.subscriptions_per_session_max {
            return Err(RegistryError::TooManySubscriptions {
                limit: self.limits.subscriptions_per_session_max,
            });
        }
        let interned: Rc<str> = match self.topics.get_key_value(topic) {
            Some((interned, _)) => Rc::clone(interned),
            None => {
                if self.topics.len() >= self.limits.topics_max {
                    return Err(RegistryError::TooManyTopics {
                        limit: self.limits.topics_max,
                    });
                }
                Rc::from(topic)
            }
        };
        let added = self
            .topics
            .entry(Rc::clone(&interned))
            .or_default()
            .insert(*id);
        debug_assert!(added, "topic index out of sync with session entry");
        entry.topics.insert(interned);
        self.subscriptions += 1;
        debug_assert!(self.topics.len() <= self.limits.topics_max);
        Ok(true)
    }

    /// Unsubscribes session `id` from `topic`. Returns whether it was
    /// subscribed.
    pub fn unsubscribe(&mut self, id: &SessionId, topic: &str) -> bool {
        let Some(entry) = self.sessions.get_mut(id) else {
            return false;
        };
        if !entry.topics.remove(topic) {
            return false;
        }
        remove_from_index(&mut self.topics, topic, id);
        debug_assert!(self.subscriptions > 0);
        self.subscriptions -= 1;
        true
    }

    /// The sessions subscribed to `topic`, with their sinks, in no
    /// particular order.
    pub fn subscribers<'a>(
        &'a self,
        topic: &str,
    ) -> impl Iterator<Item = (&'a SessionId, &'a S)> + 'a {
        self.topics
            .get(topic)
            .into_iter()
            .flatten()
            .filter_map(|id| self.session_sink(id))
    }

    /// The sessions bound to `server`, with their sinks, in no particular
    /// order. Uses the server index; does not scan other sessions.
    pub fn sessions_of_server<'a>(
        &'a self,
        server: &str,
    ) -> impl Iterator<Item = (&'a SessionId, &'a S)> + 'a {
        self.servers
            .get(server)
            .into_iter()
            .flatten()
            .filter_map(|id| self.session_sink(id))
    }

    /// All sessions in this partition, with their sinks, in no particular
    /// order.
    pub fn sessions(&self) -> impl Iterator<Item = (&SessionId, &S)> + '_ {
        self.sessions.iter().map(|(id, entry)| (id, &entry.sink))
    }

    /// `(id, sink)` for an id taken from an index. Every id in an index is a
    /// registered session (maintained by `register`/`remove`/`subscribe`/
    /// `unsubscribe`), so `None` means the invariant broke.
    fn session_sink(&self, id: &SessionId) -> Option<(&SessionId, &S)> {
        let found = self
            .sessions
            .get_key_value(id)
            .map(|(id, entry)| (id, &entry.sink));
        debug_assert!(found.is_some(), "index names unregistered session {id}");
        found
    }

    /// Where session `id` lives: [`Route::Local`] if it routes here and is
    /// registered, [`Route::Remote`] with its shard if it routes elsewhere,
    /// [`Route::Unknown`] if it routes here but is not registered.
    pub fn route(&self, id: &SessionId) -> Route<'_, S> {
        let owner = self.owner(id);
        if owner != self.shard {
            return Route::Remote(owner);
        }
        match self.sessions.get(id) {
            Some(entry) => Route::Local(&entry.sink),
            None => Route::Unknown,
        }
    }

    /// Number of registered sessions.
    pub fn len(&self) -> usize {
        self.sessions.len()
    }

    /// Whether no session is registered.
    pub fn is_empty(&self) -> bool {
        self.sessions.is_empty()
    }

    /// Total number of (session, topic) subscriptions.
    pub fn subscription_count(&self) -> usize {
        self.subscriptions
    }

    /// Number of distinct topics with at least one subscriber.
    pub fn topic_count(&self) -> usize {
        self.topics.len()
    }

    /// Number of distinct servers with at least one bound session.
    pub fn server_count(&self) -> usize {
        self.servers.len()
    }

    /// Checks every internal invariant; O(size). For tests.
    #[cfg(test)]
    fn assert_invariants(&self) {
        assert!(self.sessions.len() <= self.limits.sessions_max);
        assert!(self.topics.len() <= self.limits.topics_max);
        let mut subscriptions = 0;
        for (id, entry) in &self.sessions {
            assert_eq!(self.owner(id), self.shard);
            assert!(entry.topics.len() <= self.limits.subscriptions_per_session_max);
            subscriptions += entry.topics.len();
            for topic in &entry.topics {
                assert!(self.topics.get(topic).is_some_and(|s| s.contains(id)));
            }
            assert!(self
                .servers
                .get(&entry.server)
                .is_some_and(|s| s.contains(id)));
        }
        assert_eq!(subscriptions, self.subscriptions);
        let mut indexed = 0;
        for (topic, ids) in &self.topics {
            assert!(!ids.is_empty(), "empty topic set left behind");
            for id in ids {
                assert!(self.sessions[id].topics.contains(topic));
            }
            indexed += ids.len();
        }
        assert_eq!(indexed, self.subscriptions);
        let mut bound = 0;
        for (server, ids) in &self.servers {
            assert!(!ids.is_empty(), "empty server set left behind");
            for id in ids {
                assert_eq!(&self.sessions[id].server, server);
            }
            bound += ids.len();
        }
        assert_eq!(bound, self.sessions.len());
    }
}

/// Removes `id` from `index[key]`, dropping the entry if its set becomes
/// empty.
fn remove_from_index(index: &mut HashMap<Rc<str>, HashSet<SessionId>>, key: &str, id: &SessionId) {
    let Some(set) = index.get_mut(key) else {
        debug_assert!(false, "index has no entry for a key being removed");
        return;
    };
    let removed = set.remove(id);
    debug_assert!(removed, "index entry does not contain session {id}");
    if set.is_empty() {
        index.remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;

    const SHARDS: usize = 4;
    const SHARD: usize = 2;

    fn limits() -> PartitionLimits {
        PartitionLimits {
            sessions_max: 8,
            subscriptions_per_session_max: 3,
            topics_max: 5,
        }
    }

    fn part() -> Partition<u32> {
        Partition::new(SHARD, SHARDS, limits())
    }

    fn local_id() -> SessionId {
        SessionId::mint(SHARD, SHARDS).expect("mint")
    }

    fn remote_id() -> SessionId {
        SessionId::mint((SHARD + 1) % SHARDS, SHARDS).expect("mint")
    }

    fn sorted<'a>(it: impl Iterator<Item = (&'a SessionId, &'a u32)>) -> Vec<(SessionId, u32)> {
        let mut v: Vec<_> = it.map(|(id, s)| (*id, *s)).collect();
        v.sort();
        v
    }

    #[test]
    fn topic_key_joins_with_nul() {
        assert_eq!(topic_key("fs", "file:///a"), "fs\0file:///a");
        assert_ne!(topic_key("a", "b\0c"), topic_key("a\0b", "d"));
    }

    #[test]
    fn new_is_empty() {
        let p = part();
        assert_eq!(p.shard(), SHARD);
        assert_eq!(p.shards(), SHARDS);
        assert_eq!(p.limits(), limits());
        assert_eq!(p.len(), 0);
        assert!(p.is_empty());
        assert_eq!(p.subscription_count(), 0);
        assert_eq!(p.topic_count(), 0);
        assert_eq!(p.server_count(), 0);
        assert!(format!("{p:?}").contains("Partition"));
        p.assert_invariants();
    }

    #[test]
    fn register_lookup_server_of() {
        let mut p = part();
        let a = local_id();
        p.register(a, "fs", 1).expect("register");
        assert_eq!(p.lookup(&a), Some(&1));
        assert_eq!(p.server_of(&a), Some("fs"));
        assert_eq!(p.len(), 1);
        assert!(!p.is_empty());
        assert_eq!(p.server_count(), 1);
        let unknown = local_id();
        assert_eq!(p.lookup(&unknown), None);
        assert_eq!(p.server_of(&unknown), None);
        assert_eq!(sorted(p.sessions()), vec![(a, 1)]);
        p.assert_invariants();
    }

    #[test]
    fn register_wrong_shard() {
        let mut p = part();
        let r = remote_id();
        assert_eq!(
            p.register(r, "fs", 1),
            Err(RegistryError::WrongShard {
                expected: r.shard(SHARDS),
                actual: SHARD
            })
        );
        assert!(p.is_empty());
        assert_eq!(p.server_count(), 0);
        p.assert_invariants();
    }

    #[test]
    fn register_duplicate() {
        let mut p = part();
        let a = local_id();
        p.register(a, "fs", 1).expect("register");
        assert_eq!(p.register(a, "git", 2), Err(RegistryError::Duplicate));
        assert_eq!(p.lookup(&a), Some(&1));
        assert_eq!(p.server_of(&a), Some("fs"));
        assert_eq!(p.server_count(), 1);
        p.assert_invariants();
    }

    #[test]
    fn register_full() {
        let mut p = part();
        for i in 0..8 {
            p.register(local_id(), "fs", i).expect("register");
        }
        assert_eq!(
            p.register(local_id(), "fs", 99),
            Err(RegistryError::Full { limit: 8 })
        );
        assert_eq!(p.len(), 8);
        p.assert_invariants();
        // A duplicate of a registered id is reported as such even when full.
        let (&existing, _) = p.sessions().next().expect("one session");
        assert_eq!(p.register(existing, "fs", 0), Err(RegistryError::Duplicate));
        // Space frees up on remove.
        p.remove(&existing).expect("remove");
        p.register(local_id(), "fs", 100)
            .expect("register after remove");
        p.assert_invariants();
    }

    #[test]
    fn zero_session_limit_refuses_everything() {
        let mut p: Partition<u32> = Partition::new(
            0,
            1,
            PartitionLimits {
                sessions_max: 0,
                subscriptions_per_session_max: 0,
                topics_max: 0,
            },
        );
        let id = SessionId::mint(0, 1).expect("mint");
        assert_eq!(
            p.register(id, "fs", 1),
            Err(RegistryError::Full { limit: 0 })
        );
    }

    #[test]
    fn remove_returns_sink_and_cleans_up() {
        let mut p = part();
        let a = local_id();
        let b = local_id();
        p.register(a, "fs", 1).expect("register");
        p.register(b, "fs", 2).expect("register");
        assert!(p.subscribe(&a, "t1").expect("subscribe"));
        assert!(p.subscribe(&a, "t2").expect("subscribe"));
        assert!(p.subscribe(&b, "t2").expect("subscribe"));
        assert_eq!(p.subscription_count(), 3);
        assert_eq!(p.topic_count(), 2);

        assert_eq!(p.remove(&a), Some(1));
        p.assert_invariants();
        assert_eq!(p.lookup(&a), None);
        assert_eq!(p.server_of(&a), None);
        assert_eq!(p.subscription_count(), 1);
        // t1 had only `a`: its set must be gone, not left empty.
        assert_eq!(p.topic_count(), 1);
        assert_eq!(p.subscribers("t1").count(), 0);
        assert_eq!(sorted(p.subscribers("t2")), vec![(b, 2)]);
        assert_eq!(sorted(p.sessions_of_server("fs")), vec![(b, 2)]);
        assert_eq!(p.server_count(), 1);

        assert_eq!(p.remove(&b), Some(2));
        p.assert_invariants();
        assert!(p.is_empty());
        assert_eq!(p.subscription_count(), 0);
        assert_eq!(p.topic_count(), 0);
        assert_eq!(p.server_count(), 0);
        assert_eq!(p.sessions_of_server("fs").count(), 0);

        assert_eq!(p.remove(&a), None);
        assert_eq!(p.remove(&remote_id()), None);
    }

    #[test]
    fn subscribe_and_unsubscribe() {
        let mut p = part();
        let a = local_id();
        p.register(a, "fs", 1).expect("register");
        assert_eq!(p.subscribe(&a, "t"), Ok(true));
        assert_eq!(p.subscribe(&a, "t"), Ok(false));
        assert!(p.is_subscribed(&a, "t"));
        assert_eq!(p.subscription_count(), 1);
        assert_eq!(sorted(p.subscribers("t")), vec![(a, 1)]);
        p.assert_invariants();

        assert!(p.unsubscribe(&a, "t"));
        assert!(!p.unsubscribe(&a, "t"));
        assert!(!p.is_subscribed(&a, "t"));
        assert_eq!(p.subscription_count(), 0);
        assert_eq!(p.topic_count(), 0);
        assert_eq!(p.subscribers("t").count(), 0);
        p.assert_invariants();

        assert!(!p.unsubscribe(&local_id(), "t"));
        assert!(!p.unsubscribe(&a, "never"));
    }

    #[test]
    fn subscribe_unknown_session() {
        let mut p = part();
        assert_eq!(
            p.subscribe(&local_id(), "t"),
            Err(RegistryError::UnknownSession)
        );
        assert_eq!(
            p.subscribe(&remote_id(), "t"),
            Err(RegistryError::UnknownSession)
        );
        assert_eq!(p.topic_count(), 0);
        p.assert_invariants();
    }

    #[test]
    fn subscribe_too_many_subscriptions() {
        let mut p = part();
        let a = local_id();
        p.register(a, "fs", 1).expect("register");
        for t in ["t0", "t1", "t2"] {
            assert_eq!(p.subscribe(&a, t), Ok(true));
        }
        assert_eq!(
            p.subscribe(&a, "t3"),
            Err(RegistryError::TooManySubscriptions { limit: 3 })
        );
        // Re-subscribing to an existing topic is not a new subscription.
        assert_eq!(p.subscribe(&a, "t0"), Ok(false));
        assert_eq!(p.topic_count(), 3);
        p.assert_invariants();
    }

    #[test]
    fn subscribe_too_many_topics() {
        let mut p = part();
        let a = local_id();
        let b = local_id();
        let c = local_id();
        for (id, sink) in [(a, 1), (b, 2), (c, 3)] {
            p.register(id, "fs", sink).expect("register");
        }
        for t in ["t0", "t1", "t2"] {
            p.subscribe(&a, t).expect("subscribe");
        }
        for t in ["t3", "t4"] {
            p.subscribe(&b, t).expect("subscribe");
        }
        assert_eq!(p.topic_count(), 5);
        assert_eq!(
            p.subscribe(&c, "t5"),
            Err(RegistryError::TooManyTopics { limit: 5 })
        );
        // An existing topic can still gain subscribers.
        assert_eq!(p.subscribe(&c, "t0"), Ok(true));
        assert_eq!(sorted(p.subscribers("t0")), {
            let mut v = vec![(a, 1), (c, 3)];
            v.sort();
            v
        });
        p.assert_invariants();
        // Freeing a topic makes room for a new one.
        assert!(p.unsubscribe(&b, "t4"));
        assert_eq!(p.subscribe(&c, "t5"), Ok(true));
        p.assert_invariants();
    }

    #[test]
    fn sessions_of_server_uses_binding() {
        let mut p = part();
        let a = local_id();
        let b = local_id();
        let c = local_id();
        p.register(a, "fs", 1).expect("register");
        p.register(b, "git", 2).expect("register");
        p.register(c, "fs", 3).expect("register");
        assert_eq!(p.server_count(), 2);
        let mut want = vec![(a, 1), (c, 3)];
        want.sort();
        assert_eq!(sorted(p.sessions_of_server("fs")), want);
        assert_eq!(sorted(p.sessions_of_server("git")), vec![(b, 2)]);
        assert_eq!(p.sessions_of_server("none").count(), 0);
        assert_eq!(p.server_of(&b), Some("git"));
        p.remove(&b);
        assert_eq!(p.server_count(), 1);
        assert_eq!(p.sessions_of_server("git").count(), 0);
        p.assert_invariants();
    }

    #[test]
    fn route_local_remote_unknown() {
        let mut p = part();
        let a = local_id();
        p.register(a, "fs", 7).expect("register");
        assert_eq!(p.route(&a), Route::Local(&7));
        let r = remote_id();
        assert_eq!(p.route(&r), Route::Remote(r.shard(SHARDS)));
        assert_ne!(r.shard(SHARDS), SHARD);
        assert_eq!(p.route(&local_id()), Route::Unknown);
        p.remove(&a);
        assert_eq!(p.route(&a), Route::Unknown);
        let copy = p.route(&r);
        assert_eq!(format!("{copy:?}"), format!("Remote({})", r.shard(SHARDS)));
    }

    #[test]
    fn works_with_rc_refcell_sinks() {
        type Sink = Rc<RefCell<Vec<Vec<u8>>>>;
        let mut p: Partition<Sink> = Partition::new(0, 1, limits());
        let a = SessionId::mint(0, 1).expect("mint");
        let sink: Sink = Rc::default();
        p.register(a, "fs", Rc::clone(&sink)).expect("register");
        p.subscribe(&a, &topic_key("fs", "file:///x"))
            .expect("subscribe");
        for (_, s) in p.subscribers(&topic_key("fs", "file:///x")) {
            s.borrow_mut().push(b"hello".to_vec());
        }
        assert_eq!(&*sink.borrow(), &[b"hello".to_vec()]);
        let back = p.remove(&a).expect("remove");
        assert!(Rc::ptr_eq(&back, &sink));
    }

    #[test]
    fn churn_keeps_invariants() {
        let mut p: Partition<u32> = Partition::new(
            1,
            3,
            PartitionLimits {
                sessions_max: 50,
                subscriptions_per_session_max: 4,
                topics_max: 10,
            },
        );
        let mut live = Vec::new();
        let mut step = 0u32;
        for round in 0..400u32 {
            step = step.wrapping_mul(1_103_515_245).wrapping_add(12_345);
            let pick = (step >> 16) as usize;
            match pick % 4 {
                0 | 1 => {
                    let id = SessionId::mint(1, 3).expect("mint");
                    let server = ["a", "b", "c"][pick % 3];
                    if p.register(id, server, round).is_ok() {
                        live.push(id);
                    }
                }
                2 if !live.is_empty() => {
                    let id = live[pick % live.len()];
                    let _ = p.subscribe(&id, &format!("t{}", pick % 12));
                }
                3 if !live.is_empty() => {
                    let id = live.swap_remove(pick % live.len());
                    assert!(p.remove(&id).is_some());
                }
                _ => {}
            }
            p.assert_invariants();
        }
        for id in live.drain(..) {
            p.remove(&id);
        }
        p.assert_invariants();
        assert!(p.is_empty());
        assert_eq!(p.topic_count(), 0);
        assert_eq!(p.server_count(), 0);
        assert_eq!(p.subscription_count(), 0);
    }

    #[test]
    fn error_messages() {
        assert_eq!(
            RegistryError::WrongShard {
                expected: 1,
                actual: 2
            }
            .to_string(),
            "session routes to shard 1, but this is shard 2"
        );
        assert!(RegistryError::Full { limit: 4 }.to_string().contains('4'));
    }
}
