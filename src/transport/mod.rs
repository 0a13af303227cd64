//! Transports around the sans-I/O core: newline-delimited JSON-RPC over TCP and stdio. Both
//! share the line framing ([`lines`]) and the per-connection glue ([`conn`]).

pub mod conn;
pub mod lines;
pub mod stdio;
pub mod tcp;
