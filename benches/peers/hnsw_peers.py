"""The peers of the HNSW comparison (run by benches/hnsw_compare.sh, not by CI): hnswlib, faiss
IndexHNSWFlat and usearch, each built with the same M, ef_construction and metric on --threads
threads, then searched single-threaded over an ef sweep. One JSON line per build and per setting,
with the keys of docs/BENCHMARKS.md. Run with the peer venv: /work/venvs/ann/bin/python.
"""
import argparse, json, sys, time
import numpy as np


def read_bin(path, dtype):
    with open(path, "rb") as f:
        n, d = np.fromfile(f, dtype=np.int32, count=2)
        return np.fromfile(f, dtype=dtype, count=int(n) * int(d)).reshape(int(n), int(d))


def recall(ids, gt, k):
    return sum(len(set(ids[i][:k].tolist()) & set(gt[i].tolist())) for i in range(len(gt))) / (len(gt) * k)


def emit(**kw):
    print(json.dumps(kw), flush=True)


def run_hnswlib(a, x, q, gt, space):
    import hnswlib
    idx = hnswlib.Index(space=space, dim=x.shape[1])
    t = time.time()
    idx.init_index(max_elements=len(x), ef_construction=a.efc, M=a.M, random_seed=42)
    idx.set_num_threads(a.threads)
    idx.add_items(x, np.arange(len(x)))
    yield "build", time.time() - t
    idx.set_num_threads(1)
    for ef in a.efs:
        idx.set_ef(max(ef, a.k))
        t = time.time()
        ids, _ = idx.knn_query(q, k=a.k, num_threads=1)
        yield ef, (time.time() - t, ids)


def run_faiss(a, x, q, gt, space):
    import faiss
    metric = faiss.METRIC_L2 if space == "l2" else faiss.METRIC_INNER_PRODUCT
    idx = faiss.IndexHNSWFlat(x.shape[1], a.M, metric)
    idx.hnsw.efConstruction = a.efc
    faiss.omp_set_num_threads(a.threads)
    t = time.time()
    idx.add(x)
    yield "build", time.time() - t
    faiss.omp_set_num_threads(1)
    for ef in a.efs:
        idx.hnsw.efSearch = max(ef, a.k)
        t = time.time()
        _, ids = idx.search(q, a.k)
        yield ef, (time.time() - t, ids)


def run_usearch(a, x, q, gt, space):
    from usearch.index import Index
    metric = {"l2": "l2sq", "ip": "ip", "cosine": "cos"}[space]
    idx = Index(ndim=x.shape[1], metric=metric, dtype="f32", connectivity=a.M,
                expansion_add=a.efc, expansion_search=64)
    t = time.time()
    idx.add(np.arange(len(x)), x, threads=a.threads)
    yield "build", time.time() - t
    for ef in a.efs:
        idx.expansion_search = max(ef, a.k)
        t = time.time()
        res = idx.search(q, a.k, threads=1)
        yield ef, (time.time() - t, res.keys)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", required=True)
    ap.add_argument("--queries", required=True)
    ap.add_argument("--gt", required=True)
    ap.add_argument("--dataset", required=True)
    ap.add_argument("--metric", default="l2")
    ap.add_argument("--M", type=int, default=16)
    ap.add_argument("--efc", type=int, default=200)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--efs", default="10,16,24,32,48,64,96,128,192,256,384,512")
    ap.add_argument("--peers", default="hnswlib,faiss,usearch")
    ap.add_argument("-k", type=int, default=10)
    a = ap.parse_args()
    a.efs = [int(e) for e in a.efs.split(",")]
    x = read_bin(a.data, np.float32)
    q = read_bin(a.queries, np.float32)
    gt = read_bin(a.gt, np.int32)[:, : a.k]
    q = np.ascontiguousarray(q[: len(gt)])
    space = a.metric
    if space == "cosine":
        # hnswlib and faiss have no cosine on raw rows: normalise and use inner product.
        x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-30)
        q = q / np.maximum(np.linalg.norm(q, axis=1, keepdims=True), 1e-30)
        space = "ip"
    x = np.ascontiguousarray(x, dtype=np.float32)
    runners = {"hnswlib": run_hnswlib, "faiss": run_faiss, "usearch": run_usearch}
    for name in a.peers.split(","):
        for key, val in runners[name](a, x, q, gt, space):
            if key == "build":
                emit(tool=name, phase="build", dataset=a.dataset, n=len(x), dim=x.shape[1],
                     M=a.M, ef_construction=a.efc, threads=a.threads, build_seconds=val)
                continue
            wall, ids = val
            r = recall(np.asarray(ids), gt, a.k)
            emit(tool=name, index=name, dataset=a.dataset, n=len(x), dim=x.shape[1], k=a.k,
                 params={"ef": key}, threads=1, recall=r, qps=len(q) / wall, queries=len(q))
            if r >= 0.995:
                break


if __name__ == "__main__":
    sys.exit(main())
