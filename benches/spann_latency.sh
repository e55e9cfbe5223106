#!/usr/bin/env bash
# Latency at concurrency 1 (one thread, one query at a time) of the SPANN index and of DiskANN
# with SPANN's RAM, on the indices benches/spann_compare.sh NAME left in $WORK/NAME: where SPANN's
# one batch of list reads (one round trip to the disk) shows against DiskANN's sequential hops.
# Appends rows tagged "-c1" to benches/results/spann-NAME.jsonl; run after spann_compare.sh.
set -euo pipefail
NAME=$1 QUERIES=$2 GT=$3
WORK=${WORK:-/work/bench-work}/$NAME
OUT=benches/results/spann-$NAME.jsonl
LISTS=${LISTS:-8,16,32,48,64,96,128}
DISKANN_LISTS=${DISKANN_LISTS:-20,30,40,50,70,100}
Q=target/release/quiver
drop() { sync; echo 3 > /proc/sys/vm/drop_caches 2>/dev/null || true; }
tag() { sed "s/^{/{\"tool\":\"$1\",/"; }
HOT=$(python3 - "$OUT" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.startswith("{")]
print(max(r.get("hot_nodes") or 0 for r in rows if r.get("tool") == "quiver-diskann-ram"))
PY
)
B=(bench --queries "$QUERIES" --gt "$GT" --threads 1 --interleave 1 --backend uring --dataset "$NAME"
   --json --max-queries "${MAX_QUERIES:-1000}")
drop
$Q "${B[@]}" --index "$WORK/spann" --max-lists "$LISTS" 2>/dev/null | tag quiver-spann-c1 >> "$OUT"
drop
$Q "${B[@]}" --index "$WORK/quiver" --search-list "$DISKANN_LISTS" --beam-width 4 --hot-nodes "$HOT" \
  2>/dev/null | tag quiver-diskann-ram-c1 >> "$OUT"
echo "done: $OUT"
