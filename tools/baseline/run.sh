#!/usr/bin/env bash
# The QuickFIX-to-QuickFIX baseline of ../shared/notes/anchors.md and ordo, measured the same way
# in one run: ../shared/fix/qf_client.py (QuickFIX C++ initiator, Python application) with one
# order in flight, new orders only, against
#   1. tools/baseline/qf_acceptor.py (QuickFIX C++ acceptor, Python application, acks orders);
#   2. ordo node (release build, embedded defaults, fresh data directory).
# Prints both qf_client summaries. Needs the venv of `cargo xtask test` (quickfix) and
# `cargo build --release --bin ordo`.
#
#   tools/baseline/run.sh [ORDERS] [RATE]      (defaults: 5000 orders at 1000/s)
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
orders="${1:-5000}"
rate="${2:-1000}"
py="$root/target/tools/venv/bin/python"
ordo="$root/target/release/ordo"
client="$root/../shared/fix/qf_client.py"
[ -x "$py" ] && "$py" -c "import quickfix" || { echo "no quickfix venv: run cargo xtask test first" >&2; exit 2; }
[ -x "$ordo" ] || { echo "no $ordo: run cargo build --release --bin ordo" >&2; exit 2; }
qf_port=19879
ordo_port=19878
data="$(mktemp -d)"
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$data"
}
trap cleanup EXIT

wait_for_line() { # file pattern
    for _ in $(seq 1 300); do
        grep -q "$2" "$1" 2>/dev/null && return 0
        sleep 0.1
    done
    echo "timed out waiting for '$2' in $1" >&2
    cat "$1" >&2
    return 1
}

run_client() { # label port
    echo "== $1"
    "$py" "$client" --port "$2" --sender CLIENT1 --target ORDO --username CLIENT1 --password demo \
        --account ACC1 --orders "$orders" --rate "$rate" --max-inflight 1 \
        --cancel-ratio 0 --replace-ratio 0 --no-cancel-open 2>&1 | grep -E "^  min|^SUMMARY"
}

"$py" "$root/tools/baseline/qf_acceptor.py" --port "$qf_port" >"$data/qf.log" 2>&1 &
pids+=($!)
wait_for_line "$data/qf.log" "qf_acceptor ready"
run_client "QuickFIX initiator -> QuickFIX acceptor (Python apps both ends)" "$qf_port"

"$ordo" node --listen "127.0.0.1:$ordo_port" --data-dir "$data/ordo" >"$data/ordo.log" 2>&1 &
pids+=($!)
wait_for_line "$data/ordo.log" "ordo node ready"
run_client "QuickFIX initiator -> ordo node (sequenced, journaled, matched; durability none)" "$ordo_port"
