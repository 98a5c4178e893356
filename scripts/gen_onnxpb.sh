#!/usr/bin/env bash
# Regenerates importer/onnxpb/onnx.pb.go from the onnx.proto that Debian's
# libonnx-dev installs (ONNX 1.12, IR version 8).
#
# The proto package is renamed to of3c.onnx (and the file to of3c_onnx.proto)
# in a temporary copy: protobuf-go keeps one global registry of message and file
# names, and any other Go code that registers the stock "onnx.*" names would
# make the binary panic at init with "message onnx.AttributeProto is already
# registered".
#
# Usage: scripts/gen_onnxpb.sh [OUTDIR]   (default: importer/onnxpb)
# Needs protoc on PATH and protoc-gen-go in .bin/ or on PATH.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
PROTO=${ONNX_PROTO:-/usr/include/onnx/onnx.proto}
OUT=${1:-importer/onnxpb}
case "$OUT" in /*) ;; *) OUT="$ROOT/$OUT" ;; esac

export PATH="$ROOT/.bin:$PATH"
command -v protoc >/dev/null || { echo "gen_onnxpb: protoc not found (apt install protobuf-compiler)" >&2; exit 1; }
command -v protoc-gen-go >/dev/null || { echo "gen_onnxpb: protoc-gen-go not found (make setup)" >&2; exit 1; }
[ -f "$PROTO" ] || { echo "gen_onnxpb: $PROTO not found (apt install libonnx-dev)" >&2; exit 1; }

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# Rename the package and point go_package at our module; the rest of the schema
# is untouched so the wire format is exactly ONNX's.
sed -e 's/^package onnx;$/package of3c.onnx;\noption go_package = "github.com\/of3c\/of3c\/importer\/onnxpb";/' \
  "$PROTO" > "$tmp/of3c_onnx.proto"
grep -q '^package of3c.onnx;$' "$tmp/of3c_onnx.proto" || { echo "gen_onnxpb: package line not found in $PROTO" >&2; exit 1; }

mkdir -p "$tmp/out"
protoc -I "$tmp" --go_out="$tmp/out" --go_opt=paths=source_relative "$tmp/of3c_onnx.proto"
mkdir -p "$OUT"
cp "$tmp/out/of3c_onnx.pb.go" "$OUT/onnx.pb.go"
