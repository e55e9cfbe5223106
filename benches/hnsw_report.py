"""Turns benches/results/hnsw-NAME.jsonl into the docs/BENCHMARKS.md tables (single-thread QPS
interpolated at recall@10 = 0.90, 0.95, 0.99 for Quiver and each peer, build times, the
mmap-served index warm and cold) and a recall-vs-QPS plot docs/hnsw-NAME.png:
  /work/venvs/ann/bin/python benches/hnsw_report.py NAME
"""
import json, sys
from diskann_report import interp, plot


def main():
    name = sys.argv[1]
    rows = [json.loads(l) for l in open(f"benches/results/hnsw-{name}.jsonl") if l.startswith("{")]
    series = {}
    for r in rows:
        if "recall" not in r:
            continue
        label = f"quiver ({r['mode']})" if r["tool"] == "quiver" else r["tool"]
        series.setdefault(label, []).append(r)
    build = {r["tool"]: r["build_seconds"] for r in rows if r.get("phase") == "build"}
    base = series.get("hnswlib", [])
    tools = [t for t in ["quiver (ram)", "quiver (mmap-warm)", "hnswlib", "faiss", "usearch"] if t in series]
    print("Single-thread QPS at recall@10 (ratio to hnswlib):\n")
    print("| recall@10 | " + " | ".join(tools) + " |")
    print("|---|" + "---|" * len(tools))
    for t in (0.90, 0.95, 0.99):
        ref = interp(base, t, "qps")
        cells = []
        for tool in tools:
            v = interp(series[tool], t, "qps")
            if v is None:
                cells.append("n/a")
            elif ref:
                cells.append(f"{v:,.0f} ({v / ref:.2f}x)")
            else:
                cells.append(f"{v:,.0f}")
        print(f"| {t:.2f} | " + " | ".join(cells) + " |")
    print("\nBuild on 2 threads: " + ", ".join(f"{k} {v:.1f} s" for k, v in build.items()))
    if "quiver" in build and "hnswlib" in build:
        print(f"(Quiver / hnswlib = {build['quiver'] / build['hnswlib']:.2f})")
    cold = series.get("quiver (mmap-cold)", [])
    warm = {r["params"]["ef"]: r for r in series.get("quiver (mmap-warm)", [])}
    if cold:
        print("\nmmap-served, page cache dropped first (1,000 queries) vs warm:\n")
        print("| ef | cold recall | cold QPS | cold reads/q | warm QPS | warm reads/q |")
        print("|---|---|---|---|---|---|")
        for r in cold:
            ef = r["params"]["ef"]
            w = warm.get(ef, {})
            print(f"| {ef} | {r['recall']:.3f} | {r['qps']:,.0f} | {r['mean_ios']:.1f} | "
                  f"{w.get('qps', 0):,.0f} | {w.get('mean_ios', 0):.2f} |")
    plot(f"HNSW on {name} (M=16, efC=200)", "QPS (1 thread)",
         {t: series[t] for t in tools}, f"docs/hnsw-{name}.png")


if __name__ == "__main__":
    main()
