//! The `conformance` server: the fixture tools, resources and prompts that the official MCP
//! conformance suite (`@modelcontextprotocol/conformance`) expects.

use crate::server::{McpServer, ServerFactory};
use std::sync::Arc;

/// The factory.
pub fn factory() -> ServerFactory {
    Arc::new(|| McpServer::new("conformance", env!("CARGO_PKG_VERSION")))
}
