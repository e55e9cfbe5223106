#!/usr/bin/env bash
# The 1M comparison of issue 3: the synthetic 1,000,000 x 128 set (benches/synth1m_data.sh), then
# benches/diskann_compare.sh on it, uncached and with 100,000 cached nodes on both sides. Tens of
# minutes on 2 cores; run in the background:
#   nohup benches/diskann_1m.sh > /work/bench-work/diskann-1m.log 2>&1 &
set -euo pipefail
. benches/synth1m_data.sh
CACHE_NODES=${CACHE_NODES:-100000} benches/diskann_compare.sh synth1m "$DATA/base.fbin" "$DATA/query.fbin" "$DATA/gt.ibin"
