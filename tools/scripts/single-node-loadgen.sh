#!/bin/bash
# One `ordo node` on its embedded defaults, driven by `ordo loadgen` at $1 requests/s for $2 s:
# prints the loadgen's rate and percentile lines. Run from the repository root after
# `cargo build --release --bin ordo` (ORDO=path overrides the binary). docs/BENCHMARKS.md.
d=$(mktemp -d /tmp/single.XXXX)
${ORDO:-target/release/ordo} node --data-dir $d --listen 127.0.0.1:9871 > $d/node.log 2>&1 &
pid=$!
for i in $(seq 100); do grep -q "ready" $d/node.log && break; sleep 0.1; done
${ORDO:-target/release/ordo} loadgen --connect 127.0.0.1:9871 --rate $1 --duration-s $2 --warmup-s 1 --drain-s 5 2>&1 | grep -E "corrected|sent"
kill $pid; wait $pid 2>/dev/null; rm -rf $d
