#!/usr/bin/env bash
# Start a Shoal cluster: a coordinator on every host of etc/coordinators, a worker on every
# host of etc/workers (one host per line, `localhost` when the file is missing). A line may
# name the node's etc directory after the host, for several nodes on one host:
#     localhost /opt/shoal/etc/coordinator-2
# Local nodes start directly, others through ssh (same paths on every host). Each node's pid
# goes to $SHOAL_PID_DIR (default /tmp), its output to $SHOAL_LOG_DIR (default $SHOAL_HOME/logs).
set -euo pipefail

SHOAL_HOME="${SHOAL_HOME:-$(cd "$(dirname "$0")/../.." && pwd)}"
SHOAL_CONF_DIR="${SHOAL_CONF_DIR:-$SHOAL_HOME/etc}"
SHOAL_PID_DIR="${SHOAL_PID_DIR:-/tmp}"
SHOAL_LOG_DIR="${SHOAL_LOG_DIR:-$SHOAL_HOME/logs}"
SHOAL_BIN="${SHOAL_BIN:-$SHOAL_HOME/bin/shoal}"
. "$(dirname "$0")/shoal-nodes.sh"

start_node() {
    local role=$1 host=$2 etc=$3 index=$4
    local pid_file="$SHOAL_PID_DIR/shoal-$role-$host-$index.pid"
    local log="$SHOAL_LOG_DIR/$role-$host-$index.log"
    if [ -f "$pid_file" ] && on_host "$host" "kill -0 \$(cat '$pid_file')" 2>/dev/null; then
        echo "$role $index on $host is running already (pid $(on_host "$host" "cat '$pid_file'"))"
        return 0
    fi
    on_host "$host" "mkdir -p '$SHOAL_PID_DIR' '$SHOAL_LOG_DIR' || exit 1
        nohup '$SHOAL_BIN' $role --etc '$etc' >>'$log' 2>&1 </dev/null &
        echo \$! > '$pid_file'"
    echo "started $role $index on $host (etc $etc, log $log)"
}

index=0
while read -r host etc; do
    index=$((index + 1))
    start_node coordinator "$host" "${etc:-$SHOAL_CONF_DIR}" "$index"
done < <(nodes "$SHOAL_CONF_DIR/coordinators")

index=0
while read -r host etc; do
    index=$((index + 1))
    start_node worker "$host" "${etc:-$SHOAL_CONF_DIR/worker}" "$index"
done < <(nodes "$SHOAL_CONF_DIR/workers")
