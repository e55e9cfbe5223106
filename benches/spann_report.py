"""Turns benches/results/spann-NAME.jsonl (benches/spann_compare.sh) into the docs/BENCHMARKS.md
tables - QPS, reads, bytes and RAM at recall@10 = 0.90 / 0.95 for SPANN, IVF-Flat, faiss
IndexIVFFlat and DiskANN; SPANN vs IVF-Flat recall at equal bytes read; the replication study -
and a recall-vs-QPS plot docs/spann-NAME.png. Run with the peer venv's python (matplotlib):
  /work/venvs/ann/bin/python benches/spann_report.py NAME
"""
import json, re, sys
sys.path.insert(0, "benches")
from diskann_report import interp, plot  # noqa: E402

MIB = 2**20


def interp_by(rows, key_x, x, key_y):
    """key_y at key_x = x, linear between the rows around it (rows sorted by key_x)."""
    rows = sorted(rows, key=lambda r: r[key_x])
    for a, b in zip(rows, rows[1:]):
        if a[key_x] <= x <= b[key_x]:
            if b[key_x] == a[key_x]:
                return a[key_y]
            t = (x - a[key_x]) / (b[key_x] - a[key_x])
            return a[key_y] + t * (b[key_y] - a[key_y])
    return None


def frontier(rows):
    """The rows no other row beats on both recall and QPS (sweeps of several knobs mixed)."""
    best, out = -1.0, []
    for r in sorted(rows, key=lambda r: -r["recall"]):
        if r["qps"] > best:
            out.append(r)
            best = r["qps"]
    return out


def fmt(v, f):
    return "n/a" if v is None else format(v, f)


def main():
    name = sys.argv[1]
    rows = [json.loads(l) for l in open(f"benches/results/spann-{name}.jsonl") if l.startswith("{")]
    runs = {}
    for r in rows:
        if "recall" in r:
            runs.setdefault(r["tool"], []).append(r)
    raw = runs
    runs = {t: frontier(rs) for t, rs in runs.items()}
    builds = {r["tool"]: r for r in rows if r.get("phase") == "build"}
    label = {
        # The default index: its lists hold what the build picked.
        "quiver-spann": "Quiver SPANN (SSD, default: "
        + ("SQ8 lists + re-rank" if builds.get("quiver-spann", {}).get("build_params", {})
           .get("list_codes", "sq8") == "sq8" else "f32 lists") + ")",
        "quiver-spann-full": "Quiver SPANN (SSD, f32 lists)",
        "quiver-ivf": "Quiver IVF-Flat (SSD)",
        "faiss-ivf": "faiss IndexIVFFlat (RAM)",
        "quiver-diskann": "Quiver DiskANN (SSD, no cache)",
        "quiver-diskann-ram": "Quiver DiskANN (SSD, RAM = SPANN's)",
    }
    print("| index | recall@10 | QPS | reads/q | KiB/q | index RSS MiB |")
    print("|---|---|---|---|---|---|")
    for tool, lab in label.items():
        rs = runs.get(tool, [])
        if not rs:
            continue
        rss = max(r.get("index_rss_bytes", 0) for r in rs) / MIB
        for t in (0.90, 0.95):
            print(f"| {lab} | {t:.2f} | {fmt(interp(rs, t, 'qps'), ',.0f')} | "
                  f"{fmt(interp(rs, t, 'mean_ios'), '.1f')} | "
                  f"{fmt(None if interp(rs, t, 'mean_read_bytes') is None else interp(rs, t, 'mean_read_bytes') / 1024, '.0f')} | {rss:.1f} |")
    sp, dk, dr = runs.get("quiver-spann", []), runs.get("quiver-diskann", []), runs.get("quiver-diskann-ram", [])
    print()
    for t in (0.90, 0.95):
        a, b, c = interp(sp, t, "qps"), interp(dr, t, "qps"), interp(dk, t, "qps")
        if None not in (a, b, c):
            print(f"- recall {t:.2f}: SPANN / DiskANN at comparable RAM = **{a / b:.2f}x** QPS "
                  f"(/ uncached DiskANN {a / c:.2f}x).")
    # Latency at concurrency 1 (benches/spann_latency.sh).
    c1 = {t: runs[t] for t in ("quiver-spann-c1", "quiver-diskann-ram-c1") if t in runs}
    if len(c1) == 2:
        print("\n| concurrency 1 | recall@10 | SPANN p50 us | DiskANN (same RAM) p50 us | ratio | SPANN QPS | DiskANN QPS |")
        print("|---|---|---|---|---|---|---|")
        a, b = c1["quiver-spann-c1"], c1["quiver-diskann-ram-c1"]
        for t in (0.90, 0.95):
            pa, pb = interp(a, t, "p50_us"), interp(b, t, "p50_us")
            qa, qb = interp(a, t, "qps"), interp(b, t, "qps")
            ratio = "n/a" if None in (pa, pb) else f"**{pa / pb:.2f}x**"
            print(f"| | {t:.2f} | {fmt(pa, ',.0f')} | {fmt(pb, ',.0f')} | {ratio} | {fmt(qa, ',.0f')} | {fmt(qb, ',.0f')} |")
    # Equal bytes: SPANN's recall at the bytes IVF-Flat reads.
    ivf = runs.get("quiver-ivf", [])
    if ivf and sp:
        print("\n| bytes read per query | IVF-Flat recall@10 | SPANN recall@10 |")
        print("|---|---|---|")
        for r in sorted(ivf, key=lambda r: r["mean_read_bytes"]):
            s = interp_by(sp, "mean_read_bytes", r["mean_read_bytes"], "recall")
            if s is not None:
                print(f"| {r['mean_read_bytes'] / 1024:.0f} KiB | {r['recall']:.3f} | {s:.3f} |")
    # Replication study.
    reps = sorted(int(m.group(1)) for t in runs if (m := re.fullmatch(r"quiver-spann-r(\d+)", t)))
    if reps:
        print("\n| copies (--replicas) | mean copies | lists | index MiB | recall@10, 8 lists | recall@10, 16 lists | KiB/q at 0.90 | QPS at 0.90 |")
        print("|---|---|---|---|---|---|---|---|")
        for n in reps:
            t = f"quiver-spann-r{n}"
            rs, b = runs[t], builds.get(t, {})
            at = {r["params"].get("max_lists"): r["recall"] for r in raw[t] if "rerank" not in r["params"]}
            bp = b.get("build_params", {})
            kib = interp(rs, 0.90, "mean_read_bytes")
            print(f"| {n} | {bp.get('replication', 0):.2f} | {bp.get('lists', 0):,} | "
                  f"{b.get('index_bytes', 0) / MIB:.0f} | {fmt(at.get(8), '.3f')} | {fmt(at.get(16), '.3f')} | "
                  f"{fmt(None if kib is None else kib / 1024, '.0f')} | {fmt(interp(rs, 0.90, 'qps'), ',.0f')} |")
    print("\nBuilds:")
    for t, b in builds.items():
        extra = f", index {b['index_bytes'] / MIB:.0f} MiB" if "index_bytes" in b else ""
        peak = f", peak RSS {b['peak_rss_bytes'] / MIB:.0f} MiB" if "peak_rss_bytes" in b else ""
        print(f"- {t}: {b['build_seconds']:.1f} s{peak}{extra}")
    plot(f"SPANN / IVF / DiskANN on {name}", f"QPS ({sp[0]['threads'] if sp else 2} threads)",
         {lab: runs[t] for t, lab in label.items() if t in runs}, f"docs/spann-{name}.png")


if __name__ == "__main__":
    sys.path.insert(0, "benches")
    main()
