#!/usr/bin/env bash
# The comparison of issue 6 on one dataset: Quiver SPANN (SQ8 lists + re-rank, and f32 lists)
# and IVF-Flat (posting lists on SSD,
# O_DIRECT io_uring), faiss IndexIVFFlat (in RAM), and Quiver DiskANN (on SSD) uncached and with
# hot nodes raised until its index RSS matches SPANN's (centroids + router); then SPANN built
# with exactly 1, 2, 4 and 8 copies. 2 search threads everywhere; page cache dropped before each phase.
# Run by hand (root, for the cache drops), not by CI; at 1M run it in the background:
#   nohup benches/spann_compare.sh NAME BASE QUERIES GT > log 2>&1 &
# REUSE=1 searches the indices the last run built (their build rows carried over).
# An existing DiskANN index in $WORK/NAME/quiver (from benches/diskann_compare.sh) is reused.
# Needs the peer venv (benches/peers/setup.sh). Output: benches/results/spann-NAME.jsonl, turned
# into tables and docs/spann-NAME.png by benches/spann_report.py NAME.
set -euo pipefail
NAME=$1 BASE=$2 QUERIES=$3 GT=$4
METRIC=${METRIC:-l2} THREADS=${THREADS:-2}
LISTS=${LISTS:-1,2,4,8,12,16,24,32,48,64,96,128,192,256,384,512}
DISKANN_LISTS=${DISKANN_LISTS:-10,15,20,25,30,40,50,70,100,150,200}
REPLICAS=${REPLICAS:-1,2,4,8}
WORK=${WORK:-/work/bench-work}/$NAME
PEERS=${PEERS:-/work/venvs}
OUT=benches/results/spann-$NAME.jsonl
Q=target/release/quiver
drop() { sync; echo 3 > /proc/sys/vm/drop_caches 2>/dev/null || true; }
tag() { sed "s/^{/{\"tool\":\"$1\",/"; }
cargo build --release -p quiver-cli
mkdir -p "$WORK" benches/results
[ -s "$OUT" ] && mv "$OUT" "$OUT.prev"   # the last run's raw lines survive one re-run
: > "$OUT"
B=(bench --queries "$QUERIES" --gt "$GT" --threads "$THREADS" --backend uring --dataset "$NAME" --json
   --max-queries "${MAX_QUERIES:-10000}")
# Builds with the index's build parameters folded into the build row. REUSE=1 keeps an index
# that is already there (a search-side change needs no rebuild) and copies its build row from the
# last run's raw file.
build() {
  local kind=$1 out=$2 tool=$3; shift 3
  if [ "${REUSE:-0}" = 1 ] && [ -f "$out/manifest.json" ]; then
    grep -F "{\"tool\":\"$tool\",\"phase\":\"build\"" "$OUT.prev" >> "$OUT" || true
    return
  fi
  rm -rf "$out"
  $Q build --kind "$kind" --data "$BASE" --out "$out" --metric "$METRIC" "$@" 2>/dev/null \
    | python3 -c "import json,sys; r=json.loads(sys.stdin.read()); r['build_params']=json.load(open('$out/manifest.json'))['build_params']; print(json.dumps(r))" \
    | sed "s/^{/{\"tool\":\"$tool\",\"phase\":\"build\",/" >> "$OUT"
}
# The default SPANN index (SOAR, copies and codes picked by the build), re-ranking k and 2k
# candidates where it keeps codes (the report keeps the best of both sweeps).
drop
build spann "$WORK/spann" quiver-spann
drop
$Q "${B[@]}" --index "$WORK/spann" --max-lists "$LISTS" --rerank 10,20 2>/dev/null | tag quiver-spann >> "$OUT"
# SPANN with each replica count (exactly r copies), IVF-Flat.
for r in ${REPLICAS//,/ }; do
  drop
  build spann "$WORK/spann-r$r" quiver-spann-r$r --replicas "$r"
  drop
  $Q "${B[@]}" --index "$WORK/spann-r$r" --max-lists "$LISTS" 2>/dev/null | tag quiver-spann-r$r >> "$OUT"
done
# SPANN with full-precision lists.
drop
build spann "$WORK/spann-full" quiver-spann-full --list-codes full
drop
$Q "${B[@]}" --index "$WORK/spann-full" --max-lists "$LISTS" 2>/dev/null | tag quiver-spann-full >> "$OUT"
drop
build ivf "$WORK/ivf" quiver-ivf
drop
$Q "${B[@]}" --index "$WORK/ivf" --nprobe "$LISTS" 2>/dev/null | tag quiver-ivf >> "$OUT"
# DiskANN: uncached, then with as many hot nodes as SPANN's RSS allows.
if [ ! -f "$WORK/quiver/manifest.json" ]; then
  build diskann "$WORK/quiver" quiver-diskann --max-degree 64 --build-list 100
fi
drop
$Q "${B[@]}" --index "$WORK/quiver" --search-list "$DISKANN_LISTS" --beam-width 4 2>/dev/null \
  | tag quiver-diskann >> "$OUT"
THREADS=$THREADS WORK=${WORK%/$NAME} DISKANN_LISTS=$DISKANN_LISTS \
  benches/spann_diskann_ram.sh "$NAME" "$QUERIES" "$GT"
"$PEERS/ann/bin/python" benches/peers/ivf_peer.py --data "$BASE" --queries "$QUERIES" --gt "$GT" \
    --dataset "$NAME" --metric "$METRIC" --threads "$THREADS" >> "$OUT"
echo "done: $OUT"
