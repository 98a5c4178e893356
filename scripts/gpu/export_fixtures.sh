#!/usr/bin/env bash
# Export the real-OpenFold3 fixtures on a machine that has torch (the GPU machine here: torch 2.11).
# The openfold3 package and ml-collections (+ absl-py) travel as an unpacked site folder, by default
# .whl/site (openfold3 0.5.0 without its tests/ folder); see models/of3/README.md.
#
#   scripts/gpu/export_fixtures.sh OUTDIR [export.py args...]
#
# Writes OUTDIR/fixtures.tgz (testdata/ + fixtures.json, relative paths as in models/of3) and
# OUTDIR/export.log.
set -uo pipefail
cd "$(dirname "$0")/../.."
OUTDIR=${1:?usage: export_fixtures.sh OUTDIR [export.py args]}; shift
SITE=${SITE:-.whl/site}
W=$(mktemp -d)
export PYTHONPATH="$PWD/$SITE${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
python3 -c 'import torch, onnx, onnxruntime; print("torch", torch.__version__, "onnx", onnx.__version__, "ort", onnxruntime.__version__)'
python3 - <<'PY' || exit 1
import sys; sys.path.insert(0, "models/of3")
import openfold3_zoo as Z
print("openfold3", Z.PACKAGE_VERSION, "modules:", ", ".join(Z.SPECS))
print("of3 preset:", Z.PRESETS["of3"])
PY
mkdir -p "$W/testdata"
python3 models/of3/export.py --out "$W/testdata" --index "$W/fixtures.json" --log-dir "$W/logs" "$@"
rc=$?
cp "$W/logs/export.log" "$OUTDIR/export.log" 2>/dev/null
(cd "$W" && tar czf "$OUTDIR/fixtures.tgz" testdata fixtures.json)
ls -la "$OUTDIR"
exit $rc
