//! Transports around the sans-I/O core: Streamable HTTP (and legacy HTTP+SSE),
//! newline-delimited JSON-RPC over TCP, and stdio. TCP and stdio share the line framing ([`lines`]) and the per-connection glue ([`conn`]).

pub mod conn;
pub mod http;
pub mod lines;
pub mod stdio;
pub mod tcp;
