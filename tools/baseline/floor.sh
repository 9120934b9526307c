#!/usr/bin/env bash
# The node against its floor, in one run: `ordo loadgen` open loop at each RATE for DURATION
# seconds against
#   1. `ordo bench floor` (answers every request at once: no session layer, journal, engine);
#   2. `ordo node` (release build, embedded defaults, fresh data directory in DATA_PARENT).
# Prints, per server and rate, the loadgen latency line and the CPU time of the server and of
# the generator (user + system, from /proc: a 2-core machine shares both cores among them).
#
#   tools/baseline/floor.sh [DURATION] [RATE...]     (defaults: 10 s at 20000 and 50000/s)
#   DATA_PARENT=/dev/shm tools/baseline/floor.sh      (the node's data on tmpfs)
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
duration="${1:-10}"
shift || true
rates=("$@")
[ ${#rates[@]} -gt 0 ] || rates=(20000 50000)
ordo="$root/target/release/ordo"
[ -x "$ordo" ] || { echo "no $ordo: run cargo build --release --bin ordo" >&2; exit 2; }
data="$(mktemp -d -p "${DATA_PARENT:-/tmp}")"
floor_port=19877
node_port=19878
pid=""
cleanup() {
    [ -n "$pid" ] && kill -TERM "$pid" 2>/dev/null || true
    wait 2>/dev/null || true
    rm -rf "$data"
}
trap cleanup EXIT

# CPU seconds (user + system) a process has used so far.
cpu_s() {
    awk -v hz="$(getconf CLK_TCK)" '{printf "%.2f", ($14 + $15) / hz}' "/proc/$1/stat"
}

run_rates() { # name port
    for rate in "${rates[@]}"; do
        local before after out
        before=$(cpu_s "$pid")
        out=$( { /usr/bin/time -f "generator cpu %U user + %S system s" \
            "$ordo" loadgen --connect "127.0.0.1:$2" --rate "$rate" --duration-s "$duration" ; } 2>&1 ) || true
        after=$(cpu_s "$pid")
        echo "== $1 at $rate/s for $duration s (+2 s warm-up)"
        echo "$out" | grep -E "request ->|generator cpu|answered|FAILED"
        echo "server cpu $(awk -v a="$after" -v b="$before" 'BEGIN {printf "%.2f", a - b}') s"
    done
}

"$ordo" bench floor --listen "127.0.0.1:$floor_port" > "$data/floor.log" 2>&1 &
pid=$!
sleep 1
run_rates floor "$floor_port"
kill -TERM "$pid"; wait "$pid" 2>/dev/null || true

"$ordo" node --data-dir "$data/node" --listen "127.0.0.1:$node_port" > "$data/node.log" 2>&1 &
pid=$!
for _ in $(seq 1 100); do grep -q "ready" "$data/node.log" && break; sleep 0.1; done
run_rates node "$node_port"
