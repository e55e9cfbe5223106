#!/usr/bin/env bash
# The server's figures for docs/BENCHMARKS.md (issue 4), run by hand:
#  1. ingest rate through gRPC (`quiver ingest`, streamed batches of 512, each fsynced in the WAL
#     before the next is read) into a collection whose memtable flushes at exactly n points, so
#     it ends as one HNSW segment;
#  2. the gRPC overhead: the same segment searched in-process and through the server by one
#     paired `quiver bench --server --index SEGMENT` (phases alternate), at concurrency 1 and 16.
# Usage: [KIND=hnsw|diskann|spann] benches/server_bench.sh NAME BASE QUERIES GT   (ids = row numbers)
# Output: benches/results/server-NAME-KIND.jsonl. In-process runs one query per call, as each
# gRPC request carries one query.
set -euo pipefail
NAME=$1 BASE=$2 QUERIES=$3 GT=$4
EF=${EF:-16,32,64,128}
KIND=${KIND:-hnsw}
BACKEND=${BACKEND:-pread}   # segment reads, server and in-process alike
case "$KIND" in
  diskann) KNOB=--search-list ;;
  spann|ivf) KNOB=--max-lists; EF=${EF_LISTS:-4,8,16,32} ;;
  *) KNOB=--ef ;;
esac
N=$(python3 -c "import struct,sys; print(struct.unpack('<2i', open(sys.argv[1],'rb').read(8))[0])" "$BASE")
WORK=${WORK:-/work/bench-work}/server-$NAME-$KIND-$BACKEND
OUT=benches/results/server-$NAME-$KIND$([ "$BACKEND" = pread ] || echo "-$BACKEND").jsonl
Q=target/release/quiver
PORT=${PORT:-6399}
cargo build --release -p quiver-cli
rm -rf "$WORK"; mkdir -p "$WORK" benches/results
[ -s "$OUT" ] && mv "$OUT" "$OUT.prev"
: > "$OUT"
$Q serve --data-dir "$WORK/db" --listen 127.0.0.1:$PORT --flush-points "$N" --flat-below 1000 --backend "$BACKEND" \
  2> "$WORK/server.log" &
SRV=$!
trap 'kill $SRV 2>/dev/null || true' EXIT
S=http://127.0.0.1:$PORT
$Q ingest --server $S --create --collection c --index "$KIND" --data "$BASE" \
  | sed "s/^{/{\"phase\":\"ingest\",\"dataset\":\"$NAME\",/" >> "$OUT"
# Wait for the one segment to be built.
until $Q collections --server $S | grep -q '"segments":1,"unflushed_points":0'; do sleep 2; done
SEG=$(ls -d "$WORK"/db/collections/c/segments/*/ | head -1)
# Paired: one client process searches the segment in-process and through the server in
# alternating phases (query by query at concurrency 1, 8 queries per request in flight at 16),
# so both sides see the same disk; this disk's speed drifts 20-30% between separate runs, more
# than the overhead being measured.
for T in 1 16; do
  PQ=$([ "$T" = 1 ] && echo 1 || echo 8)
  $Q bench --server $S --collection c --index "$SEG" --backend "$BACKEND" --queries "$QUERIES" --gt "$GT" \
    --threads $T $KNOB "$EF" --pair-queries $PQ --dataset "$NAME" --json 2>/dev/null \
    | sed 's/^{/{"mode":"paired",/' >> "$OUT"
done
python3 - "$OUT" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if '"paired"' in l]
grpc = {(r["threads"], json.dumps(r["params"], sort_keys=True)): r for r in rows if r["index"].startswith("server:")}
print("threads knob recall | in-process p50 / gRPC p50 (server p50) overhead | in-process QPS / gRPC QPS gap | client CPU")
for r in rows:
    if r["index"].startswith("server:"):
        continue
    g = grpc.get((r["threads"], json.dumps(r["params"], sort_keys=True)))
    if not g:
        continue
    print(f'{r["threads"]:>2} {r["params"]} {r["recall"]:.3f} | {r["p50_us"]:.0f} / {g["p50_us"]:.0f} ({g["server_p50_us"]:.0f}) '
          f'{100 * (g["p50_us"] / r["p50_us"] - 1):+.0f}% | {r["qps"]:.0f} / {g["qps"]:.0f} {100 * (g["qps"] / r["qps"] - 1):+.0f}% '
          f'| {g["client_cpu_cores"]:.2f}')
PY
echo "done: $OUT"
