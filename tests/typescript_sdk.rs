//! `ringmcp serve` driven over Streamable HTTP (and the legacy HTTP+SSE transport) by the
//! official MCP TypeScript SDK client (npm `@modelcontextprotocol/sdk`, pinned with its
//! lockfile in tests/typescript/).
//!
//! The SDK is installed with `npm ci` into `target/ts-sdk` (next to the profile directory of
//! the ringmcp binary under test, never into the source tree) and reused while its marker
//! matches tests/typescript/package.json and package-lock.json. The client script
//! (tests/typescript/http_client.mjs, plain ES module, no build step) is copied there and run
//! with the system Node.js. The test never skips: without node, npm or access to the npm
//! registry it fails and says what to install.

mod common;

use common::external::{
    installed_version, npm_ci_dir, pinned_version, run_client_checks, system_node, write_atomic,
};
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

const PACKAGE_JSON: &str = include_str!("typescript/package.json");
const PACKAGE_LOCK: &str = include_str!("typescript/package-lock.json");
const SCRIPT: &str = include_str!("typescript/http_client.mjs");
const SDK: &str = "@modelcontextprotocol/sdk";
const RUN_LIMIT: Duration = Duration::from_secs(120);
/// One tool call per second per session, no burst: the second call in a row is refused.
const TOOL_RATE_ARGS: [&str; 4] = [
    "--set",
    "limits.tool_calls_per_session_per_s=1",
    "--set",
    "limits.tool_calls_per_session_burst=1",
];

fn ensure_sdk() -> PathBuf {
    let pinned = pinned_version(PACKAGE_JSON, SDK);
    npm_ci_dir("ts-sdk", PACKAGE_JSON, PACKAGE_LOCK, |dir| {
        installed_version(dir, SDK).as_deref() == Some(pinned.as_str())
    })
}

/// Also, against a second server with a tool call rate, a refused `tools/call` reaches the
/// SDK's caller as an `McpError` (-32005, `data.reason`, `data.retryAfterMs`) while the
/// session carries on.
#[test]
fn official_typescript_sdk_client_drives_streamable_http() {
    let (node, node_version) = system_node();
    let dir = ensure_sdk();
    // The script resolves the SDK from its own directory (ES modules ignore NODE_PATH).
    let script = dir.join("http_client.mjs");
    write_atomic(&script, SCRIPT);
    // Two shards: the SDK's connections reach both, so some requests are forwarded.
    let server = common::Server::start(2, &[]);
    let limited = common::Server::start(1, &TOOL_RATE_ARGS);
    let output = run_client_checks(
        Command::new(&node)
            .arg(&script)
            .current_dir(&dir)
            .env(
                "RINGMCP_HTTP_BASE",
                format!("http://127.0.0.1:{}", server.http_port),
            )
            .env(
                "RINGMCP_LIMITED_BASE",
                format!("http://127.0.0.1:{}", limited.http_port),
            ),
        "ts-sdk-http-client",
        RUN_LIMIT,
        &format!("the TypeScript SDK client (node {node_version})"),
    );
    eprintln!("node {node_version}: {}", output.trim_end());
}
