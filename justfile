# ringmcp tasks. Install just with: cargo install just --locked

conformance_version := "0.1.16"

# Start the server on its defaults (demo server, 127.0.0.1:7070, one shard per core).
run *ARGS:
    cargo run --release -- serve {{ARGS}}

# The whole test suite against the release binary (what .ci/run runs, after fmt and clippy).
test:
    cargo test --workspace --release

# Formatting and lints, as CI checks them.
lint:
    cargo fmt --all -- --check
    cargo clippy --all-targets -- -D warnings

# Everything CI runs.
ci:
    bash .ci/run

# The benchmark scenarios against ringmcp (load generator: crate bench/, docs/benchmarks.md).
bench *ARGS:
    cargo run --release -p ringmcp-bench --bin ringmcp-load -- {{ARGS}}

# The same scenarios against the peer servers (rmcp, Python and TypeScript SDKs), side by side.
bench-peers *ARGS:
    cargo run --release -p ringmcp-bench --bin ringmcp-load -- peers {{ARGS}}

# Needs Node 22 and npx, and a running server (e.g. `just run`). For revision 2026-07-28:
#   just conformance_version=0.2.0-alpha.12 conformance URL --requirements 2026-07-28
# The test suite runs both pinned versions itself: cargo test --release --test conformance
#
# The official MCP conformance suite against a server's Streamable HTTP endpoint.
conformance URL="http://127.0.0.1:8080/mcp/conformance" *ARGS:
    npx --yes @modelcontextprotocol/conformance@{{conformance_version}} server --url {{URL}} {{ARGS}}

# Prints every check with its fix, then what vm-tuning/apply.sh would change (a dry run).
#
# Can this host hold N connections? Fails when it cannot.
tune-check CONNECTIONS="100000":
    #!/usr/bin/env bash
    set -uo pipefail
    cargo run --release --quiet -- check-host --connections {{CONNECTIONS}}
    status=$?
    echo
    bash vm-tuning/apply.sh || exit $?
    exit $status

# Apply vm-tuning/ sysctls and limits (raises values, never lowers them); uses sudo unless root.
tune-apply:
    if [ "$(id -u)" = 0 ]; then bash vm-tuning/apply.sh --apply; else sudo bash vm-tuning/apply.sh --apply; fi
