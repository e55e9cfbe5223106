"""Turns benches/results/diskann-NAME.jsonl into the docs/BENCHMARKS.md table (QPS and reads per
query interpolated at recall@10 = 0.90 and 0.95, build times) and a recall-vs-QPS plot
docs/diskann-NAME.png. Run with the peer venv's python (matplotlib):
  /work/venvs/ann/bin/python benches/diskann_report.py NAME
"""
import json, sys


def interp(rows, target, key):
    rows = sorted(rows, key=lambda r: r["recall"])
    for a, b in zip(rows, rows[1:]):
        if a["recall"] <= target <= b["recall"]:
            if b["recall"] == a["recall"]:
                return a[key]
            t = (target - a["recall"]) / (b["recall"] - a["recall"])
            return a[key] + t * (b[key] - a[key])
    return None


def main():
    name = sys.argv[1]
    rows = [json.loads(l) for l in open(f"benches/results/diskann-{name}.jsonl") if l.startswith("{")]
    def cached(r):
        return (r.get("hot_nodes") or r.get("cache_nodes") or 0)

    searched = [r for r in rows if "recall" in r]
    ours_all = [r for r in searched if r.get("index") == "diskann"]
    peer_all = [r for r in searched if r.get("index") == "diskannpy"]
    build = {r["tool"]: r for r in rows if r.get("phase") == "build"}
    for nodes in sorted({cached(r) for r in searched}):
        ours = [r for r in ours_all if cached(r) == nodes]
        peer = [r for r in peer_all if cached(r) == nodes]
        print(f"\n{nodes:,} cached nodes each:\n")
        print("| recall@10 | Quiver QPS | diskannpy QPS | QPS ratio | Quiver reads/q | diskannpy reads/q | reads ratio |")
        print("|---|---|---|---|---|---|---|")
        for t in (0.90, 0.95):
            q1, q2 = interp(ours, t, "qps"), interp(peer, t, "qps")
            r1, r2 = interp(ours, t, "mean_ios"), interp(peer, t, "mean_ios")
            if None in (q1, q2, r1, r2):
                print(f"| {t:.2f} | n/a | n/a | | | | |")
                continue
            print(f"| {t:.2f} | {q1:,.0f} | {q2:,.0f} | **{q1 / q2:.2f}x** | {r1:.1f} | {r2:.1f} | **{r1 / r2:.2f}x** |")
        if ours and peer:
            o, p = ours[-1], peer[-1]
            mib = 2**20
            budget = o.get("index_memory_bytes", 0)
            print(f"\nIndex RSS after open and the sweep, minus before open: Quiver "
                  f"{o.get('index_rss_bytes', 0) / mib:.1f} MiB (by design {budget / mib:.1f} MiB: "
                  f"{', '.join(f'{k} {v / mib:.1f}' for k, v in o.get('index_memory', {}).items())}; "
                  f"target <= 1.1 x design + 32 = {1.1 * budget / mib + 32:.1f} MiB), diskannpy "
                  f"{p.get('rss_after_open_minus_before', 0) / mib:.1f} MiB.")
    if "quiver" in build and "diskannpy" in build:
        b1, b2 = build["quiver"], build["diskannpy"]
        print(f"\nBuild: Quiver {b1['build_seconds']:.1f} s (peak RSS "
              f"{b1.get('peak_rss_bytes', 0) / 2**20:.0f} MiB), diskannpy {b2['build_seconds']:.1f} s "
              f"(ratio {b1['build_seconds'] / b2['build_seconds']:.2f}).")
    ours, peer = [r for r in ours_all if not cached(r)], [r for r in peer_all if not cached(r)]
    plot(f"DiskANN on {name}", "QPS (2 threads, O_DIRECT, no cache)",
         {"Quiver DiskANN": ours, "diskannpy": peer}, f"docs/diskann-{name}.png")


def plot(title, ylabel, series, path):
    """Recall@10 vs QPS (log) of each labelled list of rows, saved as a PNG at path."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("\n(matplotlib missing: no plot)")
        return
    fig, ax = plt.subplots(figsize=(6, 4))
    for lab, rs in series.items():
        rs = sorted(rs, key=lambda r: r["recall"])
        ax.plot([r["recall"] for r in rs], [r["qps"] for r in rs], marker="o", label=lab)
    ax.set_xlabel("recall@10")
    ax.set_ylabel(ylabel)
    ax.set_yscale("log")
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    print(f"\nplot: {path}")


if __name__ == "__main__":
    main()
