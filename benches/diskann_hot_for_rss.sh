#!/usr/bin/env bash
# Prints the DiskANN hot-node count whose index RSS matches TARGET bytes (issue 6's "comparable
# RAM"): uncached DiskANN's index RSS is measured by a short sweep, a first count is estimated from
# the record size, a second short sweep with it measures DiskANN's actual RSS growth (records, id
# map, what hot-set sampling leaves behind), and the count is scaled so the growth matches.
# Used by benches/spann_diskann_ram.sh and benches/spann_resweep.sh. Progress goes to stderr.
set -euo pipefail
INDEX=$1 QUERIES=$2 GT=$3 TARGET=$4
Q=target/release/quiver
B=(bench --index "$INDEX" --queries "$QUERIES" --gt "$GT" --threads "${THREADS:-2}" --backend uring
   --json --beam-width 4 --search-list 50 --max-queries "${MAX_QUERIES:-10000}")
rss() { python3 -c "import json,sys; print(max(json.loads(l)['index_rss_bytes'] for l in sys.stdin))"; }
BASE=$($Q "${B[@]}" 2>/dev/null | rss)
NODE=$(python3 -c "import json,sys; m=json.load(open(sys.argv[1])); print(m['dim'] * 4 + 4 + 4 * m['build_params']['max_degree'] + 18)" "$INDEX/manifest.json")
H0=$(( TARGET > BASE ? (TARGET - BASE) / NODE : 0 ))
GROWTH=0
if [ "$H0" -gt 0 ]; then
  GROWTH=$(( $($Q "${B[@]}" --hot-nodes "$H0" 2>/dev/null | rss) - BASE ))
fi
# A node costs at least its record (the copies are resident): a smaller measured growth is RSS
# noise (at squad's size a few MiB of thread arenas), and scaling by it overshot 3x once.
HOT=$(python3 -c "print(max(0, int($H0 * ($TARGET - $BASE) / max($GROWTH, $H0 * $NODE, 1))))")
echo "target index RSS $TARGET, DiskANN uncached $BASE; $H0 hot nodes grew DiskANN by $GROWTH: using $HOT" >&2
echo "$HOT"
