# spampot's everyday commands. `just --list` shows them.

# The sensor's plugins, built without WASI (wasm32-unknown-unknown) and made
# components by tools/componentize: each WASI import costs every session's
# instantiation (docs/performance.md). They read the time through the SDK.
sensor_plugins := "-p spampot-plugin-smtp -p spampot-plugin-http-proxy -p spampot-plugin-socks -p spampot-plugin-mydoom -p spampot-plugin-sobig"
# Built for wasm32-wasip2, as a plugin author would: the example, and the test
# guest (misbehave, never installed) that checks WASI is sealed.
wasip2_crates := "-p spampot-example-telnet -p spampot-guest-misbehave"
wasip2_out := "target/wasm32-wasip2/wasm"
core_out := "target/wasm32-unknown-unknown/wasm"

# Build everything, then run the sensor with every plugin and the dashboard.
default: run

# Add the wasm targets (rustup does not install them on its own here).
setup:
    rustup target add wasm32-wasip2 wasm32-unknown-unknown

# Build every plugin as a component and install it where spampot.toml looks.
plugins: setup
    # A second version of the test guest, for the hot-swap tests.
    MISBEHAVE_VERSION=2.0.0 cargo build --target wasm32-wasip2 --profile wasm -p spampot-guest-misbehave
    mkdir -p target/test-plugins
    cp {{ wasip2_out }}/misbehave.wasm target/test-plugins/misbehave-v2.wasm
    cargo build --target wasm32-wasip2 --profile wasm {{ wasip2_crates }}
    cargo build --target wasm32-unknown-unknown --profile wasm {{ sensor_plugins }}
    cargo build -p spampot-componentize
    mkdir -p target/plugins
    # Only the example from the wasip2 builds: an older wasip2 build of a
    # sensor plugin may still lie there.
    cp {{ wasip2_out }}/telnet.wasm target/plugins/telnet.wasm
    for p in {{ core_out }}/*.wasm; do n=$(basename "$p" .wasm | tr _ -); ./target/debug/spampot-componentize "$p" "target/plugins/$n.wasm"; done

# Build the host (release) and every plugin.
build: plugins
    cargo build --release -p spampot

# Run the sensor on the seed's ports + 10000 (unprivileged); dashboard on http://127.0.0.1:8025/
run offset="10000": build
    ./target/release/spampot run --config spampot.toml --port-offset {{ offset }}

# Run the sensor on the real ports (needs root or CAP_NET_BIND_SERVICE).
run-privileged: build
    ./target/release/spampot run --config spampot.toml

# Every test: SDK and plugins natively, the host, black-box over loopback.
test: plugins
    cargo test --workspace

# A long fuzz campaign by hand (the tests run 400 cases a plugin, 150
# through the components): every fuzz test with `cases` cases and `seed`.
fuzz cases="100000" seed="1": plugins
    SPAMPOT_FUZZ_CASES={{ cases }} SPAMPOT_FUZZ_SEED={{ seed }} cargo test --release --workspace -- mutated damaged_journal
    SPAMPOT_FUZZ_CASES={{ cases }} SPAMPOT_FUZZ_SEED={{ seed }} cargo test --release -p spampot-blackbox --test fuzz

# Formatting and lints, as CI checks them.
lint:
    cargo fmt --all -- --check
    cargo clippy --workspace --all-targets -- -D warnings

# Benchmarks: print every figure with its target (installs Postfix's
# smtp-source/smtp-sink if missing; ends by itself in a few minutes).
bench: build
    command -v smtp-source >/dev/null || (echo 'postfix postfix/main_mailer_type select No configuration' | debconf-set-selections && apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postfix)
    cargo build --release -p spampot-loadgen -p spampot-bench
    ./target/release/spampot-bench all

# Criterion micro-benchmarks of the hot paths (a few minutes): LineBuffer,
# the SMTP DATA scan and a native SMTP transaction, the store's batched
# put_artifact. Extra arguments go to criterion, e.g. `just bench-micro --measurement-time 3`.
bench-micro *args:
    cargo bench -p spampot-sdk -p spampot-plugin-smtp -p spampot --bench line_buffer --bench data_scan --bench store_batch -- {{ args }}
