#!/usr/bin/env bash
# Re-sweeps Quiver alone on the 1M DiskANN index that benches/diskann_1m.sh built (after a
# search-only change: the index bytes are the same), uncached and with 100,000 hot nodes, with
# the exact commands of diskann_compare.sh. Output: benches/results/diskann-synth1m-resweep.jsonl
# (diskannpy's rows for comparison are in diskann-synth1m.jsonl, same index, same day).
set -euo pipefail
DATA=${DATA:-/work/bench-work/data/synth1m} WORK=${WORK:-/work/bench-work}/synth1m
LISTS=${LISTS:-10,15,20,25,30,40,50,70,100,150,200}
OUT=${OUT:-benches/results/diskann-synth1m-resweep.jsonl}
Q=target/release/quiver
drop() { sync; echo 3 > /proc/sys/vm/drop_caches 2>/dev/null || true; }
: > "$OUT"
for hot in 0 100000; do
  drop
  $Q bench --index "$WORK/quiver" --queries "$DATA/query.fbin" --gt "$DATA/gt.ibin" --threads 2 \
      --backend uring --search-list "$LISTS" --beam-width 4 --dataset synth1m \
      $( [ "$hot" -gt 0 ] && echo --hot-nodes $hot ) --json 2>/dev/null >> "$OUT"
done
echo "done: $OUT"
