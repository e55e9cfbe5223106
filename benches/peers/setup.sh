#!/usr/bin/env bash
# Creates the peer venvs outside the repo (run by hand, not by CI):
#   $PEERS/ann     faiss-cpu, hnswlib, usearch (+ numpy, matplotlib for plots)
#   $PEERS/diskann diskannpy (it pins its own numpy)
set -euo pipefail
PEERS=${PEERS:-/work/venvs}
mkdir -p "$PEERS"
[ -x "$PEERS/diskann/bin/python" ] || python3 -m venv "$PEERS/diskann"
"$PEERS/diskann/bin/pip" install -q diskannpy
[ -x "$PEERS/ann/bin/python" ] || python3 -m venv "$PEERS/ann"
"$PEERS/ann/bin/pip" install -q faiss-cpu hnswlib usearch numpy matplotlib
echo "peers ready under $PEERS"
