#!/usr/bin/env bash
# The tuning set of issue 6: the first 100,000 rows and first 1,000 queries of the synthetic 1M set
# (benches/synth1m_data.sh; same generator, so the same difficulty) and their exact top-100,
# written once under $OUT (default /work/bench-work/data/h100k). Sourced or run; leaves OUT set.
. benches/synth1m_data.sh
OUT=${OUT:-/work/bench-work/data/h100k}
if [ ! -f "$OUT/gt.ibin" ]; then
  mkdir -p "$OUT"
  python3 - "$DATA" "$OUT" <<'PY'
import struct, sys
src, dst = sys.argv[1], sys.argv[2]
for name, rows in (("base.fbin", 100_000), ("query.fbin", 1_000)):
    with open(f"{src}/{name}", "rb") as f:
        n, d = struct.unpack("<2i", f.read(8))
        body = f.read(rows * d * 4)
    with open(f"{dst}/{name}", "wb") as g:
        g.write(struct.pack("<2i", rows, d))
        g.write(body)
PY
  target/release/quiver dataset gt --base "$OUT/base.fbin" --queries "$OUT/query.fbin" -k 100 --out "$OUT/gt.ibin"
fi
