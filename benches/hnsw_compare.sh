#!/usr/bin/env bash
# Quiver HNSW vs hnswlib, faiss IndexHNSWFlat and usearch on one dataset: same M,
# ef_construction and metric, builds on $THREADS threads, searches single-threaded over an ef
# sweep; Quiver loaded in RAM, mmap-served warm, and mmap-served cold (page cache dropped before
# each cold setting; reads = major page faults). Run by hand (root for the cache drops), not by CI:
#   nohup benches/hnsw_compare.sh NAME BASE QUERIES GT > log 2>&1 &
# Needs the peer venv (benches/peers/setup.sh). Output: benches/results/hnsw-NAME.jsonl, turned
# into tables and docs/hnsw-NAME.png by benches/hnsw_report.py NAME.
set -euo pipefail
NAME=$1 BASE=$2 QUERIES=$3 GT=$4
M=${M:-16} EFC=${EFC:-200} METRIC=${METRIC:-l2} THREADS=${THREADS:-2}
EFS=${EFS:-10,16,24,32,48,64,96,128,192,256,384,512}
COLD_EFS=${COLD_EFS:-32,128}
WORK=${WORK:-/work/bench-work}/$NAME
PEERS=${PEERS:-/work/venvs}
OUT=benches/results/hnsw-$NAME.jsonl
Q=target/release/quiver
drop() { sync; echo 3 > /proc/sys/vm/drop_caches 2>/dev/null || true; }
tag() { sed "s/^{/{\"tool\":\"quiver\",\"mode\":\"$1\",/"; }
cargo build --release -p quiver-cli
mkdir -p "$WORK" benches/results
[ -s "$OUT" ] && mv "$OUT" "$OUT.prev"   # the last run's raw lines survive one re-run
: > "$OUT"
rm -rf "$WORK/quiver-hnsw"
$Q build --kind hnsw --data "$BASE" --out "$WORK/quiver-hnsw" --metric "$METRIC" \
    --m "$M" --ef-construction "$EFC" 2>/dev/null \
  | sed 's/^{/{"tool":"quiver","phase":"build",/' >> "$OUT"
B=(bench --index "$WORK/quiver-hnsw" --queries "$QUERIES" --gt "$GT" --threads 1 --json)
$Q "${B[@]}" --backend pread --ef "$EFS" 2>/dev/null | tag ram >> "$OUT"
$Q "${B[@]}" --backend mmap --ef "$EFS" 2>/dev/null > /dev/null   # warms the page cache
$Q "${B[@]}" --backend mmap --ef "$EFS" 2>/dev/null | tag mmap-warm >> "$OUT"
for ef in ${COLD_EFS//,/ }; do
  drop
  $Q "${B[@]}" --backend mmap --ef "$ef" --max-queries 1000 2>/dev/null | tag mmap-cold >> "$OUT"
done
"$PEERS/ann/bin/python" benches/peers/hnsw_peers.py --data "$BASE" --queries "$QUERIES" --gt "$GT" \
    --dataset "$NAME" --metric "$METRIC" --M "$M" --efc "$EFC" --threads "$THREADS" --efs "$EFS" \
  >> "$OUT"
echo "done: $OUT"
