//! MCP, sans-I/O: revisions, the session state machine and the method dispatcher. One file
//! per method family under `methods/` (parse -> apply -> encode); adding a method touches one
//! file and the table in [`dispatch`].
//!
//! The dispatcher works on a [`SessionCore`](crate::server::SessionCore) and a request's
//! params; it does not care whether the session is a long-lived one (revisions up to
//! 2025-11-25) or a per-request one built from `_meta` (the stateless 2026-07-28 revision,
//! see [`meta`]). Under that revision server-to-client requests become `input_required`
//! results ([`input`]) whose `requestState` is sealed ([`request_state`]).

pub mod dispatch;
pub mod input;
pub mod meta;
pub mod methods;
pub mod request_state;
pub mod revision;
pub mod session;

pub use dispatch::{dispatch, Dispatched};
pub use revision::Revision;
pub use session::{Reply, Session};
