#!/usr/bin/env bash
# The broker benchmark of BENCHMARKS.md in one command: raw baselines (dd
# with fdatasync, loopback TCP), then the same four workloads against Weir
# and tansu, all with `weir bench` (librdkafka), then Weir's start-up and
# memory with 1,000 partitions. Prints a markdown table at the end.
#
#   bench/run.sh                         # defaults below
#   MIB=256 BACKLOG_MIB=1024 LAT_SECS=15 bench/run.sh   # a quicker run
#
# Knobs (environment):
#   MIB          data per produce workload, MiB of 1 KiB records (1024)
#   BACKLOG_MIB  size of the catch-up backlog of workload 3 (5120)
#   LAT_SECS     length of the fixed-rate latency run of workload 4 (30)
#   REPS         repetitions of each workload; the table shows the median (3)
#   DIR          scratch directory on the disk under test (a new temp dir)
#   WEIR         the weir binary (built with `cargo build --release` if unset)
#   TANSU        the tansu binary (`tansu` on PATH or in ~/.cargo/bin); tansu
#                runs are skipped when it is missing
#   TANSU_ENGINES  storage engines to run tansu with ("null://tansu/ memory://tansu/")
#   BROKERS      which brokers to run ("weir tansu")
#   WORKLOADS    which workloads to run ("1 2 3 4"; 4 needs 1 for its rate)
#   STARTUP      1 to measure Weir's start-up and idle memory, 0 to skip (1)
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
tools="python3 $here/tools.py"

MIB=${MIB:-1024}
BACKLOG_MIB=${BACKLOG_MIB:-5120}
LAT_SECS=${LAT_SECS:-30}
REPS=${REPS:-3}
DIR=${DIR:-$(mktemp -d -t weir-bench.XXXXXX)}
BROKERS=${BROKERS:-"weir tansu"}
WORKLOADS=" ${WORKLOADS:-1 2 3 4} "
STARTUP=${STARTUP:-1}
TANSU_ENGINES=${TANSU_ENGINES:-"null://tansu/ memory://tansu/"}
if [[ -z "${TANSU:-}" ]]; then
    TANSU=$(command -v tansu || echo "$HOME/.cargo/bin/tansu")
fi
if [[ -z "${WEIR:-}" ]]; then
    (cd "$root" && cargo build --release -p weir >&2)
    WEIR="${CARGO_TARGET_DIR:-$root/target}/release/weir"
fi
OUT="$DIR/results"
mkdir -p "$OUT"
records=$((MIB * 1024))
backlog=$((BACKLOG_MIB * 1024))

log() { echo "== $*" >&2; }
want() { [[ "$WORKLOADS" == *" $1 "* ]]; }

pid=""
stop_broker() {
    if [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null; then
        kill -TERM "$pid"
        wait "$pid" || true
    fi
    pid=""
}
trap stop_broker EXIT

# Starts Weir on fresh ports with data in $1; sets pid, port, admin.
start_weir() {
    port=$($tools freeport)
    admin=$($tools freeport)
    WEIR_ADMIN_LISTEN=127.0.0.1:$admin WEIR_REGISTRY_LISTEN=127.0.0.1:0 WEIR_SQL_LISTEN=off \
        "$WEIR" serve --data-dir "$1" --listen "127.0.0.1:$port" \
        >>"$OUT/weir.log" 2>&1 &
    pid=$!
    $tools wait-http "http://127.0.0.1:$admin/health/ready" 60 >/dev/null
}

# Starts tansu with storage engine $1; sets pid, port.
start_tansu() {
    port=$($tools freeport)
    "$TANSU" broker \
        --listener-url "tcp://127.0.0.1:$port" \
        --advertised-listener-url "tcp://127.0.0.1:$port" \
        --storage-engine "$1" \
        >>"$OUT/tansu.log" 2>&1 &
    pid=$!
    $tools wait-port "$port" 60 >/dev/null
}

# A failed run (delivery errors, records never read back) still prints its
# JSON, which the table shows; the benchmark goes on.
bench() {
    "$WEIR" bench "$@" --bootstrap "127.0.0.1:$port" --json || log "(that run reported errors)"
}

# The four workloads against the broker on $port; $1 names the broker,
# $2 = "ceiling" runs only the produce workloads (a discarding broker).
workloads() {
    local name=$1 kind=${2:-full} r
    for r in $(seq 1 "$REPS"); do
        if want 1; then
            log "$name: workload 1 (8 partitions, 1 producer, acks=all), rep $r"
            bench produce --topic w1 --partitions 8 --record-size 1024 \
                --records "$records" --acks all >"$OUT/$name--w1-produce-8p--r$r.json"
        fi
        if want 2; then
            log "$name: workload 2 (100 partitions, 4 producers, acks=all), rep $r"
            bench produce --topic w2 --partitions 100 --producers 4 --record-size 1024 \
                --records "$records" --acks all >"$OUT/$name--w2-produce-100p-4prod--r$r.json"
        fi
    done
    [[ "$kind" == ceiling ]] && return
    if want 3; then
        log "$name: workload 3, writing a ${BACKLOG_MIB} MiB backlog"
        bench produce --topic w3 --partitions 8 --record-size 1024 \
            --records "$backlog" --acks 1 >"$OUT/$name--backlog-fill.json.txt"
        for r in $(seq 1 "$REPS"); do
            log "$name: workload 3 (catch-up read of ${BACKLOG_MIB} MiB), rep $r"
            bench consume --topic w3 >"$OUT/$name--w3-consume-backlog--r$r.json"
        done
    fi
    want 4 || return 0
    # 50 % of this broker's median workload-1 rate.
    local rate
    rate=$(python3 -c '
import json, sys, statistics
rates = [json.load(open(p))["produce"]["records_per_sec"] for p in sys.argv[1:]]
print(int(statistics.median(rates) / 2))' "$OUT/$name"--w1-produce-8p--r*.json)
    for r in $(seq 1 "$REPS"); do
        log "$name: workload 4 (e2e at $rate records/s for ${LAT_SECS}s), rep $r"
        bench e2e --topic w4 --partitions 8 --record-size 1024 --acks all \
            --rate "$rate" --duration "${LAT_SECS}s" >"$OUT/$name--w4-e2e-50pct--r$r.json"
    done
}

log "machine: $(nproc) cores, $(free -g | awk '/^Mem:/ {print $2}') GiB RAM, $(uname -sr)"
{
    echo "cores=$(nproc)"
    echo "memory=$(free -g | awk '/^Mem:/ {print $2}') GiB"
    echo "load average at start=$(cut -d' ' -f1-3 /proc/loadavg)"
    echo "sizes=MIB=$MIB BACKLOG_MIB=$BACKLOG_MIB LAT_SECS=$LAT_SECS REPS=$REPS"
} >"$OUT/extra.txt"

log "raw: dd ${MIB} MiB with fdatasync, and loopback TCP"
for r in $(seq 1 "$REPS"); do
    dd_out=$(dd if=/dev/zero of="$DIR/dd.bin" bs=1M count="$MIB" conv=fdatasync 2>&1 | tail -1)
    rm -f "$DIR/dd.bin"
    echo "raw dd, 1 MiB blocks, fdatasync (rep $r)=$dd_out" >>"$OUT/extra.txt"
    echo "raw loopback TCP, 1 MiB writes (rep $r)=$($tools tcp "$MIB") MB/s" >>"$OUT/extra.txt"
done

for b in $BROKERS; do
    case $b in
    weir)
        rm -rf "$DIR/weir-data"
        start_weir "$DIR/weir-data"
        workloads weir
        echo "weir peak RSS under load (MiB)=$($tools rss "$pid")" >>"$OUT/extra.txt"
        stop_broker
        rm -rf "$DIR/weir-data"
        [[ "$STARTUP" == 1 ]] || continue

        log "weir: start-up and idle memory with 1,000 partitions"
        start_weir "$DIR/weir-1000"
        "$WEIR" topic create p1000 --partitions 1000 --bootstrap "127.0.0.1:$port" >/dev/null
        stop_broker
        for r in $(seq 1 "$REPS"); do
            port=$($tools freeport)
            admin=$($tools freeport)
            start=$(date +%s.%N)
            WEIR_ADMIN_LISTEN=127.0.0.1:$admin WEIR_REGISTRY_LISTEN=127.0.0.1:0 WEIR_SQL_LISTEN=off \
                "$WEIR" serve --data-dir "$DIR/weir-1000" --listen "127.0.0.1:$port" \
                >>"$OUT/weir.log" 2>&1 &
            pid=$!
            $tools wait-http "http://127.0.0.1:$admin/health/ready" 60 >/dev/null
            ready=$(date +%s.%N)
            echo "weir clean start with 1,000 partitions to /health/ready (rep $r)=$(python3 -c "print(f'{$ready - $start:.3f} s')")" >>"$OUT/extra.txt"
            sleep 3
            echo "weir idle RSS with 1,000 partitions (MiB) (rep $r)=$($tools rss "$pid")" >>"$OUT/extra.txt"
            stop_broker
        done
        rm -rf "$DIR/weir-1000"
        ;;
    tansu)
        if [[ ! -x "$TANSU" ]]; then
            log "tansu not found at $TANSU: skipped"
            echo "tansu=not found, skipped" >>"$OUT/extra.txt"
            continue
        fi
        for engine in $TANSU_ENGINES; do
            tag="tansu-${engine%%:*}"
            start_tansu "$engine"
            if [[ "$engine" == null* ]]; then
                workloads "$tag" ceiling
            else
                workloads "$tag"
            fi
            echo "$tag peak RSS under load (MiB)=$($tools rss "$pid")" >>"$OUT/extra.txt"
            stop_broker
        done
        ;;
    *) log "unknown broker $b" ;;
    esac
done

echo "load average at end=$(cut -d' ' -f1-3 /proc/loadavg)" >>"$OUT/extra.txt"
log "results in $OUT"
$tools table "$OUT"
