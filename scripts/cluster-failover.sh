#!/usr/bin/env bash
# Failover of a broker node under load: starts a three-node RabbitMQ cluster
# (scripts/rabbitmq-cluster.sh), runs `hub bench` against it with AMQP_URL naming the three
# nodes, and while the sagas run stops node 1 (the one every connection goes to first) for
# DOWN_SECONDS, then starts it again. Passes when the bench passes (it exits 1 on any failed
# saga or any effect done twice) and every quorum queue is back to three members online. The
# cluster is always taken down at the end.
#
# Settings (environment): SAGAS (1500, per type: enough for the bench to outlast the outage), CONCURRENCY (32), PROCESSES (2), TYPES (free,paid),
# RAW_OPERATIONS (1000), DOWN_SECONDS (20), STOP=graceful|kill (graceful: `rabbitmqctl stop`;
# kill: SIGKILL), DATABASE_URL (postgres://postgres@127.0.0.1:5432/hub), KEEP_WORK=1 keeps the
# work directory (bench output and hub logs) after a pass.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
CLUSTER="$ROOT/scripts/rabbitmq-cluster.sh"
SAGAS=${SAGAS:-1500}
CONCURRENCY=${CONCURRENCY:-32}
PROCESSES=${PROCESSES:-2}
TYPES=${TYPES:-free,paid}
RAW_OPERATIONS=${RAW_OPERATIONS:-1000}
DOWN_SECONDS=${DOWN_SECONDS:-20}
STOP=${STOP:-graceful}
export DATABASE_URL=${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/hub}
# The longest wait for the sagas to start, and for the queues to have every member back.
START_WAIT=${START_WAIT:-900}
MEMBERS_WAIT=${MEMBERS_WAIT:-180}

WORK=$(mktemp -d /tmp/hub-failover-XXXXXX)
export RABBITMQ_CLUSTER_DIR="$WORK/cluster"
export RABBITMQ_CLUSTER_NAME=${RABBITMQ_CLUSTER_NAME:-hubfailover}
BENCH_PID=""
PASSED=0

fail() { echo "cluster-failover: FAILED: $*" >&2; exit 1; }
say() { echo "cluster-failover: $(date +%T) $*" >&2; }

cleanup() {
    local rc=$?
    if [ -n "$BENCH_PID" ] && kill -0 "$BENCH_PID" 2>/dev/null; then
        say "stopping the bench (pid $BENCH_PID)"
        kill -TERM "$BENCH_PID" 2>/dev/null || true
        for _ in $(seq 1 100); do kill -0 "$BENCH_PID" 2>/dev/null || break; sleep 0.3; done
        kill -KILL "$BENCH_PID" 2>/dev/null || true
    fi
    if [ "$PASSED" != 1 ] || [ "${KEEP_WORK:-0}" = 1 ]; then
        # The nodes' own logs, before their directory goes.
        for d in "$RABBITMQ_CLUSTER_DIR"/n*; do
            [ -d "$d" ] && mkdir -p "$WORK/broker-logs/${d##*/}" && cp -r "$d"/log/. "$d"/server.out "$WORK/broker-logs/${d##*/}/" 2>/dev/null
        done
    fi
    "$CLUSTER" down >/dev/null 2>&1 || echo "cluster-failover: could not take the cluster down: run RABBITMQ_CLUSTER_DIR=$RABBITMQ_CLUSTER_DIR $CLUSTER down" >&2
    if [ "$PASSED" = 1 ] && [ "${KEEP_WORK:-0}" != 1 ]; then
        rm -rf "$WORK"
    else
        echo "cluster-failover: bench output and hub logs kept in $WORK" >&2
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

[ "$STOP" = graceful ] || [ "$STOP" = kill ] || fail "STOP must be graceful or kill"
psql "$DATABASE_URL" -Atqc 'SELECT 1' >/dev/null 2>&1 || psql "${DATABASE_URL%/*}/postgres" -Atqc 'SELECT 1' >/dev/null \
    || fail "PostgreSQL at ${DATABASE_URL%/*} does not answer"

say "building the hub (release)"
(cd "$ROOT" && cargo build --release -p hub --quiet) || fail "the hub does not build"
HUB="${CARGO_TARGET_DIR:-$ROOT/target}/release/hub"
[ -x "$HUB" ] || fail "no hub binary at $HUB"

say "starting the cluster"
AMQP_URL=$("$CLUSTER" start | sed -n 's/^AMQP_URL=//p')
[ -n "$AMQP_URL" ] || fail "the cluster did not start"
export AMQP_URL
say "AMQP_URL=$AMQP_URL"
# A namespace of the hub's queues that outlives the bench's (which it deletes when it ends), so
# the replication check below always has the hub's own declarations to look at. Declared while
# every node is up, with their leaders on node 1 (the node the hub goes to first).
HUB_NAMESPACE=failover-probe "$HUB" topology >/dev/null 2>"$WORK/probe.err" \
    || { cat "$WORK/probe.err" >&2; fail "the hub could not declare its topology on the cluster"; }

# The hub processes' logs go to the bench's temporary directory: keep it ours to read them.
mkdir -p "$WORK/tmp" "$WORK/logs"
say "running hub bench --sagas $SAGAS --concurrency $CONCURRENCY --processes $PROCESSES --types $TYPES"
TMPDIR="$WORK/tmp" "$HUB" bench --sagas "$SAGAS" --concurrency "$CONCURRENCY" \
    --processes "$PROCESSES" --types "$TYPES" --raw-operations "$RAW_OPERATIONS" \
    --phase-timeout 10m --json-out "$WORK/report.json" >"$WORK/bench.out" 2>"$WORK/bench.err" &
BENCH_PID=$!

# Hard links keep the hub processes' logs whole after the bench removes its own names for them.
keep_logs() {
    local f
    for f in "$WORK"/tmp/*-hub-*.log; do
        [ -e "$f" ] && [ ! -e "$WORK/logs/${f##*/}" ] && ln "$f" "$WORK/logs/" 2>/dev/null
    done
    return 0
}

sql() { psql "${DATABASE_URL%/*}/$1" -Atqc "$2" 2>/dev/null || true; }

# The sagas have started when the bench's database has a good part of the first type's.
say "waiting for the sagas to start"
THRESHOLD=$((SAGAS / 10 > 10 ? SAGAS / 10 : 10))
deadline=$((SECONDS + START_WAIT))
DB=""
while :; do
    kill -0 "$BENCH_PID" 2>/dev/null || { cat "$WORK/bench.err" >&2; fail "the bench ended before the node was stopped"; }
    [ $SECONDS -lt $deadline ] || fail "no sagas after ${START_WAIT}s"
    keep_logs
    [ -n "$DB" ] || DB=$(sql postgres "SELECT datname FROM pg_database WHERE datname LIKE 'hub\_bench\_%' ORDER BY oid DESC LIMIT 1")
    if [ -n "$DB" ]; then
        n=$(sql "$DB" "SELECT count(*) FROM sagas")
        [ "${n:-0}" -ge "$THRESHOLD" ] && break
    fi
    sleep 1
done
say "$n sagas in $DB; stopping node 1 ($STOP)"

t_stop=$(date +%s.%N)
if [ "$STOP" = kill ]; then "$CLUSTER" stop-node 1 --kill; else "$CLUSTER" stop-node 1; fi
t_stopped=$(date +%s.%N)
# The outage itself: a fixed length, not a wait for anything.
sleep "$DOWN_SECONDS"
at_restart=$(sql "$DB" "SELECT count(*) FILTER (WHERE terminal) || '/' || count(*) FROM sagas")
say "starting node 1 again (sagas ended/started meanwhile: $at_restart)"
"$CLUSTER" start-node 1
t_up=$(date +%s.%N)
keep_logs
kill -0 "$BENCH_PID" 2>/dev/null || fail "the bench ended before node 1 came back: give more SAGAS"

say "waiting for every quorum queue to have 3 members online"
deadline=$((SECONDS + MEMBERS_WAIT))
while :; do
    lines=$("$CLUSTER" queues-online)
    total=$(printf '%s\n' "$lines" | grep -c . || true)
    short=$(printf '%s\n' "$lines" | awk -F'\t' 'NF==3 && ($2!=3 || $3!=3)')
    if [ "$total" -gt 0 ] && [ -z "$short" ]; then break; fi
    [ $SECONDS -lt $deadline ] || fail "after ${MEMBERS_WAIT}s some quorum queues lack members (name, members, online):
$short"
    sleep 1
done
t_members=$(date +%s.%N)
still=$(kill -0 "$BENCH_PID" 2>/dev/null && echo "the bench still running" || echo "the bench over")
say "all $total quorum queues (the probe namespace's and the bench's) have 3 members online ($still)"

say "waiting for the bench to finish"
set +e
wait "$BENCH_PID"
bench_rc=$?
set -e
BENCH_PID=""
cat "$WORK/bench.out"

secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", b - a }'; }
echo
echo "== failover =="
echo "node 1 stop ($STOP) took:            $(secs "$t_stop" "$t_stopped") s"
echo "node 1 down (stopped -> answering):  $(secs "$t_stopped" "$t_up") s"
echo "queues fully replicated again after: $(secs "$t_up" "$t_members") s from node 1's return"
# Each hub connection: from the loss to the connection restored on another node.
if compgen -G "$WORK/logs/*.log" >/dev/null; then
    jq -rs '
        [ .[] | select(.message == "broker connection lost; reconnecting" or .message == "broker connection restored") ]
        | group_by(.connection)[]
        | . as $events
        | ($events | map(select(.message | startswith("broker connection lost"))) | first) as $lost
        | ($events | map(select(.message == "broker connection restored")) | first) as $back
        | select($lost != null and $back != null)
        | "hub connection \($lost.connection): lost \($lost.timestamp), restored on \($back.url) \($back.timestamp)"
    ' "$WORK"/logs/*.log 2>/dev/null | sort -u || true
    jq -rs '
        [ .[] | select(.message == "broker connection lost; reconnecting" or .message == "broker connection restored") ]
        | group_by(.connection)[]
        | (map(select(.message | startswith("broker connection lost"))) | first) as $lost
        | (map(select(.message == "broker connection restored")) | first) as $back
        | select($lost != null and $back != null)
        | ((($back.timestamp | sub("\\.[0-9]+"; "") | sub("\\+00:00$"; "Z") | fromdateiso8601) + ($back.timestamp | capture("\\.(?<f>[0-9]+)") | ("0." + .f) | tonumber))
           - (($lost.timestamp | sub("\\.[0-9]+"; "") | sub("\\+00:00$"; "Z") | fromdateiso8601) + ($lost.timestamp | capture("\\.(?<f>[0-9]+)") | ("0." + .f) | tonumber)))
    ' "$WORK"/logs/*.log 2>/dev/null | awk '{ n++; s += $1; if ($1 > m) m = $1 } END { if (n) printf "hub connections failed over: %d, longest %.2f s, mean %.2f s\n", n, m, s / n; else print "hub connections failed over: none seen in the logs" }'
else
    echo "no hub process log was kept"
fi

[ -s "$WORK/report.json" ] || fail "the bench wrote no report (exit $bench_rc); see $WORK/bench.err"
jq -r '.runs[] | "run with \(.processes) hub processes: " + ([.types[] | "\(.saga_type) \(.sagas) done, \(.failed) failed"] | join("; "))
    + "; duplicate effects: sms \(.effects.sms_duplicates), invoices \(.effects.invoice_duplicates), portal events \(.effects.portal_duplicates)"' "$WORK/report.json"
[ "$bench_rc" = 0 ] || { tail -n 20 "$WORK/bench.err" >&2; fail "the bench exited $bench_rc (failed sagas or duplicate effects; see above)"; }

PASSED=1
say "PASSED: every saga came to its end, no effect twice, node 1 back, every quorum queue has 3 members online"
