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
    cargo clippy --workspace --all-targets -- -D warnings

# Everything CI runs.
ci:
    bash .ci/run

# SCALE multiplies every duration: 0.5 keeps the whole run near 10 minutes on 2 cores (plus
# the build); 1 is the seed's durations. Raw JSON and .hgrm files land in OUT (docs/benchmarks.md).
#
# Scenarios against ringmcp (TCP, HTTP) + registry example -> docs/benchmarks/results.md and plots/.
bench SCALE="0.5" OUT="target/bench/results":
    #!/usr/bin/env bash
    set -euo pipefail
    cargo build --release -p ringmcp -p ringmcp-bench --bins
    load=target/release/ringmcp-load
    rm -rf "{{OUT}}"; mkdir -p "{{OUT}}/tcp" "{{OUT}}/http" docs/benchmarks
    cmds=()
    for transport in tcp http; do
        cmd="$load scenario all --transport $transport --scale {{SCALE}} --out-dir {{OUT}}/$transport --server-bin target/release/ringmcp -q"
        echo "+ $cmd"; cmds+=(--command "$cmd")
        $cmd
    done
    registry=()
    if [ -f shards/examples/registry_bench.rs ]; then
        cmd="cargo run --release -p ringmcp-shards --example registry_bench -- --json {{OUT}}/registry.json"
        echo "+ $cmd"; cmds+=(--command "$cmd")
        if $cmd; then registry=(--registry "{{OUT}}/registry.json"); else echo "registry_bench failed: left out of the report"; fi
    else
        echo "shards/examples/registry_bench.rs is not there yet: the registry figures are skipped"
    fi
    $load report --in "{{OUT}}/tcp" --in "{{OUT}}/http" --out docs/benchmarks/results.md "${registry[@]}" "${cmds[@]}"

# e.g. `just load scenario flood --transport http --scale 0.2` or `just load run tcp://127.0.0.1:7070`.
#
# One scenario (baseline, flood, flood-cap, bombing, saturate, sweep, hold, all) or any ringmcp-load command.
load *ARGS:
    cargo run --release -p ringmcp-bench --bin ringmcp-load -- {{ARGS}}

# Installs the Python and TypeScript SDK peers on first use (PyPI, npm) under target/bench/peers.
# A peer that cannot be installed or started is reported and left out.
#
# baseline, saturate 64, memory per idle session vs rmcp, Python, TypeScript SDKs -> docs/benchmarks/peers.md.
bench-peers SCALE="0.5" *ARGS:
    cargo build --release -p ringmcp -p ringmcp-bench --bins
    target/release/ringmcp-load peers --scale {{SCALE}} --server-bin target/release/ringmcp --out docs/benchmarks/peers.md -q {{ARGS}}

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
