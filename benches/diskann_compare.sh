#!/usr/bin/env bash
# Quiver DiskANN vs diskannpy on one dataset, same R, L, PQ bytes, threads, O_DIRECT, no cached
# nodes; page cache dropped before each phase. Run by hand (root), not by CI; long at 1M, so run
# it in the background:  nohup benches/diskann_compare.sh NAME BASE QUERIES GT > log 2>&1 &
# CACHE_NODES=N adds a second sweep of both with N nodes cached in RAM (hot set around the
# medoid; no other cache), on the same indices.
# Needs the peer venv: benches/peers/setup.sh. Output: benches/results/diskann-NAME.jsonl.
set -euo pipefail
NAME=$1 BASE=$2 QUERIES=$3 GT=$4
CACHE_NODES=${CACHE_NODES:-0}
R=${R:-64} L=${L:-100} METRIC=${METRIC:-l2} THREADS=${THREADS:-2}
DIM=$(python3 -c "import struct,sys; print(struct.unpack('<2i', open(sys.argv[1],'rb').read(8))[1])" "$BASE")
PQ=${PQ:-$((DIM / 4))}
LISTS=${LISTS:-10,15,20,25,30,40,50,70,100,150,200}
WORK=${WORK:-/work/bench-work}/$NAME
PEERS=${PEERS:-/work/venvs}
OUT=benches/results/diskann-$NAME.jsonl
Q=target/release/quiver
drop() { sync; echo 3 > /proc/sys/vm/drop_caches 2>/dev/null || true; }
cargo build --release -p quiver-cli
mkdir -p "$WORK" benches/results
[ -s "$OUT" ] && mv "$OUT" "$OUT.prev"   # the last run's raw lines survive one re-run
: > "$OUT"
rm -rf "$WORK/quiver" "$WORK/diskannpy"
drop
$Q build --kind diskann --data "$BASE" --out "$WORK/quiver" --metric "$METRIC" \
    --max-degree "$R" --build-list "$L" --pq-bytes "$PQ" 2>/dev/null \
  | sed 's/^{/{"tool":"quiver","phase":"build",/' >> "$OUT"
drop
$Q bench --index "$WORK/quiver" --queries "$QUERIES" --gt "$GT" --threads "$THREADS" \
    --backend uring --search-list "$LISTS" --beam-width 4 --dataset "$NAME" --json 2>/dev/null >> "$OUT"
if [ "$CACHE_NODES" -gt 0 ]; then
  drop
  $Q bench --index "$WORK/quiver" --queries "$QUERIES" --gt "$GT" --threads "$THREADS" \
      --backend uring --search-list "$LISTS" --beam-width 4 --dataset "$NAME" \
      --hot-nodes "$CACHE_NODES" --json 2>/dev/null >> "$OUT"
fi
drop
"$PEERS/diskann/bin/python" benches/peers/diskann_peer.py --data "$BASE" --queries "$QUERIES" \
    --gt "$GT" --out "$WORK/diskannpy" --dataset "$NAME" --metric "$METRIC" --R "$R" --L "$L" \
    --pq-bytes "$PQ" --threads "$THREADS" --beam-width 4 --search-lists "$LISTS" \
    > "$WORK/diskannpy.log" 2>&1
grep '^{' "$WORK/diskannpy.log" >> "$OUT"
if [ "$CACHE_NODES" -gt 0 ]; then
  drop
  "$PEERS/diskann/bin/python" benches/peers/diskann_peer.py --data "$BASE" --queries "$QUERIES" \
      --gt "$GT" --out "$WORK/diskannpy" --dataset "$NAME" --metric "$METRIC" --R "$R" --L "$L" \
      --pq-bytes "$PQ" --threads "$THREADS" --beam-width 4 --search-lists "$LISTS" \
      --cache-nodes "$CACHE_NODES" --skip-build > "$WORK/diskannpy-cached.log" 2>&1
  grep '^{' "$WORK/diskannpy-cached.log" >> "$OUT"
fi
grep -m1 -i "bytes per vector\|compressing" "$WORK/diskannpy.log" \
  | sed 's/"/\\"/g; s/^/{"tool":"diskannpy","phase":"pq_log","line":"/; s/$/"}/' >> "$OUT" || true
echo "done: $OUT"
