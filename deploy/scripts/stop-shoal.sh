#!/usr/bin/env bash
# Stop what start-shoal.sh started: workers first, then coordinators, each with SIGTERM (a
# clean stop), SIGKILL after $SHOAL_STOP_TIMEOUT seconds (default 30).
set -euo pipefail

SHOAL_HOME="${SHOAL_HOME:-$(cd "$(dirname "$0")/../.." && pwd)}"
SHOAL_CONF_DIR="${SHOAL_CONF_DIR:-$SHOAL_HOME/etc}"
SHOAL_PID_DIR="${SHOAL_PID_DIR:-/tmp}"
SHOAL_STOP_TIMEOUT="${SHOAL_STOP_TIMEOUT:-30}"
. "$(dirname "$0")/shoal-nodes.sh"

stop_node() {
    local role=$1 host=$2 index=$3
    local pid_file="$SHOAL_PID_DIR/shoal-$role-$host-$index.pid"
    on_host "$host" "
        [ -f '$pid_file' ] || { echo 'no $role $index on $host'; exit 0; }
        pid=\$(cat '$pid_file')
        if kill -TERM \"\$pid\" 2>/dev/null; then
            waited=0
            while kill -0 \"\$pid\" 2>/dev/null && [ \$waited -lt $((SHOAL_STOP_TIMEOUT * 10)) ]; do
                sleep 0.1; waited=\$((waited + 1))
            done
            kill -0 \"\$pid\" 2>/dev/null && kill -KILL \"\$pid\" && echo 'killed $role $index on $host'
        fi
        rm -f '$pid_file'
        echo 'stopped $role $index on $host'
    "
}

for role in worker coordinator; do
    file="$SHOAL_CONF_DIR/${role}s"
    index=0
    while read -r host _; do
        index=$((index + 1))
        stop_node "$role" "$host" "$index"
    done < <(nodes "$file")
done
