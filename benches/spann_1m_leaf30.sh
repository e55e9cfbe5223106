#!/usr/bin/env bash
# Experiment of issue 6 (after benches/spann_1m.sh): SPANN at 1M with --leaf-size 30 (half the
# centroids of the default), against the DiskANN rows of that run and a DiskANN sweep at its RAM.
# Output: benches/results/spann-synth1m-leaf30.jsonl.
set -euo pipefail
cd "$(dirname "$0")/.."
M=/work/bench-work/data/synth1m
OUT=benches/results/spann-synth1m-leaf30.jsonl
W=/work/bench-work/synth1m-leaf30
mkdir -p "$W" && ln -sfn /work/bench-work/synth1m/quiver "$W/quiver"   # DiskANN index of spann_1m.sh
: > $OUT
rm -rf $W/spann-r8
target/release/quiver build --kind spann --data $M/base.fbin --out $W/spann-r8 --leaf-size 30 2>/dev/null | sed 's/^{/{"tool":"quiver-spann-r8","phase":"build",/' >> $OUT
sync; echo 3 > /proc/sys/vm/drop_caches
target/release/quiver bench --index $W/spann-r8 --queries $M/query.fbin --gt $M/gt.ibin --threads 2 --backend uring --dataset synth1m-leaf30 --json --max-queries 3000 --max-lists 8,12,16,24,32,48,64,96 2>/dev/null | sed 's/^{/{"tool":"quiver-spann-r8",/' >> $OUT
grep '"tool":"quiver-diskann",' benches/results/spann-synth1m.jsonl >> $OUT
MAX_QUERIES=3000 benches/spann_diskann_ram.sh synth1m-leaf30 $M/query.fbin $M/gt.ibin
echo LEAFDONE
