#!/usr/bin/env bash
# The synthetic 1,000,000 x 128 set with 10,000 queries (seed 42) and its exact top-100 ground
# truth, generated once under $DATA (outside git) and reused by the 1M comparisons. Sourced by
# benches/diskann_1m.sh and benches/hnsw_1m.sh; leaves DATA set.
DATA=${DATA:-/work/bench-work/data/synth1m}
cargo build --release -p quiver-cli
if [ ! -f "$DATA/gt.ibin" ]; then
  rm -rf "$DATA"
  target/release/quiver dataset gen --n 1000000 --dim 128 --queries 10000 --seed 42 --out "$DATA"
  target/release/quiver dataset gt --base "$DATA/base.fbin" --queries "$DATA/query.fbin" --k 100 --out "$DATA/gt.ibin"
fi
