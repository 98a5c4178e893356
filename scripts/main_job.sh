#!/usr/bin/env bash
# The main job (`make run`): compile the bundled default model, run it on its
# bundled inputs, check it against the recorded PyTorch outputs, and compare
# time and peak memory with onnxruntime on the same ONNX file.
set -euo pipefail
cd "$(dirname "$0")/.."

FIXTURE=${FIXTURE:-models/of3/testdata/pairformer_stack_tiny_torchscript}
REPEAT=${REPEAT:-20}
OUT=${OUT_DIR:-.cache/main-job}
mkdir -p "$OUT"
model="$FIXTURE/model.onnx"

echo "== of3c: $(bin/of3c version | head -2 | paste -sd' ')"
echo "== model: $model (the openfold3 package's PairFormerStack, tiny preset, TorchScript export; PyTorch outputs recorded at export)"
echo
echo "== compile"
bin/of3c compile "$model" -o "$OUT/model.of3"
echo

for ds in "$FIXTURE"/test_data_set_*; do
  echo "== run on $(basename "$ds") (MLX cpu), checked against PyTorch"
  bin/of3c run "$OUT/model.of3" --inputs "$ds" --check "$ds" --repeat "$REPEAT" -o "$OUT/$(basename "$ds").npz" 2>&1
  echo
done

ds="$FIXTURE/test_data_set_1"
echo "== onnxruntime on the same file and inputs ($(basename "$ds"))"
.venv/bin/python scripts/ort_peer.py "$model" "$ds" --repeat "$REPEAT" | .venv/bin/python -c '
import json, sys
r = json.load(sys.stdin)
print("first call %.1f ms (session creation included)" % r["first_ms"])
print("median %.3f ms over %s runs, %d threads" % (r["median_ms"], sys.argv[1], r["threads"]))
print("peak memory: process RSS %.1f MiB" % (r["peak_rss_bytes"] / 2**20))
print("max abs err %.3g" % r["max_abs_err"])
' "$REPEAT"
