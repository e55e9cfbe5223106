#!/usr/bin/env bash
# DiskANN at SPANN's RAM for benches/spann_compare.sh NAME (called by it; run alone to redo that
# sweep): the hot-node count is first estimated from the two measured index RSS figures (SPANN's
# default index and uncached DiskANN), then calibrated once - a short sweep with that count
# measures DiskANN's actual RSS growth (records, id map, what the hot-set sampling leaves behind)
# and the count is scaled so the growth matches - then the full sweep replaces any earlier
# quiver-diskann-ram rows of benches/results/spann-NAME.jsonl.
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
SPANN=$(rss quiver-spann-r8)
BASE=$(rss quiver-diskann)
NODE=$(python3 -c "import json,sys; m=json.load(open(sys.argv[1])); print(m['dim'] * 4 + 4 + 4 * m['build_params']['max_degree'] + 18)" "$WORK/quiver/manifest.json")
H0=$(( SPANN > BASE ? (SPANN - BASE) / NODE : 0 ))
GROWTH=$($Q "${B[@]}" --search-list 50 --max-queries 500 --hot-nodes "$H0" 2>/dev/null \
  | python3 -c "import json,sys; print(max(json.loads(l)['index_rss_bytes'] for l in sys.stdin) - $BASE)")
HOT=$(python3 -c "print(max(0, int($H0 * ($SPANN - $BASE) / max($GROWTH, 1))))")
echo "SPANN index RSS $SPANN, DiskANN uncached $BASE; $H0 hot nodes grew DiskANN by $GROWTH: using $HOT"
grep -v '"tool":"quiver-diskann-ram",' "$OUT" > "$OUT.tmp" || true
mv "$OUT.tmp" "$OUT"
drop
$Q "${B[@]}" --search-list "$DISKANN_LISTS" --hot-nodes "$HOT" --max-queries "${MAX_QUERIES:-10000}" 2>/dev/null \
  | sed 's/^{/{"tool":"quiver-diskann-ram",/' >> "$OUT"
