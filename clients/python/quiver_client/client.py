"""A thin, typed wrapper over the generated gRPC stubs."""
import struct
from dataclasses import dataclass, field
from typing import Dict, Iterable, List, Optional, Sequence, Union

import grpc

from . import quiver_pb2 as pb
from . import quiver_pb2_grpc as rpc

FieldValue = Union[str, int, float]

_METRICS = {"l2": pb.L2, "ip": pb.IP, "cosine": pb.COSINE}
_KINDS = {"flat": pb.FLAT, "diskann": pb.DISKANN, "hnsw": pb.HNSW, "spann": pb.SPANN,
          "ivf": pb.IVF}
_TYPES = {"keyword": pb.KEYWORD, "integer": pb.INTEGER, "float": pb.FLOAT}


class QuiverError(Exception):
    """A call the server refused: `code` is the grpc.StatusCode, `message` its explanation."""

    def __init__(self, code, message):
        super().__init__(f"{code.name}: {message}")
        self.code = code
        self.message = message


@dataclass
class Point:
    id: int
    vector: Sequence[float]
    text: str = ""
    fields: Dict[str, FieldValue] = field(default_factory=dict)


@dataclass
class Hit:
    id: int
    score: float
    text: str
    fields: Dict[str, FieldValue]


def _value(v: FieldValue) -> pb.Value:
    if isinstance(v, bool):
        raise TypeError("booleans are not field values; use 0/1 or a keyword")
    if isinstance(v, str):
        return pb.Value(keyword=v)
    if isinstance(v, int):
        return pb.Value(integer=v)
    if isinstance(v, float):
        return pb.Value(float=v)
    raise TypeError(f"field value {v!r} is not str, int or float")


def _unvalue(v: pb.Value) -> FieldValue:
    return getattr(v, v.WhichOneof("kind"))


def _point(p: Point) -> pb.Point:
    return pb.Point(id=p.id, vector=list(p.vector), text=p.text,
                    fields={k: _value(v) for k, v in p.fields.items()})


class Filter:
    """Builders for pb.Filter: equality / set membership, ranges, and/or/not."""

    @staticmethod
    def match(field_name: str, *values: FieldValue) -> pb.Filter:
        return pb.Filter(match=pb.Match(field=field_name, any=[_value(v) for v in values]))

    @staticmethod
    def range(field_name: str, gte=None, gt=None, lte=None, lt=None) -> pb.Filter:
        r = pb.Range(field=field_name)
        for k, v in (("gte", gte), ("gt", gt), ("lte", lte), ("lt", lt)):
            if v is not None:
                setattr(r, k, float(v))
        return pb.Filter(range=r)

    @staticmethod
    def all(*fs: pb.Filter) -> pb.Filter:
        return pb.Filter(**{"and": pb.FilterList(filters=list(fs))})

    @staticmethod
    def any(*fs: pb.Filter) -> pb.Filter:
        return pb.Filter(**{"or": pb.FilterList(filters=list(fs))})

    @staticmethod
    def negate(f: pb.Filter) -> pb.Filter:
        return pb.Filter(**{"not": f})


class Client:
    """One channel to a server. `api_key` is sent as x-api-key on every call."""

    def __init__(self, address: str = "127.0.0.1:6334", api_key: Optional[str] = None,
                 max_message_bytes: int = 64 << 20, timeout: float = 60.0):
        opts = [("grpc.max_send_message_length", max_message_bytes),
                ("grpc.max_receive_message_length", max_message_bytes)]
        self.channel = grpc.insecure_channel(address, options=opts)
        self.collections = rpc.CollectionsStub(self.channel)
        self.points = rpc.PointsStub(self.channel)
        self.searcher = rpc.SearchStub(self.channel)
        self.metadata = [("x-api-key", api_key)] if api_key else None
        self.timeout = timeout

    def close(self):
        self.channel.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _call(self, fn, req):
        try:
            return fn(req, metadata=self.metadata, timeout=self.timeout)
        except grpc.RpcError as e:  # a refused call: surface code and message
            raise QuiverError(e.code(), e.details()) from None

    def wait_ready(self, timeout: float = 30.0):
        grpc.channel_ready_future(self.channel).result(timeout=timeout)

    # Collections.
    def create_collection(self, name: str, dim: int, metric: str = "cosine",
                          index: str = "hnsw", fields: Optional[Dict[str, str]] = None):
        req = pb.CreateCollectionRequest(
            name=name, dim=dim, metric=_METRICS[metric], index=_KINDS[index],
            fields=[pb.FieldSchema(name=k, type=_TYPES[t]) for k, t in (fields or {}).items()])
        return self._call(self.collections.Create, req)

    def drop_collection(self, name: str):
        self._call(self.collections.Drop, pb.CollectionName(name=name))

    def describe(self, name: str) -> pb.CollectionInfo:
        return self._call(self.collections.Describe, pb.CollectionName(name=name))

    def list_collections(self) -> List[pb.CollectionInfo]:
        return list(self._call(self.collections.List, pb.ListRequest()).collections)

    # Points.
    def upsert(self, collection: str, points: Iterable[Point]) -> int:
        req = pb.UpsertRequest(collection=collection, points=[_point(p) for p in points])
        return self._call(self.points.Upsert, req).upserted

    def upsert_stream(self, collection: str, batches: Iterable[Iterable[Point]]) -> int:
        reqs = (pb.UpsertRequest(collection=collection, points=[_point(p) for p in b])
                for b in batches)
        return self._call(self.points.UpsertStream, reqs).upserted

    def delete(self, collection: str, ids: Iterable[int]) -> int:
        return self._call(self.points.Delete,
                          pb.DeleteRequest(collection=collection, ids=list(ids))).deleted

    def get(self, collection: str, ids: Iterable[int], with_vector=False) -> List[Point]:
        r = self._call(self.points.Get, pb.GetRequest(collection=collection, ids=list(ids),
                                                      with_vector=with_vector))
        return [Point(p.id, list(p.vector), p.text, {k: _unvalue(v) for k, v in p.fields.items()})
                for p in r.points]

    def count(self, collection: str, filter: Optional[pb.Filter] = None) -> int:
        return self._call(self.points.Count, pb.CountRequest(collection=collection,
                                                             filter=filter)).count

    # Search.
    def search(self, collection: str, vector: Sequence[float], k: int = 10,
               filter: Optional[pb.Filter] = None, ef: int = 0,
               score_threshold: Optional[float] = None, with_payload: bool = True,
               lists: int = 0, rerank: Optional[int] = None) -> List[Hit]:
        """`ef`: HNSW ef and DiskANN L; `lists`: SPANN / IVF lists probed (0: defaults);
        `rerank`: SPANN candidates re-ranked at full precision (None: k; 0: none, the scores
        are then the SQ8 codes' estimates)."""
        return self.search_with_stats(collection, vector, k, filter, ef, score_threshold,
                                      with_payload, lists, rerank)[0]

    def search_with_stats(self, collection, vector, k=10, filter=None, ef=0,
                          score_threshold=None, with_payload=True, lists=0, rerank=None):
        req = pb.SearchRequest(collection=collection, vector=list(vector), k=k, filter=filter,
                               params=pb.SearchParams(ef=ef, search_list=ef, nprobe=lists,
                                                      max_lists=lists),
                               with_payload=with_payload)
        if score_threshold is not None:
            req.score_threshold = score_threshold
        if rerank is not None:
            req.params.rerank = rerank
        r = self._call(self.searcher.Search, req)
        hits = [Hit(h.id, h.score, h.text, {k: _unvalue(v) for k, v in h.fields.items()})
                for h in r.hits]
        return hits, r.stats


def _read_bin(path: str, code: str):
    """Rows of a big-ann .bin file: u32 rows, u32 columns, then rows x columns little-endian
    values of struct `code` ("f" for .fbin, "i" for .ibin), as lists, without numpy."""
    with open(path, "rb") as f:
        n, d = struct.unpack("<2I", f.read(8))
        flat = struct.unpack(f"<{n * d}{code}", f.read(n * d * 4))
    return [list(flat[i * d:(i + 1) * d]) for i in range(n)]


def read_fbin(path: str):
    """Rows of a .fbin file (f32 vectors)."""
    return _read_bin(path, "f")


def read_ibin(path: str):
    """Rows of a .ibin file (i32 ids, e.g. ground truth)."""
    return _read_bin(path, "i")
