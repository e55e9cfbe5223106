"""The peer of the SPANN / IVF comparison (run by benches/spann_compare.sh, not by CI): faiss
IndexIVFFlat in RAM, trained on the base set with nlist lists (default 4 * sqrt(n), the usual
faiss guidance), searched on --threads threads over an nprobe sweep. One JSON line per build and
per setting, with the keys of docs/BENCHMARKS.md. Run with the peer venv: /work/venvs/ann/bin/python.
"""
import argparse, json, os, sys, time
import numpy as np


def read_bin(path, dtype):
    with open(path, "rb") as f:
        n, d = np.fromfile(f, dtype=np.int32, count=2)
        return np.fromfile(f, dtype=dtype, count=int(n) * int(d)).reshape(int(n), int(d))


def recall(ids, gt, k):
    return sum(len(set(ids[i][:k].tolist()) & set(gt[i].tolist())) for i in range(len(gt))) / (len(gt) * k)


def rss():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", required=True)
    ap.add_argument("--queries", required=True)
    ap.add_argument("--gt", required=True)
    ap.add_argument("--dataset", required=True)
    ap.add_argument("--metric", default="l2")
    ap.add_argument("--nlist", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--nprobes", default="1,2,4,8,12,16,24,32,48,64,96,128,192,256")
    ap.add_argument("-k", type=int, default=10)
    a = ap.parse_args()
    import faiss
    faiss.omp_set_num_threads(a.threads)
    x = read_bin(a.data, np.float32)
    q = read_bin(a.queries, np.float32)
    gt = read_bin(a.gt, np.int32)[:, : a.k]
    q = np.ascontiguousarray(q[: len(gt)])
    metric = faiss.METRIC_L2
    if a.metric in ("cosine", "ip"):
        if a.metric == "cosine":
            x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-30)
            q = q / np.maximum(np.linalg.norm(q, axis=1, keepdims=True), 1e-30)
        metric = faiss.METRIC_INNER_PRODUCT
    x = np.ascontiguousarray(x, dtype=np.float32)
    nlist = a.nlist or int(4 * np.sqrt(len(x)))
    before = rss()
    t = time.time()
    quant = faiss.IndexFlat(x.shape[1], metric)
    idx = faiss.IndexIVFFlat(quant, x.shape[1], nlist, metric)
    idx.train(x)
    idx.add(x)
    print(json.dumps(dict(tool="faiss-ivf", phase="build", dataset=a.dataset, n=len(x), dim=x.shape[1],
                          nlist=nlist, threads=a.threads, build_seconds=time.time() - t)), flush=True)
    index_rss = rss() - before
    for nprobe in [int(p) for p in a.nprobes.split(",")]:
        if nprobe > nlist:
            break
        idx.nprobe = nprobe
        # Queries in batches of 8 per thread, as the Rust bench hands groups to each thread.
        t = time.time()
        ids = np.concatenate([idx.search(q[i:i + 16], a.k)[1] for i in range(0, len(q), 16)])
        wall = time.time() - t
        r = recall(ids, gt, a.k)
        print(json.dumps(dict(tool="faiss-ivf", index="faiss-ivf", dataset=a.dataset, n=len(x),
                              dim=x.shape[1], k=a.k, params={"nprobe": nprobe, "nlist": nlist},
                              threads=a.threads, recall=r, qps=len(q) / wall, queries=len(q),
                              index_rss_bytes=index_rss, mean_read_bytes=0, mean_ios=0,
                              mean_distances=nprobe * len(x) / nlist)), flush=True)
        if r >= 0.995:
            break


if __name__ == "__main__":
    sys.exit(main())
