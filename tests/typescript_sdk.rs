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
    describe, forget_log, installed_version, npm_ci_dir, pinned_version, run_log, run_logged,
    system_node, write_atomic,
};
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

const PACKAGE_JSON: &str = include_str!("typescript/package.json");
const PACKAGE_LOCK: &str = include_str!("typescript/package-lock.json");
const SCRIPT: &str = include_str!("typescript/http_client.mjs");
const SDK: &str = "@modelcontextprotocol/sdk";
const RUN_LIMIT: Duration = Duration::from_secs(120);

fn ensure_sdk() -> PathBuf {
    let pinned = pinned_version(PACKAGE_JSON, SDK);
    npm_ci_dir("ts-sdk", PACKAGE_JSON, PACKAGE_LOCK, |dir| {
        installed_version(dir, SDK).as_deref() == Some(pinned.as_str())
    })
}

#[test]
fn official_typescript_sdk_client_drives_streamable_http() {
    let (node, node_version) = system_node();
    let dir = ensure_sdk();
    // The script resolves the SDK from its own directory (ES modules ignore NODE_PATH).
    let script = dir.join("http_client.mjs");
    write_atomic(&script, SCRIPT);
    // Two shards: the SDK's connections reach both, so some requests are forwarded.
    let server = common::Server::start(2, &[]);
    let log = run_log("ts-sdk-http-client");
    let started = Instant::now();
    let (status, output) = run_logged(
        Command::new(&node).arg(&script).current_dir(&dir).env(
            "RINGMCP_HTTP_BASE",
            format!("http://127.0.0.1:{}", server.http_port),
        ),
        &log,
        RUN_LIMIT,
    )
    .unwrap_or_else(|e| panic!("could not run {node}: {e}"));
    assert!(
        status.is_some_and(|s| s.success()),
        "the TypeScript SDK client (node {node_version}) failed ({}) after {:.1}s; its output \
         (also in {}):\n{output}",
        describe(status),
        started.elapsed().as_secs_f64(),
        log.display()
    );
    assert!(
        output.contains("checks passed"),
        "the TypeScript SDK client exited 0 without reporting its checks:\n{output}"
    );
    forget_log(&log);
    eprintln!("node {node_version}: {}", output.trim_end());
}
