"""RAG retrieval on SQuAD with Quiver: ingest every passage (MiniLM vector + text + title) into a
collection, answer the dev questions, print the retrieved passages for a few, and report how
often the gold passage is in the top 5 / top 10 - next to exact search (the dataset's
ground truth) as the reference.

    quiver serve &                      # or any running server
    python clients/python/examples/rag_squad.py --data ../shared/datasets/squad-minilm
"""
import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from quiver_client import Client, Point  # noqa: E402
from quiver_client.client import read_fbin, read_ibin  # noqa: E402


def run(server, data, collection="squad", questions=None, show=3, batch=512, index="hnsw",
        ef=0, quiet=False):
    out = (lambda *a: None) if quiet else print
    base = read_fbin(os.path.join(data, "base.fbin"))
    with open(os.path.join(data, "passages.jsonl")) as f:
        passages = [json.loads(l) for l in f]
    assert len(passages) == len(base), "passages.jsonl and base.fbin disagree"
    queries = read_fbin(os.path.join(data, "query.fbin"))
    with open(os.path.join(data, "questions.jsonl")) as f:
        qs = [json.loads(l) for l in f]
    gold = [g[0] for g in read_ibin(os.path.join(data, "gold.ibin"))]
    gt = read_ibin(os.path.join(data, "gt.ibin"))
    nq = len(queries) if questions is None else min(questions, len(queries))

    c = Client(server)
    c.wait_ready()
    names = [i.name for i in c.list_collections()]
    if collection in names:
        c.drop_collection(collection)
    # MiniLM vectors are unit length: cosine.
    c.create_collection(collection, dim=len(base[0]), metric="cosine", index=index,
                        fields={"title": "keyword"})
    t0 = time.time()

    def batches():
        for s in range(0, len(base), batch):
            yield [Point(i, base[i], passages[i]["text"], {"title": passages[i]["title"]})
                   for i in range(s, min(s + batch, len(base)))]

    n = c.upsert_stream(collection, batches())
    ingest_s = time.time() - t0
    out(f"ingested {n} passages in {ingest_s:.1f} s ({n / ingest_s:.0f}/s)")

    hit5 = hit10 = ex5 = ex10 = 0
    t0 = time.time()
    for qi in range(nq):
        hits = c.search(collection, queries[qi], k=10, ef=ef, with_payload=qi < show)
        ids = [h.id for h in hits]
        hit5 += gold[qi] in ids[:5]
        hit10 += gold[qi] in ids[:10]
        ex5 += gold[qi] in gt[qi][:5]
        ex10 += gold[qi] in gt[qi][:10]
        if qi < show:
            out(f"\nQ: {qs[qi]['text']}  (answer: {qs[qi]['answers'][0]})")
            for h in hits[:3]:
                mark = "*" if h.id == gold[qi] else " "
                out(f" {mark} {h.score:.3f} [{h.fields.get('title')}] {h.text[:140]}")
    search_s = time.time() - t0
    res = {
        "questions": nq, "hit@5": hit5 / nq, "hit@10": hit10 / nq,
        "exact_hit@5": ex5 / nq, "exact_hit@10": ex10 / nq,
        "ingest_points_per_s": n / ingest_s, "search_qps_one_client": nq / search_s,
    }
    out("\n" + json.dumps(res))
    c.close()
    return res


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--server", default="127.0.0.1:6334")
    ap.add_argument("--data", default=os.path.join(os.path.dirname(__file__),
                                                   "../../../../shared/datasets/squad-minilm"))
    ap.add_argument("--collection", default="squad")
    ap.add_argument("--questions", type=int, default=None, help="how many (default: all)")
    ap.add_argument("--show", type=int, default=3, help="questions whose passages are printed")
    ap.add_argument("--index", default="hnsw", choices=["hnsw", "diskann", "flat"])
    ap.add_argument("--ef", type=int, default=0, help="search list / ef (0: the index default)")
    a = ap.parse_args()
    run(a.server, a.data, a.collection, a.questions, a.show, index=a.index, ef=a.ef)


if __name__ == "__main__":
    main()
