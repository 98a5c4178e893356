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

# --- Which MLX build -------------------------------------------------------
# MLX=cpu installs mlx-cpu; MLX=cuda installs mlx-cuda-13, the same
# MLX version built for CUDA 13, whose pip dependencies bring every NVIDIA
# library it needs (cuBLAS, cuDNN, NCCL, cuFFT, cuSOLVER, NVRTC, the CUDA
# runtime). Both wheels put libmlx.so and the headers under
# site-packages/mlx, so the .mlx link below and the build are the same.
# libmlx.so of the CUDA wheel needs the NVIDIA driver (libcuda.so.1): where
# there is none, setup says so and installs the CPU build instead.
# Without MLX, the build installed last is kept (make setup MLX=cuda once,
# then plain make test stays on CUDA).
if [ -z "${MLX:-}" ]; then
  case "$(cut -d' ' -f2 .venv/.reqs-sha 2>/dev/null)" in
    mlx-cuda-13) MLX=cuda ;;
    *) MLX=cpu ;;
  esac
fi
MLX_VERSION=0.32.4
case "$MLX" in
  cpu) ;;
  cuda)
    if ! { /sbin/ldconfig -p 2>/dev/null || ldconfig -p 2>/dev/null; } | grep -q 'libcuda\.so\.1'; then
      say "MLX=cuda: no NVIDIA driver here (libcuda.so.1 not found); installing MLX's CPU build instead (--device cpu only)"
      MLX=cpu
    fi ;;
  *) echo "setup: MLX=$MLX: want cpu or cuda" >&2; exit 2 ;;
esac
if [ "$MLX" = cuda ]; then MLX_PKG=mlx-cuda-13; OTHER_PKG=mlx-cpu; else MLX_PKG=mlx-cpu; OTHER_PKG=mlx-cuda-13; fi

# --- Python virtual environment -------------------------------------------
PY_REQS="$ROOT/scripts/requirements.txt"
if [ ! -x .venv/bin/python ]; then
  say "creating .venv"
  python3 -m venv .venv
fi
stamp=.venv/.reqs-sha
want="$(sha256sum "$PY_REQS" | cut -d' ' -f1) $MLX_PKG"
if [ "$(cat $stamp 2>/dev/null)" != "$want" ]; then
  say "installing Python packages into .venv ($MLX_PKG==$MLX_VERSION)"
  reqs=$(mktemp)
  trap 'rm -f "$reqs"' EXIT
  grep -v '^mlx-cpu==' "$PY_REQS" > "$reqs"
  echo "$MLX_PKG==$MLX_VERSION" >> "$reqs"
  # The two MLX wheels own the same files: remove the other one first, and
  # reinstall this one in case the removal took files it shares.
  switched=""
  if .venv/bin/pip show -q "$OTHER_PKG" >/dev/null 2>&1; then
    say "removing $OTHER_PKG (MLX=$MLX)"
    .venv/bin/pip uninstall -q -y "$OTHER_PKG"
    switched=1
  fi
  .venv/bin/pip install -q --disable-pip-version-check -r "$reqs"
  if [ -n "$switched" ]; then
    .venv/bin/pip install -q --disable-pip-version-check --force-reinstall --no-deps "$MLX_PKG==$MLX_VERSION"
  fi
  echo "$want" > $stamp
fi

# --- MLX location for cgo ---------------------------------------------------
# The mlx-cpu wheel ships include/ and lib/libmlx.so under site-packages/mlx.
# A stable symlink .mlx -> that folder lets internal/mlx's #cgo lines use
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

# --- C library and Python package ------------------------------------------
# bin/libof3c.so (the C API, cmd/libof3c) and the of3c Python package, so
# that `.venv/bin/python -c 'import of3c'` works. The package is installed
# editable, as a .pth file naming python/ (no build step, no network): it
# loads bin/libof3c.so from this repository. go build is incremental.
mkdir -p bin
go build -buildmode=c-shared -o bin/libof3c.so ./cmd/libof3c
rm -f bin/libof3c.h
pth="$site/of3c-repo.pth"
if [ "$(cat "$pth" 2>/dev/null)" != "$ROOT/python" ]; then
  say "installing the of3c Python package into .venv (editable: $pth)"
  echo "$ROOT/python" > "$pth"
fi
