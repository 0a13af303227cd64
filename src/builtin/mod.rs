//! Built-in MCP servers: `demo` (the default) and `conformance` (the fixtures the official
//! conformance suite expects).

pub mod conformance;
pub mod demo;

use crate::server::ServerFactory;

/// The factory of a built-in server by name.
pub fn factory(name: &str) -> Option<ServerFactory> {
    match name {
        "demo" => Some(demo::factory()),
        "conformance" => Some(conformance::factory()),
        _ => None,
    }
}
