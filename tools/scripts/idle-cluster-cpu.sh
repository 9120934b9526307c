#!/bin/bash
# Three idle `ordo node --cluster` members (cluster file $2, default tests/cluster/local3.toml):
# their CPU over $1 s, as % of one core in all. Run from the repository root after
# `cargo build --release --bin ordo` (ORDO=path overrides the binary). docs/BENCHMARKS.md.
root=$(mktemp -d /tmp/idle.XXXX); shm=/dev/shm/idle-$$
cfg=${2:-tests/cluster/local3.toml}
pids=""
for id in 1 2 3; do
  ${ORDO:-target/release/ordo} node --cluster $cfg --id $id --data-dir $root/m$id --aeron-dir $shm/m$id > $root/m$id.log 2>&1 &
  pids="$pids $!"
done
sleep 8
tick=$(getconf CLK_TCK)
sum() { t=0; for p in $pids; do s=($(cut -d' ' -f14,15 /proc/$p/stat)); t=$((t + ${s[0]} + ${s[1]})); done; echo $t; }
a=$(sum); sleep $1; b=$(sum)
awk -v d=$((b - a)) -v t=$tick -v s=$1 'BEGIN { printf "idle 3 members: %.2f%% of one core over %d s\n", d * 100 / (t * s), s }' 
kill $pids; wait 2>/dev/null; rm -rf $root $shm
