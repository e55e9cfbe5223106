#!/usr/bin/env bash
# The 1M comparison of issue 5: the synthetic 1,000,000 x 128 set (benches/synth1m_data.sh, the
# same files as the DiskANN run), then benches/hnsw_compare.sh on it. Tens of minutes on 2
# cores; run in the background:
#   nohup benches/hnsw_1m.sh > /work/bench-work/hnsw-1m.log 2>&1 &
set -euo pipefail
. benches/synth1m_data.sh
benches/hnsw_compare.sh synth1m "$DATA/base.fbin" "$DATA/query.fbin" "$DATA/gt.ibin"
