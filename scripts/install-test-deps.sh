#!/usr/bin/env bash
# Install the real programs the tests and benchmark smoke runs use, when they are missing.
set -euo pipefail

apt_updated=no
apt_install() {
    if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
        echo "warning: cannot install $* (needs root and apt-get)" >&2
        return 0
    fi
    if [ "$apt_updated" = no ]; then
        apt-get update -qq || echo "warning: apt-get update failed" >&2
        apt_updated=yes
    fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null \
        || echo "warning: could not install $*" >&2
}

# etcd: the state-store benchmark compares against a three-member etcd.
command -v etcd >/dev/null || apt_install etcd-server

# nginx: the sticky-proxy test runs real nginx in front of the coordinators.
command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || apt_install nginx

# iproute2: the partition tests run coordinators in network namespaces (`ip netns`).
command -v ip >/dev/null || apt_install iproute2

# Prometheus and promtool: a real Prometheus server scrapes the coordinators in a test.
command -v prometheus >/dev/null && command -v promtool >/dev/null || apt_install prometheus

# Chromium: the web page test loads the page in headless Chromium.
command -v chromium >/dev/null || apt_install chromium

# Python's trino client (and pytest) drive the client-protocol tests; its SQLAlchemy dialect
# and pandas are clients the tests use as users do; DuckDB is the result benchmark's peer.
if ! python3 -c "import trino, pytest, requests, sqlalchemy, pandas, zstandard, lz4, duckdb" 2>/dev/null; then
    python3 -m pip install --quiet --disable-pip-version-check "trino[sqlalchemy]" pytest requests pandas zstandard lz4 duckdb \
        || echo "warning: could not install the Python trino client, SQLAlchemy or pandas" >&2
fi

# kubectl renders the Kubernetes kustomizations, and kubernetes-validate (which ships the
# Kubernetes schemas, so it needs no cluster) checks every object they render.
command -v kubectl >/dev/null || apt_install kubernetes-client
if ! command -v kubernetes-validate >/dev/null; then
    python3 -m pip install --quiet --disable-pip-version-check kubernetes-validate \
        || echo "warning: could not install kubernetes-validate" >&2
fi

# s3s-fs: a real S3-compatible server (SigV4, conditional puts) the object-storage tests run
# against on loopback; a Rust program, so cargo installs it.
if ! command -v s3s-fs >/dev/null && [ ! -x "${CARGO_HOME:-$HOME/.cargo}/bin/s3s-fs" ]; then
    cargo install --quiet s3s-fs@0.14.1 --features binary \
        || echo "warning: could not install s3s-fs" >&2
fi

# dbt with the trino adapter: a test runs a dbt project (seeds, models, data tests) as a user
# would. dbt-core 1.11 and later download a wheel while they install, which fails offline.
if ! dbt --version 2>/dev/null | grep -q trino; then
    python3 -m pip install --quiet --disable-pip-version-check "dbt-core<1.11" "dbt-trino<1.11" \
        || echo "warning: could not install dbt-core and dbt-trino" >&2
fi
