#!/usr/bin/env bash
# The 1M run of issue 6: the synthetic 1,000,000 x 128 set (benches/synth1m_data.sh), then
# benches/spann_compare.sh on it (reusing the DiskANN index of benches/diskann_1m.sh when it is
# there), on 3,000 of its queries. Tens of minutes on 2 cores; run in the background:
#   nohup benches/spann_1m.sh > /work/bench-work/spann-1m.log 2>&1 &
set -euo pipefail
. benches/synth1m_data.sh
MAX_QUERIES=${MAX_QUERIES:-3000} benches/spann_compare.sh synth1m "$DATA/base.fbin" "$DATA/query.fbin" "$DATA/gt.ibin"
