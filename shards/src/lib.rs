//! Sharding primitives for ringmcp: the per-core registry partition, the
//! routing function, cross-shard messages and the channel mesh.
//!
//! # Design
//!
//! ringmcp runs one glommio executor per core ("shard"). Each shard owns a
//! disjoint slice of the session registry, and nothing in a slice is shared
//! between threads, so there are no locks: shard-local state is plain `!Send`
//! data (`HashMap`, `Rc`, `RefCell`).
//!
//! * **Routing** ([`routing`]): [`shard_for`] maps a key to its owning shard
//!   with a fixed, platform-independent hash. It is the only authority on
//!   ownership.
//! * **Session ids** ([`session_id`]): [`SessionId::mint`] draws random ids
//!   until one routes to the minting shard, so any shard can find a session's
//!   owner from its id alone, with no shared directory.
//! * **Partition** ([`partition`]): [`Partition`] is one shard's registry
//!   slice (sessions, their sinks, server bindings and topic subscriptions),
//!   bounded by [`PartitionLimits`]. [`Partition::route`] says whether an id
//!   is local, remote (and where), or unknown.
//! * **Mesh** ([`mesh`]): [`Mesh`] is the bounded channel mesh between
//!   shards. Work on a remote session becomes a message ([`ShardMsg`]) sent
//!   to its owner; a full channel makes the sender wait (backpressure), it
//!   never drops or panics.
//!
//! The shard index everywhere is the mesh peer id ([`Mesh::shard`]), which
//! glommio assigns when executors join the mesh.
//!
//! This crate knows nothing of MCP or JSON: payloads are opaque bytes and
//! topics are opaque strings.

pub mod mesh;
pub mod partition;
pub mod routing;
pub mod session_id;

pub use mesh::{mesh_builder, Mesh, MeshError, ShardMsg, TrySendError};
pub use partition::{topic_key, Partition, PartitionLimits, RegistryError, Route};
pub use routing::shard_for;
pub use session_id::{MintError, ParseSessionIdError, SessionId};
