"""The Python client against a real `quiver serve` over loopback: create, stream ingest, search
(recall against brute force), filtered search, delete, search again, restart, search; bad
input; and the SQuAD RAG example (hit@5/hit@10 within 1% of exact search) when the shared
dataset is present.

Run by .ci/test; QUIVER_BIN names the server binary (default: target/debug/quiver).
"""
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", "..", ".."))
sys.path.insert(0, os.path.join(HERE, ".."))
sys.path.insert(0, os.path.join(HERE, "..", "examples"))

import grpc  # noqa: E402
from quiver_client import Client, Filter, Point, QuiverError  # noqa: E402

BIN = os.environ.get("QUIVER_BIN", os.path.join(ROOT, "target", "debug", "quiver"))
SQUAD = os.path.join(ROOT, "..", "shared", "datasets", "squad-minilm")
DIM = 16


def free_port():
    # Below Linux's ephemeral range (32768-60999): a port handed out for 0 can also become the
    # source port of the client's own connect retries while the server starts, and a client
    # whose source port equals the destination connects to itself (see cli/tests/crash.rs).
    start = os.getpid() % 12000
    for i in range(12000):
        port = 20000 + (start + i) % 12000
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port below 32000")


class Server:
    def __init__(self, data_dir, flush_points=500, flat_below=200):
        self.port = free_port()
        self.args = [BIN, "serve", "--data-dir", data_dir, "--listen", f"127.0.0.1:{self.port}",
                     "--flush-points", str(flush_points), "--flat-below", str(flat_below)]
        self.log = open(os.path.join(data_dir, "..", f"server-{self.port}.log"), "w")
        self.proc = subprocess.Popen(self.args, stdout=self.log, stderr=self.log)
        self.addr = f"127.0.0.1:{self.port}"
        c = Client(self.addr)
        c.wait_ready(60)
        c.close()

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(60)
        self.log.close()


def l2(a, b):
    return sum((x - y) * (x - y) for x, y in zip(a, b))


class ClientTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp()
        self.data = os.path.join(self.tmp, "data")
        os.makedirs(self.data)

    def tearDown(self):
        shutil.rmtree(self.tmp, ignore_errors=True)

    def test_round_trip_with_restart(self):
        rng = random.Random(5)
        n = 2000
        vecs = [[rng.uniform(-1, 1) for _ in range(DIM)] for _ in range(n)]
        srv = Server(self.data)
        try:
            c = Client(srv.addr)
            c.create_collection("docs", dim=DIM, metric="l2", index="hnsw",
                                fields={"tag": "keyword", "n": "integer"})
            pts = [Point(i, vecs[i], f"chunk {i}", {"tag": f"t{i % 20}", "n": i}) for i in range(n)]
            self.assertEqual(c.upsert_stream("docs", (pts[s:s + 250] for s in range(0, n, 250))), n)
            queries = [[rng.uniform(-1, 1) for _ in range(DIM)] for _ in range(20)]
            live = set(range(n))

            def exact(q, keep=lambda i: True, k=10):
                return [i for _, i in sorted((l2(vecs[i], q), i) for i in live if keep(i))[:k]]

            def check(filter=None, keep=lambda i: True):
                total = 0.0
                for q in queries:
                    hits = c.search("docs", q, k=10, filter=filter)
                    self.assertEqual(len(hits), 10)
                    ids = [h.id for h in hits]
                    self.assertTrue(all(i in live and keep(i) for i in ids))
                    self.assertTrue(all(h.text == f"chunk {h.id}" for h in hits))
                    total += len(set(ids) & set(exact(q, keep))) / 10
                return total / len(queries)

            self.assertGreaterEqual(check(), 0.9)
            # `rerank` only concerns SPANN segments; here it goes over the wire and changes nothing.
            q0 = queries[0]
            self.assertEqual([(h.id, h.score) for h in c.search("docs", q0, rerank=0)],
                             [(h.id, h.score) for h in c.search("docs", q0)])
            self.assertGreaterEqual(check(Filter.match("tag", "t3"), lambda i: i % 20 == 3), 0.9)
            self.assertGreaterEqual(
                check(Filter.all(Filter.range("n", gte=500, lt=1500),
                                 Filter.negate(Filter.match("tag", "t1"))),
                      lambda i: 500 <= i < 1500 and i % 20 != 1), 0.9)
            gone = sorted({i for q in queries for i in exact(q, k=3)} | set(range(0, n, 7)))
            self.assertEqual(c.delete("docs", gone), len(gone))
            live -= set(gone)
            self.assertGreaterEqual(check(), 0.9)
            self.assertEqual(c.count("docs"), len(live))
            # Bad input: clear codes, nothing changed.
            with self.assertRaises(QuiverError) as e:
                c.upsert("docs", [Point(1, vecs[1][:-1])])
            self.assertEqual(e.exception.code, grpc.StatusCode.INVALID_ARGUMENT)
            self.assertIn("dimension 15", e.exception.message)
            with self.assertRaises(QuiverError) as e:
                c.search("nope", queries[0])
            self.assertEqual(e.exception.code, grpc.StatusCode.NOT_FOUND)
            with self.assertRaises(QuiverError) as e:
                c.search("docs", queries[0], filter=Filter.match("color", "red"))
            self.assertEqual(e.exception.code, grpc.StatusCode.INVALID_ARGUMENT)
            self.assertEqual(c.count("docs"), len(live))
            c.close()
        finally:
            srv.stop()
        srv = Server(self.data)
        try:
            c = Client(srv.addr)
            self.assertEqual(c.count("docs"), len(live))
            self.assertGreaterEqual(check(), 0.9)
            c.close()
        finally:
            srv.stop()

    @unittest.skipUnless(os.path.exists(os.path.join(SQUAD, "base.fbin")), "no shared dataset")
    def test_rag_on_squad_matches_exact_search(self):
        import rag_squad
        # Segments of 10,000 passages, built as HNSW: the answer comes from the index.
        srv = Server(self.data, flush_points=10000, flat_below=1000)
        try:
            res = rag_squad.run(srv.addr, SQUAD, questions=2000, quiet=True, ef=128)
        finally:
            srv.stop()
        self.assertGreaterEqual(res["hit@5"], res["exact_hit@5"] - 0.01, res)
        self.assertGreaterEqual(res["hit@10"], res["exact_hit@10"] - 0.01, res)


if __name__ == "__main__":
    unittest.main()
