#!/usr/bin/env bash
# DiskANN at SPANN's RAM for benches/spann_compare.sh NAME (called by it; run alone to redo that
# sweep): the hot-node count that matches the default SPANN index's measured RSS comes from
# benches/diskann_hot_for_rss.sh, then the full sweep replaces any earlier quiver-diskann-ram rows
# of benches/results/spann-NAME.jsonl.
set -euo pipefail
NAME=$1 QUERIES=$2 GT=$3
THREADS=${THREADS:-2}
DISKANN_LISTS=${DISKANN_LISTS:-10,15,20,25,30,40,50,70,100,150,200}
WORK=${WORK:-/work/bench-work}/$NAME
OUT=benches/results/spann-$NAME.jsonl
Q=target/release/quiver
drop() { sync; echo 3 > /proc/sys/vm/drop_caches 2>/dev/null || true; }
B=(bench --index "$WORK/quiver" --queries "$QUERIES" --gt "$GT" --threads "$THREADS" --backend uring
   --dataset "$NAME" --json --beam-width 4)
rss() {  # max index RSS of TOOL's rows in $OUT
  python3 -c "import json,sys; print(max(json.loads(l)['index_rss_bytes'] for l in open(sys.argv[1]) if l.startswith('{') and '\"recall\"' in l and json.loads(l).get('tool') == sys.argv[2]))" "$OUT" "$1"
}
SPANN=$(rss "${SPANN_TOOL:-quiver-spann}")
HOT=$(benches/diskann_hot_for_rss.sh "$WORK/quiver" "$QUERIES" "$GT" "$SPANN")
grep -v '"tool":"quiver-diskann-ram",' "$OUT" > "$OUT.tmp" || true
mv "$OUT.tmp" "$OUT"
drop
$Q "${B[@]}" --search-list "$DISKANN_LISTS" --hot-nodes "$HOT" --max-queries "${MAX_QUERIES:-10000}" 2>/dev/null \
  | sed 's/^{/{"tool":"quiver-diskann-ram",/' >> "$OUT"
