#!/usr/bin/env bash
# The server's figures for docs/BENCHMARKS.md (issue 4), run by hand:
#  1. ingest rate through gRPC (`quiver ingest`, streamed batches of 512, each fsynced in the WAL
#     before the next is read) into a collection whose memtable flushes at exactly n points, so
#     it ends as one HNSW segment;
#  2. the gRPC overhead: the same segment searched in-process (`quiver bench --index SEGMENT`)
#     and through the server (`quiver bench --server`), at concurrency 1 and 16, same ef list.
# Usage: [KIND=hnsw|diskann|spann] benches/server_bench.sh NAME BASE QUERIES GT   (ids = row numbers)
# Output: benches/results/server-NAME-KIND.jsonl. In-process runs one query per call
# (--interleave 1), as each gRPC request carries one query.
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
for T in 1 16; do
  $Q bench --index "$SEG" --queries "$QUERIES" --gt "$GT" --threads $T $KNOB "$EF" --interleave 1 --backend "$BACKEND" \
    --dataset "$NAME" --json 2>/dev/null | sed 's/^{/{"mode":"in-process",/' >> "$OUT"
  $Q bench --server $S --collection c --queries "$QUERIES" --gt "$GT" --threads $T $KNOB "$EF" \
    --dataset "$NAME" --json 2>/dev/null | sed 's/^{/{"mode":"grpc",/' >> "$OUT"
done
echo "done: $OUT"
