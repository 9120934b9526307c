#!/bin/bash
# Three idle `ordo node --cluster` members (tests/cluster/local3.toml), member 3 killed with
# SIGKILL, then the CPU of the two survivors' threads over 10 s, by thread name, as % of one
# core. $1: the ordo binary (default target/release/ordo). Run from the repository root.
# docs/BENCHMARKS.md ("A member down").
ORDO=${1:-target/release/ordo}
root=$(mktemp -d /tmp/idle.XXXX); shm=/dev/shm/idle-d$$; pids=""
for id in 1 2 3; do ${ORDO:-target/release/ordo} node --cluster tests/cluster/local3.toml --id $id --data-dir $root/m$id --aeron-dir $shm/m$id > $root/m$id.log 2>&1 & pids="$pids $!"; done; sleep 8
set -- $pids; kill -9 $3; sleep 3
snap() { for p in $1 $2; do for t in /proc/$p/task/*; do echo "$p $(cat $t/comm | tr ' ' '_') $(cut -d' ' -f14,15 $t/stat 2>/dev/null)"; done; done; }
snap $1 $2 > $root/a.txt; sleep 10; snap $1 $2 > $root/b.txt
python3 - "$root/a.txt" "$root/b.txt" <<'EOF'
def load(f):
    d={}
    for l in open(f):
        p,n,u,s=l.split(); d.setdefault((p,n),[]).append(int(u)+int(s))
    return d
import sys
a=load(sys.argv[1]); b=load(sys.argv[2]); tot={}
for k in b:
    tot[k[1]]=tot.get(k[1],0)+sum(b[k])-sum(a.get(k,[0]*len(b[k])))
print("total %.1f%% of a core"%(sum(tot.values())/10))
for n,d in sorted(tot.items(),key=lambda x:-x[1])[:5]: print("%-20s %.2f%%"%(n,d/10))
EOF
kill $1 $2; wait 2>/dev/null; rm -rf $root $shm
