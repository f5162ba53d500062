#!/usr/bin/env bash
# A three-node RabbitMQ cluster on this machine, for failover tests: each node has its own
# node name, AMQP and distribution ports, and its data under one temporary directory; the
# nodes run as the current user with an Erlang cookie of their own (HOME points there), so
# the machine's own broker is left alone.
#
#   scripts/rabbitmq-cluster.sh start [PORT1 PORT2 PORT3]  start and cluster the nodes (free
#                                                          ports unless given); prints AMQP_URL
#   scripts/rabbitmq-cluster.sh urls                       print AMQP_URL again
#   scripts/rabbitmq-cluster.sh stop-node N [--kill]       stop node N (1-3) gracefully, or kill -9
#   scripts/rabbitmq-cluster.sh start-node N               start node N again (it rejoins)
#   scripts/rabbitmq-cluster.sh status                     nodes, and quorum queue members online
#   scripts/rabbitmq-cluster.sh queues-online              every quorum queue with its online members
#   scripts/rabbitmq-cluster.sh down                       stop every node and remove the data
#
# Environment: RABBITMQ_CLUSTER_DIR (default /tmp/hub-rabbitmq-cluster) holds the state, so
# several clusters can run side by side with different directories; RABBITMQ_CLUSTER_NAME
# (default hubcluster) prefixes the node names; RABBITMQ_BIN (default /usr/lib/rabbitmq/bin,
# Debian's package; it runs as the current user, unlike the /usr/sbin wrappers).
set -euo pipefail

DIR=${RABBITMQ_CLUSTER_DIR:-/tmp/hub-rabbitmq-cluster}
NAME=${RABBITMQ_CLUSTER_NAME:-hubcluster}
BIN=${RABBITMQ_BIN:-/usr/lib/rabbitmq/bin}
NODES=3
START_TIMEOUT=${RABBITMQ_START_TIMEOUT:-120}

die() { echo "rabbitmq-cluster: $*" >&2; exit 1; }
say() { echo "rabbitmq-cluster: $*" >&2; }

[ -x "$BIN/rabbitmq-server" ] || die "no $BIN/rabbitmq-server: install rabbitmq-server (apt-get install rabbitmq-server) or set RABBITMQ_BIN"

node_name() { echo "${NAME}$1@localhost"; }

# The CLI tools, talking to node $1 with the cluster's cookie.
ctl() { local n=$1; shift; HOME="$DIR" "$BIN/rabbitmqctl" -q -n "$(node_name "$n")" "$@"; }

# Nothing listens on it (a socket left in TIME-WAIT by a stopped node does not count).
port_free() { [ -z "$(ss -Htln "( sport = :$1 )" 2>/dev/null)" ]; }

# Sets PICKED to a free loopback port below the ephemeral range, not picked before ($TAKEN).
TAKEN=" "
pick_port() {
    local p
    for _ in $(seq 1 200); do
        p=$((21000 + RANDOM % 10000))
        case "$TAKEN" in *" $p "*) continue ;; esac
        if port_free "$p"; then TAKEN="$TAKEN$p "; PICKED=$p; return; fi
    done
    die "no free port found"
}

load_state() {
    [ -f "$DIR/cluster.env" ] || die "no cluster in $DIR: run '$0 start' first"
    # shellcheck source=/dev/null
    . "$DIR/cluster.env"
}

amqp_port() { local v="PORT$1"; echo "${!v}"; }
dist_port() { local v="DIST$1"; echo "${!v}"; }

urls() {
    local out="" n
    for n in $(seq 1 $NODES); do
        out="${out:+$out,}amqp://guest:guest@127.0.0.1:$(amqp_port "$n")/%2f"
    done
    echo "$out"
}

pid_of() { cat "$DIR/n$1/pid" 2>/dev/null || true; }
running() { local pid; pid=$(pid_of "$1"); [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; }

check_node() { [[ "$1" =~ ^[1-3]$ ]] || die "node number must be 1, 2 or 3 (got '$1')"; }

# Starts node $1's VM in the background and waits until its AMQP listener is up.
boot() {
    local n=$1 d="$DIR/n$1" port dist
    port=$(amqp_port "$n"); dist=$(dist_port "$n")
    running "$n" && die "node $n is already running (pid $(pid_of "$n"))"
    port_free "$port" || die "AMQP port $port of node $n is taken by another process"
    port_free "$dist" || die "distribution port $dist of node $n is taken by another process"
    mkdir -p "$d/mnesia" "$d/log"
    rm -f "$d/pid"
    (
        RABBITMQ_NODENAME=$(node_name "$n")
        export HOME="$DIR" RABBITMQ_NODENAME RABBITMQ_NODE_PORT="$port" \
            RABBITMQ_DIST_PORT="$dist" RABBITMQ_MNESIA_BASE="$d/mnesia" RABBITMQ_LOG_BASE="$d/log" \
            RABBITMQ_ENABLED_PLUGINS_FILE="$DIR/enabled_plugins" \
            RABBITMQ_CONFIG_FILE="$d/rabbitmq.conf" RABBITMQ_PID_FILE="$d/pid"
        cd "$d"
        setsid "$BIN/rabbitmq-server" >>"$d/server.out" 2>&1 </dev/null &
    )
    local deadline=$((SECONDS + START_TIMEOUT))
    until [ -s "$d/pid" ] && ctl "$n" await_startup --timeout 5 >/dev/null 2>&1; do
        if [ $SECONDS -ge $deadline ]; then
            tail -n 30 "$d/server.out" >&2 || true
            die "node $n did not start within ${START_TIMEOUT}s (log: $d/server.out, $d/log)"
        fi
        sleep 1
    done
    say "node $n ($(node_name "$n")) up on AMQP port $port"
}

cmd_start() {
    [ ! -f "$DIR/cluster.env" ] || die "a cluster is already set up in $DIR: '$0 down' first"
    [ $# -eq 0 ] || [ $# -eq $NODES ] || die "give no port or one AMQP port per node ($NODES)"
    local n
    for n in $(seq 1 $NODES); do
        if running "$n" 2>/dev/null; then die "node $n of $DIR still runs"; fi
    done
    mkdir -p "$DIR"
    chmod 700 "$DIR"
    # A cookie of the cluster's own: the nodes and the CLI read $HOME/.erlang.cookie.
    head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$DIR/.erlang.cookie"
    chmod 400 "$DIR/.erlang.cookie"
    echo "[]." >"$DIR/enabled_plugins"
    local state="" p
    for n in $(seq 1 $NODES); do
        p=${!n:-}
        if [ -n "$p" ]; then
            [[ "$p" =~ ^[0-9]+$ ]] || die "port '$p' is not a number"
            port_free "$p" || die "port $p is taken"
            TAKEN="$TAKEN$p "
        else
            pick_port
            p=$PICKED
        fi
        pick_port
        state="${state}PORT$n=$p"$'\n'"DIST$n=$PICKED"$'\n'
    done
    printf '%s' "$state" >"$DIR/cluster.env.new"
    mv "$DIR/cluster.env.new" "$DIR/cluster.env"
    load_state
    for n in $(seq 1 $NODES); do
        mkdir -p "$DIR/n$n"
        cat >"$DIR/n$n/rabbitmq.conf" <<EOF
listeners.tcp.default = 127.0.0.1:$(amqp_port "$n")
loopback_users = none
# Three nodes: the side with fewer nodes pauses rather than serving a split brain.
cluster_partition_handling = pause_minority
EOF
    done
    for n in $(seq 1 $NODES); do boot "$n"; done
    for n in $(seq 2 $NODES); do
        # join_cluster logs harmless errors about the stopped app; show them only on failure.
        local out
        out=$({ ctl "$n" stop_app && ctl "$n" join_cluster "$(node_name 1)" && ctl "$n" start_app; } 2>&1) \
            || die "node $n could not join node 1: $out"
        say "node $n joined $(node_name 1)"
    done
    local members
    members=$(ctl 1 eval 'length(rabbit_nodes:all_running()).')
    [ "$members" = "$NODES" ] || die "the cluster has $members running nodes, not $NODES"
    say "cluster of $NODES nodes up; data in $DIR"
    echo "AMQP_URL=$(urls)"
}

cmd_stop_node() {
    local n=${1:-} mode=${2:-}
    check_node "$n"
    load_state
    running "$n" || die "node $n is not running"
    local pid
    pid=$(pid_of "$n")
    if [ "$mode" = "--kill" ]; then
        kill -KILL "$pid"
    else
        # Graceful: the node closes its clients' connections and hands its queue leaders over.
        ctl "$n" stop >/dev/null || kill -TERM "$pid"
    fi
    local deadline=$((SECONDS + 60))
    while kill -0 "$pid" 2>/dev/null; do
        [ $SECONDS -lt $deadline ] || { kill -KILL "$pid" 2>/dev/null || true; break; }
        sleep 0.2
    done
    say "node $n stopped${mode:+ ($mode)}"
}

cmd_start_node() {
    local n=${1:-}
    check_node "$n"
    load_state
    boot "$n"
}

# One running node to ask.
any_running() {
    local n
    for n in $(seq 1 $NODES); do
        if running "$n"; then echo "$n"; return; fi
    done
    die "no node is running"
}

# name<TAB>members<TAB>online members, one line per quorum queue (counts).
cmd_queues_online() {
    load_state
    local n
    n=$(any_running)
    ctl "$n" list_queues name type members online --no-table-headers |
        awk -F'\t' '$2 == "quorum" { m = gsub(/@/, "@", $3); o = gsub(/@/, "@", $4); print $1 "\t" m "\t" o }'
}

cmd_status() {
    load_state
    local n
    for n in $(seq 1 $NODES); do
        if running "$n"; then
            echo "node $n $(node_name "$n") AMQP 127.0.0.1:$(amqp_port "$n") running (pid $(pid_of "$n"))"
        else
            echo "node $n $(node_name "$n") AMQP 127.0.0.1:$(amqp_port "$n") stopped"
        fi
    done
    n=$(any_running)
    echo "running nodes (as node $n sees them): $(ctl "$n" eval 'rabbit_nodes:all_running().')"
    local lines total full
    lines=$(cmd_queues_online)
    total=$(printf '%s\n' "$lines" | grep -c . || true)
    full=$(printf '%s\n' "$lines" | awk -F'\t' -v n=$NODES 'NF==3 && $3==n' | grep -c . || true)
    echo "quorum queues: $total, with all $NODES members online: $full"
    echo "AMQP_URL=$(urls)"
}

cmd_down() {
    if [ ! -f "$DIR/cluster.env" ] && [ ! -d "$DIR" ]; then
        say "nothing to take down in $DIR"
        return
    fi
    local n pid
    for n in $(seq 1 $NODES); do
        pid=$(pid_of "$n")
        if [ -z "$pid" ] || ! kill -0 "$pid" 2>/dev/null; then continue; fi
        # No graceful stop: the data goes anyway, and a node waiting for its peers would stall.
        kill -KILL "$pid" 2>/dev/null || true
        while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
    done
    # The script wrapper may outlive the VM for a moment; nothing else of ours is left.
    rm -rf "$DIR"
    say "cluster stopped and $DIR removed"
}

case "${1:-}" in
start) shift; cmd_start "$@" ;;
urls) load_state; echo "AMQP_URL=$(urls)" ;;
stop-node) shift; cmd_stop_node "$@" ;;
start-node) shift; cmd_start_node "$@" ;;
status) cmd_status ;;
queues-online) cmd_queues_online ;;
down) cmd_down ;;
*)
    awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"
    [ -n "${1:-}" ] && [ "$1" != "-h" ] && [ "$1" != "--help" ] && exit 2
    exit 0
    ;;
esac
