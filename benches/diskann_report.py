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
    ours = [r for r in rows if r.get("index") == "diskann" and "recall" in r]
    peer = [r for r in rows if r.get("index") == "diskannpy" and "recall" in r]
    build = {r["tool"]: r["build_seconds"] for r in rows if r.get("phase") == "build"}
    print(f"| recall@10 | Quiver QPS | diskannpy QPS | QPS ratio | Quiver reads/q | diskannpy reads/q | reads ratio |")
    print("|---|---|---|---|---|---|---|")
    for t in (0.90, 0.95):
        q1, q2 = interp(ours, t, "qps"), interp(peer, t, "qps")
        r1, r2 = interp(ours, t, "mean_ios"), interp(peer, t, "mean_ios")
        if None in (q1, q2, r1, r2):
            print(f"| {t:.2f} | n/a | n/a | | | | |")
            continue
        print(f"| {t:.2f} | {q1:,.0f} | {q2:,.0f} | **{q1 / q2:.2f}x** | {r1:.1f} | {r2:.1f} | **{r1 / r2:.2f}x** |")
    if "quiver" in build and "diskannpy" in build:
        print(f"\nBuild: Quiver {build['quiver']:.1f} s, diskannpy {build['diskannpy']:.1f} s "
              f"(ratio {build['quiver'] / build['diskannpy']:.2f}).")
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        fig, ax = plt.subplots(figsize=(6, 4))
        for lab, rs in (("Quiver DiskANN", ours), ("diskannpy", peer)):
            rs = sorted(rs, key=lambda r: r["recall"])
            ax.plot([r["recall"] for r in rs], [r["qps"] for r in rs], marker="o", label=lab)
        ax.set_xlabel("recall@10")
        ax.set_ylabel("QPS (2 threads, O_DIRECT, no cache)")
        ax.set_yscale("log")
        ax.set_title(f"DiskANN on {name}")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend()
        fig.tight_layout()
        fig.savefig(f"docs/diskann-{name}.png", dpi=110)
        print(f"\nplot: docs/diskann-{name}.png")
    except ImportError:
        print("\n(matplotlib missing: no plot)")


if __name__ == "__main__":
    main()
