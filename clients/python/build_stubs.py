"""Generates quiver_client/quiver_pb2*.py from server/proto/quiver.proto (the same proto the
server compiles) with grpcio-tools. Run by .ci/test and after any proto change:
    python clients/python/build_stubs.py
"""
import os
import sys

from grpc_tools import protoc

HERE = os.path.dirname(os.path.abspath(__file__))
PROTO_DIR = os.path.join(HERE, "..", "..", "server", "proto")
OUT = os.path.join(HERE, "quiver_client")


def main():
    rc = protoc.main([
        "grpc_tools.protoc",
        f"-I{PROTO_DIR}",
        f"--python_out={OUT}",
        f"--grpc_python_out={OUT}",
        os.path.join(PROTO_DIR, "quiver.proto"),
    ])
    if rc != 0:
        sys.exit(f"protoc failed with {rc}")
    # grpc's generated module imports its sibling as a top-level module; make it relative.
    path = os.path.join(OUT, "quiver_pb2_grpc.py")
    with open(path) as f:
        src = f.read()
    src = src.replace("import quiver_pb2 as quiver__pb2", "from . import quiver_pb2 as quiver__pb2")
    with open(path, "w") as f:
        f.write(src)


if __name__ == "__main__":
    main()
