#!/usr/bin/env bash
# Installs everything of3c needs on a fresh Debian machine. Idempotent: every
# step checks first and does nothing when its result is already there.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)

say() { echo "setup: $*" >&2; }

# --- Debian packages -------------------------------------------------------
# protobuf-compiler + libonnx-dev: onnx.proto and protoc, to check the generated
#   ONNX Go types are current; libonnx-testdata: ONNX backend node tests
#   (conformance); libopenblas0-pthread: optimized BLAS measured against the
#   reference BLAS bundled in the mlx-cpu wheel (docs/notes/PERFORMANCE.md).
DEB_PKGS="protobuf-compiler libonnx-dev libonnx-testdata libopenblas0-pthread"
missing=""
for p in $DEB_PKGS; do
  dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"
done
if [ -n "$missing" ]; then
  say "installing Debian packages:$missing"
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq $missing >/dev/null
fi

# --- Python virtual environment -------------------------------------------
PY_REQS="$ROOT/scripts/requirements.txt"
if [ ! -x .venv/bin/python ]; then
  say "creating .venv"
  python3 -m venv .venv
fi
stamp=.venv/.reqs-sha
want=$(sha256sum "$PY_REQS" | cut -d' ' -f1)
if [ "$(cat $stamp 2>/dev/null)" != "$want" ]; then
  say "installing Python packages into .venv"
  .venv/bin/pip install -q --disable-pip-version-check -r "$PY_REQS"
  echo "$want" > $stamp
fi

# --- MLX location for cgo ---------------------------------------------------
# The mlx-cpu wheel ships include/ and lib/libmlx.so under site-packages/mlx.
# A stable symlink .mlx -> that folder lets runtime/mlx's #cgo lines use
# ${SRCDIR}/../../.mlx without hand-set variables (go build/test/vet and
# editors all work). The wheel's own layout is kept: libmlx finds its headers
# relative to itself for run-time compilation.
site=$(.venv/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["platlib"])')
if [ ! -f "$site/mlx/lib/libmlx.so" ]; then
  echo "setup: libmlx.so not found under $site/mlx (is mlx-cpu installed?)" >&2; exit 1
fi
if [ "$(readlink .mlx 2>/dev/null)" != "$site/mlx" ]; then
  ln -sfn "$site/mlx" .mlx
fi

# --- Go modules and tools ---------------------------------------------------
go mod download
if [ ! -x .bin/protoc-gen-go ]; then
  say "installing protoc-gen-go into .bin/"
  GOBIN="$ROOT/.bin" go install google.golang.org/protobuf/cmd/protoc-gen-go@v1.36.11
fi
