"""diskannpy side of the DiskANN comparison (run by benches/diskann_compare.sh, not by CI).

Builds a disk index with the same R, L and PQ bytes as Quiver and sweeps the search list,
printing one JSON line per setting with the keys of docs/BENCHMARKS.md. diskannpy reports no
I/O counts, so reads per query come from this process's /proc/self/io read_bytes (its reads are
O_DIRECT 4 KiB sectors, so they reach the block layer and are counted there).
"""
import argparse, json, os, sys, time
import numpy as np
import diskannpy as dap


def read_bin(path, dtype):
    with open(path, "rb") as f:
        n, d = np.fromfile(f, dtype=np.int32, count=2)
        return np.fromfile(f, dtype=dtype, count=int(n) * int(d)).reshape(int(n), int(d))


def io_read_bytes():
    with open("/proc/self/io") as f:
        for line in f:
            if line.startswith("read_bytes:"):
                return int(line.split()[1])
    return 0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", required=True)
    ap.add_argument("--queries", required=True)
    ap.add_argument("--gt", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--dataset", required=True)
    ap.add_argument("--metric", default="l2")
    ap.add_argument("--R", type=int, default=64)
    ap.add_argument("--L", type=int, default=100)
    ap.add_argument("--pq-bytes", type=int, required=True)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--beam-width", type=int, default=4)
    ap.add_argument("--cache-nodes", type=int, default=0)
    ap.add_argument("--search-lists", default="10,20,30,40,50,70,100,150,200")
    ap.add_argument("-k", type=int, default=10)
    ap.add_argument("--skip-build", action="store_true")
    a = ap.parse_args()
    n, dim = (int(x) for x in np.fromfile(a.data, dtype=np.int32, count=2))
    q = read_bin(a.queries, np.float32)
    gt = read_bin(a.gt, np.int32)[:, : a.k]
    q = q[: gt.shape[0]]
    metric = {"l2": "l2", "ip": "mips", "cosine": "cosine"}[a.metric]
    if not a.skip_build:
        os.makedirs(a.out, exist_ok=True)
        # DiskANN derives PQ bytes as floor(budget_bytes / n) when the budget is under 1.25 GB;
        # the half byte of slack keeps the floor at exactly --pq-bytes. The build log's
        # "Compressing ... into N bytes per vector" line confirms the value used.
        budget_gb = (a.pq_bytes + 0.5) * n / 2**30
        t = time.time()
        dap.build_disk_index(data=a.data, distance_metric=metric, index_directory=a.out,
                             complexity=a.L, graph_degree=a.R, search_memory_maximum=budget_gb,
                             build_memory_maximum=16.0, num_threads=a.threads,
                             vector_dtype=np.float32)
        print(json.dumps({"tool": "diskannpy", "dataset": a.dataset, "phase": "build",
                          "n": int(n), "dim": int(dim), "R": a.R, "L": a.L,
                          "pq_bytes_requested": a.pq_bytes, "search_memory_maximum_gb": budget_gb,
                          "threads": a.threads, "build_seconds": time.time() - t}), flush=True)
    rss0 = int(open("/proc/self/statm").read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    idx = dap.StaticDiskIndex(index_directory=a.out, num_threads=a.threads,
                              num_nodes_to_cache=a.cache_nodes, distance_metric=metric,
                              vector_dtype=np.float32, dimensions=int(dim))
    idx.batch_search(q[:200], a.k, 50, a.threads, a.beam_width)  # warm-up
    for L in [int(x) for x in a.search_lists.split(",")]:
        L = max(L, a.k)
        b0 = io_read_bytes()
        t = time.time()
        res = idx.batch_search(q, a.k, L, a.threads, a.beam_width)
        wall = time.time() - t
        rb = io_read_bytes() - b0
        ids = res.identifiers if hasattr(res, "identifiers") else res[0]
        hits = sum(len(set(ids[i][: a.k].tolist()) & set(gt[i].tolist())) for i in range(len(q)))
        rss = int(open("/proc/self/statm").read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
        print(json.dumps({"tool": "diskannpy", "dataset": a.dataset, "n": int(n), "dim": int(dim),
                          "k": a.k, "index": "diskannpy", "params": {"search_list": L,
                          "beam_width": a.beam_width}, "threads": a.threads,
                          "cache_nodes": a.cache_nodes, "recall": hits / (len(q) * a.k),
                          "qps": len(q) / wall, "mean_read_bytes": rb / len(q),
                          "mean_ios": rb / 4096 / len(q), "rss_bytes": rss,
                          "rss_after_open_minus_before": rss - rss0, "queries": len(q)}),
              flush=True)


if __name__ == "__main__":
    sys.exit(main())
