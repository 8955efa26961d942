#!/usr/bin/env bash
# Run every test of Shoal: the test command of README.md, and what CI runs after fmt and clippy.
set -euo pipefail
cd "$(dirname "$0")/.."

# Build outside the clone; a cold cache is fine, only slower.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/shoal/target}"
# A test run gains nothing from incremental compilation, which takes much disk.
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"

scripts/install-test-deps.sh

# The end-to-end tests and the benchmarks run the real binary.
echo "== build the shoal binary"
cargo build --quiet -p shoal --features failpoints

# The benchmarks must work: each runs once in its tiny smoke mode.
echo "== benchmark smoke runs"
timeout 600 cargo run --quiet -p shoal-bench --bin state-store -- --smoke
timeout 600 cargo run --quiet -p shoal-bench --bin tpch -- --smoke
timeout 600 cargo run --quiet -p shoal-bench --bin tpch -- --smoke --storage s3
timeout 600 cargo run --quiet -p shoal-bench --bin failover -- --smoke
timeout 600 cargo run --quiet -p shoal-bench --bin catalog -- --smoke
timeout 600 cargo run --quiet -p shoal-bench --bin results -- --smoke
timeout 600 cargo run --quiet -p shoal-bench --bin latency -- --smoke

echo "== tests"
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
set +e
timeout 3600 cargo test --workspace --no-fail-fast 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
set -e
# One closing line over every test binary.
awk '/^test result:/ {
        for (i = 2; i <= NF; i++) {
            if ($i ~ /^passed;?$/) passed += $(i - 1)
            if ($i ~ /^failed;?$/) failed += $(i - 1)
        }
    }
    END { printf "tests: %d passed, %d failed\n", passed, failed }' "$log"
exit "$status"
