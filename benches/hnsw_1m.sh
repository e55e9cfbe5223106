#!/usr/bin/env bash
# The 1M comparison of issue 5: the synthetic 1,000,000 x 128 set with 10,000 queries (seed 42,
# the same files as benches/diskann_1m.sh, generated there when missing), then
# benches/hnsw_compare.sh on it. Tens of minutes on 2 cores; run in the background:
#   nohup benches/hnsw_1m.sh > /work/bench-work/hnsw-1m.log 2>&1 &
set -euo pipefail
DATA=${DATA:-/work/bench-work/data/synth1m}
Q=target/release/quiver
cargo build --release -p quiver-cli
if [ ! -f "$DATA/gt.ibin" ]; then
  rm -rf "$DATA"
  $Q dataset gen --n 1000000 --dim 128 --queries 10000 --seed 42 --out "$DATA"
  $Q dataset gt --base "$DATA/base.fbin" --queries "$DATA/query.fbin" --k 100 --out "$DATA/gt.ibin"
fi
benches/hnsw_compare.sh synth1m "$DATA/base.fbin" "$DATA/query.fbin" "$DATA/gt.ibin"
