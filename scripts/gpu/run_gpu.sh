#!/usr/bin/env bash
# of3c on an NVIDIA GPU through MLX's CUDA backend (mlx-cuda-13 0.32.4's libmlx.so, same headers as the
# mlx-cpu wheel bin/of3c is built against). See docs/notes/GPU.md for how it was run and what came out.
#
#   scripts/gpu/run_gpu.sh stage DIR      copy DIR/part.* into /tmp/mlxcuda_parts (transport in pieces)
#   scripts/gpu/run_gpu.sh env            print the exports the other steps use
#   scripts/gpu/run_gpu.sh torch          PyTorch / onnxruntime peers + inputs (scripts/gpu/torch_peer.py)
#   scripts/gpu/run_gpu.sh main           assemble + unpack libmlx (if needed), then steps 1-3 with of3c
#   scripts/gpu/run_gpu.sh export         real-width openfold3 fixtures into models/of3/generated (torch)
#   scripts/gpu/run_gpu.sh stack          the 48-block PairFormerStack as one artifact: CPU + GPU parity, GPU timings
#   scripts/gpu/run_gpu.sh wheel          the user's set-up (issue 13): the mlx-cuda-13 wheel's files in a site-packages
#                                         folder beside the NVIDIA wheels, .mlx pointing there, NO LD_LIBRARY_PATH or
#                                         CUDA_HOME: of3c version, a fixture on the GPU, the Python package and its
#                                         OpenFold3 adapter with torch (python/tests)
#
# Knobs: STEPS="2 3" (order of step 2 = fixtures, step 3 = real sizes; step 1 always), FIXTURES="...",
# NS=256,384, REPEAT=20, TMO=180 (per-command timeout, s), WORK=/tmp/gpu, MLXDIR=/tmp/mlxcuda, OF3C=bin/of3c.
# The exact call sequence used on the device is in docs/notes/GPU.md ("Rerunning").
#
# The library comes from mlx_cuda_13-0.32.4-py3-none-manylinux_2_35_x86_64.whl: its mlx/lib and
# mlx_cuda_13.libs folders, tarred, `xz -T2 -6`, split into 30 MB parts (.devfix/p{1,2,3}/part.K);
# MLXDIR (default /tmp/mlxcuda) is where it is unpacked, or where an already unpacked copy lives.
# The CUDA 13 runtime libraries (cuBLAS, cuDNN, NVRTC, cuFFT, cuSOLVER, NCCL) are taken from the
# nvidia/*/lib folders of the python3 that holds torch (torch 2.11+cu130).
set -uo pipefail
cd "$(dirname "$0")/../.."
MLXDIR=${MLXDIR:-/tmp/mlxcuda}
WORK=${WORK:-/tmp/gpu}
REPEAT=${REPEAT:-20}
OF3C=${OF3C:-bin/of3c}
mkdir -p "$WORK"

setenv() {
  NVLIBS=$(python3 -c 'import nvidia, glob; print(":".join(sorted(d for p in nvidia.__path__ for d in glob.glob(p + "/*/lib"))))' 2>/dev/null)
  export LD_LIBRARY_PATH="$MLXDIR/mlx/lib:$MLXDIR/mlx_cuda_13.libs:${NVLIBS}${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  # MLX's NVRTC JIT adds $CUDA_HOME/include only; CUDA 13 moved CCCL (<cuda/std/type_traits>, which
  # mlx/backend/cuda/device/fp16_math.cuh includes) to include/cccl. Merge both into one folder.
  # (The image may already set CUDA_HOME=/usr/local/cuda: overridden unless it has cuda/std.)
  if [ ! -e "${CUDA_HOME:-/nonexistent}/include/cuda/std/type_traits" ] && [ -d /usr/local/cuda/include ]; then
    mkdir -p /tmp/cudahome/include
    for d in /usr/local/cuda/include /usr/local/cuda/include/cccl; do
      for f in "$d"/*; do [ -e "/tmp/cudahome/include/${f##*/}" ] || ln -s "$f" /tmp/cudahome/include/; done
    done
    export CUDA_HOME=/tmp/cudahome CUDA_PATH=/tmp/cudahome
  fi
  export MLX_ENABLE_TF32=${MLX_ENABLE_TF32:-0}
}

unpack() {
  [ -f "$MLXDIR/mlx/lib/libmlx.so" ] && return 0
  ls -la /tmp/mlxcuda_parts/
  cat /tmp/mlxcuda_parts/part.* > /tmp/mlxcuda.tar.xz
  [ -f .devfix/p3/sha.txt ] && (cd /tmp && sed 's#  .*#  mlxcuda.tar.xz#' "$OLDPWD/.devfix/p3/sha.txt" | sha256sum -c -)
  mkdir -p "$MLXDIR" && tar xJf /tmp/mlxcuda.tar.xz -C "$MLXDIR" && rm -f /tmp/mlxcuda.tar.xz
}

run() { echo "+ $*"; local t0=$(date +%s%N); timeout "${TMO:-180}" "$@"; local rc=$?; echo "  rc=$rc wall=$(( ($(date +%s%N) - t0) / 1000000 )) ms"; return $rc; }

case "${1:-main}" in
stage)
  mkdir -p /tmp/mlxcuda_parts && cp -v "$2"/part.* /tmp/mlxcuda_parts/ && ls -la /tmp/mlxcuda_parts ;;
env)
  setenv; env | grep -E '^(LD_LIBRARY_PATH|CUDA_HOME|MLX_ENABLE_TF32)=' ;;
torch)
  nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv
  export PYTHONPATH="$PWD/${SITE:-.whl/site}${PYTHONPATH:+:$PYTHONPATH}"
  PYTHONUNBUFFERED=1 run python3 scripts/gpu/torch_peer.py --module ${MODULE:-pairformer_block} --n "${NS:-256,384}" \
    --work "$WORK" --repeat "$REPEAT" ${PEER_ARGS:-} ;;
main)
  unpack || { echo "unpack failed"; exit 1; }
  setenv
  echo "== env"; env | grep -E '^(LD_LIBRARY_PATH|CUDA_HOME|MLX_ENABLE_TF32)='
  echo "== ldd"; ldd "$OF3C" | grep -E 'mlx|not found'; ldd "$MLXDIR/mlx/lib/libmlx.so" | grep -E 'not found|cublas|cudnn|nvrtc|nccl|cufft|cusolver|libcuda'
  echo "== step 1: version"; run "$OF3C" version
  for STEP in ${STEPS:-2 3}; do
  if [ $STEP = 2 ]; then
  echo "== step 2: fixtures (fp32 TF32 off, then bf16)"
  for M in ${FIXTURES:-pairformer_block_tiny_torchscript pairformer_block_of3_torchscript tri_att_start_of3_dynamo msa_module_block_tiny_dynamo}; do
    D=models/of3/testdata/$M
    run "$OF3C" compile $D/model.onnx -o $WORK/$M.of3 --device gpu && \
      run "$OF3C" run $WORK/$M.of3 --device gpu --inputs $D/test_data_set_0 --check $D/test_data_set_0 --repeat 10
    # bf16: the error is reported, not gated (--check exits 1 outside --atol; bf16 is ~1e-2 off fp32).
    run "$OF3C" compile $D/model.onnx -o $WORK/$M.bf16.of3 --device gpu --precision bf16 && \
      run "$OF3C" run $WORK/$M.bf16.of3 --device gpu --inputs $D/test_data_set_0 --check $D/test_data_set_0 --atol 1e30 --repeat 10
  done
  else
  echo "== step 3: PairformerBlock of3 at real sizes (inputs from the torch step)"
  O=models/of3/generated/testdata/pairformer_block_of3_torchscript/model.onnx
  for P in fp32 bf16; do
    run "$OF3C" compile $O -o $WORK/pf_of3.$P.of3 --device gpu --precision $P
    for N in $(echo "${NS:-256,384}" | tr , " "); do
      [ -f $WORK/inputs_$N.npz ] || { echo "no $WORK/inputs_$N.npz (run the torch step first)"; continue; }
      run "$OF3C" run $WORK/pf_of3.$P.of3 --device gpu --inputs $WORK/inputs_$N.npz -o $WORK/of3c_${P}_$N.npz --repeat $REPEAT && \
        python3 scripts/gpu/torch_peer.py --compare $WORK/torch_fp32_$N.npz $WORK/of3c_${P}_$N.npz
    done
  done
  fi
  done ;;
export)
  # Real-width openfold3 fixtures into models/of3/generated (ignored by git; kept on a warm machine):
  # the PairFormerBlock and the 48-block PairFormerStack, TorchScript exporter, external data.
  export PYTHONPATH="$PWD/${SITE:-.whl/site}${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
  run python3 models/of3/export.py --presets of3 --modules ${EXPORT_MODULES:-pairformer_block,pairformer_stack} \
    --exporters ${EXPORTERS:-torchscript} --external-data --out models/of3/generated/testdata \
    --index models/of3/generated/fixtures.json --task-timeout ${TMO:-560} --log-dir $WORK/export_logs
  du -sh models/of3/generated/testdata/* ;;
stack)
  # The whole trunk as one artifact: the 48-block PairFormerStack at of3 width (generated by the export
  # step). Compile time and artifact size; MLX CPU and GPU parity against PyTorch on the exporter's test
  # sets; GPU runs at NS against PyTorch eager / OpenFold3 chunk 64 + LMA (inputs and outputs from the
  # torch step: torch_peer.py --module pairformer_stack).
  unpack || { echo "unpack failed"; exit 1; }
  setenv
  D=models/of3/generated/testdata/pairformer_stack_of3_torchscript
  ls -la $D
  for P in fp32 bf16; do
    run "$OF3C" compile $D/model.onnx -o $WORK/stack.$P.of3 --device gpu --precision $P
    ls -la $WORK/stack.$P.of3
  done
  run "$OF3C" compile $D/model.onnx -o $WORK/stack.cpu.of3 --device cpu
  for S in 0 1; do
    run "$OF3C" run $WORK/stack.cpu.of3 --device cpu --inputs $D/test_data_set_$S -o $WORK/stack_cpu_$S.npz --check $D/test_data_set_$S
    run "$OF3C" run $WORK/stack.fp32.of3 --device gpu --inputs $D/test_data_set_$S --check $D/test_data_set_$S
  done
  for N in $(echo "${NS:-256,512,768}" | tr , " "); do
    for P in fp32 bf16; do
      [ -f $WORK/inputs_$N.npz ] || { echo "no $WORK/inputs_$N.npz (run the torch step first)"; continue; }
      run "$OF3C" run $WORK/stack.$P.of3 --device gpu --inputs $WORK/inputs_$N.npz -o $WORK/of3c_stack_${P}_$N.npz --repeat ${REPEAT} && \
        python3 scripts/gpu/torch_peer.py --compare $WORK/torch_fp32_$N.npz $WORK/of3c_stack_${P}_$N.npz
    done
  done ;;
wheel)
  # What `make setup MLX=cuda` leaves on a user's machine, rebuilt from the staged wheel files: site/mlx/lib,
  # site/mlx_cuda_13.libs and site/nvidia (the NVIDIA CUDA 13 wheels torch brought), .mlx -> site/mlx. bin/of3c
  # and bin/libof3c.so find libmlx through their $ORIGIN RUNPATH, libmlx finds the NVIDIA libraries through its
  # own; the environment names none of them.
  unpack || { echo "unpack failed"; exit 1; }
  # libmlx's RPATH is $ORIGIN/../../nvidia/{cu13,cublas,...}/lib and $ORIGIN/../../mlx_cuda_13.libs, resolved
  # from its real folder: the unpacked wheel folder MLXDIR is the site-packages, with the NVIDIA wheels beside.
  NV=$(python3 -c 'import nvidia, os; print(list(nvidia.__path__)[0])')
  ln -sfn "$NV" "$MLXDIR/nvidia" && ln -sfn "$MLXDIR/mlx" .mlx && ls -la .mlx "$MLXDIR"
  unset LD_LIBRARY_PATH CUDA_HOME CUDA_PATH
  echo "== readelf"; readelf -d "$OF3C" | grep -i runpath; readelf -d "$MLXDIR/mlx/lib/libmlx.so" | grep -i path
  echo "== ldd"; ldd "$OF3C" | grep -E 'mlx|not found'
  run "$OF3C" version
  D=models/of3/testdata/pairformer_block_tiny_torchscript
  run "$OF3C" compile $D/model.onnx -o $WORK/wheel.of3 --device gpu && \
    run "$OF3C" run $WORK/wheel.of3 --device gpu --inputs $D/test_data_set_0 --check $D/test_data_set_0 --atol 1e-4
  export PYTHONPATH="$PWD/python:$PWD/${SITE:-.whl/site}${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
  run python3 -m pytest -q -p no:cacheprovider python/tests ;;
profile)
  # Where the GPU time goes: per-op eager profile (bin/of3bench -profile, each node evaluated before the next)
  # and an nsys kernel summary of the compiled run. Needs $WORK/inputs_$PN.npz from the torch step.
  unpack || { echo "unpack failed"; exit 1; }
  setenv
  O=${MODEL:-models/of3/generated/testdata/pairformer_block_of3_torchscript/model.onnx}
  PN=${PN:-384}
  for P in ${PRECS:-fp32 bf16}; do
    run bin/of3bench -profile $O -n $PN -device gpu -precision $P
  done
  if command -v nsys >/dev/null; then
    for P in ${PRECS:-fp32 bf16}; do
      run "$OF3C" compile $O -o $WORK/prof.$P.of3 --device gpu --precision $P
      run nsys profile -t cuda,nvtx --sample=none --cpuctxsw=none -f true -o $WORK/nsys_$P \
        "$OF3C" run $WORK/prof.$P.of3 --device gpu --inputs $WORK/inputs_$PN.npz --repeat 5 >/dev/null
      nsys stats -q -r cuda_gpu_kern_sum,cuda_gpu_mem_time_sum,cuda_api_sum -f csv $WORK/nsys_$P.nsys-rep \
        > $WORK/nsys_$P.csv 2>&1
      python3 - $WORK/nsys_$P.csv <<'PY'
import sys, csv, io
text = open(sys.argv[1]).read()
for block in text.split("\n\n"):
    rows = list(csv.reader(io.StringIO(block.strip())))
    if len(rows) < 2: continue
    h = rows[0]
    print(" | ".join(h[:9]))
    for r in rows[1:26]:
        print(" | ".join(c[:90] for c in r[:9]))
    print()
PY
    done
  else
    echo "nsys not found"
  fi ;;
kernels)
  # Per-kernel GPU time of one compiled call (after a warm-up call in the same process is not possible with
  # ncu's replay, so this is the first call: its JIT kernels come from MLX's on-disk cache if an earlier step
  # built them). ncu measures only gpu__time_duration; the summary groups kernels by name.
  unpack || { echo "unpack failed"; exit 1; }
  setenv
  O=${MODEL:-models/of3/generated/testdata/pairformer_block_of3_torchscript/model.onnx}
  PN=${PN:-384}
  NCU=$(command -v ncu || echo /usr/local/cuda/bin/ncu)
  for P in ${PRECS:-fp32 bf16}; do
    run "$OF3C" compile $O -o $WORK/k.$P.of3 --device gpu --precision $P
    run "$NCU" --metrics gpu__time_duration.sum --csv --print-units base --log-file $WORK/ncu_$P.log \
      "$OF3C" run $WORK/k.$P.of3 --device gpu --inputs $WORK/inputs_$PN.npz >/dev/null
    grep -c '"gpu__time_duration.sum"' $WORK/ncu_$P.log
    python3 - $WORK/ncu_$P.log <<'PY'
import sys, csv, collections
rows = [r for r in csv.reader(l for l in open(sys.argv[1]) if l.startswith('"'))]
h = rows[0]; ki = h.index("Kernel Name"); vi = h.index("Metric Value")
agg = collections.defaultdict(lambda: [0, 0.0])
for r in rows[1:]:
    if len(r) <= vi: continue
    try: v = float(r[vi].replace(",", ""))
    except ValueError: continue
    k = r[ki][:110]; agg[k][0] += 1; agg[k][1] += v
tot = sum(v for _, v in agg.values())
print(f"total kernel time {tot/1e6:.3f} ms over {sum(c for c, _ in agg.values())} kernels")
for k, (c, v) in sorted(agg.items(), key=lambda x: -x[1][1])[:40]:
    print(f"{v/1e6:9.3f} ms {100*v/tot:5.1f}% {c:4d}x  {k}")
PY
  done ;;
esac
