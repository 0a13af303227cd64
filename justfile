# ringmcp tasks. Install just with: cargo install just --locked

# Start the server on its defaults (demo server, 127.0.0.1:7070, one shard per core).
run *ARGS:
    cargo run --release -- serve {{ARGS}}

# The whole test suite (what .ci/run runs, after fmt and clippy).
test:
    cargo test --workspace

# Formatting and lints, as CI checks them.
lint:
    cargo fmt --all -- --check
    cargo clippy --all-targets -- -D warnings

# Everything CI runs.
ci:
    bash .ci/run
