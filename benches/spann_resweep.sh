#!/usr/bin/env bash
# Repeats, N times, the two sweeps behind issue 6's headline ratio on the indices that
# benches/spann_compare.sh NAME left: the default SPANN index (spann, re-ranking k and 2k
# candidates, as the main run does) and DiskANN with its hot-node count calibrated to the RSS
# that SPANN index showed in the first sweep (benches/diskann_hot_for_rss.sh; HOT=H skips it),
# alternating, page cache dropped before each. The disk's IOPS drift 20-30% between identical sweeps; the median of the
# per-pair ratios is the figure to quote. Output: benches/results/spann-NAME-resweep.jsonl and a
# summary line per pair. SPANN_INDEX=spann-full sweeps the f32-list index instead (the one the
# build picks where lists are short, e.g. squad).
set -euo pipefail
NAME=$1 QUERIES=$2 GT=$3 N=${4:-3}
WORK=${WORK:-/work/bench-work}/$NAME
OUT=benches/results/spann-$NAME-resweep.jsonl
LISTS=${LISTS:-8,12,16,24,32,48,64}
DISKANN_LISTS=${DISKANN_LISTS:-15,20,25,30,40,50,70}
Q=target/release/quiver
drop() { sync; echo 3 > /proc/sys/vm/drop_caches 2>/dev/null || true; }
B=(bench --queries "$QUERIES" --gt "$GT" --threads 2 --backend uring --dataset "$NAME" --json
   --max-queries "${MAX_QUERIES:-10000}")
: > "$OUT"
for i in $(seq 1 "$N"); do
  drop
  $Q "${B[@]}" --index "$WORK/${SPANN_INDEX:-spann}" --max-lists "$LISTS" --rerank "${RERANK:-10,20}" 2>/dev/null \
    | sed "s/^{/{\"tool\":\"spann\",\"rep\":$i,/" >> "$OUT"
  if [ -z "${HOT:-}" ]; then
    # Comparable RAM: DiskANN's hot nodes calibrated to this SPANN index's RSS, measured above.
    SPANN_RSS=$(python3 -c "import json,sys; print(max(json.loads(l)['index_rss_bytes'] for l in open(sys.argv[1])))" "$OUT")
    HOT=$(benches/diskann_hot_for_rss.sh "$WORK/quiver" "$QUERIES" "$GT" "$SPANN_RSS")
  fi
  drop
  $Q "${B[@]}" --index "$WORK/quiver" --search-list "$DISKANN_LISTS" --beam-width 4 --hot-nodes "$HOT" \
    2>/dev/null | sed "s/^{/{\"tool\":\"diskann-ram\",\"rep\":$i,/" >> "$OUT"
done
python3 - "$OUT" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
def at(rs, t):
    # On the recall-QPS frontier (the re-rank sweeps mixed), as benches/spann_report.py does.
    # Below the frontier's lowest recall (a row under t beaten on both axes by one above it) the
    # QPS at t is that row's.
    below = any(r["recall"] <= t for r in rs)
    best, front = -1.0, []
    for r in sorted(rs, key=lambda r: -r["recall"]):
        if r["qps"] > best:
            front.append(r)
            best = r["qps"]
    rs = sorted(front, key=lambda r: r["recall"])
    if rs and t < rs[0]["recall"] and below:
        return rs[0]["qps"]  # a row below t is beaten by the frontier's first: it holds there
    for a, b in zip(rs, rs[1:]):
        if a["recall"] <= t <= b["recall"]:
            f = (t - a["recall"]) / max(b["recall"] - a["recall"], 1e-9)
            return a["qps"] + f * (b["qps"] - a["qps"])
for t in (0.90, 0.95):
    ratios = []
    for i in sorted({r["rep"] for r in rows}):
        s = at([r for r in rows if r["rep"] == i and r["tool"] == "spann"], t)
        d = at([r for r in rows if r["rep"] == i and r["tool"] == "diskann-ram"], t)
        if s and d:
            ratios.append(s / d)
            print(f"recall {t:.2f} pair {i}: SPANN {s:,.0f} QPS, DiskANN {d:,.0f} QPS, ratio {s / d:.2f}x")
    if ratios:
        print(f"recall {t:.2f}: median ratio {statistics.median(ratios):.2f}x over {len(ratios)} pairs")
PY
